import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  type CpioEntry,
  normalizeArchivePath,
  readNewcCpio,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  writeNewcCpio,
} from "./cpio.ts";
import { ImagesError } from "./errors.ts";
import { gunzip, gzipReproducible } from "./gzip.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const sample: CpioEntry[] = [
  { type: "file", path: "/bin/busybox", data: enc.encode("#!busybox\n"), mode: 0o755 },
  { type: "symlink", path: "bin/sh", target: "busybox" },
  { type: "char", path: "dev/console", major: 5, minor: 1 },
  { type: "char", path: "dev/null", major: 1, minor: 3, mode: 0o666 },
  { type: "block", path: "dev/sda", major: 8, minor: 0, mode: 0o660 },
  { type: "directory", path: "proc" },
  { type: "file", path: "init", data: enc.encode("#!/bin/sh\necho hi\n"), mode: 0o755 },
  { type: "file", path: "etc/empty", data: new Uint8Array(0) },
];

function headerField(archive: Uint8Array, recordOffset: number, index: number): number {
  const text = dec.decode(archive.subarray(recordOffset + 6 + index * 8, recordOffset + 14 + index * 8));
  return Number.parseInt(text, 16);
}

test("newc header fields of the first record are laid out as the format says", () => {
  const archive = writeNewcCpio([{ type: "file", path: "a", data: enc.encode("xyz"), mode: 0o640 }]);
  assert.equal(dec.decode(archive.subarray(0, 6)), "070701");
  assert.equal(headerField(archive, 0, 0), 1, "ino");
  assert.equal(headerField(archive, 0, 1), S_IFREG | 0o640, "mode");
  assert.equal(headerField(archive, 0, 2), 0, "uid");
  assert.equal(headerField(archive, 0, 3), 0, "gid");
  assert.equal(headerField(archive, 0, 4), 1, "nlink");
  assert.equal(headerField(archive, 0, 5), 0, "mtime");
  assert.equal(headerField(archive, 0, 6), 3, "filesize");
  assert.equal(headerField(archive, 0, 11), 2, "namesize includes the NUL");
  // 110-byte header + "a\0" = 112, already aligned; then "xyz" + one pad byte.
  assert.equal(dec.decode(archive.subarray(110, 111)), "a");
  assert.equal(archive[111], 0);
  assert.equal(dec.decode(archive.subarray(112, 115)), "xyz");
  assert.equal(archive[115], 0);
  // The trailer record follows at 116.
  assert.equal(headerField(archive, 116, 0), 0);
  assert.equal(headerField(archive, 116, 4), 1);
  assert.equal(headerField(archive, 116, 11), 11);
  assert.equal(dec.decode(archive.subarray(116 + 110, 116 + 120)), "TRAILER!!!");
  assert.equal(archive.length % 4, 0);
  assert.equal(archive.length, 116 + 124);
});

test("every record starts on a 4-byte boundary whatever the name and data lengths", () => {
  const entries: CpioEntry[] = [];
  for (let i = 1; i <= 9; i++) {
    entries.push({ type: "file", path: "n".repeat(i), data: new Uint8Array(i).fill(i) });
  }
  const archive = writeNewcCpio(entries);
  let offset = 0;
  let seen = 0;
  while (offset < archive.length) {
    assert.equal(offset % 4, 0);
    assert.equal(dec.decode(archive.subarray(offset, offset + 6)), "070701");
    const size = headerField(archive, offset, 6);
    const nameSize = headerField(archive, offset, 11);
    const name = dec.decode(archive.subarray(offset + 110, offset + 110 + nameSize - 1));
    if (name === "TRAILER!!!") break;
    seen++;
    const dataStart = offset + Math.ceil((110 + nameSize) / 4) * 4;
    assert.deepEqual([...archive.subarray(dataStart, dataStart + size)], new Array(size).fill(name.length));
    offset = dataStart + Math.ceil(size / 4) * 4;
  }
  assert.equal(seen, 9);
});

test("records read back sorted, with parents added, inodes in order and types right", () => {
  const records = readNewcCpio(writeNewcCpio(sample));
  const names = records.map((r) => r.name);
  assert.deepEqual(names, [
    "bin",
    "bin/busybox",
    "bin/sh",
    "dev",
    "dev/console",
    "dev/null",
    "dev/sda",
    "etc",
    "etc/empty",
    "init",
    "proc",
  ]);
  assert.deepEqual(
    records.map((r) => r.ino),
    names.map((_, i) => i + 1),
  );
  const byName = new Map(records.map((r) => [r.name, r]));
  assert.equal(byName.get("bin")!.mode, S_IFDIR | 0o755);
  assert.equal(byName.get("bin")!.nlink, 2);
  const sh = byName.get("bin/sh")!;
  assert.equal(sh.mode & S_IFMT, S_IFLNK);
  assert.equal(dec.decode(sh.data), "busybox");
  const consoleNode = byName.get("dev/console")!;
  assert.equal(consoleNode.mode, S_IFCHR | 0o600);
  assert.deepEqual([consoleNode.rdevMajor, consoleNode.rdevMinor], [5, 1]);
  const nullNode = byName.get("dev/null")!;
  assert.equal(nullNode.mode, S_IFCHR | 0o666);
  assert.deepEqual([nullNode.rdevMajor, nullNode.rdevMinor], [1, 3]);
  assert.equal(byName.get("dev/sda")!.mode & S_IFMT, S_IFBLK);
  assert.equal(dec.decode(byName.get("init")!.data), "#!/bin/sh\necho hi\n");
  assert.equal(byName.get("etc/empty")!.data.length, 0);
  for (const r of records) {
    assert.equal(r.uid, 0);
    assert.equal(r.gid, 0);
    assert.equal(r.mtime, 0);
  }
});

test("the output does not depend on the order entries are given in", () => {
  const forward = writeNewcCpio(sample);
  const backward = writeNewcCpio([...sample].reverse());
  assert.deepEqual(forward, backward);
});

test("bad paths, duplicates, bad modes and files inside non-directories are rejected", () => {
  assert.throws(() => normalizeArchivePath("a/../b"), ImagesError);
  assert.throws(() => normalizeArchivePath("/"), ImagesError);
  assert.throws(() => normalizeArchivePath("a//b"), ImagesError);
  assert.equal(normalizeArchivePath("/a/b/"), "a/b");
  assert.throws(
    () =>
      writeNewcCpio([
        { type: "directory", path: "x" },
        { type: "directory", path: "/x" },
      ]),
    /duplicate/,
  );
  assert.throws(
    () => writeNewcCpio([{ type: "file", path: "f", data: new Uint8Array(), mode: 0o10000 }]),
    /mode/,
  );
  assert.throws(
    () =>
      writeNewcCpio([
        { type: "file", path: "f", data: new Uint8Array() },
        { type: "file", path: "f/g", data: new Uint8Array() },
      ]),
    /not a directory/,
  );
  assert.throws(() => writeNewcCpio([{ type: "char", path: "c", major: -1, minor: 0 }]), /major/);
});

test("the reader reports truncated and corrupt archives", () => {
  const archive = writeNewcCpio(sample);
  assert.throws(() => readNewcCpio(archive.subarray(0, 50)), /truncated/);
  const corrupt = archive.slice();
  corrupt[0] = 0x41;
  assert.throws(() => readNewcCpio(corrupt), /magic/);
  assert.throws(() => readNewcCpio(archive.subarray(0, archive.length - 124)), /truncated/);
});

test("gzip output is reproducible, has a fixed header and decompresses to the input", () => {
  const archive = writeNewcCpio(sample);
  const a = gzipReproducible(archive);
  const b = gzipReproducible(writeNewcCpio([...sample].reverse()));
  assert.deepEqual(a, b);
  assert.deepEqual([...a.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
  assert.deepEqual(gunzip(a), archive);
});

test("Debian's cpio lists the archive with the right types, modes, owners and link targets", (t) => {
  const probe = spawnSync("cpio", ["--version"], { encoding: "utf8" });
  if (probe.error) {
    t.skip("cpio is not installed (scripts/setup-host.sh installs it)");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-cpio-"));
  try {
    const file = join(dir, "test.cpio");
    writeFileSync(file, writeNewcCpio(sample));
    const listing = spawnSync("cpio", ["-itv", "--numeric-uid-gid", "-F", file], {
      encoding: "utf8",
      env: { ...process.env, LC_ALL: "C", TZ: "UTC" },
    });
    assert.equal(listing.status, 0, listing.stderr);
    const lines = listing.stdout.trim().split("\n");
    assert.equal(lines.length, 11);
    const line = (name: string) => {
      const found = lines.find((l) => l.endsWith(` ${name}`) || l.includes(` ${name} -> `));
      assert.ok(found, `${name} listed in:\n${listing.stdout}`);
      return found.split(/\s+/);
    };
    assert.equal(line("bin/busybox")[0], "-rwxr-xr-x");
    assert.deepEqual(line("bin/busybox").slice(2, 4), ["0", "0"]);
    assert.equal(line("bin/sh")[0], "lrwxrwxrwx");
    assert.equal(line("bin/sh").at(-1), "busybox");
    const consoleFields = line("dev/console");
    assert.equal(consoleFields[0], "crw-------");
    assert.deepEqual(consoleFields.slice(4, 6), ["5,", "1"]);
    assert.equal(line("dev/null")[0], "crw-rw-rw-");
    assert.equal(line("dev/sda")[0], "brw-rw----");
    assert.equal(line("proc")[0], "drwxr-xr-x");
    assert.match(listing.stderr, /blocks/);
    // Epoch 0 is listed as 1970.
    assert.ok(
      lines.every((l) => l.includes("1970")),
      listing.stdout,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
