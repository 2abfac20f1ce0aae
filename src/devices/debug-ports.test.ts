import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus } from "../core/bus.ts";
import { IrqLine } from "../core/irq.ts";
import { saveVersioned } from "../core/persist.ts";
import { DebugConsole, DebugExit, PcTestDev, PostCodePort } from "./debug-ports.ts";

test("POST code port remembers the last code and reports each one", () => {
  const seen: number[] = [];
  const port = new PostCodePort((c) => seen.push(c));
  port.ioWrite(0, 1, 0x12);
  port.ioWrite(0, 2, 0x3456);
  assert.equal(port.ioRead(0, 1), 0x56);
  assert.deepEqual(seen, [0x12, 0x56]);
  const copy = new PostCodePort();
  copy.loadState(structuredClone(port.saveState()), 1);
  assert.equal(copy.lastCode, 0x56);
  assert.throws(() => copy.loadState({ code: "x" } as never, 1));
});

test("debugcon passes bytes through and reads back 0xE9", () => {
  const out: number[] = [];
  const bus = new PortBus();
  bus.register("debugcon", 0xe9, 1, new DebugConsole((b) => out.push(b)));
  bus.register("seabios-log", 0x402, 1, new DebugConsole((b) => out.push(b | 0x100)));
  bus.out8(0xe9, 0x48);
  bus.out8(0x402, 0x49);
  assert.deepEqual(out, [0x48, 0x149]);
  assert.equal(bus.in8(0xe9), 0xe9);
  assert.equal(bus.in8(0x402), 0xe9, "SeaBIOS looks for this value to enable its log");
});

test("isa-debug-exit reports (value << 1) | 1", () => {
  const codes: number[] = [];
  const exit = new DebugExit((c) => codes.push(c));
  exit.ioWrite(0, 1, 0);
  exit.ioWrite(0, 4, 0x80000000);
  exit.ioWrite(0, 1, 0x1ff);
  assert.deepEqual(codes, [1, 0x100000001, 0x1ff]);
});

test("pc-testdev scratch register works at any width and offset", () => {
  const dev = new PcTestDev([]);
  const bus = new PortBus();
  bus.register("pc-testdev", 0xe0, 12, dev.ports);
  bus.out32(0xe0, 0x11223344);
  assert.equal(bus.in8(0xe1), 0x33);
  assert.equal(bus.in16(0xe2), 0x1122);
  bus.out8(0xe3, 0xaa);
  assert.equal(bus.in32(0xe0), 0xaa223344);
  bus.out16(0xe8, 0xbeef);
  assert.equal(bus.in32(0xe8), 0xaa22beef, "0xE8 is the same register");
  assert.equal(dev.register, 0xaa22beef);
});

test("pc-testdev flush port reports the page", () => {
  const pages: number[] = [];
  const dev = new PcTestDev([], (p) => pages.push(p));
  dev.ports.ioWrite(4, 4, 0x12345678);
  assert.deepEqual(pages, [0x12345000]);
});

test("pc-testdev drives IRQ lines and its MMIO page holds data", () => {
  const lines = Array.from({ length: 24 }, (_, i) => new IrqLine(`gsi${i}`));
  const dev = new PcTestDev(lines);
  dev.irqPorts.ioWrite(10, 1, 1);
  assert.equal(lines[10]!.level, true);
  dev.irqPorts.ioWrite(10, 1, 0);
  assert.equal(lines[10]!.level, false);
  dev.irqPorts.ioWrite(3, 1, 5);
  dev.memory.mmioWrite(0x100, 4, 0xdeadbeef);
  assert.equal(dev.memory.mmioRead(0x102, 2), 0xdead);
  assert.equal(dev.memory.mmioRead(0x100, 4), 0xdeadbeef);
  dev.memory.mmioWrite(0xffff, 4, 0x01020304);
  assert.equal(dev.memory.mmioRead(0xffff, 1), 0x04, "writes past the end are cut off");

  const saved = structuredClone(saveVersioned(dev));
  const lines2 = Array.from({ length: 24 }, (_, i) => new IrqLine(`gsi${i}`));
  const copy = new PcTestDev(lines2);
  copy.loadState(saved.state, saved.version);
  assert.equal(lines2[3]!.level, true);
  assert.equal(copy.memory.mmioRead(0x100, 4), 0xdeadbeef);
  assert.throws(() => copy.loadState({ data: 0, memory: new Uint8Array(4), irqLevels: 0 }, 1));
});
