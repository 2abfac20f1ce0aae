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

/** Runs `body` once, or CX times under REP; `cond` (CMPS/SCAS) ends a REPE/REPNE early. */
function repeat(cpu: Cpu, i: Insn, body: () => void, conditional: boolean): void {
  if (i.rep === 0) {
    body();
    return;
  }
  let n = count(cpu, i);
  let done = 0;
  while (n !== 0) {
    if (done >= REP_CHUNK) {
      cpu.eip = cpu.instrStart;
      return;
    }
    body();
    n = (n - 1) >>> 0;
    setCount(cpu, i, n);
    done++;
    if (conditional) {
      const z = cpu.zf();
      if ((i.rep === 1 && !z) || (i.rep === 2 && z)) return;
    }
  }
}

export function movs(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const seg = i.seg;
  repeat(
    cpu,
    i,
    () => {
      const v = cpu.rd(seg, index(cpu, i, SI), s);
      cpu.wr(ES, index(cpu, i, DI), s, v);
      advance(cpu, i, SI, d);
      advance(cpu, i, DI, d);
    },
    false,
  );
}

export function stos(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const v = cpu.getReg(s, 0);
  repeat(
    cpu,
    i,
    () => {
      cpu.wr(ES, index(cpu, i, DI), s, v);
      advance(cpu, i, DI, d);
    },
    false,
  );
}

export function lods(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const seg = i.seg;
  repeat(
    cpu,
    i,
    () => {
      cpu.setReg(s, 0, cpu.rd(seg, index(cpu, i, SI), s));
      advance(cpu, i, SI, d);
    },
    false,
  );
}

export function cmps(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const seg = i.seg;
  repeat(
    cpu,
    i,
    () => {
      const a = cpu.rd(seg, index(cpu, i, SI), s);
      const b = cpu.rd(ES, index(cpu, i, DI), s);
      cpu.setArith(LZ_SUB, a, b, a - b, s);
      advance(cpu, i, SI, d);
      advance(cpu, i, DI, d);
    },
    true,
  );
}

export function scas(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  repeat(
    cpu,
    i,
    () => {
      const a = cpu.getReg(s, 0);
      const b = cpu.rd(ES, index(cpu, i, DI), s);
      cpu.setArith(LZ_SUB, a, b, a - b, s);
      advance(cpu, i, DI, d);
    },
    true,
  );
}

export function ins(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const port = cpu.r16[4]!;
  cpu.checkIo(port, s);
  repeat(
    cpu,
    i,
    () => {
      const off = index(cpu, i, DI);
      // The destination must be writable before the port is read (the read has side effects).
      cpu.checkWritable(cpu.writeAddr(ES, off, s), s);
      cpu.wr(ES, off, s, cpu.ports.read(port, s as 1 | 2 | 4));
      advance(cpu, i, DI, d);
    },
    false,
  );
}

export function outs(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = step(cpu, s);
  const port = cpu.r16[4]!;
  const seg = i.seg;
  cpu.checkIo(port, s);
  repeat(
    cpu,
    i,
    () => {
      cpu.ports.write(port, s as 1 | 2 | 4, cpu.rd(seg, index(cpu, i, SI), s));
      advance(cpu, i, SI, d);
    },
    false,
  );
}
