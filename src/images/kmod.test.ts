import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ImagesError } from "./errors.ts";
import {
  globMatch,
  ModuleIndex,
  moduleNameFromFile,
  parseModinfo,
  readModinfoStrings,
  scanModules,
} from "./kmod.ts";
import { FAKE_MODULES, fakeModuleElf, writeFakeModules } from "./testing.ts";

test("modinfo strings are read from 32- and 64-bit, little- and big-endian ELF objects", () => {
  const info = ["license=GPL", "depends=a,b", "name=x"];
  assert.deepEqual(readModinfoStrings(fakeModuleElf(info)), info);
  assert.deepEqual(readModinfoStrings(fakeModuleElf(info, { is64: true })), info);
  assert.deepEqual(readModinfoStrings(fakeModuleElf(info, { bigEndian: true })), info);
});

test("malformed module files are reported, not crashed on", () => {
  assert.throws(() => readModinfoStrings(new Uint8Array(10)), /no ELF header/);
  const elf = fakeModuleElf(["name=x"]);
  const badTable = elf.slice();
  new DataView(badTable.buffer).setUint32(0x20, 0xfffffff0, true);
  assert.throws(() => readModinfoStrings(badTable), ImagesError);
  const noModinfo = elf.slice();
  noModinfo[Buffer.from(noModinfo).lastIndexOf(".modinfo") + 1] = 0x4e; // section name ".Nodinfo"
  assert.throws(() => readModinfoStrings(noModinfo), /no .modinfo/);
  const truncated = elf.subarray(0, elf.length - 20);
  assert.throws(() => readModinfoStrings(truncated), ImagesError);
});

test("modinfo fields become name, dependencies, soft dependencies and aliases", () => {
  const m = parseModinfo(
    [
      "softdep=pre: crypto-crc32c foo post: bar",
      "alias=fs-ext4",
      "alias=ext3",
      "depends=jbd2,mbcache",
      "name=ext4",
    ],
    "kernel/fs/ext4/ext4.ko",
  );
  assert.deepEqual(m, {
    name: "ext4",
    path: "kernel/fs/ext4/ext4.ko",
    depends: ["jbd2", "mbcache"],
    softdepPre: ["crypto-crc32c", "foo"],
    aliases: ["fs-ext4", "ext3"],
  });
  assert.equal(parseModinfo(["depends="], "kernel/x/ne2k-pci.ko").name, "ne2k_pci");
  assert.equal(moduleNameFromFile("virtio-net.ko.xz"), "virtio_net");
});

test("alias globs follow shell rules", () => {
  assert.ok(
    globMatch(
      "pci:v00008086d00007010sv*sd*bc*sc*i*",
      "pci:v00008086d00007010sv00001AF4sd00001100bc01sc01i80",
    ),
  );
  assert.ok(!globMatch("pci:v00008086d00007010sv*", "pci:v00008086d00007011sv0"));
  assert.ok(globMatch("a?c", "abc"));
  assert.ok(globMatch("x[0-9]y", "x5y"));
  assert.ok(!globMatch("x[!0-9]y", "x5y"));
  assert.ok(globMatch("a.b+c", "a.b+c"));
  assert.ok(!globMatch("a.b", "axb"));
});

function fakeIndex(): { index: ModuleIndex; dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-kmod-"));
  writeFakeModules(dir, FAKE_MODULES);
  return {
    index: new ModuleIndex(scanModules(dir)),
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

test("scanning finds every module with its metadata", () => {
  const { index, cleanup } = fakeIndex();
  try {
    assert.equal(index.modules.length, Object.keys(FAKE_MODULES).length);
    assert.equal(index.get("ne2k-pci")?.path, "kernel/drivers/net/ethernet/8390/ne2k-pci.ko");
    assert.deepEqual(
      index.resolve("crypto-crc32c").map((m) => m.name),
      ["crc32c_generic"],
    );
    assert.deepEqual(
      index.resolve("pci:v00008086d00007010sv00000000sd00000000bc01sc01i80").map((m) => m.name),
      ["ata_piix"],
    );
    assert.deepEqual(index.resolve("pci:v00001234d00001111sv0sd0bc03sc00i00"), []);
  } finally {
    cleanup();
  }
});

test("dependencies come in load order and modules.dep lists them last-loaded first", () => {
  const { index, cleanup } = fakeIndex();
  try {
    assert.deepEqual(
      index.dependencies("ata_piix").map((m) => m.name),
      ["scsi_common", "scsi_mod", "libata"],
    );
    const dep = index.modulesDep([index.get("ata_piix")!, index.get("scsi_common")!]);
    assert.equal(
      dep,
      "kernel/drivers/ata/ata_piix.ko: kernel/drivers/ata/libata.ko kernel/drivers/scsi/scsi_mod.ko kernel/drivers/scsi/scsi_common.ko\n" +
        "kernel/drivers/scsi/scsi_common.ko:\n",
    );
    assert.throws(() => index.dependencies("nosuch"), /no kernel module/);
  } finally {
    cleanup();
  }
});

test("the closure adds hard and soft dependencies and reports what is missing", () => {
  const { index, cleanup } = fakeIndex();
  try {
    const { modules, missing } = index.closure(["ext4", "ne2k_pci", "virtio_blk"]);
    assert.deepEqual(modules.map((m) => m.name).sort(), [
      "8390",
      "crc32c_generic",
      "ext4",
      "jbd2",
      "mbcache",
      "ne2k_pci",
    ]);
    assert.deepEqual(missing, ["virtio_blk"]);
    const alias = index.modulesAlias(modules);
    assert.match(alias, /^alias crypto-crc32c crc32c_generic$/m);
    assert.match(alias, /^alias fs-ext4 ext4$/m);
    assert.doesNotMatch(alias, /ata_piix/);
    assert.match(index.modulesSoftdep(modules), /^softdep ext4 pre: crypto-crc32c$/m);
  } finally {
    cleanup();
  }
});

test("a module whose dependency is absent is an error, and a cycle does not hang", () => {
  const index = new ModuleIndex([
    { name: "a", path: "a.ko", depends: ["b"], softdepPre: [], aliases: [] },
    { name: "b", path: "b.ko", depends: ["a"], softdepPre: [], aliases: [] },
    { name: "c", path: "c.ko", depends: ["gone"], softdepPre: [], aliases: [] },
  ]);
  assert.deepEqual(
    index.dependencies("a").map((m) => m.name),
    ["b"],
  );
  assert.throws(() => index.dependencies("c"), /needs 'gone'/);
});

test("the JSON form round-trips and junk is rejected", () => {
  const { index, cleanup } = fakeIndex();
  try {
    const again = ModuleIndex.fromJSON(JSON.parse(JSON.stringify(index)), "x");
    assert.deepEqual(again.modules, index.modules);
    assert.throws(() => ModuleIndex.fromJSON({ nope: 1 }, "idx.json"), /idx.json is not a module index/);
    assert.throws(() => ModuleIndex.fromJSON([{ name: "a" }], "idx.json"), ImagesError);
  } finally {
    cleanup();
  }
});
