// Looks at differential cases one by one: which QEMU and tsvisor results differ, and what
// tsvisor executed. For chasing a failure from `diff.test.ts`:
//
//   node test/diff/inspect.ts "<regular expression matching case texts>" [seed] [scale]
//
// Prints, for every matching case, the code, both results, the differences and tsvisor's trace.

import { loadTsvisorCpu } from "../../src/machine/bare-runner.ts";
import { generateCases } from "./cases.ts";
import {
  assemble,
  type CaseDump,
  compareCase,
  groupCases,
  parseDump,
  runQemu,
  runTsvisor,
  traceCase,
  Workspace,
} from "./run.ts";

const [pattern, seedText, scaleText] = process.argv.slice(2);
if (!pattern) {
  console.error('usage: node test/diff/inspect.ts "<case text regexp>" [seed] [scale]');
  process.exit(2);
}
const matcher = new RegExp(pattern);
const cases = generateCases(Number(seedText ?? 1), Number(scaleText ?? 2));
const wanted = new Set(cases.filter((c) => matcher.test(c.text)).map((c) => c.id));
if (wanted.size === 0) {
  console.error(`no case matches ${matcher}`);
  process.exit(1);
}
const cpu = await loadTsvisorCpu();
const work = new Workspace();
const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`;
const show = (dump: CaseDump | undefined): string =>
  dump
    ? `${dump.registers.map(hex).join(" ")} eflags=${hex(dump.eflags)} ${dump.exceptions
        .map((e) => `#${e.vector}(${hex(e.error)}) at ${e.cs.toString(16)}:${hex(e.eip)}`)
        .join(" ")}`
    : "(no result)";
try {
  // Whole programs keep the cases' context (what ran before them), as in the test.
  for (const [index, group] of groupCases(cases).entries()) {
    if (!group.some((c) => wanted.has(c.id))) continue;
    const program = await assemble(work, `inspect${index}`, group);
    const reference = parseDump((await runQemu(work, program)).dump).cases;
    const actual = "missing" in cpu ? undefined : parseDump(runTsvisor(program, cpu.factory)).cases;
    for (const c of group.filter((k) => wanted.has(k.id))) {
      console.log(`\ncase ${c.id} ${c.mode}: ${c.text}`);
      console.log(`  code:    ${c.code.join("; ")}`);
      console.log(`  qemu:    ${show(reference.get(c.id))}`);
      if (!actual || "missing" in cpu) {
        console.log(`  tsvisor: ${"missing" in cpu ? cpu.missing : ""}`);
        continue;
      }
      console.log(`  tsvisor: ${show(actual.get(c.id))}`);
      for (const problem of compareCase(c, reference.get(c.id), actual.get(c.id)))
        console.log(`  ! ${problem}`);
      for (const line of traceCase(program, cpu.factory, c.id)) console.log(`    ${line}`);
    }
  }
} finally {
  work.dispose();
}
