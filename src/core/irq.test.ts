import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { IrqLine, WiredOr } from "./irq.ts";

describe("IrqLine", () => {
  it("reports level changes only, not repeated levels", () => {
    const line = new IrqLine("irq4");
    const seen: boolean[] = [];
    line.connect((high) => seen.push(high));
    line.raise();
    line.raise();
    line.lower();
    line.lower();
    line.set(true);
    assert.deepEqual(seen, [true, false, true]);
    assert.equal(line.level, true);
  });

  it("delivers a pulse as a rising then a falling change (an edge)", () => {
    const line = new IrqLine("irq0");
    let rising = 0;
    let last = false;
    line.connect((high) => {
      if (high && !last) rising++;
      last = high;
    });
    line.pulse();
    line.pulse();
    assert.equal(rising, 2);
    assert.equal(line.level, false);
  });

  it("tells a late-connected consumer that the line is already high", () => {
    const line = new IrqLine("irq");
    line.raise();
    const seen: boolean[] = [];
    line.connect((high) => seen.push(high));
    assert.deepEqual(seen, [true]);
  });
});

describe("WiredOr", () => {
  it("is high while any driver holds it high", () => {
    const wire = new WiredOr("pirqa");
    const seen: boolean[] = [];
    wire.output.connect((h) => seen.push(h));
    const a = wire.input("nic");
    const b = wire.input("disk");
    a.raise();
    b.raise();
    a.lower();
    assert.equal(wire.output.level, true);
    b.lower();
    assert.equal(wire.output.level, false);
    a.lower(); // already low: no effect on the count
    b.raise();
    assert.deepEqual(seen, [true, false, true]);
  });
});
