// The usual way to honour a PCI function's BAR changes: I/O BARs are registered on the PortBus,
// memory BARs become MMIO regions of PhysicalMemory, the expansion ROM a ROM region. The machine
// builder installs this with `mapBarsOnBuses(fn, ports, memory)` unless it needs something else.
//
// A memory BAR backed by host bytes (`ram`) is served through an MMIO adapter here, which is
// correct but not fast; a board that wants the CPU to reach such memory directly needs a
// PhysicalMemory region over caller-provided bytes.

import type { PortBus, Width } from "../../core/bus.ts";
import type { MmioDevice, PhysicalMemory, Region } from "../../core/memory.ts";
import type { BarChange, PciFunction } from "./function.ts";

/**
 * Maps and unmaps `fn`'s BARs on the buses as the guest programs them. A BAR the guest places on
 * top of another device's ports or memory is left unmapped (that decode conflict is the guest's
 * doing; real chipsets give undefined results) and reported to `onConflict`, never thrown.
 */
export function mapBarsOnBuses(
  fn: PciFunction,
  ports: PortBus,
  memory: PhysicalMemory,
  onConflict?: (message: string) => void,
): void {
  const regions = new Map<number, Region>();
  const ioMapped = new Set<number>();
  fn.onBarChange((change: BarChange) => {
    const name = `${fn.name} ${change.index === 6 ? "rom" : `bar${change.index}`}`;
    const bar = change.bar;
    if (change.from !== undefined) {
      if (bar.kind === "io") {
        if (ioMapped.delete(change.index)) ports.unregister(change.from);
      } else {
        const region = regions.get(change.index);
        if (region) memory.removeRegion(region);
        regions.delete(change.index);
      }
    }
    if (change.to === undefined) return;
    try {
      if (bar.kind === "io") {
        ports.register(name, change.to, bar.size, bar.device);
        ioMapped.add(change.index);
      } else if (bar.kind === "rom") {
        regions.set(change.index, memory.addRom(name, change.to, bar.data));
      } else if ("device" in bar) {
        regions.set(change.index, memory.addMmio(name, change.to, bar.size, bar.device));
      } else {
        regions.set(change.index, memory.addMmio(name, change.to, bar.size, bytesAsMmio(bar.ram)));
      }
    } catch (error) {
      onConflict?.(`${name} at 0x${change.to.toString(16)}: ${(error as Error).message}`);
    }
  });
}

/** Little-endian MMIO access to a byte array. */
export function bytesAsMmio(bytes: Uint8Array): MmioDevice {
  return {
    mmioRead(offset: number, width: Width): number {
      if (offset + width > bytes.length) return width === 4 ? 0xffff_ffff : (1 << (8 * width)) - 1;
      let value = 0;
      for (let i = width - 1; i >= 0; i--) value = value * 256 + bytes[offset + i]!;
      return value;
    },
    mmioWrite(offset: number, width: Width, value: number): void {
      if (offset + width > bytes.length) return;
      for (let i = 0; i < width; i++) bytes[offset + i] = (value >>> (8 * i)) & 0xff;
    },
  };
}
