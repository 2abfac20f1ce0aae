// System tests: Debian's unmodified i386 kernels boot to a shell on the serial console, run
// commands typed through a pipe, and power off through ACPI (exit status 0), as a user scripts it:
//   printf 'uname -r\n...\npoweroff\n' | tsvisor run --kernel ... --initrd ...
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, before, describe, it } from "node:test";
import { buildGuestInitramfs, ensureImages, type Manifest } from "../src/images/index.ts";

const root = join(import.meta.dirname, "..");
const node = join(root, "node_modules/.bin/node");
const cli = join(root, "bin/tsvisor.js");
/** Guest seconds before the test gives up (the interpreter boots Linux in about two minutes). */
const GUEST_TIMEOUT = 1200;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function tsvisor(args: string[], input: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(node, [cli, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString("latin1");
      if (PANIC_END.test(stdout.slice(-4096))) child.kill("SIGKILL");
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("error", reject);
    child.on("close", (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** The end of a kernel panic's report: the guest will do nothing more, so the test ends the VM. */
const PANIC_END = /---\[ end Kernel panic/;

/** The shell's prompt; it then asks the terminal where the cursor is (ESC [6n). */
const PROMPT = new RegExp(`tsvisor-guest:[^\\n]*# (?:${String.fromCharCode(27)}\\[6n)?$`);

/** Sessions whose VM may still run: a failed test must not leave its VM running on. */
const liveSessions = new Set<Session>();

/** An interactive session: type a line once the guest's output matches. */
class Session {
  stdout = "";
  stderr = "";
  /** The match `waitFor` found last (its groups). */
  lastMatch: RegExpExecArray | undefined;
  readonly closed: Promise<number | null>;
  private readonly child: ReturnType<typeof spawn>;
  private waiters: (() => void)[] = [];
  /** When each chunk of output arrived (host ms) and where it ended in `stdout`. */
  private readonly arrivals: { end: number; at: number }[] = [];

  constructor(args: string[]) {
    this.child = spawn(node, [cli, "run", ...args], { stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d: Buffer) => {
      this.stdout += d.toString("latin1");
      this.arrivals.push({ end: this.stdout.length, at: performance.now() });
      if (PANIC_END.test(this.stdout.slice(-4096))) this.kill();
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.on("data", (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.closed = new Promise((resolve) => this.child.on("close", resolve));
    liveSessions.add(this);
    void this.closed.then(() => {
      liveSessions.delete(this);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Ends the VM (after a failure). */
  kill(): void {
    this.child.kill("SIGKILL");
  }

  /**
   * Resolves with the index just past the first match of `pattern` in the output from `from` on,
   * once there is one (rejects if the VM ends first).
   */
  async waitFor(pattern: RegExp, from = 0): Promise<number> {
    for (;;) {
      const m = pattern.exec(this.stdout.slice(from));
      if (m) {
        this.lastMatch = m;
        return from + m.index + m[0].length;
      }
      // A VM ended by a signal (the test killed it after a panic) has no exit code.
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(
          `the VM ended while waiting for ${pattern}:\n${this.stdout.slice(-2000)}\n${this.stderr}`,
        );
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** When the output up to `index` had arrived, in host milliseconds (performance.now()). */
  arrivedAt(index: number): number {
    const arrival = this.arrivals.find((a) => a.end >= index);
    if (!arrival) throw new RangeError(`no output up to ${index} yet`);
    return arrival.at;
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
}

describe("Linux guests", { concurrency: 1 }, () => {
  afterEach(async () => {
    for (const session of liveSessions) {
      session.kill();
      await session.closed;
    }
  });

  let manifest: Manifest;
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-linux-"));
  const payload = randomBytes(64 * 1024);
  const payloadMd5 = createHash("md5").update(payload).digest("hex");
  let initrd = "";
  let initrdPae = "";

  before(async () => {
    manifest = await ensureImages();
    const extraFiles = [{ path: "/root/payload.bin", data: payload }];
    initrd = join(dir, "initrd.img");
    writeFileSync(initrd, buildGuestInitramfs(manifest, { extraFiles }));
    initrdPae = join(dir, "initrd-pae.img");
    writeFileSync(initrdPae, buildGuestInitramfs(manifest, { kernel: "pae", extraFiles }));
  });

  const script = [
    "uname -r",
    "md5sum /root/payload.bin",
    "echo sum=$((6*7+100))",
    "grep -m1 '^flags' /proc/cpuinfo",
    "poweroff",
    "",
  ].join("\n");

  function checkSession(run: Run, release: string): void {
    const transcript = `${run.stdout}\n--- stderr ---\n${run.stderr}`;
    assert.equal(run.status, 0, `exit status\n${transcript.slice(-3000)}`);
    assert.match(run.stderr, /the guest powered off/);
    assert.match(run.stdout, new RegExp(`TSVISOR-GUEST-READY ${release.replace(/\./g, "\\.")}`));
    assert.match(
      run.stdout,
      new RegExp(`\\n${release.replace(/\./g, "\\.")}\\r?\\n`),
      `uname -r is the packaged release; the session ended with:\n${run.stdout.slice(-1500)}`,
    );
    assert.match(run.stdout, new RegExp(`${payloadMd5}  /root/payload\\.bin`), "md5sum matches the host's");
    assert.match(run.stdout, /sum=142/);
    const flags = /flags\s*:\s*([^\r\n]*)/.exec(run.stdout)?.[1] ?? "";
    for (const f of ["fpu", "tsc", "cx8", "cmov", "mmx", "fxsr"])
      assert.ok(flags.split(" ").includes(f), `cpuinfo flags: ${flags}`);
    assert.ok(!flags.split(" ").includes("sse"), "SSE is not advertised");
    assert.match(run.stdout, /reboot: Power down/);
    assert.doesNotMatch(run.stdout, /Oops|BUG:|Kernel panic|segfault/);
    assert.doesNotMatch(
      run.stdout,
      /unexpected IRQ|spurious 8259A interrupt|lost \d+ ticks|as unstable because/i,
    );
    assert.match(run.stdout, /clocksource: Switched to clocksource (tsc|hpet|acpi_pm)/);
  }

  it("boots the -686 kernel through the firmware (the default) and powers off", async () => {
    const run = await tsvisor(
      [
        "--kernel",
        manifest.kernel.vmlinuz.path,
        "--initrd",
        initrd,
        "--append",
        "console=ttyS0",
        "--timeout",
        String(GUEST_TIMEOUT),
      ],
      script,
    );
    checkSession(run, manifest.kernel.release);
  });

  it("boots the -686 kernel directly, without firmware; reboot boots it again; poweroff", async () => {
    const session = new Session([
      "--kernel",
      manifest.kernel.vmlinuz.path,
      "--initrd",
      initrd,
      "--append",
      "console=ttyS0",
      "--direct-boot",
      "--timeout",
      String(GUEST_TIMEOUT * 2),
    ]);
    const prompt = PROMPT;
    let at = await session.waitFor(prompt);
    session.send("uname -r; date +%s");
    at = await session.waitFor(/\n(\d{9,})\r?\n/, at);
    const guestNow = Number(/\n(\d{9,})\r?\n/.exec(session.stdout.slice(0, at))![1]) * 1000;
    assert.ok(Math.abs(guestNow - Date.now()) < 10_000, `guest date ${new Date(guestNow).toISOString()}`);
    // `sleep 1` lasts at least a second by the guest's clock, and the guest's clock keeps the
    // host's pace over it: the shell reads the uptime around it with builtins, and the host times
    // the arrival of the lines it echoes. The span also holds the shell starting `sleep`, which
    // with every block translated on first use (TSVISOR_JIT=force) or on a loaded host can take
    // seconds of its own, so the bounds are on the rate, not on the length.
    at = await session.waitFor(prompt, at);
    session.send(
      "read t0 x </proc/uptime; echo before=$t0; sleep 1; read t1 x </proc/uptime; echo after=$t1",
    );
    const beforeAt = await session.waitFor(/\nbefore=(\d+\.\d+)\r?\n/, at);
    const guestBefore = Number(session.lastMatch![1]);
    at = await session.waitFor(/(?:^|\n)after=(\d+\.\d+)\r?\n/, beforeAt);
    const guestSlept = Number(session.lastMatch![1]) - guestBefore;
    const hostSlept = (session.arrivedAt(at) - session.arrivedAt(beforeAt)) / 1000;
    assert.ok(
      guestSlept >= 0.99 && guestSlept <= 20,
      `sleep 1 took ${guestSlept.toFixed(2)} s of guest uptime`,
    );
    const rate = guestSlept / hostSlept;
    assert.ok(
      rate >= 0.8 && rate <= 1.25,
      `over sleep 1 the guest's clock advanced ${guestSlept.toFixed(2)} s in ${hostSlept.toFixed(2)} s of host time`,
    );
    session.send("reboot");
    at = await session.waitFor(/reboot: Restarting system/, at);
    at = await session.waitFor(/TSVISOR-GUEST-READY/, at);
    at = await session.waitFor(prompt, at);
    session.send("echo second-boot-$((40+2)); poweroff");
    await session.waitFor(/second-boot-42/, at);
    const status = await session.closed;
    assert.equal(status, 0, session.stderr);
    assert.match(session.stderr, /the guest powered off/);
    assert.equal(session.stdout.match(/Linux version 6\./g)?.length, 2, "the kernel booted twice");
    assert.doesNotMatch(session.stdout, /Oops|BUG:|Kernel panic|segfault/);
  });

  it("boots the -686 kernel from a GRUB CD-ROM (BIOS boot through a boot loader)", async (t) => {
    try {
      execFileSync("sh", ["-c", "command -v grub-mkrescue && command -v xorriso"], { stdio: "ignore" });
    } catch {
      t.skip("grub-mkrescue/xorriso are not installed");
      return;
    }
    const tree = join(dir, "grub-tree");
    mkdirSync(join(tree, "boot/grub"), { recursive: true });
    copyFileSync(manifest.kernel.vmlinuz.path, join(tree, "boot/vmlinuz"));
    copyFileSync(initrd, join(tree, "boot/initrd.img"));
    writeFileSync(
      join(tree, "boot/grub/grub.cfg"),
      "set timeout=0\nset default=0\nmenuentry debian {\n  linux /boot/vmlinuz console=ttyS0\n  initrd /boot/initrd.img\n}\n",
    );
    const iso = join(dir, "linux.iso");
    execFileSync("grub-mkrescue", ["-o", iso, tree], { stdio: "ignore" });
    // GRUB reads the serial port for keys while it loads the kernel, as it does on hardware, so
    // each line is typed at the shell's prompt rather than piped ahead of time (typed ahead, the
    // echo of one line would interleave with the output of the one before).
    const session = new Session(["--cdrom", iso, "--boot", "d", "--timeout", String(GUEST_TIMEOUT)]);
    let at = 0;
    for (const line of script.trim().split("\n")) {
      at = await session.waitFor(PROMPT, at);
      session.send(line);
    }
    const status = await session.closed;
    checkSession({ status, stdout: session.stdout, stderr: session.stderr }, manifest.kernel.release);
  });

  it("boots the -686-pae kernel (PAE and NX)", async () => {
    const run = await tsvisor(
      [
        "--kernel",
        manifest.kernelPae.vmlinuz.path,
        "--initrd",
        initrdPae,
        "--append",
        "console=ttyS0",
        "--timeout",
        String(GUEST_TIMEOUT),
      ],
      script,
    );
    checkSession(run, manifest.kernelPae.release);
    assert.match(run.stdout, /NX \(Execute Disable\) protection: active/);
  });
});
