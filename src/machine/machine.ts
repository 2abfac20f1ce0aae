// What a built machine offers to the VM layer, independent of the board it models.
import type { ExitReason, RunLoop } from "./run-loop.ts";

/** Plain description of a VM: everything needed to build it, nothing live. Structured-clonable. */
export interface MachineConfig {
  /** Guest RAM in bytes. */
  memoryBytes: number;
  /** Firmware image (SeaBIOS bios.bin / bios-256k.bin); 64, 128 or 256 KiB. */
  bios?: string;
  /** VGA option ROM (vgabios-stdvga.bin). */
  vgaBios?: string;
  /** Direct kernel boot: a bzImage or a multiboot kernel. */
  kernel?: string;
  initrd?: string;
  append?: string;
  /**
   * Start a --kernel Linux without the firmware (Firecracker style: the VMM lays out the zero
   * page and enters the 32-bit entry point). By default the firmware runs first and starts the
   * kernel through an option ROM, as QEMU's -kernel does, so the BIOS sets up the display.
   */
  directBoot?: boolean;
  disks: { path: string; snapshot: boolean }[];
  cdrom?: string;
  /** Boot order: "c" hard disk, "d" CD-ROM. */
  boot: "c" | "d";
  /** QEMU's isa-debug-exit at port 0xF4. */
  debugExit: boolean;
  /** QEMU's pc-testdev. */
  pcTestdev: boolean;
  /** Stop instead of rebooting when the guest resets. */
  noReboot: boolean;
  /** "realtime": guest time follows the host; "deterministic": time counts instructions. */
  clock: "realtime" | "deterministic";
  /** Stop after this many seconds of guest time. */
  timeoutSeconds?: number;
  /** The binary translator: "off", "on" (hot code) or "force" (all code); default from TSVISOR_JIT, else on. */
  jit?: "off" | "on" | "force";
}

/** Byte streams a machine produces: the guest's, and `trace` (port and instruction traces). */
export type OutputStream = "serial" | "debugcon" | "firmware-log" | "trace";
export const OUTPUT_STREAMS: readonly OutputStream[] = ["serial", "debugcon", "firmware-log", "trace"];

/**
 * Where an output stream goes. Devices produce their output a byte at a time (a UART's transmit
 * register, port 0xE9), so a sink that also takes single bytes spares an array per byte.
 */
export interface OutputSink {
  write(data: Uint8Array): void;
  writeByte(byte: number): void;
}

export interface Machine {
  readonly loop: RunLoop;
  /** Bytes typed by the user for the serial console (COM1). */
  serialInput(data: Uint8Array): void;
  /**
   * Where the machine's output streams go (undefined discards). A plain function receives each
   * byte devices emit as its own one-byte array; an `OutputSink` receives it as a number.
   */
  setOutput(stream: OutputStream, sink: OutputSink | ((data: Uint8Array) => void) | undefined): void;
  /** A monitor command ("info registers", "x/8x 0x1000", "system_reset", ...); returns its text. */
  monitor(command: string): string;
  /** The display as PNG, if the machine has one. */
  screenshot(): Uint8Array | undefined;
  /** Runs the machine until it stops for good (resets are handled inside unless noReboot). */
  run(): Promise<ExitReason>;
}

/** The configuration cannot be built into a machine (missing file, bad image, too little RAM). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}
