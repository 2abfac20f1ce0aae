// A bare-metal runner: the smallest machine that runs a test kernel.
//
// RAM from address 0, a port bus and the CPU, plus three tiny port devices that test programs use
// to talk to the host: QEMU's debugcon (0xE9), isa-debug-exit (0xF4) and a transmit-only COM1
// (0x3F8). It loads a multiboot kernel or a flat binary, runs with an instruction budget and
// reports why it stopped, with every byte the program wrote. The CPU differential tests, the
// fuzzer and `microbench.asm` run on it; no chipset, no BIOS, no interrupts from outside.

import type { PortDevice, Width } from "../core/bus.ts";
import { PortBus } from "../core/bus.ts";
import { PhysicalMemory } from "../core/memory.ts";
import { disassemble } from "../x86/disasm.ts";
import {
  loadMultiboot,
  MULTIBOOT_BOOTLOADER_MAGIC,
  type MultibootOptions,
  pcMemoryMap,
} from "./multiboot.ts";

/** QEMU's debug console port. */
export const DEBUGCON_PORT = 0xe9;
/** QEMU's isa-debug-exit port as the differential tests configure it (iobase=0xf4, iosize=4). */
export const DEBUG_EXIT_PORT = 0xf4;
/** The first serial port. */
export const COM1_PORT = 0x3f8;

/** General registers, in encoding order (EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI). */
export interface GeneralRegisters {
  eax?: number;
  ecx?: number;
  edx?: number;
  ebx?: number;
  esp?: number;
  ebp?: number;
  esi?: number;
  edi?: number;
}

/**
 * What the runner needs from a CPU. The real CPU (src/x86/cpu.ts) is adapted to this by
 * `loadTsvisorCpu`; tests may pass a stand-in.
 */
export interface BareCpu {
  /** Executes up to `maxInstructions`; returns how many retired (0 when halted). */
  run(maxInstructions: number): number;
  readonly halted: boolean;
  /** EFLAGS.IF. */
  interruptsEnabled(): boolean;
  /** Real mode at CS:IP with DS=ES=SS=FS=GS=CS, EFLAGS=0x2 and the given registers. */
  enterRealMode(cs: number, ip: number, registers: GeneralRegisters): void;
  /**
   * The state a multiboot kernel starts in: CR0.PE=1, paging off, CS a flat 32-bit code segment
   * (base 0, limit 4 GiB), DS/ES/FS/GS/SS flat 32-bit data segments, EFLAGS=0x2 (IF=0, VM=0).
   */
  enterFlatProtectedMode(eip: number, registers: GeneralRegisters): void;
  /**
   * Optional: ends the current `run` after the instruction in progress, so nothing executes
   * after a debug-exit request. Without it the runner notices at the end of the slice.
   */
  requestStop?(): void;
  /** Optional: calls `hook` before every instruction (slow), or stops when given undefined. */
  setTrace?(hook: ((state: TraceState) => void) | undefined): void;
}

/** The CPU's state before one instruction, for trace sinks. */
export interface TraceState {
  readonly cs: number;
  readonly eip: number;
  /** The code segment's default size is 32 bits. */
  readonly code32: boolean;
  /** Up to 15 bytes at CS:EIP. */
  readonly bytes: readonly number[];
  /** EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI. */
  readonly registers: readonly number[];
  readonly eflags: number;
}

/** One trace line: address, instruction, then the registers and flags before it runs. */
export function formatTrace(s: TraceState): string {
  const hex8 = (n: number): string => (n >>> 0).toString(16).padStart(8, "0");
  const d = disassemble(Uint8Array.from(s.bytes), 0, s.code32 ? 32 : 16, s.eip);
  const names = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"];
  const regs = s.registers.map((v, i) => `${names[i]}=${hex8(v)}`).join(" ");
  return `${s.cs.toString(16).padStart(4, "0")}:${hex8(s.eip)}  ${d.text.padEnd(32)} ${regs} efl=${hex8(s.eflags)}`;
}

/** What the CPU is built from; mirrors the CPU's constructor options. */
export interface BareCpuEnvironment {
  readonly memory: PhysicalMemory;
  readonly ports: PortBus;
  /** Called when the CPU shuts down (triple fault). */
  readonly onShutdown: (reason: string) => void;
}

export type BareCpuFactory = (environment: BareCpuEnvironment) => BareCpu;

/** Why a run ended. */
export type BareStopReason = "debug-exit" | "halted" | "triple-fault" | "budget";

export interface BareRunResult {
  readonly reason: BareStopReason;
  /** For "debug-exit": the status QEMU would exit with, (value << 1) | 1. */
  readonly exitStatus: number | undefined;
  /** For "halted": whether IF was set (nothing in a bare machine can wake it either way). */
  readonly interruptsEnabled: boolean;
  /** For "triple-fault": the CPU's description. */
  readonly detail: string;
  readonly instructions: number;
  /** Bytes written to the debug console. */
  readonly debugcon: Uint8Array;
  /** Bytes written to COM1. */
  readonly serial: Uint8Array;
}

/** Collects bytes a guest writes, growing as needed, up to a cap (a runaway guest cannot eat the host). */
export class ByteSink {
  private buffer = new Uint8Array(4096);
  private used = 0;
  private closed = false;
  private readonly cap: number;
  /** Called with each byte as it arrives (e.g. echo to the terminal). */
  onByte: ((byte: number) => void) | undefined;

  constructor(cap = 64 << 20) {
    this.cap = cap;
  }

  /** Drops every later byte (the machine has exited; QEMU would not see them either). */
  close(): void {
    this.closed = true;
  }

  push(byte: number): void {
    if (this.closed) return;
    this.onByte?.(byte);
    if (this.used === this.cap) return;
    if (this.used === this.buffer.length) {
      const bigger = new Uint8Array(Math.min(this.cap, this.buffer.length * 2));
      bigger.set(this.buffer);
      this.buffer = bigger;
    }
    this.buffer[this.used++] = byte;
  }

  get length(): number {
    return this.used;
  }

  bytes(): Uint8Array {
    return this.buffer.slice(0, this.used);
  }

  text(): string {
    return new TextDecoder("latin1").decode(this.buffer.subarray(0, this.used));
  }
}

/** QEMU's debugcon: every byte written goes to the sink; reads return 0xE9 (how guests detect it). */
export class DebugConsole implements PortDevice {
  private readonly sink: ByteSink;

  constructor(sink: ByteSink) {
    this.sink = sink;
  }

  ioRead(_offset: number, _width: Width): number {
    return DEBUGCON_PORT;
  }

  ioWrite(_offset: number, _width: Width, value: number): void {
    this.sink.push(value & 0xff);
  }
}

/** QEMU's isa-debug-exit: writing v asks the host to end with status (v << 1) | 1. */
export class DebugExit implements PortDevice {
  private readonly onExit: (status: number) => void;

  constructor(onExit: (status: number) => void) {
    this.onExit = onExit;
  }

  ioRead(_offset: number, _width: Width): number {
    return 0;
  }

  ioWrite(_offset: number, _width: Width, value: number): void {
    // Computed in floating point: a 32-bit value shifted left does not fit in an int32.
    this.onExit((value >>> 0) * 2 + 1);
  }
}

/** Line status: transmit holding register empty. */
const LSR_THR_EMPTY = 0x20;
/** Line status: transmitter (shift register) empty. */
const LSR_TRANSMITTER_EMPTY = 0x40;
/** Line control: divisor latch access bit; offsets 0 and 1 become the baud divisor. */
const LCR_DLAB = 0x80;
/** Interrupt identification: no interrupt pending. */
const IIR_NONE = 0x01;

/**
 * A 16550 reduced to what polled output needs: THR writes go to the sink and the line status
 * always says the transmitter is empty. Registers a driver writes read back; nothing interrupts.
 */
export class SerialTransmitter implements PortDevice {
  private readonly sink: ByteSink;
  private readonly registers = new Uint8Array(8);
  private readonly divisor = new Uint8Array(2);

  constructor(sink: ByteSink) {
    this.sink = sink;
  }

  ioRead(offset: number, _width: Width): number {
    const dlab = (this.registers[3]! & LCR_DLAB) !== 0;
    switch (offset) {
      case 0:
        return dlab ? this.divisor[0]! : 0;
      case 1:
        return dlab ? this.divisor[1]! : this.registers[1]!;
      case 2:
        return IIR_NONE;
      case 5:
        return LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
      case 6:
        return 0;
      default:
        return this.registers[offset]!;
    }
  }

  ioWrite(offset: number, _width: Width, value: number): void {
    const dlab = (this.registers[3]! & LCR_DLAB) !== 0;
    if (offset <= 1 && dlab) this.divisor[offset] = value;
    else if (offset === 0) this.sink.push(value & 0xff);
    else if (offset !== 2 && offset !== 5 && offset !== 6) this.registers[offset] = value;
  }
}

/** How a flat binary is entered. */
export type FlatEntry =
  | { readonly mode: "real"; readonly cs: number; readonly ip: number; readonly registers?: GeneralRegisters }
  | { readonly mode: "protected32"; readonly eip: number; readonly registers?: GeneralRegisters };

export interface BareMachineOptions {
  /** RAM size in bytes from address 0 (whole 4 KiB pages). */
  readonly ramBytes: number;
  readonly createCpu: BareCpuFactory;
  /** Cap on captured output per device (default 64 MiB). */
  readonly outputCap?: number;
}

/** Instructions per CPU slice: exit requests and shutdowns are noticed at slice boundaries. */
const SLICE = 10_000;

export class BareMachine {
  readonly memory = new PhysicalMemory();
  readonly ports = new PortBus();
  readonly cpu: BareCpu;
  readonly debugcon: ByteSink;
  readonly serial: ByteSink;
  readonly ramBytes: number;
  private exitStatus: number | undefined;
  private shutdown: string | undefined;

  constructor(options: BareMachineOptions) {
    this.ramBytes = options.ramBytes;
    this.memory.addRam("ram", 0, options.ramBytes);
    this.debugcon = new ByteSink(options.outputCap);
    this.serial = new ByteSink(options.outputCap);
    this.ports.register("debugcon", DEBUGCON_PORT, 1, new DebugConsole(this.debugcon));
    this.ports.register(
      "debug-exit",
      DEBUG_EXIT_PORT,
      4,
      new DebugExit((status) => {
        // The first request wins: later writes happen only in the instructions left in the slice.
        this.exitStatus ??= status;
        // Instructions left in the slice may still run (without requestStop); their output is not
        // part of the run, as on QEMU, which exits at once.
        this.debugcon.close();
        this.serial.close();
        this.cpu.requestStop?.();
      }),
    );
    this.ports.register("com1", COM1_PORT, 8, new SerialTransmitter(this.serial));
    this.cpu = options.createCpu({
      memory: this.memory,
      ports: this.ports,
      onShutdown: (reason) => {
        this.shutdown ??= reason;
        this.cpu.requestStop?.();
      },
    });
  }

  /** Loads a multiboot kernel and puts the CPU at its entry point with EAX/EBX as the spec says. */
  loadMultiboot(
    image: Uint8Array,
    options: Partial<MultibootOptions> = {},
  ): { entry: number; mbiAddress: number } {
    const result = loadMultiboot(this.memory, image, { memoryMap: pcMemoryMap(this.ramBytes), ...options });
    this.cpu.enterFlatProtectedMode(result.entry, {
      eax: MULTIBOOT_BOOTLOADER_MAGIC,
      ebx: result.mbiAddress,
    });
    return result;
  }

  /** Copies a flat binary to `address` and enters it as `entry` says. */
  loadFlat(image: Uint8Array, address: number, entry: FlatEntry): void {
    if (address < 0 || address + image.length > this.ramBytes) {
      throw new RangeError(
        `flat binary of ${image.length} bytes at 0x${address.toString(16)} does not fit in ${this.ramBytes} bytes of RAM`,
      );
    }
    this.memory.writeBytes(address, image);
    if (entry.mode === "real")
      this.cpu.enterRealMode(entry.cs & 0xffff, entry.ip & 0xffff, entry.registers ?? {});
    else this.cpu.enterFlatProtectedMode(entry.eip >>> 0, entry.registers ?? {});
  }

  /** Runs until debug-exit, a halt, a triple fault or `budget` instructions. */
  run(budget: number): BareRunResult {
    let instructions = 0;
    let reason: BareStopReason = "budget";
    while (instructions < budget) {
      const ran = this.cpu.run(Math.min(SLICE, budget - instructions));
      instructions += ran;
      if (this.exitStatus !== undefined) {
        reason = "debug-exit";
        break;
      }
      if (this.shutdown !== undefined) {
        reason = "triple-fault";
        break;
      }
      if (this.cpu.halted) {
        // Nothing in this machine raises an interrupt, so a halt is final either way.
        reason = "halted";
        break;
      }
      if (ran === 0) break;
    }
    return {
      reason,
      exitStatus: reason === "debug-exit" ? this.exitStatus : undefined,
      interruptsEnabled: this.cpu.interruptsEnabled(),
      detail: this.shutdown ?? "",
      instructions,
      debugcon: this.debugcon.bytes(),
      serial: this.serial.bytes(),
    };
  }
}

/** Builds a machine, loads a multiboot kernel and runs it: the one-call form for tests. */
export function runMultiboot(
  image: Uint8Array,
  options: {
    ramBytes?: number;
    budget: number;
    createCpu: BareCpuFactory;
    multiboot?: Partial<MultibootOptions>;
  },
): BareRunResult {
  const machine = new BareMachine({ ramBytes: options.ramBytes ?? 32 << 20, createCpu: options.createCpu });
  machine.loadMultiboot(image, options.multiboot);
  return machine.run(options.budget);
}

/** The result of looking for tsvisor's CPU: a factory, or why it cannot be used yet. */
export type CpuLookup = { readonly factory: BareCpuFactory } | { readonly missing: string };

/** Segment cache as the CPU takes it (src/x86/cpu.ts SegmentState). */
interface SegmentCache {
  selector: number;
  base: number;
  limit: number;
  /** Descriptor bits 8-23 of the high dword: type, S, DPL, P, AVL, L, D/B, G. */
  attributes: number;
}

/** The part of src/x86/cpu.ts's public API the adapter uses. */
interface TsvisorCpu {
  run(maxInstructions: number): number;
  reset(): void;
  readonly halted: boolean;
  eip: number;
  eflags: number;
  setReg32(index: number, value: number): void;
  getReg32?(index: number): number;
  setSegment(index: number, segment: SegmentCache): void;
  getSegment?(index: number): SegmentCache;
  setCr(n: number, value: number): void;
  trace?: ((cpu: TsvisorCpu) => void) | undefined;
  instructionBytes?(max?: number): number[];
}

/** Descriptor attribute bit D/B (bit 14 of the attribute word): 32-bit code segment. */
const ATTR_DEFAULT_BIG = 0x4000;

/** Segment register indices in the CPU (ES, CS, SS, DS, FS, GS). */
const SEGMENT_ES = 0;
const SEGMENT_CS = 1;
const SEGMENT_GS = 5;
/** Accessed read/write data, present, DPL 0. */
const ATTR_DATA = 0x93;
/** Accessed execute/read code, present, DPL 0. */
const ATTR_CODE = 0x9b;
/** Descriptor D/B and G bits: 32-bit, 4 KiB granular. */
const ATTR_BIG_PAGES = 0xc000;
/** CR0: protection enable and extension type (a 387-compatible FPU). */
const CR0_PE_ET = 0x11;
/** EFLAGS with only the always-one bit 1 set. */
const EFLAGS_FIXED = 0x2;
/** EFLAGS.IF. */
const EFLAGS_IF = 0x200;
const REGISTER_ORDER = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] as const;

function setRegisters(cpu: TsvisorCpu, registers: GeneralRegisters): void {
  REGISTER_ORDER.forEach((name, i) => {
    cpu.setReg32(i, (registers[name] ?? 0) >>> 0);
  });
}

/** Puts tsvisor's CPU into the entry states the runner offers. */
export function adaptTsvisorCpu(cpu: TsvisorCpu): BareCpu {
  const canTrace =
    typeof cpu.getReg32 === "function" &&
    typeof cpu.getSegment === "function" &&
    typeof cpu.instructionBytes === "function";
  const setTrace = (hook: ((state: TraceState) => void) | undefined): void => {
    cpu.trace = hook
      ? (c) => {
          const code = c.getSegment!(SEGMENT_CS);
          hook({
            cs: code.selector,
            eip: c.eip >>> 0,
            code32: (code.attributes & ATTR_DEFAULT_BIG) !== 0,
            bytes: c.instructionBytes!(15),
            registers: REGISTER_ORDER.map((_, i) => c.getReg32!(i)),
            eflags: c.eflags >>> 0,
          });
        }
      : undefined;
  };
  return {
    ...(canTrace ? { setTrace } : {}),
    run: (maxInstructions) => cpu.run(maxInstructions),
    get halted() {
      return cpu.halted;
    },
    interruptsEnabled: () => (cpu.eflags & EFLAGS_IF) !== 0,
    enterRealMode(cs, ip, registers) {
      cpu.reset();
      for (let s = SEGMENT_ES; s <= SEGMENT_GS; s++) {
        const attributes = s === SEGMENT_CS ? ATTR_CODE : ATTR_DATA;
        cpu.setSegment(s, { selector: cs, base: cs << 4, limit: 0xffff, attributes });
      }
      setRegisters(cpu, registers);
      cpu.eflags = EFLAGS_FIXED;
      cpu.eip = ip;
    },
    enterFlatProtectedMode(eip, registers) {
      cpu.reset();
      cpu.setCr(0, CR0_PE_ET);
      for (let s = SEGMENT_ES; s <= SEGMENT_GS; s++) {
        const code = s === SEGMENT_CS;
        cpu.setSegment(s, {
          selector: code ? 0x08 : 0x10,
          base: 0,
          limit: 0xffffffff,
          attributes: (code ? ATTR_CODE : ATTR_DATA) | ATTR_BIG_PAGES,
        });
      }
      setRegisters(cpu, registers);
      cpu.eflags = EFLAGS_FIXED;
      cpu.eip = eip;
    },
  };
}

/**
 * Finds the CPU in src/x86/cpu.ts (with the x87 unit from src/x86/fpu/fpu.ts when it loads) and
 * adapts it to BareCpu. Until the CPU can be loaded it returns `{ missing }`, and callers skip or
 * mark their tests `todo`.
 */
export async function loadTsvisorCpu(): Promise<CpuLookup> {
  // Held in variables so the type checker does not require the modules to exist yet.
  const cpuPath = "../x86/cpu.ts";
  const fpuPath = "../x86/fpu/fpu.ts";
  let module: Record<string, unknown>;
  try {
    module = (await import(cpuPath)) as Record<string, unknown>;
  } catch (error) {
    return { missing: `src/x86/cpu.ts cannot be loaded: ${(error as Error).message.split("\n")[0]}` };
  }
  const Cpu = module.Cpu as (new (options: object) => TsvisorCpu) | undefined;
  if (typeof Cpu !== "function") return { missing: "src/x86/cpu.ts exports no Cpu class" };
  let Fpu: (new () => object) | undefined;
  try {
    Fpu = ((await import(fpuPath)) as Record<string, unknown>).Fpu as (new () => object) | undefined;
  } catch {
    Fpu = undefined;
  }
  try {
    const probe = new Cpu({ memory: new PhysicalMemory(), ports: new PortBus() });
    const needed = ["run", "reset", "setReg32", "setSegment", "setCr"] as const;
    const absent = needed.filter((name) => typeof probe[name] !== "function");
    if (absent.length > 0) return { missing: `Cpu lacks ${absent.join(", ")}` };
  } catch (error) {
    return { missing: `new Cpu() fails: ${(error as Error).message.split("\n")[0]}` };
  }
  return {
    factory: (environment) =>
      adaptTsvisorCpu(new Cpu({ ...environment, ...(typeof Fpu === "function" ? { fpu: new Fpu() } : {}) })),
  };
}
