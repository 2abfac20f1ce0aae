// System tests of `tsvisor run`'s command-line contract: bad input is one clear line and status 2.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";

const root = join(import.meta.dirname, "..");
const node = join(root, "node_modules/.bin/node");
const cli = join(root, "src/cli/main.ts");

function tsvisor(...args: string[]) {
  const r = spawnSync(node, [cli, ...args], { encoding: "utf8", input: "", timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("tsvisor run: bad input", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-cli-"));
  const junk = join(dir, "junk.bin");
  writeFileSync(junk, Buffer.from("this is not a kernel at all, just some text\n".repeat(200)));

  const cases: [string, string[], RegExp][] = [
    ["an invalid memory size", ["--memory", "256Q", "--kernel", junk], /invalid memory size '256Q'/],
    ["a missing kernel file", ["--kernel", join(dir, "nope")], /--kernel .*nope: no such file/],
    ["a missing disk image", ["--disk", join(dir, "nope.img")], /--disk .*nope\.img: no such file/],
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
});
