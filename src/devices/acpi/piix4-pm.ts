// The PIIX4 power management function (00:01.3, 8086:7113) as QEMU's `pc` board has it: the ACPI
// fixed-hardware registers (PM1a event and control blocks, the PM timer), a GPE0 block, the APM
// command port that switches ACPI mode on, and the SCI on IRQ 9.
//
// The PM I/O block (64 bytes) decodes where config register 0x40 (PMBA) points once bit 0 of
// register 0x80 (PMIOSE) is set; it is reported to the machine builder as window index 7 through
// the same listener as BARs. The APM ports (2 bytes, fixed at 0xB2 on PCs) and the GPE0 block
// (4 bytes, QEMU puts it at 0xAFE0) always decode; they are reported the same way, as windows 8
// and 9, so a builder that maps BAR changes needs no extra wiring for them.

import type { PortDevice, Width } from "../../core/bus.ts";
import type { IrqLine } from "../../core/irq.ts";
import { field } from "../../core/persist.ts";
import type { Scheduler, Timer } from "../../core/scheduler.ts";
import {
  FIRST_EXTRA_WINDOW_INDEX,
  type IoBar,
  PCI_INTERRUPT_LINE,
  PciFunction,
  type PciFunctionState,
  QEMU_SUBSYSTEM_ID,
  QEMU_SUBSYSTEM_VENDOR_ID,
} from "../pci/function.ts";

/** PM timer frequency in Hz. */
export const PM_TIMER_HZ = 3_579_545;
/** Bytes of the PM I/O block. */
export const PM_IO_SIZE = 64;
/** Bytes of the GPE0 block (status word, enable word). */
export const GPE0_SIZE = 4;

// Offsets in the PM I/O block.
export const PM1_STATUS = 0x00;
export const PM1_ENABLE = 0x02;
export const PM1_CONTROL = 0x04;
export const PM_TIMER = 0x08;

/** PM1 status/enable bit 0 (TMR_STS/EN): PM timer bit 23 changed. */
export const PM1_TIMER = 0x0001;
/** PM1 status/enable bit 5 (GBL_STS/EN): the BIOS released the global lock. */
export const PM1_GLOBAL = 0x0020;
/** PM1 status/enable bit 8 (PWRBTN_STS/EN): the power button was pressed. */
export const PM1_POWER_BUTTON = 0x0100;
/** PM1 status/enable bit 10 (RTC_STS/EN): RTC alarm. */
export const PM1_RTC = 0x0400;
/** PM1 status bit 15 (WAK_STS): the system woke from a sleep state. */
export const PM1_WAKE = 0x8000;
/** Status bits that raise the SCI when their enable bit is set. */
const PM1_SCI_EVENTS = PM1_TIMER | PM1_GLOBAL | PM1_POWER_BUTTON | PM1_RTC;

/** PM1 control bit 0 (SCI_EN): power management events go to the SCI (ACPI mode). */
export const PM1_SCI_ENABLE = 0x0001;
/** PM1 control bits 12:10 (SLP_TYP). */
const PM1_SLEEP_TYPE_SHIFT = 10;
const PM1_SLEEP_TYPE_MASK = 0x1c00;
/** PM1 control bit 13 (SLP_EN, write-only): enter the sleep state in SLP_TYP. */
export const PM1_SLEEP_ENABLE = 0x2000;
/** Bits of PM1 control that are stored (SCI_EN, BM_RLD, GBL_RLS, SLP_TYP). */
const PM1_CONTROL_STORED = 0x1c07;
/** The SLP_TYP value QEMU's PIIX4 treats as soft-off (S5); the DSDT's \_S5 carries it. */
export const SLEEP_TYPE_S5 = 0;

/** APM control port value that turns ACPI mode on (the FADT's ACPI_ENABLE). */
export const APM_ACPI_ENABLE = 0xf1;
/** APM control port value that turns ACPI mode off (the FADT's ACPI_DISABLE). */
export const APM_ACPI_DISABLE = 0xf0;

/** Config 0x40 (PMBA): PM I/O base, bits 15:6; bit 0 reads 1 (I/O space). */
const PIIX4_PMBA = 0x40;
/** Config 0x58 (DEVACTB): device activity B. */
const PIIX4_DEVACTB = 0x58;
/** DEVACTB bit 25 (APMC_EN): APM control writes raise an SMI. Set at reset so firmware sees SMM
 * as already initialised and does not try to relocate it (this machine has no SMM). */
const DEVACTB_APMC_EN = 0x0200_0000;
/** Config 0x80 (PMREGMISC): bit 0 (PMIOSE) enables the PM I/O block. */
const PIIX4_PMREGMISC = 0x80;
const PMIOSE = 0x01;

/** Config 0x90 (SMBBA): SMBus host interface I/O base. */
const PIIX4_SMBUS_BASE = 0x90;
/** Config 0xD2 (SMBHSTCFG). */
const PIIX4_SMBUS_HOST_CONFIG = 0xd2;
/** SMBHSTCFG bit 0: SMBus host interface enabled. */
const SMBUS_HOST_ENABLE = 0x01;
/** SMBHSTCFG bits 3:1 = 100: SMBus interrupts go to SMI (what firmware selects). */
const SMBUS_INTERRUPT_SMI = 0x08;

/** BarChange index of the APM control/status ports. */
export const APM_WINDOW_INDEX = FIRST_EXTRA_WINDOW_INDEX + 1;
/** BarChange index of the GPE0 block. */
export const GPE0_WINDOW_INDEX = FIRST_EXTRA_WINDOW_INDEX + 2;

/** Timer ticks per PM1 timer status event: bit 23 changes every 2^23 ticks. */
const TIMER_EVENT_TICKS = 1 << 23;

export interface Piix4PmOptions {
  readonly scheduler: Scheduler;
  /** The SCI (QEMU: ISA IRQ 9, level, active high). */
  readonly sci: IrqLine;
  /** The guest entered S5. */
  readonly onPowerOff?: () => void;
  /** The guest entered another sleep state (SLP_TYP value); the board may treat it as a reset. */
  readonly onSleep?: (sleepType: number) => void;
  /** Port of the APM control register (default 0xB2; the FADT's SMI_CMD). */
  readonly apmPort?: number;
  /** Port of the GPE0 block (default 0xAFE0, as QEMU; the FADT's GPE0_BLK). */
  readonly gpe0Port?: number;
}

export interface Piix4PmState extends PciFunctionState {
  readonly pm1Status: number;
  readonly pm1Enable: number;
  readonly pm1Control: number;
  readonly gpeStatus: number;
  readonly gpeEnable: number;
  readonly apmControl: number;
  readonly apmStatus: number;
  /** The rest of the PM I/O block (plain storage registers). */
  readonly pmScratch: Uint8Array;
}

export class Piix4Pm extends PciFunction {
  override readonly stateVersion = 1;
  /** The 64-byte PM I/O block (also reported as window 7 when decoding). */
  readonly pmPorts: PortDevice;
  /** The GPE0 block: status word (write 1 to clear) then enable word. */
  readonly gpePorts: PortDevice;
  /** APM control (offset 0, port 0xB2) and status (offset 1, 0xB3). */
  readonly apmPorts: PortDevice;

  private readonly scheduler: Scheduler;
  private readonly sci: IrqLine;
  private readonly onPowerOff: (() => void) | undefined;
  private readonly onSleep: ((sleepType: number) => void) | undefined;
  private readonly timerEvent: Timer;
  private readonly pmWindow: IoBar;
  private pm1Status = 0;
  private pm1Enable = 0;
  private pm1Control = 0;
  private gpeStatus = 0;
  private gpeEnable = 0;
  private apmControl = 0;
  private apmStatus = 0;
  private pmScratch = new Uint8Array(PM_IO_SIZE);

  constructor(options: Piix4PmOptions) {
    super({
      name: "piix4-pm",
      vendorId: 0x8086,
      deviceId: 0x7113,
      revision: 0x03,
      classCode: 0x068000,
      interruptPin: 1,
      subsystemVendorId: QEMU_SUBSYSTEM_VENDOR_ID,
      subsystemId: QEMU_SUBSYSTEM_ID,
    });
    this.scheduler = options.scheduler;
    this.sci = options.sci;
    this.onPowerOff = options.onPowerOff;
    this.onSleep = options.onSleep;
    this.timerEvent = options.scheduler.createTimer("acpi-pm-timer", () => this.timerOverflow());

    // The device-specific area is read/write storage, as in QEMU's model, except PMBA's low bits.
    this.setConfigBytes(0x40, new Array(0xc0).fill(0), new Array(0xc0).fill(0xff));
    this.setConfigBytes(PIIX4_PMBA, [0x01, 0x00, 0x00, 0x00], [0xc0, 0xff, 0x00, 0x00]);
    this.setConfigBytes(PIIX4_DEVACTB, [0, 0, 0, DEVACTB_APMC_EN >>> 24]);

    this.pmPorts = {
      ioRead: (offset, width) => this.readBytes(offset, width, (o) => this.pmReadByte(o)),
      ioWrite: (offset, width, value) => this.pmWrite(offset, width, value),
    };
    this.pmWindow = { kind: "io", size: PM_IO_SIZE, device: this.pmPorts };
    this.gpePorts = {
      ioRead: (offset, width) =>
        this.readBytes(offset, width, (o) => {
          const word = o < 2 ? this.gpeStatus : this.gpeEnable;
          return (word >> (8 * (o & 1))) & 0xff;
        }),
      ioWrite: (offset, width, value) => {
        for (let i = 0; i < width && offset + i < GPE0_SIZE; i++) {
          const o = offset + i;
          const byte = ((value >>> (8 * i)) & 0xff) << (8 * (o & 1));
          if (o < 2) this.gpeStatus &= ~byte;
          else this.gpeEnable = (this.gpeEnable & ~(0xff << (8 * (o & 1)))) | byte;
        }
        this.updateSci();
      },
    };
    this.apmPorts = {
      ioRead: (offset) => (offset === 0 ? this.apmControl : this.apmStatus),
      ioWrite: (offset, _width, value) => {
        if (offset === 1) {
          this.apmStatus = value & 0xff;
          return;
        }
        this.apmControl = value & 0xff;
        if (this.apmControl === APM_ACPI_ENABLE) this.pm1Control |= PM1_SCI_ENABLE;
        else if (this.apmControl === APM_ACPI_DISABLE) this.pm1Control &= ~PM1_SCI_ENABLE;
      },
    };
    this.setExtraWindow(
      APM_WINDOW_INDEX,
      { kind: "io", size: 2, device: this.apmPorts },
      options.apmPort ?? 0xb2,
    );
    this.setExtraWindow(
      GPE0_WINDOW_INDEX,
      { kind: "io", size: GPE0_SIZE, device: this.gpePorts },
      options.gpe0Port ?? 0xafe0,
    );
    this.armTimerEvent();
  }

  /**
   * Programs the function as PC firmware does (SeaBIOS: SCI line 9, PM I/O block at `pmBase`
   * and enabled, SMBus host interface at `pmBase` + 0x100), for boots that skip the firmware;
   * the ACPI tables' PM addresses must match `pmBase`.
   */
  applyFirmwareDefaults(pmBase = 0x600): void {
    this.configWrite(PCI_INTERRUPT_LINE, 1, 9);
    this.configWrite(PIIX4_PMBA, 4, (pmBase & 0xffc0) | 1);
    this.configWrite(PIIX4_PMREGMISC, 1, PMIOSE);
    this.configWrite(PIIX4_SMBUS_BASE, 4, ((pmBase + 0x100) & 0xfff0) | 1);
    this.configWrite(PIIX4_SMBUS_HOST_CONFIG, 1, SMBUS_HOST_ENABLE | SMBUS_INTERRUPT_SMI);
  }

  /** The host's power button: sets PWRBTN_STS and raises the SCI if the guest enabled it. */
  pressPowerButton(): void {
    this.pm1Status |= PM1_POWER_BUTTON;
    this.updateSci();
  }

  /** Sets GPE0 status bit `bit` (0-15), e.g. for a hotplug event; the SCI follows its enable bit. */
  raiseGpe(bit: number): void {
    this.gpeStatus |= (1 << bit) & 0xffff;
    this.updateSci();
  }

  /** ACPI PM timer value now (24 bits). */
  timerValue(): number {
    return this.ticks(this.scheduler.now()) % 0x100_0000;
  }

  /** Whether the guest has switched to ACPI mode. */
  get sciEnabled(): boolean {
    return (this.pm1Control & PM1_SCI_ENABLE) !== 0;
  }

  protected override configChanged(offset: number, width: Width): void {
    const touches = (at: number, len: number) => offset < at + len && offset + width > at;
    if (touches(PIIX4_PMBA, 4) || touches(PIIX4_PMREGMISC, 1)) this.updatePmWindow();
  }

  override resetConfig(): void {
    super.resetConfig();
    this.pm1Status = 0;
    this.pm1Enable = 0;
    this.pm1Control = 0;
    this.gpeStatus = 0;
    this.gpeEnable = 0;
    this.apmControl = 0;
    this.apmStatus = 0;
    this.pmScratch.fill(0);
    this.updatePmWindow();
    this.updateSci();
  }

  override saveState(): Piix4PmState {
    return {
      ...super.saveState(),
      pm1Status: this.pm1Status,
      pm1Enable: this.pm1Enable,
      pm1Control: this.pm1Control,
      gpeStatus: this.gpeStatus,
      gpeEnable: this.gpeEnable,
      apmControl: this.apmControl,
      apmStatus: this.apmStatus,
      pmScratch: this.pmScratch.slice(),
    };
  }

  override loadState(state: Piix4PmState, version: number): void {
    super.loadState(state, version);
    const s = state as unknown as Record<string, unknown>;
    this.pm1Status = field(s, "pm1Status", "number") & 0xffff;
    this.pm1Enable = field(s, "pm1Enable", "number") & 0xffff;
    this.pm1Control = field(s, "pm1Control", "number") & PM1_CONTROL_STORED;
    this.gpeStatus = field(s, "gpeStatus", "number") & 0xffff;
    this.gpeEnable = field(s, "gpeEnable", "number") & 0xffff;
    this.apmControl = field(s, "apmControl", "number") & 0xff;
    this.apmStatus = field(s, "apmStatus", "number") & 0xff;
    this.pmScratch = new Uint8Array(PM_IO_SIZE);
    if (state.pmScratch instanceof Uint8Array) this.pmScratch.set(state.pmScratch.subarray(0, PM_IO_SIZE));
    this.updatePmWindow();
    this.updateSci();
    this.armTimerEvent();
  }

  // ---- internals --------------------------------------------------------------------------

  private updatePmWindow(): void {
    const base = (this.config[PIIX4_PMBA]! | (this.config[PIIX4_PMBA + 1]! << 8)) & 0xffc0;
    const enabled = (this.config[PIIX4_PMREGMISC]! & PMIOSE) !== 0 && base !== 0;
    this.setExtraWindow(FIRST_EXTRA_WINDOW_INDEX, this.pmWindow, enabled ? base : undefined);
  }

  private readBytes(offset: number, width: Width, byteAt: (offset: number) => number): number {
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + byteAt(offset + i);
    return value;
  }

  private pmReadByte(offset: number): number {
    const shift = 8 * (offset & 1);
    switch (offset) {
      case PM1_STATUS:
      case PM1_STATUS + 1:
        return (this.pm1Status >> shift) & 0xff;
      case PM1_ENABLE:
      case PM1_ENABLE + 1:
        return (this.pm1Enable >> shift) & 0xff;
      case PM1_CONTROL:
      case PM1_CONTROL + 1:
        return (this.pm1Control >> shift) & 0xff;
      case PM_TIMER:
      case PM_TIMER + 1:
      case PM_TIMER + 2:
        return (this.timerValue() >> (8 * (offset - PM_TIMER))) & 0xff;
      case PM_TIMER + 3:
        return 0;
      default:
        return this.pmScratch[offset] ?? 0xff;
    }
  }

  private pmWrite(offset: number, width: Width, value: number): void {
    let sleepType: number | undefined;
    for (let i = 0; i < width; i++) {
      const o = offset + i;
      const byte = (value >>> (8 * i)) & 0xff;
      const shifted = byte << (8 * (o & 1));
      const keep = ~(0xff << (8 * (o & 1)));
      switch (o) {
        case PM1_STATUS:
        case PM1_STATUS + 1:
          this.pm1Status &= ~shifted;
          break;
        case PM1_ENABLE:
        case PM1_ENABLE + 1:
          this.pm1Enable = (this.pm1Enable & keep) | shifted;
          break;
        case PM1_CONTROL:
        case PM1_CONTROL + 1:
          this.pm1Control = ((this.pm1Control & keep) | shifted) & PM1_CONTROL_STORED;
          if (shifted & PM1_SLEEP_ENABLE) sleepType = (shifted & PM1_SLEEP_TYPE_MASK) >> PM1_SLEEP_TYPE_SHIFT;
          break;
        case PM_TIMER:
        case PM_TIMER + 1:
        case PM_TIMER + 2:
        case PM_TIMER + 3:
          break;
        default:
          if (o < PM_IO_SIZE) this.pmScratch[o] = byte;
      }
    }
    this.updateSci();
    if (sleepType !== undefined) this.enterSleep(sleepType);
  }

  private enterSleep(sleepType: number): void {
    this.pm1Status |= PM1_WAKE;
    if (sleepType === SLEEP_TYPE_S5) this.onPowerOff?.();
    else this.onSleep?.(sleepType);
  }

  private updateSci(): void {
    const pm1 = (this.pm1Status & this.pm1Enable & PM1_SCI_EVENTS) !== 0;
    const gpe = (this.gpeStatus & this.gpeEnable) !== 0;
    this.sci.set(pm1 || gpe);
  }

  /** PM timer ticks since power-on at guest time `ns`, without losing precision. */
  private ticks(ns: number): number {
    const seconds = Math.floor(ns / 1e9);
    return seconds * PM_TIMER_HZ + Math.floor(((ns - seconds * 1e9) * PM_TIMER_HZ) / 1e9);
  }

  private timerOverflow(): void {
    this.pm1Status |= PM1_TIMER;
    this.updateSci();
    this.armTimerEvent();
  }

  /** Arms the timer event for the next change of timer bit 23. */
  private armTimerEvent(): void {
    const now = this.scheduler.now();
    const next = (Math.floor(this.ticks(now) / TIMER_EVENT_TICKS) + 1) * TIMER_EVENT_TICKS;
    const seconds = Math.floor(next / PM_TIMER_HZ);
    const rest = next - seconds * PM_TIMER_HZ;
    // One nanosecond late, so that rounding never leaves the timer just short of the change.
    this.timerEvent.setAt(seconds * 1e9 + Math.ceil((rest * 1e9) / PM_TIMER_HZ) + 1);
  }
}
