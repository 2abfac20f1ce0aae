// The "newc" cpio archive format (SVR4 without checksums), which is what the Linux kernel unpacks
// into its initial root filesystem.
//
// Every record is a 110-byte ASCII header ("070701" and thirteen 8-digit hex fields), the NUL-
// terminated name padded so that header + name is a multiple of 4 bytes, then the data padded to
// a multiple of 4. A record named "TRAILER!!!" ends the archive.
//
// The writer is reproducible: it sorts entries by name, assigns inode numbers in that order, and
// writes owner 0:0 and modification time 0, so the same input always gives the same bytes. Device
// nodes are ordinary records here, so building an initramfs needs neither root nor mknod.

import { ImagesError } from "./errors.ts";

/** File type bits of st_mode (octal, as in <sys/stat.h>). */
export const S_IFMT = 0o170000;
/** Directory. */
export const S_IFDIR = 0o040000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;
/** Character device. */
export const S_IFCHR = 0o020000;
/** Block device. */
export const S_IFBLK = 0o060000;

const NEWC_MAGIC = "070701";
const HEADER_SIZE = 110;
const TRAILER_NAME = "TRAILER!!!";
/** A field is 8 hex digits, so nothing in it may exceed 32 bits. */
const FIELD_MAX = 0xffff_ffff;

export type CpioEntry =
  | { readonly type: "directory"; readonly path: string; readonly mode?: number }
  | { readonly type: "file"; readonly path: string; readonly data: Uint8Array; readonly mode?: number }
  | { readonly type: "symlink"; readonly path: string; readonly target: string }
  | {
      readonly type: "char" | "block";
      readonly path: string;
      readonly major: number;
      readonly minor: number;
      readonly mode?: number;
    };

/** One record as read back from an archive (used by tests and by `tsvisor images list`). */
export interface CpioRecord {
  readonly name: string;
  readonly ino: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly nlink: number;
  readonly mtime: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly data: Uint8Array;
}

/**
 * Normalises an archive path: no leading "/", no empty, "." or ".." components, no NUL. The kernel
 * would accept some of these, but they are always a mistake in the caller's file list.
 */
export function normalizeArchivePath(path: string): string {
  const trimmed = path.replace(/^\/+/, "").replace(/\/+$/, "");
  if (trimmed === "" || trimmed.includes("\0")) throw new ImagesError(`invalid archive path '${path}'`);
  for (const part of trimmed.split("/")) {
    if (part === "" || part === "." || part === "..") throw new ImagesError(`invalid archive path '${path}'`);
  }
  return trimmed;
}

function permissionBits(mode: number | undefined, fallback: number, path: string): number {
  const m = mode ?? fallback;
  if (!Number.isInteger(m) || m < 0 || m > 0o7777) {
    throw new ImagesError(`invalid mode ${String(mode)} for '${path}' (permission bits only, 0 to 0o7777)`);
  }
  return m;
}

function checkDeviceNumber(n: number, what: string, path: string): number {
  if (!Number.isInteger(n) || n < 0 || n > FIELD_MAX)
    throw new ImagesError(`invalid ${what} ${n} for '${path}'`);
  return n;
}

interface PreparedRecord {
  name: string;
  mode: number;
  nlink: number;
  rdevMajor: number;
  rdevMinor: number;
  data: Uint8Array;
}

const textEncoder = new TextEncoder();

function prepare(entry: CpioEntry, name: string): PreparedRecord {
  switch (entry.type) {
    case "directory":
      return {
        name,
        mode: S_IFDIR | permissionBits(entry.mode, 0o755, name),
        nlink: 2,
        rdevMajor: 0,
        rdevMinor: 0,
        data: new Uint8Array(0),
      };
    case "file":
      return {
        name,
        mode: S_IFREG | permissionBits(entry.mode, 0o644, name),
        nlink: 1,
        rdevMajor: 0,
        rdevMinor: 0,
        data: entry.data,
      };
    case "symlink":
      if (entry.target === "" || entry.target.includes("\0")) {
        throw new ImagesError(`invalid symlink target for '${name}'`);
      }
      return {
        name,
        mode: S_IFLNK | 0o777,
        nlink: 1,
        rdevMajor: 0,
        rdevMinor: 0,
        data: textEncoder.encode(entry.target),
      };
    case "char":
    case "block":
      return {
        name,
        mode: (entry.type === "char" ? S_IFCHR : S_IFBLK) | permissionBits(entry.mode, 0o600, name),
        nlink: 1,
        rdevMajor: checkDeviceNumber(entry.major, "major number", name),
        rdevMinor: checkDeviceNumber(entry.minor, "minor number", name),
        data: new Uint8Array(0),
      };
  }
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, "0").toUpperCase();
}

function pad4(n: number): number {
  return (4 - (n % 4)) % 4;
}

/** Byte-wise comparison of UTF-8 names, so the order does not depend on the host's locale. */
function compareNames(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/**
 * Writes a newc archive. Parent directories that are not listed are added (mode 0755), entries are
 * sorted by name (so parents come before their children), inode numbers count up from 1 in that
 * order, and the archive ends with the trailer record. Duplicate paths are an error.
 */
export function writeNewcCpio(entries: Iterable<CpioEntry>): Uint8Array {
  const byName = new Map<string, PreparedRecord>();
  for (const entry of entries) {
    const name = normalizeArchivePath(entry.path);
    if (byName.has(name)) throw new ImagesError(`duplicate archive path '${name}'`);
    byName.set(name, prepare(entry, name));
  }
  for (const name of [...byName.keys()]) {
    const parts = name.split("/");
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join("/");
      const existing = byName.get(parent);
      if (existing === undefined) {
        byName.set(parent, prepare({ type: "directory", path: parent }, parent));
      } else if ((existing.mode & S_IFMT) !== S_IFDIR) {
        throw new ImagesError(`'${parent}' is not a directory but '${name}' is inside it`);
      }
    }
  }
  const sorted = [...byName.values()]
    .map((record) => ({ record, encodedName: textEncoder.encode(record.name) }))
    .sort((a, b) => compareNames(a.encodedName, b.encodedName));

  const chunks: Uint8Array[] = [];
  let total = 0;
  const push = (bytes: Uint8Array) => {
    chunks.push(bytes);
    total += bytes.length;
  };
  const writeRecord = (ino: number, record: PreparedRecord, encodedName: Uint8Array) => {
    if (record.data.length > FIELD_MAX)
      throw new ImagesError(`'${record.name}' is too large for a cpio archive`);
    const nameSize = encodedName.length + 1;
    const header =
      NEWC_MAGIC +
      hex8(ino) +
      hex8(record.mode) +
      hex8(0) + // uid: root
      hex8(0) + // gid: root
      hex8(record.nlink) +
      hex8(0) + // mtime: fixed for reproducible builds
      hex8(record.data.length) +
      hex8(0) + // devmajor of the file system holding the file: meaningless here
      hex8(0) + // devminor
      hex8(record.rdevMajor) +
      hex8(record.rdevMinor) +
      hex8(nameSize) +
      hex8(0); // check: only used by the "070702" CRC format
    const headAndName = new Uint8Array(HEADER_SIZE + nameSize + pad4(HEADER_SIZE + nameSize));
    headAndName.set(textEncoder.encode(header), 0);
    headAndName.set(encodedName, HEADER_SIZE);
    push(headAndName);
    if (record.data.length > 0) {
      push(record.data);
      const padding = pad4(record.data.length);
      if (padding > 0) push(new Uint8Array(padding));
    }
  };

  sorted.forEach(({ record, encodedName }, index) => {
    writeRecord(index + 1, record, encodedName);
  });
  writeRecord(
    0,
    { name: TRAILER_NAME, mode: 0, nlink: 1, rdevMajor: 0, rdevMinor: 0, data: new Uint8Array(0) },
    textEncoder.encode(TRAILER_NAME),
  );

  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

const textDecoder = new TextDecoder("utf-8", { fatal: false });

/**
 * Reads a newc archive back into records (the trailer excluded). Stops at the trailer; anything
 * after it (the kernel allows concatenated archives and zero padding) is ignored. A malformed
 * archive throws an ImagesError naming the offset.
 */
export function readNewcCpio(bytes: Uint8Array): CpioRecord[] {
  const records: CpioRecord[] = [];
  let offset = 0;
  for (;;) {
    if (offset + HEADER_SIZE > bytes.length)
      throw new ImagesError(`cpio archive truncated at offset ${offset}`);
    const header = textDecoder.decode(bytes.subarray(offset, offset + HEADER_SIZE));
    if (!header.startsWith(NEWC_MAGIC)) throw new ImagesError(`bad cpio magic at offset ${offset}`);
    const fields: number[] = [];
    for (let i = 0; i < 13; i++) {
      const text = header.slice(6 + i * 8, 14 + i * 8);
      if (!/^[0-9A-Fa-f]{8}$/.test(text)) throw new ImagesError(`bad cpio header field at offset ${offset}`);
      fields.push(Number.parseInt(text, 16));
    }
    const [ino, mode, uid, gid, nlink, mtime, fileSize, , , rdevMajor, rdevMinor, nameSize] = fields as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    const nameStart = offset + HEADER_SIZE;
    if (nameSize < 1 || nameStart + nameSize > bytes.length) {
      throw new ImagesError(`bad cpio name size at offset ${offset}`);
    }
    const name = textDecoder.decode(bytes.subarray(nameStart, nameStart + nameSize - 1));
    const dataStart = nameStart + nameSize + pad4(HEADER_SIZE + nameSize);
    if (name === TRAILER_NAME) return records;
    if (dataStart + fileSize > bytes.length) throw new ImagesError(`cpio data of '${name}' truncated`);
    records.push({
      name,
      ino,
      mode,
      uid,
      gid,
      nlink,
      mtime,
      rdevMajor,
      rdevMinor,
      data: bytes.subarray(dataStart, dataStart + fileSize),
    });
    offset = dataStart + fileSize + pad4(fileSize);
  }
}
