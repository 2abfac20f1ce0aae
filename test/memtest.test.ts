// System tests: Debian's memtest86+ (unmodified) runs its first test to completion on the emulated
// PC, as seen on the VGA text screen — started as a --kernel through the firmware, and from a
// CD-ROM built here with GRUB (Debian's package ships no ISO, so the test makes one the way
// distributions do: grub-mkrescue with a `linux16` entry).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { defaultBootFiles, ensureImages, memtestImage } from "../src/images/index.ts";
import type { MachineConfig } from "../src/machine/machine.ts";
import { buildPc } from "../src/machine/pc.ts";
import { testPc } from "../src/machine/test-support.ts";
import { decodePng, inkInRows } from "./support/png.ts";
import { have } from "./support/tools.ts";

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

  /** Runs until memtest86+ shows test #1 or later on screen (test #0 has completed). */
  async function runFirstTest(config: Partial<MachineConfig>): Promise<{ screen: string; png: Uint8Array }> {
    const machine = buildPc(testPc({ memoryBytes: 32 << 20, bios, vgaBios, timeoutSeconds: 40, ...config }));
    const pc = machine as unknown as PcInternals;
    let screen = "";
    // Look at the screen every 50 ms of guest time.
    const poll = pc.scheduler.createTimer("test-poll", () => {
      screen = pc.vga.textContent();
      if (/Test #([1-9]|1\d)\b/.test(screen))
        machine.loop.stop({ kind: "stopped", detail: "first test completed" });
      else poll.setIn(50e6);
    });
    poll.setIn(50e6);
    const reason = await machine.run();
    assert.equal(reason.kind, "stopped", `${reason.detail}\n${screen}`);
    return { screen, png: machine.screenshot()! };
  }

  function checkScreen(screen: string, png: Uint8Array): void {
    assert.match(screen, /Memtest86\+ v\d+\.\d+/);
    assert.match(screen, /Errors: 0/);
    const image = decodePng(png);
    assert.equal(image.width, 720);
    assert.ok(inkInRows(image, 0, 16) > 500, "the title bar is drawn");
  }

  it("boots from --kernel through the firmware and completes its first test", async () => {
    const { screen, png } = await runFirstTest({ kernel });
    checkScreen(screen, png);
  });

  it("boots from a GRUB CD-ROM and completes its first test", {
    skip: !(have("grub-mkrescue") && have("xorriso")) && "grub-mkrescue/xorriso are not installed",
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvisor-memtest-"));
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "boot/grub"), { recursive: true });
    copyFileSync(kernel, join(tree, "boot/memtest.bin"));
    writeFileSync(
      join(tree, "boot/grub/grub.cfg"),
      "set timeout=0\nset default=0\nmenuentry memtest86+ {\n  linux16 /boot/memtest.bin\n}\n",
    );
    const iso = join(dir, "memtest.iso");
    execFileSync("grub-mkrescue", ["-o", iso, tree], { stdio: "ignore" });
    const { screen, png } = await runFirstTest({ cdrom: iso, boot: "d" });
    checkScreen(screen, png);
  });
});
