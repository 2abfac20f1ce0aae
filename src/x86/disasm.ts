// An x86 disassembler (i386 to Pentium III integer, system and x87 instructions) for traces and the
// monitor. Intel syntax in the style of `ndisasm`: lower case, hexadecimal `0x` numbers, size
// keywords on memory operands whose size no register operand implies, jump targets as addresses.
//
// Instructions come from the CPU's opcode table (opcodes.ts: mnemonic and operands in the SDM's
// notation), so the disassembler shows exactly what the decoder executes; opcodes the table does
// not have are shown as "db". This file adds only presentation (ndisasm's condition names, size
// suffixes and keywords) and the x87 instruction names, which the table leaves to the FPU unit
// (ESC0-ESC7), and the MMX names, which the table leaves generic ("MMX Pq,Qq").

import { ONE_BYTE, type OpEntry, TWO_BYTE } from "./opcodes.ts";

export interface Disassembly {
  /** The instruction in Intel syntax, e.g. "add dword [ebx+0x4],byte +0x1". */
  readonly text: string;
  /** Its length in bytes (1 for bytes that are no instruction, shown as "db 0x..."). */
  readonly length: number;
}

/** Operand specifiers (SDM Appendix A notation, with a few of our own for syntax). */
type Spec =
  | "Eb"
  | "Ew"
  | "Ed"
  | "Ev"
  | "Gb"
  | "Gw"
  | "Gv"
  | "M" // memory of no particular size (lea, lgdt, bound, les)
  | "Mq" // memory, qword (cmpxchg8b)
  | "Mp" // far pointer in memory (call far [..])
  | "Ib" // unsigned byte immediate
  | "IbB" // byte immediate printed "byte 0x.."
  | "Ibs" // sign-extended byte immediate printed "byte +0x.."
  | "Iw"
  | "Iv" // operand-size immediate
  | "IvS" // operand-size immediate with its size keyword
  | "Jb"
  | "Jv"
  | "Ap" // far absolute address
  | "Ob" // memory offset, byte
  | "Ov"
  | "Sw" // segment register in ModRM reg
  | "Cd" // control register in ModRM reg
  | "Dd" // debug register in ModRM reg
  | "Rd" // 32-bit register in ModRM r/m
  | "Zb" // byte register in the opcode's low bits
  | "Zv" // operand-size register in the opcode's low bits
  | "Zd" // 32-bit register in the opcode's low bits
  | "AL"
  | "CL"
  | "DX"
  | "eAX"
  | "1"
  | "ES"
  | "CS"
  | "SS"
  | "DS"
  | "FS"
  | "GS";

interface Entry {
  /** Mnemonic; "a|b" picks by operand size (16|32). */
  readonly m: string;
  readonly ops: readonly Spec[];
}

const e = (m: string, ...ops: Spec[]): Entry => ({ m, ops });

// ---- presentation of the CPU's opcode table -----------------------------------------------

/** Condition-code suffixes as the table writes them → as ndisasm writes them. */
const CONDITION_NAMES: Record<string, string> = {
  O: "o",
  NO: "no",
  B: "c",
  AE: "nc",
  E: "z",
  NE: "nz",
  BE: "na",
  A: "a",
  S: "s",
  NS: "ns",
  P: "pe",
  NP: "po",
  L: "l",
  GE: "nl",
  LE: "ng",
  G: "g",
};
/** Mnemonics written differently from the table's name. */
const RENAMED: Record<string, string> = { CALLF: "call", JMPF: "jmp", XLAT: "xlatb" };
/** String instructions whose size suffix follows the operand size. */
const SIZED_STRINGS = new Set(["MOVS", "CMPS", "STOS", "LODS", "SCAS", "INS", "OUTS"]);
/** Instructions whose default-size form has no suffix and whose other size does (pusha/pushad). */
const SUFFIX_WHEN_NOT_DEFAULT = new Set(["PUSHA", "POPA", "PUSHF", "POPF", "IRET"]);
/** Opcodes whose immediate ndisasm writes with its size: "push dword 0x1", "rol eax,byte 0x3". */
const SIZED_IMMEDIATE = new Set([0x68, 0x69, 0xc0, 0xc1, 0x1ba]);

/** The table's operand notation → this file's (string operands are implied by the mnemonic). */
function operandSpec(operand: string, opcode: number, mnemonic: string): Spec | undefined {
  switch (operand) {
    case "Xb":
    case "Xv":
    case "Yb":
    case "Yv":
      return undefined;
    case "Iz":
    case "Iv":
      return SIZED_IMMEDIATE.has(opcode) ? "IvS" : "Iv";
    case "Ib":
      return SIZED_IMMEDIATE.has(opcode) ? "IbB" : "Ib";
    case "Jz":
      return "Jv";
    case "Ma":
    case "Ms":
      return "M";
    case "Zd":
      return "Zd";
    case "Ew":
      // MOV Sw, r/m and SLDT/STR/SMSW to a register: the register is named by the operand size
      // (the CPU reads or zero-extends the low 16 bits).
      return opcode === 0x8e || mnemonic === "SLDT" || mnemonic === "STR" || mnemonic === "SMSW"
        ? "Ev"
        : "Ew";
    default:
      return operand as Spec;
  }
}

/** How one table entry is written; undefined for what this file cannot show (MMX). */
function present(entry: OpEntry, opcode: number): Entry | undefined {
  const name = entry.mnemonic;
  if (name === "MMX" || name.startsWith("ESC") || name === "(group)" || name === "(bad)") return undefined;
  const isString = STRING_OPCODES.has(opcode);
  const ops = isString
    ? []
    : entry.operands.map((o) => operandSpec(o, opcode, name)).filter((o): o is Spec => o !== undefined);
  // XCHG is symmetric; ndisasm puts the accumulator or the register first.
  if (name === "XCHG") ops.reverse();
  let m: string;
  const condition = /^(J|SET|CMOV)([A-Z]+)$/.exec(name);
  if (condition && CONDITION_NAMES[condition[2]!] && name !== "JMP") {
    m = `${condition[1]!.toLowerCase()}${CONDITION_NAMES[condition[2]!]}`;
    if (condition[1] === "J" && opcode > 0xff) m += " near";
  } else if (SIZED_STRINGS.has(name)) {
    const base = name.toLowerCase();
    m = `${base}w|${base}d`;
  } else if (SUFFIX_WHEN_NOT_DEFAULT.has(name)) {
    m = `${name.toLowerCase()}*`;
  } else if (name === "CBW") {
    m = "cbw|cwde";
  } else if (name === "CWD") {
    m = "cwd|cdq";
  } else if (name === "JMP" && opcode === 0xeb) {
    m = "jmp short";
  } else if ((name === "CALLF" || name === "JMPF") && ops[0] === "Mp") {
    m = `${RENAMED[name]} far`;
  } else {
    m = RENAMED[name] ?? name.toLowerCase();
  }
  return { m, ops };
}

const presented = new Map<OpEntry, Entry | undefined>();

/** The table entry for `opcode` (after ModRM for groups), as this file writes it. */
function lookup(opcode: number, modrm: number | undefined): Entry | undefined {
  const top = opcode > 0xff ? TWO_BYTE[opcode & 0xff] : ONE_BYTE[opcode];
  if (!top) return undefined;
  let entry: OpEntry | undefined = top;
  if (top.group) {
    if (modrm === undefined) return undefined;
    const reg = (modrm >> 3) & 7;
    entry = ((modrm >> 6 === 3 && top.groupReg) || top.group)[reg];
    if (!entry) return undefined;
  }
  if (!presented.has(entry)) presented.set(entry, present(entry, opcode));
  return presented.get(entry);
}

// ---- x87 --------------------------------------------------------------------------------

/** Memory forms of D8-DF by (opcode - 0xD8) * 8 + reg: mnemonic and operand size keyword. */
const FPU_MEMORY: readonly (readonly [string, string] | undefined)[] = [
  ...["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"].map((m) => [m, "dword"] as const),
  ["fld", "dword"],
  undefined,
  ["fst", "dword"],
  ["fstp", "dword"],
  ["fldenv", ""],
  ["fldcw", ""],
  ["fnstenv", ""],
  ["fnstcw", ""],
  ...["fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr", "fidiv", "fidivr"].map(
    (m) => [m, "dword"] as const,
  ),
  ["fild", "dword"],
  ["fisttp", "dword"],
  ["fist", "dword"],
  ["fistp", "dword"],
  undefined,
  ["fld", "tword"],
  undefined,
  ["fstp", "tword"],
  ...["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"].map((m) => [m, "qword"] as const),
  ["fld", "qword"],
  ["fisttp", "qword"],
  ["fst", "qword"],
  ["fstp", "qword"],
  ["frstor", ""],
  undefined,
  ["fnsave", ""],
  ["fnstsw", ""],
  ...["fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr", "fidiv", "fidivr"].map(
    (m) => [m, "word"] as const,
  ),
  ["fild", "word"],
  ["fisttp", "word"],
  ["fist", "word"],
  ["fistp", "word"],
  ["fbld", "tword"],
  ["fild", "qword"],
  ["fbstp", "tword"],
  ["fistp", "qword"],
];

/** D9 E0-FF: the operand-less x87 instructions. */
const FPU_D9_NOARG: Record<number, string> = {
  224: "fchs",
  225: "fabs",
  228: "ftst",
  229: "fxam",
  232: "fld1",
  233: "fldl2t",
  234: "fldl2e",
  235: "fldpi",
  236: "fldlg2",
  237: "fldln2",
  238: "fldz",
  240: "f2xm1",
  241: "fyl2x",
  242: "fptan",
  243: "fpatan",
  244: "fxtract",
  245: "fprem1",
  246: "fdecstp",
  247: "fincstp",
  248: "fprem",
  249: "fyl2xp1",
  250: "fsqrt",
  251: "fsincos",
  252: "frndint",
  253: "fscale",
  254: "fsin",
  255: "fcos",
};

/** Register forms (mod = 3) of D8-DF: the text for opcode, reg and st(i). */
function fpuRegister(op: number, reg: number, i: number, modrm: number): string | undefined {
  const st = `st${i}`;
  const arith = ["fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr"];
  switch (op) {
    case 0xd8:
      return `${arith[reg]} ${st}`;
    case 0xd9:
      if (reg === 0) return `fld ${st}`;
      if (reg === 1) return `fxch ${st}`;
      if (modrm === 0xd0) return "fnop";
      return FPU_D9_NOARG[modrm];
    case 0xda:
      if (modrm === 0xe9) return "fucompp";
      return reg < 4 ? `${["fcmovb", "fcmove", "fcmovbe", "fcmovu"][reg]} ${st}` : undefined;
    case 0xdb:
      if (modrm === 0xe2) return "fnclex";
      if (modrm === 0xe3) return "fninit";
      if (reg < 4) return `${["fcmovnb", "fcmovne", "fcmovnbe", "fcmovnu"][reg]} ${st}`;
      if (reg === 5) return `fucomi ${st}`;
      if (reg === 6) return `fcomi ${st}`;
      return undefined;
    case 0xdc: {
      const m = ["fadd", "fmul", "fcom", "fcomp", "fsubr", "fsub", "fdivr", "fdiv"][reg]!;
      return reg === 2 || reg === 3 ? `${m} ${st}` : `${m} to ${st}`;
    }
    case 0xdd:
      return [`ffree ${st}`, undefined, `fst ${st}`, `fstp ${st}`, `fucom ${st}`, `fucomp ${st}`][reg];
    case 0xde:
      if (modrm === 0xd9) return "fcompp";
      return reg === 2 || reg === 3
        ? undefined
        : `${["faddp", "fmulp", "", "", "fsubrp", "fsubp", "fdivrp", "fdivp"][reg]} ${st}`;
    case 0xdf:
      if (modrm === 0xe0) return "fnstsw ax";
      if (reg === 5) return `fucomip ${st}`;
      if (reg === 6) return `fcomip ${st}`;
      return undefined;
    default:
      return undefined;
  }
}

// ---- decoding and formatting ------------------------------------------------------------

const REG8 = ["al", "cl", "dl", "bl", "ah", "ch", "dh", "bh"];
const REG16 = ["ax", "cx", "dx", "bx", "sp", "bp", "si", "di"];
const REG32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
const SEGMENTS = ["es", "cs", "ss", "ds", "fs", "gs"];
const SEGMENT_PREFIX: Record<number, string> = {
  38: "es",
  46: "cs",
  54: "ss",
  62: "ds",
  100: "fs",
  101: "gs",
};
const MODRM16 = ["bx+si", "bx+di", "bp+si", "bp+di", "si", "di", "bp", "bx"];
/** String instructions: they show the address size and take REP as a real prefix. */
const STRING_OPCODES = new Set([
  0x6c, 0x6d, 0x6e, 0x6f, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
]);

function hex(n: number): string {
  return `0x${(n >>> 0).toString(16)}`;
}

function signedHex(n: number): string {
  return n < 0 ? `-0x${(-n).toString(16)}` : `+0x${n.toString(16)}`;
}

/** Reads bytes with bounds: running off the end makes the decode fail (shown as "db"). */
class Reader {
  readonly bytes: Uint8Array;
  p: number;
  constructor(bytes: Uint8Array, p: number) {
    this.bytes = bytes;
    this.p = p;
  }
  u8(): number {
    if (this.p >= this.bytes.length) throw new RangeError("truncated");
    return this.bytes[this.p++]!;
  }
  s8(): number {
    return (this.u8() << 24) >> 24;
  }
  u16(): number {
    return this.u8() | (this.u8() << 8);
  }
  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }
}

interface ModRM {
  readonly mod: number;
  readonly reg: number;
  readonly rm: number;
  /** The memory operand text without size keyword, e.g. "[es:ebx+0x4]"; undefined for mod = 3. */
  readonly memory: string | undefined;
}

function readModRM(r: Reader, addr32: boolean, segment: string | undefined, addressPrefix = false): ModRM {
  const modrm = r.u8();
  const mod = modrm >> 6;
  const reg = (modrm >> 3) & 7;
  const rm = modrm & 7;
  if (mod === 3) return { mod, reg, rm, memory: undefined };
  let inner: string;
  // ndisasm notes the address size where the encoding is not what the default would produce:
  // "[dword 0x1234]" for a 32-bit displacement alone, "[dword ebx+ebx]" for a SIB byte under 67.
  let note = "";
  if (!addr32) {
    if (mod === 0 && rm === 6 && addressPrefix) note = "word ";
    if (mod === 0 && rm === 6) inner = hex(r.u16());
    else {
      inner = MODRM16[rm]!;
      if (mod === 1) inner += signedHex(r.s8());
      else if (mod === 2) inner += signedHex((r.u16() << 16) >> 16);
    }
  } else {
    let base = rm;
    let index = "";
    if ((mod === 0 && rm === 5) || (rm === 4 && addressPrefix)) note = "dword ";
    if (rm === 4) {
      const sib = r.u8();
      base = sib & 7;
      const idx = (sib >> 3) & 7;
      if (idx !== 4) index = sib >> 6 ? `${REG32[idx]}*${1 << (sib >> 6)}` : REG32[idx]!;
    }
    const parts: string[] = [];
    let disp: number | undefined;
    if (base === 5 && mod === 0) disp = r.u32() | 0;
    else parts.push(REG32[base]!);
    if (index) parts.push(index);
    if (mod === 1) disp = r.s8();
    else if (mod === 2) disp = r.u32() | 0;
    inner = parts.join("+");
    if (disp !== undefined) {
      if (parts.length === 0) inner = hex(disp);
      else inner += signedHex(disp);
    }
  }
  return { mod, reg, rm, memory: `[${note}${segment ? `${segment}:` : ""}${inner}]` };
}

/** Size of an operand spec in bits for the given operand size; 0 if it has none of its own. */
function specSize(spec: Spec, opsize: 16 | 32): number {
  switch (spec) {
    case "Eb":
    case "Gb":
    case "Zb":
    case "AL":
    case "Ob":
      return 8;
    case "Ew":
    case "Gw":
      return 16;
    case "Ed":
    case "Rd":
      return 32;
    case "Ev":
    case "Gv":
    case "Zv":
    case "eAX":
    case "Ov":
    case "Sw":
      return opsize;
    default:
      return 0;
  }
}

/** Operand specifiers that come from a ModRM byte. */
const MODRM_SPECS = new Set<Spec>([
  "Eb",
  "Ew",
  "Ed",
  "Ev",
  "Gb",
  "Gw",
  "Gv",
  "M",
  "Mq",
  "Mp",
  "Sw",
  "Cd",
  "Dd",
  "Rd",
]);

const SIZE_KEYWORD: Record<number, string> = { 8: "byte", 16: "word", 32: "dword", 64: "qword" };

/**
 * Disassembles one instruction at `offset` in `bytes`, decoding for a `mode`-bit code segment.
 * `address` is the instruction's address (for jump targets; default `offset`).
 */
export function disassemble(bytes: Uint8Array, offset: number, mode: 16 | 32, address = offset): Disassembly {
  try {
    return decode(bytes, offset, mode, address);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    return { text: offset < bytes.length ? `db ${hex(bytes[offset]!)}` : "db ?", length: 1 };
  }
}

function decode(bytes: Uint8Array, offset: number, mode: 16 | 32, address: number): Disassembly {
  const r = new Reader(bytes, offset);
  let opsize: 16 | 32 = mode;
  let addr32 = mode === 32;
  let operandPrefix = false;
  let addressPrefix = false;
  let segment: string | undefined;
  let rep = "";
  let lock = false;
  let b: number;
  for (;;) {
    if (r.p - offset >= 15) return invalid(bytes, offset);
    b = r.u8();
    if (b === 0x66) {
      operandPrefix = true;
      opsize = mode === 32 ? 16 : 32;
    } else if (b === 0x67) {
      addressPrefix = true;
      addr32 = mode !== 32;
    } else if (b === 0xf0) lock = true;
    else if (b === 0xf2) rep = "repne";
    else if (b === 0xf3) rep = "rep";
    else if (SEGMENT_PREFIX[b]) segment = SEGMENT_PREFIX[b];
    else break;
  }

  let text: string;
  let usesOpsize = false;
  let usesMemory = false;
  const isString = STRING_OPCODES.has(b) || b === 0xd7;

  if (b >= 0xd8 && b <= 0xdf) {
    const m = readModRM(r, addr32, segment, addressPrefix);
    if (m.memory) {
      usesMemory = true;
      const form = FPU_MEMORY[(b - 0xd8) * 8 + m.reg];
      if (!form) return invalid(bytes, offset);
      text = `${form[0]} ${form[1] ? `${form[1]} ` : ""}${m.memory}`;
    } else {
      const t = fpuRegister(b, m.reg, m.rm, 0xc0 | (m.reg << 3) | m.rm);
      if (!t) return invalid(bytes, offset);
      text = t;
    }
  } else {
    let opcode = b;
    if (b === 0x0f) opcode = 0x100 | r.u8();
    if (opcode > 0xff && TWO_BYTE[opcode & 0xff]?.mnemonic === "MMX") {
      const mmxText = mmx(opcode & 0xff, r, addr32, segment, addressPrefix);
      if (mmxText === undefined) return invalid(bytes, offset);
      return finish(mmxText.text, mmxText.memory, true);
    }
    let m: ModRM | undefined;
    const isGroup = (opcode > 0xff ? TWO_BYTE[opcode & 0xff] : ONE_BYTE[opcode])?.group !== undefined;
    let entry: Entry | undefined;
    if (isGroup) {
      const modrmByte = r.bytes[r.p];
      m = readModRM(r, addr32, segment, addressPrefix);
      entry = lookup(opcode, modrmByte);
      // Group members that need a memory operand do not exist with a register one.
      if (entry && (entry.ops[0] === "M" || entry.ops[0] === "Mp" || entry.ops[0] === "Mq") && !m.memory)
        entry = undefined;
    } else entry = lookup(opcode, undefined);
    if (rep === "rep" && opcode === 0x90) entry = e("pause");
    // With an operand-size prefix, 90 is written as the exchange it encodes.
    else if (operandPrefix && opcode === 0x90) entry = e("xchg", "eAX", "eAX");
    if (!entry) return invalid(bytes, offset);
    const needsModRM = entry.ops.some((s) => MODRM_SPECS.has(s));
    if (needsModRM && !m) m = readModRM(r, addr32, segment, addressPrefix);
    if (m && entry.ops.some((s) => s === "M" || s === "Mp" || s === "Mq") && !m.memory)
      return invalid(bytes, offset);
    if (m && entry.ops.includes("Rd") && m.memory) return invalid(bytes, offset);
    if (m && entry.ops.includes("Sw") && m.reg > 5) return invalid(bytes, offset);
    if (opcode === 0x8e && m && m.reg === 1) return invalid(bytes, offset); // mov cs, r/m

    // Does a register operand imply the memory operand's size? Then no size keyword.
    const registerSizes = entry.ops
      .filter((s) => /^(G|Z|AL|eAX|Sw|Rd|Cd|Dd)/.test(s))
      .map((s) => specSize(s, opsize));
    const operands: string[] = [];
    for (const spec of entry.ops) {
      const size = specSize(spec, opsize);
      // Whether the operand size shows in the text (else a 66 prefix is written as "o16"/"o32").
      // A segment register stored to or loaded from memory is always 16 bits.
      // SLDT, STR and SMSW store 16 bits to memory whatever the operand size.
      const storesWord = opcode === 0x100 || (opcode === 0x101 && m?.reg === 4);
      if (
        size === opsize &&
        (spec.endsWith("v") || spec === "eAX" || spec === "Ov") &&
        !(m?.memory && (entry.ops.includes("Sw") || storesWord))
      )
        usesOpsize = true;
      switch (spec) {
        case "Eb":
        case "Ew":
        case "Ed":
        case "Ev": {
          if (m!.memory) {
            usesMemory = true;
            // Near indirect CALL/JMP take the operand size without saying so (ndisasm: "call [eax]").
            // ndisasm's conventions: no keyword where a register operand or the instruction fixes
            // the size (SETcc, the 16-bit system operands, MOVZX/MOVSX into a 16-bit register).
            const extend = opcode === 0x1b6 || opcode === 0x1b7 || opcode === 0x1be || opcode === 0x1bf;
            const implied =
              registerSizes.includes(size) ||
              entry.ops.includes("Sw") ||
              storesWord ||
              (opcode === 0xff && (m!.reg === 2 || m!.reg === 4)) ||
              (opcode >= 0x190 && opcode <= 0x19f) ||
              (spec === "Ew" && !extend) ||
              (extend && opsize === 16);
            operands.push(implied ? m!.memory : `${SIZE_KEYWORD[size]} ${m!.memory}`);
          } else operands.push(register(size, m!.rm));
          break;
        }
        case "M":
          usesMemory = true;
          operands.push(m!.memory!);
          break;
        case "Mq":
          usesMemory = true;
          operands.push(`qword ${m!.memory}`);
          break;
        case "Mp":
          usesMemory = true;
          operands.push(m!.memory!);
          break;
        case "Gb":
        case "Gw":
        case "Gv":
          operands.push(register(size, m!.reg));
          break;
        case "Rd":
          operands.push(REG32[m!.rm]!);
          break;
        case "Sw":
          operands.push(SEGMENTS[m!.reg]!);
          break;
        case "Cd":
          operands.push(`cr${m!.reg}`);
          break;
        case "Dd":
          operands.push(`dr${m!.reg}`);
          break;
        case "Zb":
          operands.push(REG8[b & 7]!);
          break;
        case "Zv":
          operands.push(register(opsize, opcode & 7));
          break;
        case "Zd":
          operands.push(REG32[opcode & 7]!);
          usesOpsize = true;
          break;
        case "AL":
          operands.push("al");
          break;
        case "CL":
          operands.push("cl");
          break;
        case "DX":
          operands.push("dx");
          break;
        case "eAX":
          operands.push(register(opsize, 0));
          break;
        case "1":
          operands.push("1");
          break;
        case "ES":
        case "CS":
        case "SS":
        case "DS":
        case "FS":
        case "GS":
          operands.push(spec.toLowerCase());
          break;
        case "Ib": {
          const value = r.u8();
          // AAM/AAD with the default base 10 are written without it.
          if (!((opcode === 0xd4 || opcode === 0xd5) && value === 10)) operands.push(hex(value));
          break;
        }
        case "IbB":
          operands.push(`byte ${hex(r.u8())}`);
          break;
        case "Ibs":
          operands.push(`byte ${signedHex(r.s8())}`);
          break;
        case "Iw":
          operands.push(hex(r.u16()));
          break;
        case "Iv":
          operands.push(hex(opsize === 32 ? r.u32() : r.u16()));
          break;
        case "IvS":
          usesOpsize = true;
          operands.push(`${SIZE_KEYWORD[opsize]} ${hex(opsize === 32 ? r.u32() : r.u16())}`);
          break;
        case "Jb":
        case "Jv": {
          const rel = spec === "Jb" ? r.s8() : opsize === 32 ? r.u32() | 0 : (r.u16() << 16) >> 16;
          const target = address + (r.p - offset) + rel;
          operands.push(hex(opsize === 32 ? target : target & 0xffff));
          if (spec === "Jv") usesOpsize = true;
          break;
        }
        case "Ap": {
          const off = opsize === 32 ? r.u32() : r.u16();
          operands.push(`${hex(r.u16())}:${hex(off)}`);
          usesOpsize = true;
          break;
        }
        case "Ob":
        case "Ov":
          usesMemory = true;
          {
            const note = addressPrefix ? (addr32 ? "dword " : "word ") : "";
            operands.push(`[${note}${segment ? `${segment}:` : ""}${hex(addr32 ? r.u32() : r.u16())}]`);
          }
          break;
      }
    }
    let mnemonic = entry.m;
    if (mnemonic.includes("|")) {
      const [m16, m32] = mnemonic.split("|");
      mnemonic = opsize === 32 ? m32! : m16!;
      usesOpsize = true;
    } else if (mnemonic.endsWith("*")) {
      // pusha, popa, pushf, popf, iret: the default size has no suffix, the other one does.
      const base = mnemonic.slice(0, -1);
      mnemonic = opsize === mode ? base : `${base}${opsize === 32 ? "d" : "w"}`;
      usesOpsize = true;
    }
    if (opcode === 0xe3) mnemonic = addr32 ? "jecxz" : "jcxz";
    // LOOPcc with an address-size prefix counts in the other register: ndisasm appends it.
    if (opcode >= 0xe0 && opcode <= 0xe2 && addressPrefix) operands.push(addr32 ? "ecx" : "cx");
    // A far jump or call with a non-default operand size says so (ndisasm: "call word 0x10:0x0").
    if ((opcode === 0x9a || opcode === 0xea || opcode === 0xe8 || opcode === 0xe9) && opsize !== mode) {
      operands[0] = `${SIZE_KEYWORD[opsize]} ${operands[0]}`;
    }
    if (opcode >= 0x180 && opcode <= 0x18f && opsize !== mode)
      mnemonic = mnemonic.replace("near", SIZE_KEYWORD[opsize]!);
    // Stack operations on memory and immediates carry the operand size (push dword [eax]).
    text = operands.length > 0 ? `${mnemonic} ${operands.join(",")}` : mnemonic;
  }

  return finish(text, usesMemory, usesOpsize);

  /** Adds the prefixes that the text does not already show. */
  function finish(body: string, memory: boolean, opsizeShown: boolean): Disassembly {
    const words: string[] = [];
    if (lock) words.push("lock");
    if (rep && !body.startsWith("pause")) {
      words.push(isString && rep === "rep" && /^(cmps|scas)/.test(body) ? "repe" : rep);
    }
    if (segment && !memory) words.push(segment);
    // LOOPcc and JCXZ show the address size in their operands; others say "a16"/"a32".
    const addressShown = b === 0xe3 || (b >= 0xe0 && b <= 0xe2);
    if (addressPrefix && !memory && !addressShown) words.push(addr32 ? "a32" : "a16");
    if (operandPrefix && !opsizeShown) words.push(opsize === 32 ? "o32" : "o16");
    words.push(body);
    return { text: words.join(" "), length: r.p - offset };
  }
}

// ---- MMX ----------------------------------------------------------------------------------

/** MMX (and the Pentium III's integer SSE) instruction names by second opcode byte. */
const MMX_NAMES: Record<number, string> = {
  96: "punpcklbw",
  97: "punpcklwd",
  98: "punpckldq",
  99: "packsswb",
  100: "pcmpgtb",
  101: "pcmpgtw",
  102: "pcmpgtd",
  103: "packuswb",
  104: "punpckhbw",
  105: "punpckhwd",
  106: "punpckhdq",
  107: "packssdw",
  111: "movq",
  112: "pshufw",
  116: "pcmpeqb",
  117: "pcmpeqw",
  118: "pcmpeqd",
  127: "movq",
  209: "psrlw",
  210: "psrld",
  211: "psrlq",
  212: "paddq",
  213: "pmullw",
  215: "pmovmskb",
  216: "psubusb",
  217: "psubusw",
  218: "pminub",
  219: "pand",
  220: "paddusb",
  221: "paddusw",
  222: "pmaxub",
  223: "pandn",
  224: "pavgb",
  225: "psraw",
  226: "psrad",
  227: "pavgw",
  228: "pmulhuw",
  229: "pmulhw",
  231: "movntq",
  232: "psubsb",
  233: "psubsw",
  234: "pminsw",
  235: "por",
  236: "paddsb",
  237: "paddsw",
  238: "pmaxsw",
  239: "pxor",
  241: "psllw",
  242: "pslld",
  243: "psllq",
  244: "pmuludq",
  245: "pmaddwd",
  246: "psadbw",
  247: "maskmovq",
  248: "psubb",
  249: "psubw",
  250: "psubd",
  251: "psubq",
  252: "paddb",
  253: "paddw",
  254: "paddd",
};
/** 0F 71-73: shifts of an MMX register by an immediate, by ModRM.reg. */
const MMX_SHIFT_GROUPS: Record<number, readonly (string | undefined)[]> = {
  113: [undefined, undefined, "psrlw", undefined, "psraw", undefined, "psllw"],
  114: [undefined, undefined, "psrld", undefined, "psrad", undefined, "pslld"],
  115: [undefined, undefined, "psrlq", undefined, undefined, undefined, "psllq"],
};

/** An MMX instruction's text (second opcode byte `op`), or undefined if it is not one. */
function mmx(
  op: number,
  r: Reader,
  addr32: boolean,
  segment: string | undefined,
  addressPrefix: boolean,
): { text: string; memory: boolean } | undefined {
  const m = readModRM(r, addr32, segment, addressPrefix);
  const mmReg = `mm${m.reg}`;
  const mmRm = m.memory ?? `mm${m.rm}`;
  const group = MMX_SHIFT_GROUPS[op];
  if (group) {
    const name = group[m.reg];
    if (!name || m.memory) return undefined;
    return { text: `${name} mm${m.rm},${hex(r.u8())}`, memory: false };
  }
  switch (op) {
    case 0x6e:
      return { text: `movd ${mmReg},${m.memory ? `dword ${m.memory}` : REG32[m.rm]}`, memory: !!m.memory };
    case 0x7e:
      return { text: `movd ${m.memory ? `dword ${m.memory}` : REG32[m.rm]},${mmReg}`, memory: !!m.memory };
    case 0x7f:
      return { text: `movq ${mmRm},${mmReg}`, memory: !!m.memory };
    case 0x70:
      return { text: `pshufw ${mmReg},${mmRm},${hex(r.u8())}`, memory: !!m.memory };
    case 0xd7:
      return m.memory ? undefined : { text: `pmovmskb ${REG32[m.reg]},mm${m.rm}`, memory: false };
    case 0xe7:
      return m.memory ? { text: `movntq ${m.memory},${mmReg}`, memory: true } : undefined;
    case 0xf7:
      return m.memory ? undefined : { text: `maskmovq ${mmReg},mm${m.rm}`, memory: false };
  }
  const name = MMX_NAMES[op];
  return name ? { text: `${name} ${mmReg},${mmRm}`, memory: !!m.memory } : undefined;
}

function register(size: number, index: number): string {
  return (size === 8 ? REG8 : size === 16 ? REG16 : REG32)[index]!;
}

function invalid(bytes: Uint8Array, offset: number): Disassembly {
  return { text: `db ${hex(bytes[offset]!)}`, length: 1 };
}
