// `tsvisor images fetch`: download the guest packages from Debian's archive, check and unpack
// them into the cache, build the default initramfs for each kernel and write the manifest.
//
// Re-running is cheap: a .deb whose size and SHA-256 match the archive's index and that dpkg-deb
// can read is reused, and a package already unpacked from that very .deb is not unpacked again. A
// corrupt .deb is reported, deleted and downloaded again.

import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import {
  type ArchivePackage,
  parseDepends,
  parsePolicyCandidate,
  requireTools,
  runTool,
  showCandidates,
} from "./apt.ts";
import { cacheDir as defaultCacheDir, withCacheLock } from "./cache.ts";
import { ImagesError } from "./errors.ts";
import {
  buildInitramfs,
  DEFAULT_GUEST_MODULES,
  indexKernelModules,
  initramfsRecipe,
  loadModuleIndex,
} from "./initramfs.ts";
import {
  describeFile,
  type FileRecord,
  formatSize,
  type InitramfsRecord,
  type KernelImage,
  MANIFEST_FORMAT,
  type Manifest,
  type PackageRecord,
  readManifest,
  saveManifest,
  sha256Hex,
} from "./manifest.ts";

/** The metapackage whose dependency names the default guest kernel. */
export const KERNEL_METAPACKAGE = "linux-image-686:i386";
export const BUSYBOX_PACKAGE = "busybox-static:i386";
export const SEABIOS_PACKAGE = "seabios";
export const MEMTEST_PACKAGE = "memtest86+";

export const MULTIARCH_HINT = "sudo dpkg --add-architecture i386 && sudo apt-get update";

export interface FetchOptions {
  /** Cache directory (default: cacheDir()). */
  readonly cacheDir?: string;
  /** Progress messages, one line each (apt's own output included). */
  readonly onProgress?: (line: string) => void;
}

const DEB_DIR = "debs";
const PACKAGE_DIR = "packages";
const INITRAMFS_DIR = "initramfs";
/** Written into an unpacked package's directory: which .deb it came from and what it held. */
const UNPACKED_MARKER = ".tsvisor-unpacked";

/** A name safe as one path component: apt's own escaping of the epoch colon, and nothing else odd. */
function fileStem(pkg: ArchivePackage): string {
  return `${pkg.name}_${pkg.version}_${pkg.architecture}`
    .replaceAll(":", "%3a")
    .replace(/[^A-Za-z0-9.+~%_-]/g, "_");
}

/** Why a .deb is not the one the archive lists, or undefined if it is good. */
async function debProblem(file: string, pkg: ArchivePackage): Promise<string | undefined> {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (err) {
    return `cannot read it: ${(err as Error).message}`;
  }
  if (data.length !== pkg.size) return `it has ${data.length} bytes, the archive says ${pkg.size}`;
  if (pkg.sha256 !== undefined && sha256Hex(data) !== pkg.sha256)
    return "its SHA-256 does not match the archive's";
  const info = await runTool("dpkg-deb", ["--info", file]);
  if (info.status !== 0)
    return `dpkg-deb cannot read it (${info.stderr.trim().split("\n").at(-1) ?? "no reason given"})`;
  return undefined;
}

async function resolveKernelPackage(): Promise<string> {
  const policy = await runTool("apt-cache", ["policy", KERNEL_METAPACKAGE]);
  if (parsePolicyCandidate(policy.stdout) === undefined) {
    throw new ImagesError(
      `apt has no candidate for ${KERNEL_METAPACKAGE}: the i386 architecture is not enabled on this host (or the package lists are missing); run: ${MULTIARCH_HINT}`,
    );
  }
  const depends = await runTool("apt-cache", ["depends", KERNEL_METAPACKAGE]);
  const kernel = parseDepends(depends.stdout).find((d) => /^linux-image-.+-686(:i386)?$/.test(d));
  if (!kernel) {
    throw new ImagesError(
      `cannot tell which kernel ${KERNEL_METAPACKAGE} depends on (apt-cache depends listed none)`,
    );
  }
  return kernel.replace(/:i386$/, "");
}

/** What an unpacked package's directory held when tsvisor unpacked it. */
interface UnpackedMarker {
  /** SHA-256 of the .deb it came from. */
  readonly deb: string;
  /** Regular files (relative path → size). */
  readonly files: Record<string, number>;
}

function listFiles(root: string): Record<string, number> {
  const files: Record<string, number> = {};
  const walk = (relative: string) => {
    for (const entry of readdirSync(join(root, relative), { withFileTypes: true })) {
      const rel = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.isFile()) files[rel] = statSync(join(root, rel)).size;
    }
  };
  walk("");
  return files;
}

/** True if `root` was unpacked from the .deb with this hash and nothing in it went missing. */
function unpackedIntact(root: string, debSha256: string): boolean {
  try {
    const marker = JSON.parse(readFileSync(join(root, UNPACKED_MARKER), "utf8")) as UnpackedMarker;
    if (marker.deb !== debSha256 || typeof marker.files !== "object" || marker.files === null) return false;
    return Object.entries(marker.files).every(([rel, size]) => statSync(join(root, rel)).size === size);
  } catch {
    return false;
  }
}

interface Fetched {
  readonly pkg: ArchivePackage;
  readonly deb: FileRecord;
  readonly root: string;
}

class Fetcher {
  readonly cache: string;
  readonly progress: (line: string) => void;

  constructor(cache: string, progress: (line: string) => void) {
    this.cache = cache;
    this.progress = progress;
  }

  /** Makes sure a good .deb of `pkg` is in the cache, downloading it if needed. */
  async ensureDeb(spec: string, pkg: ArchivePackage): Promise<string> {
    const debDir = join(this.cache, DEB_DIR);
    mkdirSync(debDir, { recursive: true });
    const file = join(debDir, `${fileStem(pkg)}.deb`);
    const label = `${pkg.name} ${pkg.version} (${pkg.architecture}, ${formatSize(pkg.size)})`;
    if (existsSync(file)) {
      const problem = await debProblem(file, pkg);
      if (problem === undefined) {
        this.progress(`${label}: cached`);
        return file;
      }
      this.progress(`${label}: the cached ${file} is corrupt (${problem}); downloading it again`);
      rmSync(file, { force: true });
    }
    this.progress(`${label}: downloading`);
    // apt-get download writes into the current directory. As root, apt drops to its "_apt" user
    // for downloads, which may not write our directory: keep the download as root instead.
    const temp = mkdtempSync(join(debDir, ".download-"));
    try {
      const args = ["download", `${spec}=${pkg.version}`];
      if (userInfo().uid === 0) args.unshift("-o", "APT::Sandbox::User=root");
      else chmodSync(temp, 0o755);
      const result = await runTool("apt-get", args, {
        cwd: temp,
        onLine: (line) => this.progress(`  ${line}`),
      });
      if (result.status !== 0) {
        const errors = `${result.stdout}\n${result.stderr}`
          .split("\n")
          .filter((l) => l.startsWith("E:"))
          .map((l) => l.slice(2).trim());
        throw new ImagesError(
          `could not download ${pkg.name} ${pkg.version} from Debian's archive: ${errors.at(0) ?? `apt-get exited with status ${result.status}`}. Check the network connection and run 'sudo apt-get update'`,
        );
      }
      const debs = readdirSync(temp).filter((f) => f.endsWith(".deb"));
      if (debs.length !== 1) throw new ImagesError(`apt-get download of ${pkg.name} produced no .deb file`);
      const downloaded = join(temp, debs[0]!);
      const problem = await debProblem(downloaded, pkg);
      if (problem !== undefined) {
        throw new ImagesError(
          `the downloaded ${pkg.name} ${pkg.version} is corrupt: ${problem}; try again later`,
        );
      }
      renameSync(downloaded, file);
      return file;
    } finally {
      rmSync(temp, { recursive: true, force: true });
    }
  }

  /**
   * Unpacks the .deb and returns where, unless it is already unpacked from the same file and
   * every file it left is still there with its size.
   */
  async unpack(pkg: ArchivePackage, debFile: string, deb: FileRecord, afterUnpack?: (root: string) => void) {
    const packages = join(this.cache, PACKAGE_DIR);
    mkdirSync(packages, { recursive: true });
    const root = join(packages, fileStem(pkg));
    if (unpackedIntact(root, deb.sha256)) return root;
    this.progress(`${pkg.name}: unpacking`);
    rmSync(root, { recursive: true, force: true });
    const temp = mkdtempSync(join(packages, ".unpack-"));
    try {
      const result = await runTool("dpkg-deb", ["-x", debFile, temp]);
      if (result.status !== 0) {
        rmSync(debFile, { force: true });
        throw new ImagesError(
          `${debFile} is corrupt (dpkg-deb -x failed: ${result.stderr.trim().split("\n").at(-1) ?? ""}); it was deleted, run 'tsvisor images fetch' again`,
        );
      }
      afterUnpack?.(temp);
      const marker: UnpackedMarker = { deb: deb.sha256, files: listFiles(temp) };
      writeFileSync(join(temp, UNPACKED_MARKER), `${JSON.stringify(marker)}\n`);
      renameSync(temp, root);
    } catch (err) {
      rmSync(temp, { recursive: true, force: true });
      throw err;
    }
    return root;
  }

  async fetch(spec: string, pkg: ArchivePackage, afterUnpack?: (root: string) => void): Promise<Fetched> {
    const debFile = await this.ensureDeb(spec, pkg);
    // ensureDeb checked size and hash against the archive's index; without a hash there, hash now.
    const deb: FileRecord = pkg.sha256
      ? { path: debFile, size: pkg.size, sha256: pkg.sha256 }
      : describeFile(debFile);
    const root = await this.unpack(pkg, debFile, deb, afterUnpack);
    return { pkg, deb, root };
  }
}

function packageRecord(f: Fetched): PackageRecord {
  return {
    name: f.pkg.name,
    version: f.pkg.version,
    architecture: f.pkg.architecture,
    deb: f.deb,
    root: f.root,
  };
}

function requiredFile(root: string, relative: string, pkg: string): FileRecord {
  const file = join(root, relative);
  if (!existsSync(file))
    throw new ImagesError(`the package ${pkg} has no ${relative}; the cache is unusable`);
  return describeFile(file);
}

/** The single kernel release a kernel package carries modules for. */
function kernelRelease(root: string, pkg: string): string {
  const modules = join(root, "lib", "modules");
  const releases = existsSync(modules) ? readdirSync(modules) : [];
  if (releases.length !== 1)
    throw new ImagesError(`the package ${pkg} does not hold exactly one kernel's modules`);
  return releases[0]!;
}

/** Writes the initramfs file only if its bytes changed, and describes it. */
function writeInitramfs(
  cache: string,
  kernel: { root: string; name: string },
  busybox: Uint8Array,
): InitramfsRecord {
  const release = kernelRelease(kernel.root, kernel.name);
  const modulesDir = join(kernel.root, "lib", "modules", release);
  const index = loadModuleIndex(modulesDir);
  const closure = index.closure(DEFAULT_GUEST_MODULES);
  const image = buildInitramfs({
    busybox,
    kernelRelease: release,
    modules: { dir: modulesDir, index, names: DEFAULT_GUEST_MODULES },
  });
  const dir = join(cache, INITRAMFS_DIR);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `initramfs-${release}.cpio.gz`);
  const previous = existsSync(file) ? readFileSync(file) : undefined;
  if (!previous?.equals(image)) {
    writeFileSync(`${file}.tmp`, image);
    renameSync(`${file}.tmp`, file);
  }
  return {
    path: file,
    size: image.length,
    sha256: sha256Hex(image),
    modules: closure.modules.map((m) => m.name).sort(),
    missingModules: closure.missing,
    recipe: initramfsRecipe(),
  };
}

/**
 * Rebuilds the default initramfs of a cache whose images are all there but whose initramfs was
 * made by an older recipe (a new init, more modules); nothing is downloaded.
 */
function refreshInitramfs(manifest: Manifest, progress: (line: string) => void): Manifest {
  const recipe = initramfsRecipe();
  if (manifest.kernel.initramfs.recipe === recipe && manifest.kernelPae.initramfs.recipe === recipe)
    return manifest;
  progress("rebuilding the default initramfs (its recipe changed)");
  const busybox = readFileSync(manifest.busybox.binary.path);
  const rebuild = (k: KernelImage): KernelImage => ({
    ...k,
    initramfs: writeInitramfs(manifest.cacheDir, { root: k.package.root, name: k.package.name }, busybox),
  });
  const updated: Manifest = {
    ...manifest,
    kernel: rebuild(manifest.kernel),
    kernelPae: rebuild(manifest.kernelPae),
  };
  saveManifest(updated);
  return updated;
}

function kernelImage(cache: string, kernel: Fetched, busybox: Uint8Array): KernelImage {
  const release = kernelRelease(kernel.root, kernel.pkg.name);
  return {
    package: packageRecord(kernel),
    release,
    vmlinuz: requiredFile(kernel.root, `boot/vmlinuz-${release}`, kernel.pkg.name),
    modulesDir: join(kernel.root, "lib", "modules", release),
    initramfs: writeInitramfs(cache, { root: kernel.root, name: kernel.pkg.name }, busybox),
  };
}

/** Deletes downloads and unpacked packages the new manifest no longer refers to. */
function pruneCache(manifest: Manifest): void {
  const packages = [manifest.kernel, manifest.kernelPae].map((k) => k.package);
  packages.push(manifest.busybox.package, manifest.seabios.package, manifest.memtest.package);
  const keepDebs = new Set(packages.map((p) => p.deb.path));
  const keepRoots = new Set(packages.map((p) => p.root));
  const keepInitramfs = new Set([manifest.kernel.initramfs.path, manifest.kernelPae.initramfs.path]);
  const sweep = (dir: string, keep: Set<string>) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (!keep.has(path)) rmSync(path, { recursive: true, force: true });
    }
  };
  sweep(join(manifest.cacheDir, DEB_DIR), keepDebs);
  sweep(join(manifest.cacheDir, PACKAGE_DIR), keepRoots);
  sweep(join(manifest.cacheDir, INITRAMFS_DIR), keepInitramfs);
}

/**
 * Fetches everything and writes the manifest. Throws ImagesError with a message for the user when
 * something is missing or broken (tools, multiarch, network, a corrupt download).
 */
export async function fetchImages(options: FetchOptions = {}): Promise<Manifest> {
  const cache = options.cacheDir ?? defaultCacheDir();
  const progress = options.onProgress ?? (() => {});
  requireTools(["apt-get", "apt-cache", "dpkg-deb"]);
  return withCacheLock(
    cache,
    () => fetchLocked(cache, progress).catch(fileSystemError(cache)),
    lockOptions(progress),
  );
}

/** Host file-system failures (disk full, no permission) become a user error naming the cache. */
function fileSystemError(cache: string) {
  return (err: unknown): never => {
    if (
      err instanceof Error &&
      typeof (err as NodeJS.ErrnoException).code === "string" &&
      !(err instanceof ImagesError)
    ) {
      throw new ImagesError(`cannot update the image cache in ${cache}: ${err.message}`);
    }
    throw err;
  };
}

function lockOptions(progress: (line: string) => void) {
  return {
    onWait: (pid: number) => progress(`waiting for process ${pid}, which is updating the image cache`),
  };
}

/** The work of fetchImages, with the cache lock held. */
async function fetchLocked(cache: string, progress: (line: string) => void): Promise<Manifest> {
  const fetcher = new Fetcher(cache, progress);
  const kernelName = await resolveKernelPackage();
  const paeName = `${kernelName}-pae`;
  const indexModules = (root: string) => {
    const release = kernelRelease(root, kernelName);
    progress(`indexing the modules of ${release}`);
    indexKernelModules(join(root, "lib", "modules", release));
  };
  const specs = [`${kernelName}:i386`, `${paeName}:i386`, BUSYBOX_PACKAGE, SEABIOS_PACKAGE, MEMTEST_PACKAGE];
  const candidates = await showCandidates(specs);
  const kernelCandidate = candidates.get(specs[0]!)!;
  const paeCandidate = candidates.get(specs[1]!)!;
  if (paeCandidate.version !== kernelCandidate.version) {
    throw new ImagesError(
      `${paeName} is at version ${paeCandidate.version} but ${kernelName} at ${kernelCandidate.version}; run 'sudo apt-get update' and try again`,
    );
  }
  const fetched: Fetched[] = [];
  for (const spec of specs) {
    const kernelPackage = spec.startsWith("linux-image-");
    fetched.push(await fetcher.fetch(spec, candidates.get(spec)!, kernelPackage ? indexModules : undefined));
  }
  const [kernel, pae, busybox, seabios, memtest] = fetched as [Fetched, Fetched, Fetched, Fetched, Fetched];
  const busyboxBinary = requiredFile(busybox.root, "bin/busybox", busybox.pkg.name);
  const busyboxBytes = readFileSync(busyboxBinary.path);
  progress("building the default initramfs");
  const memtestFiles: Record<string, FileRecord> = {};
  for (const dir of ["boot", "usr/lib/memtest86+"]) {
    const full = join(memtest.root, dir);
    if (!existsSync(full)) continue;
    for (const name of readdirSync(full).sort()) {
      if (/^memtest86\+.*\.(bin|iso|efi)$/.test(name)) memtestFiles[name] = describeFile(join(full, name));
    }
  }
  if (Object.keys(memtestFiles).length === 0) {
    throw new ImagesError(`the package ${memtest.pkg.name} has no memtest86+ image`);
  }
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    cacheDir: cache,
    fetchedAt: new Date().toISOString(),
    kernel: kernelImage(cache, kernel, busyboxBytes),
    kernelPae: kernelImage(cache, pae, busyboxBytes),
    busybox: { package: packageRecord(busybox), binary: busyboxBinary },
    seabios: {
      package: packageRecord(seabios),
      bios: requiredFile(seabios.root, "usr/share/seabios/bios.bin", seabios.pkg.name),
      bios256k: requiredFile(seabios.root, "usr/share/seabios/bios-256k.bin", seabios.pkg.name),
      vgabiosStdvga: requiredFile(seabios.root, "usr/share/seabios/vgabios-stdvga.bin", seabios.pkg.name),
    },
    memtest: { package: packageRecord(memtest), files: memtestFiles },
  };
  saveManifest(manifest);
  pruneCache(manifest);
  return manifest;
}

/** Quick check that the files a manifest names are still there with the recorded sizes. */
export function manifestFilesPresent(manifest: Manifest): boolean {
  const records: FileRecord[] = [
    manifest.kernel.vmlinuz,
    manifest.kernel.initramfs,
    manifest.kernelPae.vmlinuz,
    manifest.kernelPae.initramfs,
    manifest.busybox.binary,
    manifest.seabios.bios,
    manifest.seabios.bios256k,
    manifest.seabios.vgabiosStdvga,
    ...Object.values(manifest.memtest.files),
  ];
  return records.every((r) => {
    try {
      return statSync(r.path).size === r.size;
    } catch {
      return false;
    }
  });
}

/**
 * The manifest, fetching the images first if the cache has none, has a corrupt one, or is missing
 * files. What the `run` command calls before booting.
 */
export async function ensureImages(options: FetchOptions = {}): Promise<Manifest> {
  const cache = options.cacheDir ?? defaultCacheDir();
  const progress = options.onProgress ?? (() => {});
  const usable = () => {
    const current = readManifest(cache);
    if (current.status === "ok" && manifestFilesPresent(current.manifest))
      return refreshInitramfs(current.manifest, progress);
    if (current.status === "corrupt") progress(`${current.reason}; fetching again`);
    return undefined;
  };
  const ready = usable();
  if (ready) return ready;
  requireTools(["apt-get", "apt-cache", "dpkg-deb"]);
  // Another process may have fetched while we waited for the lock: look again before fetching.
  return withCacheLock(
    cache,
    async () => usable() ?? fetchLocked(cache, progress).catch(fileSystemError(cache)),
    lockOptions(progress),
  );
}
