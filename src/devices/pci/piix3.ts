// The PIIX3 PCI-to-ISA bridge (00:01.0): PCI interrupt routing (PIRQA-D to ISA IRQs), the
// edge/level control registers (ELCR, ports 0x4D0/0x4D1) and the reset control register
// (port 0xCF9).
//
// PCI INTx lines are wired to the four PIRQ inputs the way QEMU's `pc` board does: the function
// in slot d asserting INTx n (0 = INTA#) drives PIRQ (d + n - 1) mod 4, so slot 1's INTA# is
// PIRQA and slot 2's is PIRQB. Each PIRQ route register
// (0x60-0x63) selects the ISA IRQ it reaches, bit 7 disconnects it.

import type { PortDevice, Width } from "../../core/bus.ts";
import { type IrqLine, WiredOr } from "../../core/irq.ts";
import {
  PciFunction,
  type PciFunctionState,
  QEMU_SUBSYSTEM_ID,
  QEMU_SUBSYSTEM_VENDOR_ID,
} from "./function.ts";
import type { IntxRouter } from "./host-bridge.ts";

/** First PIRQ route control register (PIRQRC[A]); B-D follow. */
export const PIIX3_PIRQRC = 0x60;
/** PIRQ route bit 7: the PIRQ is not routed to any ISA IRQ. */
const PIRQ_ROUTE_DISABLED = 0x80;
/** PIRQ route bits 3:0: ISA IRQ number. */
const PIRQ_ROUTE_IRQ = 0x0f;
/** ISA IRQs a PIRQ may be steered to (3-7, 9-12, 14, 15). */
const ROUTABLE_IRQS = 0b1101_1110_1111_1000;
/** ELCR bits that exist: IRQ 0, 1, 2, 8 and 13 are always edge-triggered. */
const ELCR_WRITABLE = 0b1101_1110_1111_1000;
/** Reset control bit 1 (SRST): the reset requested by bit 2 is a full system reset. */
const RCR_SYSTEM_RESET = 0x02;
/** Reset control bit 2 (RCPU): writing 1 starts a reset. */
const RCR_RESET_CPU = 0x04;
/** Reset control bit 3 (FULL_RST): hold power off during the reset (PIIX4). */
const RCR_FULL_RESET = 0x08;

export interface Piix3Options {
  /**
   * Sixteen ISA IRQ outputs the PIRQ logic drives (for IRQs no PIRQ reaches they stay low). The
   * builder joins each with the ISA device on that IRQ (WiredOr) before the PIC and IOAPIC.
   */
  readonly isaIrqs: readonly IrqLine[];
  /** Optional raw PIRQA-D levels, for boards that also wire them to IOAPIC pins 16-19. */
  readonly pirqOutputs?: readonly IrqLine[];
  /** The ELCR changed: bit n set means ISA IRQ n is level-triggered (the PIC's edge/level). */
  readonly onElcrChange?: (elcr: number) => void;
  /** Port 0xCF9 requested a reset; `hard` for a system (not just CPU) reset. */
  readonly onReset?: (hard: boolean) => void;
}

export interface Piix3State extends PciFunctionState {
  readonly elcr: number;
  readonly resetControl: number;
}

export class Piix3 extends PciFunction implements IntxRouter {
  override readonly stateVersion = 1;
  /** Ports 0x4D0-0x4D1. */
  readonly elcrPorts: PortDevice;
  /** Port 0xCF9 (handed to PciConfigPorts, which owns 0xCF8-0xCFF). */
  readonly resetControlPort: PortDevice;

  private readonly pirqs: WiredOr[];
  private readonly isaIrqs: readonly IrqLine[];
  private readonly onElcrChange: ((elcr: number) => void) | undefined;
  private readonly onReset: ((hard: boolean) => void) | undefined;
  private elcr = 0;
  private resetControl = 0;

  constructor(options: Piix3Options) {
    super({
      name: "piix3",
      vendorId: 0x8086,
      deviceId: 0x7000,
      classCode: 0x060100,
      multiFunction: true,
      subsystemVendorId: QEMU_SUBSYSTEM_VENDOR_ID,
      subsystemId: QEMU_SUBSYSTEM_ID,
    });
    if (options.isaIrqs.length !== 16) throw new RangeError("PIIX3 needs sixteen ISA IRQ outputs");
    this.isaIrqs = options.isaIrqs;
    this.onElcrChange = options.onElcrChange;
    this.onReset = options.onReset;
    this.pirqs = [0, 1, 2, 3].map((n) => new WiredOr(`PIRQ${"ABCD"[n]}`));
    this.pirqs.forEach((pirq, n) => {
      pirq.output.connect((high) => {
        options.pirqOutputs?.[n]?.set(high);
        this.updateIsaIrqs();
      });
    });

    // Everything past the header is read/write here, as on QEMU's model; the defaults are the
    // datasheet's power-on values.
    this.setConfigBytes(0x40, new Array(0xc0).fill(0), new Array(0xc0).fill(0xff));
    const defaults: [number, number][] = [
      [0x4c, 0x4d], // IORT: ISA I/O recovery timer
      [0x4e, 0x03], // XBCS: X-bus chip select
      [0x60, 0x80],
      [0x61, 0x80],
      [0x62, 0x80],
      [0x63, 0x80],
      [0x69, 0x02], // TOM: top of memory
      [0x70, 0x80], // MBIRQ0: motherboard IRQ routing, disabled
      [0x76, 0x0c], // MBDMA0
      [0x77, 0x0c], // MBDMA1
      [0x78, 0x02], // PCSC: programmable chip select
      [0xa0, 0x08], // SMICNTL
      [0xa8, 0x0f], // FTMR: fast off timer
    ];
    for (const [offset, value] of defaults) this.setConfigBytes(offset, [value]);

    this.elcrPorts = {
      ioRead: (offset: number, _width: Width) => (offset === 0 ? this.elcr & 0xff : (this.elcr >> 8) & 0xff),
      ioWrite: (offset: number, width: Width, value: number) => {
        // A word write covers both registers.
        const word = width === 1 ? (offset === 0 ? value & 0xff : (value & 0xff) << 8) : value & 0xffff;
        const mask = width === 1 ? (offset === 0 ? 0x00ff : 0xff00) : 0xffff;
        this.setElcr((this.elcr & ~mask) | (word & mask & ELCR_WRITABLE));
      },
    };
    this.resetControlPort = {
      ioRead: () => this.resetControl,
      ioWrite: (_offset: number, _width: Width, value: number) => {
        this.resetControl = value & (RCR_SYSTEM_RESET | RCR_FULL_RESET);
        if (value & RCR_RESET_CPU) this.onReset?.((value & (RCR_SYSTEM_RESET | RCR_FULL_RESET)) !== 0);
      },
    };
  }

  /** IntxRouter: slot `slot`'s interrupt pin `pin` (1 = INTA#) drives PIRQ (slot + pin - 2) mod 4. */
  connectIntx(slot: number, pin: number, line: IrqLine): void {
    const input = this.pirqs[(slot + pin - 2) & 3]!.input(line.name);
    line.connect((high) => input.set(high));
  }

  /**
   * Programs the PIRQ routes and the ELCR as PC firmware leaves them (SeaBIOS: PIRQA-D to IRQ
   * 10, 10, 11, 11, those IRQs level-triggered), for boots that skip the firmware.
   */
  applyFirmwareDefaults(irqs: readonly number[] = [10, 10, 11, 11]): void {
    let elcr = this.elcr;
    irqs.slice(0, 4).forEach((irq, n) => {
      this.configWrite(PIIX3_PIRQRC + n, 1, irq & PIRQ_ROUTE_IRQ);
      elcr |= 1 << (irq & PIRQ_ROUTE_IRQ);
    });
    this.setElcr(elcr & ELCR_WRITABLE);
  }

  /** The ISA IRQ PIRQ `n` (0-3) reaches, or undefined when disconnected. */
  pirqRoute(n: number): number | undefined {
    const route = this.config[PIIX3_PIRQRC + n]!;
    if (route & PIRQ_ROUTE_DISABLED) return undefined;
    const irq = route & PIRQ_ROUTE_IRQ;
    return (ROUTABLE_IRQS >> irq) & 1 ? irq : undefined;
  }

  get elcrValue(): number {
    return this.elcr;
  }

  protected override configChanged(offset: number, width: Width): void {
    if (offset < PIIX3_PIRQRC + 4 && offset + width > PIIX3_PIRQRC) this.updateIsaIrqs();
  }

  override resetConfig(): void {
    super.resetConfig();
    this.resetControl = 0;
    this.setElcr(0);
    this.updateIsaIrqs();
  }

  override saveState(): Piix3State {
    return { ...super.saveState(), elcr: this.elcr, resetControl: this.resetControl };
  }

  override loadState(state: Piix3State, version: number): void {
    super.loadState(state, version);
    this.resetControl = Number(state.resetControl) & (RCR_SYSTEM_RESET | RCR_FULL_RESET);
    this.setElcr(Number(state.elcr) & ELCR_WRITABLE);
    this.updateIsaIrqs();
  }

  private setElcr(value: number): void {
    this.elcr = value;
    this.onElcrChange?.(value);
  }

  private updateIsaIrqs(): void {
    let levels = 0;
    for (let n = 0; n < 4; n++) {
      const irq = this.pirqRoute(n);
      if (irq !== undefined && this.pirqs[n]!.output.level) levels |= 1 << irq;
    }
    for (let irq = 0; irq < 16; irq++) this.isaIrqs[irq]!.set(((levels >> irq) & 1) === 1);
  }
}
