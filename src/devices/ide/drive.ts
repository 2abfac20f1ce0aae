// One device on an IDE channel: an ATA hard disk or an ATAPI CD-ROM. It holds the device's own
// copy of the task-file registers (the host writes both devices' copies at once and reads the
// selected one), its status and error, its identity and the ATAPI sense/media state. The
// protocol itself (commands, PIO and DMA) lives in channel.ts.

import { type Persistent, StateError } from "../../core/persist.ts";
import { type BlockBackend, CowOverlay, type CowOverlayState } from "./block.ts";

export type DriveKind = "disk" | "cdrom";

/** Status: busy. */
export const STATUS_BSY = 0x80;
/** Status: device ready. */
export const STATUS_DRDY = 0x40;
/** Status: device fault. */
export const STATUS_DF = 0x20;
/** Status: seek complete (obsolete, but still expected by old drivers). */
export const STATUS_DSC = 0x10;
/** Status: data request. */
export const STATUS_DRQ = 0x08;
/** Status: error (details in the error register). */
export const STATUS_ERR = 0x01;
/** Error: command aborted. */
export const ERROR_ABRT = 0x04;
/** Error: ID (address) not found. */
export const ERROR_IDNF = 0x10;
/** Error: uncorrectable data error. */
export const ERROR_UNC = 0x40;

/** Sectors per DRQ block that READ/WRITE MULTIPLE may use at most (IDENTIFY word 47). */
export const MAX_MULTIPLE_SECTORS = 16;
/** Largest CD (in 2048-byte blocks) before the drive reports a DVD profile. */
const CD_MAX_BLOCKS = 405_000;
/** Largest CHS cylinder count IDENTIFY reports. */
const MAX_CYLINDERS = 16383;

export interface DriveOptions {
  /** IDENTIFY model string (up to 40 characters). */
  model?: string;
  /** IDENTIFY serial number (up to 20 characters). */
  serial?: string;
  /** IDENTIFY firmware revision (up to 8 characters). */
  firmware?: string;
}

/** The registers the host writes through the command block (and their "previous" HOB copies). */
export interface TaskFile {
  feature: number;
  nsector: number;
  sector: number;
  lcyl: number;
  hcyl: number;
  hobFeature: number;
  hobNsector: number;
  hobSector: number;
  hobLcyl: number;
  hobHcyl: number;
}

export interface DriveState {
  taskFile: TaskFile;
  status: number;
  error: number;
  multipleCount: number;
  logicalHeads: number;
  logicalSectors: number;
  pioMode: number;
  mwdmaMode: number;
  udmaMode: number;
  writeCache: boolean;
  standby: boolean;
  senseKey: number;
  asc: number;
  ascq: number;
  unitAttention: boolean;
  locked: boolean;
  trayOpen: boolean;
  mediaEvent: number;
  overlay: CowOverlayState | null;
}

/** GET EVENT STATUS NOTIFICATION media event codes. */
export const MEDIA_EVENT_NONE = 0;
export const MEDIA_EVENT_EJECT_REQUEST = 1;
export const MEDIA_EVENT_NEW_MEDIA = 2;
export const MEDIA_EVENT_REMOVAL = 3;

export class IdeDrive implements Persistent<DriveState> {
  readonly stateVersion = 1;
  readonly kind: DriveKind;
  /** The disk, or the CD-ROM's medium (undefined: no disc). */
  media: BlockBackend | undefined;
  readonly model: string;
  readonly serial: string;
  readonly firmware: string;
  /** Default CHS geometry reported by IDENTIFY (disks). */
  readonly cylinders: number;
  readonly heads: number;
  readonly sectorsPerTrack: number;

  readonly tf: TaskFile = emptyTaskFile();
  status = 0;
  error = 0;
  /** Sectors per block for READ/WRITE MULTIPLE; 0 when SET MULTIPLE has not enabled it. */
  multipleCount = 0;
  /** CHS translation set by INITIALIZE DEVICE PARAMETERS. */
  logicalHeads: number;
  logicalSectors: number;
  /** Transfer modes selected by SET FEATURES (-1: none of that kind selected). */
  pioMode = 0;
  mwdmaMode = 2;
  udmaMode = -1;
  writeCache = true;
  standby = false;
  // ATAPI sense data for REQUEST SENSE, and the medium's state.
  senseKey = 0;
  asc = 0;
  ascq = 0;
  unitAttention = false;
  locked = false;
  trayOpen = false;
  mediaEvent = MEDIA_EVENT_NONE;

  private constructor(kind: DriveKind, media: BlockBackend | undefined, options: DriveOptions) {
    this.kind = kind;
    this.media = media;
    this.model = options.model ?? (kind === "disk" ? "TSVISOR HARDDISK" : "TSVISOR DVD-ROM");
    this.serial = options.serial ?? "TSV0001";
    this.firmware = options.firmware ?? "0.1";
    const total = kind === "disk" && media ? media.sectorCount : 0;
    const g = chsGeometry(total);
    this.cylinders = g.cylinders;
    this.heads = g.heads;
    this.sectorsPerTrack = g.sectorsPerTrack;
    this.logicalHeads = g.heads;
    this.logicalSectors = g.sectorsPerTrack;
    this.resetSignature();
  }

  /** An ATA hard disk over `backend` (wrap it in CowOverlay for snapshot mode). */
  static disk(backend: BlockBackend, options: DriveOptions = {}): IdeDrive {
    return new IdeDrive("disk", backend, options);
  }

  /** An ATAPI CD/DVD-ROM drive, optionally with a disc (an ISO image). */
  static cdrom(media?: BlockBackend, options: DriveOptions = {}): IdeDrive {
    return new IdeDrive("cdrom", media, options);
  }

  get isAtapi(): boolean {
    return this.kind === "cdrom";
  }

  /** Sectors of the disk (512-byte units). */
  get sectorCount(): number {
    return this.media?.sectorCount ?? 0;
  }

  /** 2048-byte blocks of the disc in the tray (0 when there is none or the tray is open). */
  get cdBlocks(): number {
    return this.media && !this.trayOpen ? Math.floor(this.media.sectorCount / 4) : 0;
  }

  get isDvd(): boolean {
    return this.cdBlocks > CD_MAX_BLOCKS;
  }

  /** The power-on/reset signature and status (ATA-6 9.12): how the host tells ATA from ATAPI. */
  resetSignature(): void {
    const tf = this.tf;
    Object.assign(tf, emptyTaskFile());
    tf.nsector = 1;
    tf.sector = 1;
    if (this.isAtapi) {
      tf.lcyl = 0x14;
      tf.hcyl = 0xeb;
      this.status = 0;
    } else {
      this.status = STATUS_DRDY | STATUS_DSC;
    }
    this.error = 0x01; // diagnostic code: no error
  }

  /** Sets the ATAPI sense data reported by the next REQUEST SENSE. */
  setSense(key: number, asc = 0, ascq = 0): void {
    this.senseKey = key;
    this.asc = asc;
    this.ascq = ascq;
  }

  /** Puts a disc in the tray (or swaps it): the host sees a unit attention and a media event. */
  insertMedia(media: BlockBackend): void {
    if (!this.isAtapi) throw new Error("only a CD-ROM drive takes removable media");
    this.media = media;
    this.trayOpen = false;
    this.unitAttention = true;
    this.mediaEvent = MEDIA_EVENT_NEW_MEDIA;
  }

  /** Takes the disc out (user eject or START STOP UNIT with LoEj). Returns false if locked. */
  ejectMedia(force = false): boolean {
    if (!this.isAtapi) throw new Error("only a CD-ROM drive takes removable media");
    if (this.locked && !force) {
      this.mediaEvent = MEDIA_EVENT_EJECT_REQUEST;
      return false;
    }
    const had = this.media !== undefined;
    this.media = undefined;
    this.trayOpen = true;
    if (had) this.mediaEvent = MEDIA_EVENT_REMOVAL;
    return true;
  }

  /** The 256-word IDENTIFY DEVICE or IDENTIFY PACKET DEVICE block, little-endian. */
  identify(): Uint8Array {
    const w = new Uint16Array(256);
    putString(w, 10, 20, this.serial);
    putString(w, 23, 8, this.firmware);
    putString(w, 27, 40, this.model);
    // Word 49: IORDY supported, LBA supported, DMA supported.
    w[49] = (1 << 11) | (1 << 9) | (1 << 8);
    // Word 53: words 54-58, 64-70 and 88 are valid.
    w[53] = 0x0007;
    w[62] = 0;
    w[63] = 0x0007 | (this.mwdmaMode >= 0 ? 0x100 << this.mwdmaMode : 0);
    w[64] = 0x0003; // PIO modes 3 and 4
    w[65] = 120;
    w[66] = 120;
    w[67] = 120;
    w[68] = 120;
    w[88] = 0x003f | (this.udmaMode >= 0 ? 0x100 << this.udmaMode : 0);
    if (this.isAtapi) {
      // ATAPI, CD-ROM device type, removable, DRQ within 50 us, 12-byte packets.
      w[0] = 0x85c0;
      w[80] = 0x001e; // ATAPI-1 to ATAPI-4
      w[82] = (1 << 14) | (1 << 4); // NOP, PACKET
      w[85] = w[82]!;
      w[93] = 0x6000 | 0x0001;
    } else {
      const total = this.sectorCount;
      w[0] = 0x0040; // fixed disk
      w[1] = this.cylinders;
      w[3] = this.heads;
      w[4] = 512 * this.sectorsPerTrack; // obsolete: bytes per track
      w[5] = 512;
      w[6] = this.sectorsPerTrack;
      w[20] = 3; // obsolete buffer type: dual ported with cache
      w[21] = 512; // obsolete: buffer size in sectors
      w[47] = 0x8000 | MAX_MULTIPLE_SECTORS;
      w[48] = 1; // 32-bit PIO
      w[51] = 0x200;
      w[52] = 0x200;
      const curCyl = Math.min(
        0xffff,
        Math.floor(Math.min(total, 0xfffffff) / (this.logicalHeads * this.logicalSectors)),
      );
      w[54] = curCyl;
      w[55] = this.logicalHeads;
      w[56] = this.logicalSectors;
      const curCapacity = curCyl * this.logicalHeads * this.logicalSectors;
      w[57] = curCapacity & 0xffff;
      w[58] = curCapacity >>> 16;
      w[59] = this.multipleCount ? 0x100 | this.multipleCount : 0;
      const lba28 = Math.min(total, 0x0fffffff);
      w[60] = lba28 & 0xffff;
      w[61] = lba28 >>> 16;
      w[80] = 0x007e; // ATA-1 to ATA-6
      // Words 82-84 supported, 85-87 enabled: NOP, write cache, power management / FLUSH CACHE
      // (EXT), 48-bit addressing.
      w[82] = (1 << 14) | (1 << 5) | (1 << 3);
      w[83] = (1 << 14) | (1 << 13) | (1 << 12) | (1 << 10);
      w[84] = 1 << 14;
      w[85] = (1 << 14) | (this.writeCache ? 1 << 5 : 0) | (1 << 3);
      w[86] = (1 << 13) | (1 << 12) | (1 << 10);
      w[87] = 1 << 14;
      w[93] = 0x6000 | 0x0001;
      w[100] = total % 0x10000;
      w[101] = Math.floor(total / 0x10000) % 0x10000;
      w[102] = Math.floor(total / 0x1_0000_0000) % 0x10000;
      w[103] = 0;
    }
    const bytes = new Uint8Array(512);
    for (let i = 0; i < 256; i++) {
      bytes[i * 2] = w[i]! & 0xff;
      bytes[i * 2 + 1] = w[i]! >>> 8;
    }
    return bytes;
  }

  saveState(): DriveState {
    return {
      taskFile: { ...this.tf },
      status: this.status,
      error: this.error,
      multipleCount: this.multipleCount,
      logicalHeads: this.logicalHeads,
      logicalSectors: this.logicalSectors,
      pioMode: this.pioMode,
      mwdmaMode: this.mwdmaMode,
      udmaMode: this.udmaMode,
      writeCache: this.writeCache,
      standby: this.standby,
      senseKey: this.senseKey,
      asc: this.asc,
      ascq: this.ascq,
      unitAttention: this.unitAttention,
      locked: this.locked,
      trayOpen: this.trayOpen,
      mediaEvent: this.mediaEvent,
      overlay: this.media instanceof CowOverlay ? this.media.saveState() : null,
    };
  }

  loadState(state: DriveState, _version: number): void {
    if (typeof state !== "object" || state === null || typeof state.taskFile !== "object") {
      throw new StateError("IDE drive state: missing task file");
    }
    const numbers: (keyof DriveState)[] = [
      "status",
      "error",
      "multipleCount",
      "logicalHeads",
      "logicalSectors",
      "pioMode",
      "mwdmaMode",
      "udmaMode",
      "senseKey",
      "asc",
      "ascq",
      "mediaEvent",
    ];
    for (const key of numbers) {
      if (!Number.isInteger(state[key])) throw new StateError(`IDE drive state: '${key}' is not an integer`);
    }
    for (const key of Object.keys(emptyTaskFile()) as (keyof TaskFile)[]) {
      const v = state.taskFile[key];
      if (!Number.isInteger(v)) throw new StateError(`IDE drive state: task file '${key}' is not an integer`);
      this.tf[key] = v & 0xff;
    }
    if (
      state.logicalHeads < 1 ||
      state.logicalHeads > 16 ||
      state.logicalSectors < 1 ||
      state.logicalSectors > 255
    ) {
      throw new StateError("IDE drive state: bad logical geometry");
    }
    this.status = state.status & 0xff;
    this.error = state.error & 0xff;
    this.multipleCount = state.multipleCount;
    this.logicalHeads = state.logicalHeads;
    this.logicalSectors = state.logicalSectors;
    this.pioMode = state.pioMode;
    this.mwdmaMode = state.mwdmaMode;
    this.udmaMode = state.udmaMode;
    this.writeCache = state.writeCache === true;
    this.standby = state.standby === true;
    this.senseKey = state.senseKey;
    this.asc = state.asc;
    this.ascq = state.ascq;
    this.unitAttention = state.unitAttention === true;
    this.locked = state.locked === true;
    this.trayOpen = state.trayOpen === true;
    this.mediaEvent = state.mediaEvent;
    if (state.overlay) {
      if (!(this.media instanceof CowOverlay)) {
        throw new StateError("IDE drive state has a disk overlay but the drive is not in snapshot mode");
      }
      this.media.loadState(state.overlay, 1);
    }
  }
}

export function emptyTaskFile(): TaskFile {
  return {
    feature: 0,
    nsector: 0,
    sector: 0,
    lcyl: 0,
    hcyl: 0,
    hobFeature: 0,
    hobNsector: 0,
    hobSector: 0,
    hobLcyl: 0,
    hobHcyl: 0,
  };
}

/** A CHS geometry for `total` sectors: 16 heads and 63 sectors per track where it fits. */
export function chsGeometry(total: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  const sectorsPerTrack = 63;
  let heads = 16;
  let cylinders = Math.floor(total / (heads * sectorsPerTrack));
  if (cylinders === 0) {
    heads = Math.max(1, Math.min(16, Math.floor(total / sectorsPerTrack)));
    cylinders = 1;
  }
  return { cylinders: Math.min(cylinders, MAX_CYLINDERS), heads, sectorsPerTrack };
}

/** IDENTIFY strings: space padded, two characters per word with the first in the high byte. */
function putString(words: Uint16Array, first: number, length: number, text: string): void {
  const padded = text.padEnd(length, " ").slice(0, length);
  for (let i = 0; i < length; i += 2) {
    words[first + i / 2] = ((padded.charCodeAt(i) & 0xff) << 8) | (padded.charCodeAt(i + 1) & 0xff);
  }
}
