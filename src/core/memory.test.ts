import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Width } from "./bus.ts";
import { type MmioDevice, PAGE_CODE, PAGE_DIRTY, PAGE_SIZE, PhysicalMemory } from "./memory.ts";

function mmioRecorder(): MmioDevice & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    mmioRead(offset: number, width: Width) {
      log.push(`r${width}@${offset.toString(16)}`);
      return 0xa5a5a5a5;
    },
    mmioWrite(offset: number, width: Width, value: number) {
      log.push(`w${width}@${offset.toString(16)}=${value.toString(16)}`);
    },
  };
}

describe("PhysicalMemory", () => {
  it("backs RAM with a SharedArrayBuffer and reads/writes little-endian", () => {
    const mem = new PhysicalMemory();
    const ram = mem.addRam("ram", 0, 1 << 20);
    assert.ok(ram.buffer instanceof SharedArrayBuffer);
    assert.equal(mem.mainRam, ram);
    mem.write32(0x1000, 0x11223344);
    assert.equal(ram.bytes[0x1000], 0x44);
    assert.equal(ram.bytes[0x1003], 0x11);
    assert.equal(mem.read16(0x1001), 0x2233);
    assert.equal(mem.read32(0x1000), 0x11223344);
    mem.write16(0x2001, 0xbeef);
    assert.equal(mem.read8(0x2001), 0xef);
    assert.equal(mem.read8(0x2002), 0xbe);
  });

  it("splits accesses that cross a page boundary", () => {
    const mem = new PhysicalMemory();
    mem.addRam("ram", 0, 2 * PAGE_SIZE);
    mem.write32(PAGE_SIZE - 2, 0xcafef00d);
    assert.equal(mem.read32(PAGE_SIZE - 2), 0xcafef00d);
    assert.equal(mem.read16(PAGE_SIZE - 1), 0xfef0);
    assert.equal(mem.read8(PAGE_SIZE), 0xfe);
    // Crossing from RAM into a hole: the hole half reads as ones.
    mem.write32(2 * PAGE_SIZE - 2, 0x12345678);
    assert.equal(mem.read32(2 * PAGE_SIZE - 2), 0xffff5678);
  });

  it("reads holes as all ones and ignores writes to them", () => {
    const mem = new PhysicalMemory();
    mem.addRam("ram", 0, PAGE_SIZE);
    assert.equal(mem.read8(0x10000), 0xff);
    assert.equal(mem.read16(0x10000), 0xffff);
    assert.equal(mem.read32(0xfffffffc), 0xffffffff);
    mem.write32(0x10000, 0);
    assert.equal(mem.read32(0x10000), 0xffffffff);
  });

  it("keeps ROM read-only and pads it to whole pages with ones", () => {
    const mem = new PhysicalMemory();
    const rom = mem.addRom("bios", 0xffff0000, new Uint8Array([1, 2, 3]));
    assert.equal(rom.size, PAGE_SIZE);
    assert.equal(mem.read8(0xffff0001), 2);
    mem.write8(0xffff0001, 99);
    assert.equal(mem.read8(0xffff0001), 2);
    assert.equal(mem.read8(0xffff0003), 0xff);
  });

  it("aliases the top of the BIOS below 1 MiB, sharing bytes, laid over RAM", () => {
    const mem = new PhysicalMemory();
    mem.addRam("ram", 0, 2 << 20);
    const image = new Uint8Array(256 * 1024);
    image[image.length - 16] = 0xea; // the reset vector's far jump, 16 bytes from the top
    image[image.length - 0x20000] = 0x42; // first byte of the top 128 KiB
    const rom = mem.addRom("bios", 0x1_0000_0000 - image.length, image);
    mem.addAlias("bios-low", 0xe0000, rom, image.length - 0x20000, 0x20000);
    assert.equal(mem.read8(0xfffffff0), 0xea);
    assert.equal(mem.read8(0xffff0), 0xea);
    assert.equal(mem.read8(0xe0000), 0x42);
    mem.write8(0xe0000, 0); // ROM: discarded
    assert.equal(mem.read8(0xe0000), 0x42);
    assert.equal(mem.read8(0xdffff), 0); // RAM below the alias
  });

  it("routes shadow RAM: read ROM, write RAM, then read RAM (PAM)", () => {
    const mem = new PhysicalMemory();
    const ram = mem.addRam("ram", 0, 1 << 20);
    const image = new Uint8Array(0x10000).fill(0x77);
    const rom = mem.addRom("bios-low", 0xf0000, image);
    mem.route(0xf0000, 0x10000, rom, ram); // copy phase: reads from ROM, writes to RAM
    mem.write8(0xf0000, mem.read8(0xf0000) + 1);
    assert.equal(mem.read8(0xf0000), 0x77);
    mem.route(0xf0000, 0x10000, ram, null); // now read RAM, write-protected
    assert.equal(mem.read8(0xf0000), 0x78);
    mem.write8(0xf0000, 0);
    assert.equal(mem.read8(0xf0000), 0x78);
    assert.throws(() => mem.route(0x200000, PAGE_SIZE, ram, undefined), /outside the region/);
  });

  it("dispatches MMIO to the device with offsets from its base", () => {
    const mem = new PhysicalMemory();
    mem.addRam("ram", 0, 1 << 20);
    const dev = mmioRecorder();
    const region = mem.addMmio("vga", 0xa0000, 0x20000, dev);
    mem.write16(0xa0010, 0x1234);
    assert.equal(mem.read8(0xa0011), 0xa5);
    assert.equal(mem.read32(0xbfffc), 0xa5a5a5a5);
    assert.deepEqual(dev.log, ["w2@10=1234", "r1@11", "r4@1fffc"]);
    // Removing it uncovers the RAM underneath.
    mem.removeRegion(region);
    mem.write8(0xa0000, 9);
    assert.equal(mem.read8(0xa0000), 9);
  });

  it("maps device-owned bytes as RAM that both sides see", () => {
    const mem = new PhysicalMemory();
    const vram = new Uint8Array(2 * PAGE_SIZE);
    const region = mem.addRamBacked("vram", 0xfd000000, vram);
    mem.write32(0xfd001000, 0x01020304);
    assert.equal(vram[0x1000], 4);
    vram[5] = 0x99;
    assert.equal(mem.read8(0xfd000005), 0x99);
    mem.removeRegion(region);
    assert.equal(mem.read8(0xfd000005), 0xff);
  });

  it("refuses overlapping device regions and unaligned RAM", () => {
    const mem = new PhysicalMemory();
    mem.addMmio("a", 0xfec00000, 0x1000, mmioRecorder());
    assert.throws(() => mem.addMmio("b", 0xfec00000, 0x1000, mmioRecorder()), /overlaps a/);
    assert.throws(() => mem.addRam("bad", 0x800, 0x1000), RangeError);
  });

  it("copies blocks in and out across regions", () => {
    const mem = new PhysicalMemory();
    mem.addRam("ram", 0, 4 * PAGE_SIZE);
    const data = Uint8Array.from({ length: 3 * PAGE_SIZE }, (_, i) => i & 0xff);
    mem.writeBytes(PAGE_SIZE / 2, data);
    assert.deepEqual(mem.readBytes(PAGE_SIZE / 2, data.length), data);
    // Reading past the end of RAM gives ones for the hole part.
    mem.write16(4 * PAGE_SIZE - 2, 0xbbaa);
    assert.deepEqual([...mem.readBytes(4 * PAGE_SIZE - 2, 4)], [0xaa, 0xbb, 0xff, 0xff]);
  });

  describe("page flags", () => {
    it("tracks dirty pages only while logging, and harvest clears them", () => {
      const mem = new PhysicalMemory();
      mem.addRam("ram", 0, 16 * PAGE_SIZE);
      mem.write8(0x1000, 1);
      assert.equal(mem.pageFlags[1]! & PAGE_DIRTY, 0, "no tracking when off");
      mem.setDirtyLogging(true);
      mem.write8(0x3000, 1);
      mem.write32(0x4ffe, 1); // crosses into page 5
      mem.writeBytes(0x7000, new Uint8Array(10));
      assert.deepEqual([...mem.harvestDirty()], [3, 4, 5, 7]);
      assert.deepEqual([...mem.harvestDirty()], []);
      mem.write8(0x3000, 2);
      assert.deepEqual([...mem.harvestDirty()], [3]);
    });

    it("approves fast writes only for RAM pages without code, and dirty ones while logging", () => {
      const mem = new PhysicalMemory();
      mem.addRam("ram", 0, 16 * PAGE_SIZE);
      mem.addRom("rom", 0x10000, new Uint8Array(PAGE_SIZE));
      assert.equal(mem.isWriteFast(2), true);
      assert.equal(mem.isWriteFast(0x10), false, "ROM");
      assert.equal(mem.isWriteFast(0x11), false, "hole");
      mem.setDirtyLogging(true);
      assert.equal(mem.isWriteFast(2), false, "clean page while logging");
      mem.write8(0x2000, 1);
      assert.equal(mem.isWriteFast(2), true, "already dirty");
      mem.harvestDirty();
      assert.equal(mem.isWriteFast(2), false);
      mem.setDirtyLogging(false);
      mem.markCode(2);
      assert.equal(mem.isWriteFast(2), false, "code page");
      mem.clearCode(2);
      assert.equal(mem.isWriteFast(2), true);
    });

    it("reports writes to code pages, from the CPU path and from DMA", () => {
      const mem = new PhysicalMemory();
      mem.addRam("ram", 0, 16 * PAGE_SIZE);
      const hits: string[] = [];
      mem.setCodeListener((addr, width) => hits.push(`${addr.toString(16)}/${width}`));
      mem.markCode(3);
      assert.equal(mem.pageFlags[3]! & PAGE_CODE, PAGE_CODE);
      mem.write8(0x2fff, 0);
      mem.write16(0x3004, 0);
      mem.writeBytes(0x3100, new Uint8Array(4));
      assert.deepEqual(hits, ["3004/2", "3100/4"]);
    });

    it("tells TLBs when pages stop being write-fast", () => {
      const mem = new PhysicalMemory();
      mem.addRam("ram", 0, 16 * PAGE_SIZE);
      const seen: number[] = [];
      const off = mem.onWriteProtect((page) => seen.push(page));
      mem.markCode(5);
      mem.markCode(5); // already code: no news
      mem.setDirtyLogging(true);
      mem.write8(0, 0);
      mem.harvestDirty();
      off();
      mem.markCode(6);
      assert.deepEqual(seen, [5, -1, -1]);
    });

    it("tells CPUs which pages a routing change touched", () => {
      const mem = new PhysicalMemory();
      const ram = mem.addRam("ram", 0, 64 * PAGE_SIZE);
      const seen: [number, number][] = [];
      const protects: number[] = [];
      mem.onWriteProtect((page) => protects.push(page));
      const off = mem.onMapChange((first, end) => seen.push([first, end]));
      const device = { mmioRead: () => 0, mmioWrite: () => {} };
      const bar = mem.addMmio("bar", 0xfd000000, 0x1800, device);
      mem.removeRegion(bar);
      mem.route(8 * PAGE_SIZE, 2 * PAGE_SIZE, ram, null);
      off();
      mem.route(8 * PAGE_SIZE, 2 * PAGE_SIZE, ram, ram);
      assert.deepEqual(seen, [
        [0xfd000, 0xfd002],
        [0xfd000, 0xfd002],
        [8, 10],
      ]);
      assert.deepEqual(protects, [], "routing changes are not write-protect events");
    });

    it("has the new main RAM in place when it tells CPUs of it", () => {
      const mem = new PhysicalMemory();
      const old = mem.addRam("ram", 0, 64 * PAGE_SIZE);
      const seen: (Uint8Array | undefined)[] = [];
      mem.onMapChange(() => seen.push(mem.mainRam?.bytes));
      mem.removeRegion(old);
      const ram = mem.addRam("ram", 0, 64 * PAGE_SIZE);
      assert.deepEqual(seen, [undefined, ram.bytes]);
      assert.equal(mem.mainRam, ram);
    });
  });
});
