// The ATAPI CD-ROM command set (SFF-8020 / MMC): turns a 12-byte packet into a result the
// channel then carries out (data to send, 2048-byte blocks to read, or an error with sense
// data). It never touches registers or transfers itself.

import type { IdeDrive } from "./drive.ts";
import { MEDIA_EVENT_NONE } from "./drive.ts";

export const CD_BLOCK_SIZE = 2048;

export const SENSE_NONE = 0x00;
export const SENSE_NOT_READY = 0x02;
export const SENSE_MEDIUM_ERROR = 0x03;
export const SENSE_ILLEGAL_REQUEST = 0x05;
export const SENSE_UNIT_ATTENTION = 0x06;

/** Additional sense codes. */
export const ASC_UNRECOVERED_READ_ERROR = 0x11;
export const ASC_INVALID_OPCODE = 0x20;
export const ASC_LBA_OUT_OF_RANGE = 0x21;
export const ASC_INVALID_FIELD_IN_CDB = 0x24;
export const ASC_MEDIUM_MAY_HAVE_CHANGED = 0x28;
export const ASC_SAVING_PARAMETERS_NOT_SUPPORTED = 0x39;
export const ASC_MEDIUM_NOT_PRESENT = 0x3a;
export const ASC_MEDIUM_REMOVAL_PREVENTED = 0x53;

export const CMD_TEST_UNIT_READY = 0x00;
export const CMD_REQUEST_SENSE = 0x03;
export const CMD_INQUIRY = 0x12;
export const CMD_MODE_SENSE_6 = 0x1a;
export const CMD_START_STOP_UNIT = 0x1b;
export const CMD_PREVENT_ALLOW = 0x1e;
export const CMD_READ_CAPACITY = 0x25;
export const CMD_READ_10 = 0x28;
export const CMD_SEEK_10 = 0x2b;
export const CMD_READ_TOC = 0x43;
export const CMD_GET_CONFIGURATION = 0x46;
export const CMD_GET_EVENT_STATUS = 0x4a;
export const CMD_MODE_SENSE_10 = 0x5a;
export const CMD_READ_12 = 0xa8;
export const CMD_MECHANISM_STATUS = 0xbd;

/** MMC profile numbers for GET CONFIGURATION. */
const PROFILE_CD_ROM = 0x0008;
const PROFILE_DVD_ROM = 0x0010;
/** Mode page codes. */
const PAGE_ERROR_RECOVERY = 0x01;
const PAGE_CAPABILITIES = 0x2a;
const PAGE_ALL = 0x3f;
/** Medium type byte of the mode parameter header. */
const MEDIUM_CD_DATA = 0x01;
const MEDIUM_NONE_DOOR_CLOSED = 0x70;
/** Track descriptor ADR/control byte: Q sub-channel position data, data track. */
const ADR_CONTROL_DATA = 0x14;
/** Lead-out track number in the TOC. */
const LEAD_OUT = 0xaa;
/** A disc's first track starts at MSF 00:02:00, i.e. 150 frames before LBA 0. */
const MSF_OFFSET = 150;

export type AtapiResult =
  | { readonly kind: "data"; readonly data: Uint8Array }
  | { readonly kind: "read"; readonly lba: number; readonly blocks: number }
  | { readonly kind: "done" }
  | { readonly kind: "error"; readonly key: number; readonly asc: number; readonly ascq: number };

const DONE: AtapiResult = { kind: "done" };

function fail(drive: IdeDrive, key: number, asc: number, ascq = 0): AtapiResult {
  drive.setSense(key, asc, ascq);
  return { kind: "error", key, asc, ascq };
}

function reply(drive: IdeDrive, data: Uint8Array, allocationLength: number): AtapiResult {
  drive.setSense(SENSE_NONE);
  return { kind: "data", data: data.subarray(0, Math.min(data.length, allocationLength)) };
}

function be16(p: Uint8Array, at: number): number {
  return (p[at]! << 8) | p[at + 1]!;
}
function be32(p: Uint8Array, at: number): number {
  return ((p[at]! << 24) | (p[at + 1]! << 16) | (p[at + 2]! << 8) | p[at + 3]!) >>> 0;
}
function put16(p: Uint8Array, at: number, v: number): void {
  p[at] = v >>> 8;
  p[at + 1] = v;
}
function put32(p: Uint8Array, at: number, v: number): void {
  p[at] = v >>> 24;
  p[at + 1] = v >>> 16;
  p[at + 2] = v >>> 8;
  p[at + 3] = v;
}

/** An address field of a TOC entry: LBA or, with `msf`, 0/minute/second/frame. */
function putAddress(p: Uint8Array, at: number, lba: number, msf: boolean): void {
  if (!msf) {
    put32(p, at, lba);
    return;
  }
  const frames = lba + MSF_OFFSET;
  p[at] = 0;
  p[at + 1] = Math.floor(frames / (75 * 60));
  p[at + 2] = Math.floor(frames / 75) % 60;
  p[at + 3] = frames % 75;
}

/** Commands that neither report a pending unit attention nor need a disc. */
const NO_ATTENTION = new Set([CMD_INQUIRY, CMD_REQUEST_SENSE, CMD_GET_EVENT_STATUS, CMD_GET_CONFIGURATION]);
/** Commands that need a disc in the drive. */
const NEEDS_MEDIUM = new Set([
  CMD_TEST_UNIT_READY,
  CMD_READ_CAPACITY,
  CMD_READ_10,
  CMD_READ_12,
  CMD_READ_TOC,
  CMD_SEEK_10,
]);

/** Interprets one packet command for `drive`. */
export function executePacket(drive: IdeDrive, packet: Uint8Array): AtapiResult {
  const op = packet[0]!;
  if (drive.unitAttention && !NO_ATTENTION.has(op)) {
    drive.unitAttention = false;
    return fail(drive, SENSE_UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED);
  }
  const blocks = drive.cdBlocks;
  if (NEEDS_MEDIUM.has(op) && blocks === 0) return fail(drive, SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);

  switch (op) {
    case CMD_TEST_UNIT_READY:
    case CMD_SEEK_10:
      drive.setSense(SENSE_NONE);
      return DONE;

    case CMD_REQUEST_SENSE: {
      const data = new Uint8Array(18);
      data[0] = 0x70; // current error, fixed format
      data[2] = drive.senseKey;
      data[7] = 10; // additional sense length
      data[12] = drive.asc;
      data[13] = drive.ascq;
      // Reading the sense data clears it, as for a drive with auto-sense off.
      const result = { kind: "data", data: data.subarray(0, Math.min(18, packet[4]!)) } as const;
      drive.setSense(SENSE_NONE);
      return result;
    }

    case CMD_INQUIRY: {
      const data = new Uint8Array(36);
      data[0] = 0x05; // CD/DVD device
      data[1] = 0x80; // removable medium
      data[2] = 0x00;
      data[3] = 0x21; // ATAPI transport, response data format 1
      data[4] = 36 - 5;
      writeAscii(data, 8, 8, "TSVISOR");
      writeAscii(data, 16, 16, drive.model);
      writeAscii(data, 32, 4, drive.firmware);
      return reply(drive, data, packet[4]!);
    }

    case CMD_READ_CAPACITY: {
      const data = new Uint8Array(8);
      put32(data, 0, blocks - 1);
      put32(data, 4, CD_BLOCK_SIZE);
      return reply(drive, data, 8);
    }

    case CMD_READ_10:
    case CMD_READ_12: {
      const lba = be32(packet, 2);
      const count = op === CMD_READ_10 ? be16(packet, 7) : be32(packet, 6);
      if (lba + count > blocks) return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
      drive.setSense(SENSE_NONE);
      return count === 0 ? DONE : { kind: "read", lba, blocks: count };
    }

    case CMD_READ_TOC:
      return readToc(drive, packet, blocks);

    case CMD_MODE_SENSE_6:
    case CMD_MODE_SENSE_10:
      return modeSense(drive, packet, op === CMD_MODE_SENSE_10);

    case CMD_GET_CONFIGURATION:
      return getConfiguration(drive, packet);

    case CMD_GET_EVENT_STATUS:
      return getEventStatus(drive, packet);

    case CMD_PREVENT_ALLOW:
      drive.locked = (packet[4]! & 1) !== 0;
      drive.setSense(SENSE_NONE);
      return DONE;

    case CMD_START_STOP_UNIT: {
      const start = (packet[4]! & 1) !== 0;
      const loadEject = (packet[4]! & 2) !== 0;
      if (loadEject && !start) {
        if (!drive.ejectMedia()) {
          return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_MEDIUM_REMOVAL_PREVENTED, 0x02);
        }
      } else if (loadEject && start) {
        drive.trayOpen = false;
      }
      drive.setSense(SENSE_NONE);
      return DONE;
    }

    case CMD_MECHANISM_STATUS: {
      const data = new Uint8Array(8);
      // No changer, tray closed or open, no slots.
      data[1] = drive.trayOpen ? 0x10 : 0;
      return reply(drive, data, be16(packet, 8));
    }

    default:
      return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_INVALID_OPCODE);
  }
}

function readToc(drive: IdeDrive, packet: Uint8Array, blocks: number): AtapiResult {
  const msf = (packet[1]! & 2) !== 0;
  const startTrack = packet[6]!;
  const allocation = be16(packet, 7);
  // MMC puts the format in byte 2; SFF-8020 drives took it from the top of byte 9.
  const format = packet[2]! & 0x0f || packet[9]! >> 6;
  switch (format) {
    case 0: {
      if (startTrack > 1 && startTrack !== LEAD_OUT) {
        return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
      }
      const data = new Uint8Array(4 + 8 * 2);
      let at = 4;
      if (startTrack <= 1) {
        data[at + 1] = ADR_CONTROL_DATA;
        data[at + 2] = 1;
        putAddress(data, at + 4, 0, msf);
        at += 8;
      }
      data[at + 1] = ADR_CONTROL_DATA;
      data[at + 2] = LEAD_OUT;
      putAddress(data, at + 4, blocks, msf);
      at += 8;
      put16(data, 0, at - 2);
      data[2] = 1; // first track
      data[3] = 1; // last track
      return reply(drive, data.subarray(0, at), allocation);
    }
    case 1: {
      // Multi-session information: one session whose first track starts at LBA 0.
      const data = new Uint8Array(12);
      put16(data, 0, 10);
      data[2] = 1;
      data[3] = 1;
      data[5] = ADR_CONTROL_DATA;
      data[6] = 1;
      putAddress(data, 8, 0, msf);
      return reply(drive, data, allocation);
    }
    case 2: {
      // Raw TOC: the lead-in's A0 (first track), A1 (last track), A2 (lead-out) and track 1.
      const entries: [number, number][] = [
        [0xa0, -1],
        [0xa1, -1],
        [0xa2, blocks],
        [1, 0],
      ];
      const data = new Uint8Array(4 + 11 * entries.length);
      data[2] = 1; // first session
      data[3] = 1; // last session
      entries.forEach(([point, lba], i) => {
        const at = 4 + 11 * i;
        data[at] = 1; // session
        data[at + 1] = ADR_CONTROL_DATA;
        data[at + 2] = 0; // TNO: lead-in
        data[at + 3] = point;
        if (point === 0xa0) {
          data[at + 8] = 1; // first track number
          data[at + 9] = 0x00; // disc type: CD-ROM
        } else if (point === 0xa1) {
          data[at + 8] = 1; // last track number
        } else {
          const address = new Uint8Array(4);
          putAddress(address, 0, lba, msf);
          data.set(address.subarray(1), at + 8);
        }
      });
      put16(data, 0, data.length - 2);
      return reply(drive, data, allocation);
    }
    default:
      return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
  }
}

function modeSense(drive: IdeDrive, packet: Uint8Array, ten: boolean): AtapiResult {
  const pageCode = packet[2]! & 0x3f;
  const pageControl = packet[2]! >> 6;
  const allocation = ten ? be16(packet, 7) : packet[4]!;
  if (pageControl === 3) return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_SAVING_PARAMETERS_NOT_SUPPORTED);
  const changeable = pageControl === 1;
  const pages: Uint8Array[] = [];
  if (pageCode === PAGE_ERROR_RECOVERY || pageCode === PAGE_ALL) {
    const page = new Uint8Array(8);
    page[0] = PAGE_ERROR_RECOVERY;
    page[1] = 6;
    if (!changeable) page[3] = 5; // read retry count
    pages.push(page);
  }
  if (pageCode === PAGE_CAPABILITIES || pageCode === PAGE_ALL) {
    const page = new Uint8Array(20);
    page[0] = PAGE_CAPABILITIES;
    page[1] = 18;
    if (!changeable) {
      page[2] = 0x3b; // reads CD-R, CD-RW, method 2, DVD-ROM, DVD-R
      page[4] = 0x71; // audio play, composite, digital ports, multi-session
      page[5] = 0x7f; // CD-DA commands, accurate stream, sub-channel, C2, ISRC, UPC
      page[6] = 0x29 | (drive.locked ? 0x02 : 0); // lock, eject, tray loading mechanism
      page[7] = 0x03; // separate volume and mute
      put16(page, 8, 706 * 4); // maximum read speed (kB/s)
      put16(page, 10, 2); // volume levels
      put16(page, 12, 512); // buffer size (KiB)
      put16(page, 14, 706 * 4); // current read speed
    }
    pages.push(page);
  }
  if (pages.length === 0) return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
  const headerLength = ten ? 8 : 4;
  const body = pages.reduce((n, p) => n + p.length, 0);
  const data = new Uint8Array(headerLength + body);
  const medium = drive.cdBlocks > 0 ? MEDIUM_CD_DATA : MEDIUM_NONE_DOOR_CLOSED;
  if (ten) {
    put16(data, 0, data.length - 2);
    data[2] = medium;
  } else {
    data[0] = data.length - 1;
    data[1] = medium;
  }
  let at = headerLength;
  for (const p of pages) {
    data.set(p, at);
    at += p.length;
  }
  return reply(drive, data, allocation);
}

function getConfiguration(drive: IdeDrive, packet: Uint8Array): AtapiResult {
  const requestType = packet[1]! & 3;
  const startFeature = be16(packet, 2);
  const allocation = be16(packet, 7);
  const current = drive.cdBlocks === 0 ? 0 : drive.isDvd ? PROFILE_DVD_ROM : PROFILE_CD_ROM;
  const features: { code: number; current: boolean; body: number[] }[] = [
    {
      code: 0x0000, // profile list
      current: true,
      body: [
        ...[PROFILE_DVD_ROM, PROFILE_CD_ROM].flatMap((p) => [p >> 8, p & 0xff, p === current ? 1 : 0, 0]),
      ],
    },
    { code: 0x0001, current: true, body: [0, 0, 0, 2, 0, 0, 0, 0] }, // core: ATAPI interface
    { code: 0x0003, current: true, body: [0x29, 0, 0, 0] }, // removable medium: tray, eject, lock
  ];
  const parts: number[] = [];
  for (const f of features) {
    if (requestType === 2 ? f.code !== startFeature : f.code < startFeature) continue;
    if (requestType === 1 && !f.current) continue;
    // Version 0 for the profile list, 1 for core (ATAPI-era), 0 otherwise; persistent, current.
    const version = f.code === 0x0001 ? 1 : 0;
    parts.push(f.code >> 8, f.code & 0xff, (version << 2) | (f.code <= 1 ? 2 : 0) | (f.current ? 1 : 0));
    parts.push(f.body.length, ...f.body);
  }
  const data = new Uint8Array(8 + parts.length);
  put32(data, 0, data.length - 4);
  put16(data, 6, current);
  data.set(parts, 8);
  return reply(drive, data, allocation);
}

function getEventStatus(drive: IdeDrive, packet: Uint8Array): AtapiResult {
  // Only polled operation is supported.
  if (!(packet[1]! & 1)) return fail(drive, SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB);
  const classes = packet[4]!;
  const allocation = be16(packet, 7);
  const MEDIA_CLASS = 4;
  if (!(classes & (1 << MEDIA_CLASS))) {
    // No supported class requested: header only, "no event available".
    const data = new Uint8Array(4);
    put16(data, 0, 2);
    data[2] = 0x80;
    data[3] = 1 << MEDIA_CLASS;
    return reply(drive, data, allocation);
  }
  const data = new Uint8Array(8);
  put16(data, 0, 6);
  data[2] = MEDIA_CLASS;
  data[3] = 1 << MEDIA_CLASS;
  data[4] = drive.mediaEvent;
  data[5] = (drive.cdBlocks > 0 ? 0x02 : 0) | (drive.trayOpen ? 0x01 : 0);
  drive.mediaEvent = MEDIA_EVENT_NONE;
  return reply(drive, data, allocation);
}

function writeAscii(p: Uint8Array, at: number, length: number, text: string): void {
  const padded = text.padEnd(length, " ").slice(0, length);
  for (let i = 0; i < length; i++) p[at + i] = padded.charCodeAt(i) & 0x7f;
}
