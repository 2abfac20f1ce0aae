// The CPU's differential test: generated programs run on QEMU (the reference) and on tsvisor's
// CPU through the bare runner, compared case by case.
//
// TSVISOR_DIFF_SEED picks the generator seed (default 1); TSVISOR_DIFF_SCALE multiplies the
// number of cases per instruction form (default 2).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { loadTsvisorCpu } from "../../src/machine/bare-runner.ts";
import { generateCases } from "./cases.ts";
import type { DiffCase } from "./harness.ts";
import {
  assemble,
  type CaseDump,
  compareCase,
  groupCases,
  limited,
  type Program,
  parseDump,
  runQemu,
  runTsvisor,
  traceCase,
  Workspace,
} from "./run.ts";

/**
 * Cases tsvisor's CPU gets wrong today (case text → what is wrong). They are reported by a `todo`
 * test so the suite stays green; delete an entry when the CPU is fixed.
 */
const KNOWN_CPU_BUGS: readonly { readonly cases: RegExp; readonly bug: string }[] = [];

const seed = Number(process.env.TSVISOR_DIFF_SEED ?? 1);
const scale = Number(process.env.TSVISOR_DIFF_SCALE ?? 2);

function haveTool(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const missingTools = ["nasm", "qemu-system-i386"].filter((t) => !haveTool(t, ["--version"]));
const skip = missingTools.length > 0 ? `needs ${missingTools.join(" and ")} (scripts/setup-host.sh)` : false;
const cpu = await loadTsvisorCpu();

describe(`CPU differential test against QEMU (seed ${seed})`, { skip }, () => {
  const work = new Workspace();
  const cases = generateCases(seed, scale);
  let programs: Program[] = [];
  const reference = new Map<number, CaseDump>();
  const qemuProblems: string[] = [];

  before(async () => {
    const groups = groupCases(cases);
    programs = await limited(
      2,
      groups.map((g, i) => () => assemble(work, `program${i}`, g)),
    );
    const outcomes = await limited(
      2,
      programs.map((p) => () => runQemu(work, p)),
    );
    outcomes.forEach((o, i) => {
      const parsed = parseDump(o.dump);
      if (o.exitCode !== 1) qemuProblems.push(`${programs[i]!.name}: QEMU exited with ${o.exitCode}, not 1`);
      if (parsed.problem) qemuProblems.push(`${programs[i]!.name}: ${parsed.problem}`);
      for (const [id, dump] of parsed.cases) reference.set(id, dump);
    });
  });
  after(() => work.dispose());

  test("QEMU runs every program to the end and dumps every case", () => {
    assert.deepEqual(qemuProblems, []);
    const missing = cases.filter((c) => !reference.get(c.id)?.window.length).map((c) => c.id);
    assert.deepEqual(missing, [], "cases without a dump");
    assert.ok(cases.length > 1500, `only ${cases.length} cases generated`);
    for (const mode of ["pm32", "real", "pm16", "v86"]) {
      assert.ok(
        cases.some((c) => c.mode === mode),
        `no ${mode} cases`,
      );
    }
  });

  // Spot checks that the reference dumps mean what the harness says they mean.
  const find = (mode: string, text: string): DiffCase => {
    const c = cases.find((k) => k.mode === mode && k.text === text);
    assert.ok(c, `no case "${text}" in ${mode}`);
    return c;
  };

  test("the reference records exceptions with vector, error code and resume", () => {
    const ud = reference.get(find("pm32", "ud2 raises #UD").id)!;
    assert.deepEqual(
      ud.exceptions.map((e) => e.vector),
      [6],
    );
    const gp = reference.get(find("pm32", "load of a selector beyond the GDT raises #GP(selector)").id)!;
    assert.deepEqual(
      gp.exceptions.map((e) => [e.vector, e.error]),
      [[13, 0x1234]],
    );
    const real = reference.get(find("real", "int3 traps with EIP after it").id)!;
    assert.deepEqual(
      real.exceptions.map((e) => [e.vector, e.cs]),
      [[3, 0x1000]],
    );
    const into = reference.get(find("pm16", "into with OF=0").id)!;
    assert.equal(into.exceptions.length, 0);
  });

  test("the reference records page faults with error code and CR2, and A/D bits", () => {
    const wp = reference.get(find("pm32", "supervisor write to a read-only page with WP=1: #PF(3)").id)!;
    assert.deepEqual(
      wp.exceptions.map((e) => [e.vector, e.error, e.cr2]),
      [[14, 3, 0x80000c]],
    );
    const dirty = reference.get(find("pm32", "write sets accessed and dirty").id)!;
    assert.equal(dirty.registers[3], 0x80063, "PTE with A and D set in EBX");
    const rep = reference.get(
      find("pm32", "rep movsd runs into a not-present page: partial progress, #PF(2)").id,
    )!;
    assert.equal(rep.registers[1], 3, "two dwords moved before the fault");
  });

  test("the reference computes arithmetic (a few known results)", () => {
    const idiv = reference.get(find("pm32", "idiv overflow raises #DE").id)!;
    assert.equal(idiv.exceptions[0]?.vector, 0);
    const bound = reference.get(find("real", "bound in range").id)!;
    assert.equal(bound.exceptions.length, 0);
    assert.equal(bound.registers[0]! & 0xffff, 15);
  });

  const compareAll = (): { known: string[]; unknown: string[] } => {
    if ("missing" in cpu) throw new Error(cpu.missing);
    const known: string[] = [];
    const unknown: string[] = [];
    for (const program of programs) {
      const parsed = parseDump(runTsvisor(program, cpu.factory));
      if (parsed.problem) unknown.push(`${program.name} on tsvisor: ${parsed.problem}`);
      for (const c of program.cases) {
        const problems = compareCase(c, reference.get(c.id), parsed.cases.get(c.id));
        const bug = KNOWN_CPU_BUGS.find((k) => k.cases.test(c.text))?.bug;
        if (bug) known.push(...problems.map((p) => `${p} [known: ${bug}]`));
        else unknown.push(...problems);
      }
    }
    return { known, unknown };
  };
  let results: { known: string[]; unknown: string[] } | undefined;
  const report = (problems: string[]): string =>
    `${problems.length} differences (seed ${seed}):\n${problems.slice(0, 60).join("\n")}${problems.length > 60 ? "\n..." : ""}`;

  test("tsvisor's CPU matches QEMU (undefined flags masked; SDM where QEMU deviates)", {
    todo: "missing" in cpu ? `the CPU is not runnable yet: ${cpu.missing}` : false,
  }, () => {
    results ??= compareAll();
    if (results.unknown.length > 0) assert.fail(`${report(results.unknown)}${traces(results.unknown)}`);
  });

  /** tsvisor's instruction trace of the first few failing cases. */
  const traces = (problems: string[]): string => {
    if ("missing" in cpu) return "";
    const ids = [...new Set(problems.map((p) => Number(/^case (\d+)/.exec(p)?.[1])).filter((n) => n > 0))];
    return ids
      .slice(0, 3)
      .map((id) => {
        const program = programs.find((p) => p.cases.some((c) => c.id === id));
        const lines = program ? traceCase(program, cpu.factory, id) : [];
        return lines.length > 0 ? `\n\ntrace of case ${id} on tsvisor:\n${lines.join("\n")}` : "";
      })
      .join("");
  };

  const bugs = KNOWN_CPU_BUGS.map((k) => k.bug);
  test("known CPU bugs are fixed", {
    todo: "missing" in cpu ? "the CPU is not runnable yet" : bugs.length > 0 ? bugs.join("; ") : false,
  }, () => {
    results ??= compareAll();
    if (results.known.length > 0) assert.fail(report(results.known));
  });
});
