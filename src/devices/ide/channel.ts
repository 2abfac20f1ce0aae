// One IDE channel: the command block (8 ports: data, error/features, sector count, LBA low/mid/
// high, device, status/command) and the control block (alternate status / device control), with
// up to two devices. This is where the ATA protocol lives: command decoding, PIO data blocks,
// DMA handed to a bus master, interrupts, nIEN, HOB and software reset. ATAPI packets are
// interpreted by atapi.ts and carried out here (byte-count-limited PIO or DMA).
//
// Block I/O completes through callbacks; synchronous backends complete at once, asynchronous
// ones later (the drive shows BSY meanwhile). A generation counter makes completions of a
// command that a reset or a new command cancelled harmless.

import type { PortDevice, Width } from "../../core/bus.ts";
import type { IrqLine } from "../../core/irq.ts";
import { type Persistent, StateError } from "../../core/persist.ts";
import { CD_BLOCK_SIZE, executePacket, SENSE_MEDIUM_ERROR, SENSE_NOT_READY } from "./atapi.ts";
import { SECTOR_SIZE } from "./block.ts";
import {
  type DriveState,
  ERROR_ABRT,
  ERROR_IDNF,
  ERROR_UNC,
  type IdeDrive,
  MAX_MULTIPLE_SECTORS,
  STATUS_BSY,
  STATUS_DRDY,
  STATUS_DRQ,
  STATUS_DSC,
  STATUS_ERR,
} from "./drive.ts";

/** Command block register offsets. */
export const REG_DATA = 0;
export const REG_ERROR_FEATURE = 1;
export const REG_NSECTOR = 2;
export const REG_LBA_LOW = 3;
export const REG_LBA_MID = 4;
export const REG_LBA_HIGH = 5;
export const REG_DEVICE = 6;
export const REG_STATUS_COMMAND = 7;
export const COMMAND_BLOCK_PORTS = 8;
export const CONTROL_BLOCK_PORTS = 1;

/** Device control: interrupts disabled. */
export const CONTROL_NIEN = 0x02;
/** Device control: software reset. */
export const CONTROL_SRST = 0x04;
/** Device control: read the high-order (previous) bytes of the LBA48 registers. */
export const CONTROL_HOB = 0x80;
/** Device register: device 1 selected. */
export const DEVICE_DEV = 0x10;
/** Device register: LBA addressing (else CHS). */
export const DEVICE_LBA = 0x40;
/** Device register bits 7 and 5 are obsolete and read as ones. */
const DEVICE_OBSOLETE = 0xa0;
/** ATAPI interrupt reason (sector count register): command/data. */
const IREASON_COD = 0x01;
/** ATAPI interrupt reason: transfer to the host. */
const IREASON_IO = 0x02;

/** PIO and DMA buffer: 128 sectors or 32 CD blocks. */
const BUFFER_SIZE = 0x10000;
const DMA_CHUNK_SECTORS = BUFFER_SIZE / SECTOR_SIZE;
const CD_BATCH_BLOCKS = BUFFER_SIZE / CD_BLOCK_SIZE;
const ATAPI_PACKET_SIZE = 12;

export const CMD_DEVICE_RESET = 0x08;
export const CMD_READ_SECTORS = 0x20;
export const CMD_READ_SECTORS_EXT = 0x24;
export const CMD_READ_DMA_EXT = 0x25;
export const CMD_READ_MULTIPLE_EXT = 0x29;
export const CMD_WRITE_SECTORS = 0x30;
export const CMD_WRITE_SECTORS_EXT = 0x34;
export const CMD_WRITE_DMA_EXT = 0x35;
export const CMD_WRITE_MULTIPLE_EXT = 0x39;
export const CMD_READ_VERIFY = 0x40;
export const CMD_READ_VERIFY_EXT = 0x42;
export const CMD_EXECUTE_DIAGNOSTIC = 0x90;
export const CMD_INITIALIZE_PARAMETERS = 0x91;
export const CMD_PACKET = 0xa0;
export const CMD_IDENTIFY_PACKET = 0xa1;
export const CMD_READ_MULTIPLE = 0xc4;
export const CMD_WRITE_MULTIPLE = 0xc5;
export const CMD_SET_MULTIPLE = 0xc6;
export const CMD_READ_DMA = 0xc8;
export const CMD_WRITE_DMA = 0xca;
export const CMD_CHECK_POWER_MODE = 0xe5;
export const CMD_FLUSH_CACHE = 0xe7;
export const CMD_FLUSH_CACHE_EXT = 0xea;
export const CMD_IDENTIFY = 0xec;
export const CMD_SET_FEATURES = 0xef;

/**
 * The bus-master side of a DMA transfer, as the channel sees it (implemented by the PIIX
 * bus-master engine).
 */
export interface DmaPort {
  /** The guest has started the engine (command register start bit). */
  readonly active: boolean;
  /**
   * Moves `buffer.length` bytes between `buffer` and guest memory, continuing along the PRD
   * table where the previous call stopped. Returns the bytes moved: fewer means the table ended.
   */
  transfer(buffer: Uint8Array, toMemory: boolean): number;
  /** The drive's transfer is over (the engine decides whether it stays active). */
  complete(): void;
}

type PioKind = "none" | "ataRead" | "ataWrite" | "identify" | "packet" | "atapiData";
type DmaKind = "none" | "ataRead" | "ataWrite" | "atapiData" | "atapiRead";
const PIO_KINDS: readonly PioKind[] = ["none", "ataRead", "ataWrite", "identify", "packet", "atapiData"];
const DMA_KINDS: readonly DmaKind[] = ["none", "ataRead", "ataWrite", "atapiData", "atapiRead"];

export interface IdeChannelState {
  select: number;
  control: number;
  irqPending: boolean;
  unit: number;
  buffer: Uint8Array;
  pioKind: string;
  pioPos: number;
  pioEnd: number;
  dataEnd: number;
  lba: number;
  remaining: number;
  blockSectors: number;
  lba48: boolean;
  byteLimit: number;
  dmaKind: string;
  dmaRequested: boolean;
  drives: (DriveState | null)[];
}

export interface IdeChannelOptions {
  /** The channel's interrupt (IRQ 14 / 15 in compatibility mode). */
  irq: IrqLine;
  master?: IdeDrive;
  slave?: IdeDrive;
}

export class IdeChannel implements Persistent<IdeChannelState> {
  readonly stateVersion = 1;
  readonly drives: readonly [IdeDrive | undefined, IdeDrive | undefined];
  readonly irq: IrqLine;
  /** Offsets 0-7 of the command block (0x1F0 / 0x170). */
  readonly commandBlock: PortDevice;
  /** Offset 0 of the control block (0x3F6 / 0x376). */
  readonly controlBlock: PortDevice;
  /** Told each time the channel asserts its interrupt (a bus master latches it). */
  onInterrupt: (() => void) | undefined;
  /** The bus master serving this channel's DMA commands. */
  dma: DmaPort | undefined;

  private select = DEVICE_OBSOLETE;
  private control = 0;
  private irqPending = false;
  /** The device running the current command. */
  private unit = 0;
  /** Replaced (not reused) when a command is abandoned with host I/O still writing into it. */
  private buffer = new Uint8Array(BUFFER_SIZE);
  /** Block requests issued and not yet completed (asynchronous backends). */
  private pendingIo = 0;
  private pioKind: PioKind = "none";
  private pioPos = 0;
  private pioEnd = 0;
  /** Valid bytes in the buffer for an ATAPI data transfer. */
  private dataEnd = 0;
  // Progress of a multi-block command: next sector (ATA) or CD block (ATAPI), and what is left.
  private lba = 0;
  private remaining = 0;
  private blockSectors = 1;
  private lba48 = false;
  /** ATAPI byte count limit from the PACKET command. */
  private byteLimit = 0;
  private dmaKind: DmaKind = "none";
  /** Bumped whenever the current command is abandoned; stale completions compare it. */
  private generation = 0;

  constructor(options: IdeChannelOptions) {
    this.irq = options.irq;
    this.drives = [options.master, options.slave];
    this.commandBlock = {
      ioRead: (offset, width) => this.commandRead(offset, width),
      ioWrite: (offset, width, value) => this.commandWrite(offset, width, value),
    };
    this.controlBlock = {
      ioRead: () => this.selected?.status ?? 0,
      ioWrite: (_offset, _width, value) => this.writeControl(value & 0xff),
    };
  }

  private get selected(): IdeDrive | undefined {
    return this.drives[(this.select & DEVICE_DEV) >> 4];
  }

  private get current(): IdeDrive {
    return this.drives[this.unit]!;
  }

  // ---- interrupts ---------------------------------------------------------------------------

  private raiseIrq(): void {
    this.irqPending = true;
    this.updateIrq();
  }

  private clearIrq(): void {
    this.irqPending = false;
    this.updateIrq();
  }

  private updateIrq(): void {
    const level = this.irqPending && !(this.control & CONTROL_NIEN);
    if (level && !this.irq.level) this.onInterrupt?.();
    this.irq.set(level);
  }

  // ---- register access ----------------------------------------------------------------------

  private commandRead(offset: number, width: Width): number {
    if (offset === REG_DATA) return this.readData(width);
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + this.readRegister(offset + i);
    return value;
  }

  private commandWrite(offset: number, width: Width, value: number): void {
    if (offset === REG_DATA) {
      this.writeData(width, value);
      return;
    }
    for (let i = 0; i < width; i++) this.writeRegister(offset + i, (value >>> (8 * i)) & 0xff);
  }

  private readRegister(reg: number): number {
    const drive = this.selected;
    // An absent device reads as zeros, so probing software finds nothing there.
    if (!drive) return 0;
    const tf = drive.tf;
    const hob = (this.control & CONTROL_HOB) !== 0;
    switch (reg) {
      case REG_ERROR_FEATURE:
        return hob ? tf.hobFeature : drive.error;
      case REG_NSECTOR:
        return hob ? tf.hobNsector : tf.nsector;
      case REG_LBA_LOW:
        return hob ? tf.hobSector : tf.sector;
      case REG_LBA_MID:
        return hob ? tf.hobLcyl : tf.lcyl;
      case REG_LBA_HIGH:
        return hob ? tf.hobHcyl : tf.hcyl;
      case REG_DEVICE:
        return this.select;
      case REG_STATUS_COMMAND:
        this.clearIrq();
        return drive.status;
      default:
        return 0xff;
    }
  }

  private writeRegister(reg: number, value: number): void {
    // Any command block write clears HOB (ATA-6 7.9.6).
    this.control &= ~CONTROL_HOB;
    if (reg === REG_DEVICE) {
      this.select = value | DEVICE_OBSOLETE;
      return;
    }
    if (reg === REG_STATUS_COMMAND) {
      this.executeCommand(value);
      return;
    }
    for (const drive of this.drives) {
      if (!drive) continue;
      const tf = drive.tf;
      switch (reg) {
        case REG_ERROR_FEATURE:
          tf.hobFeature = tf.feature;
          tf.feature = value;
          break;
        case REG_NSECTOR:
          tf.hobNsector = tf.nsector;
          tf.nsector = value;
          break;
        case REG_LBA_LOW:
          tf.hobSector = tf.sector;
          tf.sector = value;
          break;
        case REG_LBA_MID:
          tf.hobLcyl = tf.lcyl;
          tf.lcyl = value;
          break;
        case REG_LBA_HIGH:
          tf.hobHcyl = tf.hcyl;
          tf.hcyl = value;
          break;
      }
    }
  }

  private writeControl(value: number): void {
    const old = this.control;
    this.control = value;
    if (!(old & CONTROL_SRST) && value & CONTROL_SRST) {
      this.cancel();
      for (const drive of this.drives) if (drive) drive.status = STATUS_BSY | STATUS_DSC;
    } else if (old & CONTROL_SRST && !(value & CONTROL_SRST)) {
      this.cancel();
      for (const drive of this.drives) if (drive) drive.resetSignature();
      this.select = DEVICE_OBSOLETE;
      this.irqPending = false;
    }
    this.updateIrq();
  }

  // ---- PIO data -----------------------------------------------------------------------------

  private readData(width: Width): number {
    if (this.pioKind === "none" || this.pioPos >= this.pioEnd) return 0;
    const b = this.buffer;
    const at = this.pioPos;
    let value = b[at]!;
    if (width >= 2) value |= b[at + 1]! << 8;
    if (width === 4) value = (value | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
    this.pioPos += width;
    if (this.pioPos >= this.pioEnd) this.pioBlockDone();
    return value;
  }

  private writeData(width: Width, value: number): void {
    if (this.pioKind === "none" || this.pioPos >= this.pioEnd) return;
    const b = this.buffer;
    for (let i = 0; i < width && this.pioPos < this.pioEnd; i++)
      b[this.pioPos++] = (value >>> (8 * i)) & 0xff;
    if (this.pioPos >= this.pioEnd) this.pioBlockDone();
  }

  private startPio(kind: PioKind, start: number, end: number): void {
    this.pioKind = kind;
    this.pioPos = start;
    this.pioEnd = end;
  }

  /** The host has moved the whole current DRQ block. */
  private pioBlockDone(): void {
    const drive = this.current;
    const kind = this.pioKind;
    this.pioKind = "none";
    switch (kind) {
      case "identify":
        drive.status = STATUS_DRDY | STATUS_DSC;
        return;
      case "ataRead": {
        const n = this.pioEnd / SECTOR_SIZE;
        this.advance(drive, n);
        if (this.remaining > 0) this.ataReadBlock();
        else drive.status = STATUS_DRDY | STATUS_DSC;
        return;
      }
      case "ataWrite":
        this.ataWriteBlock();
        return;
      case "packet":
        this.runPacket(this.buffer.slice(0, ATAPI_PACKET_SIZE));
        return;
      case "atapiData":
        if (this.pioPos < this.dataEnd) this.atapiPioChunk();
        else if (this.remaining > 0) this.atapiLoadBatch(() => this.atapiPioChunk());
        else this.atapiDone();
        return;
      default:
        return;
    }
  }

  // ---- command completion helpers -----------------------------------------------------------

  /** Abandons whatever the channel was doing (new command, reset). */
  private cancel(): void {
    this.generation++;
    this.pioKind = "none";
    this.dmaKind = "none";
    this.dmaRunning = false;
    // A request still in flight may yet fill the old buffer; the next command gets a fresh one.
    if (this.pendingIo > 0) this.buffer = new Uint8Array(BUFFER_SIZE);
  }

  /**
   * True while a block request is in flight. State must not be saved then: the VM layer lets
   * the run loop deliver the completions first.
   */
  get hostIoPending(): boolean {
    return this.pendingIo > 0;
  }

  private succeed(drive: IdeDrive): void {
    drive.status = STATUS_DRDY | STATUS_DSC;
    drive.error = 0;
    this.raiseIrq();
  }

  private failCommand(drive: IdeDrive, error: number): void {
    this.pioKind = "none";
    this.dmaKind = "none";
    drive.status = STATUS_DRDY | STATUS_DSC | STATUS_ERR;
    drive.error = error;
    this.raiseIrq();
  }

  private abort(drive: IdeDrive): void {
    this.failCommand(drive, ERROR_ABRT);
  }

  /**
   * Issues a block request whose completion is ignored if the command was cancelled meanwhile.
   * The drive is busy until it completes.
   */
  private io(
    drive: IdeDrive,
    request: (done: (error: Error | undefined) => void) => void,
    then: (error: Error | undefined) => void,
  ): void {
    const generation = this.generation;
    drive.status = STATUS_BSY | (drive.status & STATUS_DRDY);
    this.pendingIo++;
    request((error) => {
      this.pendingIo--;
      if (generation === this.generation) then(error);
    });
  }

  // ---- command dispatch ---------------------------------------------------------------------

  private executeCommand(command: number): void {
    const unit = (this.select & DEVICE_DEV) >> 4;
    const drive = this.drives[unit];
    if (!drive) return;
    if (drive.status & STATUS_BSY && command !== CMD_DEVICE_RESET) return;
    this.cancel();
    this.clearIrq();
    this.unit = unit;
    if (drive.isAtapi) this.executeAtapiDeviceCommand(drive, command);
    else this.executeDiskCommand(drive, command);
  }

  private executeDiskCommand(drive: IdeDrive, command: number): void {
    if (command !== CMD_CHECK_POWER_MODE && command < 0xe0) drive.standby = false;
    switch (command) {
      case CMD_READ_SECTORS:
      case CMD_READ_SECTORS + 1:
        this.startAtaPio(drive, true, false, false);
        return;
      case CMD_READ_SECTORS_EXT:
        this.startAtaPio(drive, true, true, false);
        return;
      case CMD_READ_MULTIPLE:
        this.startAtaPio(drive, true, false, true);
        return;
      case CMD_READ_MULTIPLE_EXT:
        this.startAtaPio(drive, true, true, true);
        return;
      case CMD_WRITE_SECTORS:
      case CMD_WRITE_SECTORS + 1:
        this.startAtaPio(drive, false, false, false);
        return;
      case CMD_WRITE_SECTORS_EXT:
        this.startAtaPio(drive, false, true, false);
        return;
      case CMD_WRITE_MULTIPLE:
        this.startAtaPio(drive, false, false, true);
        return;
      case CMD_WRITE_MULTIPLE_EXT:
        this.startAtaPio(drive, false, true, true);
        return;
      case CMD_READ_DMA:
      case CMD_READ_DMA + 1:
        this.startAtaDma(drive, true, false);
        return;
      case CMD_READ_DMA_EXT:
        this.startAtaDma(drive, true, true);
        return;
      case CMD_WRITE_DMA:
      case CMD_WRITE_DMA + 1:
        this.startAtaDma(drive, false, false);
        return;
      case CMD_WRITE_DMA_EXT:
        this.startAtaDma(drive, false, true);
        return;
      case CMD_READ_VERIFY:
      case CMD_READ_VERIFY + 1:
      case CMD_READ_VERIFY_EXT: {
        const ext = command === CMD_READ_VERIFY_EXT;
        const request = this.addressOf(drive, ext);
        if (!request) {
          this.failCommand(drive, ERROR_IDNF | ERROR_ABRT);
          return;
        }
        this.lba48 = ext;
        this.setAddressRegisters(drive, request.lba + request.count - 1);
        this.succeed(drive);
        return;
      }
      case CMD_IDENTIFY:
        this.buffer.set(drive.identify());
        this.startPio("identify", 0, 512);
        drive.status = STATUS_DRDY | STATUS_DSC | STATUS_DRQ;
        this.raiseIrq();
        return;
      case CMD_SET_MULTIPLE: {
        const n = drive.tf.nsector;
        if (n > MAX_MULTIPLE_SECTORS || (n & (n - 1)) !== 0) {
          this.abort(drive);
          return;
        }
        drive.multipleCount = n;
        this.succeed(drive);
        return;
      }
      case CMD_SET_FEATURES:
        this.setFeatures(drive);
        return;
      case CMD_INITIALIZE_PARAMETERS: {
        const sectors = drive.tf.nsector;
        if (sectors === 0) {
          this.abort(drive);
          return;
        }
        drive.logicalSectors = sectors;
        drive.logicalHeads = (this.select & 0x0f) + 1;
        this.succeed(drive);
        return;
      }
      case CMD_FLUSH_CACHE:
      case CMD_FLUSH_CACHE_EXT:
        this.io(
          drive,
          (done) => drive.media!.flush(done),
          (error) => (error ? this.failCommand(drive, ERROR_ABRT) : this.succeed(drive)),
        );
        return;
      case CMD_CHECK_POWER_MODE:
      case 0x98: // its ATA-1 opcode
        drive.tf.nsector = drive.standby ? 0x00 : 0xff;
        this.succeed(drive);
        return;
      case 0xe0: // STANDBY IMMEDIATE
      case 0xe2: // STANDBY
      case 0xe6: // SLEEP
      case 0x94:
      case 0x96:
      case 0x99:
        drive.standby = true;
        this.succeed(drive);
        return;
      case 0xe1: // IDLE IMMEDIATE
      case 0xe3: // IDLE
      case 0x95:
      case 0x97:
        drive.standby = false;
        this.succeed(drive);
        return;
      case CMD_EXECUTE_DIAGNOSTIC:
        this.executeDiagnostic();
        return;
      case 0x70: // SEEK
        this.succeed(drive);
        return;
      default:
        // 10h-1Fh: RECALIBRATE.
        if (command >= 0x10 && command <= 0x1f) this.succeed(drive);
        else this.abort(drive);
        return;
    }
  }

  private executeAtapiDeviceCommand(drive: IdeDrive, command: number): void {
    switch (command) {
      case CMD_PACKET: {
        this.byteLimit = drive.tf.lcyl | (drive.tf.hcyl << 8);
        this.dmaRequested = (drive.tf.feature & 1) !== 0;
        drive.tf.nsector = IREASON_COD;
        this.startPio("packet", 0, ATAPI_PACKET_SIZE);
        drive.status = STATUS_DRDY | STATUS_DRQ;
        return;
      }
      case CMD_IDENTIFY_PACKET:
        this.buffer.set(drive.identify());
        this.startPio("identify", 0, 512);
        drive.status = STATUS_DRDY | STATUS_DRQ;
        this.raiseIrq();
        return;
      case CMD_DEVICE_RESET:
        drive.resetSignature();
        return;
      case CMD_EXECUTE_DIAGNOSTIC:
        this.executeDiagnostic();
        return;
      case CMD_SET_FEATURES:
        this.setFeatures(drive);
        return;
      case CMD_CHECK_POWER_MODE:
        drive.tf.nsector = 0xff;
        this.succeed(drive);
        return;
      case 0xe1: // IDLE IMMEDIATE
        this.succeed(drive);
        return;
      case CMD_IDENTIFY:
        // The host learns from the signature left in the registers that this is a packet device.
        drive.resetSignature();
        this.abort(drive);
        return;
      default:
        this.abort(drive);
        return;
    }
  }

  private executeDiagnostic(): void {
    for (const drive of this.drives) drive?.resetSignature();
    this.raiseIrq();
  }

  private setFeatures(drive: IdeDrive): void {
    const tf = drive.tf;
    switch (tf.feature) {
      case 0x03: {
        // Set transfer mode: the mode type is in bits 7-3 of the sector count, the mode in 2-0.
        const mode = tf.nsector & 7;
        switch (tf.nsector >> 3) {
          case 0:
            drive.pioMode = 0;
            break;
          case 1:
            if (mode > 4) {
              this.abort(drive);
              return;
            }
            drive.pioMode = mode;
            break;
          case 4:
            if (mode > 2) {
              this.abort(drive);
              return;
            }
            drive.mwdmaMode = mode;
            drive.udmaMode = -1;
            break;
          case 8:
            if (mode > 5) {
              this.abort(drive);
              return;
            }
            drive.udmaMode = mode;
            drive.mwdmaMode = -1;
            break;
          default:
            this.abort(drive);
            return;
        }
        this.succeed(drive);
        return;
      }
      case 0x02:
        drive.writeCache = true;
        this.succeed(drive);
        return;
      case 0x82:
        drive.writeCache = false;
        this.succeed(drive);
        return;
      case 0x55: // read look-ahead off
      case 0xaa: // read look-ahead on
      case 0x66: // keep settings over reset
      case 0xcc: // revert to defaults over reset
        this.succeed(drive);
        return;
      default:
        this.abort(drive);
        return;
    }
  }

  // ---- ATA data commands --------------------------------------------------------------------

  /** The command's start sector and count from the registers, or undefined if invalid. */
  private addressOf(drive: IdeDrive, ext: boolean): { lba: number; count: number } | undefined {
    const tf = drive.tf;
    let lba: number;
    let count: number;
    if (ext) {
      lba =
        (tf.hobHcyl * 0x100 + tf.hobLcyl) * 0x1_0000_0000 +
        tf.hobSector * 0x100_0000 +
        ((tf.hcyl << 16) | (tf.lcyl << 8) | tf.sector);
      count = (tf.hobNsector << 8) | tf.nsector || 0x10000;
    } else if (this.select & DEVICE_LBA) {
      lba = ((this.select & 0x0f) << 24) | (tf.hcyl << 16) | (tf.lcyl << 8) | tf.sector;
      count = tf.nsector || 0x100;
    } else {
      const cylinder = (tf.hcyl << 8) | tf.lcyl;
      const head = this.select & 0x0f;
      const sector = tf.sector;
      if (sector === 0 || sector > drive.logicalSectors || head >= drive.logicalHeads) return undefined;
      lba = (cylinder * drive.logicalHeads + head) * drive.logicalSectors + sector - 1;
      count = tf.nsector || 0x100;
    }
    if (lba + count > drive.sectorCount) return undefined;
    return { lba, count };
  }

  /** Leaves the address of `lba` in the registers, in the addressing form the command used. */
  private setAddressRegisters(drive: IdeDrive, lba: number): void {
    const tf = drive.tf;
    if (this.lba48) {
      tf.sector = lba & 0xff;
      tf.lcyl = (lba >>> 8) & 0xff;
      tf.hcyl = (lba >>> 16) & 0xff;
      const high = Math.floor(lba / 0x100_0000);
      tf.hobSector = high & 0xff;
      tf.hobLcyl = (high >>> 8) & 0xff;
      tf.hobHcyl = (high >>> 16) & 0xff;
    } else if (this.select & DEVICE_LBA) {
      tf.sector = lba & 0xff;
      tf.lcyl = (lba >>> 8) & 0xff;
      tf.hcyl = (lba >>> 16) & 0xff;
      this.select = (this.select & 0xf0) | ((lba >>> 24) & 0x0f);
    } else {
      const perCylinder = drive.logicalHeads * drive.logicalSectors;
      const cylinder = Math.floor(lba / perCylinder);
      const rest = lba % perCylinder;
      tf.lcyl = cylinder & 0xff;
      tf.hcyl = (cylinder >>> 8) & 0xff;
      this.select = (this.select & 0xf0) | Math.floor(rest / drive.logicalSectors);
      tf.sector = (rest % drive.logicalSectors) + 1;
    }
  }

  /** Moves the command's position on by `n` sectors (or CD blocks) and updates the registers. */
  private advance(drive: IdeDrive, n: number): void {
    this.lba += n;
    this.remaining -= n;
    if (!drive.isAtapi) this.setAddressRegisters(drive, this.lba - 1);
  }

  private startAtaPio(drive: IdeDrive, read: boolean, ext: boolean, multiple: boolean): void {
    if (multiple && drive.multipleCount === 0) {
      this.abort(drive);
      return;
    }
    const request = this.addressOf(drive, ext);
    if (!request) {
      this.failCommand(drive, ERROR_IDNF | ERROR_ABRT);
      return;
    }
    if (!read && drive.media!.readOnly) {
      this.abort(drive);
      return;
    }
    this.lba = request.lba;
    this.remaining = request.count;
    this.blockSectors = multiple ? drive.multipleCount : 1;
    this.lba48 = ext;
    if (read) {
      this.ataReadBlock();
    } else {
      // The first block of a write is requested without an interrupt.
      this.startPio("ataWrite", 0, Math.min(this.remaining, this.blockSectors) * SECTOR_SIZE);
      drive.status = STATUS_DRDY | STATUS_DSC | STATUS_DRQ;
    }
  }

  private ataReadBlock(): void {
    const drive = this.current;
    const n = Math.min(this.remaining, this.blockSectors);
    this.io(
      drive,
      (done) => drive.media!.read(this.lba, n, this.buffer, done),
      (error) => {
        if (error) return this.failCommand(drive, ERROR_UNC | ERROR_ABRT);
        this.startPio("ataRead", 0, n * SECTOR_SIZE);
        drive.status = STATUS_DRDY | STATUS_DSC | STATUS_DRQ;
        this.raiseIrq();
      },
    );
  }

  /** A write block is in the buffer: store it, then ask for the next or finish. */
  private ataWriteBlock(): void {
    const drive = this.current;
    const n = this.pioEnd / SECTOR_SIZE;
    this.io(
      drive,
      (done) => drive.media!.write(this.lba, n, this.buffer, done),
      (error) => {
        if (error) return this.failCommand(drive, ERROR_ABRT);
        this.advance(drive, n);
        if (this.remaining > 0) {
          this.startPio("ataWrite", 0, Math.min(this.remaining, this.blockSectors) * SECTOR_SIZE);
          drive.status = STATUS_DRDY | STATUS_DSC | STATUS_DRQ;
        } else {
          drive.status = STATUS_DRDY | STATUS_DSC;
        }
        this.raiseIrq();
      },
    );
  }

  private startAtaDma(drive: IdeDrive, read: boolean, ext: boolean): void {
    const request = this.addressOf(drive, ext);
    if (!request) {
      this.failCommand(drive, ERROR_IDNF | ERROR_ABRT);
      return;
    }
    if (!read && drive.media!.readOnly) {
      this.abort(drive);
      return;
    }
    this.lba = request.lba;
    this.remaining = request.count;
    this.lba48 = ext;
    this.requestDma(drive, read ? "ataRead" : "ataWrite");
  }

  // ---- DMA ----------------------------------------------------------------------------------

  /** ATAPI: the PACKET command asked for DMA (features bit 0). */
  private dmaRequested = false;
  /** A DMA transfer is under way (its block I/O may complete later). */
  private dmaRunning = false;

  /** The drive is ready to move data by DMA; it happens as soon as the bus master is started. */
  private requestDma(drive: IdeDrive, kind: DmaKind): void {
    this.dmaKind = kind;
    drive.status = STATUS_DRDY | STATUS_DSC | STATUS_DRQ;
    if (this.dma?.active && !this.dmaRunning) this.runDma();
  }

  /** The bus master was started: run a DMA transfer the drive is waiting for. */
  dmaStarted(): void {
    if (this.dmaKind !== "none" && this.dma?.active && !this.dmaRunning) this.runDma();
  }

  private runDma(): void {
    const port = this.dma!;
    const drive = this.current;
    const kind = this.dmaKind;
    const generation = this.generation;
    const finished = () => {
      this.dmaKind = "none";
      port.complete();
      if (drive.isAtapi) this.atapiDone();
      else this.succeed(drive);
    };
    const short = () => {
      // The PRD table ended first: the engine has stopped; the drive still waits for data.
      this.dmaKind = "none";
    };
    if (kind === "atapiData") {
      if (port.transfer(this.buffer.subarray(0, this.dataEnd), true) < this.dataEnd) {
        short();
        return;
      }
      finished();
      return;
    }
    this.dmaRunning = true;
    this.loop((step) => {
      const next = (more: boolean) => {
        if (!more) this.dmaRunning = false;
        step(more);
      };
      if (generation !== this.generation) return next(false);
      if (this.remaining === 0) {
        finished();
        return next(false);
      }
      const media = drive.media;
      if (!media) {
        this.atapiError(drive, SENSE_NOT_READY, 0x3a);
        return next(false);
      }
      if (kind === "atapiRead") {
        const n = Math.min(this.remaining, CD_BATCH_BLOCKS);
        const bytes = n * CD_BLOCK_SIZE;
        this.io(
          drive,
          (done) => media.read(this.lba * 4, n * 4, this.buffer, done),
          (error) => {
            if (error) {
              port.complete();
              this.atapiError(drive, SENSE_MEDIUM_ERROR, 0x11);
              return next(false);
            }
            if (port.transfer(this.buffer.subarray(0, bytes), true) < bytes) {
              short();
              return next(false);
            }
            this.advance(drive, n);
            next(true);
          },
        );
        return;
      }
      const n = Math.min(this.remaining, DMA_CHUNK_SECTORS);
      const bytes = n * SECTOR_SIZE;
      if (kind === "ataRead") {
        this.io(
          drive,
          (done) => media.read(this.lba, n, this.buffer, done),
          (error) => {
            if (error) {
              port.complete();
              this.failCommand(drive, ERROR_UNC | ERROR_ABRT);
              return next(false);
            }
            if (port.transfer(this.buffer.subarray(0, bytes), true) < bytes) {
              short();
              return next(false);
            }
            this.advance(drive, n);
            next(true);
          },
        );
      } else {
        if (port.transfer(this.buffer.subarray(0, bytes), false) < bytes) {
          short();
          return next(false);
        }
        this.io(
          drive,
          (done) => media.write(this.lba, n, this.buffer, done),
          (error) => {
            if (error) {
              port.complete();
              this.failCommand(drive, ERROR_ABRT);
              return next(false);
            }
            this.advance(drive, n);
            next(true);
          },
        );
      }
    });
  }

  /**
   * Repeats `step` while it reports "more", whether its I/O completes synchronously (no
   * recursion: long transfers stay flat on the stack) or later.
   */
  private loop(step: (next: (more: boolean) => void) => void): void {
    let synchronous = true;
    let completed = false;
    let more = false;
    const next = (again: boolean) => {
      if (synchronous) {
        completed = true;
        more = again;
      } else if (again) {
        this.loop(step);
      }
    };
    for (;;) {
      completed = false;
      step(next);
      if (!completed) {
        synchronous = false;
        return;
      }
      if (!more) return;
    }
  }

  // ---- ATAPI --------------------------------------------------------------------------------

  private runPacket(packet: Uint8Array): void {
    const drive = this.current;
    const result = executePacket(drive, packet);
    switch (result.kind) {
      case "done":
        this.atapiDone();
        return;
      case "error":
        this.atapiError(drive, result.key, result.asc);
        return;
      case "data":
        this.buffer.set(result.data);
        this.dataEnd = result.data.length;
        this.remaining = 0;
        if (this.dataEnd === 0) {
          this.atapiDone();
          return;
        }
        if (this.dmaRequested) {
          this.requestDma(drive, "atapiData");
          return;
        }
        this.pioPos = 0;
        this.atapiPioChunk();
        return;
      case "read":
        this.lba = result.lba;
        this.remaining = result.blocks;
        if (this.dmaRequested) {
          this.requestDma(drive, "atapiRead");
          return;
        }
        this.atapiLoadBatch(() => this.atapiPioChunk());
        return;
    }
  }

  /** Reads the next batch of CD blocks into the buffer, then continues with `then`. */
  private atapiLoadBatch(then: () => void): void {
    const drive = this.current;
    const media = drive.media;
    if (!media || drive.cdBlocks === 0) {
      this.atapiError(drive, SENSE_NOT_READY, 0x3a);
      return;
    }
    const n = Math.min(this.remaining, CD_BATCH_BLOCKS);
    this.io(
      drive,
      (done) => media.read(this.lba * 4, n * 4, this.buffer, done),
      (error) => {
        if (error) return this.atapiError(drive, SENSE_MEDIUM_ERROR, 0x11);
        this.advance(drive, n);
        this.pioPos = 0;
        this.dataEnd = n * CD_BLOCK_SIZE;
        then();
      },
    );
  }

  /** Offers the host the next piece of ATAPI data, at most the byte count limit. */
  private atapiPioChunk(): void {
    const drive = this.current;
    let limit = this.byteLimit;
    // 0 is not a valid limit for PIO; take the largest even one, as drives do.
    if (limit === 0 || limit === 0xffff) limit = 0xfffe;
    const left = this.dataEnd - this.pioPos;
    let size = Math.min(left, limit);
    // A piece that does not end the data must be a whole number of words.
    if (size < left && size & 1) size--;
    drive.tf.lcyl = size & 0xff;
    drive.tf.hcyl = size >>> 8;
    drive.tf.nsector = IREASON_IO;
    this.startPio("atapiData", this.pioPos, this.pioPos + size);
    drive.status = STATUS_DRDY | STATUS_DSC | STATUS_DRQ;
    this.raiseIrq();
  }

  private atapiDone(): void {
    const drive = this.current;
    this.pioKind = "none";
    drive.tf.nsector = IREASON_IO | IREASON_COD;
    drive.status = STATUS_DRDY | STATUS_DSC;
    drive.error = 0;
    this.raiseIrq();
  }

  private atapiError(drive: IdeDrive, key: number, asc: number): void {
    drive.setSense(key, asc);
    this.pioKind = "none";
    this.dmaKind = "none";
    drive.tf.nsector = IREASON_IO | IREASON_COD;
    drive.status = STATUS_DRDY | STATUS_ERR;
    // Error register: sense key in bits 7-4, plus "aborted".
    drive.error = (key << 4) | ERROR_ABRT;
    this.raiseIrq();
  }

  // ---- state --------------------------------------------------------------------------------

  /** Power-on reset of the channel and its devices (what a hard reset line does). */
  reset(): void {
    this.cancel();
    this.select = DEVICE_OBSOLETE;
    this.control = 0;
    this.irqPending = false;
    for (const drive of this.drives) drive?.resetSignature();
    this.updateIrq();
  }

  saveState(): IdeChannelState {
    return {
      select: this.select,
      control: this.control,
      irqPending: this.irqPending,
      unit: this.unit,
      buffer: this.buffer.slice(),
      pioKind: this.pioKind,
      pioPos: this.pioPos,
      pioEnd: this.pioEnd,
      dataEnd: this.dataEnd,
      lba: this.lba,
      remaining: this.remaining,
      blockSectors: this.blockSectors,
      lba48: this.lba48,
      byteLimit: this.byteLimit,
      dmaKind: this.dmaKind,
      dmaRequested: this.dmaRequested,
      drives: this.drives.map((d) => d?.saveState() ?? null),
    };
  }

  loadState(state: IdeChannelState, version: number): void {
    if (!(state.buffer instanceof Uint8Array) || state.buffer.length !== BUFFER_SIZE) {
      throw new StateError(`IDE channel state: buffer must be ${BUFFER_SIZE} bytes`);
    }
    if (!PIO_KINDS.includes(state.pioKind as PioKind) || !DMA_KINDS.includes(state.dmaKind as DmaKind)) {
      throw new StateError("IDE channel state: unknown transfer kind");
    }
    const ints = [state.pioPos, state.pioEnd, state.dataEnd, state.blockSectors, state.byteLimit];
    if (!ints.every((n) => Number.isInteger(n) && n >= 0 && n <= BUFFER_SIZE)) {
      throw new StateError("IDE channel state: transfer position out of range");
    }
    if (!Array.isArray(state.drives) || state.drives.length !== 2) {
      throw new StateError("IDE channel state: expected two drive slots");
    }
    state.drives.forEach((saved, i) => {
      const drive = this.drives[i];
      if (!!saved !== !!drive) throw new StateError(`IDE channel state: drive ${i} presence differs`);
      if (saved && drive) drive.loadState(saved, version);
    });
    this.cancel();
    this.select = (state.select & 0xff) | DEVICE_OBSOLETE;
    this.control = state.control & 0xff;
    this.irqPending = state.irqPending === true;
    this.unit = state.unit === 1 && this.drives[1] ? 1 : 0;
    this.buffer.set(state.buffer);
    this.pioKind = state.pioKind as PioKind;
    this.pioPos = state.pioPos;
    this.pioEnd = state.pioEnd;
    this.dataEnd = state.dataEnd;
    this.lba = Number(state.lba) || 0;
    this.remaining = Number(state.remaining) || 0;
    this.blockSectors = state.blockSectors || 1;
    this.lba48 = state.lba48 === true;
    this.byteLimit = state.byteLimit;
    this.dmaKind = state.dmaKind as DmaKind;
    this.dmaRequested = state.dmaRequested === true;
    this.updateIrq();
  }
}
