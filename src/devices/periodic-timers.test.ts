// Every periodic interrupt source keeps ticking when the host stalls at any read of guest time.
//
// With a real-time clock, a loaded host can take the core away between any two reads of the
// clock (a device working out its next deadline reads it more than once). Guests count ticks
// against the TSC (Linux's check_timer panics when too few arrive), so a stall may cost the
// periods it covers, never the timer itself.
import assert from "node:assert/strict";
import { test } from "node:test";
import { IrqLine } from "../core/irq.ts";
import { type Clock, Scheduler } from "../core/scheduler.ts";
import { APIC_EOI, APIC_LVT_TIMER, APIC_SVR, APIC_TIMER_INITIAL, LocalApic } from "./apic/local-apic.ts";
import { Hpet } from "./hpet.ts";
import { Pit } from "./pit.ts";
import { Rtc } from "./rtc.ts";

const MS = 1_000_000;
const LONGEST_STALL = 30 * MS;
const TURN = MS / 2;

/** Guest time in which some reads find the host was away for up to LONGEST_STALL (seeded). */
class StallingClock implements Clock {
  ns = 0;
  stalling = false;
  /** Guest time that passed in stalls. */
  stalled = 0;
  private seed = 0x2545_f491;

  now(): number {
    if (this.stalling && this.random() < 0.2) {
      const stall = Math.floor(this.random() * LONGEST_STALL);
      this.ns += stall;
      this.stalled += stall;
    }
    return this.ns;
  }

  private random(): number {
    // xorshift32
    let x = this.seed;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.seed = x >>> 0;
    return this.seed / 0x1_0000_0000;
  }
}

interface Source {
  /** Programs the device's periodic interrupt and starts it. */
  start(): void;
  /** True once per interrupt seen since the last call (acknowledging it as a driver would). */
  poll(): boolean;
}

/**
 * Runs two seconds of guest time in half-millisecond turns. Returns the longest gap between two
 * interrupts, less the time that passed in stalls during it.
 */
function longestGap(clock: StallingClock, scheduler: Scheduler, source: Source): number {
  source.start();
  clock.stalling = true;
  let last = clock.ns;
  let stalledBefore = clock.stalled;
  let longest = 0;
  let count = 0;
  const gap = () => clock.ns - last - (clock.stalled - stalledBefore);
  while (clock.ns < 2000 * MS) {
    clock.ns += TURN;
    scheduler.runDue();
    if (source.poll()) {
      longest = Math.max(longest, gap());
      last = clock.ns;
      stalledBefore = clock.stalled;
      count++;
    }
  }
  assert.ok(count > 100, `the source interrupted ${count} times`);
  assert.ok(clock.stalled > 500 * MS, "the host stalled often");
  return Math.max(longest, gap());
}

/** The period and the turn the poll sees it in: a gap longer than that lost a tick to a stall. */
const allowed = (periodNs: number) => 2 * periodNs + 2 * TURN;

function edgeCounter(line: IrqLine): () => boolean {
  let edges = 0;
  line.connect((high) => {
    if (high) edges++;
  });
  return () => {
    const seen = edges > 0;
    edges = 0;
    return seen;
  };
}

test("PIT channel 0 in mode 2 keeps ticking through host stalls", () => {
  const clock = new StallingClock();
  const scheduler = new Scheduler(clock);
  const irq0 = new IrqLine("irq0");
  const poll = edgeCounter(irq0);
  const pit = new Pit(scheduler, irq0);
  const count = 4773; // 250 Hz
  const start = () => {
    pit.ioWrite(3, 1, 0x34);
    pit.ioWrite(0, 1, count & 0xff);
    pit.ioWrite(0, 1, count >> 8);
  };
  assert.ok(longestGap(clock, scheduler, { start, poll }) <= allowed(4 * MS));
});

test("the HPET's periodic timer 0 keeps ticking through host stalls", () => {
  const clock = new StallingClock();
  const scheduler = new Scheduler(clock);
  const irq0 = new IrqLine("irq0");
  const poll = edgeCounter(irq0);
  const hpet = new Hpet({ scheduler, ioapicLines: [], legacyIrq0: irq0 });
  const w32 = (offset: number, value: number) => hpet.mmioWrite(offset, 4, value);
  // As Linux programs it: legacy replacement, 32-bit periodic, 4 ms.
  const start = () => {
    w32(0x10, 0x2);
    w32(0x100, (1 << 2) | (1 << 3) | (1 << 6) | (1 << 8));
    w32(0x108, 400_000);
    w32(0x108, 400_000);
    w32(0x10, 0x3);
  };
  assert.ok(longestGap(clock, scheduler, { start, poll }) <= allowed(4 * MS));
});

test("the RTC's periodic interrupt keeps ticking through host stalls", () => {
  const clock = new StallingClock();
  const scheduler = new Scheduler(clock);
  const irq8 = new IrqLine("irq8");
  const rtc = new Rtc(scheduler, irq8, { wallClockMs: () => 0 });
  const cmos = (index: number, value?: number) => {
    rtc.ioWrite(0, 1, index);
    if (value === undefined) return rtc.ioRead(1, 1);
    rtc.ioWrite(1, 1, value);
    return 0;
  };
  const start = () => {
    cmos(0x0a, 0x26); // 1024 Hz
    cmos(0x0b, 0x42); // periodic interrupt enabled
  };
  // The driver reads register C, which lowers IRQ 8 until the next period.
  const poll = () => (cmos(0x0c) & 0x40) !== 0;
  assert.ok(longestGap(clock, scheduler, { start, poll }) <= allowed(MS));
});

test("the local APIC's periodic timer keeps ticking through host stalls", () => {
  const clock = new StallingClock();
  const scheduler = new Scheduler(clock);
  const intr = new IrqLine("intr");
  const lapic = new LocalApic({ scheduler, intr, nmi: () => {}, pic: { acknowledge: () => 0x27 } });
  const w = (offset: number, value: number) => lapic.mmioWrite(offset, 4, value);
  const start = () => {
    w(APIC_SVR, 0x1ff);
    w(APIC_LVT_TIMER, 0x2_0040); // periodic, vector 0x40
    w(APIC_TIMER_INITIAL, 2 * MS); // divide by 2 at reset: 4 ms
  };
  const poll = () => {
    if (!intr.level) return false;
    lapic.acknowledge();
    w(APIC_EOI, 0);
    return true;
  };
  assert.ok(longestGap(clock, scheduler, { start, poll }) <= allowed(4 * MS));
});
