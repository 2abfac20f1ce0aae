// The run loop: alternates CPU execution with guest-time events and host I/O.
//
// The CPU runs in slices that end at the scheduler's next deadline; then due timers fire, host I/O
// completions queued with `post()` run (never in the middle of an instruction), and the loop
// decides whether to continue, sleep (the CPU halted: wait for the next timer or host input), or
// stop. With a RealTimeClock guest time follows the host; with an InstructionClock every slice
// advances time by the instructions it retired, so a run is reproducible.

import { InstructionClock, RealTimeClock, type Scheduler } from "../core/scheduler.ts";

/** What the loop needs from a CPU. */
export interface RunnableCpu {
  /** Executes up to `maxInstructions`; returns how many retired (0 when halted). */
  run(maxInstructions: number): number;
  readonly halted: boolean;
  /** EFLAGS.IF: a halted CPU with interrupts off only wakes through NMI or reset. */
  interruptsEnabled(): boolean;
}

/** Why a VM stopped running. `detail` is the one line shown to the user. */
export type ExitReason =
  | { kind: "poweroff"; detail: string }
  | { kind: "reset"; detail: string }
  | { kind: "debug-exit"; status: number; detail: string }
  | { kind: "timeout"; detail: string }
  | { kind: "halted"; detail: string }
  | { kind: "triple-fault"; detail: string }
  | { kind: "stopped"; detail: string }
  | { kind: "config-error"; detail: string }
  | { kind: "error"; detail: string };

/** The process exit status a user sees for each reason (QEMU-compatible where QEMU has one). */
export function exitStatus(reason: ExitReason): number {
  switch (reason.kind) {
    case "poweroff":
    case "stopped":
      return 0;
    case "debug-exit":
      return reason.status;
    case "timeout":
      return 124;
    case "reset":
    case "triple-fault":
    case "halted":
      return 3;
    case "config-error":
      return 2;
    case "error":
      return 70;
  }
}

export interface RunLoopOptions {
  cpu: RunnableCpu;
  scheduler: Scheduler;
  /** Longest guest run without looking at the host (ms of host time), for I/O latency. */
  hostCheckMs?: number;
  /** Sleeps until `ms` from now or until woken (host input); resolves early on wake. */
  sleep?: (ms: number) => Promise<void>;
  /** Stop after this much guest time (ns), with reason "timeout". */
  timeoutNs?: number;
}

const MIN_SLICE = 256;
const MAX_SLICE = 1 << 22;
/** A halted CPU with IF=0, no NMI source and no timer left is halted for good after this long. */
const HALT_FOREVER_NS = 1e9;

export class RunLoop {
  private readonly cpu: RunnableCpu;
  private readonly scheduler: Scheduler;
  private readonly hostCheckMs: number;
  private readonly sleepFor: (ms: number) => Promise<void>;
  private readonly timeoutNs: number;
  /** The scheduler's clock when it follows the host (it is told about waits and pauses). */
  private readonly realTime: RealTimeClock | undefined;
  private readonly queue: (() => void)[] = [];
  private exit: ExitReason | undefined;
  private wake: (() => void) | undefined;
  private pauseRequested = false;
  /** Instructions per millisecond of host time, measured (adapts slice sizes in real time). */
  private instructionsPerMs = 20_000;
  /** Instructions retired since power-on. */
  retired = 0;

  constructor(options: RunLoopOptions) {
    this.cpu = options.cpu;
    this.scheduler = options.scheduler;
    this.hostCheckMs = options.hostCheckMs ?? 5;
    this.sleepFor = options.sleep ?? ((ms) => new Promise((resolve) => this.sleepTimer(resolve, ms)));
    this.timeoutNs = options.timeoutNs ?? Number.POSITIVE_INFINITY;
    this.realTime = options.scheduler.clock instanceof RealTimeClock ? options.scheduler.clock : undefined;
  }

  /** Queues work from the host (I/O completions, input) to run between CPU slices. */
  post(task: () => void): void {
    this.queue.push(task);
    this.wake?.();
  }

  /** Ends the run with `reason` at the next slice boundary (the first reason wins). */
  stop(reason: ExitReason): void {
    this.exit ??= reason;
    this.wake?.();
  }

  get stopping(): boolean {
    return this.exit !== undefined;
  }

  /** Runs until something stops the machine. */
  async run(): Promise<ExitReason> {
    const clock = this.scheduler.clock;
    const deterministic = clock instanceof InstructionClock;
    let lastYield = performance.now();
    let haltedSince = Number.NaN;
    while (this.exit === undefined) {
      this.drainQueue();
      if (this.pauseRequested) {
        await this.waitForWake(1000);
        continue;
      }
      const now = this.scheduler.now();
      if (now >= this.timeoutNs) {
        this.stop({
          kind: "timeout",
          detail: `timed out after ${(this.timeoutNs / 1e9).toFixed(1)} s of guest time`,
        });
        break;
      }
      this.scheduler.runDue(now);
      if (this.exit !== undefined) break;
      const deadline = Math.min(this.scheduler.nextDeadline(), this.timeoutNs);

      if (this.cpu.halted) {
        this.cpu.run(1); // an interrupt raised by the timers that just fired wakes the CPU
        if (!this.cpu.halted) continue;
        let wakeBy = deadline;
        if (this.cpu.interruptsEnabled()) {
          haltedSince = Number.NaN;
        } else {
          // Only NMI or reset can end this halt; give the host a while to send one.
          if (Number.isNaN(haltedSince)) haltedSince = now;
          if (now - haltedSince >= HALT_FOREVER_NS && this.queue.length === 0) {
            this.stop({ kind: "halted", detail: "the guest halted with interrupts disabled" });
            break;
          }
          wakeBy = Math.min(wakeBy, haltedSince + HALT_FOREVER_NS);
        }
        // Nothing to execute until a timer fires or the host delivers something.
        if (deterministic) {
          (clock as InstructionClock).skipTo(
            wakeBy === Number.POSITIVE_INFINITY ? now + HALT_FOREVER_NS : wakeBy,
          );
          await this.yieldToHost();
        } else {
          const waitMs = wakeBy === Number.POSITIVE_INFINITY ? 100 : (wakeBy - now) / 1e6;
          if (waitMs >= 0.05) {
            // A halted guest waits on purpose: that time passes in full, however long.
            this.realTime?.beginWait();
            await this.waitForWake(waitMs);
            this.realTime?.endWait();
          }
        }
        lastYield = performance.now();
        continue;
      }
      haltedSince = Number.NaN;

      let slice: number;
      if (deterministic) {
        slice = (clock as InstructionClock).instructionsUntil(deadline);
      } else {
        const untilDeadlineMs =
          deadline === Number.POSITIVE_INFINITY ? this.hostCheckMs : (deadline - now) / 1e6;
        slice = Math.ceil(Math.min(untilDeadlineMs, this.hostCheckMs) * this.instructionsPerMs);
      }
      slice = Math.max(deterministic ? 1 : MIN_SLICE, Math.min(MAX_SLICE, slice));
      const t0 = performance.now();
      const done = this.cpu.run(slice);
      const t1 = performance.now();
      this.retired += done;
      if (deterministic) (clock as InstructionClock).advance(done);
      else if (done >= MIN_SLICE && t1 > t0) {
        // Down at once, up slowly: an estimate that is too high makes slices outlast the timer
        // periods they were sized for, one that is too low only costs a few extra loop turns.
        const measured = done / (t1 - t0);
        this.instructionsPerMs =
          measured < this.instructionsPerMs ? measured : 0.9 * this.instructionsPerMs + 0.1 * measured;
      }
      if (t1 - lastYield >= this.hostCheckMs) {
        await this.yieldToHost();
        lastYield = performance.now();
      }
    }
    this.drainQueue();
    return this.exit!;
  }

  /** Stops executing guest code at the next slice boundary; a real-time clock stands still meanwhile. */
  pause(): void {
    this.pauseRequested = true;
    this.realTime?.pause();
  }

  resume(): void {
    this.pauseRequested = false;
    this.realTime?.resume();
    this.wake?.();
  }

  get paused(): boolean {
    return this.pauseRequested;
  }

  private drainQueue(): void {
    while (this.queue.length > 0) this.queue.shift()!();
  }

  private waitForWake(ms: number): Promise<void> {
    if (this.queue.length > 0 || this.exit !== undefined) return Promise.resolve();
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      this.sleepFor(ms).then(() => this.wake?.());
    });
  }

  private sleepTimer(resolve: () => void, ms: number): void {
    setTimeout(resolve, ms);
  }

  private yieldToHost(): Promise<void> {
    return new Promise((resolve) => setImmediate(resolve));
  }
}
