// The guest-physical address space: RAM, ROM, memory-mapped devices and holes.
//
// Routing is per 4 KiB page through two tables (one for reads, one for writes) so that chipset
// shadowing (the i440FX PAM registers: "read the BIOS ROM, write the RAM underneath") is a table
// update, not a special case in the access path. Each page also has a flag byte: DIRTY for
// snapshots and migration, CODE for the binary translator. Both cost nothing unless used: the CPU's
// TLB only takes its fast write path for pages that `isWriteFast` approves, and is told through
// `onWriteProtect` when that approval is withdrawn.

import type { Width } from "./bus.ts";

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
export const PAGE_MASK = PAGE_SIZE - 1;
/** Pages in the 32-bit physical space. Regions above 4 GiB (PAE) are found by search. */
const LOW_PAGES = 1 << 20;
const FOUR_GIB = 0x1_0000_0000;

/** Page flag: written since the last harvest (only maintained while dirty logging is on). */
export const PAGE_DIRTY = 1;
/** Page flag: holds code the translator has compiled; writes must be reported. */
export const PAGE_CODE = 2;

/** A device reachable through memory-mapped I/O. `offset` is relative to its region's base. */
export interface MmioDevice {
  mmioRead(offset: number, width: Width): number;
  mmioWrite(offset: number, width: Width, value: number): void;
}

export type RegionKind = "ram" | "rom" | "mmio";

export interface Region {
  /** Index in the region table; 0 is reserved for "nothing here". */
  readonly id: number;
  readonly name: string;
  readonly kind: RegionKind;
  readonly base: number;
  readonly size: number;
  /** Backing bytes of RAM and ROM regions (a view of a SharedArrayBuffer for RAM). */
  readonly bytes: Uint8Array | undefined;
  /** Byte offset of `base` within `bytes` (non-zero for aliases such as the low BIOS window). */
  readonly bytesOffset: number;
  readonly device: MmioDevice | undefined;
}

export interface RamRegion extends Region {
  readonly kind: "ram";
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
}

/** Called when a write hits a page flagged CODE: (physical address, width). */
export type CodeWriteListener = (address: number, width: number) => void;
/** Called when pages stop being write-fast; `page` is -1 for "possibly all pages". */
export type WriteProtectListener = (page: number) => void;
/**
 * Called when the routing of pages [firstPage, endPage) changed (a region added or removed,
 * shadowing): what reads and writes there reach, and so any code decoded from there, may differ.
 */
export type MapChangeListener = (firstPage: number, endPage: number) => void;

const HOLE = 0;
const ALL_ONES: Record<Width, number> = { 1: 0xff, 2: 0xffff, 4: 0xffffffff };

export class PhysicalMemory {
  /** Region table; index 0 is the hole. */
  readonly regions: (Region | undefined)[] = [undefined];
  /** Region id serving reads, per 4 KiB page of the low 4 GiB. */
  readonly pageReadRegion = new Uint16Array(LOW_PAGES);
  /** Region id serving writes, per 4 KiB page of the low 4 GiB. */
  readonly pageWriteRegion = new Uint16Array(LOW_PAGES);
  /** PAGE_DIRTY | PAGE_CODE, per 4 KiB page of the low 4 GiB. */
  readonly pageFlags = new Uint8Array(LOW_PAGES);
  /** The RAM region at physical address 0, which the CPU accesses directly. */
  mainRam: RamRegion | undefined;

  private dirtyLogging = false;
  private codeWriteListener: CodeWriteListener | undefined;
  private readonly protectListeners: WriteProtectListener[] = [];
  private readonly mapListeners: MapChangeListener[] = [];

  // ---- building the map -------------------------------------------------------------------

  /** Adds RAM backed by its own SharedArrayBuffer. `base` and `size` must be page-aligned. */
  addRam(name: string, base: number, size: number): RamRegion {
    checkPageAligned(name, base, size);
    const buffer = new SharedArrayBuffer(size);
    const region = this.addRegion(
      { name, kind: "ram", base, size, bytes: new Uint8Array(buffer), bytesOffset: 0, device: undefined },
      { buffer },
    ) as RamRegion;
    return region;
  }

  /**
   * Maps existing host bytes as RAM at `base` (a device's memory the CPU should reach at memory
   * speed, such as a VGA framebuffer BAR). The device keeps using the same bytes.
   */
  addRamBacked(name: string, base: number, bytes: Uint8Array): Region {
    checkPageAligned(name, base, bytes.length);
    return this.addRegion({
      name,
      kind: "ram",
      base,
      size: bytes.length,
      bytes,
      bytesOffset: 0,
      device: undefined,
    });
  }

  /**
   * Adds read-only memory holding a copy of `data`, padded with 0xff to whole pages. Writes are
   * discarded. `alias` maps the same bytes a second time (the PC maps the BIOS's top 128 KiB just
   * below 1 MiB as well as at the top of 4 GiB).
   */
  addRom(name: string, base: number, data: Uint8Array): Region {
    const size = Math.ceil(data.length / PAGE_SIZE) * PAGE_SIZE;
    checkPageAligned(name, base, size);
    const bytes = new Uint8Array(size).fill(0xff);
    bytes.set(data);
    return this.addRegion({ name, kind: "rom", base, size, bytes, bytesOffset: 0, device: undefined });
  }

  /** Maps `size` bytes of an existing RAM or ROM region, starting `offset` into it, at `base`. */
  addAlias(name: string, base: number, of: Region, offset: number, size: number): Region {
    checkPageAligned(name, base, size);
    if (!of.bytes || offset < 0 || offset + size > of.size)
      throw new RangeError(`alias ${name} does not fit in ${of.name}`);
    return this.addRegion({
      name,
      kind: of.kind,
      base,
      size,
      bytes: of.bytes,
      bytesOffset: of.bytesOffset + offset,
      device: undefined,
    });
  }

  /** Adds a memory-mapped device. Accesses inside the region reach `device` with offsets. */
  addMmio(name: string, base: number, size: number, device: MmioDevice): Region {
    const pageBase = base - (base & PAGE_MASK);
    checkPageAligned(name, pageBase, PAGE_SIZE);
    return this.addRegion({ name, kind: "mmio", base, size, bytes: undefined, bytesOffset: 0, device });
  }

  /** Removes a region (e.g. when a PCI BAR is moved). Its pages become holes. */
  removeRegion(region: Region): void {
    if (this.regions[region.id] !== region) throw new Error(`region ${region.name} is not mapped`);
    this.regions[region.id] = undefined;
    for (let p = 0; p < LOW_PAGES; p++) {
      if (this.pageReadRegion[p] !== region.id && this.pageWriteRegion[p] !== region.id) continue;
      // RAM that the region was laid over shows through again.
      const under = this.ramUnder(p * PAGE_SIZE);
      if (this.pageReadRegion[p] === region.id) this.pageReadRegion[p] = under;
      if (this.pageWriteRegion[p] === region.id) this.pageWriteRegion[p] = under;
    }
    if (region === this.mainRam) this.mainRam = undefined;
    this.notifyMapChange(region.base, region.size);
  }

  /**
   * Routes reads and/or writes of the pages in [base, base + size) to `read` / `write`
   * (`null` makes them a hole, `undefined` leaves them as they are). This is how chipset
   * shadow-RAM control works: e.g. reads from ROM with writes going to the RAM underneath.
   */
  route(base: number, size: number, read: Region | null | undefined, write: Region | null | undefined): void {
    checkPageAligned("route", base, size);
    const first = base >>> PAGE_SHIFT;
    const last = first + (size >>> PAGE_SHIFT);
    for (const r of [read, write]) {
      if (r && (base < r.base || base + size > r.base + Math.max(r.size, PAGE_SIZE))) {
        throw new RangeError(`cannot route ${hexAddr(base)}+${size} to ${r.name}: outside the region`);
      }
    }
    if (read !== undefined) this.pageReadRegion.fill(read ? read.id : HOLE, first, last);
    if (write !== undefined) this.pageWriteRegion.fill(write ? write.id : HOLE, first, last);
    this.notifyMapChange(base, size);
  }

  /** The region serving reads at `address`, if any. */
  regionAt(address: number): Region | undefined {
    if (address < FOUR_GIB) return this.regions[this.pageReadRegion[address >>> PAGE_SHIFT]!];
    return this.highRegion(address);
  }

  private addRegion(spec: Omit<Region, "id">, extra: object = {}): Region {
    if (spec.base + spec.size > FOUR_GIB && spec.base < FOUR_GIB) {
      throw new RangeError(`region ${spec.name} straddles the 4 GiB boundary`);
    }
    for (const other of this.regions) {
      if (
        other &&
        spec.base < other.base + other.size &&
        other.base < spec.base + spec.size &&
        other.kind !== "ram" &&
        spec.kind !== "ram"
      ) {
        throw new Error(`region ${spec.name} at ${hexAddr(spec.base)} overlaps ${other.name}`);
      }
    }
    let id = this.regions.indexOf(undefined, 1);
    if (id < 0) id = this.regions.length;
    if (id > 0xffff) throw new Error("too many memory regions");
    const region = { ...spec, ...extra, id } as Region;
    this.regions[id] = region;
    if (spec.base < FOUR_GIB) {
      // Device and ROM regions are laid over RAM (the VGA window, the BIOS): they win.
      const first = spec.base >>> PAGE_SHIFT;
      const last = Math.ceil((spec.base + spec.size) / PAGE_SIZE);
      for (let p = first; p < last; p++) {
        const current = this.regions[this.pageReadRegion[p]!];
        if (!current || current.kind === "ram" || spec.kind !== "ram") {
          this.pageReadRegion[p] = id;
          this.pageWriteRegion[p] = id;
        }
      }
    }
    // Main RAM is known before the map's listeners hear of it, so that they see the new RAM.
    if (spec.kind === "ram" && spec.base === 0) this.mainRam = region as RamRegion;
    this.notifyMapChange(spec.base, spec.size);
    return region;
  }

  private ramUnder(address: number): number {
    for (const r of this.regions)
      if (r && r.kind === "ram" && address >= r.base && address < r.base + r.size) return r.id;
    return HOLE;
  }

  private highRegion(address: number): Region | undefined {
    for (const r of this.regions)
      if (r && r.base >= FOUR_GIB && address >= r.base && address < r.base + r.size) return r;
    return undefined;
  }

  // ---- access -----------------------------------------------------------------------------

  read8(address: number): number {
    return this.read(address, 1);
  }
  read16(address: number): number {
    return this.read(address, 2);
  }
  read32(address: number): number {
    return this.read(address, 4);
  }
  write8(address: number, value: number): void {
    this.write(address, 1, value & 0xff);
  }
  write16(address: number, value: number): void {
    this.write(address, 2, value & 0xffff);
  }
  write32(address: number, value: number): void {
    this.write(address, 4, value >>> 0);
  }

  /** Reads `width` bytes, little-endian. Accesses that cross a page are split into bytes. */
  read(address: number, width: Width): number {
    if ((address & PAGE_MASK) + width > PAGE_SIZE) {
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + this.read(address + i, 1);
      return value;
    }
    const region =
      address < FOUR_GIB
        ? this.regions[this.pageReadRegion[address >>> PAGE_SHIFT]!]
        : this.highRegion(address);
    if (!region) return ALL_ONES[width];
    const offset = address - region.base;
    if (region.bytes) {
      const b = region.bytes;
      const i = region.bytesOffset + offset;
      if (width === 1) return b[i]!;
      if (width === 2) return b[i]! | (b[i + 1]! << 8);
      return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
    }
    if (offset < 0 || offset + width > region.size) return ALL_ONES[width];
    const v = region.device!.mmioRead(offset, width);
    return width === 4 ? v >>> 0 : v & ALL_ONES[width];
  }

  /** Writes `width` bytes, little-endian. Writes to ROM and holes are discarded. */
  write(address: number, width: Width, value: number): void {
    if ((address & PAGE_MASK) + width > PAGE_SIZE) {
      for (let i = 0; i < width; i++) this.write(address + i, 1, (value >>> (8 * i)) & 0xff);
      return;
    }
    const region =
      address < FOUR_GIB
        ? this.regions[this.pageWriteRegion[address >>> PAGE_SHIFT]!]
        : this.highRegion(address);
    if (!region || region.kind === "rom") return;
    const offset = address - region.base;
    if (region.kind === "ram") {
      if (address < FOUR_GIB) this.noteRamWrite(address, width);
      const b = region.bytes!;
      const i = region.bytesOffset + offset;
      b[i] = value;
      if (width >= 2) b[i + 1] = value >>> 8;
      if (width === 4) {
        b[i + 2] = value >>> 16;
        b[i + 3] = value >>> 24;
      }
      return;
    }
    if (offset >= 0 && offset + width <= region.size) region.device!.mmioWrite(offset, width, value);
  }

  /** Copies guest memory into a new array (for loaders, DMA and the monitor). */
  readBytes(address: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const a = address + done;
      const chunk = Math.min(length - done, PAGE_SIZE - (a & PAGE_MASK));
      const region = a < FOUR_GIB ? this.regions[this.pageReadRegion[a >>> PAGE_SHIFT]!] : this.highRegion(a);
      if (region?.bytes) {
        const i = region.bytesOffset + a - region.base;
        out.set(region.bytes.subarray(i, i + chunk), done);
      } else {
        for (let k = 0; k < chunk; k++) out[done + k] = this.read(a + k, 1);
      }
      done += chunk;
    }
    return out;
  }

  /** Copies `data` into guest memory (for loaders and DMA), honouring ROM, MMIO and page flags. */
  writeBytes(address: number, data: Uint8Array): void {
    let done = 0;
    while (done < data.length) {
      const a = address + done;
      const chunk = Math.min(data.length - done, PAGE_SIZE - (a & PAGE_MASK));
      const region =
        a < FOUR_GIB ? this.regions[this.pageWriteRegion[a >>> PAGE_SHIFT]!] : this.highRegion(a);
      if (region?.kind === "ram") {
        if (a < FOUR_GIB) this.noteRamWrite(a, chunk);
        region.bytes!.set(data.subarray(done, done + chunk), region.bytesOffset + a - region.base);
      } else if (region?.kind === "mmio") {
        for (let k = 0; k < chunk; k++) this.write(a + k, 1, data[done + k]!);
      }
      done += chunk;
    }
  }

  // ---- page flags -------------------------------------------------------------------------

  /**
   * True if the CPU may write RAM page `page` directly, bypassing this class: it is RAM for
   * writes, holds no translated code, and dirty logging (if on) has already marked it.
   */
  isWriteFast(page: number): boolean {
    const region = this.regions[this.pageWriteRegion[page]!];
    if (region?.kind !== "ram") return false;
    const flags = this.pageFlags[page]!;
    if (flags & PAGE_CODE) return false;
    return !this.dirtyLogging || (flags & PAGE_DIRTY) !== 0;
  }

  /** Records a write the CPU made to RAM (its slow write path calls this before writing). */
  noteRamWrite(address: number, width: number): void {
    const first = address >>> PAGE_SHIFT;
    const last = (address + width - 1) >>> PAGE_SHIFT;
    for (let page = first; page <= last; page++) {
      const flags = this.pageFlags[page]!;
      if (flags & PAGE_CODE && this.codeWriteListener) this.codeWriteListener(address, width);
      if (this.dirtyLogging) this.pageFlags[page] = this.pageFlags[page]! | PAGE_DIRTY;
    }
  }

  /** The translator marks pages it compiled from; writes to them are then reported. */
  setCodeListener(listener: CodeWriteListener | undefined): void {
    this.codeWriteListener = listener;
  }

  markCode(page: number): void {
    if (this.pageFlags[page]! & PAGE_CODE) return;
    this.pageFlags[page] = this.pageFlags[page]! | PAGE_CODE;
    this.notifyProtect(page);
  }

  clearCode(page: number): void {
    this.pageFlags[page] = this.pageFlags[page]! & ~PAGE_CODE;
  }

  /** Subscribes to "these pages are no longer write-fast" (a TLB drops its fast write entries). */
  onWriteProtect(listener: WriteProtectListener): () => void {
    this.protectListeners.push(listener);
    return () => {
      const i = this.protectListeners.indexOf(listener);
      if (i >= 0) this.protectListeners.splice(i, 1);
    };
  }

  /** Subscribes to routing changes (a CPU drops its TLB and the code decoded from those pages). */
  onMapChange(listener: MapChangeListener): () => void {
    this.mapListeners.push(listener);
    return () => {
      const i = this.mapListeners.indexOf(listener);
      if (i >= 0) this.mapListeners.splice(i, 1);
    };
  }

  /** Starts or stops dirty logging. Starting clears every DIRTY flag. */
  setDirtyLogging(on: boolean): void {
    if (on) this.clearDirty();
    this.dirtyLogging = on;
    this.notifyProtect(-1);
  }

  get dirtyLoggingEnabled(): boolean {
    return this.dirtyLogging;
  }

  /** Returns the page numbers written since the last harvest and clears their DIRTY flags. */
  harvestDirty(): Uint32Array {
    const pages: number[] = [];
    const flags = this.pageFlags;
    for (let p = 0; p < LOW_PAGES; p++) {
      if (flags[p]! & PAGE_DIRTY) {
        pages.push(p);
        flags[p] = flags[p]! & ~PAGE_DIRTY;
      }
    }
    if (pages.length > 0) this.notifyProtect(-1);
    return Uint32Array.from(pages);
  }

  private clearDirty(): void {
    for (let p = 0; p < LOW_PAGES; p++) this.pageFlags[p] = this.pageFlags[p]! & ~PAGE_DIRTY;
  }

  private notifyProtect(page: number): void {
    for (const l of this.protectListeners) l(page);
  }

  private notifyMapChange(base: number, size: number): void {
    const first = Math.floor(base / PAGE_SIZE);
    const end = Math.ceil((base + Math.max(size, 1)) / PAGE_SIZE);
    for (const l of this.mapListeners) l(first, end);
  }
}

function checkPageAligned(name: string, base: number, size: number): void {
  if (base % PAGE_SIZE !== 0 || size % PAGE_SIZE !== 0 || size <= 0 || base < 0) {
    throw new RangeError(`region ${name} at ${hexAddr(base)} size ${size} must be whole 4 KiB pages`);
  }
}

function hexAddr(n: number): string {
  return `0x${n.toString(16).padStart(8, "0")}`;
}
