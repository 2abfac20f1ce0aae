// The PC's coprocessor-error glue between the FPU's FERR#/IGNNE# pins and the rest of the board (the
// PIIX3 keeps it in the ISA bridge): FERR# going active requests IRQ 13; software acknowledges by
// writing port F0h, which drops the request and asserts IGNNE# so the FPU's waiting instructions stop
// freezing; IGNNE# follows FERR# back down once the handler clears the exception (FNCLEX, FNINIT).
// The machine builder registers this at port F0h (one port) and hands it the IRQ 13 line.

import type { PortDevice, Width } from "../../core/bus.ts";
import type { IrqLine } from "../../core/irq.ts";
import { type Persistent, StateError } from "../../core/persist.ts";

/** The two FPU pins this logic drives and watches. */
export interface FerrPins {
  onFerr: (asserted: boolean) => void;
  setIgnne(asserted: boolean): void;
}

export interface FpuErrorLatchState {
  ferr: boolean;
  ignne: boolean;
}

export class FpuErrorLatch implements PortDevice, Persistent<FpuErrorLatchState> {
  readonly stateVersion = 1;
  private readonly fpu: FerrPins;
  private readonly irq13: IrqLine;
  private ferr = false;
  private ignne = false;

  constructor(fpu: FerrPins, irq13: IrqLine) {
    this.fpu = fpu;
    this.irq13 = irq13;
    fpu.onFerr = (asserted) => this.ferrChanged(asserted);
  }

  private ferrChanged(asserted: boolean): void {
    this.ferr = asserted;
    if (asserted) {
      if (!this.ignne) this.irq13.raise();
    } else {
      this.irq13.lower();
      this.setIgnne(false);
    }
  }

  private setIgnne(level: boolean): void {
    this.ignne = level;
    this.fpu.setIgnne(level);
  }

  ioRead(_offset: number, width: Width): number {
    return width === 1 ? 0xff : width === 2 ? 0xffff : 0xffffffff;
  }

  /** Any write to F0h: clear the IRQ 13 request; while FERR# is active, assert IGNNE#. */
  ioWrite(_offset: number, _width: Width, _value: number): void {
    this.irq13.lower();
    if (this.ferr) this.setIgnne(true);
  }

  saveState(): FpuErrorLatchState {
    return { ferr: this.ferr, ignne: this.ignne };
  }

  loadState(state: FpuErrorLatchState, version: number): void {
    if (version !== 1 || typeof state.ferr !== "boolean" || typeof state.ignne !== "boolean")
      throw new StateError("FPU error latch state is not valid");
    this.ferr = state.ferr;
    this.setIgnne(state.ignne);
    this.irq13.set(this.ferr && !this.ignne);
  }
}
