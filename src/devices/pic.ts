// Two cascaded 8259A programmable interrupt controllers, as on every PC since the AT.
//
// The slave's INT output feeds the master's IR2; the master's INT drives the CPU's INTR (directly
// or through the local APIC's LINT0). Each chip is a PortDevice of two ports (offset 0: command /
// IRR / ISR, offset 1: data / IMR); the builder registers them at 0x20 and 0xA0. Trigger mode per
// pin comes from ICW1.LTIM or from the PIIX3's ELCR registers through `setLevelTriggered`.

import type { PortDevice, Width } from "../core/bus.ts";
import type { InterruptAcknowledge } from "../core/interrupts.ts";
import type { IrqLine, LevelListener } from "../core/irq.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";

/** ICW1: this byte starts initialisation. */
const ICW1_INIT = 0x10;
/** ICW1: ICW4 follows. */
const ICW1_IC4 = 0x01;
/** ICW1: single chip, no ICW3. */
const ICW1_SNGL = 0x02;
/** ICW1: level-triggered mode for all inputs. */
const ICW1_LTIM = 0x08;
/** OCW3 (when ICW1_INIT is clear): bit 3 set distinguishes OCW3 from OCW2. */
const OCW3_SELECT = 0x08;
/** OCW3: poll command. */
const OCW3_POLL = 0x04;
/** OCW3: read register command valid (RIS in bit 0 chooses ISR). */
const OCW3_RR = 0x02;
/** OCW3: read ISR instead of IRR. */
const OCW3_RIS = 0x01;
/** OCW3: special mask mode command valid (SMM in bit 5). */
const OCW3_ESMM = 0x40;
/** OCW3: special mask mode on. */
const OCW3_SMM = 0x20;
/** ICW4: automatic end of interrupt. */
const ICW4_AEOI = 0x02;
/** ICW4: special fully nested mode. */
const ICW4_SFNM = 0x10;

/** No request can be served (priority beyond the lowest). */
const NONE = 8;

/** Which initialisation word the data port expects next. */
const EXPECT_OCW1 = 0;
const EXPECT_ICW2 = 1;
const EXPECT_ICW3 = 2;
const EXPECT_ICW4 = 3;

export interface PicChipState {
  irr: number;
  imr: number;
  isr: number;
  pins: number;
  elcr: number;
  lowestPriority: number;
  vectorBase: number;
  expect: number;
  needIcw4: boolean;
  singleMode: boolean;
  levelTriggeredAll: boolean;
  readIsr: boolean;
  poll: boolean;
  specialMask: boolean;
  autoEoi: boolean;
  rotateOnAutoEoi: boolean;
  specialFullyNested: boolean;
  cascade: number;
}

/** One 8259A. Output changes are reported to `onOutput`, which the pair wires up. */
export class Pic8259 implements PortDevice {
  /** Interrupt request register. */
  irr = 0;
  /** Interrupt mask register (OCW1). */
  imr = 0;
  /** In-service register. */
  isr = 0;
  /** Current level of each input pin. */
  pins = 0;
  /** Pins set to level-triggered by the ELCR. */
  elcr = 0;
  /** The IR with the lowest priority is (lowestPriority + 7) & 7; rotation moves this. */
  lowestPriority = 0;
  vectorBase = 0;
  expect = EXPECT_OCW1;
  needIcw4 = false;
  singleMode = false;
  levelTriggeredAll = false;
  readIsr = false;
  poll = false;
  specialMask = false;
  autoEoi = false;
  rotateOnAutoEoi = false;
  specialFullyNested = false;
  cascade = 0;
  readonly isMaster: boolean;
  private readonly changed: () => void;

  constructor(isMaster: boolean, changed: () => void) {
    this.isMaster = isMaster;
    this.changed = changed;
  }

  /** Pins currently in level-triggered mode. */
  get levelMask(): number {
    return this.levelTriggeredAll ? 0xff : this.elcr;
  }

  setPin(irq: number, high: boolean): void {
    const bit = 1 << irq;
    const wasHigh = (this.pins & bit) !== 0;
    if (high) {
      this.pins |= bit;
      // An edge input latches on the rising edge; a level input requests while high.
      if (!wasHigh || this.levelMask & bit) this.irr |= bit;
    } else {
      this.pins &= ~bit;
      if (this.levelMask & bit) this.irr &= ~bit;
    }
    this.changed();
  }

  setLevelTriggered(irq: number, level: boolean): void {
    const bit = 1 << irq;
    if (level) {
      this.elcr |= bit;
      this.irr = (this.irr & ~bit) | (this.pins & bit);
    } else {
      this.elcr &= ~bit;
    }
    this.changed();
  }

  /** Priority (0 highest) of the best request in `mask`, or NONE. */
  private priorityOf(mask: number): number {
    if (mask === 0) return NONE;
    let priority = 0;
    while ((mask & (1 << ((priority + this.lowestPriority) & 7))) === 0) priority++;
    return priority;
  }

  /** The IR that would be delivered now, or -1. */
  pendingIrq(): number {
    const priority = this.priorityOf(this.irr & ~this.imr);
    if (priority === NONE) return -1;
    let inService = this.isr;
    // Special mask mode lets lower priorities through while a masked IR is in service.
    if (this.specialMask) inService &= ~this.imr;
    // Special fully nested mode: the slave may interrupt its own cascade's service.
    if (this.specialFullyNested && this.isMaster) inService &= ~(1 << 2);
    return priority < this.priorityOf(inService) ? (priority + this.lowestPriority) & 7 : -1;
  }

  /** Moves `irq` into service (the INTA cycle). */
  acknowledgeIrq(irq: number): void {
    const bit = 1 << irq;
    if (this.autoEoi) {
      if (this.rotateOnAutoEoi) this.lowestPriority = (irq + 1) & 7;
    } else {
      this.isr |= bit;
    }
    // A level input keeps requesting for as long as its pin is high.
    if ((this.levelMask & bit) === 0) this.irr &= ~bit;
  }

  /** System reset. The ELCR belongs to the PIIX3 and keeps its value here. */
  reset(): void {
    this.initialise(0);
    this.expect = EXPECT_OCW1;
    this.changed();
  }

  private initialise(icw1: number): void {
    this.imr = 0;
    this.isr = 0;
    this.lowestPriority = 0;
    this.vectorBase = 0;
    this.readIsr = false;
    this.poll = false;
    this.specialMask = false;
    this.autoEoi = false;
    this.rotateOnAutoEoi = false;
    this.specialFullyNested = false;
    this.needIcw4 = (icw1 & ICW1_IC4) !== 0;
    this.singleMode = (icw1 & ICW1_SNGL) !== 0;
    this.levelTriggeredAll = (icw1 & ICW1_LTIM) !== 0;
    // The edge-sense latches are reset: only new rising edges (or high level inputs) request.
    this.irr = this.pins & this.levelMask;
  }

  ioWrite(offset: number, _width: Width, value: number): void {
    value &= 0xff;
    if ((offset & 1) === 0) {
      if (value & ICW1_INIT) {
        this.initialise(value);
        this.expect = EXPECT_ICW2;
      } else if (value & OCW3_SELECT) {
        if (value & OCW3_POLL) this.poll = true;
        if (value & OCW3_RR) this.readIsr = (value & OCW3_RIS) !== 0;
        if (value & OCW3_ESMM) this.specialMask = (value & OCW3_SMM) !== 0;
      } else {
        this.writeOcw2(value);
      }
    } else {
      switch (this.expect) {
        case EXPECT_OCW1:
          this.imr = value;
          break;
        case EXPECT_ICW2:
          this.vectorBase = value & 0xf8;
          this.expect = this.singleMode ? (this.needIcw4 ? EXPECT_ICW4 : EXPECT_OCW1) : EXPECT_ICW3;
          break;
        case EXPECT_ICW3:
          this.cascade = value;
          this.expect = this.needIcw4 ? EXPECT_ICW4 : EXPECT_OCW1;
          break;
        default:
          this.autoEoi = (value & ICW4_AEOI) !== 0;
          this.specialFullyNested = (value & ICW4_SFNM) !== 0;
          this.expect = EXPECT_OCW1;
          break;
      }
    }
    this.changed();
  }

  private writeOcw2(value: number): void {
    const irq = value & 7;
    switch (value >> 5) {
      case 0: // rotate in automatic EOI mode: clear
        this.rotateOnAutoEoi = false;
        break;
      case 4: // rotate in automatic EOI mode: set
        this.rotateOnAutoEoi = true;
        break;
      case 1: // non-specific EOI
      case 5: {
        // rotate on non-specific EOI
        const priority = this.priorityOf(this.isr);
        if (priority !== NONE) {
          const served = (priority + this.lowestPriority) & 7;
          this.isr &= ~(1 << served);
          if (value >> 5 === 5) this.lowestPriority = (served + 1) & 7;
        }
        break;
      }
      case 3: // specific EOI
        this.isr &= ~(1 << irq);
        break;
      case 7: // rotate on specific EOI
        this.isr &= ~(1 << irq);
        this.lowestPriority = (irq + 1) & 7;
        break;
      case 6: // set priority: irq becomes the lowest
        this.lowestPriority = (irq + 1) & 7;
        break;
      default: // 2: no operation
        break;
    }
  }

  ioRead(offset: number, _width: Width): number {
    if (this.poll) {
      this.poll = false;
      return this.pollRead();
    }
    if ((offset & 1) === 0) return this.readIsr ? this.isr : this.irr;
    return this.imr;
  }

  /** Poll mode: the read acts as an INTA and returns 0x80 | irq, or 0 if nothing is pending. */
  private pollRead(): number {
    const irq = this.pendingIrq();
    if (irq < 0) return 0;
    this.acknowledgeIrq(irq);
    this.changed();
    return 0x80 | irq;
  }

  saveState(): PicChipState {
    return {
      irr: this.irr,
      imr: this.imr,
      isr: this.isr,
      pins: this.pins,
      elcr: this.elcr,
      lowestPriority: this.lowestPriority,
      vectorBase: this.vectorBase,
      expect: this.expect,
      needIcw4: this.needIcw4,
      singleMode: this.singleMode,
      levelTriggeredAll: this.levelTriggeredAll,
      readIsr: this.readIsr,
      poll: this.poll,
      specialMask: this.specialMask,
      autoEoi: this.autoEoi,
      rotateOnAutoEoi: this.rotateOnAutoEoi,
      specialFullyNested: this.specialFullyNested,
      cascade: this.cascade,
    };
  }

  loadState(s: PicChipState): void {
    if (typeof s !== "object" || s === null) throw new StateError("pic: chip state is not an object");
    const byte = (v: unknown, name: string): number => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xff) {
        throw new StateError(`pic: ${name} should be a byte`);
      }
      return v;
    };
    this.irr = byte(s.irr, "irr");
    this.imr = byte(s.imr, "imr");
    this.isr = byte(s.isr, "isr");
    this.pins = byte(s.pins, "pins");
    this.elcr = byte(s.elcr, "elcr");
    this.lowestPriority = byte(s.lowestPriority, "lowestPriority") & 7;
    this.vectorBase = byte(s.vectorBase, "vectorBase") & 0xf8;
    this.expect = byte(s.expect, "expect") & 3;
    this.cascade = byte(s.cascade, "cascade");
    this.needIcw4 = s.needIcw4 === true;
    this.singleMode = s.singleMode === true;
    this.levelTriggeredAll = s.levelTriggeredAll === true;
    this.readIsr = s.readIsr === true;
    this.poll = s.poll === true;
    this.specialMask = s.specialMask === true;
    this.autoEoi = s.autoEoi === true;
    this.rotateOnAutoEoi = s.rotateOnAutoEoi === true;
    this.specialFullyNested = s.specialFullyNested === true;
  }
}

export interface DualPicState {
  master: PicChipState;
  slave: PicChipState;
}

/** The master/slave pair. `master` and `slave` are the two port devices (0x20 and 0xA0 on a PC). */
export class DualPic implements InterruptAcknowledge, Persistent<DualPicState> {
  readonly stateVersion = 1;
  readonly master: Pic8259;
  readonly slave: Pic8259;
  private readonly intr: IrqLine;
  private readonly inputs: LevelListener[] = [];
  private slaveOutput = false;

  /** `intr` is driven high while the master has an interrupt for the CPU. */
  constructor(intr: IrqLine) {
    this.intr = intr;
    this.master = new Pic8259(true, () => this.update());
    this.slave = new Pic8259(false, () => this.updateSlave());
    for (let irq = 0; irq < 16; irq++) {
      const chip = irq < 8 ? this.master : this.slave;
      const pin = irq & 7;
      this.inputs.push((high) => chip.setPin(pin, high));
    }
  }

  /** The listener for ISA IRQ `irq` (0-15): `line.connect(pic.input(irq))`. */
  input(irq: number): LevelListener {
    const listener = this.inputs[irq];
    if (!listener) throw new RangeError(`pic: no IRQ ${irq}`);
    return listener;
  }

  /** Edge (false) or level (true) triggering of `irq`: the PIIX3's ELCR bits. */
  setLevelTriggered(irq: number, level: boolean): void {
    if (!Number.isInteger(irq) || irq < 0 || irq > 15) throw new RangeError(`pic: no IRQ ${irq}`);
    (irq < 8 ? this.master : this.slave).setLevelTriggered(irq & 7, level);
  }

  /** All sixteen trigger modes at once (bit n set: IRQ n level-triggered), as the PIIX3 reports its ELCR. */
  setElcr(mask: number): void {
    for (let irq = 0; irq < 16; irq++) {
      const level = ((mask >> irq) & 1) !== 0;
      const chip = irq < 8 ? this.master : this.slave;
      if (((chip.elcr >> (irq & 7)) & 1) !== (level ? 1 : 0)) chip.setLevelTriggered(irq & 7, level);
    }
  }

  /** True while the master asserts INT. */
  get output(): boolean {
    return this.intr.level;
  }

  acknowledge(): number {
    let vector: number;
    const irq = this.master.pendingIrq();
    if (irq < 0) {
      // The request went away before INTA: the 8259 answers with IR7's vector.
      vector = this.master.vectorBase + 7;
    } else {
      this.master.acknowledgeIrq(irq);
      if (irq === 2 && !this.master.singleMode) {
        const slaveIrq = this.slave.pendingIrq();
        if (slaveIrq < 0) {
          vector = this.slave.vectorBase + 7;
        } else {
          this.slave.acknowledgeIrq(slaveIrq);
          vector = this.slave.vectorBase + slaveIrq;
        }
        this.updateSlave();
      } else {
        vector = this.master.vectorBase + irq;
      }
    }
    this.update();
    return vector;
  }

  reset(): void {
    this.slave.reset();
    this.master.reset();
  }

  private updateSlave(): void {
    const out = this.slave.pendingIrq() >= 0;
    if (out !== this.slaveOutput) {
      this.slaveOutput = out;
      this.master.setPin(2, out);
    }
  }

  private update(): void {
    this.intr.set(this.master.pendingIrq() >= 0);
  }

  saveState(): DualPicState {
    return { master: this.master.saveState(), slave: this.slave.saveState() };
  }

  loadState(state: DualPicState, version: number): void {
    if (version !== 1) throw new StateError(`pic: unknown state version ${version}`);
    if (typeof state !== "object" || state === null) throw new StateError("pic: state is not an object");
    this.master.loadState(state.master);
    this.slave.loadState(state.slave);
    this.slaveOutput = (this.master.pins & (1 << 2)) !== 0;
    this.updateSlave();
    this.update();
  }
}
