// System tests: Debian's unmodified SeaBIOS on the PC board.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { defaultBootFiles, ensureImages } from "../src/images/index.ts";
import { buildPc } from "../src/machine/pc.ts";
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
    const machine = buildPc({
      memoryBytes: 128 << 20,
      bios,
      vgaBios,
      disks: [],
      boot: "c",
      debugExit: false,
      pcTestdev: false,
      noReboot: true,
      clock: "deterministic",
      timeoutSeconds: 1,
    });
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
});
