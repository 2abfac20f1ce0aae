// Turns the VGA's current state into pixels: text modes (from the font the guest loaded into
// plane 2), 16-colour planar graphics, 256-colour chain-4 graphics and the VBE packed-pixel
// modes. Output is a plain RGBA frame at the mode's logical resolution (mode 13h is 320x200,
// not the doubled 640x400 the monitor would scan), which screenshots encode as PNG.

import { encodePng } from "./png.ts";
import {
  AR_PAS,
  AR10_BLINK,
  AR10_LINE_GRAPHICS,
  AR10_P54_SELECT,
  GR06_GRAPHICS,
  SR01_DOT8,
  SR01_SCREEN_OFF,
  VBE_INDEX_BPP,
  VBE_INDEX_XRES,
  VBE_INDEX_YRES,
  type Vga,
} from "./vga.ts";

export interface Frame {
  readonly width: number;
  readonly height: number;
  /** width * height * 4 bytes: R, G, B, A (always 255). */
  readonly rgba: Uint8Array;
}

/** Guest time of one displayed frame at 60 Hz; blinking counts in frames. */
const FRAME_NS = 16_683_000;
/** The cursor toggles every 8 frames, blinking characters every 16. */
const CURSOR_BLINK_FRAMES = 8;
const CHAR_BLINK_FRAMES = 16;
/** Plane-2 offsets of the eight character maps selectable through sequencer register 03h. */
const FONT_OFFSETS = [0x0000, 0x4000, 0x8000, 0xc000, 0x2000, 0x6000, 0xa000, 0xe000];
/** Largest frame dimension we produce (larger VBE modes are cropped); bounds host memory. */
const MAX_DIMENSION = 4096;

/** Text mode geometry as the CRTC and sequencer describe it. */
export interface TextGeometry {
  columns: number;
  rows: number;
  charWidth: number;
  charHeight: number;
  /** Plane offset of the first character cell. */
  start: number;
  /** Character cells from one row to the next. */
  stride: number;
}

export function isTextMode(vga: Vga): boolean {
  return !vga.vbeEnabled && (vga.gr[6]! & GR06_GRAPHICS) === 0;
}

/** Displayed scan lines (vertical display end + 1). */
function displayedLines(vga: Vga): number {
  const cr = vga.cr;
  return (cr[0x12]! | ((cr[7]! & 0x02) << 7) | ((cr[7]! & 0x40) << 3)) + 1;
}

export function textGeometry(vga: Vga): TextGeometry {
  const cr = vga.cr;
  const columns = cr[1]! + 1;
  const charWidth = vga.sr[1]! & SR01_DOT8 ? 8 : 9;
  const charHeight = (cr[9]! & 0x1f) + 1;
  const rows = Math.max(1, Math.floor(displayedLines(vga) / charHeight));
  return {
    columns,
    rows,
    charWidth,
    charHeight,
    start: (cr[0x0c]! << 8) | cr[0x0d]!,
    stride: cr[0x13]! * 2,
  };
}

/** 256 DAC entries as 0xAABBGGRR (little-endian RGBA when stored in a Uint32Array). */
function dacColours(vga: Vga): Uint32Array {
  const out = new Uint32Array(256);
  const p = vga.palette;
  const eight = vga.eightBitDac;
  for (let i = 0; i < 256; i++) {
    let r = p[i * 3]!;
    let g = p[i * 3 + 1]!;
    let b = p[i * 3 + 2]!;
    if (!eight) {
      r = expand6(r);
      g = expand6(g);
      b = expand6(b);
    }
    out[i] = (0xff000000 | (b << 16) | (g << 8) | r) >>> 0;
  }
  return out;
}

function expand6(v: number): number {
  v &= 0x3f;
  return (v << 2) | (v >> 4);
}

/** The 16 attribute-controller colours, resolved through the DAC. */
function attributeColours(vga: Vga, dac: Uint32Array): Uint32Array {
  const out = new Uint32Array(16);
  const ar = vga.ar;
  const select = ar[0x14]!;
  for (let i = 0; i < 16; i++) {
    let index = ar[i]! & 0x3f;
    if (ar[0x10]! & AR10_P54_SELECT) index = (index & 0x0f) | ((select & 3) << 4);
    index |= (select & 0x0c) << 4;
    out[i] = dac[index & vga.dacMask]!;
  }
  return out;
}

function newFrame(width: number, height: number): { frame: Frame; pixels: Uint32Array } {
  width = Math.min(MAX_DIMENSION, Math.max(1, width));
  height = Math.min(MAX_DIMENSION, Math.max(1, height));
  const rgba = new Uint8Array(width * height * 4);
  const pixels = new Uint32Array(rgba.buffer);
  pixels.fill(0xff000000);
  return { frame: { width, height, rgba }, pixels };
}

/** Renders what the monitor would show now (`now` is guest time, for blinking). */
export function renderFrame(vga: Vga, now: number = vga.clock.now()): Frame {
  if (vga.vbeEnabled) {
    const bpp = vga.vbe[VBE_INDEX_BPP]!;
    const width = vga.vbe[VBE_INDEX_XRES]!;
    const height = vga.vbe[VBE_INDEX_YRES]!;
    if (bpp === 4) {
      const start = vga.vbeStartAddress;
      const lineOffset = vga.vbeLineOffset;
      return renderPlanar(vga, width, height, (y) => (start + y * lineOffset) >>> 2);
    }
    return renderPacked(vga, width, height, bpp);
  }
  if (vga.sr[1]! & SR01_SCREEN_OFF || !(vga.arIndex & AR_PAS)) return blankFrame(vga);
  if (isTextMode(vga)) return renderText(vga, now);
  return renderGraphics(vga);
}

/**
 * VGA graphics modes. The CRTC fetches one row of memory per character row (maximum scan line
 * + 1 scan lines, doubled again by double scanning); rows that repeat are drawn once, so mode
 * 13h comes out as 320x200. With CGA addressing (CRTC mode control bit 0 clear) the scan lines
 * of a row differ: the row scan counter's bit 0 selects the bank 8 KiB higher.
 */
function renderGraphics(vga: Vga): Frame {
  const cr = vga.cr;
  const lines = Math.floor(displayedLines(vga) / (cr[9]! & 0x80 ? 2 : 1));
  const rowLines = (cr[9]! & 0x1f) + 1;
  const cga = (cr[0x17]! & 0x01) === 0;
  const height = cga ? lines : Math.floor(lines / rowLines);
  const row = (y: number) => (cga ? Math.floor(y / rowLines) : y);
  const bank = (y: number) => (cga ? (y % rowLines) & 1 : 0);
  const start = (cr[0x0c]! << 8) | cr[0x0d]!;
  const offset = cr[0x13]!;
  switch ((vga.gr[5]! >> 5) & 3) {
    case 0:
      // Plane offsets: the offset register counts words (two plane bytes).
      return renderPlanar(
        vga,
        (cr[1]! + 1) * 8,
        height,
        (y) => start + row(y) * offset * 2 + bank(y) * 0x2000,
      );
    case 1:
      // CGA 4-colour: CPU byte addresses of the odd/even-interleaved pixels.
      return renderCga4(
        vga,
        (cr[1]! + 1) * 8,
        height,
        (y) => start * 2 + row(y) * offset * 4 + bank(y) * 0x2000,
      );
    default:
      // 256 colours: VRAM bytes (four per CRTC address in the doubleword mode these use).
      return render256(vga, (cr[1]! + 1) * 4, height, (y) => start * 4 + row(y) * offset * 8);
  }
}

/** A black frame the size of the current mode (screen off, palette being loaded). */
function blankFrame(vga: Vga): Frame {
  if (isTextMode(vga)) {
    const g = textGeometry(vga);
    return newFrame(g.columns * g.charWidth, g.rows * g.charHeight).frame;
  }
  return newFrame((vga.cr[1]! + 1) * 8, displayedLines(vga)).frame;
}

function renderText(vga: Vga, now: number): Frame {
  const g = textGeometry(vga);
  const { frame, pixels } = newFrame(g.columns * g.charWidth, g.rows * g.charHeight);
  const width = frame.width;
  const columns = Math.min(g.columns, Math.floor(width / g.charWidth));
  const rows = Math.min(g.rows, Math.floor(frame.height / g.charHeight));
  const colours = attributeColours(vga, dacColours(vga));
  const vram = vga.vram;
  const ar10 = vga.ar[0x10]!;
  const sr3 = vga.sr[3]!;
  const fontA = FONT_OFFSETS[((sr3 >> 3) & 4) | ((sr3 >> 2) & 3)]!;
  const fontB = FONT_OFFSETS[((sr3 >> 2) & 4) | (sr3 & 3)]!;
  const frameNumber = Math.floor(now / FRAME_NS);
  const cursorPhase = Math.floor(frameNumber / CURSOR_BLINK_FRAMES) % 2 === 0;
  const blinkPhase = Math.floor(frameNumber / CHAR_BLINK_FRAMES) % 2 === 0;
  const cr = vga.cr;
  const cursorAddress = (cr[0x0e]! << 8) | cr[0x0f]!;
  const cursorStart = cr[0x0a]! & 0x1f;
  const cursorEnd = cr[0x0b]! & 0x1f;
  const cursorOn = cursorPhase && !(cr[0x0a]! & 0x20) && cursorStart <= cursorEnd;

  for (let row = 0; row < rows; row++) {
    for (let col = 0; col < columns; col++) {
      const cell = (g.start + row * g.stride + col) & 0xffff;
      const ch = vram[cell * 4]!;
      const attr = vram[cell * 4 + 1]!;
      let fg = colours[attr & 0x0f]!;
      let bg: number;
      if (ar10 & AR10_BLINK) {
        bg = colours[(attr >> 4) & 7]!;
        if (attr & 0x80 && !blinkPhase) fg = bg;
      } else {
        bg = colours[attr >> 4]!;
      }
      const font = attr & 0x08 ? fontA : fontB;
      const lineGraphics = g.charWidth === 9 && ar10 & AR10_LINE_GRAPHICS && ch >= 0xc0 && ch <= 0xdf;
      const isCursor = cursorOn && cell === (cursorAddress & 0xffff);
      const x0 = col * g.charWidth;
      for (let line = 0; line < g.charHeight; line++) {
        let bits = line < 32 ? vram[((font + ch * 32 + line) & 0xffff) * 4 + 2]! : 0;
        if (isCursor && line >= cursorStart && line <= cursorEnd) bits = 0xff;
        let p = (row * g.charHeight + line) * width + x0;
        for (let bit = 7; bit >= 0; bit--) pixels[p++] = (bits >> bit) & 1 ? fg : bg;
        if (g.charWidth === 9) pixels[p] = lineGraphics && bits & 1 ? fg : bg;
      }
    }
  }
  return frame;
}

/** 16-colour planar graphics: each pixel takes one bit from each of the four planes. */
function renderPlanar(vga: Vga, width: number, height: number, lineStart: (y: number) => number): Frame {
  const { frame, pixels } = newFrame(width, height);
  const colours = attributeColours(vga, dacColours(vga));
  const planeEnable = vga.ar[0x12]! & 0x0f;
  const vram = vga.vram;
  for (let y = 0; y < frame.height; y++) {
    const lineBase = lineStart(y);
    let p = y * frame.width;
    for (let x = 0; x < frame.width; x += 8) {
      const at = ((lineBase + (x >> 3)) & 0xffff) * 4;
      const p0 = vram[at]!;
      const p1 = vram[at + 1]!;
      const p2 = vram[at + 2]!;
      const p3 = vram[at + 3]!;
      for (let bit = 7; bit >= 0 && x + 7 - bit < frame.width; bit--) {
        const index =
          ((p0 >> bit) & 1) | (((p1 >> bit) & 1) << 1) | (((p2 >> bit) & 1) << 2) | (((p3 >> bit) & 1) << 3);
        pixels[p++] = colours[index & planeEnable]!;
      }
    }
  }
  return frame;
}

/**
 * CGA 4-colour graphics (modes 4 and 5): two bits per pixel, most significant pair first, in
 * bytes that odd/even addressing put in planes 0 (even addresses) and 1 (odd addresses).
 */
function renderCga4(vga: Vga, width: number, height: number, lineStart: (y: number) => number): Frame {
  const { frame, pixels } = newFrame(width, height);
  const colours = attributeColours(vga, dacColours(vga));
  const vram = vga.vram;
  for (let y = 0; y < frame.height; y++) {
    const base = lineStart(y);
    let p = y * frame.width;
    for (let x = 0; x < frame.width; x += 4) {
      const address = base + (x >> 2);
      const byte = vram[(((address >>> 1) & 0xffff) << 2) | (address & 1)]!;
      for (let shift = 6; shift >= 0 && x + 3 - shift / 2 < frame.width; shift -= 2) {
        pixels[p++] = colours[(byte >> shift) & 3]!;
      }
    }
  }
  return frame;
}

/** 256-colour chain-4 graphics (mode 13h and its tweaks): one VRAM byte per pixel. */
function render256(vga: Vga, width: number, height: number, lineStart: (y: number) => number): Frame {
  const { frame, pixels } = newFrame(width, height);
  const dac = dacColours(vga);
  const mask = vga.dacMask;
  const vram = vga.vram;
  const limit = vga.vram.length - 1;
  for (let y = 0; y < frame.height; y++) {
    const base = lineStart(y);
    let p = y * frame.width;
    for (let x = 0; x < frame.width; x++) pixels[p++] = dac[vram[(base + x) & limit]! & mask]!;
  }
  return frame;
}

/** VBE packed-pixel modes (8 bpp through the palette, 15/16/24/32 bpp direct colour). */
function renderPacked(vga: Vga, width: number, height: number, bpp: number): Frame {
  const { frame, pixels } = newFrame(width, height);
  const vram = vga.vram;
  const size = vram.length;
  const lineOffset = vga.vbeLineOffset;
  const start = vga.vbeStartAddress;
  const bytesPerPixel = (bpp + 7) >>> 3;
  const dac = bpp === 8 ? dacColours(vga) : undefined;
  for (let y = 0; y < frame.height; y++) {
    let at = start + y * lineOffset;
    let p = y * frame.width;
    for (let x = 0; x < frame.width; x++, at += bytesPerPixel, p++) {
      if (at + bytesPerPixel > size) break;
      let r: number;
      let g: number;
      let b: number;
      switch (bpp) {
        case 8:
          pixels[p] = dac![vram[at]!]!;
          continue;
        case 15: {
          const v = vram[at]! | (vram[at + 1]! << 8);
          r = expand5((v >> 10) & 0x1f);
          g = expand5((v >> 5) & 0x1f);
          b = expand5(v & 0x1f);
          break;
        }
        case 16: {
          const v = vram[at]! | (vram[at + 1]! << 8);
          r = expand5((v >> 11) & 0x1f);
          g = ((v >> 5) & 0x3f) << 2;
          g |= g >> 6;
          b = expand5(v & 0x1f);
          break;
        }
        default:
          b = vram[at]!;
          g = vram[at + 1]!;
          r = vram[at + 2]!;
          break;
      }
      pixels[p] = (0xff000000 | (b << 16) | (g << 8) | r) >>> 0;
    }
  }
  return frame;
}

function expand5(v: number): number {
  return (v << 3) | (v >> 2);
}

/** The current display as a PNG image. */
export function screenshot(vga: Vga, now?: number): Uint8Array {
  const frame = renderFrame(vga, now);
  return encodePng(frame.width, frame.height, frame.rgba);
}

// Code page 437 as Unicode, for turning text-mode screens into strings.
const CP437_LOW = " ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼";
const CP437_HIGH =
  "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■ ";

/** One character code as Unicode (code page 437). */
export function cp437(code: number): string {
  if (code < 0x20) return CP437_LOW[code]!;
  if (code === 0x7f) return "⌂";
  if (code >= 0x80) return CP437_HIGH[code - 0x80]!;
  return String.fromCharCode(code);
}

/**
 * The text-mode screen as lines (trailing blanks removed), or "" when a graphics mode is
 * showing. Characters are mapped from code page 437 to Unicode.
 */
export function textContent(vga: Vga): string {
  if (!isTextMode(vga)) return "";
  const g = textGeometry(vga);
  const lines: string[] = [];
  for (let row = 0; row < g.rows; row++) {
    let line = "";
    for (let col = 0; col < g.columns; col++) {
      line += cp437(vga.vram[((g.start + row * g.stride + col) & 0xffff) * 4]!);
    }
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}
