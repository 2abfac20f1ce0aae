// The shared CPU microbenchmark (../shared/anchors/microbench.asm), with its loop counts cut down,
// as a multiboot ELF kernel: QEMU and tsvisor's bare runner must print the same phase markers on
// COM1 and exit through isa-debug-exit. It exercises the ELF path of the multiboot loader, the
// COM1 stub and the exit device with a program nobody wrote for this test.

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { BareMachine, loadTsvisorCpu } from "../../src/machine/bare-runner.ts";
import { QEMU_CPU } from "./run.ts";

const source = resolve(dirname(fileURLToPath(import.meta.url)), "../../../shared/anchors/microbench.asm");

/** Loop counts small enough for an interpreter in a unit test, large enough to loop. */
const COUNTS: Record<string, number> = {
  N_ALU: 2000,
  N_MEMOUTER: 1,
  N_CALL: 2000,
  N_FPU: 2000,
  N_SSE: 2000,
  N_REP: 1,
  N_BRANCH: 2000,
};

function have(command: string): boolean {
  try {
    execFileSync(command, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const skip = !existsSync(source)
  ? "../shared/anchors/microbench.asm is not there"
  : !have("nasm") || !have("ld") || !have("qemu-system-i386")
    ? "needs nasm, ld and qemu-system-i386"
    : false;
const cpu = await loadTsvisorCpu();

describe("microbench.asm, scaled down, on QEMU and on the bare runner", { skip }, () => {
  const work = mkdtempSync(join(tmpdir(), "tsvisor-microbench-"));
  let kernel: Uint8Array = new Uint8Array(0);
  let qemuSerial = "";
  let qemuStatus: number | null = null;

  before(async () => {
    let text = readFileSync(source, "utf8");
    for (const [name, count] of Object.entries(COUNTS)) {
      text = text.replace(new RegExp(`^(${name}\\s+equ\\s+)\\d+`, "m"), `$1${count}`);
    }
    writeFileSync(join(work, "mb.asm"), text);
    execFileSync("nasm", ["-f", "elf32", "-o", join(work, "mb.o"), join(work, "mb.asm")]);
    execFileSync("ld", [
      "-m",
      "elf_i386",
      "-Ttext",
      "0x100000",
      "-o",
      join(work, "mb.elf"),
      join(work, "mb.o"),
    ]);
    kernel = new Uint8Array(readFileSync(join(work, "mb.elf")));
    const serial = join(work, "serial.out");
    try {
      await promisify(execFile)(
        "qemu-system-i386",
        ["-nodefaults", "-display", "none", "-no-reboot", "-cpu", QEMU_CPU, "-m", "32"]
          .concat(["-serial", `file:${serial}`, "-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
          .concat(["-kernel", join(work, "mb.elf")]),
        { timeout: 60_000 },
      );
      qemuStatus = 0;
    } catch (error) {
      qemuStatus = (error as { code?: number }).code ?? null;
    }
    qemuSerial = readFileSync(serial, "latin1");
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  test("QEMU prints every phase marker and exits with status 1", () => {
    assert.equal(qemuStatus, 1);
    assert.match(qemuSerial, /^S\na\nA\nb\nB\nc\nC\nd\nD\ne\nE\n-?(f\n)?F\ng\nG\nh\nH\nZ\n$/);
  });

  test("tsvisor prints the same markers and exits the same way", {
    todo: "missing" in cpu ? `the CPU is not runnable yet: ${cpu.missing}` : false,
  }, () => {
    if ("missing" in cpu) throw new Error(cpu.missing);
    const machine = new BareMachine({ ramBytes: 32 << 20, createCpu: cpu.factory });
    machine.loadMultiboot(kernel);
    const result = machine.run(100_000_000);
    assert.equal(
      result.reason,
      "debug-exit",
      `stopped by ${result.reason} after ${result.instructions} instructions`,
    );
    assert.equal(result.exitStatus, 1);
    assert.equal(new TextDecoder("latin1").decode(result.serial), qemuSerial);
  });
});
