// System test: the Debian kernel with its console on the VGA screen (console=tty0), driven from
// the PS/2 keyboard as a person at the screen would: the shell appears on screen, a typed command
// runs, and `poweroff` ends the VM.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ensureImages } from "../src/images/index.ts";
import { buildPc } from "../src/machine/pc.ts";
import { testPc } from "../src/machine/test-support.ts";

interface PcInternals {
  scheduler: { createTimer(name: string, cb: () => void): { setIn(ns: number): void } };
  vga: { textContent(): string };
  i8042: { keyboard: { keyDown(code: string): void; keyUp(code: string): void } };
}

/** DOM key codes for a line of lower-case text, digits, spaces and '-', then Enter. */
function keysFor(line: string): string[] {
  const codes = [...line].map((c) => {
    if (c >= "a" && c <= "z") return `Key${c.toUpperCase()}`;
    if (c >= "0" && c <= "9") return `Digit${c}`;
    if (c === " ") return "Space";
    if (c === "-") return "Minus";
    throw new Error(`no key for '${c}'`);
  });
  return [...codes, "Enter"];
}

describe("Linux on the VGA console", () => {
  it("shows the shell on screen, runs what is typed on the keyboard, powers off", async () => {
    const manifest = await ensureImages();
    const machine = buildPc(
      testPc({
        memoryBytes: 128 << 20,
        kernel: manifest.kernel.vmlinuz.path,
        initrd: manifest.kernel.initramfs.path,
        append: "console=tty0",
        bios: manifest.seabios.bios.path,
        vgaBios: manifest.seabios.vgabiosStdvga.path,
        timeoutSeconds: 600,
      }),
    );
    const pc = machine as unknown as PcInternals;
    const queue: string[] = [];
    let stage = 0;
    let screen = "";
    // Every 20 ms of guest time: look at the screen, press at most one key.
    const poll = pc.scheduler.createTimer("test-keyboard", () => {
      screen = pc.vga.textContent();
      const key = queue.shift();
      if (key) {
        pc.i8042.keyboard.keyDown(key);
        pc.i8042.keyboard.keyUp(key);
      } else if (stage === 0 && /tsvisor-guest:\/# *$/m.test(screen)) {
        stage = 1;
        queue.push(...keysFor("uname -r"));
      } else if (stage === 1 && screen.includes(manifest.kernel.release)) {
        stage = 2;
        queue.push(...keysFor("poweroff"));
      }
      poll.setIn(20e6);
    });
    poll.setIn(20e6);
    const reason = await machine.run();
    assert.equal(reason.kind, "poweroff", `${reason.detail}\n${screen}`);
    assert.equal(stage, 2, screen);
    assert.match(screen, /uname -r/);
  });
});
