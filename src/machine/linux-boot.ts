// Direct boot of a Linux bzImage through the 32-bit boot protocol (Documentation/arch/x86/boot.rst).
//
// The loader only places bytes in guest memory and says what the CPU state at the kernel's
// 32-bit entry point must be; the caller sets the registers. That split keeps the loader
// testable without a CPU: everything it does can be checked by reading memory back.
//
// What goes where (defaults):
//   0x00500  the boot GDT (flat __BOOT_CS / __BOOT_DS)
//   0x07000  boot_params, the "zero page": a copy of the kernel's setup header plus what the
//            loader fills in (command line pointer, initrd, e820 map, screen info)
//   0x09000  top of a small stack (the kernel sets up its own; ESP just points somewhere sane)
//   0x20000  the command line, NUL-terminated
//   1 MiB    the protected-mode kernel, or its preferred address when it is relocatable
//   high     the initrd: as high as the kernel allows, page-aligned, clear of the kernel

import type { PhysicalMemory } from "../core/memory.ts";
import {
  E820_RAM,
  type E820Entry,
  encodeE820Table,
  FOUR_GIB,
  HIGH_MEMORY_START,
  pcMemoryMap,
} from "./e820.ts";

/** The kernel image or the boot configuration cannot be booted; the message says why. */
export class BootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BootError";
  }
}

// ---- setup header (offsets are the same in the kernel file and in boot_params) ----------------

const SECTOR_SIZE = 512;
/** setup_sects: size of the real-mode setup code in 512-byte sectors; 0 means 4. */
const HDR_SETUP_SECTS = 0x1f1;
/** vid_mode: video mode the real-mode setup should select. */
const HDR_VID_MODE = 0x1fa;
/** boot_flag: the boot sector signature 0xAA55. */
const HDR_BOOT_FLAG = 0x1fe;
/** jump: a short jump whose displacement byte (0x201) also gives the end of the header. */
const HDR_JUMP_DISPLACEMENT = 0x201;
/** header: the magic "HdrS" (protocol 2.00+). */
const HDR_MAGIC = 0x202;
/** version: boot protocol version, major in the high byte. */
const HDR_VERSION = 0x206;
/** kernel_version: offset of the version string, minus 0x200. */
const HDR_KERNEL_VERSION = 0x20e;
/** type_of_loader: boot loader identifier. */
const HDR_TYPE_OF_LOADER = 0x210;
/** loadflags: LOADED_HIGH, CAN_USE_HEAP, ... */
const HDR_LOADFLAGS = 0x211;
/** code32_start: address of the 32-bit entry point, from the real-mode setup's point of view. */
const HDR_CODE32_START = 0x214;
/** ramdisk_image: physical address of the initrd. */
const HDR_RAMDISK_IMAGE = 0x218;
/** ramdisk_size: length of the initrd. */
const HDR_RAMDISK_SIZE = 0x21c;
/** heap_end_ptr: end of the setup heap, relative to the real-mode code, minus 0x200. */
const HDR_HEAP_END_PTR = 0x224;
/** cmd_line_ptr: physical address of the command line (2.02+). */
const HDR_CMD_LINE_PTR = 0x228;
/** initrd_addr_max: highest address the initrd may occupy (2.03+). */
const HDR_INITRD_ADDR_MAX = 0x22c;
/** kernel_alignment: physical alignment a relocatable kernel needs (2.05+). */
const HDR_KERNEL_ALIGNMENT = 0x230;
/** relocatable_kernel: nonzero if the protected-mode part may be loaded anywhere aligned (2.05+). */
const HDR_RELOCATABLE = 0x234;
/** min_alignment: log2 of the smallest alignment the kernel tolerates (2.10+). */
const HDR_MIN_ALIGNMENT = 0x235;
/** xloadflags: 64-bit entry, EFI handover and such (2.12+). */
const HDR_XLOADFLAGS = 0x236;
/** cmdline_size: longest command line, without the NUL (2.06+). */
const HDR_CMDLINE_SIZE = 0x238;
/** syssize: size of the protected-mode code in 16-byte paragraphs (32 bits from 2.04). */
const HDR_SYSSIZE = 0x1f4;
/** payload_offset / payload_length: the compressed kernel inside the protected-mode part (2.08+). */
const HDR_PAYLOAD_OFFSET = 0x248;
const HDR_PAYLOAD_LENGTH = 0x24c;
/** pref_address: preferred load address of a relocatable kernel (2.10+, 64 bits). */
const HDR_PREF_ADDRESS = 0x258;
/** init_size: linear memory the kernel needs from its runtime start before it reads the map (2.10+). */
const HDR_INIT_SIZE = 0x260;
/** handover_offset: EFI handover entry, relative to the protected-mode code (2.11+). */
const HDR_HANDOVER_OFFSET = 0x264;
/** kernel_info_offset: the kernel_info structure, relative to the protected-mode code (2.15+). */
const HDR_KERNEL_INFO_OFFSET = 0x268;

const BOOT_FLAG = 0xaa55;
/** "HdrS" read as a little-endian u32. */
const HDRS_MAGIC = 0x53726448;

/** loadflags: the protected-mode code is loaded at 0x100000 (a bzImage). */
export const LOADED_HIGH = 0x01;
/** loadflags: tell the kernel not to print early messages. */
export const QUIET_FLAG = 0x20;
/** loadflags: heap_end_ptr is valid. */
export const CAN_USE_HEAP = 0x80;

/** xloadflags: the kernel has the legacy 64-bit entry point at load address + 0x200 (an x86-64 kernel). */
export const XLF_KERNEL_64 = 0x01;
/** xloadflags: kernel, boot_params, command line and initrd may live above 4 GiB. */
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;

/** Oldest protocol with cmd_line_ptr and a 32-bit entry a loader can use without the setup code. */
const MIN_PROTOCOL = 0x0202;
/** Where a non-relocatable bzImage runs, and where we load one. */
const DEFAULT_LOAD_ADDRESS = HIGH_MEMORY_START;
/** initrd_addr_max for protocols that predate the field. */
const DEFAULT_INITRD_ADDR_MAX = 0x37ffffff;
/** Longest command line for protocols that predate cmdline_size. */
const DEFAULT_CMDLINE_SIZE = 255;
/**
 * Memory a kernel without init_size (before 2.10) is assumed to need from its start: enough for
 * a compressed image to decompress in place (compression ratios stay well below 4).
 */
const LEGACY_INIT_SIZE_FACTOR = 4;
const PAGE_SIZE = 4096;

/** Where header fields end, per protocol version: a header ending earlier is malformed. */
const HEADER_END_BY_VERSION: readonly [number, number][] = [
  [0x020f, HDR_KERNEL_INFO_OFFSET + 4],
  [0x020b, HDR_HANDOVER_OFFSET + 4],
  [0x020a, HDR_INIT_SIZE + 4],
  [0x0208, HDR_PAYLOAD_LENGTH + 4],
  [0x0206, HDR_CMDLINE_SIZE + 4],
  [0x0205, HDR_RELOCATABLE + 1],
  [0x0203, HDR_INITRD_ADDR_MAX + 4],
  [0x0202, HDR_CMD_LINE_PTR + 4],
];

/** The fields of a bzImage's setup header a loader cares about, already interpreted. */
export interface SetupHeader {
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  readonly protocolVersion: number;
  /** The version as text, "2.15". */
  readonly protocol: string;
  /** Real-mode setup sectors (with 0 already turned into 4). */
  readonly setupSects: number;
  /** Bytes before the protected-mode code: the boot sector plus the setup sectors. */
  readonly setupBytes: number;
  /** Protected-mode code size claimed by syssize, in bytes (only trustworthy from 2.04). */
  readonly syssizeBytes: number;
  readonly loadflags: number;
  readonly code32Start: number;
  /** Highest address the initrd's last byte may occupy. */
  readonly initrdAddrMax: number;
  readonly kernelAlignment: number;
  readonly relocatable: boolean;
  readonly minAlignment: number;
  readonly xloadflags: number;
  /** Longest command line in bytes, without its NUL. */
  readonly cmdlineSize: number;
  readonly payloadOffset: number;
  readonly payloadLength: number;
  /** Preferred load address; 1 MiB for kernels that predate the field. */
  readonly prefAddress: number;
  /** Memory needed from the runtime start; 0 if the kernel predates the field. */
  readonly initSize: number;
  /** EFI handover entry offset (not used: this loader boots through the 32-bit entry). */
  readonly handoverOffset: number;
  /** File offset just past the setup header: the bytes [0x1F1, headerEnd) go into boot_params. */
  readonly headerEnd: number;
  /** The kernel's version string ("6.1.0-50-686 (debian-kernel@...) #1 SMP ..."), or "". */
  readonly kernelVersionString: string;
  /** Size of the protected-mode part in the file. */
  readonly kernelBytes: number;
  /** True for an x86-64 kernel (XLF_KERNEL_64): it switches to long mode on its own. */
  readonly is64Bit: boolean;
}

/**
 * Parses and checks the setup header of a bzImage. Throws BootError for anything a loader
 * cannot boot: truncated files, a missing boot signature or "HdrS" magic, protocols older than
 * 2.02 and zImages (not loaded high).
 */
export function parseBzImage(image: Uint8Array): SetupHeader {
  if (image.length < SECTOR_SIZE) {
    throw new BootError(
      `kernel image is truncated: ${image.length} bytes, less than its 512-byte boot sector`,
    );
  }
  const u8 = (at: number) => image[at]!;
  const u16 = (at: number) => image[at]! | (image[at + 1]! << 8);
  const u32 = (at: number) => (u16(at) | (u16(at + 2) << 16)) >>> 0;

  if (u16(HDR_BOOT_FLAG) !== BOOT_FLAG) {
    throw new BootError("not a bzImage: no boot sector signature 0xAA55 at offset 0x1FE");
  }
  if (image.length < HDR_VERSION + 2 || u32(HDR_MAGIC) !== HDRS_MAGIC) {
    throw new BootError(
      "not a bzImage: no 'HdrS' setup header at offset 0x202 (a boot sector, or a kernel older than boot protocol 2.00)",
    );
  }
  const version = u16(HDR_VERSION);
  const protocol = `${version >> 8}.${(version & 0xff).toString().padStart(2, "0")}`;
  if (version < MIN_PROTOCOL) {
    throw new BootError(
      `kernel uses boot protocol ${protocol}; booting it without its real-mode setup needs protocol 2.02 or newer`,
    );
  }
  const headerEnd = HDR_MAGIC + u8(HDR_JUMP_DISPLACEMENT);
  const requiredEnd = HEADER_END_BY_VERSION.find(([v]) => version >= v)![1];
  if (headerEnd < requiredEnd) {
    throw new BootError(
      `malformed setup header: protocol ${protocol} has fields up to offset 0x${requiredEnd.toString(16)}, but the header ends at 0x${headerEnd.toString(16)}`,
    );
  }
  const setupSects = u8(HDR_SETUP_SECTS) || 4;
  const setupBytes = (setupSects + 1) * SECTOR_SIZE;
  if (image.length < headerEnd) {
    throw new BootError(
      `kernel image is truncated: ${image.length} bytes, its setup header ends at ${headerEnd}`,
    );
  }
  if (image.length <= setupBytes) {
    throw new BootError(
      `kernel image is truncated: ${image.length} bytes, but its ${setupSects} setup sectors alone take ${setupBytes} and the protected-mode code follows them`,
    );
  }
  const loadflags = u8(HDR_LOADFLAGS);
  if (!(loadflags & LOADED_HIGH)) {
    throw new BootError(
      "kernel is a zImage (loaded low, below 640 KiB), not a bzImage; zImages are not supported",
    );
  }

  const kernelBytes = image.length - setupBytes;
  // Before 2.04 only the low 16 bits of syssize were defined.
  const syssizeBytes = (version >= 0x0204 ? u32(HDR_SYSSIZE) : u16(HDR_SYSSIZE)) * 16;
  // syssize counts 16-byte paragraphs, rounded up: a file up to 15 bytes shorter is whole (as
  // memtest86+ ships), which is why boot loaders load the file's length, not syssize.
  if (version >= 0x0204 && syssizeBytes > kernelBytes + 15) {
    throw new BootError(
      `kernel image is truncated: its header says ${syssizeBytes} bytes of protected-mode code, the file has ${kernelBytes}`,
    );
  }
  const payloadOffset = version >= 0x0208 ? u32(HDR_PAYLOAD_OFFSET) : 0;
  const payloadLength = version >= 0x0208 ? u32(HDR_PAYLOAD_LENGTH) : 0;
  if (payloadOffset + payloadLength > kernelBytes) {
    throw new BootError(
      `kernel image is truncated: its compressed payload ends at ${payloadOffset + payloadLength} of ${kernelBytes} protected-mode bytes`,
    );
  }
  let initrdAddrMax = version >= 0x0203 ? u32(HDR_INITRD_ADDR_MAX) : DEFAULT_INITRD_ADDR_MAX;
  if (initrdAddrMax === 0) initrdAddrMax = DEFAULT_INITRD_ADDR_MAX;
  const relocatable = version >= 0x0205 && u8(HDR_RELOCATABLE) !== 0;
  let kernelAlignment = version >= 0x0205 ? u32(HDR_KERNEL_ALIGNMENT) : 0;
  // An alignment that is not a power of two cannot be honoured; treat it as none.
  if (kernelAlignment === 0 || (kernelAlignment & (kernelAlignment - 1)) !== 0) kernelAlignment = PAGE_SIZE;
  let prefAddress = DEFAULT_LOAD_ADDRESS;
  if (version >= 0x020a) prefAddress = u32(HDR_PREF_ADDRESS) + u32(HDR_PREF_ADDRESS + 4) * FOUR_GIB;
  const xloadflags = version >= 0x020c ? u16(HDR_XLOADFLAGS) : 0;

  return {
    protocolVersion: version,
    protocol,
    setupSects,
    setupBytes,
    syssizeBytes,
    loadflags,
    code32Start: u32(HDR_CODE32_START),
    initrdAddrMax,
    kernelAlignment,
    relocatable,
    minAlignment: version >= 0x020a ? u8(HDR_MIN_ALIGNMENT) : 0,
    xloadflags,
    cmdlineSize: version >= 0x0206 ? u32(HDR_CMDLINE_SIZE) : DEFAULT_CMDLINE_SIZE,
    payloadOffset,
    payloadLength,
    prefAddress,
    initSize: version >= 0x020a ? u32(HDR_INIT_SIZE) : 0,
    handoverOffset: version >= 0x020b ? u32(HDR_HANDOVER_OFFSET) : 0,
    headerEnd,
    kernelVersionString: readKernelVersion(image, u16(HDR_KERNEL_VERSION), setupBytes),
    kernelBytes,
    is64Bit: (xloadflags & XLF_KERNEL_64) !== 0,
  };
}

/** The NUL-terminated version string kernel_version points to, if it lies inside the setup code. */
function readKernelVersion(image: Uint8Array, pointer: number, setupBytes: number): string {
  if (pointer === 0) return "";
  const start = pointer + 0x200;
  let end = start;
  while (end < setupBytes && end < start + 256 && image[end] !== 0) end++;
  if (end >= setupBytes || image[end] !== 0) return "";
  let text = "";
  for (let i = start; i < end; i++) {
    const c = image[i]!;
    text += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : "?";
  }
  return text;
}

// ---- boot_params ("zero page") ---------------------------------------------------------------

const BOOT_PARAMS_SIZE = 4096;
/** screen_info.ext_mem_k: extended memory in KiB (16 bits). */
const BP_EXT_MEM_K = 0x002;
/** screen_info.orig_video_mode: the BIOS video mode. */
const BP_ORIG_VIDEO_MODE = 0x006;
/** screen_info.orig_video_cols. */
const BP_ORIG_VIDEO_COLS = 0x007;
/** screen_info.orig_video_ega_bx: BX from INT 10h AH=12h BL=10h; BL != 0x10 means EGA or better. */
const BP_ORIG_VIDEO_EGA_BX = 0x00a;
/** screen_info.orig_video_lines. */
const BP_ORIG_VIDEO_LINES = 0x00e;
/** screen_info.orig_video_isVGA: 1 for a VGA text console. */
const BP_ORIG_VIDEO_IS_VGA = 0x00f;
/** screen_info.orig_video_points: character cell height. */
const BP_ORIG_VIDEO_POINTS = 0x010;
/** acpi_rsdp_addr: where the ACPI RSDP is, for kernels that read it from here (2.14+). */
const BP_ACPI_RSDP_ADDR = 0x070;
/** alt_mem_k: extended memory in KiB (32 bits). */
const BP_ALT_MEM_K = 0x1e0;
/** e820_entries: number of records in e820_table. */
const BP_E820_ENTRIES = 0x1e8;
/** e820_table: up to 128 records of 20 bytes. */
const BP_E820_TABLE = 0x2d0;
const E820_MAX_ENTRIES_ZEROPAGE = 128;

/** vid_mode: "normal", the 80x25 text mode. */
const VID_MODE_NORMAL = 0xffff;
/** type_of_loader: a loader without a registered id. */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** heap_end_ptr as the protocol's sample loader sets it for a modern kernel: 0xE000 - 0x200. */
const HEAP_END_PTR = 0xe000 - 0x200;
/** BIOS video mode 3: 80x25 colour text. */
const VGA_TEXT_MODE = 3;
/** ega_bx as a VGA BIOS returns it: colour (BH=0), 256 KiB of video memory (BL=3). */
const VGA_EGA_BX = 0x0003;
const VGA_FONT_HEIGHT = 16;

// ---- the 32-bit entry state ------------------------------------------------------------------

/** Code segment selector the protocol requires at the 32-bit entry: GDT entry 2. */
export const BOOT_CS = 0x10;
/** Data segment selector for DS, ES, SS (and FS, GS): GDT entry 3. */
export const BOOT_DS = 0x18;
/** CR0.PE: protected mode on (and nothing else: paging, caches as after reset). */
export const CR0_PE = 0x1;
/** EFLAGS with only the always-one bit 1 set: interrupts disabled. */
const EFLAGS_INTERRUPTS_OFF = 0x2;
/** Access byte of a present ring-0 execute/read code segment, already marked accessed. */
const CODE_ACCESS = 0x9b;
/** Access byte of a present ring-0 read/write data segment, already marked accessed. */
const DATA_ACCESS = 0x93;
/** Descriptor flags nibble: 4 KiB granularity (G) and 32-bit default size (D/B). */
const FLAT_FLAGS = 0xc;

export const DEFAULT_BOOT_PARAMS_ADDRESS = 0x7000;
export const DEFAULT_CMDLINE_ADDRESS = 0x20000;
export const DEFAULT_GDT_ADDRESS = 0x500;
export const DEFAULT_STACK_TOP = 0x9000;

/**
 * The boot GDT: null, null, a flat 4 GiB code segment at __BOOT_CS and a flat 4 GiB data
 * segment at __BOOT_DS. Load it with base = where it was put and limit = length - 1.
 */
export function bootGdt(): Uint8Array {
  const gdt = new Uint8Array(32);
  gdt.set(flatDescriptor(CODE_ACCESS), BOOT_CS);
  gdt.set(flatDescriptor(DATA_ACCESS), BOOT_DS);
  return gdt;
}

function flatDescriptor(access: number): Uint8Array {
  // limit 0xFFFFF pages (4 GiB with G set), base 0.
  return Uint8Array.of(0xff, 0xff, 0, 0, 0, access, (FLAT_FLAGS << 4) | 0xf, 0);
}

/** A segment register as the CPU holds it once loaded: selector plus the descriptor cache. */
export interface SegmentState {
  readonly selector: number;
  readonly base: number;
  /** Byte-granular limit (0xFFFFFFFF: the whole 4 GiB). */
  readonly limit: number;
  /** Descriptor access byte (present, DPL, type). */
  readonly access: number;
  /** True for a 32-bit segment (descriptor D/B bit). */
  readonly big: boolean;
}

/** What the CPU must look like when it starts the kernel at its 32-bit entry point. */
export interface Linux32EntryState {
  readonly eip: number;
  /** CR0.PE set, paging off. */
  readonly cr0: number;
  /** Interrupts disabled. */
  readonly eflags: number;
  /** Where bootGdt() was written and its limit. */
  readonly gdtr: { readonly base: number; readonly limit: number };
  readonly cs: SegmentState;
  readonly ds: SegmentState;
  readonly es: SegmentState;
  readonly ss: SegmentState;
  readonly fs: SegmentState;
  readonly gs: SegmentState;
  /** ESI = boot_params; EBP = EDI = EBX = 0 as the protocol demands; the others zero too. */
  readonly registers: {
    readonly eax: number;
    readonly ebx: number;
    readonly ecx: number;
    readonly edx: number;
    readonly esi: number;
    readonly edi: number;
    readonly ebp: number;
    readonly esp: number;
  };
}

function flatSegment(selector: number, access: number): SegmentState {
  return { selector, base: 0, limit: 0xffffffff, access, big: true };
}

// ---- loading -----------------------------------------------------------------------------------

export interface LinuxBootOptions {
  /** The bzImage file. */
  readonly kernel: Uint8Array;
  /** The initrd / initramfs, if any (an empty one counts as none). */
  readonly initrd?: Uint8Array;
  /** The kernel command line (ASCII/UTF-8, no NUL). */
  readonly cmdline?: string;
  /**
   * The machine's memory map, for boot_params and for placement. Defaults to
   * pcMemoryMap(ramSize); one of the two must be given.
   */
  readonly memoryMap?: readonly E820Entry[];
  readonly ramSize?: number;
  /** Describe an 80x25 VGA text console in screen_info (otherwise the kernel sees no VGA). */
  readonly vgaTextConsole?: boolean;
  /** type_of_loader (default 0xFF, "undefined"). */
  readonly loaderType?: number;
  /** Physical address of the ACPI RSDP, when the firmware tables are not found by scanning. */
  readonly acpiRsdpAddress?: number;
  readonly bootParamsAddress?: number;
  readonly cmdlineAddress?: number;
  readonly gdtAddress?: number;
}

export interface LinuxBootResult {
  /** Where the CPU starts the kernel: the protected-mode code's load address. */
  readonly entry32: number;
  /** Physical address of boot_params (ESI at entry). */
  readonly bootParams: number;
  /** First byte of the protected-mode kernel. */
  readonly kernelLoad: number;
  /** Just past the protected-mode kernel as loaded. */
  readonly kernelEnd: number;
  /** The memory the kernel claims before it reads the map: [start, end) from init_size. */
  readonly kernelWindow: { readonly start: number; readonly end: number };
  readonly initrd?: { readonly address: number; readonly size: number };
  readonly cmdlineAddress: number;
  /** Boot protocol version, e.g. 0x020f. */
  readonly protocolVersion: number;
  readonly kernelVersionString: string;
  readonly header: SetupHeader;
  /** Where the boot GDT was written and its bytes. */
  readonly gdt: { readonly address: number; readonly bytes: Uint8Array };
  readonly entryState: Linux32EntryState;
}

interface Range {
  readonly start: number;
  readonly end: number;
}

/**
 * Loads a bzImage (and optionally an initrd and a command line) into `memory` for the 32-bit
 * boot protocol and returns where everything went and the CPU state to start it with.
 * Throws BootError when the image is unusable or does not fit the machine.
 */
export function loadLinux(memory: PhysicalMemory, options: LinuxBootOptions): LinuxBootResult {
  const header = parseBzImage(options.kernel);
  const map = options.memoryMap ?? (options.ramSize !== undefined ? pcMemoryMap(options.ramSize) : undefined);
  if (!map) throw new TypeError("loadLinux needs a memoryMap or a ramSize");
  const usable = usableRanges(map);

  const bootParams = options.bootParamsAddress ?? DEFAULT_BOOT_PARAMS_ADDRESS;
  const cmdlineAddress = options.cmdlineAddress ?? DEFAULT_CMDLINE_ADDRESS;
  const gdtAddress = options.gdtAddress ?? DEFAULT_GDT_ADDRESS;
  const cmdline = encodeCommandLine(options.cmdline ?? "", header);
  const gdt = bootGdt();

  const lowStructures: [string, Range][] = [
    ["boot_params", { start: bootParams, end: bootParams + BOOT_PARAMS_SIZE }],
    ["the command line", { start: cmdlineAddress, end: cmdlineAddress + cmdline.length }],
    ["the boot GDT", { start: gdtAddress, end: gdtAddress + gdt.length }],
  ];
  for (const [what, range] of lowStructures) {
    if (!insideUsable(usable, range)) {
      throw new BootError(`${what} at ${hex(range.start)} is not in usable RAM of the memory map`);
    }
  }
  checkDisjoint(lowStructures);

  const { load, window } = placeKernel(header, usable);
  const kernelImage: Range = { start: load, end: load + header.kernelBytes };
  const kernelRanges: [string, Range][] = [
    ["the kernel", kernelImage],
    ["the kernel's init_size window", window],
  ];
  for (const [what, range] of lowStructures) {
    for (const [, k] of kernelRanges) {
      if (overlaps(range, k))
        throw new BootError(`${what} at ${hex(range.start)} overlaps the kernel at ${hex(k.start)}`);
    }
  }

  let initrd: { address: number; size: number } | undefined;
  if (options.initrd && options.initrd.length > 0) {
    const size = options.initrd.length;
    const limit = Math.min(header.initrdAddrMax + 1, FOUR_GIB);
    const address = placeHigh(usable, size, limit, [
      ...kernelRanges.map(([, r]) => r),
      ...lowStructures.map(([, r]) => r),
    ]);
    if (address === undefined) {
      throw new BootError(
        `initrd (${mib(size)}) does not fit in free RAM below ${hex(limit)} next to the kernel at ${hex(window.start)}-${hex(window.end)}`,
      );
    }
    initrd = { address, size };
  }

  const zeroPage = buildBootParams(options, header, map, { load, cmdlineAddress, initrd });

  // Everything decided: now write. Check the map against what is really mapped first, so a
  // wiring mistake is an error here rather than a kernel that silently finds zeros.
  const writes: [Range, Uint8Array][] = [
    [kernelImage, options.kernel.subarray(header.setupBytes)],
    [{ start: bootParams, end: bootParams + BOOT_PARAMS_SIZE }, zeroPage],
    [{ start: cmdlineAddress, end: cmdlineAddress + cmdline.length }, cmdline],
    [{ start: gdtAddress, end: gdtAddress + gdt.length }, gdt],
  ];
  if (initrd && options.initrd) {
    writes.push([{ start: initrd.address, end: initrd.address + initrd.size }, options.initrd]);
  }
  for (const [range] of [...writes, [window]] as const) checkMapped(memory, range);
  for (const [range, data] of writes) memory.writeBytes(range.start, data);

  const ds = flatSegment(BOOT_DS, DATA_ACCESS);
  const entryState: Linux32EntryState = {
    eip: load,
    cr0: CR0_PE,
    eflags: EFLAGS_INTERRUPTS_OFF,
    gdtr: { base: gdtAddress, limit: gdt.length - 1 },
    cs: flatSegment(BOOT_CS, CODE_ACCESS),
    ds,
    es: ds,
    ss: ds,
    fs: ds,
    gs: ds,
    registers: { eax: 0, ebx: 0, ecx: 0, edx: 0, esi: bootParams, edi: 0, ebp: 0, esp: DEFAULT_STACK_TOP },
  };

  return {
    entry32: load,
    bootParams,
    kernelLoad: load,
    kernelEnd: kernelImage.end,
    kernelWindow: window,
    ...(initrd ? { initrd } : {}),
    cmdlineAddress,
    protocolVersion: header.protocolVersion,
    kernelVersionString: header.kernelVersionString,
    header,
    gdt: { address: gdtAddress, bytes: gdt },
    entryState,
  };
}

/** The command line as bytes with its NUL, checked against what the kernel accepts. */
function encodeCommandLine(cmdline: string, header: SetupHeader): Uint8Array {
  const text = new TextEncoder().encode(cmdline);
  if (text.includes(0)) throw new BootError("the kernel command line contains a NUL character");
  if (text.length > header.cmdlineSize) {
    throw new BootError(
      `the kernel command line is ${text.length} bytes; this kernel accepts at most ${header.cmdlineSize}`,
    );
  }
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/**
 * Picks the load address and the memory window the kernel will use before it reads the memory
 * map. A relocatable kernel goes to its preferred address when the whole window fits there;
 * otherwise the kernel goes to 1 MiB. Where the kernel then decompresses itself follows the
 * protocol's rule for the runtime start.
 */
function placeKernel(header: SetupHeader, usable: readonly Range[]): { load: number; window: Range } {
  const fits = (load: number) => {
    const window = runtimeWindow(header, load);
    return (
      insideUsable(usable, { start: load, end: load + header.kernelBytes }) &&
      insideUsable(usable, window) &&
      window.end <= FOUR_GIB
    );
  };
  const pref = header.prefAddress;
  if (header.relocatable && pref >= HIGH_MEMORY_START && pref % header.kernelAlignment === 0 && fits(pref)) {
    return { load: pref, window: runtimeWindow(header, pref) };
  }
  if (fits(DEFAULT_LOAD_ADDRESS))
    return { load: DEFAULT_LOAD_ADDRESS, window: runtimeWindow(header, DEFAULT_LOAD_ADDRESS) };

  const top = Math.max(0, ...usable.filter((r) => r.start <= HIGH_MEMORY_START).map((r) => r.end));
  if (
    !insideUsable(usable, { start: DEFAULT_LOAD_ADDRESS, end: DEFAULT_LOAD_ADDRESS + header.kernelBytes })
  ) {
    throw kernelDoesNotFit(header, top);
  }
  throw windowDoesNotFit(runtimeWindow(header, DEFAULT_LOAD_ADDRESS), top);
}

/** Where a kernel loaded at `load` decompresses itself and starts (the protocol's runtime start). */
function runtimeWindow(header: SetupHeader, load: number): Range {
  const need = header.initSize > 0 ? header.initSize : header.kernelBytes * LEGACY_INIT_SIZE_FACTOR;
  // A kernel never runs below 1 MiB, whatever a malformed pref_address says.
  const runtimeFloor = Math.max(header.prefAddress, DEFAULT_LOAD_ADDRESS);
  const start = header.relocatable
    ? alignUp(Math.max(load, runtimeFloor), header.kernelAlignment)
    : runtimeFloor;
  return { start, end: start + need };
}

function kernelDoesNotFit(header: SetupHeader, ramEnd: number): BootError {
  return new BootError(
    `the kernel (${mib(header.kernelBytes)}) does not fit in RAM at 1 MiB: usable memory there ends at ${hex(ramEnd)}`,
  );
}

function windowDoesNotFit(window: Range, ramEnd: number): BootError {
  return new BootError(
    `the kernel needs memory up to ${hex(window.end)} (${mib(window.end - window.start)} from ${hex(window.start)} to decompress and start), ` +
      `but usable RAM ends at ${hex(ramEnd)}; give the machine more memory`,
  );
}

/**
 * The highest page-aligned address below `limit` where `size` bytes fit entirely in usable RAM
 * above 1 MiB without touching any of `avoid`, or undefined.
 */
function placeHigh(
  usable: readonly Range[],
  size: number,
  limit: number,
  avoid: readonly Range[],
): number | undefined {
  let free: Range[] = [];
  for (const r of usable) {
    const start = Math.max(r.start, HIGH_MEMORY_START);
    const end = Math.min(r.end, limit);
    if (end > start) free.push({ start, end });
  }
  for (const a of avoid) free = free.flatMap((f) => subtract(f, a));
  free.sort((x, y) => y.end - x.end);
  for (const f of free) {
    const address = Math.floor((f.end - size) / PAGE_SIZE) * PAGE_SIZE;
    if (address >= f.start) return address;
  }
  return undefined;
}

function buildBootParams(
  options: LinuxBootOptions,
  header: SetupHeader,
  map: readonly E820Entry[],
  placed: { load: number; cmdlineAddress: number; initrd: { address: number; size: number } | undefined },
): Uint8Array {
  const bp = new Uint8Array(BOOT_PARAMS_SIZE);
  const view = new DataView(bp.buffer);
  // The protocol: copy the setup header from the image, then fill in the loader's fields.
  bp.set(options.kernel.subarray(HDR_SETUP_SECTS, header.headerEnd), HDR_SETUP_SECTS);
  const loaderType = options.loaderType ?? LOADER_TYPE_UNDEFINED;
  if (!Number.isInteger(loaderType) || loaderType < 0 || loaderType > 0xff) {
    throw new RangeError(`loader type must be a byte, got ${loaderType}`);
  }
  bp[HDR_TYPE_OF_LOADER] = loaderType;
  bp[HDR_LOADFLAGS] = bp[HDR_LOADFLAGS]! | CAN_USE_HEAP;
  view.setUint16(HDR_HEAP_END_PTR, HEAP_END_PTR, true);
  view.setUint16(HDR_VID_MODE, VID_MODE_NORMAL, true);
  view.setUint32(HDR_CODE32_START, placed.load, true);
  view.setUint32(HDR_CMD_LINE_PTR, placed.cmdlineAddress, true);
  view.setUint32(HDR_RAMDISK_IMAGE, placed.initrd?.address ?? 0, true);
  view.setUint32(HDR_RAMDISK_SIZE, placed.initrd?.size ?? 0, true);

  if (map.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new BootError(`the memory map has ${map.length} entries; boot_params holds at most 128`);
  }
  bp[BP_E820_ENTRIES] = map.length;
  bp.set(encodeE820Table(map), BP_E820_TABLE);

  // Extended memory for kernels or tools that look at the old fields instead of the map.
  const extendedKiB = Math.floor((contiguousRamEnd(map, HIGH_MEMORY_START) - HIGH_MEMORY_START) / 1024);
  view.setUint32(BP_ALT_MEM_K, extendedKiB, true);
  view.setUint16(BP_EXT_MEM_K, Math.min(extendedKiB, 0xffff), true);

  if (options.acpiRsdpAddress !== undefined) {
    view.setUint32(BP_ACPI_RSDP_ADDR, options.acpiRsdpAddress % FOUR_GIB, true);
    view.setUint32(BP_ACPI_RSDP_ADDR + 4, Math.floor(options.acpiRsdpAddress / FOUR_GIB), true);
  }
  if (options.vgaTextConsole) {
    // What the real-mode setup would have found probing a VGA BIOS in mode 3, cursor at 0,0.
    bp[BP_ORIG_VIDEO_MODE] = VGA_TEXT_MODE;
    bp[BP_ORIG_VIDEO_COLS] = 80;
    bp[BP_ORIG_VIDEO_LINES] = 25;
    bp[BP_ORIG_VIDEO_IS_VGA] = 1;
    view.setUint16(BP_ORIG_VIDEO_EGA_BX, VGA_EGA_BX, true);
    view.setUint16(BP_ORIG_VIDEO_POINTS, VGA_FONT_HEIGHT, true);
  }
  return bp;
}

// ---- ranges --------------------------------------------------------------------------------

/** Usable RAM below 4 GiB, sorted, with touching ranges joined. */
function usableRanges(map: readonly E820Entry[]): Range[] {
  const ranges = map
    .filter((e) => e.type === E820_RAM && e.length > 0 && e.base < FOUR_GIB)
    .map((e) => ({ start: e.base, end: Math.min(e.base + e.length, FOUR_GIB) }))
    .sort((a, b) => a.start - b.start);
  const out: Range[] = [];
  for (const r of ranges) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end)
      out[out.length - 1] = { start: last.start, end: Math.max(last.end, r.end) };
    else out.push(r);
  }
  return out;
}

function contiguousRamEnd(map: readonly E820Entry[], from: number): number {
  for (const r of usableRanges(map)) if (r.start <= from && r.end > from) return r.end;
  return from;
}

function insideUsable(usable: readonly Range[], range: Range): boolean {
  return usable.some((u) => u.start <= range.start && range.end <= u.end);
}

function overlaps(a: Range, b: Range): boolean {
  return a.start < b.end && b.start < a.end;
}

function subtract(from: Range, cut: Range): Range[] {
  if (!overlaps(from, cut)) return [from];
  const out: Range[] = [];
  if (from.start < cut.start) out.push({ start: from.start, end: cut.start });
  if (cut.end < from.end) out.push({ start: cut.end, end: from.end });
  return out;
}

function checkDisjoint(ranges: readonly [string, Range][]): void {
  for (let i = 0; i < ranges.length; i++) {
    for (let j = i + 1; j < ranges.length; j++) {
      const [a, ra] = ranges[i]!;
      const [b, rb] = ranges[j]!;
      if (overlaps(ra, rb)) throw new BootError(`${a} at ${hex(ra.start)} overlaps ${b} at ${hex(rb.start)}`);
    }
  }
}

function checkMapped(memory: PhysicalMemory, range: Range): void {
  for (let page = range.start - (range.start % PAGE_SIZE); page < range.end; page += PAGE_SIZE) {
    if (memory.regionAt(page)?.kind !== "ram") {
      throw new BootError(`the memory map says ${hex(page)} is RAM, but no RAM is mapped there`);
    }
  }
}

function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

// ---- telling images apart -------------------------------------------------------------------

export type KernelImageKind =
  | "bzimage"
  | "zimage"
  | "multiboot"
  | "multiboot2"
  | "elf32"
  | "elf64"
  | "pe"
  | "gzip"
  | "xz"
  | "zstd"
  | "bzip2"
  | "cpio"
  | "iso9660"
  | "mbr"
  | "empty"
  | "unknown";

export interface KernelImageIdentity {
  readonly kind: KernelImageKind;
  /** What it is, to follow "it looks like": "an ELF64 executable for x86-64", ... */
  readonly description: string;
}

/** Multiboot header magic, searched in the first 8 KiB at 4-byte alignment. */
const MULTIBOOT_HEADER_MAGIC = 0x1badb002;
const MULTIBOOT_SEARCH = 8192;
/** Multiboot2 header magic, searched in the first 32 KiB at 8-byte alignment. */
const MULTIBOOT2_HEADER_MAGIC = 0xe85250d6;
const MULTIBOOT2_SEARCH = 32768;
/** ISO 9660: "CD001" at byte 1 of the volume descriptor in sector 16. */
const ISO9660_ID_OFFSET = 0x8001;

/**
 * Says what a file is, for the error when it is neither a bzImage nor a multiboot kernel.
 * Never throws, whatever the bytes.
 */
export function identifyKernelImage(bytes: Uint8Array): KernelImageIdentity {
  const at = (i: number) => bytes[i] ?? -1;
  const u16 = (i: number) => (i + 2 <= bytes.length ? at(i) | (at(i + 1) << 8) : -1);
  const u32 = (i: number) => (i + 4 <= bytes.length ? (u16(i) | (u16(i + 2) << 16)) >>> 0 : -1);
  const ascii = (i: number, text: string) => [...text].every((c, k) => at(i + k) === c.charCodeAt(0));

  if (bytes.length === 0) return { kind: "empty", description: "an empty file" };

  if (u16(HDR_BOOT_FLAG) === BOOT_FLAG && u32(HDR_MAGIC) === HDRS_MAGIC) {
    const version = u16(HDR_VERSION);
    const protocol = `${version >> 8}.${(version & 0xff).toString().padStart(2, "0")}`;
    if (at(HDR_LOADFLAGS) & LOADED_HIGH) {
      return { kind: "bzimage", description: `a Linux bzImage (boot protocol ${protocol})` };
    }
    return { kind: "zimage", description: `a Linux zImage (boot protocol ${protocol}, loaded low)` };
  }

  const multiboot = findMultibootHeader(bytes, u32);
  if (multiboot) return multiboot;

  if (ascii(0, "\x7fELF")) {
    const machine = u16(0x12);
    const machineName =
      machine === 3 ? "i386" : machine === 62 ? "x86-64" : machine === 40 ? "ARM" : `machine ${machine}`;
    const type = u16(0x10);
    const typeName = type === 1 ? "relocatable object" : type === 3 ? "shared object" : "executable";
    if (at(4) === 1)
      return {
        kind: "elf32",
        description: `an ELF32 ${typeName} for ${machineName} without a multiboot header`,
      };
    if (at(4) === 2)
      return {
        kind: "elf64",
        description: `an ELF64 ${typeName} for ${machineName} without a multiboot header`,
      };
    return { kind: "unknown", description: "an ELF file of unknown class" };
  }
  if (ascii(0, "MZ")) {
    const pe = u32(0x3c);
    if (pe >= 0 && ascii(pe, "PE\0\0")) {
      return { kind: "pe", description: "a PE/COFF executable (an EFI application or Windows program)" };
    }
    return { kind: "pe", description: "a DOS MZ executable" };
  }
  if (at(0) === 0x1f && at(1) === 0x8b) {
    return { kind: "gzip", description: "gzip-compressed data (a compressed vmlinux or initrd?)" };
  }
  if (ascii(0, "\xfd7zXZ\0")) return { kind: "xz", description: "xz-compressed data" };
  if (u32(0) === 0xfd2fb528) return { kind: "zstd", description: "zstd-compressed data" };
  if (ascii(0, "BZh")) return { kind: "bzip2", description: "bzip2-compressed data" };
  if (ascii(0, "070701") || ascii(0, "070702") || ascii(0, "070707")) {
    return { kind: "cpio", description: "a cpio archive (an initramfs?)" };
  }
  if (ascii(ISO9660_ID_OFFSET, "CD001")) return { kind: "iso9660", description: "an ISO 9660 CD image" };
  if (u16(HDR_BOOT_FLAG) === BOOT_FLAG) {
    return {
      kind: "mbr",
      description: "a boot sector or disk image (signature 0x55AA, but no Linux setup header)",
    };
  }
  const preview = [...bytes.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
  return { kind: "unknown", description: `unrecognised data (starts with ${preview})` };
}

function findMultibootHeader(bytes: Uint8Array, u32: (i: number) => number): KernelImageIdentity | undefined {
  const end1 = Math.min(bytes.length - 12, MULTIBOOT_SEARCH - 12);
  for (let i = 0; i <= end1; i += 4) {
    if (u32(i) !== MULTIBOOT_HEADER_MAGIC) continue;
    // magic + flags + checksum must be 0 (mod 2^32).
    if ((u32(i) + u32(i + 4) + u32(i + 8)) >>> 0 === 0) {
      return { kind: "multiboot", description: "a multiboot kernel" };
    }
  }
  const end2 = Math.min(bytes.length - 16, MULTIBOOT2_SEARCH - 16);
  for (let i = 0; i <= end2; i += 8) {
    if (u32(i) !== MULTIBOOT2_HEADER_MAGIC) continue;
    // magic + architecture + header_length + checksum must be 0 (mod 2^32).
    if ((u32(i) + u32(i + 4) + u32(i + 8) + u32(i + 12)) >>> 0 === 0) {
      return {
        kind: "multiboot2",
        description: "a multiboot2 kernel (only multiboot version 1 is supported)",
      };
    }
  }
  return undefined;
}

/** The error text for a kernel file that cannot be booted directly. */
export function notBootableMessage(name: string, bytes: Uint8Array): string {
  return `${name} is not a bzImage or a multiboot image: it looks like ${identifyKernelImage(bytes).description}`;
}

// ---- boot through the firmware ----------------------------------------------------------------

/** Where the real-mode setup code goes for the firmware path (QEMU uses the same). */
export const FIRMWARE_SETUP_ADDRESS = 0x10000;
/** Where the command line goes for the firmware path: 64 KiB above the setup code. */
export const FIRMWARE_CMDLINE_ADDRESS = 0x20000;
/** Where the option ROM copies the protected-mode code of a bzImage (loaded high). */
const FIRMWARE_KERNEL_ADDRESS = HIGH_MEMORY_START;
/** The boot-protocol loader id tsvisor announces on the firmware path (0xB: "Qemu"-style VMM). */
const LOADER_TYPE_FIRMWARE = 0xb0;

/** One piece the firmware's linuxboot ROM copies into guest memory. */
export interface FirmwareBlob {
  readonly address: number;
  readonly data: Uint8Array;
}

export interface FirmwareLinuxBoot {
  readonly setup: FirmwareBlob;
  readonly kernel: FirmwareBlob;
  readonly initrd: FirmwareBlob | undefined;
  readonly cmdline: FirmwareBlob;
  readonly header: SetupHeader;
}

/**
 * Prepares a bzImage for the firmware path (the option ROM enters the kernel's real-mode setup,
 * which then asks the BIOS for the memory map and video mode): splits setup and protected-mode
 * code, and patches the setup header the way a boot loader does — loader type, command line
 * pointer, heap end, initrd address and size. `ramEnd` is the end of the low RAM the firmware
 * leaves to the kernel: the kernel, the window it decompresses into and the initrd stay below it,
 * or the preparation fails (the guest would otherwise crash with no word on the console).
 */
export function prepareFirmwareLinuxBoot(
  image: Uint8Array,
  options: { initrd?: Uint8Array; cmdline?: string; ramEnd: number },
): FirmwareLinuxBoot {
  const header = parseBzImage(image);
  // The option ROM copies the protected-mode code to 1 MiB, and it decompresses itself from there.
  if (FIRMWARE_KERNEL_ADDRESS + header.kernelBytes > options.ramEnd)
    throw kernelDoesNotFit(header, options.ramEnd);
  const window = runtimeWindow(header, FIRMWARE_KERNEL_ADDRESS);
  if (window.end > options.ramEnd) throw windowDoesNotFit(window, options.ramEnd);
  const cmdline = options.cmdline ?? "";
  const cmdBytes = new TextEncoder().encode(cmdline);
  if (cmdBytes.length > header.cmdlineSize) {
    throw new BootError(
      `the command line is ${cmdBytes.length} bytes; this kernel accepts at most ${header.cmdlineSize}`,
    );
  }
  if (cmdBytes.includes(0)) throw new BootError("the command line contains a NUL byte");
  const setup = image.slice(0, header.setupBytes);
  const view = new DataView(setup.buffer);
  setup[HDR_TYPE_OF_LOADER] = LOADER_TYPE_FIRMWARE;
  setup[HDR_LOADFLAGS] = setup[HDR_LOADFLAGS]! | CAN_USE_HEAP;
  // The heap ends where the stack the ROM sets up begins, 512 bytes below the command line.
  view.setUint16(HDR_HEAP_END_PTR, FIRMWARE_CMDLINE_ADDRESS - FIRMWARE_SETUP_ADDRESS - 0x200, true);
  view.setUint32(HDR_CMD_LINE_PTR, FIRMWARE_CMDLINE_ADDRESS, true);
  view.setUint16(HDR_VID_MODE, 0xffff, true); // "normal": keep the mode the BIOS set
  let initrd: FirmwareBlob | undefined;
  if (options.initrd && options.initrd.length > 0) {
    const limit = Math.min(header.initrdAddrMax + 1, options.ramEnd);
    const address = Math.floor((limit - options.initrd.length) / PAGE_SIZE) * PAGE_SIZE;
    const kernelEnd = header.prefAddress + Math.max(header.initSize, header.kernelBytes);
    if (address < kernelEnd) {
      throw new BootError(
        `the initrd (${options.initrd.length} bytes) does not fit between the kernel and ${hex(limit)}: give the VM more memory`,
      );
    }
    view.setUint32(HDR_RAMDISK_IMAGE, address, true);
    view.setUint32(HDR_RAMDISK_SIZE, options.initrd.length, true);
    initrd = { address, data: options.initrd };
  }
  const cmdData = new Uint8Array(cmdBytes.length + 1);
  cmdData.set(cmdBytes);
  return {
    setup: { address: FIRMWARE_SETUP_ADDRESS, data: setup },
    kernel: { address: FIRMWARE_KERNEL_ADDRESS, data: image.subarray(header.setupBytes) },
    initrd,
    cmdline: { address: FIRMWARE_CMDLINE_ADDRESS, data: cmdData },
    header,
  };
}
