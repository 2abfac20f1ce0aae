// The CPU side of the x87/MMX contract (fpu/host.ts): the FpuHost the unit calls back into, and the
// handlers for the escape opcodes D8-DF, WAIT, the MMX opcodes and FXSAVE/FXRSTOR. The CPU applies
// the CR0.EM/TS/MP checks itself and then calls the unit.

import type { Cpu } from "./cpu.ts";
import type { Insn } from "./decoder.ts";
import { AF, CF, CR0_EM, CR0_MP, CR0_NE, CR0_TS, CS, EXC_MF, EXC_NM, OF, PF, SF, ZF } from "./flags.ts";
import { FPU_DONE, FPU_FREEZE, FPU_INVALID_OPCODE, FPU_RAISE_MF, type FpuHost } from "./fpu/host.ts";

export class CpuFpuHost implements FpuHost {
  private readonly cpu: Cpu;
  operandSize32 = true;
  instructionSelector = 0;
  instructionOffset = 0;
  operandSelector = 0;
  operandOffset = 0;

  constructor(cpu: Cpu) {
    this.cpu = cpu;
  }
  get protectedMode(): boolean {
    return this.cpu.protectedMode && !this.cpu.vm86;
  }
  get eflags(): number {
    return this.cpu.getFlags();
  }
  get numericErrorNative(): boolean {
    return (this.cpu.cr0 & CR0_NE) !== 0;
  }
  read8(addr: number): number {
    return this.cpu.readLin8(addr | 0);
  }
  read16(addr: number): number {
    return this.cpu.readLin16(addr | 0);
  }
  read32(addr: number): number {
    return this.cpu.readLin32(addr | 0) >>> 0;
  }
  write8(addr: number, value: number): void {
    this.cpu.writeLin8(addr | 0, value);
  }
  write16(addr: number, value: number): void {
    this.cpu.writeLin16(addr | 0, value);
  }
  write32(addr: number, value: number): void {
    this.cpu.writeLin32(addr | 0, value);
  }
  checkWritable(addr: number, length: number): void {
    this.cpu.checkWritable(addr | 0, length);
  }
  readGpr32(index: number): number {
    return this.cpu.regs[index & 7]! >>> 0;
  }
  writeGpr32(index: number, value: number): void {
    this.cpu.regs[index & 7] = value;
  }
}

/** Linear address of the memory operand (segment-checked for its first byte), and host bookkeeping. */
function prepare(cpu: Cpu, i: Insn): number {
  const host = cpu.fpuHost;
  host.operandSize32 = i.opsize === 4;
  host.instructionSelector = cpu.segSel[CS]!;
  host.instructionOffset = cpu.instrStart >>> 0;
  if (i.mod === 3) return 0;
  const off = cpu.ea(i);
  host.operandSelector = cpu.segSel[i.seg]!;
  host.operandOffset = off;
  return cpu.readAddr(i.seg, off, 1) >>> 0;
}

function finish(cpu: Cpu, result: number): void {
  if (result === FPU_DONE) return;
  if (result === FPU_RAISE_MF) cpu.raise(EXC_MF);
  if (result === FPU_INVALID_OPCODE) cpu.ud();
  if (result === FPU_FREEZE) {
    // Waits for IRQ 13's handler: run the instruction again after pending interrupts.
    cpu.ip = cpu.instrStart;
    return;
  }
  if (result >= 0) {
    const f = cpu.getFlags() & ~(OF | SF | AF | ZF | PF | CF);
    cpu.setFlagsRaw(f | (result & (ZF | PF | CF)));
  }
}

/** D8-DF: x87 escape. Without an FPU unit every escape raises #NM (CR0.EM semantics). */
export function fpuEscape(cpu: Cpu, i: Insn): void {
  if (cpu.cr0 & (CR0_EM | CR0_TS) || !cpu.fpu) cpu.raise(EXC_NM);
  const ea = prepare(cpu, i);
  finish(cpu, cpu.fpu.executeEscape(i.opcode, i.modrm, ea, cpu.fpuHost));
}

/**
 * Register FADD/FMUL/FSUB/FSUBR/FDIV/FDIVR for translated code, which calls fpuEscape only when
 * this returns false (having changed nothing): no unit, CR0.EM or TS set, or anything the unit's
 * fast path does not take. `fip` is the instruction's offset.
 */
export function x87RegisterArithmetic(cpu: Cpu, opcode: number, modrm: number, fip: number): boolean {
  const fpu = cpu.fpu;
  return (
    fpu !== undefined &&
    (cpu.cr0 & (CR0_EM | CR0_TS)) === 0 &&
    fpu.registerArithmetic(opcode, modrm, fip, cpu.segSel[CS]!)
  );
}

/** 9B: WAIT/FWAIT. */
export function fwait(cpu: Cpu, _i: Insn): void {
  if ((cpu.cr0 & (CR0_MP | CR0_TS)) === (CR0_MP | CR0_TS)) cpu.raise(EXC_NM);
  if (!cpu.fpu) return;
  finish(cpu, cpu.fpu.waitCheck(cpu.fpuHost));
}

/** MMX opcodes (0F 6x, 7x, Dx-Fx): #UD without the unit or with CR0.EM, #NM with CR0.TS. */
export function mmx(cpu: Cpu, i: Insn): void {
  if (!cpu.fpu || cpu.cr0 & CR0_EM) cpu.ud();
  if (cpu.cr0 & CR0_TS) cpu.raise(EXC_NM);
  const ea = prepare(cpu, i);
  finish(cpu, cpu.fpu.executeMmx(i.opcode & 0xff, i.modrm, ea, i.imm & 0xff, cpu.fpuHost));
}

/** 0F AE /0 FXSAVE, /1 FXRSTOR. */
export function fxsaveRstor(cpu: Cpu, i: Insn): void {
  if (!cpu.fpu || i.mod === 3) cpu.ud();
  if (cpu.cr0 & (CR0_EM | CR0_TS)) cpu.raise(EXC_NM);
  const ea = prepare(cpu, i);
  if (ea & 15) cpu.gp(0);
  if (i.reg === 0) cpu.fpu.fxsave(ea, cpu.fpuHost);
  else cpu.fpu.fxrstor(ea, cpu.fpuHost);
}
