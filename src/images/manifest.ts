// The manifest: what `tsvisor images fetch` put in the cache, as JSON in <cache>/manifest.json.
//
// On disk every path is relative to the cache directory, so a cache can be moved or shared; in
// memory (what loadManifest returns) every path is absolute, ready to open.

import { createHash } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { isAbsolute, join, relative, sep } from "node:path";
import { cacheDir as defaultCacheDir } from "./cache.ts";
import { ImagesError } from "./errors.ts";

/** Grows when the manifest's shape changes; an older or newer manifest means "fetch again". */
export const MANIFEST_FORMAT = 1;
export const MANIFEST_FILE = "manifest.json";

export interface FileRecord {
  /** Absolute path (relative to the cache directory on disk). */
  readonly path: string;
  readonly size: number;
  /** Lower-case hex SHA-256 of the contents. */
  readonly sha256: string;
}

export interface PackageRecord {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  /** The downloaded .deb. */
  readonly deb: FileRecord;
  /** Directory the package was unpacked into (its "/"). */
  readonly root: string;
}

export interface InitramfsRecord extends FileRecord {
  /** Names of the kernel modules it carries. */
  readonly modules: readonly string[];
  /** Modules asked for that this kernel does not have as loadable modules (built in, or absent). */
  readonly missingModules: readonly string[];
  /** `initramfsRecipe()` when it was built (absent in older caches: rebuilt on next use). */
  readonly recipe?: string;
}

export interface KernelImage {
  readonly package: PackageRecord;
  /** `uname -r` of this kernel, e.g. "6.1.0-50-686". */
  readonly release: string;
  /** The bzImage to boot. */
  readonly vmlinuz: FileRecord;
  /** /lib/modules/<release> inside the unpacked package (with modules.dep and modules.alias). */
  readonly modulesDir: string;
  /** The default initramfs for this kernel. */
  readonly initramfs: InitramfsRecord;
}

export interface Manifest {
  readonly format: number;
  /** The cache directory the paths are in. */
  readonly cacheDir: string;
  /** When the images were fetched (ISO 8601). */
  readonly fetchedAt: string;
  /** The kernel `linux-image-686:i386` depends on: the default guest kernel. */
  readonly kernel: KernelImage;
  /** The -686-pae kernel of the same release. */
  readonly kernelPae: KernelImage;
  readonly busybox: { readonly package: PackageRecord; readonly binary: FileRecord };
  readonly seabios: {
    readonly package: PackageRecord;
    /** 128 KiB SeaBIOS, what QEMU's `pc` machine maps below 1 MiB and at the top of 4 GiB. */
    readonly bios: FileRecord;
    readonly bios256k: FileRecord;
    /** VGA option ROM for the Bochs/QEMU "std" VGA. */
    readonly vgabiosStdvga: FileRecord;
  };
  readonly memtest: {
    readonly package: PackageRecord;
    /** memtest86+ images keyed by file name ("memtest86+ia32.bin", "memtest86+x64.iso", ...). */
    readonly files: Readonly<Record<string, FileRecord>>;
  };
}

/** What the run command needs to boot the default guest. */
export interface DefaultBootFiles {
  readonly kernel: string;
  readonly kernelRelease: string;
  readonly initrd: string;
  readonly bios: string;
  readonly vgabios: string;
}

export function defaultBootFiles(manifest: Manifest): DefaultBootFiles {
  return {
    kernel: manifest.kernel.vmlinuz.path,
    kernelRelease: manifest.kernel.release,
    initrd: manifest.kernel.initramfs.path,
    bios: manifest.seabios.bios.path,
    vgabios: manifest.seabios.vgabiosStdvga.path,
  };
}

/** The memtest86+ image for a 32-bit PC of the given kind, if the package has one. */
export function memtestImage(manifest: Manifest, kind: "bin" | "iso" | "efi"): FileRecord | undefined {
  const files = manifest.memtest.files;
  return files[`memtest86+ia32.${kind}`] ?? files[`memtest86+.${kind}`] ?? files[`memtest86+x64.${kind}`];
}

/** Human size: "5.4 MiB", "39.0 KiB", "83 B". */
export function formatSize(bytes: number): string {
  if (bytes >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  if (bytes >= 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Reads a file and describes it (size and SHA-256). */
export function describeFile(path: string): FileRecord {
  const data = readFileSync(path);
  return { path, size: data.length, sha256: sha256Hex(data) };
}

// ---- reading and writing ---------------------------------------------------------------------

class ManifestShapeError extends Error {}

type Json = Record<string, unknown>;

function object(value: unknown, where: string): Json {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ManifestShapeError(`${where} is not an object`);
  }
  return value as Json;
}

function string(o: Json, key: string, where: string): string {
  const v = o[key];
  if (typeof v !== "string" || v === "") throw new ManifestShapeError(`${where}.${key} is not a string`);
  return v;
}

function stringList(o: Json, key: string, where: string): string[] {
  const v = o[key];
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
    throw new ManifestShapeError(`${where}.${key} is not a list of strings`);
  }
  return v as string[];
}

function inCache(cacheDir: string, o: Json, key: string, where: string): string {
  const rel = string(o, key, where);
  if (isAbsolute(rel) || rel.split(/[\\/]/).includes("..")) {
    throw new ManifestShapeError(`${where}.${key} points outside the cache`);
  }
  return join(cacheDir, rel);
}

function fileRecord(cacheDir: string, value: unknown, where: string): FileRecord {
  const o = object(value, where);
  const size = o.size;
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    throw new ManifestShapeError(`${where}.size is not a size`);
  }
  const sha256 = string(o, "sha256", where);
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new ManifestShapeError(`${where}.sha256 is not a SHA-256`);
  return { path: inCache(cacheDir, o, "path", where), size, sha256 };
}

function packageRecord(cacheDir: string, value: unknown, where: string): PackageRecord {
  const o = object(value, where);
  return {
    name: string(o, "name", where),
    version: string(o, "version", where),
    architecture: string(o, "architecture", where),
    deb: fileRecord(cacheDir, o.deb, `${where}.deb`),
    root: inCache(cacheDir, o, "root", where),
  };
}

function kernelImage(cacheDir: string, value: unknown, where: string): KernelImage {
  const o = object(value, where);
  const initramfs = object(o.initramfs, `${where}.initramfs`);
  return {
    package: packageRecord(cacheDir, o.package, `${where}.package`),
    release: string(o, "release", where),
    vmlinuz: fileRecord(cacheDir, o.vmlinuz, `${where}.vmlinuz`),
    modulesDir: inCache(cacheDir, o, "modulesDir", where),
    initramfs: {
      ...fileRecord(cacheDir, initramfs, `${where}.initramfs`),
      modules: stringList(initramfs, "modules", `${where}.initramfs`),
      missingModules: stringList(initramfs, "missingModules", `${where}.initramfs`),
      ...(typeof initramfs.recipe === "string" ? { recipe: initramfs.recipe } : {}),
    },
  };
}

/**
 * Parses manifest JSON; paths come back absolute under `cacheDir`. Throws ImagesError saying what is
 * wrong if the text is not a manifest of this format.
 */
export function parseManifest(text: string, cacheDir: string): Manifest {
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      throw new ManifestShapeError("it is not valid JSON");
    }
    const o = object(raw, "manifest");
    if (o.format !== MANIFEST_FORMAT) {
      throw new ManifestShapeError(
        `it has format ${String(o.format)}, this tsvisor reads ${MANIFEST_FORMAT}`,
      );
    }
    const busybox = object(o.busybox, "busybox");
    const seabios = object(o.seabios, "seabios");
    const memtest = object(o.memtest, "memtest");
    const memtestFiles = object(memtest.files, "memtest.files");
    return {
      format: MANIFEST_FORMAT,
      cacheDir,
      fetchedAt: string(o, "fetchedAt", "manifest"),
      kernel: kernelImage(cacheDir, o.kernel, "kernel"),
      kernelPae: kernelImage(cacheDir, o.kernelPae, "kernelPae"),
      busybox: {
        package: packageRecord(cacheDir, busybox.package, "busybox.package"),
        binary: fileRecord(cacheDir, busybox.binary, "busybox.binary"),
      },
      seabios: {
        package: packageRecord(cacheDir, seabios.package, "seabios.package"),
        bios: fileRecord(cacheDir, seabios.bios, "seabios.bios"),
        bios256k: fileRecord(cacheDir, seabios.bios256k, "seabios.bios256k"),
        vgabiosStdvga: fileRecord(cacheDir, seabios.vgabiosStdvga, "seabios.vgabiosStdvga"),
      },
      memtest: {
        package: packageRecord(cacheDir, memtest.package, "memtest.package"),
        files: Object.fromEntries(
          Object.entries(memtestFiles).map(([name, f]) => [
            name,
            fileRecord(cacheDir, f, `memtest.files.${name}`),
          ]),
        ),
      },
    };
  } catch (err) {
    if (err instanceof ManifestShapeError) {
      throw new ImagesError(
        `the image manifest in ${cacheDir} is corrupt (${err.message}); run 'tsvisor images fetch' to rebuild it`,
      );
    }
    throw err;
  }
}

/** JSON text of a manifest, with paths made relative to its cache directory. */
export function serializeManifest(manifest: Manifest): string {
  const root = manifest.cacheDir;
  const rel = (p: string) => {
    const r = relative(root, p);
    if (r.startsWith("..") || isAbsolute(r)) throw new ImagesError(`${p} is not inside the cache ${root}`);
    return r.split(sep).join("/");
  };
  const json = JSON.stringify(
    manifest,
    function (this: unknown, key, value) {
      if (key === "cacheDir") return undefined;
      if ((key === "path" || key === "root" || key === "modulesDir") && typeof value === "string")
        return rel(value);
      return value;
    },
    2,
  );
  return `${json}\n`;
}

export type ManifestStatus =
  | { readonly status: "missing" }
  | { readonly status: "corrupt"; readonly reason: string }
  | { readonly status: "ok"; readonly manifest: Manifest };

/** Reads the manifest of `cacheDir`, telling a missing one from a corrupt one. */
export function readManifest(cacheDir: string): ManifestStatus {
  let text: string;
  try {
    text = readFileSync(join(cacheDir, MANIFEST_FILE), "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { status: "missing" };
    return {
      status: "corrupt",
      reason: `cannot read ${join(cacheDir, MANIFEST_FILE)}: ${(err as Error).message}`,
    };
  }
  try {
    return { status: "ok", manifest: parseManifest(text, cacheDir) };
  } catch (err) {
    if (err instanceof ImagesError) return { status: "corrupt", reason: err.message };
    throw err;
  }
}

/**
 * The manifest of the cache (default: cacheDir()), or undefined if nothing usable is cached (no
 * manifest, or a corrupt one: `readManifest` tells which).
 */
export function loadManifest(cacheDir = defaultCacheDir()): Manifest | undefined {
  const result = readManifest(cacheDir);
  return result.status === "ok" ? result.manifest : undefined;
}

/** Writes the manifest atomically (a reader never sees half a file). */
export function saveManifest(manifest: Manifest): void {
  const file = join(manifest.cacheDir, MANIFEST_FILE);
  const temp = `${file}.${process.pid}.tmp`;
  writeFileSync(temp, serializeManifest(manifest));
  renameSync(temp, file);
}
