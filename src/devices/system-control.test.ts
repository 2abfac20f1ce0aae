import assert from "node:assert/strict";
import { test } from "node:test";
import { IrqLine } from "../core/irq.ts";
import { InstructionClock, Scheduler } from "../core/scheduler.ts";
import { Pit, pitTickTime } from "./pit.ts";
import { SystemControlPortA, SystemControlPortB } from "./system-control.ts";

function setupPortB() {
  const clock = new InstructionClock(1);
  const scheduler = new Scheduler(clock);
  const pit = new Pit(scheduler, new IrqLine("irq0"));
  const speaker: boolean[] = [];
  const port = new SystemControlPortB(scheduler, pit, (on) => speaker.push(on));
  return { clock, pit, port, speaker };
}

test("port 0x61 bit 0 gates timer 2 and bit 5 shows its OUT", () => {
  const { clock, pit, port } = setupPortB();
  // The classic BIOS/Linux calibration: mode 0 one-shot on channel 2, poll bit 5.
  port.ioWrite(0, 1, 0x00);
  pit.ioWrite(3, 1, 0xb0);
  pit.ioWrite(2, 1, 100);
  pit.ioWrite(2, 1, 0);
  port.ioWrite(0, 1, 0x01);
  assert.equal(pit.gate(2), true);
  assert.equal(port.ioRead(0, 1) & 0x20, 0);
  clock.skipTo(clock.now() + pitTickTime(101));
  assert.equal(port.ioRead(0, 1) & 0x20, 0x20);
  assert.equal(port.ioRead(0, 1) & 0x0f, 0x01);
});

test("port 0x61 bit 4 toggles every 15 microseconds", () => {
  const { clock, port } = setupPortB();
  clock.set(1_000);
  const a = port.ioRead(0, 1) & 0x10;
  clock.set(16_000);
  const b = port.ioRead(0, 1) & 0x10;
  clock.set(31_000);
  const c = port.ioRead(0, 1) & 0x10;
  assert.notEqual(a, b);
  assert.equal(a, c);
});

test("speaker hook follows gate and data bits; read-only bits are not stored", () => {
  const { port, speaker } = setupPortB();
  port.ioWrite(0, 1, 0xf3);
  assert.deepEqual(speaker, [true]);
  assert.equal(port.saveState().value, 0x03);
  port.ioWrite(0, 1, 0x01);
  assert.deepEqual(speaker, [true, false]);
});

test("port 0x61 state round-trips and re-drives the gate", () => {
  const a = setupPortB();
  a.port.ioWrite(0, 1, 0x0d);
  const b = setupPortB();
  b.port.loadState(structuredClone(a.port.saveState()), 1);
  assert.equal(b.pit.gate(2), true);
  assert.equal(b.port.ioRead(0, 1) & 0x0f, 0x0d);
  assert.throws(() => b.port.loadState({ value: "x" } as never, 1));
});

test("port 0x92 drives A20 and resets on a rising bit 0", () => {
  const a20: boolean[] = [];
  let resets = 0;
  const port = new SystemControlPortA(
    (on) => a20.push(on),
    () => resets++,
  );
  port.ioWrite(0, 1, 0x02);
  assert.deepEqual(a20, [true]);
  assert.equal(port.ioRead(0, 1), 0x02);
  port.ioWrite(0, 1, 0x02);
  assert.deepEqual(a20, [true], "no change, no call");
  port.ioWrite(0, 1, 0x03);
  assert.equal(resets, 1);
  port.ioWrite(0, 1, 0x03);
  assert.equal(resets, 1, "bit 0 must go back to 0 before it resets again");
  port.ioWrite(0, 1, 0x00);
  assert.deepEqual(a20, [true, false]);
  const copy = new SystemControlPortA(
    () => {},
    () => {},
  );
  port.ioWrite(0, 1, 0x02);
  copy.loadState(structuredClone(port.saveState()), 1);
  assert.equal(copy.a20, true);
});
