// Guest time and the timers that devices schedule in it.
//
// Guest time is counted in virtual nanoseconds from power-on. A `Clock` says what time it is: the
// real-time clock follows the host's monotonic clock (minus the time the VM spent paused, and
// smoothing over host stalls), the instruction clock derives time from the number of instructions
// executed, which makes a run reproducible for tests. The scheduler keeps a deadline queue (a binary heap); the run loop lets
// the CPU execute until `nextDeadline()`, then calls `runDue()`.

/** What time it is in the guest, in nanoseconds. */
export interface Clock {
  now(): number;
}

/**
 * Guest time that follows host time while running and stands still while paused.
 *
 * The host does not always run the VM when it wants to: a garbage-collection pause, the first
 * translation of a large stretch of guest code, or a loaded host taking the core away can stop the
 * guest for tens of milliseconds between two instructions. On real hardware time never jumps like
 * that between two instructions, and guests rely on it: Linux's check_timer counts timer ticks
 * during 160 M TSC cycles and panics when too few arrive. So while the VM runs, at most
 * `maxStepNs` of guest time passes between two reads of the clock; the rest becomes lag, which
 * the clock repays by running 1/16 faster until it has caught up (the way NTP slews), so over
 * minutes guest time still keeps the host's. Time the VM spends waiting on purpose (halted
 * until the next timer: `beginWait`/`endWait`) passes in full.
 */
export class RealTimeClock implements Clock {
  private readonly hostNow: () => number;
  private readonly maxStepNs: number;
  private offset: number;
  private pausedAt: number | undefined;
  /** Host time at the last read. */
  private lastHost: number;
  /** Host time hidden from the guest and not yet repaid (ns). */
  private lagNs = 0;
  private waiting = false;

  /** `hostNow` returns host nanoseconds (monotonic); injectable for tests. */
  constructor(
    startNs = 0,
    hostNow: () => number = () => Number(process.hrtime.bigint()),
    maxStepNs = DEFAULT_MAX_STEP_NS,
  ) {
    this.hostNow = hostNow;
    this.maxStepNs = maxStepNs;
    this.lastHost = hostNow();
    this.offset = startNs - this.lastHost;
  }

  now(): number {
    if (this.pausedAt !== undefined) return this.pausedAt + this.offset;
    const host = this.hostNow();
    const step = host - this.lastHost;
    this.lastHost = host;
    if (step > this.maxStepNs && !this.waiting) {
      const hidden = step - this.maxStepNs;
      this.offset -= hidden;
      // Beyond MAX_LAG_NS the host is not keeping up at all; that much is given up for good.
      this.lagNs = Math.min(MAX_LAG_NS, this.lagNs + hidden);
    } else if (this.lagNs > 0 && step > 0) {
      const repaid = Math.min(this.lagNs, Math.ceil(step / 16));
      this.offset += repaid;
      this.lagNs -= repaid;
    }
    return host + this.offset;
  }

  /** Guest time held back from the host's and not yet repaid (ns). */
  get lag(): number {
    return this.lagNs;
  }

  get paused(): boolean {
    return this.pausedAt !== undefined;
  }

  pause(): void {
    if (this.pausedAt === undefined) this.pausedAt = this.hostNow();
  }

  resume(): void {
    if (this.pausedAt === undefined) return;
    const host = this.hostNow();
    this.offset -= host - this.pausedAt;
    this.lastHost = host;
    this.pausedAt = undefined;
  }

  /** The VM is about to wait for a timer or host input: the time until `endWait` passes in full. */
  beginWait(): void {
    this.waiting = true;
  }

  endWait(): void {
    this.now();
    this.waiting = false;
  }

  /** Sets guest time (restoring a snapshot); any lag is forgotten. */
  set(ns: number): void {
    const host = this.pausedAt ?? this.hostNow();
    this.offset = ns - host;
    this.lastHost = this.pausedAt === undefined ? host : this.lastHost;
    this.lagNs = 0;
  }
}

/** Longest step of guest time between two clock reads of a running VM: five 4 ms Linux ticks. */
const DEFAULT_MAX_STEP_NS = 20e6;
/** Most lag the clock repays; more than this means the host cannot run the guest in real time. */
const MAX_LAG_NS = 10e9;

/**
 * Deterministic guest time: `nsPerInstruction` per executed instruction. With a live instruction
 * counter (the CPU's), time advances with every instruction, so a device read in the middle of a
 * run slice (a PIT or PM timer poll, RDTSC) sees the exact time. Without one, the run loop reports
 * progress with `advance`. `skipTo` jumps ahead while the CPU is halted waiting for a timer.
 */
export class InstructionClock implements Clock {
  readonly nsPerInstruction: number;
  private readonly counter: (() => number) | undefined;
  /** Guest time at `baseCount` instructions. */
  private baseNs: number;
  private baseCount: number;

  constructor(nsPerInstruction = 1, startNs = 0, counter?: () => number) {
    this.nsPerInstruction = nsPerInstruction;
    this.counter = counter;
    this.baseNs = startNs;
    this.baseCount = counter ? counter() : 0;
  }

  /** True when time follows a live instruction counter (the run loop need not call `advance`). */
  get live(): boolean {
    return this.counter !== undefined;
  }

  now(): number {
    return this.counter
      ? this.baseNs + (this.counter() - this.baseCount) * this.nsPerInstruction
      : this.baseNs;
  }

  /** Reports executed instructions (only for a clock without a live counter). */
  advance(instructions: number): void {
    if (!this.counter) this.baseNs += instructions * this.nsPerInstruction;
  }

  skipTo(ns: number): void {
    if (ns > this.now()) this.set(ns);
  }

  set(ns: number): void {
    this.baseNs = ns;
    this.baseCount = this.counter ? this.counter() : 0;
  }

  /** Instructions that fit before guest time `ns` (at least 1). */
  instructionsUntil(ns: number): number {
    return Math.max(1, Math.ceil((ns - this.now()) / this.nsPerInstruction));
  }
}

export type TimerCallback = (now: number) => void;

/** A one-shot timer owned by a device. Re-arm it from its callback for periodic behaviour. */
export class Timer {
  readonly name: string;
  /** Guest time it fires at, or Infinity when not armed. */
  deadline = Number.POSITIVE_INFINITY;
  /** Position in the scheduler's heap, -1 when not queued. */
  heapIndex = -1;
  readonly callback: TimerCallback;
  private readonly scheduler: Scheduler;

  constructor(scheduler: Scheduler, name: string, callback: TimerCallback) {
    this.scheduler = scheduler;
    this.name = name;
    this.callback = callback;
  }

  get armed(): boolean {
    return this.heapIndex >= 0;
  }

  /** Fires at guest time `ns` (immediately on the next `runDue` if that is already past). */
  setAt(ns: number): void {
    this.scheduler.arm(this, ns);
  }

  /** Fires `ns` nanoseconds from now. */
  setIn(ns: number): void {
    this.scheduler.arm(this, this.scheduler.now() + ns);
  }

  cancel(): void {
    this.scheduler.disarm(this);
  }

  /** Nanoseconds left, for saving state (undefined when not armed). */
  remaining(): number | undefined {
    return this.armed ? Math.max(0, this.deadline - this.scheduler.now()) : undefined;
  }
}

export class Scheduler {
  readonly clock: Clock;
  private readonly heap: Timer[] = [];
  /**
   * Called when someone reads the time (`now`) and a timer is already overdue. The run loop sizes
   * CPU slices from an estimate of instructions per millisecond; when the guest slows down (a
   * polling loop doing RDTSC or port reads) a slice can outlast several timer periods. Guests that
   * count ticks against the TSC (Linux's check_timer) then see too few, so a read of overdue time
   * ends the slice at once.
   */
  onOverdueRead: (() => void) | undefined;

  constructor(clock: Clock) {
    this.clock = clock;
  }

  now(): number {
    const now = this.clock.now();
    if (this.onOverdueRead !== undefined && this.heap.length > 0 && this.heap[0]!.deadline <= now) {
      this.onOverdueRead();
    }
    return now;
  }

  createTimer(name: string, callback: TimerCallback): Timer {
    return new Timer(this, name, callback);
  }

  /** Earliest deadline, or Infinity when nothing is scheduled. */
  nextDeadline(): number {
    return this.heap.length > 0 ? this.heap[0]!.deadline : Number.POSITIVE_INFINITY;
  }

  /**
   * Fires every timer whose deadline has passed, earliest first; callbacks may re-arm their
   * timer or others. Returns how many fired. The number of firings per call is bounded, so a
   * timer that keeps re-arming itself in the past cannot hang the run loop.
   */
  runDue(now = this.clock.now()): number {
    let fired = 0;
    const limit = this.heap.length * 2 + 16;
    while (this.heap.length > 0 && this.heap[0]!.deadline <= now && fired < limit) {
      const timer = this.heap[0]!;
      this.disarm(timer);
      fired++;
      timer.callback(now);
    }
    return fired;
  }

  /** @internal used by Timer */
  arm(timer: Timer, ns: number): void {
    if (Number.isNaN(ns)) throw new RangeError(`timer ${timer.name}: deadline is NaN`);
    if (timer.heapIndex >= 0) {
      const old = timer.deadline;
      timer.deadline = ns;
      if (ns < old) this.siftUp(timer.heapIndex);
      else this.siftDown(timer.heapIndex);
      return;
    }
    timer.deadline = ns;
    timer.heapIndex = this.heap.length;
    this.heap.push(timer);
    this.siftUp(timer.heapIndex);
  }

  /** @internal used by Timer */
  disarm(timer: Timer): void {
    const i = timer.heapIndex;
    if (i < 0) return;
    const last = this.heap.pop()!;
    timer.heapIndex = -1;
    timer.deadline = Number.POSITIVE_INFINITY;
    if (last !== timer) {
      this.heap[i] = last;
      last.heapIndex = i;
      this.siftUp(i);
      this.siftDown(last.heapIndex);
    }
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const t = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (p.deadline <= t.deadline) break;
      heap[i] = p;
      p.heapIndex = i;
      i = parent;
    }
    heap[i] = t;
    t.heapIndex = i;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const t = heap[i]!;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap[child + 1]!.deadline < heap[child]!.deadline) child++;
      const c = heap[child]!;
      if (t.deadline <= c.deadline) break;
      heap[i] = c;
      c.heapIndex = i;
      i = child;
    }
    heap[i] = t;
    t.heapIndex = i;
  }
}
