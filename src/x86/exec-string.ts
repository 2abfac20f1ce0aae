// String instructions (MOVS CMPS STOS LODS SCAS INS OUTS) with REP/REPE/REPNE, in 16- and 32-bit
// addressing. Registers are updated after every element so that a fault in the middle restarts
// the instruction where it stopped; long repetitions yield after REP_CHUNK elements (EIP is set
// back to the instruction) so interrupts are taken with bounded latency.

import type { Cpu } from "./cpu.ts";
import type { Insn } from "./decoder.ts";
import { DF, ES, LZ_SUB, REP_CHUNK } from "./flags.ts";

const SI = 6;
const DI = 7;

function index(cpu: Cpu, i: Insn, r: number): number {
  return i.addr32 ? cpu.regs[r]! >>> 0 : cpu.r16[r << 1]!;
}
function advance(cpu: Cpu, i: Insn, r: number, delta: number): void {
  if (i.addr32) cpu.regs[r] = cpu.regs[r]! + delta;
  else cpu.r16[r << 1] = cpu.r16[r << 1]! + delta;
}
function count(cpu: Cpu, i: Insn): number {
  return i.addr32 ? cpu.regs[1]! >>> 0 : cpu.r16[2]!;
}
function setCount(cpu: Cpu, i: Insn, n: number): void {
  if (i.addr32) cpu.regs[1] = n;
  else cpu.r16[2] = n;
}
function step(cpu: Cpu, size: number): number {
  return cpu.flagsRaw & DF ? -size : size;
}

/**
 * Number of elements to run now: 1 without REP, else the count capped at REP_CHUNK. Returns 0 when
 * a REP count is already zero.
 */
function elements(cpu: Cpu, i: Insn): number {
  if (i.rep === 0) return 1;
  return Math.min(count(cpu, i), REP_CHUNK);
}

/** After one element under REP: decrements the count. */
function consumed(cpu: Cpu, i: Insn): void {
  if (i.rep !== 0) setCount(cpu, i, (count(cpu, i) - 1) >>> 0);
}

/** After a chunk: a REP with elements left runs again (from the same EIP). */
function yieldIfUnfinished(cpu: Cpu, i: Insn): void {
  if (i.rep !== 0 && count(cpu, i) !== 0) cpu.ip = cpu.instrStart;
}

/** REPE/REPNE termination for CMPS/SCAS after an element. */
function conditionEnds(cpu: Cpu, i: Insn): boolean {
  if (i.rep === 0) return false;
  const z = cpu.zf();
  return (i.rep === 1 && !z) || (i.rep === 2 && z);
}

/**
 * REP MOVS/STOS fast path (32-bit addressing, DF=0): up to `limit` elements in RAM that lies back
 * to back, across pages where their TLB entries allow (see `Cpu.directSpan`), copied or filled at
 * once. Returns how many elements it did (0: take the element loop).
 */
function bulk(cpu: Cpu, i: Insn, limit: number, fill: boolean): number {
  const s = i.size;
  const di = cpu.regs[DI]! >>> 0;
  const dstLin = (cpu.segBase[ES]! + di) | 0;
  let span = cpu.directSpan(dstLin, limit * s, true);
  let si = 0;
  let srcLin = 0;
  if (!fill) {
    si = cpu.regs[SI]! >>> 0;
    srcLin = (cpu.segBase[i.seg]! + si) | 0;
    span = Math.min(span, cpu.directSpan(srcLin, span, false));
  }
  const n = (span / s) | 0;
  if (n < 2) return 0;
  const bytes = n * s;
  // Segment limits for the whole run (the element loop reports the exact fault otherwise).
  if (di < cpu.wLo[ES]! || di + bytes - 1 > cpu.wHi[ES]!) return 0;
  const dst = cpu.directOffset(dstLin);
  const ram = cpu.ramBytes;
  if (fill) {
    const v = cpu.getReg(s, 0);
    if (
      s === 1 ||
      v === 0 ||
      (s === 2 && (v & 0xff) === v >>> 8) ||
      (s === 4 && v >>> 0 === (v & 0xff) * 0x01010101)
    ) {
      ram.fill(v & 0xff, dst, dst + bytes);
    } else {
      for (let k = 0; k < bytes; k += s) {
        ram[dst + k] = v;
        ram[dst + k + 1] = v >> 8;
        if (s === 4) {
          ram[dst + k + 2] = v >> 16;
          ram[dst + k + 3] = v >> 24;
        }
      }
    }
  } else {
    if (si < cpu.rLo[i.seg]! || si + bytes - 1 > cpu.rHi[i.seg]!) return 0;
    const src = cpu.directOffset(srcLin);
    // An overlap with the destination above the source repeats data element by element.
    if (dst > src && dst < src + bytes) return 0;
    ram.copyWithin(dst, src, src + bytes);
    cpu.regs[SI] = si + bytes;
  }
  cpu.regs[DI] = di + bytes;
  cpu.regs[1] = cpu.regs[1]! - n;
  return n;
}

/**
 * REP MOVS/STOS with 32-bit addressing and DF=0: runs of RAM through `bulk`, one element the
 * careful way after a miss (a TLB miss, a page straddle or a fault to come; it also fills the
 * TLB), up to a chunk of 4 × REP_CHUNK elements. True when the instruction is done for this turn
 * (finished or yielding); false after two misses in a row (MMIO, an overlap), for the element loop.
 */
function repFast(cpu: Cpu, i: Insn, fill: boolean, v: number): boolean {
  const s = i.size;
  let done = 0;
  let missed = false;
  while (done < REP_CHUNK * 4) {
    const count = cpu.regs[1]! >>> 0;
    if (count === 0) return true;
    const did = bulk(cpu, i, Math.min(count, REP_CHUNK * 4 - done), fill);
    if (did > 0) {
      done += did;
      missed = false;
      continue;
    }
    if (missed) return false;
    if (fill) storeOne(cpu, i, v, s, s);
    else moveOne(cpu, i, s, i.seg, s);
    done++;
    missed = true;
  }
  yieldIfUnfinished(cpu, i);
  return true;
}

export function movs(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const seg = i.seg;
  if (i.rep !== 0 && i.addr32 && d > 0 && repFast(cpu, i, false, 0)) return;
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) moveOne(cpu, i, s, seg, d);
  yieldIfUnfinished(cpu, i);
}

/** One MOVS element: read, write, both indices advanced, the REP count taken down. */
function moveOne(cpu: Cpu, i: Insn, s: number, seg: number, d: number): void {
  const v = cpu.rd(seg, index(cpu, i, SI), s);
  cpu.wr(ES, index(cpu, i, DI), s, v);
  advance(cpu, i, SI, d);
  advance(cpu, i, DI, d);
  consumed(cpu, i);
}

export function stos(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const v = cpu.getReg(s, 0);
  if (i.rep !== 0 && i.addr32 && d > 0 && repFast(cpu, i, true, v)) return;
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) storeOne(cpu, i, v, s, d);
  yieldIfUnfinished(cpu, i);
}

/** One STOS element: written, DI advanced, the REP count taken down. */
function storeOne(cpu: Cpu, i: Insn, v: number, s: number, d: number): void {
  cpu.wr(ES, index(cpu, i, DI), s, v);
  advance(cpu, i, DI, d);
  consumed(cpu, i);
}

export function lods(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const seg = i.seg;
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) {
    cpu.setReg(s, 0, cpu.rd(seg, index(cpu, i, SI), s));
    advance(cpu, i, SI, d);
    consumed(cpu, i);
  }
  yieldIfUnfinished(cpu, i);
}

export function cmps(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const seg = i.seg;
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) {
    const a = cpu.rd(seg, index(cpu, i, SI), s);
    const b = cpu.rd(ES, index(cpu, i, DI), s);
    cpu.setArith(LZ_SUB, a, b, a - b, s);
    advance(cpu, i, SI, d);
    advance(cpu, i, DI, d);
    consumed(cpu, i);
    if (conditionEnds(cpu, i)) return;
  }
  yieldIfUnfinished(cpu, i);
}

export function scas(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) {
    const a = cpu.getReg(s, 0);
    const b = cpu.rd(ES, index(cpu, i, DI), s);
    cpu.setArith(LZ_SUB, a, b, a - b, s);
    advance(cpu, i, DI, d);
    consumed(cpu, i);
    if (conditionEnds(cpu, i)) return;
  }
  yieldIfUnfinished(cpu, i);
}

export function ins(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const port = cpu.r16[4]!;
  cpu.checkIo(port, s);
  if (cpu.dr[7]! & 0xff) cpu.checkIoBreakpoint(port, s);
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) {
    const off = index(cpu, i, DI);
    // The destination must be writable before the port is read (the read has side effects).
    cpu.checkWritable(cpu.writeAddr(ES, off, s), s);
    cpu.wr(ES, off, s, cpu.ports.read(port, s as 1 | 2 | 4));
    advance(cpu, i, DI, d);
    consumed(cpu, i);
  }
  yieldIfUnfinished(cpu, i);
}

export function outs(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const port = cpu.r16[4]!;
  const seg = i.seg;
  cpu.checkIo(port, s);
  if (cpu.dr[7]! & 0xff) cpu.checkIoBreakpoint(port, s);
  const n = elements(cpu, i);
  for (let k = 0; k < n; k++) {
    cpu.ports.write(port, s as 1 | 2 | 4, cpu.rd(seg, index(cpu, i, SI), s));
    advance(cpu, i, SI, d);
    consumed(cpu, i);
  }
  yieldIfUnfinished(cpu, i);
}
