import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  findTool,
  parseControlStanzas,
  parseDepends,
  parsePolicyCandidate,
  requireTools,
  runTool,
} from "./apt.ts";
import { ImagesError } from "./errors.ts";

test("the candidate is read from apt-cache policy, and '(none)' or nothing means none", () => {
  const enabled = `linux-image-686:i386:
  Installed: (none)
  Candidate: 6.1.176-1
  Version table:
     6.1.176-1 500
        500 http://deb.debian.org/debian bookworm/main i386 Packages
`;
  assert.equal(parsePolicyCandidate(enabled), "6.1.176-1");
  assert.equal(
    parsePolicyCandidate("linux-image-686:i386:\n  Installed: (none)\n  Candidate: (none)\n"),
    undefined,
  );
  assert.equal(parsePolicyCandidate(""), undefined);
});

test("Depends lines are read from apt-cache depends, alternatives and virtual packages included", () => {
  const output = `linux-image-686:i386
  Depends: linux-image-6.1.0-50-686:i386
 |Depends: <virtual-thing>
  Recommends: something
`;
  assert.deepEqual(parseDepends(output), ["linux-image-6.1.0-50-686:i386", "virtual-thing"]);
  assert.deepEqual(parseDepends(""), []);
});

test("apt-cache show stanzas are split and continuation lines skipped", () => {
  const output = `Package: seabios
Version: 1.16.2-1
Description-en: legacy BIOS
 a long description
 over lines: with colons
SHA256: ${"0".repeat(64)}

Package: memtest86+
Version: 6.10-4
`;
  const stanzas = parseControlStanzas(output);
  assert.equal(stanzas.length, 2);
  assert.equal(stanzas[0]!.Package, "seabios");
  assert.equal(stanzas[0]!.SHA256, "0".repeat(64));
  assert.equal(stanzas[0]![" over lines"], undefined);
  assert.deepEqual(stanzas[1], { Package: "memtest86+", Version: "6.10-4" });
});

test("missing tools are named with the Debian package that provides them", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-path-"));
  try {
    writeFileSync(join(dir, "apt-get"), "#!/bin/sh\n");
    chmodSync(join(dir, "apt-get"), 0o755);
    writeFileSync(join(dir, "dpkg-deb"), "not executable");
    assert.equal(findTool("apt-get", dir), join(dir, "apt-get"));
    assert.equal(findTool("dpkg-deb", dir), undefined);
    const saved = process.env.PATH;
    process.env.PATH = dir;
    try {
      assert.throws(
        () => requireTools(["apt-get", "dpkg-deb"]),
        (err: unknown) => {
          assert.ok(err instanceof ImagesError);
          assert.match(err.message, /^dpkg-deb is not installed/);
          assert.match(err.message, /package dpkg/);
          return true;
        },
      );
    } finally {
      process.env.PATH = saved;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("runTool collects output, streams lines and reports a missing command clearly", async () => {
  const lines: string[] = [];
  const result = await runTool("sh", ["-c", "echo one; echo two >&2; printf three; exit 3"], {
    onLine: (l) => lines.push(l),
  });
  assert.equal(result.status, 3);
  assert.equal(result.stdout, "one\nthree");
  assert.equal(result.stderr, "two\n");
  assert.deepEqual([...lines].sort(), ["one", "three", "two"]);
  await assert.rejects(runTool("tsvisor-no-such-tool", []), /tsvisor-no-such-tool is not installed/);
});
