// Helpers for the CPU's unit tests: assemble snippets with nasm, build a CPU over RAM, run to HLT.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PortBus } from "../core/bus.ts";
import { PhysicalMemory } from "../core/memory.ts";
import { Cpu, type CpuOptions } from "./cpu.ts";
import { CS, DS, ES, FS, GS, SS } from "./flags.ts";

/** Assembles `source` (nasm syntax, flat binary) and returns the bytes. */
export function assemble(source: string, bits: 16 | 32 = 16, org = 0): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-nasm-"));
  try {
    const src = join(dir, "t.asm");
    const out = join(dir, "t.bin");
    writeFileSync(src, `bits ${bits}\norg ${org}\n${source}\n`);
    execFileSync("nasm", ["-f", "bin", "-o", out, src], { stdio: ["ignore", "ignore", "pipe"] });
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface TestMachine {
  cpu: Cpu;
  memory: PhysicalMemory;
  ports: PortBus;
  shutdowns: string[];
}

/** A CPU over 8 MiB of RAM at 0 (plus anything `extra` adds to its options). */
export function makeMachine(extra: Partial<CpuOptions> = {}): TestMachine {
  const memory = new PhysicalMemory();
  memory.addRam("ram", 0, 8 << 20);
  const ports = new PortBus();
  const shutdowns: string[] = [];
  const cpu = new Cpu({ memory, ports, onShutdown: (r) => shutdowns.push(r), ...extra });
  return { cpu, memory, ports, shutdowns };
}

/** Loads 16-bit code at physical `at` and points CS:IP at it in real mode (all segments 0). */
export function startReal(m: TestMachine, code: Uint8Array, at = 0x1000): void {
  m.memory.writeBytes(at, code);
  for (const s of [ES, SS, DS, FS, GS])
    m.cpu.setSegment(s, { selector: 0, base: 0, limit: 0xffff, attributes: 0x93 });
  m.cpu.setSegment(CS, { selector: 0, base: 0, limit: 0xffff, attributes: 0x9b });
  m.cpu.eip = at;
  m.cpu.esp = 0x8000;
}

/** Loads 32-bit code at `at` in flat protected mode (ring 0, no GDT needed until a segment load). */
export function startFlat32(m: TestMachine, code: Uint8Array, at = 0x10000): void {
  m.memory.writeBytes(at, code);
  m.cpu.setCr(0, 0x11);
  for (const s of [ES, SS, DS, FS, GS])
    m.cpu.setSegment(s, { selector: 0x10, base: 0, limit: 0xffffffff, attributes: 0xc093 });
  m.cpu.setSegment(CS, { selector: 0x08, base: 0, limit: 0xffffffff, attributes: 0xc09b });
  m.cpu.eip = at;
  m.cpu.esp = 0x80000;
}

/** Runs until HLT (or `max` instructions); returns the count. */
export function runToHalt(cpu: Cpu, max = 1_000_000): number {
  let total = 0;
  while (total < max && !cpu.halted) {
    const n = cpu.run(Math.min(100_000, max - total));
    total += n;
    if (n === 0) break;
  }
  return total;
}
