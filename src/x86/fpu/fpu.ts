// The x87 floating-point unit with MMX and FXSAVE/FXRSTOR: register file, control/status/tag words,
// last-instruction pointers, exception delivery (#MF or FERR#), and the D8-DF instruction set.
//
// Values are exact: normal-number FADD/FSUB/FMUL/FDIV, compares, moves and integer/double
// conversions run on 32-bit words without allocating (fast.ts); everything else (specials,
// denormals, over/underflow, FSQRT, transcendentals, BCD) goes through the BigInt arithmetic in
// float80.ts and transcendental.ts, which rounds once under the control word's PC and RC.
// The CPU calls executeEscape/executeMmx/waitCheck/fxsave/fxrstor (see FpuUnit in host.ts).

import { type Persistent, StateError } from "../../core/persist.ts";
import {
  DOUBLE_EXP_MAX,
  DOUBLE_EXP_MIN,
  DOUBLE_SCALE,
  doubleBits,
  doubleHalves,
  fastAdd,
  fastDiv,
  fastMul,
  fastNarrow,
  fastResult,
  isNormalImage,
  LITTLE_ENDIAN_HOST,
  significantBits,
} from "./fast.ts";
import {
  abs80,
  add,
  CMP_EQUAL,
  CMP_GREATER,
  CMP_LESS,
  CMP_UNORDERED,
  compare,
  div,
  extract,
  type F80,
  FLAG_DE,
  FLAG_IE,
  FLAG_PE,
  FLAG_ZE,
  FpEnv,
  f80,
  fromBigInt,
  fromFloat32,
  fromFloat64,
  INDEFINITE,
  isDenormal,
  isNaN80,
  isUnsupported,
  isZero,
  mul,
  negate,
  POS_ZERO,
  remainder,
  roundToInteger,
  roundToIntegral,
  scale,
  sqrt,
  sub,
  toFloat32,
  toFloat64,
  toInteger,
} from "./float80.ts";
import {
  EFLAGS_CF,
  EFLAGS_PF,
  EFLAGS_ZF,
  FPU_DONE,
  FPU_FREEZE,
  FPU_INVALID_OPCODE,
  FPU_RAISE_MF,
  type FpuHost,
  type FpuUnit,
} from "./host.ts";
import { executeMmxInstruction, isMmxEncoding } from "./mmx.ts";
import {
  constant,
  cosine,
  exp2Minus1,
  partialArctangent,
  sine,
  sineCosine,
  tangent,
  yLog2X,
  yLog2XPlus1,
} from "./transcendental.ts";

// Status word bits.
const SW_SF = 0x40; // stack fault
const SW_ES = 0x80; // error summary
const SW_C0 = 0x100; // condition code 0
const SW_C1 = 0x200; // condition code 1
const SW_C2 = 0x400; // condition code 2
const SW_C3 = 0x4000; // condition code 3
const SW_B = 0x8000; // busy (mirrors ES)
const SW_TOP_SHIFT = 11;
const SW_TOP_MASK = 0x3800;
const SW_CONDITION = SW_C0 | SW_C1 | SW_C2 | SW_C3;

// Control word fields.
const CW_EXCEPTION_MASKS = 0x3f; // IM DM ZM OM UM PM
const CW_PC_SHIFT = 8; // precision control, bits 9:8
const CW_PC_MASK = 3 << CW_PC_SHIFT;
const CW_RC_SHIFT = 10; // rounding control, bits 11:10

// Tag values (two bits per physical register).
const TAG_VALID = 0;
const TAG_ZERO = 1;
const TAG_SPECIAL = 2;
const TAG_EMPTY = 3;

/** fastCompare could not decide without the exact path. */
const NOT_FAST = 99;

const FNINIT_CONTROL = 0x037f;
/** Control word after RESET (SDM table 9-1); the BIOS then runs FNINIT. */
const POWER_ON_CONTROL = 0x0040;

export interface FpuState {
  control: number;
  status: number; // with TOP
  tags: number; // full 16-bit tag word
  /** Per physical register: sign/exponent, significand low, significand high. */
  registers: number[];
  fip: number;
  fcs: number;
  fop: number;
  fdp: number;
  fds: number;
  ferr: boolean;
  ignne: boolean;
}

/** Encodings in D8-DF that are undefined on a P6 without SSE3 (FISTTP): they raise #UD. */
export function isReservedEscape(opcode: number, modrm: number): boolean {
  const reg = (modrm >> 3) & 7;
  if (modrm < 0xc0) {
    switch (opcode) {
      case 0xd9:
        return reg === 1;
      case 0xdb:
        return reg === 1 || reg === 4 || reg === 6;
      case 0xdd:
        return reg === 1 || reg === 5;
      case 0xdf:
        return reg === 1;
      default:
        return false;
    }
  }
  switch (opcode) {
    case 0xd9:
      return (
        (modrm >= 0xd1 && modrm <= 0xd7) ||
        modrm === 0xe2 ||
        modrm === 0xe3 ||
        modrm === 0xe6 ||
        modrm === 0xe7 ||
        modrm === 0xef
      );
    case 0xda:
      return reg >= 4 && modrm !== 0xe9;
    case 0xdb:
      return (modrm >= 0xe5 && modrm <= 0xe7) || reg === 7;
    case 0xdd:
      return reg >= 6;
    case 0xde:
      return reg === 3 && modrm !== 0xd9;
    case 0xdf:
      return (modrm >= 0xe1 && modrm <= 0xe7) || reg === 7;
    default:
      return false;
  }
}

/** Values of the EFLAGS result of FCOMI-class instructions, by compare outcome. */
function comiFlags(outcome: number): number {
  if (outcome === CMP_UNORDERED) return EFLAGS_ZF | EFLAGS_PF | EFLAGS_CF;
  if (outcome === CMP_EQUAL) return EFLAGS_ZF;
  if (outcome === CMP_LESS) return EFLAGS_CF;
  return 0;
}

/** C3/C2/C0 for FCOM-class instructions, by compare outcome. */
function compareCodes(outcome: number): number {
  if (outcome === CMP_UNORDERED) return SW_C3 | SW_C2 | SW_C0;
  if (outcome === CMP_EQUAL) return SW_C3;
  if (outcome === CMP_LESS) return SW_C0;
  return 0;
}

/**
 * The arithmetic operation (the ModRM reg field's FADD..FDIVR numbering, as `compute` takes it)
 * of a D8, DC or DE register form. DC and DE write ST(i), so their FSUB/FSUBR and FDIV/FDIVR
 * encodings are each other's from D8's point of view.
 */
function registerOperation(opcode: number, reg: number): number {
  return opcode === 0xd8 || reg < 4 ? reg : reg ^ 1;
}

export function tagOf(v: F80): number {
  if (v.exp === 0x7fff || isUnsupported(v) || isDenormal(v)) return TAG_SPECIAL;
  if (isZero(v)) return TAG_ZERO;
  return TAG_VALID;
}

/** tagOf for a register image given as raw fields. */
export function tagOfRaw(signExp: number, hi: number, lo: number): number {
  const exp = signExp & 0x7fff;
  if (exp === 0) return hi === 0 && lo === 0 ? TAG_ZERO : TAG_SPECIAL;
  if (exp === 0x7fff || (hi & 0x80000000) === 0) return TAG_SPECIAL;
  return TAG_VALID;
}

// Module-level copies of fast.ts's double-path constants: V8 checks an imported binding on every
// use (it could still be uninitialised), which made exactRegister a quarter slower.
const EXP_MIN = DOUBLE_EXP_MIN;
const EXP_MAX = DOUBLE_EXP_MAX;
const SCALE = DOUBLE_SCALE;
const BITS = doubleBits;
const HALVES = doubleHalves;
const DOUBLE_PATH = LITTLE_ENDIAN_HOST;

export class Fpu implements FpuUnit, Persistent<FpuState> {
  readonly stateVersion = 1;

  control = POWER_ON_CONTROL;
  /** Status word without TOP. */
  status = 0;
  top = 0;
  tags = 0x5555;
  /** Register file by physical index: sign and exponent, significand bits 31:0 and 63:32. MMX aliases these. */
  readonly signExp = new Uint16Array(8);
  readonly sigLo = new Uint32Array(8);
  readonly sigHi = new Uint32Array(8);
  fip = 0;
  fcs = 0;
  fop = 0;
  fdp = 0;
  fds = 0;

  onFerr: (asserted: boolean) => void = () => {};
  private ferr = false;
  private ignne = false;

  private readonly env = new FpEnv();
  private stackFault = false;
  private stackFaultC1 = 0;

  reset(): void {
    this.control = POWER_ON_CONTROL;
    this.status = 0;
    this.top = 0;
    this.tags = 0x5555;
    this.signExp.fill(0);
    this.sigLo.fill(0);
    this.sigHi.fill(0);
    this.fip = this.fcs = this.fop = this.fdp = this.fds = 0;
    this.setFerr(false);
  }

  /** FNINIT. */
  init(): void {
    this.control = FNINIT_CONTROL;
    this.status = 0;
    this.top = 0;
    this.tags = 0xffff;
    this.fip = this.fcs = this.fop = this.fdp = this.fds = 0;
    this.setFerr(false);
  }

  setIgnne(asserted: boolean): void {
    this.ignne = asserted;
  }

  get statusWord(): number {
    return (this.status & ~SW_TOP_MASK) | (this.top << SW_TOP_SHIFT);
  }

  set statusWord(value: number) {
    this.top = (value >> SW_TOP_SHIFT) & 7;
    this.status = value & ~SW_TOP_MASK & 0xffff;
  }

  // ---- registers ----

  /** Physical register of ST(i). */
  phys(i: number): number {
    return (this.top + i) & 7;
  }

  isEmpty(phys: number): boolean {
    return ((this.tags >> (phys * 2)) & 3) === TAG_EMPTY;
  }

  readPhys(phys: number): F80 {
    const se = this.signExp[phys];
    return f80(se >> 15, se & 0x7fff, (BigInt(this.sigHi[phys]) << 32n) | BigInt(this.sigLo[phys]));
  }

  writePhys(phys: number, v: F80): void {
    this.signExp[phys] = (v.sign << 15) | v.exp;
    this.sigLo[phys] = Number(v.sig & 0xffffffffn);
    this.sigHi[phys] = Number(v.sig >> 32n);
    this.setTag(phys, tagOf(v));
  }

  setTag(phys: number, tag: number): void {
    this.tags = (this.tags & ~(3 << (phys * 2))) | (tag << (phys * 2));
  }

  /** Register-to-register copy of contents and tag. */
  private copyPhys(from: number, to: number): void {
    this.signExp[to] = this.signExp[from];
    this.sigLo[to] = this.sigLo[from];
    this.sigHi[to] = this.sigHi[from];
    this.setTag(to, (this.tags >> (from * 2)) & 3);
  }

  /** Pushes a normal value given as raw fields, when ST(7) is free (the allocation-free load path). */
  private pushRaw(signExp: number, hi: number, lo: number): void {
    this.top = (this.top - 1) & 7;
    this.signExp[this.top] = signExp;
    this.sigHi[this.top] = hi;
    this.sigLo[this.top] = lo;
    this.setTag(this.top, TAG_VALID);
    this.status &= ~SW_C1;
  }

  st(i: number): F80 {
    return this.readPhys(this.phys(i));
  }

  setSt(i: number, v: F80): void {
    this.writePhys(this.phys(i), v);
  }

  push(v: F80): void {
    this.top = (this.top - 1) & 7;
    this.writePhys(this.top, v);
  }

  pop(): void {
    this.setTag(this.top, TAG_EMPTY);
    this.top = (this.top + 1) & 7;
  }

  /** Recomputes every non-empty tag from register contents (FLDENV, FRSTOR, FXRSTOR). */
  private retag(): void {
    for (let r = 0; r < 8; r++) if (!this.isEmpty(r)) this.setTag(r, tagOf(this.readPhys(r)));
  }

  // ---- exception bookkeeping ----

  private begin(): FpEnv {
    const pc = (this.control >> CW_PC_SHIFT) & 3;
    const precision = pc === 0 ? 24 : pc === 2 ? 53 : 64;
    this.env.begin((this.control >> CW_RC_SHIFT) & 3, precision, this.control & CW_EXCEPTION_MASKS);
    this.stackFault = false;
    return this.env;
  }

  private stackUnderflow(): void {
    this.env.flags |= FLAG_IE;
    this.stackFault = true;
    this.stackFaultC1 = 0;
  }

  private stackOverflow(): void {
    this.env.flags |= FLAG_IE;
    this.stackFault = true;
    this.stackFaultC1 = 1;
  }

  /** An unmasked IE, DE or ZE: the destination is not written and nothing is popped. */
  private blocked(): boolean {
    return (this.env.flags & ~this.env.masks & (FLAG_IE | FLAG_DE | FLAG_ZE)) !== 0;
  }

  private ieMasked(): boolean {
    return (this.env.masks & FLAG_IE) !== 0;
  }

  /** Folds the instruction's flags into the status word; C1 reports stack direction or rounding. */
  private finish(setC1: boolean): void {
    const flags = this.env.flags;
    this.status |= flags;
    if (this.stackFault) {
      this.status |= SW_SF;
      this.status = (this.status & ~SW_C1) | (this.stackFaultC1 ? SW_C1 : 0);
    } else if (setC1) {
      this.status = (this.status & ~SW_C1) | (flags & FLAG_PE && this.env.roundedUp ? SW_C1 : 0);
    }
    if (flags & ~this.control & CW_EXCEPTION_MASKS) this.status |= SW_ES | SW_B;
  }

  private setConditions(codes: number): void {
    this.status = (this.status & ~SW_CONDITION) | codes;
  }

  /** After FLDCW/FLDENV/FRSTOR/FXRSTOR/FNCLEX: ES and B follow the unmasked pending flags. */
  private recomputeErrorSummary(): void {
    if (this.status & ~this.control & CW_EXCEPTION_MASKS) this.status |= SW_ES | SW_B;
    else {
      this.status &= ~(SW_ES | SW_B);
      this.setFerr(false);
    }
  }

  private setFerr(level: boolean): void {
    if (this.ferr !== level) {
      this.ferr = level;
      this.onFerr(level);
    }
  }

  /** FWAIT and the check every waiting FP/MMX instruction makes first. */
  waitCheck(host: FpuHost): number {
    if ((this.status & SW_ES) === 0) return FPU_DONE;
    if (host.numericErrorNative) return FPU_RAISE_MF;
    this.setFerr(true);
    return this.ignne ? FPU_DONE : FPU_FREEZE;
  }

  /** True while FERR# is asserted. */
  get ferrAsserted(): boolean {
    return this.ferr;
  }

  // ---- memory operands ----

  private writeF80(ea: number, v: F80, host: FpuHost): void {
    host.checkWritable(ea, 10);
    host.write32(ea, Number(v.sig & 0xffffffffn));
    host.write32(ea + 4, Number(v.sig >> 32n));
    host.write16(ea + 8, (v.sign << 15) | v.exp);
  }

  private writeInt64(ea: number, v: bigint, host: FpuHost): void {
    host.checkWritable(ea, 8);
    host.write32(ea, Number(v & 0xffffffffn));
    host.write32(ea + 4, Number((v >> 32n) & 0xffffffffn));
  }

  // ---- instruction entry ----

  executeEscape(opcode: number, modrm: number, ea: number, host: FpuHost): number {
    const reg = (modrm >> 3) & 7;
    const isMemory = modrm < 0xc0;
    // #UD outranks a pending x87 exception.
    if (isReservedEscape(opcode, modrm)) return FPU_INVALID_OPCODE;
    if (!this.isNoWait(opcode, modrm, reg, isMemory)) {
      const pending = this.waitCheck(host);
      if (pending !== FPU_DONE) return pending;
    }
    // A faulting memory access leaves the unit as it was, pointers included.
    const { fip, fcs, fop, fdp, fds } = this;
    if (!this.isControl(opcode, modrm, reg, isMemory)) {
      this.fip = host.instructionOffset >>> 0;
      this.fcs = host.instructionSelector & 0xffff;
      this.fop = ((opcode & 7) << 8) | modrm;
      if (isMemory) {
        this.fdp = host.operandOffset >>> 0;
        this.fds = host.operandSelector & 0xffff;
      }
    }
    if (isMemory) {
      try {
        return this.executeMemoryForm(opcode, reg, ea, host);
      } catch (fault) {
        this.fip = fip;
        this.fcs = fcs;
        this.fop = fop;
        this.fdp = fdp;
        this.fds = fds;
        throw fault;
      }
    }
    const i = modrm & 7;
    switch (opcode) {
      case 0xd8:
        if (reg === 2 || reg === 3) return this.compareSt(i, reg === 3 ? 1 : 0, false);
        return this.arithRegister(registerOperation(opcode, reg), 0, i, false);
      case 0xd9:
        return this.escD9Register(modrm, reg, i);
      case 0xda:
        return this.escDARegister(modrm, reg, i, host);
      case 0xdb:
        return this.escDBRegister(modrm, reg, i, host);
      case 0xdc:
        if (reg === 2 || reg === 3) return this.compareSt(i, reg === 3 ? 1 : 0, false);
        return this.arithRegister(registerOperation(opcode, reg), i, i, false);
      case 0xdd:
        return this.escDDRegister(reg, i);
      case 0xde:
        if (reg === 2) return this.compareSt(i, 1, false);
        if (reg === 3) return modrm === 0xd9 ? this.compareSt(1, 2, false) : FPU_INVALID_OPCODE;
        return this.arithRegister(registerOperation(opcode, reg), i, i, true);
      default:
        return this.escDFRegister(modrm, reg, i, host);
    }
  }

  private executeMemoryForm(opcode: number, reg: number, ea: number, host: FpuHost): number {
    switch (opcode) {
      case 0xd8:
        if (reg !== 2 && reg !== 3) {
          const bits = host.read32(ea) >>> 0;
          const exp = (bits >>> 23) & 0xff;
          if (
            exp !== 0 &&
            exp !== 0xff &&
            this.fastArithMemory(
              reg,
              (bits >>> 31 ? 0x8000 : 0) | (exp - 127 + 16383),
              (0x80000000 | ((bits & 0x7fffff) << 8)) >>> 0,
              0,
            )
          )
            return FPU_DONE;
        }
        return this.arithMemory(reg, this.memReal32(ea, host));
      case 0xd9:
        return this.escD9Memory(reg, ea, host);
      case 0xda:
        return this.arithInteger(reg, host.read32(ea) | 0);
      case 0xdb:
        return this.escDBMemory(reg, ea, host);
      case 0xdc:
        if (reg !== 2 && reg !== 3) {
          const lo = host.read32(ea) >>> 0;
          const hi = host.read32(ea + 4) >>> 0;
          const exp = (hi >>> 20) & 0x7ff;
          if (
            exp !== 0 &&
            exp !== 0x7ff &&
            this.fastArithMemory(
              reg,
              (hi & 0x80000000 ? 0x8000 : 0) | (exp - 1023 + 16383),
              (0x80000000 | ((hi & 0xfffff) << 11) | (lo >>> 21)) >>> 0,
              (lo << 11) >>> 0,
            )
          )
            return FPU_DONE;
        }
        return this.arithMemory(reg, this.memReal64(ea, host));
      case 0xdd:
        return this.escDDMemory(reg, ea, host);
      case 0xde:
        return this.arithInteger(reg, (host.read16(ea) << 16) >> 16);
      default:
        return this.escDFMemory(reg, ea, host);
    }
  }

  /** FNINIT, FNCLEX, FNSTSW, FNSTCW, FNSTENV, FNSAVE (and the 8087 FNENI/FNDISI/FSETPM no-ops). */
  private isNoWait(opcode: number, modrm: number, reg: number, isMemory: boolean): boolean {
    if (isMemory) {
      return (opcode === 0xd9 && (reg === 6 || reg === 7)) || (opcode === 0xdd && (reg === 6 || reg === 7));
    }
    return (opcode === 0xdb && modrm >= 0xe0 && modrm <= 0xe4) || (opcode === 0xdf && modrm === 0xe0);
  }

  /** Control instructions leave FIP/FCS/FOP/FDP/FDS alone. */
  private isControl(opcode: number, modrm: number, reg: number, isMemory: boolean): boolean {
    if (isMemory) return (opcode === 0xd9 && reg >= 4) || (opcode === 0xdd && reg >= 4);
    return this.isNoWait(opcode, modrm, reg, isMemory);
  }

  // Memory operand conversion happens after the stack check, so these return raw readers.

  private memReal32(ea: number, host: FpuHost): () => F80 {
    const bits = host.read32(ea) >>> 0;
    return () => fromFloat32(this.env, bits);
  }

  private memReal64(ea: number, host: FpuHost): () => F80 {
    const lo = host.read32(ea) >>> 0;
    const hi = host.read32(ea + 4) >>> 0;
    return () => fromFloat64(this.env, lo, hi);
  }

  private memInt(v: number): () => F80 {
    return () => fromBigInt(BigInt(v));
  }

  private compute(op: number, x: F80, y: F80): F80 {
    const env = this.env;
    const p = env.precision;
    switch (op) {
      case 0:
        return add(env, x, y, p);
      case 1:
        return mul(env, x, y, p);
      case 4:
        return sub(env, x, y, p);
      case 5:
        return sub(env, y, x, p);
      case 6:
        return div(env, x, y, p);
      default:
        return div(env, y, x, p);
    }
  }

  /** D8/DA/DC/DE with a memory operand: ST(0) = ST(0) op m, or a compare. */
  private arithMemory(reg: number, operand: () => F80): number {
    this.begin();
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (reg === 2 || reg === 3) {
        if (this.ieMasked()) this.setConditions(compareCodes(CMP_UNORDERED));
        if (reg === 3 && this.ieMasked()) this.pop();
      } else if (this.ieMasked()) this.setSt(0, INDEFINITE);
      this.finish(false);
      return FPU_DONE;
    }
    const y = operand();
    if (reg === 2 || reg === 3) {
      const outcome = compare(this.env, this.st(0), y, false);
      this.setConditions(compareCodes(outcome));
      if (reg === 3 && !this.blocked()) this.pop();
      this.finish(false);
      return FPU_DONE;
    }
    const r = this.compute(reg, this.st(0), y);
    if (!this.blocked()) this.setSt(0, r);
    this.finish(true);
    return FPU_DONE;
  }

  registerArithmetic(opcode: number, modrm: number, fip: number, fcs: number): boolean {
    const reg = (modrm >> 3) & 7;
    if (modrm < 0xc0 || reg === 2 || reg === 3 || this.status & SW_ES) return false;
    if (opcode !== 0xd8 && opcode !== 0xdc && opcode !== 0xde) return false;
    const i = modrm & 7;
    // D8 is ST(0) = ST(0) op ST(i); DC and DE are ST(i) = ST(i) op ST(0); DE pops.
    const dest = opcode === 0xd8 ? 0 : i;
    if (!this.fastRegister(registerOperation(opcode, reg), dest, i, opcode === 0xde)) return false;
    this.fip = fip >>> 0;
    this.fcs = fcs & 0xffff;
    this.fop = ((opcode & 7) << 8) | modrm;
    return true;
  }

  /**
   * FADD, FSUB, FSUBR and FMUL of two registers done in the host's doubles, when that is exact:
   * both operands are doubles and so is the result, checked exact by error-free transformations,
   * normal, and within the precision control. An exact result is the same in every rounding mode
   * and raises no flag, so all that changes besides the destination is C1, cleared. False, having
   * changed nothing, otherwise (FDIV, inexact, zero or out-of-range results).
   *
   * One function on purpose: register images hold words above 2^31, which V8 boxes when they are
   * passed to or returned from a call it does not inline.
   */
  private exactRegister(op: number, dest: number, i: number, popAfter: boolean): boolean {
    if (!DOUBLE_PATH) return false;
    const top = this.top;
    const px = (top + (dest === 0 ? 0 : i)) & 7;
    const py = (top + (dest === 0 ? i : 0)) & 7;
    const tags = this.tags;
    if (((tags >> (px * 2)) & 3) === TAG_EMPTY || ((tags >> (py * 2)) & 3) === TAG_EMPTY) return false;
    const se = this.signExp;
    const hi = this.sigHi;
    const lo = this.sigLo;
    const xSE = se[px];
    const xHi = hi[px];
    const xLo = lo[px];
    const ySE = se[py];
    const yHi = hi[py];
    const yLo = lo[py];
    const xExp = xSE & 0x7fff;
    const yExp = ySE & 0x7fff;
    if (
      (xHi & yHi) >>> 31 === 0 ||
      ((xLo | yLo) & 0x7ff) !== 0 ||
      xExp < EXP_MIN ||
      xExp > EXP_MAX ||
      yExp < EXP_MIN ||
      yExp > EXP_MAX
    )
      return false;
    // Exact conversions: at most 53 significant bits, scaled by a power of two into the normal range.
    const xMagnitude = (xHi * 4294967296 + xLo) * 2 ** -63 * SCALE[xExp - EXP_MIN];
    const yMagnitude = (yHi * 4294967296 + yLo) * 2 ** -63 * SCALE[yExp - EXP_MIN];
    let x = xSE & 0x8000 ? -xMagnitude : xMagnitude;
    let y = ySE & 0x8000 ? -yMagnitude : yMagnitude;
    let r: number;
    if (op === 1) {
      // A product of significands with m and n significant bits has at most m + n.
      if (significantBits(xHi, xLo) + significantBits(yHi, yLo) > 53) return false;
      r = x * y;
    } else {
      if (op === 4) y = -y;
      else if (op === 5) x = -x;
      else if (op !== 0) return false;
      r = x + y;
      // TwoSum: the addition's rounding error, zero exactly when the sum is exact (NaN when it overflowed).
      const yPart = r - x;
      const xPart = r - yPart;
      if (x - xPart + (y - yPart) !== 0) return false;
    }
    // Precision control 53 or 64 bits holds any double; 24 bits only what a float holds.
    if ((this.control & CW_PC_MASK) === 0 && Math.fround(r) !== r) return false;
    BITS[0] = r;
    const high = HALVES[1];
    const low = HALVES[0];
    const exp = (high >>> 20) & 0x7ff;
    // Subnormal results are refused (a product there may have been rounded), and exponent 1 with
    // them as a margin.
    if (exp < 2 || exp > 0x7fe) return false;
    // The destination is x's register; a pop empties ST(0) after it is written, as pop() does.
    se[px] = ((high >>> 31) << 15) | (exp + EXP_MIN - 1);
    hi[px] = 0x80000000 | ((high & 0xfffff) << 11) | (low >>> 21);
    lo[px] = low << 11;
    const validTags = tags & ~(3 << (px * 2));
    if (popAfter) {
      this.tags = validTags | (TAG_EMPTY << (top * 2));
      this.top = (top + 1) & 7;
    } else this.tags = validTags;
    this.status &= ~SW_C1;
    return true;
  }

  /**
   * arithRegister when both operands and the result are normal numbers, without allocating (in
   * host doubles when that is exact, else in 96-bit words); false, having changed nothing, otherwise.
   */
  private fastRegister(op: number, dest: number, i: number, popAfter: boolean): boolean {
    if (this.exactRegister(op, dest, i, popAfter)) return true;
    const px = this.phys(dest === 0 ? 0 : i);
    const py = this.phys(dest === 0 ? i : 0);
    if (this.isEmpty(px) || this.isEmpty(py)) return false;
    this.begin();
    if (!this.fastArith(op, this.signExp[px], this.sigHi[px], this.sigLo[px], py, this.phys(dest)))
      return false;
    if (popAfter) this.pop();
    this.finish(true);
    return true;
  }

  /** Register arithmetic: dest = ST(dest) op ST(src) (operands ordered as the D8 forms). */
  private arithRegister(op: number, dest: number, i: number, popAfter: boolean): number {
    if (this.fastRegister(op, dest, i, popAfter)) return FPU_DONE;
    this.begin();
    const x = dest === 0 ? 0 : i;
    const y = dest === 0 ? i : 0;
    if (this.isEmpty(this.phys(x)) || this.isEmpty(this.phys(y))) {
      this.stackUnderflow();
      if (this.ieMasked()) {
        this.setSt(dest, INDEFINITE);
        if (popAfter) this.pop();
      }
      this.finish(false);
      return FPU_DONE;
    }
    const r = this.compute(op, this.st(x), this.st(y));
    if (!this.blocked()) {
      this.setSt(dest, r);
      if (popAfter) this.pop();
    }
    this.finish(true);
    return FPU_DONE;
  }

  /**
   * FADD/FMUL/FSUB/FSUBR/FDIV/FDIVR of two normal numbers with a normal result, without allocating: x is given
   * as raw fields, y is physical register `py`; the result goes to physical register `dest`.
   */
  private fastArith(op: number, xSE: number, xHi: number, xLo: number, py: number, dest: number): boolean {
    if (!isNormalImage(xSE, xHi)) return false;
    const ySE = this.signExp[py];
    const yHi = this.sigHi[py];
    if (!isNormalImage(ySE, yHi)) return false;
    const yLo = this.sigLo[py];
    const env = this.env;
    let ok: boolean;
    if (op === 1) ok = fastMul(env, xSE, xHi, xLo, ySE, yHi, yLo, env.precision);
    else if (op === 6) ok = fastDiv(env, xSE, xHi, xLo, ySE, yHi, yLo, env.precision);
    else if (op === 7) ok = fastDiv(env, ySE, yHi, yLo, xSE, xHi, xLo, env.precision);
    else {
      const xSigned = op === 5 ? xSE ^ 0x8000 : xSE;
      const ySigned = op === 4 ? ySE ^ 0x8000 : ySE;
      ok = fastAdd(env, xSigned, xHi, xLo, ySigned, yHi, yLo, env.precision);
    }
    if (!ok) return false;
    this.signExp[dest] = fastResult.signExp;
    this.sigHi[dest] = fastResult.hi;
    this.sigLo[dest] = fastResult.lo;
    this.setTag(dest, TAG_VALID);
    return true;
  }

  /** DA/DE: arithmetic and compares with an m32int/m16int operand (word path for non-zero integers). */
  private arithInteger(reg: number, v: number): number {
    if (v !== 0 && reg !== 2 && reg !== 3) {
      const magnitude = Math.abs(v);
      const shift = Math.clz32(magnitude);
      const signExp = (v < 0 ? 0x8000 : 0) | (16383 + 31 - shift);
      if (this.fastArithMemory(reg, signExp, (magnitude * 2 ** shift) >>> 0, 0)) return FPU_DONE;
    }
    return this.arithMemory(reg, this.memInt(v));
  }

  /** D8/DC arithmetic (not compares) with a normal m32/m64 operand, without allocating; false to take the general path. */
  private fastArithMemory(reg: number, signExp: number, hi: number, lo: number): boolean {
    this.begin();
    const p0 = this.phys(0);
    if (this.isEmpty(p0)) return false;
    // ST(0) op m: the register is y for the reverse forms, so swap roles by mirroring the opcode.
    const op = reg >= 4 ? reg ^ 1 : reg;
    if (!this.fastArith(op, signExp, hi, lo, p0, p0)) return false;
    this.finish(true);
    return true;
  }

  /** Compares two registers holding normal numbers or true zeros without allocating; NOT_FAST otherwise. */
  private fastCompare(pa: number, pb: number): number {
    const aSE = this.signExp[pa];
    const bSE = this.signExp[pb];
    const aHi = this.sigHi[pa];
    const bHi = this.sigHi[pb];
    const aZero = aSE << 17 === 0 && aHi === 0 && this.sigLo[pa] === 0;
    const bZero = bSE << 17 === 0 && bHi === 0 && this.sigLo[pb] === 0;
    if ((!aZero && !isNormalImage(aSE, aHi)) || (!bZero && !isNormalImage(bSE, bHi))) return NOT_FAST;
    if (aZero && bZero) return CMP_EQUAL;
    const aNeg = aSE >>> 15 === 1 && !aZero;
    const bNeg = bSE >>> 15 === 1 && !bZero;
    if (aNeg !== bNeg) return aNeg ? CMP_LESS : CMP_GREATER;
    let magnitude: number;
    if (aZero) magnitude = -1;
    else if (bZero) magnitude = 1;
    else {
      const aExp = aSE & 0x7fff;
      const bExp = bSE & 0x7fff;
      const aLo = this.sigLo[pa];
      const bLo = this.sigLo[pb];
      if (aExp !== bExp) magnitude = aExp > bExp ? 1 : -1;
      else if (aHi !== bHi) magnitude = aHi > bHi ? 1 : -1;
      else if (aLo !== bLo) magnitude = aLo > bLo ? 1 : -1;
      else magnitude = 0;
    }
    if (magnitude === 0) return CMP_EQUAL;
    return magnitude > 0 !== aNeg ? CMP_GREATER : CMP_LESS;
  }

  /** FCOM/FCOMP/FCOMPP/FUCOM*: compares ST(0) with ST(i), then pops `pops` times. */
  private compareSt(i: number, pops: number, unordered: boolean): number {
    this.begin();
    if (this.isEmpty(this.phys(0)) || this.isEmpty(this.phys(i))) {
      this.stackUnderflow();
      if (this.ieMasked()) {
        this.setConditions(compareCodes(CMP_UNORDERED));
        for (let n = 0; n < pops; n++) this.pop();
      }
      this.finish(false);
      return FPU_DONE;
    }
    let outcome = this.fastCompare(this.phys(0), this.phys(i));
    if (outcome === NOT_FAST) outcome = compare(this.env, this.st(0), this.st(i), unordered);
    this.setConditions(compareCodes(outcome));
    if (!this.blocked()) for (let n = 0; n < pops; n++) this.pop();
    this.finish(false);
    return FPU_DONE;
  }

  /** FCOMI/FCOMIP/FUCOMI/FUCOMIP: returns EFLAGS. */
  private compareToEflags(i: number, popAfter: boolean, unordered: boolean): number {
    this.begin();
    let result: number;
    if (this.isEmpty(this.phys(0)) || this.isEmpty(this.phys(i))) {
      this.stackUnderflow();
      // An unmasked invalid operation leaves EFLAGS alone.
      result = this.ieMasked() ? comiFlags(CMP_UNORDERED) : FPU_DONE;
    } else {
      let outcome = this.fastCompare(this.phys(0), this.phys(i));
      if (outcome === NOT_FAST) outcome = compare(this.env, this.st(0), this.st(i), unordered);
      result = this.blocked() ? FPU_DONE : comiFlags(outcome);
    }
    if (popAfter && !this.blocked()) this.pop();
    this.status &= ~SW_C1;
    this.finish(false);
    return result;
  }

  /** Push with the stack-overflow check; `value` is computed only if there is room. */
  private pushChecked(value: () => F80): number {
    this.begin();
    if (!this.isEmpty(this.phys(7))) {
      this.stackOverflow();
      if (this.ieMasked()) this.push(INDEFINITE);
      this.finish(false);
      return FPU_DONE;
    }
    const v = value();
    if (!this.blocked()) this.push(v);
    this.finish(false);
    this.status &= ~SW_C1;
    return FPU_DONE;
  }

  // ---- D9 ----

  private escD9Memory(reg: number, ea: number, host: FpuHost): number {
    switch (reg) {
      case 0: {
        const bits = host.read32(ea) >>> 0;
        const exp = (bits >>> 23) & 0xff;
        if (exp !== 0 && exp !== 0xff && this.isEmpty(this.phys(7))) {
          this.pushRaw(
            (bits >>> 31 ? 0x8000 : 0) | (exp - 127 + 16383),
            (0x80000000 | ((bits & 0x7fffff) << 8)) >>> 0,
            0,
          );
          return FPU_DONE;
        }
        return this.pushChecked(() => fromFloat32(this.env, bits));
      }
      case 2:
      case 3:
        return this.storeReal(ea, host, 32, reg === 3);
      case 4:
        this.loadEnvironment(ea, host);
        return FPU_DONE;
      case 5:
        this.control = (host.read16(ea) & 0x1f3f) | 0x40;
        this.recomputeErrorSummary();
        return FPU_DONE;
      case 6:
        this.storeEnvironment(ea, host);
        this.control |= CW_EXCEPTION_MASKS;
        this.recomputeErrorSummary();
        return FPU_DONE;
      case 7:
        host.write16(ea, this.control);
        return FPU_DONE;
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  private escD9Register(modrm: number, reg: number, i: number): number {
    switch (reg) {
      case 0: {
        // FLD ST(i)
        this.begin();
        if (this.isEmpty(this.phys(i))) {
          this.stackUnderflow();
          if (this.ieMasked()) {
            if (!this.isEmpty(this.phys(7))) this.stackOverflow();
            this.push(INDEFINITE);
          }
          this.finish(false);
          return FPU_DONE;
        }
        const src = this.phys(i);
        if (!this.isEmpty(this.phys(7))) {
          const v = this.st(i);
          return this.pushChecked(() => v);
        }
        this.top = (this.top - 1) & 7;
        this.copyPhys(src, this.top);
        this.status &= ~SW_C1;
        return FPU_DONE;
      }
      case 1:
        return this.exchange(i);
      case 2:
        if (modrm === 0xd0) return FPU_DONE; // FNOP
        return FPU_INVALID_OPCODE;
      case 3:
        return this.storeRegister(i, true); // FSTP1, an alias of FSTP ST(i)
      case 4:
        return this.escD9Group4(modrm);
      case 5:
        if (modrm === 0xef) return FPU_INVALID_OPCODE;
        return this.pushChecked(() => constant(this.env, modrm & 7));
      case 6:
        return this.escD9Group6(modrm);
      default:
        return this.escD9Group7(modrm);
    }
  }

  private exchange(i: number): number {
    this.begin();
    const p0 = this.phys(0);
    const pi = this.phys(i);
    if (this.isEmpty(p0) || this.isEmpty(pi)) {
      this.stackUnderflow();
      if (!this.ieMasked()) {
        this.finish(false);
        return FPU_DONE;
      }
      if (this.isEmpty(p0)) this.writePhys(p0, INDEFINITE);
      if (this.isEmpty(pi)) this.writePhys(pi, INDEFINITE);
    }
    const se = this.signExp[p0];
    const lo = this.sigLo[p0];
    const hi = this.sigHi[p0];
    const tag = (this.tags >> (p0 * 2)) & 3;
    this.copyPhys(pi, p0);
    this.signExp[pi] = se;
    this.sigLo[pi] = lo;
    this.sigHi[pi] = hi;
    this.setTag(pi, tag);
    this.status &= ~SW_C1;
    this.finish(false);
    return FPU_DONE;
  }

  /** A one-operand ST(0) instruction: underflow handling, then ST(0) = f(ST(0)). */
  private unary(f: (x: F80) => F80, setC1: boolean): number {
    this.begin();
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (this.ieMasked()) this.setSt(0, INDEFINITE);
      this.finish(false);
      return FPU_DONE;
    }
    const r = f(this.st(0));
    if (!this.blocked()) this.setSt(0, r);
    if (!setC1) this.status &= ~SW_C1;
    this.finish(setC1);
    return FPU_DONE;
  }

  private escD9Group4(modrm: number): number {
    switch (modrm) {
      case 0xe0: // FCHS
      case 0xe1: {
        // FABS
        const p = this.phys(0);
        if (this.isEmpty(p)) return this.unary(modrm === 0xe0 ? negate : abs80, false);
        this.signExp[p] = modrm === 0xe0 ? this.signExp[p] ^ 0x8000 : this.signExp[p] & 0x7fff;
        this.status &= ~SW_C1;
        return FPU_DONE;
      }
      case 0xe4: {
        // FTST
        this.begin();
        if (this.isEmpty(this.phys(0))) {
          this.stackUnderflow();
          this.setConditions(compareCodes(CMP_UNORDERED));
          this.finish(false);
          return FPU_DONE;
        }
        this.setConditions(compareCodes(compare(this.env, this.st(0), POS_ZERO, false)));
        this.finish(false);
        return FPU_DONE;
      }
      case 0xe5:
        this.examine();
        return FPU_DONE;
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  /** FXAM: class in C3 C2 C0, sign in C1. */
  private examine(): void {
    const p = this.phys(0);
    const v = this.readPhys(p);
    let codes: number;
    if (this.isEmpty(p)) codes = SW_C3 | SW_C0;
    else if (isUnsupported(v)) codes = 0;
    else if (isNaN80(v)) codes = SW_C0;
    else if (v.exp === 0x7fff) codes = SW_C2 | SW_C0;
    else if (isZero(v)) codes = SW_C3;
    else if (isDenormal(v)) codes = SW_C3 | SW_C2;
    else codes = SW_C2;
    this.setConditions(codes | (v.sign ? SW_C1 : 0));
  }

  private escD9Group6(modrm: number): number {
    switch (modrm) {
      case 0xf0:
        return this.unary((x) => exp2Minus1(this.env, x), true);
      case 0xf1:
        return this.binaryPop((y, x) => yLog2X(this.env, x, y));
      case 0xf2:
        return this.trigPush((x) => tangent(this.env, x));
      case 0xf3:
        return this.binaryPop((y, x) => partialArctangent(this.env, y, x));
      case 0xf4:
        return this.extractExponent();
      case 0xf5:
        return this.partialRemainder(true);
      case 0xf6:
        this.top = (this.top - 1) & 7;
        this.status &= ~SW_C1;
        return FPU_DONE;
      default:
        this.top = (this.top + 1) & 7;
        this.status &= ~SW_C1;
        return FPU_DONE;
    }
  }

  private escD9Group7(modrm: number): number {
    switch (modrm) {
      case 0xf8:
        return this.partialRemainder(false);
      case 0xf9:
        return this.binaryPop((y, x) => yLog2XPlus1(this.env, x, y));
      case 0xfa:
        return this.unary((x) => sqrt(this.env, x, this.env.precision), true);
      case 0xfb:
        return this.trigPush((x) => sineCosine(this.env, x));
      case 0xfc:
        return this.unary((x) => roundToIntegral(this.env, x), true);
      case 0xfd:
        return this.binaryKeep((x, y) => scale(this.env, x, y));
      case 0xfe:
        return this.trigInPlace((x) => sine(this.env, x));
      default:
        return this.trigInPlace((x) => cosine(this.env, x));
    }
  }

  /** FYL2X, FYL2XP1, FPATAN: ST(1) = f(ST(1), ST(0)), pop. */
  private binaryPop(f: (st1: F80, st0: F80) => F80): number {
    this.begin();
    if (this.isEmpty(this.phys(0)) || this.isEmpty(this.phys(1))) {
      this.stackUnderflow();
      if (this.ieMasked()) {
        this.setSt(1, INDEFINITE);
        this.pop();
      }
      this.finish(false);
      return FPU_DONE;
    }
    const r = f(this.st(1), this.st(0));
    if (!this.blocked()) {
      this.setSt(1, r);
      this.pop();
    }
    this.finish(true);
    return FPU_DONE;
  }

  /** FSCALE: ST(0) = f(ST(0), ST(1)). */
  private binaryKeep(f: (st0: F80, st1: F80) => F80): number {
    this.begin();
    if (this.isEmpty(this.phys(0)) || this.isEmpty(this.phys(1))) {
      this.stackUnderflow();
      if (this.ieMasked()) this.setSt(0, INDEFINITE);
      this.finish(false);
      return FPU_DONE;
    }
    const r = f(this.st(0), this.st(1));
    if (!this.blocked()) this.setSt(0, r);
    this.finish(true);
    return FPU_DONE;
  }

  /** FSIN/FCOS: an out-of-range operand sets C2 and is left alone. */
  private trigInPlace(f: (x: F80) => F80 | null): number {
    this.begin();
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (this.ieMasked()) this.setSt(0, INDEFINITE);
      this.status &= ~SW_C2;
      this.finish(false);
      return FPU_DONE;
    }
    const r = f(this.st(0));
    if (r === null) {
      this.status |= SW_C2;
      this.finish(false);
      return FPU_DONE;
    }
    this.status &= ~SW_C2;
    if (!this.blocked()) this.setSt(0, r);
    this.finish(true);
    return FPU_DONE;
  }

  /**
   * FPTAN (ST(0) = tan, push 1.0) and FSINCOS (ST(0) = sin, push cos). `f` returns [ST(1), ST(0)]
   * after the push, or null for an out-of-range operand (C2 set, nothing changes).
   */
  private trigPush(f: (x: F80) => [F80, F80] | null): number {
    this.begin();
    this.status &= ~SW_C2;
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (this.ieMasked()) {
        this.setSt(0, INDEFINITE);
        this.push(INDEFINITE);
      }
      this.finish(false);
      return FPU_DONE;
    }
    if (!this.isEmpty(this.phys(7))) {
      this.stackOverflow();
      if (this.ieMasked()) {
        this.setSt(0, INDEFINITE);
        this.push(INDEFINITE);
      }
      this.finish(false);
      return FPU_DONE;
    }
    const r = f(this.st(0));
    if (r === null) {
      this.status |= SW_C2;
      this.finish(false);
      return FPU_DONE;
    }
    if (!this.blocked()) {
      this.setSt(0, r[0]);
      this.push(r[1]);
    }
    this.finish(true);
    return FPU_DONE;
  }

  private extractExponent(): number {
    this.begin();
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (this.ieMasked()) {
        this.setSt(0, INDEFINITE);
        this.push(INDEFINITE);
      }
      this.finish(false);
      return FPU_DONE;
    }
    if (!this.isEmpty(this.phys(7))) {
      this.stackOverflow();
      if (this.ieMasked()) {
        this.setSt(0, INDEFINITE);
        this.push(INDEFINITE);
      }
      this.finish(false);
      return FPU_DONE;
    }
    const [exponent, significand] = extract(this.env, this.st(0));
    if (!this.blocked()) {
      this.setSt(0, exponent);
      this.push(significand);
    }
    this.finish(true);
    return FPU_DONE;
  }

  private partialRemainder(nearest: boolean): number {
    this.begin();
    if (this.isEmpty(this.phys(0)) || this.isEmpty(this.phys(1))) {
      this.stackUnderflow();
      if (this.ieMasked()) this.setSt(0, INDEFINITE);
      this.finish(false);
      return FPU_DONE;
    }
    const r = remainder(this.env, this.st(0), this.st(1), nearest);
    if (this.blocked()) {
      this.finish(false);
      return FPU_DONE;
    }
    this.setSt(0, r.value);
    if (!r.special) {
      const q = r.quotientLow;
      this.setConditions(
        (r.incomplete ? SW_C2 : 0) |
          (r.incomplete ? 0 : (q & 4 ? SW_C0 : 0) | (q & 2 ? SW_C3 : 0) | (q & 1 ? SW_C1 : 0)),
      );
      this.finish(false);
    } else {
      this.status &= ~SW_C2;
      this.finish(true);
    }
    return FPU_DONE;
  }

  // ---- DA / DB ----

  private condition(reg: number, eflags: number): boolean {
    switch (reg & 3) {
      case 0:
        return (eflags & EFLAGS_CF) !== 0;
      case 1:
        return (eflags & EFLAGS_ZF) !== 0;
      case 2:
        return (eflags & (EFLAGS_CF | EFLAGS_ZF)) !== 0;
      default:
        return (eflags & EFLAGS_PF) !== 0;
    }
  }

  private conditionalMove(i: number, move: boolean): number {
    this.begin();
    if (this.isEmpty(this.phys(0)) || this.isEmpty(this.phys(i))) {
      this.stackUnderflow();
      if (this.ieMasked()) this.setSt(0, INDEFINITE);
      this.finish(false);
      return FPU_DONE;
    }
    if (move) this.setSt(0, this.st(i));
    this.status &= ~SW_C1;
    return FPU_DONE;
  }

  private escDARegister(modrm: number, reg: number, i: number, host: FpuHost): number {
    if (reg < 4) return this.conditionalMove(i, this.condition(reg, host.eflags));
    if (modrm === 0xe9) return this.compareSt(1, 2, true); // FUCOMPP
    return FPU_INVALID_OPCODE;
  }

  private escDBRegister(modrm: number, reg: number, i: number, host: FpuHost): number {
    if (reg < 4) return this.conditionalMove(i, !this.condition(reg, host.eflags));
    if (reg === 5) return this.compareToEflags(i, false, true);
    if (reg === 6) return this.compareToEflags(i, false, false);
    switch (modrm) {
      case 0xe0: // FNENI, FNDISI, FNSETPM: 8087/80287 leftovers, no-ops since the 80387
      case 0xe1:
      case 0xe4:
        return FPU_DONE;
      case 0xe2:
        this.status &= ~(CW_EXCEPTION_MASKS | SW_SF | SW_ES | SW_B);
        this.setFerr(false);
        return FPU_DONE;
      case 0xe3:
        this.init();
        return FPU_DONE;
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  /** FILD m16/m32: exact, never raises anything but stack overflow. */
  private pushInteger(v: number): number {
    if (v === 0 || !this.isEmpty(this.phys(7))) return this.pushChecked(() => fromBigInt(BigInt(v)));
    const magnitude = Math.abs(v);
    const shift = Math.clz32(magnitude);
    this.pushRaw((v < 0 ? 0x8000 : 0) | (16383 + 31 - shift), (magnitude * 2 ** shift) >>> 0, 0);
    return FPU_DONE;
  }

  private escDBMemory(reg: number, ea: number, host: FpuHost): number {
    switch (reg) {
      case 0:
        return this.pushInteger(host.read32(ea) | 0);
      case 2:
      case 3:
        return this.storeInteger(ea, host, 32, reg === 3);
      case 5: {
        // FLD m80: an exact copy, no exceptions besides stack overflow.
        const lo = host.read32(ea) >>> 0;
        const hi = host.read32(ea + 4) >>> 0;
        const se = host.read16(ea + 8) & 0xffff;
        if (!this.isEmpty(this.phys(7))) {
          const v = f80(se >> 15, se & 0x7fff, (BigInt(hi) << 32n) | BigInt(lo));
          return this.pushChecked(() => v);
        }
        this.pushRaw(se, hi, lo);
        this.setTag(this.top, tagOfRaw(se, hi, lo));
        return FPU_DONE;
      }
      case 7:
        return this.storeExtended(ea, host);
      default:
        return FPU_INVALID_OPCODE; // FISTTP needs SSE3
    }
  }

  // ---- DD / DF ----

  private escDDMemory(reg: number, ea: number, host: FpuHost): number {
    switch (reg) {
      case 0: {
        const lo = host.read32(ea) >>> 0;
        const hi = host.read32(ea + 4) >>> 0;
        const exp = (hi >>> 20) & 0x7ff;
        if (exp !== 0 && exp !== 0x7ff && this.isEmpty(this.phys(7))) {
          // A normal double converts exactly and raises nothing.
          this.pushRaw(
            (hi & 0x80000000 ? 0x8000 : 0) | (exp - 1023 + 16383),
            (0x80000000 | ((hi & 0xfffff) << 11) | (lo >>> 21)) >>> 0,
            (lo << 11) >>> 0,
          );
          return FPU_DONE;
        }
        return this.pushChecked(() => fromFloat64(this.env, lo, hi));
      }
      case 2:
      case 3:
        return this.storeReal(ea, host, 64, reg === 3);
      case 4:
        this.restoreState(ea, host);
        return FPU_DONE;
      case 6:
        this.saveStateTo(ea, host);
        return FPU_DONE;
      case 7:
        host.write16(ea, this.statusWord);
        return FPU_DONE;
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  private escDDRegister(reg: number, i: number): number {
    switch (reg) {
      case 0:
        this.setTag(this.phys(i), TAG_EMPTY); // FFREE
        return FPU_DONE;
      case 1:
        return this.exchange(i); // FXCH4 alias
      case 2:
        return this.storeRegister(i, false);
      case 3:
        return this.storeRegister(i, true);
      case 4:
        return this.compareSt(i, 0, true);
      case 5:
        return this.compareSt(i, 1, true);
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  private escDFMemory(reg: number, ea: number, host: FpuHost): number {
    switch (reg) {
      case 0:
        return this.pushInteger((host.read16(ea) << 16) >> 16);
      case 2:
      case 3:
        return this.storeInteger(ea, host, 16, reg === 3);
      case 4: {
        const v = this.readBcd(ea, host);
        return this.pushChecked(() => v);
      }
      case 5: {
        // FILD m64
        const lo = host.read32(ea) >>> 0;
        const hi = host.read32(ea + 4) >>> 0;
        if ((hi | lo) !== 0 && this.isEmpty(this.phys(7))) {
          this.pushInteger64(hi, lo);
          return FPU_DONE;
        }
        const v = (BigInt(hi | 0) << 32n) | BigInt(lo);
        return this.pushChecked(() => fromBigInt(v));
      }
      case 6:
        return this.storeBcd(ea, host);
      case 7:
        return this.storeInteger(ea, host, 64, true);
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  private escDFRegister(modrm: number, reg: number, i: number, host: FpuHost): number {
    switch (reg) {
      case 0:
        // FFREEP
        this.setTag(this.phys(i), TAG_EMPTY);
        this.top = (this.top + 1) & 7;
        return FPU_DONE;
      case 1:
        return this.exchange(i); // FXCH7 alias
      case 2:
      case 3:
        return this.storeRegister(i, true); // FSTP8/FSTP9 aliases
      case 4:
        if (modrm !== 0xe0) return FPU_INVALID_OPCODE;
        host.writeGpr32(0, (host.readGpr32(0) & 0xffff0000) | this.statusWord);
        return FPU_DONE;
      case 5:
        return this.compareToEflags(i, true, true);
      case 6:
        return this.compareToEflags(i, true, false);
      default:
        return FPU_INVALID_OPCODE;
    }
  }

  // ---- stores ----

  /** FST/FSTP ST(i). */
  private storeRegister(i: number, popAfter: boolean): number {
    this.begin();
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (this.ieMasked()) {
        this.setSt(i, INDEFINITE);
        if (popAfter) this.pop();
      }
      this.finish(false);
      return FPU_DONE;
    }
    const p0 = this.phys(0);
    const pi = this.phys(i);
    this.signExp[pi] = this.signExp[p0];
    this.sigLo[pi] = this.sigLo[p0];
    this.sigHi[pi] = this.sigHi[p0];
    this.setTag(pi, (this.tags >> (p0 * 2)) & 3);
    if (popAfter) this.pop();
    this.status &= ~SW_C1;
    return FPU_DONE;
  }

  /** FST/FSTP m32real/m64real. */
  private storeReal(ea: number, host: FpuHost, bits: 32 | 64, popAfter: boolean): number {
    this.begin();
    const p = this.phys(0);
    if (!this.isEmpty(p) && isNormalImage(this.signExp[p], this.sigHi[p])) {
      // A normal value that rounds to a normal single/double: word arithmetic, no allocation.
      const env = this.env;
      const ok =
        bits === 64
          ? fastNarrow(env, this.signExp[p], this.sigHi[p], this.sigLo[p], 53, -1022, 1023)
          : fastNarrow(env, this.signExp[p], this.sigHi[p], this.sigLo[p], 24, -126, 127);
      if (ok) {
        const sign = fastResult.signExp & 0x8000 ? 0x80000000 : 0;
        const unbiased = (fastResult.signExp & 0x7fff) - 16383;
        const hi = fastResult.hi;
        if (bits === 64) {
          const lo = fastResult.lo;
          host.checkWritable(ea, 8);
          host.write32(ea, ((lo >>> 11) | (hi << 21)) >>> 0);
          host.write32(ea + 4, (sign | ((unbiased + 1023) << 20) | ((hi >>> 11) & 0xfffff)) >>> 0);
        } else {
          host.write32(ea, (sign | ((unbiased + 127) << 23) | ((hi >>> 8) & 0x7fffff)) >>> 0);
        }
        if (popAfter) this.pop();
        this.finish(true);
        return FPU_DONE;
      }
    }
    let value: bigint | null;
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      value = bits === 32 ? 0xffc00000n : 0xfff8000000000000n;
    } else {
      const v = this.st(0);
      value = bits === 32 ? toNullableBig(toFloat32(this.env, v)) : toFloat64(this.env, v);
    }
    if (value === null || this.blocked()) {
      this.finish(true);
      return FPU_DONE;
    }
    if (bits === 32) host.write32(ea, Number(value));
    else this.writeInt64(ea, value, host);
    if (popAfter) this.pop();
    this.finish(!this.stackFault);
    return FPU_DONE;
  }

  /** FIST/FISTP m16/m32/m64int. */
  private storeInteger(ea: number, host: FpuHost, bits: 16 | 32 | 64, popAfter: boolean): number {
    this.begin();
    if (bits === 64) {
      if (this.fastInteger64(this.phys(0))) {
        host.checkWritable(ea, 8);
        host.write32(ea, this.int64Lo);
        host.write32(ea + 4, this.int64Hi);
        if (popAfter) this.pop();
        this.finish(true);
        return FPU_DONE;
      }
      this.env.flags = 0;
      this.env.roundedUp = false;
    } else {
      const v = this.fastInteger(this.phys(0));
      if (v !== null && (bits === 32 || (v >= -32768 && v <= 32767))) {
        if (bits === 16) host.write16(ea, v & 0xffff);
        else host.write32(ea, v >>> 0);
        if (popAfter) this.pop();
        this.finish(true);
        return FPU_DONE;
      }
      this.env.flags = 0;
      this.env.roundedUp = false;
    }
    let value: bigint | null = null;
    if (this.isEmpty(this.phys(0))) this.stackUnderflow();
    else value = toInteger(this.env, this.st(0), bits);
    if (this.blocked()) {
      this.finish(false);
      return FPU_DONE;
    }
    const v = value ?? -(1n << BigInt(bits - 1)); // integer indefinite
    if (bits === 16) host.write16(ea, Number(v & 0xffffn));
    else if (bits === 32) host.write32(ea, Number(v & 0xffffffffn));
    else this.writeInt64(ea, v, host);
    if (popAfter) this.pop();
    this.finish(true);
    return FPU_DONE;
  }

  /** Two's-complement result words of fastInteger64. */
  private int64Hi = 0;
  private int64Lo = 0;

  /**
   * FISTP m64 without allocating: ST(0) a normal number below 2^63 in magnitude, rounded under RC
   * into int64Hi/int64Lo (PE and C1 noted in env). False when the exact path must decide.
   */
  private fastInteger64(p: number): boolean {
    if (this.isEmpty(p)) return false;
    const se = this.signExp[p];
    const sigHi = this.sigHi[p];
    const sigLo = this.sigLo[p];
    if (!isNormalImage(se, sigHi)) return false;
    const e = (se & 0x7fff) - 16383;
    if (e > 62) return false;
    const negative = se >>> 15 === 1;
    let magHi: number;
    let magLo: number;
    let halfBit: number;
    let rest: boolean;
    if (e < 0) {
      magHi = 0;
      magLo = 0;
      halfBit = e === -1 ? 1 : 0;
      rest = e === -1 ? (sigHi & 0x7fffffff) !== 0 || sigLo !== 0 : true;
    } else {
      const s = 63 - e; // fraction bits, 1..63
      if (s >= 32) {
        magHi = 0;
        magLo = s === 32 ? sigHi : sigHi >>> (s - 32);
      } else {
        magHi = sigHi >>> s;
        magLo = ((sigHi << (32 - s)) | (sigLo >>> s)) >>> 0;
      }
      const k = s - 1; // the one-half bit
      if (k >= 32) {
        halfBit = (sigHi >>> (k - 32)) & 1;
        rest = sigLo !== 0 || (sigHi & (2 ** (k - 32) - 1)) !== 0;
      } else {
        halfBit = (sigLo >>> k) & 1;
        rest = k > 0 && (sigLo & (2 ** k - 1)) !== 0;
      }
    }
    const inexact = halfBit === 1 || rest;
    if (inexact) {
      let up: boolean;
      switch ((this.control >> CW_RC_SHIFT) & 3) {
        case 0:
          up = halfBit === 1 && (rest || (magLo & 1) === 1);
          break;
        case 1:
          up = negative;
          break;
        case 2:
          up = !negative;
          break;
        default:
          up = false;
      }
      if (up) {
        magLo += 1;
        if (magLo >= 2 ** 32) {
          magLo = 0;
          magHi += 1;
        }
      }
      // 2^63 only fits as -2^63.
      if (magHi >= 0x80000000 && !(negative && magHi === 0x80000000 && magLo === 0)) return false;
      this.env.flags |= FLAG_PE;
      this.env.roundedUp = up;
    }
    if (negative) {
      if (magLo === 0) {
        this.int64Lo = 0;
        this.int64Hi = (2 ** 32 - magHi) % 2 ** 32;
      } else {
        this.int64Lo = 2 ** 32 - magLo;
        this.int64Hi = ~magHi >>> 0;
      }
    } else {
      this.int64Lo = magLo >>> 0;
      this.int64Hi = magHi >>> 0;
    }
    return true;
  }

  /** FILD m64 of a non-zero value when ST(7) is free. */
  private pushInteger64(hi: number, lo: number): void {
    let magHi = hi;
    let magLo = lo;
    const negative = hi >>> 31 === 1;
    if (negative) {
      if (magLo === 0) magHi = (2 ** 32 - magHi) % 2 ** 32;
      else {
        magLo = 2 ** 32 - magLo;
        magHi = ~magHi >>> 0;
      }
    }
    let sigHi: number;
    let sigLo: number;
    let exp: number;
    if (magHi !== 0) {
      const shift = Math.clz32(magHi);
      sigHi = shift === 0 ? magHi : ((magHi << shift) | (magLo >>> (32 - shift))) >>> 0;
      sigLo = (magLo << shift) >>> 0;
      exp = 16383 + 63 - shift;
    } else {
      const shift = Math.clz32(magLo);
      sigHi = (magLo << shift) >>> 0;
      sigLo = 0;
      exp = 16383 + 31 - shift;
    }
    this.pushRaw((negative ? 0x8000 : 0) | exp, sigHi, sigLo);
  }

  /**
   * ST(0) rounded to an integer under RC when it is zero or a normal number below 2^31 in magnitude
   * (PE and C1 noted in env); null when the exact path must decide.
   */
  private fastInteger(p: number): number | null {
    if (this.isEmpty(p)) return null;
    const se = this.signExp[p];
    const hi = this.sigHi[p];
    const lo = this.sigLo[p];
    const negative = se >>> 15 === 1;
    const e = (se & 0x7fff) - 16383;
    if ((se & 0x7fff) === 0) return hi === 0 && lo === 0 ? 0 : null;
    if ((hi & 0x80000000) === 0 || e > 30 || (se & 0x7fff) === 0x7fff) return null;
    let magnitude: number;
    let fracHi: number; // fraction bits, most significant first
    let fracLo: number;
    if (e >= 0) {
      magnitude = hi >>> (31 - e);
      fracHi = ((hi << (e + 1)) | (lo >>> (31 - e))) >>> 0;
      fracLo = (lo << (e + 1)) >>> 0;
    } else {
      // |x| < 1: only whether it is below, at or above one half matters.
      magnitude = 0;
      if (e === -1) {
        fracHi = hi;
        fracLo = lo;
      } else {
        fracHi = 1; // below one half, not zero
        fracLo = 0;
      }
    }
    const inexact = fracHi !== 0 || fracLo !== 0;
    if (inexact) {
      let up: boolean;
      switch ((this.control >> CW_RC_SHIFT) & 3) {
        case 0:
          up = fracHi > 0x80000000 || (fracHi === 0x80000000 && (fracLo !== 0 || (magnitude & 1) === 1));
          break;
        case 1:
          up = negative;
          break;
        case 2:
          up = !negative;
          break;
        default:
          up = false;
      }
      if (up) magnitude += 1;
      this.env.flags |= FLAG_PE;
      this.env.roundedUp = up;
    }
    return negative ? -magnitude : magnitude;
  }

  /** FSTP m80real: an exact copy. */
  private storeExtended(ea: number, host: FpuHost): number {
    this.begin();
    let v: F80;
    if (this.isEmpty(this.phys(0))) {
      this.stackUnderflow();
      if (!this.ieMasked()) {
        this.finish(false);
        return FPU_DONE;
      }
      v = INDEFINITE;
    } else {
      const p = this.phys(0);
      host.checkWritable(ea, 10);
      host.write32(ea, this.sigLo[p]);
      host.write32(ea + 4, this.sigHi[p]);
      host.write16(ea + 8, this.signExp[p]);
      this.pop();
      this.status &= ~SW_C1;
      return FPU_DONE;
    }
    this.writeF80(ea, v, host);
    this.pop();
    this.status &= ~SW_C1;
    this.finish(false);
    return FPU_DONE;
  }

  private readBcd(ea: number, host: FpuHost): F80 {
    let v = 0n;
    for (let k = 8; k >= 0; k--) {
      const b = host.read8(ea + k);
      v = v * 100n + BigInt((b >> 4) * 10 + (b & 15));
    }
    const negative = (host.read8(ea + 9) & 0x80) !== 0;
    if (v === 0n) return negative ? negate(POS_ZERO) : POS_ZERO;
    return fromBigInt(negative ? -v : v);
  }

  /** FBSTP m80bcd. */
  private storeBcd(ea: number, host: FpuHost): number {
    this.begin();
    let value: bigint | null = null;
    let negative = false;
    if (this.isEmpty(this.phys(0))) this.stackUnderflow();
    else {
      const a = this.st(0);
      negative = a.sign === 1;
      if (isUnsupported(a) || a.exp === 0x7fff) this.env.flags |= FLAG_IE;
      else {
        const saved = this.env.flags;
        const r = roundToInteger(this.env, a, this.env.rounding);
        const mag = r < 0n ? -r : r;
        if (mag > 999999999999999999n) this.env.flags = saved | FLAG_IE;
        else value = mag;
      }
    }
    if (this.blocked()) {
      this.finish(false);
      return FPU_DONE;
    }
    host.checkWritable(ea, 10);
    if (value === null) {
      // Packed BCD indefinite: FFFF C000 0000 0000 0000.
      for (let k = 0; k < 7; k++) host.write8(ea + k, 0);
      host.write8(ea + 7, 0xc0);
      host.write8(ea + 8, 0xff);
      host.write8(ea + 9, 0xff);
    } else {
      let rest = value;
      for (let k = 0; k < 9; k++) {
        const low = Number(rest % 10n);
        rest /= 10n;
        const high = Number(rest % 10n);
        rest /= 10n;
        host.write8(ea + k, (high << 4) | low);
      }
      host.write8(ea + 9, negative ? 0x80 : 0);
    }
    this.pop();
    this.finish(true);
    return FPU_DONE;
  }

  // ---- environment and state images ----

  /**
   * Tag word as FSTENV/FNSAVE store it. Like the P6, only "empty or not" is architectural state
   * here; the valid/zero/special classes are worked out from the register contents when the word is
   * stored (so a register written by MMX shows as special).
   */
  get tagWord(): number {
    let word = 0;
    for (let r = 0; r < 8; r++) word |= (this.isEmpty(r) ? TAG_EMPTY : tagOf(this.readPhys(r))) << (r * 2);
    return word;
  }

  private environmentSize(host: FpuHost): number {
    return host.operandSize32 ? 28 : 14;
  }

  private storeEnvironment(ea: number, host: FpuHost): void {
    host.checkWritable(ea, this.environmentSize(host));
    this.writeEnvironment(ea, host);
  }

  private writeEnvironment(ea: number, host: FpuHost): void {
    const fop = this.fop & 0x7ff;
    if (host.operandSize32) {
      host.write32(ea, 0xffff0000 | this.control);
      host.write32(ea + 4, 0xffff0000 | this.statusWord);
      host.write32(ea + 8, 0xffff0000 | this.tagWord);
      if (host.protectedMode) {
        host.write32(ea + 12, this.fip);
        host.write32(ea + 16, (fop << 16) | this.fcs);
        host.write32(ea + 20, this.fdp);
        host.write32(ea + 24, 0xffff0000 | this.fds);
      } else {
        const ip = (this.fip + (this.fcs << 4)) >>> 0;
        const dp = (this.fdp + (this.fds << 4)) >>> 0;
        host.write32(ea + 12, 0xffff0000 | (ip & 0xffff));
        host.write32(ea + 16, ((ip >>> 16) << 12) | fop);
        host.write32(ea + 20, 0xffff0000 | (dp & 0xffff));
        host.write32(ea + 24, (dp >>> 16) << 12);
      }
    } else {
      host.write16(ea, this.control);
      host.write16(ea + 2, this.statusWord);
      host.write16(ea + 4, this.tagWord);
      if (host.protectedMode) {
        host.write16(ea + 6, this.fip & 0xffff);
        host.write16(ea + 8, this.fcs);
        host.write16(ea + 10, this.fdp & 0xffff);
        host.write16(ea + 12, this.fds);
      } else {
        const ip = (this.fip + (this.fcs << 4)) >>> 0;
        const dp = (this.fdp + (this.fds << 4)) >>> 0;
        host.write16(ea + 6, ip & 0xffff);
        host.write16(ea + 8, (((ip >>> 16) & 0xf) << 12) | fop);
        host.write16(ea + 10, dp & 0xffff);
        host.write16(ea + 12, ((dp >>> 16) & 0xf) << 12);
      }
    }
  }

  /** Reads an environment image; returns a function that applies it (all reads happen first). */
  private readEnvironment(ea: number, host: FpuHost): () => void {
    let control: number;
    let status: number;
    let tags: number;
    let fip: number;
    let fcs: number;
    let fop: number;
    let fdp: number;
    let fds: number;
    if (host.operandSize32) {
      control = host.read16(ea);
      status = host.read16(ea + 4);
      tags = host.read16(ea + 8);
      if (host.protectedMode) {
        fip = host.read32(ea + 12) >>> 0;
        const w = host.read32(ea + 16) >>> 0;
        fcs = w & 0xffff;
        fop = (w >>> 16) & 0x7ff;
        fdp = host.read32(ea + 20) >>> 0;
        fds = host.read16(ea + 24);
      } else {
        const w = host.read32(ea + 16) >>> 0;
        fip = (host.read16(ea + 12) | (((w >>> 12) & 0xffff) << 16)) >>> 0;
        fop = w & 0x7ff;
        fdp = (host.read16(ea + 20) | (((host.read32(ea + 24) >>> 12) & 0xffff) << 16)) >>> 0;
        fcs = 0;
        fds = 0;
      }
    } else {
      control = host.read16(ea);
      status = host.read16(ea + 2);
      tags = host.read16(ea + 4);
      if (host.protectedMode) {
        fip = host.read16(ea + 6);
        fcs = host.read16(ea + 8);
        fdp = host.read16(ea + 10);
        fds = host.read16(ea + 12);
        fop = 0;
      } else {
        const w = host.read16(ea + 8);
        fip = host.read16(ea + 6) | ((w >>> 12) << 16);
        fop = w & 0x7ff;
        fdp = host.read16(ea + 10) | ((host.read16(ea + 12) >>> 12) << 16);
        fcs = 0;
        fds = 0;
      }
    }
    return () => {
      this.control = (control & 0x1f3f) | 0x40;
      this.statusWord = status & 0xffff;
      this.tags = tags & 0xffff;
      this.fip = fip;
      this.fcs = fcs;
      this.fop = fop;
      this.fdp = fdp;
      this.fds = fds;
    };
  }

  private loadEnvironment(ea: number, host: FpuHost): void {
    const apply = this.readEnvironment(ea, host);
    apply();
    this.retag();
    this.recomputeErrorSummary();
  }

  /** FNSAVE: environment plus ST(0)..ST(7), then FNINIT. */
  private saveStateTo(ea: number, host: FpuHost): void {
    const size = this.environmentSize(host);
    host.checkWritable(ea, size + 80);
    this.writeEnvironment(ea, host);
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      const at = ea + size + i * 10;
      host.write32(at, this.sigLo[p]);
      host.write32(at + 4, this.sigHi[p]);
      host.write16(at + 8, this.signExp[p]);
    }
    this.init();
  }

  /** FRSTOR. */
  private restoreState(ea: number, host: FpuHost): void {
    const size = this.environmentSize(host);
    const apply = this.readEnvironment(ea, host);
    const regs: number[] = [];
    for (let i = 0; i < 8; i++) {
      const at = ea + size + i * 10;
      regs.push(host.read32(at) >>> 0, host.read32(at + 4) >>> 0, host.read16(at + 8) & 0xffff);
    }
    apply();
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      this.sigLo[p] = regs[i * 3];
      this.sigHi[p] = regs[i * 3 + 1];
      this.signExp[p] = regs[i * 3 + 2];
    }
    this.retag();
    this.recomputeErrorSummary();
  }

  /** Abridged tag byte of FXSAVE: one bit per physical register, set when not empty. */
  get abridgedTags(): number {
    let t = 0;
    for (let r = 0; r < 8; r++) if (!this.isEmpty(r)) t |= 1 << r;
    return t;
  }

  fxsave(ea: number, host: FpuHost): void {
    host.checkWritable(ea, 464);
    host.write16(ea, this.control);
    host.write16(ea + 2, this.statusWord);
    host.write16(ea + 4, this.abridgedTags);
    host.write16(ea + 6, this.fop & 0x7ff);
    host.write32(ea + 8, this.fip);
    host.write32(ea + 12, this.fcs);
    host.write32(ea + 16, this.fdp);
    host.write32(ea + 20, this.fds);
    host.write32(ea + 24, 0); // MXCSR: no SSE
    host.write32(ea + 28, 0); // MXCSR_MASK
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      const at = ea + 32 + i * 16;
      host.write32(at, this.sigLo[p]);
      host.write32(at + 4, this.sigHi[p]);
      host.write32(at + 8, this.signExp[p]);
      host.write32(at + 12, 0);
    }
    for (let at = 160; at < 464; at += 4) host.write32(ea + at, 0);
  }

  fxrstor(ea: number, host: FpuHost): void {
    const control = host.read16(ea);
    const status = host.read16(ea + 2);
    const abridged = host.read8(ea + 4);
    const fop = host.read16(ea + 6) & 0x7ff;
    const fip = host.read32(ea + 8) >>> 0;
    const fcs = host.read16(ea + 12);
    const fdp = host.read32(ea + 16) >>> 0;
    const fds = host.read16(ea + 20);
    const regs: number[] = [];
    for (let i = 0; i < 8; i++) {
      const at = ea + 32 + i * 16;
      regs.push(host.read32(at) >>> 0, host.read32(at + 4) >>> 0, host.read16(at + 8) & 0xffff);
    }
    this.control = (control & 0x1f3f) | 0x40;
    this.statusWord = status;
    this.fop = fop;
    this.fip = fip;
    this.fcs = fcs;
    this.fdp = fdp;
    this.fds = fds;
    for (let i = 0; i < 8; i++) {
      const p = this.phys(i);
      this.sigLo[p] = regs[i * 3];
      this.sigHi[p] = regs[i * 3 + 1];
      this.signExp[p] = regs[i * 3 + 2];
    }
    let tags = 0;
    for (let r = 0; r < 8; r++)
      tags |= ((abridged >> r) & 1 ? tagOf(this.readPhys(r)) : TAG_EMPTY) << (r * 2);
    this.tags = tags;
    this.recomputeErrorSummary();
  }

  // ---- MMX ----

  executeMmx(opcode: number, modrm: number, ea: number, imm8: number, host: FpuHost): number {
    // #UD outranks a pending x87 exception.
    if (!isMmxEncoding(opcode, modrm)) return FPU_INVALID_OPCODE;
    const pending = this.waitCheck(host);
    if (pending !== FPU_DONE) return pending;
    return executeMmxInstruction(this, opcode, modrm, ea, imm8, host);
  }

  /** The x87 side effects of every MMX instruction except EMMS: TOP = 0, all tags valid. */
  enterMmx(): void {
    this.top = 0;
    this.tags = 0;
  }

  /** EMMS. */
  emms(): void {
    this.tags = 0xffff;
  }

  // ---- persistence ----

  saveState(): FpuState {
    const registers: number[] = [];
    for (let r = 0; r < 8; r++) registers.push(this.signExp[r], this.sigLo[r], this.sigHi[r]);
    return {
      control: this.control,
      status: this.statusWord,
      tags: this.tags,
      registers,
      fip: this.fip,
      fcs: this.fcs,
      fop: this.fop,
      fdp: this.fdp,
      fds: this.fds,
      ferr: this.ferr,
      ignne: this.ignne,
    };
  }

  loadState(state: FpuState, version: number): void {
    if (version !== 1) throw new StateError(`FPU state version ${version} is not supported`);
    const words: [string, number][] = [
      ["control", 0xffff],
      ["status", 0xffff],
      ["tags", 0xffff],
      ["fip", 0xffffffff],
      ["fcs", 0xffff],
      ["fop", 0x7ff],
      ["fdp", 0xffffffff],
      ["fds", 0xffff],
    ];
    const s = state as unknown as Record<string, unknown>;
    for (const [name, max] of words) {
      const v = s[name];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max)
        throw new StateError(`FPU state field '${name}' is not a valid value`);
    }
    const regs = state.registers;
    if (
      !Array.isArray(regs) ||
      regs.length !== 24 ||
      regs.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)
    )
      throw new StateError("FPU state field 'registers' is not 24 words");
    this.control = state.control;
    this.statusWord = state.status;
    this.tags = state.tags;
    for (let r = 0; r < 8; r++) {
      this.signExp[r] = regs[r * 3];
      this.sigLo[r] = regs[r * 3 + 1];
      this.sigHi[r] = regs[r * 3 + 2];
    }
    this.fip = state.fip;
    this.fcs = state.fcs;
    this.fop = state.fop;
    this.fdp = state.fdp;
    this.fds = state.fds;
    this.ferr = state.ferr === true;
    this.ignne = state.ignne === true;
  }
}

function toNullableBig(v: number | null): bigint | null {
  return v === null ? null : BigInt(v);
}
