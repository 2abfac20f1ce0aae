import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InstructionClock } from "../../core/scheduler.ts";
import { type BarChange, PCI_COMMAND, PCI_COMMAND_MEMORY, PCI_ROM_ADDRESS } from "../pci/function.ts";
import { MMIO_VBE, MMIO_VGA_PORTS, StdVga } from "./stdvga.ts";
import { VBE_INDEX_ENABLE, VBE_INDEX_ID, VBE_INDEX_XRES } from "./vga.ts";

function makeStdVga(): StdVga {
  return new StdVga({
    clock: new InstructionClock(1),
    vramSize: 1 << 20,
    rom: new Uint8Array(40000).fill(0x55),
  });
}

describe("stdvga PCI function", () => {
  it("identifies as 1234:1111, class VGA", () => {
    const dev = makeStdVga();
    assert.equal(dev.pci.configRead(0, 4), 0x11111234);
    assert.equal(dev.pci.configRead(0x08, 4) >>> 8, 0x030000);
  });

  it("sizes BAR0 as prefetchable VRAM, BAR2 as the register page and the ROM", () => {
    const dev = makeStdVga();
    dev.pci.configWrite(0x10, 4, 0xffffffff);
    assert.equal(dev.pci.configRead(0x10, 4), (~((1 << 20) - 1) | 0x8) >>> 0);
    dev.pci.configWrite(0x18, 4, 0xffffffff);
    assert.equal(dev.pci.configRead(0x18, 4), 0xfffff000);
    dev.pci.configWrite(PCI_ROM_ADDRESS, 4, 0xfffffffe);
    assert.equal(dev.pci.configRead(PCI_ROM_ADDRESS, 4), 0xffff0000);
  });

  it("reports the framebuffer BAR as host bytes that are the VRAM", () => {
    const dev = makeStdVga();
    const changes: BarChange[] = [];
    dev.pci.onBarChange((c) => changes.push(c));
    dev.pci.configWrite(0x10, 4, 0xfd000000);
    dev.pci.configWrite(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);
    const fb = changes.find((c) => c.index === 0)!;
    assert.equal(fb.to, 0xfd000000);
    assert.ok("ram" in fb.bar && fb.bar.ram === dev.vga.vram);
  });

  it("reaches the VGA ports and DISPI registers through the MMIO page", () => {
    const dev = makeStdVga();
    assert.equal(dev.mmio.mmioRead(MMIO_VBE + 2 * VBE_INDEX_ID, 2), 0xb0c5);
    dev.mmio.mmioWrite(MMIO_VBE + 2 * VBE_INDEX_XRES, 2, 1024);
    assert.equal(dev.vga.vbe[VBE_INDEX_XRES], 1024);
    dev.mmio.mmioWrite(MMIO_VGA_PORTS + 0x02, 1, 0x01); // misc output: colour
    dev.mmio.mmioWrite(MMIO_VGA_PORTS + 0x14, 2, 0x330e); // CRTC index 0x0e, data 0x33
    assert.equal(dev.vga.cr[0x0e], 0x33);
    assert.equal(dev.mmio.mmioRead(MMIO_VGA_PORTS + 0x15, 1), 0x33);
    assert.equal(dev.mmio.mmioRead(0x604, 4), 0x1e1e1e1e);
  });

  it("hard reset turns the VBE off and clears the BARs", () => {
    const dev = makeStdVga();
    dev.pci.configWrite(0x10, 4, 0xfd000000);
    dev.mmio.mmioWrite(MMIO_VBE + 2 * VBE_INDEX_ENABLE, 2, 1);
    assert.equal(dev.vga.vbeEnabled, true);
    dev.reset();
    assert.equal(dev.vga.vbeEnabled, false);
    assert.equal(dev.pci.configRead(0x10, 4), 0x8);
  });

  it("round-trips PCI and VGA state", () => {
    const dev = makeStdVga();
    dev.pci.configWrite(0x10, 4, 0xfd000000);
    dev.vga.vram[12345] = 0x77;
    dev.mmio.mmioWrite(MMIO_VBE + 2 * VBE_INDEX_XRES, 2, 800);
    const copy = makeStdVga();
    copy.loadState(structuredClone(dev.saveState()), dev.stateVersion);
    assert.equal(copy.pci.configRead(0x10, 4), dev.pci.configRead(0x10, 4));
    assert.equal(copy.vga.vram[12345], 0x77);
    assert.equal(copy.vga.vbe[VBE_INDEX_XRES], 800);
    assert.throws(() => copy.loadState({} as never, 1));
  });
});
