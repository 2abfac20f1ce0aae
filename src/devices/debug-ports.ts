// Ports that exist for people and test harnesses rather than for the guest's users: the POST code
// port (0x80), QEMU's debug console (0xE9; SeaBIOS logs to another instance at 0x402), QEMU's
// isa-debug-exit (kvm-unit-tests put it at 0xF4) and QEMU's pc-testdev, which kvm-unit-tests use
// for a scratch I/O register (0xE0), page flushes (0xE4), raising IRQ lines (0x2000) and an MMIO
// scratch page (0xFF000000).

import type { PortDevice, Width } from "../core/bus.ts";
import type { IrqLine } from "../core/irq.ts";
import type { MmioDevice } from "../core/memory.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";

/** Mask of the low `width` bytes. */
function widthMask(width: Width): number {
  return width === 4 ? 0xffffffff : width === 2 ? 0xffff : 0xff;
}

export interface PostCodeState {
  code: number;
}

/** The POST diagnostic port: remembers the last code written; reads return it. */
export class PostCodePort implements PortDevice, Persistent<PostCodeState> {
  readonly stateVersion = 1;
  private code = 0;
  private readonly onCode: ((code: number) => void) | undefined;

  constructor(onCode?: (code: number) => void) {
    this.onCode = onCode;
  }

  get lastCode(): number {
    return this.code;
  }

  ioRead(_offset: number, _width: Width): number {
    return this.code;
  }

  ioWrite(_offset: number, _width: Width, value: number): void {
    this.code = value & 0xff;
    this.onCode?.(this.code);
  }

  saveState(): PostCodeState {
    return { code: this.code };
  }

  loadState(state: PostCodeState, version: number): void {
    if (version !== 1) throw new StateError(`post code port: unknown state version ${version}`);
    const code = state?.code;
    if (typeof code !== "number" || !Number.isInteger(code))
      throw new StateError("post code port: code is not a number");
    this.code = code & 0xff;
  }
}

/** What QEMU's debugcon answers to reads, which firmware checks to detect the port. */
export const DEBUGCON_READBACK = 0xe9;

/** QEMU's debug console: every byte written goes to the sink; reads identify the device. */
export class DebugConsole implements PortDevice, Persistent<Record<string, never>> {
  readonly stateVersion = 1;
  private readonly onByte: (byte: number) => void;
  private readonly readback: number;

  constructor(onByte: (byte: number) => void, readback = DEBUGCON_READBACK) {
    this.onByte = onByte;
    this.readback = readback & 0xff;
  }

  ioRead(_offset: number, _width: Width): number {
    return this.readback;
  }

  ioWrite(_offset: number, width: Width, value: number): void {
    // A wide write sends its bytes in address order, as the port would see them one by one.
    for (let i = 0; i < width; i++) this.onByte((value >>> (8 * i)) & 0xff);
  }

  saveState(): Record<string, never> {
    return {};
  }

  loadState(_state: Record<string, never>, version: number): void {
    if (version !== 1) throw new StateError(`debugcon: unknown state version ${version}`);
  }
}

/** QEMU's isa-debug-exit: writing v ends the VM with status (v << 1) | 1. */
export class DebugExit implements PortDevice, Persistent<Record<string, never>> {
  readonly stateVersion = 1;
  private readonly onExit: (status: number) => void;

  constructor(onExit: (status: number) => void) {
    this.onExit = onExit;
  }

  ioRead(_offset: number, _width: Width): number {
    return 0;
  }

  ioWrite(_offset: number, width: Width, value: number): void {
    // Computed in doubles so a 32-bit value doesn't wrap: the caller truncates to its exit code.
    this.onExit(((value & widthMask(width)) >>> 0) * 2 + 1);
  }

  saveState(): Record<string, never> {
    return {};
  }

  loadState(_state: Record<string, never>, version: number): void {
    if (version !== 1) throw new StateError(`isa-debug-exit: unknown state version ${version}`);
  }
}

/** Size of pc-testdev's MMIO scratch area. */
export const PC_TESTDEV_MEMORY_SIZE = 0x10000;
/** IRQ lines pc-testdev can drive (one port each). */
export const PC_TESTDEV_IRQ_COUNT = 24;

export interface PcTestDevState {
  data: number;
  memory: Uint8Array;
  irqLevels: number;
}

/**
 * QEMU's pc-testdev. Three faces, each registered by the builder:
 * - `ports` (12 ports at 0xE0): a 32-bit scratch register at offsets 0-3 and again at 8-11,
 *   and a page-flush port at offsets 4-7 (a 32-bit write of a physical address);
 * - `irqPorts` (24 ports at 0x2000): writing port n sets IRQ line n to (value != 0);
 * - `memory` (64 KiB MMIO at 0xFF000000): scratch memory.
 */
export class PcTestDev implements Persistent<PcTestDevState> {
  readonly stateVersion = 1;
  readonly ports: PortDevice;
  readonly irqPorts: PortDevice;
  readonly memory: MmioDevice;
  private data = 0;
  private readonly bytes = new Uint8Array(PC_TESTDEV_MEMORY_SIZE);
  private irqLevels = 0;
  private readonly irqs: readonly (IrqLine | undefined)[];
  private readonly onFlushPage: (physicalAddress: number) => void;

  /** `irqs[n]` is the line port 0x2000 + n drives; `onFlushPage` gets the page's base address. */
  constructor(
    irqs: readonly (IrqLine | undefined)[],
    onFlushPage: (physicalAddress: number) => void = () => {},
  ) {
    this.irqs = irqs;
    this.onFlushPage = onFlushPage;
    this.ports = {
      ioRead: (offset, width) => (offset >= 4 && offset < 8 ? 0 : this.readData(offset & 3, width)),
      ioWrite: (offset, width, value) => {
        if (offset >= 4 && offset < 8) {
          if (offset === 4 && width === 4) this.onFlushPage((value >>> 0) & ~0xfff);
        } else {
          this.writeData(offset & 3, width, value);
        }
      },
    };
    this.irqPorts = {
      ioRead: () => 0,
      ioWrite: (offset, _width, value) => this.setIrq(offset, (value & 0xff) !== 0),
    };
    this.memory = {
      mmioRead: (offset, width) => {
        let v = 0;
        for (let i = width - 1; i >= 0; i--) v = v * 256 + (this.bytes[offset + i] ?? 0);
        return v;
      },
      mmioWrite: (offset, width, value) => {
        for (let i = 0; i < width && offset + i < PC_TESTDEV_MEMORY_SIZE; i++) {
          this.bytes[offset + i] = (value >>> (8 * i)) & 0xff;
        }
      },
    };
  }

  /** The scratch register (for tests and the monitor). */
  get register(): number {
    return this.data >>> 0;
  }

  private readData(byteOffset: number, width: Width): number {
    return ((this.data >>> (8 * byteOffset)) & widthMask(width)) >>> 0;
  }

  private writeData(byteOffset: number, width: Width, value: number): void {
    const shift = 8 * byteOffset;
    const mask = (widthMask(width) << shift) >>> 0;
    this.data = ((this.data & ~mask) | ((value << shift) & mask)) >>> 0;
  }

  private setIrq(n: number, high: boolean): void {
    if (n < 0 || n >= PC_TESTDEV_IRQ_COUNT) return;
    this.irqLevels = high ? this.irqLevels | (1 << n) : this.irqLevels & ~(1 << n);
    this.irqs[n]?.set(high);
  }

  saveState(): PcTestDevState {
    return { data: this.data, memory: this.bytes.slice(), irqLevels: this.irqLevels };
  }

  loadState(state: PcTestDevState, version: number): void {
    if (version !== 1) throw new StateError(`pc-testdev: unknown state version ${version}`);
    if (typeof state !== "object" || state === null)
      throw new StateError("pc-testdev: state is not an object");
    if (!(state.memory instanceof Uint8Array) || state.memory.length !== PC_TESTDEV_MEMORY_SIZE) {
      throw new StateError("pc-testdev: memory should be 64 KiB of bytes");
    }
    if (typeof state.data !== "number" || typeof state.irqLevels !== "number") {
      throw new StateError("pc-testdev: data and irqLevels should be numbers");
    }
    this.data = state.data >>> 0;
    this.bytes.set(state.memory);
    for (let n = 0; n < PC_TESTDEV_IRQ_COUNT; n++) this.setIrq(n, ((state.irqLevels >>> n) & 1) !== 0);
  }
}
