import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Clock, InstructionClock, RealTimeClock, Scheduler } from "../core/scheduler.ts";
import { exitStatus, RunLoop, type RunnableCpu } from "./run-loop.ts";

/** A CPU that retires instructions until told to halt; an interrupt wakes it when IF=1. */
class FakeCpu implements RunnableCpu {
  halted = false;
  ifFlag = true;
  retired = 0;
  pendingWake = false;
  haltAt = Number.POSITIVE_INFINITY;
  runCalls: number[] = [];
  run(max: number): number {
    this.runCalls.push(max);
    if (this.halted) {
      if (this.pendingWake && this.ifFlag) {
        this.halted = false;
        this.pendingWake = false;
      }
      return 0;
    }
    const n = Math.min(max, this.haltAt - this.retired);
    this.retired += n;
    if (this.retired >= this.haltAt) {
      this.halted = true;
      this.haltAt = Number.POSITIVE_INFINITY;
    }
    return n;
  }
  interruptsEnabled(): boolean {
    return this.ifFlag;
  }
}

/**
 * A guest that runs `instruction` for each instruction (it advances host time and reads the clock,
 * as RDTSC does; false ends the slice there) and whose slice ends when it reads overdue time.
 */
function pollingCpu(scheduler: Scheduler, instruction: () => boolean): RunnableCpu {
  let sliceEnded = false;
  scheduler.onOverdueRead = () => {
    sliceEnded = true;
  };
  return {
    halted: false,
    run(max) {
      sliceEnded = false;
      let n = 0;
      while (n < max && !sliceEnded) {
        n++;
        if (!instruction()) break;
      }
      return n;
    },
    interruptsEnabled: () => true,
  };
}

describe("RunLoop", () => {
  it("ends CPU slices at timer deadlines in deterministic time", async () => {
    const clock = new InstructionClock(1);
    const scheduler = new Scheduler(clock);
    const cpu = new FakeCpu();
    const loop = new RunLoop({ cpu, scheduler });
    const firedAt: number[] = [];
    const t = scheduler.createTimer("tick", (now) => {
      firedAt.push(now);
      if (firedAt.length === 3) loop.stop({ kind: "poweroff", detail: "done" });
      else t.setIn(10_000);
    });
    t.setAt(10_000);
    const reason = await loop.run();
    assert.equal(reason.kind, "poweroff");
    assert.deepEqual(firedAt, [10_000, 20_000, 30_000]);
    assert.equal(cpu.retired, 30_000);
  });

  it("skips guest time while halted and wakes on a timer interrupt", async () => {
    const clock = new InstructionClock(1);
    const scheduler = new Scheduler(clock);
    const cpu = new FakeCpu();
    cpu.haltAt = 1000;
    const loop = new RunLoop({ cpu, scheduler, timeoutNs: 5e6 });
    scheduler
      .createTimer("irq", () => {
        cpu.pendingWake = true;
      })
      .setAt(2e6);
    const reason = await loop.run();
    assert.equal(reason.kind, "timeout");
    assert.equal(exitStatus(reason), 124);
    // Halted from 1000 ns to 2 ms without executing, then ran until the 5 ms timeout.
    assert.equal(cpu.retired, 1000 + (5e6 - 2e6));
  });

  it("reports a CPU halted with interrupts off as halted for good", async () => {
    const scheduler = new Scheduler(new InstructionClock(1));
    const cpu = new FakeCpu();
    cpu.haltAt = 500;
    cpu.ifFlag = false;
    const reason = await new RunLoop({ cpu, scheduler, timeoutNs: 60e9 }).run();
    assert.equal(reason.kind, "halted");
    assert.match(reason.detail, /interrupts disabled/);
  });

  it("runs posted host work between slices, never inside one", async () => {
    const scheduler = new Scheduler(new InstructionClock(1));
    const cpu = new FakeCpu();
    const loop = new RunLoop({ cpu, scheduler, timeoutNs: 1e15 });
    const seenAt: number[] = [];
    loop.post(() => seenAt.push(cpu.retired));
    setImmediate(() => loop.post(() => loop.stop({ kind: "debug-exit", status: 3, detail: "exit 3" })));
    const reason = await loop.run();
    assert.deepEqual(seenAt, [0]);
    assert.equal(reason.kind, "debug-exit");
    assert.equal(exitStatus(reason), 3);
  });

  it("keeps the first stop reason", async () => {
    const scheduler = new Scheduler(new InstructionClock(1));
    const loop = new RunLoop({ cpu: new FakeCpu(), scheduler });
    loop.stop({ kind: "triple-fault", detail: "triple fault" });
    loop.stop({ kind: "poweroff", detail: "later" });
    assert.equal((await loop.run()).kind, "triple-fault");
  });

  it("ends a slice when the guest reads overdue time, so a polling guest sees every tick", async () => {
    // Real-time shape: the clock is read, not advanced by the loop. Each instruction of this
    // guest reads the time (as RDTSC does) and costs 1 µs; a timer ticks every 4 µs. The loop's
    // first slice (sized from its default rate estimate) would cover hundreds of ticks.
    let hostNs = 0;
    const clock: Clock = { now: () => hostNs };
    const scheduler = new Scheduler(clock);
    const cpu = pollingCpu(scheduler, () => {
      hostNs += 1000;
      scheduler.now();
      return true;
    });
    const loop = new RunLoop({ cpu, scheduler });
    const lateness: number[] = [];
    let due = 4000;
    const tick = scheduler.createTimer("tick", (now) => {
      lateness.push(now - due);
      due += 4000;
      if (lateness.length === 50) loop.stop({ kind: "poweroff", detail: "done" });
      else tick.setAt(due);
    });
    tick.setAt(due);
    await loop.run();
    assert.equal(lateness.length, 50);
    assert.ok(
      lateness.every((ns) => ns <= 1000),
      `ticks fired late by ${lateness.join(",")}`,
    );
  });

  it("keeps ticking through host stalls: a guest counting ticks against the TSC sees enough", async () => {
    // Linux's check_timer: with interrupts on, spin on RDTSC for 160 ms and expect more than four
    // 4 ms ticks. Here the host stalls for 300 ms every 50 instructions (a GC pause, a slow
    // translation); without the clock's step limit the first stall would end the spin.
    let hostNs = 0;
    const clock = new RealTimeClock(0, () => hostNs);
    const scheduler = new Scheduler(clock);
    let executed = 0;
    let ticks = 0;
    let spinStart = Number.NaN;
    let loop: RunLoop | undefined;
    const cpu = pollingCpu(scheduler, () => {
      hostNs += executed % 50 === 49 ? 300e6 : 10_000;
      executed++;
      const tsc = scheduler.now();
      if (Number.isNaN(spinStart)) spinStart = tsc;
      if (tsc - spinStart < 160e6) return true;
      loop!.stop({ kind: "poweroff", detail: "spin over" });
      return false;
    });
    loop = new RunLoop({ cpu, scheduler, sleep: async () => {} });
    const tick = scheduler.createTimer("pit", (now) => {
      ticks++;
      tick.setAt(now + 4e6);
    });
    tick.setAt(4e6);
    await loop.run();
    assert.ok(ticks > 4, `only ${ticks} ticks in 160 ms of guest time`);
    assert.ok(clock.lag > 0, "the stalls were hidden from the guest");
  });

  it("lets the time a halted guest waits pass in full, and stops the clock while paused", async () => {
    let hostNs = 0;
    const clock = new RealTimeClock(0, () => hostNs);
    const scheduler = new Scheduler(clock);
    const cpu = new FakeCpu();
    cpu.haltAt = 100;
    let loop: RunLoop | undefined;
    const sleep = async (ms: number): Promise<void> => {
      hostNs += ms * 1e6;
    };
    loop = new RunLoop({ cpu, scheduler, sleep });
    const wake = scheduler.createTimer("wake", () => {
      loop!.stop({ kind: "poweroff", detail: "woke" });
    });
    wake.setAt(500e6);
    await loop.run();
    assert.ok(clock.now() >= 500e6, `guest time ${clock.now()}`);
    assert.equal(clock.lag, 0);

    loop.pause();
    const pausedAt = clock.now();
    hostNs += 1e9;
    assert.equal(clock.now(), pausedAt);
    loop.resume();
    hostNs += 1e6;
    assert.equal(clock.now(), pausedAt + 1e6);
  });
});
