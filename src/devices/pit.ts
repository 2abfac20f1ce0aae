// The 8254 programmable interval timer: three 16-bit down-counters clocked at 1.193182 MHz.
//
// Counters are not stepped per clock. Each running channel remembers the clock tick at which it
// started counting, and its count and OUT level are computed from the guest time when asked. A
// scheduler timer exists only for a channel whose OUT drives an interrupt line (channel 0 ->
// IRQ 0), and it is armed for the next OUT edge only.
//
// Ports as offsets: 0-2 counter data, 3 control word. Channel 2's gate and OUT are reached through
// `setGate(2, ...)` and `output(2)` by port 0x61 (system-control.ts).

import type { PortDevice, Width } from "../core/bus.ts";
import type { IrqLine } from "../core/irq.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";

/** Input clock of every counter, in Hz. */
export const PIT_HZ = 1_193_182;
const NS_PER_S = 1_000_000_000;

/** Clock ticks elapsed at guest time `ns`, exact for any realistic uptime. */
export function pitTicksAt(ns: number): number {
  const seconds = Math.floor(ns / NS_PER_S);
  const rest = ns - seconds * NS_PER_S;
  return seconds * PIT_HZ + Math.floor((rest * PIT_HZ) / NS_PER_S);
}

/** Earliest guest time at which `tick` has elapsed. */
export function pitTickTime(tick: number): number {
  const seconds = Math.floor(tick / PIT_HZ);
  const rest = tick - seconds * PIT_HZ;
  return seconds * NS_PER_S + Math.ceil((rest * NS_PER_S) / PIT_HZ);
}

/** Access modes of the control word's RW field. */
const RW_LATCH = 0;
const RW_LSB = 1;
const RW_MSB = 2;
const RW_WORD = 3;
/** Control word: select field value meaning read-back command. */
const SELECT_READ_BACK = 3;
/** Read-back: do not latch the count (active low). */
const READ_BACK_NO_COUNT = 0x20;
/** Read-back: do not latch the status (active low). */
const READ_BACK_NO_STATUS = 0x10;
/** Status byte: OUT pin. */
const STATUS_OUT = 0x80;
/** Status byte: null count (a new count has not reached the counting element yet). */
const STATUS_NULL_COUNT = 0x40;

/** Latched-output read sequence. */
const LATCH_NONE = 0;
const LATCH_LSB = 1;
const LATCH_MSB = 2;
const LATCH_WORD = 3;

export interface PitChannelState {
  mode: number;
  /** The mode field as written (6 and 7 included). */
  modeBits: number;
  bcd: boolean;
  rw: number;
  count: number;
  gate: boolean;
  counting: boolean;
  /** Ticks counted so far (counting channels only). */
  elapsed: number;
  /** Counting is suspended by a low gate (modes 0 and 4). */
  paused: boolean;
  nullCount: boolean;
  writeHighNext: boolean;
  writeLowByte: number;
  readHighNext: boolean;
  latchPhase: number;
  latchValue: number;
  statusLatched: boolean;
  statusValue: number;
  /** A deferred mode 2/3 count and the ticks until it takes over (-1: none). */
  reloadCount?: number;
  reloadIn?: number;
}

class PitChannel {
  /** Counter mode 0-5. */
  mode = 0;
  /** The mode field as written (6 and 7 alias 2 and 3 but read back as written). */
  modeBits = 0;
  bcd = false;
  rw = RW_WORD;
  /** Initial count as a number of clocks (0 already mapped to 0x10000 / 10000). */
  count = 0x10000;
  gate = true;
  /** Counting has started (count written; for modes 1 and 5, also triggered). */
  counting = false;
  /** Tick at which elapsed was 0, when counting and not paused. */
  startTick = 0;
  /** Elapsed ticks frozen while the gate pauses counting. */
  pausedElapsed = -1;
  nullCount = true;
  writeHighNext = false;
  writeLowByte = 0;
  readHighNext = false;
  latchPhase = LATCH_NONE;
  latchValue = 0;
  statusLatched = false;
  statusValue = 0;
  /** Tick of the OUT edge the timer is armed for, and whether that edge rises. */
  pendingEventTick = Number.POSITIVE_INFINITY;
  pendingRising = false;
  /** A count written while mode 2 or 3 runs: it takes over at tick `reloadAt` (-1: none). */
  reloadCount = 0;
  reloadAt = -1;
  readonly line: IrqLine | undefined;
  readonly timer: Timer | undefined;

  constructor(line: IrqLine | undefined, timer: Timer | undefined) {
    this.line = line;
    this.timer = timer;
  }

  get modulus(): number {
    return this.bcd ? 10000 : 0x10000;
  }

  elapsed(tick: number): number {
    return this.pausedElapsed >= 0 ? this.pausedElapsed : tick - this.startTick;
  }

  /** Switches to a deferred count once its period boundary has passed. */
  settle(tick: number): void {
    if (this.reloadAt >= 0 && tick >= this.reloadAt) {
      this.count = this.reloadCount;
      this.startTick = this.reloadAt;
      this.reloadAt = -1;
    }
  }

  /** The counting element's value at `tick`. */
  value(tick: number): number {
    this.settle(tick);
    const n = this.count;
    if (!this.counting) return n % this.modulus;
    const d = this.elapsed(tick);
    switch (this.mode) {
      case 2:
        return n - (d % n);
      case 3: {
        const half = (n + 1) >> 1;
        const phase = d % n;
        return n - 2 * (phase < half ? phase : phase - half);
      }
      default: {
        const m = this.modulus;
        return (((n - d) % m) + m) % m;
      }
    }
  }

  /** Level of OUT at `tick`. */
  out(tick: number): boolean {
    this.settle(tick);
    if (!this.counting) return this.mode !== 0;
    const d = this.elapsed(tick);
    const n = this.count;
    switch (this.mode) {
      case 0:
      case 1:
        return d >= n;
      case 2:
        return n === 1 || d % n !== n - 1;
      case 3:
        return d % n < (n + 1) >> 1;
      default:
        return d !== n;
    }
  }

  /** The next elapsed-tick value after `d` at which OUT makes an edge worth signalling. */
  nextEvent(d: number): number {
    if (!this.counting || this.pausedElapsed >= 0) return Number.POSITIVE_INFINITY;
    const n = this.count;
    switch (this.mode) {
      case 0:
      case 1:
        return d < n ? n : Number.POSITIVE_INFINITY;
      case 2:
        return (Math.floor(d / n) + 1) * n;
      case 3: {
        const base = Math.floor(d / n) * n;
        const fall = base + ((n + 1) >> 1);
        return d < fall ? fall : base + n;
      }
      default:
        // The one-clock strobe is signalled as a low-high pair when it ends.
        return d < n + 1 ? n + 1 : Number.POSITIVE_INFINITY;
    }
  }

  /** True if the event at elapsed `e` is OUT rising. */
  isRisingEvent(e: number): boolean {
    return this.mode !== 3 || e % this.count === 0;
  }

  status(tick: number): number {
    return (
      (this.out(tick) ? STATUS_OUT : 0) |
      (this.nullCount ? STATUS_NULL_COUNT : 0) |
      (this.rw << 4) |
      (this.modeBits << 1) |
      (this.bcd ? 1 : 0)
    );
  }

  start(tick: number): void {
    this.counting = true;
    // A (re)start loads the latest count written, even one still waiting for its period's end.
    if (this.reloadAt >= 0) {
      this.count = this.reloadCount;
      this.reloadAt = -1;
    }
    if (this.gate || this.mode === 1 || this.mode === 5) {
      this.startTick = tick;
      this.pausedElapsed = -1;
    } else {
      this.pausedElapsed = 0;
    }
  }
}

export interface PitState {
  channels: PitChannelState[];
}

export class Pit implements PortDevice, Persistent<PitState> {
  readonly stateVersion = 1;
  private readonly scheduler: Scheduler;
  private readonly channels: PitChannel[];

  /** `irq0` follows channel 0's OUT. */
  constructor(scheduler: Scheduler, irq0: IrqLine) {
    this.scheduler = scheduler;
    const timer = scheduler.createTimer("pit channel 0", (now) => this.onEdge(now));
    this.channels = [new PitChannel(irq0, timer), new PitChannel(undefined, undefined)];
    this.channels.push(new PitChannel(undefined, undefined));
    this.reset();
  }

  /** Power-on state as QEMU models it: every channel in mode 3 with count 0, channel 2's gate low. */
  reset(): void {
    const tick = this.tick();
    for (let i = 0; i < 3; i++) {
      const ch = this.channels[i]!;
      ch.mode = 3;
      ch.modeBits = 3;
      ch.bcd = false;
      ch.rw = RW_WORD;
      ch.gate = i !== 2;
      ch.writeHighNext = false;
      ch.readHighNext = false;
      ch.latchPhase = LATCH_NONE;
      ch.statusLatched = false;
      ch.count = 0x10000;
      ch.reloadAt = -1;
      ch.nullCount = false;
      ch.counting = false;
      if (ch.gate) ch.start(tick);
      this.reschedule(ch, tick);
    }
  }

  private tick(): number {
    return pitTicksAt(this.scheduler.now());
  }

  /** OUT of `channel` now (channel 2 is read through port 0x61 bit 5). */
  output(channel: number): boolean {
    return this.channels[channel]!.out(this.tick());
  }

  /** Current count of `channel` (for tests and the monitor). */
  counter(channel: number): number {
    return this.channels[channel]!.value(this.tick());
  }

  gate(channel: number): boolean {
    return this.channels[channel]!.gate;
  }

  /** Drives the GATE input of `channel` (channel 2: port 0x61 bit 0). */
  setGate(channel: number, high: boolean): void {
    const ch = this.channels[channel];
    if (!ch || ch.gate === high) return;
    const tick = this.tick();
    ch.settle(tick);
    ch.gate = high;
    switch (ch.mode) {
      case 0:
      case 4:
        if (!ch.counting) break;
        if (high) {
          ch.startTick = tick - ch.pausedElapsed;
          ch.pausedElapsed = -1;
        } else {
          ch.pausedElapsed = tick - ch.startTick;
        }
        break;
      case 1:
      case 5:
        // A rising gate (re)triggers the count, if one was written.
        if (high && !ch.nullCount) ch.start(tick);
        break;
      default:
        // Modes 2 and 3: a low gate stops counting with OUT high; a rising gate reloads.
        if (high) {
          if (!ch.nullCount) ch.start(tick);
        } else {
          ch.counting = false;
        }
        break;
    }
    this.reschedule(ch, tick);
  }

  ioRead(offset: number, _width: Width): number {
    if (offset >= 3) return 0xff; // the control word register is write-only
    const ch = this.channels[offset]!;
    if (ch.statusLatched) {
      ch.statusLatched = false;
      return ch.statusValue;
    }
    switch (ch.latchPhase) {
      case LATCH_LSB:
        ch.latchPhase = LATCH_NONE;
        return ch.latchValue & 0xff;
      case LATCH_MSB:
        ch.latchPhase = LATCH_NONE;
        return ch.latchValue >> 8;
      case LATCH_WORD:
        ch.latchPhase = LATCH_MSB;
        return ch.latchValue & 0xff;
    }
    const value = this.encode(ch, ch.value(this.tick()));
    switch (ch.rw) {
      case RW_LSB:
        return value & 0xff;
      case RW_MSB:
        return value >> 8;
      default:
        ch.readHighNext = !ch.readHighNext;
        return ch.readHighNext ? value & 0xff : value >> 8;
    }
  }

  ioWrite(offset: number, _width: Width, value: number): void {
    value &= 0xff;
    if (offset >= 3) {
      this.writeControl(value);
      return;
    }
    const ch = this.channels[offset]!;
    switch (ch.rw) {
      case RW_LSB:
        this.load(ch, value);
        break;
      case RW_MSB:
        this.load(ch, value << 8);
        break;
      default:
        if (ch.writeHighNext) {
          ch.writeHighNext = false;
          this.load(ch, ch.writeLowByte | (value << 8));
        } else {
          ch.writeHighNext = true;
          ch.writeLowByte = value;
          // Mode 0 stops counting when the first byte of a new count arrives.
          if (ch.mode === 0 && ch.counting) {
            const tick = this.tick();
            ch.counting = false;
            this.reschedule(ch, tick);
          }
        }
        break;
    }
  }

  private writeControl(value: number): void {
    const select = value >> 6;
    const tick = this.tick();
    if (select === SELECT_READ_BACK) {
      for (let i = 0; i < 3; i++) {
        if ((value & (2 << i)) === 0) continue;
        const ch = this.channels[i]!;
        if ((value & READ_BACK_NO_COUNT) === 0) this.latchCount(ch, tick);
        if ((value & READ_BACK_NO_STATUS) === 0 && !ch.statusLatched) {
          ch.statusLatched = true;
          ch.statusValue = ch.status(tick);
        }
      }
      return;
    }
    const ch = this.channels[select]!;
    const rw = (value >> 4) & 3;
    if (rw === RW_LATCH) {
      this.latchCount(ch, tick);
      return;
    }
    ch.rw = rw;
    const mode = (value >> 1) & 7;
    ch.modeBits = mode;
    ch.mode = mode > 5 ? mode - 4 : mode; // 6 and 7 are aliases of modes 2 and 3
    ch.bcd = (value & 1) !== 0;
    ch.writeHighNext = false;
    ch.readHighNext = false;
    ch.latchPhase = LATCH_NONE;
    ch.statusLatched = false;
    ch.nullCount = true;
    ch.counting = false;
    ch.pausedElapsed = -1;
    ch.reloadAt = -1;
    this.reschedule(ch, tick);
  }

  private latchCount(ch: PitChannel, tick: number): void {
    // A second latch before the first was read is ignored.
    if (ch.latchPhase !== LATCH_NONE) return;
    ch.latchValue = this.encode(ch, ch.value(tick));
    ch.latchPhase = ch.rw === RW_LSB ? LATCH_LSB : ch.rw === RW_MSB ? LATCH_MSB : LATCH_WORD;
  }

  private encode(ch: PitChannel, value: number): number {
    value &= 0xffff;
    if (!ch.bcd) return value;
    value %= 10000;
    return (
      (Math.floor(value / 1000) << 12) |
      ((Math.floor(value / 100) % 10) << 8) |
      ((Math.floor(value / 10) % 10) << 4) |
      (value % 10)
    );
  }

  private decode(ch: PitChannel, raw: number): number {
    if (ch.bcd) {
      // Digits above 9 are accepted as their binary weight, as a counter chain would count them.
      raw = (raw >> 12) * 1000 + ((raw >> 8) & 15) * 100 + ((raw >> 4) & 15) * 10 + (raw & 15);
      return raw === 0 ? 10000 : raw;
    }
    return raw === 0 ? 0x10000 : raw;
  }

  private load(ch: PitChannel, raw: number): void {
    const tick = this.tick();
    ch.settle(tick);
    const count = this.decode(ch, raw);
    ch.nullCount = false;
    switch (ch.mode) {
      case 1:
      case 5:
        // The count waits for a rising gate to trigger it.
        ch.count = count;
        break;
      case 2:
      case 3:
        if (ch.counting && ch.pausedElapsed < 0) {
          // A running rate generator finishes its period with the old count (for mode 3 the
          // datasheet switches at the next half-cycle; the whole period keeps OUT's phase simple).
          ch.reloadCount = count;
          ch.reloadAt = ch.startTick + (Math.floor((tick - ch.startTick) / ch.count) + 1) * ch.count;
        } else {
          ch.count = count;
          if (ch.gate) ch.start(tick);
        }
        break;
      default:
        ch.count = count;
        ch.start(tick);
        break;
    }
    this.reschedule(ch, tick);
  }

  /** Brings the line to OUT's level and arms the timer for the next edge. */
  private reschedule(ch: PitChannel, tick: number): void {
    ch.settle(tick);
    const line = ch.line;
    const timer = ch.timer;
    if (!line || !timer) return;
    // Strobe and rate-generator pulses are signalled at their end, so the line idles high.
    const pulsed = ch.counting && (ch.mode === 2 || ch.mode === 4 || ch.mode === 5);
    line.set(pulsed || ch.out(tick));
    const next = ch.nextEvent(ch.elapsed(tick));
    if (next === Number.POSITIVE_INFINITY) {
      ch.pendingEventTick = next;
      timer.cancel();
    } else {
      ch.pendingEventTick = ch.startTick + next;
      ch.pendingRising = ch.isRisingEvent(next);
      timer.setAt(pitTickTime(ch.pendingEventTick));
    }
  }

  private onEdge(now: number): void {
    const ch = this.channels[0]!;
    const line = ch.line!;
    const tick = pitTicksAt(now);
    const due = ch.pendingEventTick;
    if (due !== Number.POSITIVE_INFINITY && tick >= due) {
      // Make a rising edge visible even if the timer ran late and OUT has moved on since: a
      // square wave that was due to fall has risen again once half a period has passed.
      const rose = ch.pendingRising || (ch.mode === 3 && tick - due >= ch.count >> 1);
      line.lower();
      if (rose) line.raise();
    }
    this.reschedule(ch, tick);
  }

  saveState(): PitState {
    const tick = this.tick();
    for (const ch of this.channels) ch.settle(tick);
    return {
      channels: this.channels.map((ch) => ({
        mode: ch.mode,
        modeBits: ch.modeBits,
        bcd: ch.bcd,
        rw: ch.rw,
        count: ch.count,
        gate: ch.gate,
        counting: ch.counting,
        elapsed: ch.counting ? ch.elapsed(tick) : 0,
        paused: ch.pausedElapsed >= 0,
        nullCount: ch.nullCount,
        writeHighNext: ch.writeHighNext,
        writeLowByte: ch.writeLowByte,
        readHighNext: ch.readHighNext,
        latchPhase: ch.latchPhase,
        latchValue: ch.latchValue,
        statusLatched: ch.statusLatched,
        statusValue: ch.statusValue,
        reloadCount: ch.reloadCount,
        reloadIn: ch.reloadAt >= 0 ? ch.reloadAt - tick : -1,
      })),
    };
  }

  loadState(state: PitState, version: number): void {
    if (version !== 1) throw new StateError(`pit: unknown state version ${version}`);
    if (!state || !Array.isArray(state.channels) || state.channels.length !== 3) {
      throw new StateError("pit: state should hold three channels");
    }
    const tick = this.tick();
    const int = (v: unknown, min: number, max: number, name: string): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
        throw new StateError(`pit: ${name} out of range`);
      }
      return v;
    };
    for (let i = 0; i < 3; i++) {
      const s = state.channels[i]!;
      if (typeof s !== "object" || s === null) throw new StateError(`pit: channel ${i} is not an object`);
      const ch = this.channels[i]!;
      ch.mode = int(s.mode, 0, 5, "mode");
      ch.modeBits = s.modeBits === undefined ? ch.mode : int(s.modeBits, 0, 7, "modeBits");
      ch.bcd = s.bcd === true;
      ch.rw = int(s.rw, 1, 3, "rw");
      ch.count = int(s.count, 1, 0x10000, "count");
      ch.gate = s.gate === true;
      ch.counting = s.counting === true;
      const elapsed = int(s.elapsed, 0, Number.MAX_SAFE_INTEGER, "elapsed");
      if (s.paused === true) {
        ch.pausedElapsed = elapsed;
      } else {
        ch.pausedElapsed = -1;
        ch.startTick = tick - elapsed;
      }
      ch.nullCount = s.nullCount === true;
      ch.writeHighNext = s.writeHighNext === true;
      ch.writeLowByte = int(s.writeLowByte, 0, 0xff, "writeLowByte");
      ch.readHighNext = s.readHighNext === true;
      ch.latchPhase = int(s.latchPhase, 0, 3, "latchPhase");
      ch.latchValue = int(s.latchValue, 0, 0xffff, "latchValue");
      ch.statusLatched = s.statusLatched === true;
      ch.statusValue = int(s.statusValue, 0, 0xff, "statusValue");
      const reloadIn =
        s.reloadIn === undefined ? -1 : int(s.reloadIn, -1, Number.MAX_SAFE_INTEGER, "reloadIn");
      ch.reloadCount = s.reloadCount === undefined ? 0 : int(s.reloadCount, 0, 0x10000, "reloadCount");
      ch.reloadAt = reloadIn >= 0 ? tick + reloadIn : -1;
      this.reschedule(ch, tick);
    }
  }
}
