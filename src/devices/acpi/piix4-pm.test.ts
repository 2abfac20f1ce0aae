import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus } from "../../core/bus.ts";
import { IrqLine } from "../../core/irq.ts";
import { InstructionClock, Scheduler } from "../../core/scheduler.ts";
import type { BarChange } from "../pci/function.ts";
import { Piix4Pm } from "./piix4-pm.ts";

function setup() {
  const clock = new InstructionClock(1);
  const scheduler = new Scheduler(clock);
  const sci = new IrqLine("sci");
  const events: string[] = [];
  const pm = new Piix4Pm({
    scheduler,
    sci,
    onPowerOff: () => events.push("off"),
    onSleep: (t) => events.push(`sleep${t}`),
  });
  const ports = new PortBus();
  const changes: BarChange[] = [];
  pm.onBarChange((c) => {
    changes.push(c);
    if (c.from !== undefined) ports.unregister(c.from);
    if (c.to !== undefined && c.bar.kind === "io") ports.register("pm", c.to, c.bar.size, c.bar.device);
  });
  // As SeaBIOS does: PM base 0x600 | 1, then PMIOSE.
  pm.configWrite(0x40, 4, 0x601);
  pm.configWrite(0x80, 1, 0x01);
  return { clock, scheduler, sci, events, pm, ports, changes };
}

test("identity, SMM marked as initialised, PM base decoding", () => {
  const { pm, changes } = setup();
  assert.equal(pm.configRead(0, 4), 0x7113_8086);
  assert.equal(pm.configRead(0x40, 4), 0x601);
  assert.ok(pm.configRead(0x58, 4) & 0x0200_0000);
  assert.deepEqual(
    changes.map((c) => [c.index, c.to]),
    [
      [8, 0xb2],
      [9, 0xafe0],
      [7, 0x600],
    ],
    "APM and GPE0 are fixed windows, reported as soon as the listener is installed",
  );
  pm.configWrite(0x40, 2, 0x0b01);
  assert.deepEqual([changes.at(-1)!.from, changes.at(-1)!.to], [0x600, 0xb00]);
  pm.configWrite(0x80, 1, 0);
  assert.equal(changes.at(-1)!.to, undefined);
});

test("PM timer counts at 3.579545 MHz of guest time and wraps at 24 bits", () => {
  const { clock, ports } = setup();
  assert.equal(ports.in32(0x608), 0);
  clock.advance(1_000_000_000);
  assert.equal(ports.in32(0x608), 3_579_545);
  clock.set(5_000_000_000);
  assert.equal(ports.in32(0x608), (5 * 3_579_545) % 0x100_0000);
  assert.equal(ports.in8(0x60b), 0);
});

test("timer overflow raises TMR_STS and the SCI when enabled", () => {
  const { clock, scheduler, ports, sci } = setup();
  ports.out16(0x602, 0x0001);
  const deadline = scheduler.nextDeadline();
  assert.ok(Math.abs(deadline - ((1 << 23) / 3_579_545) * 1e9) < 2);
  clock.set(deadline);
  scheduler.runDue();
  assert.equal(ports.in16(0x600) & 1, 1);
  assert.equal(sci.level, true);
  ports.out16(0x600, 0x0001);
  assert.equal(ports.in16(0x600) & 1, 0);
  assert.equal(sci.level, false);
  assert.ok(scheduler.nextDeadline() > deadline, "re-armed for the next change");
});

test("power button, ACPI enable through APM, S5 power-off", () => {
  const { ports, sci, events, pm } = setup();
  pm.pressPowerButton();
  assert.equal(sci.level, false, "not enabled");
  ports.out16(0x602, 0x0100);
  assert.equal(sci.level, true);
  ports.out16(0x600, 0x0100);
  assert.equal(sci.level, false);
  assert.equal(pm.sciEnabled, false);
  ports.out8(0xb2, 0xf1);
  assert.equal(ports.in16(0x604) & 1, 1);
  ports.out16(0x604, 0x0001 | (1 << 10) | 0x2000);
  assert.deepEqual(events, ["sleep1"]);
  ports.out16(0x604, 0x0001 | 0x2000);
  assert.deepEqual(events, ["sleep1", "off"]);
  assert.equal(ports.in16(0x604) & 0x2000, 0, "SLP_EN reads as zero");
});

test("GPE0 status and enable drive the SCI", () => {
  const { ports, sci, pm } = setup();
  ports.out16(0xafe2, 0x0002);
  assert.equal(sci.level, false);
  pm.raiseGpe(1);
  ports.out16(0xafe0, 0); // writing zero clears nothing
  assert.equal(sci.level, true);
  ports.out16(0xafe0, 2);
  assert.equal(sci.level, false);
});

test("state round-trips", () => {
  const a = setup();
  a.ports.out8(0xb2, 0xf1);
  a.ports.out16(0x602, 0x0101);
  a.pm.pressPowerButton();
  a.ports.out32(0x628, 0x1234_5678);
  const b = setup();
  b.pm.loadState(structuredClone(a.pm.saveState()), 1);
  assert.deepEqual(b.pm.saveState(), a.pm.saveState());
  assert.equal(b.sci.level, true);
  assert.equal(b.ports.in32(0x628), 0x1234_5678);
});

test("firmware defaults map the PM block where the ACPI tables say", () => {
  const clock = new InstructionClock(1);
  const pm = new Piix4Pm({ scheduler: new Scheduler(clock), sci: new IrqLine("sci") });
  const changes: BarChange[] = [];
  pm.onBarChange((c) => changes.push(c));
  pm.applyFirmwareDefaults();
  assert.deepEqual(changes.at(-1)?.index, 7);
  assert.deepEqual(changes.at(-1)?.to, 0x600);
  assert.equal(pm.configRead(0x3c, 1), 9);
  assert.equal(pm.configRead(0x90, 4), 0x701);
  assert.equal(pm.configRead(0xd2, 1), 0x09);
});
