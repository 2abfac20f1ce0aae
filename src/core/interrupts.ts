// The contract between the CPU and whatever delivers maskable interrupts to it (the 8259 PIC on
// its own, or a local APIC that takes the PIC as LINT0).
//
// The controller drives the CPU's INTR input as an IrqLine (high while an interrupt is waiting);
// the CPU samples it at instruction boundaries when EFLAGS.IF allows, and then runs the
// interrupt-acknowledge cycle, which returns the vector. NMI is a separate edge-triggered line.

export interface InterruptAcknowledge {
  /** The INTA cycle: returns the vector (0-255) and moves the request into service. */
  acknowledge(): number;
}

/** Signals from the chipset to the CPU package, wired by the machine builder. */
export interface CpuPins {
  /** Level of INTR changed. */
  setIntr(high: boolean): void;
  /** A rising edge on NMI. */
  nmi(): void;
  /** The A20 gate (i8042 output port bit 1, port 0x92 bit 1): false masks physical address bit 20. */
  setA20(enabled: boolean): void;
  /** INIT/RESET: the CPU returns to its reset state. */
  reset(): void;
}
