// QEMU's firmware configuration device (fw_cfg), the channel through which SeaBIOS learns the
// machine's shape (RAM size, CPUs, the e820 map, boot order, ACPI tables, a -kernel payload).
//
// Items are numbered blobs; files (items 0x20 and up) are also listed by name in the directory
// item 0x19. The guest selects an item with a 16-bit write to the selector (offset 0), then
// either reads it a byte at a time from the data port (offset 1) or has the DMA engine copy it:
// the guest writes the guest-physical address of a control structure to the 64-bit big-endian
// DMA address register (offsets 4-11; writing the low half at offset 8 starts the transfer).
//
// As on QEMU's x86 boards: selector 0x510, data 0x511, DMA 0x514.

import type { PortDevice, Width } from "../core/bus.ts";
import { field, type Persistent, StateError } from "../core/persist.ts";

export const FW_CFG_SIGNATURE = 0x00;
export const FW_CFG_ID = 0x01;
export const FW_CFG_UUID = 0x02;
export const FW_CFG_RAM_SIZE = 0x03;
export const FW_CFG_NOGRAPHIC = 0x04;
export const FW_CFG_NB_CPUS = 0x05;
export const FW_CFG_MACHINE_ID = 0x06;
export const FW_CFG_KERNEL_ADDR = 0x07;
export const FW_CFG_KERNEL_SIZE = 0x08;
export const FW_CFG_KERNEL_CMDLINE = 0x09;
export const FW_CFG_INITRD_ADDR = 0x0a;
export const FW_CFG_INITRD_SIZE = 0x0b;
export const FW_CFG_BOOT_DEVICE = 0x0c;
export const FW_CFG_NUMA = 0x0d;
export const FW_CFG_BOOT_MENU = 0x0e;
export const FW_CFG_MAX_CPUS = 0x0f;
export const FW_CFG_KERNEL_ENTRY = 0x10;
export const FW_CFG_KERNEL_DATA = 0x11;
export const FW_CFG_INITRD_DATA = 0x12;
export const FW_CFG_CMDLINE_ADDR = 0x13;
export const FW_CFG_CMDLINE_SIZE = 0x14;
export const FW_CFG_CMDLINE_DATA = 0x15;
export const FW_CFG_SETUP_ADDR = 0x16;
export const FW_CFG_SETUP_SIZE = 0x17;
export const FW_CFG_SETUP_DATA = 0x18;
export const FW_CFG_FILE_DIR = 0x19;
/** First item number given to files. */
export const FW_CFG_FILE_FIRST = 0x20;
/** Selector bit 14: the (obsolete) write channel; ignored for selection. */
const FW_CFG_WRITE_CHANNEL = 0x4000;
/** x86-specific items (ARCH_LOCAL | n). */
export const FW_CFG_IRQ0_OVERRIDE = 0x8002;
export const FW_CFG_E820_TABLE = 0x8003;

/** ID bit 0: the traditional port interface. */
const FW_CFG_VERSION = 0x01;
/** ID bit 1: the DMA interface. */
const FW_CFG_VERSION_DMA = 0x02;

/** DMA control bit 0: the transfer failed (set by the device). */
export const FW_CFG_DMA_ERROR = 0x01;
/** DMA control bit 1: copy from the item into guest memory. */
export const FW_CFG_DMA_READ = 0x02;
/** DMA control bit 2: advance the item offset without copying. */
export const FW_CFG_DMA_SKIP = 0x04;
/** DMA control bit 3: select the item in bits 31:16 first. */
export const FW_CFG_DMA_SELECT = 0x08;
/** DMA control bit 4: copy from guest memory into the item (writable items only). */
export const FW_CFG_DMA_WRITE = 0x10;

/** Reading the DMA register returns "QEMU CFG", big-endian. */
const DMA_SIGNATURE = new TextEncoder().encode("QEMU CFG");
/** Bytes of a directory entry: size (4), select (2), reserved (2), name (56). */
const FILE_ENTRY_SIZE = 64;
const FILE_NAME_MAX = 55;
/** Largest zero-filled tail of a DMA read past an item's end. */
const MAX_ZERO_FILL = 16 << 20;

/** Guest memory as the DMA engine needs it (PhysicalMemory satisfies this). */
export interface DmaMemory {
  readBytes(address: number, length: number): Uint8Array;
  writeBytes(address: number, data: Uint8Array): void;
}

/** One e820 entry for `etc/e820`. */
export interface E820Entry {
  readonly address: number;
  readonly length: number;
  /** 1 RAM, 2 reserved, 3 ACPI, 4 NVS. */
  readonly type: number;
}

export interface FwCfgOptions {
  readonly ramSize: number;
  readonly cpus?: number;
  readonly maxCpus?: number;
  readonly bootMenu?: boolean;
  readonly nographic?: boolean;
}

export interface FwCfgState {
  readonly selector: number;
  readonly offset: number;
  readonly dmaAddressHigh: number;
  readonly dmaAddressLow: number;
  /** Contents of writable items, by key. */
  readonly writable: Record<string, Uint8Array>;
}

interface Item {
  data: Uint8Array;
  writable: boolean;
  /** Called after the guest wrote into the item. */
  onWrite: ((data: Uint8Array) => void) | undefined;
}

export class FwCfg implements PortDevice, Persistent<FwCfgState> {
  readonly stateVersion = 1;
  private readonly memory: DmaMemory;
  private readonly items = new Map<number, Item>();
  private readonly files: { name: string; key: number }[] = [];
  private selector = 0;
  private offset = 0;
  private dmaAddressHigh = 0;
  private dmaAddressLow = 0;

  constructor(memory: DmaMemory, options: FwCfgOptions) {
    this.memory = memory;
    this.setItem(FW_CFG_SIGNATURE, new TextEncoder().encode("QEMU"));
    this.setItem(FW_CFG_ID, le32(FW_CFG_VERSION | FW_CFG_VERSION_DMA));
    this.setItem(FW_CFG_UUID, new Uint8Array(16));
    this.setItem(FW_CFG_RAM_SIZE, le64(options.ramSize));
    this.setItem(FW_CFG_NOGRAPHIC, le16(options.nographic ? 1 : 0));
    this.setItem(FW_CFG_NB_CPUS, le16(options.cpus ?? 1));
    this.setItem(FW_CFG_MAX_CPUS, le16(options.maxCpus ?? options.cpus ?? 1));
    this.setItem(FW_CFG_MACHINE_ID, le32(0));
    this.setItem(FW_CFG_BOOT_MENU, le16(options.bootMenu ? 1 : 0));
    // NUMA: a node count of zero, then nothing.
    this.setItem(FW_CFG_NUMA, le64(0));
    this.setItem(FW_CFG_IRQ0_OVERRIDE, le32(1));
    this.updateDirectory();
  }

  // ---- builder API ------------------------------------------------------------------------

  /** Sets (or replaces) a numbered item. */
  setItem(key: number, data: Uint8Array, writable = false, onWrite?: (data: Uint8Array) => void): void {
    if (!Number.isInteger(key) || key < 0 || key > 0xffff || key === FW_CFG_FILE_DIR) {
      throw new RangeError(`fw_cfg item 0x${key.toString(16)} cannot be set`);
    }
    this.items.set(key & ~FW_CFG_WRITE_CHANNEL, { data, writable, onWrite });
    if (this.files.some((f) => f.key === key)) this.updateDirectory();
  }

  /** Adds (or replaces) a named file; returns its item number. */
  addFile(name: string, data: Uint8Array, writable = false, onWrite?: (data: Uint8Array) => void): number {
    if (name.length === 0 || name.length > FILE_NAME_MAX || /[^\x20-\x7e]/.test(name)) {
      throw new RangeError(
        `fw_cfg file name '${name}' must be 1-${FILE_NAME_MAX} printable ASCII characters`,
      );
    }
    let entry = this.files.find((f) => f.name === name);
    if (!entry) {
      entry = { name, key: FW_CFG_FILE_FIRST + this.files.length };
      if (entry.key >= FW_CFG_WRITE_CHANNEL) throw new RangeError("too many fw_cfg files");
      this.files.push(entry);
    }
    this.items.set(entry.key, { data, writable, onWrite });
    this.updateDirectory();
    return entry.key;
  }

  /** The current contents of a file (including what the guest wrote), or undefined. */
  file(name: string): Uint8Array | undefined {
    const entry = this.files.find((f) => f.name === name);
    return entry ? this.items.get(entry.key)?.data : undefined;
  }

  item(key: number): Uint8Array | undefined {
    return this.items.get(key)?.data;
  }

  /** `etc/e820`: the memory map SeaBIOS reports to the OS. */
  setE820(entries: readonly E820Entry[]): void {
    const out = new Uint8Array(entries.length * 20);
    entries.forEach((e, i) => {
      out.set(le64(e.address), i * 20);
      out.set(le64(e.length), i * 20 + 8);
      out.set(le32(e.type), i * 20 + 16);
    });
    this.addFile("etc/e820", out);
  }

  /**
   * `bootorder`: OpenFirmware device paths separated by newlines, first to try first, NUL
   * terminated as QEMU writes it (a trailing newline would read as an empty last entry).
   */
  setBootOrder(paths: readonly string[]): void {
    this.addFile("bootorder", new TextEncoder().encode(`${paths.join("\n")}\0`));
  }

  /** `etc/boot-fail-wait`: seconds to wait before rebooting when nothing booted. */
  setBootFailWait(seconds: number): void {
    this.addFile("etc/boot-fail-wait", le32(seconds));
  }

  /**
   * The items QEMU's -kernel sets for its linuxboot option ROM: the real-mode setup part, the
   * protected-mode kernel, optional initrd and the command line (NUL-terminated here), each with
   * the address the loader chose for it.
   */
  setLinuxBoot(boot: {
    readonly setupAddress: number;
    readonly setup: Uint8Array;
    readonly kernelAddress: number;
    readonly kernel: Uint8Array;
    readonly cmdlineAddress: number;
    readonly cmdline: string;
    readonly initrdAddress?: number;
    readonly initrd?: Uint8Array;
  }): void {
    const cmdline = new TextEncoder().encode(`${boot.cmdline}\0`);
    this.setItem(FW_CFG_SETUP_ADDR, le32(boot.setupAddress));
    this.setItem(FW_CFG_SETUP_SIZE, le32(boot.setup.length));
    this.setItem(FW_CFG_SETUP_DATA, boot.setup);
    this.setItem(FW_CFG_KERNEL_ADDR, le32(boot.kernelAddress));
    this.setItem(FW_CFG_KERNEL_SIZE, le32(boot.kernel.length));
    this.setItem(FW_CFG_KERNEL_DATA, boot.kernel);
    this.setItem(FW_CFG_CMDLINE_ADDR, le32(boot.cmdlineAddress));
    this.setItem(FW_CFG_CMDLINE_SIZE, le32(cmdline.length));
    this.setItem(FW_CFG_CMDLINE_DATA, cmdline);
    this.setItem(FW_CFG_KERNEL_CMDLINE, le32(boot.cmdlineAddress));
    const initrd = boot.initrd ?? new Uint8Array(0);
    this.setItem(FW_CFG_INITRD_ADDR, le32(boot.initrd ? (boot.initrdAddress ?? 0) : 0));
    this.setItem(FW_CFG_INITRD_SIZE, le32(initrd.length));
    this.setItem(FW_CFG_INITRD_DATA, initrd);
  }

  /** System reset: the selection and the DMA address register go back to zero; items stay. */
  reset(): void {
    this.selector = 0;
    this.offset = 0;
    this.dmaAddressHigh = 0;
    this.dmaAddressLow = 0;
  }

  // ---- ports ------------------------------------------------------------------------------

  ioRead(offset: number, width: Width): number {
    if (offset === 1 && width === 1) return this.readDataByte();
    if (offset >= 4 && offset + width <= 12) {
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + DMA_SIGNATURE[offset - 4 + i]!;
      return value;
    }
    return 0;
  }

  ioWrite(offset: number, width: Width, value: number): void {
    if (offset === 0 && width === 2) {
      this.select(value);
      return;
    }
    if (offset === 4 && width === 4) {
      this.dmaAddressHigh = bswap32(value);
    } else if (offset === 8 && width === 4) {
      this.dmaAddressLow = bswap32(value);
      this.runDma(this.dmaAddressHigh * 0x1_0000_0000 + this.dmaAddressLow);
      this.dmaAddressHigh = 0;
    }
  }

  // ---- persistence ------------------------------------------------------------------------

  saveState(): FwCfgState {
    const writable: Record<string, Uint8Array> = {};
    for (const [key, item] of this.items) if (item.writable) writable[key] = item.data.slice();
    return {
      selector: this.selector,
      offset: this.offset,
      dmaAddressHigh: this.dmaAddressHigh,
      dmaAddressLow: this.dmaAddressLow,
      writable,
    };
  }

  loadState(state: FwCfgState, _version: number): void {
    if (typeof state !== "object" || state === null) throw new StateError("fw_cfg: state is not an object");
    const s = state as unknown as Record<string, unknown>;
    this.selector = field(s, "selector", "number") & 0xffff;
    this.offset = Math.max(0, Math.trunc(field(s, "offset", "number")));
    this.dmaAddressHigh = field(s, "dmaAddressHigh", "number") >>> 0;
    this.dmaAddressLow = field(s, "dmaAddressLow", "number") >>> 0;
    for (const [key, data] of Object.entries(state.writable ?? {})) {
      const item = this.items.get(Number(key));
      if (!item?.writable) continue;
      if (!(data instanceof Uint8Array)) throw new StateError(`fw_cfg item ${key}: contents must be bytes`);
      item.data = data.slice();
    }
  }

  // ---- internals --------------------------------------------------------------------------

  private select(value: number): void {
    this.selector = value & 0xffff & ~FW_CFG_WRITE_CHANNEL;
    this.offset = 0;
  }

  private readDataByte(): number {
    const data = this.items.get(this.selector)?.data;
    if (!data || this.offset >= data.length) return 0;
    return data[this.offset++]!;
  }

  /** Runs the DMA request whose control structure is at `address`. */
  private runDma(address: number): void {
    const header = this.memory.readBytes(address, 16);
    const view = new DataView(header.buffer, header.byteOffset, 16);
    const control = view.getUint32(0);
    const length = view.getUint32(4);
    const target = view.getUint32(8) * 0x1_0000_0000 + view.getUint32(12);
    if (control & FW_CFG_DMA_SELECT) this.select(control >>> 16);
    const item = this.items.get(this.selector);
    let error = false;
    if (control & FW_CFG_DMA_READ) {
      let done = 0;
      if (item) {
        const part = item.data.subarray(this.offset, this.offset + length);
        this.memory.writeBytes(target, part);
        this.offset += part.length;
        done = part.length;
      }
      // Past the item's end the guest gets zeros, as QEMU does; absurd lengths fail instead.
      if (length - done > MAX_ZERO_FILL) error = true;
      else if (length > done) this.memory.writeBytes(target + done, new Uint8Array(length - done));
    } else if (control & FW_CFG_DMA_WRITE) {
      if (!item?.writable || this.offset + length > item.data.length) {
        error = true;
      } else {
        item.data.set(this.memory.readBytes(target, length), this.offset);
        this.offset += length;
        item.onWrite?.(item.data);
      }
    } else if (control & FW_CFG_DMA_SKIP) {
      this.offset += length;
    }
    const done = new Uint8Array(4);
    new DataView(done.buffer).setUint32(0, error ? FW_CFG_DMA_ERROR : 0);
    this.memory.writeBytes(address, done);
  }

  private updateDirectory(): void {
    const dir = new Uint8Array(4 + this.files.length * FILE_ENTRY_SIZE);
    const view = new DataView(dir.buffer);
    view.setUint32(0, this.files.length);
    this.files.forEach((f, i) => {
      const at = 4 + i * FILE_ENTRY_SIZE;
      view.setUint32(at, this.items.get(f.key)?.data.length ?? 0);
      view.setUint16(at + 4, f.key);
      dir.set(new TextEncoder().encode(f.name), at + 8);
    });
    this.items.set(FW_CFG_FILE_DIR, { data: dir, writable: false, onWrite: undefined });
  }
}

function bswap32(v: number): number {
  return (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
}

export function le16(v: number): Uint8Array {
  return new Uint8Array([v & 0xff, (v >>> 8) & 0xff]);
}

export function le32(v: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, v >>> 0, true);
  return out;
}

export function le64(v: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(Math.trunc(v)), true);
  return out;
}
