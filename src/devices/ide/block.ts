// Block backends: where a drive's sectors live on the host.
//
// The interface is callback-based so that a backend may complete later (a worker thread, an
// asynchronous file handle) by queueing the callback to the VM's run loop; the backends here
// are synchronous and call back before returning, which the IDE model handles the same way.
// Sectors are always 512 bytes; a CD-ROM addresses 2048-byte blocks as four of them.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from "node:fs";
import { type FileHandle, open as openFile } from "node:fs/promises";
import { type Persistent, StateError } from "../../core/persist.ts";

export const SECTOR_SIZE = 512;

/** Completion of a block request: `error` is set if the host I/O failed. */
export type BlockCallback = (error: Error | undefined) => void;

export interface BlockBackend {
  /** Size in 512-byte sectors. */
  readonly sectorCount: number;
  /** Writes fail (the drive reports a write-protect error). */
  readonly readOnly: boolean;
  /** Reads `count` sectors from `sector` into `into` (at least count * 512 bytes). */
  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void;
  /** Writes `count` sectors from `from` at `sector`. */
  write(sector: number, count: number, from: Uint8Array, done: BlockCallback): void;
  /** Makes earlier writes durable. */
  flush(done: BlockCallback): void;
}

function checkRange(
  backend: BlockBackend,
  sector: number,
  count: number,
  buffer: Uint8Array,
): Error | undefined {
  if (!Number.isInteger(sector) || !Number.isInteger(count) || sector < 0 || count < 0) {
    return new RangeError(`bad block request ${sector}+${count}`);
  }
  if (sector + count > backend.sectorCount) {
    return new RangeError(`sectors ${sector}+${count} are past the end (${backend.sectorCount})`);
  }
  if (buffer.length < count * SECTOR_SIZE) return new RangeError("block buffer is too small");
  return undefined;
}

/** A disk held in memory (tests, scratch disks). */
export class MemoryBlockBackend implements BlockBackend {
  readonly bytes: Uint8Array;
  readonly readOnly: boolean;

  /** `content` is used as-is (padded to whole sectors by copying when needed). */
  constructor(content: Uint8Array | number, readOnly = false) {
    if (typeof content === "number") {
      this.bytes = new Uint8Array(content * SECTOR_SIZE);
    } else if (content.length % SECTOR_SIZE !== 0) {
      this.bytes = new Uint8Array(Math.ceil(content.length / SECTOR_SIZE) * SECTOR_SIZE);
      this.bytes.set(content);
    } else {
      this.bytes = content;
    }
    this.readOnly = readOnly;
  }

  get sectorCount(): number {
    return this.bytes.length / SECTOR_SIZE;
  }

  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void {
    const error = checkRange(this, sector, count, into);
    if (!error) into.set(this.bytes.subarray(sector * SECTOR_SIZE, (sector + count) * SECTOR_SIZE));
    done(error);
  }

  write(sector: number, count: number, from: Uint8Array, done: BlockCallback): void {
    let error = checkRange(this, sector, count, from);
    if (!error && this.readOnly) error = new Error("the disk is read-only");
    if (!error) this.bytes.set(from.subarray(0, count * SECTOR_SIZE), sector * SECTOR_SIZE);
    done(error);
  }

  flush(done: BlockCallback): void {
    done(undefined);
  }
}

/** A raw image file (disk image or ISO), accessed with synchronous positioned I/O. */
export class FileBlockBackend implements BlockBackend {
  readonly path: string;
  readonly readOnly: boolean;
  readonly sectorCount: number;
  private fd: number | undefined;
  /** Real file length; a partial last sector reads as zero-padded. */
  private readonly fileSize: number;

  constructor(path: string, options: { readOnly?: boolean } = {}) {
    this.path = path;
    this.readOnly = options.readOnly ?? false;
    try {
      this.fd = openSync(path, this.readOnly ? "r" : "r+");
    } catch (e) {
      throw new Error(`cannot open disk image ${path}: ${(e as Error).message}`);
    }
    this.fileSize = fstatSync(this.fd).size;
    this.sectorCount = Math.ceil(this.fileSize / SECTOR_SIZE);
  }

  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void {
    const error =
      checkRange(this, sector, count, into) ??
      this.io(() => {
        const length = count * SECTOR_SIZE;
        const position = sector * SECTOR_SIZE;
        let got = 0;
        while (got < length && position + got < this.fileSize) {
          const n = readSync(this.fd!, into, got, length - got, position + got);
          if (n === 0) break;
          got += n;
        }
        into.fill(0, got, length);
      });
    done(error);
  }

  write(sector: number, count: number, from: Uint8Array, done: BlockCallback): void {
    let error = checkRange(this, sector, count, from);
    if (!error && this.readOnly) error = new Error(`${this.path} is read-only`);
    error ??= this.io(() => {
      const length = count * SECTOR_SIZE;
      let put = 0;
      while (put < length) put += writeSync(this.fd!, from, put, length - put, sector * SECTOR_SIZE + put);
    });
    done(error);
  }

  flush(done: BlockCallback): void {
    done(this.readOnly ? undefined : this.io(() => fsyncSync(this.fd!)));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private io(operation: () => void): Error | undefined {
    if (this.fd === undefined) return new Error(`${this.path} is closed`);
    try {
      operation();
      return undefined;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }
}

export interface AsyncFileOptions {
  readOnly?: boolean;
  /**
   * Delivers completions to the VM's run loop (RunLoop.post), so they run between instructions
   * and wake a halted CPU.
   */
  post: (task: () => void) => void;
}

/**
 * A raw image file read and written asynchronously (the libuv thread pool): the CPU keeps
 * running while the host does the I/O, and the device sees BSY until the completion arrives
 * through `post`. Open with `AsyncFileBlockBackend.open`.
 */
export class AsyncFileBlockBackend implements BlockBackend {
  readonly path: string;
  readonly readOnly: boolean;
  readonly sectorCount: number;
  private readonly handle: FileHandle;
  private readonly fileSize: number;
  private readonly post: (task: () => void) => void;
  private closed = false;

  private constructor(path: string, handle: FileHandle, fileSize: number, options: AsyncFileOptions) {
    this.path = path;
    this.handle = handle;
    this.fileSize = fileSize;
    this.readOnly = options.readOnly ?? false;
    this.post = options.post;
    this.sectorCount = Math.ceil(fileSize / SECTOR_SIZE);
  }

  static async open(path: string, options: AsyncFileOptions): Promise<AsyncFileBlockBackend> {
    let handle: FileHandle;
    try {
      handle = await openFile(path, options.readOnly ? "r" : "r+");
    } catch (e) {
      throw new Error(`cannot open disk image ${path}: ${(e as Error).message}`);
    }
    const { size } = await handle.stat();
    return new AsyncFileBlockBackend(path, handle, size, options);
  }

  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void {
    const error = checkRange(this, sector, count, into) ?? this.closedError();
    if (error) {
      this.post(() => done(error));
      return;
    }
    const target = into.subarray(0, count * SECTOR_SIZE);
    const position = sector * SECTOR_SIZE;
    this.complete(async () => {
      let got = 0;
      while (got < target.length && position + got < this.fileSize) {
        const { bytesRead } = await this.handle.read(target, got, target.length - got, position + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      target.fill(0, got);
    }, done);
  }

  write(sector: number, count: number, from: Uint8Array, done: BlockCallback): void {
    let error = checkRange(this, sector, count, from) ?? this.closedError();
    if (!error && this.readOnly) error = new Error(`${this.path} is read-only`);
    if (error) {
      const failure = error;
      this.post(() => done(failure));
      return;
    }
    const source = from.subarray(0, count * SECTOR_SIZE);
    const position = sector * SECTOR_SIZE;
    this.complete(async () => {
      let put = 0;
      while (put < source.length) {
        const { bytesWritten } = await this.handle.write(source, put, source.length - put, position + put);
        put += bytesWritten;
      }
    }, done);
  }

  flush(done: BlockCallback): void {
    if (this.readOnly) this.post(() => done(undefined));
    else this.complete(() => this.handle.sync(), done);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.handle.close();
  }

  private closedError(): Error | undefined {
    return this.closed ? new Error(`${this.path} is closed`) : undefined;
  }

  private complete(operation: () => Promise<void>, done: BlockCallback): void {
    operation().then(
      () => this.post(() => done(undefined)),
      (e: unknown) => this.post(() => done(e instanceof Error ? e : new Error(String(e)))),
    );
  }
}

export interface CowOverlayState {
  /** Sector numbers held in the overlay, ascending. */
  sectors: Float64Array;
  /** Their contents, 512 bytes each, in the same order. */
  data: Uint8Array;
}

/**
 * Copy-on-write over another backend ("snapshot" mode): writes are kept in memory and the base
 * is never written. The overlay is guest state, so it is `Persistent`.
 */
export class CowOverlay implements BlockBackend, Persistent<CowOverlayState> {
  readonly stateVersion = 1;
  readonly base: BlockBackend;
  readonly readOnly = false;
  private readonly written = new Map<number, Uint8Array>();

  constructor(base: BlockBackend) {
    this.base = base;
  }

  get sectorCount(): number {
    return this.base.sectorCount;
  }

  /** Sectors written so far. */
  get overlaySectors(): number {
    return this.written.size;
  }

  read(sector: number, count: number, into: Uint8Array, done: BlockCallback): void {
    const error = checkRange(this, sector, count, into);
    if (error) {
      done(error);
      return;
    }
    // Lay the overlay's sectors in place, then read the runs between them from the base; done
    // runs once every base read has completed (they may complete later).
    const runs: [number, number][] = [];
    for (let s = sector; s < sector + count; s++) {
      const copy = this.written.get(s);
      if (copy) into.set(copy, (s - sector) * SECTOR_SIZE);
      else if (runs.length > 0 && runs[runs.length - 1]![1] === s) runs[runs.length - 1]![1] = s + 1;
      else runs.push([s, s + 1]);
    }
    if (runs.length === 0) {
      done(undefined);
      return;
    }
    let pending = runs.length;
    let failure: Error | undefined;
    for (const [start, end] of runs) {
      const off = (start - sector) * SECTOR_SIZE;
      this.base.read(start, end - start, into.subarray(off, off + (end - start) * SECTOR_SIZE), (e) => {
        failure ??= e;
        if (--pending === 0) done(failure);
      });
    }
  }

  write(sector: number, count: number, from: Uint8Array, done: BlockCallback): void {
    const error = checkRange(this, sector, count, from);
    if (!error) {
      for (let i = 0; i < count; i++) {
        this.written.set(sector + i, from.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE));
      }
    }
    done(error);
  }

  flush(done: BlockCallback): void {
    done(undefined);
  }

  saveState(): CowOverlayState {
    const sectors = Float64Array.from([...this.written.keys()].sort((a, b) => a - b));
    const data = new Uint8Array(sectors.length * SECTOR_SIZE);
    sectors.forEach((s, i) => {
      data.set(this.written.get(s)!, i * SECTOR_SIZE);
    });
    return { sectors, data };
  }

  loadState(state: CowOverlayState, _version: number): void {
    const { sectors, data } = state;
    if (!(sectors instanceof Float64Array) || !(data instanceof Uint8Array)) {
      throw new StateError("disk overlay: expected sector numbers and data");
    }
    if (data.length !== sectors.length * SECTOR_SIZE) {
      throw new StateError("disk overlay: data does not match the sector list");
    }
    this.written.clear();
    sectors.forEach((s, i) => {
      if (!Number.isInteger(s) || s < 0 || s >= this.sectorCount) {
        throw new StateError(`disk overlay: sector ${s} is outside the disk`);
      }
      this.written.set(s, data.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE));
    });
  }
}
