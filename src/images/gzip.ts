// gzip (RFC 1952) with a fixed header, so that the same input always gives the same bytes: no
// file name, modification time 0, and a fixed operating-system byte instead of the host's.

import { crc32, deflateRawSync, gunzipSync } from "node:zlib";

/** Header flag bits and fields from RFC 1952, section 2.3. */
const GZIP_ID1 = 0x1f;
const GZIP_ID2 = 0x8b;
/** CM: deflate. */
const GZIP_CM_DEFLATE = 8;
/** XFL: compressor used maximum compression (level 9). */
const GZIP_XFL_MAX = 2;
/** XFL: compressor used the fastest algorithm (level 1). */
const GZIP_XFL_FAST = 4;
/** OS: Unix, whatever the host is. */
const GZIP_OS_UNIX = 3;

/** Compresses `data` into a reproducible gzip member. */
export function gzipReproducible(data: Uint8Array, level = 9): Uint8Array {
  const deflated = deflateRawSync(data, { level, memLevel: 9, windowBits: 15, strategy: 0 });
  const out = new Uint8Array(10 + deflated.length + 8);
  const xfl = level === 9 ? GZIP_XFL_MAX : level === 1 ? GZIP_XFL_FAST : 0;
  // ID1 ID2 CM FLG MTIME(4, zero) XFL OS
  out.set([GZIP_ID1, GZIP_ID2, GZIP_CM_DEFLATE, 0, 0, 0, 0, 0, xfl, GZIP_OS_UNIX], 0);
  out.set(deflated, 10);
  const trailer = new DataView(out.buffer, out.byteOffset + 10 + deflated.length, 8);
  trailer.setUint32(0, crc32(data) >>> 0, true);
  trailer.setUint32(4, data.length >>> 0, true); // ISIZE: length modulo 2^32
  return out;
}

/** Decompresses a gzip stream (for tests and for reading an initramfs back). */
export function gunzip(data: Uint8Array): Uint8Array {
  return new Uint8Array(gunzipSync(data));
}
