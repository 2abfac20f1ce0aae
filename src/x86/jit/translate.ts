// The translator proper: one decoded block (decoder.ts `Block`, the interpreter's unit) becomes the
// source of one JavaScript function, which `new Function` compiles and V8 then optimises like any
// hot code. The block's instructions are already decoded by the shared decoder; this file only
// chooses, per opcode-table entry, whether to emit the operation inline or to call the
// interpreter's handler for it, so both engines share one decoder and one set of semantics.
//
// Inside a translated block:
// - the general registers the inline code touches live in JS locals (`r0`..`r7`), loaded on entry
//   and stored on every way out (exit, fault, a call to an interpreter handler);
// - memory goes through the CPU's TLB inline: a hit on a RAM page reads or writes the RAM array
//   directly; anything else (a miss, MMIO, a page crossing, a fault, a code page) calls the CPU's
//   own access methods, which do the full checks; a store that hit code drops it and raises the
//   CPU's attention flag, which the code tests after a store that took the slow path;
// - arithmetic flags stay lazy: a flag-setting instruction records its operands and result in the
//   CPU's lazy-flag fields (unless a later instruction in the block overwrites every flag before
//   anything could observe them), and conditions later in the same block are computed straight
//   from the JS values;
// - EIP is the block's entry EIP plus a constant offset, written back only when needed;
// - a block whose last instruction jumps back to its own start loops inside the function while
//   the instruction budget lasts and nothing needs the run loop.
//
// Faults: every inline instruction commits its register and flag results only after its last
// access that can fault, so when a GuestFault unwinds the function the locals hold the state
// before the faulting instruction; the catch clause stores them, sets EIP, instrStart and the
// retired-instruction count, and rethrows for the CPU's normal delivery.

import type { Cpu } from "../cpu.ts";
import type { Block, Insn } from "../decoder.ts";
import { imulTrunc, mulHighSigned, mulHighUnsigned, shiftOp } from "../exec-basic.ts";
import { CF, DF, ES, EXC_DE, LZ_ADC, LZ_ADD, LZ_LOGIC, LZ_SBB, LZ_SUB, OF, PARITY, SS } from "../flags.ts";
import { x87RegisterArithmetic } from "../fpu-glue.ts";
import type { Handler } from "../opcodes.ts";

/**
 * A translated block: `run(cpu, end)` executes it (looping while it jumps to itself and
 * `cpu.instructionCount + length <= end`); it returns -1 without doing anything when the CPU no
 * longer matches the assumptions it was translated under, else 0.
 */
export type TranslatedBlock = (cpu: unknown, end: number) => number;

export interface Translation {
  readonly run: TranslatedBlock;
  readonly source: string;
  /** Instructions emitted inline (the rest call interpreter handlers). */
  readonly inlined: number;
  /** Instructions translated. */
  readonly instructions: number;
}

const MASK = [0, 0xff, 0xffff, 0, -1];
const SIGN = [0, 0x80, 0x8000, 0, -0x80000000];

/**
 * Whether the run loop is wanted: `cpu.attention`, looked at only when the code has called out
 * (`co`: a slow memory path or an interpreter handler) since it last looked, because nothing
 * else running inside a translation can raise it. Finding the flag down clears `co` (a raised flag
 * stays visible to every later look on the way out). `co` starts true, as the flag may have been
 * raised between the run loop's own look and the call. Only boolean tests: a comparison that has
 * not run before V8 optimises the function would cost a deoptimisation when it first does.
 */
const ATTENTION = "(co && (cpu.attention || (co = false)))";

/**
 * Misses after which a block loses its loop form, when they came within LOOP_MISS_WINDOW
 * instructions: the translation it belongs to is made again with the block in the ordinary
 * form, for loops whose accesses keep missing (device memory, an unaligned stream). Misses spread
 * wider start the count again: a loop that streams through memory misses once per new page, and
 * its loop form pays for that many times over.
 */
export const LOOP_MISS_LIMIT = 1024;

/**
 * Instructions (all the CPU's) within which LOOP_MISS_LIMIT misses cost a block its loop form: at
 * a few microseconds a miss, more often than that is a measurable part of the time.
 */
export const LOOP_MISS_WINDOW = 2 ** 24;

/**
 * Widest span of a page group (see Emitter.pageGroups), in bytes. A group whose accesses straddle
 * two pages misses at its first access on every pass, so it is kept to a small part of a page.
 */
const MAX_GROUP_SPAN = 256;

/** A page group: its first access's line, displacements and kinds of access, and its index temp. */
interface PageGroup {
  line: number;
  /** The first access's displacement; the others are addressed from it. */
  anchor: number;
  /** What the register has had added since the first access (pushes, pops, constant adds). */
  shift: number;
  /** The lowest and highest byte offset the group touches, as displacements. */
  lo: number;
  hi: number;
  reads: boolean;
  writes: boolean;
  members: number;
  /** The temp holding the first access's place: a dword index (unit 4) or a byte offset (1). */
  index: string;
  unit: 1 | 4;
  /** In a byte-unit group, the distance modulo 4 of its dwords from the first access. */
  dwordResidue: number;
  render: (check: string, keep: string) => string;
}

/** The register and displacement of an offset of the form `r` or `r + disp` (32-bit addressing). */
function baseAndDisplacement(off: string): { base: number; disp: number } | undefined {
  const m = /^(?:r([0-7])|\(\(r([0-7]) \+ (-?\d+)\) \| 0\))$/.exec(off);
  if (m === null) return undefined;
  return m[1] !== undefined ? { base: Number(m[1]), disp: 0 } : { base: Number(m[2]), disp: Number(m[3]) };
}

/** The CPU as a loop form's miss sees it. */
export interface MissHost {
  /** The next block runs in the interpreter (set with the translation's exit at a miss). */
  interpretNext: boolean;
  /** Makes the dispatcher return to the run loop, which looks at `interpretNext` once. */
  attention: boolean;
  /** A block that has missed too often, for the dispatcher to translate again. */
  missedOften: Block | undefined;
  readonly instructionCount: number;
}

/** A loop form's access missed in `block`: the interpreter runs the rest of the block. */
function missed(cpu: MissHost, block: Block): void {
  cpu.interpretNext = true;
  cpu.attention = true;
  // In units of 1024 instructions, modulo 2^30: a small integer, which V8 keeps unboxed.
  const now = (cpu.instructionCount / 1024) & 0x3fffffff;
  if (block.loopMisses === 0) block.missesSince = now;
  if (++block.loopMisses < LOOP_MISS_LIMIT) return;
  if (((now - block.missesSince) & 0x3fffffff) <= LOOP_MISS_WINDOW / 1024) cpu.missedOften = block;
  else block.loopMisses = 0;
}

/**
 * Whether the lines from `from` on change guest-visible state: an assignment to a register or
 * flag local, the control locals, the CPU, RAM or the register file, or any call out. Scratch
 * (`k`, `l`, `e`, `p` and the temps) does not count.
 */
function changesState(lines: readonly string[], from: number): boolean {
  for (let n = from; n < lines.length; n++) {
    const line = lines[n]!;
    // Handing the pending flags to the CPU changes no flag, and running it again does nothing.
    if (line !== FLUSH_FLAGS && STATE_CHANGE.test(line.replace(MISS_STUB, ""))) return true;
  }
  return false;
}

/** A loop form's way out at a miss (see Emitter.missStub): its assignments are not the instruction's. */
const MISS_STUB = /\{ nx = [^;]+; xi = \d+; ms = \d+; break; \}/g;

const STATE_CHANGE =
  /(?:^|[^\w.$])(?:r[0-7]|[fg][kabrx]|nx|ic|xi|co|ms)\s*(?:[-+*/%&|^]|<<|>>>?)?=(?!=)|\bcpu\.[\w$]+(?:\[[^\]]*\])?\s*(?:[-+*/%&|^]|<<|>>>?)?=(?!=)|\b(?:ram|ram32|regs)\[[^\]]*\]\s*=(?!=)|\b(?:H\[\d+\]|[RW][124]|CW|X87|MISSED|shiftOp|imulTrunc|flushFlags)\(/;

/** Handler-call and memory-helper references the generated code closes over. */
interface Env {
  handlers: Handler[];
  insns: Insn[];
}

/** Which instructions can be emitted inline (and what the emitter must know about them). */
interface InsnInfo {
  inline: boolean;
  /** May raise a guest exception (memory access, or a handler call). */
  mayFault: boolean;
  /** Reads arithmetic flags from the CPU (a handler, a helper, ADC/SBB/INC/DEC, an unknown condition). */
  readsFlags: boolean;
  /** Overwrites all six arithmetic flags without reading any. */
  writesAllFlags: boolean;
  /** Writes some flags and keeps the others (INC/DEC, rotates): reads them only if its own are live. */
  partialFlags?: boolean;
}

/** FADD/FMUL/FSUB/FSUBR/FDIV/FDIVR between x87 registers (see x87RegisterArithmetic). */
function isX87RegisterArithmetic(i: Insn): boolean {
  const op = i.opcode;
  return (op === 0xd8 || op === 0xdc || op === 0xde) && i.mod === 3 && i.reg !== 2 && i.reg !== 3;
}

/** MOVS, STOS, LODS or SCAS without a REP prefix, with 32-bit addressing (ESI/EDI). */
function isSingleString(i: Insn): boolean {
  const op = i.opcode;
  return (
    op >= 0xa4 &&
    op <= 0xaf &&
    op !== 0xa6 &&
    op !== 0xa7 &&
    op !== 0xa8 &&
    op !== 0xa9 &&
    i.rep === 0 &&
    i.addr32
  );
}

function isFlagSettingAlu(op: number): boolean {
  return op !== 2 && op !== 3;
}

/** Classifies an instruction for the emitter (mirrors the cases `emitInsn` handles). */
function classify(i: Insn): InsnInfo {
  const op = i.opcode;
  const mem = i.mod !== 3 && i.entry.modrm;
  const info: InsnInfo = { inline: true, mayFault: mem, readsFlags: false, writesAllFlags: false };
  if (i.lock) {
    // LOCK forms keep the interpreter's checks (#UD on bad forms) and atomic intent.
    return { inline: false, mayFault: true, readsFlags: true, writesAllFlags: false };
  }
  if (op < 0x40 && (op & 7) < 6) {
    const alu = (op >> 3) & 7;
    info.writesAllFlags = isFlagSettingAlu(alu);
    info.readsFlags = !info.writesAllFlags;
    return info;
  }
  if (op === 0x80 || op === 0x81 || op === 0x83) {
    info.writesAllFlags = isFlagSettingAlu(i.reg);
    info.readsFlags = !info.writesAllFlags;
    return info;
  }
  if (op >= 0x40 && op <= 0x4f) return { ...info, readsFlags: true, partialFlags: true };
  if (op >= 0x50 && op <= 0x5f) return { ...info, mayFault: true };
  if (op === 0x68 || op === 0x6a) return { ...info, mayFault: true };
  if (op >= 0x70 && op <= 0x7f) return info;
  if (op >= 0x180 && op <= 0x18f) return info;
  if (op >= 0x190 && op <= 0x19f) return info;
  if (op >= 0x140 && op <= 0x14f) return info;
  if (op === 0x84 || op === 0x85 || op === 0xa8 || op === 0xa9) return { ...info, writesAllFlags: true };
  if (op === 0x86 || op === 0x87) return info;
  if (op >= 0x88 && op <= 0x8b) return info;
  if (op === 0x8d) return i.mod === 3 ? notInline() : info;
  if (op === 0x90) return info;
  if (op >= 0x91 && op <= 0x97) return info;
  if (op === 0x98 || op === 0x99) return info;
  if (op >= 0xa0 && op <= 0xa3) return { ...info, mayFault: true };
  if (isSingleString(i)) return { ...info, mayFault: true, writesAllFlags: op === 0xae || op === 0xaf };
  if (op >= 0xb0 && op <= 0xbf) return info;
  if (op === 0xc0 || op === 0xc1 || op === 0xd0 || op === 0xd1 || op === 0xd2 || op === 0xd3) {
    // A memory operand with a count that may be zero is only read, not checked for writing.
    const maybeZero = op === 0xd2 || op === 0xd3 || ((op === 0xc0 || op === 0xc1) && (i.imm & 31) === 0);
    if (mem && maybeZero) return notInline();
    const constant = i.size === 4 && !maybeZero && i.reg !== 2 && i.reg !== 3;
    if (constant && i.reg >= 4) return { ...info, writesAllFlags: true };
    if (i.size !== 4 && !mem && !maybeZero && i.reg >= 4) return { ...info, writesAllFlags: true };
    // Rotates, and shifts by CL that may be by zero, keep some or all of the flags.
    const byCl = op === 0xd3 && i.size === 4 && !mem && i.reg !== 2 && i.reg !== 3;
    return { ...info, readsFlags: true, partialFlags: (constant && i.reg <= 1) || byCl };
  }
  if (op === 0xc2 || op === 0xc3) return { ...info, mayFault: true };
  // C6/C7 are MOV only with ModRM.reg 0; the other encodings (XABORT, XBEGIN) raise #UD here.
  if (op === 0xc6 || op === 0xc7) return i.reg === 0 ? info : notInline();
  if (op === 0xc9) return { ...info, mayFault: true };
  if (op === 0xe8) return { ...info, mayFault: true };
  if (op === 0xe9 || op === 0xeb) return info;
  if (op === 0xe2 || op === 0xe3) return info;
  if (op === 0xfc || op === 0xfd) return info;
  if (op === 0xf6 || op === 0xf7) {
    if (i.reg <= 1) return { ...info, writesAllFlags: true };
    if (i.reg === 2) return info;
    if (i.reg === 3) return { ...info, writesAllFlags: true };
    if ((i.reg === 4 || i.reg === 5) && i.size === 4) return { ...info, writesAllFlags: true };
    if (i.reg === 6 && i.size === 4) return { ...info, mayFault: true };
    return notInline();
  }
  if (op === 0xfe || op === 0xff) {
    if (i.reg <= 1) return { ...info, readsFlags: true, partialFlags: true };
    if (op === 0xff && (i.reg === 2 || i.reg === 4))
      return { ...info, mayFault: info.mayFault || i.reg === 2 };
    if (op === 0xff && i.reg === 6) return { ...info, mayFault: true };
    return notInline();
  }
  if (op === 0x1b6 || op === 0x1b7 || op === 0x1be || op === 0x1bf) return info;
  if (op === 0x1af || op === 0x69 || op === 0x6b) {
    return i.size === 4 ? { ...info, writesAllFlags: true } : { ...info, readsFlags: true };
  }
  if (op >= 0x1c8 && op <= 0x1cf) return info;
  if (op >= 0x118 && op <= 0x11f) return info;
  return notInline();
}

function notInline(): InsnInfo {
  return { inline: false, mayFault: true, readsFlags: true, writesAllFlags: false };
}

/**
 * `KnownFlags.op` for results whose CF/OF do not follow the lazy-flag formulas (INC/DEC, shifts,
 * rotates, multiplies): only ZF, SF and PF may be read from `r`.
 */
const RESULT_ONLY = -1;

/** The last flag-setting operation, as JS expressions, when this block computed it inline. */
interface KnownFlags {
  op: number;
  size: number;
  a: string;
  b: string;
  r: string;
}

/** The registers an emitted expression reads, as a mask (bit r for the local `r<r>`). */
function registersIn(expression: string): number {
  let mask = 0;
  for (const m of expression.matchAll(/\br([0-7])\b/g)) mask |= 1 << Number(m[1]);
  return mask;
}

class Emitter {
  readonly out: string[] = [];
  /** Registers read or written by inline code. */
  readonly used = new Set<number>();
  /** Registers written by inline code. */
  readonly written = new Set<number>();
  private temps = 0;
  readonly tempNames: string[] = [];
  /**
   * Set while emitting a block's loop form: a memory access that misses the TLB fast path leaves
   * the translation with EIP at its instruction, for the interpreter to run the rest of the block
   * (taking the slow path), instead of calling the slow path in place. A loop made of such code
   * calls nothing, so V8 keeps the typed arrays' lengths and backing stores in registers across
   * turns. Blocks outside loops use the form too: it makes smaller functions, which cost V8 less
   * to compile (measured on the boot: less host CPU, and the decompressor faster). `missStub` is
   * the statement that leaves, for the instruction being emitted: it sets `ms` and breaks out of
   * the loop (or, in a case of its own, out of the switch), and the function then leaves (the exit
   * tells the CPU). Breaking out of both loops at once, or going round the outer one, compiled
   * into slower loops or into code V8 deoptimised when it had compiled the loop alone (on-stack
   * replacement). `insnStart` is the line of `out` the instruction starts at.
   */
  loopForm = false;
  missStub = "";
  insnStart = 0;
  /** The loop form is unusable: an access came after its instruction had changed state. */
  loopFormFailed = false;
  known: KnownFlags | undefined;
  /**
   * The last read, while `l`, `e` and `p` still describe it (`p` is -1 after its slow path): a
   * store of the same size to the same flat address reuses its TLB lookup, as in a load, an
   * operation on registers and a store back (the compiled form of `x += y` through a pointer).
   * Every other memory access forgets it, and so does a handler call (the only other code that
   * can change the TLB) and a write to a register the address is computed from.
   */
  lastRead: { seg: number; off: string; size: number; regs: number } | undefined;
  /**
   * In the loop form, the open page group of each base register: accesses at constant
   * displacements from a register the block has not changed since the group's first access, or
   * has changed only by adding constants (pushes, pops, pointer steps). That access checks, once,
   * that the TLB grants every access of the group, that they all fall on its page and that its
   * dwords are aligned, and leaves its RAM place in a temp; the others are a plain `ram` or
   * `ram32` access at a constant distance from it (compiled code addresses its stack frame and
   * its structures so: one TLB lookup instead of one each). The first access's check is written
   * when the group closes, when its span is known: at any other write to the register and at the
   * end of the block. Nothing in the loop form can change the TLB (it calls nothing).
   */
  private readonly pageGroups = new Map<number, PageGroup>();
  /** Whether the block being emitted may form page groups (see Block.pageGroupsOff). */
  pageGroupsAllowed = true;
  /** Page groups of more than one access written since the block's emission began. */
  pageGroupsFormed = 0;
  /** Bits of `Cpu.flatMask` the emitted code relies on. */
  flatNeeded = 0;
  readonly env: Env = { handlers: [], insns: [] };

  readonly flatAvailable: number;
  readonly stack32: boolean;
  readonly ramBelow2GiB: boolean;
  /** The RAM byte offset of linear address `l` through TLB entry `e`. */
  readonly ramOffset: string;
  /** The RAM dword index of an aligned linear address `l` through TLB entry `e`. */
  readonly ramIndex32: string;

  constructor(flatAvailable: number, stack32: boolean, ramBelow2GiB: boolean) {
    this.ramBelow2GiB = ramBelow2GiB;
    this.flatAvailable = flatAvailable;
    this.stack32 = stack32;
    // Below 2 GiB the offset fits an int32, which V8 computes and indexes with without doubles.
    this.ramOffset = ramBelow2GiB ? "((e >>> 9) << 12) | (l & 4095)" : "(e >>> 9) * 4096 + (l & 4095)";
    this.ramIndex32 = ramBelow2GiB
      ? "((e >>> 9) << 10) | ((l >>> 2) & 1023)"
      : "(e >>> 9) * 1024 + ((l >>> 2) & 1023)";
  }

  line(s: string): void {
    this.out.push(s);
  }

  temp(): string {
    const name = `t${this.temps++}`;
    if (this.temps > this.tempNames.length) this.tempNames.push(name);
    return name;
  }

  /** Temps allocated so far; a block's second form starts again from the count its first did. */
  get tempCount(): number {
    return this.temps;
  }

  rewindTemps(count: number): void {
    this.temps = count;
  }

  /**
   * In the loop form, the statement that leaves the translation at a miss; undefined otherwise.
   * Leaving and running the instruction again from its start is exact only while the instruction
   * has changed nothing yet (its earlier accesses were reads of RAM), so an access after a change
   * makes the loop form unusable.
   */
  private missExit(): string | undefined {
    if (!this.loopForm) return undefined;
    if (changesState(this.out, this.insnStart)) {
      this.loopFormFailed = true;
      return undefined;
    }
    return this.missStub;
  }

  // ---- registers ----

  reg32(r: number): string {
    this.used.add(r);
    return `r${r}`;
  }

  /**
   * Inline code adds the constant `delta` to 32-bit register `r` (a push or a pop, ADD, SUB, LEA,
   * INC or DEC): as `wrote`, but a page group through `r` stays open, its displacements counted
   * from the value the register had at the group's first access.
   */
  movedBy(r: number, delta: number): void {
    const group = this.pageGroups.get(r);
    this.pageGroups.delete(r);
    this.wrote(r);
    if (group !== undefined) {
      group.shift += delta;
      this.pageGroups.set(r, group);
    }
  }

  /** Inline code writes 32-bit register `r`: an address computed from it is stale. */
  wrote(r: number): void {
    this.written.add(r);
    this.closePageGroup(r);
    if (this.lastRead !== undefined && (this.lastRead.regs >> r) & 1) this.lastRead = undefined;
  }

  /** Sets 32-bit register `r` to `value`, which is its old value plus the constant `delta`. */
  setReg32MovedBy(r: number, value: string, delta: number): void {
    this.reg32(r);
    this.movedBy(r, delta);
    this.line(`r${r} = ${value} | 0;`);
  }

  getReg(size: number, r: number): string {
    if (size === 4) return this.reg32(r);
    if (size === 2) return `(${this.reg32(r)} & 0xffff)`;
    return r < 4 ? `(${this.reg32(r)} & 0xff)` : `((${this.reg32(r - 4)} >> 8) & 0xff)`;
  }

  setReg(size: number, r: number, value: string): void {
    if (size === 4) {
      this.wrote(r);
      this.line(`${this.reg32(r)} = ${value} | 0;`);
    } else if (size === 2) {
      this.wrote(r);
      this.line(`${this.reg32(r)} = (r${r} & -65536) | ((${value}) & 0xffff);`);
    } else if (r < 4) {
      this.wrote(r);
      this.line(`${this.reg32(r)} = (r${r} & -256) | ((${value}) & 0xff);`);
    } else {
      this.wrote(r - 4);
      this.line(`${this.reg32(r - 4)} = (r${r - 4} & -65281) | (((${value}) & 0xff) << 8);`);
    }
  }

  // ---- addresses and memory ----

  /** The instruction's memory offset as an int32 expression (32-bit) or 0..0xFFFF (16-bit). */
  offset(i: Insn): string {
    const parts: string[] = [];
    if (i.base >= 0) parts.push(this.reg32(i.base));
    if (i.index >= 0) parts.push(i.scale ? `(${this.reg32(i.index)} << ${i.scale})` : this.reg32(i.index));
    if (i.disp !== 0 || parts.length === 0) parts.push(String(i.disp | 0));
    const sum = parts.join(" + ");
    return i.addr32 ? (parts.length === 1 && i.disp === 0 ? sum : `((${sum}) | 0)`) : `((${sum}) & 0xffff)`;
  }

  private isFlat(seg: number, write: boolean): boolean {
    const bit = 1 << (seg + (write ? 8 : 0));
    if ((this.flatAvailable & bit) === 0) return false;
    this.flatNeeded |= bit;
    return true;
  }

  /** Linear address into `lin` for an access of `size` at seg:off; limit checks for non-flat segments. */
  private linear(seg: number, off: string, size: number, write: boolean, lin: string): boolean {
    if (this.isFlat(seg, write)) {
      this.line(`${lin} = ${off};`);
      return true;
    }
    const u = this.temp();
    const lo = write ? "wLo" : "rLo";
    const hi = write ? "wHi" : "rHi";
    this.line(`${u} = ${off} >>> 0;`);
    this.line(`if (${u} < ${lo}[${seg}] || ${u} + ${size - 1} > ${hi}[${seg}]) cpu.segFault(${seg});`);
    this.line(`${lin} = (segBase[${seg}] + ${u}) | 0;`);
    return false;
  }

  // A dword access takes the fast path only when aligned, which also keeps it inside the page:
  // one test instead of two, and one typed-array access. Compiled code rarely misaligns; the
  // CPU's checked path handles it when it does.

  /** The fast path's condition: TLB entry `e` grants `need`, and the access fits. */
  private fast(need: string, size: number): string {
    const grant = `(e & ${need}) === ${need}`;
    if (size === 4) return `${grant} && (l & 3) === 0`;
    if (size === 2) return `${grant} && (l & 4095) !== 4095`;
    return grant;
  }

  /** `p` for the fast path: a byte offset, or for dwords an index into `ram32`. */
  private ramPlace(size: number): string {
    return size === 4 ? this.ramIndex32 : this.ramOffset;
  }

  /** A read of RAM at `place` (a byte offset, or for dwords an index into `ram32`). */
  private readRam(size: number, place = "p"): string {
    if (size === 1) return `ram[${place}]`;
    if (size === 2) return `(ram[${place}] | (ram[${place} + 1] << 8))`;
    return `ram32[${place}]`;
  }

  private writeRam(size: number, v: string, place = "p"): string {
    if (size === 1) return `ram[${place}] = ${v};`;
    if (size === 2) return `ram[${place}] = ${v}; ram[${place} + 1] = ${v} >> 8;`;
    return `ram32[${place}] = ${v};`;
  }

  /**
   * The RAM place (see readRam) of an access joining the open page group of its base register,
   * if it can: a flat access within MAX_GROUP_SPAN bytes of all the group's accesses. A byte or
   * word joins anywhere; a dword joins a group opened by a dword (which is aligned) at a multiple
   * of four from it, and a group opened by a byte or word at the one alignment its dwords share.
   * Joining widens the group.
   */
  private joinPageGroup(seg: number, off: string, size: number, write: boolean): string | undefined {
    if (!this.loopForm || !this.pageGroupsAllowed) return undefined;
    const at = baseAndDisplacement(off);
    if (at === undefined) return undefined;
    const group = this.pageGroups.get(at.base);
    if (group === undefined) return undefined;
    const disp = at.disp + group.shift;
    const distance = disp - group.anchor;
    if (size === 4 && group.unit === 4 && (distance & 3) !== 0) return undefined;
    if (size === 4 && group.unit === 1) {
      // Its dwords all share one alignment, which the first access's check tests.
      if (!this.ramBelow2GiB || (group.dwordResidue >= 0 && (distance & 3) !== group.dwordResidue))
        return undefined;
    }
    const lo = Math.min(group.lo, disp);
    const hi = Math.max(group.hi, disp + size - 1);
    if (hi - lo >= MAX_GROUP_SPAN || !this.isFlat(seg, write)) return undefined;
    group.lo = lo;
    group.hi = hi;
    group.members++;
    if (write) group.writes = true;
    else group.reads = true;
    if (group.unit === 1) {
      if (size !== 4) return distance === 0 ? group.index : `${group.index} + ${distance}`;
      group.dwordResidue = distance & 3;
      return `(${group.index} + ${distance}) >> 2`;
    }
    if (size === 4) return distance === 0 ? group.index : `${group.index} + ${distance >> 2}`;
    // The index times four, as an int32 while RAM is below 2 GiB.
    const bytes = this.ramBelow2GiB ? `(${group.index} << 2)` : `(${group.index} * 4)`;
    return distance === 0 ? bytes : `${bytes} + ${distance}`;
  }

  /**
   * Opens a page group at a flat access through `off` whose first line (`render`, given the
   * fast path's condition and the statement that keeps the page's index) is the out line `line`.
   * Returns whether it did; the caller then renders nothing itself.
   */
  private openPageGroup(
    off: string,
    size: number,
    write: boolean,
    render: (check: string, keep: string) => string,
  ): boolean {
    if (!this.loopForm || !this.pageGroupsAllowed) return false;
    const at = baseAndDisplacement(off);
    if (at === undefined) return false;
    this.closePageGroup(at.base);
    const group: PageGroup = {
      line: this.out.length,
      anchor: at.disp,
      shift: 0,
      lo: at.disp,
      hi: at.disp + size - 1,
      reads: !write,
      writes: write,
      members: 1,
      index: this.temp(),
      unit: size === 4 ? 4 : 1,
      dwordResidue: -1,
      render,
    };
    this.pageGroups.set(at.base, group);
    this.line(render(this.fast(write ? "WN" : "RN", size), ""));
    return true;
  }

  /** Writes the first access's check of `base`'s page group, for the span it ended up with. */
  private closePageGroup(base: number): void {
    const group = this.pageGroups.get(base);
    if (group === undefined) return;
    this.pageGroups.delete(base);
    if (group.members === 1) return;
    this.pageGroupsFormed++;
    const need = group.reads && group.writes ? "(RN | WN)" : group.writes ? "WN" : "RN";
    const lo = group.lo - group.anchor;
    const hi = group.hi - group.anchor;
    const from = lo === 0 ? "l" : `(l + ${lo})`;
    const to = hi === 0 ? "l" : `(l + ${hi})`;
    const residue = group.unit === 4 ? 0 : group.dwordResidue;
    const aligned =
      residue < 0 ? "" : residue === 0 ? " && (l & 3) === 0" : ` && ((l + ${residue}) & 3) === 0`;
    this.out[group.line] = group.render(
      `(e & ${need}) === ${need}${aligned} && ((${from} ^ ${to}) & -4096) === 0`,
      ` ${group.index} = p;`,
    );
  }

  /** Closes every page group (the end of a block, or of its loop form's emission). */
  closePageGroups(): void {
    for (const base of [...this.pageGroups.keys()]) this.closePageGroup(base);
  }

  /** Forgets page groups without writing their checks (the form is being emitted again). */
  dropPageGroups(): void {
    this.pageGroups.clear();
  }

  // Every access leaves the linear address in `l`; `e` and `p` are scratch for the TLB entry and
  // the RAM offset (nothing else runs between an access's read and its write). A main-RAM page
  // stays the same array for the VM's life, so no reload is needed after a slow path.

  /** Emits a read of `size` bytes at seg:off; returns the temp holding the value (int32 for 4). */
  read(seg: number, off: string, size: number): string {
    const v = this.temp();
    const member = this.joinPageGroup(seg, off, size, false);
    if (member !== undefined) {
      this.line(`${v} = ${this.readRam(size, member)};`);
      this.lastRead = undefined;
      return v;
    }
    // Flat or not, `l` is the linear address by now (a flat segment's limits let everything by).
    const flat = this.linear(seg, off, size, false, "l");
    const slow = `R${size}(cpu, l)`;
    const exit = this.missExit();
    if (exit !== undefined) {
      const render = (check: string, keep: string) =>
        `e = tlb[l >>> 12]; if (!(${check})) ${exit} p = ${this.ramPlace(size)}; ${v} = ${this.readRam(size)};${keep}`;
      if (!flat || !this.openPageGroup(off, size, false, render))
        this.line(render(this.fast("RN", size), ""));
    } else {
      this.line(
        `e = tlb[l >>> 12]; ${v} = ${this.fast("RN", size)} ? (p = ${this.ramPlace(size)}, ${this.readRam(size)}) : (co = true, p = -1, ${slow})${size === 4 ? " | 0" : ""};`,
      );
    }
    this.lastRead = flat ? { seg, off, size, regs: registersIn(off) } : undefined;
    return v;
  }

  /** Emits a write of `value` (`size` bytes) at seg:off. */
  write(seg: number, off: string, size: number, value: string): void {
    const last = this.lastRead;
    this.lastRead = undefined;
    const member = this.joinPageGroup(seg, off, size, true);
    if (member !== undefined) {
      this.line(this.writeRam(size, value, member));
      return;
    }
    const slow = `W${size}(cpu, l, ${value})`;
    if (
      last !== undefined &&
      last.seg === seg &&
      last.off === off &&
      last.size === size &&
      this.isFlat(seg, true)
    ) {
      // `l` holds the address already; `p` is its place if the read took the fast path (which
      // checked the alignment too), and `e` its TLB entry. In the loop form the read left on a miss.
      const exit = this.missExit();
      if (exit !== undefined) {
        this.line(`if ((e & WN) !== WN) ${exit} ${this.writeRam(size, value)}`);
        return;
      }
      this.line(
        `if (p >= 0 && (e & WN) === WN) { ${this.writeRam(size, value)} } else { co = true; ${slow}; }`,
      );
      return;
    }
    const flat = this.linear(seg, off, size, true, "l");
    const exit = this.missExit();
    if (exit !== undefined) {
      const render = (check: string, keep: string) =>
        `e = tlb[l >>> 12]; if (!(${check})) ${exit} p = ${this.ramPlace(size)}; ${this.writeRam(size, value)}${keep}`;
      if (!flat || !this.openPageGroup(off, size, true, render)) this.line(render(this.fast("WN", size), ""));
      return;
    }
    this.line(
      `e = tlb[l >>> 12]; if (${this.fast("WN", size)}) { p = ${this.ramPlace(size)}; ${this.writeRam(size, value)} } else { co = true; ${slow}; }`,
    );
  }

  /**
   * Read-modify-write: checks that seg:off is writable (segment and page) before reading, then
   * `compute(value)` gives the expression to store. Returns the temp holding the old value.
   */
  readModifyWrite(seg: number, off: string, size: number, compute: (old: string) => string): string {
    this.lastRead = undefined;
    const v = this.temp();
    const res = this.temp();
    const member = this.joinPageGroup(seg, off, size, true);
    if (member !== undefined) {
      // Joining as a write covers the read: a page granted for writing is readable.
      this.line(`${v} = ${this.readRam(size, member)};`);
      this.line(`${res} = ${compute(v)};`);
      this.line(this.writeRam(size, res, member));
      return v;
    }
    const flat = this.linear(seg, off, size, true, "l");
    // The slow path checks the write permission first, as the processor does.
    const slowRead = `R${size}(cpu, l)`;
    const check = `CW(cpu, l, ${size})`;
    const exit = this.missExit();
    if (exit !== undefined) {
      const render = (fast: string, keep: string) =>
        `e = tlb[l >>> 12]; if (!(${fast})) ${exit} p = ${this.ramPlace(size)}; ${v} = ${this.readRam(size)};${keep}`;
      if (!flat || !this.openPageGroup(off, size, true, render)) this.line(render(this.fast("WN", size), ""));
      this.line(`${res} = ${compute(v)};`);
      this.line(this.writeRam(size, res));
      return v;
    }
    this.line(
      `e = tlb[l >>> 12]; if (${this.fast("WN", size)}) { p = ${this.ramPlace(size)}; ${v} = ${this.readRam(size)}; } else { co = true; ${check}; ${v} = ${slowRead}${size === 4 ? " | 0" : ""}; p = -1; }`,
    );
    this.line(`${res} = ${compute(v)};`);
    const slowWrite = `W${size}(cpu, l, ${res})`;
    this.line(`if (p >= 0) { ${this.writeRam(size, res)} } else ${slowWrite};`);
    return v;
  }

  /** Reads the r/m operand (register or memory). */
  readE(i: Insn, size: number): string {
    if (i.mod === 3) return this.getReg(size, i.rm);
    return this.read(i.seg, this.offset(i), size);
  }

  /** Writes the r/m operand. */
  writeE(i: Insn, size: number, value: string): void {
    if (i.mod === 3) this.setReg(size, i.rm, value);
    else this.write(i.seg, this.offset(i), size, value);
  }

  // ---- stack ----

  push(size: number, value: string): void {
    const v = this.temp();
    this.line(`${v} = ${value};`);
    if (this.stack32) {
      // Addressed as ESP plus a displacement, so that pushes join a page group through ESP.
      this.write(SS, `((${this.reg32(4)} + -${size}) | 0)`, size, v);
      this.movedBy(4, -size);
      this.line(`r4 = (r4 - ${size}) | 0;`);
      return;
    }
    const sp = this.temp();
    this.line(`${sp} = (${this.reg32(4)} - ${size}) & 0xffff;`);
    this.write(SS, sp, size, v);
    this.wrote(4);
    this.line(`r4 = (r4 & -65536) | ${sp};`);
  }

  /** Pops into a temp (ESP updated after the read); returns the temp. */
  pop(size: number): string {
    const off = this.stack32 ? this.reg32(4) : `(${this.reg32(4)} & 0xffff)`;
    const v = this.read(SS, off, size);
    if (this.stack32) {
      this.movedBy(4, size);
      this.line(`r4 = (r4 + ${size}) | 0;`);
    } else {
      this.wrote(4);
      this.line(`r4 = (r4 & -65536) | ((r4 + ${size}) & 0xffff);`);
    }
    return v;
  }
}

// ---- flags --------------------------------------------------------------------------------------

function maskExpr(size: number, v: string): string {
  return size === 4 ? `(${v} | 0)` : `(${v} & ${MASK[size]})`;
}

// The flags a translation computes are held in JS locals and written to the CPU's lazy-flag fields
// only when something outside the translation could look at them: before a handler, a flag read
// through the CPU, a fault (the catch clause) and the exit. `fk` packs the kind of the pending
// result with its operation and operand size (one assignment per flag-setting instruction, and
// fewer values live around a region's loop); `fa`, `fb`, `fr` and `fx` hold its operands. Each kind
// fully determines the six arithmetic flags, so a newer result simply replaces a pending one, and
// V8 drops the stores nobody reads.

/** No result pending in the flag locals. */
const FK_NONE = 0;
const FK_ARITH = 1;
const FK_LOGIC = 2;
/** SF/ZF/PF from the result, CF/OF/AF given (`fx`). */
const FK_RESULT = 3;
/** INC/DEC: arithmetic flags with CF kept as `fx`. */
const FK_KEEP_CARRY = 4;
/**
 * INC/DEC after flags the translation does not know statically: CF is that of the state saved in
 * the g locals (which may be "none pending": the CPU's own CF). Loop counters decremented at the
 * top of a block would otherwise write the pending flags out just to read CF back.
 */
const FK_KEEP_PENDING = 5;
const FK_KIND_MASK = 7;
const FK_OP_SHIFT = 3;
const FK_SIZE_SHIFT = 6;

/** `fk` for a result of `kind` from lazy operation `op` (a number, or an expression) on `size` bytes. */
function packedKind(kind: number, op: number | string, size: number): string {
  if (typeof op === "number") return String(kind | (op << FK_OP_SHIFT) | (size << FK_SIZE_SHIFT));
  return `(${kind | (size << FK_SIZE_SHIFT)} | (${op} << ${FK_OP_SHIFT}))`;
}

/**
 * The memory slow paths, as plain functions of the CPU that translations are made with. Calling
 * `cpu.readLin32` and the like would be a property load, and one that has not run when V8
 * optimises a translation (a slow path often has not) throws the optimised code away the first
 * time it does.
 */
const R1 = (cpu: Cpu, l: number): number => cpu.readLin8(l);
const R2 = (cpu: Cpu, l: number): number => cpu.readLin16(l);
const R4 = (cpu: Cpu, l: number): number => cpu.readLin32(l);
const W1 = (cpu: Cpu, l: number, v: number): void => cpu.writeLin8(l, v);
const W2 = (cpu: Cpu, l: number, v: number): void => cpu.writeLin16(l, v);
const W4 = (cpu: Cpu, l: number, v: number): void => cpu.writeLin32(l, v);
const CW = (cpu: Cpu, l: number, size: number): void => cpu.checkWritable(l, size);

/** Writes pending flag locals to the CPU (a statement). */
const FLUSH_FLAGS = `if (fk !== ${FK_NONE}) { flushFlags(cpu, fk, fa, fb, fr, fx, gk, ga, gb, gr, gx); fk = ${FK_NONE}; }`;

/** Writes a pending flag result (held in a translation's locals) to the CPU's lazy-flag fields. */
function flushFlags(
  cpu: Cpu,
  packed: number,
  a: number,
  b: number,
  r: number,
  x: number,
  gPacked: number,
  gA: number,
  gB: number,
  gR: number,
  gX: number,
): void {
  const op = (packed >> FK_OP_SHIFT) & 7;
  const size = packed >> FK_SIZE_SHIFT;
  switch (packed & FK_KIND_MASK) {
    case FK_KEEP_PENDING:
      if (gPacked !== FK_NONE) flushFlags(cpu, gPacked, gA, gB, gR, gX, FK_NONE, 0, 0, 0, 0);
      cpu.setArithKeepCarry(op, a, r, size, cpu.cf());
      break;
    case FK_ARITH:
      cpu.setArith(op, a, b, r, size);
      break;
    case FK_LOGIC:
      cpu.setLogic(r, size);
      break;
    case FK_RESULT:
      cpu.setResultFlags(r, size, x);
      break;
    case FK_KEEP_CARRY:
      cpu.setArithKeepCarry(op, a, r, size, x !== 0);
      break;
  }
}

/** Records an arithmetic result as the pending flags. */
function storeArith(em: Emitter, op: number | string, a: string, b: string, r: string, size: number): void {
  em.line(`fk = ${packedKind(FK_ARITH, op, size)}; fa = ${a}; fb = ${b}; fr = ${r};`);
}

function storeLogic(em: Emitter, r: string, size: number): void {
  em.line(`fk = ${packedKind(FK_LOGIC, 0, size)}; fr = ${r};`);
}

function storeResultFlags(em: Emitter, r: string, size: number, cfOfAf: string): void {
  em.line(`fk = ${packedKind(FK_RESULT, 0, size)}; fr = ${r}; fx = ${cfOfAf};`);
}

/** CF as the CPU has it, for code that has no known flags (the pending ones are written first). */
function cpuCarry(em: Emitter): string {
  const known = em.known ? knownCondition(em.known, 2) : undefined;
  if (known !== undefined) return known;
  em.line(FLUSH_FLAGS);
  return "cpu.cf()";
}

/** A JS boolean expression for condition `cc` from known flags, or undefined. */
function knownCondition(k: KnownFlags, cc: number): string | undefined {
  const { op, size, a, b, r } = k;
  const m = MASK[size]!;
  const sign = SIGN[size]!;
  const u = (x: string) => (size === 4 ? `(${x} >>> 0)` : `(${x} & ${m})`);
  const s = (x: string) =>
    size === 4 ? `(${x} | 0)` : size === 2 ? `((${x} << 16) >> 16)` : `((${x} << 24) >> 24)`;
  const zf = `((${r} & ${m}) === 0)`;
  const sf = `((${r} & ${sign}) !== 0)`;
  let e: string | undefined;
  switch (cc >> 1) {
    case 0: // O
      if (op === LZ_SUB) e = `(((${a} ^ ${b}) & (${a} ^ ${r}) & ${sign}) !== 0)`;
      else if (op === LZ_ADD) e = `(((${a} ^ ${r}) & (${b} ^ ${r}) & ${sign}) !== 0)`;
      else if (op === LZ_LOGIC) e = "false";
      break;
    case 1: // B
      if (op === LZ_SUB) e = `(${u(a)} < ${u(b)})`;
      else if (op === LZ_ADD) e = `(${u(r)} < ${u(a)})`;
      else if (op === LZ_LOGIC) e = "false";
      break;
    case 2: // Z
      e = zf;
      break;
    case 3: // BE
      if (op === LZ_SUB) e = `(${u(a)} <= ${u(b)})`;
      else if (op === LZ_LOGIC) e = zf;
      break;
    case 4: // S
      e = sf;
      break;
    case 5: // P
      e = `(PARITY[${r} & 0xff] !== 0)`;
      break;
    case 6: // L
      if (op === LZ_SUB) e = `(${s(a)} < ${s(b)})`;
      else if (op === LZ_LOGIC) e = sf;
      break;
    default: // LE
      if (op === LZ_SUB) e = `(${s(a)} <= ${s(b)})`;
      else if (op === LZ_LOGIC) e = `(${zf} || ${sf})`;
      break;
  }
  if (e === undefined) return undefined;
  return cc & 1 ? `!${e}` : e;
}

function condition(em: Emitter, cc: number): string {
  const known = em.known ? knownCondition(em.known, cc) : undefined;
  if (known !== undefined) return known;
  em.line(FLUSH_FLAGS);
  return `cpu.cond(${cc})`;
}

// ---- the instructions ---------------------------------------------------------------------------

interface Ctx {
  em: Emitter;
  /** Index of the instruction in the block. */
  k: number;
  /** Offset of the next instruction from the block's entry EIP. */
  next: number;
  /** This instruction's flag results are observable (must reach the CPU's fields). */
  flagsLive: boolean;
  code32: boolean;
}

/**
 * Where control goes next, as translated code keeps it in `nx`: the target's offset from the
 * region's base `pb`, a literal for every static target. The exit adds the base back. No
 * arithmetic on a branch's arms means V8 needs no type feedback for them: an arm that had never
 * run when the function was optimised (a loop's exit, say) would otherwise throw the optimised
 * code away the first time it runs. Offsets are int32, so is all arithmetic on them and what
 * reaches the CPU (`eipField`).
 */
function eipExpr(ctx: Pick<Ctx, "code32">, offset: number | string): string {
  return ctx.code32 ? String(offset) : `(((pb + ${offset}) & 0xffff) - pb)`;
}

/** EIP at a region offset as a value the guest sees (a return address), int32. */
function eipValue(ctx: Pick<Ctx, "code32">, offset: number | string): string {
  return ctx.code32 ? `((pb + ${offset}) | 0)` : `((pb + ${offset}) & 0xffff)`;
}

/** EIP at a region offset as the CPU's `ip` and `instrStart` hold it (signed). */
function eipField(ctx: Pick<Ctx, "code32">, offset: number | string): string {
  return ctx.code32 ? `((pb + ${offset}) | 0)` : `((pb + ${offset}) & 0xffff)`;
}

/** Jump target of a relative branch (opsize truncation as jumpTo does). */
function relTarget(ctx: Ctx, i: Insn): string {
  const d = ctx.next + i.imm;
  return i.opsize === 4 ? String(d) : `(((pb + ${d}) & 0xffff) - pb)`;
}

/** An ALU result: its temp, and for ADC/SBB the temp holding the carry that went in. */
interface AluResult {
  r: string;
  carry?: string;
}

/** An ALU operation on JS values a, b (masked to size). */
function emitAlu(ctx: Ctx, op: number, a: string, b: string, size: number): AluResult {
  const em = ctx.em;
  const r = em.temp();
  switch (op) {
    case 0:
      em.line(`${r} = ${maskExpr(size, `${a} + ${b}`)};`);
      em.known = { op: LZ_ADD, size, a, b, r };
      break;
    case 1:
      em.line(`${r} = ${a} | ${b};`);
      em.known = { op: LZ_LOGIC, size, a, b, r };
      break;
    case 4:
      em.line(`${r} = ${a} & ${b};`);
      em.known = { op: LZ_LOGIC, size, a, b, r };
      break;
    case 6:
      em.line(`${r} = ${a} ^ ${b};`);
      em.known = { op: LZ_LOGIC, size, a, b, r };
      break;
    case 5:
    case 7:
      em.line(`${r} = ${maskExpr(size, `${a} - ${b}`)};`);
      em.known = { op: LZ_SUB, size, a, b, r };
      break;
    default: {
      // ADC / SBB: the carry comes from the CPU's flags (or the known previous result).
      const carry = em.temp();
      em.line(`${carry} = ${cpuCarry(em)} ? 1 : 0;`);
      em.line(`${r} = ${maskExpr(size, op === 2 ? `${a} + ${b} + ${carry}` : `${a} - ${b} - ${carry}`)};`);
      em.known = undefined;
      return { r, carry };
    }
  }
  return { r };
}

/**
 * MOVS, STOS, LODS, SCAS without REP (see isSingleString): one element, then ESI and/or EDI step
 * by the operand size, down when EFLAGS.DF is set. The registers change only after every access
 * that can fault, as the interpreter leaves them when one does.
 */
function emitSingleString(ctx: Ctx, i: Insn): void {
  const em = ctx.em;
  const op = i.opcode;
  const s = i.size;
  const step = em.temp();
  em.line(`${step} = (cpu.flagsRaw & ${DF}) !== 0 ? ${-s} : ${s};`);
  const esi = em.getReg(4, 6);
  const edi = em.getReg(4, 7);
  if (op === 0xa4 || op === 0xa5) {
    em.write(ES, edi, s, em.read(i.seg, esi, s));
  } else if (op === 0xaa || op === 0xab) {
    em.write(ES, edi, s, em.getReg(s, 0));
  } else if (op === 0xac || op === 0xad) {
    em.setReg(s, 0, em.read(i.seg, esi, s));
  } else {
    const b = em.read(ES, edi, s);
    const a = em.temp();
    const r = em.temp();
    em.line(`${a} = ${em.getReg(s, 0)};`);
    em.line(`${r} = ${maskExpr(s, `${a} - ${b}`)};`);
    if (ctx.flagsLive) storeArith(em, LZ_SUB, a, b, r, s);
    em.known = { op: LZ_SUB, size: s, a, b, r };
  }
  if (op <= 0xa5 || op === 0xac || op === 0xad) em.setReg(4, 6, `(${esi} + ${step})`);
  if (op <= 0xab || op >= 0xae) em.setReg(4, 7, `(${edi} + ${step})`);
}

/** Stores the flags of an emitAlu result (after the instruction's memory write). */
function emitAluFlags(ctx: Ctx, op: number, a: string, b: string, res: AluResult, size: number): void {
  const em = ctx.em;
  if (res.carry !== undefined) {
    const c = res.carry;
    const lz = op === 2 ? `${c} ? ${LZ_ADC} : ${LZ_ADD}` : `${c} ? ${LZ_SBB} : ${LZ_SUB}`;
    storeArith(em, `(${lz})`, a, b, res.r, size);
    return;
  }
  if (!ctx.flagsLive) return;
  if (op === 1 || op === 4 || op === 6) storeLogic(em, res.r, size);
  else storeArith(em, op === 0 ? LZ_ADD : LZ_SUB, a, b, res.r, size);
}

/**
 * The 32-bit result (before `| 0`) of ROL, ROR, SHL/SAL, SHR or SAR (`sop`) of `a` by `c`, a
 * count of 1 to 31 given as a number or as the name of a local.
 */
function shiftValue32(sop: number, a: string, c: number | string): string {
  switch (sop) {
    case 0:
      return `(${a} << ${c}) | (${a} >>> (32 - ${c}))`;
    case 1:
      return `(${a} >>> ${c}) | (${a} << (32 - ${c}))`;
    case 5:
      return `${a} >>> ${c}`;
    case 7:
      return `${a} >> ${c}`;
    default:
      return `${a} << ${c}`;
  }
}

/** Writes the CF and OF of a 32-bit ROL/ROR (`sop` 0/1) with result `r`; the other flags stay. */
function writeRotateFlags(em: Emitter, sop: number, r: string): void {
  const cf = em.temp();
  em.line(sop === 0 ? `${cf} = ${r} & 1;` : `${cf} = ${r} >>> 31;`);
  const of = sop === 0 ? `((${r} >>> 31) ^ ${cf})` : `(${cf} ^ ((${r} >>> 30) & 1))`;
  em.line(FLUSH_FLAGS);
  em.line(
    `cpu.lazyMask &= ${~(CF | OF)}; cpu.flagsRaw = (cpu.flagsRaw & ${~(CF | OF)}) | ${cf} | (${of} << 11);`,
  );
}

/**
 * Records the flags of SHL/SAL, SHR or SAR (`sop` 4-7) by `c` (1 to 31, a number or a local) of
 * the `size`-byte operand `a` (`signed`: the same, sign-extended) with result `r`, as shiftOp.
 */
function storeShiftFlags(
  em: Emitter,
  sop: number,
  a: string,
  signed: string,
  r: string,
  c: number | string,
  size: number,
): void {
  const top = size * 8 - 1;
  const less = typeof c === "number" ? String(c - 1) : `(${c} - 1)`;
  const cf = em.temp();
  let of = "0";
  if (sop === 5) {
    em.line(`${cf} = (${a} >>> ${less}) & 1;`);
    if (typeof c !== "number") of = `(${c} === 1 ? ${a} >>> ${top} : 0)`;
    else if (c === 1) of = `(${a} >>> ${top})`;
  } else if (sop === 7) {
    em.line(`${cf} = (${signed} >> ${less}) & 1;`);
  } else {
    em.line(`${cf} = ((${a} << ${less}) >>> ${top}) & 1;`);
    of = `(${cf} ^ (${r} >>> ${top}))`;
  }
  storeResultFlags(em, r, size, `${cf} | (${of} << 11)`);
}

/** Returns false when the instruction is not handled inline. */
function emitInsn(ctx: Ctx, i: Insn): boolean {
  const em = ctx.em;
  const op = i.opcode;
  const s = i.size;

  // ALU: 00-3F (forms 0-5), 80/81/83.
  if ((op < 0x40 && (op & 7) < 6) || op === 0x80 || op === 0x81 || op === 0x83) {
    const group = op >= 0x80;
    const aluOp = group ? i.reg : (op >> 3) & 7;
    const form = group ? -1 : op & 7;
    const immediate = String(i.imm & MASK[s]!);
    const av = em.temp();
    const bv = em.temp();
    let dest: number;
    if (form === 4 || form === 5) {
      // op AL/eAX, imm
      em.line(`${av} = ${em.getReg(s, 0)};`);
      em.line(`${bv} = ${immediate};`);
      dest = 0;
    } else if (!group && form >= 2) {
      // op G, E
      em.line(`${bv} = ${em.readE(i, s)};`);
      em.line(`${av} = ${em.getReg(s, i.reg)};`);
      dest = i.reg;
    } else {
      // op E, G / op E, imm
      em.line(`${bv} = ${group ? immediate : em.getReg(s, i.reg)};`);
      if (i.mod !== 3 && aluOp !== 7) {
        let res: AluResult = { r: "" };
        em.readModifyWrite(i.seg, em.offset(i), s, (old) => {
          em.line(`${av} = ${old};`);
          res = emitAlu(ctx, aluOp, av, bv, s);
          return res.r;
        });
        emitAluFlags(ctx, aluOp, av, bv, res, s);
        return true;
      }
      em.line(`${av} = ${em.readE(i, s)};`);
      dest = i.rm;
    }
    const res = emitAlu(ctx, aluOp, av, bv, s);
    // Adding or subtracting a constant leaves a page group through the register open.
    const moves = group && i.mod === 3 && s === 4 && (aluOp === 0 || aluOp === 5);
    if (moves) em.setReg32MovedBy(dest, res.r, aluOp === 0 ? i.imm | 0 : -(i.imm | 0));
    else if (aluOp !== 7) em.setReg(s, dest, res.r);
    emitAluFlags(ctx, aluOp, av, bv, res, s);
    return true;
  }

  // INC/DEC register (40-4F) and r/m (FE/FF /0 /1).
  if ((op >= 0x40 && op <= 0x4f) || ((op === 0xfe || op === 0xff) && i.reg <= 1)) {
    const dec = op <= 0x4f ? (op & 8) !== 0 : i.reg === 1;
    const knownCarry = em.known && ctx.flagsLive ? knownCondition(em.known, 2) : undefined;
    // CF before the instruction, when the translation knows it (read before the operand changes).
    const carry = knownCarry !== undefined ? em.temp() : "";
    if (knownCarry !== undefined) em.line(`${carry} = ${knownCarry} ? 1 : 0;`);
    const av = em.temp();
    const r = em.temp();
    const calc = (a: string) => maskExpr(s, dec ? `${a} - 1` : `${a} + 1`);
    if (op <= 0x4f || i.mod === 3) {
      const reg = op <= 0x4f ? op & 7 : i.rm;
      em.line(`${av} = ${em.getReg(s, reg)};`);
      em.line(`${r} = ${calc(av)};`);
      // A pointer stepped by one keeps its page group (byte loops).
      if (s === 4) em.setReg32MovedBy(reg, r, dec ? -1 : 1);
      else em.setReg(s, reg, r);
    } else {
      em.readModifyWrite(i.seg, em.offset(i), s, (old) => {
        em.line(`${av} = ${old};`);
        return calc(av);
      });
      em.line(`${r} = ${calc(av)};`);
    }
    const lz = dec ? LZ_SUB : LZ_ADD;
    // Flags overwritten before anyone looks need neither recording nor the carry they keep.
    if (ctx.flagsLive) {
      if (knownCarry !== undefined) {
        em.line(`fk = ${packedKind(FK_KEEP_CARRY, lz, s)}; fa = ${av}; fr = ${r}; fx = ${carry};`);
      } else {
        em.line(
          `if ((fk & ${FK_KIND_MASK}) !== ${FK_KEEP_PENDING}) { gk = fk; ga = fa; gb = fb; gr = fr; gx = fx; }`,
        );
        em.line(`fk = ${packedKind(FK_KEEP_PENDING, lz, s)}; fa = ${av}; fr = ${r};`);
      }
    }
    em.known = { op: RESULT_ONLY, size: s, a: av, b: "1", r };
    return true;
  }

  // PUSH/POP register, PUSH imm.
  if (op >= 0x50 && op <= 0x57) {
    em.push(s, em.getReg(s, op & 7));
    return true;
  }
  if (op >= 0x58 && op <= 0x5f) {
    const v = em.pop(s);
    em.setReg(s, op & 7, v);
    return true;
  }
  if (op === 0x68 || op === 0x6a) {
    em.push(s, String(s === 4 ? i.imm | 0 : i.imm & 0xffff));
    return true;
  }

  // SETcc, CMOVcc.
  if (op >= 0x190 && op <= 0x19f) {
    em.writeE(i, 1, `(${condition(em, op & 15)} ? 1 : 0)`);
    return true;
  }
  if (op >= 0x140 && op <= 0x14f) {
    // The source is read (and may fault) whether or not the move happens.
    const v = em.temp();
    em.line(`${v} = ${em.readE(i, s)};`);
    const c = condition(em, op & 15);
    if (s === 4) {
      em.used.add(i.reg);
      em.wrote(i.reg);
      em.line(`if (${c}) r${i.reg} = ${v};`);
    } else {
      em.line(`if (${c}) {`);
      em.setReg(s, i.reg, v);
      em.line("}");
    }
    return true;
  }

  // TEST.
  if (
    op === 0x84 ||
    op === 0x85 ||
    op === 0xa8 ||
    op === 0xa9 ||
    ((op === 0xf6 || op === 0xf7) && i.reg <= 1)
  ) {
    const a = em.temp();
    const b = em.temp();
    const r = em.temp();
    if (op === 0x84 || op === 0x85) {
      em.line(`${a} = ${em.readE(i, s)};`);
      em.line(`${b} = ${em.getReg(s, i.reg)};`);
    } else if (op === 0xa8 || op === 0xa9) {
      em.line(`${a} = ${em.getReg(s, 0)};`);
      em.line(`${b} = ${i.imm & MASK[s]!};`);
    } else {
      em.line(`${a} = ${em.readE(i, s)};`);
      em.line(`${b} = ${i.imm & MASK[s]!};`);
    }
    em.line(`${r} = ${a} & ${b};`);
    em.known = { op: LZ_LOGIC, size: s, a, b, r };
    if (ctx.flagsLive) storeLogic(em, r, s);
    return true;
  }

  // NOT / NEG.
  if ((op === 0xf6 || op === 0xf7) && (i.reg === 2 || i.reg === 3)) {
    const neg = i.reg === 3;
    const av = em.temp();
    const r = em.temp();
    const calc = (a: string) => (neg ? maskExpr(s, `-${a}`) : maskExpr(s, `~${a}`));
    if (i.mod === 3) {
      em.line(`${av} = ${em.getReg(s, i.rm)};`);
      em.line(`${r} = ${calc(av)};`);
      em.setReg(s, i.rm, r);
    } else {
      em.readModifyWrite(i.seg, em.offset(i), s, (old) => {
        em.line(`${av} = ${old};`);
        return calc(av);
      });
      em.line(`${r} = ${calc(av)};`);
    }
    if (neg) {
      em.known = { op: LZ_SUB, size: s, a: "0", b: av, r };
      if (ctx.flagsLive) storeArith(em, LZ_SUB, "0", av, r, s);
    }
    return true;
  }

  // DIV r/m32: EDX:EAX by the operand in two 16-bit steps, each exact in doubles (as divU64 in
  // the interpreter); a zero divisor or a quotient over 32 bits raises #DE. Flags stay as they were.
  if (op === 0xf7 && i.reg === 6 && s === 4) {
    const d = em.temp();
    const hi = em.temp();
    const lo = em.temp();
    const c = em.temp();
    const q1 = em.temp();
    const q2 = em.temp();
    em.line(`${d} = ${em.readE(i, 4)} >>> 0;`);
    em.line(`${hi} = ${em.getReg(4, 2)} >>> 0; ${lo} = ${em.getReg(4, 0)} >>> 0;`);
    // A zero divisor is below any high half.
    em.line(`if (${hi} >= ${d}) cpu.raise(${EXC_DE});`);
    em.line(`${c} = ${hi} * 65536 + (${lo} >>> 16); ${q1} = Math.floor(${c} / ${d});`);
    em.line(`${c} = (${c} - ${q1} * ${d}) * 65536 + (${lo} & 0xffff); ${q2} = Math.floor(${c} / ${d});`);
    em.setReg(4, 0, `(${q1} * 65536 + ${q2})`);
    em.setReg(4, 2, `(${c} - ${q2} * ${d})`);
    return true;
  }

  // XCHG.
  if (op >= 0x91 && op <= 0x97) {
    const t = em.temp();
    em.line(`${t} = ${em.getReg(s, 0)};`);
    em.setReg(s, 0, em.getReg(s, op & 7));
    em.setReg(s, op & 7, t);
    return true;
  }
  if (op === 0x86 || op === 0x87) {
    const b = em.temp();
    em.line(`${b} = ${em.getReg(s, i.reg)};`);
    if (i.mod === 3) {
      const a = em.temp();
      em.line(`${a} = ${em.getReg(s, i.rm)};`);
      em.setReg(s, i.rm, b);
      em.setReg(s, i.reg, a);
    } else {
      const old = em.readModifyWrite(i.seg, em.offset(i), s, () => b);
      em.setReg(s, i.reg, old);
    }
    return true;
  }

  // MOV.
  if (op === 0x88 || op === 0x89) {
    const v = em.temp();
    em.line(`${v} = ${em.getReg(s, i.reg)};`);
    em.writeE(i, s, v);
    return true;
  }
  if (op === 0x8a || op === 0x8b) {
    const v = em.readE(i, s);
    em.setReg(s, i.reg, v);
    return true;
  }
  if ((op === 0xc6 || op === 0xc7) && i.reg === 0) {
    em.writeE(i, s, String(s === 4 ? i.imm | 0 : i.imm & MASK[s]!));
    return true;
  }
  if (op >= 0xb0 && op <= 0xbf) {
    em.setReg(s, op & 7, String(s === 4 ? i.imm | 0 : i.imm & MASK[s]!));
    return true;
  }
  if (op >= 0xa0 && op <= 0xa3) {
    const off = String(i.addr32 ? i.disp | 0 : i.disp & 0xffff);
    if (op & 2) {
      const v = em.temp();
      em.line(`${v} = ${em.getReg(s, 0)};`);
      em.write(i.seg, off, s, v);
    } else em.setReg(s, 0, em.read(i.seg, off, s));
    return true;
  }
  if (op === 0x8d && i.mod !== 3) {
    const at = s === 4 ? baseAndDisplacement(em.offset(i)) : undefined;
    if (at !== undefined && at.base === i.reg) em.setReg32MovedBy(i.reg, em.offset(i), at.disp);
    else em.setReg(s, i.reg, em.offset(i));
    return true;
  }
  if (op === 0x1b6 || op === 0x1b7) {
    em.setReg(s, i.reg, em.readE(i, op & 1 ? 2 : 1));
    return true;
  }
  if (op === 0x1be || op === 0x1bf) {
    const v = em.readE(i, op & 1 ? 2 : 1);
    em.setReg(s, i.reg, op & 1 ? `((${v} << 16) >> 16)` : `((${v} << 24) >> 24)`);
    return true;
  }
  if (op === 0x90 || (op >= 0x118 && op <= 0x11f)) return true;
  if (op === 0x98) {
    if (s === 2) em.setReg(2, 0, `((${em.getReg(1, 0)} << 24) >> 24)`);
    else em.setReg(4, 0, `((${em.getReg(2, 0)} << 16) >> 16)`);
    return true;
  }
  if (op === 0x99) {
    if (s === 2) em.setReg(2, 2, `((${em.reg32(0)} & 0x8000) !== 0 ? 0xffff : 0)`);
    else em.setReg(4, 2, `(${em.reg32(0)} >> 31)`);
    return true;
  }
  if (op >= 0x1c8 && op <= 0x1cf) {
    const r = op & 7;
    const v = em.reg32(r);
    if (s === 4)
      em.setReg(
        4,
        r,
        `(((${v} & 0xff) << 24) | ((${v} & 0xff00) << 8) | ((${v} >>> 8) & 0xff00) | (${v} >>> 24))`,
      );
    else em.setReg(4, r, `(${v} & -65536)`);
    return true;
  }
  if (op === 0xfc) {
    em.line(`cpu.flagsRaw &= ${~DF};`);
    return true;
  }
  if (isSingleString(i)) {
    emitSingleString(ctx, i);
    return true;
  }
  if (op === 0xfd) {
    em.line(`cpu.flagsRaw |= ${DF};`);
    return true;
  }

  // 32-bit shifts and rotates by a constant: fully inline (hashes and ciphers live on these).
  const constCount = op === 0xd0 || op === 0xd1 ? 1 : op === 0xc0 || op === 0xc1 ? i.imm & 31 : 0;
  if (s === 4 && constCount !== 0 && i.reg !== 2 && i.reg !== 3) {
    const sop = i.reg;
    const a = em.temp();
    const r = em.temp();
    const calc = (x: string): string => {
      em.line(`${a} = ${x};`);
      return shiftValue32(sop, a, constCount);
    };
    if (i.mod === 3) {
      em.line(`${r} = (${calc(em.reg32(i.rm))}) | 0;`);
      em.setReg(4, i.rm, r);
    } else {
      em.readModifyWrite(i.seg, em.offset(i), 4, (old) => calc(old));
      em.line(`${r} = (${calc(a)}) | 0;`);
    }
    if (sop === 0 || sop === 1) {
      // Rotates change CF and OF only; the other flags stay as they are (lazy or not).
      if (em.known) em.known = { ...em.known, op: RESULT_ONLY };
      if (ctx.flagsLive) writeRotateFlags(em, sop, r);
      return true;
    }
    if (ctx.flagsLive) storeShiftFlags(em, sop, a, a, r, constCount, 4);
    em.known = { op: RESULT_ONLY, size: 4, a, b: "0", r };
    return true;
  }

  // 8- and 16-bit register shifts by a constant, as the interpreter's shiftOp computes them.
  if (s !== 4 && i.mod === 3 && constCount !== 0 && i.reg >= 4) {
    const sop = i.reg;
    const a = em.temp();
    const r = em.temp();
    em.line(`${a} = ${em.getReg(s, i.rm)};`);
    const signed = s === 2 ? `((${a} << 16) >> 16)` : `((${a} << 24) >> 24)`;
    if (sop === 5) em.line(`${r} = ${a} >>> ${constCount};`);
    else if (sop === 7) em.line(`${r} = (${signed} >> ${constCount}) & ${MASK[s]};`);
    else em.line(`${r} = (${a} << ${constCount}) & ${MASK[s]};`);
    em.setReg(s, i.rm, r);
    if (ctx.flagsLive) storeShiftFlags(em, sop, a, signed, r, constCount, s);
    em.known = { op: RESULT_ONLY, size: s, a, b: "0", r };
    return true;
  }

  // 32-bit register shifts and rotates by CL (LZMA's range coder, bignum code). A zero count
  // changes nothing, so the result and the flags are assigned only when the count is not zero.
  if (op === 0xd3 && s === 4 && i.mod === 3 && i.reg !== 2 && i.reg !== 3) {
    const sop = i.reg;
    const c = em.temp();
    const a = em.temp();
    const r = em.temp();
    em.line(`${c} = ${em.reg32(1)} & 31;`);
    em.line(`if (${c} !== 0) {`);
    em.line(`${a} = ${em.reg32(i.rm)};`);
    em.line(`${r} = (${shiftValue32(sop, a, c)}) | 0;`);
    em.setReg(4, i.rm, r);
    if (ctx.flagsLive) {
      if (sop === 0 || sop === 1) writeRotateFlags(em, sop, r);
      else storeShiftFlags(em, sop, a, a, r, c, 4);
    }
    em.line("}");
    em.known = undefined;
    return true;
  }

  // Other shifts and rotates: operands inline, the operation from the interpreter.
  if (op === 0xc0 || op === 0xc1 || op === 0xd0 || op === 0xd1 || op === 0xd2 || op === 0xd3) {
    // A memory operand with a count that may be zero stays with the handler (see classify).
    const maybeZero = op === 0xd2 || op === 0xd3 || ((op === 0xc0 || op === 0xc1) && (i.imm & 31) === 0);
    if (i.mod !== 3 && maybeZero) return false;
    const count = em.temp();
    em.line(
      `${count} = ${op === 0xd0 || op === 0xd1 ? "1" : op === 0xd2 || op === 0xd3 ? `${em.getReg(1, 1)} & 31` : String(i.imm & 31)};`,
    );
    const sop = i.reg;
    em.line(FLUSH_FLAGS);
    if (i.mod === 3) {
      // A zero count leaves the operand and the flags alone.
      em.line(`if (${count} !== 0) {`);
      const r = em.temp();
      em.line(`${r} = shiftOp(cpu, ${sop}, ${em.getReg(s, i.rm)}, ${count}, ${s});`);
      em.setReg(s, i.rm, r);
      em.line("}");
    } else {
      // The flags are set by the operation, before the store: a faulting store cannot happen
      // here because the write permission was checked before the read.
      em.readModifyWrite(i.seg, em.offset(i), s, (old) => `shiftOp(cpu, ${sop}, ${old}, ${count}, ${s})`);
    }
    em.known = undefined;
    return true;
  }

  // 32-bit IMUL Gv, Ev[, imm]: the low half from Math.imul; the double product is exact enough
  // to tell whether the signed result fits (values near 2^31 are exact, larger ones stay large).
  if ((op === 0x1af || op === 0x69 || op === 0x6b) && s === 4) {
    const src = em.temp();
    em.line(`${src} = ${em.readE(i, 4)};`);
    const a = em.temp();
    em.line(`${a} = ${op === 0x1af ? em.reg32(i.reg) : String(i.imm | 0)};`);
    const r = em.temp();
    em.line(`${r} = Math.imul(${a}, ${src});`);
    if (ctx.flagsLive) {
      const p = `(${a} * ${src})`;
      storeResultFlags(em, r, 4, `${p} === ${r} ? 0 : ${CF | OF}`);
    }
    em.setReg(4, i.reg, r);
    em.known = { op: RESULT_ONLY, size: 4, a, b: src, r };
    return true;
  }

  // 32-bit MUL / IMUL r/m: EDX:EAX = EAX * r/m.
  if (op === 0xf7 && (i.reg === 4 || i.reg === 5) && s === 4) {
    const src = em.temp();
    em.line(`${src} = ${em.readE(i, 4)};`);
    const a = em.temp();
    em.line(`${a} = ${em.reg32(0)};`);
    const lo = em.temp();
    const hi = em.temp();
    em.line(`${lo} = Math.imul(${a}, ${src});`);
    em.line(`${hi} = ${i.reg === 4 ? "mulHighUnsigned" : "mulHighSigned"}(${a}, ${src});`);
    const over = i.reg === 4 ? `${hi} !== 0` : `${hi} !== (${lo} >> 31)`;
    if (ctx.flagsLive) storeResultFlags(em, lo, 4, `${over} ? ${CF | OF} : 0`);
    em.setReg(4, 0, lo);
    em.setReg(4, 2, hi);
    em.known = { op: RESULT_ONLY, size: 4, a, b: src, r: lo };
    return true;
  }

  // IMUL Gv, Ev[, imm] (16-bit).
  if (op === 0x1af || op === 0x69 || op === 0x6b) {
    const src = em.temp();
    em.line(`${src} = ${em.readE(i, s)};`);
    const a = op === 0x1af ? em.getReg(s, i.reg) : src;
    const b = op === 0x1af ? src : String(i.imm | 0);
    em.line(FLUSH_FLAGS);
    em.setReg(s, i.reg, `imulTrunc(cpu, ${s}, ${a}, ${b})`);
    em.known = undefined;
    return true;
  }

  // LEAVE.
  if (op === 0xc9) {
    const bp = em.temp();
    em.line(`${bp} = ${this32(em) ? em.reg32(5) : `(${em.reg32(5)} & 0xffff)`};`);
    const v = em.read(SS, bp, s);
    em.wrote(4);
    em.used.add(4);
    if (em.stack32) em.line(`r4 = (${bp} + ${s}) | 0;`);
    else em.line(`r4 = (r4 & -65536) | ((${bp} + ${s}) & 0xffff);`);
    em.setReg(s, 5, v);
    return true;
  }

  // PUSH r/m.
  if (op === 0xff && i.reg === 6) {
    const v = em.temp();
    em.line(`${v} = ${em.readE(i, s)};`);
    em.push(s, v);
    return true;
  }
  return false;
}

function this32(em: Emitter): boolean {
  return em.stack32;
}

/**
 * Where a conditional branch (Jcc, LOOP) keeps whether it was taken, besides `nx`: each copy of
 * the block in a loop's tree gets a local of its own, which the tree tests to go on into the
 * copy of the arm taken. V8 branches on that directly; on `nx === target` it kept `nx` in a
 * stack slot and compared it there, after the select that set it.
 */
const BRANCH = "@@BRANCH@@";

/** Emits the block's last instruction when it is a control transfer; sets `nx`. False if not one. */
function emitBranch(ctx: Ctx, i: Insn): boolean {
  const em = ctx.em;
  const op = i.opcode;
  const fall = eipExpr(ctx, ctx.next);
  if ((op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f)) {
    em.line(`nx = (${BRANCH} = ${condition(em, op & 15)}) ? ${relTarget(ctx, i)} : ${fall};`);
    return true;
  }
  if (op === 0xe9 || op === 0xeb) {
    em.line(`nx = ${relTarget(ctx, i)};`);
    return true;
  }
  if (op === 0xe8) {
    em.push(i.opsize, eipValue(ctx, ctx.next));
    em.line(`nx = ${relTarget(ctx, i)};`);
    return true;
  }
  if (op === 0xc3 || op === 0xc2) {
    const extra = op === 0xc2 ? i.imm & 0xffff : 0;
    const off = em.stack32 ? em.reg32(4) : `(${em.reg32(4)} & 0xffff)`;
    const v = em.read(SS, off, i.opsize);
    em.wrote(4);
    if (em.stack32) em.line(`r4 = (r4 + ${i.opsize + extra}) | 0;`);
    else em.line(`r4 = (r4 & -65536) | ((r4 + ${i.opsize + extra}) & 0xffff);`);
    em.line(`nx = ${i.opsize === 4 ? `(${v} - pb) | 0` : `(${v} & 0xffff) - pb`};`);
    return true;
  }
  if (op === 0xe2) {
    // LOOP: decrement (E)CX, jump while non-zero.
    const n = em.temp();
    if (i.addr32) {
      em.line(`${n} = (${em.reg32(1)} - 1) | 0;`);
      em.wrote(1);
      em.line(`r1 = ${n};`);
    } else {
      em.line(`${n} = (${em.reg32(1)} - 1) & 0xffff;`);
      em.wrote(1);
      em.line(`r1 = (r1 & -65536) | ${n};`);
    }
    em.line(`nx = (${BRANCH} = ${n} !== 0) ? ${relTarget(ctx, i)} : ${fall};`);
    return true;
  }
  if (op === 0xe3) {
    const n = i.addr32 ? em.reg32(1) : `(${em.reg32(1)} & 0xffff)`;
    em.line(`nx = ${n} === 0 ? ${relTarget(ctx, i)} : ${fall};`);
    return true;
  }
  if (op === 0xff && (i.reg === 2 || i.reg === 4)) {
    const t = em.temp();
    em.line(`${t} = ${em.readE(i, i.opsize)};`);
    if (i.reg === 2) em.push(i.opsize, eipValue(ctx, ctx.next));
    em.line(`nx = ${i.opsize === 4 ? `(${t} - pb) | 0` : `(${t} & 0xffff) - pb`};`);
    return true;
  }
  return false;
}

function isBranch(i: Insn): boolean {
  const op = i.opcode;
  return (
    (op >= 0x70 && op <= 0x7f) ||
    (op >= 0x180 && op <= 0x18f) ||
    op === 0xe9 ||
    op === 0xeb ||
    op === 0xe8 ||
    op === 0xc3 ||
    op === 0xc2 ||
    op === 0xe2 ||
    op === 0xe3 ||
    (op === 0xff && (i.reg === 2 || i.reg === 4) && !i.lock)
  );
}

/**
 * Flag liveness, computed backwards: an instruction's flags are dead when a later instruction
 * overwrites every flag before anything (a reader, a possible fault, a handler, the block's end)
 * could see them. A partial writer (INC/DEC, a rotate) needs the flags before it only to keep
 * the ones it leaves, so when its own flags are dead it passes that on.
 */
function flagLiveness(insns: Insn[], infos: InsnInfo[], lastIsBranch: boolean): boolean[] {
  const n = insns.length;
  const live: boolean[] = new Array(n).fill(true);
  let after = true;
  for (let k = n - 1; k >= 0; k--) {
    live[k] = after;
    const f = infos[k]!;
    if ((k === n - 1 && lastIsBranch) || !f.inline || f.mayFault || isFlagReader(insns[k]!)) after = true;
    else if (f.writesAllFlags) after = false;
    else if (f.partialFlags) after = live[k]!;
    else if (f.readsFlags) after = true;
  }
  return live;
}

/**
 * What the translator makes of one instruction on its own, for the test that keeps `classify`,
 * `emitInsn` and `writesMemory` in step: whether classify calls it inline, whether emitInsn
 * emitted it, whether writesMemory says it stores and whether the emitted code stores. Branches
 * (emitBranch's) and LOCK forms are not its business.
 */
export function inlineForm(
  i: Insn,
  code32: boolean,
): {
  classified: boolean;
  emitted: boolean;
  declaredStore: boolean;
  emittedStore: boolean;
  /** Its loop form calls no slow path (every access leaves the function at a miss instead). */
  loopFormCallsNothing: boolean;
} {
  const em = new Emitter(0xffff, true, true);
  const emitted = emitInsn({ em, k: 0, next: i.length, flagsLive: true, code32 }, i);
  const loop = new Emitter(0xffff, true, true);
  loop.loopForm = true;
  emitInsn({ em: loop, k: 0, next: i.length, flagsLive: true, code32 }, i);
  return {
    classified: classify(i).inline,
    emitted,
    declaredStore: writesMemory(i),
    emittedStore: /ram32\[p\] =|ram\[p\] =|\bW\d\(cpu,/.test(em.out.join("\n")),
    loopFormCallsNothing: !loop.loopFormFailed && !loop.out.some(callsOut),
  };
}

/**
 * The CPU's arrays. A translation gets them as constants of its closure rather than loading them
 * from the CPU on entry: V8 then knows each one's buffer and length when it optimises, and drops
 * the loads, and the bounds checks it can prove (a TLB index `l >>> 12` is always inside the
 * TLB). The registers, the TLB and the segment arrays live as long as the CPU; the CPU drops every
 * translation when its RAM arrays change.
 */
export interface CpuArrays {
  readonly ram: Uint8Array;
  readonly ram32: Int32Array;
  readonly regs: Int32Array;
  readonly tlb: Int32Array;
  readonly segBase: Int32Array;
  readonly rLo: Float64Array;
  readonly rHi: Float64Array;
  readonly wLo: Float64Array;
  readonly wHi: Float64Array;
}

/**
 * Translates a region: `blocks[0]` alone, or (`chain`) every block given, all from one page of
 * flat 32-bit code, as one function whose control stays inside while branches land on the
 * region's blocks. Assumes the CPU's flat segments are `flatAvailable` (`Cpu.flatMask` bits)
 * and its stack is `stack32`; `ramBelow2GiB` when the VM's RAM array is at most 2 GiB. The function
 * holds the CPU's `arrays`.
 */
export function translateRegion(
  blocks: readonly Block[],
  chain: boolean,
  flatAvailable: number,
  stack32: boolean,
  arrays: CpuArrays,
  ramBelow2GiB = false,
): Translation {
  const root = blocks[0]!;
  const code32 = root.code32;
  const em = new Emitter(flatAvailable, stack32, ramBelow2GiB);
  if (chain) em.flatNeeded |= 1 << 1; // CS: eip is the linear address
  const offsets: number[] = []; // per instruction: offset of its start in the region
  const inBlock: number[] = []; // per instruction: index inside its block
  let inlined = 0;
  let maxLength = 0;
  const cases: string[] = [];
  const emitted: EmittedBlock[] = [];
  // In address order, so a block can fall through into the one that follows it in the page.
  const order = chain ? [...blocks].sort((a, b) => a.phys - b.phys) : [root];
  for (let bi = 0; bi < order.length; bi++) {
    const block = order[bi]!;
    const insns = block.insns;
    const n = insns.length;
    maxLength = Math.max(maxLength, n);
    const infos = insns.map(classify);
    const lastIsBranch = isBranch(insns[n - 1]!);
    const flagsLive = flagLiveness(insns, infos, lastIsBranch);
    const base = chain ? block.phys & 4095 : 0;
    const first = offsets.length;
    let off = base;
    const local: number[] = [];
    for (const i of insns) {
      local.push(off);
      offsets.push(off);
      inBlock.push(offsets.length - 1 - first);
      off += i.length;
    }
    local.push(off);
    // The block's code, in the ordinary form or the loop form (see Emitter.loopForm).
    const emitBlock = (loopForm: boolean) => {
      em.known = undefined;
      em.lastRead = undefined;
      em.dropPageGroups();
      em.pageGroupsAllowed = !block.pageGroupsOff;
      em.pageGroupsFormed = 0;
      em.out.length = 0;
      em.loopForm = loopForm;
      em.loopFormFailed = false;
      let endedByHandler = false;
      let callsHandler = false;
      for (let j = 0; j < n; j++) {
        const i = insns[j]!;
        const k = first + j;
        em.insnStart = em.out.length;
        em.missStub = `{ nx = ${eipExpr({ code32 }, local[j]!)}; xi = ${j}; ms = ${bi}; break; }`;
        const ctx: Ctx = { em, k, next: local[j + 1]!, flagsLive: flagsLive[j]!, code32 };
        const info = infos[j]!;
        const isLast = j === n - 1;
        const mark = em.out.length;
        if (info.mayFault) em.line(`k = ${k};`);
        if (isLast && lastIsBranch) {
          if (emitBranch(ctx, i)) {
            if (!loopForm) inlined++;
            continue;
          }
          em.out.length = mark;
        } else if (info.inline) {
          if (emitInsn(ctx, i)) {
            if (!loopForm) inlined++;
            // The loop form calls nothing that could raise the flag.
            if (writesMemory(i) && !loopForm)
              em.line(`if (${ATTENTION}) { nx = ${eipExpr(ctx, ctx.next)}; xi = ${j + 1}; break run; }`);
            continue;
          }
          em.out.length = mark;
        }
        callsHandler = true;
        if (loopForm) break;
        // Register x87 arithmetic first tries the unit's fast path, which touches neither the
        // general registers nor EFLAGS, so the block goes on without leaving; the handler (which
        // ends the block, as every escape does) runs only when that declines.
        const x87 = isLast && isX87RegisterArithmetic(i);
        if (x87) em.line(`if (!X87(cpu, ${i.opcode}, ${i.modrm}, ${eipField(ctx, local[j]!)})) {`);
        // The interpreter's handler runs it, with the CPU's registers and EIP as it expects them.
        // A negative index tells the catch clause the registers are already stored (and a handler,
        // like a string instruction, may have advanced them before it faulted).
        em.line(`k = ${-1 - k};`);
        const h = em.env.handlers.length;
        em.env.handlers.push(i.handler);
        em.env.insns.push(i);
        em.line("@@STORE@@");
        em.line(`cpu.instrStart = ${eipField(ctx, local[j]!)}; cpu.ip = ${eipField(ctx, ctx.next)};`);
        em.line(`cpu.instructionCount = ib + ic + ${j};`);
        em.line(`H[${h}](cpu, I[${h}]); co = true;`);
        em.known = undefined;
        em.lastRead = undefined;
        if (x87) {
          em.line(`cpu.instructionCount = ib + ic + ${n}; return 0; }`);
        } else if (isLast) {
          endedByHandler = true;
        } else {
          em.line("@@LOAD@@");
          em.line("@@RELOAD@@");
          // A handler may have changed a segment, the stack size or the code under us.
          em.line(
            `if (!blk.valid || (cpu.flatMask & @@FLAT@@) !== @@FLAT@@ || cpu.stack32 !== ${stack32} || cpu.ip !== ${eipField(ctx, ctx.next)}) { cpu.instructionCount = ib + ic + ${j + 1}; return 0; }`,
          );
        }
      }
      em.closePageGroups();
      em.loopForm = false;
      return { code: [...em.out], endedByHandler, callsHandler };
    };
    const temps = em.tempCount;
    const ordinary = emitBlock(false);
    let loop: string[] | undefined;
    if (!ordinary.callsHandler && block.loopMisses < LOOP_MISS_LIMIT) {
      const tempsAfter = em.tempCount;
      em.rewindTemps(temps);
      const form = emitBlock(true);
      if (!em.loopFormFailed && !form.callsHandler) loop = form.code;
      // The two forms never run in one pass through the block, so they share their temps.
      em.rewindTemps(Math.max(tempsAfter, em.tempCount));
    }
    // The ordinary form has no page groups; pageGroupsFormed still counts the loop form's.
    block.hasPageGroups = loop !== undefined && em.pageGroupsFormed > 0;
    emitted.push({
      base,
      n,
      code: ordinary.code,
      loop,
      endedByHandler: ordinary.endedByHandler,
      lastIsBranch,
      next: local[n]!,
      last: insns[n - 1]!,
    });
  }
  const blockAt = new Map(emitted.map((b) => [b.base, b]));
  // Loop heads: blocks that they themselves or a later block of the region branch back to.
  const heads = new Set<number>();
  for (const b of emitted) {
    for (const target of staticTargets(b, -1)) {
      if (target.offset <= b.base && blockAt.has(target.offset)) heads.add(target.offset);
    }
  }
  let regionBudget = REGION_INLINE_BUDGET;
  // The branch locals of tree copies (see BRANCH); `q` for blocks emitted once, in their case.
  const branches: string[] = ["q"];
  for (let bi = 0; bi < emitted.length; bi++) {
    const root = emitted[bi]!;
    const following = emitted[bi + 1];
    cases.push(`case ${root.base}: {`);
    if (heads.has(root.base) && !root.endedByHandler) {
      // A loop through the root, however many blocks it copies, turns inside the root's case
      // without going back through the switch. Its loop form is used when every copied block has
      // one: then the loop calls nothing.
      let tree: string[] = [];
      let ctx = treeContext(code32, blockAt, Math.min(INLINE_BUDGET, regionBudget), true, branches);
      let loops = emitTree(root, root, tree, ctx);
      if (!loops || ctx.copied.some((b) => b.loop === undefined) || tree.some(callsOut)) {
        tree = [];
        ctx = treeContext(code32, blockAt, Math.min(INLINE_BUDGET, regionBudget), false, branches);
        loops = emitTree(root, root, tree, ctx);
      }
      if (loops) {
        regionBudget -= Math.min(INLINE_BUDGET, regionBudget) - ctx.left;
        cases.push(`const self = ${eipExpr({ code32 }, root.base)};`);
        if (tree.some(callsOut)) {
          cases.push("for (;;) {", ...tree, "break;", "}");
        } else {
          // A loop that never calls out cannot raise the flag while it turns (nothing else runs),
          // so it looks once on the way in instead of at every branch: V8 makes much better code
          // of a loop without those tests. Every way into the case holds nx === self.
          cases.push(`if (${ATTENTION}) break run;`);
          cases.push("for (;;) {", ...tree.map((l) => l.replaceAll(`!${ATTENTION} && `, "")), "break;", "}");
          // A miss in a loop form breaks out of the loop with `ms` set, and out of the function
          // here. The check after the switch would leave too, but V8 made slower loops of that
          // (call/ret 1103-1126 MIPS against 1260-1349 in three alternating runs).
          if (tree.some((l) => l.includes("ms = "))) cases.push("if (ms >= 0) break run;");
        }
        cases.push("break;", "}");
        continue;
      }
    }
    // A block of its own uses its loop form too (see Emitter.loopForm); a miss breaks out of the
    // switch, and out of the function after it.
    cases.push(...blockTail(root, { code32, loopForm: true }));
    if (root.endedByHandler) {
      cases.push("}");
    } else if (following !== undefined && following.base === root.next) {
      // Going on to the next block in the page: fall into its case instead of dispatching.
      const taken = root.lastIsBranch ? `nx !== ${eipExpr({ code32 }, root.next)} || ` : "";
      cases.push(`if (${taken}${ATTENTION} || ((ic + ${following.n}) | 0) > lim) break;`, "}");
    } else {
      cases.push("break;", "}");
    }
  }

  const slotRange = chain ? 4096 : 1;
  const used = [...em.used].sort();
  const written = [...em.written].sort();
  const load = used.map((r) => `r${r} = regs[${r}];`).join(" ");
  const flags = cases.some((c) => c.includes("fk = "));
  const store = [...written.map((r) => `regs[${r}] = r${r};`), ...(flags ? [FLUSH_FLAGS] : [])].join(" ");
  const flat = em.flatNeeded;
  const src: string[] = [];
  // Strict, so that calling it (always through a property, from the dispatcher) skips the
  // receiver conversion a sloppy function needs on every call.
  // The parentheses make V8 compile the function with its factory, in one full parse, instead
  // of pre-parsing it here and parsing it again on its first call: measured to GUEST-READY, the
  // first calls took 46-51 ms instead of 271-296 and the factories 100-120 ms more.
  src.push('"use strict";', "return (function translated(cpu, end) {");
  src.push(`if ((cpu.flatMask & ${flat}) !== ${flat} || cpu.stack32 !== ${stack32}) return -1;`);
  // Only what the code uses is loaded on entry: the prologue runs on every dispatch.
  const text = cases.join("\n");
  const memory = text.includes("tlb[");
  if (memory) src.push("let RN = cpu.readNeed, WN = cpu.writeNeed;");
  const reload = memory ? "RN = cpu.readNeed; WN = cpu.writeNeed;" : "";
  src.push("const e0 = cpu.ip;");
  // Region offsets are page offsets (chained) or offsets from the block's entry.
  src.push(chain ? "const pb = e0 & -4096;" : "const pb = e0;");
  // The instructions retired here count from zero as a small integer (`ic`, against `lim`, the
  // budget left on entry, held to a small integer too): V8 boxes a loop counter as large as the
  // machine's total on every turn. A larger budget only means an exit to the dispatcher sooner.
  src.push("const ib = cpu.instructionCount, lim = Math.min(end - ib, 0x3fffffff) | 0;");
  src.push("let ic = 0, xi = 0, k = 0, pc = (e0 - pb) | 0, nx = pc, l = 0, e = 0, p = 0, co = true;");
  // `ms`: the block (index into B) whose loop form left at a miss, told to the CPU on the way out.
  const loopForms = text.includes("ms = ");
  if (loopForms) src.push("let ms = -1;");
  if (used.length) src.push(`let ${used.map((r) => `r${r} = regs[${r}]`).join(", ")};`);
  if (em.tempNames.length) src.push(`let ${em.tempNames.map((t) => `${t} = 0`).join(", ")};`);
  if (text.includes(BRANCH) || branches.length > 1) {
    src.push(`let ${branches.map((q) => `${q} = false`).join(", ")};`);
  }
  if (flags) {
    src.push(`let fk = ${FK_NONE}, fa = 0, fb = 0, fr = 0, fx = 0;`);
    src.push(`let gk = ${FK_NONE}, ga = 0, gb = 0, gr = 0, gx = 0;`);
  }
  src.push("try {");
  src.push("run: for (;;) {");
  src.push("switch (pc) {");
  for (const l of cases) {
    src.push(
      l
        .replaceAll("@@STORE@@", store)
        .replaceAll("@@LOAD@@", load)
        .replaceAll("@@RELOAD@@", reload)
        .replaceAll("@@FLAT@@", String(flat))
        .replaceAll(BRANCH, "q"),
    );
  }
  src.push("default: break run;");
  src.push("}");
  // A loop form that missed in a case of its own: leave (going on would run the case again).
  if (loopForms) src.push("if (ms >= 0) break;");
  // Stay inside while the branch lands on a block of the region and nothing needs the run loop.
  src.push("pc = nx;");
  // Offsets with no block of the region fall to the switch's default, which leaves.
  src.push(`if (pc < 0 || pc >= ${slotRange}) break;`);
  src.push(`if (!${ATTENTION} && ((ic + ${maxLength}) | 0) <= lim) continue;`);
  src.push("break;");
  src.push("}");
  src.push("} catch (err) {");
  src.push(`if (k < 0) k = -1 - k; else { ${store} }`);
  src.push("cpu.instructionCount = ib + ic + IN_BLOCK[k];");
  src.push(`cpu.instrStart = cpu.ip = ${code32 ? "(pb + OFFSETS[k]) | 0" : "(pb + OFFSETS[k]) & 0xffff"};`);
  src.push("throw err;");
  src.push("}");
  src.push(store);
  // An exit part-way through a block (after a store that needs the run loop) counts its
  // instructions here, so that rarely taken path holds no arithmetic of its own.
  src.push("cpu.instructionCount = ib + ic + xi;");
  src.push("cpu.ip = (pb + nx) | 0;");
  if (loopForms) src.push("if (ms >= 0) MISSED(cpu, B[ms]);");
  src.push("return 0;");
  src.push("});");
  // Names the function after its guest address in profiles and stack traces.
  src.push(`//# sourceURL=tsvisor-jit/${root.phys.toString(16).padStart(8, "0")}.js`);
  const source = src.join("\n");
  const factory = new Function(
    "blk",
    "H",
    "I",
    "OFFSETS",
    "IN_BLOCK",
    "PARITY",
    "shiftOp",
    "imulTrunc",
    "mulHighUnsigned",
    "mulHighSigned",
    "flushFlags",
    "X87",
    "R1",
    "R2",
    "R4",
    "W1",
    "W2",
    "W4",
    "CW",
    "B",
    "MISSED",
    "ram",
    "ram32",
    "regs",
    "tlb",
    "segBase",
    "rLo",
    "rHi",
    "wLo",
    "wHi",
    source,
  ) as (...args: unknown[]) => TranslatedBlock;
  const run = factory(
    root,
    em.env.handlers,
    em.env.insns,
    offsets,
    inBlock,
    PARITY,
    shiftOp,
    imulTrunc,
    mulHighUnsigned,
    mulHighSigned,
    flushFlags,
    x87RegisterArithmetic,
    R1,
    R2,
    R4,
    W1,
    W2,
    W4,
    CW,
    order,
    missed,
    arrays.ram,
    arrays.ram32,
    arrays.regs,
    arrays.tlb,
    arrays.segBase,
    arrays.rLo,
    arrays.rHi,
    arrays.wLo,
    arrays.wHi,
  );
  return { run, source, inlined, instructions: offsets.length };
}

/** A block's translated code, before the region's control flow is laid around it. */
interface EmittedBlock {
  /** Region offset of its first instruction. */
  base: number;
  /** Instructions. */
  n: number;
  /** Its statements: they end by setting `nx` when the block ends with a branch. */
  code: string[];
  /** Its statements in the loop form (Emitter.loopForm), if it has one. */
  loop: string[] | undefined;
  endedByHandler: boolean;
  lastIsBranch: boolean;
  /** Region offset just past it. */
  next: number;
  last: Insn;
}

/** Instructions of other blocks a loop head's case may copy in behind its own. */
const INLINE_BUDGET = 16;
/** Instructions copied into a region's cases altogether (bounds the generated code's growth). */
const REGION_INLINE_BUDGET = 128;
/** How many blocks deep a case follows branches. */
const INLINE_DEPTH = 2;

interface TreeContext {
  code32: boolean;
  /** Copies blocks in their loop form (a block without one is copied in the ordinary form). */
  loopForm: boolean;
  /** The blocks copied so far, the root too. */
  copied: EmittedBlock[];
  blockAt: Map<number, EmittedBlock>;
  /** Instructions still allowed to be copied in. */
  left: number;
  depth: number;
  /** Region offset a RET on this path returns to (a CALL copied in before it), or -1. */
  returnTo: number;
  /** The branch locals (see BRANCH) the copies use, shared by the whole translation. */
  branches: string[];
}

/**
 * Emits `block` and then, for each place it can go next that is a block of the region, a test of
 * `nx` and a copy of that block: a loop's blocks and the two arms of an if become straight-line
 * code with one host branch per guest branch, instead of each going round the region's switch.
 * A path that comes back to the loop head `root` continues the loop around the root's case
 * (returns true when one does); copies on no such path are dropped again, and control that leaves the copies
 * goes on from `nx` through the switch. Every copy is entered only when its instructions fit the
 * budget (`end`) and nothing raised `cpu.attention` (which an invalidation of code sets too, and a
 * CALL's push can invalidate the very code it goes to), so interrupts and invalidations are seen
 * as promptly as at any dispatch.
 */
function treeContext(
  code32: boolean,
  blockAt: Map<number, EmittedBlock>,
  left: number,
  loopForm: boolean,
  branches: string[],
): TreeContext {
  return { code32, loopForm, copied: [], blockAt, left, depth: 0, returnTo: -1, branches };
}

function emitTree(block: EmittedBlock, root: EmittedBlock, out: string[], ctx: TreeContext): boolean {
  ctx.copied.push(block);
  const tail = blockTail(block, ctx);
  const branch = `q${ctx.branches.length}`;
  const conditional = tail.some((l) => l.includes(BRANCH));
  if (conditional) ctx.branches.push(branch);
  out.push(...tail.map((l) => l.replaceAll(BRANCH, branch)));
  if (block.endedByHandler) return false;
  let loops = false;
  const targets = staticTargets(block, ctx.returnTo);
  for (let t = 0; t < targets.length; t++) {
    const { offset, returnTo } = targets[t]!;
    // The taken arm comes first; where both arms go to one place, either test holds there.
    const reached = conditional && targets.length === 2 ? (t === 0 ? branch : `!${branch}`) : undefined;
    const target = ctx.blockAt.get(offset);
    if (target === undefined) continue;
    if (target === root) {
      // Going round, `nx` is `self` (which V8 cannot tell from the branch local): saying so keeps
      // it out of the loop's state.
      const round = reached === undefined ? "nx === self" : reached;
      out.push(`if (${round} && !${ATTENTION} && ((ic + ${root.n}) | 0) <= lim) { nx = self; continue; }`);
      loops = true;
      continue;
    }
    if (ctx.depth >= INLINE_DEPTH || ctx.left < target.n) continue;
    const mark = out.length;
    const copiedMark = ctx.copied.length;
    const left = ctx.left;
    const saved = { depth: ctx.depth, returnTo: ctx.returnTo };
    ctx.left -= target.n;
    ctx.depth++;
    ctx.returnTo = returnTo;
    // A CALL's push may have dropped the code of the copy (or something else wants the run loop).
    out.push(
      `if (${reached ?? `nx === ${eipExpr(ctx, offset)}`} && !${ATTENTION} && ((ic + ${target.n}) | 0) <= lim) {`,
    );
    const back = emitTree(target, root, out, ctx);
    out.push("}");
    ctx.depth = saved.depth;
    ctx.returnTo = saved.returnTo;
    if (back) {
      loops = true;
    } else {
      // A copy that never comes back to the loop saves one dispatch: not worth its code.
      out.length = mark;
      ctx.copied.length = copiedMark;
      ctx.left = left;
    }
  }
  return loops;
}

/**
 * Whether a line of generated code may call out of the translation, where the run loop's flag can
 * be raised: a slow memory path or a handler (both set `co`), or the x87 unit.
 */
function callsOut(line: string): boolean {
  return line.includes("co = true") || line.includes("X87(");
}

/** A block's code and what ends it: `nx` and `ic` updated, or the exit after a handler. */
function blockTail(block: EmittedBlock, ctx: { code32: boolean; loopForm?: boolean }): string[] {
  if (block.endedByHandler)
    return [...block.code, `cpu.instructionCount = ib + ic + ${block.n};`, "return 0;"];
  return [
    ...((ctx.loopForm ? block.loop : undefined) ?? block.code),
    ...(block.lastIsBranch ? [] : [`nx = ${eipExpr(ctx, block.next)};`]),
    `ic = (ic + ${block.n}) | 0;`,
  ];
}

/**
 * Region offsets a block can go to next that are known when translating: branch targets and
 * fall-through, a CALL's target (whose RET then comes back to `block.next`), and for a RET the
 * return address a CALL on the same path left (`returnTo`, or -1 for none).
 */
function staticTargets(block: EmittedBlock, returnTo: number): { offset: number; returnTo: number }[] {
  const last = block.last;
  const op = last.opcode;
  if (!block.lastIsBranch) return [{ offset: block.next, returnTo }];
  if (op === 0xe8) {
    return last.opsize === 4 ? [{ offset: (block.next + last.imm) | 0, returnTo: block.next }] : [];
  }
  if (op === 0xc3) return returnTo >= 0 && last.opsize === 4 ? [{ offset: returnTo, returnTo: -1 }] : [];
  const taken = relativeTarget(last, block.next);
  if (taken < 0) return [];
  const unconditional = op === 0xe9 || op === 0xeb;
  return unconditional
    ? [{ offset: taken, returnTo }]
    : [
        { offset: taken, returnTo },
        { offset: block.next, returnTo },
      ];
}

/** Region offset a relative branch goes to (from the offset after it), or -1. */
function relativeTarget(i: Insn, next: number): number {
  const op = i.opcode;
  const relative =
    (op >= 0x70 && op <= 0x7f) || (op >= 0x180 && op <= 0x18f) || op === 0xe9 || op === 0xeb || op === 0xe2;
  if (!relative) return -1;
  return i.opsize === 4 ? next + i.imm : -1;
}

/** Unaligned little-endian 32-bit load and store in RAM. */
function isFlagReader(i: Insn): boolean {
  return i.entry.flagsRead !== 0;
}

function writesMemory(i: Insn): boolean {
  if (i.mod === 3 && i.entry.modrm) {
    // Register forms only touch memory when they push.
    const op = i.opcode;
    return (op >= 0x50 && op <= 0x57) || op === 0x68 || op === 0x6a || (op === 0xff && i.reg === 6);
  }
  const op = i.opcode;
  if ((op >= 0x50 && op <= 0x57) || op === 0x68 || op === 0x6a) return true;
  if (op === 0xa2 || op === 0xa3) return true;
  if (op >= 0xa0 && op <= 0xa1) return false;
  if (op === 0xa4 || op === 0xa5 || op === 0xaa || op === 0xab) return true;
  if (op === 0xff && i.reg === 6) return true;
  if (!i.entry.modrm || i.mod === 3) return false;
  // Hint NOPs name memory without touching it.
  if (op >= 0x118 && op <= 0x11f) return false;
  // Memory-destination forms.
  if (op < 0x40) return (op & 7) <= 1 && ((op >> 3) & 7) !== 7;
  if (op === 0x80 || op === 0x81 || op === 0x83) return i.reg !== 7;
  if (op === 0x84 || op === 0x85 || op === 0x8a || op === 0x8b || op === 0x8d) return false;
  if (op === 0xf6 || op === 0xf7) return i.reg === 2 || i.reg === 3;
  if (op >= 0x1b6 && op <= 0x1bf) return false;
  if (op >= 0x140 && op <= 0x14f) return false;
  if (op === 0x1af || op === 0x69 || op === 0x6b) return false;
  return true;
}
