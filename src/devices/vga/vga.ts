// The VGA core: register files, 256 KiB of planar memory inside a larger linear VRAM, the legacy
// 0xA0000-0xBFFFF window, and the Bochs VBE "DISPI" extension that QEMU's stdvga adds.
//
// Memory layout follows the convention QEMU uses: the four planes are interleaved byte by byte,
// so plane p of plane offset o lives at vram[o * 4 + p]. A chain-4 (mode 13h, VBE) access at
// linear address a then lands at vram[a], which makes linear modes and the VBE framebuffer the
// same bytes. The device sees port offsets and window offsets only; the machine builder decides
// where they appear.

import type { PortDevice, Width } from "../../core/bus.ts";
import type { MmioDevice } from "../../core/memory.ts";
import { field, type Persistent, StateError } from "../../core/persist.ts";
import type { Clock } from "../../core/scheduler.ts";

export const VGA_PLANAR_SIZE = 256 * 1024;
export const DEFAULT_VRAM_SIZE = 16 * 1024 * 1024;
/** Size of the legacy memory window (0xA0000-0xBFFFF). */
export const LEGACY_WINDOW_SIZE = 0x20000;
/** Ports 0x3C0-0x3DF, as offsets of `Vga.ports`. */
export const VGA_PORT_COUNT = 0x20;
/** Ports 0x3B0-0x3BF, as offsets of `Vga.monoPorts` (only 0x3B4/0x3B5/0x3BA answer). */
export const VGA_MONO_PORT_COUNT = 0x10;
/** Ports 0x1CE (index) and 0x1CF/0x1D0 (data), as offsets of `Vga.vbePorts`. */
export const VBE_PORT_COUNT = 3;

// ---- register indexes and bits (names after the VGA / Bochs DISPI documentation) -----------

/** Sequencer 01h: 8-dot characters (else 9). */
export const SR01_DOT8 = 0x01;
/** Sequencer 01h: dot clock divided by two (320-pixel modes). */
export const SR01_HALF_CLOCK = 0x08;
/** Sequencer 01h: screen off. */
export const SR01_SCREEN_OFF = 0x20;
/** Sequencer 04h: odd/even addressing disabled (sequential). */
export const SR04_SEQUENTIAL = 0x04;
/** Sequencer 04h: chain-4 addressing. */
export const SR04_CHAIN4 = 0x08;
/** Graphics 05h: host odd/even read addressing. */
export const GR05_ODD_EVEN = 0x10;
/** Graphics 05h: read mode 1 (colour compare). */
export const GR05_READ_MODE1 = 0x08;
/** Graphics 06h: graphics mode (alphanumeric disabled). */
export const GR06_GRAPHICS = 0x01;
/** Attribute address: palette address source (0 blanks the display while the palette is loaded). */
export const AR_PAS = 0x20;
/** Attribute 10h: graphics mode. */
export const AR10_GRAPHICS = 0x01;
/** Attribute 10h: line graphics enable (9th column copies the 8th for C0h-DFh). */
export const AR10_LINE_GRAPHICS = 0x04;
/** Attribute 10h: blink enable (attribute bit 7 blinks instead of giving bright backgrounds). */
export const AR10_BLINK = 0x08;
/** Attribute 10h: palette bits 5-4 come from the colour select register. */
export const AR10_P54_SELECT = 0x80;
/** CRTC 11h: registers 0-7 are write-protected. */
export const CR11_PROTECT = 0x80;
/** Miscellaneous output: colour I/O addresses (0x3Dx) rather than mono (0x3Bx). */
export const MISC_COLOR_IO = 0x01;

export const VBE_INDEX_ID = 0;
export const VBE_INDEX_XRES = 1;
export const VBE_INDEX_YRES = 2;
export const VBE_INDEX_BPP = 3;
export const VBE_INDEX_ENABLE = 4;
export const VBE_INDEX_BANK = 5;
export const VBE_INDEX_VIRT_WIDTH = 6;
export const VBE_INDEX_VIRT_HEIGHT = 7;
export const VBE_INDEX_X_OFFSET = 8;
export const VBE_INDEX_Y_OFFSET = 9;
export const VBE_INDEX_VIDEO_MEMORY_64K = 10;
const VBE_REGISTER_COUNT = 11;
export const VBE_ID0 = 0xb0c0;
export const VBE_ID5 = 0xb0c5;
/** DISPI ENABLE: the VBE mode is on. */
export const VBE_ENABLED = 0x01;
/** DISPI ENABLE: reads of XRES/YRES/BPP return the maxima. */
export const VBE_GETCAPS = 0x02;
/** DISPI ENABLE: the DAC takes 8-bit components. */
export const VBE_8BIT_DAC = 0x20;
/** DISPI ENABLE: the linear framebuffer is in use. */
export const VBE_LFB_ENABLED = 0x40;
/** DISPI ENABLE: keep VRAM contents when enabling. */
export const VBE_NOCLEARMEM = 0x80;
export const VBE_MAX_XRES = 16000;
export const VBE_MAX_YRES = 12000;
export const VBE_MAX_BPP = 32;

// Horizontal and vertical timing of a 640x480@60 Hz-like display, in guest nanoseconds.
const FRAME_NS = 16_683_000;
const LINE_NS = 31_778;
const VISIBLE_LINE_NS = 25_422;
const VERTICAL_RETRACE_NS = 2 * LINE_NS * 8;
/** Input status 1: display disabled (horizontal or vertical blanking). */
const ST1_DISPLAY_DISABLED = 0x01;
/** Input status 1: vertical retrace. */
const ST1_VERTICAL_RETRACE = 0x08;

// Register values of the standard mode 3 (80x25 text, 720x400), from the VGA mode tables.
const MODE3_SEQUENCER = [0x03, 0x00, 0x03, 0x00, 0x02];
const MODE3_GRAPHICS = [0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x00, 0xff];
const MODE3_CRTC = [
  0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e,
  0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3, 0xff,
];
const MODE3_ATTRIBUTE = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x0c, 0x00,
  0x0f, 0x08, 0x00,
];

/** Expands a 4-bit plane mask to one byte per plane (plane 0 in the low byte). */
const PLANE_MASK = new Uint32Array(16);
for (let i = 0; i < 16; i++) {
  PLANE_MASK[i] =
    ((i & 1 ? 0xff : 0) | (i & 2 ? 0xff00 : 0) | (i & 4 ? 0xff0000 : 0) | (i & 8 ? 0xff000000 : 0)) >>> 0;
}

export interface VgaState {
  misc: number;
  featureControl: number;
  seqIndex: number;
  sr: Uint8Array;
  grIndex: number;
  gr: Uint8Array;
  crIndex: number;
  cr: Uint8Array;
  arIndex: number;
  arFlipFlop: boolean;
  ar: Uint8Array;
  dacReadIndex: number;
  dacWriteIndex: number;
  dacSubIndex: number;
  dacReading: boolean;
  dacMask: number;
  dacLatch: Uint8Array;
  palette: Uint8Array;
  latch: number;
  vbeIndex: number;
  vbe: Uint16Array;
  vram: Uint8Array;
}

export interface VgaOptions {
  /** Guest time, for the retrace bits and blinking. */
  clock: Clock;
  /** VRAM bytes (a power of two, at least 256 KiB); defaults to 16 MiB. */
  vramSize?: number;
  /**
   * Storage for VRAM, e.g. the bytes of a RAM region that the machine maps as the framebuffer
   * BAR so that the CPU writes it at memory speed. Allocated when absent.
   */
  vram?: Uint8Array;
}

export class Vga implements Persistent<VgaState> {
  readonly stateVersion = 1;
  readonly clock: Clock;
  readonly vram: Uint8Array;
  private readonly vram32: Uint32Array;

  misc = 0;
  featureControl = 0;
  seqIndex = 0;
  readonly sr = new Uint8Array(8);
  grIndex = 0;
  readonly gr = new Uint8Array(16);
  crIndex = 0;
  readonly cr = new Uint8Array(256);
  /** Attribute address register: index in bits 0-4, PAS in bit 5. */
  arIndex = 0;
  /** False: the next write to 0x3C0 is an index; true: it is data. */
  arFlipFlop = false;
  readonly ar = new Uint8Array(0x15);
  dacReadIndex = 0;
  dacWriteIndex = 0;
  dacSubIndex = 0;
  /** Which DAC index was written last (reported by reads of 0x3C7). */
  dacReading = false;
  dacMask = 0xff;
  private readonly dacLatch = new Uint8Array(3);
  /** 256 entries of R, G, B as written (6 significant bits unless the VBE 8-bit DAC is on). */
  readonly palette = new Uint8Array(768);
  /** The four plane bytes last read (the latches), plane 0 in the low byte. */
  latch = 0;
  vbeIndex = 0;
  readonly vbe = new Uint16Array(VBE_REGISTER_COUNT);

  /** 0x3C0-0x3DF. */
  readonly ports: PortDevice;
  /** 0x3B0-0x3BF: the mono CRTC and status ports, answering only in mono addressing. */
  readonly monoPorts: PortDevice;
  /** 0x1CE-0x1D0: Bochs VBE DISPI index and data. */
  readonly vbePorts: PortDevice;
  /** The 128 KiB legacy window at 0xA0000. */
  readonly legacyWindow: MmioDevice;

  constructor(options: VgaOptions) {
    this.clock = options.clock;
    const size = options.vram?.length ?? options.vramSize ?? DEFAULT_VRAM_SIZE;
    if (size < VGA_PLANAR_SIZE || (size & (size - 1)) !== 0) {
      throw new RangeError(`VGA memory must be a power of two of at least 256 KiB, not ${size}`);
    }
    // Shared memory so that a display thread can read frames while the guest runs.
    this.vram = options.vram ?? new Uint8Array(new SharedArrayBuffer(size));
    if (this.vram.byteOffset % 4 !== 0) throw new RangeError("VGA memory must be 4-byte aligned");
    this.vram32 = new Uint32Array(this.vram.buffer, this.vram.byteOffset, VGA_PLANAR_SIZE / 4);
    this.ports = {
      ioRead: (offset, width) => this.readWide(0x3c0 + offset, width),
      ioWrite: (offset, width, value) => this.writeWide(0x3c0 + offset, width, value),
    };
    this.monoPorts = {
      ioRead: (offset, width) => this.readWide(0x3b0 + offset, width),
      ioWrite: (offset, width, value) => this.writeWide(0x3b0 + offset, width, value),
    };
    this.vbePorts = {
      ioRead: (offset) => (offset === 0 ? this.vbeIndex : this.vbeRead(this.vbeIndex)),
      ioWrite: (offset, _width, value) => {
        if (offset === 0) this.vbeIndex = value & 0xffff;
        else this.vbeWrite(this.vbeIndex, value & 0xffff);
      },
    };
    this.legacyWindow = {
      mmioRead: (offset, width) => {
        let v = 0;
        for (let i = width - 1; i >= 0; i--) v = v * 256 + this.memRead(offset + i);
        return v;
      },
      mmioWrite: (offset, width, value) => {
        for (let i = 0; i < width; i++) this.memWrite(offset + i, (value >>> (8 * i)) & 0xff);
      },
    };
    this.reset();
  }

  /** Power-on state: everything zero, the VBE off, colour addressing. */
  reset(): void {
    this.misc = 0;
    this.featureControl = 0;
    this.seqIndex = this.grIndex = this.crIndex = this.arIndex = 0;
    this.sr.fill(0);
    this.gr.fill(0);
    this.cr.fill(0);
    this.ar.fill(0);
    this.arFlipFlop = false;
    this.dacReadIndex = this.dacWriteIndex = this.dacSubIndex = 0;
    this.dacReading = false;
    this.dacMask = 0xff;
    this.palette.fill(0);
    this.latch = 0;
    this.vbeIndex = 0;
    this.vbe.fill(0);
    this.vbe[VBE_INDEX_ID] = VBE_ID5;
    this.vbe[VBE_INDEX_BPP] = 8;
    this.vbe[VBE_INDEX_VIDEO_MEMORY_64K] = this.vram.length >>> 16;
  }

  /**
   * Programs the standard 80x25 colour text mode (mode 3: 9x16 cells, the EGA palette) and
   * clears the screen, as a VGA BIOS would. For machines that start a guest without running
   * the VGA BIOS. `font` (256 glyphs of `fontHeight` bytes, one bit per pixel) is loaded into
   * plane 2; without one, characters render blank but `textContent` still reads them.
   */
  setTextMode(font?: Uint8Array, fontHeight = 16): void {
    this.reset();
    this.misc = 0x67;
    this.sr.set(MODE3_SEQUENCER);
    this.gr.set(MODE3_GRAPHICS);
    this.cr.set(MODE3_CRTC);
    this.ar.set(MODE3_ATTRIBUTE);
    this.arIndex = AR_PAS;
    for (let i = 0; i < 64; i++) {
      // EGA colour i is rgbRGB: the upper-case bits give 2/3 intensity, the lower-case 1/3.
      this.palette[i * 3] = ((i >> 2) & 1) * 0x2a + ((i >> 5) & 1) * 0x15;
      this.palette[i * 3 + 1] = ((i >> 1) & 1) * 0x2a + ((i >> 4) & 1) * 0x15;
      this.palette[i * 3 + 2] = (i & 1) * 0x2a + ((i >> 3) & 1) * 0x15;
    }
    for (let cell = 0; cell < 80 * 25; cell++) {
      this.vram[cell * 4] = 0x20;
      this.vram[cell * 4 + 1] = 0x07;
    }
    if (font) {
      const height = Math.max(1, Math.min(32, fontHeight));
      for (let ch = 0; ch < 256; ch++) {
        for (let line = 0; line < 32; line++) {
          const bits = line < height ? (font[ch * height + line] ?? 0) : 0;
          this.vram[(ch * 32 + line) * 4 + 2] = bits;
        }
      }
    }
  }

  get vramSize(): number {
    return this.vram.length;
  }

  // ---- VBE ----------------------------------------------------------------------------------

  get vbeEnabled(): boolean {
    return (this.vbe[VBE_INDEX_ENABLE]! & VBE_ENABLED) !== 0;
  }

  /** Bytes per scan line of the VBE virtual screen. */
  get vbeLineOffset(): number {
    const bpp = this.vbe[VBE_INDEX_BPP]!;
    const width = this.vbe[VBE_INDEX_VIRT_WIDTH]!;
    return bpp === 4 ? width >>> 1 : width * ((bpp + 7) >>> 3);
  }

  /** VRAM byte where the VBE display starts (the panning offsets). */
  get vbeStartAddress(): number {
    const bpp = this.vbe[VBE_INDEX_BPP]!;
    const x = this.vbe[VBE_INDEX_X_OFFSET]!;
    const start = this.vbe[VBE_INDEX_Y_OFFSET]! * this.vbeLineOffset;
    return bpp === 4 ? start + ((x >>> 3) << 2) : start + x * ((bpp + 7) >>> 3);
  }

  /** Reads DISPI register `index` (also reached through the stdvga MMIO page). */
  vbeRead(index: number): number {
    if (index >= VBE_REGISTER_COUNT) return 0;
    if (this.vbe[VBE_INDEX_ENABLE]! & VBE_GETCAPS) {
      if (index === VBE_INDEX_XRES) return VBE_MAX_XRES;
      if (index === VBE_INDEX_YRES) return VBE_MAX_YRES;
      if (index === VBE_INDEX_BPP) return VBE_MAX_BPP;
    }
    return this.vbe[index]!;
  }

  /** Writes DISPI register `index`. */
  vbeWrite(index: number, value: number): void {
    const regs = this.vbe;
    switch (index) {
      case VBE_INDEX_ID:
        if (value >= VBE_ID0 && value <= VBE_ID5) regs[index] = value;
        return;
      case VBE_INDEX_XRES:
        if (value <= VBE_MAX_XRES && (value & 7) === 0) regs[index] = value;
        break;
      case VBE_INDEX_YRES:
        if (value <= VBE_MAX_YRES) regs[index] = value;
        break;
      case VBE_INDEX_BPP:
        if (value === 0) value = 8;
        if ([4, 8, 15, 16, 24, 32].includes(value)) regs[index] = value;
        break;
      case VBE_INDEX_BANK: {
        const banks = Math.max(1, this.vram.length >>> 16);
        regs[index] = value & (banks - 1);
        return;
      }
      case VBE_INDEX_ENABLE:
        this.vbeSetEnable(value);
        return;
      case VBE_INDEX_VIRT_WIDTH:
      case VBE_INDEX_X_OFFSET:
      case VBE_INDEX_Y_OFFSET:
        regs[index] = value;
        break;
      default:
        // VIRT_HEIGHT is derived from the memory; VIDEO_MEMORY_64K is read-only.
        return;
    }
    if (this.vbeEnabled) this.vbeFixup();
  }

  private vbeSetEnable(value: number): void {
    const regs = this.vbe;
    const wasEnabled = this.vbeEnabled;
    regs[VBE_INDEX_ENABLE] =
      value & (VBE_ENABLED | VBE_GETCAPS | VBE_8BIT_DAC | VBE_LFB_ENABLED | VBE_NOCLEARMEM);
    if (!(value & VBE_ENABLED)) {
      regs[VBE_INDEX_BANK] = 0;
      return;
    }
    if (wasEnabled) return;
    regs[VBE_INDEX_VIRT_WIDTH] = regs[VBE_INDEX_XRES]!;
    regs[VBE_INDEX_X_OFFSET] = 0;
    regs[VBE_INDEX_Y_OFFSET] = 0;
    this.vbeFixup();
    if (!(value & VBE_NOCLEARMEM)) {
      this.vram.fill(0, 0, Math.min(this.vram.length, regs[VBE_INDEX_YRES]! * this.vbeLineOffset));
    }
    // Put the VGA side into a state that passes CPU accesses through linearly: graphics mode,
    // the 64 KiB window at 0xA0000, chain-4 on all planes for packed-pixel modes.
    this.gr[6] = (this.gr[6]! & ~0x0c) | 0x04 | GR06_GRAPHICS;
    const bpp = regs[VBE_INDEX_BPP]!;
    if (bpp === 4) {
      this.gr[5] = this.gr[5]! & ~0x60;
      this.sr[4] = this.sr[4]! & ~SR04_CHAIN4;
    } else {
      this.gr[5] = (this.gr[5]! & ~0x60) | 0x40;
      this.sr[4] = this.sr[4]! | SR04_CHAIN4 | SR04_SEQUENTIAL;
      this.sr[2] = this.sr[2]! | 0x0f;
    }
  }

  /** Keeps the virtual screen and the panning offsets inside VRAM. */
  private vbeFixup(): void {
    const regs = this.vbe;
    const xres = regs[VBE_INDEX_XRES]!;
    if (regs[VBE_INDEX_VIRT_WIDTH]! < xres) regs[VBE_INDEX_VIRT_WIDTH] = xres;
    const lineOffset = this.vbeLineOffset;
    const virtHeight = lineOffset > 0 ? Math.min(0xffff, Math.floor(this.vram.length / lineOffset)) : 0;
    regs[VBE_INDEX_VIRT_HEIGHT] = virtHeight;
    if (regs[VBE_INDEX_YRES]! > virtHeight) regs[VBE_INDEX_YRES] = virtHeight;
    const maxX = regs[VBE_INDEX_VIRT_WIDTH]! - xres;
    if (regs[VBE_INDEX_X_OFFSET]! > maxX) regs[VBE_INDEX_X_OFFSET] = maxX;
    const maxY = virtHeight - regs[VBE_INDEX_YRES]!;
    if (regs[VBE_INDEX_Y_OFFSET]! > maxY) regs[VBE_INDEX_Y_OFFSET] = maxY;
  }

  // ---- port registers -----------------------------------------------------------------------

  private readWide(port: number, width: Width): number {
    let v = 0;
    for (let i = width - 1; i >= 0; i--) v = v * 256 + this.readPort(port + i);
    return v;
  }

  private writeWide(port: number, width: Width, value: number): void {
    for (let i = 0; i < width; i++) this.writePort(port + i, (value >>> (8 * i)) & 0xff);
  }

  /** True if `port` (0x3Bx or 0x3Dx) is not the CRTC/status block selected by misc bit 0. */
  private wrongIoBlock(port: number): boolean {
    const hi = port & 0xfff0;
    if (hi === 0x3b0) return (this.misc & MISC_COLOR_IO) !== 0;
    if (hi === 0x3d0) return (this.misc & MISC_COLOR_IO) === 0;
    return false;
  }

  /** Reads a VGA register by its legacy port number (0x3B0-0x3DF). */
  readPort(port: number): number {
    if (this.wrongIoBlock(port)) return 0xff;
    switch (port) {
      case 0x3c0:
        return this.arFlipFlop ? 0 : this.arIndex;
      case 0x3c1: {
        const index = this.arIndex & 0x1f;
        return index < this.ar.length ? this.ar[index]! : 0;
      }
      case 0x3c2:
        // Input status 0: the switch sense bit reads 1 (a colour monitor is attached).
        return 0x10;
      case 0x3c4:
        return this.seqIndex;
      case 0x3c5:
        return this.sr[this.seqIndex & 7]!;
      case 0x3c6:
        return this.dacMask;
      case 0x3c7:
        return this.dacReading ? 3 : 0;
      case 0x3c8:
        return this.dacWriteIndex;
      case 0x3c9: {
        const value = this.palette[this.dacReadIndex * 3 + this.dacSubIndex]!;
        if (++this.dacSubIndex === 3) {
          this.dacSubIndex = 0;
          this.dacReadIndex = (this.dacReadIndex + 1) & 0xff;
        }
        return this.eightBitDac ? value : value & 0x3f;
      }
      case 0x3ca:
        return this.featureControl;
      case 0x3cc:
        return this.misc;
      case 0x3ce:
        return this.grIndex;
      case 0x3cf:
        return this.gr[this.grIndex & 0x0f]!;
      case 0x3b4:
      case 0x3d4:
        return this.crIndex;
      case 0x3b5:
      case 0x3d5:
        return this.cr[this.crIndex]!;
      case 0x3ba:
      case 0x3da:
        this.arFlipFlop = false;
        return this.inputStatus1();
      default:
        return 0xff;
    }
  }

  /** Writes a VGA register by its legacy port number (0x3B0-0x3DF). */
  writePort(port: number, value: number): void {
    if (this.wrongIoBlock(port)) return;
    value &= 0xff;
    switch (port) {
      case 0x3c0:
        if (!this.arFlipFlop) {
          this.arIndex = value & 0x3f;
        } else {
          const index = this.arIndex & 0x1f;
          if (index < 0x10) this.ar[index] = value & 0x3f;
          else if (index === 0x12) this.ar[index] = value & 0x3f;
          else if (index === 0x13 || index === 0x14) this.ar[index] = value & 0x0f;
          else if (index < this.ar.length) this.ar[index] = value;
        }
        this.arFlipFlop = !this.arFlipFlop;
        return;
      case 0x3c2:
        this.misc = value & ~0x10;
        return;
      case 0x3c4:
        this.seqIndex = value & 7;
        return;
      case 0x3c5:
        this.sr[this.seqIndex] = value;
        return;
      case 0x3c6:
        this.dacMask = value;
        return;
      case 0x3c7:
        this.dacReadIndex = value;
        this.dacSubIndex = 0;
        this.dacReading = true;
        return;
      case 0x3c8:
        this.dacWriteIndex = value;
        this.dacSubIndex = 0;
        this.dacReading = false;
        return;
      case 0x3c9:
        this.dacLatch[this.dacSubIndex] = value;
        if (++this.dacSubIndex === 3) {
          this.palette.set(this.dacLatch, this.dacWriteIndex * 3);
          this.dacSubIndex = 0;
          this.dacWriteIndex = (this.dacWriteIndex + 1) & 0xff;
        }
        return;
      case 0x3ce:
        this.grIndex = value & 0x0f;
        return;
      case 0x3cf:
        this.gr[this.grIndex] = value;
        return;
      case 0x3b4:
      case 0x3d4:
        this.crIndex = value;
        return;
      case 0x3b5:
      case 0x3d5: {
        const index = this.crIndex;
        if (this.cr[0x11]! & CR11_PROTECT && index <= 7) {
          // Only the line compare bit 8 of the overflow register stays writable.
          if (index === 7) this.cr[7] = (this.cr[7]! & ~0x10) | (value & 0x10);
          return;
        }
        this.cr[index] = value;
        return;
      }
      case 0x3ba:
      case 0x3da:
        this.featureControl = value & 0x10;
        return;
      default:
        return;
    }
  }

  get eightBitDac(): boolean {
    return (this.vbe[VBE_INDEX_ENABLE]! & VBE_8BIT_DAC) !== 0;
  }

  /** Input status 1 from guest time: blanking on every line, vertical retrace once per frame. */
  private inputStatus1(): number {
    const now = this.clock.now();
    const inFrame = now % FRAME_NS;
    let status = 0;
    if (inFrame >= FRAME_NS - VERTICAL_RETRACE_NS) status |= ST1_VERTICAL_RETRACE | ST1_DISPLAY_DISABLED;
    else if (inFrame % LINE_NS >= VISIBLE_LINE_NS) status |= ST1_DISPLAY_DISABLED;
    return status;
  }

  // ---- the legacy memory window -------------------------------------------------------------

  /** Maps a window offset to a VGA address per the memory map select, or -1 if not decoded. */
  private windowAddress(offset: number): number {
    switch ((this.gr[6]! >> 2) & 3) {
      case 0:
        return offset;
      case 1:
        if (offset >= 0x10000) return -1;
        return this.vbeEnabled ? offset + (this.vbe[VBE_INDEX_BANK]! << 16) : offset;
      case 2:
        return offset >= 0x10000 && offset < 0x18000 ? offset - 0x10000 : -1;
      default:
        return offset >= 0x18000 ? offset - 0x18000 : -1;
    }
  }

  /** A CPU read of the legacy window. */
  memRead(offset: number): number {
    const address = this.windowAddress(offset);
    if (address < 0) return 0xff;
    if (this.sr[4]! & SR04_CHAIN4) {
      return address < this.vram.length ? this.vram[address]! : 0xff;
    }
    if (this.gr[5]! & GR05_ODD_EVEN) {
      const plane = (this.gr[4]! & 2) | (address & 1);
      const planeOffset = (address >>> 1) & 0xffff;
      // Reading in odd/even mode still loads the latches with that offset's four planes.
      this.latch = this.vram32[planeOffset]!;
      return this.vram[planeOffset * 4 + plane]!;
    }
    const planeOffset = address & 0xffff;
    const latch = this.vram32[planeOffset]!;
    this.latch = latch;
    if (!(this.gr[5]! & GR05_READ_MODE1)) return (latch >>> ((this.gr[4]! & 3) * 8)) & 0xff;
    // Read mode 1: a bit is 1 where every plane not marked "don't care" matches the compare colour.
    let differ = (latch ^ PLANE_MASK[this.gr[2]! & 0x0f]!) & PLANE_MASK[this.gr[7]! & 0x0f]!;
    differ |= differ >>> 16;
    differ |= differ >>> 8;
    return ~differ & 0xff;
  }

  /** A CPU write to the legacy window. */
  memWrite(offset: number, value: number): void {
    const address = this.windowAddress(offset);
    if (address < 0) return;
    const mapMask = this.sr[2]! & 0x0f;
    if (this.sr[4]! & SR04_CHAIN4) {
      if (address < this.vram.length && mapMask & (1 << (address & 3))) this.vram[address] = value;
      return;
    }
    if (!(this.sr[4]! & SR04_SEQUENTIAL)) {
      // Odd/even: even addresses go to planes 0/2, odd to 1/3, at half the address.
      const plane = (this.gr[4]! & 2) | (address & 1);
      if (mapMask & (1 << plane)) this.vram[((address >>> 1) & 0xffff) * 4 + plane] = value;
      return;
    }
    const planeOffset = address & 0xffff;
    const latch = this.latch;
    const gr = this.gr;
    let data: number;
    let bitMask = gr[8]!;
    switch (gr[5]! & 3) {
      case 0: {
        data = rotateRight(value, gr[3]! & 7) * 0x01010101;
        const enable = PLANE_MASK[gr[1]! & 0x0f]!;
        data = ((data & ~enable) | (PLANE_MASK[gr[0]! & 0x0f]! & enable)) >>> 0;
        break;
      }
      case 1:
        this.storePlanes(planeOffset, latch, mapMask);
        return;
      case 2:
        data = PLANE_MASK[value & 0x0f]!;
        break;
      default: {
        const rotated = rotateRight(value, gr[3]! & 7);
        bitMask &= rotated;
        data = PLANE_MASK[gr[0]! & 0x0f]!;
        break;
      }
    }
    switch ((gr[3]! >> 3) & 3) {
      case 1:
        data &= latch;
        break;
      case 2:
        data |= latch;
        break;
      case 3:
        data ^= latch;
        break;
    }
    const bits = bitMask * 0x01010101;
    data = ((data & bits) | (latch & ~bits)) >>> 0;
    this.storePlanes(planeOffset, data, mapMask);
  }

  private storePlanes(planeOffset: number, data: number, mapMask: number): void {
    const enable = PLANE_MASK[mapMask]!;
    this.vram32[planeOffset] = ((this.vram32[planeOffset]! & ~enable) | (data & enable)) >>> 0;
  }

  // ---- persistence --------------------------------------------------------------------------

  saveState(): VgaState {
    return {
      misc: this.misc,
      featureControl: this.featureControl,
      seqIndex: this.seqIndex,
      sr: this.sr.slice(),
      grIndex: this.grIndex,
      gr: this.gr.slice(),
      crIndex: this.crIndex,
      cr: this.cr.slice(),
      arIndex: this.arIndex,
      arFlipFlop: this.arFlipFlop,
      ar: this.ar.slice(),
      dacReadIndex: this.dacReadIndex,
      dacWriteIndex: this.dacWriteIndex,
      dacSubIndex: this.dacSubIndex,
      dacReading: this.dacReading,
      dacMask: this.dacMask,
      dacLatch: this.dacLatch.slice(),
      palette: this.palette.slice(),
      latch: this.latch,
      vbeIndex: this.vbeIndex,
      vbe: this.vbe.slice(),
      vram: this.vram.slice(),
    };
  }

  loadState(state: VgaState, _version: number): void {
    const s = state as unknown as Record<string, unknown>;
    const bytes = (name: string, length: number): Uint8Array => {
      const v = s[name];
      if (!(v instanceof Uint8Array) || v.length !== length) {
        throw new StateError(`VGA state: '${name}' should be ${length} bytes`);
      }
      return v;
    };
    if (!(state.vbe instanceof Uint16Array) || state.vbe.length !== VBE_REGISTER_COUNT) {
      throw new StateError("VGA state: 'vbe' should be 11 16-bit registers");
    }
    this.vram.set(bytes("vram", this.vram.length));
    this.sr.set(bytes("sr", this.sr.length));
    this.gr.set(bytes("gr", this.gr.length));
    this.cr.set(bytes("cr", this.cr.length));
    this.ar.set(bytes("ar", this.ar.length));
    this.dacLatch.set(bytes("dacLatch", 3));
    this.palette.set(bytes("palette", this.palette.length));
    this.vbe.set(state.vbe);
    this.misc = field(s, "misc", "number") & 0xff;
    this.featureControl = field(s, "featureControl", "number") & 0xff;
    this.seqIndex = field(s, "seqIndex", "number") & 7;
    this.grIndex = field(s, "grIndex", "number") & 0x0f;
    this.crIndex = field(s, "crIndex", "number") & 0xff;
    this.arIndex = field(s, "arIndex", "number") & 0x3f;
    this.arFlipFlop = field(s, "arFlipFlop", "boolean");
    this.dacReadIndex = field(s, "dacReadIndex", "number") & 0xff;
    this.dacWriteIndex = field(s, "dacWriteIndex", "number") & 0xff;
    this.dacSubIndex = field(s, "dacSubIndex", "number") % 3;
    this.dacReading = field(s, "dacReading", "boolean");
    this.dacMask = field(s, "dacMask", "number") & 0xff;
    this.latch = field(s, "latch", "number") >>> 0;
    this.vbeIndex = field(s, "vbeIndex", "number") & 0xffff;
  }
}

function rotateRight(value: number, count: number): number {
  return ((value >>> count) | (value << (8 - count))) & 0xff;
}
