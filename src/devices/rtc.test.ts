import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus } from "../core/bus.ts";
import { IrqLine } from "../core/irq.ts";
import { saveVersioned } from "../core/persist.ts";
import { InstructionClock, Scheduler } from "../core/scheduler.ts";
import { replayPortScript } from "./port-script.ts";
import { Rtc } from "./rtc.ts";

const LEAP_DAY_NIGHT = Date.UTC(2024, 1, 29, 23, 59, 58); // a Thursday

function setup(startMs = LEAP_DAY_NIGHT) {
  const clock = new InstructionClock(1);
  const scheduler = new Scheduler(clock);
  const irq8 = new IrqLine("irq8");
  let rising = 0;
  irq8.connect((high) => {
    if (high) rising++;
  });
  const nmi: boolean[] = [];
  const rtc = new Rtc(scheduler, irq8, { wallClockMs: () => startMs, onNmiMask: (m) => nmi.push(m) });
  const read = (index: number) => {
    rtc.ioWrite(0, 1, index);
    return rtc.ioRead(1, 1);
  };
  const write = (index: number, value: number) => {
    rtc.ioWrite(0, 1, index);
    rtc.ioWrite(1, 1, value);
  };
  const runTo = (ns: number) => {
    while (scheduler.nextDeadline() <= ns) {
      clock.skipTo(scheduler.nextDeadline());
      scheduler.runDue();
    }
    clock.skipTo(ns);
  };
  return { clock, scheduler, irq8, rtc, read, write, runTo, nmi, risingEdges: () => rising };
}

const S = 1_000_000_000;

test("time registers read in BCD 24-hour format and roll over a leap day", () => {
  const { read, clock } = setup();
  assert.equal(read(0x00), 0x58);
  assert.equal(read(0x02), 0x59);
  assert.equal(read(0x04), 0x23);
  assert.equal(read(0x06), 5, "Thursday");
  assert.equal(read(0x07), 0x29);
  assert.equal(read(0x08), 0x02);
  assert.equal(read(0x09), 0x24);
  assert.equal(read(0x32), 0x20);
  clock.skipTo(3 * S);
  assert.equal(read(0x00), 0x01);
  assert.equal(read(0x04), 0x00);
  assert.equal(read(0x07), 0x01);
  assert.equal(read(0x08), 0x03);
  assert.equal(read(0x06), 6, "Friday");
});

test("binary and 12-hour formats follow register B", () => {
  const { read, write } = setup();
  write(0x0b, 0x04); // binary, 12-hour
  assert.equal(read(0x00), 58);
  assert.equal(read(0x04), 0x80 | 11, "11 PM");
  write(0x0b, 0x06);
  assert.equal(read(0x04), 23);
});

test("setting the time with SET, then clearing it, restarts the clock there", () => {
  const { read, write, rtc, clock } = setup();
  write(0x0b, 0x82);
  write(0x00, 0x30);
  write(0x02, 0x15);
  write(0x04, 0x10);
  write(0x07, 0x04);
  write(0x08, 0x07);
  write(0x09, 0x99);
  write(0x32, 0x19);
  clock.skipTo(10 * S);
  assert.equal(read(0x00), 0x30, "frozen while SET");
  write(0x0b, 0x02);
  assert.equal(rtc.time(), Date.UTC(1999, 6, 4, 10, 15, 30));
  clock.skipTo(12 * S);
  assert.equal(read(0x00), 0x32);
});

test("writing one field of a running clock keeps the others", () => {
  const { read, write } = setup();
  write(0x02, 0x10);
  assert.equal(read(0x02), 0x10);
  assert.equal(read(0x04), 0x23);
  assert.equal(read(0x00), 0x58);
});

test("UIP is set only in the 244 us before each update", () => {
  const { read, clock } = setup(Date.UTC(2020, 0, 1));
  clock.skipTo(S / 2);
  assert.equal(read(0x0a) & 0x80, 0);
  clock.skipTo(S - 100_000);
  assert.equal(read(0x0a) & 0x80, 0x80);
  assert.equal(read(0x00), 0x00, "the update has not happened yet");
  clock.skipTo(S + 1);
  assert.equal(read(0x0a) & 0x80, 0);
  assert.equal(read(0x00), 0x01);
});

test("periodic interrupt at the register A rate; reading C clears and lowers IRQ 8", () => {
  const { write, read, irq8, runTo, risingEdges } = setup();
  write(0x0a, 0x26); // 1024 Hz
  write(0x0b, 0x42); // PIE
  runTo(976_000);
  assert.equal(irq8.level, false);
  runTo(977_000);
  assert.equal(irq8.level, true);
  assert.equal(read(0x0c), 0xc0);
  assert.equal(irq8.level, false);
  assert.equal(read(0x0c), 0x00);
  runTo(S);
  assert.ok(risingEdges() === 2, "the line stays high until C is read");
});

test("update-ended and alarm interrupts", () => {
  const { write, read, irq8, runTo } = setup(Date.UTC(2024, 0, 1, 12, 0, 0));
  write(0x01, 0x03);
  write(0x03, 0xc0); // any minute
  write(0x05, 0x12);
  write(0x0b, 0x22); // AIE
  runTo(2.5 * S);
  assert.equal(irq8.level, false);
  runTo(3.5 * S);
  assert.equal(irq8.level, true);
  assert.equal(read(0x0c) & 0xa0, 0xa0);
  write(0x0b, 0x12); // UIE
  runTo(4.5 * S);
  assert.equal(irq8.level, true);
  assert.equal(read(0x0c) & 0xb0, 0x90, "UF (PF is set too: the rate is non-zero)");
});

test("flags can be polled with interrupts off", () => {
  const { read, write, clock, irq8 } = setup();
  write(0x0a, 0x20); // no periodic rate
  read(0x0c);
  clock.skipTo(S / 4);
  assert.equal(read(0x0c), 0);
  clock.skipTo(S + S / 4);
  assert.equal(read(0x0c) & 0x10, 0x10, "UF");
  assert.equal(irq8.level, false);
  assert.equal(read(0x0c) & 0x10, 0);
  write(0x01, 0x03); // alarm at hh:mm:03 of any hour and minute
  write(0x03, 0xc0);
  write(0x05, 0xc0);
  read(0x0c);
  clock.skipTo(6 * S);
  assert.equal(read(0x0c) & 0x20, 0x20, "AF polled without AIE");
  clock.skipTo(7 * S);
  assert.equal(read(0x0c) & 0x20, 0, "no alarm second since the last read");
  write(0x0a, 0x2f); // 2 Hz
  clock.skipTo(8 * S);
  assert.equal(read(0x0c) & 0xc0, 0x40, "PF without PIE sets no IRQF");
});

test("divider reset holds the clock; release makes the first update half a second later", () => {
  const { read, write, clock } = setup(Date.UTC(2024, 0, 1, 0, 0, 0));
  write(0x0a, 0x66);
  clock.skipTo(5 * S);
  assert.equal(read(0x00), 0x00);
  write(0x0a, 0x26);
  clock.skipTo(5 * S + 0.4 * S);
  assert.equal(read(0x00), 0x00);
  clock.skipTo(5 * S + 0.6 * S);
  assert.equal(read(0x00), 0x01);
});

test("index bit 7 masks NMI; index reads are all ones; D reports valid RAM", () => {
  const { rtc, read, nmi } = setup();
  rtc.ioWrite(0, 1, 0x8d);
  assert.equal(rtc.nmiMasked, true);
  assert.equal(rtc.ioRead(1, 1), 0x80);
  assert.equal(rtc.ioRead(0, 1), 0xff);
  rtc.ioWrite(0, 1, 0x0d);
  assert.deepEqual(nmi, [true, false]);
  assert.equal(read(0x0d), 0x80);
  rtc.ioWrite(1, 1, 0);
  assert.equal(read(0x0d), 0x80, "D is read-only");
});

test("firmware configuration: memory sizes, boot order, equipment and checksum", () => {
  const { rtc, read } = setup();
  rtc.setFirmwareConfig({
    ramBelow4GiB: 3 * 2 ** 30,
    ramAbove4GiB: 2 ** 32,
    cpus: 2,
    bootOrder: ["cdrom", "disk"],
  });
  assert.equal(read(0x15) | (read(0x16) << 8), 640);
  assert.equal(read(0x17) | (read(0x18) << 8), 0xffff);
  assert.equal(read(0x30) | (read(0x31) << 8), 0xffff);
  assert.equal(read(0x34) | (read(0x35) << 8), (3 * 2 ** 30 - 2 ** 24) / 65536);
  assert.equal(read(0x5b) | (read(0x5c) << 8) | (read(0x5d) << 16), 0x10000);
  assert.equal(read(0x5f), 1);
  assert.equal(read(0x3d), 0x23);
  assert.equal(read(0x38) >> 4, 0);
  assert.equal(read(0x14), 0x06);
  let sum = 0;
  for (let i = 0x10; i <= 0x2d; i++) sum += read(i);
  assert.equal((read(0x2e) << 8) | read(0x2f), sum);
  rtc.setFirmwareConfig({ ramBelow4GiB: 8 << 20 });
  assert.equal(read(0x17) | (read(0x18) << 8), 7 * 1024);
  assert.equal(read(0x34) | (read(0x35) << 8), 0);
  assert.throws(() => rtc.setFirmwareConfig({ ramBelow4GiB: 1, bootOrder: ["tape" as never] }));
});

test("garbage in the time registers never throws", () => {
  const { read, write } = setup();
  for (const index of [0, 2, 4, 7, 8, 9, 0x32]) write(index, 0xff);
  for (const index of [0, 2, 4, 6, 7, 8, 9, 0x32]) {
    const v = read(index);
    assert.ok(Number.isInteger(v) && v >= 0 && v <= 0xff);
  }
});

test("state round-trips, keeping time and pending interrupts", () => {
  const a = setup();
  a.write(0x0b, 0x12); // UIE
  a.runTo(2.5 * S);
  assert.equal(a.irq8.level, true);
  a.write(0x40, 0x5a);
  const saved = structuredClone(saveVersioned(a.rtc));
  const b = setup(Date.UTC(2000, 0, 1));
  b.clock.set(100 * S);
  b.rtc.loadState(saved.state, saved.version);
  assert.equal(b.irq8.level, true);
  assert.equal(b.read(0x40), 0x5a);
  assert.equal(b.rtc.time(), a.rtc.time());
  assert.equal(b.read(0x0c) & 0x90, 0x90);
  b.runTo(100 * S + 0.6 * S);
  assert.equal(b.irq8.level, true, "update timer re-armed with the saved phase");
  assert.throws(() => b.rtc.loadState({ ...saved.state, cmos: [1, 2] }, 1));
});

// Expected reads come from QEMU: the script was run on QEMU 7.2's pc machine by a multiboot
// program making exactly these port accesses with interrupts off and printing every read to
// debugcon.
// QEMU reads the same values.
test("port script: RTC/CMOS register behaviour", () => {
  const bus = new PortBus();
  bus.register("rtc", 0x70, 2, new Rtc(new Scheduler(new InstructionClock(1)), new IrqLine("irq8")));
  const script = [
    "o70=0a o71=26 i71&7f o70=0b i71 o71=06 i71 o71=02 i71 o70=0d i71 o70=40 o71=a5 i71 o70=8d i71 i70",
    "o70=0b o71=82 i71 o71=92 i71 o70=00 o71=45 i71 o70=0b o71=02 o70=0d",
  ].join(" ");
  const expected = ["26 02 06 02 80 a5 80 ff 82 82 45"].join(" ");
  assert.equal(replayPortScript(bus, script), expected);
});

test("enabling PIE with PF already set raises IRQ 8 at once", () => {
  const { read, write, clock, irq8 } = setup();
  read(0x0c);
  clock.skipTo(S / 10); // many 1024 Hz periods
  write(0x0b, 0x42);
  assert.equal(irq8.level, true);
  assert.equal(read(0x0c) & 0xc0, 0xc0);
});

// Recorded on QEMU 7.2 the same way as the script above; QEMU reads the same values. (Switching
// the data format while SET holds old-format values is undefined on the chip and left out.)
test("port script: setting the time under SET and reading it back in BCD/binary, 24/12-hour formats", () => {
  const bus = new PortBus();
  bus.register("rtc", 0x70, 2, new Rtc(new Scheduler(new InstructionClock(1)), new IrqLine("irq8")));
  const script = [
    "o70=0b o71=82 o70=00 o71=00 o70=02 o71=30 o70=04 o71=13 o70=07 o71=15 o70=08 o71=06 o70=09 o71=24",
    "o70=32 o71=20 o70=0b o71=02 o70=04 i71 o70=06 i71 o70=07 i71 o70=08 i71 o70=09 i71 o70=32 i71 o70=0b",
    "o71=00 o70=04 i71 o70=0b o71=04 o70=04 i71 o70=07 i71 o70=08 i71 o70=09 i71 o70=32 i71 o70=0b o71=06",
    "o70=04 i71 o70=02 i71 o70=0b o71=82 o70=02 o71=15 o70=02 i71 o70=0b o71=02 o70=02 i71",
  ].join(" ");
  assert.equal(replayPortScript(bus, script), "13 07 15 06 24 20 81 81 0f 06 18 14 0d 1e 15 15");
});
