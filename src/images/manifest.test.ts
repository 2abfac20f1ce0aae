import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cacheDir } from "./cache.ts";
import { ImagesError } from "./errors.ts";
import {
  defaultBootFiles,
  type FileRecord,
  type KernelImage,
  loadManifest,
  MANIFEST_FILE,
  type Manifest,
  memtestImage,
  type PackageRecord,
  parseManifest,
  readManifest,
  saveManifest,
  serializeManifest,
} from "./manifest.ts";

const HASH = "ab".repeat(32);

function sampleManifest(root: string): Manifest {
  const file = (rel: string, size = 10): FileRecord => ({ path: join(root, rel), size, sha256: HASH });
  const pkg = (name: string, version: string, arch = "i386"): PackageRecord => ({
    name,
    version,
    architecture: arch,
    deb: file(`debs/${name}.deb`, 1000),
    root: join(root, "packages", name),
  });
  const kernel = (release: string): KernelImage => ({
    package: pkg(`linux-image-${release}`, "6.1.176-1"),
    release,
    vmlinuz: file(`packages/linux-image-${release}/boot/vmlinuz-${release}`, 5_707_712),
    modulesDir: join(root, "packages", `linux-image-${release}`, "lib", "modules", release),
    initramfs: {
      ...file(`initramfs/initramfs-${release}.cpio.gz`, 2_000_000),
      modules: ["ext4"],
      missingModules: [],
    },
  });
  return {
    format: 1,
    cacheDir: root,
    fetchedAt: "2026-01-01T00:00:00.000Z",
    kernel: kernel("6.1.0-50-686"),
    kernelPae: kernel("6.1.0-50-686-pae"),
    busybox: {
      package: pkg("busybox-static", "1:1.35.0-4"),
      binary: file("packages/busybox-static/bin/busybox"),
    },
    seabios: {
      package: pkg("seabios", "1.16.2-1", "all"),
      bios: file("packages/seabios/usr/share/seabios/bios.bin", 131072),
      bios256k: file("packages/seabios/usr/share/seabios/bios-256k.bin", 262144),
      vgabiosStdvga: file("packages/seabios/usr/share/seabios/vgabios-stdvga.bin", 39936),
    },
    memtest: {
      package: pkg("memtest86+", "6.10-4", "amd64"),
      files: {
        "memtest86+ia32.bin": file("packages/memtest86+/boot/memtest86+ia32.bin"),
        "memtest86+x64.bin": file("packages/memtest86+/boot/memtest86+x64.bin"),
      },
    },
  };
}

test("a manifest round-trips, stored with relative paths and read back absolute", () => {
  const manifest = sampleManifest("/var/cache/tsvisor");
  const text = serializeManifest(manifest);
  assert.ok(!text.includes("/var/cache/tsvisor"), "paths on disk are relative");
  assert.match(text, /"path": "packages\/linux-image-6.1.0-50-686\/boot\/vmlinuz-6.1.0-50-686"/);
  assert.deepEqual(parseManifest(text, "/var/cache/tsvisor"), manifest);
  // A moved cache reads with paths under its new location.
  const moved = parseManifest(text, "/elsewhere");
  assert.equal(
    moved.kernel.vmlinuz.path,
    "/elsewhere/packages/linux-image-6.1.0-50-686/boot/vmlinuz-6.1.0-50-686",
  );
  assert.equal(moved.kernel.package.root, "/elsewhere/packages/linux-image-6.1.0-50-686");
});

test("the default boot files and memtest image are picked from the manifest", () => {
  const manifest = sampleManifest("/c");
  assert.deepEqual(defaultBootFiles(manifest), {
    kernel: "/c/packages/linux-image-6.1.0-50-686/boot/vmlinuz-6.1.0-50-686",
    kernelRelease: "6.1.0-50-686",
    initrd: "/c/initramfs/initramfs-6.1.0-50-686.cpio.gz",
    bios: "/c/packages/seabios/usr/share/seabios/bios.bin",
    vgabios: "/c/packages/seabios/usr/share/seabios/vgabios-stdvga.bin",
  });
  assert.equal(memtestImage(manifest, "bin")?.path, "/c/packages/memtest86+/boot/memtest86+ia32.bin");
  assert.equal(memtestImage(manifest, "iso"), undefined);
});

test("corrupt manifests are reported with what is wrong", () => {
  const good = JSON.parse(serializeManifest(sampleManifest("/c"))) as Record<string, unknown>;
  /** The manifest with the field at `path` set to `value` (deleted if undefined). */
  const corrupt = (path: string[], value?: unknown) => {
    const copy = structuredClone(good);
    let o = copy;
    for (const key of path.slice(0, -1)) o = o[key] as Record<string, unknown>;
    if (value === undefined) delete o[path.at(-1)!];
    else o[path.at(-1)!] = value;
    return JSON.stringify(copy);
  };
  assert.throws(() => parseManifest("{ not json", "/c"), /corrupt \(it is not valid JSON\)/);
  assert.throws(() => parseManifest("[]", "/c"), ImagesError);
  assert.throws(() => parseManifest(corrupt(["format"], 99), "/c"), /format 99/);
  assert.throws(() => parseManifest(corrupt(["kernel", "release"]), "/c"), /kernel.release/);
  assert.throws(() => parseManifest(corrupt(["seabios", "bios", "size"], -1), "/c"), /seabios.bios.size/);
  assert.throws(
    () => parseManifest(corrupt(["busybox", "binary", "sha256"], "xyz"), "/c"),
    /busybox.binary.sha256/,
  );
  assert.throws(
    () => parseManifest(corrupt(["kernel", "vmlinuz", "path"], "../../etc/passwd"), "/c"),
    /outside the cache/,
  );
  assert.throws(
    () => parseManifest(corrupt(["kernel", "vmlinuz", "path"], "/etc/passwd"), "/c"),
    /outside the cache/,
  );
  assert.throws(
    () => parseManifest(corrupt(["kernel", "initramfs", "modules"], [1]), "/c"),
    /initramfs.modules/,
  );
  assert.throws(() => parseManifest(corrupt(["memtest", "files"], "x"), "/c"), /memtest.files/);
});

test("reading tells a missing manifest from a corrupt one; saving is atomic", () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-manifest-"));
  try {
    assert.deepEqual(readManifest(dir), { status: "missing" });
    assert.equal(loadManifest(dir), undefined);
    writeFileSync(join(dir, MANIFEST_FILE), "{}");
    const corrupt = readManifest(dir);
    assert.equal(corrupt.status, "corrupt");
    assert.equal(loadManifest(dir), undefined);
    const manifest = sampleManifest(dir);
    saveManifest(manifest);
    assert.deepEqual(loadManifest(dir), manifest);
    rmSync(join(dir, MANIFEST_FILE));
    mkdirSync(join(dir, MANIFEST_FILE));
    assert.equal(readManifest(dir).status, "corrupt", "a directory in its place is unreadable, not missing");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the cache directory follows TSVISOR_CACHE, then XDG_CACHE_HOME, then ~/.cache", () => {
  assert.equal(cacheDir({ TSVISOR_CACHE: "/x/y", XDG_CACHE_HOME: "/xdg", HOME: "/h" }), "/x/y");
  assert.equal(cacheDir({ XDG_CACHE_HOME: "/xdg", HOME: "/h" }), "/xdg/tsvisor");
  assert.equal(cacheDir({ XDG_CACHE_HOME: "relative", HOME: "/h" }), "/h/.cache/tsvisor");
  assert.equal(cacheDir({ TSVISOR_CACHE: "", HOME: "/h" }), "/h/.cache/tsvisor");
});
