// The PIIX3 IDE function (8086:7010, mass storage / IDE, programming interface 80h: both
// channels in compatibility mode, bus-master capable) with its bus-master DMA engine.
//
// In compatibility mode the channels sit at the legacy addresses (0x1F0-0x1F7/0x3F6 on IRQ 14,
// 0x170-0x177/0x376 on IRQ 15) whatever the BARs say, so the builder maps each channel's
// `commandBlock` and `controlBlock` itself. BAR4 is the 16-byte bus-master block: per channel
// (at 0 and 8) the command register, the status register and the PRD table address.

import type { PortDevice, Width } from "../../core/bus.ts";
import type { IrqLine } from "../../core/irq.ts";
import { type Persistent, StateError } from "../../core/persist.ts";
import { PciFunction, type PciFunctionState } from "../pci/function.ts";
import { type DmaPort, IdeChannel, type IdeChannelState } from "./channel.ts";
import type { IdeDrive } from "./drive.ts";

export const PIIX3_IDE_VENDOR_ID = 0x8086;
export const PIIX3_IDE_DEVICE_ID = 0x7010;
/** Class 01h (mass storage), subclass 01h (IDE), interface 80h (bus master, legacy channels). */
export const PIIX3_IDE_CLASS = 0x010180;
export const BUS_MASTER_PORTS = 16;
/** PCI config: IDE timing registers, primary (0x40) and secondary (0x42); bit 15 enables decode. */
export const PIIX_IDETIM = 0x40;
/** PCI config: slave IDE timing. */
export const PIIX_SIDETIM = 0x44;

/** Bus-master command: start/stop. */
export const BM_COMMAND_START = 0x01;
/** Bus-master command: direction, 1 = the engine writes memory (a device-to-host read). */
export const BM_COMMAND_WRITE = 0x08;
/** Bus-master status: active. */
export const BM_STATUS_ACTIVE = 0x01;
/** Bus-master status: error (write 1 to clear). */
export const BM_STATUS_ERROR = 0x02;
/** Bus-master status: the channel's interrupt fired (write 1 to clear). */
export const BM_STATUS_INTERRUPT = 0x04;
/** Bus-master status: drive 0 / drive 1 DMA capable (set by the BIOS). */
export const BM_STATUS_DRIVE_CAPABLE = 0x60;
/** PRD entry: end of table. */
const PRD_END_OF_TABLE = 0x8000_0000;

/** Guest memory as the DMA engine reaches it (PhysicalMemory satisfies this). */
export interface DmaMemory {
  readBytes(address: number, length: number): Uint8Array;
  writeBytes(address: number, data: Uint8Array): void;
}

export interface BusMasterState {
  command: number;
  status: number;
  prdTable: number;
  nextEntry: number;
  address: number;
  left: number;
  lastEntry: boolean;
}

/** One channel's bus-master engine: walks the PRD table and moves the drive's data. */
export class BusMaster implements DmaPort, Persistent<BusMasterState> {
  readonly stateVersion = 1;
  command = 0;
  status = 0;
  /** PRD table address (dword aligned). */
  prdTable = 0;
  // Where the walk is: the next PRD entry, the current region's address and bytes left in it.
  private nextEntry = 0;
  private address = 0;
  private left = 0;
  private lastEntry = false;
  private readonly channel: IdeChannel;
  private readonly memory: DmaMemory;
  private readonly mastering: () => boolean;

  constructor(channel: IdeChannel, memory: DmaMemory, mastering: () => boolean = () => true) {
    this.channel = channel;
    this.memory = memory;
    this.mastering = mastering;
    channel.dma = this;
    channel.onInterrupt = () => {
      this.status |= BM_STATUS_INTERRUPT;
    };
  }

  get active(): boolean {
    return (this.status & BM_STATUS_ACTIVE) !== 0 && this.mastering();
  }

  readByte(offset: number): number {
    switch (offset) {
      case 0:
        return this.command;
      case 2:
        return this.status;
      case 4:
      case 5:
      case 6:
      case 7:
        return (this.prdTable >>> (8 * (offset - 4))) & 0xff;
      default:
        return 0;
    }
  }

  writeByte(offset: number, value: number): void {
    switch (offset) {
      case 0:
        this.writeCommand(value);
        return;
      case 2:
        this.status =
          (this.status & BM_STATUS_ACTIVE) |
          (value & BM_STATUS_DRIVE_CAPABLE) |
          (this.status & (BM_STATUS_ERROR | BM_STATUS_INTERRUPT) & ~value);
        return;
      case 4:
      case 5:
      case 6:
      case 7: {
        const shift = 8 * (offset - 4);
        this.prdTable = ((this.prdTable & ~(0xff << shift)) | (value << shift)) & ~3;
        this.prdTable >>>= 0;
        return;
      }
    }
  }

  private writeCommand(value: number): void {
    const wasStarted = (this.command & BM_COMMAND_START) !== 0;
    this.command = value & (BM_COMMAND_START | BM_COMMAND_WRITE);
    if (!wasStarted && value & BM_COMMAND_START) {
      this.nextEntry = this.prdTable;
      this.left = 0;
      this.lastEntry = false;
      this.status |= BM_STATUS_ACTIVE;
      this.channel.dmaStarted();
    } else if (wasStarted && !(value & BM_COMMAND_START)) {
      // Stopping the engine abandons whatever is left of the transfer.
      this.status &= ~BM_STATUS_ACTIVE;
    }
  }

  transfer(buffer: Uint8Array, toMemory: boolean): number {
    // A stopped engine moves nothing: the guest abandoned the transfer.
    if (!(this.status & BM_STATUS_ACTIVE)) return 0;
    let done = 0;
    while (done < buffer.length) {
      if (this.left === 0) {
        if (this.lastEntry || !this.mastering()) {
          this.status &= ~BM_STATUS_ACTIVE;
          return done;
        }
        const entry = this.memory.readBytes(this.nextEntry, 8);
        const view = new DataView(entry.buffer, entry.byteOffset, 8);
        this.address = view.getUint32(0, true) & ~1;
        const control = view.getUint32(4, true);
        // Byte count in bits 15-1 (bit 0 is always 0); 0 means 64 KiB.
        this.left = control & 0xfffe || 0x10000;
        this.lastEntry = (control & PRD_END_OF_TABLE) !== 0;
        this.nextEntry = (this.nextEntry + 8) >>> 0;
      }
      const n = Math.min(this.left, buffer.length - done);
      if (toMemory) this.memory.writeBytes(this.address, buffer.subarray(done, done + n));
      else buffer.set(this.memory.readBytes(this.address, n), done);
      this.address = (this.address + n) >>> 0;
      this.left -= n;
      done += n;
    }
    return done;
  }

  complete(): void {
    // With the table used up exactly the engine goes idle; with entries left it stays active
    // (the driver sees "active and interrupt" and stops it).
    if (this.left === 0 && this.lastEntry) this.status &= ~BM_STATUS_ACTIVE;
  }

  reset(): void {
    this.command = 0;
    this.status = 0;
    this.prdTable = 0;
    this.nextEntry = this.address = this.left = 0;
    this.lastEntry = false;
  }

  saveState(): BusMasterState {
    return {
      command: this.command,
      status: this.status,
      prdTable: this.prdTable,
      nextEntry: this.nextEntry,
      address: this.address,
      left: this.left,
      lastEntry: this.lastEntry,
    };
  }

  loadState(state: BusMasterState, _version: number): void {
    for (const key of ["command", "status", "prdTable", "nextEntry", "address", "left"] as const) {
      if (!Number.isInteger(state[key]) || state[key] < 0) {
        throw new StateError(`bus master state: '${key}' is not a non-negative integer`);
      }
    }
    this.command = state.command & (BM_COMMAND_START | BM_COMMAND_WRITE);
    this.status = state.status & 0x67;
    this.prdTable = state.prdTable >>> 0;
    this.nextEntry = state.nextEntry >>> 0;
    this.address = state.address >>> 0;
    this.left = Math.min(state.left, 0x10000);
    this.lastEntry = state.lastEntry === true;
  }
}

class PiixIdeFunction extends PciFunction {
  constructor(busMasterPorts: PortDevice) {
    super({
      name: "piix3-ide",
      vendorId: PIIX3_IDE_VENDOR_ID,
      deviceId: PIIX3_IDE_DEVICE_ID,
      classCode: PIIX3_IDE_CLASS,
      bars: [
        undefined,
        undefined,
        undefined,
        undefined,
        { kind: "io", size: BUS_MASTER_PORTS, device: busMasterPorts },
      ],
    });
    // Status: medium DEVSEL timing, fast back-to-back capable (read-only).
    this.setConfigBytes(0x06, [0x80, 0x02]);
    // IDETIM (primary, secondary) and SIDETIM are plain read/write timing registers here.
    this.setConfigBytes(PIIX_IDETIM, [0, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0xff, 0xff]);
  }
}

export interface IdeChannelDrives {
  master?: IdeDrive;
  slave?: IdeDrive;
}

export interface PiixIdeOptions {
  /** Guest memory for bus-master DMA. */
  memory: DmaMemory;
  /** IRQ 14 and IRQ 15 (compatibility mode). */
  primaryIrq: IrqLine;
  secondaryIrq: IrqLine;
  primary?: IdeChannelDrives;
  secondary?: IdeChannelDrives;
}

export interface PiixIdeState {
  pci: PciFunctionState;
  channels: IdeChannelState[];
  busMasters: BusMasterState[];
}

export class PiixIde implements Persistent<PiixIdeState> {
  readonly stateVersion = 1;
  readonly pci: PciFunction;
  readonly channels: readonly [IdeChannel, IdeChannel];
  readonly busMasters: readonly [BusMaster, BusMaster];
  /** BAR4: the bus-master registers of both channels. */
  readonly busMasterPorts: PortDevice;

  constructor(options: PiixIdeOptions) {
    this.channels = [
      new IdeChannel({ irq: options.primaryIrq, ...options.primary }),
      new IdeChannel({ irq: options.secondaryIrq, ...options.secondary }),
    ];
    this.busMasterPorts = {
      ioRead: (offset, width) => this.busMasterRead(offset, width),
      ioWrite: (offset, width, value) => this.busMasterWrite(offset, width, value),
    };
    const pci = new PiixIdeFunction(this.busMasterPorts);
    this.pci = pci;
    const mastering = () => pci.busMaster;
    this.busMasters = [
      new BusMaster(this.channels[0], options.memory, mastering),
      new BusMaster(this.channels[1], options.memory, mastering),
    ];
  }

  private busMasterRead(offset: number, width: Width): number {
    let value = 0;
    for (let i = width - 1; i >= 0; i--) {
      const at = offset + i;
      value = value * 256 + this.busMasters[(at >> 3) & 1]!.readByte(at & 7);
    }
    return value;
  }

  private busMasterWrite(offset: number, width: Width, value: number): void {
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      this.busMasters[(at >> 3) & 1]!.writeByte(at & 7, (value >>> (8 * i)) & 0xff);
    }
  }

  /** A block request is in flight on either channel (wait for it before saving state). */
  get hostIoPending(): boolean {
    return this.channels[0].hostIoPending || this.channels[1].hostIoPending;
  }

  /** Hard reset: channels, drives, DMA engines and configuration space. */
  reset(): void {
    for (const c of this.channels) c.reset();
    for (const b of this.busMasters) b.reset();
    this.pci.resetConfig();
  }

  saveState(): PiixIdeState {
    return {
      pci: this.pci.saveState(),
      channels: this.channels.map((c) => c.saveState()),
      busMasters: this.busMasters.map((b) => b.saveState()),
    };
  }

  loadState(state: PiixIdeState, version: number): void {
    if (!Array.isArray(state?.channels) || state.channels.length !== 2 || !Array.isArray(state.busMasters)) {
      throw new StateError("PIIX IDE state: expected two channels and two bus masters");
    }
    if (state.busMasters.length !== 2) throw new StateError("PIIX IDE state: expected two bus masters");
    this.pci.loadState(state.pci, this.pci.stateVersion);
    this.channels.forEach((c, i) => {
      c.loadState(state.channels[i]!, version);
    });
    this.busMasters.forEach((b, i) => {
      b.loadState(state.busMasters[i]!, version);
    });
  }
}
