import assert from "node:assert/strict";
import { test } from "node:test";
import { IrqLine } from "../../core/irq.ts";
import { FpuErrorLatch } from "./ferr.ts";
import { Fpu } from "./fpu.ts";
import { FPU_DONE, FPU_FREEZE } from "./host.ts";
import { exec, TestHost } from "./test-host.ts";

function pendingDivideByZero(): { fpu: Fpu; host: TestHost; irq: IrqLine; latch: FpuErrorLatch } {
  const fpu = new Fpu();
  const host = new TestHost();
  host.numericErrorNative = false; // CR0.NE = 0: MS-DOS compatible error reporting
  const irq = new IrqLine("irq13");
  const latch = new FpuErrorLatch(fpu, irq);
  exec(fpu, host, [0xdb, 0xe3]);
  host.write16(0x80, 0x037b); // ZM clear
  exec(fpu, host, [0xd9, 0x2d], 0x80);
  exec(fpu, host, [0xd9, 0xe8]);
  exec(fpu, host, [0xd9, 0xee]);
  exec(fpu, host, [0xde, 0xf9]); // 1 / 0
  return { fpu, host, irq, latch };
}

test("FERR# raises IRQ 13 at the next waiting instruction, which freezes", () => {
  const { fpu, host, irq } = pendingDivideByZero();
  assert.equal(irq.level, false);
  assert.equal(fpu.waitCheck(host), FPU_FREEZE);
  assert.equal(irq.level, true);
});

test("a write to port F0h acknowledges IRQ 13 and lets waiting instructions through via IGNNE#", () => {
  const { fpu, host, irq, latch } = pendingDivideByZero();
  fpu.waitCheck(host);
  latch.ioWrite(0, 1, 0);
  assert.equal(irq.level, false);
  assert.equal(fpu.waitCheck(host), FPU_DONE);
  // FNCLEX drops FERR#, and IGNNE# with it: the next error freezes again.
  exec(fpu, host, [0xdb, 0xe2]);
  assert.equal(latch.saveState().ignne, false);
  exec(fpu, host, [0xd9, 0xe8]);
  exec(fpu, host, [0xd9, 0xee]);
  exec(fpu, host, [0xde, 0xf9]);
  assert.equal(fpu.waitCheck(host), FPU_FREEZE);
  assert.equal(irq.level, true);
});

test("the latch state round-trips", () => {
  const { fpu, host, latch } = pendingDivideByZero();
  fpu.waitCheck(host);
  latch.ioWrite(0, 1, 0);
  const saved = latch.saveState();
  const other = new FpuErrorLatch(new Fpu(), new IrqLine("irq13"));
  other.loadState(structuredClone(saved), 1);
  assert.deepEqual(other.saveState(), saved);
  assert.throws(() => other.loadState({ ferr: 1 as unknown as boolean, ignne: false }, 1));
});
