// Helpers for the images tests: tiny but well-formed kernel module files, so module indexing and
// the initramfs builder can be tested without a real kernel package.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/**
 * An ELF relocatable object holding only a ".modinfo" section with `info` (key=value strings),
 * in the 32-bit little-endian layout of i386 modules, or 64-bit/big-endian if asked.
 */
export function fakeModuleElf(
  info: readonly string[],
  options: { is64?: boolean; bigEndian?: boolean } = {},
): Uint8Array {
  const is64 = options.is64 ?? false;
  const little = !(options.bigEndian ?? false);
  const enc = new TextEncoder();
  const modinfo = enc.encode(info.map((s) => `${s}\0`).join(""));
  const shstrtab = enc.encode("\0.modinfo\0.shstrtab\0");
  const headerSize = is64 ? 64 : 52;
  const entrySize = is64 ? 64 : 40;
  const modinfoOffset = headerSize;
  const shstrtabOffset = modinfoOffset + modinfo.length;
  const tableOffset = Math.ceil((shstrtabOffset + shstrtab.length) / 8) * 8;
  const out = new Uint8Array(tableOffset + 3 * entrySize);
  const view = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, little ? 1 : 2, 1], 0);
  view.setUint16(0x10, 1, little); // ET_REL
  view.setUint16(0x12, is64 ? 62 : 3, little); // EM_X86_64 / EM_386
  view.setUint32(0x14, 1, little);
  if (is64) {
    view.setBigUint64(0x28, BigInt(tableOffset), little);
    view.setUint16(0x34, headerSize, little);
    view.setUint16(0x3a, entrySize, little);
    view.setUint16(0x3c, 3, little);
    view.setUint16(0x3e, 2, little);
  } else {
    view.setUint32(0x20, tableOffset, little);
    view.setUint16(0x28, headerSize, little);
    view.setUint16(0x2e, entrySize, little);
    view.setUint16(0x30, 3, little);
    view.setUint16(0x32, 2, little);
  }
  out.set(modinfo, modinfoOffset);
  out.set(shstrtab, shstrtabOffset);
  const section = (index: number, nameOffset: number, type: number, offset: number, size: number) => {
    const at = tableOffset + index * entrySize;
    view.setUint32(at, nameOffset, little);
    view.setUint32(at + 4, type, little);
    if (is64) {
      view.setBigUint64(at + 0x18, BigInt(offset), little);
      view.setBigUint64(at + 0x20, BigInt(size), little);
    } else {
      view.setUint32(at + 0x10, offset, little);
      view.setUint32(at + 0x14, size, little);
    }
  };
  section(1, 1, 1, modinfoOffset, modinfo.length); // SHT_PROGBITS
  section(2, 10, 3, shstrtabOffset, shstrtab.length); // SHT_STRTAB
  return out;
}

/** Writes fake modules (path relative to the modules dir → .modinfo strings) into `modulesDir`. */
export function writeFakeModules(modulesDir: string, modules: Record<string, readonly string[]>): void {
  for (const [path, info] of Object.entries(modules)) {
    const file = join(modulesDir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, fakeModuleElf(info));
  }
}

/** A small module tree with the dependency shapes the real kernel has. */
export const FAKE_MODULES: Record<string, readonly string[]> = {
  "kernel/drivers/ata/ata_piix.ko": [
    "alias=pci:v00008086d00007010sv*sd*bc*sc*i*",
    "depends=libata",
    "name=ata_piix",
  ],
  "kernel/drivers/ata/libata.ko": ["depends=scsi_mod", "name=libata"],
  "kernel/drivers/scsi/scsi_mod.ko": ["depends=scsi_common", "name=scsi_mod"],
  "kernel/drivers/scsi/scsi_common.ko": ["depends=", "name=scsi_common"],
  "kernel/fs/ext4/ext4.ko": [
    "softdep=pre: crypto-crc32c",
    "alias=fs-ext4",
    "depends=jbd2,mbcache",
    "name=ext4",
  ],
  "kernel/fs/jbd2/jbd2.ko": ["depends=", "name=jbd2"],
  "kernel/fs/mbcache.ko": ["depends=", "name=mbcache"],
  "kernel/crypto/crc32c_generic.ko": [
    "alias=crypto-crc32c",
    "alias=crc32c",
    "depends=",
    "name=crc32c_generic",
  ],
  "kernel/drivers/net/ethernet/8390/ne2k-pci.ko": ["depends=8390", "name=ne2k_pci"],
  "kernel/drivers/net/ethernet/8390/8390.ko": ["depends=", "name=8390"],
  "kernel/sound/unrelated.ko": ["depends=", "name=unrelated"],
};
