import assert from "node:assert/strict";
import { test } from "node:test";
import { IrqLine } from "../core/irq.ts";
import { InstructionClock, Scheduler } from "../core/scheduler.ts";
import { Hpet } from "./hpet.ts";

function setup() {
  const clock = new InstructionClock(1);
  const scheduler = new Scheduler(clock);
  const pins = Array.from({ length: 24 }, (_, i) =>
    i >= 20 || i === 2 || i === 8 ? new IrqLine(`gsi${i}`) : undefined,
  );
  const irq0 = new IrqLine("irq0");
  const irq8 = new IrqLine("irq8");
  const edges = { irq0: 0, irq8: 0, gsi21: 0 };
  irq0.connect((h) => {
    if (h) edges.irq0++;
  });
  irq8.connect((h) => {
    if (h) edges.irq8++;
  });
  pins[21]!.connect((h) => {
    if (h) edges.gsi21++;
  });
  const legacy: boolean[] = [];
  const hpet = new Hpet({
    scheduler,
    ioapicLines: pins,
    legacyIrq0: irq0,
    legacyIrq8: irq8,
    onLegacyChange: (on) => legacy.push(on),
  });
  const w32 = (offset: number, value: number) => hpet.mmioWrite(offset, 4, value);
  const r32 = (offset: number) => hpet.mmioRead(offset, 4);
  const run = (ns: number) => {
    clock.set(ns);
    scheduler.runDue();
  };
  return { clock, scheduler, pins, hpet, w32, r32, edges, legacy, run };
}

test("capabilities: 3 timers, 64-bit, legacy capable, 10 ns period; route capability follows wiring", () => {
  const { r32 } = setup();
  assert.equal(r32(0x0), 0x8086_a201);
  assert.equal(r32(0x4), 10_000_000);
  assert.equal(r32(0x104), (1 << 2) | (1 << 8) | 0x00f0_0000);
  assert.equal(r32(0x100) & 0x30, 0x30, "periodic and 64-bit capable");
});

test("the main counter runs at 100 MHz of guest time only while enabled", () => {
  const { r32, w32, clock } = setup();
  clock.set(1000);
  assert.equal(r32(0xf0), 0);
  w32(0x10, 1);
  clock.set(1000 + 12_345);
  assert.equal(r32(0xf0), 1234);
  w32(0x10, 0);
  clock.set(1_000_000);
  assert.equal(r32(0xf0), 1234, "frozen");
  w32(0xf0, 0xffff_fff0);
  w32(0xf4, 0);
  w32(0x10, 1);
  clock.set(1_000_000 + 200);
  assert.equal(r32(0xf0), 0x0000_0004);
  assert.equal(r32(0xf4), 1, "carries into the high half");
});

test("legacy replacement periodic timer 0 drives IRQ 0 the way Linux programs it", () => {
  const { w32, edges, legacy, run } = setup();
  w32(0x10, 0x2); // legacy on, counter halted
  assert.deepEqual(legacy, [false, true]);
  w32(0x100, (1 << 2) | (1 << 3) | (1 << 6) | (1 << 8)); // enabled, periodic, set value, 32-bit
  w32(0x108, 100_000); // first expiry at 1 ms
  w32(0x108, 100_000); // period 1 ms
  w32(0x10, 0x3);
  run(999_990);
  assert.equal(edges.irq0, 0);
  run(1_000_000);
  assert.equal(edges.irq0, 1);
  run(3_000_000);
  assert.ok(edges.irq0 >= 2);
  const before = edges.irq0;
  run(4_000_000);
  assert.equal(edges.irq0, before + 1);
});

test("one-shot level interrupt on an IOAPIC pin stays high until its status is cleared", () => {
  const { w32, r32, pins, run } = setup();
  w32(0x120, (1 << 1) | (1 << 2) | (21 << 9)); // timer 1: level, enabled, pin 21
  assert.equal((r32(0x120) >> 9) & 0x1f, 21);
  w32(0x128, 50);
  w32(0x12c, 0);
  w32(0x10, 1);
  run(499);
  assert.equal(pins[21]!.level, false);
  run(500);
  assert.equal(pins[21]!.level, true);
  assert.equal(r32(0x20), 0b10);
  w32(0x20, 0b10);
  assert.equal(pins[21]!.level, false);
  assert.equal(r32(0x20), 0);
  w32(0x120, (1 << 2) | (5 << 9)); // pin 5 is not wired: the route stays
  assert.equal((r32(0x120) >> 9) & 0x1f, 21);
});

test("32-bit mode wraps the comparator", () => {
  const { w32, r32, scheduler } = setup();
  w32(0x140, (1 << 2) | (1 << 8) | (2 << 9));
  w32(0x148, 0x10);
  w32(0x14c, 0x1234);
  assert.equal(r32(0x14c), 0);
  w32(0x10, 1);
  assert.equal(scheduler.nextDeadline(), 160);
});

test("state round-trips", () => {
  const a = setup();
  a.w32(0x120, (1 << 1) | (1 << 2) | (21 << 9));
  a.w32(0x128, 50);
  a.w32(0x12c, 0);
  a.w32(0x10, 1);
  a.run(600);
  assert.equal(a.pins[21]!.level, true);
  const b = setup();
  b.clock.set(600);
  b.hpet.loadState(structuredClone(a.hpet.saveState()), 1);
  assert.deepEqual(b.hpet.saveState(), a.hpet.saveState());
  assert.equal(b.r32(0xf0), a.r32(0xf0));
  assert.equal(b.pins[21]!.level, true);
  assert.throws(() => b.hpet.loadState(null as never, 1), /not an object/);
  assert.throws(() => b.hpet.loadState({ ...a.hpet.saveState(), counter: "x" }, 1));
});

test("a periodic timer keeps firing when the host stalls between two reads of the clock", () => {
  // Every read of guest time finds the host has been away 2.5 ms (a loaded host, a GC pause).
  // The timer's next expiry must follow from the time it fired: worked out from a later read,
  // the comparator is already behind the counter and the timer stays silent until the 32-bit
  // counter wraps (43 s).
  let stallNs = 0;
  const clock = {
    ns: 0,
    now: () => {
      clock.ns += stallNs;
      return clock.ns;
    },
  };
  const scheduler = new Scheduler(clock);
  const irq0 = new IrqLine("irq0");
  let edges = 0;
  irq0.connect((high) => {
    if (high) edges++;
  });
  const hpet = new Hpet({ scheduler, ioapicLines: [], legacyIrq0: irq0 });
  const w32 = (offset: number, value: number) => hpet.mmioWrite(offset, 4, value);
  w32(0x10, 0x2);
  w32(0x100, (1 << 2) | (1 << 3) | (1 << 6) | (1 << 8)); // enabled, periodic, set value, 32-bit
  w32(0x108, 100_000); // first expiry at 1 ms
  w32(0x108, 100_000); // period 1 ms
  w32(0x10, 0x3);
  stallNs = 2_500_000;
  for (let turn = 0; turn < 20; turn++) scheduler.runDue();
  assert.equal(edges, 20, "one interrupt per turn, the periods missed in the stalls skipped");
  assert.ok(scheduler.nextDeadline() - clock.ns <= 1_000_000, "the next expiry is at most a period away");
});
