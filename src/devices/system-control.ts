// The PC's two system control ports.
//
// Port B (0x61 on a PC, the AT's 8255 successor): timer 2 gate and speaker data, NMI check enables,
// and read-only status: the DRAM refresh toggle that BIOS delay loops watch, timer 2's OUT.
// Port A (0x92, "fast A20" from the PS/2): A20 gate and a fast CPU reset.

import type { PortDevice, Width } from "../core/bus.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";
import type { Scheduler } from "../core/scheduler.ts";

/** Port B: timer 2 gate (rw). */
const PORT_B_TIMER2_GATE = 0x01;
/** Port B: speaker data enable (rw). */
const PORT_B_SPEAKER_DATA = 0x02;
/** Port B: the writable bits: timer 2 gate, speaker data, parity and channel check enables. */
const PORT_B_WRITABLE = 0x0f;
/** Port B: refresh request toggle (ro). */
const PORT_B_REFRESH = 0x10;
/** Port B: timer 2 OUT (ro). */
const PORT_B_TIMER2_OUT = 0x20;
/** The refresh toggle flips every 15 us of guest time. */
const REFRESH_PERIOD_NS = 15_000;

/** What port B needs from the 8254: channel 2's gate input and OUT pin. */
export interface Timer2 {
  setGate(channel: number, high: boolean): void;
  output(channel: number): boolean;
}

export interface SystemControlPortBState {
  value: number;
}

export class SystemControlPortB implements PortDevice, Persistent<SystemControlPortBState> {
  readonly stateVersion = 1;
  private value = 0;
  private readonly scheduler: Scheduler;
  private readonly pit: Timer2;
  private readonly onSpeaker: ((on: boolean) => void) | undefined;

  /** `onSpeaker` hears when the speaker is driven by timer 2 (gate and data both set) or not. */
  constructor(scheduler: Scheduler, pit: Timer2, onSpeaker?: (on: boolean) => void) {
    this.scheduler = scheduler;
    this.pit = pit;
    this.onSpeaker = onSpeaker;
  }

  /** True while timer 2 drives the speaker. */
  get speakerOn(): boolean {
    return (this.value & (PORT_B_TIMER2_GATE | PORT_B_SPEAKER_DATA)) === 3;
  }

  ioRead(_offset: number, _width: Width): number {
    const refresh = Math.floor(this.scheduler.now() / REFRESH_PERIOD_NS) & 1 ? PORT_B_REFRESH : 0;
    const out = this.pit.output(2) ? PORT_B_TIMER2_OUT : 0;
    return this.value | refresh | out;
  }

  ioWrite(_offset: number, _width: Width, value: number): void {
    this.set(value & PORT_B_WRITABLE);
  }

  reset(): void {
    this.set(0);
  }

  private set(value: number): void {
    const wasOn = this.speakerOn;
    this.value = value;
    this.pit.setGate(2, (value & PORT_B_TIMER2_GATE) !== 0);
    if (this.speakerOn !== wasOn) this.onSpeaker?.(this.speakerOn);
  }

  saveState(): SystemControlPortBState {
    return { value: this.value };
  }

  loadState(state: SystemControlPortBState, version: number): void {
    if (version !== 1) throw new StateError(`port 0x61: unknown state version ${version}`);
    const v = state?.value;
    if (typeof v !== "number" || !Number.isInteger(v))
      throw new StateError("port 0x61: value is not a number");
    this.set(v & PORT_B_WRITABLE);
  }
}

/** Port A: writing 1 here (after 0) resets the CPU. */
const PORT_A_FAST_RESET = 0x01;
/** Port A: A20 gate. */
const PORT_A_A20 = 0x02;

export interface SystemControlPortAState {
  value: number;
}

export class SystemControlPortA implements PortDevice, Persistent<SystemControlPortAState> {
  readonly stateVersion = 1;
  private value = 0;
  private readonly onA20: (enabled: boolean) => void;
  private readonly onReset: () => void;

  /** `onA20` hears every change of bit 1; `onReset` a 0 -> 1 write of bit 0. */
  constructor(onA20: (enabled: boolean) => void, onReset: () => void) {
    this.onA20 = onA20;
    this.onReset = onReset;
  }

  get a20(): boolean {
    return (this.value & PORT_A_A20) !== 0;
  }

  ioRead(_offset: number, _width: Width): number {
    return this.value;
  }

  ioWrite(_offset: number, _width: Width, value: number): void {
    value &= 0xff;
    const old = this.value;
    this.value = value;
    if ((old ^ value) & PORT_A_A20) this.onA20((value & PORT_A_A20) !== 0);
    if (value & PORT_A_FAST_RESET & ~old) this.onReset();
  }

  /** System reset: the register clears (A20 state then belongs to whoever else drives it). */
  reset(): void {
    this.value = 0;
  }

  saveState(): SystemControlPortAState {
    return { value: this.value };
  }

  loadState(state: SystemControlPortAState, version: number): void {
    if (version !== 1) throw new StateError(`port 0x92: unknown state version ${version}`);
    const v = state?.value;
    if (typeof v !== "number" || !Number.isInteger(v))
      throw new StateError("port 0x92: value is not a number");
    this.value = v & 0xff;
  }
}
