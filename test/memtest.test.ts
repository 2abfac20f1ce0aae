// System test: Debian's memtest86+ (unmodified) started as a --kernel through the firmware runs
// its first test to completion on the emulated PC, as seen on the VGA text screen.
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { defaultBootFiles, ensureImages, memtestImage } from "../src/images/index.ts";
import { buildPc } from "../src/machine/pc.ts";
import { decodePng, inkInRows } from "./support/png.ts";

interface PcInternals {
  scheduler: { createTimer(name: string, cb: () => void): { setIn(ns: number): void } };
  vga: { textContent(): string };
}

describe("memtest86+", () => {
  let kernel = "";
  let bios = "";
  let vgaBios = "";
  before(async () => {
    const manifest = await ensureImages();
    const files = defaultBootFiles(manifest);
    bios = files.bios;
    vgaBios = files.vgabios;
    const image = memtestImage(manifest, "bin");
    assert.ok(image, "the memtest86+ package has a 32-bit .bin image");
    kernel = image.path;
  });

  it("boots from --kernel through the firmware and completes its first test", async () => {
    const machine = buildPc({
      memoryBytes: 32 << 20,
      kernel,
      bios,
      vgaBios,
      disks: [],
      boot: "c",
      debugExit: false,
      pcTestdev: false,
      noReboot: true,
      clock: "deterministic",
      timeoutSeconds: 30,
    });
    const pc = machine as unknown as PcInternals;
    let screen = "";
    // Look at the screen every 50 ms of guest time; stop once test #1 has begun (#0 is done).
    const poll = pc.scheduler.createTimer("test-poll", () => {
      screen = pc.vga.textContent();
      if (/Test #([1-9]|1\d)\b/.test(screen))
        machine.loop.stop({ kind: "stopped", detail: "first test completed" });
      else poll.setIn(50e6);
    });
    poll.setIn(50e6);
    const reason = await machine.run();
    assert.equal(reason.kind, "stopped", `${reason.detail}\n${screen}`);
    assert.match(screen, /Memtest86\+ v\d+\.\d+/);
    assert.match(screen, /Errors: 0/);
    const png = decodePng(machine.screenshot()!);
    assert.equal(png.width, 720);
    assert.ok(inkInRows(png, 0, 16) > 500, "the title bar is drawn");
  });
});
