// PCI bus 0, configuration mechanism #1, and the i440FX host bridge (00:00.0).
//
// Configuration mechanism #1 is an address register at port 0xCF8 (dword: enable bit 31,
// bus 23:16, device 15:11, function 10:8, register 7:2) and a data window at 0xCFC-0xCFF that
// accepts byte, word and dword accesses at any of its four offsets. Only bus 0 exists.
//
// The i440FX's own configuration space holds the shadow-RAM controls (PAM) for 0xC0000-0xFFFFF
// and the SMRAM control for 0xA0000-0xBFFFF. Changes are reported through hooks; the machine
// builder re-routes memory pages with PhysicalMemory.route.

import type { PortDevice, Width } from "../../core/bus.ts";
import type { IrqLine } from "../../core/irq.ts";
import { field, type Persistent } from "../../core/persist.ts";
import {
  PciFunction,
  type PciFunctionState,
  QEMU_SUBSYSTEM_ID,
  QEMU_SUBSYSTEM_VENDOR_ID,
} from "./function.ts";

/** Address register bit 31: configuration cycles enabled. */
const CONFIG_ENABLE = 0x8000_0000;
/** Address register bits that hold state (bits 30:24 and 1:0 are reserved, read as zero). */
const CONFIG_ADDRESS_MASK = 0x80ff_fffc;

const ALL_ONES: Record<Width, number> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

/** Receives the INTx output of a function in PCI slot `slot` on pin 1-4 (INTA#-INTD#). */
export interface IntxRouter {
  connectIntx(slot: number, pin: number, line: IrqLine): void;
}

/** Bus 0: up to 32 devices of up to 8 functions, addressed by device/function number. */
export class PciBus {
  private readonly functions: (PciFunction | undefined)[] = new Array(256).fill(undefined);
  private router: IntxRouter | undefined;

  /** Puts `fn` at device `slot`, function `functionNumber`. */
  attach(slot: number, functionNumber: number, fn: PciFunction): void {
    if (!Number.isInteger(slot) || slot < 0 || slot > 31 || !Number.isInteger(functionNumber)) {
      throw new RangeError(`PCI slot ${slot} is outside 0-31`);
    }
    if (functionNumber < 0 || functionNumber > 7)
      throw new RangeError(`PCI function ${functionNumber} is outside 0-7`);
    const devfn = (slot << 3) | functionNumber;
    const other = this.functions[devfn];
    if (other) throw new Error(`PCI 00:${hex2(slot)}.${functionNumber} is already ${other.name}`);
    this.functions[devfn] = fn;
    if (this.router && fn.interruptPin !== 0) this.router.connectIntx(slot, fn.interruptPin, fn.intx);
  }

  /** The function at a device/function number, if any. */
  functionAt(slot: number, functionNumber: number): PciFunction | undefined {
    return this.functions[((slot & 31) << 3) | (functionNumber & 7)];
  }

  /** Every attached function with its slot and function number. */
  list(): { slot: number; functionNumber: number; fn: PciFunction }[] {
    const out: { slot: number; functionNumber: number; fn: PciFunction }[] = [];
    this.functions.forEach((fn, devfn) => {
      if (fn) out.push({ slot: devfn >> 3, functionNumber: devfn & 7, fn });
    });
    return out;
  }

  /**
   * Installs the INTx router (the PIIX3's PIRQ logic); functions attached before and after are
   * connected to it.
   */
  setIntxRouter(router: IntxRouter): void {
    this.router = router;
    for (const { slot, fn } of this.list()) {
      if (fn.interruptPin !== 0) router.connectIntx(slot, fn.interruptPin, fn.intx);
    }
  }

  configRead(devfn: number, offset: number, width: Width): number {
    const fn = this.functions[devfn & 0xff];
    return fn ? fn.configRead(offset, width) : ALL_ONES[width];
  }

  configWrite(devfn: number, offset: number, width: Width, value: number): void {
    this.functions[devfn & 0xff]?.configWrite(offset, width, value);
  }

  /** Power-on reset of every function's configuration space. */
  reset(): void {
    for (const fn of this.functions) fn?.resetConfig();
  }
}

/**
 * Ports 0xCF8-0xCFF. Offset 1 (port 0xCF9) is the PIIX3's reset control register; byte accesses
 * there are handed to `resetControl` so that one device can own the whole range.
 */
export interface PciConfigPortsState {
  /** The configuration address register (0xCF8). */
  readonly address: number;
}

export class PciConfigPorts implements PortDevice, Persistent<PciConfigPortsState> {
  readonly stateVersion = 1;
  private address = 0;
  private readonly bus: PciBus;
  private readonly resetControl: PortDevice | undefined;

  constructor(bus: PciBus, resetControl?: PortDevice) {
    this.bus = bus;
    this.resetControl = resetControl;
  }

  ioRead(offset: number, width: Width): number {
    if (offset < 4) {
      if (offset === 0 && width === 4) return this.address;
      if (offset === 1 && width === 1 && this.resetControl) return this.resetControl.ioRead(0, 1);
      return ALL_ONES[width];
    }
    if (!(this.address & CONFIG_ENABLE) || this.bus0Devfn() < 0) return ALL_ONES[width];
    return this.bus.configRead(this.bus0Devfn(), (this.address & 0xfc) + (offset - 4), width);
  }

  ioWrite(offset: number, width: Width, value: number): void {
    if (offset < 4) {
      if (offset === 0 && width === 4) this.address = (value & CONFIG_ADDRESS_MASK) >>> 0;
      else if (offset === 1 && width === 1) this.resetControl?.ioWrite(0, 1, value);
      return;
    }
    if (!(this.address & CONFIG_ENABLE) || this.bus0Devfn() < 0) return;
    this.bus.configWrite(this.bus0Devfn(), (this.address & 0xfc) + (offset - 4), width, value);
  }

  /** The device/function addressed on bus 0, or -1 for another bus. */
  private bus0Devfn(): number {
    return (this.address >>> 16) & 0xff ? -1 : (this.address >>> 8) & 0xff;
  }

  /** Power-on reset: configuration cycles disabled. */
  reset(): void {
    this.address = 0;
  }

  saveState(): PciConfigPortsState {
    return { address: this.address };
  }

  loadState(state: PciConfigPortsState, _version: number): void {
    const address = field(state as unknown as Record<string, unknown>, "address", "number");
    this.address = (address & CONFIG_ADDRESS_MASK) >>> 0;
  }
}

// ---- i440FX -------------------------------------------------------------------------------------

/** First PAM register; PAM0 (0x59) controls 0xF0000-0xFFFFF in its high nibble. */
export const I440FX_PAM0 = 0x59;
/** SMRAM control register. */
export const I440FX_SMRAM = 0x72;
/** DRAM row boundary registers (8 MiB units, cumulative), 0x60-0x67. */
const I440FX_DRB0 = 0x60;
/** PAM nibble bit 0: reads of the segment go to RAM (else to ROM / the PCI bus). */
const PAM_READ_ENABLE = 0x1;
/** PAM nibble bit 1: writes of the segment go to RAM. */
const PAM_WRITE_ENABLE = 0x2;
/** SMRAM bit 6 (D_OPEN): 0xA0000-0xBFFFF shows SMRAM (RAM) to ordinary accesses. */
const SMRAM_D_OPEN = 0x40;
/** SMRAM bit 5 (D_CLS): data accesses from SMM go to the bus. */
const SMRAM_D_CLS = 0x20;
/** SMRAM bit 4 (D_LCK): D_OPEN and D_LCK become read-only until reset. */
const SMRAM_D_LCK = 0x10;
/** SMRAM bit 3 (G_SMRAME): SMRAM enabled. */
const SMRAM_G_SMRAME = 0x08;
/** SMRAM bits 2:0 (C_BASE_SEG) are hard-wired to 010: SMRAM at 0xA0000. */
const SMRAM_BASE_SEG_A0000 = 0x02;

/** One shadow segment: [base, base + size) and the PAM nibble that controls it. */
export interface PamSegment {
  readonly base: number;
  readonly size: number;
  /** Config register offset. */
  readonly register: number;
  /** 0: low nibble, 4: high nibble. */
  readonly shift: number;
}

/** The 13 segments of 0xC0000-0xFFFFF in register order. */
export const PAM_SEGMENTS: readonly PamSegment[] = [
  { base: 0xf0000, size: 0x10000, register: I440FX_PAM0, shift: 4 },
  ...Array.from({ length: 12 }, (_, i) => ({
    base: 0xc0000 + i * 0x4000,
    size: 0x4000,
    register: I440FX_PAM0 + 1 + (i >> 1),
    shift: (i & 1) * 4,
  })),
];

export type PamChangeListener = (base: number, size: number, readToRam: boolean, writeToRam: boolean) => void;

export interface I440fxOptions {
  /** Guest RAM in bytes (fills the DRB registers). */
  readonly ramSize: number;
  /** A PAM segment's routing changed (also called for every segment by `reportMemoryRouting`). */
  readonly onPamChange?: PamChangeListener;
  /** 0xA0000-0xBFFFF shows RAM (true) or the VGA window (false) to non-SMM accesses. */
  readonly onSmramChange?: (ramVisible: boolean) => void;
}

export class I440fx extends PciFunction {
  private readonly onPamChange: PamChangeListener | undefined;
  private readonly onSmramChange: ((ramVisible: boolean) => void) | undefined;

  constructor(options: I440fxOptions) {
    super({
      name: "i440fx",
      vendorId: 0x8086,
      deviceId: 0x1237,
      revision: 0x02,
      classCode: 0x060000,
      subsystemVendorId: QEMU_SUBSYSTEM_VENDOR_ID,
      subsystemId: QEMU_SUBSYSTEM_ID,
    });
    this.onPamChange = options.onPamChange;
    this.onSmramChange = options.onSmramChange;
    const drb = new Array<number>(8).fill(Math.min(0xff, Math.ceil(options.ramSize / (8 << 20))));
    // The PAM and DRB registers are plain read/write bytes; SMRAM is handled in configWrite.
    this.setConfigBytes(I440FX_PAM0, new Array(7).fill(0), [0x30, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33]);
    this.setConfigBytes(I440FX_DRB0, drb, new Array(8).fill(0xff));
    this.setConfigBytes(I440FX_SMRAM, [SMRAM_BASE_SEG_A0000]);
  }

  /** Reports the current routing of every PAM segment and the SMRAM window (initial wiring). */
  reportMemoryRouting(): void {
    for (const segment of PAM_SEGMENTS) this.reportSegment(segment);
    this.onSmramChange?.(this.smramOpen());
  }

  /** Whether reads and writes of PAM segment `segment` go to RAM. */
  pamState(segment: PamSegment): { readToRam: boolean; writeToRam: boolean } {
    const nibble = (this.config[segment.register]! >> segment.shift) & 0xf;
    return { readToRam: (nibble & PAM_READ_ENABLE) !== 0, writeToRam: (nibble & PAM_WRITE_ENABLE) !== 0 };
  }

  override configWrite(offset: number, width: Width, value: number): void {
    const oldPam = this.config.slice(I440FX_PAM0, I440FX_PAM0 + 7);
    const oldSmramOpen = this.smramOpen();
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      if (at === I440FX_SMRAM) this.writeSmram(byte);
      else super.configWrite(at, 1, byte);
    }
    for (const segment of PAM_SEGMENTS) {
      const r = segment.register;
      if (((oldPam[r - I440FX_PAM0]! ^ this.config[r]!) >> segment.shift) & 0xf) this.reportSegment(segment);
    }
    if (oldSmramOpen !== this.smramOpen()) this.onSmramChange?.(this.smramOpen());
  }

  override resetConfig(): void {
    super.resetConfig();
    this.reportMemoryRouting();
  }

  override loadState(state: PciFunctionState, version: number): void {
    super.loadState(state, version);
    // SMRAM is not in the write mask; restore it explicitly.
    this.config[I440FX_SMRAM] = (state.config[I440FX_SMRAM]! & 0x78) | SMRAM_BASE_SEG_A0000;
    this.reportMemoryRouting();
  }

  private writeSmram(byte: number): void {
    const old = this.config[I440FX_SMRAM]!;
    let next = (byte & (SMRAM_D_OPEN | SMRAM_D_CLS | SMRAM_D_LCK | SMRAM_G_SMRAME)) | SMRAM_BASE_SEG_A0000;
    if (old & SMRAM_D_LCK) {
      // Locked: D_OPEN stays closed and the lock stays set until reset.
      next = (next & ~SMRAM_D_OPEN) | SMRAM_D_LCK;
    } else if (next & SMRAM_D_LCK) {
      next &= ~SMRAM_D_OPEN;
    }
    this.config[I440FX_SMRAM] = next;
  }

  private smramOpen(): boolean {
    return (this.config[I440FX_SMRAM]! & SMRAM_D_OPEN) !== 0;
  }

  private reportSegment(segment: PamSegment): void {
    const { readToRam, writeToRam } = this.pamState(segment);
    this.onPamChange?.(segment.base, segment.size, readToRam, writeToRam);
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
