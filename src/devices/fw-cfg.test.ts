import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus } from "../core/bus.ts";
import { PhysicalMemory } from "../core/memory.ts";
import {
  FW_CFG_DMA_ERROR,
  FW_CFG_DMA_READ,
  FW_CFG_DMA_SELECT,
  FW_CFG_DMA_SKIP,
  FW_CFG_DMA_WRITE,
  FwCfg,
} from "./fw-cfg.ts";

function setup() {
  const memory = new PhysicalMemory();
  memory.addRam("ram", 0, 1 << 20);
  const fw = new FwCfg(memory, { ramSize: 256 << 20, cpus: 1 });
  const ports = new PortBus();
  ports.register("fw_cfg", 0x510, 12, fw);
  const readItem = (key: number, length: number) => {
    ports.out16(0x510, key);
    return Uint8Array.from({ length }, () => ports.in8(0x511));
  };
  /** Writes a DMA control structure at `at` and starts it the way SeaBIOS does. */
  const dma = (at: number, control: number, length: number, address: number) => {
    const header = new DataView(new ArrayBuffer(16));
    header.setUint32(0, control);
    header.setUint32(4, length);
    header.setUint32(8, 0);
    header.setUint32(12, address);
    memory.writeBytes(at, new Uint8Array(header.buffer));
    const be = (v: number) => new DataView(Uint32Array.of(v).buffer).getUint32(0, false) >>> 0;
    ports.out32(0x514, be(0));
    ports.out32(0x518, be(at));
    return new DataView(memory.readBytes(at, 4).buffer).getUint32(0);
  };
  return { memory, fw, ports, readItem, dma };
}

function findFile(dir: Uint8Array, name: string): { size: number; key: number } | undefined {
  const view = new DataView(dir.buffer, dir.byteOffset);
  const count = view.getUint32(0);
  for (let i = 0; i < count; i++) {
    const at = 4 + i * 64;
    const bytes = dir.subarray(at + 8, at + 64);
    const entryName = new TextDecoder().decode(bytes.subarray(0, bytes.indexOf(0)));
    if (entryName === name) return { size: view.getUint32(at), key: view.getUint16(at + 4) };
  }
  return undefined;
}

test("signature, id with DMA, RAM size and the DMA register signature", () => {
  const { readItem, ports } = setup();
  assert.equal(new TextDecoder().decode(readItem(0, 4)), "QEMU");
  assert.deepEqual([...readItem(1, 4)], [3, 0, 0, 0]);
  assert.deepEqual([...readItem(3, 8)], [0, 0, 0, 0x10, 0, 0, 0, 0]);
  assert.deepEqual([...readItem(5, 2)], [1, 0]);
  assert.equal(readItem(0x1234, 1)[0], 0, "unknown items read as zero");
  const sig = [ports.in32(0x514), ports.in32(0x518)];
  assert.equal(Buffer.from(Uint32Array.from(sig).buffer).toString("latin1"), "QEMU CFG");
});

test("files are listed in the big-endian directory", () => {
  const { fw, readItem } = setup();
  fw.setE820([{ address: 0, length: 0x9fc00, type: 1 }]);
  fw.setBootOrder(["/pci@i0cf8/ide@1,1/drive@0/disk@0"]);
  fw.setBootFailWait(5);
  const dirSize = 4 + 3 * 64;
  const dir = readItem(0x19, dirSize);
  assert.equal(new DataView(dir.buffer).getUint32(0), 3);
  const e820 = findFile(dir, "etc/e820")!;
  assert.equal(e820.size, 20);
  const entry = readItem(e820.key, 20);
  assert.equal(new DataView(entry.buffer).getUint32(8, true), 0x9fc00);
  assert.equal(new DataView(entry.buffer).getUint32(16, true), 1);
  assert.equal(findFile(dir, "etc/boot-fail-wait")!.size, 4);
  const order = findFile(dir, "bootorder")!;
  assert.equal(
    new TextDecoder().decode(readItem(order.key, order.size)),
    "/pci@i0cf8/ide@1,1/drive@0/disk@0\0",
  );
  assert.throws(() => fw.addFile("x".repeat(56), new Uint8Array(1)));
});

test("DMA select + read copies the item, pads with zeros past its end, then skip works", () => {
  const { fw, memory, dma } = setup();
  const key = fw.addFile("etc/test", Uint8Array.from([1, 2, 3, 4, 5, 6]));
  memory.writeBytes(0x2000, new Uint8Array(16).fill(0xee));
  const status = dma(0x1000, ((key << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ) >>> 0, 8, 0x2000);
  assert.equal(status, 0);
  assert.deepEqual([...memory.readBytes(0x2000, 10)], [1, 2, 3, 4, 5, 6, 0, 0, 0xee, 0xee]);
  dma(0x1000, ((key << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_SKIP) >>> 0, 2, 0);
  dma(0x1000, FW_CFG_DMA_READ, 2, 0x3000);
  assert.deepEqual([...memory.readBytes(0x3000, 2)], [3, 4]);
});

test("DMA writes reach writable items only", () => {
  const { fw, memory, dma } = setup();
  const seen: number[][] = [];
  const ro = fw.addFile("etc/ro", new Uint8Array(4));
  const rw = fw.addFile("etc/rw", new Uint8Array(4), true, (d) => seen.push([...d]));
  memory.writeBytes(0x2000, Uint8Array.from([9, 8, 7, 6]));
  assert.equal(
    dma(0x1000, ((ro << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE) >>> 0, 4, 0x2000),
    FW_CFG_DMA_ERROR,
  );
  assert.equal(dma(0x1000, ((rw << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE) >>> 0, 4, 0x2000), 0);
  assert.deepEqual(seen, [[9, 8, 7, 6]]);
  assert.deepEqual([...fw.file("etc/rw")!], [9, 8, 7, 6]);
  assert.equal(
    dma(0x1000, ((rw << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_WRITE) >>> 0, 5, 0x2000),
    FW_CFG_DMA_ERROR,
  );
});

test("an absurd DMA length fails instead of exhausting the host", () => {
  const { fw, dma } = setup();
  const key = fw.addFile("etc/x", new Uint8Array(2));
  assert.equal(
    dma(0x1000, ((key << 16) | FW_CFG_DMA_SELECT | FW_CFG_DMA_READ) >>> 0, 0xffff_ffff, 0x2000),
    FW_CFG_DMA_ERROR,
  );
});

test("linux boot items", () => {
  const { fw, readItem } = setup();
  fw.setLinuxBoot({
    setupAddress: 0x90000,
    setup: new Uint8Array(0x400),
    kernelAddress: 0x100000,
    kernel: new Uint8Array(0x1000),
    cmdlineAddress: 0x20000,
    cmdline: "console=ttyS0",
  });
  assert.equal(new DataView(readItem(0x08, 4).buffer).getUint32(0, true), 0x1000);
  assert.equal(new DataView(readItem(0x14, 4).buffer).getUint32(0, true), 14);
  assert.equal(new TextDecoder().decode(readItem(0x15, 13)), "console=ttyS0");
  assert.equal(new DataView(readItem(0x0b, 4).buffer).getUint32(0, true), 0);
});

test("state round-trips, including writable items", () => {
  const a = setup();
  a.fw.addFile("etc/rw", new Uint8Array(2), true);
  a.ports.out16(0x510, 0);
  a.ports.in8(0x511);
  a.fw.file("etc/rw")!.set([5, 6]);
  const b = setup();
  b.fw.addFile("etc/rw", new Uint8Array(2), true);
  b.fw.loadState(structuredClone(a.fw.saveState()), 1);
  assert.deepEqual(b.fw.saveState(), a.fw.saveState());
  assert.equal(String.fromCharCode(b.ports.in8(0x511)), "E", "continues after 'Q'");
  b.fw.reset();
  assert.equal(String.fromCharCode(b.ports.in8(0x511)), "Q", "reset selects the signature from its start");
  assert.throws(() => b.fw.loadState(null as never, 1), /not an object/);
  assert.throws(() => b.fw.loadState({ selector: "x" } as never, 1));
});
