// The option ROM that starts a --kernel Linux through the firmware (source: linuxboot.asm beside
// this file, assembled with nasm; linuxboot.test.ts checks the bytes below still match it).
import { PAGE_SIZE } from "../../core/memory.ts";

const ASSEMBLED =
  "55aa00cb000000000000000000000000000000000000000000001c0024506e50010200000000000000003c004400000000000000000067000000000074737669736f72004c696e7578206b65726e656c202866775f63666729001617180708110a0b12131415fffafc31c08ed8be5a002e8a043cff745ae898006689c32e8a4401e88e006689c16685c974402e660fb6540266c1e2106683ca0a660fca6689160005660fc966890e04056631c066a30805660fcb66891e0c05ba140566ef66b800050000660fc8ba180566ef83c603eb9fb013e83c006689c7b016e834006629c76683ef1066c1e8048ed88ec08ee08ee88ed06689fc83c020506a006631c06631db6631c96631d26631f66631ff6631edcb520fb6c0ba1005efba1105ec66c1c808ec66c1c808ec66c1c808ec66c1c8085ac3";

/** Offset of the PnP expansion header in the image. */
const PNP_OFFSET = 0x1c;
const PNP_LENGTH = 0x20;

/** The ROM image: 512-byte blocks, its length byte, PnP header and whole-image checksums set. */
export function linuxBootRom(): Uint8Array {
  const code = Uint8Array.from(ASSEMBLED.match(/../g)!.map((h) => Number.parseInt(h, 16)));
  const size = Math.ceil((code.length + 1) / 512) * 512;
  if (size > PAGE_SIZE) throw new Error("the linuxboot ROM grew past 4 KiB");
  const rom = new Uint8Array(size);
  rom.set(code);
  rom[2] = size / 512;
  rom[PNP_OFFSET + 9] = 0;
  rom[PNP_OFFSET + 9] = (256 - sum(rom.subarray(PNP_OFFSET, PNP_OFFSET + PNP_LENGTH))) & 0xff;
  rom[size - 1] = 0;
  rom[size - 1] = (256 - sum(rom)) & 0xff;
  return rom;
}

/** The assembled bytes as stored (for the consistency test). */
export function assembledLinuxBoot(): Uint8Array {
  return Uint8Array.from(ASSEMBLED.match(/../g)!.map((h) => Number.parseInt(h, 16)));
}

function sum(bytes: Uint8Array): number {
  let s = 0;
  for (const b of bytes) s = (s + b) & 0xff;
  return s;
}
