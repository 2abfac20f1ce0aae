// The High Precision Event Timer (IA-PC HPET specification 1.0a): a 64-bit up-counter at
// 100 MHz (10 ns period) derived from guest time, and three comparators that raise interrupts
// one-shot or periodically, as edges or as levels acknowledged through the interrupt status
// register. In legacy replacement mode timer 0 takes over IRQ 0 (the PIT's) and timer 1 IRQ 8
// (the RTC's); the board is told so it can silence those devices.
//
// Registers are 64 bits wide and reached as 32-bit halves at offsets of the 1 KiB page.

import type { Width } from "../core/bus.ts";
import type { IrqLine } from "../core/irq.ts";
import type { MmioDevice } from "../core/memory.ts";
import { type Persistent, StateError } from "../core/persist.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";

export const HPET_MMIO_SIZE = 0x400;
export const HPET_TIMERS = 3;
/** Counter period in femtoseconds: 10 ns, a 100 MHz counter. */
const HPET_PERIOD_FS = 10_000_000;
const NS_PER_TICK = 10;

const REG_CAPABILITIES = 0x000;
const REG_CONFIG = 0x010;
const REG_INTERRUPT_STATUS = 0x020;
const REG_COUNTER = 0x0f0;
const REG_TIMER_BASE = 0x100;
const TIMER_STRIDE = 0x20;
const TIMER_CONFIG = 0x00;
const TIMER_COMPARATOR = 0x08;
const TIMER_FSB_ROUTE = 0x10;

/** Capabilities bit 13 (COUNT_SIZE_CAP): the main counter is 64 bits wide. */
const CAP_COUNTER_64BIT = 1 << 13;
/** Capabilities bit 15 (LEG_RT_CAP): legacy replacement routing is supported. */
const CAP_LEGACY_ROUTE = 1 << 15;
const CAP_VENDOR_INTEL = 0x8086 << 16;
const CAP_REVISION = 0x01;

/** General configuration bit 0 (ENABLE_CNF): the main counter runs and timers fire. */
const CONFIG_ENABLE = 0x1;
/** General configuration bit 1 (LEG_RT_CNF): legacy replacement routing. */
const CONFIG_LEGACY = 0x2;

/** Timer config bit 1 (Tn_INT_TYPE_CNF): level-triggered. */
const TN_LEVEL = 1 << 1;
/** Timer config bit 2 (Tn_INT_ENB_CNF): interrupts enabled. */
const TN_ENABLE = 1 << 2;
/** Timer config bit 3 (Tn_TYPE_CNF): periodic. */
const TN_PERIODIC = 1 << 3;
/** Timer config bit 4 (Tn_PER_INT_CAP, read-only): periodic mode supported. */
const TN_PERIODIC_CAP = 1 << 4;
/** Timer config bit 5 (Tn_SIZE_CAP, read-only): 64-bit comparator. */
const TN_SIZE_64BIT_CAP = 1 << 5;
/** Timer config bit 6 (Tn_VAL_SET_CNF): the next comparator write sets the accumulator. */
const TN_SET_VALUE = 1 << 6;
/** Timer config bit 8 (Tn_32MODE_CNF): run the timer as 32 bits. */
const TN_32BIT = 1 << 8;
/** Timer config bits 13:9 (Tn_INT_ROUTE_CNF): IOAPIC input. */
const TN_ROUTE_SHIFT = 9;
const TN_ROUTE_MASK = 0x1f << TN_ROUTE_SHIFT;
/** Writable timer config bits. */
const TN_WRITABLE = TN_LEVEL | TN_ENABLE | TN_PERIODIC | TN_SET_VALUE | TN_32BIT | TN_ROUTE_MASK;

const MASK_32 = 0xffff_ffffn;
const MASK_64 = 0xffff_ffff_ffff_ffffn;
/** Shortest periodic interval honoured, in ticks, so a zero period cannot stall the host. */
const MIN_PERIOD_TICKS = 100n;

export interface HpetOptions {
  readonly scheduler: Scheduler;
  /** Outputs by IOAPIC input pin (index 0-23); missing entries are not routable. */
  readonly ioapicLines: readonly (IrqLine | undefined)[];
  /** Legacy replacement: timer 0's output (PIC IRQ 0 / IOAPIC pin 2). */
  readonly legacyIrq0?: IrqLine;
  /** Legacy replacement: timer 1's output (IRQ 8). */
  readonly legacyIrq8?: IrqLine;
  /** Legacy replacement switched on or off: the PIT and RTC interrupt outputs should be muted while on. */
  readonly onLegacyChange?: (enabled: boolean) => void;
}

export interface HpetState {
  readonly config: number;
  readonly interruptStatus: number;
  /** Counter value (decimal string, 64-bit) when it stopped, or at `counterBaseNs`. */
  readonly counter: string;
  readonly counterBaseNs: number;
  readonly timers: readonly { config: number; comparator: string; period: string }[];
}

interface HpetTimer {
  config: number;
  comparator: bigint;
  period: bigint;
  readonly event: Timer;
}

export class Hpet implements MmioDevice, Persistent<HpetState> {
  readonly stateVersion = 1;
  private readonly scheduler: Scheduler;
  private readonly ioapicLines: readonly (IrqLine | undefined)[];
  private readonly legacyIrq0: IrqLine | undefined;
  private readonly legacyIrq8: IrqLine | undefined;
  private readonly onLegacyChange: ((enabled: boolean) => void) | undefined;
  private readonly routeCapability: number;
  private config = 0;
  private interruptStatus = 0;
  /** Counter at `counterBaseNs` (running) or its frozen value (stopped). */
  private counterBase = 0n;
  private counterBaseNs = 0;
  private readonly timers: HpetTimer[];
  /** Lines each timer currently holds high (level mode). */
  private readonly driven: (IrqLine | undefined)[] = new Array(HPET_TIMERS).fill(undefined);

  constructor(options: HpetOptions) {
    this.scheduler = options.scheduler;
    this.ioapicLines = options.ioapicLines;
    this.legacyIrq0 = options.legacyIrq0;
    this.legacyIrq8 = options.legacyIrq8;
    this.onLegacyChange = options.onLegacyChange;
    let cap = 0;
    for (let pin = 0; pin < 24; pin++) if (options.ioapicLines[pin]) cap |= 1 << pin;
    this.routeCapability = cap >>> 0;
    this.timers = Array.from({ length: HPET_TIMERS }, (_, n) => ({
      config: 0,
      comparator: MASK_64,
      period: 0n,
      event: options.scheduler.createTimer(`hpet-timer${n}`, (now) => this.fire(n, now)),
    }));
    this.reset();
  }

  reset(): void {
    this.setLegacy(false);
    this.config = 0;
    this.interruptStatus = 0;
    this.counterBase = 0n;
    this.counterBaseNs = this.scheduler.now();
    this.timers.forEach((t, n) => {
      t.config = 0;
      t.comparator = MASK_64;
      t.period = 0n;
      t.event.cancel();
      this.setOutput(n, false);
    });
  }

  /** The main counter now. */
  counter(): bigint {
    if (!(this.config & CONFIG_ENABLE)) return this.counterBase;
    return this.counterAt(this.scheduler.now());
  }

  /** The running counter's value at guest time `now`. */
  private counterAt(now: number): bigint {
    return (this.counterBase + BigInt(this.elapsedTicks(now))) & MASK_64;
  }

  // ---- MMIO -----------------------------------------------------------------------------

  mmioRead(offset: number, width: Width): number {
    const register = offset & ~7;
    const value64 = this.readRegister(register);
    const shift = BigInt(8 * (offset & 7));
    const mask = width === 4 ? MASK_32 : width === 2 ? 0xffffn : 0xffn;
    return Number((value64 >> shift) & mask);
  }

  mmioWrite(offset: number, width: Width, value: number): void {
    const register = offset & ~7;
    const shift = BigInt(8 * (offset & 7));
    const mask = (width === 4 ? MASK_32 : width === 2 ? 0xffffn : 0xffn) << shift;
    const old = this.readRegister(register);
    const merged = (old & ~mask) | ((BigInt(value >>> 0) << shift) & mask);
    this.writeRegister(register, merged & MASK_64, mask);
  }

  private readRegister(register: number): bigint {
    switch (register) {
      case REG_CAPABILITIES:
        return (
          (BigInt(HPET_PERIOD_FS) << 32n) |
          BigInt(
            (CAP_VENDOR_INTEL |
              CAP_LEGACY_ROUTE |
              CAP_COUNTER_64BIT |
              ((HPET_TIMERS - 1) << 8) |
              CAP_REVISION) >>>
              0,
          )
        );
      case REG_CONFIG:
        return BigInt(this.config);
      case REG_INTERRUPT_STATUS:
        return BigInt(this.interruptStatus);
      case REG_COUNTER:
        return this.counter();
    }
    const n = (register - REG_TIMER_BASE) / TIMER_STRIDE;
    const timer = register >= REG_TIMER_BASE ? this.timers[Math.floor(n)] : undefined;
    if (!timer) return 0n;
    switch ((register - REG_TIMER_BASE) % TIMER_STRIDE) {
      case TIMER_CONFIG:
        return (
          (BigInt(this.routeCapability) << 32n) | BigInt(timer.config | TN_PERIODIC_CAP | TN_SIZE_64BIT_CAP)
        );
      case TIMER_COMPARATOR:
        return timer.config & TN_32BIT ? timer.comparator & MASK_32 : timer.comparator;
      case TIMER_FSB_ROUTE:
        return 0n;
    }
    return 0n;
  }

  /** `written` marks the bits the guest actually wrote (a 32-bit half, usually). */
  private writeRegister(register: number, value: bigint, written: bigint): void {
    switch (register) {
      case REG_CONFIG:
        this.writeConfig(Number(value & 0x3n));
        return;
      case REG_INTERRUPT_STATUS: {
        // Write 1 to clear a level-triggered timer's status, which drops its line.
        const clear = Number(value & written & 0x7n);
        this.interruptStatus &= ~clear;
        for (let n = 0; n < HPET_TIMERS; n++) if (clear & (1 << n)) this.setOutput(n, false);
        return;
      }
      case REG_COUNTER:
        // Writable only while halted, per the specification.
        if (!(this.config & CONFIG_ENABLE)) this.counterBase = value;
        return;
    }
    if (register < REG_TIMER_BASE) return;
    const n = Math.floor((register - REG_TIMER_BASE) / TIMER_STRIDE);
    const timer = this.timers[n];
    if (!timer) return;
    switch ((register - REG_TIMER_BASE) % TIMER_STRIDE) {
      case TIMER_CONFIG: {
        const oldConfig = timer.config;
        let next = Number(value & BigInt(TN_WRITABLE));
        const route = (next & TN_ROUTE_MASK) >> TN_ROUTE_SHIFT;
        // Routes the capability does not offer keep the previous route.
        if (!((this.routeCapability >>> route) & 1))
          next = (next & ~TN_ROUTE_MASK) | (oldConfig & TN_ROUTE_MASK);
        timer.config = next;
        if (next & TN_32BIT) {
          timer.comparator &= MASK_32;
          timer.period &= MASK_32;
        }
        if ((oldConfig ^ next) & (TN_LEVEL | TN_ENABLE | TN_ROUTE_MASK)) {
          // Level output moves or stops with the configuration.
          this.setOutput(n, false);
          if (next & TN_LEVEL && next & TN_ENABLE && this.interruptStatus & (1 << n)) this.setOutput(n, true);
        }
        this.schedule(n);
        return;
      }
      case TIMER_COMPARATOR: {
        let v = value;
        if (timer.config & TN_32BIT) v &= MASK_32;
        const periodic = (timer.config & TN_PERIODIC) !== 0;
        if (!periodic || timer.config & TN_SET_VALUE) timer.comparator = v;
        if (periodic) timer.period = v;
        timer.config &= ~TN_SET_VALUE;
        this.schedule(n);
        return;
      }
    }
  }

  private writeConfig(value: number): void {
    const old = this.config;
    if ((old ^ value) & CONFIG_ENABLE) {
      // Freeze or restart the counter where it stands.
      this.counterBase = this.counter();
      this.counterBaseNs = this.scheduler.now();
    }
    this.config = value;
    if ((old ^ value) & CONFIG_LEGACY) {
      for (let n = 0; n < 2; n++) this.setOutput(n, false);
      this.setLegacy((value & CONFIG_LEGACY) !== 0);
    }
    for (let n = 0; n < HPET_TIMERS; n++) this.schedule(n);
  }

  private setLegacy(enabled: boolean): void {
    this.onLegacyChange?.(enabled);
  }

  // ---- timers ---------------------------------------------------------------------------

  /**
   * Arms timer `n` for its comparator, as seen at guest time `now`. The caller passes the time it
   * worked from: a second read of the clock can be later by a host stall, and a comparator that
   * the counter passed in between would be taken for one a whole wrap away.
   */
  private schedule(n: number, now = this.scheduler.now()): void {
    const timer = this.timers[n]!;
    if (!(this.config & CONFIG_ENABLE)) {
      timer.event.cancel();
      return;
    }
    const wrap = timer.config & TN_32BIT ? MASK_32 : MASK_64;
    const elapsed = this.elapsedTicks(now);
    let delta = (timer.comparator - this.counterBase - BigInt(elapsed)) & wrap;
    if (delta === 0n) delta = wrap + 1n;
    if (delta > 1n << 50n) {
      // Centuries away: nothing to schedule.
      timer.event.cancel();
      return;
    }
    // The counter reads `counterBase + k` from counterBaseNs + 10k ns on.
    timer.event.setAt(this.counterBaseNs + (elapsed + Number(delta)) * NS_PER_TICK);
  }

  /** Whole counter ticks from `counterBaseNs` to guest time `now` (the counter running). */
  private elapsedTicks(now: number): number {
    return Math.floor((now - this.counterBaseNs) / NS_PER_TICK);
  }

  /** Timer `n`'s deadline passed at guest time `now` (the scheduler's, not a fresh read). */
  private fire(n: number, now: number): void {
    const timer = this.timers[n]!;
    if (!(this.config & CONFIG_ENABLE)) return;
    this.interrupt(n);
    const wrap = timer.config & TN_32BIT ? MASK_32 : MASK_64;
    if (timer.config & TN_PERIODIC && timer.period > 0n) {
      const period = timer.period < MIN_PERIOD_TICKS ? MIN_PERIOD_TICKS : timer.period;
      // Advance past the count at `now`, skipping periods missed while the host was busy.
      let cmp = timer.comparator;
      const behind = (this.counterAt(now) - cmp) & wrap;
      if (behind < 1n << 62n) cmp += (behind / period + 1n) * period;
      timer.comparator = cmp & wrap;
    }
    this.schedule(n, now);
  }

  private interrupt(n: number): void {
    const timer = this.timers[n]!;
    if (timer.config & TN_LEVEL) {
      this.interruptStatus |= 1 << n;
      if (timer.config & TN_ENABLE) this.setOutput(n, true);
    } else if (timer.config & TN_ENABLE) {
      const line = this.outputLine(n);
      line?.pulse();
    }
  }

  private outputLine(n: number): IrqLine | undefined {
    if (this.config & CONFIG_LEGACY) {
      if (n === 0) return this.legacyIrq0;
      if (n === 1) return this.legacyIrq8;
    }
    return this.ioapicLines[(this.timers[n]!.config & TN_ROUTE_MASK) >> TN_ROUTE_SHIFT];
  }

  private setOutput(n: number, high: boolean): void {
    const current = this.driven[n];
    if (!high) {
      current?.lower();
      this.driven[n] = undefined;
      return;
    }
    const line = this.outputLine(n);
    if (current && current !== line) current.lower();
    line?.raise();
    this.driven[n] = line;
  }

  // ---- persistence ----------------------------------------------------------------------

  saveState(): HpetState {
    return {
      config: this.config,
      interruptStatus: this.interruptStatus,
      counter: this.counterBase.toString(),
      counterBaseNs: this.counterBaseNs,
      timers: this.timers.map((t) => ({
        config: t.config,
        comparator: t.comparator.toString(),
        period: t.period.toString(),
      })),
    };
  }

  loadState(state: HpetState, _version: number): void {
    if (typeof state !== "object" || state === null) throw new StateError("hpet: state is not an object");
    const big = (text: unknown, what: string): bigint => {
      if (typeof text !== "string" || !/^\d{1,20}$/.test(text))
        throw new StateError(`hpet: ${what} is malformed`);
      return BigInt(text) & MASK_64;
    };
    if (!Array.isArray(state.timers) || state.timers.length !== HPET_TIMERS) {
      throw new StateError("hpet: timers are malformed");
    }
    const legacyBefore = (this.config & CONFIG_LEGACY) !== 0;
    for (let n = 0; n < HPET_TIMERS; n++) this.setOutput(n, false);
    this.config = Number(state.config) & (CONFIG_ENABLE | CONFIG_LEGACY);
    this.interruptStatus = Number(state.interruptStatus) & 0x7;
    this.counterBase = big(state.counter, "counter");
    this.counterBaseNs = Number(state.counterBaseNs);
    if (!Number.isFinite(this.counterBaseNs)) throw new StateError("hpet: counterBaseNs is malformed");
    state.timers.forEach((saved, n) => {
      const t = this.timers[n]!;
      t.config = Number(saved.config) & TN_WRITABLE;
      t.comparator = big(saved.comparator, "comparator");
      t.period = big(saved.period, "period");
    });
    if (legacyBefore !== ((this.config & CONFIG_LEGACY) !== 0))
      this.setLegacy((this.config & CONFIG_LEGACY) !== 0);
    for (let n = 0; n < HPET_TIMERS; n++) {
      const t = this.timers[n]!;
      if (t.config & TN_LEVEL && t.config & TN_ENABLE && this.interruptStatus & (1 << n))
        this.setOutput(n, true);
      this.schedule(n);
    }
  }
}
