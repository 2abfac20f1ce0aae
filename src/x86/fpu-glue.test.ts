// The CPU's side of the x87/MMX unit: escapes reach the unit with their memory operand, CR0.EM/TS/MP
// raise #NM/#UD as the SDM says, FCOMI results land in EFLAGS, and CPUID advertises the unit.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CF, ZF } from "./flags.ts";
import { Fpu } from "./fpu/fpu.ts";
import {
  assemble,
  makeMachine,
  recorded,
  runToHalt,
  startProtected,
  type TestMachine,
} from "./test-support.ts";

function runWithFpu(source: string, setup?: (m: TestMachine) => void): TestMachine {
  const m = makeMachine({ fpu: new Fpu() });
  startProtected(m, assemble(source, 32, 0x10000));
  setup?.(m);
  runToHalt(m.cpu);
  return m;
}

describe("x87 and MMX through the CPU", () => {
  it("executes x87 arithmetic with memory operands", () => {
    const m = runWithFpu(
      "fninit\nfld1\nfadd st0, st0\nfild dword [0x2004]\nfmulp\nfistp dword [0x2000]\nhlt",
      (mm) => mm.memory.write32(0x2004, 21),
    );
    assert.equal(recorded(m), 0xff);
    assert.equal(m.memory.read32(0x2000), 42);
  });
  it("FCOMI sets ZF/PF/CF in EFLAGS", () => {
    const m = runWithFpu("fninit\nfld1\nfldz\nfcomi st0, st1\nhlt");
    assert.equal(m.cpu.eflags & (CF | ZF), CF);
  });
  it("CR0.TS makes escapes raise #NM; WAIT only with MP", () => {
    let m = runWithFpu("mov eax, cr0\nor eax, 8\nmov cr0, eax\nfwait\nfld1\nhlt");
    assert.equal(recorded(m), 7);
    assert.equal(m.cpu.eip > 0, true);
    m = runWithFpu("mov eax, cr0\nor eax, 0xa\nmov cr0, eax\nfwait\nhlt");
    assert.equal(recorded(m), 7);
  });
  it("MMX: #UD with CR0.EM, otherwise executes", () => {
    const m = runWithFpu("mov eax, 5\nmovd mm0, eax\npaddd mm0, mm0\nmovd ebx, mm0\nemms\nhlt");
    assert.equal(m.cpu.ebx, 10);
    const em = runWithFpu("mov eax, cr0\nor eax, 4\nmov cr0, eax\nmovd mm0, eax\nhlt");
    assert.equal(recorded(em), 6);
  });
  it("FXSAVE needs a 16-byte aligned area", () => {
    const ok = runWithFpu("fxsave [0x2000]\nhlt");
    assert.equal(recorded(ok), 0xff);
    const bad = runWithFpu("fxsave [0x2008]\nhlt");
    assert.equal(recorded(bad), 13);
  });
  it("CPUID advertises FPU, MMX and FXSR only with the unit", () => {
    const withUnit = runWithFpu("mov eax, 1\ncpuid\nhlt");
    assert.equal(withUnit.cpu.edx & ((1 << 0) | (1 << 23) | (1 << 24)), (1 << 0) | (1 << 23) | (1 << 24));
    const m = makeMachine();
    startProtected(m, assemble("mov eax, 1\ncpuid\nfld1\nhlt", 32, 0x10000));
    runToHalt(m.cpu);
    assert.equal(m.cpu.edx & ((1 << 0) | (1 << 23) | (1 << 24)), 0);
    assert.equal(recorded(m), 7, "no unit: escapes raise #NM");
  });
});
