import assert from "node:assert/strict";
import { test } from "node:test";
import type { Width } from "../../core/bus.ts";
import {
  type BarChange,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
  PciFunction,
} from "./function.ts";

const nullPorts = { ioRead: (_o: number, _w: Width) => 0, ioWrite: () => {} };
const nullMmio = { mmioRead: (_o: number, _w: Width) => 0, mmioWrite: () => {} };

function makeFunction(): { fn: PciFunction; changes: BarChange[] } {
  const fn = new PciFunction({
    name: "test",
    vendorId: 0x1234,
    deviceId: 0x1111,
    classCode: 0x030000,
    revision: 2,
    multiFunction: true,
    interruptPin: 1,
    bars: [
      { kind: "memory", size: 0x100_0000, prefetchable: true, ram: new Uint8Array(0x100_0000) },
      undefined,
      { kind: "memory", size: 0x1000, device: nullMmio },
      undefined,
      { kind: "io", size: 0x20, device: nullPorts },
    ],
    rom: new Uint8Array(0x9000),
  });
  const changes: BarChange[] = [];
  fn.onBarChange((c) => changes.push(c));
  return { fn, changes };
}

test("identity registers read back at byte, word and dword width", () => {
  const { fn } = makeFunction();
  assert.equal(fn.configRead(0, 4), 0x1111_1234);
  assert.equal(fn.configRead(2, 2), 0x1111);
  assert.equal(fn.configRead(8, 4), 0x0300_0002);
  assert.equal(fn.configRead(0x0e, 1), 0x80);
  assert.equal(fn.configRead(0x3d, 1), 1);
  fn.configWrite(0, 4, 0);
  assert.equal(fn.configRead(0, 4), 0x1111_1234, "ids are read-only");
});

test("BAR sizing returns the size mask and type bits", () => {
  const { fn, changes } = makeFunction();
  fn.configWrite(0x10, 4, 0xffffffff);
  assert.equal(fn.configRead(0x10, 4), 0xff00_0008);
  fn.configWrite(0x18, 4, 0xffffffff);
  assert.equal(fn.configRead(0x18, 4), 0xffff_f000);
  fn.configWrite(0x20, 4, 0xffffffff);
  assert.equal(fn.configRead(0x20, 4), 0xffff_ffe1);
  fn.configWrite(0x14, 4, 0xffffffff);
  assert.equal(fn.configRead(0x14, 4), 0, "unimplemented BAR");
  fn.configWrite(0x30, 4, 0xffffffff);
  assert.equal(fn.configRead(0x30, 4), 0xffff_0001, "ROM of 36 KiB rounds up to 64 KiB");
  assert.equal(changes.length, 0, "nothing decodes while the command register is zero");
});

test("command enables decoding; moves and disables are reported", () => {
  const { fn, changes } = makeFunction();
  fn.configWrite(0x10, 4, 0xfd00_0000);
  fn.configWrite(0x20, 4, 0xc001);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_IO);
  assert.deepEqual(
    changes.map((c) => [c.index, c.from, c.to]),
    [[4, undefined, 0xc000]],
  );
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  assert.deepEqual(changes.at(-1)!.index, 0);
  assert.equal(changes.at(-1)!.to, 0xfd00_0000);
  fn.configWrite(0x20, 2, 0xc100);
  assert.deepEqual([changes.at(-1)!.from, changes.at(-1)!.to], [0xc000, 0xc100]);
  // Sizing with decoding on takes the BAR off the bus, restoring it puts it back.
  fn.configWrite(0x10, 4, 0xffffffff);
  assert.deepEqual([changes.at(-1)!.index, changes.at(-1)!.to], [0, undefined]);
  fn.configWrite(0x10, 4, 0xfd00_0000);
  assert.equal(changes.at(-1)!.to, 0xfd00_0000);
  fn.configWrite(0x30, 4, 0xfeb0_0001);
  assert.deepEqual([changes.at(-1)!.index, changes.at(-1)!.to], [6, 0xfeb0_0000]);
  assert.equal(changes.at(-1)!.bar.kind, "rom");
  const before = changes.length;
  fn.configWrite(PCI_COMMAND, 2, 0);
  assert.deepEqual(
    changes.slice(before).map((c) => [c.index, c.to]),
    [
      [0, undefined],
      [4, undefined],
      [6, undefined],
    ],
  );
});

test("INTx follows the device request and the disable bit", () => {
  const { fn } = makeFunction();
  fn.setInterrupt(true);
  assert.equal(fn.intx.level, true);
  assert.ok(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
  assert.equal(fn.intx.level, false);
  assert.ok(fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, "status still shows the request");
  fn.configWrite(PCI_COMMAND, 2, 0);
  assert.equal(fn.intx.level, true);
  fn.setInterrupt(false);
  assert.equal(fn.intx.level, false);
});

test("capabilities are chained", () => {
  const { fn } = makeFunction();
  fn.addCapability(0x01, 0x50, 8);
  fn.addCapability(0x05, 0x60, 8);
  assert.ok(fn.configRead(PCI_STATUS, 2) & 0x10);
  assert.equal(fn.configRead(0x34, 1), 0x50);
  assert.equal(fn.configRead(0x50, 2), 0x6001);
  assert.equal(fn.configRead(0x60, 2), 0x0005);
});

test("state round-trips and re-reports decoding", () => {
  const { fn } = makeFunction();
  fn.configWrite(0x20, 4, 0xc001);
  fn.configWrite(0x3c, 1, 11);
  fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_IO);
  fn.setInterrupt(true);
  const saved = fn.saveState();
  const { fn: other, changes } = makeFunction();
  other.loadState(structuredClone(saved), fn.stateVersion);
  assert.deepEqual(other.saveState(), saved);
  assert.equal(other.intx.level, true);
  assert.deepEqual(
    changes.map((c) => [c.index, c.to]),
    [[4, 0xc000]],
  );
  assert.throws(() => other.loadState({ config: new Uint8Array(3), intxLevel: false }, 1));
  assert.throws(() => other.loadState(null as never, 1), /not an object/);
});
