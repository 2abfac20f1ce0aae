// The PC board: the machine QEMU calls `pc` (i440FX host bridge, PIIX3 ISA bridge with IDE,
// PIIX4-style ACPI power management, stdvga), built from plain configuration.
//
// This is the one place that knows where devices live: port numbers, MMIO bases, IRQ pins, PCI
// slots. Devices are constructed with their collaborators and registered here; none of them knows
// its address. Address map (as QEMU's pc):
//   RAM 0 .. below-4G end; VGA window 0xA0000-0xBFFFF; shadow area 0xC0000-0xFFFFF (PAM);
//   PCI memory hole from the end of low RAM; IOAPIC 0xFEC00000; LAPIC 0xFEE00000;
//   firmware ROM at the top of 4 GiB with its last 128 KiB aliased below 1 MiB.
// ISA IRQs: 0 PIT, 1 keyboard, 3 COM2/4, 4 COM1/3, 8 RTC, 9 ACPI SCI, 12 mouse, 14/15 IDE; PCI
// INTx through the PIIX3 PIRQ router. The PIC's INTR goes to the local APIC's LINT0.

import { readFileSync } from "node:fs";
import { type PortAccess, PortBus } from "../core/bus.ts";
import type { InterruptAcknowledge } from "../core/interrupts.ts";
import { IrqLine, WiredOr } from "../core/irq.ts";
import { PhysicalMemory, type Region } from "../core/memory.ts";
import { InstructionClock, RealTimeClock, Scheduler } from "../core/scheduler.ts";
import { Piix4Pm } from "../devices/acpi/piix4-pm.ts";
import { buildAcpiTables, linkAcpiTables, publishAcpiTables } from "../devices/acpi/tables.ts";
import { IoApic } from "../devices/apic/ioapic.ts";
import { LocalApic } from "../devices/apic/local-apic.ts";
import {
  DebugConsole,
  DebugExit,
  PC_TESTDEV_IRQ_COUNT,
  PC_TESTDEV_MEMORY_SIZE,
  PcTestDev,
  PostCodePort,
} from "../devices/debug-ports.ts";
import {
  FW_CFG_CMDLINE_ADDR,
  FW_CFG_CMDLINE_DATA,
  FW_CFG_CMDLINE_SIZE,
  FW_CFG_INITRD_ADDR,
  FW_CFG_INITRD_DATA,
  FW_CFG_INITRD_SIZE,
  FW_CFG_KERNEL_ADDR,
  FW_CFG_KERNEL_DATA,
  FW_CFG_KERNEL_SIZE,
  FW_CFG_SETUP_ADDR,
  FW_CFG_SETUP_DATA,
  FW_CFG_SETUP_SIZE,
  FwCfg,
} from "../devices/fw-cfg.ts";
import { Hpet } from "../devices/hpet.ts";
import { I8042 } from "../devices/i8042.ts";
import { type BlockBackend, CowOverlay, FileBlockBackend } from "../devices/ide/block.ts";
import { IdeDrive } from "../devices/ide/drive.ts";
import { PiixIde } from "../devices/ide/piix-ide.ts";
import type { BarChange, PciFunction } from "../devices/pci/function.ts";
import { I440fx, PciBus, PciConfigPorts } from "../devices/pci/host-bridge.ts";
import { Piix3 } from "../devices/pci/piix3.ts";
import { DualPic } from "../devices/pic.ts";
import { Pit } from "../devices/pit.ts";
import { Rtc } from "../devices/rtc.ts";
import { SystemControlPortA, SystemControlPortB } from "../devices/system-control.ts";
import { Uart16550 } from "../devices/uart.ts";
import { StdVga } from "../devices/vga/stdvga.ts";
import { Cpu } from "../x86/cpu.ts";
import { FpuErrorLatch } from "../x86/fpu/ferr.ts";
import { Fpu } from "../x86/fpu/fpu.ts";
import { E820_ACPI, type E820Entry, encodeFwCfgE820, pcMemoryMap, splitRam } from "./e820.ts";
import {
  BootError,
  identifyKernelImage,
  loadLinux,
  notBootableMessage,
  parseBzImage,
  prepareFirmwareLinuxBoot,
} from "./linux-boot.ts";
import {
  ConfigError,
  type Machine,
  type MachineConfig,
  type OutputSink,
  type OutputStream,
} from "./machine.ts";
import { renderMonitor, traceLine } from "./monitor.ts";
import { findMultibootHeader, loadMultiboot, MultibootError } from "./multiboot.ts";
import { linuxBootRom } from "./rom/linuxboot.ts";
import { type ExitReason, RunLoop } from "./run-loop.ts";

const VGA_WINDOW = 0xa0000;
const VGA_WINDOW_SIZE = 0x20000;
const LOW_BIOS_WINDOW = 0x20000;
const IOAPIC_BASE = 0xfec00000;
const HPET_BASE = 0xfed00000;
/** COM1-COM4: base port and ISA IRQ. */
const COM_PORTS: readonly (readonly [number, number])[] = [
  [0x3f8, 4],
  [0x2f8, 3],
  [0x3e8, 4],
  [0x2e8, 3],
];
const LAPIC_BASE = 0xfee00000;
/** ACPI tables for direct kernel boot live in the last 128 KiB of low RAM. */
const ACPI_AREA_SIZE = 0x20000;
/** The RSDP goes in the 0xF0000 segment, where operating systems scan for it. */
const RSDP_ADDRESS = 0xf5000;
const MAX_FIRMWARE = 16 << 20;
/** TSC ticks per nanosecond of guest time (a 1 GHz processor). */
const TSC_PER_NS = 1;
/** Instructions per guest microsecond in deterministic time. */
const DETERMINISTIC_MIPS = 100;
/** The fw_cfg file SeaBIOS runs as an option ROM (genroms/*) to start a --kernel Linux. */
const LINUXBOOT_ROM_FILE = "genroms/linuxboot.bin";

/** ISA IRQ -> IOAPIC pin, as QEMU's pc wires it (IRQ 0 arrives on GSI 2). */
function isaIrqToGsi(irq: number): number {
  return irq === 0 ? 2 : irq;
}

function hexWord(n: number): string {
  return n.toString(16).padStart(4, "0");
}

function readImage(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(`${what} ${path}: ${code === "ENOENT" ? "no such file" : (err as Error).message}`);
  }
}

/** A kernel chosen by the user, already parsed. */
type DirectBoot =
  | { kind: "linux"; kernel: Uint8Array; initrd: Uint8Array | undefined; cmdline: string }
  | { kind: "multiboot"; kernel: Uint8Array; cmdline: string };

export function buildPc(config: MachineConfig): Machine {
  return new Pc(config);
}

class Pc implements Machine {
  readonly config: MachineConfig;
  readonly memory = new PhysicalMemory();
  readonly ports = new PortBus();
  readonly clock: RealTimeClock | InstructionClock;
  readonly scheduler: Scheduler;
  readonly cpu: Cpu;
  readonly loop: RunLoop;
  readonly pic: DualPic;
  readonly lapic: LocalApic;
  readonly ioapic: IoApic;
  readonly hpet: Hpet;
  readonly pit: Pit;
  readonly rtc: Rtc;
  readonly com: Uart16550[];
  readonly i8042: I8042;
  readonly vga: StdVga;
  readonly ide: PiixIde;
  readonly pm: Piix4Pm;
  readonly fwCfg: FwCfg;
  readonly ferr: FpuErrorLatch;
  readonly pciBus = new PciBus();
  readonly i440fx: I440fx;
  readonly piix3: Piix3;
  private readonly resettable: { reset(): void }[] = [];
  private readonly sinks: Record<OutputStream, OutputSink | undefined> = {
    serial: undefined,
    debugcon: undefined,
    "firmware-log": undefined,
    trace: undefined,
  };
  private readonly ram: Region;
  private readonly lowBios: Region | undefined;
  private readonly e820: E820Entry[];
  private readonly kernel: DirectBoot | undefined;
  /** The kernel is started by the firmware through the linuxboot option ROM. */
  private readonly kernelViaFirmware: boolean;
  private resetRequested = false;

  constructor(config: MachineConfig) {
    this.config = config;
    const split = splitRam(config.memoryBytes);
    this.ram = this.memory.addRam("ram-below-4g", 0, split.below4g);
    if (split.above4g > 0) this.memory.addRam("ram-above-4g", 0x1_0000_0000, split.above4g);
    // Firmware at the top of 4 GiB, its last 128 KiB also below 1 MiB.
    if (config.bios) {
      const image = readImage(config.bios, "--bios");
      if (image.length === 0 || image.length % 0x10000 !== 0 || image.length > MAX_FIRMWARE) {
        throw new ConfigError(
          `--bios ${config.bios}: ${image.length} bytes is not a firmware image size (a multiple of 64 KiB up to 16 MiB)`,
        );
      }
      const rom = this.memory.addRom("bios", 0x1_0000_0000 - image.length, image);
      const low = Math.min(LOW_BIOS_WINDOW, image.length);
      this.lowBios = this.memory.addAlias("bios-low", 0x100000 - low, rom, image.length - low, low);
    }

    this.kernel = config.kernel ? this.parseKernel(config) : undefined;
    this.kernelViaFirmware = this.kernel?.kind === "linux" && config.bios !== undefined && !config.directBoot;
    const acpiBase = split.below4g - ACPI_AREA_SIZE;
    this.e820 = pcMemoryMap(config.memoryBytes, {
      ...(this.kernel && !this.kernelViaFirmware
        ? { extra: [{ base: acpiBase, length: ACPI_AREA_SIZE, type: E820_ACPI }] }
        : {}),
    });

    // Deterministic time counts the CPU's retired instructions, read live, as a processor of
    // DETERMINISTIC_MIPS: near what the interpreter really does, so guests that busy-wait on a
    // timer spend about as many instructions as they would in real time.
    this.clock =
      config.clock === "deterministic"
        ? new InstructionClock(1000 / DETERMINISTIC_MIPS, 0, () => this.cpu?.instructionCount ?? 0)
        : new RealTimeClock();
    this.scheduler = new Scheduler(this.clock);

    // Interrupt wiring: ISA lines are wired-OR (several devices and the PIRQ router may drive one).
    const cpuIntr = new IrqLine("cpu-intr");
    const picIntr = new IrqLine("pic-intr");
    this.pic = new DualPic(picIntr);
    this.lapic = new LocalApic({
      scheduler: this.scheduler,
      intr: cpuIntr,
      nmi: () => this.cpu.nmi(),
      pic: this.pic,
      onEoi: (vector) => this.ioapic.endOfInterrupt(vector),
      onRelocate: (base) => this.relocateLapic(base),
    });
    this.ioapic = new IoApic({
      deliverMessage: (vector, mode, level, destination, logical) =>
        this.lapic.deliverMessage(vector, mode, level, destination, logical),
    });
    picIntr.connect((high) => this.lapic.setLint0(high));
    const isa = Array.from({ length: 16 }, (_, irq) => {
      const wire = new WiredOr(`isa-irq${irq}`);
      const toPic = this.pic.input(irq);
      const toIoapic = this.ioapic.input(isaIrqToGsi(irq));
      wire.output.connect((high) => {
        toPic(high);
        toIoapic(high);
      });
      return wire;
    });
    const isaIrq = (irq: number, name: string) => isa[irq]!.input(name);

    const interrupts: InterruptAcknowledge = this.lapic;
    const fpu = new Fpu();
    // FERR# to IRQ 13 and IGNNE# through port 0xF0, for guests that run with CR0.NE clear.
    this.ferr = new FpuErrorLatch(fpu, isaIrq(13, "fpu"));
    this.ports.register("fpu-error", 0xf0, 1, this.ferr);
    this.cpu = new Cpu({
      memory: this.memory,
      ports: this.ports,
      interrupts,
      fpu,
      // The time-stamp counter runs at a nominal 1 GHz of guest time, so the guest's TSC
      // calibration agrees with the PIT, the PM timer and the RTC.
      tsc: () => Math.floor(this.scheduler.now() * TSC_PER_NS),
      onShutdown: (reason) => this.requestReset(`triple fault (${reason})`, "triple-fault"),
      // A read of overdue time ends the slice (onOverdueRead below).
      afterHostWork: () => this.scheduler.now(),
      ...(config.jit !== undefined ? { jit: config.jit } : {}),
    });
    cpuIntr.connect((high) => this.cpu.setIntr(high));
    // A guest that reads the time after a timer's deadline gets that timer's interrupt promptly.
    this.scheduler.onOverdueRead = () => this.cpu.endSlice();
    this.cpu.onApicBaseChange = (lo: number) => this.lapic.writeBaseMsr(lo);
    const cpu = this.cpu;
    this.loop = new RunLoop({
      cpu: {
        run: (n) => this.cpu.run(n),
        get halted() {
          return cpu.halted;
        },
        interruptsEnabled: () => (this.cpu.eflags & 0x200) !== 0,
      },
      scheduler: this.scheduler,
      ...(config.timeoutSeconds ? { timeoutNs: config.timeoutSeconds * 1e9 } : {}),
    });

    // Legacy ISA devices.
    this.ports.register("pic-master", 0x20, 2, this.pic.master);
    this.ports.register("pic-slave", 0xa0, 2, this.pic.slave);
    // The HPET's legacy replacement mode takes IRQ 0 and IRQ 8 from the PIT and the RTC.
    let hpetLegacy = false;
    const gated = (irq: number, name: string) => {
      const wire = isaIrq(irq, name);
      const line = new IrqLine(`${name}-out`);
      line.connect((high) => wire.set(high && !hpetLegacy));
      return line;
    };
    this.pit = new Pit(this.scheduler, gated(0, "pit"));
    this.ports.register("pit", 0x40, 4, this.pit);
    this.ports.register("port61", 0x61, 1, new SystemControlPortB(this.scheduler, this.pit));
    this.ports.register(
      "port92",
      0x92,
      1,
      new SystemControlPortA(
        (on) => this.cpu.setA20(on),
        () => this.requestReset("reset through port 0x92"),
      ),
    );
    this.rtc = new Rtc(this.scheduler, gated(8, "rtc"));
    this.ports.register("rtc", 0x70, 2, this.rtc);
    this.i8042 = new I8042(isaIrq(1, "kbd"), isaIrq(12, "mouse"), {
      onA20: (on) => this.cpu.setA20(on),
      onReset: () => this.requestReset("reset through the keyboard controller"),
    });
    this.ports.register("i8042-data", 0x60, 1, this.i8042.dataPort);
    this.ports.register("i8042-cmd", 0x64, 1, this.i8042.commandPort);
    this.com = COM_PORTS.map(([base, irq], n) => {
      const uart = new Uart16550(this.scheduler, isaIrq(irq!, `com${n + 1}`), {
        onTransmit: n === 0 ? (byte) => this.emit("serial", byte) : undefined,
      });
      this.ports.register(`com${n + 1}`, base!, 8, uart);
      return uart;
    });
    this.ports.register("debugcon", 0xe9, 1, new DebugConsole((b) => this.emit("debugcon", b)));
    this.ports.register("firmware-log", 0x402, 1, new DebugConsole((b) => this.emit("firmware-log", b)));
    this.ports.register("post", 0x80, 1, new PostCodePort());
    if (config.debugExit) {
      this.ports.register(
        "isa-debug-exit",
        0xf4,
        4,
        new DebugExit((status) =>
          this.loop.stop({
            kind: "debug-exit",
            status,
            detail: `the guest exited through isa-debug-exit with status ${status}`,
          }),
        ),
      );
    }
    if (config.pcTestdev) {
      const lines = Array.from({ length: PC_TESTDEV_IRQ_COUNT }, (_, n) => {
        if (n < 16) return isaIrq(n, `testdev-irq${n}`);
        const line = new IrqLine(`testdev-gsi${n}`);
        line.connect(this.ioapic.input(n));
        return line;
      });
      const testdev = new PcTestDev(lines);
      this.ports.register("pc-testdev", 0xe0, 12, testdev.ports);
      this.ports.register("pc-testdev-irq", 0x2000, PC_TESTDEV_IRQ_COUNT, testdev.irqPorts);
      this.memory.addMmio("pc-testdev-mem", 0xff000000, PC_TESTDEV_MEMORY_SIZE, testdev.memory);
    }

    // PCI: host bridge, ISA bridge with IDE and power management, VGA.
    this.i440fx = new I440fx({
      ramSize: split.below4g,
      onPamChange: (base, size, readToRam, writeToRam) => this.routeShadow(base, size, readToRam, writeToRam),
      onSmramChange: (ramVisible) => this.routeVgaWindow(ramVisible),
    });
    this.piix3 = new Piix3({
      isaIrqs: Array.from({ length: 16 }, (_, irq) => isaIrq(irq, `pirq->irq${irq}`)),
      onElcrChange: (elcr) => this.pic.setElcr(elcr),
      onReset: () => this.requestReset("reset through port 0xCF9"),
    });
    this.ports.register("pci-config", 0xcf8, 8, new PciConfigPorts(this.pciBus, this.piix3.resetControlPort));
    this.ports.register("elcr", 0x4d0, 2, this.piix3.elcrPorts);
    this.pciBus.setIntxRouter(this.piix3);
    this.ide = new PiixIde({
      memory: this.memory,
      primaryIrq: isaIrq(14, "ide0"),
      secondaryIrq: isaIrq(15, "ide1"),
      ...this.ideDrives(config),
    });
    this.pm = new Piix4Pm({
      scheduler: this.scheduler,
      sci: isaIrq(9, "acpi-sci"),
      onPowerOff: () => this.loop.stop({ kind: "poweroff", detail: "the guest powered off" }),
      onSleep: () => this.requestReset("the guest entered a sleep state tsvisor does not model"),
    });
    const vgaRom = config.vgaBios ? readImage(config.vgaBios, "--vga-bios") : undefined;
    this.vga = new StdVga({ clock: this.clock, ...(vgaRom ? { rom: vgaRom } : {}) });
    this.ports.register("vga", 0x3c0, 0x20, this.vga.vga.ports);
    this.ports.register("vga-mono", 0x3b0, 0x10, this.vga.vga.monoPorts);
    this.ports.register("vbe", 0x1ce, 3, this.vga.vga.vbePorts);
    this.attachPci(0, 0, this.i440fx);
    this.attachPci(1, 0, this.piix3);
    this.attachPci(1, 1, this.ide.pci);
    this.attachPci(1, 3, this.pm);
    this.attachPci(2, 0, this.vga.pci);
    for (let c = 0; c < 2; c++) {
      const channel = this.ide.channels[c]!;
      this.ports.register(`ide${c}`, c === 0 ? 0x1f0 : 0x170, 8, channel.commandBlock);
      this.ports.register(`ide${c}-ctl`, c === 0 ? 0x3f6 : 0x376, 1, channel.controlBlock);
    }

    // Platform MMIO.
    this.memory.addMmio("ioapic", IOAPIC_BASE, 0x1000, this.ioapic);
    this.hpet = new Hpet({
      scheduler: this.scheduler,
      ioapicLines: Array.from({ length: 24 }, (_, pin) => {
        const line = new IrqLine(`hpet-gsi${pin}`);
        line.connect(this.ioapic.input(pin));
        return line;
      }),
      legacyIrq0: isaIrq(0, "hpet-timer0"),
      legacyIrq8: isaIrq(8, "hpet-timer1"),
      onLegacyChange: (enabled) => {
        hpetLegacy = enabled;
      },
    });
    this.memory.addMmio("hpet", HPET_BASE, 0x1000, this.hpet);
    this.lapicRegion = this.memory.addMmio("lapic", LAPIC_BASE, 0x1000, this.lapic);

    // Firmware interface: fw_cfg with the memory map, boot order and ACPI tables.
    this.fwCfg = new FwCfg(this.memory, { ramSize: config.memoryBytes });
    this.ports.register("fw-cfg", 0x510, 12, this.fwCfg);
    this.fwCfg.addFile("etc/e820", encodeFwCfgE820(this.e820));
    this.fwCfg.setBootOrder(this.bootOrder());
    if (this.kernelViaFirmware)
      this.publishKernel(this.kernel as DirectBoot & { kind: "linux" }, split.below4g);
    const acpi = buildAcpiTables({
      ramBelow4g: split.below4g,
      ioapicAddress: IOAPIC_BASE,
      localApicAddress: LAPIC_BASE,
      hpetAddress: HPET_BASE,
      serialPorts: COM_PORTS.map(([base, irq]) => ({ base, irq })),
    });
    publishAcpiTables(this.fwCfg, acpi);
    this.acpiBlobs = acpi;

    this.rtc.setFirmwareConfig({
      ramBelow4GiB: split.below4g,
      ramAbove4GiB: split.above4g,
      bootOrder: config.boot === "d" ? ["cdrom", "disk"] : ["disk", "cdrom"],
    });

    this.resettable.push(
      this.pic,
      this.pit,
      this.rtc,
      this.i8042,
      this.lapic,
      this.ioapic,
      this.ide,
      this.hpet,
      this.vga,
      this.fwCfg,
      ...this.com,
    );
    this.routeVgaWindow(false);
    this.i440fx.reportMemoryRouting();
    this.powerOn();
  }

  private lapicRegion: Region;
  private readonly acpiBlobs: ReturnType<typeof buildAcpiTables>;

  // ---- boot ------------------------------------------------------------------------------------

  private parseKernel(config: MachineConfig): DirectBoot {
    const kernel = readImage(config.kernel!, "--kernel");
    const cmdline = config.append ?? "";
    try {
      parseBzImage(kernel);
      return {
        kind: "linux",
        kernel,
        initrd: config.initrd ? readImage(config.initrd, "--initrd") : undefined,
        cmdline,
      };
    } catch (err) {
      if (!(err instanceof BootError)) throw err;
      if (findMultibootHeader(kernel)) {
        if (config.initrd) throw new ConfigError("--initrd is for Linux kernels; this is a multiboot kernel");
        return { kind: "multiboot", kernel, cmdline };
      }
      // A damaged Linux kernel gets the loader's reason; anything else is named for what it is.
      const kind = identifyKernelImage(kernel).kind;
      throw new ConfigError(
        kind === "bzimage" || kind === "zimage"
          ? `${config.kernel}: ${err.message}`
          : notBootableMessage(config.kernel!, kernel),
      );
    }
  }

  /** Puts the machine in its power-on state and, for direct kernel boot, loads the kernel. */
  private powerOn(): void {
    for (const d of this.resettable) d.reset();
    this.pciBus.reset();
    this.cpu.reset();
    this.cpu.setA20(true);
    this.routeVgaWindow(false);
    this.i440fx.reportMemoryRouting();
    if (this.kernel && !this.kernelViaFirmware) {
      // No firmware runs: set up what it would have (PIRQ routes, the ACPI PM block, text mode).
      this.piix3.applyFirmwareDefaults();
      this.pm.applyFirmwareDefaults();
      this.vga.setTextMode();
      this.loadDirect(this.kernel);
    }
  }

  private loadDirect(boot: DirectBoot): void {
    // Without firmware the shadow area is plain RAM, as SeaBIOS leaves it after POST.
    if (this.lowBios)
      this.memory.writeBytes(
        this.lowBios.base,
        this.lowBios.bytes!.subarray(this.lowBios.bytesOffset, this.lowBios.bytesOffset + this.lowBios.size),
      );
    this.memory.route(0xc0000, 0x40000, this.ram, this.ram);
    try {
      if (boot.kind === "linux") {
        const rsdp = this.placeAcpiTables();
        const result = loadLinux(this.memory, {
          kernel: boot.kernel,
          ...(boot.initrd ? { initrd: boot.initrd } : {}),
          cmdline: boot.cmdline,
          memoryMap: this.e820,
          vgaTextConsole: true,
          acpiRsdpAddress: rsdp,
        });
        const s = result.entryState;
        this.cpu.setCr(0, s.cr0);
        this.cpu.gdtr = { base: s.gdtr.base, limit: s.gdtr.limit };
        const seg = (x: { selector: number; base: number; limit: number; access: number; big: boolean }) => ({
          selector: x.selector,
          base: x.base,
          limit: x.limit,
          attributes: x.access | (x.big ? 0x4000 : 0) | (x.limit > 0xfffff ? 0x8000 : 0),
        });
        this.cpu.setSegment(0, seg(s.es));
        this.cpu.setSegment(1, seg(s.cs));
        this.cpu.setSegment(2, seg(s.ss));
        this.cpu.setSegment(3, seg(s.ds));
        this.cpu.setSegment(4, seg(s.fs));
        this.cpu.setSegment(5, seg(s.gs));
        const r = s.registers;
        const values = [r.eax, r.ecx, r.edx, r.ebx, r.esp, r.ebp, r.esi, r.edi];
        for (let i = 0; i < 8; i++) this.cpu.setReg32(i, values[i]!);
        this.cpu.eflags = s.eflags;
        this.cpu.eip = s.eip;
      } else {
        const result = loadMultiboot(this.memory, boot.kernel, {
          memoryMap: this.e820,
          cmdline: boot.cmdline,
          bootLoaderName: "tsvisor",
        });
        this.cpu.setCr(0, 0x11);
        for (let s = 0; s < 6; s++) {
          this.cpu.setSegment(s, {
            selector: s === 1 ? 0x08 : 0x10,
            base: 0,
            limit: 0xffffffff,
            attributes: (s === 1 ? 0x9b : 0x93) | 0xc000,
          });
        }
        for (let i = 0; i < 8; i++) this.cpu.setReg32(i, 0);
        this.cpu.setReg32(0, 0x2badb002);
        this.cpu.setReg32(3, result.mbiAddress);
        this.cpu.eflags = 0x2;
        this.cpu.eip = result.entry;
      }
    } catch (err) {
      if (err instanceof BootError || err instanceof MultibootError)
        throw new ConfigError(`${this.config.kernel}: ${err.message}`);
      throw err;
    }
  }

  /** Lays the ACPI tables into RAM for direct boot (the firmware does it otherwise); returns the RSDP. */
  private placeAcpiTables(): number {
    let next = this.ram.size - ACPI_AREA_SIZE;
    const placed = linkAcpiTables(
      this.acpiBlobs.loader,
      { "etc/acpi/tables": this.acpiBlobs.tables, "etc/acpi/rsdp": this.acpiBlobs.rsdp },
      (name, size, align) => {
        if (name === "etc/acpi/rsdp") return RSDP_ADDRESS;
        const at = Math.ceil(next / Math.max(align, 16)) * Math.max(align, 16);
        next = at + size;
        if (next > this.ram.size) throw new ConfigError("the ACPI tables do not fit in their area");
        return at;
      },
    );
    for (const { address, bytes } of placed.values()) this.memory.writeBytes(address, bytes);
    return RSDP_ADDRESS;
  }

  /** Hands a Linux kernel to the firmware: fw_cfg items for the pieces and the linuxboot ROM. */
  private publishKernel(boot: DirectBoot & { kind: "linux" }, ramBelow4g: number): void {
    let prepared: ReturnType<typeof prepareFirmwareLinuxBoot>;
    try {
      prepared = prepareFirmwareLinuxBoot(boot.kernel, {
        ...(boot.initrd ? { initrd: boot.initrd } : {}),
        cmdline: boot.cmdline,
        // SeaBIOS keeps its own tables at the top of low RAM; stay 128 KiB clear of them.
        ramEnd: ramBelow4g - ACPI_AREA_SIZE,
      });
    } catch (err) {
      if (err instanceof BootError) throw new ConfigError(`${this.config.kernel}: ${err.message}`);
      throw err;
    }
    const le32 = (v: number) => Uint8Array.of(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
    const items: [number, number, number, { address: number; data: Uint8Array } | undefined][] = [
      [FW_CFG_SETUP_ADDR, FW_CFG_SETUP_SIZE, FW_CFG_SETUP_DATA, prepared.setup],
      [FW_CFG_KERNEL_ADDR, FW_CFG_KERNEL_SIZE, FW_CFG_KERNEL_DATA, prepared.kernel],
      [FW_CFG_INITRD_ADDR, FW_CFG_INITRD_SIZE, FW_CFG_INITRD_DATA, prepared.initrd],
      [FW_CFG_CMDLINE_ADDR, FW_CFG_CMDLINE_SIZE, FW_CFG_CMDLINE_DATA, prepared.cmdline],
    ];
    for (const [addrKey, sizeKey, dataKey, blob] of items) {
      this.fwCfg.setItem(addrKey, le32(blob?.address ?? 0));
      this.fwCfg.setItem(sizeKey, le32(blob?.data.length ?? 0));
      this.fwCfg.setItem(dataKey, blob?.data ?? new Uint8Array(0));
    }
    this.fwCfg.addFile(LINUXBOOT_ROM_FILE, linuxBootRom());
  }

  /** SeaBIOS's boot order (OpenFirmware device paths), first to try first. */
  private bootOrder(): string[] {
    const disk = "/pci@i0cf8/ide@1,1/drive@0/disk@0";
    const cdrom = "/pci@i0cf8/ide@1,1/drive@1/disk@0";
    const rom = this.kernelViaFirmware ? [`/rom@${LINUXBOOT_ROM_FILE}`] : [];
    return [...rom, ...(this.config.boot === "d" ? [cdrom, disk] : [disk, cdrom])];
  }

  private ideDrives(config: MachineConfig) {
    const open = (path: string, snapshot: boolean): BlockBackend => {
      let file: BlockBackend;
      try {
        file = new FileBlockBackend(path, { readOnly: snapshot });
      } catch (err) {
        throw new ConfigError(`--disk ${path}: ${(err as Error).message}`);
      }
      return snapshot ? new CowOverlay(file) : file;
    };
    const disks = config.disks.map((d) => IdeDrive.disk(open(d.path, d.snapshot)));
    let cdrom: IdeDrive | undefined;
    if (config.cdrom) {
      try {
        cdrom = IdeDrive.cdrom(new FileBlockBackend(config.cdrom, { readOnly: true }));
      } catch (err) {
        throw new ConfigError(`--cdrom ${config.cdrom}: ${(err as Error).message}`);
      }
    }
    if (disks.length > 3 || (disks.length > 2 && cdrom))
      throw new ConfigError("at most four IDE drives (three disks with a CD-ROM)");
    // Primary master/slave take the disks; the CD-ROM is the secondary master, as with QEMU's -cdrom.
    return {
      primary: { ...(disks[0] ? { master: disks[0] } : {}), ...(disks[1] ? { slave: disks[1] } : {}) },
      secondary: { ...(cdrom ? { master: cdrom } : disks[2] ? { master: disks[2] } : {}) },
    };
  }

  // ---- wiring helpers --------------------------------------------------------------------------

  private attachPci(slot: number, fn: number, device: PciFunction): void {
    const mapped = new Map<number, Region | number>();
    device.onBarChange((change: BarChange) => {
      const key = change.index;
      const old = mapped.get(key);
      if (old !== undefined) {
        if (typeof old === "number") this.ports.unregister(old);
        else this.memory.removeRegion(old);
        mapped.delete(key);
      }
      if (change.to === undefined) return;
      const bar = change.bar;
      const name = `${device.name}-bar${key}`;
      try {
        if (bar.kind === "io") {
          this.ports.register(name, change.to, bar.size, bar.device);
          mapped.set(key, change.to);
        } else if (bar.kind === "rom") {
          mapped.set(key, this.memory.addRom(name, change.to, bar.data));
        } else if ("ram" in bar) {
          mapped.set(key, this.memory.addRamBacked(name, change.to, bar.ram));
        } else {
          mapped.set(key, this.memory.addMmio(name, change.to, bar.size, bar.device));
        }
      } catch {
        // The guest programmed a BAR over something else: like real hardware, the overlap
        // simply does not decode for this function.
      }
    });
    this.pciBus.attach(slot, fn, device);
  }

  private routeShadow(base: number, size: number, readToRam: boolean, writeToRam: boolean): void {
    const rom = this.lowBios && base >= this.lowBios.base ? this.lowBios : null;
    this.memory.route(base, size, readToRam ? this.ram : rom, writeToRam ? this.ram : null);
  }

  private vgaWindowRegion: Region | undefined;
  private routeVgaWindow(ramVisible: boolean): void {
    if (ramVisible) {
      if (this.vgaWindowRegion) this.memory.removeRegion(this.vgaWindowRegion);
      this.vgaWindowRegion = undefined;
    } else if (!this.vgaWindowRegion) {
      this.vgaWindowRegion = this.memory.addMmio(
        "vga-window",
        VGA_WINDOW,
        VGA_WINDOW_SIZE,
        this.vga.vga.legacyWindow,
      );
    }
  }

  private relocateLapic(base: number): void {
    this.memory.removeRegion(this.lapicRegion);
    this.lapicRegion = this.memory.addMmio("lapic", base, 0x1000, this.lapic);
  }

  private emit(stream: OutputStream, byte: number): void {
    this.sinks[stream]?.writeByte(byte);
  }

  /** A reset request from the guest: handled between instructions, or ends the run with --no-reboot. */
  private requestReset(detail: string, kind: "reset" | "triple-fault" = "reset"): void {
    if (this.config.noReboot) {
      this.loop.stop({ kind, detail: `${detail}; not rebooting (--no-reboot)` });
      return;
    }
    if (this.resetRequested) return;
    this.resetRequested = true;
    this.loop.post(() => {
      this.resetRequested = false;
      this.powerOn();
    });
  }

  /** `trace ports|unhandled|cpu|jit on|off`: run-time traces, written to the "trace" stream. */
  private switchTrace(what: string | undefined, state: string | undefined): string {
    const on = state === "on";
    if ((state !== "on" && state !== "off") || !what) return "usage: trace ports|unhandled|cpu|jit on|off";
    const line = (text: string) => this.sinks.trace?.write(new TextEncoder().encode(`${text}\n`));
    const port = (a: PortAccess) =>
      `${a.direction} ${hexWord(a.port)} ${a.width * 8}-bit ${a.value.toString(16).padStart(a.width * 2, "0")} ${a.device ?? "(unclaimed)"}`;
    switch (what) {
      case "ports":
        this.ports.trace = on ? (a) => line(`port ${port(a)}`) : undefined;
        return `port trace ${state}`;
      case "unhandled":
        this.ports.unhandled = on ? (a) => line(`unhandled ${port(a)}`) : undefined;
        return `unhandled-port log ${state}`;
      case "cpu":
        this.cpu.trace = on ? (cpu) => line(traceLine(cpu, this.memory)) : undefined;
        return `instruction trace ${state}`;
      case "jit":
        if (!this.cpu.jit) return "the translator is off (--jit off)";
        this.cpu.jit.onTranslation = on
          ? (phys, instructions, source) =>
              line(`jit ${hexWord(phys)} ${instructions} instructions\n${source}`)
          : undefined;
        return `translation trace ${state}`;
      default:
        return "usage: trace ports|unhandled|cpu|jit on|off";
    }
  }

  // ---- Machine ---------------------------------------------------------------------------------

  serialInput(data: Uint8Array): void {
    this.com[0]!.receive(data);
  }

  setOutput(stream: OutputStream, sink: OutputSink | ((data: Uint8Array) => void) | undefined): void {
    this.sinks[stream] =
      typeof sink === "function" ? { write: sink, writeByte: (byte) => sink(Uint8Array.of(byte)) } : sink;
  }

  monitor(command: string): string {
    const words = command.trim().split(/\s+/);
    if (words[0] === "system_reset") {
      this.requestReset("reset from the monitor");
      return "";
    }
    if (words[0] === "stop") {
      this.loop.pause();
      return "";
    }
    if (words[0] === "cont" || words[0] === "c") {
      this.loop.resume();
      return "";
    }
    if (words[0] === "trace") return this.switchTrace(words[1], words[2]);
    return renderMonitor(this, command);
  }

  screenshot(): Uint8Array | undefined {
    return this.vga.screenshot();
  }

  run(): Promise<ExitReason> {
    return this.loop.run();
  }
}
