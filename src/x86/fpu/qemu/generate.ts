// Builds the x87 cross-check table: a list of cases (control word, up to two pushed operands, a memory
// slot, one instruction) is compiled into a multiboot kernel that runs each case under QEMU and dumps
// the status word, ST(0), ST(1), the memory slot and EFLAGS to the debug console. The results become
// testdata/qemu-x87.tsv, which qemu-crosscheck.test.ts replays against the Fpu.
//
// Run: node_modules/.bin/node src/x86/fpu/qemu/generate.ts   (needs nasm, ld and qemu-system-i386)

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeTable } from "./table.ts";

export interface Case {
  /** What the case exercises (for failure messages). */
  name: string;
  cw: number;
  /** Values pushed before the instruction: 'sexp:significand' hex, first pushed first (ends up ST(1)). */
  push: string[];
  /** Ten bytes of the memory slot before the instruction, hex. */
  mem: string;
  /** Escape byte and ModRM; memory forms use mod=00 rm=101 (disp32 = the slot). */
  op: [number, number];
  /** EFLAGS arithmetic bits before the instruction (FCMOVcc). */
  eflags: number;
}

export interface Expected {
  status: number;
  st0: string;
  st1: string;
  mem: string;
  eflags: number;
}

const OUT_BYTES = 36;

// ---- values ----

const V = {
  pz: "0000:0000000000000000",
  nz: "8000:0000000000000000",
  one: "3fff:8000000000000000",
  mone: "bfff:8000000000000000",
  oneHalf: "3fff:c000000000000000",
  m2p5: "c000:a000000000000000",
  three: "4000:c000000000000000",
  third: "3ffd:aaaaaaaaaaaaaaab",
  pi: "4000:c90fdaa22168c235",
  big: "403e:ffffffffffffffff",
  two63: "403e:8000000000000000",
  huge: "7ffe:ffffffffffffffff",
  minNormal: "0001:8000000000000000",
  denormal: "0000:0000000000000001",
  denormal2: "8000:4000000000000000",
  pseudoDenormal: "0000:8000000000000001",
  pinf: "7fff:8000000000000000",
  minf: "ffff:8000000000000000",
  qnan: "7fff:c000000000000001",
  snan: "7fff:8000000000000001",
  indefinite: "ffff:c000000000000000",
  unnormal: "4000:4000000000000000",
  pseudoInf: "7fff:0000000000000000",
  halfPlus: "3ffe:8000000000000001",
  oneMinus: "3ffe:ffffffffffffffff",
  tinyNeg: "8c00:aaaaaaaaaaaaaaaa",
  large: "7400:d1b71758e219652c",
  quarter: "3ffd:8000000000000000",
  m0p7: "bffe:b333333333333333",
  twoPow20: "4013:8000000000000000",
};

const specialSet = [
  V.pz,
  V.nz,
  V.one,
  V.mone,
  V.m2p5,
  V.third,
  V.pi,
  V.big,
  V.huge,
  V.minNormal,
  V.denormal,
  V.pseudoDenormal,
  V.pinf,
  V.minf,
  V.qnan,
  V.snan,
  V.unnormal,
  V.halfPlus,
  V.tinyNeg,
];

const unarySet = [
  ...specialSet,
  V.oneHalf,
  V.three,
  V.quarter,
  V.m0p7,
  V.oneMinus,
  V.large,
  V.two63,
  V.twoPow20,
];

// Deterministic generator (xorshift) so the table is reproducible.
let seed = 0x12345678;
function random32(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed;
}

function randomValue(expLo: number, expHi: number): string {
  const sign = random32() & 1;
  const exp = expLo + (random32() % (expHi - expLo + 1));
  const hi = (random32() | 0x80000000) >>> 0;
  const lo = random32();
  return `${((sign << 15) | exp).toString(16).padStart(4, "0")}:${hi.toString(16).padStart(8, "0")}${lo.toString(16).padStart(8, "0")}`;
}

const NO_MEM = "00000000000000000000";
const CW_MASKED = 0x037f;

function cwWith(rc: number, pc: number): number {
  return (CW_MASKED & ~0x0f00) | (rc << 10) | (pc << 8);
}

function le(bytes: number, value: bigint): string {
  let s = "";
  for (let i = 0; i < bytes; i++)
    s += Number((value >> BigInt(8 * i)) & 0xffn)
      .toString(16)
      .padStart(2, "0");
  return s.padEnd(20, "0");
}

export function buildCases(): Case[] {
  const cases: Case[] = [];
  const add = (name: string, cw: number, push: string[], op: [number, number], mem = NO_MEM, eflags = 0) =>
    cases.push({ name, cw, push, mem, op, eflags });

  const binary: [string, number][] = [
    ["fadd", 0xc1],
    ["fmul", 0xc9],
    ["fsub", 0xe1],
    ["fsubr", 0xe9],
    ["fdiv", 0xf1],
    ["fdivr", 0xf9],
  ];
  for (const [name, modrm] of binary)
    for (const a of specialSet)
      for (const b of specialSet) add(`${name} st0=${b} st1=${a}`, CW_MASKED, [a, b], [0xd8, modrm]);

  // Rounding: random operands under every rounding and precision control.
  for (let n = 0; n < 480; n++) {
    const [name, modrm] = binary[n % 6];
    const rc = (n >> 3) & 3;
    const pc = [0, 2, 3][n % 3];
    const near = n % 5 === 0;
    const a = near ? randomValue(16380, 16386) : randomValue(16300, 16460);
    const b = near ? randomValue(16380, 16386) : randomValue(16300, 16460);
    add(`${name} rc=${rc} pc=${pc} ${a} ${b}`, cwWith(rc, pc), [a, b], [0xd8, modrm]);
  }
  // Results near the bottom of the exponent range: denormals, underflow, tininess.
  for (let n = 0; n < 96; n++) {
    const [name, modrm] = binary[[0, 1, 2, 4][n % 4]];
    const rc = (n >> 2) & 3;
    const pc = [0, 2, 3][n % 3];
    const a = randomValue(1, 40);
    const b = modrm === 0xc9 || modrm === 0xf1 ? randomValue(16340, 16420) : randomValue(0, 40);
    add(`${name} tiny rc=${rc} pc=${pc} ${a} ${b}`, cwWith(rc, pc), [a, b], [0xd8, modrm]);
  }
  // Tininess after rounding: results just below the smallest normal that round up to it.
  for (let rc = 0; rc < 4; rc++) {
    add(`tininess rc=${rc}`, cwWith(rc, 3), ["0001:ffffffffffffffff", "3ffe:8000000000000001"], [0xd8, 0xc9]);
    add(`tininess rc=${rc}`, cwWith(rc, 3), ["8001:ffffffffffffffff", "3ffe:8000000000000001"], [0xd8, 0xc9]);
    add(
      `tininess pc=24 rc=${rc}`,
      cwWith(rc, 0),
      ["0001:8000000000000000", "3ffe:ffffffc000000000"],
      [0xd8, 0xc9],
    );
    add(
      `tininess pc=64 rc=${rc}`,
      cwWith(rc, 3),
      ["0001:ffffffffffffffff", "3ffe:8000000000000000"],
      [0xd8, 0xc9],
    );
    add(`fst m32 tininess rc=${rc}`, cwWith(rc, 3), ["3f80:ffffff8000000000"], [0xd9, 0x15]);
    add(`fst m64 tininess rc=${rc}`, cwWith(rc, 3), ["3c00:fffffffffffffc00"], [0xdd, 0x15]);
  }
  // Overflow under each rounding mode.
  for (let rc = 0; rc < 4; rc++)
    for (const [a, b] of [
      [V.huge, V.huge],
      [V.huge, "fffe:ffffffffffffffff"],
    ])
      for (const modrm of [0xc1, 0xc9]) add(`overflow rc=${rc}`, cwWith(rc, 3), [a, b], [0xd8, modrm]);

  const unary: [string, number][] = [
    ["fchs", 0xe0],
    ["fabs", 0xe1],
    ["ftst", 0xe4],
    ["fxam", 0xe5],
    ["fsqrt", 0xfa],
    ["frndint", 0xfc],
    ["fxtract", 0xf4],
    ["f2xm1", 0xf0],
  ];
  for (const [name, modrm] of unary)
    for (const v of unarySet) add(`${name} ${v}`, CW_MASKED, [v], [0xd9, modrm]);
  for (let rc = 0; rc < 4; rc++) {
    for (const v of [
      V.oneHalf,
      V.m2p5,
      V.halfPlus,
      V.third,
      "4001:9000000000000000",
      "c001:b000000000000000",
    ])
      add(`frndint rc=${rc} ${v}`, cwWith(rc, 3), [v], [0xd9, 0xfc]);
    for (let n = 0; n < 8; n++) {
      const v = randomValue(16370, 16400);
      add(`fsqrt rc=${rc} ${v}`, cwWith(rc, [0, 2, 3][n % 3]), [v], [0xd9, 0xfa]);
    }
    for (let k = 0; k < 7; k++) add(`constant ${k} rc=${rc}`, cwWith(rc, 3), [], [0xd9, 0xe8 + k]);
  }
  // FXAM and FTST on an empty register; stack overflow.
  add("fxam empty", CW_MASKED, [], [0xd9, 0xe5]);
  add("fadd empty", CW_MASKED, [V.one], [0xd8, 0xc1]);

  const binaryOther: [string, number, number][] = [
    ["fscale", 0xd9, 0xfd],
    ["fprem", 0xd9, 0xf8],
    ["fprem1", 0xd9, 0xf5],
    ["fyl2x", 0xd9, 0xf1],
    ["fyl2xp1", 0xd9, 0xf9],
    ["fpatan", 0xd9, 0xf3],
    ["fcom", 0xd8, 0xd1],
    ["fucom", 0xdd, 0xe1],
    ["fcomi", 0xdb, 0xf1],
    ["fucomi", 0xdb, 0xe9],
    ["fcompp", 0xde, 0xd9],
    ["fxch", 0xd9, 0xc9],
  ];
  const otherSet = [
    V.pz,
    V.nz,
    V.one,
    V.m2p5,
    V.third,
    V.pi,
    V.big,
    V.denormal,
    V.pinf,
    V.minf,
    V.qnan,
    V.snan,
    V.unnormal,
    V.twoPow20,
    V.quarter,
    V.oneMinus,
  ];
  for (const [name, esc, modrm] of binaryOther)
    for (const a of otherSet)
      for (const b of otherSet) add(`${name} st0=${b} st1=${a}`, CW_MASKED, [a, b], [esc, modrm]);
  for (let n = 0; n < 60; n++) {
    const a = randomValue(16383, 16383 + 120);
    const b = randomValue(16383 - 20, 16383 + 20);
    add(`fprem random ${b} ${a}`, CW_MASKED, [a, b], [0xd9, n % 2 ? 0xf8 : 0xf5]);
  }

  // Stores to memory under each rounding mode.
  const stores: [string, number, number][] = [
    ["fst m32", 0xd9, 0x15],
    ["fst m64", 0xdd, 0x15],
    ["fist m16", 0xdf, 0x15],
    ["fist m32", 0xdb, 0x15],
    ["fistp m64", 0xdf, 0x3d],
    ["fbstp", 0xdf, 0x35],
    ["fstp m80", 0xdb, 0x3d],
  ];
  const storeSet = [
    ...unarySet,
    "401d:8000000000000000",
    "401d:fffffffe00000000",
    "c01d:8000000000000000",
    "400e:fffe000000000000",
    "c00e:8000000000000000",
    "4039:de0b6b3a763fffff",
    "403a:de0b6b3a76400000",
    "3f80:8000000000000000",
    "3c01:ffffffffffffffff",
    "43fe:fffffffffffff800",
    "43fe:fffffffffffffc00",
    "3f6a:8000000000000000",
    "3f69:ffffffffffffffff",
  ];
  for (const [name, esc, modrm] of stores)
    for (let rc = 0; rc < 4; rc++)
      for (const v of storeSet) {
        if (rc > 0 && (v === V.qnan || v === V.snan || v === V.pinf || v === V.minf)) continue;
        add(`${name} rc=${rc} ${v}`, cwWith(rc, 3), [v], [esc, modrm]);
      }

  // Loads from memory.
  const f32s = [
    0x00000000, 0x80000000, 0x3f800000, 0x00000001, 0x807fffff, 0x7f800000, 0x7fc00000, 0x7f800001,
    0xff812345, 0x7f7fffff,
  ];
  for (const bits of f32s)
    add(`fld m32 ${bits.toString(16)}`, CW_MASKED, [], [0xd9, 0x05], le(4, BigInt(bits)));
  const f64s = [
    0n,
    0x8000000000000000n,
    0x3ff0000000000000n,
    1n,
    0x800fffffffffffffn,
    0x7ff0000000000000n,
    0x7ff0000000000001n,
    0x7ff8000000000123n,
    0x7fefffffffffffffn,
  ];
  for (const bits of f64s) add(`fld m64 ${bits.toString(16)}`, CW_MASKED, [], [0xdd, 0x05], le(8, bits));
  const ints = [0n, 1n, -1n, 32767n, -32768n, 0x7fffffffn, -0x80000000n];
  for (const v of ints) {
    add(`fild m16 ${v}`, CW_MASKED, [], [0xdf, 0x05], le(2, BigInt.asUintN(16, v)));
    add(`fild m32 ${v}`, CW_MASKED, [], [0xdb, 0x05], le(4, BigInt.asUintN(32, v)));
  }
  for (const v of [0n, -1n, 0x7fffffffffffffffn, -0x8000000000000000n, 123456789012345678n])
    add(`fild m64 ${v}`, CW_MASKED, [], [0xdf, 0x2d], le(8, BigInt.asUintN(64, v)));
  for (const bcd of [
    "99999999999999999900",
    "00000000000000000080",
    "12345678900000000000",
    "0a000000000000000000",
    "ffffffffffffffffffff",
  ])
    add(`fbld ${bcd}`, CW_MASKED, [], [0xdf, 0x25], bcd);
  // Memory-operand arithmetic.
  for (const bits of [0x3f800000, 0x00000001, 0x7f800001, 0xff800000])
    for (const modrm of [0x05, 0x0d, 0x15, 0x25, 0x35, 0x3d])
      add(
        `d8 m32 ${modrm.toString(16)} ${bits.toString(16)}`,
        CW_MASKED,
        [V.third],
        [0xd8, modrm],
        le(4, BigInt(bits)),
      );
  for (const v of [3n, -7n, 0n])
    for (const modrm of [0x05, 0x0d, 0x15, 0x25, 0x35, 0x3d]) {
      add(
        `da m32int ${modrm.toString(16)} ${v}`,
        CW_MASKED,
        [V.pi],
        [0xda, modrm],
        le(4, BigInt.asUintN(32, v)),
      );
      add(
        `de m16int ${modrm.toString(16)} ${v}`,
        CW_MASKED,
        [V.pi],
        [0xde, modrm],
        le(2, BigInt.asUintN(16, v)),
      );
    }
  // FCMOVcc under every flag combination.
  for (const eflags of [0, 1, 4, 0x40, 0x45])
    for (let m = 0; m < 4; m++) {
      add(`fcmov ${m} flags=${eflags}`, CW_MASKED, [V.one, V.pi], [0xda, 0xc1 + m * 8], NO_MEM, eflags);
      add(`fcmovn ${m} flags=${eflags}`, CW_MASKED, [V.one, V.pi], [0xdb, 0xc1 + m * 8], NO_MEM, eflags);
    }
  // Transcendentals on a grid (QEMU evaluates FSIN/FCOS/FPTAN/FSINCOS in host double precision).
  // (pi and 2^63 are left to the unit tests: QEMU's double-precision evaluation and its range check
  // differ from the hardware there.)
  const trig = [
    V.third,
    V.one,
    V.m0p7,
    V.quarter,
    V.twoPow20,
    V.big,
    "3fbf:8000000000000000",
    "4001:8000000000000000",
  ];
  for (const modrm of [0xfe, 0xff, 0xf2, 0xfb])
    for (const v of trig) add(`trig ${modrm.toString(16)} ${v}`, CW_MASKED, [v], [0xd9, modrm]);
  return cases;
}

// ---- kernel ----

function asmBytes(hex: string): string {
  const out: string[] = [];
  for (let i = 0; i < hex.length; i += 2) out.push(`0x${hex.slice(i, i + 2)}`);
  return out.join(",");
}

function f80Bytes(v: string): string {
  const [se, sig] = v.split(":");
  const sigLe = le(8, BigInt(`0x${sig}`)).slice(0, 16);
  const seLe = le(2, BigInt(`0x${se}`)).slice(0, 4);
  return asmBytes(sigLe + seLe);
}

function kernelSource(cases: Case[]): string {
  const text: string[] = [];
  const data: string[] = [];
  cases.forEach((c, i) => {
    data.push(`cw${i}: dw 0x${c.cw.toString(16)}`);
    data.push(`mem${i}: db ${asmBytes(c.mem)}`);
    c.push.forEach((v, k) => {
      data.push(`v${i}_${k}: db ${f80Bytes(v)}`);
    });
    text.push(
      `  fninit`,
      `  fldcw [cw${i}]`,
      `  mov esi, mem${i}`,
      `  mov edi, slot`,
      `  mov ecx, 10`,
      `  rep movsb`,
      ...c.push.map((_, k) => `  fld tword [v${i}_${k}]`),
      `  push dword 0x${(c.eflags | 2).toString(16)}`,
      `  popfd`,
      c.op[1] < 0xc0
        ? `  db 0x${c.op[0].toString(16)}, 0x${c.op[1].toString(16)}\n  dd slot`
        : `  db 0x${c.op[0].toString(16)}, 0x${c.op[1].toString(16)}`,
      `  pushfd`,
      `  pop ebx`,
      `  fnstsw ax`,
      `  mov [out], ax`,
      `  fstp tword [out+2]`,
      `  fstp tword [out+12]`,
      `  mov esi, slot`,
      `  mov edi, out+22`,
      `  mov ecx, 10`,
      `  rep movsb`,
      `  mov [out+32], ebx`,
      `  call emit`,
    );
  });
  return `bits 32
section .text
global _start
  dd 0x1badb002, 0, -0x1badb002
_start:
  cli
  mov esp, stack_top
  cld
${text.join("\n")}
  mov al, 0
  out 0xf4, al
  hlt
emit:
  mov esi, out
  mov ecx, ${OUT_BYTES}
  mov dx, 0xe9
  rep outsb
  ret
section .data
${data.join("\n")}
section .bss
slot: resb 16
out: resb 64
resb 8192
stack_top:
`;
}

function hexOf(bytes: Uint8Array, from: number, to: number): string {
  let s = "";
  for (let i = from; i < to; i++) s += bytes[i].toString(16).padStart(2, "0");
  return s;
}

function f80Text(bytes: Uint8Array, at: number): string {
  let sig = 0n;
  for (let i = 7; i >= 0; i--) sig = (sig << 8n) | BigInt(bytes[at + i]);
  const se = bytes[at + 8] | (bytes[at + 9] << 8);
  return `${se.toString(16).padStart(4, "0")}:${sig.toString(16).padStart(16, "0")}`;
}

/** Assembles `asm` into a multiboot kernel, runs it under QEMU and returns what it wrote to port E9. */
function runKernel(asm: string, dir: string): Buffer {
  writeFileSync(join(dir, "k.asm"), asm);
  execFileSync("nasm", ["-f", "elf32", "-o", join(dir, "k.o"), join(dir, "k.asm")]);
  execFileSync("ld", [
    "-m",
    "elf_i386",
    "-Ttext=0x100000",
    "-e",
    "_start",
    "-o",
    join(dir, "k.elf"),
    join(dir, "k.o"),
  ]);
  const out = join(dir, "out.bin");
  writeFileSync(out, "");
  try {
    execFileSync(
      "qemu-system-i386",
      [
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-debugcon",
        `file:${out}`,
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-kernel",
        join(dir, "k.elf"),
      ],
      { timeout: 120_000 },
    );
  } catch {
    // isa-debug-exit makes QEMU exit with a non-zero status by design.
  }
  return readFileSync(out);
}

// ---- MMX ----

export interface MmxCase {
  name: string;
  opcode: number;
  /** Immediate of 0F 71/72/73 (with `reg` selecting the shift), or -1 for mm0 op mm1. */
  imm: number;
  reg: number;
  a: bigint;
  b: bigint;
}

const MMX_BINARY: [string, number][] = [
  ["punpcklbw", 0x60],
  ["punpcklwd", 0x61],
  ["punpckldq", 0x62],
  ["packsswb", 0x63],
  ["pcmpgtb", 0x64],
  ["pcmpgtw", 0x65],
  ["pcmpgtd", 0x66],
  ["packuswb", 0x67],
  ["punpckhbw", 0x68],
  ["punpckhwd", 0x69],
  ["punpckhdq", 0x6a],
  ["packssdw", 0x6b],
  ["pcmpeqb", 0x74],
  ["pcmpeqw", 0x75],
  ["pcmpeqd", 0x76],
  ["psrlw", 0xd1],
  ["psrld", 0xd2],
  ["psrlq", 0xd3],
  ["pmullw", 0xd5],
  ["psubusb", 0xd8],
  ["psubusw", 0xd9],
  ["pand", 0xdb],
  ["paddusb", 0xdc],
  ["paddusw", 0xdd],
  ["pandn", 0xdf],
  ["psraw", 0xe1],
  ["psrad", 0xe2],
  ["pmulhw", 0xe5],
  ["psubsb", 0xe8],
  ["psubsw", 0xe9],
  ["por", 0xeb],
  ["paddsb", 0xec],
  ["paddsw", 0xed],
  ["pxor", 0xef],
  ["psllw", 0xf1],
  ["pslld", 0xf2],
  ["psllq", 0xf3],
  ["pmaddwd", 0xf5],
  ["psubb", 0xf8],
  ["psubw", 0xf9],
  ["psubd", 0xfa],
  ["paddb", 0xfc],
  ["paddw", 0xfd],
  ["paddd", 0xfe],
];

function random64(): bigint {
  const shape = random32() % 5;
  if (shape === 0) return BigInt(random32() % 80); // small: shift counts
  if (shape === 1) return 0x8000_8000_8000_8000n ^ BigInt(random32() & 0x00ff00ff);
  if (shape === 2) return 0x7fff_7fff_7f7f_7f7fn - BigInt(random32() & 0x0303);
  return (BigInt(random32()) << 32n) | BigInt(random32());
}

export function buildMmxCases(): MmxCase[] {
  const cases: MmxCase[] = [];
  for (const [name, opcode] of MMX_BINARY)
    for (let n = 0; n < 24; n++) cases.push({ name, opcode, imm: -1, reg: 0, a: random64(), b: random64() });
  for (const opcode of [0x71, 0x72, 0x73])
    for (const reg of [2, 4, 6]) {
      if (opcode === 0x73 && reg === 4) continue;
      for (const imm of [0, 1, 7, 15, 16, 31, 32, 33, 63, 64, 200])
        cases.push({ name: `shift ${opcode.toString(16)}/${reg}`, opcode, imm, reg, a: random64(), b: 0n });
    }
  return cases;
}

function qword(v: bigint): string {
  return `0x${v.toString(16)}`;
}

export function mmxKernelSource(cases: MmxCase[]): string {
  const text: string[] = [];
  const data: string[] = [];
  cases.forEach((c, i) => {
    // (labels avoid nasm's a16/a32 prefix keywords)
    data.push(`mmxa_${i}: dq ${qword(c.a)}`, `mmxb_${i}: dq ${qword(c.b)}`);
    text.push(`  movq mm0, [mmxa_${i}]`, `  movq mm1, [mmxb_${i}]`);
    if (c.imm < 0) text.push(`  db 0x0f, 0x${c.opcode.toString(16)}, 0xc1`);
    else
      text.push(`  db 0x0f, 0x${c.opcode.toString(16)}, 0x${(0xc0 | (c.reg << 3)).toString(16)}, ${c.imm}`);
    text.push(`  movq [out], mm0`, `  emms`, `  call emit8`);
  });
  return `bits 32
section .text
global _start
  dd 0x1badb002, 0, -0x1badb002
_start:
  cli
  mov esp, stack_top
  cld
  mov eax, cr0
  and eax, ~0x0c        ; clear EM and TS
  mov cr0, eax
${text.join("\n")}
  mov al, 0
  out 0xf4, al
  hlt
emit8:
  mov esi, out
  mov ecx, 8
  mov dx, 0xe9
  rep outsb
  ret
section .data
align 8
${data.join("\n")}
section .bss
out: resb 16
resb 8192
stack_top:
`;
}

export function writeMmxTable(cases: MmxCase[], results: bigint[]): string {
  return cases
    .map((c, i) =>
      [
        c.name,
        c.opcode.toString(16),
        c.imm,
        c.reg,
        c.a.toString(16),
        c.b.toString(16),
        results[i].toString(16),
      ].join("\t"),
    )
    .join("\n");
}

function main(): void {
  const cases = buildCases();
  const dir = mkdtempSync(join(tmpdir(), "x87-"));
  try {
    const bytes = runKernel(kernelSource(cases), dir);
    if (bytes.length !== cases.length * OUT_BYTES)
      throw new Error(`expected ${cases.length * OUT_BYTES} bytes from QEMU, got ${bytes.length}`);
    const expected: Expected[] = cases.map((_, i) => {
      const at = i * OUT_BYTES;
      return {
        status: bytes[at] | (bytes[at + 1] << 8),
        st0: f80Text(bytes, at + 2),
        st1: f80Text(bytes, at + 12),
        mem: hexOf(bytes, at + 22, at + 32),
        eflags: (bytes[at + 32] | (bytes[at + 33] << 8)) & 0x8d5,
      };
    });
    const version = execFileSync("qemu-system-i386", ["--version"]).toString().split("\n")[0];
    // Names keep the instruction and modes; the operands are in their own columns.
    const rows = cases.map((c, i) => ({
      ...c,
      name: c.name
        .split(" ")
        .filter((t) => !t.includes(":"))
        .join(" "),
      expected: expected[i],
    }));
    const file = new URL("../testdata/qemu-x87.tsv", import.meta.url);
    writeFileSync(file, `# generated by src/x86/fpu/qemu/generate.ts with ${version}\n${writeTable(rows)}`);
    console.log(`${cases.length} cases written to ${file.pathname}`);

    const mmxCases = buildMmxCases();
    const mmxBytes = runKernel(mmxKernelSource(mmxCases), dir);
    if (mmxBytes.length !== mmxCases.length * 8)
      throw new Error(`expected ${mmxCases.length * 8} MMX bytes from QEMU, got ${mmxBytes.length}`);
    const results = mmxCases.map((_, i) => mmxBytes.readBigUInt64LE(i * 8));
    const mmxFile = new URL("../testdata/qemu-mmx.tsv", import.meta.url);
    writeFileSync(
      mmxFile,
      `# generated by src/x86/fpu/qemu/generate.ts with ${version}\n${writeMmxTable(mmxCases, results)}\n`,
    );
    console.log(`${mmxCases.length} MMX cases written to ${mmxFile.pathname}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) main();
