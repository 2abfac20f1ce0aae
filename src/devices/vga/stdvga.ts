// QEMU's "stdvga" as a PCI function (1234:1111, display controller / VGA): the VGA core with
// its VRAM as a prefetchable framebuffer BAR, the register page BAR and the VGA BIOS as the
// expansion ROM.
//
// BAR0: VRAM, declared as directly mapped RAM so the CPU writes pixels at memory speed.
// BAR2: 4 KiB of registers: 0x400-0x41F are the VGA ports 0x3C0-0x3DF, 0x500-0x515 the DISPI
//       registers (16 bits each, by index), 0x600-0x607 the extension block that tells a driver
//       the framebuffer is little-endian.
// The legacy ports (0x3B0-0x3DF, 0x1CE-0x1D0) and the 0xA0000 window are decoded whatever the
// BARs say, as a VGA-class device does: the builder maps `vga.ports`, `vga.monoPorts`,
// `vga.vbePorts` and `vga.legacyWindow` itself.

import type { Width } from "../../core/bus.ts";
import type { MmioDevice } from "../../core/memory.ts";
import { type Persistent, StateError } from "../../core/persist.ts";
import type { Clock } from "../../core/scheduler.ts";
import { PciFunction, type PciFunctionState } from "../pci/function.ts";
import { type Frame, renderFrame, screenshot, textContent } from "./render.ts";
import { DEFAULT_VRAM_SIZE, Vga, type VgaState } from "./vga.ts";

export const STDVGA_VENDOR_ID = 0x1234;
export const STDVGA_DEVICE_ID = 0x1111;
/** Class 03h (display), subclass 00h (VGA compatible), interface 00h. */
export const STDVGA_CLASS = 0x030000;
export const STDVGA_MMIO_SIZE = 0x1000;
/** MMIO offset of the VGA ports block (port 0x3C0 is at this offset). */
export const MMIO_VGA_PORTS = 0x400;
/** MMIO offset of the DISPI registers (register i at 0x500 + 2 * i). */
export const MMIO_VBE = 0x500;
/** MMIO offset of the extension block: its size, then the framebuffer byte order. */
export const MMIO_EXT = 0x600;
const EXT_SIZE = 8;
/** Extension block byte-order value for a little-endian framebuffer. */
const EXT_BYTEORDER_LITTLE = 0x1e1e1e1e;

export interface StdVgaOptions {
  clock: Clock;
  /** VRAM size (a power of two, at least 256 KiB); 16 MiB by default. */
  vramSize?: number;
  /** The VGA BIOS image (e.g. SeaBIOS's vgabios-stdvga.bin) for the expansion ROM. */
  rom?: Uint8Array;
}

export interface StdVgaState {
  pci: PciFunctionState;
  vga: VgaState;
}

export class StdVga implements Persistent<StdVgaState> {
  readonly stateVersion = 1;
  readonly vga: Vga;
  readonly pci: PciFunction;
  /** The BAR2 register page. */
  readonly mmio: MmioDevice;

  constructor(options: StdVgaOptions) {
    const vga = new Vga({ clock: options.clock, vramSize: options.vramSize ?? DEFAULT_VRAM_SIZE });
    this.vga = vga;
    this.mmio = {
      mmioRead: (offset, width) => this.mmioRead(offset, width),
      mmioWrite: (offset, width, value) => this.mmioWrite(offset, width, value),
    };
    this.pci = new PciFunction({
      name: "stdvga",
      vendorId: STDVGA_VENDOR_ID,
      deviceId: STDVGA_DEVICE_ID,
      classCode: STDVGA_CLASS,
      revision: 2,
      bars: [
        { kind: "memory", size: vga.vramSize, prefetchable: true, ram: vga.vram },
        undefined,
        { kind: "memory", size: STDVGA_MMIO_SIZE, device: this.mmio },
      ],
      ...(options.rom ? { rom: options.rom } : {}),
    });
  }

  /** Hard reset: VGA registers, VBE and configuration space (VRAM keeps its contents). */
  reset(): void {
    this.vga.reset();
    this.pci.resetConfig();
  }

  /** Standard 80x25 text mode without a VGA BIOS (see Vga.setTextMode). */
  setTextMode(font?: Uint8Array, fontHeight?: number): void {
    this.vga.setTextMode(font, fontHeight);
  }

  /** What the display shows now. */
  render(): Frame {
    return renderFrame(this.vga);
  }

  /** The display as a PNG image. */
  screenshot(): Uint8Array {
    return screenshot(this.vga);
  }

  /** The text-mode screen as lines ("" in graphics modes). */
  textContent(): string {
    return textContent(this.vga);
  }

  private mmioRead(offset: number, width: Width): number {
    if (offset >= MMIO_VBE && offset < MMIO_VBE + 0x16) {
      const v = this.vga.vbeRead((offset - MMIO_VBE) >> 1);
      return width === 1 ? (offset & 1 ? v >> 8 : v & 0xff) : v;
    }
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + this.mmioReadByte(offset + i);
    return value;
  }

  private mmioReadByte(offset: number): number {
    if (offset >= MMIO_VGA_PORTS && offset < MMIO_VGA_PORTS + 0x20) {
      return this.vga.readPort(0x3c0 + offset - MMIO_VGA_PORTS);
    }
    if (offset >= MMIO_EXT && offset < MMIO_EXT + EXT_SIZE) {
      const word = offset < MMIO_EXT + 4 ? EXT_SIZE : EXT_BYTEORDER_LITTLE;
      return (word >>> (8 * (offset & 3))) & 0xff;
    }
    return 0xff;
  }

  private mmioWrite(offset: number, width: Width, value: number): void {
    if (offset >= MMIO_VBE && offset < MMIO_VBE + 0x16) {
      // The DISPI registers are 16 bits wide; narrower writes are not meaningful.
      if (width >= 2) this.vga.vbeWrite((offset - MMIO_VBE) >> 1, value & 0xffff);
      return;
    }
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      if (at >= MMIO_VGA_PORTS && at < MMIO_VGA_PORTS + 0x20) {
        this.vga.writePort(0x3c0 + at - MMIO_VGA_PORTS, (value >>> (8 * i)) & 0xff);
      }
    }
  }

  saveState(): StdVgaState {
    return { pci: this.pci.saveState(), vga: this.vga.saveState() };
  }

  loadState(state: StdVgaState, version: number): void {
    if (typeof state !== "object" || state === null || typeof state.vga !== "object" || !state.pci) {
      throw new StateError("stdvga state: expected { pci, vga }");
    }
    this.pci.loadState(state.pci, this.pci.stateVersion);
    this.vga.loadState(state.vga, version);
  }
}
