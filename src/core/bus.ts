// The port I/O bus: the x86 IN/OUT address space (64 KiB of ports).
//
// Dispatch is O(1): two 64 Ki-entry tables map every port to the device that claims it and to the
// base of that device's range, so a device sees offsets and never its absolute port numbers.

/** Access width in bytes. */
export type Width = 1 | 2 | 4;

/** A device reachable through port I/O. `offset` is relative to the base it was registered at. */
export interface PortDevice {
  ioRead(offset: number, width: Width): number;
  ioWrite(offset: number, width: Width, value: number): void;
}

/** One port access, as reported to a trace sink. `device` is undefined for unclaimed ports. */
export interface PortAccess {
  readonly direction: "in" | "out";
  readonly port: number;
  readonly width: Width;
  readonly value: number;
  readonly device: string | undefined;
}

export type PortTraceSink = (access: PortAccess) => void;

interface Claim {
  readonly name: string;
  readonly base: number;
  readonly length: number;
  readonly device: PortDevice;
}

const PORT_COUNT = 0x10000;
const NO_CLAIM = -1;
const ALL_ONES: Record<Width, number> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

export class PortBus {
  /** Index into `claims` for every port, or NO_CLAIM. */
  private readonly owner = new Int32Array(PORT_COUNT).fill(NO_CLAIM);
  private readonly claims: (Claim | undefined)[] = [];
  /** Every access, when set. Switchable at run time. */
  trace: PortTraceSink | undefined;
  /** Accesses to unclaimed ports, when set (the "unhandled port" log). */
  unhandled: PortTraceSink | undefined;

  /**
   * Claims ports [base, base + length) for `device`. Throws if any of them is already claimed:
   * two devices answering one port is a wiring bug, never something to resolve silently.
   */
  register(name: string, base: number, length: number, device: PortDevice): void {
    if (
      !Number.isInteger(base) ||
      !Number.isInteger(length) ||
      length <= 0 ||
      base < 0 ||
      base + length > PORT_COUNT
    ) {
      throw new RangeError(`port range ${hex(base)}+${length} for ${name} is outside 0x0000-0xffff`);
    }
    for (let p = base; p < base + length; p++) {
      const other = this.owner[p]!;
      if (other !== NO_CLAIM) {
        throw new Error(`port ${hex(p)} for ${name} is already claimed by ${this.claims[other]!.name}`);
      }
    }
    let index = this.claims.indexOf(undefined);
    if (index < 0) index = this.claims.length;
    this.claims[index] = { name, base, length, device };
    this.owner.fill(index, base, base + length);
  }

  /** Releases the range registered at `base` (e.g. when a PCI I/O BAR moves). */
  unregister(base: number): void {
    const index = this.owner[base & 0xffff]!;
    const claim = this.claims[index];
    if (index === NO_CLAIM || !claim || claim.base !== base) {
      throw new Error(`no port range is registered at ${hex(base)}`);
    }
    this.owner.fill(NO_CLAIM, claim.base, claim.base + claim.length);
    this.claims[index] = undefined;
  }

  /** Name of the device claiming `port`, if any. */
  claimant(port: number): string | undefined {
    const index = this.owner[port & 0xffff]!;
    return index === NO_CLAIM ? undefined : this.claims[index]!.name;
  }

  in8(port: number): number {
    return this.read(port & 0xffff, 1);
  }
  in16(port: number): number {
    return this.read(port & 0xffff, 2);
  }
  in32(port: number): number {
    return this.read(port & 0xffff, 4);
  }
  out8(port: number, value: number): void {
    this.write(port & 0xffff, 1, value & 0xff);
  }
  out16(port: number, value: number): void {
    this.write(port & 0xffff, 2, value & 0xffff);
  }
  out32(port: number, value: number): void {
    this.write(port & 0xffff, 4, value >>> 0);
  }

  read(port: number, width: Width): number {
    const index = this.owner[port]!;
    let value: number;
    let claim: Claim | undefined;
    if (index !== NO_CLAIM && (claim = this.claims[index]!) && port + width <= claim.base + claim.length) {
      value = claim.device.ioRead(port - claim.base, width);
      value = width === 4 ? value >>> 0 : value & ALL_ONES[width];
    } else if (width > 1 && this.spansClaims(port, width)) {
      // A wide access that straddles devices is split into bytes, as the ISA bus does.
      value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + this.read((port + i) & 0xffff, 1);
      claim = undefined;
    } else {
      value = ALL_ONES[width];
      if (this.unhandled) this.unhandled({ direction: "in", port, width, value, device: undefined });
    }
    if (this.trace) this.trace({ direction: "in", port, width, value, device: claim?.name });
    return value;
  }

  write(port: number, width: Width, value: number): void {
    const index = this.owner[port]!;
    let claim: Claim | undefined;
    if (this.trace) this.trace({ direction: "out", port, width, value, device: this.claimant(port) });
    if (index !== NO_CLAIM && (claim = this.claims[index]!) && port + width <= claim.base + claim.length) {
      claim.device.ioWrite(port - claim.base, width, value);
    } else if (width > 1 && this.spansClaims(port, width)) {
      for (let i = 0; i < width; i++) this.write((port + i) & 0xffff, 1, (value >>> (8 * i)) & 0xff);
    } else if (this.unhandled) {
      this.unhandled({ direction: "out", port, width, value, device: undefined });
    }
  }

  /** True if any byte of a wide access at `port` is claimed. */
  private spansClaims(port: number, width: Width): boolean {
    for (let i = 0; i < width; i++) if (this.owner[(port + i) & 0xffff] !== NO_CLAIM) return true;
    return false;
  }
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(4, "0")}`;
}
