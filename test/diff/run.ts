// Building, running and comparing differential test programs: nasm assembles each program, QEMU
// and tsvisor's bare runner execute it, and the dumps they write to port 0xE9 are compared case by
// case, masking what the SDM leaves undefined.

import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type BareCpuFactory,
  BareMachine,
  formatTrace,
  runMultiboot,
} from "../../src/machine/bare-runner.ts";
import {
  type DiffCase,
  programSource,
  WINDOW_BASE,
  WINDOW_BYTES,
  WINDOW_TAIL,
  WINDOW_TAIL_BYTES,
} from "./harness.ts";

const run = promisify(execFile);

/**
 * The CPU model QEMU emulates for the comparison: the Pentium III, less the CPUID features tsvisor
 * does not advertise (SSE, machine-check), so both run the same code paths. PSE-36 stays: without
 * it QEMU narrows physical addresses to 32 bits even under PAE, where the SDM gives 36.
 */
export const QEMU_CPU = "pentium3,-sse,-mce,-mca";
/** 16-bit cases per program: their code must fit in one 64 KiB segment. */
const LOW_CASES_PER_PROGRAM = 200;
/** 32-bit cases per program: keeps each QEMU run short and lets two run at once. */
const CASES_PER_PROGRAM = 900;

export interface Program {
  readonly name: string;
  readonly cases: readonly DiffCase[];
  readonly image: Uint8Array;
  /** Label → address the code runs at (the virtual address, for the 16-bit part its offset). */
  readonly symbols: ReadonlyMap<string, number>;
  /** Label → offset in `image` (where the bytes are, whatever address they run at). */
  readonly offsets: ReadonlyMap<string, number>;
}

/** Where a program's first byte is loaded (its `ORG`): the map's real addresses start here. */
const PROGRAM_ORIGIN = 0x100000;

/** Splits cases into programs small enough to assemble and to run in parallel. */
export function groupCases(cases: readonly DiffCase[]): DiffCase[][] {
  const groups: DiffCase[][] = [];
  const high = cases.filter((c) => c.mode === "pm32");
  const low = cases.filter((c) => c.mode !== "pm32");
  for (let i = 0; i < high.length; i += CASES_PER_PROGRAM) groups.push(high.slice(i, i + CASES_PER_PROGRAM));
  for (let i = 0; i < low.length; i += LOW_CASES_PER_PROGRAM)
    groups.push(low.slice(i, i + LOW_CASES_PER_PROGRAM));
  return groups;
}

/** A scratch directory removed by `dispose` (nothing is cached across runs). */
export class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), "tsvisor-diff-"));
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Assembles one program with nasm; overflowing 16-bit offsets are errors, not warnings. */
export async function assemble(work: Workspace, name: string, cases: readonly DiffCase[]): Promise<Program> {
  const source = join(work.dir, `${name}.asm`);
  const output = join(work.dir, `${name}.bin`);
  const map = join(work.dir, `${name}.map`);
  writeFileSync(source, `[map symbols ${map}]\n${programSource(cases)}`);
  await run("nasm", ["-Werror=number-overflow", "-f", "bin", "-o", output, source], { maxBuffer: 1 << 24 });
  const symbols = new Map<string, number>();
  const offsets = new Map<string, number>();
  for (const line of readFileSync(map, "latin1").split("\n")) {
    const match = /^\s+([0-9A-Fa-f]+)\s+([0-9A-Fa-f]+)\s+(\S+)\s*$/.exec(line);
    if (!match) continue;
    symbols.set(match[3]!, Number.parseInt(match[2]!, 16));
    offsets.set(match[3]!, Number.parseInt(match[1]!, 16) - PROGRAM_ORIGIN);
  }
  return { name, cases, image: new Uint8Array(readFileSync(output)), symbols, offsets };
}

/** Runs `tasks` with at most `limit` in flight. */
export async function limited<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

export interface QemuOutcome {
  readonly exitCode: number | null;
  readonly dump: Uint8Array;
}

/** Runs a program under QEMU TCG; isa-debug-exit ends it (status 1 for `out 0xf4, 0`). */
export async function runQemu(work: Workspace, program: Program, timeoutMs = 120_000): Promise<QemuOutcome> {
  const kernel = join(work.dir, `${program.name}.bin`);
  const out = join(work.dir, `${program.name}.qemu.out`);
  writeFileSync(out, "");
  let exitCode: number | null = 0;
  try {
    await run(
      "qemu-system-i386",
      [
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-cpu",
        QEMU_CPU,
        "-m",
        "32",
        "-accel",
        "tcg",
        "-debugcon",
        `file:${out}`,
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=4",
        "-kernel",
        kernel,
      ],
      { timeout: timeoutMs, killSignal: "SIGKILL" },
    );
  } catch (error) {
    const e = error as { code?: number | string; killed?: boolean };
    exitCode = e.killed ? null : typeof e.code === "number" ? e.code : null;
  }
  return { exitCode, dump: new Uint8Array(readFileSync(out)) };
}

/** Runs a program on tsvisor's CPU through the bare runner. */
export function runTsvisor(program: Program, createCpu: BareCpuFactory, budget = 200_000_000): Uint8Array {
  const result = runMultiboot(program.image, { budget, createCpu, ramBytes: 32 << 20 });
  return result.debugcon;
}

/** Where the harness keeps the id of the running case (harness.ts V_ID). */
const CASE_ID_ADDRESS = WINDOW_BASE + 0x100;

/**
 * The instructions tsvisor executed for one case, from its code to its resume label (exception
 * handlers included), one formatted line each, for failure reports. Empty when the CPU cannot
 * trace.
 */
export function traceCase(
  program: Program,
  createCpu: BareCpuFactory,
  id: number,
  maxLines = 120,
  budget = 200_000_000,
): string[] {
  const machine = new BareMachine({ ramBytes: 32 << 20, createCpu });
  const start = program.symbols.get(`c${id}_code`) ?? program.symbols.get(`c${id}_v86`);
  const end = program.symbols.get(`c${id}_resume`);
  if (!machine.cpu.setTrace || start === undefined) return [];
  const lines: string[] = [];
  let recording = false;
  let done = false;
  machine.cpu.setTrace((state) => {
    if (done || machine.memory.read32(CASE_ID_ADDRESS) !== id) return;
    if (state.eip === start) recording = true;
    if (recording && state.eip === end) done = true;
    else if (recording && lines.length < maxLines) lines.push(formatTrace(state));
  });
  machine.loadMultiboot(program.image);
  machine.run(budget);
  return lines;
}

/** What a case left behind: its registers, flags and window, and the exceptions it raised. */
export interface CaseDump {
  readonly id: number;
  registers: number[];
  eflags: number;
  window: Uint8Array;
  readonly exceptions: {
    vector: number;
    error: number;
    eip: number;
    cs: number;
    eflags: number;
    cr2: number;
  }[];
}

export interface ParsedDump {
  readonly cases: Map<number, CaseDump>;
  readonly ended: boolean;
  /** Set when the stream is malformed (e.g. a fault inside the harness). */
  readonly problem: string | undefined;
}

const DUMPED_BYTES = WINDOW_BYTES + WINDOW_TAIL_BYTES;
const CASE_RECORD = 1 + 4 + 36 + DUMPED_BYTES;
const EXCEPTION_RECORD = 1 + 4 + 24;

/** Parses a dump stream into per-case results. */
export function parseDump(bytes: Uint8Array): ParsedDump {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const cases = new Map<number, CaseDump>();
  const entry = (id: number): CaseDump => {
    let c = cases.get(id);
    if (!c) {
      c = { id, registers: [], eflags: 0, window: new Uint8Array(0), exceptions: [] };
      cases.set(id, c);
    }
    return c;
  };
  let at = 0;
  while (at < bytes.length) {
    const tag = bytes[at]!;
    if (tag === 0x45 /* E */) return { cases, ended: true, problem: undefined };
    if (tag === 0x43 /* C */ && at + CASE_RECORD <= bytes.length) {
      const c = entry(view.getUint32(at + 1, true));
      c.registers = Array.from({ length: 8 }, (_, i) => view.getUint32(at + 5 + i * 4, true));
      c.eflags = view.getUint32(at + 37, true);
      c.window = bytes.slice(at + 41, at + 41 + DUMPED_BYTES);
      at += CASE_RECORD;
      continue;
    }
    if (tag === 0x58 /* X */ && at + EXCEPTION_RECORD <= bytes.length) {
      const c = entry(view.getUint32(at + 1, true));
      const f = (k: number): number => view.getUint32(at + 5 + k * 4, true);
      c.exceptions.push({ vector: f(0), error: f(1), eip: f(2), cs: f(3), eflags: f(4), cr2: f(5) });
      at += EXCEPTION_RECORD;
      continue;
    }
    return { cases, ended: false, problem: `unexpected byte 0x${tag.toString(16)} at offset ${at}` };
  }
  return { cases, ended: false, problem: "the stream ends without the end marker" };
}

const REGISTER_NAMES = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
/** EFLAGS bits that are compared at all (arithmetic, TF, IF, DF, IOPL, NT, RF, VM, AC, ID). */
const COMPARED_FLAGS = 0x003f7fd5;

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`;

/** EFLAGS.RF, which faults set in the EFLAGS image they push. */
const RF = 0x10000;

/**
 * Whether dumped byte `i` differs only in RF of an exception frame's EFLAGS image: the SDM sets RF
 * there for faults, QEMU does not (README.md, "Deviations"). The dumped bytes of the dword holding
 * it must be the EFLAGS tsvisor's exception record reports, and QEMU's the same without RF.
 */
function faultFrameRf(expected: CaseDump, actual: CaseDump, i: number): boolean {
  if ((expected.window[i]! ^ actual.window[i]!) !== 1) return false;
  const offsetOf = (k: number): number => (k < WINDOW_BYTES ? k : WINDOW_TAIL + k - WINDOW_BYTES);
  const indexOf = (offset: number): number =>
    offset < WINDOW_BYTES ? offset : offset >= WINDOW_TAIL ? offset - WINDOW_TAIL + WINDOW_BYTES : -1;
  const at = offsetOf(i) - 2; // the image's first byte; RF is bit 0 of its third
  return actual.exceptions.some((e) => {
    if (!(e.eflags & RF)) return false;
    for (let b = 0; b < 4; b++) {
      const k = at + b >= 0 ? indexOf(at + b) : -1;
      if (k < 0 || k >= DUMPED_BYTES) continue;
      const want = (e.eflags >>> (b * 8)) & 0xff;
      if (actual.window[k] !== want || expected.window[k] !== (b === 2 ? want & ~1 : want)) return false;
    }
    return true;
  });
}

/** Differences between a reference dump and tsvisor's for one case, as readable lines. */
export function compareCase(
  c: DiffCase,
  expected: CaseDump | undefined,
  actual: CaseDump | undefined,
): string[] {
  if (!actual) return [`case ${c.id} (${c.text}): tsvisor produced no result`];
  if (c.sdmExceptions) {
    const want = c.sdmExceptions.map((e) => `#${e.vector}(${hex(e.error)})`).join(", ");
    const got = actual.exceptions.map((e) => `#${e.vector}(${hex(e.error)})`).join(", ");
    return want === got
      ? []
      : [`case ${c.id} ${c.mode} (${c.text}): exceptions [${got}], the SDM requires [${want}]`];
  }
  if (!expected) return [`case ${c.id} (${c.text}): no reference result`];
  const problems: string[] = [];
  const deviation = c.qemuDeviation;
  for (let i = 0; i < 8; i++) {
    if (c.undefinedRegisters & (1 << i)) continue;
    let mask = 0xffffffff;
    for (const bits of c.undefinedBits ?? []) if (bits.index === i) mask &= ~bits.mask;
    for (const bits of deviation?.registerBits ?? []) {
      if (bits.index !== i) continue;
      mask &= ~bits.mask;
      if (bits.value !== undefined && (actual.registers[i]! & bits.mask) !== bits.value) {
        problems.push(
          `${REGISTER_NAMES[i]} bits ${hex(bits.mask)} = ${hex(actual.registers[i]! & bits.mask)}, the SDM requires ${hex(bits.value)} (${deviation!.note})`,
        );
      }
    }
    if (((expected.registers[i]! ^ actual.registers[i]!) & mask) !== 0) {
      problems.push(
        `${REGISTER_NAMES[i]} ${hex(actual.registers[i]!)}, expected ${hex(expected.registers[i]!)}`,
      );
    }
  }
  const flagRule = deviation?.flags;
  if (flagRule?.value !== undefined && (actual.eflags & flagRule.mask) !== flagRule.value) {
    problems.push(
      `eflags bits ${hex(flagRule.mask)} = ${hex(actual.eflags & flagRule.mask)}, the SDM requires ${hex(flagRule.value)} (${deviation!.note})`,
    );
  }
  const mask = COMPARED_FLAGS & ~c.undefinedFlags & ~(flagRule?.mask ?? 0);
  if ((expected.eflags & mask) !== (actual.eflags & mask)) {
    problems.push(
      `eflags ${hex(actual.eflags & mask)}, expected ${hex(expected.eflags & mask)} (compared bits ${hex(mask)})`,
    );
  }
  for (let i = 0; i < DUMPED_BYTES; i++) {
    const offset = i < WINDOW_BYTES ? i : WINDOW_TAIL + i - WINDOW_BYTES;
    if (c.undefinedWindow?.some(([from, to]) => offset >= from && offset < to)) continue;
    if (expected.window[i] !== actual.window[i] && !faultFrameRf(expected, actual, i)) {
      problems.push(
        `memory window+0x${offset.toString(16)} = 0x${actual.window[i]?.toString(16)}, expected 0x${expected.window[i]?.toString(16)}`,
      );
      break;
    }
  }
  const ex = expected.exceptions.map(
    (e) => `#${e.vector}(${hex(e.error)}) at ${e.cs}:${hex(e.eip)} cr2=${hex(e.cr2)}`,
  );
  const ac = actual.exceptions.map(
    (e) => `#${e.vector}(${hex(e.error)}) at ${e.cs}:${hex(e.eip)} cr2=${hex(e.cr2)}`,
  );
  // CR2 only means something for page faults.
  const norm = (list: string[], src: CaseDump["exceptions"]): string[] =>
    list.map((s, i) => (src[i]!.vector === 14 ? s : s.replace(/ cr2=0x[0-9a-f]+/, "")));
  const en = norm(ex, expected.exceptions).join(", ");
  const an = norm(ac, actual.exceptions).join(", ");
  if (en !== an) problems.push(`exceptions [${an}], expected [${en}]`);
  return problems.map((p) => `case ${c.id} ${c.mode} (${c.text}): ${p}`);
}
