import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus } from "../core/bus.ts";
import { IrqLine } from "../core/irq.ts";
import type { Persistent } from "../core/persist.ts";
import { saveVersioned } from "../core/persist.ts";
import { InstructionClock, Scheduler } from "../core/scheduler.ts";
import { I8042 } from "./i8042.ts";
import { DualPic } from "./pic.ts";
import { Pit } from "./pit.ts";
import { replayPortScript } from "./port-script.ts";
import { Rtc } from "./rtc.ts";
import { SystemControlPortB } from "./system-control.ts";
import { Uart16550 } from "./uart.ts";

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

/** The PICs with the 8042, UART, PIT and RTC as interrupt sources, at their PC ports. */
function interruptBench(): PortBus {
  const scheduler = new Scheduler(new InstructionClock(1));
  const bus = new PortBus();
  const pic = new DualPic(new IrqLine("intr"));
  const irq = Array.from({ length: 16 }, (_, i) => {
    const line = new IrqLine(`irq${i}`);
    line.connect(pic.input(i));
    return line;
  });
  const pit = new Pit(scheduler, irq[0]!);
  const kbc = new I8042(irq[1]!, irq[12]!);
  bus.register("pic-master", 0x20, 2, pic.master);
  bus.register("pic-slave", 0xa0, 2, pic.slave);
  bus.register("pit", 0x40, 4, pit);
  bus.register("port-b", 0x61, 1, new SystemControlPortB(scheduler, pit));
  bus.register("rtc", 0x70, 2, new Rtc(scheduler, irq[8]!));
  bus.register("kbc-data", 0x60, 1, kbc.dataPort);
  bus.register("kbc-command", 0x64, 1, kbc.commandPort);
  bus.register("com1", 0x3f8, 8, new Uart16550(scheduler, irq[4]!));
  return bus;
}

// Expected reads come from QEMU: the script was run on QEMU 7.2's pc machine by a multiboot
// program making exactly these port accesses with interrupts off and printing every read to
// debugcon.
// QEMU reads 0x19/0x18/0x39 from port 0x64 at reads 10, 12 and 21: it keeps status bit 3 (last
// write was a command) set after data writes, where the 8042 clears it.
test("port script: PIC programming, IRQ 1/12/4 from the 8042 and UART, polling, cascade and rotation", () => {
  const bus = interruptBench();
  const script = [
    "o61=00 o43=32 o40=00 o40=10 o70=0c i71&00 flush o64=60 o60=00 flush o20=11 o21=20 o21=04 o21=01",
    "oa0=11 oa1=28 oa1=02 oa1=01 o21=ff oa1=ff i21 ia1 o20=0a i20 o20=0b i20 oa0=0a ia0&3f o64=60 o60=01",
    "o64=d2 o60=5a o20=0a i20 o21=fd o20=0c i20 o20=0b i20 o20=0a i20 i64&3b i60 i64&3b o20=20 o20=0b i20",
    "o20=0c i20 o64=60 o60=02 oa1=ef o21=fb o64=d3 o60=a5 oa0=0a ia0&3f o20=0a i20 o20=0c i20 oa0=0c ia0",
    "oa0=0b ia0 o20=0b i20 i64&3b i60 oa0=20 o20=20 oa0=0b ia0 o20=0b i20 o3fb=80 o3f8=ff o3f9=ff o3fb=03",
    "o3fa=00 o3fc=08 o3f9=02 o64=60 o60=01 o64=d2 o60=11 o21=ed o20=0a i20 o20=c1 o20=0c i20 o20=0c i20",
    "o20=20 o20=0c i20 o20=61 o20=c7 o20=0b i20 i60 o3f9=00 o21=ff oa1=ff o64=60 o60=00",
  ].join(" ");
  const expected = [
    "00 ff ff 00 00 00 02 81 02 00 11 5a 10 00 00 10 04 82 84 10 04 31 a5 00 00 12 84 00 81 00 11",
  ].join(" ");
  assert.equal(replayPortScript(bus, script), expected);
});

// Recorded on QEMU 7.2 like the script above; QEMU reads the same values.
test("port script: automatic EOI with and without rotation, special mask mode, re-initialisation", () => {
  const bus = interruptBench();
  const script = [
    "o61=00 o43=32 o40=00 o40=10 o70=0c i71&00 flush o64=60 o60=00 flush o3fb=80 o3f8=ff o3f9=ff o3fb=03",
    "o3fa=00 o3fc=08 o3f9=00 o20=11 o21=20 o21=04 o21=03 oa0=11 oa1=28 oa1=02 oa1=01 o21=ed oa1=ff o64=60",
    "o60=01 o64=d2 o60=5a o20=0c i20 o20=0b i20 i60 o20=80 o64=60 o60=01 o64=d2 o60=5a o3f9=00 o3f9=02",
    "o20=0a i20 o20=0c i20 o20=0c i20 o20=0b i20 i60 o64=60 o60=01 o64=d2 o60=5a o3f9=00 o3f9=02 o20=0c",
    "i20 o20=0c i20 i60 o20=00 o3f9=00 o20=11 o21=20 o21=04 o21=01 oa0=11 oa1=28 oa1=02 oa1=01 o21=ed",
    "oa1=ff o3f9=00 o3f9=02 o20=0c i20 o64=60 o60=01 o64=d2 o60=5a o20=0c i20 o21=ef o20=68 o20=0c i20",
    "o20=0b i20 o20=48 o20=20 o20=0b i20 o20=20 o20=0b i20 i60 o3f9=00 o20=0b o20=08 o64=60 o60=01 o64=d2",
    "o60=5a i20 o20=0a i20 i21 o20=0c i20 o20=20 i60 o21=55 o64=60 o60=01 o64=d2 o60=5a o20=0c i20 o20=11",
    "o21=20 o21=04 o21=01 oa0=11 oa1=28 oa1=02 oa1=01 i21 o20=0b i20 o20=0a i20 i60 o21=fd o64=60 o60=01",
    "o64=d2 o60=5a o20=0c i20 o20=63 o20=0b i20 o20=61 o20=0b i20 i60 o21=ff",
  ].join(" ");
  const expected = [
    "00 81 00 5a 12 81 84 00 5a 81 84 5a 84 81 00 12 10 00 5a 00 02 ef 00 5a 81 00 00 00 5a 81 02 00 5a",
  ].join(" ");
  assert.equal(replayPortScript(bus, script), expected);
});

test("random port traffic on the legacy devices never throws, and their states round-trip", () => {
  let seed = 12345;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const build = () => {
    const clock = new InstructionClock(1);
    const scheduler = new Scheduler(clock);
    const intr = new IrqLine("intr");
    const pic = new DualPic(intr);
    const irq = Array.from({ length: 16 }, (_, i) => {
      const line = new IrqLine(`irq${i}`);
      line.connect(pic.input(i));
      return line;
    });
    const pit = new Pit(scheduler, irq[0]!);
    const portB = new SystemControlPortB(scheduler, pit);
    const rtc = new Rtc(scheduler, irq[8]!, { wallClockMs: () => 1_700_000_000_000 });
    const kbc = new I8042(irq[1]!, irq[12]!);
    const uart = new Uart16550(scheduler, irq[4]!);
    const bus = new PortBus();
    bus.register("pic-master", 0x20, 2, pic.master);
    bus.register("pic-slave", 0xa0, 2, pic.slave);
    bus.register("pit", 0x40, 4, pit);
    bus.register("port-b", 0x61, 1, portB);
    bus.register("rtc", 0x70, 2, rtc);
    bus.register("kbc-data", 0x60, 1, kbc.dataPort);
    bus.register("kbc-command", 0x64, 1, kbc.commandPort);
    bus.register("com1", 0x3f8, 8, uart);
    return { clock, scheduler, intr, pic, pit, portB, rtc, kbc, uart, bus };
  };
  const a = build();
  const ports = [0x20, 0x21, 0xa0, 0xa1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x60, 0x64];
  for (let p = 0x3f8; p < 0x400; p++) ports.push(p);
  const keys = ["KeyA", "Enter", "ArrowUp", "Pause", "PrintScreen", "ShiftLeft"];
  for (let i = 0; i < 200_000; i++) {
    const r = random(100);
    const port = ports[random(ports.length)]!;
    if (r < 45) a.bus.out8(port, random(256));
    else if (r < 90) {
      const v = a.bus.in8(port);
      assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xff, `port ${port.toString(16)} read ${v}`);
    } else if (r < 93) {
      if (a.intr.level) assert.ok(a.pic.acknowledge() <= 0xff);
    } else if (r < 95) a.kbc.keyboard.keyDown(keys[random(keys.length)]!);
    else if (r < 96) a.kbc.mouse.move(random(1000) - 500, random(1000) - 500, random(9) - 4, random(32));
    else if (r < 97) a.uart.receive([random(256), random(256)]);
    else {
      a.clock.advance(random(200_000));
      a.scheduler.runDue();
    }
  }
  const b = build();
  b.clock.set(a.clock.now());
  for (const name of ["pic", "pit", "portB", "rtc", "kbc", "uart"] as const) {
    const from: Persistent<unknown> = a[name];
    const to: Persistent<unknown> = b[name];
    const saved = structuredClone(saveVersioned(from));
    to.loadState(saved.state, saved.version);
    assert.deepEqual(to.saveState(), from.saveState(), name);
  }
});
