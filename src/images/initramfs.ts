import { createHash } from "node:crypto";
// The default guest's initial root filesystem: static busybox, the kernel modules a guest needs
// for disks, CD-ROMs, network and file systems, and an /init that announces readiness on the
// console and then keeps an interactive shell running there.
//
// The archive is reproducible: the same inputs give the same bytes (see cpio.ts and gzip.ts).

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CpioEntry, normalizeArchivePath, writeNewcCpio } from "./cpio.ts";
import { ImagesError } from "./errors.ts";
import { gzipReproducible } from "./gzip.ts";
import { ModuleIndex, scanModules } from "./kmod.ts";
import type { Manifest } from "./manifest.ts";

/** Printed on the console by the default /init, followed by the kernel release, once ready. */
export const GUEST_READY_MARKER = "TSVISOR-GUEST-READY";

/**
 * Modules the guests will need: PIIX IDE/SATA and generic ATA, SCSI disks and CD-ROMs, ISO 9660
 * and ext2/3/4, virtio over PCI (block, network, console), and the e1000 and NE2000 PCI network
 * cards. Names the kernel has built in, or lacks, are skipped (and recorded as missing).
 */
export const DEFAULT_GUEST_MODULES: readonly string[] = [
  "ata_piix",
  "ata_generic",
  "pata_acpi",
  "sd_mod",
  "sr_mod",
  "cdrom",
  "isofs",
  "ext4",
  "crc32c_generic",
  "virtio_pci",
  "virtio_blk",
  "virtio_net",
  "virtio_console",
  "virtio_scsi",
  "e1000",
  "ne2k_pci",
  "8390",
  "ne",
  "floppy",
];

/**
 * Busybox applets linked into /bin so the shell works before /init has run `busybox --install`
 * (which adds the others). All of these exist in Debian's busybox-static.
 */
export const DEFAULT_APPLETS: readonly string[] = [
  "sh",
  "ash",
  "cat",
  "chmod",
  "chroot",
  "cp",
  "cttyhack",
  "cut",
  "date",
  "dd",
  "df",
  "dmesg",
  "echo",
  "env",
  "false",
  "find",
  "free",
  "grep",
  "head",
  "hexdump",
  "hostname",
  "insmod",
  "ip",
  "kill",
  "ln",
  "ls",
  "lsmod",
  "md5sum",
  "mkdir",
  "mknod",
  "modprobe",
  "mount",
  "mv",
  "poweroff",
  "printf",
  "ps",
  "pwd",
  "reboot",
  "rm",
  "rmdir",
  "rmmod",
  "sed",
  "setsid",
  "sha256sum",
  "sleep",
  "sort",
  "stty",
  "sync",
  "tail",
  "tee",
  "test",
  "touch",
  "tr",
  "true",
  "umount",
  "uname",
  "vi",
  "wc",
  "xargs",
];

/** The default /init. `$(uname -r)` is evaluated in the guest: it reports the kernel that booted. */
export const DEFAULT_INIT = `#!/bin/sh
# tsvisor default guest init: mount the kernel's file systems, say we are ready, then hand over
# to BusyBox init (/etc/inittab), which keeps a shell with job control on the console and turns
# poweroff and reboot into the kernel's power-off and restart.
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts
mount -t devpts devpts /dev/pts
/bin/busybox --install -s
hostname tsvisor-guest
echo "${GUEST_READY_MARKER} $(uname -r)"
exec /sbin/init
`;

/** BusyBox init's table: a console shell (cttyhack finds the real tty for job control). */
const DEFAULT_INITTAB = `::respawn:/bin/cttyhack /bin/sh -l
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/umount -a -r
`;

const DEFAULT_PROFILE = `export PATH=/sbin:/usr/sbin:/bin:/usr/bin
export HOME=/root
export PS1='\\h:\\w# '
`;

/**
 * Fingerprint of how the default initramfs is made (init, inittab, profile, applets, modules).
 * The cache rebuilds its initramfs when this changes, without fetching anything.
 */
export function initramfsRecipe(): string {
  const parts = [
    DEFAULT_INIT,
    DEFAULT_INITTAB,
    DEFAULT_PROFILE,
    DEFAULT_APPLETS.join(","),
    DEFAULT_GUEST_MODULES.join(","),
  ];
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 16);
}

export interface ExtraFile {
  /** Path in the guest ("/etc/test.sh"); parent directories are created. */
  readonly path: string;
  readonly data: Uint8Array | string;
  /** Permission bits (default 0644). */
  readonly mode?: number;
}

export interface InitramfsModules {
  /** The kernel's modules directory on the host (…/lib/modules/<release>). */
  readonly dir: string;
  readonly index: ModuleIndex;
  /** Modules to ship (their dependencies are added). */
  readonly names: readonly string[];
}

export interface InitramfsOptions {
  /** The static i386 busybox binary. */
  readonly busybox: Uint8Array;
  /** Release of the kernel the modules belong to: they go to /lib/modules/<release>. */
  readonly kernelRelease: string;
  readonly modules?: InitramfsModules;
  /** Files added last: they replace default files at the same path. */
  readonly extraFiles?: readonly ExtraFile[];
  /** Replaces the default /init script. */
  readonly init?: string | Uint8Array;
  /** Any other archive entries (symlinks, device nodes, directories), added after extraFiles. */
  readonly extraEntries?: readonly CpioEntry[];
  /** Applets to link in /bin (default DEFAULT_APPLETS). */
  readonly applets?: readonly string[];
}

export interface InitramfsContents {
  readonly entries: CpioEntry[];
  readonly modules: string[];
  readonly missingModules: string[];
}

const encoder = new TextEncoder();
const bytes = (data: Uint8Array | string) => (typeof data === "string" ? encoder.encode(data) : data);

/** Lists what goes into the initramfs (before it becomes a cpio archive). */
export function initramfsContents(options: InitramfsOptions): InitramfsContents {
  if (!/^[A-Za-z0-9._+-]+$/.test(options.kernelRelease)) {
    throw new ImagesError(`invalid kernel release '${options.kernelRelease}'`);
  }
  const files = new Map<string, CpioEntry>();
  const put = (entry: CpioEntry) => files.set(normalizeArchivePath(entry.path), entry);

  for (const dir of [
    "bin",
    "sbin",
    "usr/bin",
    "usr/sbin",
    "dev",
    "proc",
    "sys",
    "tmp",
    "root",
    "mnt",
    "etc",
    "run",
  ]) {
    put({ type: "directory", path: dir, mode: dir === "tmp" ? 0o1777 : dir === "root" ? 0o700 : 0o755 });
  }
  // The kernel opens /dev/console for init before devtmpfs is mounted, so the nodes must exist.
  put({ type: "char", path: "dev/console", major: 5, minor: 1, mode: 0o600 });
  put({ type: "char", path: "dev/null", major: 1, minor: 3, mode: 0o666 });
  put({ type: "file", path: "bin/busybox", data: options.busybox, mode: 0o755 });
  for (const applet of options.applets ?? DEFAULT_APPLETS) {
    put({ type: "symlink", path: `bin/${applet}`, target: "busybox" });
  }
  put({ type: "file", path: "etc/passwd", data: bytes("root:x:0:0:root:/root:/bin/sh\n") });
  put({ type: "file", path: "etc/group", data: bytes("root:x:0:\n") });
  put({ type: "file", path: "etc/profile", data: bytes(DEFAULT_PROFILE) });
  put({ type: "file", path: "etc/inittab", data: bytes(DEFAULT_INITTAB) });
  put({ type: "file", path: "init", data: bytes(options.init ?? DEFAULT_INIT), mode: 0o755 });

  let modules: string[] = [];
  let missingModules: string[] = [];
  const moduleRoot = `lib/modules/${options.kernelRelease}`;
  put({ type: "directory", path: moduleRoot });
  if (options.modules) {
    const { dir, index, names } = options.modules;
    const closure = index.closure(names);
    modules = closure.modules.map((m) => m.name).sort();
    missingModules = closure.missing;
    for (const m of closure.modules) {
      let data: Uint8Array;
      try {
        data = readFileSync(join(dir, m.path));
      } catch (err) {
        throw new ImagesError(
          `cannot read kernel module ${m.path} (${(err as Error).message}); run 'tsvisor images fetch'`,
        );
      }
      put({ type: "file", path: `${moduleRoot}/${m.path}`, data });
    }
    put({ type: "file", path: `${moduleRoot}/modules.dep`, data: bytes(index.modulesDep(closure.modules)) });
    put({
      type: "file",
      path: `${moduleRoot}/modules.alias`,
      data: bytes(index.modulesAlias(closure.modules)),
    });
    put({
      type: "file",
      path: `${moduleRoot}/modules.softdep`,
      data: bytes(index.modulesSoftdep(closure.modules)),
    });
    // modprobe treats names listed here as present, so `modprobe <built-in>` succeeds.
    const builtin = join(dir, "modules.builtin");
    if (existsSync(builtin))
      put({ type: "file", path: `${moduleRoot}/modules.builtin`, data: readFileSync(builtin) });
  }

  for (const extra of options.extraFiles ?? []) {
    put({ type: "file", path: extra.path, data: bytes(extra.data), mode: extra.mode ?? 0o644 });
  }
  for (const entry of options.extraEntries ?? []) put(entry);
  return { entries: [...files.values()], modules, missingModules };
}

/** Builds a gzip'd newc initramfs, reproducibly. */
export function buildInitramfs(options: InitramfsOptions): Uint8Array {
  return gzipReproducible(writeNewcCpio(initramfsContents(options).entries));
}

/** File in a modules directory holding tsvisor's index of the modules (see kmod.ts). */
export const MODULE_INDEX_FILE = "modules.tsvisor.json";

/**
 * Writes modules.dep, modules.alias, modules.softdep and tsvisor's JSON index into a kernel's
 * modules directory (which the Debian package leaves to depmod at install time).
 */
export function indexKernelModules(modulesDir: string): ModuleIndex {
  const index = new ModuleIndex(scanModules(modulesDir));
  writeFileSync(join(modulesDir, "modules.dep"), index.modulesDep());
  writeFileSync(join(modulesDir, "modules.alias"), index.modulesAlias());
  writeFileSync(join(modulesDir, "modules.softdep"), index.modulesSoftdep());
  writeFileSync(join(modulesDir, MODULE_INDEX_FILE), `${JSON.stringify(index)}\n`);
  return index;
}

/** The module index of a kernel in the cache, rebuilt if it is missing or unreadable. */
export function loadModuleIndex(modulesDir: string): ModuleIndex {
  const file = join(modulesDir, MODULE_INDEX_FILE);
  try {
    return ModuleIndex.fromJSON(JSON.parse(readFileSync(file, "utf8")), file);
  } catch {
    return indexKernelModules(modulesDir);
  }
}

export interface GuestInitramfsOptions {
  /** Which cached kernel the modules are for (default "default", the 686 kernel). */
  readonly kernel?: "default" | "pae";
  /** Modules to ship (default DEFAULT_GUEST_MODULES); their dependencies are added. */
  readonly modules?: readonly string[];
  readonly extraFiles?: readonly ExtraFile[];
  readonly extraEntries?: readonly CpioEntry[];
  readonly init?: string | Uint8Array;
}

/**
 * Builds an initramfs from the cached busybox and kernel modules, e.g. the default one plus a
 * system test's own files, or with its own /init.
 */
export function buildGuestInitramfs(manifest: Manifest, options: GuestInitramfsOptions = {}): Uint8Array {
  const kernel = options.kernel === "pae" ? manifest.kernelPae : manifest.kernel;
  let busybox: Uint8Array;
  try {
    busybox = readFileSync(manifest.busybox.binary.path);
  } catch (err) {
    throw new ImagesError(
      `cannot read the cached busybox (${(err as Error).message}); run 'tsvisor images fetch'`,
    );
  }
  return buildInitramfs({
    busybox,
    kernelRelease: kernel.release,
    modules: {
      dir: kernel.modulesDir,
      index: loadModuleIndex(kernel.modulesDir),
      names: options.modules ?? DEFAULT_GUEST_MODULES,
    },
    extraFiles: options.extraFiles,
    extraEntries: options.extraEntries,
    init: options.init,
  });
}
