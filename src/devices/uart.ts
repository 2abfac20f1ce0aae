// A 16550A UART: the PC's COM ports (8 registers at 0x3F8, 0x2F8, ...; IRQ 4 and 3).
//
// Transmission is immediate: a byte written to THR goes straight to the host sink and the
// transmitter is empty again. Reception is paced: bytes the host supplies wait in a host-side
// queue and enter the receive FIFO one character time (from the divisor and line format) apart,
// and only while there is room, so a guest that reads slowly never loses input. The IRQ output
// reaches the line only while MCR.OUT2 is set, as the PC's serial cards wire it.

import type { PortDevice, Width } from "../core/bus.ts";
import type { IrqLine } from "../core/irq.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";

/** The UART's reference clock divided by 16: the baud rate at divisor 1. */
const BASE_BAUD = 115200;
const NS_PER_S = 1_000_000_000;
const FIFO_SIZE = 16;

/** IER: received data available interrupt. */
const IER_RDA = 0x01;
/** IER: transmitter holding register empty interrupt. */
const IER_THRE = 0x02;
/** IER: receiver line status interrupt. */
const IER_RLS = 0x04;
/** IER: modem status interrupt. */
const IER_MSI = 0x08;

/** IIR: no interrupt pending. */
const IIR_NONE = 0x01;
/** IIR: receiver line status (highest priority). */
const IIR_RLS = 0x06;
/** IIR: received data available. */
const IIR_RDA = 0x04;
/** IIR: character timeout. */
const IIR_TIMEOUT = 0x0c;
/** IIR: transmitter holding register empty. */
const IIR_THRE = 0x02;
/** IIR: modem status (lowest priority). */
const IIR_MSI = 0x00;
/** IIR: FIFOs enabled. */
const IIR_FIFO = 0xc0;

/** FCR: enable FIFOs. */
const FCR_ENABLE = 0x01;
/** FCR: clear the receive FIFO. */
const FCR_CLEAR_RX = 0x02;
/** Receive trigger levels selected by FCR bits 7-6. */
const TRIGGER_LEVELS = [1, 4, 8, 14];

/** LCR: divisor latch access. */
const LCR_DLAB = 0x80;
/** LCR: parity enable. */
const LCR_PARITY = 0x08;
/** LCR: two stop bits (1.5 with 5-bit words). */
const LCR_STOP2 = 0x04;

/** MCR: data terminal ready. */
const MCR_DTR = 0x01;
/** MCR: request to send. */
const MCR_RTS = 0x02;
/** MCR: OUT1. */
const MCR_OUT1 = 0x04;
/** MCR: OUT2, which gates the IRQ onto the bus on a PC. */
const MCR_OUT2 = 0x08;
/** MCR: loopback. */
const MCR_LOOP = 0x10;

/** LSR: data ready. */
const LSR_DR = 0x01;
/** LSR: overrun error. */
const LSR_OE = 0x02;
/** LSR: break interrupt. */
const LSR_BI = 0x10;
/** LSR: transmitter holding register empty. */
const LSR_THRE = 0x20;
/** LSR: transmitter empty. */
const LSR_TEMT = 0x40;
/** LSR: an error (here: a break) sits in the receive FIFO. */
const LSR_FIFO_ERROR = 0x80;
/** LSR: the error bits that raise a line status interrupt (OE, PE, FE, BI). */
const LSR_ERRORS = 0x1e;

/** MSR: delta bits (DCTS, DDSR, TERI, DDCD). */
const MSR_DELTAS = 0x0f;
/** MSR: trailing edge of ring indicator. */
const MSR_TERI = 0x04;
/** MSR: clear to send. */
const MSR_CTS = 0x10;
/** MSR: data set ready. */
const MSR_DSR = 0x20;
/** MSR: ring indicator. */
const MSR_RI = 0x40;
/** MSR: data carrier detect. */
const MSR_DCD = 0x80;

/** Host queue entry meaning a break condition rather than a byte. */
const HOST_BREAK = 0x100;

/** Character times of silence before a FIFO below its trigger level reports a timeout. */
const TIMEOUT_CHARS = 4;

export interface UartOptions {
  /** Receives every byte the guest transmits (not in loopback). */
  onTransmit?: (byte: number) => void;
}

/** Modem input lines from the host side. */
export interface ModemLines {
  cts: boolean;
  dsr: boolean;
  ri: boolean;
  dcd: boolean;
}

export interface UartState {
  divisor: number;
  ier: number;
  lcr: number;
  mcr: number;
  lsr: number;
  msr: number;
  scr: number;
  fcr: number;
  fifoEnabled: boolean;
  rx: number[];
  thrInterrupt: boolean;
  timeoutPending: boolean;
  hostLines: number;
  /** Bytes, and 0x100 for a break. */
  hostQueue: number[];
  /** Time left on the receive pacing and character timeout timers, ns (-1 when not armed). */
  rxFeedIn: number;
  timeoutIn: number;
}

export class Uart16550 implements PortDevice, Persistent<UartState> {
  readonly stateVersion = 1;
  private divisor = 12; // 9600 baud until software says otherwise
  private ier = 0;
  private lcr = 0x03;
  private mcr = 0;
  private lsr = LSR_THRE | LSR_TEMT;
  private msr = 0;
  private scr = 0;
  private fcr = 0;
  private fifoEnabled = false;
  private triggerLevel = 1;
  /** Receive FIFO (a single holding register when FIFOs are off). */
  private readonly rxBuffer = new Uint8Array(FIFO_SIZE);
  /** Per receive-FIFO slot: the host queue entry it came from plus one, 0 for loopback. */
  private readonly rxFromHost = new Uint16Array(FIFO_SIZE);
  private rxHead = 0;
  private rxCount = 0;
  /** THRE interrupt latched: set when THR empties or ETBEI is enabled, cleared by IIR read or THR write. */
  private thrInterrupt = false;
  private timeoutPending = false;
  /** CTS/DSR/RI/DCD as the host drives them (MSR bit layout). */
  private hostLines = MSR_CTS | MSR_DSR | MSR_DCD;
  /** Bytes from the host not yet in the receive FIFO. */
  private hostQueue = new Uint16Array(256);
  private hostHead = 0;
  private hostCount = 0;
  private readonly irq: IrqLine;
  private readonly onTransmit: (byte: number) => void;
  private readonly rxFeedTimer: Timer;
  private readonly timeoutTimer: Timer;

  constructor(scheduler: Scheduler, irq: IrqLine, options: UartOptions = {}) {
    this.irq = irq;
    this.onTransmit = options.onTransmit ?? (() => {});
    this.rxFeedTimer = scheduler.createTimer("uart rx", () => this.feed());
    this.timeoutTimer = scheduler.createTimer("uart timeout", () => {
      if (this.fifoEnabled && this.rxCount > 0) {
        this.timeoutPending = true;
        this.updateIrq();
      }
    });
    this.msr = this.hostLines;
  }

  /** Queues bytes from the host; they reach the guest at the line's pace, none dropped. */
  receive(bytes: Uint8Array | readonly number[]): void {
    const n = bytes.length;
    if (n === 0) return;
    this.reserveHostQueue(n);
    const q = this.hostQueue;
    for (let i = 0; i < n; i++) q[(this.hostHead + this.hostCount + i) % q.length] = bytes[i]! & 0xff;
    this.hostCount += n;
    if (!this.rxFeedTimer.armed) this.rxFeedTimer.setIn(this.charTimeNs());
  }

  /** Queues a break condition after any pending input (Linux turns it into a SysRq prefix). */
  sendBreak(): void {
    this.reserveHostQueue(1);
    const q = this.hostQueue;
    q[(this.hostHead + this.hostCount) % q.length] = HOST_BREAK;
    this.hostCount++;
    if (!this.rxFeedTimer.armed) this.rxFeedTimer.setIn(this.charTimeNs());
  }

  private reserveHostQueue(n: number): void {
    if (this.hostCount + n <= this.hostQueue.length) return;
    let size = this.hostQueue.length;
    while (size < this.hostCount + n) size *= 2;
    const grown = new Uint16Array(size);
    for (let i = 0; i < this.hostCount; i++) {
      grown[i] = this.hostQueue[(this.hostHead + i) % this.hostQueue.length]!;
    }
    this.hostQueue = grown;
    this.hostHead = 0;
  }

  /** Host bytes still waiting to enter the guest's FIFO. */
  get pendingInput(): number {
    return this.hostCount;
  }

  /** Sets the modem status inputs the host side drives. */
  setModemLines(lines: ModemLines): void {
    this.hostLines =
      (lines.cts ? MSR_CTS : 0) |
      (lines.dsr ? MSR_DSR : 0) |
      (lines.ri ? MSR_RI : 0) |
      (lines.dcd ? MSR_DCD : 0);
    if ((this.mcr & MCR_LOOP) === 0) this.setModemStatus(this.hostLines);
  }

  /** The guest's DTR and RTS outputs. */
  get modemControl(): { dtr: boolean; rts: boolean } {
    return { dtr: (this.mcr & MCR_DTR) !== 0, rts: (this.mcr & MCR_RTS) !== 0 };
  }

  reset(): void {
    this.divisor = 12;
    this.ier = 0;
    this.lcr = 0x03;
    this.mcr = 0;
    this.lsr = LSR_THRE | LSR_TEMT;
    this.scr = 0;
    this.fcr = 0;
    this.fifoEnabled = false;
    this.triggerLevel = 1;
    this.rxHead = 0;
    this.rxCount = 0;
    this.thrInterrupt = false;
    this.timeoutPending = false;
    this.timeoutTimer.cancel();
    this.msr = this.hostLines;
    this.updateIrq();
    if (this.hostCount > 0 && !this.rxFeedTimer.armed) this.rxFeedTimer.setIn(this.charTimeNs());
  }

  /** One character on the wire: start bit, data bits, parity, stop bits. */
  private charTimeNs(): number {
    const lcr = this.lcr;
    const dataBits = 5 + (lcr & 3);
    const stopBits = lcr & LCR_STOP2 ? (dataBits === 5 ? 1.5 : 2) : 1;
    const bits = 1 + dataBits + (lcr & LCR_PARITY ? 1 : 0) + stopBits;
    const divisor = this.divisor === 0 ? 0x10000 : this.divisor;
    return (bits * divisor * NS_PER_S) / BASE_BAUD;
  }

  private get rxCapacity(): number {
    return this.fifoEnabled ? FIFO_SIZE : 1;
  }

  /**
   * Puts a byte into the receive FIFO. On overrun (OE) a full FIFO loses the new byte, while
   * the single holding register of FIFO-less mode is overwritten by it.
   */
  private pushRx(byte: number, hostEntry = -1): void {
    if (this.rxCount >= this.rxCapacity) {
      this.lsr |= LSR_OE;
      if (!this.fifoEnabled) {
        this.rxBuffer[this.rxHead] = byte;
        this.rxFromHost[this.rxHead] = 0;
      }
      return;
    }
    const slot = (this.rxHead + this.rxCount) % FIFO_SIZE;
    this.rxBuffer[slot] = byte;
    this.rxFromHost[slot] = hostEntry + 1;
    this.rxCount++;
    this.lsr |= LSR_DR;
    this.timeoutPending = false;
    if (this.fifoEnabled) this.timeoutTimer.setIn(TIMEOUT_CHARS * this.charTimeNs());
  }

  /**
   * Whether the guest is receiving: a driver that takes receive (or line status) interrupts has
   * enabled them, or a polling program (firmware, a boot loader) has raised DTR and RTS with
   * OUT2 clear. Until then host input waits, as a terminal waits for its peer, so bytes typed or
   * piped early are not lost when the guest's driver clears the FIFO as it starts. (Linux's
   * boot console raises DTR alone and does not read; its tty driver enables interrupts.)
   */
  private get receiving(): boolean {
    return (
      (this.ier & (IER_RDA | IER_RLS)) !== 0 ||
      (this.mcr & (MCR_DTR | MCR_RTS | MCR_OUT2)) === (MCR_DTR | MCR_RTS)
    );
  }

  /** Restarts the flow of waiting host bytes once the guest can take them. */
  private resumeHostInput(): void {
    if (this.hostCount > 0 && !this.rxFeedTimer.armed && this.receiving && (this.mcr & MCR_LOOP) === 0) {
      this.rxFeedTimer.setIn(this.charTimeNs());
    }
  }

  /** Moves host bytes into the FIFO while there is room, one per character time. */
  private feed(): void {
    if (
      this.hostCount > 0 &&
      this.rxCount < this.rxCapacity &&
      (this.mcr & MCR_LOOP) === 0 &&
      this.receiving
    ) {
      const entry = this.hostQueue[this.hostHead]!;
      this.hostHead = (this.hostHead + 1) % this.hostQueue.length;
      this.hostCount--;
      if (entry === HOST_BREAK) {
        // A break arrives as a zero character flagged BI (and as a FIFO error when FIFOs are on).
        this.pushRx(0, entry);
        this.lsr |= LSR_BI | (this.fifoEnabled ? LSR_FIFO_ERROR : 0);
      } else {
        this.pushRx(entry, entry);
      }
      this.updateIrq();
    }
    // A full FIFO is re-checked when the guest reads RBR, loopback when it ends, a guest that is
    // not receiving when it enables reception.
    if (
      this.hostCount > 0 &&
      this.rxCount < this.rxCapacity &&
      (this.mcr & MCR_LOOP) === 0 &&
      this.receiving
    ) {
      this.rxFeedTimer.setIn(this.charTimeNs());
    }
  }

  private popRx(): number {
    if (this.rxCount === 0) return this.rxBuffer[(this.rxHead + FIFO_SIZE - 1) % FIFO_SIZE]!;
    const byte = this.rxBuffer[this.rxHead]!;
    this.rxHead = (this.rxHead + 1) % FIFO_SIZE;
    this.rxCount--;
    this.timeoutPending = false;
    if (this.rxCount === 0) {
      this.lsr &= ~LSR_DR;
      this.timeoutTimer.cancel();
    } else if (this.fifoEnabled) {
      this.timeoutTimer.setIn(TIMEOUT_CHARS * this.charTimeNs());
    }
    if (this.hostCount > 0 && !this.rxFeedTimer.armed) this.rxFeedTimer.setIn(this.charTimeNs());
    return byte;
  }

  /**
   * Empties the receive FIFO. Host bytes in it go back to the front of the host queue: the guest
   * never read them, and host input is a stream that must not lose bytes (Linux's 8250 driver
   * enables receive interrupts a little before it switches the FIFO on, which empties it; a byte
   * piped in at that moment used to vanish).
   */
  private clearRx(): void {
    let returned = 0;
    for (let i = 0; i < this.rxCount; i++)
      if (this.rxFromHost[(this.rxHead + i) % FIFO_SIZE]! !== 0) returned++;
    if (returned > 0) {
      this.reserveHostQueue(returned);
      const q = this.hostQueue;
      this.hostHead = (this.hostHead - returned + q.length) % q.length;
      let at = this.hostHead;
      for (let i = 0; i < this.rxCount; i++) {
        const from = this.rxFromHost[(this.rxHead + i) % FIFO_SIZE]!;
        if (from === 0) continue;
        q[at] = from - 1;
        at = (at + 1) % q.length;
      }
      this.hostCount += returned;
    }
    this.rxHead = 0;
    this.rxCount = 0;
    this.lsr &= ~LSR_DR;
    this.timeoutPending = false;
    this.timeoutTimer.cancel();
    if (this.hostCount > 0 && !this.rxFeedTimer.armed) this.rxFeedTimer.setIn(this.charTimeNs());
  }

  private transmit(byte: number): void {
    if (this.mcr & MCR_LOOP) this.pushRx(byte);
    else this.onTransmit(byte);
    // The byte left at once: holding register and shifter are empty again, THRE is signalled.
    this.lsr |= LSR_THRE | LSR_TEMT;
    this.thrInterrupt = true;
    this.updateIrq();
  }

  /** The interrupt identification, highest priority first. */
  private interruptId(): number {
    const ier = this.ier;
    if (ier & IER_RLS && this.lsr & LSR_ERRORS) return IIR_RLS;
    if (ier & IER_RDA) {
      if (this.fifoEnabled ? this.rxCount >= this.triggerLevel : this.rxCount > 0) return IIR_RDA;
      if (this.timeoutPending) return IIR_TIMEOUT;
    }
    if (ier & IER_THRE && this.thrInterrupt) return IIR_THRE;
    if (ier & IER_MSI && this.msr & MSR_DELTAS) return IIR_MSI;
    return IIR_NONE;
  }

  private updateIrq(): void {
    const gated = (this.mcr & (MCR_OUT2 | MCR_LOOP)) === MCR_OUT2;
    this.irq.set(gated && this.interruptId() !== IIR_NONE);
  }

  /** Sets CTS/DSR/RI/DCD, recording delta bits for the changes. */
  private setModemStatus(lines: number): void {
    const old = this.msr;
    const changed = (old ^ lines) & 0xf0;
    let deltas = old & MSR_DELTAS;
    if (changed & MSR_CTS) deltas |= 0x01;
    if (changed & MSR_DSR) deltas |= 0x02;
    if (changed & MSR_RI && old & MSR_RI) deltas |= MSR_TERI; // only the trailing edge
    if (changed & MSR_DCD) deltas |= 0x08;
    this.msr = (lines & 0xf0) | deltas;
    this.updateIrq();
  }

  private loopbackLines(mcr: number): number {
    return (
      (mcr & MCR_RTS ? MSR_CTS : 0) |
      (mcr & MCR_DTR ? MSR_DSR : 0) |
      (mcr & MCR_OUT1 ? MSR_RI : 0) |
      (mcr & MCR_OUT2 ? MSR_DCD : 0)
    );
  }

  ioRead(offset: number, _width: Width): number {
    switch (offset & 7) {
      case 0: {
        if (this.lcr & LCR_DLAB) return this.divisor & 0xff;
        const byte = this.popRx();
        this.updateIrq();
        return byte;
      }
      case 1:
        return this.lcr & LCR_DLAB ? (this.divisor >> 8) & 0xff : this.ier;
      case 2: {
        const id = this.interruptId();
        // Reading IIR while it reports THRE acknowledges that interrupt.
        if (id === IIR_THRE) {
          this.thrInterrupt = false;
          this.updateIrq();
        }
        return id | (this.fifoEnabled ? IIR_FIFO : 0);
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5: {
        const lsr = this.lsr;
        if (lsr & LSR_ERRORS) {
          this.lsr &= ~(LSR_ERRORS | LSR_FIFO_ERROR);
          this.updateIrq();
        }
        return lsr;
      }
      case 6: {
        const msr = this.msr;
        if (msr & MSR_DELTAS) {
          this.msr &= ~MSR_DELTAS;
          this.updateIrq();
        }
        return msr;
      }
      default:
        return this.scr;
    }
  }

  ioWrite(offset: number, _width: Width, value: number): void {
    value &= 0xff;
    switch (offset & 7) {
      case 0:
        if (this.lcr & LCR_DLAB) this.divisor = (this.divisor & 0xff00) | value;
        else this.transmit(value);
        return;
      case 1: {
        if (this.lcr & LCR_DLAB) {
          this.divisor = (this.divisor & 0xff) | (value << 8);
          return;
        }
        const old = this.ier;
        this.ier = value & 0x0f;
        // Enabling ETBEI with THR empty signals THRE at once (the 8250 driver probes for this).
        if (this.ier & IER_THRE && !(old & IER_THRE) && this.lsr & LSR_THRE) this.thrInterrupt = true;
        if (!(this.ier & IER_THRE)) this.thrInterrupt = false;
        this.resumeHostInput();
        this.updateIrq();
        return;
      }
      case 2:
        this.writeFcr(value);
        return;
      case 3:
        this.lcr = value;
        return;
      case 4: {
        const old = this.mcr;
        this.mcr = value & 0x1f;
        if (this.mcr & MCR_LOOP) this.setModemStatus(this.loopbackLines(this.mcr));
        else if (old & MCR_LOOP) this.setModemStatus(this.hostLines);
        this.resumeHostInput();
        this.updateIrq();
        return;
      }
      case 5:
      case 6:
        return; // LSR and MSR are read-only here (factory test writes are not modelled)
      default:
        this.scr = value;
    }
  }

  private writeFcr(value: number): void {
    const enable = (value & FCR_ENABLE) !== 0;
    if (enable !== this.fifoEnabled) {
      // Switching FIFO mode empties both FIFOs.
      this.fifoEnabled = enable;
      this.clearRx();
    }
    if (enable) {
      // Clearing the transmit FIFO (bit 2) has nothing to do: bytes never wait there.
      if (value & FCR_CLEAR_RX) this.clearRx();
      this.triggerLevel = TRIGGER_LEVELS[value >> 6]!;
      this.fcr = value & 0xc9;
    } else {
      this.fcr = 0;
    }
    this.updateIrq();
  }

  saveState(): UartState {
    const rx: number[] = [];
    for (let i = 0; i < this.rxCount; i++) rx.push(this.rxBuffer[(this.rxHead + i) % FIFO_SIZE]!);
    const hostQueue: number[] = [];
    for (let i = 0; i < this.hostCount; i++) {
      hostQueue.push(this.hostQueue[(this.hostHead + i) % this.hostQueue.length]!);
    }
    return {
      divisor: this.divisor,
      ier: this.ier,
      lcr: this.lcr,
      mcr: this.mcr,
      lsr: this.lsr,
      msr: this.msr,
      scr: this.scr,
      fcr: this.fcr,
      fifoEnabled: this.fifoEnabled,
      rx,
      thrInterrupt: this.thrInterrupt,
      timeoutPending: this.timeoutPending,
      hostLines: this.hostLines,
      hostQueue,
      rxFeedIn: this.rxFeedTimer.remaining() ?? -1,
      timeoutIn: this.timeoutTimer.remaining() ?? -1,
    };
  }

  loadState(state: UartState, version: number): void {
    if (version !== 1) throw new StateError(`uart: unknown state version ${version}`);
    if (typeof state !== "object" || state === null) throw new StateError("uart: state is not an object");
    const int = (v: unknown, max: number, name: string) => {
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
        throw new StateError(`uart: ${name} out of range`);
      }
      return v;
    };
    const bytes = (v: unknown, max: number, name: string) => {
      if (!Array.isArray(v) || v.length > max) throw new StateError(`uart: ${name} should be a byte list`);
      return v.map((b, i) => int(b, 0xff, `${name}[${i}]`));
    };
    const rx = bytes(state.rx, FIFO_SIZE, "rx");
    if (!Array.isArray(state.hostQueue)) throw new StateError("uart: hostQueue should be a list");
    const queue = state.hostQueue.map((b, i) => int(b, HOST_BREAK, `hostQueue[${i}]`));
    const rxFeedIn = typeof state.rxFeedIn === "number" ? state.rxFeedIn : -1;
    const timeoutIn = typeof state.timeoutIn === "number" ? state.timeoutIn : -1;
    this.divisor = int(state.divisor, 0xffff, "divisor");
    this.ier = int(state.ier, 0xff, "ier") & 0x0f;
    this.lcr = int(state.lcr, 0xff, "lcr");
    this.mcr = int(state.mcr, 0xff, "mcr") & 0x1f;
    this.lsr = int(state.lsr, 0xff, "lsr");
    this.msr = int(state.msr, 0xff, "msr");
    this.scr = int(state.scr, 0xff, "scr");
    this.fcr = int(state.fcr, 0xff, "fcr");
    this.fifoEnabled = state.fifoEnabled === true;
    this.triggerLevel = TRIGGER_LEVELS[this.fcr >> 6]!;
    this.rxBuffer.set(rx);
    this.rxHead = 0;
    this.rxCount = rx.length;
    this.thrInterrupt = state.thrInterrupt === true;
    this.timeoutPending = state.timeoutPending === true;
    this.hostLines = int(state.hostLines, 0xff, "hostLines") & 0xf0;
    this.hostQueue = new Uint16Array(Math.max(256, queue.length));
    this.hostQueue.set(queue);
    this.hostHead = 0;
    this.hostCount = queue.length;
    this.rxFeedTimer.cancel();
    this.timeoutTimer.cancel();
    if (rxFeedIn >= 0) this.rxFeedTimer.setIn(rxFeedIn);
    else if (this.hostCount > 0 && this.rxCount < this.rxCapacity) this.rxFeedTimer.setIn(this.charTimeNs());
    if (timeoutIn >= 0) this.timeoutTimer.setIn(timeoutIn);
    this.updateIrq();
  }
}
