// System tests: the firmware boots real boot loaders from disks and CD-ROMs built here with
// Debian's tools (nasm, grub-mkrescue + xorriso, isolinux), on the PC board with Debian's SeaBIOS.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { defaultBootFiles, ensureImages } from "../src/images/index.ts";
import type { MachineConfig } from "../src/machine/machine.ts";
import { buildPc } from "../src/machine/pc.ts";
import { testPc } from "../src/machine/test-support.ts";
import { have } from "./support/tools.ts";

interface PcInternals {
  scheduler: { createTimer(name: string, cb: () => void): { setIn(ns: number): void } };
  vga: { textContent(): string };
  i8042: { keyboard: { keyDown(code: string): void; keyUp(code: string): void } };
}

const dir = mkdtempSync(join(tmpdir(), "tsvisor-boot-"));

/**
 * Runs a machine until `done(screen)` holds (checked every 20 ms of guest time), `onReady` may
 * type keys once it first holds; returns the screen text and the firmware's debug output.
 */
async function bootUntil(
  config: Partial<MachineConfig>,
  done: (screen: string) => boolean,
  guestSeconds = 60,
): Promise<{ screen: string; debugcon: string; reason: string }> {
  const files = defaultBootFiles(await ensureImages());
  const machine = buildPc(
    testPc({
      memoryBytes: 64 << 20,
      bios: files.bios,
      vgaBios: files.vgabios,
      timeoutSeconds: guestSeconds,
      ...config,
    }),
  );
  const pc = machine as unknown as PcInternals;
  let debugcon = "";
  machine.setOutput("debugcon", (d) => {
    debugcon += Buffer.from(d).toString("latin1");
  });
  let screen = "";
  const poll = pc.scheduler.createTimer("test-poll", () => {
    screen = pc.vga.textContent();
    if (done(screen)) machine.loop.stop({ kind: "stopped", detail: "condition met" });
    else poll.setIn(20e6);
  });
  poll.setIn(20e6);
  const reason = await machine.run();
  return { screen: pc.vga.textContent(), debugcon, reason: reason.kind };
}

describe("boot loaders", () => {
  before(async () => {
    await ensureImages();
  });

  it("boots a hard disk whose MBR was written by the test", {
    skip: !have("nasm") && "nasm is not installed",
  }, async () => {
    const source = join(dir, "mbr.asm");
    writeFileSync(
      source,
      [
        "BITS 16",
        "ORG 0x7c00",
        "  xor ax, ax",
        "  mov ds, ax",
        "  mov si, msg",
        ".next:",
        "  lodsb",
        "  test al, al",
        "  jz .done",
        "  out 0xe9, al",
        "  mov ah, 0x0e",
        "  mov bx, 7",
        "  int 0x10",
        "  jmp .next",
        ".done:",
        "  cli",
        "  hlt",
        'msg: db "MBR-BOOT-OK from drive ", 0',
        "times 510-($-$$) db 0",
        "dw 0xaa55",
      ].join("\n"),
    );
    execFileSync("nasm", ["-f", "bin", "-o", join(dir, "mbr.bin"), source]);
    const disk = new Uint8Array(4 << 20);
    disk.set(readFileSync(join(dir, "mbr.bin")));
    const image = join(dir, "disk.img");
    writeFileSync(image, disk);
    const run = await bootUntil(
      { disks: [{ path: image, snapshot: true }] },
      (s) => s.includes("MBR-BOOT-OK"),
      10,
    );
    assert.equal(run.reason, "stopped", run.screen);
    assert.match(run.debugcon, /MBR-BOOT-OK/);
    assert.match(run.screen, /Booting from Hard Disk/);
  });

  it("boots a GRUB rescue CD built with grub-mkrescue to the GRUB prompt", {
    skip: !(have("grub-mkrescue") && have("xorriso")) && "grub-mkrescue/xorriso are not installed",
  }, async () => {
    const tree = join(dir, "grub-tree");
    mkdirSync(tree, { recursive: true });
    const iso = join(dir, "grub.iso");
    execFileSync("grub-mkrescue", ["-o", iso, tree], { stdio: "ignore" });
    const run = await bootUntil({ cdrom: iso, boot: "d" }, (s) => /grub> ?$/m.test(s), 120);
    assert.equal(run.reason, "stopped", run.screen);
    assert.match(run.screen, /GNU GRUB/);
  });

  it("boots an ISOLINUX CD to its prompt, which takes keyboard input", {
    skip:
      !(
        existsSync("/usr/lib/ISOLINUX/isolinux.bin") &&
        existsSync("/usr/lib/syslinux/modules/bios/ldlinux.c32") &&
        have("xorriso")
      ) && "isolinux, syslinux-common or xorriso is not installed",
  }, async () => {
    const tree = join(dir, "isolinux-tree");
    mkdirSync(join(tree, "isolinux"), { recursive: true });
    copyFileSync("/usr/lib/ISOLINUX/isolinux.bin", join(tree, "isolinux/isolinux.bin"));
    copyFileSync("/usr/lib/syslinux/modules/bios/ldlinux.c32", join(tree, "isolinux/ldlinux.c32"));
    writeFileSync(join(tree, "isolinux/isolinux.cfg"), "SAY ISOLINUX-ON-TSVISOR\nPROMPT 1\nTIMEOUT 0\n");
    const iso = join(dir, "isolinux.iso");
    execFileSync(
      "xorriso",
      [
        "-as",
        "mkisofs",
        "-quiet",
        "-o",
        iso,
        "-b",
        "isolinux/isolinux.bin",
        "-c",
        "isolinux/boot.cat",
        "-no-emul-boot",
        "-boot-load-size",
        "4",
        "-boot-info-table",
        tree,
      ],
      { stdio: "ignore" },
    );
    const files = defaultBootFiles(await ensureImages());
    const machine = buildPc(
      testPc({
        memoryBytes: 64 << 20,
        bios: files.bios,
        vgaBios: files.vgabios,
        cdrom: iso,
        boot: "d",
        timeoutSeconds: 120,
      }),
    );
    const pc = machine as unknown as PcInternals;
    const typed = ["KeyT", "KeyS", "KeyV"];
    let stage = 0;
    const poll = pc.scheduler.createTimer("test-poll", () => {
      const screen = pc.vga.textContent();
      if (stage === 0 && /boot: ?$/m.test(screen)) stage = 1;
      if (stage >= 1 && stage <= typed.length) {
        // One key per poll: press and release, as a person types.
        pc.i8042.keyboard.keyDown(typed[stage - 1]!);
        pc.i8042.keyboard.keyUp(typed[stage - 1]!);
        stage++;
      } else if (stage > typed.length && /boot: tsv/.test(screen)) {
        machine.loop.stop({ kind: "stopped", detail: "typed" });
        return;
      }
      poll.setIn(50e6);
    });
    poll.setIn(50e6);
    const reason = await machine.run();
    const screen = pc.vga.textContent();
    assert.equal(reason.kind, "stopped", screen);
    assert.match(screen, /ISOLINUX-ON-TSVISOR/);
    assert.match(screen, /boot: tsv/);
  });
});
