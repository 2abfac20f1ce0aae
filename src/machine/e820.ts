// The PC's physical memory map as the firmware reports it (BIOS INT 15h, AX=E820h), laid out the
// way QEMU's `pc` machine (i440FX) and SeaBIOS present it, plus the byte encodings its consumers
// read: the Linux zero page, the fw_cfg file `etc/e820` and the multiboot information's mmap.
//
// Addresses and lengths are plain numbers: every value involved stays far below 2^53.

/** Address range type: usable RAM. */
export const E820_RAM = 1;
/** Address range type: reserved, not for the OS (firmware, EBDA, ROM). */
export const E820_RESERVED = 2;
/** Address range type: ACPI tables; usable RAM once the OS has read them. */
export const E820_ACPI = 3;
/** Address range type: ACPI non-volatile storage, must be preserved across sleep. */
export const E820_NVS = 4;
/** Address range type: memory with detected errors. */
export const E820_UNUSABLE = 5;

/** One range of the map. Same shape as the multiboot loader's `MemoryMapEntry`. */
export interface E820Entry {
  readonly base: number;
  readonly length: number;
  readonly type: number;
}

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
export const FOUR_GIB = 4 * GIB;

/** Start of the Extended BIOS Data Area: the last KiB of conventional memory. */
export const EBDA_START = 0x9fc00;
/** End of conventional memory; the VGA window and option ROMs follow. */
export const CONVENTIONAL_END = 0xa0000;
/** The system BIOS's 64 KiB segment below 1 MiB. */
export const BIOS_SEGMENT_START = 0xf0000;
/** Start of extended memory. */
export const HIGH_MEMORY_START = 0x100000;
/** QEMU's default `max-ram-below-4g`: RAM up to 3.5 GiB stays in one piece below 4 GiB. */
export const DEFAULT_MAX_RAM_BELOW_4G = 0xe0000000;
/** Where QEMU's gigabyte-aligned machine types (including `pc`) split RAM that has to be split. */
const GIGABYTE_ALIGNED_SPLIT = 0xc0000000;
/** The firmware size of `pc` (bios-256k.bin), mapped just below 4 GiB. */
export const DEFAULT_FIRMWARE_SIZE = 256 * KIB;
/** Bytes per multiboot mmap record, including its leading size field (which says 20). */
const MULTIBOOT_MMAP_ENTRY_SIZE = 24;
/** Bytes per zero page / fw_cfg record: u64 base, u64 length, u32 type. */
export const E820_ENTRY_SIZE = 20;

export interface RamSplitOptions {
  /** QEMU's `max-ram-below-4g` (default 0xE0000000). */
  readonly maxRamBelow4g?: number;
  /**
   * QEMU's `gigabyte_align` (true for current `pc` machine types): when RAM has to be split at
   * all, the split moves down to 3 GiB so that the part above 4 GiB is gigabyte aligned.
   */
  readonly gigabyteAlign?: boolean;
}

export interface RamSplit {
  /** RAM mapped from address 0 (minus the holes the chipset puts in it). */
  readonly below4g: number;
  /** RAM mapped from 4 GiB upwards. */
  readonly above4g: number;
}

/**
 * How `pc` divides `totalBytes` of RAM between below and above 4 GiB (QEMU hw/i386/pc_piix.c):
 * RAM smaller than max-ram-below-4g all goes low; larger RAM is split at max-ram-below-4g, which
 * gigabyte-aligned machine types first lower to 3 GiB.
 */
export function splitRam(totalBytes: number, options: RamSplitOptions = {}): RamSplit {
  checkRamSize(totalBytes);
  const maxBelow = options.maxRamBelow4g ?? DEFAULT_MAX_RAM_BELOW_4G;
  if (!Number.isInteger(maxBelow) || maxBelow <= 0 || maxBelow > FOUR_GIB) {
    throw new RangeError(`max RAM below 4 GiB must be between 1 and 4 GiB, got ${maxBelow}`);
  }
  let lowmem = maxBelow;
  if (totalBytes >= maxBelow && (options.gigabyteAlign ?? true)) {
    lowmem = Math.min(lowmem, GIGABYTE_ALIGNED_SPLIT);
  }
  if (totalBytes >= lowmem) return { below4g: lowmem, above4g: totalBytes - lowmem };
  return { below4g: totalBytes, above4g: 0 };
}

export interface PcMemoryMapOptions extends RamSplitOptions {
  /** Size of the firmware image mapped at the top of 4 GiB (default 256 KiB). 0 for none. */
  readonly firmwareSize?: number;
  /** Ranges laid over the standard map, in order, later ones winning (e.g. ACPI tables). */
  readonly extra?: readonly E820Entry[];
}

/**
 * The memory map of a `pc` machine with `totalBytes` of RAM, sorted by address: conventional
 * memory up to the EBDA, the EBDA and the BIOS segment reserved, extended memory up to the end of
 * low RAM, the firmware's window below 4 GiB reserved, and any RAM above 4 GiB.
 */
export function pcMemoryMap(totalBytes: number, options: PcMemoryMapOptions = {}): E820Entry[] {
  const { below4g, above4g } = splitRam(totalBytes, options);
  let map: E820Entry[] = [{ base: 0, length: Math.min(below4g, EBDA_START), type: E820_RAM }];
  if (below4g > EBDA_START)
    map.push({ base: EBDA_START, length: CONVENTIONAL_END - EBDA_START, type: E820_RESERVED });
  map.push({ base: BIOS_SEGMENT_START, length: HIGH_MEMORY_START - BIOS_SEGMENT_START, type: E820_RESERVED });
  if (below4g > HIGH_MEMORY_START) {
    map.push({ base: HIGH_MEMORY_START, length: below4g - HIGH_MEMORY_START, type: E820_RAM });
  }
  const firmwareSize = options.firmwareSize ?? DEFAULT_FIRMWARE_SIZE;
  if (!Number.isInteger(firmwareSize) || firmwareSize < 0 || firmwareSize > 16 * MIB) {
    throw new RangeError(`firmware size must be between 0 and 16 MiB, got ${firmwareSize}`);
  }
  if (firmwareSize > 0) {
    map = overlayE820(map, { base: FOUR_GIB - firmwareSize, length: firmwareSize, type: E820_RESERVED });
  }
  if (above4g > 0) map.push({ base: FOUR_GIB, length: above4g, type: E820_RAM });
  for (const entry of options.extra ?? []) map = overlayE820(map, entry);
  return map;
}

/**
 * Returns `map` with `entry`'s range taking precedence over whatever was there (the parts of
 * other entries it covers are cut away), sorted by address, with touching entries of the same
 * type merged. A zero-length entry changes nothing.
 */
export function overlayE820(map: readonly E820Entry[], entry: E820Entry): E820Entry[] {
  checkEntry(entry);
  if (entry.length === 0) return sortAndMerge([...map]);
  const start = entry.base;
  const end = entry.base + entry.length;
  const out: E820Entry[] = [];
  for (const e of map) {
    const eEnd = e.base + e.length;
    if (eEnd <= start || e.base >= end) {
      out.push(e);
      continue;
    }
    if (e.base < start) out.push({ base: e.base, length: start - e.base, type: e.type });
    if (eEnd > end) out.push({ base: end, length: eEnd - end, type: e.type });
  }
  out.push({ base: entry.base, length: entry.length, type: entry.type });
  return sortAndMerge(out);
}

function sortAndMerge(entries: E820Entry[]): E820Entry[] {
  entries.sort((a, b) => a.base - b.base);
  const out: E820Entry[] = [];
  for (const e of entries) {
    if (e.length === 0) continue;
    const last = out[out.length - 1];
    if (last && last.type === e.type && last.base + last.length === e.base) {
      out[out.length - 1] = { base: last.base, length: last.length + e.length, type: e.type };
    } else {
      out.push({ base: e.base, length: e.length, type: e.type });
    }
  }
  return out;
}

/** The end of the usable RAM range that contains 1 MiB (what the kernel sees as "low memory"). */
export function extendedMemoryEnd(map: readonly E820Entry[]): number {
  for (const e of map) {
    if (e.type === E820_RAM && e.base <= HIGH_MEMORY_START && e.base + e.length > HIGH_MEMORY_START) {
      return e.base + e.length;
    }
  }
  return HIGH_MEMORY_START;
}

/**
 * The map as an array of 20-byte little-endian records (u64 base, u64 length, u32 type): the
 * layout of the zero page's e820_table and of the BIOS INT 15h E820h buffer.
 */
export function encodeE820Table(entries: readonly E820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * E820_ENTRY_SIZE);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    checkEntry(e);
    const at = i * E820_ENTRY_SIZE;
    setU64(view, at, e.base);
    setU64(view, at + 8, e.length);
    view.setUint32(at + 16, e.type, true);
  });
  return out;
}

/** Contents of the fw_cfg file `etc/e820` that SeaBIOS reads: the same 20-byte records. */
export function encodeFwCfgE820(entries: readonly E820Entry[]): Uint8Array {
  return encodeE820Table(entries);
}

/**
 * The multiboot information's memory map (mmap_addr/mmap_length): 24-byte records of u32 size
 * (20, not counting itself), u64 base_addr, u64 length, u32 type.
 */
export function encodeMultibootMmap(entries: readonly E820Entry[]): Uint8Array {
  const out = new Uint8Array(entries.length * MULTIBOOT_MMAP_ENTRY_SIZE);
  const view = new DataView(out.buffer);
  entries.forEach((e, i) => {
    checkEntry(e);
    const at = i * MULTIBOOT_MMAP_ENTRY_SIZE;
    view.setUint32(at, MULTIBOOT_MMAP_ENTRY_SIZE - 4, true);
    setU64(view, at + 4, e.base);
    setU64(view, at + 12, e.length);
    view.setUint32(at + 20, e.type, true);
  });
  return out;
}

/** Reads 20-byte records back (for tests, the monitor and firmware-side consumers). */
export function decodeE820Table(
  bytes: Uint8Array,
  count = Math.floor(bytes.length / E820_ENTRY_SIZE),
): E820Entry[] {
  if (count * E820_ENTRY_SIZE > bytes.length) {
    throw new RangeError(`${count} e820 entries need ${count * E820_ENTRY_SIZE} bytes, got ${bytes.length}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: E820Entry[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * E820_ENTRY_SIZE;
    out.push({ base: getU64(view, at), length: getU64(view, at + 8), type: view.getUint32(at + 16, true) });
  }
  return out;
}

/** A readable name for a range type, as Linux prints it. */
export function e820TypeName(type: number): string {
  switch (type) {
    case E820_RAM:
      return "usable";
    case E820_RESERVED:
      return "reserved";
    case E820_ACPI:
      return "ACPI data";
    case E820_NVS:
      return "ACPI NVS";
    case E820_UNUSABLE:
      return "unusable";
    default:
      return `type ${type}`;
  }
}

/** The map in the style of Linux's boot log ("[mem 0x...-0x...] usable"), one range per line. */
export function formatE820(map: readonly E820Entry[]): string {
  const hex = (n: number) => `0x${n.toString(16).padStart(16, "0")}`;
  return map
    .map((e) => `[mem ${hex(e.base)}-${hex(e.base + e.length - 1)}] ${e820TypeName(e.type)}`)
    .join("\n");
}

function checkRamSize(totalBytes: number): void {
  if (!Number.isSafeInteger(totalBytes) || totalBytes < HIGH_MEMORY_START || totalBytes % 4096 !== 0) {
    throw new RangeError(`RAM size must be a whole number of 4 KiB pages, at least 1 MiB; got ${totalBytes}`);
  }
}

function checkEntry(e: E820Entry): void {
  if (
    !Number.isSafeInteger(e.base) ||
    !Number.isSafeInteger(e.length) ||
    e.base < 0 ||
    e.length < 0 ||
    !Number.isInteger(e.type) ||
    e.type < 0 ||
    e.type > 0xffffffff
  ) {
    throw new RangeError(`bad e820 entry: base ${e.base}, length ${e.length}, type ${e.type}`);
  }
}

function setU64(view: DataView, at: number, value: number): void {
  view.setUint32(at, value % FOUR_GIB, true);
  view.setUint32(at + 4, Math.floor(value / FOUR_GIB), true);
}

function getU64(view: DataView, at: number): number {
  return view.getUint32(at, true) + view.getUint32(at + 4, true) * FOUR_GIB;
}
