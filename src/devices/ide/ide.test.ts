import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { IrqLine } from "../../core/irq.ts";
import { PhysicalMemory } from "../../core/memory.ts";
import {
  AsyncFileBlockBackend,
  type BlockBackend,
  type BlockCallback,
  CowOverlay,
  FileBlockBackend,
  MemoryBlockBackend,
} from "./block.ts";
import type { IdeChannel } from "./channel.ts";
import { IdeDrive } from "./drive.ts";
import { BM_STATUS_ACTIVE, BM_STATUS_INTERRUPT, PiixIde } from "./piix-ide.ts";

const BM_BASE = 0xc000;

/** A disk whose every sector holds its own number in its first 8 bytes; nothing is stored. */
class PatternDisk implements BlockBackend {
  readonly readOnly = false;
  readonly sectorCount: number;
  readonly writes: number[] = [];
  constructor(sectorCount: number) {
    this.sectorCount = sectorCount;
  }
  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void {
    for (let i = 0; i < count; i++) {
      const view = new DataView(into.buffer, into.byteOffset + i * 512, 512);
      view.setFloat64(0, sector + i, true);
      for (let j = 8; j < 512; j++) view.setUint8(j, j & 0xff);
    }
    done(undefined);
  }
  write(sector: number, count: number, _from: Uint8Array, done: BlockCallback): void {
    for (let i = 0; i < count; i++) this.writes.push(sector + i);
    done(undefined);
  }
  flush(done: BlockCallback): void {
    done(undefined);
  }
}

function diskImage(sectors: number): MemoryBlockBackend {
  const disk = new MemoryBlockBackend(sectors);
  for (let i = 0; i < disk.bytes.length; i++) disk.bytes[i] = (i * 7 + (i >> 9)) & 0xff;
  return disk;
}

function isoImage(blocks: number): MemoryBlockBackend {
  const iso = new MemoryBlockBackend(blocks * 4);
  for (let b = 0; b < blocks; b++) iso.bytes.fill(b & 0xff, b * 2048, (b + 1) * 2048);
  return iso;
}

interface Rig {
  ide: PiixIde;
  memory: PhysicalMemory;
  irq14: IrqLine;
  irq15: IrqLine;
  primary: IdeChannel;
  secondary: IdeChannel;
}

function rig(primary: { master?: IdeDrive; slave?: IdeDrive }, secondary: { master?: IdeDrive } = {}): Rig {
  const memory = new PhysicalMemory();
  memory.addRam("ram", 0, 1 << 20);
  const irq14 = new IrqLine("irq14");
  const irq15 = new IrqLine("irq15");
  const ide = new PiixIde({ memory, primaryIrq: irq14, secondaryIrq: irq15, primary, secondary });
  ide.pci.configWrite(0x20, 4, BM_BASE | 1);
  ide.pci.configWrite(0x04, 2, 0x0005); // I/O decode and bus mastering
  return { ide, memory, irq14, irq15, primary: ide.channels[0], secondary: ide.channels[1] };
}

const out = (ch: IdeChannel, reg: number, v: number) => ch.commandBlock.ioWrite(reg, 1, v);
const inb = (ch: IdeChannel, reg: number) => ch.commandBlock.ioRead(reg, 1);
const altStatus = (ch: IdeChannel) => ch.controlBlock.ioRead(0, 1);
const readWord = (ch: IdeChannel) => ch.commandBlock.ioRead(0, 2);

function readBytes(ch: IdeChannel, n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i += 2) {
    const w = readWord(ch);
    data[i] = w & 0xff;
    if (i + 1 < n) data[i + 1] = w >> 8;
  }
  return data;
}

function writeBytes(ch: IdeChannel, data: Uint8Array): void {
  for (let i = 0; i < data.length; i += 2) ch.commandBlock.ioWrite(0, 2, data[i]! | (data[i + 1]! << 8));
}

function lba28(ch: IdeChannel, lba: number, count: number, device = 0): void {
  out(ch, 6, 0xe0 | (device << 4) | ((lba >> 24) & 0x0f));
  out(ch, 2, count);
  out(ch, 3, lba & 0xff);
  out(ch, 4, (lba >> 8) & 0xff);
  out(ch, 5, (lba >> 16) & 0xff);
}

function lba48(ch: IdeChannel, lba: number, count: number): void {
  out(ch, 6, 0x40);
  const high = Math.floor(lba / 0x1000000);
  out(ch, 2, count >> 8);
  out(ch, 3, high & 0xff);
  out(ch, 4, (high >> 8) & 0xff);
  out(ch, 5, (high >> 16) & 0xff);
  out(ch, 2, count & 0xff);
  out(ch, 3, lba & 0xff);
  out(ch, 4, (lba >> 8) & 0xff);
  out(ch, 5, (lba >> 16) & 0xff);
}

function identifyWords(ch: IdeChannel, command = 0xec): Uint16Array {
  out(ch, 7, command);
  const words = new Uint16Array(256);
  for (let i = 0; i < 256; i++) words[i] = readWord(ch);
  return words;
}

function identifyString(words: Uint16Array, first: number, count: number): string {
  let s = "";
  for (let i = 0; i < count; i++) s += String.fromCharCode(words[first + i]! >> 8, words[first + i]! & 0xff);
  return s.trimEnd();
}

/** Writes a PRD table at `table` with (address, bytes) entries; the last gets end-of-table. */
function prdTable(memory: PhysicalMemory, table: number, entries: [number, number][]): void {
  entries.forEach(([address, bytes], i) => {
    memory.write32(table + i * 8, address);
    memory.write32(table + i * 8 + 4, (bytes & 0xffff) | (i === entries.length - 1 ? 0x80000000 : 0));
  });
}

function bm(r: Rig, channel: 0 | 1) {
  const base = channel * 8;
  const port = r.ide.busMasterPorts;
  return {
    setTable: (address: number) => port.ioWrite(base + 4, 4, address),
    start: (toMemory: boolean) => port.ioWrite(base, 1, (toMemory ? 8 : 0) | 1),
    stop: () => port.ioWrite(base, 1, 0),
    status: () => port.ioRead(base + 2, 1),
    clear: () => port.ioWrite(base + 2, 1, 0x06),
  };
}

// ---- ATAPI helpers ---------------------------------------------------------------------------

function sendPacket(ch: IdeChannel, cdb: number[], limit = 0xfffe, dma = false): void {
  out(ch, 1, dma ? 1 : 0);
  out(ch, 4, limit & 0xff);
  out(ch, 5, limit >> 8);
  out(ch, 7, 0xa0);
  assert.equal(altStatus(ch) & 0x88, 0x08, "PACKET wants the command bytes");
  assert.equal(inb(ch, 2) & 3, 1, "interrupt reason: command");
  const packet = new Uint8Array(12);
  packet.set(cdb);
  writeBytes(ch, packet);
}

/** Runs a packet command with PIO data in; returns the data and the sizes of the DRQ pieces. */
function atapi(
  ch: IdeChannel,
  cdb: number[],
  limit = 0xfffe,
): { data: Uint8Array; pieces: number[]; status: number } {
  sendPacket(ch, cdb, limit);
  const parts: number[] = [];
  const pieces: number[] = [];
  while (altStatus(ch) & 0x08) {
    assert.equal(inb(ch, 2) & 3, 2, "interrupt reason: data to host");
    const size = inb(ch, 4) | (inb(ch, 5) << 8);
    pieces.push(size);
    parts.push(...readBytes(ch, size));
  }
  const status = inb(ch, 7);
  return { data: Uint8Array.from(parts), pieces, status };
}

function requestSense(ch: IdeChannel): { key: number; asc: number } {
  const { data } = atapi(ch, [0x03, 0, 0, 0, 18]);
  return { key: data[2]! & 0x0f, asc: data[12]! };
}

// ---- tests -----------------------------------------------------------------------------------

describe("ATA disk", () => {
  it("IDENTIFY DEVICE reports identity, geometry, capacity and capabilities", () => {
    const drive = IdeDrive.disk(new MemoryBlockBackend(20160), { model: "Test Disk", serial: "SN123" });
    const r = rig({ master: drive });
    const w = identifyWords(r.primary);
    assert.equal(w[0], 0x0040);
    assert.deepEqual([w[1], w[3], w[6]], [20, 16, 63]);
    assert.equal(identifyString(w, 27, 20), "Test Disk");
    assert.equal(identifyString(w, 10, 10), "SN123");
    assert.equal(identifyString(w, 23, 4), "0.1");
    assert.equal(w[47]! & 0xff, 16);
    assert.equal(w[49]! & 0x0300, 0x0300);
    assert.equal(w[60]! | (w[61]! << 16), 20160);
    assert.equal(w[83]! & 0x0400, 0x0400, "48-bit addressing");
    assert.equal(w[100], 20160);
    assert.equal(w[63]! & 0x07, 0x07, "multiword DMA 0-2");
    assert.equal(inb(r.primary, 7) & 0x08, 0, "DRQ ends after 256 words");
  });

  it("raises IRQ 14 for a PIO read and clears it on a status read", () => {
    const disk = diskImage(100);
    const r = rig({ master: IdeDrive.disk(disk) });
    lba28(r.primary, 10, 2);
    out(r.primary, 7, 0x20);
    assert.equal(r.irq14.level, true);
    assert.equal(altStatus(r.primary) & 0x08, 0x08);
    assert.equal(r.irq14.level, true, "alternate status has no side effect");
    inb(r.primary, 7);
    assert.equal(r.irq14.level, false);
    const first = readBytes(r.primary, 512);
    assert.equal(r.irq14.level, true, "interrupt for the second sector");
    inb(r.primary, 7);
    const second = readBytes(r.primary, 512);
    assert.deepEqual(first, disk.bytes.subarray(10 * 512, 11 * 512));
    assert.deepEqual(second, disk.bytes.subarray(11 * 512, 12 * 512));
    assert.equal(inb(r.primary, 7), 0x50);
    assert.equal(inb(r.primary, 3), 11, "address of the last sector");
  });

  it("writes sectors with PIO, including 32-bit data accesses", () => {
    const disk = new MemoryBlockBackend(64);
    const r = rig({ master: IdeDrive.disk(disk) });
    lba28(r.primary, 5, 2);
    out(r.primary, 7, 0x30);
    assert.equal(r.irq14.level, false, "no interrupt before the first block");
    assert.equal(inb(r.primary, 7) & 0x08, 0x08);
    for (let i = 0; i < 256; i++) r.primary.commandBlock.ioWrite(0, 4, 0x01020304 + i);
    assert.equal(r.irq14.level, true);
    assert.equal(disk.bytes[5 * 512], 0x04);
    assert.equal(disk.bytes[5 * 512 + 3], 0x01);
    // The last dword written is 0x01020304 + 255 = 0x01020403.
    assert.deepEqual(Array.from(disk.bytes.subarray(7 * 512 - 4, 7 * 512)), [0x03, 0x04, 0x02, 0x01]);
  });

  it("READ MULTIPLE needs SET MULTIPLE and then interrupts per block", () => {
    const disk = diskImage(64);
    const r = rig({ master: IdeDrive.disk(disk) });
    lba28(r.primary, 0, 8);
    out(r.primary, 7, 0xc4);
    assert.equal(inb(r.primary, 7), 0x51);
    assert.equal(inb(r.primary, 1), 0x04);
    out(r.primary, 2, 3);
    out(r.primary, 7, 0xc6);
    assert.equal(inb(r.primary, 7) & 1, 1, "3 is not a power of two");
    out(r.primary, 2, 4);
    out(r.primary, 7, 0xc6);
    assert.equal(inb(r.primary, 7), 0x50);
    lba28(r.primary, 8, 8);
    out(r.primary, 7, 0xc4);
    let interrupts = 0;
    const data: number[] = [];
    while (altStatus(r.primary) & 0x08) {
      if (r.irq14.level) interrupts++;
      inb(r.primary, 7);
      data.push(...readBytes(r.primary, 4 * 512));
    }
    assert.equal(interrupts, 2);
    assert.deepEqual(Uint8Array.from(data), disk.bytes.subarray(8 * 512, 16 * 512));
  });

  it("addresses by CHS with the geometry from INITIALIZE DEVICE PARAMETERS", () => {
    const disk = diskImage(2000);
    const r = rig({ master: IdeDrive.disk(disk) });
    out(r.primary, 6, 0xa0 | 3); // 4 heads
    out(r.primary, 2, 17);
    out(r.primary, 7, 0x91);
    assert.equal(inb(r.primary, 7), 0x50);
    // Cylinder 2, head 1, sector 5 -> (2 * 4 + 1) * 17 + 4 = 157.
    out(r.primary, 6, 0xa0 | 1);
    out(r.primary, 2, 1);
    out(r.primary, 3, 5);
    out(r.primary, 4, 2);
    out(r.primary, 5, 0);
    out(r.primary, 7, 0x20);
    assert.deepEqual(readBytes(r.primary, 512), disk.bytes.subarray(157 * 512, 158 * 512));
  });

  it("reads past 2^28 with LBA48 and shows the high bytes through HOB", () => {
    const total = 2 ** 28 + 1000;
    const r = rig({ master: IdeDrive.disk(new PatternDisk(total)) });
    const w = identifyWords(r.primary);
    assert.equal(w[60]! | (w[61]! << 16), 0x0fffffff);
    assert.equal(w[100]! + w[101]! * 0x10000 + w[102]! * 0x100000000, total);
    const target = 2 ** 28 + 5;
    lba48(r.primary, target, 2);
    out(r.primary, 7, 0x24);
    const first = readBytes(r.primary, 512);
    const second = readBytes(r.primary, 512);
    const view = (b: Uint8Array) => new DataView(b.buffer).getFloat64(0, true);
    assert.equal(view(first), target);
    assert.equal(view(second), target + 1);
    const last = target + 1;
    assert.equal(inb(r.primary, 3), last & 0xff);
    r.primary.controlBlock.ioWrite(0, 1, 0x80);
    assert.equal(inb(r.primary, 3), Math.floor(last / 2 ** 24) & 0xff);
    r.primary.controlBlock.ioWrite(0, 1, 0x00);
    // A 28-bit command cannot reach there, and beyond the end is an ID-not-found error.
    lba48(r.primary, total - 1, 2);
    out(r.primary, 7, 0x24);
    assert.equal(inb(r.primary, 7) & 1, 1);
    assert.equal(inb(r.primary, 1) & 0x10, 0x10);
  });

  it("answers SET FEATURES, CHECK POWER MODE, FLUSH CACHE and READ VERIFY", () => {
    const r = rig({ master: IdeDrive.disk(new MemoryBlockBackend(100)) });
    const ch = r.primary;
    out(ch, 1, 0x03);
    out(ch, 2, 0x45); // UDMA 5
    out(ch, 7, 0xef);
    assert.equal(inb(ch, 7), 0x50);
    const w = identifyWords(ch);
    assert.equal(w[88], 0x203f);
    assert.equal(w[63], 0x0007);
    out(ch, 1, 0x99);
    out(ch, 7, 0xef);
    assert.equal(inb(ch, 1), 0x04);
    out(ch, 7, 0xe0);
    out(ch, 7, 0xe5);
    assert.equal(inb(ch, 2), 0x00, "standby");
    out(ch, 7, 0xe1);
    out(ch, 7, 0xe5);
    assert.equal(inb(ch, 2), 0xff, "active/idle");
    out(ch, 7, 0xe7);
    assert.equal(inb(ch, 7), 0x50);
    lba28(ch, 99, 1);
    out(ch, 7, 0x40);
    assert.equal(inb(ch, 7), 0x50);
    lba28(ch, 99, 2);
    out(ch, 7, 0x40);
    assert.equal(inb(ch, 7), 0x51);
  });

  it("nIEN keeps the interrupt line low until it is cleared", () => {
    const r = rig({ master: IdeDrive.disk(new MemoryBlockBackend(10)) });
    r.primary.controlBlock.ioWrite(0, 1, 0x02);
    out(r.primary, 7, 0xe7);
    assert.equal(r.irq14.level, false);
    r.primary.controlBlock.ioWrite(0, 1, 0x00);
    assert.equal(r.irq14.level, true);
  });

  it("software reset leaves the ATA and ATAPI signatures", () => {
    const r = rig({ master: IdeDrive.disk(new MemoryBlockBackend(10)), slave: IdeDrive.cdrom() });
    const ch = r.primary;
    ch.controlBlock.ioWrite(0, 1, 0x04);
    assert.equal(altStatus(ch) & 0x80, 0x80);
    ch.controlBlock.ioWrite(0, 1, 0x00);
    assert.deepEqual([inb(ch, 2), inb(ch, 3), inb(ch, 4), inb(ch, 5), inb(ch, 1)], [1, 1, 0, 0, 1]);
    assert.equal(inb(ch, 7), 0x50);
    out(ch, 6, 0xb0);
    assert.deepEqual([inb(ch, 2), inb(ch, 3), inb(ch, 4), inb(ch, 5)], [1, 1, 0x14, 0xeb]);
    assert.equal(inb(ch, 7), 0x00);
  });

  it("an absent slave reads as zeros and ignores commands", () => {
    const r = rig({ master: IdeDrive.disk(new MemoryBlockBackend(10)) });
    out(r.primary, 6, 0xb0);
    out(r.primary, 2, 0x55);
    assert.equal(inb(r.primary, 2), 0);
    out(r.primary, 7, 0xec);
    assert.equal(inb(r.primary, 7), 0);
    assert.equal(r.irq14.level, false);
  });
});

describe("bus-master DMA", () => {
  it("READ DMA lands in memory across PRD entries and signals through the status register", () => {
    const disk = diskImage(100);
    const r = rig({ master: IdeDrive.disk(disk) });
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [
      [0x20000, 1024],
      [0x30000, 512],
    ]);
    engine.setTable(0x1000);
    lba28(r.primary, 40, 3);
    out(r.primary, 7, 0xc8);
    assert.equal(r.irq14.level, false, "nothing happens until the engine starts");
    engine.start(true);
    assert.equal(r.irq14.level, true);
    assert.deepEqual(r.memory.readBytes(0x20000, 1024), disk.bytes.subarray(40 * 512, 42 * 512));
    assert.deepEqual(r.memory.readBytes(0x30000, 512), disk.bytes.subarray(42 * 512, 43 * 512));
    assert.equal(engine.status() & (BM_STATUS_ACTIVE | BM_STATUS_INTERRUPT), BM_STATUS_INTERRUPT);
    engine.stop();
    engine.clear();
    assert.equal(engine.status() & BM_STATUS_INTERRUPT, 0);
    assert.equal(inb(r.primary, 7), 0x50);
  });

  it("READ DMA EXT started before the command, with a larger PRD table, stays active", () => {
    const disk = diskImage(100);
    const r = rig({ master: IdeDrive.disk(disk) });
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [[0x40000, 0]]); // 64 KiB
    engine.setTable(0x1000);
    engine.start(true);
    lba48(r.primary, 1, 1);
    out(r.primary, 7, 0x25);
    assert.deepEqual(r.memory.readBytes(0x40000, 512), disk.bytes.subarray(512, 1024));
    assert.equal(engine.status() & 5, BM_STATUS_ACTIVE | BM_STATUS_INTERRUPT);
  });

  it("WRITE DMA takes the data from memory", () => {
    const disk = new MemoryBlockBackend(100);
    const r = rig({ master: IdeDrive.disk(disk) });
    const engine = bm(r, 0);
    const data = Uint8Array.from({ length: 1024 }, (_, i) => (i * 3) & 0xff);
    r.memory.writeBytes(0x50000, data);
    prdTable(r.memory, 0x1000, [[0x50000, 1024]]);
    engine.setTable(0x1000);
    lba28(r.primary, 7, 2);
    out(r.primary, 7, 0xca);
    engine.start(false);
    assert.deepEqual(disk.bytes.subarray(7 * 512, 9 * 512), data);
    assert.equal(inb(r.primary, 7), 0x50);
  });

  it("a PRD table shorter than the transfer stops the engine without an interrupt", () => {
    const r = rig({ master: IdeDrive.disk(diskImage(100)) });
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [[0x20000, 512]]);
    engine.setTable(0x1000);
    lba28(r.primary, 0, 4);
    out(r.primary, 7, 0xc8);
    engine.start(true);
    assert.equal(engine.status() & 5, 0);
    assert.equal(r.irq14.level, false);
  });

  it("does nothing while PCI bus mastering is off", () => {
    const r = rig({ master: IdeDrive.disk(diskImage(100)) });
    r.ide.pci.configWrite(0x04, 2, 0x0001);
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [[0x20000, 512]]);
    engine.setTable(0x1000);
    lba28(r.primary, 3, 1);
    out(r.primary, 7, 0xc8);
    engine.start(true);
    assert.equal(r.irq14.level, false);
    assert.deepEqual(r.memory.readBytes(0x20000, 4), new Uint8Array(4));
  });
});

describe("ATAPI CD-ROM", () => {
  function cdRig(blocks = 100) {
    const iso = isoImage(blocks);
    const drive = IdeDrive.cdrom(iso);
    const r = rig({}, { master: drive });
    return { r, ch: r.secondary, drive, iso };
  }

  it("identifies as a packet device and refuses IDENTIFY DEVICE with its signature", () => {
    const { ch } = cdRig();
    out(ch, 7, 0xec);
    assert.equal(inb(ch, 7) & 1, 1);
    assert.deepEqual([inb(ch, 4), inb(ch, 5)], [0x14, 0xeb]);
    const w = identifyWords(ch, 0xa1);
    assert.equal(w[0], 0x85c0);
    assert.equal(identifyString(w, 27, 20), "TSVISOR DVD-ROM");
    assert.equal(w[49]! & 0x0300, 0x0300);
  });

  it("answers TEST UNIT READY, INQUIRY and READ CAPACITY", () => {
    const { ch, r } = cdRig(1234);
    const tur = atapi(ch, [0x00]);
    assert.equal(tur.status & 0x01, 0);
    assert.equal(inb(ch, 2), 3, "interrupt reason: status");
    assert.equal(r.irq15.level, false, "status read cleared the interrupt");
    const inquiry = atapi(ch, [0x12, 0, 0, 0, 36]).data;
    assert.equal(inquiry[0], 0x05);
    assert.equal(inquiry[1], 0x80);
    assert.equal(new TextDecoder().decode(inquiry.subarray(8, 16)), "TSVISOR ");
    const capacity = atapi(ch, [0x25]).data;
    assert.deepEqual(Array.from(capacity), [0, 0, 0x04, 0xd1, 0, 0, 0x08, 0]);
  });

  it("READ(10) splits data by the byte count limit", () => {
    const { ch, iso } = cdRig();
    const whole = atapi(ch, [0x28, 0, 0, 0, 0, 5, 0, 0, 3]);
    assert.deepEqual(whole.data, iso.bytes.subarray(5 * 2048, 8 * 2048));
    assert.deepEqual(whole.pieces, [6144]);
    const limited = atapi(ch, [0x28, 0, 0, 0, 0, 5, 0, 0, 3], 5001);
    assert.deepEqual(limited.pieces, [5000, 1144]);
    assert.deepEqual(limited.data, whole.data);
    const read12 = atapi(ch, [0xa8, 0, 0, 0, 0, 99, 0, 0, 0, 1]);
    assert.deepEqual(read12.data, iso.bytes.subarray(99 * 2048, 100 * 2048));
  });

  it("READ past the end is an illegal request with LBA out of range", () => {
    const { ch } = cdRig();
    const result = atapi(ch, [0x28, 0, 0, 0, 0, 99, 0, 0, 2]);
    assert.equal(result.status & 1, 1);
    assert.equal(inb(ch, 1) >> 4, 0x05);
    assert.deepEqual(requestSense(ch), { key: 0x05, asc: 0x21 });
  });

  it("READ TOC formats 0 (LBA and MSF), 1 and 2 (raw)", () => {
    const { ch } = cdRig(1000);
    const toc = atapi(ch, [0x43, 0, 0, 0, 0, 0, 0, 0, 100]).data;
    assert.deepEqual(
      Array.from(toc),
      [0, 18, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0, 0, 0x14, 0xaa, 0, 0, 0, 0x03, 0xe8],
    );
    const msf = atapi(ch, [0x43, 2, 0, 0, 0, 0, 0, 0, 100]).data;
    // Track 1 at 00:02:00; lead-out at 1000 + 150 frames = 00:15:25.
    assert.deepEqual(Array.from(msf.subarray(8, 12)), [0, 0, 2, 0]);
    assert.deepEqual(Array.from(msf.subarray(16, 20)), [0, 0, 15, 25]);
    const session = atapi(ch, [0x43, 0, 1, 0, 0, 0, 0, 0, 12]).data;
    assert.deepEqual(Array.from(session), [0, 10, 1, 1, 0, 0x14, 1, 0, 0, 0, 0, 0]);
    const raw = atapi(ch, [0x43, 2, 2, 0, 0, 0, 0, 0, 100]).data;
    assert.deepEqual(
      Array.from(raw),
      [
        0, 46, 1, 1, 1, 0x14, 0, 0xa0, 0, 0, 0, 0, 1, 0, 0, 1, 0x14, 0, 0xa1, 0, 0, 0, 0, 1, 0, 0, 1, 0x14, 0,
        0xa2, 0, 0, 0, 0, 0, 15, 25, 1, 0x14, 0, 0x01, 0, 0, 0, 0, 0, 2, 0,
      ],
    );
    // The old SFF-8020 form carries the format in byte 9.
    const old = atapi(ch, [0x43, 2, 0, 0, 0, 0, 0, 0, 100, 0x80]).data;
    assert.deepEqual(old, raw);
    const truncated = atapi(ch, [0x43, 0, 0, 0, 0, 0, 0, 0, 4]).data;
    assert.equal(truncated.length, 4);
  });

  it("MODE SENSE returns the capabilities page; unknown pages are refused", () => {
    const { ch } = cdRig();
    const ten = atapi(ch, [0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 64]).data;
    assert.equal(ten.length, 28);
    assert.equal((ten[0]! << 8) | ten[1]!, 26);
    assert.equal(ten[8], 0x2a);
    assert.equal(ten[9], 18);
    const six = atapi(ch, [0x1a, 0, 0x3f, 0, 255]).data;
    assert.equal(six[0], six.length - 1);
    assert.equal(six.length, 4 + 8 + 20);
    assert.equal(atapi(ch, [0x5a, 0, 0x05, 0, 0, 0, 0, 0, 64]).status & 1, 1);
    assert.deepEqual(requestSense(ch), { key: 0x05, asc: 0x24 });
  });

  it("GET CONFIGURATION reports the current profile", () => {
    const { ch } = cdRig();
    const data = atapi(ch, [0x46, 0, 0, 0, 0, 0, 0, 0, 255]).data;
    assert.equal((data[6]! << 8) | data[7]!, 0x0008);
    assert.equal((data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!, data.length - 4);
    assert.deepEqual(Array.from(data.subarray(8, 10)), [0, 0], "profile list first");
    const one = atapi(ch, [0x46, 2, 0, 1, 0, 0, 0, 0, 255]).data;
    assert.deepEqual(Array.from(one.subarray(8, 10)), [0, 1], "only the core feature");
    assert.equal(one.length, 8 + 4 + 8);
  });

  it("reports media changes: unit attention, new-media event, and eject with lock", () => {
    const { ch, drive } = cdRig();
    assert.equal(atapi(ch, [0x1e, 0, 0, 0, 1]).status & 1, 0);
    const refused = atapi(ch, [0x1b, 0, 0, 0, 0x02]);
    assert.equal(refused.status & 1, 1);
    assert.deepEqual(requestSense(ch), { key: 0x05, asc: 0x53 });
    atapi(ch, [0x1e, 0, 0, 0, 0]);
    assert.equal(atapi(ch, [0x1b, 0, 0, 0, 0x02]).status & 1, 0);
    assert.equal(atapi(ch, [0x00]).status & 1, 1);
    assert.deepEqual(requestSense(ch), { key: 0x02, asc: 0x3a });
    const removal = atapi(ch, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8]).data;
    assert.deepEqual(Array.from(removal), [0, 6, 4, 0x10, 3, 0x01, 0, 0]);

    drive.insertMedia(isoImage(10));
    const event = atapi(ch, [0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8]).data;
    assert.deepEqual(Array.from(event), [0, 6, 4, 0x10, 2, 0x02, 0, 0]);
    assert.equal(atapi(ch, [0x00]).status & 1, 1);
    assert.deepEqual(requestSense(ch), { key: 0x06, asc: 0x28 });
    assert.equal(atapi(ch, [0x00]).status & 1, 0);
    const capacity = atapi(ch, [0x25]).data;
    assert.equal(capacity[3], 9);
  });

  it("READ(10) by DMA", () => {
    const { r, ch, iso } = cdRig();
    const engine = bm(r, 1);
    prdTable(r.memory, 0x2000, [[0x60000, 4096]]);
    engine.setTable(0x2000);
    engine.start(true);
    sendPacket(ch, [0x28, 0, 0, 0, 0, 10, 0, 0, 2], 0xfffe, true);
    assert.deepEqual(r.memory.readBytes(0x60000, 4096), iso.bytes.subarray(10 * 2048, 12 * 2048));
    assert.equal(engine.status() & 5, BM_STATUS_INTERRUPT);
    assert.equal(inb(ch, 2), 3);
    assert.equal(inb(ch, 7) & 0x89, 0);
  });

  it("unknown commands fail with invalid opcode", () => {
    const { ch } = cdRig();
    assert.equal(atapi(ch, [0xff]).status & 1, 1);
    assert.deepEqual(requestSense(ch), { key: 0x05, asc: 0x20 });
    assert.deepEqual(requestSense(ch), { key: 0, asc: 0 }, "sense is cleared once read");
  });
});

describe("block backends", () => {
  it("copy-on-write overlay keeps writes in memory and round-trips them", () => {
    const base = diskImage(16);
    const original = base.bytes.slice();
    const overlay = new CowOverlay(base);
    const r = rig({ master: IdeDrive.disk(overlay) });
    lba28(r.primary, 3, 1);
    out(r.primary, 7, 0x30);
    writeBytes(r.primary, new Uint8Array(512).fill(0xab));
    assert.deepEqual(base.bytes, original, "the image is untouched");
    lba28(r.primary, 2, 3);
    out(r.primary, 7, 0x20);
    const back = readBytes(r.primary, 3 * 512);
    assert.deepEqual(back.subarray(0, 512), original.subarray(1024, 1536));
    assert.deepEqual(back.subarray(512, 1024), new Uint8Array(512).fill(0xab));
    assert.deepEqual(back.subarray(1024), original.subarray(2048, 2560));

    const saved = structuredClone(r.ide.saveState());
    const fresh = new CowOverlay(base);
    const r2 = rig({ master: IdeDrive.disk(fresh) });
    r2.ide.loadState(saved, 1);
    assert.equal(fresh.overlaySectors, 1);
    lba28(r2.primary, 3, 1);
    out(r2.primary, 7, 0x20);
    assert.deepEqual(readBytes(r2.primary, 512), new Uint8Array(512).fill(0xab));
  });

  it("reads and writes raw image files; a read-only image refuses writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvisor-ide-"));
    try {
      const path = join(dir, "disk.img");
      writeFileSync(path, new Uint8Array(4 * 512 + 100).fill(7));
      const file = new FileBlockBackend(path);
      assert.equal(file.sectorCount, 5);
      const r = rig({ master: IdeDrive.disk(file) });
      lba28(r.primary, 4, 1);
      out(r.primary, 7, 0x20);
      const last = readBytes(r.primary, 512);
      assert.equal(last[99], 7);
      assert.equal(last[100], 0, "past the end of the file reads as zeros");
      lba28(r.primary, 1, 1);
      out(r.primary, 7, 0x30);
      writeBytes(r.primary, new Uint8Array(512).fill(0x42));
      file.close();
      assert.equal(readFileSync(path)[512], 0x42);

      const readOnly = new FileBlockBackend(path, { readOnly: true });
      const r2 = rig({ master: IdeDrive.disk(readOnly) });
      lba28(r2.primary, 1, 1);
      out(r2.primary, 7, 0x30);
      assert.equal(inb(r2.primary, 7) & 1, 1);
      readOnly.close();
      assert.throws(() => new FileBlockBackend(join(dir, "missing.img")), /cannot open disk image/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

/** Completes requests only when the test says so, as a backend on another thread would. */
class DeferredBackend implements BlockBackend {
  readonly queue: (() => void)[] = [];
  readonly inner: MemoryBlockBackend;
  constructor(inner: MemoryBlockBackend) {
    this.inner = inner;
  }
  get sectorCount(): number {
    return this.inner.sectorCount;
  }
  get readOnly(): boolean {
    return this.inner.readOnly;
  }
  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void {
    this.queue.push(() => this.inner.read(sector, count, into, done));
  }
  write(sector: number, count: number, from: Uint8Array, done: BlockCallback): void {
    const copy = from.slice(0, count * 512);
    this.queue.push(() => this.inner.write(sector, count, copy, done));
  }
  flush(done: BlockCallback): void {
    this.queue.push(() => done(undefined));
  }
  runAll(): number {
    let n = 0;
    while (this.queue.length > 0) {
      this.queue.shift()!();
      n++;
    }
    return n;
  }
}

describe("asynchronous backends", () => {
  it("a PIO read shows BSY until the backend completes", () => {
    const image = diskImage(64);
    const backend = new DeferredBackend(image);
    const r = rig({ master: IdeDrive.disk(backend) });
    lba28(r.primary, 3, 1);
    out(r.primary, 7, 0x20);
    assert.equal(altStatus(r.primary) & 0x88, 0x80);
    assert.equal(r.irq14.level, false);
    assert.equal(backend.runAll(), 1);
    assert.equal(altStatus(r.primary) & 0x88, 0x08);
    assert.equal(r.irq14.level, true);
    assert.deepEqual(readBytes(r.primary, 512), image.bytes.subarray(3 * 512, 4 * 512));
  });

  it("a long DMA read continues chunk by chunk as completions arrive", () => {
    const image = diskImage(400);
    const backend = new DeferredBackend(image);
    const r = rig({ master: IdeDrive.disk(backend) });
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [
      [0x20000, 0],
      [0x30000, 0],
      [0x40000, 300 * 512 - 0x20000],
    ]);
    engine.setTable(0x1000);
    lba48(r.primary, 50, 300);
    out(r.primary, 7, 0x25);
    engine.start(true);
    assert.equal(backend.runAll(), 3, "three 128-sector chunks");
    assert.equal(r.irq14.level, true);
    assert.deepEqual(r.memory.readBytes(0x20000, 300 * 512), image.bytes.subarray(50 * 512, 350 * 512));
    assert.equal(engine.status() & 5, BM_STATUS_INTERRUPT);
  });

  it("a completion for an abandoned command cannot overwrite the next command's data", () => {
    const backend = new DeferredBackend(diskImage(64));
    const r = rig({ master: IdeDrive.disk(backend) });
    lba28(r.primary, 3, 1);
    out(r.primary, 7, 0x20);
    assert.equal(r.ide.hostIoPending, true);
    r.primary.controlBlock.ioWrite(0, 1, 0x04);
    r.primary.controlBlock.ioWrite(0, 1, 0x00);
    out(r.primary, 7, 0xec);
    backend.runAll();
    assert.equal(r.ide.hostIoPending, false);
    const words = new Uint16Array(256);
    for (let i = 0; i < 256; i++) words[i] = readWord(r.primary);
    assert.equal(words[0], 0x0040, "IDENTIFY data, not the stale sector");
    assert.equal(identifyString(words, 27, 20), "TSVISOR HARDDISK");
  });

  it("restarting the engine while a DMA read waits for the host does not start it twice", () => {
    const image = diskImage(400);
    const backend = new DeferredBackend(image);
    const r = rig({ master: IdeDrive.disk(backend) });
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [[0x20000, 2 * 512]]);
    engine.setTable(0x1000);
    lba28(r.primary, 9, 2);
    out(r.primary, 7, 0xc8);
    engine.start(true);
    r.ide.busMasterPorts.ioWrite(0, 1, 0x08);
    engine.start(true);
    assert.equal(backend.runAll(), 1, "one read, not two");
    assert.deepEqual(r.memory.readBytes(0x20000, 1024), image.bytes.subarray(9 * 512, 11 * 512));
    assert.equal(engine.status() & 5, BM_STATUS_INTERRUPT);
  });

  it("stopping the engine abandons the transfer", () => {
    const backend = new DeferredBackend(diskImage(400));
    const r = rig({ master: IdeDrive.disk(backend) });
    const engine = bm(r, 0);
    prdTable(r.memory, 0x1000, [[0x20000, 512]]);
    engine.setTable(0x1000);
    lba28(r.primary, 9, 1);
    out(r.primary, 7, 0xc8);
    engine.start(true);
    engine.stop();
    backend.runAll();
    assert.deepEqual(r.memory.readBytes(0x20000, 4), new Uint8Array(4));
    assert.equal(r.irq14.level, false);
  });

  it("a software reset makes a late completion harmless", () => {
    const backend = new DeferredBackend(diskImage(64));
    const r = rig({ master: IdeDrive.disk(backend) });
    lba28(r.primary, 3, 1);
    out(r.primary, 7, 0x20);
    r.primary.controlBlock.ioWrite(0, 1, 0x04);
    r.primary.controlBlock.ioWrite(0, 1, 0x00);
    backend.runAll();
    assert.equal(inb(r.primary, 7), 0x50);
    assert.equal(r.irq14.level, false);
  });
});

describe("asynchronous image files", () => {
  it("complete through the posted queue: BSY first, then data, then writes reach the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvisor-ide-"));
    try {
      const path = join(dir, "disk.img");
      const content = Uint8Array.from({ length: 8 * 512 }, (_, i) => (i * 5) & 0xff);
      writeFileSync(path, content);
      const posted: (() => void)[] = [];
      const backend = await AsyncFileBlockBackend.open(path, { post: (task) => posted.push(task) });
      const r = rig({ master: IdeDrive.disk(backend) });
      const settle = async () => {
        while (posted.length === 0) await new Promise((resolve) => setImmediate(resolve));
        while (posted.length > 0) posted.shift()!();
      };
      lba28(r.primary, 2, 2);
      out(r.primary, 7, 0x20);
      assert.equal(altStatus(r.primary) & 0x80, 0x80);
      await settle();
      assert.deepEqual(readBytes(r.primary, 512), content.subarray(1024, 1536));
      await settle();
      assert.deepEqual(readBytes(r.primary, 512), content.subarray(1536, 2048));

      lba28(r.primary, 7, 1);
      out(r.primary, 7, 0x30);
      writeBytes(r.primary, new Uint8Array(512).fill(0x5a));
      assert.equal(altStatus(r.primary) & 0x80, 0x80);
      await settle();
      assert.equal(inb(r.primary, 7), 0x50);
      out(r.primary, 7, 0xe7);
      await settle();
      assert.equal(inb(r.primary, 7), 0x50);
      await backend.close();
      assert.equal(readFileSync(path)[7 * 512 + 100], 0x5a);
      await assert.rejects(
        AsyncFileBlockBackend.open(join(dir, "missing.img"), { post: () => {} }),
        /cannot open/,
      );
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe("IDE state", () => {
  it("a PIO read saved half-way continues after loading", () => {
    const disk = diskImage(64);
    const r = rig({ master: IdeDrive.disk(disk) });
    lba28(r.primary, 20, 2);
    out(r.primary, 7, 0x20);
    const firstHalf = readBytes(r.primary, 300);
    const saved = structuredClone(r.ide.saveState());
    const r2 = rig({ master: IdeDrive.disk(disk) });
    r2.ide.loadState(saved, r.ide.stateVersion);
    assert.equal(r2.irq14.level, true, "the pending interrupt comes back");
    const rest = readBytes(r2.primary, 724);
    assert.deepEqual(Uint8Array.from([...firstHalf, ...rest]), disk.bytes.subarray(20 * 512, 22 * 512));
    assert.deepEqual(r2.ide.saveState().busMasters, r.ide.saveState().busMasters);
  });

  it("round-trips ATAPI and bus-master state, and rejects mismatched drives", () => {
    const iso = isoImage(10);
    const r = rig({}, { master: IdeDrive.cdrom(iso) });
    atapi(r.secondary, [0x1e, 0, 0, 0, 1]);
    bm(r, 1).setTable(0x1234);
    const saved = structuredClone(r.ide.saveState());
    const r2 = rig({}, { master: IdeDrive.cdrom(iso) });
    r2.ide.loadState(saved, 1);
    assert.deepEqual(r2.ide.saveState(), r.ide.saveState());
    assert.equal(r2.ide.channels[1].drives[0]!.locked, true);
    const r3 = rig({ master: IdeDrive.disk(new MemoryBlockBackend(4)) });
    assert.throws(() => r3.ide.loadState(saved, 1), /presence/);
  });
});

describe("IDE against random guest input", () => {
  it("never throws, whatever the registers, packets and PRD tables say", () => {
    let seed = 99;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const r = rig(
      { master: IdeDrive.disk(diskImage(300)), slave: IdeDrive.cdrom(isoImage(40)) },
      { master: IdeDrive.disk(new CowOverlay(diskImage(50))) },
    );
    for (let a = 0; a < 0x100000; a += 4096) r.memory.write32(a + random(4096 / 4) * 4, random(0x7fffffff));
    const commands = [
      0x20, 0x24, 0x29, 0x30, 0x34, 0x39, 0xc4, 0xc5, 0xc6, 0xc8, 0xca, 0x25, 0x35, 0xa0, 0xa1,
    ];
    for (let i = 0; i < 60000; i++) {
      const ch = random(2) === 0 ? r.primary : r.secondary;
      const what = random(12);
      if (what < 4) ch.commandBlock.ioWrite(1 + random(6), 1, random(256));
      else if (what === 4)
        ch.commandBlock.ioWrite(7, 1, random(3) ? commands[random(commands.length)]! : random(256));
      else if (what === 5) ch.controlBlock.ioWrite(0, 1, random(256));
      else if (what === 6) ch.commandBlock.ioWrite(0, 2, random(0x10000));
      else if (what === 7) ch.commandBlock.ioRead(0, random(2) ? 2 : 4);
      else if (what === 8) r.ide.busMasterPorts.ioWrite(random(16), 1, random(256));
      else if (what === 9) r.ide.busMasterPorts.ioWrite(random(2) * 8 + 4, 4, random(0x100000));
      else ch.commandBlock.ioRead(random(8), 1);
    }
    const saved = structuredClone(r.ide.saveState());
    r.ide.loadState(saved, 1);
    assert.deepEqual(r.ide.saveState(), saved);
  });
});
