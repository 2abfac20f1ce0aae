import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeE820Table,
  E820_ACPI,
  E820_RAM,
  E820_RESERVED,
  type E820Entry,
  encodeE820Table,
  encodeFwCfgE820,
  encodeMultibootMmap,
  extendedMemoryEnd,
  formatE820,
  overlayE820,
  pcMemoryMap,
  splitRam,
} from "./e820.ts";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

describe("splitRam", () => {
  it("keeps RAM below 3.5 GiB in one piece below 4 GiB", () => {
    assert.deepEqual(splitRam(128 * MIB), { below4g: 128 * MIB, above4g: 0 });
    assert.deepEqual(splitRam(0xe0000000 - 4096), { below4g: 0xe0000000 - 4096, above4g: 0 });
  });

  it("splits larger RAM at 3 GiB, as gigabyte-aligned `pc` machine types do", () => {
    assert.deepEqual(splitRam(0xe0000000), { below4g: 3 * GIB, above4g: 0xe0000000 - 3 * GIB });
    assert.deepEqual(splitRam(4 * GIB), { below4g: 3 * GIB, above4g: GIB });
  });

  it("splits at 3.5 GiB for old machine types without gigabyte alignment", () => {
    assert.deepEqual(splitRam(4 * GIB, { gigabyteAlign: false }), {
      below4g: 0xe0000000,
      above4g: 0.5 * GIB,
    });
  });

  it("honours max-ram-below-4g like QEMU's examples", () => {
    assert.deepEqual(splitRam(4 * GIB, { maxRamBelow4g: 2 * GIB }), { below4g: 2 * GIB, above4g: 2 * GIB });
    // Raising the limit lets a non-PAE guest have nearly 4 GiB (only when no split is needed).
    assert.deepEqual(splitRam(3968 * MIB, { maxRamBelow4g: 4 * GIB }), { below4g: 3968 * MIB, above4g: 0 });
  });

  it("rejects sizes that are not whole pages or are below 1 MiB", () => {
    assert.throws(() => splitRam(512 * 1024), RangeError);
    assert.throws(() => splitRam(MIB + 1), RangeError);
    assert.throws(() => splitRam(Number.NaN), RangeError);
    assert.throws(() => splitRam(64 * MIB, { maxRamBelow4g: 5 * GIB }), RangeError);
  });
});

describe("pcMemoryMap", () => {
  it("lays out a 128 MiB pc like SeaBIOS on QEMU", () => {
    assert.deepEqual(pcMemoryMap(128 * MIB), [
      { base: 0, length: 0x9fc00, type: E820_RAM },
      { base: 0x9fc00, length: 0x400, type: E820_RESERVED },
      { base: 0xf0000, length: 0x10000, type: E820_RESERVED },
      { base: 0x100000, length: 127 * MIB, type: E820_RAM },
      { base: 0xfffc0000, length: 0x40000, type: E820_RESERVED },
    ]);
  });

  it("puts RAM beyond the split above 4 GiB", () => {
    const map = pcMemoryMap(4 * GIB);
    assert.deepEqual(map[3], { base: 0x100000, length: 3 * GIB - MIB, type: E820_RAM });
    assert.deepEqual(map[map.length - 1], { base: 4 * GIB, length: GIB, type: E820_RAM });
    assert.equal(extendedMemoryEnd(map), 3 * GIB);
  });

  it("sizes the firmware window from the firmware size", () => {
    const map = pcMemoryMap(64 * MIB, { firmwareSize: 128 * 1024 });
    assert.deepEqual(map[map.length - 1], { base: 0xfffe0000, length: 0x20000, type: E820_RESERVED });
    assert.equal(
      pcMemoryMap(64 * MIB, { firmwareSize: 0 }).some((e) => e.base >= 0xf0000000),
      false,
    );
  });

  it("lays caller ranges over RAM, cutting it", () => {
    const map = pcMemoryMap(64 * MIB, {
      extra: [{ base: 64 * MIB - 0x20000, length: 0x20000, type: E820_ACPI }],
    });
    assert.deepEqual(map[3], { base: MIB, length: 63 * MIB - 0x20000, type: E820_RAM });
    assert.deepEqual(map[4], { base: 64 * MIB - 0x20000, length: 0x20000, type: E820_ACPI });
    assert.equal(extendedMemoryEnd(map), 64 * MIB - 0x20000);
  });

  it("handles exactly 1 MiB of RAM (no extended memory)", () => {
    const map = pcMemoryMap(MIB);
    assert.equal(
      map.some((e) => e.type === E820_RAM && e.base >= MIB),
      false,
    );
    assert.equal(extendedMemoryEnd(map), MIB);
  });
});

describe("overlayE820", () => {
  const ram: E820Entry[] = [{ base: 0x100000, length: 0x100000, type: E820_RAM }];

  it("splits an entry around a range in its middle", () => {
    assert.deepEqual(overlayE820(ram, { base: 0x180000, length: 0x1000, type: E820_RESERVED }), [
      { base: 0x100000, length: 0x80000, type: E820_RAM },
      { base: 0x180000, length: 0x1000, type: E820_RESERVED },
      { base: 0x181000, length: 0x7f000, type: E820_RAM },
    ]);
  });

  it("merges touching ranges of the same type and ignores empty ones", () => {
    assert.deepEqual(overlayE820(ram, { base: 0x200000, length: 0x100000, type: E820_RAM }), [
      { base: 0x100000, length: 0x200000, type: E820_RAM },
    ]);
    assert.deepEqual(overlayE820(ram, { base: 0x180000, length: 0, type: E820_RESERVED }), ram);
  });

  it("replaces entries it covers completely", () => {
    assert.deepEqual(overlayE820(ram, { base: 0, length: 0x400000, type: E820_RESERVED }), [
      { base: 0, length: 0x400000, type: E820_RESERVED },
    ]);
  });

  it("rejects malformed entries", () => {
    assert.throws(() => overlayE820(ram, { base: -1, length: 1, type: 1 }), RangeError);
    assert.throws(() => overlayE820(ram, { base: 0, length: 1.5, type: 1 }), RangeError);
  });
});

describe("encoders", () => {
  const map: E820Entry[] = [
    { base: 0, length: 0x9fc00, type: E820_RAM },
    { base: 0x1_0000_0000, length: 0x2_4000_0000, type: E820_RAM },
    { base: 0xfffc0000, length: 0x40000, type: E820_RESERVED },
  ];

  it("encodes 20-byte little-endian records with 64-bit fields", () => {
    const bytes = encodeE820Table(map);
    assert.equal(bytes.length, 60);
    const view = new DataView(bytes.buffer);
    assert.equal(view.getUint32(8, true), 0x9fc00);
    assert.equal(view.getUint32(16, true), E820_RAM);
    // Second record: base 4 GiB, length 9 GiB.
    assert.equal(view.getUint32(20, true), 0);
    assert.equal(view.getUint32(24, true), 1);
    assert.equal(view.getUint32(28, true), 0x40000000);
    assert.equal(view.getUint32(32, true), 2);
    assert.equal(view.getUint32(40 + 16, true), E820_RESERVED);
    assert.deepEqual(decodeE820Table(bytes), map);
    assert.deepEqual(encodeFwCfgE820(map), bytes);
  });

  it("encodes multiboot mmap records with their size field", () => {
    const bytes = encodeMultibootMmap(map);
    assert.equal(bytes.length, 72);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < 3; i++) assert.equal(view.getUint32(i * 24, true), 20);
    assert.equal(view.getUint32(24 + 4, true), 0);
    assert.equal(view.getUint32(24 + 8, true), 1);
    assert.equal(view.getUint32(24 + 12, true), 0x40000000);
    assert.equal(view.getUint32(24 + 16, true), 2);
    assert.equal(view.getUint32(24 + 20, true), E820_RAM);
    assert.equal(view.getUint32(48 + 4, true), 0xfffc0000);
    assert.equal(view.getUint32(48 + 20, true), E820_RESERVED);
  });

  it("refuses to decode a table shorter than its count", () => {
    assert.throws(() => decodeE820Table(new Uint8Array(30), 2), RangeError);
  });

  it("formats the map like Linux's boot log", () => {
    assert.equal(
      formatE820([{ base: 0x100000, length: 0x100000, type: E820_RAM }]),
      "[mem 0x0000000000100000-0x00000000001fffff] usable",
    );
  });
});
