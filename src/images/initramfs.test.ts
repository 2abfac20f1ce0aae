import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type CpioRecord, readNewcCpio, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from "./cpio.ts";
import { ImagesError } from "./errors.ts";
import { gunzip } from "./gzip.ts";
import {
  buildInitramfs,
  DEFAULT_APPLETS,
  GUEST_READY_MARKER,
  type InitramfsOptions,
  indexKernelModules,
  loadModuleIndex,
  MODULE_INDEX_FILE,
} from "./initramfs.ts";
import { FAKE_MODULES, writeFakeModules } from "./testing.ts";

const RELEASE = "6.1.0-99-686";
const dec = new TextDecoder();
const busybox = new TextEncoder().encode("\x7fELF pretend busybox");

function withModules(body: (modulesDir: string) => void) {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-initramfs-"));
  try {
    writeFakeModules(dir, FAKE_MODULES);
    writeFileSync(join(dir, "modules.builtin"), "kernel/drivers/virtio/virtio_pci.ko\n");
    body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function options(modulesDir: string, extra: Partial<InitramfsOptions> = {}): InitramfsOptions {
  return {
    busybox,
    kernelRelease: RELEASE,
    modules: {
      dir: modulesDir,
      index: loadModuleIndex(modulesDir),
      names: ["ata_piix", "ext4", "virtio_pci"],
    },
    ...extra,
  };
}

function records(image: Uint8Array): Map<string, CpioRecord> {
  return new Map(readNewcCpio(gunzip(image)).map((r) => [r.name, r]));
}

test("the default initramfs has busybox, applet links, device nodes, /init and the modules", () => {
  withModules((dir) => {
    const files = records(buildInitramfs(options(dir)));
    assert.deepEqual(files.get("bin/busybox")?.data, busybox);
    assert.equal(files.get("bin/busybox")!.mode, S_IFREG | 0o755);
    for (const applet of DEFAULT_APPLETS) {
      const link = files.get(`bin/${applet}`);
      assert.equal(link!.mode & S_IFMT, S_IFLNK, applet);
      assert.equal(dec.decode(link!.data), "busybox");
    }
    assert.ok(
      DEFAULT_APPLETS.includes("sh") &&
        DEFAULT_APPLETS.includes("cttyhack") &&
        DEFAULT_APPLETS.includes("setsid"),
    );
    const consoleNode = files.get("dev/console")!;
    assert.equal(consoleNode.mode, S_IFCHR | 0o600);
    assert.deepEqual([consoleNode.rdevMajor, consoleNode.rdevMinor], [5, 1]);
    const nullNode = files.get("dev/null")!;
    assert.deepEqual([nullNode.mode, nullNode.rdevMajor, nullNode.rdevMinor], [S_IFCHR | 0o666, 1, 3]);
    for (const d of ["proc", "sys", "dev", "tmp", "root"])
      assert.equal(files.get(d)!.mode & S_IFMT, S_IFDIR, d);

    const init = files.get("init")!;
    assert.equal(init.mode, S_IFREG | 0o755);
    const script = dec.decode(init.data);
    assert.ok(script.startsWith("#!/bin/sh\n"));
    assert.match(script, /mount -t proc proc \/proc/);
    assert.match(script, /mount -t sysfs sysfs \/sys/);
    assert.match(script, /mount -t devtmpfs devtmpfs \/dev/);
    assert.match(script, new RegExp(`echo "${GUEST_READY_MARKER} \\$\\(uname -r\\)"`));
    assert.match(script, /\nexec \/sbin\/init\n/, "BusyBox init stays PID 1, so poweroff and reboot work");
    const inittab = new TextDecoder().decode(files.get("etc/inittab")!.data);
    assert.match(inittab, /^::respawn:\/bin\/cttyhack \/bin\/sh -l$/m);

    const moduleRoot = `lib/modules/${RELEASE}`;
    const shipped = [...files.keys()].filter((n) => n.endsWith(".ko")).sort();
    assert.deepEqual(shipped, [
      `${moduleRoot}/kernel/crypto/crc32c_generic.ko`,
      `${moduleRoot}/kernel/drivers/ata/ata_piix.ko`,
      `${moduleRoot}/kernel/drivers/ata/libata.ko`,
      `${moduleRoot}/kernel/drivers/scsi/scsi_common.ko`,
      `${moduleRoot}/kernel/drivers/scsi/scsi_mod.ko`,
      `${moduleRoot}/kernel/fs/ext4/ext4.ko`,
      `${moduleRoot}/kernel/fs/jbd2/jbd2.ko`,
      `${moduleRoot}/kernel/fs/mbcache.ko`,
    ]);
    assert.deepEqual(
      files.get(`${moduleRoot}/kernel/fs/ext4/ext4.ko`)!.data,
      new Uint8Array(readFileSync(join(dir, "kernel/fs/ext4/ext4.ko"))),
    );
    const modulesDep = dec.decode(files.get(`${moduleRoot}/modules.dep`)!.data);
    assert.match(
      modulesDep,
      /^kernel\/fs\/ext4\/ext4.ko: kernel\/fs\/mbcache.ko kernel\/fs\/jbd2\/jbd2.ko$/m,
    );
    assert.doesNotMatch(modulesDep, /ne2k|unrelated/);
    assert.match(
      dec.decode(files.get(`${moduleRoot}/modules.alias`)!.data),
      /^alias crypto-crc32c crc32c_generic$/m,
    );
    assert.ok(files.has(`${moduleRoot}/modules.builtin`));
  });
});

test("extra files are added or replace defaults, and /init can be replaced", () => {
  withModules((dir) => {
    const files = records(
      buildInitramfs(
        options(dir, {
          extraFiles: [
            { path: "/opt/test/run.sh", data: "#!/bin/sh\necho test\n", mode: 0o755 },
            { path: "/etc/profile", data: "export PS1='$ '\n" },
            { path: "/data.bin", data: new Uint8Array([1, 2, 3]) },
          ],
          init: "#!/bin/sh\necho custom init\npoweroff -f\n",
          extraEntries: [
            { type: "symlink", path: "/usr/bin/hello", target: "/opt/test/run.sh" },
            { type: "block", path: "/dev/vda", major: 254, minor: 0, mode: 0o660 },
          ],
        }),
      ),
    );
    assert.equal(files.get("opt")!.mode & S_IFMT, S_IFDIR);
    assert.equal(files.get("opt/test/run.sh")!.mode, S_IFREG | 0o755);
    assert.equal(dec.decode(files.get("opt/test/run.sh")!.data), "#!/bin/sh\necho test\n");
    assert.equal(dec.decode(files.get("etc/profile")!.data), "export PS1='$ '\n");
    assert.equal(files.get("etc/profile")!.mode, S_IFREG | 0o644);
    assert.deepEqual([...files.get("data.bin")!.data], [1, 2, 3]);
    assert.equal(dec.decode(files.get("init")!.data), "#!/bin/sh\necho custom init\npoweroff -f\n");
    assert.equal(files.get("init")!.mode, S_IFREG | 0o755);
    assert.equal(dec.decode(files.get("usr/bin/hello")!.data), "/opt/test/run.sh");
    assert.equal(files.get("usr/bin/hello")!.mode & S_IFMT, S_IFLNK);
    assert.deepEqual([files.get("dev/vda")!.rdevMajor, files.get("dev/vda")!.rdevMinor], [254, 0]);
  });
});

test("two builds are byte-identical, and the archive is a fixed-header gzip", () => {
  withModules((dir) => {
    const a = buildInitramfs(options(dir));
    const b = buildInitramfs(options(dir));
    assert.deepEqual(a, b);
    assert.deepEqual([...a.subarray(0, 10)], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
    const c = buildInitramfs(options(dir, { extraFiles: [{ path: "x", data: "1" }] }));
    assert.notDeepEqual(a, c);
  });
});

test("without modules the initramfs still has an empty modules directory; bad input is refused", () => {
  const files = records(buildInitramfs({ busybox, kernelRelease: RELEASE }));
  assert.equal(files.get(`lib/modules/${RELEASE}`)!.mode & S_IFMT, S_IFDIR);
  assert.ok(![...files.keys()].some((n) => n.endsWith(".ko")));
  assert.throws(() => buildInitramfs({ busybox, kernelRelease: "../x" }), ImagesError);
  assert.throws(
    () => buildInitramfs({ busybox, kernelRelease: RELEASE, extraFiles: [{ path: "../x", data: "" }] }),
    ImagesError,
  );
});

test("module indexing writes modules.dep and modules.alias, and a damaged index is rebuilt", () => {
  withModules((dir) => {
    indexKernelModules(dir);
    const dep = readFileSync(join(dir, "modules.dep"), "utf8");
    assert.match(
      dep,
      /^kernel\/drivers\/net\/ethernet\/8390\/ne2k-pci.ko: kernel\/drivers\/net\/ethernet\/8390\/8390.ko$/m,
    );
    assert.match(readFileSync(join(dir, "modules.alias"), "utf8"), /^alias fs-ext4 ext4$/m);
    writeFileSync(join(dir, MODULE_INDEX_FILE), "garbage");
    assert.equal(loadModuleIndex(dir).modules.length, Object.keys(FAKE_MODULES).length);
    assert.ok(JSON.parse(readFileSync(join(dir, MODULE_INDEX_FILE), "utf8")).length > 0);
    rmSync(join(dir, "kernel/fs/jbd2/jbd2.ko"));
    assert.throws(() => buildInitramfs(options(dir)), /cannot read kernel module kernel\/fs\/jbd2\/jbd2.ko/);
    assert.ok(existsSync(join(dir, "modules.dep")));
  });
});
