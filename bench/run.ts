// `npm run bench`: tsvisor beside the anchors (QEMU TCG and v86) in one invocation, on this machine.
//
//   npm run bench                  every suite
//   npm run bench -- micro         CPU microbenchmarks (../shared/anchors/microbench.sh)
//   npm run bench -- boot [RUNS]   reference Linux guest (../shared/anchors/bench-anchors.sh)
//   npm run bench -- cold          the interpreter on cold decoded code (cold-code.ts; tsvisor only)
//
// tsvisor runs with its default engine (the binary translator on hot code) beside the anchors;
// the microbenchmarks run once more with `--jit off` for the interpreter's own figures. With
// /usr/bin/time present, each guest run's peak resident memory is recorded too.
// Prints each anchor script's own report, then a summary with tsvisor's ratios to the anchors,
// in Markdown for BENCHMARKS.md. Needs root for the anchors' apt-get installs on a fresh machine.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { coldCodeSuite } from "./cold-code.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const anchors = resolve(root, "../shared/anchors");
const node = join(root, "node_modules/.bin/node");
const tsvisor = `${node} ${join(root, "bin/tsvisor.js")}`;

function runScript(script: string, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolveRun, reject) => {
    const child = spawn("bash", [join(anchors, script), ...args], {
      cwd: root,
      env: { ...process.env, NODE: node, TSVISOR: tsvisor, TSVISOR_EXTRA: "", ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let text = "";
    child.stdout.on("data", (chunk: Buffer) => {
      process.stdout.write(chunk);
      text += chunk.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolveRun(text) : reject(new Error(`${script} exited with status ${code}`)),
    );
  });
}

/** microbench.sh output: "== label (...)" then "  phase N ms M MIPS" lines. */
function parseMicro(text: string): Map<string, Map<string, number>> {
  const table = new Map<string, Map<string, number>>();
  let current: Map<string, number> | undefined;
  for (const line of text.split(/\r?\n/)) {
    const head = /^== (\S+)/.exec(line);
    if (head) table.set(head[1]!, (current = new Map()));
    const phase = /^\s+(\S+) (\d+) ms (\d+) (MIPS|MiB\/s)/.exec(line);
    if (phase && current) current.set(phase[1]!, Number(phase[3]));
  }
  return table;
}

function microSummary(table: Map<string, Map<string, number>>): string {
  const emulators = [...table.keys()];
  const phases = [...new Set(emulators.flatMap((e) => [...table.get(e)!.keys()]))];
  const rows = [
    `| phase | ${emulators.join(" | ")} | tsvisor / v86-nojit | tsvisor / v86-jit |`,
    `|---|${emulators.map(() => "---:|").join("")}---:|---:|`,
  ];
  for (const p of phases) {
    const v = (e: string) => table.get(e)?.get(p);
    const ratio = (e: string) => {
      const a = v("tsvisor");
      const b = v(e);
      return a !== undefined && b ? (a / b).toFixed(2) : "-";
    };
    rows.push(
      `| ${p} | ${emulators.map((e) => v(e) ?? "-").join(" | ")} | ${ratio("v86-nojit")} | ${ratio("v86-jit")} |`,
    );
  }
  return rows.join("\n");
}

async function main(): Promise<void> {
  const [suite = "all", runs = "1"] = process.argv.slice(2);
  if (!existsSync(anchors)) throw new Error(`the anchors are not at ${anchors}`);
  const when = new Date().toISOString().slice(0, 10);
  const machine = `${cpus().length} x ${cpus()[0]?.model ?? "cpu"}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`;
  const summaries: string[] = [`Machine: ${machine}; date: ${when}.`];
  if (suite === "all" || suite === "micro") {
    const table = parseMicro(await runScript("microbench.sh", [], {}));
    const interp = parseMicro(
      await runScript("microbench.sh", [], { SKIP_QEMU: "1", SKIP_V86: "1", TSVISOR_EXTRA: "--jit off" }),
    ).get("tsvisor");
    if (interp) table.set("tsvisor-interpreter", interp);
    summaries.push("### CPU microbenchmarks (MIPS; rep-movsd in MiB/s)", microSummary(table));
  }
  if (suite === "all" || suite === "cold") {
    const rows = ["| blocks in the chain | ns per instruction |", "|---:|---:|"];
    for (const { blocks, ns } of coldCodeSuite()) rows.push(`| ${blocks} | ${ns.toFixed(1)} |`);
    summaries.push("### Interpreter on cold decoded code (tsvisor, `--jit off`)", rows.join("\n"));
  }
  if (suite === "all" || suite === "boot") {
    const guestDir =
      process.env.TSVISOR_BENCH_GUEST ?? join(process.env.TMPDIR ?? "/tmp", "tsvisor-anchor-guest");
    await runScript("build-guest.sh", [guestDir], {});
    // Peak resident memory of each tsvisor run (the VM's worker lives in that process).
    const rssFile = join(process.env.TMPDIR ?? "/tmp", "tsvisor-bench-rss.txt");
    rmSync(rssFile, { force: true });
    const timed = existsSync("/usr/bin/time") ? `/usr/bin/time -a -o ${rssFile} -f %M ${tsvisor}` : tsvisor;
    const text = await runScript("bench-anchors.sh", [guestDir, runs], { TSVISOR: timed });
    const lines = text.split(/\r?\n/).filter((l) => /^(tsvisor|qemu-tcg|v86|native)/.test(l));
    summaries.push("### Reference guest (ms, min/median)", "```", ...lines, "```");
    if (existsSync(rssFile)) {
      const peaks = readFileSync(rssFile, "utf8")
        .split(/\s+/)
        .filter((w) => /^\d+$/.test(w));
      summaries.push(
        `tsvisor peak resident memory per run (MiB): ${peaks.map((k) => Math.round(Number(k) / 1024)).join(", ")}`,
      );
    }
  }
  process.stdout.write(`\n## Summary\n\n${summaries.join("\n\n")}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
