import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InstructionClock, RealTimeClock, Scheduler } from "./scheduler.ts";

describe("Scheduler", () => {
  it("fires due timers in deadline order and reports the next deadline", () => {
    const clock = new InstructionClock(1);
    const s = new Scheduler(clock);
    const fired: string[] = [];
    const a = s.createTimer("a", () => fired.push("a"));
    const b = s.createTimer("b", () => fired.push("b"));
    const c = s.createTimer("c", () => fired.push("c"));
    a.setAt(300);
    b.setAt(100);
    c.setAt(200);
    assert.equal(s.nextDeadline(), 100);
    clock.advance(250);
    assert.equal(s.runDue(), 2);
    assert.deepEqual(fired, ["b", "c"]);
    assert.equal(s.nextDeadline(), 300);
    assert.equal(a.remaining(), 50);
    assert.equal(b.armed, false);
  });

  it("re-arms, moves and cancels timers", () => {
    const clock = new InstructionClock(10);
    const s = new Scheduler(clock);
    const fired: number[] = [];
    const t = s.createTimer("periodic", (now) => {
      fired.push(now);
      t.setIn(1000);
    });
    const other = s.createTimer("other", () => fired.push(-1));
    t.setIn(1000);
    other.setAt(500);
    other.setAt(5000); // moved later
    for (let i = 0; i < 350; i++) {
      clock.advance(1);
      s.runDue();
    }
    assert.deepEqual(fired, [1000, 2000, 3000]);
    other.cancel();
    t.cancel();
    assert.equal(s.nextDeadline(), Number.POSITIVE_INFINITY);
    other.cancel(); // cancelling twice is harmless
  });

  it("keeps a heap order under many random operations", () => {
    const clock = new InstructionClock(1);
    const s = new Scheduler(clock);
    let seed = 12345;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) % 100000;
    const timers = Array.from({ length: 64 }, (_, i) => s.createTimer(`t${i}`, () => {}));
    for (let step = 0; step < 2000; step++) {
      const t = timers[rand() % timers.length]!;
      if (rand() % 4 === 0) t.cancel();
      else t.setAt(rand());
      const expected = Math.min(...timers.map((x) => x.deadline));
      assert.equal(s.nextDeadline(), expected);
    }
    const order: number[] = [];
    for (const t of timers) if (t.armed) order.push(t.deadline);
    order.sort((x, y) => x - y);
    const fired: number[] = [];
    let next = s.nextDeadline();
    while (next !== Number.POSITIVE_INFINITY) {
      fired.push(next);
      const t = timers.find((x) => x.armed && x.deadline === next)!;
      t.cancel();
      next = s.nextDeadline();
    }
    assert.deepEqual(fired, order);
  });

  it("bounds the work of a timer that re-arms itself in the past", () => {
    const clock = new InstructionClock(1, 100);
    const s = new Scheduler(clock);
    let count = 0;
    const t = s.createTimer("storm", () => {
      count++;
      t.setAt(0);
    });
    t.setAt(0);
    const fired = s.runDue();
    assert.ok(fired > 0 && fired < 100, `fired ${fired}`);
    assert.equal(count, fired);
  });

  it("reports a read of the time only when a timer is overdue", () => {
    const clock = new InstructionClock(1);
    const s = new Scheduler(clock);
    let overdue = 0;
    s.onOverdueRead = () => overdue++;
    s.now(); // nothing armed
    s.createTimer("t", () => {}).setAt(100);
    clock.advance(99);
    s.now();
    assert.equal(overdue, 0);
    clock.advance(1);
    assert.equal(s.now(), 100);
    assert.equal(overdue, 1);
    s.runDue();
    s.now();
    assert.equal(overdue, 1);
  });

  it("rejects NaN deadlines", () => {
    const s = new Scheduler(new InstructionClock());
    assert.throws(() => s.createTimer("x", () => {}).setAt(Number.NaN), RangeError);
  });
});

describe("clocks", () => {
  it("InstructionClock is deterministic and skips ahead only forwards", () => {
    const c = new InstructionClock(2.5);
    c.advance(4);
    assert.equal(c.now(), 10);
    c.skipTo(5);
    assert.equal(c.now(), 10);
    c.skipTo(40);
    assert.equal(c.now(), 40);
    assert.equal(c.instructionsUntil(50), 4);
    assert.equal(c.instructionsUntil(10), 1);
  });

  it("InstructionClock with a live counter sees every instruction, and skips ahead", () => {
    let retired = 1000;
    const c = new InstructionClock(2, 50, () => retired);
    assert.equal(c.now(), 50);
    retired += 10;
    assert.equal(c.now(), 70, "time moves with the counter, mid-slice");
    c.advance(1000);
    assert.equal(c.now(), 70, "advance is ignored: the counter already told");
    c.skipTo(500);
    assert.equal(c.now(), 500);
    retired += 1;
    assert.equal(c.now(), 502);
    assert.equal(c.live, true);
  });

  it("RealTimeClock follows host time and stands still while paused", () => {
    let host = 1_000_000;
    const c = new RealTimeClock(0, () => host);
    assert.equal(c.now(), 0);
    host += 500;
    assert.equal(c.now(), 500);
    c.pause();
    host += 10_000;
    assert.equal(c.now(), 500);
    assert.equal(c.paused, true);
    c.resume();
    host += 100;
    assert.equal(c.now(), 600);
    c.set(5000);
    assert.equal(c.now(), 5000);
  });

  it("RealTimeClock hides a host stall beyond its step limit and repays the lag slowly", () => {
    let host = 0;
    const c = new RealTimeClock(0, () => host, 20e6);
    host += 5e6;
    assert.equal(c.now(), 5e6, "ordinary steps pass in full");
    host += 300e6; // the host did not run the VM for 300 ms
    assert.equal(c.now(), 25e6, "the guest sees at most the step limit");
    assert.equal(c.lag, 280e6);
    host += 16e6;
    assert.equal(c.now(), 42e6, "lag is repaid at 1/16 of elapsed time");
    assert.equal(c.lag, 279e6);
    for (let i = 0; i < 10_000 && c.lag > 0; i++) {
      host += 1e6;
      c.now();
    }
    assert.equal(c.lag, 0);
    assert.equal(c.now(), host, "caught up with the host");
  });

  it("RealTimeClock lets a deliberate wait pass in full", () => {
    let host = 0;
    const c = new RealTimeClock(0, () => host, 20e6);
    c.beginWait();
    host += 500e6;
    c.endWait();
    assert.equal(c.now(), 500e6);
    assert.equal(c.lag, 0);
  });

  it("RealTimeClock never goes backwards, and a pause is not a stall", () => {
    let host = 0;
    const c = new RealTimeClock(0, () => host, 20e6);
    let last = c.now();
    for (const step of [1e6, 90e6, 3, 40e6, 0, 7e6, 1e9, 2e6]) {
      host += step;
      const t = c.now();
      assert.ok(t >= last, `${t} < ${last}`);
      last = t;
    }
    const before = c.now();
    const lag = c.lag;
    c.pause();
    host += 5e9;
    c.resume();
    assert.equal(c.now(), before);
    assert.equal(c.lag, lag);
  });
});
