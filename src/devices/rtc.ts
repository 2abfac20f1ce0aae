// The MC146818 real-time clock and its 128 bytes of battery-backed CMOS RAM.
//
// Offsets: 0 = index (bit 7 masks NMI), 1 = data; a PC has them at 0x70/0x71. The clock counts whole
// seconds from a base taken from the host's wall clock at power-on and advances with guest time, so
// a paused or snapshotted VM doesn't see time jump. Time registers are produced when read, in the
// format register B asks for. Periodic, alarm and update-ended interrupts raise IRQ 8 until
// register C is read; timers run only while an interrupt source is enabled, and flags that
// software polls with interrupts disabled are worked out at the read.

import type { PortDevice, Width } from "../core/bus.ts";
import type { IrqLine } from "../core/irq.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";
import type { Scheduler, Timer } from "../core/scheduler.ts";

const NS_PER_S = 1_000_000_000;
/** The time base crystal, Hz. */
const CRYSTAL_HZ = 32768;

// Register indexes.
const SECONDS = 0x00;
const SECONDS_ALARM = 0x01;
const MINUTES = 0x02;
const MINUTES_ALARM = 0x03;
const HOURS = 0x04;
const HOURS_ALARM = 0x05;
const DAY_OF_WEEK = 0x06;
const DAY_OF_MONTH = 0x07;
const MONTH = 0x08;
const YEAR = 0x09;
const REG_A = 0x0a;
const REG_B = 0x0b;
const REG_C = 0x0c;
const REG_D = 0x0d;
/** Century, where QEMU and SeaBIOS keep it (ACPI FADT names it). */
export const CMOS_CENTURY = 0x32;

/** Register A: update in progress (read-only). */
const A_UIP = 0x80;
/** Register A: divider chain control field. */
const A_DIVIDER = 0x70;
/** Register A: divider values at or below this run the clock (010 is the 32.768 kHz setting). */
const A_DIVIDER_RUNNING = 0x20;
/** Register A: periodic rate select. */
const A_RATE = 0x0f;
/** Register B: SET, updates inhibited while software sets the time. */
const B_SET = 0x80;
/** Register B: periodic interrupt enable. */
const B_PIE = 0x40;
/** Register B: alarm interrupt enable. */
const B_AIE = 0x20;
/** Register B: update-ended interrupt enable. */
const B_UIE = 0x10;
/** Register B: data mode, binary (set) or BCD (clear). */
const B_BINARY = 0x04;
/** Register B: 24-hour (set) or 12-hour mode. */
const B_24H = 0x02;
/** Register C: an enabled flag is set, IRQ asserted. */
const C_IRQF = 0x80;
/** Register C: periodic interrupt flag. */
const C_PF = 0x40;
/** Register C: alarm flag. */
const C_AF = 0x20;
/** Register C: update-ended flag. */
const C_UF = 0x10;
/** Register D: valid RAM and time (battery good). */
const D_VRT = 0x80;
/** Hour register in 12-hour mode: PM. */
const HOUR_PM = 0x80;
/** An alarm byte with both top bits set matches any value. */
const ALARM_DONT_CARE = 0xc0;
/** UIP rises this long before each update: 244 us, 8 cycles of the 32.768 kHz base. */
const UIP_LEAD_NS = (8 * NS_PER_S) / CRYSTAL_HZ;
/** After the divider is released from reset, the first update comes half a second later. */
const FIRST_UPDATE_AFTER_RESET_NS = NS_PER_S / 2;

/** Boot devices as SeaBIOS reads them from CMOS 0x3D/0x38. */
export type CmosBootDevice = "floppy" | "disk" | "cdrom" | "network";
const BOOT_CODE: Record<CmosBootDevice, number> = { floppy: 1, disk: 2, cdrom: 3, network: 4 };

/** What the machine builder tells the firmware through CMOS. */
export interface CmosFirmwareConfig {
  /** RAM below 4 GiB, bytes. */
  ramBelow4GiB: number;
  /** RAM above 4 GiB, bytes. */
  ramAbove4GiB?: number;
  /** Up to three boot devices, in order. */
  bootOrder?: readonly CmosBootDevice[];
  /** Skip the boot-sector signature check on floppies (CMOS 0x38 bit 0). */
  floppyNoSignatureCheck?: boolean;
  /** Processors (SeaBIOS reads CPUs - 1 from 0x5F when fw_cfg doesn't say). */
  cpus?: number;
  /** Floppy drive types for A: and B: (4 = 1.44 MB), 0 when absent. */
  floppyTypes?: readonly [number, number];
  /** A PS/2 mouse is attached (equipment byte bit 2). */
  ps2Mouse?: boolean;
}

export interface RtcState {
  cmos: number[];
  index: number;
  nmiMasked: boolean;
  running: boolean;
  /** RTC seconds since 1970 (running clocks). */
  seconds: number;
  /** Nanoseconds into the current second (running clocks). */
  phaseNs: number;
  flags: number;
}

export interface RtcOptions {
  /** Wall-clock time the guest should see at power-on, ms since 1970 (UTC or local: the guest's choice). */
  wallClockMs?: () => number;
  /** Called when the NMI mask bit (index port bit 7) changes. */
  onNmiMask?: (masked: boolean) => void;
}

export class Rtc implements PortDevice, Persistent<RtcState> {
  readonly stateVersion = 1;
  private readonly cmos = new Uint8Array(128);
  private index = 0;
  private nmiMask = false;
  /** RTC seconds at `baseNs`. */
  private baseSeconds = 0;
  /** Guest time at which second `baseSeconds` began. */
  private baseNs = 0;
  private running = false;
  /** PF/AF/UF set by timers and not yet read. */
  private flags = 0;
  /** Guest time of the last register C read, for flags worked out lazily. */
  private flagsCheckedNs = 0;
  private readonly scheduler: Scheduler;
  private readonly irq: IrqLine;
  private readonly wallClockMs: () => number;
  private readonly onNmiMask: ((masked: boolean) => void) | undefined;
  private readonly periodicTimer: Timer;
  private readonly updateTimer: Timer;

  constructor(scheduler: Scheduler, irq8: IrqLine, options: RtcOptions = {}) {
    this.scheduler = scheduler;
    this.irq = irq8;
    this.wallClockMs = options.wallClockMs ?? Date.now;
    this.onNmiMask = options.onNmiMask;
    this.periodicTimer = scheduler.createTimer("rtc periodic", () => this.onPeriodic());
    this.updateTimer = scheduler.createTimer("rtc update", () => this.onUpdate());
    this.powerOn();
  }

  /** True while index port bit 7 masks NMI. */
  get nmiMasked(): boolean {
    return this.nmiMask;
  }

  /** Battery-fresh state: registers at their defaults and the time from the wall clock. */
  private powerOn(): void {
    this.cmos.fill(0);
    this.cmos[REG_A] = 0x26;
    this.cmos[REG_B] = B_24H;
    this.cmos[REG_D] = D_VRT;
    this.running = true;
    this.setTime(this.wallClockMs());
  }

  /** System reset: interrupt enables and flags clear; the clock and RAM keep going. */
  reset(): void {
    this.cmos[REG_B]! &= ~(B_PIE | B_AIE | B_UIE | 0x08);
    this.flags = 0;
    this.irq.lower();
    this.reschedule();
  }

  /** Sets the clock to `ms` since 1970; the next update comes a second later. */
  setTime(ms: number): void {
    if (!Number.isFinite(ms)) throw new RangeError("rtc: time is not a finite number");
    const now = this.scheduler.now();
    this.baseSeconds = Math.floor(ms / 1000);
    this.baseNs = now - (ms - this.baseSeconds * 1000) * 1_000_000;
    if (!this.running) this.storeTime(this.baseSeconds);
    this.flagsCheckedNs = now;
    this.reschedule();
  }

  /** The clock's current time, ms since 1970 (whole seconds). */
  time(): number {
    return this.currentSeconds() * 1000;
  }

  getCmosByte(index: number): number {
    return this.cmos[index & 0x7f]!;
  }

  /** Sets a byte of CMOS RAM, as firmware would find it (checksum is not updated). */
  setCmosByte(index: number, value: number): void {
    this.cmos[index & 0x7f] = value & 0xff;
  }

  /** Memory sizes, boot order, equipment, century and checksum, as QEMU's pc machine provides them. */
  setFirmwareConfig(config: CmosFirmwareConfig): void {
    const below = Math.max(0, Math.floor(config.ramBelow4GiB));
    const above = Math.max(0, Math.floor(config.ramAbove4GiB ?? 0));
    const word = (lo: number, v: number) => {
      this.cmos[lo] = v & 0xff;
      this.cmos[lo + 1] = (v >> 8) & 0xff;
    };
    word(0x15, 640); // base memory, KiB
    const extendedKiB = Math.min(0xffff, Math.max(0, Math.floor(below / 1024) - 1024));
    word(0x17, extendedKiB);
    word(0x30, extendedKiB);
    const above16M = below > 16 << 20 ? Math.min(0xffff, Math.floor((below - (16 << 20)) / 65536)) : 0;
    word(0x34, above16M);
    const above4G = Math.min(0xffffff, Math.floor(above / 65536));
    this.cmos[0x5b] = above4G & 0xff;
    this.cmos[0x5c] = (above4G >> 8) & 0xff;
    this.cmos[0x5d] = (above4G >> 16) & 0xff;
    this.cmos[0x5f] = Math.max(0, Math.min(255, (config.cpus ?? 1) - 1));

    const [fdA, fdB] = config.floppyTypes ?? [0, 0];
    this.cmos[0x10] = ((fdA & 15) << 4) | (fdB & 15);
    const floppies = (fdA ? 1 : 0) + (fdB ? 1 : 0);
    // Equipment: floppies present and count, FPU present, PS/2 mouse; display field 00 (EGA/VGA).
    let equipment = 0x02;
    if (floppies > 0) equipment |= 0x01 | ((floppies - 1) << 6);
    if (config.ps2Mouse ?? true) equipment |= 0x04;
    this.cmos[0x14] = equipment;

    const order = config.bootOrder ?? ["disk", "cdrom", "floppy"];
    if (order.length > 3) throw new RangeError("rtc: CMOS holds at most three boot devices");
    const code = (i: number) => {
      const device = order[i];
      if (device === undefined) return 0;
      const c = BOOT_CODE[device];
      if (c === undefined) throw new RangeError(`rtc: unknown boot device '${device}'`);
      return c;
    };
    this.cmos[0x3d] = code(0) | (code(1) << 4);
    this.cmos[0x38] = (code(2) << 4) | (config.floppyNoSignatureCheck ? 1 : 0);
    this.updateChecksum();
  }

  /** Recomputes the standard checksum over 0x10-0x2D into 0x2E (high) and 0x2F (low). */
  updateChecksum(): void {
    let sum = 0;
    for (let i = 0x10; i <= 0x2d; i++) sum += this.cmos[i]!;
    this.cmos[0x2e] = (sum >> 8) & 0xff;
    this.cmos[0x2f] = sum & 0xff;
  }

  ioRead(offset: number, _width: Width): number {
    if ((offset & 1) === 0) return 0xff; // the index register is write-only
    const index = this.index;
    switch (index) {
      case SECONDS:
      case MINUTES:
      case HOURS:
      case DAY_OF_WEEK:
      case DAY_OF_MONTH:
      case MONTH:
      case YEAR:
      case CMOS_CENTURY:
        if (this.running) this.storeTime(this.currentSeconds());
        return this.cmos[index]!;
      case REG_A:
        return this.cmos[REG_A]! | (this.updateInProgress() ? A_UIP : 0);
      case REG_C:
        return this.readRegisterC();
      default:
        return this.cmos[index]!;
    }
  }

  ioWrite(offset: number, _width: Width, value: number): void {
    value &= 0xff;
    if ((offset & 1) === 0) {
      this.index = value & 0x7f;
      const masked = (value & 0x80) !== 0;
      if (masked !== this.nmiMask) {
        this.nmiMask = masked;
        this.onNmiMask?.(masked);
      }
      return;
    }
    const index = this.index;
    switch (index) {
      case SECONDS:
      case MINUTES:
      case HOURS:
      case DAY_OF_WEEK:
      case DAY_OF_MONTH:
      case MONTH:
      case YEAR:
      case CMOS_CENTURY:
        if (this.running) {
          // Setting one field of a running clock: the others keep their current values.
          this.foldFlags();
          const phase = this.phaseNs();
          this.storeTime(this.currentSeconds());
          this.cmos[index] = value;
          this.baseSeconds = this.parseTime();
          this.baseNs = this.scheduler.now() - phase;
          this.flagsCheckedNs = this.scheduler.now();
          this.reschedule();
        } else {
          this.cmos[index] = value;
        }
        return;
      case REG_A:
        this.foldFlags();
        this.cmos[REG_A] = value & ~A_UIP;
        this.updateRunning(true);
        return;
      case REG_B:
        // SET stops updates and clears UIE.
        if (value & B_SET) value &= ~B_UIE;
        this.foldFlags();
        this.cmos[REG_B] = value;
        this.updateRunning(false);
        this.updateIrq();
        return;
      case REG_C:
      case REG_D:
        return; // read-only
      default:
        this.cmos[index] = value;
    }
  }

  private currentSeconds(): number {
    if (!this.running) return this.parseTime();
    return this.baseSeconds + Math.floor((this.scheduler.now() - this.baseNs) / NS_PER_S);
  }

  private phaseNs(): number {
    const d = this.scheduler.now() - this.baseNs;
    return d - Math.floor(d / NS_PER_S) * NS_PER_S;
  }

  private updateInProgress(): boolean {
    return this.running && this.phaseNs() >= NS_PER_S - UIP_LEAD_NS;
  }

  /** Starts or stops the clock after a change of SET or the divider field. */
  private updateRunning(dividerWrite: boolean): void {
    const a = this.cmos[REG_A]!;
    const run = (this.cmos[REG_B]! & B_SET) === 0 && (a & A_DIVIDER) <= A_DIVIDER_RUNNING;
    if (run !== this.running) {
      const now = this.scheduler.now();
      if (run) {
        this.baseSeconds = this.parseTime();
        // A released divider chain makes its first update after half a second.
        this.baseNs = dividerWrite ? now - (NS_PER_S - FIRST_UPDATE_AFTER_RESET_NS) : now;
        this.flagsCheckedNs = now;
      } else {
        this.storeTime(this.currentSeconds());
      }
      this.running = run;
    }
    this.reschedule();
  }

  private encode(v: number): number {
    if (this.cmos[REG_B]! & B_BINARY) return v;
    return (Math.floor(v / 10) << 4) | (v % 10);
  }

  private decode(v: number): number {
    if (this.cmos[REG_B]! & B_BINARY) return v;
    return (v >> 4) * 10 + (v & 15);
  }

  private encodeHour(hour: number): number {
    if (this.cmos[REG_B]! & B_24H) return this.encode(hour);
    const twelve = hour % 12 === 0 ? 12 : hour % 12;
    return this.encode(twelve) | (hour >= 12 ? HOUR_PM : 0);
  }

  private decodeHour(v: number): number {
    if (this.cmos[REG_B]! & B_24H) return this.decode(v);
    const twelve = this.decode(v & ~HOUR_PM) % 12;
    return v & HOUR_PM ? twelve + 12 : twelve;
  }

  /** Writes `seconds` since 1970 into the time registers in the current format. */
  private storeTime(seconds: number): void {
    const days = Math.floor(seconds / 86400);
    const secondOfDay = seconds - days * 86400;
    const cmos = this.cmos;
    cmos[SECONDS] = this.encode(secondOfDay % 60);
    cmos[MINUTES] = this.encode(Math.floor(secondOfDay / 60) % 60);
    cmos[HOURS] = this.encodeHour(Math.floor(secondOfDay / 3600));
    cmos[DAY_OF_WEEK] = this.encode(((((days + 4) % 7) + 7) % 7) + 1);
    // Civil date from days since 1970 (proleptic Gregorian, eras of 400 years).
    const z = days + 719468;
    const era = Math.floor(z / 146097);
    const doe = z - era * 146097;
    const yoe = Math.floor(
      (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
    );
    const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
    const mp = Math.floor((5 * doy + 2) / 153);
    const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
    const month = mp < 10 ? mp + 3 : mp - 9;
    const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
    cmos[DAY_OF_MONTH] = this.encode(day);
    cmos[MONTH] = this.encode(month);
    cmos[YEAR] = this.encode(((year % 100) + 100) % 100);
    cmos[CMOS_CENTURY] = this.encode(Math.floor(year / 100) % 100);
  }

  /** Seconds since 1970 from the time registers; out-of-range fields roll over as arithmetic. */
  private parseTime(): number {
    const cmos = this.cmos;
    const second = this.decode(cmos[SECONDS]!);
    const minute = this.decode(cmos[MINUTES]!);
    const hour = this.decodeHour(cmos[HOURS]!);
    const day = this.decode(cmos[DAY_OF_MONTH]!);
    let month = this.decode(cmos[MONTH]!);
    let year = this.decode(cmos[CMOS_CENTURY]!) * 100 + this.decode(cmos[YEAR]!);
    year += Math.floor((month - 1) / 12);
    month = ((((month - 1) % 12) + 12) % 12) + 1;
    const y = month <= 2 ? year - 1 : year;
    const era = Math.floor(y / 400);
    const yoe = y - era * 400;
    const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
    const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
    const days = era * 146097 + doe - 719468;
    return days * 86400 + hour * 3600 + minute * 60 + second;
  }

  /** Period of the periodic interrupt in 32.768 kHz cycles, or 0 when off. */
  private periodCycles(): number {
    let rate = this.cmos[REG_A]! & A_RATE;
    if (rate === 0) return 0;
    if (rate <= 2) rate += 7; // rates 1 and 2 repeat 8 and 9 with a 32.768 kHz base
    return 1 << (rate - 1);
  }

  /** 32.768 kHz cycles elapsed at guest time `ns` (exact for long uptimes). */
  private cyclesAt(ns: number): number {
    const seconds = Math.floor(ns / NS_PER_S);
    return seconds * CRYSTAL_HZ + Math.floor(((ns - seconds * NS_PER_S) * CRYSTAL_HZ) / NS_PER_S);
  }

  private cycleTime(cycle: number): number {
    const seconds = Math.floor(cycle / CRYSTAL_HZ);
    return seconds * NS_PER_S + Math.ceil(((cycle - seconds * CRYSTAL_HZ) * NS_PER_S) / CRYSTAL_HZ);
  }

  /**
   * PF/AF/UF at guest time `now`: those timers set, plus the periodic, alarm and update-ended
   * events that happened since the last read while their interrupts (and so their timers) were off.
   */
  private flagsAt(now: number): number {
    let flags = this.flags;
    if (!this.running) return flags;
    const period = this.periodCycles();
    const since = this.flagsCheckedNs;
    if (period > 0 && Math.floor(this.cyclesAt(now) / period) > Math.floor(this.cyclesAt(since) / period)) {
      flags |= C_PF;
    }
    const second = Math.floor((now - this.baseNs) / NS_PER_S);
    const checkedSecond = Math.floor((since - this.baseNs) / NS_PER_S);
    if (second > checkedSecond) {
      flags |= C_UF;
      // With AIE set the update timer records AF itself.
      if (
        (this.cmos[REG_B]! & B_AIE) === 0 &&
        this.alarmPassed(this.baseSeconds + checkedSecond, this.baseSeconds + second)
      ) {
        flags |= C_AF;
      }
    }
    return flags;
  }

  /**
   * Records the lazily computed flags before a change of rate, enables or time base would make
   * them come out differently (and so that enabling an interrupt sees a flag already set).
   */
  private foldFlags(): void {
    const now = this.scheduler.now();
    this.flags = this.flagsAt(now);
    this.flagsCheckedNs = now;
  }

  private readRegisterC(): number {
    const now = this.scheduler.now();
    const flags = this.flagsAt(now);
    const value = flags | (this.irqPending(flags) ? C_IRQF : 0);
    this.flags = 0;
    this.flagsCheckedNs = now;
    this.irq.lower();
    return value;
  }

  private irqPending(flags: number): boolean {
    const b = this.cmos[REG_B]!;
    return ((flags & C_PF && b & B_PIE) || (flags & C_AF && b & B_AIE) || (flags & C_UF && b & B_UIE)) !== 0;
  }

  private updateIrq(): void {
    if (this.irqPending(this.flags)) this.irq.raise();
  }

  private reschedule(): void {
    const b = this.cmos[REG_B]!;
    const now = this.scheduler.now();
    const period = this.periodCycles();
    if (this.running && period > 0 && b & B_PIE) {
      this.periodicTimer.setAt(this.cycleTime((Math.floor(this.cyclesAt(now) / period) + 1) * period));
    } else {
      this.periodicTimer.cancel();
    }
    if (this.running && b & (B_UIE | B_AIE)) {
      const next = this.baseNs + (Math.floor((now - this.baseNs) / NS_PER_S) + 1) * NS_PER_S;
      this.updateTimer.setAt(next);
    } else {
      this.updateTimer.cancel();
    }
  }

  private onPeriodic(): void {
    this.flags |= C_PF;
    this.updateIrq();
    this.reschedule();
  }

  private onUpdate(): void {
    this.flags |= C_UF;
    if (this.alarmMatches(this.currentSeconds())) this.flags |= C_AF;
    this.updateIrq();
    this.reschedule();
  }

  /** True if the alarm registers match the time `seconds` (since 1970), field by field. */
  private alarmMatches(seconds: number): boolean {
    const secondOfDay = seconds - Math.floor(seconds / 86400) * 86400;
    const cmos = this.cmos;
    return (
      this.alarmFieldMatches(cmos[SECONDS_ALARM]!, this.encode(secondOfDay % 60)) &&
      this.alarmFieldMatches(cmos[MINUTES_ALARM]!, this.encode(Math.floor(secondOfDay / 60) % 60)) &&
      this.alarmFieldMatches(cmos[HOURS_ALARM]!, this.encodeHour(Math.floor(secondOfDay / 3600)))
    );
  }

  private alarmFieldMatches(alarm: number, value: number): boolean {
    return (alarm & ALARM_DONT_CARE) === ALARM_DONT_CARE || alarm === value;
  }

  /** True if an update in seconds (from, to] hit the alarm; looks at most a day back. */
  private alarmPassed(from: number, to: number): boolean {
    for (let t = Math.max(from + 1, to - 86399); t <= to; t++) {
      if (this.alarmMatches(t)) return true;
    }
    return false;
  }

  saveState(): RtcState {
    // Fold lazily computed flags in, so the copy doesn't depend on when it was taken.
    const flags = this.flagsAt(this.scheduler.now());
    return {
      cmos: Array.from(this.cmos),
      index: this.index,
      nmiMasked: this.nmiMask,
      running: this.running,
      seconds: this.currentSeconds(),
      phaseNs: this.running ? this.phaseNs() : 0,
      flags,
    };
  }

  loadState(state: RtcState, version: number): void {
    if (version !== 1) throw new StateError(`rtc: unknown state version ${version}`);
    if (typeof state !== "object" || state === null) throw new StateError("rtc: state is not an object");
    const cmos = state.cmos;
    if (
      !Array.isArray(cmos) ||
      cmos.length !== 128 ||
      !cmos.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)
    ) {
      throw new StateError("rtc: cmos should be 128 bytes");
    }
    const num = (v: unknown, name: string) => {
      if (typeof v !== "number" || !Number.isFinite(v)) throw new StateError(`rtc: ${name} is not a number`);
      return v;
    };
    const seconds = Math.floor(num(state.seconds, "seconds"));
    const phase = num(state.phaseNs, "phaseNs");
    this.cmos.set(cmos);
    this.index = num(state.index, "index") & 0x7f;
    this.nmiMask = state.nmiMasked === true;
    this.running = state.running === true;
    this.flags = num(state.flags, "flags") & (C_PF | C_AF | C_UF);
    const now = this.scheduler.now();
    this.baseSeconds = seconds;
    this.baseNs = now - Math.min(Math.max(phase, 0), NS_PER_S - 1);
    this.flagsCheckedNs = now;
    if (this.irqPending(this.flags)) this.irq.raise();
    else this.irq.lower();
    this.reschedule();
  }
}
