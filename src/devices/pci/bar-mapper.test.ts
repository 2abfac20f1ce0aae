import assert from "node:assert/strict";
import { test } from "node:test";
import { PortBus, type Width } from "../../core/bus.ts";
import { PhysicalMemory } from "../../core/memory.ts";
import { mapBarsOnBuses } from "./bar-mapper.ts";
import { PciFunction } from "./function.ts";
import { PciBus, PciConfigPorts } from "./host-bridge.ts";

test("a guest sizing, placing and enabling BARs reaches the device through the buses", () => {
  const ports = new PortBus();
  const memory = new PhysicalMemory();
  memory.addRam("ram", 0, 1 << 20);
  const portWrites: [number, number][] = [];
  const mmio = new Uint32Array(1024);
  const framebuffer = new Uint8Array(0x10_0000);
  const rom = Uint8Array.from([0x55, 0xaa, 0x10]);
  const fn = new PciFunction({
    name: "vga",
    vendorId: 0x1234,
    deviceId: 0x1111,
    classCode: 0x030000,
    bars: [
      { kind: "memory", size: framebuffer.length, prefetchable: true, ram: framebuffer },
      {
        kind: "io",
        size: 0x10,
        device: { ioRead: (o) => o, ioWrite: (o, _w, v) => portWrites.push([o, v]) },
      },
      {
        kind: "memory",
        size: 0x1000,
        device: {
          mmioRead: (o: number, _w: Width) => mmio[o >> 2]!,
          mmioWrite: (o: number, _w: Width, v: number) => {
            mmio[o >> 2] = v;
          },
        },
      },
    ],
    rom,
  });
  const conflicts: string[] = [];
  mapBarsOnBuses(fn, ports, memory, (m) => conflicts.push(m));
  const bus = new PciBus();
  bus.attach(2, 0, fn);
  ports.register("pci", 0xcf8, 8, new PciConfigPorts(bus));
  const config = (reg: number, value?: number) => {
    ports.out32(0xcf8, (0x8000_0000 | (2 << 11) | reg) >>> 0);
    if (value === undefined) return ports.in32(0xcfc);
    ports.out32(0xcfc, value);
    return 0;
  };
  // Size every BAR as firmware does.
  const sizes = [0x10, 0x14, 0x18, 0x30].map((reg) => {
    config(reg, 0xffff_ffff);
    const mask = config(reg);
    config(reg, 0);
    return mask;
  });
  assert.deepEqual(sizes, [0xfff0_0008, 0xffff_fff1, 0xffff_f000, 0xffff_f001]);
  config(0x10, 0xfd00_0000);
  config(0x14, 0xc000);
  config(0x18, 0xfebf_0000);
  config(0x30, 0xfeb0_0001);
  config(0x04, 0x0003);
  ports.out16(0xc004, 0xbeef);
  assert.deepEqual(portWrites, [[4, 0xbeef]]);
  assert.equal(ports.in8(0xc00f), 0x0f);
  memory.write32(0xfebf_0010, 0x1234_5678);
  assert.equal(mmio[4], 0x1234_5678);
  memory.write8(0xfd00_0100, 0x42);
  assert.equal(framebuffer[0x100], 0x42);
  assert.equal(memory.read16(0xfeb0_0000), 0xaa55);
  // Moving the I/O BAR releases the old ports; disabling memory decoding removes the regions.
  config(0x14, 0xc100);
  assert.equal(ports.claimant(0xc000), undefined);
  assert.equal(ports.in8(0xc101), 1);
  config(0x04, 0x0001);
  assert.equal(memory.read32(0xfebf_0010), 0xffff_ffff);
  assert.equal(memory.read8(0xfd00_0100), 0xff);
  // A BAR placed on another device's ports is not mapped, and does not throw.
  ports.register("kbd", 0x60, 1, { ioRead: () => 0x12, ioWrite: () => {} });
  config(0x14, 0x61);
  assert.equal(ports.in8(0x60), 0x12);
  assert.equal(conflicts.length, 1);
  config(0x14, 0xc000);
  assert.equal(ports.in8(0xc003), 3);
});
