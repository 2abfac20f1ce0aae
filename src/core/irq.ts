// Interrupt request lines.
//
// A line is level-triggered: its driver raises and lowers it, and whoever it is connected to (a
// PIC or IOAPIC input pin) sees every change of level. An edge-triggered input is simply a
// consumer that acts on low-to-high changes, so `pulse()` (raise then lower) serves ISA devices
// that signal with an edge. Several drivers sharing one wire (PCI INTx) go through `WiredOr`.

/** Receives the level of a line each time it changes. */
export type LevelListener = (high: boolean) => void;

export class IrqLine {
  private high = false;
  private listener: LevelListener | undefined;
  readonly name: string;

  constructor(name: string) {
    this.name = name;
  }

  /** Connects the line to its consumer (one per line; fan-in goes through WiredOr). */
  connect(listener: LevelListener): void {
    this.listener = listener;
    if (this.high) listener(true);
  }

  get level(): boolean {
    return this.high;
  }

  set(high: boolean): void {
    if (high === this.high) return;
    this.high = high;
    this.listener?.(high);
  }

  raise(): void {
    this.set(true);
  }

  lower(): void {
    this.set(false);
  }

  /** An edge: raise, then lower. */
  pulse(): void {
    this.set(true);
    this.set(false);
  }
}

/** Several drivers on one wire: the wire is high while any input is high. */
export class WiredOr {
  private readonly inputs: IrqLine[] = [];
  private highCount = 0;
  readonly output: IrqLine;

  constructor(name: string) {
    this.output = new IrqLine(name);
  }

  /** A new input line for one more driver. */
  input(name: string): IrqLine {
    const line = new IrqLine(name);
    this.inputs.push(line);
    line.connect((high) => {
      this.highCount += high ? 1 : -1;
      this.output.set(this.highCount > 0);
    });
    return line;
  }
}

/** A line that goes nowhere (an unconnected pin); keeps its level for inspection. */
export function unconnectedLine(name = "unconnected"): IrqLine {
  return new IrqLine(name);
}
