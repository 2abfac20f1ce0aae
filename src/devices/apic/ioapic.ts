// The I/O APIC: 24 interrupt input pins, each with a redirection entry that turns a level
// change into a message to the local APIC(s). Registers are reached indirectly: the index
// register at offset 0x00 (IOREGSEL) selects, the window at 0x10 (IOWIN) reads and writes; as in
// version 0x20 parts there is also an EOI register at 0x40.
//
// Edge-triggered pins deliver on a rising edge (an edge arriving while the entry is masked is
// remembered and delivered on unmask, as QEMU does). Level-triggered pins deliver while high and
// then wait, with remote IRR set, for the local APIC's EOI of the vector before delivering again.
// Input lines are active high, whatever the polarity bit says (QEMU's convention: the board
// inverts nothing).

import type { Width } from "../../core/bus.ts";
import type { MmioDevice } from "../../core/memory.ts";
import { field, type Persistent, StateError } from "../../core/persist.ts";

export const IOAPIC_PINS = 24;
/** Register index: ID (bits 27:24). */
const IOAPIC_REG_ID = 0x00;
/** Register index: version (bits 7:0) and highest redirection entry (bits 23:16). */
const IOAPIC_REG_VERSION = 0x01;
/** Register index: arbitration id. */
const IOAPIC_REG_ARBITRATION = 0x02;
/** Register index of entry 0's low half; entry n is 0x10 + 2n (low) and 0x11 + 2n (high). */
const IOAPIC_REG_REDIRECTION = 0x10;
const IOAPIC_VERSION = 0x20;

/** MMIO offsets. */
export const IOAPIC_IOREGSEL = 0x00;
export const IOAPIC_IOWIN = 0x10;
export const IOAPIC_EOI = 0x40;

/** Redirection entry bit 11: logical destination mode. */
const RTE_LOGICAL = 0x800;
/** Bit 14: remote IRR (read-only): a level interrupt was accepted and awaits EOI. */
const RTE_REMOTE_IRR = 0x4000;
/** Bit 15: level-triggered. */
const RTE_LEVEL = 0x8000;
/** Bit 16: masked. */
const RTE_MASKED = 0x1_0000;
/** Writable bits of the low half: vector, delivery mode, destination mode, polarity, trigger, mask. */
const RTE_LOW_WRITABLE = 0x1_afff;

/** Where interrupt messages go: the local APIC (LocalApic.deliverMessage fits). */
export interface ApicMessageSink {
  deliverMessage(
    vector: number,
    mode: number,
    levelTriggered: boolean,
    destination: number,
    logical: boolean,
  ): boolean;
}

export interface IoApicState {
  readonly id: number;
  readonly select: number;
  /** Low halves then high halves of the redirection entries. */
  readonly low: Uint32Array;
  readonly high: Uint32Array;
  /** Current input levels and remembered edges, one bit per pin. */
  readonly levels: number;
  readonly pendingEdges: number;
}

export class IoApic implements MmioDevice, Persistent<IoApicState> {
  readonly stateVersion = 1;
  private readonly sink: ApicMessageSink;
  private id = 0;
  private select = 0;
  private readonly low = new Uint32Array(IOAPIC_PINS).fill(RTE_MASKED);
  private readonly high = new Uint32Array(IOAPIC_PINS);
  private levels = 0;
  private pendingEdges = 0;
  private readonly pinListeners: ((high: boolean) => void)[];

  constructor(sink: ApicMessageSink, id = 0) {
    this.sink = sink;
    this.id = id & 0xf;
    this.pinListeners = Array.from(
      { length: IOAPIC_PINS },
      (_, pin) => (high: boolean) => this.setPin(pin, high),
    );
  }

  /** The listener for input pin `pin`: `line.connect(ioapic.input(pin))`. */
  input(pin: number): (high: boolean) => void {
    const listener = this.pinListeners[pin];
    if (!listener) throw new RangeError(`ioapic: no pin ${pin}`);
    return listener;
  }

  setPin(pin: number, high: boolean): void {
    if (pin < 0 || pin >= IOAPIC_PINS) return;
    const bit = 1 << pin;
    const wasHigh = (this.levels & bit) !== 0;
    this.levels = high ? this.levels | bit : this.levels & ~bit;
    const entry = this.low[pin]!;
    if (entry & RTE_LEVEL) {
      if (high) this.service(pin);
    } else if (high && !wasHigh) {
      this.pendingEdges |= bit;
      this.service(pin);
    }
  }

  /** The local APIC's EOI broadcast for `vector`. */
  endOfInterrupt(vector: number): void {
    for (let pin = 0; pin < IOAPIC_PINS; pin++) {
      const entry = this.low[pin]!;
      if ((entry & 0xff) !== vector || !(entry & RTE_REMOTE_IRR)) continue;
      this.low[pin] = entry & ~RTE_REMOTE_IRR;
      this.service(pin);
    }
  }

  /** Power-on reset: all entries masked. */
  reset(): void {
    this.select = 0;
    this.low.fill(RTE_MASKED);
    this.high.fill(0);
    this.pendingEdges = 0;
  }

  // ---- MMIO -----------------------------------------------------------------------------

  mmioRead(offset: number, width: Width): number {
    const base = offset & ~3;
    let value = 0;
    if (base === IOAPIC_IOREGSEL) value = this.select;
    else if (base === IOAPIC_IOWIN) value = this.readRegister(this.select);
    const shift = 8 * (offset & 3);
    const mask = width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
    return ((value >>> shift) & mask) >>> 0;
  }

  mmioWrite(offset: number, width: Width, value: number): void {
    const base = offset & ~3;
    if (base === IOAPIC_IOREGSEL) {
      if ((offset & 3) === 0) this.select = value & 0xff;
    } else if (base === IOAPIC_IOWIN) {
      if (width !== 4) {
        const shift = 8 * (offset & 3);
        const mask = (width === 2 ? 0xffff : 0xff) << shift;
        value = (this.readRegister(this.select) & ~mask) | ((value << shift) & mask);
      }
      this.writeRegister(this.select, value >>> 0);
    } else if (base === IOAPIC_EOI) {
      this.endOfInterrupt(value & 0xff);
    }
  }

  private readRegister(index: number): number {
    if (index === IOAPIC_REG_ID) return (this.id << 24) >>> 0;
    if (index === IOAPIC_REG_VERSION) return ((IOAPIC_PINS - 1) << 16) | IOAPIC_VERSION;
    if (index === IOAPIC_REG_ARBITRATION) return (this.id << 24) >>> 0;
    const pin = (index - IOAPIC_REG_REDIRECTION) >> 1;
    if (index < IOAPIC_REG_REDIRECTION || pin >= IOAPIC_PINS) return 0;
    return index & 1 ? this.high[pin]! : this.low[pin]!;
  }

  private writeRegister(index: number, value: number): void {
    if (index === IOAPIC_REG_ID) {
      this.id = (value >>> 24) & 0xf;
      return;
    }
    const pin = (index - IOAPIC_REG_REDIRECTION) >> 1;
    if (index < IOAPIC_REG_REDIRECTION || pin >= IOAPIC_PINS) return;
    if (index & 1) {
      this.high[pin] = (value & 0xff00_0000) >>> 0;
      return;
    }
    const old = this.low[pin]!;
    let next = (value & RTE_LOW_WRITABLE) | (old & RTE_REMOTE_IRR);
    // An entry switched to edge mode has no interrupt awaiting EOI.
    if (!(next & RTE_LEVEL)) next &= ~RTE_REMOTE_IRR;
    this.low[pin] = next >>> 0;
    this.service(pin);
  }

  /** Delivers pin `pin`'s interrupt if its entry allows it now. */
  private service(pin: number): void {
    const entry = this.low[pin]!;
    if (entry & RTE_MASKED) return;
    const bit = 1 << pin;
    const level = (entry & RTE_LEVEL) !== 0;
    if (level) {
      if (!(this.levels & bit) || entry & RTE_REMOTE_IRR) return;
    } else if (!(this.pendingEdges & bit)) {
      return;
    }
    const mode = (entry >> 8) & 7;
    const accepted = this.sink.deliverMessage(
      entry & 0xff,
      mode,
      level,
      this.high[pin]! >>> 24,
      (entry & RTE_LOGICAL) !== 0,
    );
    if (level) {
      // Only fixed and lowest-priority deliveries are acknowledged by an EOI.
      if (accepted && mode <= 1) this.low[pin] = entry | RTE_REMOTE_IRR;
    } else {
      this.pendingEdges &= ~bit;
    }
  }

  // ---- persistence ----------------------------------------------------------------------

  saveState(): IoApicState {
    return {
      id: this.id,
      select: this.select,
      low: this.low.slice(),
      high: this.high.slice(),
      levels: this.levels,
      pendingEdges: this.pendingEdges,
    };
  }

  loadState(state: IoApicState, _version: number): void {
    if (typeof state !== "object" || state === null) throw new StateError("ioapic: state is not an object");
    const s = state as unknown as Record<string, unknown>;
    for (const name of ["low", "high"]) {
      const v = s[name];
      if (!(v instanceof Uint32Array) || v.length !== IOAPIC_PINS)
        throw new StateError(`ioapic: '${name}' is malformed`);
    }
    this.id = field(s, "id", "number") & 0xf;
    this.select = field(s, "select", "number") & 0xff;
    this.low.set(state.low);
    for (let pin = 0; pin < IOAPIC_PINS; pin++)
      this.low[pin] = this.low[pin]! & (RTE_LOW_WRITABLE | RTE_REMOTE_IRR);
    this.high.set(state.high);
    this.levels = field(s, "levels", "number") & 0xff_ffff;
    this.pendingEdges = field(s, "pendingEdges", "number") & 0xff_ffff;
  }
}
