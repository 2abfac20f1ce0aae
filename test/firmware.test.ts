// System tests: Debian's unmodified SeaBIOS on the PC board.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { defaultBootFiles, ensureImages } from "../src/images/index.ts";
import { buildPc } from "../src/machine/pc.ts";
import { testPc } from "../src/machine/test-support.ts";
import { decodePng, inkInRows } from "./support/png.ts";

describe("SeaBIOS", () => {
  let bios = "";
  let vgaBios = "";
  before(async () => {
    const files = defaultBootFiles(await ensureImages());
    bios = files.bios;
    vgaBios = files.vgabios;
  });

  it("boots: banner on the debug port and on the VGA screen, then looks for boot devices", async () => {
    const machine = buildPc(testPc({ memoryBytes: 128 << 20, bios, vgaBios, timeoutSeconds: 1 }));
    let log = "";
    machine.setOutput("firmware-log", (d) => {
      log += Buffer.from(d).toString("latin1");
    });
    const reason = await machine.run();
    assert.equal(reason.kind, "timeout", reason.detail);
    assert.match(log, /SeaBIOS \(version 1\.\d+/);
    assert.match(log, /Running on QEMU \(i440fx\)/, "fw_cfg and the host bridge identify the board");
    assert.match(log, /Found \d+ PCI devices/);
    assert.match(log, /PCI: map device bdf=00:02\.0 +bar 0, addr fd000000, size 01000000 \[prefmem\]/);
    assert.match(log, /Booting from Hard Disk/);

    const text = (machine as unknown as { vga: { textContent(): string } }).vga.textContent();
    assert.match(text.split("\n")[0]!, /^SeaBIOS \(version 1\.\d+/);
    const png = decodePng(machine.screenshot()!);
    assert.equal(png.width, 720);
    assert.equal(png.height, 400);
    assert.ok(inkInRows(png, 0, 16) > 200, "the banner line is drawn");
    assert.equal(inkInRows(png, 384, 400), 0, "the bottom line is empty");
  });

  it("switches port traces, the unhandled-port log and the instruction trace at run time", async () => {
    const machine = buildPc(testPc({ memoryBytes: 64 << 20, bios, vgaBios, timeoutSeconds: 0.02 }));
    let trace = "";
    machine.setOutput("trace", (d) => {
      trace += Buffer.from(d).toString("latin1");
    });
    assert.equal(machine.monitor("trace ports on"), "port trace on");
    assert.equal(machine.monitor("trace unhandled on"), "unhandled-port log on");
    assert.match(machine.monitor("trace sideways on"), /usage: trace/);
    await machine.run();
    assert.match(trace, /^port out 0cf8 32-bit 80000000 pci-config$/m, "SeaBIOS probes the host bridge");
    assert.match(trace, /^port out 0402 8-bit [0-9a-f]{2} firmware-log$/m);
    machine.monitor("trace ports off");
    machine.monitor("trace unhandled off");
    assert.match(machine.monitor("info registers"), /EIP=[0-9a-f]{8}/);

    const cpuTrace = buildPc(testPc({ memoryBytes: 64 << 20, bios, vgaBios, timeoutSeconds: 0.000001 }));
    let lines = "";
    cpuTrace.setOutput("trace", (d) => {
      lines += Buffer.from(d).toString("latin1");
    });
    cpuTrace.monitor("trace cpu on");
    await cpuTrace.run();
    // The first instruction after reset is the far jump at F000:FFF0.
    assert.match(lines.split("\n")[0]!, /^f000:0000fff0 jmp /);
  });
});
