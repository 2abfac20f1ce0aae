// The differential test's coverage of the opcode table: every entry of src/x86/opcodes.ts (one-byte,
// two-byte and each group member) must appear in the generated cases of every mode (real mode,
// 16-bit and 32-bit protected mode, virtual-8086 mode), as a case that runs it or as one that expects
// its exception there. Coverage is read from the assembled programs: each case's bytes, from its
// code label to its resume label, are decoded with the CPU's own decoder in the case's code size,
// so what counts is what nasm emitted, not what a case says about itself. A case that raises an
// exception (as tsvisor's CPU runs it) counts only up to the instruction that raised it: what
// follows never ran.
//
// Needs nasm (not QEMU); TSVISOR_DIFF_SEED and TSVISOR_DIFF_SCALE pick the same cases as diff.test.ts.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, describe, test } from "node:test";
import { loadTsvisorCpu } from "../../src/machine/bare-runner.ts";
import { decodeInstruction, Insn } from "../../src/x86/decoder.ts";
import { ONE_BYTE, type OpEntry, TWO_BYTE } from "../../src/x86/opcodes.ts";
import { generateCases } from "./cases.ts";
import type { CaseMode } from "./harness.ts";
import { assemble, groupCases, limited, parseDump, runTsvisor, Workspace } from "./run.ts";

const MODES: readonly CaseMode[] = ["real", "pm16", "pm32", "v86"];

/**
 * (entry, mode) pairs the harness cannot run, with the reason. Everything else must be covered.
 * Keys are as `entryKey` writes them.
 */
const EXCLUDED: readonly {
  readonly key: string;
  readonly modes: readonly CaseMode[];
  readonly reason: string;
}[] = [
  {
    key: "F4 HLT",
    modes: ["real", "pm16"],
    reason:
      "at CPL 0 with the PICs masked it halts for good; it is covered where it faults (CPL 3 in pm32, v86)",
  },
];

/** A table entry, named by its encoding: `0F 01 /2 LGDT`, `0F 01 /4 mod=3 SMSW`. */
interface TableEntry {
  readonly key: string;
  readonly entry: OpEntry;
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, "0");

function opcodeText(opcode: number): string {
  return opcode >= 0x100 ? `0F ${hex2(opcode & 0xff)}` : hex2(opcode);
}

/** Every entry of the opcode table the decoder can reach. */
function tableEntries(): TableEntry[] {
  const out: TableEntry[] = [];
  for (const table of [ONE_BYTE, TWO_BYTE]) {
    for (const entry of table) {
      if (!entry) continue;
      const op = opcodeText(entry.opcode);
      if (!entry.group) {
        out.push({ key: `${op} ${entry.mnemonic}`, entry });
        continue;
      }
      entry.group.forEach((m, reg) => {
        if (m) out.push({ key: `${op} /${reg} ${m.mnemonic}`, entry: m });
      });
      entry.groupReg?.forEach((m, reg) => {
        if (m) out.push({ key: `${op} /${reg} mod=3 ${m.mnemonic}`, entry: m });
      });
    }
  }
  return out;
}

function haveNasm(): boolean {
  try {
    execFileSync("nasm", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const seed = Number(process.env.TSVISOR_DIFF_SEED ?? 1);
const scale = Number(process.env.TSVISOR_DIFF_SCALE ?? 2);

/** The table entries each mode's cases decode to, with the first case id seen for each. */
async function coveredEntries(work: Workspace): Promise<Map<CaseMode, Map<OpEntry, number>>> {
  const cases = generateCases(seed, scale);
  const programs = await limited(
    2,
    groupCases(cases).map((g, i) => () => assemble(work, `coverage${i}`, g)),
  );
  const cpu = await loadTsvisorCpu();
  if ("missing" in cpu) throw new Error(cpu.missing);
  const covered = new Map<CaseMode, Map<OpEntry, number>>(MODES.map((m) => [m, new Map()]));
  const insn = new Insn();
  for (const program of programs) {
    const dumps = parseDump(runTsvisor(program, cpu.factory)).cases;
    for (const c of program.cases) {
      const label = program.offsets.has(`c${c.id}_code`) ? `c${c.id}_code` : `c${c.id}_v86`;
      const start = program.offsets.get(label);
      let end = program.offsets.get(`c${c.id}_resume`);
      assert.ok(start !== undefined && end !== undefined && end >= start, `case ${c.id} has no code labels`);
      // The first exception ends the case's code: at the faulting instruction, or (traps: #DB, #BP,
      // #OF report the next one) just before the instruction after it.
      const first = dumps.get(c.id)?.exceptions[0];
      if (first) {
        const at = first.eip - program.symbols.get(label)! + start;
        const trap = first.vector === 1 || first.vector === 3 || first.vector === 4;
        if (at >= start && at < end) end = trap ? at : at + 1;
      }
      const seen = covered.get(c.mode)!;
      for (let p = start; p < end; ) {
        const bytes = program.image.subarray(p, p + 15);
        const length = decodeInstruction(insn, bytes, bytes.length, c.mode === "pm32");
        if (length <= 0) break;
        if (!seen.has(insn.entry)) seen.set(insn.entry, c.id);
        p += length;
      }
    }
  }
  return covered;
}

describe("the differential cases cover the opcode table in every mode", {
  skip: !haveNasm() && "needs nasm",
}, () => {
  const work = new Workspace();
  after(() => work.dispose());

  test("the exclusions name table entries", () => {
    const keys = new Set(tableEntries().map((e) => e.key));
    for (const x of EXCLUDED) assert.ok(keys.has(x.key), `excluded "${x.key}" is not in the table`);
  });

  test("every entry runs (or faults) in every mode", async () => {
    const covered = await coveredEntries(work);
    const missing: string[] = [];
    for (const { key, entry } of tableEntries()) {
      for (const mode of MODES) {
        if (EXCLUDED.some((x) => x.key === key && x.modes.includes(mode))) continue;
        if (!covered.get(mode)!.has(entry)) missing.push(`${mode}: ${key}`);
      }
    }
    assert.deepEqual(missing, [], `${missing.length} (entry, mode) pairs have no case`);
  });
});
