// The local APIC of the (single) CPU: its 4 KiB register page, interrupt priority logic, the
// local vector table, the timer, and self IPIs. It sits between every interrupt source and the
// CPU: the 8259 PIC reaches it on LINT0 (ExtINT mode, as firmware leaves it: "virtual wire"),
// the IOAPIC delivers messages to it, and it drives the CPU's INTR line and answers the
// interrupt-acknowledge cycle.
//
// While the APIC is disabled in the APIC base MSR, the PIC's INTR passes straight through and
// LINT1 is the NMI pin, as on a processor without an APIC. The timer counts at a 1 GHz bus
// clock (one tick per guest nanosecond before the divider), as QEMU's model does.

import type { Width } from "../../core/bus.ts";
import type { InterruptAcknowledge } from "../../core/interrupts.ts";
import type { IrqLine } from "../../core/irq.ts";
import type { MmioDevice } from "../../core/memory.ts";
import { field, type Persistent, StateError } from "../../core/persist.ts";
import type { Scheduler, Timer } from "../../core/scheduler.ts";

// Register offsets in the APIC page.
export const APIC_ID = 0x020;
export const APIC_VERSION = 0x030;
export const APIC_TPR = 0x080;
export const APIC_APR = 0x090;
export const APIC_PPR = 0x0a0;
export const APIC_EOI = 0x0b0;
export const APIC_RRD = 0x0c0;
export const APIC_LDR = 0x0d0;
export const APIC_DFR = 0x0e0;
export const APIC_SVR = 0x0f0;
export const APIC_ISR = 0x100;
export const APIC_TMR = 0x180;
export const APIC_IRR = 0x200;
export const APIC_ESR = 0x280;
export const APIC_ICR_LOW = 0x300;
export const APIC_ICR_HIGH = 0x310;
export const APIC_LVT_TIMER = 0x320;
export const APIC_LVT_THERMAL = 0x330;
export const APIC_LVT_PERF = 0x340;
export const APIC_LVT_LINT0 = 0x350;
export const APIC_LVT_LINT1 = 0x360;
export const APIC_LVT_ERROR = 0x370;
export const APIC_TIMER_INITIAL = 0x380;
export const APIC_TIMER_CURRENT = 0x390;
export const APIC_TIMER_DIVIDE = 0x3e0;

/** Version register: version 0x14 (integrated APIC), highest LVT entry 5. */
const APIC_VERSION_VALUE = 0x0005_0014;
/** SVR bit 8: APIC software enable. */
const SVR_APIC_ENABLED = 0x100;
/** LVT bit 16: masked. */
export const LVT_MASKED = 0x1_0000;
/** LVT bits 10:8: delivery mode. */
const LVT_DELIVERY_MODE = 0x700;
/** LVT bit 12: delivery status (send pending; always idle here). */
const LVT_REMOTE_IRR = 0x4000;
/** LVT bit 15: level-triggered (LINT0/LINT1 only). */
const LVT_LEVEL = 0x8000;
/** Timer LVT bits 18:17: 01 periodic (00 one-shot; 10 TSC-deadline is not offered). */
const LVT_TIMER_PERIODIC = 0x2_0000;

// Delivery modes (LVT, ICR and IOAPIC redirection entries share the encoding).
export const DELIVERY_FIXED = 0;
export const DELIVERY_LOWEST_PRIORITY = 1;
export const DELIVERY_SMI = 2;
export const DELIVERY_NMI = 4;
export const DELIVERY_INIT = 5;
export const DELIVERY_STARTUP = 6;
export const DELIVERY_EXTINT = 7;

/** ICR bit 11: logical destination mode. */
const ICR_LOGICAL = 0x800;
/** ICR bit 15: level-triggered. */
const ICR_LEVEL = 0x8000;
/** ICR bits 19:18: destination shorthand. */
const ICR_SHORTHAND_SHIFT = 18;
const SHORTHAND_NONE = 0;
const SHORTHAND_SELF = 1;
const SHORTHAND_ALL_INCLUDING_SELF = 2;

/** ESR bit 5: an IPI with an illegal vector (< 16) was sent. */
const ESR_SEND_ILLEGAL_VECTOR = 0x20;
/** ESR bit 6: an interrupt with an illegal vector (< 16) was received. */
const ESR_RECEIVE_ILLEGAL_VECTOR = 0x40;

/** APIC base MSR (0x1B) bit 8: this is the bootstrap processor. */
export const APIC_BASE_BSP = 0x100;
/** APIC base MSR bit 11: APIC globally enabled. */
export const APIC_BASE_ENABLE = 0x800;
/** Default physical base of the APIC page. */
export const APIC_DEFAULT_BASE = 0xfee0_0000;

/** Reset value of LINT0 on the BSP: ExtINT, unmasked, so the PIC works through the APIC. */
const LINT0_RESET_EXTINT = 0x700;
/** Shortest periodic timer interval in guest ns, so a zero-length period cannot stall the host. */
const MIN_PERIODIC_NS = 1000;

export interface LocalApicOptions {
  readonly scheduler: Scheduler;
  /** The CPU's INTR input. */
  readonly intr: IrqLine;
  /** An NMI for the CPU (edge). */
  readonly nmi: () => void;
  /** The 8259 PIC, asked for the vector of ExtINT interrupts (and in virtual-wire mode). */
  readonly pic: InterruptAcknowledge;
  /** EOI of a level-triggered vector: broadcast to the IOAPIC(s). */
  readonly onEoi?: (vector: number) => void;
  /** The APIC base moved (or was enabled at a new base): the builder remaps the page. */
  readonly onRelocate?: (base: number) => void;
  readonly apicId?: number;
}

export interface LocalApicState {
  readonly apicBase: number;
  readonly id: number;
  readonly tpr: number;
  readonly ldr: number;
  readonly dfr: number;
  readonly svr: number;
  readonly isr: Uint32Array;
  readonly tmr: Uint32Array;
  readonly irr: Uint32Array;
  readonly esr: number;
  readonly pendingEsr: number;
  readonly icrLow: number;
  readonly icrHigh: number;
  readonly lvt: Uint32Array;
  readonly timerInitial: number;
  readonly timerDivide: number;
  /** Guest time the current count was (re)loaded. */
  readonly timerLoadNs: number;
  readonly timerRunning: boolean;
  readonly lint0: boolean;
  readonly lint1: boolean;
  readonly extIntPending: boolean;
}

/** LVT order in the `lvt` array. */
const LVT_OFFSETS = [
  APIC_LVT_TIMER,
  APIC_LVT_THERMAL,
  APIC_LVT_PERF,
  APIC_LVT_LINT0,
  APIC_LVT_LINT1,
  APIC_LVT_ERROR,
];
const LVT_TIMER_INDEX = 0;
const LVT_LINT0_INDEX = 3;
const LVT_LINT1_INDEX = 4;
const LVT_ERROR_INDEX = 5;
/** Writable LVT bits per entry: vector, delivery mode, polarity, trigger, mask, timer mode. */
const LVT_WRITE_MASKS = [0x3_00ff, 0x1_07ff, 0x1_07ff, 0x1_a7ff, 0x1_a7ff, 0x1_00ff];

export class LocalApic implements MmioDevice, InterruptAcknowledge, Persistent<LocalApicState> {
  readonly stateVersion = 1;
  private readonly scheduler: Scheduler;
  private readonly intr: IrqLine;
  private readonly nmi: () => void;
  private readonly pic: InterruptAcknowledge;
  private readonly onEoi: ((vector: number) => void) | undefined;
  private readonly onRelocate: ((base: number) => void) | undefined;
  private readonly timer: Timer;

  private apicBase = (APIC_DEFAULT_BASE | APIC_BASE_BSP | APIC_BASE_ENABLE) >>> 0;
  private id: number;
  private tpr = 0;
  private ldr = 0;
  private dfr = 0xffff_ffff;
  private svr = 0xff;
  private readonly isr = new Uint32Array(8);
  private readonly tmr = new Uint32Array(8);
  private readonly irr = new Uint32Array(8);
  private esr = 0;
  /** Errors since the last ESR write (the ESR shows them after the next write). */
  private pendingEsr = 0;
  private icrLow = 0;
  private icrHigh = 0;
  private readonly lvt = new Uint32Array(6);
  private timerInitial = 0;
  private timerDivide = 0;
  private timerLoadNs = 0;
  private timerRunning = false;
  private lint0 = false;
  private lint1 = false;
  /** An ExtINT message (from the IOAPIC) waits for the INTA cycle. */
  private extIntPending = false;

  constructor(options: LocalApicOptions) {
    this.scheduler = options.scheduler;
    this.intr = options.intr;
    this.nmi = options.nmi;
    this.pic = options.pic;
    this.onEoi = options.onEoi;
    this.onRelocate = options.onRelocate;
    this.id = options.apicId ?? 0;
    this.timer = options.scheduler.createTimer("lapic-timer", () => this.timerExpired());
    this.reset();
  }

  /** Power-on / INIT reset. */
  reset(): void {
    const oldBase = this.baseAddress;
    this.apicBase = (APIC_DEFAULT_BASE | APIC_BASE_BSP | APIC_BASE_ENABLE) >>> 0;
    this.tpr = 0;
    this.ldr = 0;
    this.dfr = 0xffff_ffff;
    this.svr = 0xff;
    this.isr.fill(0);
    this.tmr.fill(0);
    this.irr.fill(0);
    this.esr = 0;
    this.pendingEsr = 0;
    this.icrLow = 0;
    this.icrHigh = 0;
    this.lvt.fill(LVT_MASKED);
    this.lvt[LVT_LINT0_INDEX] = LINT0_RESET_EXTINT;
    this.timerInitial = 0;
    this.timerDivide = 0;
    this.timerRunning = false;
    this.timer.cancel();
    this.extIntPending = false;
    // Only a relocated page moves back (the constructor's reset finds it where it starts).
    if (oldBase !== this.baseAddress) this.onRelocate?.(this.baseAddress);
    this.update();
  }

  // ---- the CPU's side ---------------------------------------------------------------------

  /** RDMSR 0x1B. */
  readBaseMsr(): number {
    return this.apicBase >>> 0;
  }

  /** WRMSR 0x1B (low 32 bits; this machine has no physical addresses above 4 GiB for it). */
  writeBaseMsr(value: number): void {
    const oldBase = this.baseAddress;
    const wasEnabled = this.hardwareEnabled;
    this.apicBase = ((value & 0xffff_f000) | (value & APIC_BASE_ENABLE) | APIC_BASE_BSP) >>> 0;
    if (wasEnabled && !this.hardwareEnabled) {
      // Disabling through the MSR software-disables the APIC and masks the LVT; until it is
      // enabled again the PIC drives INTR directly.
      this.svr &= ~SVR_APIC_ENABLED;
      for (let i = 0; i < this.lvt.length; i++) this.lvt[i] = this.lvt[i]! | LVT_MASKED;
    }
    if (this.baseAddress !== oldBase) this.onRelocate?.(this.baseAddress);
    this.update();
  }

  get baseAddress(): number {
    return (this.apicBase & 0xffff_f000) >>> 0;
  }

  get hardwareEnabled(): boolean {
    return (this.apicBase & APIC_BASE_ENABLE) !== 0;
  }

  private get softwareEnabled(): boolean {
    return (this.svr & SVR_APIC_ENABLED) !== 0;
  }

  /** The INTA cycle. */
  acknowledge(): number {
    if (this.hardwareEnabled && this.softwareEnabled) {
      const vector = this.deliverableVector();
      if (vector >= 0) {
        clearBit(this.irr, vector);
        setBit(this.isr, vector);
        this.update();
        return vector;
      }
    }
    if (this.extIntPending || this.picRoutedToIntr()) {
      this.extIntPending = false;
      const vector = this.pic.acknowledge();
      this.update();
      return vector;
    }
    // The request was withdrawn (or masked by the TPR) between INTR and INTA.
    this.update();
    return this.svr & 0xff;
  }

  // ---- inputs ---------------------------------------------------------------------------

  /** LINT0 (the PIC's INTR output). */
  setLint0(high: boolean): void {
    const rising = high && !this.lint0;
    this.lint0 = high;
    this.localInterrupt(LVT_LINT0_INDEX, high, rising);
    this.update();
  }

  /** LINT1 (NMI on PCs). */
  setLint1(high: boolean): void {
    const rising = high && !this.lint1;
    this.lint1 = high;
    if (!this.hardwareEnabled) {
      if (rising) this.nmi();
      return;
    }
    this.localInterrupt(LVT_LINT1_INDEX, high, rising);
    this.update();
  }

  /**
   * A message from an IOAPIC (or MSI). Returns false if this APIC is not a destination.
   * `logical`: destination is a logical (LDR) mask, else a physical APIC id (0xFF broadcast).
   */
  deliverMessage(
    vector: number,
    mode: number,
    levelTriggered: boolean,
    destination: number,
    logical: boolean,
  ): boolean {
    if (!this.hardwareEnabled || !this.matchesDestination(destination, logical)) return false;
    this.acceptInterrupt(vector, mode, levelTriggered);
    this.update();
    return true;
  }

  // ---- MMIO -----------------------------------------------------------------------------

  mmioRead(offset: number, width: Width): number {
    const value = this.readRegister(offset & 0xff0);
    if ((offset & 0xf) >= 4) return 0;
    const shift = 8 * (offset & 3);
    const mask = width === 4 ? 0xffff_ffff : width === 2 ? 0xffff : 0xff;
    return ((value >>> shift) & mask) >>> 0;
  }

  mmioWrite(offset: number, width: Width, value: number): void {
    if ((offset & 0xf) >= 4) return;
    const register = offset & 0xff0;
    if (width !== 4) {
      // Narrow writes are not architectural; merge them into the register.
      const shift = 8 * (offset & 3);
      const mask = (width === 2 ? 0xffff : 0xff) << shift;
      value = ((this.readRegister(register) & ~mask) | ((value << shift) & mask)) >>> 0;
    }
    this.writeRegister(register, value >>> 0);
  }

  private readRegister(register: number): number {
    switch (register) {
      case APIC_ID:
        return (this.id << 24) >>> 0;
      case APIC_VERSION:
        return APIC_VERSION_VALUE;
      case APIC_TPR:
        return this.tpr;
      case APIC_APR:
        return 0;
      case APIC_PPR:
        return this.ppr();
      case APIC_LDR:
        return this.ldr;
      case APIC_DFR:
        return this.dfr;
      case APIC_SVR:
        return this.svr;
      case APIC_ESR:
        return this.esr;
      case APIC_ICR_LOW:
        return this.icrLow;
      case APIC_ICR_HIGH:
        return this.icrHigh;
      case APIC_TIMER_INITIAL:
        return this.timerInitial;
      case APIC_TIMER_CURRENT:
        return this.currentCount();
      case APIC_TIMER_DIVIDE:
        return this.timerDivide;
    }
    if (register >= APIC_ISR && register < APIC_ISR + 0x80) return this.isr[(register - APIC_ISR) >> 4]!;
    if (register >= APIC_TMR && register < APIC_TMR + 0x80) return this.tmr[(register - APIC_TMR) >> 4]!;
    if (register >= APIC_IRR && register < APIC_IRR + 0x80) return this.irr[(register - APIC_IRR) >> 4]!;
    const lvtIndex = LVT_OFFSETS.indexOf(register);
    if (lvtIndex >= 0) return this.lvt[lvtIndex]!;
    return 0;
  }

  private writeRegister(register: number, value: number): void {
    switch (register) {
      case APIC_ID:
        this.id = value >>> 24;
        return;
      case APIC_TPR:
        this.tpr = value & 0xff;
        this.update();
        return;
      case APIC_EOI:
        this.endOfInterrupt();
        return;
      case APIC_LDR:
        this.ldr = (value & 0xff00_0000) >>> 0;
        return;
      case APIC_DFR:
        this.dfr = (value | 0x0fff_ffff) >>> 0;
        return;
      case APIC_SVR:
        this.svr = value & 0x3ff;
        if (!this.softwareEnabled)
          for (let i = 0; i < this.lvt.length; i++) this.lvt[i] = this.lvt[i]! | LVT_MASKED;
        this.update();
        return;
      case APIC_ESR:
        this.esr = this.pendingEsr;
        this.pendingEsr = 0;
        return;
      case APIC_ICR_LOW:
        this.icrLow = value & ~0x1000;
        this.sendIpi();
        return;
      case APIC_ICR_HIGH:
        this.icrHigh = (value & 0xff00_0000) >>> 0;
        return;
      case APIC_TIMER_INITIAL:
        this.timerInitial = value >>> 0;
        this.timerLoadNs = this.scheduler.now();
        this.timerRunning = this.timerInitial !== 0;
        this.armTimer();
        return;
      case APIC_TIMER_DIVIDE: {
        const current = this.currentCount();
        this.timerDivide = value & 0xb;
        if (this.timerRunning) {
          // Keep the current count; from here on it decrements at the new rate.
          this.timerLoadNs = this.scheduler.now() - (this.timerInitial - current) * this.divisor();
          this.armTimer();
        }
        return;
      }
    }
    const lvtIndex = LVT_OFFSETS.indexOf(register);
    if (lvtIndex >= 0) {
      let v = value & LVT_WRITE_MASKS[lvtIndex]!;
      if (!this.softwareEnabled) v |= LVT_MASKED;
      // Remote IRR is read-only.
      this.lvt[lvtIndex] = (v | (this.lvt[lvtIndex]! & LVT_REMOTE_IRR)) >>> 0;
      if (lvtIndex === LVT_TIMER_INDEX) this.armTimer();
      if (lvtIndex === LVT_LINT0_INDEX || lvtIndex === LVT_LINT1_INDEX) {
        // A level-triggered LINT that is still asserted is seen again when unmasked.
        const level = lvtIndex === LVT_LINT0_INDEX ? this.lint0 : this.lint1;
        if (level) this.localInterrupt(lvtIndex, true, false);
      }
      this.update();
    }
  }

  // ---- interrupt logic ------------------------------------------------------------------

  /** A LINT pin changed (`rising`) or is held (`high`): act as its LVT entry says. */
  private localInterrupt(index: number, high: boolean, rising: boolean): void {
    const entry = this.lvt[index]!;
    if (entry & LVT_MASKED) return;
    const mode = (entry & LVT_DELIVERY_MODE) >> 8;
    if (mode === DELIVERY_EXTINT) return; // handled by picRoutedToIntr()
    const level = (entry & LVT_LEVEL) !== 0 && mode === DELIVERY_FIXED;
    if (level) {
      if (!high) {
        this.lvt[index] = entry & ~LVT_REMOTE_IRR;
        return;
      }
      if (entry & LVT_REMOTE_IRR) return;
      this.lvt[index] = entry | LVT_REMOTE_IRR;
    } else if (!rising) {
      return;
    }
    this.acceptInterrupt(entry & 0xff, mode, level);
  }

  private acceptInterrupt(vector: number, mode: number, levelTriggered: boolean): void {
    switch (mode) {
      case DELIVERY_FIXED:
      case DELIVERY_LOWEST_PRIORITY:
        if (vector < 16) {
          this.signalError(ESR_RECEIVE_ILLEGAL_VECTOR);
          return;
        }
        setBit(this.irr, vector);
        if (levelTriggered) setBit(this.tmr, vector);
        else clearBit(this.tmr, vector);
        return;
      case DELIVERY_NMI:
        this.nmi();
        return;
      case DELIVERY_EXTINT:
        this.extIntPending = true;
        return;
      default:
        // SMI, INIT and SIPI have no effect on this single-CPU machine.
        return;
    }
  }

  private endOfInterrupt(): void {
    const vector = highestBit(this.isr);
    if (vector < 0) return;
    clearBit(this.isr, vector);
    if (testBit(this.tmr, vector)) {
      clearBit(this.tmr, vector);
      // LINT0/LINT1 level entries with this vector can fire again.
      for (const index of [LVT_LINT0_INDEX, LVT_LINT1_INDEX]) {
        const entry = this.lvt[index]!;
        if ((entry & 0xff) === vector && entry & LVT_REMOTE_IRR) {
          this.lvt[index] = entry & ~LVT_REMOTE_IRR;
          const level = index === LVT_LINT0_INDEX ? this.lint0 : this.lint1;
          if (level) this.localInterrupt(index, true, false);
        }
      }
      this.onEoi?.(vector);
    }
    this.update();
  }

  private sendIpi(): void {
    const vector = this.icrLow & 0xff;
    const mode = (this.icrLow & LVT_DELIVERY_MODE) >> 8;
    const shorthand = (this.icrLow >> ICR_SHORTHAND_SHIFT) & 3;
    const level = (this.icrLow & ICR_LEVEL) !== 0;
    let toSelf: boolean;
    if (shorthand === SHORTHAND_SELF || shorthand === SHORTHAND_ALL_INCLUDING_SELF) toSelf = true;
    else if (shorthand === SHORTHAND_NONE)
      toSelf = this.matchesDestination(this.icrHigh >>> 24, (this.icrLow & ICR_LOGICAL) !== 0);
    else toSelf = false;
    if ((mode === DELIVERY_FIXED || mode === DELIVERY_LOWEST_PRIORITY) && vector < 16) {
      this.signalError(ESR_SEND_ILLEGAL_VECTOR);
      return;
    }
    if (toSelf && mode !== DELIVERY_EXTINT)
      this.acceptInterrupt(vector, mode, level && mode === DELIVERY_FIXED);
    this.update();
  }

  private matchesDestination(destination: number, logical: boolean): boolean {
    if (!logical) return destination === 0xff || destination === this.id;
    if (destination === 0xff) return true;
    const myLogical = this.ldr >>> 24;
    if (this.dfr >>> 28 === 0xf) return (myLogical & destination) !== 0; // flat model
    // Cluster model: high nibble is the cluster, low nibble a member mask.
    return myLogical >> 4 === destination >> 4 && (myLogical & destination & 0xf) !== 0;
  }

  private signalError(bits: number): void {
    this.pendingEsr |= bits;
    const entry = this.lvt[LVT_ERROR_INDEX]!;
    if (!(entry & LVT_MASKED)) this.acceptInterrupt(entry & 0xff, DELIVERY_FIXED, false);
  }

  private ppr(): number {
    const isrv = highestBit(this.isr);
    const isrClass = isrv < 0 ? 0 : isrv & 0xf0;
    return (this.tpr & 0xf0) >= isrClass ? this.tpr : isrClass;
  }

  /** The IRR vector the CPU would get now, or -1 if none beats the processor priority. */
  private deliverableVector(): number {
    const vector = highestBit(this.irr);
    if (vector < 0) return -1;
    return (vector & 0xf0) > (this.ppr() & 0xf0) ? vector : -1;
  }

  /** The PIC's INTR reaches the CPU: APIC globally disabled, or LINT0 unmasked in ExtINT mode. */
  private picRoutedToIntr(): boolean {
    if (!this.lint0) return false;
    if (!this.hardwareEnabled) return true;
    const entry = this.lvt[LVT_LINT0_INDEX]!;
    return !(entry & LVT_MASKED) && (entry & LVT_DELIVERY_MODE) >> 8 === DELIVERY_EXTINT;
  }

  private update(): void {
    const apicPending = this.hardwareEnabled && this.softwareEnabled && this.deliverableVector() >= 0;
    this.intr.set(apicPending || this.extIntPending || this.picRoutedToIntr());
  }

  // ---- timer ----------------------------------------------------------------------------

  private divisor(): number {
    const code = (this.timerDivide & 3) | ((this.timerDivide >> 1) & 4);
    return 1 << ((code + 1) & 7);
  }

  private get periodic(): boolean {
    return (this.lvt[LVT_TIMER_INDEX]! & LVT_TIMER_PERIODIC) !== 0;
  }

  /** Current count register: counts down from the initial count at bus/divisor. */
  private currentCount(): number {
    if (!this.timerRunning || this.timerInitial === 0) return 0;
    const elapsed = Math.floor((this.scheduler.now() - this.timerLoadNs) / this.divisor());
    if (this.periodic) return this.timerInitial - (elapsed % this.timerInitial);
    return Math.max(0, this.timerInitial - elapsed);
  }

  private armTimer(): void {
    if (!this.timerRunning) {
      this.timer.cancel();
      return;
    }
    const period = this.timerInitial * this.divisor();
    if (this.periodic) {
      const now = this.scheduler.now();
      const periods = Math.floor((now - this.timerLoadNs) / period) + 1;
      this.timer.setAt(
        Math.max(this.timerLoadNs + periods * period, now + Math.min(period, MIN_PERIODIC_NS)),
      );
    } else {
      this.timer.setAt(this.timerLoadNs + period);
    }
  }

  private timerExpired(): void {
    const entry = this.lvt[LVT_TIMER_INDEX]!;
    if (!(entry & LVT_MASKED)) this.acceptInterrupt(entry & 0xff, DELIVERY_FIXED, false);
    if (this.periodic) {
      this.armTimer();
    } else {
      this.timerRunning = false;
    }
    this.update();
  }

  // ---- persistence ----------------------------------------------------------------------

  saveState(): LocalApicState {
    return {
      apicBase: this.apicBase,
      id: this.id,
      tpr: this.tpr,
      ldr: this.ldr,
      dfr: this.dfr,
      svr: this.svr,
      isr: this.isr.slice(),
      tmr: this.tmr.slice(),
      irr: this.irr.slice(),
      esr: this.esr,
      pendingEsr: this.pendingEsr,
      icrLow: this.icrLow,
      icrHigh: this.icrHigh,
      lvt: this.lvt.slice(),
      timerInitial: this.timerInitial,
      timerDivide: this.timerDivide,
      timerLoadNs: this.timerLoadNs,
      timerRunning: this.timerRunning,
      lint0: this.lint0,
      lint1: this.lint1,
      extIntPending: this.extIntPending,
    };
  }

  loadState(state: LocalApicState, _version: number): void {
    if (typeof state !== "object" || state === null) throw new StateError("lapic: state is not an object");
    const s = state as unknown as Record<string, unknown>;
    const words = (name: string, length: number): Uint32Array => {
      const v = s[name];
      if (!(v instanceof Uint32Array) || v.length !== length)
        throw new StateError(`lapic: '${name}' is malformed`);
      return v;
    };
    const oldBase = this.baseAddress;
    this.apicBase = field(s, "apicBase", "number") >>> 0;
    this.id = field(s, "id", "number") & 0xff;
    this.tpr = field(s, "tpr", "number") & 0xff;
    this.ldr = field(s, "ldr", "number") >>> 0;
    this.dfr = field(s, "dfr", "number") >>> 0;
    this.svr = field(s, "svr", "number") & 0x3ff;
    this.isr.set(words("isr", 8));
    this.tmr.set(words("tmr", 8));
    this.irr.set(words("irr", 8));
    this.esr = field(s, "esr", "number");
    this.pendingEsr = field(s, "pendingEsr", "number");
    this.icrLow = field(s, "icrLow", "number") >>> 0;
    this.icrHigh = field(s, "icrHigh", "number") >>> 0;
    this.lvt.set(words("lvt", 6));
    this.timerInitial = field(s, "timerInitial", "number") >>> 0;
    this.timerDivide = field(s, "timerDivide", "number") & 0xb;
    this.timerLoadNs = field(s, "timerLoadNs", "number");
    this.timerRunning = field(s, "timerRunning", "boolean");
    this.lint0 = field(s, "lint0", "boolean");
    this.lint1 = field(s, "lint1", "boolean");
    this.extIntPending = field(s, "extIntPending", "boolean");
    this.armTimer();
    if (this.baseAddress !== oldBase) this.onRelocate?.(this.baseAddress);
    this.update();
  }
}

function setBit(bits: Uint32Array, n: number): void {
  bits[n >> 5] = bits[n >> 5]! | (1 << (n & 31));
}

function clearBit(bits: Uint32Array, n: number): void {
  bits[n >> 5] = bits[n >> 5]! & ~(1 << (n & 31));
}

function testBit(bits: Uint32Array, n: number): boolean {
  return ((bits[n >> 5]! >>> (n & 31)) & 1) === 1;
}

function highestBit(bits: Uint32Array): number {
  for (let word = 7; word >= 0; word--) {
    const w = bits[word]!;
    if (w !== 0) return word * 32 + 31 - Math.clz32(w);
  }
  return -1;
}
