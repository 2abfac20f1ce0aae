import assert from "node:assert/strict";
import { test } from "node:test";
import { IrqLine } from "../core/irq.ts";
import { saveVersioned } from "../core/persist.ts";
import { DualPic } from "./pic.ts";

/** Programs the pair the way Linux and SeaBIOS do: vectors 0x08/0x70 or as given, cascade on IR2. */
function setup(masterBase = 0x20, slaveBase = 0x28, icw4 = 0x01) {
  const intr = new IrqLine("intr");
  const pic = new DualPic(intr);
  const lines: IrqLine[] = [];
  for (let i = 0; i < 16; i++) {
    const line = new IrqLine(`irq${i}`);
    line.connect(pic.input(i));
    lines.push(line);
  }
  pic.master.ioWrite(0, 1, 0x11);
  pic.master.ioWrite(1, 1, masterBase);
  pic.master.ioWrite(1, 1, 0x04);
  pic.master.ioWrite(1, 1, icw4);
  pic.slave.ioWrite(0, 1, 0x11);
  pic.slave.ioWrite(1, 1, slaveBase);
  pic.slave.ioWrite(1, 1, 0x02);
  pic.slave.ioWrite(1, 1, icw4);
  pic.master.ioWrite(1, 1, 0x00);
  pic.slave.ioWrite(1, 1, 0x00);
  return { intr, pic, lines };
}

const EOI = 0x20;

test("an edge on IRQ 0 raises INTR and acknowledges with the programmed vector", () => {
  const { intr, pic, lines } = setup();
  assert.equal(intr.level, false);
  lines[0]!.pulse();
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x20);
  assert.equal(intr.level, false);
  pic.master.ioWrite(0, 1, 0x0b); // read ISR
  assert.equal(pic.master.ioRead(0, 1), 0x01);
  pic.master.ioWrite(0, 1, EOI);
  assert.equal(pic.master.ioRead(0, 1), 0x00);
});

test("slave interrupts cascade through IR2 and need EOI on both chips", () => {
  const { intr, pic, lines } = setup();
  lines[14]!.pulse();
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x28 + 6);
  pic.master.ioWrite(0, 1, 0x0b);
  pic.slave.ioWrite(0, 1, 0x0b);
  assert.equal(pic.master.ioRead(0, 1), 0x04);
  assert.equal(pic.slave.ioRead(0, 1), 0x40);
  // A lower-priority master IRQ waits while the cascade is in service.
  lines[3]!.pulse();
  assert.equal(intr.level, false);
  pic.slave.ioWrite(0, 1, EOI);
  pic.master.ioWrite(0, 1, EOI);
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x23);
});

test("masked IRQs stay pending in IRR until unmasked", () => {
  const { intr, pic, lines } = setup();
  pic.master.ioWrite(1, 1, 0x02);
  lines[1]!.pulse();
  assert.equal(intr.level, false);
  pic.master.ioWrite(0, 1, 0x0a); // read IRR
  assert.equal(pic.master.ioRead(0, 1), 0x02);
  assert.equal(pic.master.ioRead(1, 1), 0x02);
  pic.master.ioWrite(1, 1, 0x00);
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x21);
});

test("higher priority interrupts nest; lower ones wait for EOI", () => {
  const { intr, pic, lines } = setup();
  lines[4]!.pulse();
  assert.equal(pic.acknowledge(), 0x24);
  lines[5]!.pulse();
  assert.equal(intr.level, false);
  lines[1]!.pulse();
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x21);
  pic.master.ioWrite(0, 1, EOI); // clears IR1, the highest in service
  pic.master.ioWrite(0, 1, 0x0b);
  assert.equal(pic.master.ioRead(0, 1), 0x10);
  assert.equal(intr.level, false);
  pic.master.ioWrite(0, 1, EOI);
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x25);
});

test("level-triggered inputs keep requesting while high; edge inputs need a new edge", () => {
  const { intr, pic, lines } = setup();
  pic.setElcr(0x0800);
  assert.equal(pic.slave.elcr, 0x08);
  lines[11]!.raise();
  assert.equal(pic.acknowledge(), 0x28 + 3);
  pic.slave.ioWrite(0, 1, EOI);
  pic.master.ioWrite(0, 1, EOI);
  assert.equal(intr.level, true, "still high, so requested again");
  assert.equal(pic.acknowledge(), 0x28 + 3);
  lines[11]!.lower(); // the handler quiets the device before its EOI
  pic.slave.ioWrite(0, 1, EOI);
  pic.master.ioWrite(0, 1, EOI);
  assert.equal(intr.level, false);

  lines[3]!.raise();
  assert.equal(pic.acknowledge(), 0x23);
  pic.master.ioWrite(0, 1, EOI);
  assert.equal(intr.level, false, "an edge input held high does not request twice");
});

test("a request that vanishes before INTA yields the spurious IR7 vector", () => {
  const { intr, pic, lines } = setup();
  pic.setLevelTriggered(5, true);
  lines[5]!.raise();
  assert.equal(intr.level, true);
  lines[5]!.lower();
  assert.equal(pic.acknowledge(), 0x27);
  pic.master.ioWrite(0, 1, 0x0b);
  assert.equal(pic.master.ioRead(0, 1), 0, "spurious IR7 is not put in service");
});

test("automatic EOI leaves ISR clear", () => {
  const { pic, lines } = setup(0x20, 0x28, 0x03);
  lines[0]!.pulse();
  assert.equal(pic.acknowledge(), 0x20);
  pic.master.ioWrite(0, 1, 0x0b);
  assert.equal(pic.master.ioRead(0, 1), 0);
});

test("specific rotation changes priority order", () => {
  const { pic, lines } = setup();
  pic.master.ioWrite(0, 1, 0xc0 | 4); // IR4 lowest, IR5 highest
  lines[1]!.pulse();
  lines[6]!.pulse();
  assert.equal(pic.acknowledge(), 0x26);
  pic.master.ioWrite(0, 1, 0x60 | 6); // specific EOI for IR6
  assert.equal(pic.acknowledge(), 0x21);
});

test("rotate on non-specific EOI makes the served IR the lowest", () => {
  const { pic, lines } = setup();
  lines[0]!.pulse();
  assert.equal(pic.acknowledge(), 0x20);
  pic.master.ioWrite(0, 1, 0xa0);
  lines[0]!.pulse();
  lines[3]!.pulse();
  assert.equal(pic.acknowledge(), 0x23, "IR0 is now the lowest priority");
});

test("poll mode returns the pending IRQ and puts it in service", () => {
  const { pic, lines } = setup();
  pic.master.ioWrite(0, 1, 0x0c);
  assert.equal(pic.master.ioRead(0, 1), 0);
  lines[6]!.pulse();
  pic.master.ioWrite(0, 1, 0x0c);
  assert.equal(pic.master.ioRead(0, 1), 0x86);
  pic.master.ioWrite(0, 1, 0x0b);
  assert.equal(pic.master.ioRead(0, 1), 0x40);
});

test("special mask mode lets lower priorities through a masked in-service IR", () => {
  const { intr, pic, lines } = setup();
  lines[1]!.pulse();
  assert.equal(pic.acknowledge(), 0x21);
  lines[5]!.pulse();
  assert.equal(intr.level, false);
  pic.master.ioWrite(1, 1, 0x02);
  pic.master.ioWrite(0, 1, 0x68); // set special mask mode
  assert.equal(intr.level, true);
  assert.equal(pic.acknowledge(), 0x25);
});

test("state round-trips", () => {
  const { pic, lines } = setup(0x08, 0x70);
  pic.master.ioWrite(1, 1, 0x80);
  lines[4]!.pulse();
  lines[7]!.pulse();
  pic.acknowledge();
  const saved = structuredClone(saveVersioned(pic));
  const intr2 = new IrqLine("intr2");
  const copy = new DualPic(intr2);
  copy.loadState(saved.state, saved.version);
  assert.deepEqual(copy.saveState(), pic.saveState());
  assert.equal(intr2.level, false);
  copy.master.ioWrite(0, 1, EOI);
  copy.master.ioWrite(1, 1, 0);
  assert.equal(intr2.level, true);
  assert.equal(copy.acknowledge(), 0x0f);
});

test("malformed state is rejected", () => {
  const pic = new DualPic(new IrqLine("intr"));
  assert.throws(() => pic.loadState({ master: null, slave: null } as never, 1));
  assert.throws(() => pic.loadState(pic.saveState(), 99));
});

test("system reset clears programming but keeps the ELCR and level inputs' requests", () => {
  const { intr, pic, lines } = setup();
  pic.setElcr(0x0020);
  lines[5]!.raise();
  pic.reset();
  assert.equal(pic.master.elcr, 0x20);
  assert.equal(pic.master.vectorBase, 0);
  pic.master.ioWrite(0, 1, 0x0a);
  assert.equal(pic.master.ioRead(0, 1), 0x20, "IRR still shows the high level input");
  assert.equal(intr.level, true, "IMR is clear after reset");
});
