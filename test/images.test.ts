// System test of `tsvisor images fetch|list`: downloads the real packages from Debian's archive
// (set TSVISOR_TEST_CACHE to a directory to keep them between runs), then checks the cache, the
// listing, the initramfs and the error paths that are cheap to provoke.

import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  buildGuestInitramfs,
  defaultBootFiles,
  ensureImages,
  gunzip,
  loadManifest,
  type Manifest,
  readNewcCpio,
} from "../src/images/index.ts";
import { sha256Hex } from "../src/images/manifest.ts";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const node = join(repo, "node_modules", ".bin", "node");
const cli = join(repo, "bin", "tsvisor.js");

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function tsvisor(args: string[], env: Record<string, string | undefined> = {}): Run {
  const result = spawnSync(node, [cli, ...args], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, ...env },
    timeout: 15 * 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function assertCleanError(run: Run, status: number, pattern: RegExp) {
  assert.equal(run.status, status, `exit status; stderr: ${run.stderr}`);
  assert.match(run.stderr, pattern);
  assert.doesNotMatch(run.stderr, /internal error|\n\s+at /, "no stack trace");
}

/** A directory of stand-in tools placed first on PATH; others are linked to the real ones. */
function fakeToolsDir(parent: string, fakes: Record<string, string>): string {
  const dir = join(parent, `tools-${Object.keys(fakes).join("-")}`);
  mkdirSync(dir, { recursive: true });
  for (const tool of ["apt-get", "apt-cache", "dpkg-deb"]) {
    const path = join(dir, tool);
    rmSync(path, { force: true });
    const fake = fakes[tool];
    if (fake !== undefined) {
      writeFileSync(path, `#!/bin/sh\n${fake}\n`);
      chmodSync(path, 0o755);
    } else {
      const real = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
      symlinkSync(real, path);
    }
  }
  return dir;
}

const shared = process.env.TSVISOR_TEST_CACHE;
const scratch = mkdtempSync(join(tmpdir(), "tsvisor-images-test-"));
const cache = shared !== undefined && shared !== "" ? resolve(shared) : join(scratch, "cache");
const env = { TSVISOR_CACHE: cache };

after(() => rmSync(scratch, { recursive: true, force: true }));

describe("tsvisor images, against Debian's archive", () => {
  let manifest: Manifest;
  let firstFetch: Run;

  before(() => {
    firstFetch = tsvisor(["images", "fetch"], env);
    assert.equal(firstFetch.status, 0, `images fetch failed:\n${firstFetch.stderr}`);
    manifest = loadManifest(cache)!;
    assert.ok(manifest, "a manifest was written");
  });

  test("fetch reports progress per package and records both kernels of one release", () => {
    for (const name of [manifest.kernel.package.name, "busybox-static", "seabios", "memtest86+"]) {
      assert.match(
        firstFetch.stderr,
        new RegExp(`^${name.replaceAll("+", "\\+")} \\S+ \\(\\w+, [0-9.]+ [KM]iB\\): `, "m"),
      );
    }
    assert.match(firstFetch.stdout, /^Guest images ready: kernel \S+-686 and \S+-686-pae/);
    assert.match(manifest.kernel.release, /^\d+\.\d+\.\d+-\d+-686$/);
    assert.equal(manifest.kernelPae.release, `${manifest.kernel.release}-pae`);
    assert.equal(manifest.kernel.package.version, manifest.kernelPae.package.version);
    assert.equal(manifest.kernel.package.name, `linux-image-${manifest.kernel.release}`);
    // The kernel is the one the metapackage depends on right now.
    const depends = spawnSync("apt-cache", ["depends", "linux-image-686:i386"], { encoding: "utf8" }).stdout;
    assert.match(depends, new RegExp(`Depends: ${manifest.kernel.package.name}(:i386)?\\n`));
  });

  test("the recorded files exist with the recorded sizes and SHA-256 sums", () => {
    const records = [
      manifest.kernel.vmlinuz,
      manifest.kernelPae.vmlinuz,
      manifest.kernel.initramfs,
      manifest.busybox.binary,
      manifest.seabios.bios,
      manifest.seabios.bios256k,
      manifest.seabios.vgabiosStdvga,
      ...Object.values(manifest.memtest.files),
    ];
    for (const record of records) {
      const data = readFileSync(record.path);
      assert.equal(data.length, record.size, record.path);
      assert.equal(sha256Hex(data), record.sha256, record.path);
    }
    assert.equal(manifest.seabios.bios.size, 128 * 1024);
    assert.equal(manifest.seabios.bios256k.size, 256 * 1024);
    // A bzImage: "HdrS" boot protocol signature at 0x202.
    assert.equal(
      readFileSync(manifest.kernel.vmlinuz.path).subarray(0x202, 0x206).toString("latin1"),
      "HdrS",
    );
    // busybox-static for i386: a 32-bit (ELFCLASS32) x86 (EM_386) ELF executable.
    const busybox = readFileSync(manifest.busybox.binary.path);
    assert.deepEqual([...busybox.subarray(0, 5)], [0x7f, 0x45, 0x4c, 0x46, 1]);
    assert.equal(busybox.readUInt16LE(0x12), 3);
    assert.ok(existsSync(join(manifest.kernel.modulesDir, "modules.dep")));
    assert.ok(Object.keys(manifest.memtest.files).some((n) => n.endsWith(".bin")));
  });

  test("list shows versions, kernel releases and sizes; --verbose adds paths", () => {
    const list = tsvisor(["images", "list"], env);
    assert.equal(list.status, 0, list.stderr);
    const line = (item: string, file: string) => {
      const found = list.stdout.split("\n").find((l) => l.startsWith(`${item} `) && l.includes(` ${file} `));
      assert.ok(found, `${item} ${file} in:\n${list.stdout}`);
      return found;
    };
    const mib = (n: number) => `${(n / (1024 * 1024)).toFixed(1)} MiB`;
    const kernelLine = line("kernel", `vmlinuz-${manifest.kernel.release}`);
    assert.ok(kernelLine.includes(manifest.kernel.package.version));
    assert.ok(kernelLine.endsWith(mib(manifest.kernel.vmlinuz.size)));
    assert.ok(
      line("kernel-pae", `vmlinuz-${manifest.kernelPae.release}`).includes(
        manifest.kernelPae.package.version,
      ),
    );
    assert.ok(
      line("initramfs", `initramfs-${manifest.kernel.release}.cpio.gz`).endsWith(
        mib(manifest.kernel.initramfs.size),
      ),
    );
    assert.ok(line("busybox", "busybox").includes(manifest.busybox.package.version));
    assert.ok(line("seabios", "bios.bin").endsWith("128.0 KiB"));
    assert.ok(line("seabios", "vgabios-stdvga.bin").includes(manifest.seabios.package.version));
    assert.ok(line("memtest86+", "memtest86+ia32.bin").includes(manifest.memtest.package.version));
    assert.ok(!list.stdout.includes(join(cache, "packages")), "paths only with --verbose");

    const verbose = tsvisor(["images", "list", "--verbose"], env);
    assert.equal(verbose.status, 0, verbose.stderr);
    assert.ok(verbose.stdout.includes(manifest.kernel.vmlinuz.path));
    assert.ok(verbose.stdout.includes(manifest.kernel.vmlinuz.sha256));
    assert.match(verbose.stdout, /Modules in the \S+ initramfs: .*\bext4\b/);
  });

  test("the initramfs rebuilds byte for byte and Debian's cpio lists it", () => {
    const first = buildGuestInitramfs(manifest);
    const second = buildGuestInitramfs(manifest);
    assert.deepEqual(first, second);
    assert.deepEqual(
      first,
      new Uint8Array(readFileSync(manifest.kernel.initramfs.path)),
      "same as the cached one",
    );

    const listing = spawnSync("cpio", ["-t", "--quiet"], { input: gunzip(first), encoding: "utf8" });
    assert.equal(listing.status, 0, listing.stderr);
    const names = new Set(listing.stdout.trim().split("\n"));
    const moduleRoot = `lib/modules/${manifest.kernel.release}`;
    for (const name of [
      "init",
      "bin/busybox",
      "bin/sh",
      "bin/cttyhack",
      "dev/console",
      "dev/null",
      "proc",
      "sys",
      `${moduleRoot}/modules.dep`,
      `${moduleRoot}/modules.alias`,
    ]) {
      assert.ok(names.has(name), `${name} in the initramfs`);
    }
    for (const module of [
      "ata_piix",
      "sd_mod",
      "sr_mod",
      "isofs",
      "ext4",
      "jbd2",
      "virtio_blk",
      "virtio_net",
      "e1000",
    ]) {
      assert.ok(
        [...names].some(
          (n) =>
            n.startsWith(`${moduleRoot}/kernel/`) && /\/([^/]+)\.ko(\.xz|\.zst)?$/.exec(n)?.[1] === module,
        ),
        `${module} in the initramfs`,
      );
    }
    // modules.dep names only modules that are in the archive.
    const files = new Map(readNewcCpio(gunzip(first)).map((r) => [r.name, r]));
    const dep = new TextDecoder().decode(files.get(`${moduleRoot}/modules.dep`)!.data);
    for (const path of dep.split(/[\s:]+/).filter((p) => p !== "")) {
      assert.ok(names.has(`${moduleRoot}/${path}`), `${path} from modules.dep is shipped`);
    }

    const custom = buildGuestInitramfs(manifest, {
      extraFiles: [{ path: "/test/hello.sh", data: "#!/bin/sh\necho hello\n", mode: 0o755 }],
      init: "#!/bin/sh\n/test/hello.sh\n",
    });
    const customFiles = new Map(readNewcCpio(gunzip(custom)).map((r) => [r.name, r]));
    assert.equal(new TextDecoder().decode(customFiles.get("init")!.data), "#!/bin/sh\n/test/hello.sh\n");
    assert.ok(customFiles.has("test/hello.sh"));
  });

  test("the default initramfs boots Debian's kernel in QEMU: ready line, shell, modprobe, CD-ROM", async (t) => {
    const qemu = spawnSync("qemu-system-i386", ["--version"]);
    if (qemu.error) {
      t.skip("qemu-system-i386 is not installed (scripts/setup-host.sh installs it)");
      return;
    }
    // A small ISO 9660 image made here for the guest to mount from its CD-ROM drive.
    const cdTree = join(mkdtempSync(join(tmpdir(), "tsvisor-cd-")), "tree");
    mkdirSync(cdTree, { recursive: true });
    writeFileSync(join(cdTree, "hello.txt"), "hello from the CD\n");
    const iso = { path: join(cdTree, "..", "cd.iso") };
    const mkiso = spawnSync("xorriso", ["-as", "mkisofs", "-quiet", "-o", iso.path, cdTree]);
    if (mkiso.error) {
      t.skip("xorriso is not installed (scripts/setup-host.sh installs it)");
      return;
    }
    const vm = spawn(
      "qemu-system-i386",
      [
        ...["-m", "256", "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio"],
        ...["-kernel", manifest.kernel.vmlinuz.path, "-initrd", manifest.kernel.initramfs.path],
        ...["-append", "console=ttyS0 panic=-1 quiet"],
        ...["-drive", `file=${iso.path},media=cdrom,readonly=on`],
      ],
      { stdio: ["pipe", "pipe", "pipe"] },
    );
    let console = "";
    const waiters: { pattern: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
    vm.stdout.on("data", (chunk: Buffer) => {
      console += chunk.toString("latin1");
      for (const w of [...waiters]) {
        const m = w.pattern.exec(console);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    });
    const exited = new Promise<void>((resolve) => vm.on("exit", () => resolve()));
    // A safety net only: each step normally takes a second or two under QEMU's TCG.
    const waitFor = (pattern: RegExp) =>
      Promise.race([
        new Promise<RegExpExecArray>((resolve) => waiters.push({ pattern, resolve })),
        exited.then(() => assert.fail(`QEMU exited before ${pattern}; console:\n${console}`)),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`no ${pattern} on the console:\n${console}`)), 180_000).unref(),
        ),
      ]);
    try {
      const ready = await waitFor(/TSVISOR-GUEST-READY (\S+)\r?\n/);
      assert.equal(ready[1], manifest.kernel.release);
      // "$((1+1))" is expanded by the guest's shell, so the echoed command line cannot match.
      vm.stdin.write(
        "modprobe ata_piix && modprobe sr_mod && modprobe isofs && mount -t iso9660 -o ro /dev/sr0 /mnt && echo CDROM-$((1+1))\n",
      );
      await waitFor(/CDROM-2/);
      vm.stdin.write("modprobe ext4 && modprobe e1000 && modprobe virtio_net && echo MODULES-$((2+2))\n");
      await waitFor(/MODULES-4/);
      vm.stdin.write("sleep 30 &\njobs; echo JOBS-$((3+3))\n");
      const jobs = await waitFor(/\[1\]\+\s+Running\s+sleep 30[\s\S]*JOBS-6/);
      assert.ok(jobs, "job control works on the console shell");
      vm.stdin.write("cat /mnt/hello.txt; exit\n");
      // BusyBox init (PID 1) starts a new console shell when one exits.
      await waitFor(/hello from the CD[\s\S]*built-in shell \(ash\)/);
      vm.stdin.write("poweroff -f\n");
      await exited;
    } finally {
      vm.kill();
    }
  });

  test("fetching again reuses the cache", () => {
    const again = tsvisor(["images", "fetch"], env);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /downloading|unpacking/);
    assert.equal((again.stderr.match(/: cached$/gm) ?? []).length, 5);
  });

  test("a corrupt .deb in the cache is detected and downloaded again", () => {
    const deb = manifest.seabios.package.deb;
    writeFileSync(deb.path, "this is not a Debian package\n");
    const repair = tsvisor(["images", "fetch"], env);
    assert.equal(repair.status, 0, repair.stderr);
    assert.match(
      repair.stderr,
      /seabios \S+ \(all, [0-9.]+ KiB\): the cached \S+ is corrupt \(.*\); downloading it again/,
    );
    assert.equal(sha256Hex(readFileSync(deb.path)), deb.sha256);
  });

  test("a file deleted from an unpacked package shows as missing and fetch unpacks it again", () => {
    // SeaBIOS rather than a kernel: the same code path, a much smaller package to unpack again.
    const vgabios = manifest.seabios.vgabiosStdvga;
    rmSync(vgabios.path);
    const list = tsvisor(["images", "list"], env);
    assert.equal(list.status, 1);
    assert.match(list.stdout, /^seabios .* vgabios-stdvga\.bin\s+MISSING$/m);
    assert.match(list.stderr, /missing or changed; run 'tsvisor images fetch' to repair/);
    const repair = tsvisor(["images", "fetch"], env);
    assert.equal(repair.status, 0, repair.stderr);
    assert.match(repair.stderr, /^seabios: unpacking$/m);
    assert.doesNotMatch(repair.stderr, /linux-image-\S+: unpacking/);
    assert.equal(sha256Hex(readFileSync(vgabios.path)), vgabios.sha256);
  });

  test("ensureImages returns the cached manifest without fetching", async () => {
    const progress: string[] = [];
    const ensured = await ensureImages({ cacheDir: cache, onProgress: (l) => progress.push(l) });
    assert.deepEqual(progress, []);
    assert.equal(ensured.kernel.vmlinuz.sha256, manifest.kernel.vmlinuz.sha256);
    assert.equal(defaultBootFiles(ensured).initrd, manifest.kernel.initramfs.path);
  });

  test("a corrupt manifest makes list fail clearly and fetch repairs it", () => {
    const file = join(cache, "manifest.json");
    const good = readFileSync(file);
    writeFileSync(file, "{ half a manifest");
    try {
      assertCleanError(tsvisor(["images", "list"], env), 1, /manifest .* is corrupt .*tsvisor images fetch/);
      assert.equal(tsvisor(["images", "fetch", "--quiet"], env).status, 0);
      assert.equal(tsvisor(["images", "list"], env).status, 0);
    } finally {
      if (loadManifest(cache) === undefined) writeFileSync(file, good);
    }
  });
});

describe("tsvisor images error paths", () => {
  test("an empty cache lists as nothing cached, with the command to fetch", () => {
    const list = tsvisor(["images", "list"], { TSVISOR_CACHE: join(scratch, "empty") });
    assert.equal(list.status, 0);
    assert.match(
      list.stdout,
      /No guest images are cached in .*empty yet\. Fetch them with: tsvisor images fetch/,
    );
  });

  test("unknown subcommands and options are usage errors", () => {
    assertCleanError(
      tsvisor(["images", "frobnicate"], env),
      2,
      /^tsvisor: images: unknown subcommand 'frobnicate'/,
    );
    assertCleanError(tsvisor(["images", "list", "--bogus"], env), 2, /^tsvisor: images list: .*--bogus/);
    assertCleanError(tsvisor(["images", "fetch", "extra"], env), 2, /^tsvisor: images fetch: .*extra/);
    const help = tsvisor(["images", "--help"]);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /usage: tsvisor images <fetch\|list>/);
  });

  test("a cache path that is not a directory is a clear error", () => {
    const file = join(scratch, "not-a-directory");
    writeFileSync(file, "");
    assertCleanError(
      tsvisor(["images", "fetch"], { TSVISOR_CACHE: file }),
      1,
      /cannot create the image cache/,
    );
    assertCleanError(tsvisor(["images", "list"], { TSVISOR_CACHE: file }), 1, /cannot read .*manifest.json/);
  });

  test("missing Debian tools are named", () => {
    const run = tsvisor(["images", "fetch"], {
      TSVISOR_CACHE: join(scratch, "no-tools"),
      PATH: join(scratch, "nowhere"),
    });
    assertCleanError(run, 1, /apt-get, apt-cache, dpkg-deb are not installed or not on PATH/);
  });

  test("without i386 multiarch the exact commands to enable it are given", () => {
    // apt-cache policy prints nothing for a package of an architecture dpkg does not know.
    const tools = fakeToolsDir(scratch, { "apt-cache": "exit 0" });
    const run = tsvisor(["images", "fetch"], {
      TSVISOR_CACHE: join(scratch, "no-multiarch"),
      PATH: `${tools}:${process.env.PATH}`,
    });
    assertCleanError(run, 1, /sudo dpkg --add-architecture i386 && sudo apt-get update/);
  });

  test("a failed download (no network) is reported with apt's reason", () => {
    const tools = fakeToolsDir(scratch, {
      "apt-get":
        "echo \"E: Failed to fetch http://deb.debian.org/debian/pool/x.deb  Temporary failure resolving 'deb.debian.org'\" >&2; exit 100",
    });
    const run = tsvisor(["images", "fetch"], {
      TSVISOR_CACHE: join(scratch, "no-network"),
      PATH: `${tools}:${process.env.PATH}`,
    });
    assertCleanError(
      run,
      1,
      /could not download linux-image-\S+ \S+ from Debian's archive: Failed to fetch .*Temporary failure resolving 'deb.debian.org'.*network/,
    );
  });
});
