import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { inflateSync, crc32 as zlibCrc32 } from "node:zlib";
import { InstructionClock } from "../../core/scheduler.ts";
import { crc32, encodePng } from "./png.ts";
import { renderFrame, screenshot, textContent } from "./render.ts";
import {
  VBE_8BIT_DAC,
  VBE_ENABLED,
  VBE_GETCAPS,
  VBE_INDEX_BANK,
  VBE_INDEX_BPP,
  VBE_INDEX_ENABLE,
  VBE_INDEX_ID,
  VBE_INDEX_VIDEO_MEMORY_64K,
  VBE_INDEX_VIRT_HEIGHT,
  VBE_INDEX_VIRT_WIDTH,
  VBE_INDEX_XRES,
  VBE_INDEX_Y_OFFSET,
  VBE_INDEX_YRES,
  VBE_LFB_ENABLED,
  VBE_NOCLEARMEM,
  Vga,
} from "./vga.ts";

function makeVga(vramSize = 1 << 20): { vga: Vga; clock: InstructionClock } {
  const clock = new InstructionClock(1);
  return { vga: new Vga({ clock, vramSize }), clock };
}

function out(vga: Vga, port: number, value: number): void {
  if (port >= 0x3c0 && port < 0x3e0) vga.ports.ioWrite(port - 0x3c0, 1, value);
  else vga.monoPorts.ioWrite(port - 0x3b0, 1, value);
}

function inb(vga: Vga, port: number): number {
  if (port >= 0x3c0 && port < 0x3e0) return vga.ports.ioRead(port - 0x3c0, 1);
  return vga.monoPorts.ioRead(port - 0x3b0, 1);
}

function seq(vga: Vga, index: number, value: number): void {
  out(vga, 0x3c4, index);
  out(vga, 0x3c5, value);
}
function gc(vga: Vga, index: number, value: number): void {
  out(vga, 0x3ce, index);
  out(vga, 0x3cf, value);
}
function crtc(vga: Vga, index: number, value: number): void {
  out(vga, 0x3d4, index);
  out(vga, 0x3d5, value);
}
function attr(vga: Vga, index: number, value: number): void {
  inb(vga, 0x3da);
  out(vga, 0x3c0, index);
  out(vga, 0x3c0, value);
}
function vbe(vga: Vga, index: number, value: number): void {
  vga.vbePorts.ioWrite(0, 2, index);
  vga.vbePorts.ioWrite(1, 2, value);
}
function vbeRead(vga: Vga, index: number): number {
  vga.vbePorts.ioWrite(0, 2, index);
  return vga.vbePorts.ioRead(1, 2);
}
function planes(vga: Vga, planeOffset: number): number[] {
  return [0, 1, 2, 3].map((p) => vga.vram[planeOffset * 4 + p]!);
}

/** Planar 16-colour setup (mode 12h registers that matter here). */
function planarMode(vga: Vga): void {
  out(vga, 0x3c2, 0xe3);
  seq(vga, 2, 0x0f);
  seq(vga, 4, 0x06);
  gc(vga, 5, 0x00);
  gc(vga, 6, 0x05);
  gc(vga, 8, 0xff);
}

/** 80x25 text mode with 9x16 cells, a grey-on-black palette and the text window at 0xB8000. */
function textMode(vga: Vga): void {
  out(vga, 0x3c2, 0x67);
  seq(vga, 1, 0x00);
  seq(vga, 2, 0x03);
  seq(vga, 3, 0x00);
  seq(vga, 4, 0x02);
  gc(vga, 5, 0x10);
  gc(vga, 6, 0x0e);
  gc(vga, 8, 0xff);
  crtc(vga, 0x11, 0x00);
  crtc(vga, 1, 0x4f);
  crtc(vga, 7, 0x1f);
  crtc(vga, 9, 0x0f);
  crtc(vga, 0x0a, 0x20); // cursor off
  crtc(vga, 0x12, 0x8f);
  crtc(vga, 0x13, 0x28);
  for (let i = 0; i < 16; i++) attr(vga, i, i);
  attr(vga, 0x10, 0x0c);
  attr(vga, 0x12, 0x0f);
  out(vga, 0x3c0, 0x20); // palette address source: display on
  out(vga, 0x3c8, 0);
  for (let i = 0; i < 16; i++) {
    const level = i === 7 ? 0x2a : i === 15 ? 0x3f : i === 1 ? 0 : 0;
    out(vga, 0x3c9, level);
    out(vga, 0x3c9, level);
    out(vga, 0x3c9, i === 1 ? 0x2a : level);
  }
}

/** Loads an 8x16 glyph into character map 0 via plane 2, the way a BIOS does, then restores text mode. */
function loadGlyph(vga: Vga, ch: number, rows: number[]): void {
  seq(vga, 2, 0x04);
  seq(vga, 4, 0x06);
  gc(vga, 4, 0x02);
  gc(vga, 5, 0x00);
  gc(vga, 6, 0x04);
  for (const [line, bits] of rows.entries()) vga.legacyWindow.mmioWrite(ch * 32 + line, 1, bits);
  seq(vga, 2, 0x03);
  seq(vga, 4, 0x02);
  gc(vga, 4, 0x00);
  gc(vga, 5, 0x10);
  gc(vga, 6, 0x0e);
}

const TEXT_BASE = 0x18000;

describe("VGA planar memory", () => {
  it("write mode 0 applies set/reset, rotate, logical op and bit mask", () => {
    const { vga } = makeVga();
    planarMode(vga);
    vga.vram.set([0xf0, 0xf0, 0xf0, 0xf0], 4 * 10);
    vga.legacyWindow.mmioRead(10, 1); // load the latches
    gc(vga, 0, 0x05); // set/reset colour: planes 0 and 2
    gc(vga, 1, 0x03); // enabled on planes 0 and 1
    gc(vga, 8, 0x3c); // bit mask
    vga.legacyWindow.mmioWrite(10, 1, 0xaa);
    // Plane 0: set -> 0xff; plane 1: reset -> 0x00; planes 2/3: CPU data 0xaa. Masked into 0xf0.
    assert.deepEqual(planes(vga, 10), [0xfc, 0xc0, 0xe8, 0xe8]);

    gc(vga, 1, 0x00);
    gc(vga, 8, 0xff);
    gc(vga, 3, (1 << 3) | 4); // AND with latch, rotate right by 4
    vga.legacyWindow.mmioRead(11, 1);
    vga.vram.set([0xff, 0x0f, 0x00, 0x3c], 4 * 11);
    vga.legacyWindow.mmioRead(11, 1);
    vga.legacyWindow.mmioWrite(11, 1, 0x1e); // rotated: 0xe1
    assert.deepEqual(planes(vga, 11), [0xe1, 0x01, 0x00, 0x20]);

    gc(vga, 3, (3 << 3) | 0); // XOR
    vga.legacyWindow.mmioRead(11, 1);
    vga.legacyWindow.mmioWrite(11, 1, 0xff);
    assert.deepEqual(planes(vga, 11), [0x1e, 0xfe, 0xff, 0xdf]);
  });

  it("write mode 1 copies the latches, mode 2 expands colour, mode 3 masks with rotated data", () => {
    const { vga } = makeVga();
    planarMode(vga);
    vga.vram.set([1, 2, 3, 4], 4 * 5);
    gc(vga, 5, 0x01);
    vga.legacyWindow.mmioRead(5, 1);
    vga.legacyWindow.mmioWrite(9, 1, 0x77);
    assert.deepEqual(planes(vga, 9), [1, 2, 3, 4]);

    gc(vga, 5, 0x02);
    vga.vram.fill(0, 4 * 20, 4 * 21);
    vga.legacyWindow.mmioRead(20, 1);
    gc(vga, 8, 0x81);
    vga.legacyWindow.mmioWrite(20, 1, 0x09); // colour 9: planes 0 and 3
    assert.deepEqual(planes(vga, 20), [0x81, 0x00, 0x00, 0x81]);

    gc(vga, 5, 0x03);
    gc(vga, 0, 0x06); // colour 6: planes 1 and 2
    gc(vga, 8, 0xf0);
    vga.legacyWindow.mmioRead(21, 1);
    vga.legacyWindow.mmioWrite(21, 1, 0x3c); // mask 0xf0 & 0x3c = 0x30
    assert.deepEqual(planes(vga, 21), [0x00, 0x30, 0x30, 0x00]);
  });

  it("map mask limits which planes are written", () => {
    const { vga } = makeVga();
    planarMode(vga);
    seq(vga, 2, 0x04);
    vga.legacyWindow.mmioWrite(3, 1, 0x5a);
    assert.deepEqual(planes(vga, 3), [0, 0, 0x5a, 0]);
  });

  it("read mode 0 selects a plane; read mode 1 compares colours", () => {
    const { vga } = makeVga();
    planarMode(vga);
    vga.vram.set([0x0f, 0xf0, 0x33, 0x00], 4 * 7);
    gc(vga, 4, 2);
    assert.equal(vga.legacyWindow.mmioRead(7, 1), 0x33);
    gc(vga, 5, 0x08);
    gc(vga, 2, 0x01); // compare against colour 1 (plane 0 set only)
    gc(vga, 7, 0x0f);
    // Colour per bit (msb first): planes give 2,2,6,6,1,1,5,5 -> only colour 1 bits match.
    assert.equal(vga.legacyWindow.mmioRead(7, 1), 0x0c);
    gc(vga, 7, 0x01); // care about plane 0 only
    assert.equal(vga.legacyWindow.mmioRead(7, 1), 0x0f);
  });

  it("chain-4 maps addresses linearly and odd/even splits characters from attributes", () => {
    const { vga } = makeVga();
    seq(vga, 2, 0x0f);
    seq(vga, 4, 0x0e);
    gc(vga, 6, 0x05);
    vga.legacyWindow.mmioWrite(0x1234, 2, 0xbbaa);
    assert.equal(vga.vram[0x1234], 0xaa);
    assert.equal(vga.vram[0x1235], 0xbb);
    assert.equal(vga.legacyWindow.mmioRead(0x1234, 2), 0xbbaa);

    textMode(vga);
    vga.legacyWindow.mmioWrite(TEXT_BASE + 2 * 3, 2, 0x1f41);
    assert.equal(vga.vram[3 * 4], 0x41);
    assert.equal(vga.vram[3 * 4 + 1], 0x1f);
    assert.equal(vga.legacyWindow.mmioRead(TEXT_BASE + 6, 2), 0x1f41);
    // 0xA0000 is not decoded while the memory map selects 0xB8000.
    assert.equal(vga.legacyWindow.mmioRead(0, 1), 0xff);
  });
});

describe("VGA registers", () => {
  it("CRTC protect bit guards registers 0-7 except the line compare bit", () => {
    const { vga } = makeVga();
    out(vga, 0x3c2, 0x01);
    crtc(vga, 1, 0x4f);
    crtc(vga, 0x11, 0x80);
    crtc(vga, 1, 0x27);
    crtc(vga, 7, 0xff);
    crtc(vga, 9, 0x0f);
    assert.equal(vga.cr[1], 0x4f);
    assert.equal(vga.cr[7], 0x10);
    assert.equal(vga.cr[9], 0x0f);
  });

  it("CRTC answers at 0x3Dx or 0x3Bx according to misc bit 0", () => {
    const { vga } = makeVga();
    out(vga, 0x3c2, 0x01);
    crtc(vga, 0x0e, 0x12);
    assert.equal(inb(vga, 0x3d5), 0x12);
    assert.equal(inb(vga, 0x3b5), 0xff);
    out(vga, 0x3c2, 0x00);
    out(vga, 0x3b4, 0x0e);
    assert.equal(inb(vga, 0x3b5), 0x12);
    assert.equal(inb(vga, 0x3d5), 0xff);
    assert.equal(inb(vga, 0x3cc), 0x00);
  });

  it("attribute flip-flop alternates index/data and resets on input status 1 reads", () => {
    const { vga } = makeVga();
    out(vga, 0x3c2, 0x01);
    inb(vga, 0x3da);
    out(vga, 0x3c0, 0x25);
    out(vga, 0x3c0, 0x3a);
    assert.equal(vga.ar[5], 0x3a);
    assert.equal(inb(vga, 0x3c0), 0x25);
    out(vga, 0x3c0, 0x06);
    inb(vga, 0x3da);
    out(vga, 0x3c0, 0x07);
    out(vga, 0x3c0, 0x11);
    assert.equal(vga.ar[7], 0x11);
    assert.equal(vga.ar[6], 0);
    assert.equal(inb(vga, 0x3c1), 0x11);
  });

  it("DAC keeps separate read and write indexes and 6-bit components", () => {
    const { vga } = makeVga();
    out(vga, 0x3c8, 10);
    for (const v of [0x3f, 0x20, 0xff, 1, 2, 3]) out(vga, 0x3c9, v);
    assert.equal(inb(vga, 0x3c8), 12);
    assert.equal(inb(vga, 0x3c7), 0);
    out(vga, 0x3c7, 10);
    assert.equal(inb(vga, 0x3c7), 3);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map(() => inb(vga, 0x3c9)),
      [0x3f, 0x20, 0x3f, 1, 2, 3],
    );
  });

  it("input status 1 shows retrace as guest time passes", () => {
    const { vga, clock } = makeVga();
    out(vga, 0x3c2, 0x01);
    const seen = new Set<number>();
    for (let t = 0; t < 17_000_000; t += 5_000) {
      clock.set(t);
      seen.add(inb(vga, 0x3da) & 0x09);
    }
    assert.deepEqual([...seen].sort(), [0, 1, 9]);
  });
});

describe("VBE DISPI", () => {
  it("reports ID, memory size and capabilities", () => {
    const { vga } = makeVga(16 << 20);
    assert.equal(vbeRead(vga, VBE_INDEX_ID), 0xb0c5);
    vbe(vga, VBE_INDEX_ID, 0xb0c0);
    assert.equal(vbeRead(vga, VBE_INDEX_ID), 0xb0c0);
    vbe(vga, VBE_INDEX_ID, 0x1234);
    assert.equal(vbeRead(vga, VBE_INDEX_ID), 0xb0c0);
    assert.equal(vbeRead(vga, VBE_INDEX_VIDEO_MEMORY_64K), 256);
    vbe(vga, VBE_INDEX_ENABLE, VBE_GETCAPS);
    assert.equal(vbeRead(vga, VBE_INDEX_XRES), 16000);
    assert.equal(vbeRead(vga, VBE_INDEX_BPP), 32);
  });

  it("enabling a mode sets the virtual size, clears memory and banks the legacy window", () => {
    const { vga } = makeVga(4 << 20);
    vga.vram.fill(0x55);
    vbe(vga, VBE_INDEX_XRES, 800);
    vbe(vga, VBE_INDEX_YRES, 600);
    vbe(vga, VBE_INDEX_BPP, 32);
    vbe(vga, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_LFB_ENABLED);
    assert.equal(vga.vram[0], 0);
    assert.equal(vga.vram[800 * 600 * 4 - 1], 0);
    assert.equal(vbeRead(vga, VBE_INDEX_VIRT_WIDTH), 800);
    assert.equal(vbeRead(vga, VBE_INDEX_VIRT_HEIGHT), Math.floor((4 << 20) / 3200));
    vbe(vga, VBE_INDEX_BANK, 3);
    vga.legacyWindow.mmioWrite(0x10, 4, 0x11223344);
    assert.equal(vga.vram[3 * 0x10000 + 0x10], 0x44);
    assert.equal(vga.vram[3 * 0x10000 + 0x13], 0x11);
    vbe(vga, VBE_INDEX_Y_OFFSET, 100000);
    assert.equal(vbeRead(vga, VBE_INDEX_Y_OFFSET), vbeRead(vga, VBE_INDEX_VIRT_HEIGHT) - 600);
  });

  it("NOCLEARMEM keeps VRAM", () => {
    const { vga } = makeVga();
    vga.vram.fill(0x55);
    vbe(vga, VBE_INDEX_XRES, 320);
    vbe(vga, VBE_INDEX_YRES, 200);
    vbe(vga, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_NOCLEARMEM);
    assert.equal(vga.vram[0], 0x55);
  });
});

describe("rendering", () => {
  it("draws a text cell from the font in plane 2 with 9-dot cells and attribute colours", () => {
    const { vga } = makeVga();
    textMode(vga);
    const glyph = new Array(16).fill(0);
    glyph[2] = 0x81;
    glyph[3] = 0xc0;
    loadGlyph(vga, 0xc4, glyph);
    loadGlyph(vga, 0x41, glyph);
    attr(vga, 0x10, 0x0c);
    out(vga, 0x3c0, 0x20);
    vga.legacyWindow.mmioWrite(TEXT_BASE, 2, 0x1741); // 'A' grey on blue, cell 0
    vga.legacyWindow.mmioWrite(TEXT_BASE + 2, 2, 0x07c4); // line-graphics char, cell 1
    const frame = renderFrame(vga, 0);
    assert.equal(frame.width, 720);
    assert.equal(frame.height, 400);
    const px = (x: number, y: number) =>
      Array.from(frame.rgba.subarray((y * frame.width + x) * 4, (y * frame.width + x) * 4 + 4));
    const grey = [0xaa, 0xaa, 0xaa, 255];
    const blue = [0, 0, 0xaa, 255];
    const black = [0, 0, 0, 255];
    assert.deepEqual(px(0, 2), grey);
    assert.deepEqual(px(1, 2), blue);
    assert.deepEqual(px(7, 2), grey);
    assert.deepEqual(px(8, 2), blue); // 9th column of a normal character is background
    assert.deepEqual(px(0, 0), blue);
    assert.deepEqual(px(9 + 8, 2), grey); // 9th column repeats the 8th for C0h-DFh
    assert.deepEqual(px(9 + 8, 3), black);
    assert.deepEqual(px(9 + 1, 3), grey);
  });

  it("blinks attribute bit 7 characters and draws the cursor from CRTC shape", () => {
    const { vga } = makeVga();
    textMode(vga);
    loadGlyph(vga, 0x41, new Array(16).fill(0xff));
    attr(vga, 0x10, 0x08 | 0x04);
    out(vga, 0x3c0, 0x20);
    vga.legacyWindow.mmioWrite(TEXT_BASE, 2, 0x8741);
    const on = renderFrame(vga, 0);
    const off = renderFrame(vga, 16_683_000 * 20);
    assert.equal(on.rgba[0], 0xaa);
    assert.equal(off.rgba[0], 0);

    crtc(vga, 0x0a, 14);
    crtc(vga, 0x0b, 15);
    crtc(vga, 0x0e, 0);
    crtc(vga, 0x0f, 1);
    vga.legacyWindow.mmioWrite(TEXT_BASE + 2, 2, 0x0720);
    const withCursor = renderFrame(vga, 0);
    const at = (x: number, y: number) => withCursor.rgba[(y * withCursor.width + x) * 4]!;
    assert.equal(at(9, 14), 0xaa);
    assert.equal(at(9, 13), 0);
  });

  it("reads the text screen as lines", () => {
    const { vga } = makeVga();
    textMode(vga);
    const message = "SeaBIOS (version 1.16)";
    for (let i = 0; i < message.length; i++) {
      vga.legacyWindow.mmioWrite(TEXT_BASE + 160 + 2 * i, 2, 0x0700 | message.charCodeAt(i));
    }
    vga.legacyWindow.mmioWrite(TEXT_BASE + 320, 2, 0x07c9);
    const lines = textContent(vga).split("\n");
    assert.equal(lines.length, 25);
    assert.equal(lines[1], message);
    assert.equal(lines[2], "╔");
  });

  it("renders mode 13h at 320x200 through the DAC", () => {
    const { vga } = makeVga();
    out(vga, 0x3c2, 0x63);
    seq(vga, 1, 0x01);
    seq(vga, 2, 0x0f);
    seq(vga, 4, 0x0e);
    gc(vga, 5, 0x40);
    gc(vga, 6, 0x05);
    crtc(vga, 1, 0x4f);
    crtc(vga, 7, 0x1f);
    crtc(vga, 9, 0x41);
    crtc(vga, 0x12, 0x8f);
    crtc(vga, 0x13, 0x28);
    crtc(vga, 0x14, 0x40);
    crtc(vga, 0x17, 0xa3);
    attr(vga, 0x10, 0x41);
    out(vga, 0x3c0, 0x20);
    out(vga, 0x3c8, 5);
    out(vga, 0x3c9, 0x3f);
    out(vga, 0x3c9, 0);
    out(vga, 0x3c9, 0x10);
    vga.legacyWindow.mmioWrite(320 * 199 + 319, 1, 5);
    const frame = renderFrame(vga, 0);
    assert.equal(frame.width, 320);
    assert.equal(frame.height, 200);
    const i = (199 * 320 + 319) * 4;
    assert.deepEqual(Array.from(frame.rgba.subarray(i, i + 4)), [0xff, 0, 0x41, 255]);
    assert.equal(frame.rgba[0], 0);
  });

  it("renders 16-colour planar pixels through the attribute palette", () => {
    const { vga } = makeVga();
    planarMode(vga);
    crtc(vga, 1, 0x4f);
    crtc(vga, 7, 0x3e);
    crtc(vga, 9, 0x40);
    crtc(vga, 0x12, 0xdf);
    crtc(vga, 0x13, 0x28);
    crtc(vga, 0x17, 0xe3);
    for (let i = 0; i < 16; i++) attr(vga, i, i);
    attr(vga, 0x10, 0x01);
    attr(vga, 0x12, 0x0f);
    out(vga, 0x3c0, 0x20);
    out(vga, 0x3c8, 0x0c);
    out(vga, 0x3c9, 0x3f);
    out(vga, 0x3c9, 0x00);
    out(vga, 0x3c9, 0x00);
    gc(vga, 5, 0x02);
    gc(vga, 8, 0x80);
    vga.legacyWindow.mmioRead(80 * 479, 1);
    vga.legacyWindow.mmioWrite(80 * 479, 1, 0x0c);
    const frame = renderFrame(vga, 0);
    assert.equal(frame.width, 640);
    assert.equal(frame.height, 480);
    const i = 479 * 640 * 4;
    assert.deepEqual(Array.from(frame.rgba.subarray(i, i + 8)), [255, 0, 0, 255, 0, 0, 0, 255]);
  });

  it("renders CGA 4-colour mode 4 with its interleaved banks", () => {
    const { vga } = makeVga();
    out(vga, 0x3c2, 0x63);
    seq(vga, 1, 0x09);
    seq(vga, 2, 0x03);
    seq(vga, 4, 0x02);
    gc(vga, 5, 0x30);
    gc(vga, 6, 0x0f);
    crtc(vga, 1, 0x27);
    crtc(vga, 7, 0x1f);
    crtc(vga, 9, 0xc1);
    crtc(vga, 0x12, 0x8f);
    crtc(vga, 0x13, 0x14);
    crtc(vga, 0x17, 0xa2);
    [0x00, 0x13, 0x15, 0x17].forEach((v, i) => {
      attr(vga, i, v);
    });
    attr(vga, 0x10, 0x01);
    attr(vga, 0x12, 0x03);
    out(vga, 0x3c0, 0x20);
    for (const [index, rgb] of [
      [0x13, [0x3f, 0, 0]],
      [0x15, [0, 0x3f, 0]],
      [0x17, [0, 0, 0x3f]],
    ] as const) {
      out(vga, 0x3c8, index);
      for (const c of rgb) out(vga, 0x3c9, c);
    }
    vga.legacyWindow.mmioWrite(TEXT_BASE + 0x2000, 1, 0x1b); // scan line 1: colours 0, 1, 2, 3
    vga.legacyWindow.mmioWrite(TEXT_BASE + 80 + 1, 1, 0xc0); // scan line 2, pixel 4: colour 3
    const frame = renderFrame(vga, 0);
    assert.equal(frame.width, 320);
    assert.equal(frame.height, 200);
    const px = (x: number, y: number) =>
      Array.from(frame.rgba.subarray((y * 320 + x) * 4, (y * 320 + x) * 4 + 3));
    assert.deepEqual(
      [px(0, 1), px(1, 1), px(2, 1), px(3, 1)],
      [
        [0, 0, 0],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
      ],
    );
    assert.deepEqual(px(4, 2), [0, 0, 255]);
    assert.deepEqual(px(0, 0), [0, 0, 0]);
  });

  it("renders VBE 32, 16 and 8 bpp linear modes", () => {
    const { vga } = makeVga(4 << 20);
    vbe(vga, VBE_INDEX_XRES, 640);
    vbe(vga, VBE_INDEX_YRES, 480);
    vbe(vga, VBE_INDEX_BPP, 32);
    vbe(vga, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_LFB_ENABLED);
    vga.vram.set([0x10, 0x20, 0x30, 0], (640 * 2 + 3) * 4);
    let frame = renderFrame(vga, 0);
    assert.equal(frame.width, 640);
    const i = (640 * 2 + 3) * 4;
    assert.deepEqual(Array.from(frame.rgba.subarray(i, i + 4)), [0x30, 0x20, 0x10, 255]);

    vbe(vga, VBE_INDEX_ENABLE, 0);
    vbe(vga, VBE_INDEX_BPP, 16);
    vbe(vga, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_LFB_ENABLED);
    vga.vram[2] = 0x00;
    vga.vram[3] = 0xf8; // pure red in 5:6:5
    frame = renderFrame(vga, 0);
    assert.deepEqual(Array.from(frame.rgba.subarray(4, 8)), [255, 0, 0, 255]);

    vbe(vga, VBE_INDEX_ENABLE, 0);
    vbe(vga, VBE_INDEX_BPP, 8);
    vbe(vga, VBE_INDEX_ENABLE, VBE_ENABLED | VBE_LFB_ENABLED | VBE_8BIT_DAC);
    out(vga, 0x3c8, 7);
    out(vga, 0x3c9, 0x80);
    out(vga, 0x3c9, 0x81);
    out(vga, 0x3c9, 0x82);
    vga.vram[1] = 7;
    frame = renderFrame(vga, 0);
    assert.deepEqual(Array.from(frame.rgba.subarray(4, 8)), [0x80, 0x81, 0x82, 255]);
  });
});

describe("text mode without a BIOS", () => {
  it("programs 80x25 colour text with the EGA palette and an optional font", () => {
    const { vga } = makeVga();
    const font = new Uint8Array(256 * 16);
    font.fill(0xff, 0x48 * 16, 0x49 * 16); // 'H' is a solid block
    vga.setTextMode(font);
    vga.legacyWindow.mmioWrite(TEXT_BASE, 2, 0x1e48); // yellow on blue
    vga.legacyWindow.mmioWrite(TEXT_BASE + 2, 2, 0x0769);
    const lines = textContent(vga).split("\n");
    assert.equal(lines.length, 25);
    assert.equal(lines[0], "Hi");
    assert.equal(lines[24], "");
    const frame = renderFrame(vga, 0);
    assert.equal(frame.width, 720);
    assert.equal(frame.height, 400);
    assert.deepEqual(Array.from(frame.rgba.subarray(0, 4)), [0xff, 0xff, 0x55, 255]);
    assert.deepEqual(Array.from(frame.rgba.subarray(8 * 4, 9 * 4)), [0, 0, 0xaa, 255]);
    assert.deepEqual(Array.from(frame.rgba.subarray(9 * 4, 10 * 4)), [0, 0, 0, 255], "no glyph for 'i'");
  });
});

describe("PNG", () => {
  function parse(png: Uint8Array): { width: number; height: number; rgba: Uint8Array } {
    const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
    assert.deepEqual(Array.from(png.subarray(0, 8)), [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    let at = 8;
    let width = 0;
    let height = 0;
    const idat: Uint8Array[] = [];
    const types: string[] = [];
    while (at < png.length) {
      const length = view.getUint32(at);
      const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
      types.push(type);
      const body = png.subarray(at + 8, at + 8 + length);
      assert.equal(view.getUint32(at + 8 + length), zlibCrc32(png.subarray(at + 4, at + 8 + length)), type);
      if (type === "IHDR") {
        width = view.getUint32(at + 8);
        height = view.getUint32(at + 12);
        assert.deepEqual(Array.from(body.subarray(8)), [8, 6, 0, 0, 0]);
      }
      if (type === "IDAT") idat.push(body);
      at += 12 + length;
    }
    assert.deepEqual(types, ["IHDR", "IDAT", "IEND"]);
    const raw = inflateSync(Buffer.concat(idat));
    const stride = width * 4;
    const rgba = new Uint8Array(stride * height);
    for (let y = 0; y < height; y++) {
      const filter = raw[y * (stride + 1)]!;
      assert.equal(filter, 1);
      for (let i = 0; i < stride; i++) {
        const left = i >= 4 ? rgba[y * stride + i - 4]! : 0;
        rgba[y * stride + i] = (raw[y * (stride + 1) + 1 + i]! + left) & 0xff;
      }
    }
    return { width, height, rgba };
  }

  it("computes the standard CRC-32", () => {
    const data = new TextEncoder().encode("123456789");
    assert.equal(crc32(data), 0xcbf43926);
    assert.equal(crc32(data), zlibCrc32(data));
  });

  it("encodes pixels that decode back exactly", () => {
    const rgba = new Uint8Array(3 * 2 * 4);
    for (let i = 0; i < rgba.length; i++) rgba[i] = (i * 37) & 0xff;
    const decoded = parse(encodePng(3, 2, rgba));
    assert.equal(decoded.width, 3);
    assert.equal(decoded.height, 2);
    assert.deepEqual(decoded.rgba, rgba);
  });

  it("rejects sizes that do not match the pixels", () => {
    assert.throws(() => encodePng(2, 2, new Uint8Array(4)), RangeError);
    assert.throws(() => encodePng(0, 2, new Uint8Array(0)), RangeError);
  });

  it("takes a screenshot of the text screen", () => {
    const { vga } = makeVga();
    textMode(vga);
    loadGlyph(vga, 0x41, new Array(16).fill(0x80));
    vga.legacyWindow.mmioWrite(TEXT_BASE, 2, 0x0741);
    const decoded = parse(screenshot(vga, 0));
    assert.equal(decoded.width, 720);
    assert.equal(decoded.height, 400);
    assert.deepEqual(Array.from(decoded.rgba.subarray(0, 8)), [0xaa, 0xaa, 0xaa, 255, 0, 0, 0, 255]);
  });
});

describe("VGA state", () => {
  it("round-trips registers, palette, VBE and VRAM", () => {
    const { vga, clock } = makeVga();
    textMode(vga);
    vga.legacyWindow.mmioWrite(TEXT_BASE, 2, 0x0741);
    vbe(vga, VBE_INDEX_XRES, 640);
    inb(vga, 0x3da);
    out(vga, 0x3c0, 0x31); // leave the flip-flop on "data"
    const saved = structuredClone(vga.saveState());
    const other = new Vga({ clock, vramSize: 1 << 20 });
    other.loadState(saved, vga.stateVersion);
    assert.deepEqual(other.saveState(), vga.saveState());
    assert.equal(textContent(other).charAt(0), "A");
    out(other, 0x3c0, 0x2a);
    assert.equal(other.ar[0x11], 0x2a);
  });

  it("rejects VRAM of the wrong size", () => {
    const { vga, clock } = makeVga();
    const other = new Vga({ clock, vramSize: 2 << 20 });
    assert.throws(() => other.loadState(vga.saveState(), 1), /vram/);
  });
});

describe("VGA against random guest input", () => {
  it("never throws and always renders a bounded frame", () => {
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const { vga, clock } = makeVga(1 << 20);
    for (let i = 0; i < 40000; i++) {
      const what = random(10);
      if (what < 5) vga.ports.ioWrite(random(0x20), 1, random(256));
      else if (what === 5) vga.monoPorts.ioWrite(random(0x10), 1, random(256));
      else if (what === 6) vga.vbePorts.ioWrite(random(3), 2, random(3) === 0 ? random(12) : random(0x10000));
      else if (what === 7) vga.legacyWindow.mmioWrite(random(0x20000), 1, random(256));
      else if (what === 8) vga.legacyWindow.mmioRead(random(0x20000), 1);
      else vga.ports.ioRead(random(0x20), 1);
      if (i % 2000 === 0) {
        clock.set(i * 1000);
        const frame = renderFrame(vga);
        assert.ok(frame.width >= 1 && frame.width <= 4096 && frame.height >= 1 && frame.height <= 4096);
        assert.equal(frame.rgba.length, frame.width * frame.height * 4);
        textContent(vga);
      }
    }
  });
});
