import assert from "node:assert/strict";
import { test } from "node:test";
import { IrqLine } from "../../core/irq.ts";
import { InstructionClock, Scheduler } from "../../core/scheduler.ts";
import { IoApic } from "./ioapic.ts";
import {
  APIC_EOI,
  APIC_ESR,
  APIC_ICR_HIGH,
  APIC_ICR_LOW,
  APIC_ID,
  APIC_IRR,
  APIC_ISR,
  APIC_LVT_LINT0,
  APIC_LVT_LINT1,
  APIC_LVT_TIMER,
  APIC_PPR,
  APIC_SVR,
  APIC_TIMER_CURRENT,
  APIC_TIMER_DIVIDE,
  APIC_TIMER_INITIAL,
  APIC_TPR,
  APIC_VERSION,
  LocalApic,
} from "./local-apic.ts";

function setup() {
  const clock = new InstructionClock(1);
  const scheduler = new Scheduler(clock);
  const intr = new IrqLine("intr");
  let nmis = 0;
  const picVectors: number[] = [];
  const eois: number[] = [];
  const relocations: number[] = [];
  const ioapicRef: { current?: IoApic } = {};
  const lapic = new LocalApic({
    scheduler,
    intr,
    nmi: () => nmis++,
    pic: { acknowledge: () => picVectors.shift() ?? 0x27 },
    onEoi: (v) => {
      eois.push(v);
      ioapicRef.current?.endOfInterrupt(v);
    },
    onRelocate: (b) => relocations.push(b),
  });
  const ioapic = new IoApic(lapic);
  ioapicRef.current = ioapic;
  const w = (offset: number, value: number) => lapic.mmioWrite(offset, 4, value);
  const r = (offset: number) => lapic.mmioRead(offset, 4);
  const ioWrite = (index: number, value: number) => {
    ioapic.mmioWrite(0, 4, index);
    ioapic.mmioWrite(0x10, 4, value);
  };
  const ioRead = (index: number) => {
    ioapic.mmioWrite(0, 4, index);
    return ioapic.mmioRead(0x10, 4);
  };
  return {
    clock,
    scheduler,
    intr,
    lapic,
    ioapic,
    w,
    r,
    ioWrite,
    ioRead,
    picVectors,
    eois,
    relocations,
    nmis: () => nmis,
  };
}

test("reset values: version, ID, virtual wire through LINT0", () => {
  const { r, lapic, intr, picVectors } = setup();
  assert.equal(r(APIC_VERSION), 0x50014);
  assert.equal(r(APIC_ID), 0);
  assert.equal(r(APIC_SVR), 0xff);
  assert.equal(r(APIC_LVT_LINT0), 0x700);
  assert.equal(r(APIC_LVT_TIMER), 0x10000);
  assert.equal(lapic.readBaseMsr(), 0xfee0_0900);
  lapic.setLint0(true);
  assert.equal(intr.level, true, "PIC INTR reaches the CPU");
  picVectors.push(0x08);
  assert.equal(lapic.acknowledge(), 0x08);
});

test("APIC disabled in the MSR passes the PIC through and LINT1 is NMI; relocation is reported", () => {
  const { lapic, intr, picVectors, relocations, nmis } = setup();
  lapic.writeBaseMsr(0xfee0_0000);
  assert.equal(lapic.hardwareEnabled, false);
  lapic.setLint0(true);
  assert.equal(intr.level, true);
  picVectors.push(0x30);
  assert.equal(lapic.acknowledge(), 0x30);
  lapic.setLint1(true);
  assert.equal(nmis(), 1);
  lapic.writeBaseMsr(0xfed0_0800);
  assert.deepEqual(relocations, [0xfed0_0000]);
  lapic.reset();
  assert.deepEqual(relocations, [0xfed0_0000, 0xfee0_0000], "reset moves the page back");
  assert.equal(lapic.hardwareEnabled, true);
});

test("fixed interrupts: priority, ISR/IRR, TPR masking, EOI", () => {
  const { w, r, lapic, intr } = setup();
  w(APIC_SVR, 0x1ff);
  w(APIC_LVT_LINT0, 0x10700); // mask the PIC
  lapic.deliverMessage(0x41, 0, false, 0, false);
  lapic.deliverMessage(0x61, 0, false, 0, false);
  assert.equal(intr.level, true);
  assert.equal(r(APIC_IRR + 0x20), 0x2, "vector 0x41 is bit 1 of IRR word 2");
  assert.equal(r(APIC_IRR + 0x30), 0x2, "vector 0x61 is bit 1 of IRR word 3");
  assert.equal(lapic.acknowledge(), 0x61);
  assert.equal(r(APIC_ISR + 0x30), 0x2);
  assert.equal(r(APIC_PPR), 0x60);
  assert.equal(intr.level, false, "0x41 is below the in-service class");
  w(APIC_EOI, 0);
  assert.equal(intr.level, true);
  w(APIC_TPR, 0x50);
  assert.equal(intr.level, false, "TPR 0x50 blocks class 4");
  w(APIC_TPR, 0x30);
  assert.equal(lapic.acknowledge(), 0x41);
  w(APIC_EOI, 0);
  assert.equal(r(APIC_ISR + 0x20), 0);
  assert.equal(intr.level, false);
});

test("self IPI through ICR; illegal vectors set ESR", () => {
  const { w, r, lapic } = setup();
  w(APIC_SVR, 0x1ff);
  w(APIC_ICR_HIGH, 0);
  w(APIC_ICR_LOW, (1 << 18) | 0x55); // shorthand self, fixed
  assert.equal(lapic.acknowledge(), 0x55);
  w(APIC_EOI, 0);
  w(APIC_ICR_LOW, 0x05); // illegal vector to destination 0
  w(APIC_ESR, 0);
  assert.equal(r(APIC_ESR), 0x20);
  w(APIC_ESR, 0);
  assert.equal(r(APIC_ESR), 0);
});

test("timer one-shot and periodic follow guest time and the divider", () => {
  const { w, r, lapic, clock, scheduler, intr } = setup();
  w(APIC_SVR, 0x1ff);
  w(APIC_LVT_LINT0, 0x10700);
  w(APIC_TIMER_DIVIDE, 0x3); // divide by 16
  w(APIC_LVT_TIMER, 0x40);
  w(APIC_TIMER_INITIAL, 1000);
  clock.advance(1600);
  assert.equal(r(APIC_TIMER_CURRENT), 900);
  assert.equal(scheduler.nextDeadline(), 16_000);
  clock.set(16_000);
  scheduler.runDue();
  assert.equal(intr.level, true);
  assert.equal(lapic.acknowledge(), 0x40);
  w(APIC_EOI, 0);
  assert.equal(r(APIC_TIMER_CURRENT), 0);
  assert.equal(scheduler.nextDeadline(), Number.POSITIVE_INFINITY, "one-shot stops");

  w(APIC_TIMER_DIVIDE, 0xb); // divide by 1
  w(APIC_LVT_TIMER, 0x6_1041); // periodic; the TSC-deadline mode bit and delivery status are read-only
  assert.equal(r(APIC_LVT_TIMER), 0x2_0041);
  w(APIC_TIMER_INITIAL, 5000);
  let fired = 0;
  for (let i = 1; i <= 3; i++) {
    clock.set(16_000 + i * 5000);
    scheduler.runDue();
    if (intr.level) {
      assert.equal(lapic.acknowledge(), 0x41);
      w(APIC_EOI, 0);
      fired++;
    }
  }
  assert.equal(fired, 3);
  clock.advance(1234);
  assert.equal(r(APIC_TIMER_CURRENT), 5000 - 1234);
});

test("LINT1 as NMI; masked LVT ignores the pin", () => {
  const { w, lapic, nmis } = setup();
  w(APIC_SVR, 0x1ff);
  lapic.setLint1(true);
  lapic.setLint1(false);
  assert.equal(nmis(), 0, "masked at reset");
  w(APIC_LVT_LINT1, 0x400);
  lapic.setLint1(true);
  assert.equal(nmis(), 1);
});

test("IOAPIC: identification, masking, edge delivery and remembered edges", () => {
  const { ioWrite, ioRead, ioapic, lapic, w } = setup();
  w(APIC_SVR, 0x1ff);
  w(APIC_LVT_LINT0, 0x10700);
  assert.equal(ioRead(1), 0x0017_0020);
  assert.equal(ioRead(0x10), 0x10000, "masked at reset");
  ioWrite(0, 0x0300_0000);
  assert.equal(ioRead(0), 0x0300_0000);
  ioWrite(0x10 + 2 * 2, 0x10030); // pin 2 masked, vector 0x30, edge
  ioWrite(0x11 + 2 * 2, 0);
  const line = new IrqLine("pit");
  line.connect(ioapic.input(2));
  line.pulse();
  assert.equal(lapic.acknowledge(), 0xff, "masked: nothing but the spurious vector");
  ioWrite(0x10 + 2 * 2, 0x0030); // unmask: the remembered edge arrives
  assert.equal(lapic.acknowledge(), 0x30);
  w(APIC_EOI, 0);
  ioWrite(0x11 + 2 * 2, 0x0500_0000); // physical destination 5 is not this CPU
  line.pulse();
  assert.equal(lapic.acknowledge(), 0xff);
});

test("IOAPIC level interrupts wait for EOI and redeliver while the line stays high", () => {
  const s = setup();
  s.w(APIC_SVR, 0x1ff);
  s.w(APIC_LVT_LINT0, 0x10700);
  s.ioWrite(0x10 + 2 * 11, 0x8051); // level, vector 0x51
  const line = new IrqLine("pci");
  line.connect(s.ioapic.input(11));
  line.raise();
  assert.equal(s.lapic.acknowledge(), 0x51);
  assert.ok(s.ioRead(0x10 + 2 * 11) & 0x4000, "remote IRR");
  s.w(APIC_EOI, 0);
  assert.deepEqual(s.eois, [0x51]);
  assert.equal(s.intr.level, true, "still high: delivered again");
  assert.equal(s.lapic.acknowledge(), 0x51);
  line.lower();
  s.w(APIC_EOI, 0);
  assert.equal(s.ioRead(0x10 + 2 * 11) & 0x4000, 0);
  assert.equal(s.intr.level, false);
});

test("state round-trips", () => {
  const a = setup();
  a.w(APIC_SVR, 0x1ff);
  a.w(APIC_LVT_TIMER, 0x2_0040);
  a.w(APIC_TIMER_INITIAL, 777);
  a.lapic.deliverMessage(0x70, 0, true, 0, false);
  a.ioWrite(0x10 + 2 * 5, 0x8033);
  a.clock.advance(100);
  const b = setup();
  b.clock.set(100);
  b.lapic.loadState(structuredClone(a.lapic.saveState()), 1);
  b.ioapic.loadState(structuredClone(a.ioapic.saveState()), 1);
  assert.deepEqual(b.lapic.saveState(), a.lapic.saveState());
  assert.deepEqual(b.ioapic.saveState(), a.ioapic.saveState());
  assert.equal(b.r(APIC_TIMER_CURRENT), 777 - 50, "divide by 2 after reset");
  assert.equal(b.scheduler.nextDeadline(), 777 * 2);
  assert.equal(b.intr.level, true);
  assert.throws(() => b.ioapic.loadState(null as never, 1), /not an object/);
  assert.throws(() => b.lapic.loadState({ ...a.lapic.saveState(), isr: new Uint32Array(2) }, 1));
});
