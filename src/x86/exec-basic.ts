// Handlers for the general-purpose integer instructions: arithmetic, logic, shifts and rotates,
// multiply and divide, BCD, bit operations, data movement, the stack, near control transfers and
// flag instructions. Each takes the CPU and the decoded instruction.
//
// Undefined flags follow what QEMU (and, where checked, a P6) leave: shifts and rotates compute OF
// with the count-1 formula for every count, AF is cleared by shifts and logic, MUL/IMUL set SF/ZF/PF
// from the low half of the result, DIV/IDIV leave all flags unchanged, BSF/BSR set ZF from the source.

import type { Cpu } from "./cpu.ts";
import type { Insn } from "./decoder.ts";
import * as flags from "./flags.ts";

// Copied into module constants: V8 folds a module's own constants into optimised code, but loads
// and checks an imported binding on every use (the interpreter's handlers use these throughout).
const {
  AC,
  AF,
  ARITH_FLAGS,
  CF,
  CR4_PVI,
  CR4_VME,
  DF,
  EXC_BR,
  EXC_DE,
  ID,
  IF,
  IOPL,
  LZ_ADC,
  LZ_ADD,
  LZ_SBB,
  LZ_SUB,
  NT,
  OF,
  PF,
  SF,
  SIZE_MASK,
  SIZE_SIGN,
  SS,
  TF,
  VIF,
  VIP,
  ZF,
} = flags;

// ---- arithmetic and logic -------------------------------------------------------------------

/** The eight group-1 operations (ADD OR ADC SBB AND SUB XOR CMP), numbered as the ISA does. */
export function alu(cpu: Cpu, op: number, a: number, b: number, size: number): number {
  let r: number;
  switch (op) {
    case 0:
      r = a + b;
      cpu.setArith(LZ_ADD, a, b, r, size);
      return r;
    case 1:
      r = a | b;
      cpu.setLogic(r, size);
      return r;
    case 2: {
      const c = cpu.cf() ? 1 : 0;
      r = a + b + c;
      cpu.setArith(c ? LZ_ADC : LZ_ADD, a, b, r, size);
      return r;
    }
    case 3: {
      const c = cpu.cf() ? 1 : 0;
      r = a - b - c;
      cpu.setArith(c ? LZ_SBB : LZ_SUB, a, b, r, size);
      return r;
    }
    case 4:
      r = a & b;
      cpu.setLogic(r, size);
      return r;
    case 5:
    case 7:
      r = a - b;
      cpu.setArith(LZ_SUB, a, b, r, size);
      return r;
    default:
      r = a ^ b;
      cpu.setLogic(r, size);
      return r;
  }
}

/** op E, G (00, 01, 08, ...): the destination is r/m. */
export function aluEG(cpu: Cpu, i: Insn): void {
  const op = (i.opcode >> 3) & 7;
  const s = i.size;
  if (i.mod === 3) {
    const r = alu(cpu, op, cpu.getReg(s, i.rm), cpu.getReg(s, i.reg), s);
    if (op !== 7) cpu.setReg(s, i.rm, r);
  } else {
    const off = cpu.ea(i);
    if (op !== 7) cpu.checkWrite(i.seg, off, s);
    const r = alu(cpu, op, cpu.rd(i.seg, off, s), cpu.getReg(s, i.reg), s);
    if (op !== 7) cpu.wr(i.seg, off, s, r);
  }
}

/** Fast path for 32-bit register-register forms of the same. */
export function aluEG32(cpu: Cpu, i: Insn): void {
  if (i.mod !== 3 || i.size !== 4) {
    aluEG(cpu, i);
    return;
  }
  const op = (i.opcode >> 3) & 7;
  const regs = cpu.regs;
  const r = alu(cpu, op, regs[i.rm]!, regs[i.reg]!, 4);
  if (op !== 7) regs[i.rm] = r;
}

/** op G, E (02, 03, ...): the destination is the register. */
export function aluGE(cpu: Cpu, i: Insn): void {
  const op = (i.opcode >> 3) & 7;
  const s = i.size;
  const r = alu(cpu, op, cpu.getReg(s, i.reg), cpu.getE(i, s), s);
  if (op !== 7) cpu.setReg(s, i.reg, r);
}

/** op AL/eAX, imm (04, 05, ...). */
export function aluAI(cpu: Cpu, i: Insn): void {
  const op = (i.opcode >> 3) & 7;
  const s = i.size;
  const r = alu(cpu, op, cpu.getReg(s, 0), i.imm, s);
  if (op !== 7) cpu.setReg(s, 0, r);
}

/** Group 1 (80, 81, 82, 83): op r/m, imm; the operation is the reg field. */
export function aluEI(cpu: Cpu, i: Insn): void {
  const op = i.reg;
  const s = i.size;
  const a = op === 7 ? cpu.getE(i, s) : cpu.getEW(i, s);
  const r = alu(cpu, op, a, i.imm & SIZE_MASK[s]!, s);
  if (op !== 7) cpu.setE(i, s, r);
}

export function testEG(cpu: Cpu, i: Insn): void {
  const s = i.size;
  cpu.setLogic(cpu.getE(i, s) & cpu.getReg(s, i.reg), s);
}
export function testAI(cpu: Cpu, i: Insn): void {
  const s = i.size;
  cpu.setLogic(cpu.getReg(s, 0) & i.imm, s);
}
export function testEI(cpu: Cpu, i: Insn): void {
  const s = i.size;
  cpu.setLogic(cpu.getE(i, s) & i.imm, s);
}

function incDecFlags(cpu: Cpu, a: number, r: number, size: number, dec: boolean): void {
  const carry = cpu.cf();
  cpu.setArith(dec ? LZ_SUB : LZ_ADD, a, 1, r, size);
  cpu.lazyMask = ARITH_FLAGS & ~CF;
  cpu.flagsRaw = carry ? cpu.flagsRaw | CF : cpu.flagsRaw & ~CF;
}

/** INC/DEC r16/r32 (40-4F). */
export function incDecReg(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const r = i.opcode & 7;
  const dec = (i.opcode & 8) !== 0;
  const a = cpu.getReg(s, r);
  const v = dec ? a - 1 : a + 1;
  incDecFlags(cpu, a, v, s, dec);
  cpu.setReg(s, r, v);
}

/** INC/DEC r/m (FE /0 /1, FF /0 /1). */
export function incDecE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const dec = i.reg === 1;
  const a = cpu.getEW(i, s);
  const v = dec ? a - 1 : a + 1;
  incDecFlags(cpu, a, v, s, dec);
  cpu.setE(i, s, v);
}

export function notE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  cpu.setE(i, s, ~cpu.getEW(i, s));
}

export function negE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const a = cpu.getEW(i, s);
  const r = -a;
  cpu.setArith(LZ_SUB, 0, a, r, s);
  cpu.setE(i, s, r);
}

// ---- multiply and divide --------------------------------------------------------------------

let mulLo = 0;
let mulHi = 0;

/** High 32 bits (int32) of the unsigned 64-bit product of two 32-bit values. */
export function mulHighUnsigned(a: number, b: number): number {
  const al = a & 0xffff;
  const ah = a >>> 16;
  const bl = b & 0xffff;
  const bh = b >>> 16;
  const mid = ((al * bl) >>> 16) + ((ah * bl) & 0xffff) + al * bh;
  return (ah * bh + ((ah * bl) >>> 16) + Math.floor(mid / 65536)) | 0;
}

/** High 32 bits (int32) of the signed 64-bit product of two 32-bit values. */
export function mulHighSigned(a: number, b: number): number {
  let hi = mulHighUnsigned(a, b);
  if ((a | 0) < 0) hi -= b;
  if ((b | 0) < 0) hi -= a;
  return hi | 0;
}

/** Unsigned 32x32 -> 64 into mulLo/mulHi. */
function mulU32(a: number, b: number): void {
  mulLo = Math.imul(a, b) >>> 0;
  mulHi = mulHighUnsigned(a, b) >>> 0;
}

/** Signed 32x32 -> 64 into mulLo/mulHi (as unsigned halves). */
function mulS32(a: number, b: number): void {
  mulLo = Math.imul(a, b) >>> 0;
  mulHi = mulHighSigned(a, b) >>> 0;
}

/** MUL r/m (F6/F7 /4). */
export function mulE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const src = cpu.getE(i, s);
  let over: boolean;
  let low: number;
  if (s === 1) {
    const r = cpu.r8[0]! * src;
    cpu.r16[0] = r;
    low = r & 0xff;
    over = r > 0xff;
  } else if (s === 2) {
    const r = cpu.r16[0]! * src;
    cpu.r16[0] = r;
    cpu.r16[4] = r >>> 16;
    low = r & 0xffff;
    over = r > 0xffff;
  } else {
    mulU32(cpu.regs[0]!, src);
    cpu.regs[0] = mulLo;
    cpu.regs[2] = mulHi;
    low = mulLo;
    over = mulHi !== 0;
  }
  cpu.setResultFlags(low, s, over ? CF | OF : 0);
}

/** IMUL r/m (F6/F7 /5), one operand. */
export function imul1E(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const src = cpu.getE(i, s);
  let over: boolean;
  let low: number;
  if (s === 1) {
    const r = ((cpu.r8[0]! << 24) >> 24) * ((src << 24) >> 24);
    cpu.r16[0] = r;
    low = r & 0xff;
    over = r !== (r << 24) >> 24;
  } else if (s === 2) {
    const r = ((cpu.r16[0]! << 16) >> 16) * ((src << 16) >> 16);
    cpu.r16[0] = r;
    cpu.r16[4] = r >> 16;
    low = r & 0xffff;
    over = r !== (r << 16) >> 16;
  } else {
    mulS32(cpu.regs[0]!, src);
    cpu.regs[0] = mulLo;
    cpu.regs[2] = mulHi;
    low = mulLo;
    over = (mulHi | 0) !== (mulLo | 0) >> 31;
  }
  cpu.setResultFlags(low, s, over ? CF | OF : 0);
}

export function imulTrunc(cpu: Cpu, s: number, a: number, b: number): number {
  let r: number;
  let over: boolean;
  if (s === 2) {
    const full = ((a << 16) >> 16) * ((b << 16) >> 16);
    r = full & 0xffff;
    over = full !== (full << 16) >> 16;
  } else {
    mulS32(a, b);
    r = mulLo | 0;
    over = (mulHi | 0) !== r >> 31;
  }
  cpu.setResultFlags(r, s, over ? CF | OF : 0);
  return r;
}

/** IMUL Gv, Ev (0F AF). */
export function imulGE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  cpu.setReg(s, i.reg, imulTrunc(cpu, s, cpu.getReg(s, i.reg), cpu.getE(i, s)));
}

/** IMUL Gv, Ev, imm (69, 6B). */
export function imulGEI(cpu: Cpu, i: Insn): void {
  const s = i.size;
  cpu.setReg(s, i.reg, imulTrunc(cpu, s, cpu.getE(i, s), i.imm));
}

let divQ = 0;
let divR = 0;

/** Unsigned 64/32 division of hi:lo by d; false on quotient overflow. */
function divU64(hi: number, lo: number, d: number): boolean {
  hi >>>= 0;
  lo >>>= 0;
  d >>>= 0;
  if (hi >= d) return false;
  let rem = hi;
  const c1 = lo >>> 16;
  const c2 = lo & 0xffff;
  let cur = rem * 65536 + c1;
  const q1 = Math.floor(cur / d);
  rem = cur - q1 * d;
  cur = rem * 65536 + c2;
  const q2 = Math.floor(cur / d);
  rem = cur - q2 * d;
  divQ = (q1 * 65536 + q2) >>> 0;
  divR = rem >>> 0;
  return true;
}

/** DIV r/m (F6/F7 /6). */
export function divE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const d = s === 4 ? cpu.getE(i, s) >>> 0 : cpu.getE(i, s);
  if (d === 0) cpu.raise(EXC_DE);
  if (s === 1) {
    const n = cpu.r16[0]!;
    const q = Math.floor(n / d);
    if (q > 0xff) cpu.raise(EXC_DE);
    cpu.r8[0] = q;
    cpu.r8[1] = n % d;
  } else if (s === 2) {
    const n = cpu.r16[4]! * 65536 + cpu.r16[0]!;
    const q = Math.floor(n / d);
    if (q > 0xffff) cpu.raise(EXC_DE);
    cpu.r16[0] = q;
    cpu.r16[4] = n % d;
  } else {
    if (!divU64(cpu.regs[2]!, cpu.regs[0]!, d)) cpu.raise(EXC_DE);
    cpu.regs[0] = divQ;
    cpu.regs[2] = divR;
  }
}

/** IDIV r/m (F6/F7 /7). */
export function idivE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const raw = cpu.getE(i, s);
  if ((raw & SIZE_MASK[s]!) === 0) cpu.raise(EXC_DE);
  if (s === 1) {
    const n = (cpu.r16[0]! << 16) >> 16;
    const d = (raw << 24) >> 24;
    const q = Math.trunc(n / d);
    if (q > 127 || q < -128) cpu.raise(EXC_DE);
    cpu.r8[0] = q;
    cpu.r8[1] = n - q * d;
  } else if (s === 2) {
    const n = (cpu.r16[4]! << 16) | cpu.r16[0]! | 0;
    const d = (raw << 16) >> 16;
    const q = Math.trunc(n / d);
    if (q > 32767 || q < -32768) cpu.raise(EXC_DE);
    cpu.r16[0] = q;
    cpu.r16[4] = n - q * d;
  } else {
    let hi = cpu.regs[2]! | 0;
    let lo = cpu.regs[0]! >>> 0;
    const d = raw | 0;
    const negN = hi < 0;
    if (negN) {
      lo = -lo >>> 0;
      hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    }
    const ad = Math.abs(d);
    if (!divU64(hi, lo, ad)) cpu.raise(EXC_DE);
    const negQ = negN !== d < 0;
    if (negQ ? divQ > 0x80000000 : divQ > 0x7fffffff) cpu.raise(EXC_DE);
    cpu.regs[0] = negQ ? -divQ : divQ;
    cpu.regs[2] = negN ? -divR : divR;
  }
}

// ---- shifts and rotates ---------------------------------------------------------------------

/** Group 2: ROL ROR RCL RCR SHL SHR SAL SAR of `a` by `count` (already masked to 5 bits). */
export function shiftOp(cpu: Cpu, op: number, a: number, count: number, size: number): number {
  const bits = size * 8;
  const m = SIZE_MASK[size]!;
  const sign = SIZE_SIGN[size]!;
  a &= m;
  switch (op) {
    case 0: {
      // ROL
      const c = count & (bits - 1);
      const r = c ? ((a << c) | (a >>> (bits - c))) & m : a;
      const cf = r & 1;
      cpu.setFlag(CF, cf !== 0);
      cpu.setFlag(OF, ((r & sign) !== 0) !== (cf !== 0));
      return r;
    }
    case 1: {
      // ROR
      const c = count & (bits - 1);
      const r = c ? ((a >>> c) | (a << (bits - c))) & m : a;
      const msb = (r & sign) !== 0;
      cpu.setFlag(CF, msb);
      cpu.setFlag(OF, msb !== ((r & (sign >>> 1)) !== 0));
      return r;
    }
    case 2: {
      // RCL through CF, count modulo bits+1
      const c = size === 4 ? count : count % (bits + 1);
      if (c === 0) return a;
      let cf = cpu.cf() ? 1 : 0;
      let r = a;
      for (let k = 0; k < c; k++) {
        const out = (r & sign) !== 0 ? 1 : 0;
        r = ((r << 1) | cf) & m;
        cf = out;
      }
      cpu.setFlag(CF, cf !== 0);
      cpu.setFlag(OF, ((r & sign) !== 0) !== (cf !== 0));
      return r;
    }
    case 3: {
      // RCR
      const c = size === 4 ? count : count % (bits + 1);
      if (c === 0) return a;
      let cf = cpu.cf() ? 1 : 0;
      let r = a;
      for (let k = 0; k < c; k++) {
        const out = r & 1;
        r = ((r >>> 1) | (cf ? sign : 0)) & m;
        cf = out;
      }
      cpu.setFlag(CF, cf !== 0);
      cpu.setFlag(OF, ((r & sign) !== 0) !== ((r & (sign >>> 1)) !== 0));
      return r;
    }
    case 4:
    case 6: {
      // SHL / SAL
      const r = (a << count) & m;
      const cf = ((a << (count - 1)) >>> (bits - 1)) & 1;
      const of = cf ^ ((r & sign) !== 0 ? 1 : 0);
      cpu.setResultFlags(r, size, (cf ? CF : 0) | (of ? OF : 0));
      return r;
    }
    case 5: {
      // SHR
      const r = count >= 32 ? 0 : a >>> count;
      const cf = (a >>> (count - 1)) & 1;
      const of = count === 1 && (a & sign) !== 0;
      cpu.setResultFlags(r, size, (cf ? CF : 0) | (of ? OF : 0));
      return r;
    }
    default: {
      // SAR
      const sa = size === 4 ? a | 0 : size === 2 ? (a << 16) >> 16 : (a << 24) >> 24;
      const r = (sa >> count) & m;
      const cf = (sa >> (count - 1)) & 1;
      cpu.setResultFlags(r, size, cf ? CF : 0);
      return r;
    }
  }
}

function shiftCommon(cpu: Cpu, i: Insn, count: number): void {
  count &= 0x1f;
  const s = i.size;
  const a = count === 0 ? cpu.getE(i, s) : cpu.getEW(i, s);
  if (count === 0) return;
  cpu.setE(i, s, shiftOp(cpu, i.reg, a, count, s));
}
/** C0/C1: shift by imm8. */
export function shiftEI(cpu: Cpu, i: Insn): void {
  shiftCommon(cpu, i, i.imm);
}
/** D0/D1: shift by 1. */
export function shiftE1(cpu: Cpu, i: Insn): void {
  shiftCommon(cpu, i, 1);
}
/** D2/D3: shift by CL. */
export function shiftECL(cpu: Cpu, i: Insn): void {
  shiftCommon(cpu, i, cpu.r8[4]!);
}

function shld(a: number, b: number, c: number, size: number): number {
  if (size === 4) return c === 0 ? a : (a << c) | (b >>> (32 - c));
  // 16-bit: counts above 16 are undefined; the operands are treated as the 48-bit a:b:a.
  const wide = ((a & 0xffff) * 0x100000000 + (b & 0xffff) * 0x10000 + (a & 0xffff)) * 2 ** c;
  return Math.floor(wide / 0x100000000) & 0xffff;
}
function shrd(a: number, b: number, c: number, size: number): number {
  if (size === 4) return c === 0 ? a : (a >>> c) | (b << (32 - c));
  const wide = (a & 0xffff) + (b & 0xffff) * 0x10000 + (a & 0xffff) * 0x100000000;
  return Math.floor(wide / 2 ** c) & 0xffff;
}

/** SHLD/SHRD (0F A4/A5/AC/AD). */
export function shldShrd(cpu: Cpu, i: Insn): void {
  const right = (i.opcode & 8) !== 0;
  const count = ((i.opcode & 1) === 0 ? i.imm : cpu.r8[4]!) & 0x1f;
  const s = i.size;
  const a = count === 0 ? cpu.getE(i, s) : cpu.getEW(i, s);
  if (count === 0) return;
  const b = cpu.getReg(s, i.reg);
  const sign = SIZE_SIGN[s]!;
  const m = SIZE_MASK[s]!;
  let r: number;
  let cf: number;
  let of: boolean;
  if (!right) {
    r = shld(a, b, count, s) & m;
    const prev = shld(a, b, count - 1, s);
    cf = (prev & sign) !== 0 ? 1 : 0;
    of = ((r & sign) !== 0) !== (cf !== 0);
  } else {
    r = shrd(a, b, count, s) & m;
    const prev = shrd(a, b, count - 1, s);
    cf = prev & 1;
    of = ((r & sign) !== 0) !== ((prev & sign) !== 0);
  }
  cpu.setResultFlags(r, s, (cf ? CF : 0) | (of ? OF : 0));
  cpu.setE(i, s, r);
}

// ---- bit operations -------------------------------------------------------------------------

function bitOp(cpu: Cpu, i: Insn, bitOffset: number, fromReg: boolean): void {
  const s = i.size;
  const bits = s * 8;
  const kind = i.opcode === 0x1ba ? i.reg & 3 : (i.opcode >> 3) & 3; // 0 BT, 1 BTS, 2 BTR, 3 BTC
  let value: number;
  let bit: number;
  let off = 0;
  let seg = 0;
  if (i.mod === 3) {
    bit = bitOffset & (bits - 1);
    value = cpu.getReg(s, i.rm);
  } else {
    seg = i.seg;
    off = cpu.ea(i);
    if (fromReg) {
      const signed = s === 2 ? (bitOffset << 16) >> 16 : bitOffset | 0;
      const delta = Math.floor(signed / bits) * s;
      off = i.addr32 ? (off + delta) >>> 0 : (off + delta) & 0xffff;
      bit = signed & (bits - 1);
    } else bit = bitOffset & (bits - 1);
    if (kind !== 0) cpu.checkWrite(seg, off, s);
    value = cpu.rd(seg, off, s);
  }
  const old = (value >>> bit) & 1;
  cpu.setFlag(CF, old !== 0);
  if (kind === 0) return;
  const mask = 1 << bit;
  const r = kind === 1 ? value | mask : kind === 2 ? value & ~mask : value ^ mask;
  if (i.mod === 3) cpu.setReg(s, i.rm, r);
  else cpu.wr(seg, off, s, r);
}
/** BT/BTS/BTR/BTC r/m, reg (0F A3/AB/B3/BB). */
export function btEG(cpu: Cpu, i: Insn): void {
  bitOp(cpu, i, cpu.getReg(i.size, i.reg), true);
}
/** Group 8 (0F BA /4-/7): BT* r/m, imm8. */
export function btEI(cpu: Cpu, i: Insn): void {
  bitOp(cpu, i, i.imm, false);
}

/** BSF/BSR (0F BC/BD). */
export function bsfBsr(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const src = cpu.getE(i, s) & SIZE_MASK[s]!;
  cpu.setLogic(src, s);
  if (src === 0) return;
  const idx = i.opcode === 0x1bc ? 31 - Math.clz32(src & -src) : 31 - Math.clz32(src);
  cpu.setReg(s, i.reg, idx);
}

// ---- BCD ------------------------------------------------------------------------------------

export function daa(cpu: Cpu): void {
  const f = cpu.getFlags();
  const old = cpu.r8[0]!;
  let al = old;
  let cf = false;
  let af = false;
  if ((al & 0xf) > 9 || f & AF) {
    al += 6;
    af = true;
  }
  if (old > 0x99 || f & CF) {
    al += 0x60;
    cf = true;
  }
  al &= 0xff;
  cpu.r8[0] = al;
  cpu.setResultFlags(al, 1, (cf ? CF : 0) | (af ? AF : 0));
}

export function das(cpu: Cpu): void {
  const f = cpu.getFlags();
  const old = cpu.r8[0]!;
  let al = old;
  let cf = false;
  let af = false;
  if ((al & 0xf) > 9 || f & AF) {
    al -= 6;
    af = true;
  }
  if (old > 0x99 || f & CF) {
    al -= 0x60;
    cf = true;
  }
  al &= 0xff;
  cpu.r8[0] = al;
  cpu.setResultFlags(al, 1, (cf ? CF : 0) | (af ? AF : 0));
}

export function aaa(cpu: Cpu): void {
  const f = cpu.getFlags();
  let adjust = false;
  if ((cpu.r8[0]! & 0xf) > 9 || f & AF) {
    cpu.r16[0] = cpu.r16[0]! + 0x106;
    adjust = true;
  }
  cpu.r8[0] = cpu.r8[0]! & 0xf;
  cpu.setResultFlags(cpu.r8[0]!, 1, adjust ? CF | AF : 0);
}

export function aas(cpu: Cpu): void {
  const f = cpu.getFlags();
  let adjust = false;
  if ((cpu.r8[0]! & 0xf) > 9 || f & AF) {
    cpu.r16[0] = cpu.r16[0]! - 6;
    cpu.r8[1] = cpu.r8[1]! - 1;
    adjust = true;
  }
  cpu.r8[0] = cpu.r8[0]! & 0xf;
  cpu.setResultFlags(cpu.r8[0]!, 1, adjust ? CF | AF : 0);
}

/** AAM imm8 (D4): base 0 raises #DE. */
export function aam(cpu: Cpu, i: Insn): void {
  const base = i.imm & 0xff;
  if (base === 0) cpu.raise(EXC_DE);
  const al = cpu.r8[0]!;
  cpu.r8[1] = Math.floor(al / base);
  cpu.r8[0] = al % base;
  cpu.setLogic(cpu.r8[0]!, 1);
}

/** AAD imm8 (D5). */
export function aad(cpu: Cpu, i: Insn): void {
  const base = i.imm & 0xff;
  const al = (cpu.r8[0]! + cpu.r8[1]! * base) & 0xff;
  cpu.r16[0] = al;
  cpu.setLogic(al, 1);
}

/** SALC (D6, undocumented): AL = CF ? FF : 00. */
export function salc(cpu: Cpu): void {
  cpu.r8[0] = cpu.cf() ? 0xff : 0;
}

// ---- data movement --------------------------------------------------------------------------

export function movEG(cpu: Cpu, i: Insn): void {
  const s = i.size;
  if (s === 4) {
    if (i.mod === 3) cpu.regs[i.rm] = cpu.regs[i.reg]!;
    else cpu.wr32(i.seg, cpu.ea(i), cpu.regs[i.reg]!);
    return;
  }
  if (i.mod === 3) cpu.setReg(s, i.rm, cpu.getReg(s, i.reg));
  else cpu.wr(i.seg, cpu.ea(i), s, cpu.getReg(s, i.reg));
}
export function movGE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  if (s === 4) {
    cpu.regs[i.reg] = i.mod === 3 ? cpu.regs[i.rm]! : cpu.rd32(i.seg, cpu.ea(i));
    return;
  }
  if (i.mod === 3) cpu.setReg(s, i.reg, cpu.getReg(s, i.rm));
  else cpu.setReg(s, i.reg, cpu.rd(i.seg, cpu.ea(i), s));
}
export function movEI(cpu: Cpu, i: Insn): void {
  cpu.putE(i, i.size, i.imm);
}
/** B0-BF: MOV reg, imm. */
export function movRI(cpu: Cpu, i: Insn): void {
  cpu.setReg(i.size, i.opcode & 7, i.imm);
}
/** A0-A3: MOV AL/eAX <-> moffs. */
export function movAO(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const off = i.addr32 ? i.disp >>> 0 : i.disp & 0xffff;
  if (i.opcode & 2) cpu.wr(i.seg, off, s, cpu.getReg(s, 0));
  else cpu.setReg(s, 0, cpu.rd(i.seg, off, s));
}

/** MOVZX (0F B6/B7). */
export function movzx(cpu: Cpu, i: Insn): void {
  const src = cpu.getE(i, i.opcode & 1 ? 2 : 1);
  cpu.setReg(i.size, i.reg, src);
}
/** MOVSX (0F BE/BF). */
export function movsx(cpu: Cpu, i: Insn): void {
  const src = i.opcode & 1 ? (cpu.getE(i, 2) << 16) >> 16 : (cpu.getE(i, 1) << 24) >> 24;
  cpu.setReg(i.size, i.reg, src);
}

export function lea(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  cpu.setReg(i.size, i.reg, cpu.ea(i));
}

export function xchgEG(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const a = cpu.getEW(i, s);
  const b = cpu.getReg(s, i.reg);
  cpu.setE(i, s, b);
  cpu.setReg(s, i.reg, a);
}
/** 91-97: XCHG eAX, reg. */
export function xchgAR(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const r = i.opcode & 7;
  const a = cpu.getReg(s, 0);
  cpu.setReg(s, 0, cpu.getReg(s, r));
  cpu.setReg(s, r, a);
}

export function nop(_cpu: Cpu, _i: Insn): void {}

/** 98: CBW / CWDE. */
export function cbw(cpu: Cpu, i: Insn): void {
  if (i.size === 2) cpu.r16[0] = (cpu.r8[0]! << 24) >> 24;
  else cpu.regs[0] = (cpu.r16[0]! << 16) >> 16;
}
/** 99: CWD / CDQ. */
export function cwd(cpu: Cpu, i: Insn): void {
  if (i.size === 2) cpu.r16[4] = (cpu.r16[0]! & 0x8000) !== 0 ? 0xffff : 0;
  else cpu.regs[2] = cpu.regs[0]! >> 31;
}

/** XLAT (D7): AL = [seg:(E)BX + AL]. */
export function xlat(cpu: Cpu, i: Insn): void {
  const off = i.addr32 ? (cpu.regs[3]! + cpu.r8[0]!) >>> 0 : (cpu.r16[6]! + cpu.r8[0]!) & 0xffff;
  cpu.r8[0] = cpu.rd8(i.seg, off);
}

export function bswap(cpu: Cpu, i: Insn): void {
  const r = i.opcode & 7;
  const v = cpu.regs[r]!;
  // With a 16-bit operand size the result is undefined; a P6 clears the low word.
  cpu.regs[r] =
    i.size === 4 ? ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24) : v & ~0xffff;
}

export function xadd(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const a = cpu.getEW(i, s);
  const b = cpu.getReg(s, i.reg);
  const r = a + b;
  cpu.setArith(LZ_ADD, a, b, r, s);
  cpu.setE(i, s, r);
  cpu.setReg(s, i.reg, a);
}

export function cmpxchg(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const m = SIZE_MASK[s]!;
  const dest = cpu.getEW(i, s);
  const acc = cpu.getReg(s, 0);
  cpu.setArith(LZ_SUB, acc, dest, acc - dest, s);
  if (((acc ^ dest) & m) === 0) {
    cpu.setE(i, s, cpu.getReg(s, i.reg));
  } else {
    // The destination is written back with its own value (a locked cycle always writes).
    cpu.setE(i, s, dest);
    cpu.setReg(s, 0, dest);
  }
}

/** CMPXCHG8B m64 (0F C7 /1). */
export function cmpxchg8b(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  const off = cpu.ea(i);
  const next = i.addr32 ? (off + 4) >>> 0 : (off + 4) & 0xffff;
  cpu.checkWrite(i.seg, off, 4);
  cpu.checkWrite(i.seg, next, 4);
  const lo = cpu.rd32(i.seg, off);
  const hi = cpu.rd32(i.seg, next);
  if (lo === cpu.regs[0] && hi === cpu.regs[2]) {
    cpu.wr32(i.seg, off, cpu.regs[3]!);
    cpu.wr32(i.seg, next, cpu.regs[1]!);
    cpu.setFlag(ZF, true);
  } else {
    cpu.wr32(i.seg, off, lo);
    cpu.wr32(i.seg, next, hi);
    cpu.regs[0] = lo;
    cpu.regs[2] = hi;
    cpu.setFlag(ZF, false);
  }
}

export function setcc(cpu: Cpu, i: Insn): void {
  cpu.putE(i, 1, cpu.cond(i.opcode & 15) ? 1 : 0);
}

export function cmovcc(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const v = cpu.getE(i, s);
  if (cpu.cond(i.opcode & 15)) cpu.setReg(s, i.reg, v);
}

/** BOUND Gv, Ma (62): #BR if the index is outside [lower, upper]. */
export function bound(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  const s = i.size;
  const off = cpu.ea(i);
  const next = i.addr32 ? (off + s) >>> 0 : (off + s) & 0xffff;
  let lo = cpu.rd(i.seg, off, s);
  let hi = cpu.rd(i.seg, next, s);
  let idx = cpu.getReg(s, i.reg);
  if (s === 2) {
    lo = (lo << 16) >> 16;
    hi = (hi << 16) >> 16;
    idx = (idx << 16) >> 16;
  } else {
    lo |= 0;
    hi |= 0;
    idx |= 0;
  }
  if (idx < lo || idx > hi) cpu.raise(EXC_BR);
}

// ---- stack ----------------------------------------------------------------------------------

/** 50-57: PUSH reg (the value of ESP pushed is the value before the push). */
export function pushR(cpu: Cpu, i: Insn): void {
  if (i.size === 4) cpu.push32(cpu.regs[i.opcode & 7]!);
  else cpu.push16(cpu.r16[(i.opcode & 7) << 1]!);
}
/** 58-5F: POP reg. */
export function popR(cpu: Cpu, i: Insn): void {
  if (i.size === 4) {
    const v = cpu.pop32();
    cpu.regs[i.opcode & 7] = v;
  } else {
    const v = cpu.pop16();
    cpu.r16[(i.opcode & 7) << 1] = v;
  }
}
/** 68, 6A: PUSH imm. */
export function pushI(cpu: Cpu, i: Insn): void {
  cpu.push(i.size, i.imm);
}
/** FF /6: PUSH r/m. */
export function pushE(cpu: Cpu, i: Insn): void {
  cpu.push(i.size, cpu.getE(i, i.size));
}
/** 8F /0: POP r/m (the address is computed after ESP is incremented). */
export function popE(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const saved = cpu.regs[4]!;
  const v = cpu.pop(s);
  try {
    cpu.putE(i, s, v);
  } catch (e) {
    cpu.regs[4] = saved;
    throw e;
  }
}

export function pusha(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const sp = cpu.getReg(s, 4);
  const saved = cpu.regs[4]!;
  try {
    for (let r = 0; r < 8; r++) cpu.push(s, r === 4 ? sp : cpu.getReg(s, r));
  } catch (e) {
    cpu.regs[4] = saved;
    throw e;
  }
}

const popaValues = new Int32Array(8);
export function popa(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const vals = popaValues;
  for (let r = 7; r >= 0; r--) vals[r] = cpu.peek(s, (7 - r) * s);
  for (let r = 0; r < 8; r++) if (r !== 4) cpu.setReg(s, r, vals[r]!);
  cpu.addSp(8 * s);
}

/** ENTER imm16, imm8 (C8). */
export function enter(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const size = i.imm & 0xffff;
  const level = i.imm2 & 31;
  const saved = cpu.regs[4]!;
  try {
    cpu.push(s, cpu.getReg(s, 5));
    const frame = cpu.sp;
    if (level > 0) {
      let bp = cpu.stack32 ? cpu.regs[5]! >>> 0 : cpu.r16[10]!;
      for (let k = 1; k < level; k++) {
        bp = cpu.stack32 ? (bp - s) >>> 0 : (bp - s) & 0xffff;
        cpu.push(s, cpu.rd(SS, bp, s));
      }
      cpu.push(s, frame);
    }
    // The final stack pointer must be writable (checked as an access at the new top).
    const top = cpu.stack32 ? (cpu.sp - size) >>> 0 : (cpu.sp - size) & 0xffff;
    if (size > 0) cpu.writeAddr(SS, top, 1);
    cpu.setReg(s, 5, frame);
    cpu.addSp(-size);
  } catch (e) {
    cpu.regs[4] = saved;
    throw e;
  }
}

/** LEAVE (C9). */
export function leave(cpu: Cpu, i: Insn): void {
  const s = i.size;
  const bp = cpu.stack32 ? cpu.regs[5]! >>> 0 : cpu.r16[10]!;
  const v = cpu.rd(SS, bp, s);
  if (cpu.stack32) cpu.regs[4] = bp + s;
  else cpu.r16[8] = bp + s;
  cpu.setReg(s, 5, v);
}

// ---- flags ----------------------------------------------------------------------------------

export function clc(cpu: Cpu): void {
  cpu.setFlag(CF, false);
}
export function stc(cpu: Cpu): void {
  cpu.setFlag(CF, true);
}
export function cmc(cpu: Cpu): void {
  cpu.setFlag(CF, !cpu.cf());
}
export function cld(cpu: Cpu): void {
  cpu.flagsRaw &= ~DF;
}
export function std(cpu: Cpu): void {
  cpu.flagsRaw |= DF;
}

/**
 * True where CLI/STI act on VIF instead of faulting: virtual-8086 mode with CR4.VME, or CPL 3
 * protected mode with CR4.PVI (both only when IOPL is below the CPL).
 */
function virtualInterrupts(cpu: Cpu): boolean {
  return cpu.vm86 ? (cpu.cr4 & CR4_VME) !== 0 : cpu.cpl === 3 && (cpu.cr4 & CR4_PVI) !== 0;
}

export function cli(cpu: Cpu): void {
  if (cpu.protectedMode && cpu.cpl > cpu.iopl) {
    if (!virtualInterrupts(cpu)) cpu.gp(0);
    cpu.flagsRaw &= ~VIF;
    return;
  }
  cpu.flagsRaw &= ~IF;
}
export function sti(cpu: Cpu): void {
  if (cpu.protectedMode && cpu.cpl > cpu.iopl) {
    if (!virtualInterrupts(cpu) || cpu.flagsRaw & VIP) cpu.gp(0);
    cpu.flagsRaw |= VIF;
    return;
  }
  if (!(cpu.flagsRaw & IF)) cpu.setShadow();
  cpu.flagsRaw |= IF;
}

export function lahf(cpu: Cpu): void {
  cpu.r8[1] = cpu.getFlags() & (SF | ZF | AF | PF | CF | 2);
}
export function sahf(cpu: Cpu): void {
  const f = cpu.getFlags();
  cpu.flagsRaw = (f & ~(SF | ZF | AF | PF | CF)) | (cpu.r8[1]! & (SF | ZF | AF | PF | CF));
}

/** PUSHF (9C): #GP in virtual-8086 mode unless IOPL is 3. VM and RF are pushed as 0. */
export function pushf(cpu: Cpu, i: Insn): void {
  if (cpu.vm86 && cpu.iopl < 3) {
    // VME: a 16-bit PUSHF shows VIF as IF and IOPL as 3.
    if (!(cpu.cr4 & CR4_VME) || i.size !== 2) cpu.gp(0);
    const f = cpu.getFlags();
    cpu.push16((f & 0xffff & ~IF) | (f & VIF ? IF : 0) | IOPL);
    return;
  }
  const f = cpu.getFlags() & ~0x30000;
  cpu.push(i.size, i.size === 2 ? f & 0xffff : f);
}

/** POPF (9D) with the privilege rules for IOPL and IF. */
export function popf(cpu: Cpu, i: Insn): void {
  if (cpu.vm86 && cpu.iopl < 3) {
    // VME: a 16-bit POPF sets VIF from the image's IF; TF, or IF with VIP pending, faults.
    if (!(cpu.cr4 & CR4_VME) || i.size !== 2) cpu.gp(0);
    const v = cpu.peek(2, 0);
    if (v & TF || (v & IF && cpu.flagsRaw & VIP)) cpu.gp(0);
    cpu.addSp(2);
    const mask = (ARITH_FLAGS | TF | DF | NT) & ~(IF | IOPL);
    const f = cpu.getFlags();
    const merged = (f & ~mask) | (v & mask);
    cpu.setFlagsRaw(v & IF ? merged | VIF : merged & ~VIF);
    return;
  }
  const v = cpu.pop(i.size);
  let mask = ARITH_FLAGS | TF | DF | NT;
  if (i.size === 4) mask |= AC | ID;
  if (cpu.cpl === 0) mask |= IOPL;
  if (cpu.cpl <= cpu.iopl) mask |= IF;
  const f = cpu.getFlags();
  cpu.setFlagsRaw((f & ~mask) | (v & mask));
}

// ---- near control transfers -----------------------------------------------------------------

function jumpTo(cpu: Cpu, i: Insn, target: number): void {
  cpu.ip = i.opsize === 4 ? target | 0 : target & 0xffff;
}

/** Jcc rel8 / rel16/32. */
export function jcc(cpu: Cpu, i: Insn): void {
  if (cpu.cond(i.opcode & 15)) jumpTo(cpu, i, cpu.ip + i.imm);
}
export function jmpRel(cpu: Cpu, i: Insn): void {
  jumpTo(cpu, i, cpu.ip + i.imm);
}
export function callRel(cpu: Cpu, i: Insn): void {
  cpu.push(i.opsize, cpu.ip);
  jumpTo(cpu, i, cpu.ip + i.imm);
}
/** FF /2: CALL r/m. */
export function callE(cpu: Cpu, i: Insn): void {
  const target = cpu.getE(i, i.opsize);
  cpu.push(i.opsize, cpu.ip);
  jumpTo(cpu, i, target);
}
/** FF /4: JMP r/m. */
export function jmpE(cpu: Cpu, i: Insn): void {
  jumpTo(cpu, i, cpu.getE(i, i.opsize));
}
/** C2/C3: RET [imm16]. */
export function retNear(cpu: Cpu, i: Insn): void {
  const target = cpu.peek(i.opsize, 0);
  jumpTo(cpu, i, target);
  cpu.addSp(i.opsize + (i.opcode === 0xc2 ? i.imm & 0xffff : 0));
}

function counter(cpu: Cpu, i: Insn): number {
  if (i.addr32) return (cpu.regs[1] = cpu.regs[1]! - 1);
  return (cpu.r16[2] = cpu.r16[2]! - 1);
}
/** E0-E2: LOOPNE, LOOPE, LOOP. */
export function loop(cpu: Cpu, i: Insn): void {
  const n = counter(cpu, i);
  let take = n !== 0;
  if (i.opcode === 0xe0) take &&= !cpu.zf();
  else if (i.opcode === 0xe1) take &&= cpu.zf();
  if (take) jumpTo(cpu, i, cpu.ip + i.imm);
}
/** E3: JCXZ / JECXZ. */
export function jcxz(cpu: Cpu, i: Insn): void {
  const n = i.addr32 ? cpu.regs[1]! : cpu.r16[2]!;
  if (n === 0) jumpTo(cpu, i, cpu.ip + i.imm);
}
