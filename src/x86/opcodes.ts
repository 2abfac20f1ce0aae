// The opcode table: one entry per opcode (and per group member) with its mnemonic, operands in the
// SDM's notation, operand-size behaviour, flags read/written/left undefined, and handler. The
// decoder, the interpreter, the tests and the disassembler all read this table; nothing else knows
// the encoding.
//
// Operand notation (SDM appendix A): E = ModRM r/m, G = ModRM reg, M = memory-only r/m, Sw = segment
// register in reg, Cd/Dd = control/debug register in reg with Rd the r/m register, Z = register in
// the opcode's low three bits, I = immediate (Ibs: sign-extended byte), J = relative target, Ap =
// far pointer, O = memory offset, X = DS:rSI, Y = ES:rDI; sizes b (byte), w (word), d (dword),
// v (operand size), z (word or dword immediate), p (far pointer), s (6-byte table pointer), q (qword).

import type { Cpu } from "./cpu.ts";
import type { Insn } from "./decoder.ts";
import * as B from "./exec-basic.ts";
import * as Str from "./exec-string.ts";
import * as Sys from "./exec-system.ts";
import { AF, CF, DF, IF, OF, PF, SF, TF, ZF } from "./flags.ts";
import { fpuEscape, fwait, fxsaveRstor, mmx } from "./fpu-glue.ts";

export type Handler = (cpu: Cpu, i: Insn) => void;

/** Immediate kinds, derived from operand names. */
/** Ib: unsigned byte. */
export const IMM_B = 1;
/** Ibs / Jb: sign-extended byte. */
export const IMM_BS = 2;
/** Iw: 16 bits. */
export const IMM_W = 3;
/** Iz / Iv: operand size, zero-extended. */
export const IMM_Z = 4;
/** Jz: operand size, sign-extended. */
export const IMM_ZS = 5;
/** Ob / Ov: memory offset of address size. */
export const IMM_O = 6;
/** Ap: far pointer, offset (operand size) then selector. */
export const IMM_AP = 7;

export interface OpEntry {
  /** 0x00-0xFF, or 0x100 | second byte after 0F. */
  readonly opcode: number;
  readonly mnemonic: string;
  readonly operands: readonly string[];
  /** Operand size in bytes: 1, 2 or 4 fixed, or 0 for the operand-size attribute. */
  readonly sizeKind: number;
  readonly flagsRead: number;
  readonly flagsWritten: number;
  readonly flagsUndefined: number;
  readonly handler: Handler;
  readonly modrm: boolean;
  readonly imms: readonly number[];
  /** The r/m field names a register whatever the mod bits say (MOV to/from CRn/DRn). */
  readonly regOnly: boolean;
  /** LOCK is allowed (with a memory destination). */
  readonly lockable: boolean;
  /** Ends a decoded block: control transfers and anything that changes how later code decodes. */
  readonly endsBlock: boolean;
  /** Members by ModRM.reg for group opcodes; `groupReg` replaces them when mod = 3. */
  readonly group?: readonly (OpEntry | undefined)[];
  readonly groupReg?: readonly (OpEntry | undefined)[];
}

interface Options {
  /** Flags read, written, undefined: letters o s z a p c d i t. */
  r?: string;
  w?: string;
  u?: string;
  lock?: boolean;
  end?: boolean;
}

const FLAG_LETTERS: Record<string, number> = {
  o: OF,
  s: SF,
  z: ZF,
  a: AF,
  p: PF,
  c: CF,
  d: DF,
  i: IF,
  t: TF,
};
function flagBits(spec: string | undefined): number {
  let bits = 0;
  for (const ch of spec ?? "") bits |= FLAG_LETTERS[ch] ?? 0;
  return bits;
}

function sizeOf(operands: readonly string[]): number {
  for (const o of operands) {
    if (/^[IJ]/.test(o) || o === "DX" || o === "CL" || o === "1") continue;
    if (o === "AL" || /^[EGOXYZ]b$/.test(o)) return 1;
    if (/^(Ew|Gw|Sw)$/.test(o)) return 2;
    if (/^(Ed|Rd|Cd|Dd|Zd)$/.test(o)) return 4;
    return 0;
  }
  return 0;
}

function immKind(o: string): number {
  switch (o) {
    case "Ib":
      return IMM_B;
    case "Ibs":
    case "Jb":
      return IMM_BS;
    case "Iw":
      return IMM_W;
    case "Iz":
    case "Iv":
      return IMM_Z;
    case "Jz":
      return IMM_ZS;
    case "Ob":
    case "Ov":
      return IMM_O;
    case "Ap":
      return IMM_AP;
    default:
      return 0;
  }
}

const MODRM_OPERAND = /^(E[bvwdpq]|G[bvwd]|M[a-z]*|Sw|Cd|Dd|Rd|Ed|Pq|Qq)$/;

function make(opcode: number, spec: string, handler: Handler, opts: Options = {}, modrm?: boolean): OpEntry {
  const space = spec.indexOf(" ");
  const mnemonic = space < 0 ? spec : spec.slice(0, space);
  const operands = space < 0 ? [] : spec.slice(space + 1).split(",");
  return {
    opcode,
    mnemonic,
    operands,
    sizeKind: sizeOf(operands),
    flagsRead: flagBits(opts.r),
    flagsWritten: flagBits(opts.w),
    flagsUndefined: flagBits(opts.u),
    handler,
    modrm: modrm ?? operands.some((o) => MODRM_OPERAND.test(o)),
    imms: operands.map(immKind).filter((k) => k !== 0),
    regOnly: operands.includes("Rd"),
    lockable: opts.lock ?? false,
    endsBlock: opts.end ?? false,
  };
}

/** The entry the decoder uses for opcodes that do not exist: #UD. */
export const UD_ENTRY: OpEntry = make(-1, "(bad)", Sys.undefinedOpcode, { end: true });

export const ONE_BYTE: (OpEntry | undefined)[] = new Array(256).fill(undefined);
export const TWO_BYTE: (OpEntry | undefined)[] = new Array(256).fill(undefined);

function def(opcode: number, spec: string, handler: Handler, opts: Options = {}): void {
  const table = opcode >= 0x100 ? TWO_BYTE : ONE_BYTE;
  table[opcode & 0xff] = make(opcode, spec, handler, opts);
}

type Member = [spec: string, handler: Handler, opts?: Options] | undefined;
function group(opcode: number, members: Member[], regMembers?: Member[]): void {
  const build = (m: Member) => (m ? make(opcode, m[0], m[1], m[2] ?? {}, true) : undefined);
  const entry: OpEntry = {
    ...make(opcode, "(group)", Sys.undefinedOpcode, {}, true),
    group: members.map(build),
    groupReg: regMembers?.map(build),
  };
  const table = opcode >= 0x100 ? TWO_BYTE : ONE_BYTE;
  table[opcode & 0xff] = entry;
}

const CC = ["O", "NO", "B", "AE", "E", "NE", "BE", "A", "S", "NS", "P", "NP", "L", "GE", "LE", "G"];
const CC_READS = ["o", "o", "c", "c", "z", "z", "cz", "cz", "s", "s", "p", "p", "so", "so", "szo", "szo"];
const ALU = ["ADD", "OR", "ADC", "SBB", "AND", "SUB", "XOR", "CMP"];
const ARITH = "oszapc";

// ---- one-byte opcodes -------------------------------------------------------------------------

for (let op = 0; op < 8; op++) {
  const mn = ALU[op]!;
  const logic = op === 1 || op === 4 || op === 6;
  const opts: Options = { r: op === 2 || op === 3 ? "c" : "", w: ARITH, u: logic ? "a" : "" };
  const lock = op !== 7;
  def(op * 8, `${mn} Eb,Gb`, B.aluEG, { ...opts, lock });
  def(op * 8 + 1, `${mn} Ev,Gv`, B.aluEG32, { ...opts, lock });
  def(op * 8 + 2, `${mn} Gb,Eb`, B.aluGE, opts);
  def(op * 8 + 3, `${mn} Gv,Ev`, B.aluGE, opts);
  def(op * 8 + 4, `${mn} AL,Ib`, B.aluAI, opts);
  def(op * 8 + 5, `${mn} eAX,Iz`, B.aluAI, opts);
}
def(0x06, "PUSH ES", Sys.pushSeg);
def(0x07, "POP ES", Sys.popSeg);
def(0x0e, "PUSH CS", Sys.pushSeg);
def(0x16, "PUSH SS", Sys.pushSeg);
def(0x17, "POP SS", Sys.popSeg, { end: true });
def(0x1e, "PUSH DS", Sys.pushSeg);
def(0x1f, "POP DS", Sys.popSeg);
def(0x27, "DAA", B.daa, { r: "ac", w: "szapc", u: "o" });
def(0x2f, "DAS", B.das, { r: "ac", w: "szapc", u: "o" });
def(0x37, "AAA", B.aaa, { r: "a", w: "ac", u: "oszp" });
def(0x3f, "AAS", B.aas, { r: "a", w: "ac", u: "oszp" });
for (let r = 0; r < 8; r++) {
  def(0x40 + r, "INC Zv", B.incDecReg, { w: "oszap" });
  def(0x48 + r, "DEC Zv", B.incDecReg, { w: "oszap" });
  def(0x50 + r, "PUSH Zv", B.pushR);
  def(0x58 + r, "POP Zv", B.popR);
  def(0x90 + r, r === 0 ? "NOP" : "XCHG Zv,eAX", r === 0 ? B.nop : B.xchgAR);
  def(0xb0 + r, "MOV Zb,Ib", B.movRI);
  def(0xb8 + r, "MOV Zv,Iv", B.movRI);
}
def(0x60, "PUSHA", B.pusha);
def(0x61, "POPA", B.popa);
def(0x62, "BOUND Gv,Ma", B.bound);
def(0x63, "ARPL Ew,Gw", Sys.arpl, { w: "z" });
def(0x68, "PUSH Iz", B.pushI);
def(0x69, "IMUL Gv,Ev,Iz", B.imulGEI, { w: "oszapc", u: "szap" });
def(0x6a, "PUSH Ibs", B.pushI);
def(0x6b, "IMUL Gv,Ev,Ibs", B.imulGEI, { w: "oszapc", u: "szap" });
def(0x6c, "INSB Yb,DX", Str.ins, { r: "d", end: true });
def(0x6d, "INS Yv,DX", Str.ins, { r: "d", end: true });
def(0x6e, "OUTSB DX,Xb", Str.outs, { r: "d", end: true });
def(0x6f, "OUTS DX,Xv", Str.outs, { r: "d", end: true });
for (let cc = 0; cc < 16; cc++) {
  def(0x70 + cc, `J${CC[cc]} Jb`, B.jcc, { r: CC_READS[cc]!, end: true });
  def(0x180 + cc, `J${CC[cc]} Jz`, B.jcc, { r: CC_READS[cc]!, end: true });
  def(0x190 + cc, `SET${CC[cc]} Eb`, B.setcc, { r: CC_READS[cc]! });
  def(0x140 + cc, `CMOV${CC[cc]} Gv,Ev`, B.cmovcc, { r: CC_READS[cc]! });
}
for (const [opcode, operands] of [
  [0x80, "Eb,Ib"],
  [0x81, "Ev,Iz"],
  [0x82, "Eb,Ib"],
  [0x83, "Ev,Ibs"],
] as const) {
  group(
    opcode,
    ALU.map((mn, op) => [
      `${mn} ${operands}`,
      B.aluEI,
      {
        r: op === 2 || op === 3 ? "c" : "",
        w: ARITH,
        u: op === 1 || op === 4 || op === 6 ? "a" : "",
        lock: op !== 7,
      },
    ]),
  );
}
def(0x84, "TEST Eb,Gb", B.testEG, { w: ARITH, u: "a" });
def(0x85, "TEST Ev,Gv", B.testEG, { w: ARITH, u: "a" });
def(0x86, "XCHG Eb,Gb", B.xchgEG, { lock: true });
def(0x87, "XCHG Ev,Gv", B.xchgEG, { lock: true });
def(0x88, "MOV Eb,Gb", B.movEG);
def(0x89, "MOV Ev,Gv", B.movEG);
def(0x8a, "MOV Gb,Eb", B.movGE);
def(0x8b, "MOV Gv,Ev", B.movGE);
def(0x8c, "MOV Ev,Sw", Sys.movESeg);
def(0x8d, "LEA Gv,M", B.lea);
def(0x8e, "MOV Sw,Ew", Sys.movSegE, { end: true });
group(0x8f, [["POP Ev", B.popE]]);
def(0x98, "CBW", B.cbw);
def(0x99, "CWD", B.cwd);
def(0x9a, "CALLF Ap", Sys.callFarAp, { end: true });
def(0x9b, "WAIT", fwait, { end: true });
def(0x9c, "PUSHF", B.pushf, { r: "oszapcdit" });
def(0x9d, "POPF", B.popf, { w: "oszapcdit", end: true });
def(0x9e, "SAHF", B.sahf, { w: "szapc" });
def(0x9f, "LAHF", B.lahf, { r: "szapc" });
def(0xa0, "MOV AL,Ob", B.movAO);
def(0xa1, "MOV eAX,Ov", B.movAO);
def(0xa2, "MOV Ob,AL", B.movAO);
def(0xa3, "MOV Ov,eAX", B.movAO);
def(0xa4, "MOVSB Yb,Xb", Str.movs, { r: "d", end: true });
def(0xa5, "MOVS Yv,Xv", Str.movs, { r: "d", end: true });
def(0xa6, "CMPSB Xb,Yb", Str.cmps, { r: "d", w: ARITH, end: true });
def(0xa7, "CMPS Xv,Yv", Str.cmps, { r: "d", w: ARITH, end: true });
def(0xa8, "TEST AL,Ib", B.testAI, { w: ARITH, u: "a" });
def(0xa9, "TEST eAX,Iz", B.testAI, { w: ARITH, u: "a" });
def(0xaa, "STOSB Yb,AL", Str.stos, { r: "d", end: true });
def(0xab, "STOS Yv,eAX", Str.stos, { r: "d", end: true });
def(0xac, "LODSB AL,Xb", Str.lods, { r: "d", end: true });
def(0xad, "LODS eAX,Xv", Str.lods, { r: "d", end: true });
def(0xae, "SCASB AL,Yb", Str.scas, { r: "d", w: ARITH, end: true });
def(0xaf, "SCAS eAX,Yv", Str.scas, { r: "d", w: ARITH, end: true });

const SHIFTS: Member[] = [
  ["ROL", B.shiftEI, { w: "oc" }],
  ["ROR", B.shiftEI, { w: "oc" }],
  ["RCL", B.shiftEI, { r: "c", w: "oc" }],
  ["RCR", B.shiftEI, { r: "c", w: "oc" }],
  ["SHL", B.shiftEI, { w: ARITH, u: "a" }],
  ["SHR", B.shiftEI, { w: ARITH, u: "a" }],
  ["SAL", B.shiftEI, { w: ARITH, u: "a" }],
  ["SAR", B.shiftEI, { w: ARITH, u: "a" }],
];
function shiftGroup(opcode: number, operands: string, handler: Handler): void {
  group(
    opcode,
    SHIFTS.map((m) => [`${m![0]} ${operands}`, handler, m![2]]),
  );
}
shiftGroup(0xc0, "Eb,Ib", B.shiftEI);
shiftGroup(0xc1, "Ev,Ib", B.shiftEI);
shiftGroup(0xd0, "Eb,1", B.shiftE1);
shiftGroup(0xd1, "Ev,1", B.shiftE1);
shiftGroup(0xd2, "Eb,CL", B.shiftECL);
shiftGroup(0xd3, "Ev,CL", B.shiftECL);

def(0xc2, "RET Iw", B.retNear, { end: true });
def(0xc3, "RET", B.retNear, { end: true });
def(0xc4, "LES Gv,Mp", Sys.loadFarPointer);
def(0xc5, "LDS Gv,Mp", Sys.loadFarPointer);
group(0xc6, [["MOV Eb,Ib", B.movEI]]);
group(0xc7, [["MOV Ev,Iz", B.movEI]]);
def(0xc8, "ENTER Iw,Ib", B.enter);
def(0xc9, "LEAVE", B.leave);
def(0xca, "RETF Iw", Sys.retFar, { end: true });
def(0xcb, "RETF", Sys.retFar, { end: true });
def(0xcc, "INT3", Sys.int3, { end: true });
def(0xcd, "INT Ib", Sys.intN, { end: true });
def(0xce, "INTO", Sys.into, { r: "o", end: true });
def(0xcf, "IRET", Sys.iretH, { w: "oszapcdit", end: true });
def(0xd4, "AAM Ib", B.aam, { w: "szp", u: "oac" });
def(0xd5, "AAD Ib", B.aad, { w: "szp", u: "oac" });
def(0xd6, "SALC", B.salc, { r: "c" });
def(0xd7, "XLAT", B.xlat);
for (let e = 0xd8; e <= 0xdf; e++) def(e, `ESC${e - 0xd8} Ed`, fpuEscape, { end: true });
def(0xe0, "LOOPNE Jb", B.loop, { r: "z", end: true });
def(0xe1, "LOOPE Jb", B.loop, { r: "z", end: true });
def(0xe2, "LOOP Jb", B.loop, { end: true });
def(0xe3, "JCXZ Jb", B.jcxz, { end: true });
def(0xe4, "IN AL,Ib", Sys.inH);
def(0xe5, "IN eAX,Ib", Sys.inH);
def(0xe6, "OUT Ib,AL", Sys.outH);
def(0xe7, "OUT Ib,eAX", Sys.outH);
def(0xe8, "CALL Jz", B.callRel, { end: true });
def(0xe9, "JMP Jz", B.jmpRel, { end: true });
def(0xea, "JMPF Ap", Sys.jmpFarAp, { end: true });
def(0xeb, "JMP Jb", B.jmpRel, { end: true });
def(0xec, "IN AL,DX", Sys.inH);
def(0xed, "IN eAX,DX", Sys.inH);
def(0xee, "OUT DX,AL", Sys.outH);
def(0xef, "OUT DX,eAX", Sys.outH);
def(0xf1, "INT1", Sys.int1, { end: true });
def(0xf4, "HLT", Sys.hlt, { end: true });
def(0xf5, "CMC", B.cmc, { r: "c", w: "c" });
for (const [opcode, ops, imm] of [
  [0xf6, "Eb", "Ib"],
  [0xf7, "Ev", "Iz"],
] as const) {
  group(opcode, [
    [`TEST ${ops},${imm}`, B.testEI, { w: ARITH, u: "a" }],
    [`TEST ${ops},${imm}`, B.testEI, { w: ARITH, u: "a" }],
    [`NOT ${ops}`, B.notE, { lock: true }],
    [`NEG ${ops}`, B.negE, { w: ARITH, lock: true }],
    [`MUL ${ops}`, B.mulE, { w: ARITH, u: "szap" }],
    [`IMUL ${ops}`, B.imul1E, { w: ARITH, u: "szap" }],
    [`DIV ${ops}`, B.divE, { u: ARITH }],
    [`IDIV ${ops}`, B.idivE, { u: ARITH }],
  ]);
}
def(0xf8, "CLC", B.clc, { w: "c" });
def(0xf9, "STC", B.stc, { w: "c" });
def(0xfa, "CLI", B.cli, { w: "i" });
def(0xfb, "STI", B.sti, { w: "i", end: true });
def(0xfc, "CLD", B.cld, { w: "d" });
def(0xfd, "STD", B.std, { w: "d" });
group(0xfe, [
  ["INC Eb", B.incDecE, { w: "oszap", lock: true }],
  ["DEC Eb", B.incDecE, { w: "oszap", lock: true }],
]);
group(0xff, [
  ["INC Ev", B.incDecE, { w: "oszap", lock: true }],
  ["DEC Ev", B.incDecE, { w: "oszap", lock: true }],
  ["CALL Ev", B.callE, { end: true }],
  ["CALLF Mp", Sys.callFarE, { end: true }],
  ["JMP Ev", B.jmpE, { end: true }],
  ["JMPF Mp", Sys.jmpFarE, { end: true }],
  ["PUSH Ev", B.pushE],
  undefined,
]);

// ---- two-byte opcodes (0F xx) -----------------------------------------------------------------

group(0x100, [
  ["SLDT Ew", Sys.storeSystemSelector],
  ["STR Ew", Sys.storeSystemSelector],
  ["LLDT Ew", Sys.lldt],
  ["LTR Ew", Sys.ltr],
  ["VERR Ew", Sys.verrVerw, { w: "z" }],
  ["VERW Ew", Sys.verrVerw, { w: "z" }],
  undefined,
  undefined,
]);
group(
  0x101,
  [
    ["SGDT Ms", Sys.storeTable],
    ["SIDT Ms", Sys.storeTable],
    ["LGDT Ms", Sys.loadTable],
    ["LIDT Ms", Sys.loadTable],
    ["SMSW Ew", Sys.smsw],
    undefined,
    ["LMSW Ew", Sys.lmsw, { end: true }],
    ["INVLPG M", Sys.invlpg, { end: true }],
  ],
  [
    undefined,
    undefined,
    undefined,
    undefined,
    ["SMSW Ew", Sys.smsw],
    undefined,
    ["LMSW Ew", Sys.lmsw, { end: true }],
    undefined,
  ],
);
def(0x102, "LAR Gv,Ew", Sys.lar, { w: "z" });
def(0x103, "LSL Gv,Ew", Sys.lsl, { w: "z" });
def(0x106, "CLTS", Sys.clts);
def(0x108, "INVD", Sys.invd);
def(0x109, "WBINVD", Sys.invd);
def(0x10b, "UD2", Sys.undefinedOpcode, { end: true });
for (let h = 0x118; h <= 0x11f; h++) def(h, "NOP Ev", B.nop);
def(0x120, "MOV Rd,Cd", Sys.movRCr);
def(0x121, "MOV Rd,Dd", Sys.movRDr);
def(0x122, "MOV Cd,Rd", Sys.movCrR, { end: true });
def(0x123, "MOV Dd,Rd", Sys.movDrR, { end: true });
def(0x130, "WRMSR", Sys.wrmsrH, { end: true });
def(0x131, "RDTSC", Sys.rdtsc);
def(0x132, "RDMSR", Sys.rdmsrH);
def(0x133, "RDPMC", Sys.rdpmc);
def(0x134, "SYSENTER", Sys.sysenter, { w: "i", end: true });
def(0x135, "SYSEXIT", Sys.sysexit, { end: true });
def(0x1a0, "PUSH FS", Sys.pushSeg);
def(0x1a1, "POP FS", Sys.popSeg);
def(0x1a2, "CPUID", Sys.cpuidH);
def(0x1a3, "BT Ev,Gv", B.btEG, { w: "c", u: "osap" });
def(0x1a4, "SHLD Ev,Gv,Ib", B.shldShrd, { w: ARITH, u: "a" });
def(0x1a5, "SHLD Ev,Gv,CL", B.shldShrd, { w: ARITH, u: "a" });
def(0x1a8, "PUSH GS", Sys.pushSeg);
def(0x1a9, "POP GS", Sys.popSeg);
def(0x1ab, "BTS Ev,Gv", B.btEG, { w: "c", u: "osap", lock: true });
def(0x1ac, "SHRD Ev,Gv,Ib", B.shldShrd, { w: ARITH, u: "a" });
def(0x1ad, "SHRD Ev,Gv,CL", B.shldShrd, { w: ARITH, u: "a" });
group(
  0x1ae,
  [
    ["FXSAVE M", fxsaveRstor],
    ["FXRSTOR M", fxsaveRstor, { end: true }],
  ],
  [],
);
def(0x1af, "IMUL Gv,Ev", B.imulGE, { w: ARITH, u: "szap" });
def(0x1b0, "CMPXCHG Eb,Gb", B.cmpxchg, { w: ARITH, lock: true });
def(0x1b1, "CMPXCHG Ev,Gv", B.cmpxchg, { w: ARITH, lock: true });
def(0x1b2, "LSS Gv,Mp", Sys.loadFarPointer);
def(0x1b3, "BTR Ev,Gv", B.btEG, { w: "c", u: "osap", lock: true });
def(0x1b4, "LFS Gv,Mp", Sys.loadFarPointer);
def(0x1b5, "LGS Gv,Mp", Sys.loadFarPointer);
def(0x1b6, "MOVZX Gv,Eb", B.movzx);
def(0x1b7, "MOVZX Gv,Ew", B.movzx);
def(0x1b9, "UD1 Gv,Ev", Sys.undefinedOpcode, { end: true });
group(0x1ba, [
  undefined,
  undefined,
  undefined,
  undefined,
  ["BT Ev,Ib", B.btEI, { w: "c", u: "osap" }],
  ["BTS Ev,Ib", B.btEI, { w: "c", u: "osap", lock: true }],
  ["BTR Ev,Ib", B.btEI, { w: "c", u: "osap", lock: true }],
  ["BTC Ev,Ib", B.btEI, { w: "c", u: "osap", lock: true }],
]);
def(0x1bb, "BTC Ev,Gv", B.btEG, { w: "c", u: "osap", lock: true });
def(0x1bc, "BSF Gv,Ev", B.bsfBsr, { w: "z", u: "osapc" });
def(0x1bd, "BSR Gv,Ev", B.bsfBsr, { w: "z", u: "osapc" });
def(0x1be, "MOVSX Gv,Eb", B.movsx);
def(0x1bf, "MOVSX Gv,Ew", B.movsx);
def(0x1c0, "XADD Eb,Gb", B.xadd, { w: ARITH, lock: true });
def(0x1c1, "XADD Ev,Gv", B.xadd, { w: ARITH, lock: true });
group(0x1c7, [undefined, ["CMPXCHG8B Mq", B.cmpxchg8b, { w: "z", lock: true }]], []);
for (let r = 0; r < 8; r++) def(0x1c8 + r, "BSWAP Zd", B.bswap);

// MMX: executed by the x87/MMX unit (which rejects encodings it does not implement with #UD).
const MMX_OPCODES = [
  ...range(0x60, 0x6b),
  0x6e,
  0x6f,
  ...range(0x74, 0x77),
  0x7e,
  0x7f,
  ...range(0xd1, 0xd5),
  ...range(0xd7, 0xfe),
];
for (const op of MMX_OPCODES) def(0x100 | op, op === 0x77 ? "EMMS" : "MMX Pq,Qq", mmx, { end: true });
for (const op of [0x70, 0x71, 0x72, 0x73]) def(0x100 | op, "MMX Pq,Qq,Ib", mmx, { end: true });

function range(from: number, to: number): number[] {
  const out: number[] = [];
  for (let k = from; k <= to; k++) out.push(k);
  return out;
}
