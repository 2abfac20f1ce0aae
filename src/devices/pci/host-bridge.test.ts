import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus } from "../../core/bus.ts";
import { IrqLine } from "../../core/irq.ts";
import { PciFunction } from "./function.ts";
import { I440fx, PciBus, PciConfigPorts } from "./host-bridge.ts";
import { Piix3 } from "./piix3.ts";

function board() {
  const pam: [number, number, boolean, boolean][] = [];
  const smram: boolean[] = [];
  const isaIrqs = Array.from({ length: 16 }, (_, i) => new IrqLine(`irq${i}`));
  const elcr: number[] = [];
  const resets: boolean[] = [];
  const bus = new PciBus();
  const i440fx = new I440fx({
    ramSize: 128 << 20,
    onPamChange: (base, size, r, w) => pam.push([base, size, r, w]),
    onSmramChange: (open) => smram.push(open),
  });
  const piix3 = new Piix3({
    isaIrqs,
    onElcrChange: (v) => elcr.push(v),
    onReset: (hard) => resets.push(hard),
  });
  bus.attach(0, 0, i440fx);
  bus.attach(1, 0, piix3);
  bus.setIntxRouter(piix3);
  const ports = new PortBus();
  ports.register("pci-config", 0xcf8, 8, new PciConfigPorts(bus, piix3.resetControlPort));
  ports.register("elcr", 0x4d0, 2, piix3.elcrPorts);
  const select = (dev: number, fn: number, reg: number) =>
    ports.out32(0xcf8, (0x8000_0000 | (dev << 11) | (fn << 8) | reg) >>> 0);
  return { bus, i440fx, piix3, ports, select, pam, smram, isaIrqs, elcr, resets };
}

test("mechanism #1 reads ids at any width and offset; absent functions read all ones", () => {
  const { ports, select } = board();
  select(0, 0, 0);
  assert.equal(ports.in32(0xcfc), 0x1237_8086);
  assert.equal(ports.in16(0xcfe), 0x1237);
  assert.equal(ports.in8(0xcfd), 0x80);
  select(0, 0, 0x2c);
  assert.equal(ports.in32(0xcfc), 0x1100_1af4, "QEMU's subsystem ids, which SeaBIOS checks");
  select(1, 0, 0x08);
  assert.equal(ports.in32(0xcfc) >>> 8, 0x060100);
  select(1, 0, 0x0c);
  assert.equal(ports.in8(0xcfe), 0x80, "PIIX3 is multi-function");
  select(5, 0, 0);
  assert.equal(ports.in32(0xcfc), 0xffff_ffff);
  ports.out32(0xcf8, 0x8001_0000); // bus 1
  assert.equal(ports.in32(0xcfc), 0xffff_ffff);
  ports.out32(0xcf8, 0x0000_0000); // disabled
  assert.equal(ports.in16(0xcfc), 0xffff);
  ports.out32(0xcf8, 0x8000_0003);
  assert.equal(ports.in32(0xcf8), 0x8000_0000);
});

test("PAM writes report segment routing", () => {
  const { ports, select, pam } = board();
  select(0, 0, 0x58);
  ports.out8(0xcfd, 0x30); // PAM0 high nibble: 0xF0000 read+write RAM
  assert.deepEqual(pam, [[0xf0000, 0x10000, true, true]]);
  pam.length = 0;
  select(0, 0, 0x5c);
  // 0x5d = 0x02: 0xD8000 writes to RAM; 0x5e = 0x13: 0xE0000 reads and writes RAM, 0xE4000 reads RAM.
  ports.out16(0xcfd, 0x1302);
  assert.deepEqual(pam, [
    [0xd8000, 0x4000, false, true],
    [0xe0000, 0x4000, true, true],
    [0xe4000, 0x4000, true, false],
  ]);
  select(0, 0, 0x58);
  assert.equal(ports.in32(0xcfc), 0x0000_3000);
  select(0, 0, 0x60);
  assert.equal(ports.in32(0xcfc), 0x1010_1010, "DRB: 128 MiB in 8 MiB units");
});

test("SMRAM D_OPEN opens the window until D_LCK", () => {
  const { ports, select, smram } = board();
  select(0, 0, 0x70);
  assert.equal(ports.in8(0xcfe), 0x02);
  ports.out8(0xcfe, 0x4a);
  assert.deepEqual(smram, [true]);
  ports.out8(0xcfe, 0x1a);
  assert.deepEqual(smram, [true, false]);
  ports.out8(0xcfe, 0x4a);
  assert.equal(ports.in8(0xcfe), 0x1a, "locked");
});

test("PIRQ routing sends INTx to the programmed ISA IRQ", () => {
  const { bus, ports, select, isaIrqs } = board();
  const nic = new PciFunction({
    name: "nic",
    vendorId: 1,
    deviceId: 2,
    classCode: 0x020000,
    interruptPin: 1,
  });
  bus.attach(3, 0, nic); // slot 3 INTA -> PIRQ (3 + 0 - 1) & 3 = PIRQC
  nic.setInterrupt(true);
  assert.ok(
    isaIrqs.every((l) => !l.level),
    "PIRQs start disabled",
  );
  select(1, 0, 0x60);
  ports.out32(0xcfc, 0x0b0a_0580); // PIRQA off, B -> 5, C -> 10, D -> 11
  assert.equal(isaIrqs[10]!.level, true);
  ports.out8(0xcfe, 0x8a);
  assert.equal(isaIrqs[10]!.level, false);
  ports.out8(0xcfe, 0x02); // IRQ 2 cannot be a PIRQ target
  assert.ok(isaIrqs.every((l) => !l.level));
  ports.out8(0xcfe, 0x09);
  assert.equal(isaIrqs[9]!.level, true);
  nic.setInterrupt(false);
  assert.equal(isaIrqs[9]!.level, false);
  // Slot 2 INTA is PIRQB, slot 1 INTA (any function) is PIRQA, as QEMU's pc wires them.
  const disk = new PciFunction({
    name: "disk",
    vendorId: 1,
    deviceId: 3,
    classCode: 0x010000,
    interruptPin: 1,
  });
  const audio = new PciFunction({
    name: "audio",
    vendorId: 1,
    deviceId: 4,
    classCode: 0x040000,
    interruptPin: 1,
  });
  bus.attach(2, 0, disk);
  bus.attach(1, 5, audio);
  ports.out8(0xcfc, 0x0b);
  disk.setInterrupt(true);
  assert.equal(isaIrqs[5]!.level, true);
  audio.setInterrupt(true);
  assert.equal(isaIrqs[11]!.level, true);
  assert.equal(isaIrqs[9]!.level, false);
});

test("ELCR and reset control", () => {
  const { ports, elcr, resets, piix3 } = board();
  ports.out8(0x4d1, 0xff);
  assert.equal(ports.in8(0x4d1), 0xde);
  ports.out16(0x4d0, 0x0e07);
  assert.equal(piix3.elcrValue, 0x0e00);
  assert.equal(elcr.at(-1), 0x0e00);
  ports.out8(0xcf9, 0x02);
  assert.deepEqual(resets, []);
  ports.out8(0xcf9, 0x06);
  assert.deepEqual(resets, [true]);
  ports.out8(0xcf9, 0x04);
  assert.deepEqual(resets, [true, false]);
});

test("state round-trips", () => {
  const a = board();
  a.select(1, 0, 0x60);
  a.ports.out8(0xcfc, 0x0a);
  a.ports.out8(0x4d1, 0x0c);
  a.select(0, 0, 0x58);
  a.ports.out8(0xcfd, 0x30);
  const b = board();
  b.piix3.loadState(structuredClone(a.piix3.saveState()), 1);
  b.i440fx.loadState(structuredClone(a.i440fx.saveState()), 1);
  assert.deepEqual(b.piix3.saveState(), a.piix3.saveState());
  assert.deepEqual(b.i440fx.saveState(), a.i440fx.saveState());
  assert.equal(b.elcr.at(-1), 0x0c00);
  assert.deepEqual(
    b.pam.find((p) => p[0] === 0xf0000),
    [0xf0000, 0x10000, true, true],
  );
});

test("PIIX3 firmware defaults: PIRQs to 10/10/11/11, level-triggered", () => {
  const { piix3, elcr } = board();
  piix3.applyFirmwareDefaults();
  assert.deepEqual(
    [0, 1, 2, 3].map((n) => piix3.pirqRoute(n)),
    [10, 10, 11, 11],
  );
  assert.equal(elcr.at(-1), 0x0c00);
});

test("config address register state round-trips", () => {
  const bus = new PciBus();
  bus.attach(0, 0, new I440fx({ ramSize: 64 << 20 }));
  const a = new PciConfigPorts(bus);
  a.ioWrite(0, 4, 0x8000_0000);
  const b = new PciConfigPorts(bus);
  b.loadState(structuredClone(a.saveState()), 1);
  assert.equal(b.ioRead(4, 2), 0x8086);
  b.reset();
  assert.equal(b.ioRead(4, 2), 0xffff);
  assert.throws(() => b.loadState({ address: "x" } as never, 1));
});
