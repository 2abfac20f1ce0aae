// System tests of `tsvisor run`'s command-line contract: bad input is one clear line and status 2,
// each way a VM ends has its status, and the launcher's compile cache serves the VM's worker too.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = join(import.meta.dirname, "..");
const node = join(root, "node_modules/.bin/node");
const cli = join(root, "bin/tsvisor.js");

function tsvisor(...args: string[]) {
  return tsvisorWith(process.env, ...args);
}

function tsvisorWith(env: NodeJS.ProcessEnv, ...args: string[]) {
  const r = spawnSync(node, [cli, ...args], { encoding: "utf8", input: "", timeout: 60_000, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The text of every file under `dir`. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name), "latin1"));
}

/**
 * The smallest bzImage the loaders accept (boot protocol 2.02, four setup sectors) with
 * `kernelBytes` of protected-mode code: enough to be refused for its size.
 */
function bzImage(kernelBytes: number): Uint8Array {
  const setupBytes = 5 * 512;
  const image = new Uint8Array(setupBytes + kernelBytes);
  const view = new DataView(image.buffer);
  image[0x1f1] = 4; // setup sectors
  view.setUint32(0x1f4, kernelBytes / 16, true); // syssize
  view.setUint16(0x1fe, 0xaa55, true);
  image[0x200] = 0xeb; // jmp over the header, which ends at 0x22c for protocol 2.02
  image[0x201] = 0x22c - 0x202;
  image.set(new TextEncoder().encode("HdrS"), 0x202);
  view.setUint16(0x206, 0x0202, true);
  image[0x211] = 0x01; // loaded high
  return image;
}

describe("tsvisor run: bad input", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-cli-"));
  const junk = join(dir, "junk.bin");
  writeFileSync(junk, Buffer.from("this is not a kernel at all, just some text\n".repeat(200)));
  const nope = join(dir, "nope");
  const diskDir = join(dir, "disk.d");
  mkdirSync(diskDir);
  const lockedDisk = join(dir, "locked.img");
  writeFileSync(lockedDisk, new Uint8Array(64 * 1024));
  chmodSync(lockedDisk, 0);
  // Firmware-shaped files (128 KiB), so the board gets as far as loading the kernel.
  const zeroRom = join(dir, "zero-rom.bin");
  writeFileSync(zeroRom, new Uint8Array(128 * 1024));
  const bigKernel = join(dir, "big-bzImage");
  writeFileSync(bigKernel, bzImage(2 << 20));
  const firmware = ["--bios", zeroRom, "--vga-bios", zeroRom, "--timeout", "2"];

  const cases: [string, string[], RegExp][] = [
    ["an invalid memory size", ["--memory", "256Q", "--kernel", junk], /invalid memory size '256Q'/],
    ["a memory size below 1M", ["-m", "512K", "--kernel", junk], /memory size 512K is too small/],
    ["a memory size above 3.5G", ["--memory", "4G", "--kernel", junk], /memory size 4G is too large/],
    ["an invalid timeout", ["--kernel", junk, "--timeout", "soon"], /invalid --timeout 'soon'/],
    [
      "an invalid --jit mode",
      ["--kernel", junk, "--jit", "fast"],
      /invalid --jit 'fast': use off, on or force/,
    ],
    ["a missing kernel file", ["--kernel", nope], /--kernel .*nope: no such file/],
    ["a missing initrd", ["--kernel", junk, "--initrd", nope], /--initrd .*nope: no such file/],
    ["a missing disk image", ["--disk", join(dir, "nope.img")], /--disk .*nope\.img: no such file/],
    ["a missing CD-ROM image", ["--cdrom", nope], /--cdrom .*nope: no such file/],
    ["a missing firmware image", ["--bios", nope], /--bios .*nope: no such file/],
    ["a disk that is a directory", ["--disk", diskDir], /--disk .*disk\.d: not a regular file/],
    [
      "a kernel too large for --memory (through the firmware)",
      ["--kernel", bigKernel, "--memory", "2M", ...firmware],
      /big-bzImage: the kernel \(2\.0 MiB\) does not fit in RAM at 1 MiB/,
    ],
    [
      "a kernel too large for --memory (direct boot)",
      ["--kernel", bigKernel, "--memory", "2M", "--direct-boot", ...firmware],
      /big-bzImage: the kernel \(2\.0 MiB\) does not fit in RAM at 1 MiB/,
    ],
    ["an unknown option", ["--frobnicate"], /run: Unknown option '--frobnicate'/],
    ["an initrd without a kernel", ["--initrd", junk], /--initrd needs --kernel/],
    ["a bad boot device", ["--kernel", junk, "--boot", "z"], /invalid --boot 'z'/],
    ["a bad serial target", ["--kernel", junk, "--serial", "tcp:1"], /invalid --serial 'tcp:1': use stdio/],
    [
      "a file that is not a kernel",
      ["--kernel", junk, "--bios", junk],
      /--bios .*junk\.bin: .* is not a firmware image size/,
    ],
  ];
  for (const [what, args, message] of cases) {
    it(`refuses ${what} with one line and status 2`, () => {
      const r = tsvisor("run", ...args);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line, got: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    });
  }

  // Root reads any file whatever its mode, so this one needs an ordinary user.
  it("refuses an unreadable disk image with one line and status 2", {
    skip: process.getuid?.() === 0 && "running as root, which can read any file",
  }, () => {
    const r = tsvisor("run", "--disk", lockedDisk);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^tsvisor: --disk .*locked\.img: .*permission denied/i);
    assert.equal(r.stderr.trim().split("\n").length, 1, `one line, got: ${r.stderr}`);
  });

  it("says what a non-kernel file looks like", () => {
    const bios = join(dir, "bios.bin");
    writeFileSync(bios, new Uint8Array(128 * 1024));
    const r = tsvisor("run", "--kernel", junk, "--bios", bios, "--vga-bios", bios);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /is not a bzImage or a multiboot image/);
  });

  it("prints its options with --help", () => {
    const r = tsvisor("run", "--help");
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--kernel FILE/);
    assert.match(r.stdout, /Ctrl-A x quits/);
  });

  it("rejects an unknown command", () => {
    const r = tsvisor("launch");
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'launch'/);
  });

  describe("why the VM ended: exit status and one line", () => {
    const build = (name: string, body: string): string => {
      const asm = join(dir, `${name}.asm`);
      writeFileSync(
        asm,
        `BITS 32\nsection .text\nalign 4\ndd 0x1BADB002, 0, -(0x1BADB002)\nglobal _start\n_start:\n${body}\n`,
      );
      spawnSync("nasm", ["-f", "elf32", "-o", join(dir, `${name}.o`), asm]);
      spawnSync("ld", [
        "-m",
        "elf_i386",
        "-Ttext=0x100000",
        "-o",
        join(dir, `${name}.elf`),
        join(dir, `${name}.o`),
      ]);
      return join(dir, `${name}.elf`);
    };
    const haveTools = spawnSync("sh", ["-c", "command -v nasm && command -v ld"]).status === 0;

    it("a debug exit gives (v<<1)|1", { skip: !haveTools && "nasm/ld missing" }, () => {
      const kernel = build("exit", "mov al, 0x15\nout 0xf4, al\nhlt");
      const r = tsvisor("run", "--kernel", kernel, "--debug-exit", "--serial", "none", "--deterministic");
      assert.equal(r.status, (0x15 << 1) | 1, r.stderr);
      assert.match(r.stderr, /isa-debug-exit with status 43/);
    });

    it("a halt with interrupts off is reported and ends the VM", {
      skip: !haveTools && "nasm/ld missing",
    }, () => {
      const kernel = build("halt", "cli\nhlt");
      const r = tsvisor("run", "--kernel", kernel, "--serial", "none", "--deterministic");
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /halted with interrupts disabled/);
    });

    it("a triple fault with --no-reboot stops the VM", { skip: !haveTools && "nasm/ld missing" }, () => {
      // An empty IDT: the breakpoint cannot be delivered, nor the #GP, nor the #DF.
      const kernel = build("triple", "lidt [idtr]\nint3\nidtr: dw 0\ndd 0");
      const r = tsvisor("run", "--kernel", kernel, "--serial", "none", "--no-reboot", "--deterministic");
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /triple fault.*--no-reboot/);
    });

    it("keeps a compile cache in the temporary directory, for the VM's worker thread too", {
      skip: !haveTools && "nasm/ld missing",
    }, () => {
      const kernel = build("cached", "cli\nhlt");
      const temp = mkdtempSync(join(tmpdir(), "tsvisor-temp-"));
      const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: temp };
      delete env.NODE_COMPILE_CACHE;
      try {
        const r = tsvisorWith(env, "run", "--kernel", kernel, "--serial", "none");
        assert.equal(r.status, 3, r.stderr);
        const cached = filesUnder(join(temp, "tsvisor-compile-cache"));
        // The command's modules load on the main thread, the CPU's only in the worker.
        assert.ok(
          cached.some((text) => text.includes("src/cli/commands/run.ts")),
          "the command's modules are cached",
        );
        assert.ok(
          cached.some((text) => text.includes("src/x86/decoder.ts")),
          "the worker's modules are cached",
        );
      } finally {
        rmSync(temp, { recursive: true, force: true });
      }
    });

    it("runs as before when its compile cache cannot be written", {
      skip: !haveTools && "nasm/ld missing",
    }, () => {
      const kernel = build("uncached", "cli\nhlt");
      const r = tsvisorWith(
        { ...process.env, NODE_COMPILE_CACHE: join(kernel, "not-a-directory") },
        "run",
        "--kernel",
        kernel,
        "--serial",
        "none",
      );
      assert.equal(r.status, 3, r.stderr);
      assert.match(r.stderr, /halted with interrupts disabled/);
      assert.equal(r.stderr.trim().split("\n").length, 1, `one line, got: ${r.stderr}`);
    });

    it("a timeout gives 124", { skip: !haveTools && "nasm/ld missing" }, () => {
      const kernel = build("spin", "spin: jmp spin");
      const r = tsvisor("run", "--kernel", kernel, "--serial", "none", "--timeout", "0.5", "--deterministic");
      assert.equal(r.status, 124, r.stderr);
      assert.match(r.stderr, /timed out after 0\.5 s/);
    });
  });
});
