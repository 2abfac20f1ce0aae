// Multiboot v1 loader (Multiboot Specification 0.6.96).
//
// Finds the multiboot header in the first 8 KiB of an image, loads the kernel (ELF32 PT_LOAD
// segments, or the "a.out kludge" addresses from the header when flag bit 16 is set), copies boot
// modules after it, and builds the multiboot information structure in low memory. It sets no CPU
// registers: the caller enters the kernel at `entry` in flat 32-bit protected mode with
// EAX = MULTIBOOT_BOOTLOADER_MAGIC and EBX = `mbiAddress`, as the specification requires.

import type { PhysicalMemory } from "../core/memory.ts";

/** The value a multiboot header starts with. */
export const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
/** The value the boot loader leaves in EAX for the kernel. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2badb002;
/** Multiboot 2's header magic: recognised only to name it in the error. */
const MULTIBOOT2_HEADER_MAGIC = 0xe85250d6;
/** The header must lie entirely within this many bytes from the start of the image. */
const HEADER_SEARCH_BYTES = 8192;

/** Header flag: align boot modules on 4 KiB pages. */
const HEADER_PAGE_ALIGN = 1 << 0;
/** Header flag: the kernel wants mem_lower/mem_upper and the memory map. */
const HEADER_MEMORY_INFO = 1 << 1;
/** Header flag: the kernel wants a video mode table (we provide none; the flag is tolerated). */
const HEADER_VIDEO_MODE = 1 << 2;
/** Header flag: the load addresses at header offsets 12-28 are valid (the a.out kludge). */
const HEADER_AOUT_KLUDGE = 1 << 16;
/** Flags 0-15 are requirements: an unknown one among them means we must refuse the image. */
const HEADER_REQUIRED_MASK = 0xffff;
const HEADER_KNOWN_REQUIRED = HEADER_PAGE_ALIGN | HEADER_MEMORY_INFO | HEADER_VIDEO_MODE;

/** Info flag: mem_lower and mem_upper are valid. */
const INFO_MEMORY = 1 << 0;
/** Info flag: cmdline is valid. */
const INFO_CMDLINE = 1 << 2;
/** Info flag: mods_count and mods_addr are valid. */
const INFO_MODULES = 1 << 3;
/** Info flag: mmap_length and mmap_addr are valid. */
const INFO_MEMORY_MAP = 1 << 6;
/** Info flag: boot_loader_name is valid. */
const INFO_BOOT_LOADER_NAME = 1 << 9;

/** Size of the multiboot information structure (up to the framebuffer fields). */
const INFO_SIZE = 120;
/** Size of one module descriptor: mod_start, mod_end, string, reserved. */
const MODULE_ENTRY_SIZE = 16;
/** Size of one memory-map entry including its leading size field. */
const MMAP_ENTRY_SIZE = 24;

/** ELF program header type of a loadable segment. */
const PT_LOAD = 1;
/** ELF e_machine of Intel 80386. */
const EM_386 = 3;
/** ELF e_machine of AMD x86-64. */
const EM_X86_64 = 62;

/** Default place of the information structure and its strings: free conventional memory. */
export const DEFAULT_INFO_ADDRESS = 0x9000;
/** Room for the information structure, the memory map, module table and strings. */
const DEFAULT_INFO_SPACE = 0x7000;

/** An e820-style memory map entry (type 1 = usable RAM, 2 = reserved, 3 = ACPI, ...). */
export interface MemoryMapEntry {
  readonly base: number;
  readonly length: number;
  readonly type: number;
}

export interface MultibootModule {
  readonly data: Uint8Array;
  readonly cmdline?: string;
}

export interface MultibootOptions {
  /** The machine's memory map; mem_lower/mem_upper are derived from it too. */
  readonly memoryMap: readonly MemoryMapEntry[];
  readonly cmdline?: string;
  readonly modules?: readonly MultibootModule[];
  readonly bootLoaderName?: string;
  /** Where the information structure goes (default 0x9000); it may use 28 KiB from there. */
  readonly infoAddress?: number;
}

/** A guest-physical range [start, end) and what the loader put there. */
export interface LoadedRange {
  readonly start: number;
  readonly end: number;
  readonly what: string;
}

export interface MultibootLoadResult {
  /** Physical address to enter the kernel at. */
  readonly entry: number;
  /** Physical address of the multiboot information structure (for EBX). */
  readonly mbiAddress: number;
  readonly loadedRanges: readonly LoadedRange[];
}

/** The parsed multiboot header. */
export interface MultibootHeader {
  /** Byte offset of the header in the image. */
  readonly offset: number;
  readonly flags: number;
  readonly headerAddr: number;
  readonly loadAddr: number;
  readonly loadEndAddr: number;
  readonly bssEndAddr: number;
  readonly entryAddr: number;
}

/** The image is not something a multiboot v1 loader can boot; the message says what it is. */
export class MultibootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "MultibootError";
  }
}

function u32(image: Uint8Array, offset: number): number {
  return (
    (image[offset]! | (image[offset + 1]! << 8) | (image[offset + 2]! << 16) | (image[offset + 3]! << 24)) >>>
    0
  );
}

function u16(image: Uint8Array, offset: number): number {
  return image[offset]! | (image[offset + 1]! << 8);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

/**
 * Finds and validates the multiboot header. Returns undefined if there is none; throws
 * MultibootError if one is there but unusable (bad checksum, a required feature we lack).
 */
export function findMultibootHeader(image: Uint8Array): MultibootHeader | undefined {
  const limit = Math.min(image.length, HEADER_SEARCH_BYTES) - 12;
  for (let offset = 0; offset <= limit; offset += 4) {
    if (u32(image, offset) !== MULTIBOOT_HEADER_MAGIC) continue;
    const flags = u32(image, offset + 4);
    const checksum = u32(image, offset + 8);
    if (((MULTIBOOT_HEADER_MAGIC + flags + checksum) & 0xffffffff) !== 0) {
      // A stray magic number in data is possible; keep looking, but remember to say so.
      continue;
    }
    const unknownRequired = flags & HEADER_REQUIRED_MASK & ~HEADER_KNOWN_REQUIRED;
    if (unknownRequired !== 0) {
      throw new MultibootError(
        `multiboot header at ${hex(offset)} requires unsupported features (flags ${hex(unknownRequired)})`,
      );
    }
    const kludge = (flags & HEADER_AOUT_KLUDGE) !== 0;
    if (kludge && offset + 32 > image.length) {
      throw new MultibootError(`multiboot header at ${hex(offset)} is cut off by the end of the file`);
    }
    return {
      offset,
      flags,
      headerAddr: kludge ? u32(image, offset + 12) : 0,
      loadAddr: kludge ? u32(image, offset + 16) : 0,
      loadEndAddr: kludge ? u32(image, offset + 20) : 0,
      bssEndAddr: kludge ? u32(image, offset + 24) : 0,
      entryAddr: kludge ? u32(image, offset + 28) : 0,
    };
  }
  return undefined;
}

/** Names what an image without a usable multiboot v1 header is, for the error message. */
function describeNonMultiboot(image: Uint8Array): string {
  if (image.length === 0) return "the file is empty";
  for (let offset = 0; offset + 12 <= Math.min(image.length, HEADER_SEARCH_BYTES); offset += 4) {
    const magic = u32(image, offset);
    if (magic === MULTIBOOT_HEADER_MAGIC) {
      return `multiboot header at ${hex(offset)} has a bad checksum`;
    }
    if (magic === MULTIBOOT2_HEADER_MAGIC && offset % 8 === 0) {
      return "it is a Multiboot2 image; only Multiboot v1 is supported";
    }
  }
  if (isElf(image)) {
    if (image[4] === 2) return "it is a 64-bit ELF image (ELF64) without a multiboot v1 header";
    return "it is an ELF image without a multiboot v1 header";
  }
  if (image.length > 0x206 && u32(image, 0x202) === 0x53726448) {
    return "it is a Linux bzImage (Linux boot protocol), not a multiboot kernel";
  }
  if (image[0] === 0x4d && image[1] === 0x5a) return "it is a DOS/PE executable (MZ), not a multiboot kernel";
  return "no multiboot header in the first 8 KiB";
}

function isElf(image: Uint8Array): boolean {
  return (
    image.length >= 52 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c && image[3] === 0x46
  );
}

interface Segment {
  readonly fileOffset: number;
  readonly fileSize: number;
  readonly address: number;
  readonly memSize: number;
  readonly virtualAddress: number;
}

/** The PT_LOAD segments and the physical entry point of an ELF32 i386 executable. */
function elfSegments(image: Uint8Array): { segments: Segment[]; entry: number } {
  if (image[4] === 2 || u16(image, 18) === EM_X86_64) {
    throw new MultibootError("it is a 64-bit ELF image (ELF64); multiboot v1 loads 32-bit kernels only");
  }
  if (image[4] !== 1) throw new MultibootError(`ELF image has an unknown class ${image[4]}`);
  if (image[5] !== 1) throw new MultibootError("ELF image is big-endian; an x86 kernel is little-endian");
  const machine = u16(image, 18);
  if (machine !== EM_386) throw new MultibootError(`ELF image is for machine ${machine}, not i386 (3)`);
  const phoff = u32(image, 28);
  const phentsize = u16(image, 42);
  const phnum = u16(image, 44);
  if (phnum === 0) throw new MultibootError("ELF image has no program headers");
  if (phentsize < 32 || phoff + phnum * phentsize > image.length) {
    throw new MultibootError("ELF program header table lies outside the file");
  }
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (u32(image, ph) !== PT_LOAD) continue;
    const fileOffset = u32(image, ph + 4);
    const virtualAddress = u32(image, ph + 8);
    const address = u32(image, ph + 12);
    const fileSize = u32(image, ph + 16);
    const memSize = u32(image, ph + 20);
    if (fileOffset + fileSize > image.length) {
      throw new MultibootError(
        `ELF segment ${i} (${fileSize} bytes at file offset ${hex(fileOffset)}) lies outside the file`,
      );
    }
    if (fileSize > memSize)
      throw new MultibootError(`ELF segment ${i} has more file bytes than memory bytes`);
    if (memSize === 0) continue;
    segments.push({ fileOffset, fileSize, address, memSize, virtualAddress });
  }
  if (segments.length === 0) throw new MultibootError("ELF image has no loadable (PT_LOAD) segments");
  // The entry point is virtual; kernels linked high with low load addresses need it translated.
  let entry = u32(image, 24);
  for (const s of segments) {
    if (entry >= s.virtualAddress && entry < s.virtualAddress + s.memSize) {
      entry = s.address + (entry - s.virtualAddress);
      break;
    }
  }
  return { segments, entry };
}

/** The single segment described by the a.out kludge fields of the header. */
function kludgeSegments(image: Uint8Array, header: MultibootHeader): { segments: Segment[]; entry: number } {
  const { headerAddr, loadAddr, loadEndAddr, bssEndAddr, entryAddr, offset } = header;
  if (loadAddr > headerAddr) {
    throw new MultibootError(`multiboot load_addr ${hex(loadAddr)} is above header_addr ${hex(headerAddr)}`);
  }
  const fileOffset = offset - (headerAddr - loadAddr);
  if (fileOffset < 0)
    throw new MultibootError("multiboot header_addr/load_addr point before the start of the file");
  const fileSize = loadEndAddr === 0 ? image.length - fileOffset : loadEndAddr - loadAddr;
  if (loadEndAddr !== 0 && loadEndAddr < loadAddr) {
    throw new MultibootError(
      `multiboot load_end_addr ${hex(loadEndAddr)} is below load_addr ${hex(loadAddr)}`,
    );
  }
  if (fileOffset + fileSize > image.length) {
    throw new MultibootError(
      `multiboot load range needs ${fileSize} bytes but the file has ${image.length - fileOffset}`,
    );
  }
  const loadEnd = loadAddr + fileSize;
  if (bssEndAddr !== 0 && bssEndAddr < loadEnd) {
    throw new MultibootError(
      `multiboot bss_end_addr ${hex(bssEndAddr)} is below the end of the loaded image`,
    );
  }
  const memSize = bssEndAddr === 0 ? fileSize : bssEndAddr - loadAddr;
  if (entryAddr < loadAddr || entryAddr >= loadAddr + memSize) {
    throw new MultibootError(`multiboot entry_addr ${hex(entryAddr)} is outside the loaded image`);
  }
  return {
    segments: [{ fileOffset, fileSize, address: loadAddr, memSize, virtualAddress: loadAddr }],
    entry: entryAddr,
  };
}

/** Throws unless every byte of [start, end) is RAM. */
function checkRam(memory: PhysicalMemory, start: number, end: number, what: string): void {
  if (end > 0x1_0000_0000 || start < 0) {
    throw new MultibootError(`${what} at ${hex(start)}-${hex(end)} lies outside the 32-bit address space`);
  }
  for (let page = Math.floor(start / 4096) * 4096; page < end; page += 4096) {
    if (memory.regionAt(page)?.kind !== "ram") {
      throw new MultibootError(
        `${what} at ${hex(start)}-${hex(end)} does not fit in RAM (nothing at ${hex(page)})`,
      );
    }
  }
}

function overlaps(a: LoadedRange, b: LoadedRange): boolean {
  return a.start < b.end && b.start < a.end;
}

/**
 * Loads a multiboot v1 kernel and its modules into `memory` and builds the information
 * structure. Throws MultibootError for anything that is not a bootable multiboot v1 image.
 */
export function loadMultiboot(
  memory: PhysicalMemory,
  image: Uint8Array,
  options: MultibootOptions,
): MultibootLoadResult {
  const header = findMultibootHeader(image);
  if (!header) throw new MultibootError(`not a multiboot kernel: ${describeNonMultiboot(image)}`);
  const { segments, entry } =
    header.flags & HEADER_AOUT_KLUDGE ? kludgeSegments(image, header) : loadableElf(image);

  const ranges: LoadedRange[] = [];
  const claim = (range: LoadedRange): void => {
    checkRam(memory, range.start, range.end, range.what);
    for (const other of ranges) {
      if (overlaps(range, other)) {
        throw new MultibootError(
          `${range.what} at ${hex(range.start)}-${hex(range.end)} overlaps ${other.what} at ${hex(other.start)}-${hex(other.end)}`,
        );
      }
    }
    ranges.push(range);
  };

  const infoAddress = options.infoAddress ?? DEFAULT_INFO_ADDRESS;
  const infoRange = {
    start: infoAddress,
    end: infoAddress + DEFAULT_INFO_SPACE,
    what: "multiboot information",
  };
  claim(infoRange);

  segments.forEach((s, i) => {
    claim({ start: s.address, end: s.address + s.memSize, what: `kernel segment ${i}` });
    memory.writeBytes(s.address, image.subarray(s.fileOffset, s.fileOffset + s.fileSize));
    if (s.memSize > s.fileSize)
      memory.writeBytes(s.address + s.fileSize, new Uint8Array(s.memSize - s.fileSize));
  });
  if (!segments.some((s) => entry >= s.address && entry < s.address + s.memSize)) {
    throw new MultibootError(`kernel entry point ${hex(entry)} is not inside any loaded segment`);
  }

  // Modules go after the kernel, page aligned (always: it costs little and some kernels assume it).
  let next = Math.max(...segments.map((s) => s.address + s.memSize));
  const modules = options.modules ?? [];
  const moduleAddresses: { start: number; end: number }[] = [];
  modules.forEach((m, i) => {
    next = Math.ceil(next / 4096) * 4096;
    claim({ start: next, end: next + Math.max(m.data.length, 1), what: `module ${i}` });
    memory.writeBytes(next, m.data);
    moduleAddresses.push({ start: next, end: next + m.data.length });
    next += m.data.length;
  });

  const mbiAddress = buildInfo(memory, infoAddress, options, moduleAddresses);
  return { entry, mbiAddress, loadedRanges: ranges };
}

function loadableElf(image: Uint8Array): { segments: Segment[]; entry: number } {
  if (!isElf(image)) {
    throw new MultibootError(
      "multiboot header has no load addresses (flag bit 16 clear) and the file is not an ELF executable",
    );
  }
  return elfSegments(image);
}

/** Writes the information structure and what it points to; returns its address. */
function buildInfo(
  memory: PhysicalMemory,
  base: number,
  options: MultibootOptions,
  modules: readonly { start: number; end: number }[],
): number {
  const space = new Uint8Array(DEFAULT_INFO_SPACE);
  const view = new DataView(space.buffer);
  let used = INFO_SIZE;
  const place = (bytes: Uint8Array): number => {
    used = Math.ceil(used / 4) * 4;
    if (used + bytes.length > space.length) {
      throw new MultibootError("multiboot command lines and tables do not fit in 28 KiB");
    }
    space.set(bytes, used);
    const address = base + used;
    used += bytes.length;
    return address;
  };
  const cString = (s: string): number => {
    const text = new TextEncoder().encode(s);
    const bytes = new Uint8Array(text.length + 1);
    bytes.set(text);
    return place(bytes);
  };

  let flags = INFO_MEMORY | INFO_MEMORY_MAP | INFO_BOOT_LOADER_NAME;
  const { lowerKiB, upperKiB } = memorySizes(options.memoryMap);
  view.setUint32(4, lowerKiB, true);
  view.setUint32(8, upperKiB, true);

  if (options.cmdline !== undefined) {
    flags |= INFO_CMDLINE;
    view.setUint32(16, cString(options.cmdline), true);
  }

  if (modules.length > 0) {
    flags |= INFO_MODULES;
    const strings = (options.modules ?? []).map((m) => cString(m.cmdline ?? ""));
    const table = new Uint8Array(modules.length * MODULE_ENTRY_SIZE);
    const tableView = new DataView(table.buffer);
    modules.forEach((m, i) => {
      tableView.setUint32(i * MODULE_ENTRY_SIZE, m.start, true);
      tableView.setUint32(i * MODULE_ENTRY_SIZE + 4, m.end, true);
      tableView.setUint32(i * MODULE_ENTRY_SIZE + 8, strings[i]!, true);
    });
    view.setUint32(20, modules.length, true);
    view.setUint32(24, place(table), true);
  }

  const map = new Uint8Array(options.memoryMap.length * MMAP_ENTRY_SIZE);
  const mapView = new DataView(map.buffer);
  options.memoryMap.forEach((e, i) => {
    const at = i * MMAP_ENTRY_SIZE;
    // The size field does not count itself.
    mapView.setUint32(at, MMAP_ENTRY_SIZE - 4, true);
    mapView.setBigUint64(at + 4, BigInt(e.base), true);
    mapView.setBigUint64(at + 12, BigInt(e.length), true);
    mapView.setUint32(at + 20, e.type, true);
  });
  view.setUint32(44, map.length, true);
  view.setUint32(48, map.length > 0 ? place(map) : 0, true);

  view.setUint32(64, cString(options.bootLoaderName ?? "tsvisor"), true);
  view.setUint32(0, flags, true);
  memory.writeBytes(base, space.subarray(0, used));
  return base;
}

/** mem_lower: usable KiB from 0 (at most 640); mem_upper: contiguous usable KiB from 1 MiB. */
function memorySizes(map: readonly MemoryMapEntry[]): { lowerKiB: number; upperKiB: number } {
  const usable = map.filter((e) => e.type === 1);
  const contiguousFrom = (start: number): number => {
    let end = start;
    for (let grew = true; grew; ) {
      grew = false;
      for (const e of usable) {
        if (e.base <= end && e.base + e.length > end) {
          end = e.base + e.length;
          grew = true;
        }
      }
    }
    return end - start;
  };
  return {
    lowerKiB: Math.floor(Math.min(contiguousFrom(0), 640 * 1024) / 1024),
    upperKiB: Math.floor(Math.min(contiguousFrom(0x100000), 0xffffffff - 0x100000) / 1024),
  };
}

/** A PC-style memory map for `ramBytes` of RAM: 0-640 KiB usable, the ROM hole, then the rest. */
export function pcMemoryMap(ramBytes: number): MemoryMapEntry[] {
  const map: MemoryMapEntry[] = [
    { base: 0, length: 0x9fc00, type: 1 },
    { base: 0x9fc00, length: 0x400, type: 2 },
    { base: 0xf0000, length: 0x10000, type: 2 },
  ];
  if (ramBytes > 0x100000) map.push({ base: 0x100000, length: ramBytes - 0x100000, type: 1 });
  return map;
}
