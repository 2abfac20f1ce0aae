// The PCI function model: one function's 256-byte type-0 configuration space and what follows
// from it (BAR decoding, the expansion ROM, INTx).
//
// A device model (VGA, IDE, the chipset's own functions) either extends `PciFunction` or owns
// one. It declares its identity and BARs once; the guest then programs the BARs and the command
// register through configuration cycles. Whenever that makes a BAR start or stop being decoded,
// or move, the function reports it through the listener the machine builder installs with
// `onBarChange`: the builder maps and unmaps on the PortBus and PhysicalMemory. The function
// itself never touches a bus and never knows its bus/device/function number.

import type { PortDevice, Width } from "../../core/bus.ts";
import { IrqLine } from "../../core/irq.ts";
import type { MmioDevice } from "../../core/memory.ts";
import type { Persistent } from "../../core/persist.ts";
import { StateError } from "../../core/persist.ts";

// ---- standard header offsets (type 0) ------------------------------------------------------

export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
/** Programming interface, subclass, class: three bytes at 0x09-0x0b. */
export const PCI_CLASS_PROG = 0x09;
export const PCI_CACHE_LINE_SIZE = 0x0c;
export const PCI_LATENCY_TIMER = 0x0d;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BAR0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_ROM_ADDRESS = 0x30;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
/** First byte of the device-specific area. */
export const PCI_DEVICE_SPECIFIC = 0x40;

/**
 * Subsystem vendor/device QEMU gives its PCI functions (Red Hat, "QEMU virtual machine").
 * SeaBIOS recognises the emulated board by these ids on the host bridge; use them for every
 * function so the guest sees the same board as under QEMU.
 */
export const QEMU_SUBSYSTEM_VENDOR_ID = 0x1af4;
export const QEMU_SUBSYSTEM_ID = 0x1100;

/** Command bit 0: respond to I/O space accesses (I/O BARs decode). */
export const PCI_COMMAND_IO = 0x0001;
/** Command bit 1: respond to memory space accesses (memory BARs and the ROM decode). */
export const PCI_COMMAND_MEMORY = 0x0002;
/** Command bit 2: bus master (DMA) enable. */
export const PCI_COMMAND_MASTER = 0x0004;
/** Command bit 6: parity error response. */
export const PCI_COMMAND_PARITY = 0x0040;
/** Command bit 8: SERR# enable. */
export const PCI_COMMAND_SERR = 0x0100;
/** Command bit 10: INTx emulation disable. */
export const PCI_COMMAND_INTX_DISABLE = 0x0400;

/** Status bit 3: the function is asserting INTx (read-only). */
export const PCI_STATUS_INTERRUPT = 0x0008;
/** Status bit 4: a capability list starts at offset 0x34. */
export const PCI_STATUS_CAP_LIST = 0x0010;
/** Status bits 15:11 (error bits), cleared by writing 1. */
export const PCI_STATUS_ERRORS_W1C = 0xf800;

/** Header type bit 7: the device has functions other than 0. */
export const PCI_HEADER_MULTI_FUNCTION = 0x80;

/** BAR bit 0: I/O space indicator. */
export const PCI_BAR_SPACE_IO = 0x1;
/** Memory BAR bit 3: prefetchable. */
export const PCI_BAR_PREFETCH = 0x8;
/** Expansion ROM BAR bit 0: address decode enable. */
export const PCI_ROM_ENABLE = 0x1;

/** Index used in BarChange for the expansion ROM (the six BARs are 0-5). */
export const EXPANSION_ROM_INDEX = 6;
/** First BarChange index of device-specific windows (decoded through registers past 0x40). */
export const FIRST_EXTRA_WINDOW_INDEX = 7;

// ---- declarations -----------------------------------------------------------------------------

/** An I/O BAR: `size` ports (a power of two, at least 4) served by `device` at offsets. */
export interface IoBar {
  readonly kind: "io";
  readonly size: number;
  readonly device: PortDevice;
}

/** A memory BAR served by an MMIO device (a power of two, at least 16 bytes; 4 KiB or more is best). */
export interface MmioBar {
  readonly kind: "memory";
  readonly size: number;
  readonly prefetchable?: boolean;
  readonly device: MmioDevice;
}

/** A memory BAR mapped straight onto host bytes (e.g. a VGA linear framebuffer). */
export interface RamBar {
  readonly kind: "memory";
  readonly size: number;
  readonly prefetchable?: boolean;
  readonly ram: Uint8Array;
}

export type PciBar = IoBar | MmioBar | RamBar;

/**
 * The expansion ROM as the builder sees it: read-only bytes, `size` rounded up to a power of two
 * and at least a page, so that it always decodes at a page boundary.
 */
export interface RomBar {
  readonly kind: "rom";
  readonly size: number;
  readonly data: Uint8Array;
}

/**
 * A BAR (or the expansion ROM, index 6, or a device-specific window such as the PIIX4's power
 * management I/O block, index 7 and up) started decoding, stopped, or moved. `from` is the base it
 * was decoded at (undefined: it was not), `to` the base it decodes at now (undefined: it no
 * longer does). The builder unmaps `from`, then maps `to`.
 */
export interface BarChange {
  readonly function: PciFunction;
  readonly index: number;
  readonly bar: PciBar | RomBar;
  readonly from: number | undefined;
  readonly to: number | undefined;
}

export type BarChangeListener = (change: BarChange) => void;

export interface PciFunctionConfig {
  /** For logs and wiring messages, e.g. "piix3-ide". */
  readonly name: string;
  readonly vendorId: number;
  readonly deviceId: number;
  /** class << 16 | subclass << 8 | programming interface, e.g. 0x030000 for VGA. */
  readonly classCode: number;
  readonly revision?: number;
  readonly subsystemVendorId?: number;
  readonly subsystemId?: number;
  /** Sets header type bit 7 (function 0 of a multi-function device). */
  readonly multiFunction?: boolean;
  /** 0: no INTx; 1-4: INTA#-INTD#. */
  readonly interruptPin?: number;
  /** Up to six BARs; an undefined slot is an unimplemented BAR (reads as zero). */
  readonly bars?: readonly (PciBar | undefined)[];
  /** Expansion ROM image (e.g. the VGA option ROM). */
  readonly rom?: Uint8Array;
}

export interface PciFunctionState {
  readonly config: Uint8Array;
  readonly intxLevel: boolean;
}

const ALL_ONES: Record<Width, number> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };
const FOUR_GIB = 0x1_0000_0000;
const IO_SPACE = 0x10000;

export class PciFunction implements Persistent<PciFunctionState> {
  readonly stateVersion: number = 1;
  readonly name: string;
  /** The configuration space as the guest reads it (the standard part; see configRead). */
  protected readonly config = new Uint8Array(256);
  /** Per byte: which bits guest writes change. */
  protected readonly writeMask = new Uint8Array(256);
  /** Per byte: which bits a guest write of 1 clears. */
  protected readonly writeOneToClearMask = new Uint8Array(256);
  /** The INTx output, already gated by the command register's INTx disable bit. */
  readonly intx: IrqLine;
  readonly bars: readonly (PciBar | undefined)[];
  readonly rom: RomBar | undefined;

  private readonly powerOnConfig: Uint8Array;
  /** Base each BAR (0-5) and the ROM (6) currently decodes at, or undefined. */
  private readonly decodedAt: (number | undefined)[] = new Array(7).fill(undefined);
  /** Device-specific windows by BarChange index (7 and up). */
  private readonly extraWindows = new Map<number, PciBar>();
  private listener: BarChangeListener | undefined;
  /** The device's own interrupt request, before INTx disable. */
  private intxRequest = false;
  private capabilityTail = PCI_CAPABILITY_LIST;

  constructor(spec: PciFunctionConfig) {
    this.name = spec.name;
    this.intx = new IrqLine(`${spec.name} INTx`);
    const bars = spec.bars ?? [];
    if (bars.length > 6) throw new RangeError(`${spec.name}: a PCI function has at most six BARs`);
    for (const bar of bars) if (bar) checkBarSize(spec.name, bar);
    this.bars = [...bars, ...new Array<undefined>(6 - bars.length).fill(undefined)];
    if (spec.rom) {
      const size = Math.max(0x1000, nextPowerOfTwo(spec.rom.length));
      this.rom = { kind: "rom", size, data: spec.rom };
    }

    const c = this.config;
    put16(c, PCI_VENDOR_ID, spec.vendorId);
    put16(c, PCI_DEVICE_ID, spec.deviceId);
    c[PCI_REVISION_ID] = spec.revision ?? 0;
    c[PCI_CLASS_PROG] = spec.classCode & 0xff;
    c[PCI_CLASS_PROG + 1] = (spec.classCode >>> 8) & 0xff;
    c[PCI_CLASS_PROG + 2] = (spec.classCode >>> 16) & 0xff;
    c[PCI_HEADER_TYPE] = spec.multiFunction ? PCI_HEADER_MULTI_FUNCTION : 0;
    put16(c, PCI_SUBSYSTEM_VENDOR_ID, spec.subsystemVendorId ?? 0);
    put16(c, PCI_SUBSYSTEM_ID, spec.subsystemId ?? 0);
    const pin = spec.interruptPin ?? 0;
    if (!Number.isInteger(pin) || pin < 0 || pin > 4)
      throw new RangeError(`${spec.name}: bad interrupt pin ${pin}`);
    c[PCI_INTERRUPT_PIN] = pin;

    const writableCommand =
      PCI_COMMAND_IO |
      PCI_COMMAND_MEMORY |
      PCI_COMMAND_MASTER |
      PCI_COMMAND_PARITY |
      PCI_COMMAND_SERR |
      PCI_COMMAND_INTX_DISABLE;
    put16(this.writeMask, PCI_COMMAND, writableCommand);
    put16(this.writeOneToClearMask, PCI_STATUS, PCI_STATUS_ERRORS_W1C);
    this.writeMask[PCI_CACHE_LINE_SIZE] = 0xff;
    this.writeMask[PCI_LATENCY_TIMER] = 0xff;
    this.writeMask[PCI_INTERRUPT_LINE] = 0xff;

    for (let i = 0; i < 6; i++) {
      const bar = this.bars[i];
      if (!bar) continue;
      const at = PCI_BAR0 + 4 * i;
      put32(this.writeMask, at, ~(bar.size - 1) >>> 0);
      let low = bar.kind === "io" ? PCI_BAR_SPACE_IO : 0;
      if (bar.kind === "memory" && bar.prefetchable) low |= PCI_BAR_PREFETCH;
      put32(c, at, low);
    }
    if (this.rom) put32(this.writeMask, PCI_ROM_ADDRESS, (~(this.rom.size - 1) | PCI_ROM_ENABLE) >>> 0);

    this.powerOnConfig = c.slice();
  }

  // ---- wiring (machine builder) -----------------------------------------------------------

  /**
   * Installs the listener that maps and unmaps BARs. Called once by the builder; it is told at
   * once about BARs already decoding (after a state load, say).
   */
  onBarChange(listener: BarChangeListener): void {
    this.listener = listener;
    for (let i = 0; i < this.decodedAt.length; i++) {
      const at = this.decodedAt[i];
      if (at !== undefined)
        listener({ function: this, index: i, bar: this.barAt(i)!, from: undefined, to: at });
    }
  }

  /** Where BAR `index` (6: the ROM) decodes now, or undefined. */
  decodedBase(index: number): number | undefined {
    return this.decodedAt[index];
  }

  get vendorId(): number {
    return get16(this.config, PCI_VENDOR_ID);
  }
  get deviceId(): number {
    return get16(this.config, PCI_DEVICE_ID);
  }
  get interruptPin(): number {
    return this.config[PCI_INTERRUPT_PIN]!;
  }
  get multiFunction(): boolean {
    return (this.config[PCI_HEADER_TYPE]! & PCI_HEADER_MULTI_FUNCTION) !== 0;
  }
  get command(): number {
    return get16(this.config, PCI_COMMAND);
  }
  /** Bus mastering allowed: DMA engines check this before touching memory. */
  get busMaster(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }

  // ---- device side ------------------------------------------------------------------------

  /** The device asserts (true) or deasserts its INTx request. */
  setInterrupt(asserted: boolean): void {
    this.intxRequest = asserted;
    this.updateIntx();
  }

  /**
   * Links a capability with id `id` occupying `length` bytes at `offset` (>= 0x40, dword aligned)
   * into the list; returns `offset` so the device can fill in its body with `setConfigBytes`.
   */
  addCapability(id: number, offset: number, length: number): number {
    if (offset < PCI_DEVICE_SPECIFIC || offset % 4 !== 0 || offset + length > 256 || length < 2) {
      throw new RangeError(`${this.name}: capability at 0x${offset.toString(16)} does not fit`);
    }
    this.config[offset] = id;
    this.config[offset + 1] = 0;
    this.config[this.capabilityTail === PCI_CAPABILITY_LIST ? PCI_CAPABILITY_LIST : this.capabilityTail + 1] =
      offset;
    this.capabilityTail = offset;
    put16(this.config, PCI_STATUS, get16(this.config, PCI_STATUS) | PCI_STATUS_CAP_LIST);
    this.powerOnConfig.set(this.config);
    return offset;
  }

  /**
   * Decodes a device-specific window (`index` >= 7) at `base`, or stops decoding it (undefined);
   * the change is reported like a BAR's. For registers such as the PIIX4's PM base.
   */
  protected setExtraWindow(index: number, bar: PciBar, base: number | undefined): void {
    if (!Number.isInteger(index) || index < FIRST_EXTRA_WINDOW_INDEX || index > 31) {
      throw new RangeError(`${this.name}: extra window index ${index} is outside 7-31`);
    }
    this.extraWindows.set(index, bar);
    const from = this.decodedAt[index];
    if (from === base) return;
    this.decodedAt[index] = base;
    this.listener?.({ function: this, index, bar, from, to: base });
  }

  /** Sets power-on bytes and, optionally, which of their bits the guest may write. */
  protected setConfigBytes(offset: number, bytes: ArrayLike<number>, writeMask?: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) {
      this.config[offset + i] = bytes[i]!;
      this.powerOnConfig[offset + i] = bytes[i]!;
      if (writeMask) this.writeMask[offset + i] = writeMask[i]!;
    }
  }

  // ---- configuration cycles (host bridge) -------------------------------------------------

  /**
   * A configuration read of `width` bytes at `offset` (offset + width <= 256). Subclasses with
   * registers that are computed on read override this and defer to super for the rest.
   */
  configRead(offset: number, width: Width): number {
    if (offset < 0 || offset + width > 256) return ALL_ONES[width];
    const c = this.config;
    if (width === 1) return c[offset]!;
    if (width === 2) return c[offset]! | (c[offset + 1]! << 8);
    return (c[offset]! | (c[offset + 1]! << 8) | (c[offset + 2]! << 16) | (c[offset + 3]! << 24)) >>> 0;
  }

  /**
   * A configuration write. Bytes change as the masks allow, then BAR decoding and INTx are
   * re-evaluated, then `configChanged` lets the subclass react. Subclasses may also override
   * this for side-effect registers and call super for the rest.
   */
  configWrite(offset: number, width: Width, value: number): void {
    if (offset < 0 || offset + width > 256) return;
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      const mask = this.writeMask[at]!;
      const w1c = this.writeOneToClearMask[at]!;
      this.config[at] = ((this.config[at]! & ~mask) | (byte & mask)) & ~(byte & w1c);
    }
    if (offset < PCI_CAPABILITY_LIST && offset + width > PCI_COMMAND) {
      this.updateDecoding();
      this.updateIntx();
    }
    this.configChanged(offset, width);
  }

  /** Hook: bytes [offset, offset + width) were written. */
  protected configChanged(_offset: number, _width: Width): void {}

  /** Power-on reset of the configuration space (BARs stop decoding; INTx is kept as driven). */
  resetConfig(): void {
    this.config.set(this.powerOnConfig);
    this.updateDecoding();
    this.updateIntx();
  }

  // ---- persistence ------------------------------------------------------------------------

  saveState(): PciFunctionState {
    return { config: this.config.slice(), intxLevel: this.intxRequest };
  }

  loadState(state: PciFunctionState, _version: number): void {
    if (typeof state !== "object" || state === null)
      throw new StateError(`${this.name}: state is not an object`);
    if (!(state.config instanceof Uint8Array) || state.config.length !== 256) {
      throw new StateError(`${this.name}: PCI configuration space must be 256 bytes`);
    }
    // Identity and read-only bytes are this build's; only what the guest could write comes back.
    for (let i = 0; i < 256; i++) {
      const mask = this.writeMask[i]! | this.writeOneToClearMask[i]!;
      this.config[i] = (this.powerOnConfig[i]! & ~mask) | (state.config[i]! & mask);
    }
    this.intxRequest = state.intxLevel === true;
    this.updateDecoding();
    this.updateIntx();
  }

  // ---- internals --------------------------------------------------------------------------

  private barAt(index: number): PciBar | RomBar | undefined {
    if (index >= FIRST_EXTRA_WINDOW_INDEX) return this.extraWindows.get(index);
    return index === EXPANSION_ROM_INDEX ? this.rom : this.bars[index];
  }

  /** Where the BAR would decode given the command register and its address, or undefined. */
  private wantedBase(index: number): number | undefined {
    const command = this.command;
    if (index === EXPANSION_ROM_INDEX) {
      if (!this.rom || !(command & PCI_COMMAND_MEMORY)) return undefined;
      const raw = get32(this.config, PCI_ROM_ADDRESS);
      if (!(raw & PCI_ROM_ENABLE)) return undefined;
      return validBase(raw & ~(this.rom.size - 1), this.rom.size, FOUR_GIB);
    }
    const bar = this.bars[index];
    if (!bar) return undefined;
    const raw = get32(this.config, PCI_BAR0 + 4 * index);
    if (bar.kind === "io") {
      if (!(command & PCI_COMMAND_IO)) return undefined;
      return validBase(raw & ~(bar.size - 1), bar.size, IO_SPACE);
    }
    if (!(command & PCI_COMMAND_MEMORY)) return undefined;
    return validBase(raw & ~(bar.size - 1), bar.size, FOUR_GIB);
  }

  private updateDecoding(): void {
    for (let i = 0; i <= EXPANSION_ROM_INDEX; i++) {
      const to = this.wantedBase(i);
      const from = this.decodedAt[i];
      if (to === from) continue;
      this.decodedAt[i] = to;
      this.listener?.({ function: this, index: i, bar: this.barAt(i)!, from, to });
    }
  }

  private updateIntx(): void {
    const status = get16(this.config, PCI_STATUS);
    put16(
      this.config,
      PCI_STATUS,
      this.intxRequest ? status | PCI_STATUS_INTERRUPT : status & ~PCI_STATUS_INTERRUPT,
    );
    const enabled = (this.command & PCI_COMMAND_INTX_DISABLE) === 0;
    this.intx.set(this.intxRequest && enabled && this.interruptPin !== 0);
  }
}

/**
 * A base is decoded only if it is non-zero and the whole range lies inside the space; this also
 * keeps a BAR that is being sized (all ones written) from decoding at the top of the space.
 */
function validBase(base: number, size: number, spaceSize: number): number | undefined {
  base >>>= 0;
  if (base === 0 || base + size > spaceSize) return undefined;
  // Memory whose last byte is 0xffffffff is what sizing leaves behind, as on real chipsets.
  if (spaceSize === FOUR_GIB && base + size === FOUR_GIB) return undefined;
  return base;
}

function checkBarSize(name: string, bar: PciBar): void {
  const min = bar.kind === "io" ? 4 : 16;
  const max = bar.kind === "io" ? 0x100 * 0x100 : 0x8000_0000;
  if (!Number.isInteger(bar.size) || bar.size < min || bar.size > max || (bar.size & (bar.size - 1)) !== 0) {
    throw new RangeError(`${name}: BAR size ${bar.size} must be a power of two in [${min}, ${max}]`);
  }
  if ("ram" in bar && bar.ram.length < bar.size) {
    throw new RangeError(
      `${name}: BAR backing of ${bar.ram.length} bytes is smaller than its size ${bar.size}`,
    );
  }
}

function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

export function get16(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8);
}

export function get32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
}

export function put16(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
}

export function put32(bytes: Uint8Array, at: number, value: number): void {
  bytes[at] = value;
  bytes[at + 1] = value >>> 8;
  bytes[at + 2] = value >>> 16;
  bytes[at + 3] = value >>> 24;
}
