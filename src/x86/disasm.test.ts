import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { decodeInstruction, Insn } from "./decoder.ts";
import { disassemble } from "./disasm.ts";
import { ONE_BYTE, TWO_BYTE } from "./opcodes.ts";

const d32 = (...bytes: number[]): string => disassemble(new Uint8Array(bytes), 0, 32).text;
const d16 = (...bytes: number[]): string => disassemble(new Uint8Array(bytes), 0, 16).text;

describe("disassembler", () => {
  test("ModRM and SIB addressing in both address sizes", () => {
    assert.equal(d32(0x8b, 0x44, 0x8b, 0x10), "mov eax,[ebx+ecx*4+0x10]");
    assert.equal(d32(0x8b, 0x45, 0xfc), "mov eax,[ebp-0x4]");
    assert.equal(d32(0x8b, 0x04, 0x24), "mov eax,[esp]");
    assert.equal(d32(0x8b, 0x05, 0x34, 0x12, 0, 0), "mov eax,[dword 0x1234]");
    assert.equal(d32(0xa1, 0x34, 0x12, 0, 0), "mov eax,[0x1234]");
    assert.equal(d32(0x8b, 0x04, 0x25, 0x10, 0, 0, 0), "mov eax,[0x10]");
    assert.equal(d32(0x8b, 0x04, 0x8d, 0, 0, 0, 0), "mov eax,[ecx*4+0x0]");
    assert.equal(d16(0x8b, 0x40, 0x05), "mov ax,[bx+si+0x5]");
    assert.equal(d16(0x8b, 0x06, 0x34, 0x12), "mov ax,[0x1234]");
    assert.equal(d16(0x67, 0x8b, 0x03), "mov ax,[ebx]");
    assert.equal(d32(0x26, 0x8b, 0x03), "mov eax,[es:ebx]");
  });

  test("size keywords appear only where no register gives the size", () => {
    assert.equal(d32(0x83, 0x00, 0x01), "add dword [eax],byte +0x1");
    assert.equal(d32(0x01, 0x00), "add [eax],eax");
    assert.equal(d32(0xc6, 0x00, 0x01), "mov byte [eax],0x1");
    assert.equal(d32(0x0f, 0xb6, 0x00), "movzx eax,byte [eax]");
    assert.equal(d32(0xff, 0x30), "push dword [eax]");
    assert.equal(d32(0xff, 0x10), "call [eax]");
    assert.equal(d32(0xff, 0x18), "call far [eax]");
  });

  test("relative targets use the instruction address", () => {
    const code = new Uint8Array([0x90, 0x74, 0x10]);
    assert.deepEqual(disassemble(code, 1, 32, 0x1000), { text: "jz 0x1012", length: 2 });
    assert.equal(d16(0xe8, 0xfd, 0xff), "call 0x0");
    assert.equal(d32(0x0f, 0x84, 0, 1, 0, 0), "jz near 0x106");
  });

  test("operand-size variants, prefixes and string instructions", () => {
    assert.equal(d32(0x66, 0x60), "pushaw");
    assert.equal(d16(0x66, 0x60), "pushad");
    assert.equal(d32(0x98), "cwde");
    assert.equal(d16(0x98), "cbw");
    assert.equal(d32(0xf3, 0xa5), "rep movsd");
    assert.equal(d32(0xf3, 0xa6), "repe cmpsb");
    assert.equal(d32(0xf2, 0xae), "repne scasb");
    assert.equal(d32(0x67, 0xf3, 0xa4), "rep a16 movsb");
    assert.equal(d32(0xf0, 0x01, 0x00), "lock add [eax],eax");
    assert.equal(d32(0x66, 0x6a, 0xff), "o16 push byte -0x1");
    assert.equal(d32(0xf3, 0x90), "pause");
  });

  test("system and x87 instructions", () => {
    assert.equal(d32(0x0f, 0x22, 0xd8), "mov cr3,eax");
    assert.equal(d32(0x0f, 0x01, 0x10), "lgdt [eax]");
    assert.equal(d32(0x0f, 0xc7, 0x08), "cmpxchg8b qword [eax]");
    assert.equal(d32(0xd9, 0x00), "fld dword [eax]");
    assert.equal(d32(0xdd, 0x18), "fstp qword [eax]");
    assert.equal(d32(0xd8, 0xc1), "fadd st1");
    assert.equal(d32(0xdc, 0xc1), "fadd to st1");
    assert.equal(d32(0xdf, 0xe0), "fnstsw ax");
    assert.equal(d32(0xd9, 0xe8), "fld1");
  });

  test("bytes that are no instruction, and truncated input, become db", () => {
    assert.deepEqual(disassemble(new Uint8Array([0x0f, 0xff]), 0, 32), { text: "db 0xf", length: 1 });
    assert.deepEqual(disassemble(new Uint8Array([0x8b]), 0, 32), { text: "db 0x8b", length: 1 });
    assert.deepEqual(disassemble(new Uint8Array([0xe9, 0x00]), 0, 32), { text: "db 0xe9", length: 1 });
    assert.deepEqual(disassemble(new Uint8Array([0x8d, 0xc0]), 0, 32), { text: "db 0x8d", length: 1 }); // lea reg, reg
    const prefixes = new Uint8Array(20).fill(0x66);
    assert.equal(disassemble(prefixes, 0, 32).length, 1);
  });
});

describe("disassembler and the CPU's opcode table", () => {
  test("every opcode the table defines is disassembled", () => {
    const missing: string[] = [];
    for (const [table, prefix] of [
      [ONE_BYTE, []],
      [TWO_BYTE, [0x0f]],
    ] as const) {
      table.forEach((entry, op) => {
        if (!entry) return;
        const members = entry.group ? entry.group.map((m, reg) => [m, reg] as const) : [[entry, 0] as const];
        for (const [member, reg] of members) {
          if (!member) continue;
          // 0F E6 and 0F F0 are instructions only with an SSE prefix; the MMX unit refuses them.
          if (member.mnemonic === "MMX" && (op === 0xe6 || op === 0xf0)) continue;
          // Some forms exist only with a memory operand, some only with a register one; the MMX
          // shift groups (0F 71-73) only with some ModRM.reg values.
          const regs = member.mnemonic === "MMX" ? [0, 1, 2, 3, 4, 5, 6, 7] : [reg];
          const forms = regs
            .flatMap((g) => [g << 3, 0xc0 | (g << 3)])
            .map((modrm) =>
              disassemble(new Uint8Array([...prefix, op, modrm, 0, 0, 0, 0, 0, 0, 0, 0]), 0, 32),
            );
          if (forms.every((d) => d.text.startsWith("db")))
            missing.push(
              `${member.mnemonic} ${member.operands.join(",")} (${[...prefix, op].map((b) => b.toString(16)).join(" ")} /${reg})`,
            );
        }
      });
    }
    assert.deepEqual(missing, []);
  });

  test("instruction lengths agree with the CPU's decoder", () => {
    const next = generator(4242);
    const insn = new Insn();
    const problems: string[] = [];
    for (let k = 0; k < 20000; k++) {
      const bytes = new Uint8Array(16).map(() => next() & 0xff);
      const mode = k % 2 ? 32 : 16;
      const decoded = decodeInstruction(insn, bytes, bytes.length, mode === 32);
      const d = disassemble(bytes, 0, mode);
      if (decoded < 0 || d.text.startsWith("db")) continue;
      if (bytes[0]! >= 0xd8 && bytes[0]! <= 0xdf) continue;
      if (decoded !== d.length)
        problems.push(
          `${mode}-bit ${[...bytes.subarray(0, decoded)].map((b) => b.toString(16)).join(" ")}: decoder ${decoded}, "${d.text}" ${d.length}`,
        );
    }
    assert.deepEqual(problems.slice(0, 20), []);
  });
});

// ---- agreement with ndisasm on generated instruction streams ------------------------------

function haveNdisasm(): boolean {
  try {
    execFileSync("ndisasm", ["-h"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Seeded xorshift32. */
function generator(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

const SLOT = 16;
const PREFIXES = [0x66, 0x67, 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0xf0, 0xf2, 0xf3];

/**
 * Candidate encodings: every opcode with random ModRM/SIB/displacement/immediate bytes and, now
 * and then, an operand-size, address-size or segment prefix. Known ndisasm quirks are avoided
 * (listed in `quirk`).
 */
function candidates(seed: number, count: number): Uint8Array[] {
  const next = generator(seed);
  const out: Uint8Array[] = [];
  const openings: number[][] = [];
  for (let b = 0; b < 256; b++) if (!PREFIXES.includes(b) && b !== 0x0f) openings.push([b]);
  for (let b = 0; b < 256; b++) openings.push([0x0f, b]);
  while (out.length < count) {
    const opening = openings[next() % openings.length]!;
    const bytes: number[] = [];
    const roll = next() % 8;
    if (roll === 0) bytes.push(0x66);
    else if (roll === 1) bytes.push(0x67);
    else if (roll === 2) bytes.push([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65][next() % 6]!);
    bytes.push(...opening);
    while (bytes.length < SLOT) bytes.push(next() & 0xff);
    out.push(new Uint8Array(bytes));
  }
  return out;
}

/** Encodings where ndisasm's output is a matter of its own taste rather than the instruction. */
function quirk(bytes: Uint8Array, length: number, mode: 16 | 32): boolean {
  let i = 0;
  while (PREFIXES.includes(bytes[i]!)) i++;
  const op = bytes[i] === 0x0f ? 0x100 | bytes[i + 1]! : bytes[i]!;
  const prefixes = [...bytes.subarray(0, i)];
  // ndisasm treats WAIT as a prefix of the next instruction.
  if (op === 0x9b) return true;
  // With 66, ndisasm splits MOVZX/MOVSX into "o16" and the instruction.
  if (prefixes.includes(0x66) && [0x1b6, 0x1b7, 0x1be, 0x1bf].includes(op)) return true;
  // A segment prefix on an instruction without a memory operand, or 66/67 where they change nothing.
  const modrmIsRegister = (bytes[i + (op > 0xff ? 2 : 1)]! & 0xc0) === 0xc0;
  if (prefixes.some((p) => p !== 0x66 && p !== 0x67) && modrmIsRegister) return true;
  // Far pointers and prefixed control transfers: ndisasm's spellings vary.
  if (
    (prefixes.includes(0x66) || prefixes.includes(0x67)) &&
    [0xe0, 0xe1, 0xe2, 0xe3, 0xc2, 0xc3, 0xca, 0xcb, 0xff, 0xc8, 0xc9].includes(op)
  )
    return true;
  if (prefixes.length > 0 && op >= 0xd8 && op <= 0xdf) return true;
  // ndisasm writes "a16"/"a32" for some instructions without memory operands and not for others.
  if (prefixes.includes(0x67) && !hasMemoryOperand(bytes, i, op)) return true;
  // ndisasm refuses the aliases TEST r/m, imm (F6/F7 /1) and SAL (D0-D3, C0, C1 /6).
  const reg = (bytes[i + 1]! >> 3) & 7;
  if ((op === 0xf6 || op === 0xf7) && reg === 1) return true;
  if ([0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3].includes(op) && reg === 6) return true;
  // ...and the undocumented FCOM/FCOMP aliases DC D0-DF.
  if (op === 0xdc && bytes[i + 1]! >= 0xd0 && bytes[i + 1]! <= 0xdf) return true;
  // With 66, 0F AE and the MMX opcodes are SSE2 encodings for ndisasm.
  if (prefixes.includes(0x66) && (op === 0x1ae || (op >= 0x160 && op <= 0x17f) || op >= 0x1d0)) return true;
  // 82 is the 32-bit-mode alias of 80 (the CPU runs it; ndisasm does not know it).
  if (op === 0x82) return true;
  // ndisasm writes UD1's memory operand with a size keyword, unlike every other r, r/m form.
  if (op === 0x1b9) return true;
  // ndisasm names the hint NOPs 0F 18-1F after later extensions (prefetch, hint_nop).
  if (op >= 0x118 && op <= 0x11f) return true;
  // ndisasm refuses SETcc with a non-zero ModRM reg field (the CPU ignores it).
  if (op >= 0x190 && op <= 0x19f && (bytes[i + 2]! & 0x38) !== 0) return true;
  // ...and 16-bit BSWAP and MOVZX/MOVSX r16, r/m16, whose results the SDM leaves undefined or trivial.
  const opsize16 = (mode === 16) !== prefixes.includes(0x66);
  if (opsize16 && ((op >= 0x1c8 && op <= 0x1cf) || op === 0x1b7 || op === 0x1bf)) return true;
  return length <= 0;
}

/** Whether the instruction at `i` (opcode `op`) addresses memory through ModRM or a moffs. */
function hasMemoryOperand(bytes: Uint8Array, i: number, op: number): boolean {
  if (op >= 0xa0 && op <= 0xa3) return true;
  if (STRINGS.has(op)) return true;
  const withModRM =
    op > 0xff
      ? ![
          0x106, 0x108, 0x109, 0x10b, 0x130, 0x131, 0x132, 0x133, 0x134, 0x135, 0x1a0, 0x1a1, 0x1a2, 0x1a8,
          0x1a9, 0x1aa,
        ].includes(op) &&
        !(op >= 0x180 && op <= 0x18f) &&
        !(op >= 0x1c8 && op <= 0x1cf)
      : MODRM_ONE_BYTE.has(op);
  if (!withModRM) return false;
  return (bytes[i + (op > 0xff ? 2 : 1)]! & 0xc0) !== 0xc0;
}

const STRINGS = new Set([
  0x6c, 0x6d, 0x6e, 0x6f, 0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xd7,
]);
/** One-byte opcodes followed by a ModRM byte. */
const MODRM_ONE_BYTE = new Set([
  ...[0x00, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38].flatMap((b) => [b, b + 1, b + 2, b + 3]),
  0x62,
  0x63,
  0x69,
  0x6b,
  ...Array.from({ length: 16 }, (_, k) => 0x80 + k),
  0x8f,
  0xc0,
  0xc1,
  0xc4,
  0xc5,
  0xc6,
  0xc7,
  0xd0,
  0xd1,
  0xd2,
  0xd3,
  ...Array.from({ length: 8 }, (_, k) => 0xd8 + k),
  0xf6,
  0xf7,
  0xfe,
  0xff,
]);

/** Lower case and single spaces: everything else must match ndisasm exactly. */
function normalise(text: string): string {
  return text.toLowerCase().replace(/\s+/g, " ").trim();
}

describe("disassembler agrees with ndisasm", { skip: haveNdisasm() ? false : "needs ndisasm (nasm)" }, () => {
  for (const mode of [16, 32] as const) {
    test(`${mode}-bit code: mnemonics, operands and lengths`, () => {
      const pool = candidates(mode * 7919 + Number(process.env.TSVISOR_DISASM_SEED ?? 0), 6000);
      const chosen: { bytes: Uint8Array; text: string; length: number }[] = [];
      for (const c of pool) {
        // Disassembled at the address of the slot it will occupy, for jump targets.
        const d = disassemble(c, 0, mode, chosen.length * SLOT);
        if (d.text.startsWith("db ") || quirk(c, d.length, mode)) continue;
        chosen.push({ bytes: c, text: d.text, length: d.length });
      }
      assert.ok(chosen.length > 3000, `only ${chosen.length} instructions to compare`);
      // One instruction per 16-byte slot, padded with NOPs, so a disagreement cannot shift the rest.
      const image = new Uint8Array(chosen.length * SLOT).fill(0x90);
      chosen.forEach((c, k) => {
        image.set(c.bytes.subarray(0, c.length), k * SLOT);
      });
      const dir = mkdtempSync(join(tmpdir(), "tsvisor-disasm-"));
      let listing: string;
      try {
        const file = join(dir, "code.bin");
        writeFileSync(file, image);
        listing = execFileSync("ndisasm", ["-b", String(mode), file], { maxBuffer: 1 << 26 }).toString();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      const theirs = new Map<number, { hex: string; text: string }>();
      let last: { hex: string; text: string } | undefined;
      for (const line of listing.split("\n")) {
        const match = /^([0-9A-F]{8})\s+([0-9A-F]+)\s+(.*)$/.exec(line);
        if (match) {
          last = { hex: match[2]!, text: match[3]! };
          theirs.set(Number.parseInt(match[1]!, 16), last);
        } else {
          // Long instructions continue their bytes on a "-XXXX" line.
          const more = /^\s+-([0-9A-F]+)\s*$/.exec(line);
          if (more && last) last.hex += more[1];
        }
      }
      const problems: string[] = [];
      chosen.forEach((c, k) => {
        const t = theirs.get(k * SLOT);
        const bytes = [...c.bytes.subarray(0, c.length)].map((b) => b.toString(16).padStart(2, "0")).join("");
        if (!t) problems.push(`${bytes}: ndisasm lost sync`);
        else if (t.hex.length / 2 !== c.length)
          problems.push(`${bytes}: length ${c.length}, ndisasm ${t.hex.length / 2} (${t.text})`);
        else if (normalise(t.text) !== normalise(c.text))
          problems.push(`${bytes}: "${c.text}", ndisasm "${t.text}"`);
      });
      assert.deepEqual(problems.slice(0, 40), [], `${problems.length} of ${chosen.length} differ`);
    });
  }
});
