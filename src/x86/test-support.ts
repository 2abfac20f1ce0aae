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

/** Writes a segment descriptor: `access` is the byte (P DPL S type), `flags` the nibble (G D/B L AVL). */
export function writeDescriptor(
  memory: PhysicalMemory,
  at: number,
  base: number,
  limit: number,
  access: number,
  flags: number,
): void {
  memory.write32(at, ((base & 0xffff) << 16) | (limit & 0xffff));
  memory.write32(
    at + 4,
    (base & 0xff000000) |
      ((flags & 0xf) << 20) |
      (limit & 0xf0000) |
      ((access & 0xff) << 8) |
      ((base >>> 16) & 0xff),
  );
}

/** Writes a gate descriptor (interrupt/trap/call/task): `access` is P DPL type, `params` the count. */
export function writeGate(
  memory: PhysicalMemory,
  at: number,
  selector: number,
  offset: number,
  access: number,
  params = 0,
): void {
  memory.write32(at, ((selector & 0xffff) << 16) | (offset & 0xffff));
  memory.write32(at + 4, (offset & 0xffff0000) | ((access & 0xff) << 8) | (params & 0x1f));
}

export const GDT_BASE = 0x800;
export const IDT_BASE = 0x1000;
/** Exception recorder stubs: vector v's handler at STUB_BASE + 16v stores v at RECORD and halts. */
export const STUB_BASE = 0x3000;
export const RECORD = 0x4f0;
export const TSS_BASE = 0x5000;
export const SEL_CODE0 = 0x08;
export const SEL_DATA0 = 0x10;
export const SEL_CODE3 = 0x1b;
export const SEL_DATA3 = 0x23;
export const SEL_TSS = 0x28;
export const SEL_CODE16 = 0x30;
export const SEL_DATA16 = 0x38;

/**
 * Flat 32-bit protected mode with a GDT (ring 0 and ring 3 flat code/data, a 32-bit TSS whose
 * ring-0 stack is at 0x90000, 16-bit code/data), and an IDT whose 256 interrupt gates (DPL 3) lead
 * to recorder stubs. Code is loaded at `at`.
 */
export function startProtected(m: TestMachine, code: Uint8Array, at = 0x10000): void {
  const mem = m.memory;
  writeStandardGdt(mem);
  for (let v = 0; v < 256; v++) {
    writeGate(mem, IDT_BASE + v * 8, SEL_CODE0, STUB_BASE + v * 16, 0xee);
    // mov byte [ss:RECORD], v ; hlt (SS: data segments may be null after leaving virtual-8086 mode)
    mem.writeBytes(
      STUB_BASE + v * 16,
      Uint8Array.of(0x36, 0xc6, 0x05, RECORD & 0xff, RECORD >> 8, 0, 0, v, 0xf4),
    );
  }
  mem.write8(RECORD, 0xff);
  m.cpu.gdtr = { base: GDT_BASE, limit: 0xff };
  m.cpu.idtr = { base: IDT_BASE, limit: 0x7ff };
  startFlat32(m, code, at);
  m.cpu.setSegment(7, { selector: SEL_TSS, base: TSS_BASE, limit: 0x67, attributes: 0x8b });
}

/**
 * The GDT the protected-mode tests share (limit 0xff: entries 0x40-0xf8 are free for tests): null,
 * ring-0 flat code 0x08 and data 0x10, ring-3 flat code 0x1b and data 0x23, the busy 32-bit TSS
 * 0x28 (ring-0 stack 0x10:0x90000), 16-bit code 0x30 and data 0x38 (64 KiB at 0).
 */
export function writeStandardGdt(mem: PhysicalMemory): void {
  for (let k = 0; k < 0x100; k += 4) mem.write32(GDT_BASE + k, 0);
  writeDescriptor(mem, GDT_BASE + 0x08, 0, 0xfffff, 0x9b, 0xc);
  writeDescriptor(mem, GDT_BASE + 0x10, 0, 0xfffff, 0x93, 0xc);
  writeDescriptor(mem, GDT_BASE + 0x18, 0, 0xfffff, 0xfb, 0xc);
  writeDescriptor(mem, GDT_BASE + 0x20, 0, 0xfffff, 0xf3, 0xc);
  writeDescriptor(mem, GDT_BASE + 0x28, TSS_BASE, 0x67, 0x8b, 0);
  writeDescriptor(mem, GDT_BASE + 0x30, 0, 0xffff, 0x9b, 0);
  writeDescriptor(mem, GDT_BASE + 0x38, 0, 0xffff, 0x93, 0);
  mem.write32(TSS_BASE + 4, 0x90000);
  mem.write32(TSS_BASE + 8, SEL_DATA0);
  mem.write16(TSS_BASE + 0x66, 0x68);
}

/** Real mode with an IVT whose handlers record the vector at RECORD and halt. */
export function startRealWithIvt(m: TestMachine, code: Uint8Array, at = 0x1000): void {
  for (let v = 0; v < 256; v++) {
    m.memory.write16(v * 4, STUB_BASE + v * 16);
    m.memory.write16(v * 4 + 2, 0);
    // mov byte [RECORD], v ; hlt
    m.memory.writeBytes(STUB_BASE + v * 16, Uint8Array.of(0xc6, 0x06, RECORD & 0xff, RECORD >> 8, v, 0xf4));
  }
  m.memory.write8(RECORD, 0xff);
  startReal(m, code, at);
}

/** Assembles 32-bit code, runs it in flat protected mode (ring 0) to HLT, returns the machine. */
export function run32(source: string, setup?: (m: TestMachine) => void): TestMachine {
  const m = makeMachine();
  startProtected(m, assemble(source, 32, 0x10000));
  setup?.(m);
  runToHalt(m.cpu);
  return m;
}

/** Assembles 16-bit code, runs it in real mode at 0:1000 to HLT, returns the machine. */
export function run16(source: string, setup?: (m: TestMachine) => void): TestMachine {
  const m = makeMachine();
  startRealWithIvt(m, assemble(source, 16, 0x1000));
  setup?.(m);
  runToHalt(m.cpu);
  return m;
}

/** The vector the recorder stubs saw (0xff if none). */
export function recorded(m: TestMachine): number {
  return m.memory.read8(RECORD);
}
