// Instruction decoder: prefixes, opcode (one or two bytes), ModRM/SIB in 16- and 32-bit addressing,
// displacements and immediates, driven entirely by the opcode table (opcodes.ts). The result is an
// `Insn` record that the interpreter executes without looking at the bytes again.

import { CS, DS, ES, FS, GS, SS } from "./flags.ts";
import {
  IMM_AP,
  IMM_B,
  IMM_BS,
  IMM_O,
  IMM_W,
  IMM_Z,
  IMM_ZS,
  ONE_BYTE,
  type OpEntry,
  TWO_BYTE,
  UD_ENTRY,
} from "./opcodes.ts";

/** Ran out of the bytes the caller could supply (page end or segment limit). */
export const DECODE_NEED_MORE = -1;
/** Longer than 15 bytes: #GP(0). */
export const DECODE_TOO_LONG = -2;

/** A decoded instruction. Allocated once per decode; executed many times. */
export class Insn {
  entry: OpEntry = UD_ENTRY;
  handler: OpEntry["handler"] = UD_ENTRY.handler;
  /** Opcode: 0x00-0xFF one-byte, 0x100-0x1FF after 0F. */
  opcode = 0;
  length = 0;
  /** Operand size in bytes for this instruction (1, 2 or 4). */
  size = 4;
  /** Operand-size attribute (2 or 4) regardless of byte forms. */
  opsize = 4;
  addr32 = true;
  /** Segment of the memory operand (override or default). */
  seg = DS;
  /** Segment override prefix, or -1. */
  segOverride = -1;
  /** 0 none, 1 REP/REPE (F3), 2 REPNE (F2). */
  rep = 0;
  lock = false;
  modrm = 0;
  mod = 3;
  reg = 0;
  rm = 0;
  /** Effective address parts: base and index register (-1 for none), scale shift, displacement. */
  base = -1;
  index = -1;
  scale = 0;
  disp = 0;
  imm = 0;
  imm2 = 0;
}

/** A run of instructions decoded from one physical page, ending at a control transfer. */
export class Block {
  readonly phys: number;
  readonly code32: boolean;
  readonly insns: Insn[] = [];
  byteLength = 0;
  valid = true;
  /** False for blocks that must not be cached (in MMIO). */
  cacheable = true;
  /**
   * For a block made of one instruction that crosses into the next page: the physical address
   * that page started at when it was decoded (a lookup checks it still does), else -1.
   */
  crossPage = -1;
  /**
   * The four most recent successors, with the EIP they were reached at and the CPU's code-mapping
   * epoch then (while it stands, the same EIP fetches the same block). Four, not two: a block
   * that enters a translated region is the predecessor of wherever the region leaves, and a
   * region often leaves at three places in turn, which two links would keep missing. The EIPs are
   * kept as signed 32-bit numbers (see `Cpu.linkedNext`).
   */
  next0: Block | undefined = undefined;
  next0Eip = 0;
  next0Epoch = -1;
  next1: Block | undefined = undefined;
  next1Eip = 0;
  next1Epoch = -1;
  next2: Block | undefined = undefined;
  next2Eip = 0;
  next2Epoch = -1;
  next3: Block | undefined = undefined;
  next3Eip = 0;
  next3Epoch = -1;
  /** Executions so far (the translator's heat measure), and when to look at it again. */
  heat = 0;
  heatGoal = 0;
  /** Translated as part of its page's region (not alone). */
  inRegion = false;
  /** The binary translator's version of this block (see jit/), once hot. */
  translated: ((cpu: unknown, end: number) => number) | undefined = undefined;
  translatedBytes = 0;
  /** The flat-segment assumptions the translation was made under. */
  translatedFlat = 0;
  retranslations = 0;
  /**
   * Times a translation's loop form left at an access of this block that missed the TLB, since
   * `missesSince` (the CPU's instruction count then, in units of 1024, modulo 2^30; see
   * LOOP_MISS_WINDOW).
   */
  loopMisses = 0;
  missesSince = 0;
  /** The loop form of its translation has page groups (see the translator's Emitter). */
  hasPageGroups = false;
  /**
   * Its loop form missed too often with page groups: it is translated without them (a group
   * whose accesses straddle a page, as a stack frame at a page's edge does, misses every time).
   */
  pageGroupsOff = false;
  constructor(phys: number, code32: boolean) {
    this.phys = phys;
    this.code32 = code32;
  }
}

const SEG_PREFIX: Record<number, number> = { 38: ES, 46: CS, 54: SS, 62: DS, 100: FS, 101: GS };

// 16-bit addressing: base and index register per rm (BX+SI, BX+DI, BP+SI, BP+DI, SI, DI, BP, BX).
const RM16_BASE = [3, 3, 5, 5, 6, 7, 5, 3];
const RM16_INDEX = [6, 7, 6, 7, -1, -1, -1, -1];

/**
 * Decodes one instruction from `bytes[0..avail)` into `insn`. `code32` is the code segment's
 * default size. Returns the length, DECODE_NEED_MORE or DECODE_TOO_LONG.
 */
export function decodeInstruction(insn: Insn, bytes: Uint8Array, avail: number, code32: boolean): number {
  let p = 0;
  let opsize32 = code32;
  let addr32 = code32;
  let segOverride = -1;
  let rep = 0;
  let lock = false;
  let b: number;
  for (;;) {
    if (p >= 15) return DECODE_TOO_LONG;
    if (p >= avail) return DECODE_NEED_MORE;
    b = bytes[p++]!;
    if (b === 0x66) opsize32 = !code32;
    else if (b === 0x67) addr32 = !code32;
    else if (b === 0xf0) lock = true;
    else if (b === 0xf2) rep = 2;
    else if (b === 0xf3) rep = 1;
    else if (b === 0x26 || b === 0x2e || b === 0x36 || b === 0x3e || b === 0x64 || b === 0x65)
      segOverride = SEG_PREFIX[b]!;
    else break;
  }
  let opcode = b;
  let entry: OpEntry | undefined;
  if (b === 0x0f) {
    if (p >= 15) return DECODE_TOO_LONG;
    if (p >= avail) return DECODE_NEED_MORE;
    opcode = 0x100 | bytes[p++]!;
    entry = TWO_BYTE[opcode & 0xff];
  } else {
    entry = ONE_BYTE[b];
  }
  insn.opcode = opcode;
  insn.opsize = opsize32 ? 4 : 2;
  insn.addr32 = addr32;
  insn.segOverride = segOverride;
  insn.rep = rep;
  insn.lock = lock;
  insn.mod = 3;
  insn.reg = 0;
  insn.rm = 0;
  insn.base = -1;
  insn.index = -1;
  insn.scale = 0;
  insn.disp = 0;
  insn.imm = 0;
  insn.imm2 = 0;
  insn.seg = segOverride >= 0 ? segOverride : DS;
  if (entry === undefined) entry = UD_ENTRY;
  if (entry.modrm) {
    if (p >= 15) return DECODE_TOO_LONG;
    if (p >= avail) return DECODE_NEED_MORE;
    const modrm = bytes[p++]!;
    insn.modrm = modrm;
    const mod = entry.regOnly ? 3 : modrm >> 6;
    const rm = modrm & 7;
    insn.mod = mod;
    insn.reg = (modrm >> 3) & 7;
    insn.rm = rm;
    if (entry.group) {
      const member = (mod === 3 && entry.groupReg ? entry.groupReg : entry.group)[insn.reg];
      entry = member ?? UD_ENTRY;
    }
    if (mod !== 3) {
      let defaultSeg = DS;
      if (addr32) {
        let base = rm;
        if (rm === 4) {
          if (p >= 15) return DECODE_TOO_LONG;
          if (p >= avail) return DECODE_NEED_MORE;
          const sib = bytes[p++]!;
          base = sib & 7;
          const index = (sib >> 3) & 7;
          if (index !== 4) {
            insn.index = index;
            insn.scale = sib >> 6;
          }
        }
        if (base === 5 && mod === 0) {
          insn.base = -1;
        } else {
          insn.base = base;
          if (base === 4 || base === 5) defaultSeg = SS;
        }
        const dispBytes = mod === 1 ? 1 : mod === 2 || (base === 5 && mod === 0) ? 4 : 0;
        if (dispBytes) {
          if (p + dispBytes > 15) return DECODE_TOO_LONG;
          if (p + dispBytes > avail) return DECODE_NEED_MORE;
          insn.disp =
            dispBytes === 1
              ? (bytes[p]! << 24) >> 24
              : bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
          p += dispBytes;
        }
      } else {
        if (mod === 0 && rm === 6) {
          insn.base = -1;
        } else {
          insn.base = RM16_BASE[rm]!;
          insn.index = RM16_INDEX[rm]!;
          if (rm === 2 || rm === 3 || rm === 6) defaultSeg = SS;
        }
        const dispBytes = mod === 1 ? 1 : mod === 2 || (mod === 0 && rm === 6) ? 2 : 0;
        if (dispBytes) {
          if (p + dispBytes > 15) return DECODE_TOO_LONG;
          if (p + dispBytes > avail) return DECODE_NEED_MORE;
          insn.disp = dispBytes === 1 ? (bytes[p]! << 24) >> 24 : bytes[p]! | (bytes[p + 1]! << 8);
          p += dispBytes;
        }
      }
      insn.seg = segOverride >= 0 ? segOverride : defaultSeg;
    }
  }
  insn.entry = entry;
  insn.size = entry.sizeKind === 1 ? 1 : entry.sizeKind === 2 ? 2 : entry.sizeKind === 4 ? 4 : insn.opsize;
  // Immediates, in operand order.
  let first = true;
  for (let k = 0; k < entry.imms.length; k++) {
    const kind = entry.imms[k]!;
    let n: number;
    switch (kind) {
      case IMM_B:
      case IMM_BS:
        n = 1;
        break;
      case IMM_W:
        n = 2;
        break;
      case IMM_Z:
      case IMM_ZS:
        n = insn.opsize;
        break;
      case IMM_O:
        n = addr32 ? 4 : 2;
        break;
      default: // IMM_AP
        n = insn.opsize + 2;
        break;
    }
    if (p + n > 15) return DECODE_TOO_LONG;
    if (p + n > avail) return DECODE_NEED_MORE;
    let v: number;
    if (kind === IMM_AP) {
      v = readLe(bytes, p, insn.opsize);
      insn.imm2 = readLe(bytes, p + insn.opsize, 2);
    } else {
      v = readLe(bytes, p, n);
      if (kind === IMM_BS) v = (v << 24) >> 24;
      else if (kind === IMM_ZS && n === 2) v = (v << 16) >> 16;
    }
    p += n;
    if (kind === IMM_O) {
      insn.disp = v;
      insn.base = -1;
      insn.index = -1;
      insn.mod = 0;
    } else if (first) {
      insn.imm = v;
      first = false;
    } else insn.imm2 = v;
  }
  insn.length = p;
  insn.handler = entry.handler;
  if (lock && (!entry.lockable || insn.mod === 3)) insn.handler = UD_ENTRY.handler;
  return p;
}

/**
 * A little-endian value of `n` bytes; 32-bit ones signed, as every immediate and displacement is
 * kept (the far jump and call take their offset unsigned): one value above 2^31 would make V8 box
 * every instruction's immediate as a double.
 */
function readLe(bytes: Uint8Array, p: number, n: number): number {
  if (n === 1) return bytes[p]!;
  if (n === 2) return bytes[p]! | (bytes[p + 1]! << 8);
  return bytes[p]! | (bytes[p + 1]! << 8) | (bytes[p + 2]! << 16) | (bytes[p + 3]! << 24);
}
