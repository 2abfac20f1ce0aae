// `tsvisor run`: boots one VM in a worker thread and attaches the terminal to its serial console.
import { accessSync, constants, createWriteStream, statSync, type WriteStream, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type MachineConfig, OUTPUT_STREAMS, type OutputStream } from "../../machine/machine.ts";
import { type ExitReason, exitStatus } from "../../machine/run-loop.ts";
import { Vm } from "../../vm/vm.ts";
import { CliError } from "../cli-error.ts";
import { parseSeconds, parseSize, parseStreamTarget, type StreamTarget } from "../options.ts";

export const HELP = `usage: tsvisor run [options]

Boots a PC virtual machine. With no kernel, disk, CD-ROM or --bios it boots the cached Debian
kernel and initramfs (fetching them first) with the terminal on the serial console.

  --kernel FILE         Linux bzImage (started through the firmware, as QEMU's -kernel) or
                        multiboot kernel (loaded directly)
  --initrd FILE         initial ramdisk for --kernel
  --append TEXT         kernel command line
  --direct-boot         start the --kernel without the firmware (the VMM lays out the boot
                        parameters and enters the 32-bit entry point, as Firecracker does)
  -m, --memory SIZE     guest RAM: a number with K, M, G or T, e.g. 256M, 1G (a bare number is
                        MiB; default 256M, at least 1M, at most 3.5G)
  --disk FILE           raw hard-disk image (repeatable: primary master, then slave, ...)
  --snapshot            keep disk writes in memory; images are not modified
  --cdrom FILE          ISO image for the CD-ROM drive
  --boot c|d            boot from the hard disk (c) or the CD-ROM (d); default d with a
                        --cdrom and no --disk, else c
  --bios FILE           firmware image (default: Debian's SeaBIOS)
  --vga-bios FILE       VGA option ROM (default: Debian's vgabios-stdvga.bin)
  --serial TARGET       COM1: stdio (default), stderr, file:PATH or none
  --debugcon TARGET     QEMU debug console on port 0xE9: stdio, stderr, file:PATH or none
                        (default none)
  --firmware-log TARGET SeaBIOS's debug port 0x402: stdio, stderr, file:PATH or none
                        (default none)
  --trace TARGET        where monitor-started traces go (trace ports|unhandled|cpu|jit on):
                        stderr (default), stdio, file:PATH or none
  --debug-exit          QEMU's isa-debug-exit at port 0xF4 (writing v exits with (v<<1)|1)
  --pc-testdev          QEMU's pc-testdev
  --no-reboot           stop when the guest resets instead of rebooting
  --timeout SEC         stop after SEC seconds of guest time (exit status 124)
  --screenshot FILE     write the display as PNG when the VM stops
  --deterministic       guest time counts instructions instead of following the host clock
  --jit off|on|force    binary translator: off (interpreter only), on (hot code, the default),
                        force (translate all code at once; for testing)
  -h, --help            show this text

Console keys (with the terminal on the serial console): Ctrl-A x quits, Ctrl-A c toggles the
monitor (type help there), Ctrl-A h lists the keys, Ctrl-A Ctrl-A sends Ctrl-A. Piped input
goes to the guest as it is.

Exit status: 0 the guest powered off or the VM was stopped, 124 timeout, (v<<1)|1 a debug exit
with v, 3 a reset with --no-reboot, a triple fault or a halt with interrupts off, 2 bad input
(a missing or unreadable file, a malformed value, a kernel too large for --memory); one line on
stderr says why.`;

const DEFAULT_MEMORY = 256 << 20;

export async function run(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseRunArgs>;
  try {
    parsed = parseRunArgs(args);
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`run: ${(err as Error).message}`, 2);
  }
  const { values } = parsed;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const config = await buildConfig(values);
  const outputs: Record<OutputStream, StreamTarget> = {
    serial: parseStreamTarget(values.serial ?? "stdio", "--serial"),
    debugcon: parseStreamTarget(values.debugcon ?? "none", "--debugcon"),
    "firmware-log": parseStreamTarget(values["firmware-log"] ?? "none", "--firmware-log"),
    trace: parseStreamTarget(values.trace ?? "stderr", "--trace"),
  };
  const reason = await runAttached(config, outputs, values.screenshot);
  process.stderr.write(`${process.stdin.isTTY ? "\r\n" : ""}tsvisor: ${reason.detail}\n`);
  return exitStatus(reason);
}

/** The options `tsvisor run` takes, for `parseArgs`. */
export const RUN_OPTIONS = {
  kernel: { type: "string" },
  initrd: { type: "string" },
  append: { type: "string" },
  "direct-boot": { type: "boolean" },
  memory: { type: "string", short: "m" },
  disk: { type: "string", multiple: true },
  snapshot: { type: "boolean" },
  cdrom: { type: "string" },
  boot: { type: "string" },
  bios: { type: "string" },
  "vga-bios": { type: "string" },
  serial: { type: "string" },
  debugcon: { type: "string" },
  "firmware-log": { type: "string" },
  trace: { type: "string" },
  "debug-exit": { type: "boolean" },
  "pc-testdev": { type: "boolean" },
  "no-reboot": { type: "boolean" },
  timeout: { type: "string" },
  screenshot: { type: "string" },
  deterministic: { type: "boolean" },
  jit: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

function parseRunArgs(args: string[]) {
  return parseArgs({ args, strict: true, allowPositionals: false, options: RUN_OPTIONS });
}

type RunValues = ReturnType<typeof parseRunArgs>["values"];

/** Checks that a file the user named exists and is readable; one clear line if not. */
function readableFile(path: string, option: string): string {
  try {
    accessSync(path, constants.R_OK);
    if (!statSync(path).isFile()) throw new Error("not a regular file");
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message;
    throw new CliError(`${option} ${path}: ${why}`, 2);
  }
  return path;
}

async function buildConfig(values: RunValues): Promise<MachineConfig> {
  const memoryBytes = values.memory ? parseSize(values.memory, "memory size") : DEFAULT_MEMORY;
  if (memoryBytes < 1 << 20) throw new CliError(`memory size ${values.memory} is too small (at least 1M)`, 2);
  if (memoryBytes > 3.5 * 2 ** 30)
    throw new CliError(`memory size ${values.memory} is too large (at most 3.5G for now)`, 2);
  const boot = values.boot ?? (values.cdrom && !values.disk ? "d" : "c");
  if (boot !== "c" && boot !== "d")
    throw new CliError(`invalid --boot '${boot}': use c (hard disk) or d (CD-ROM)`, 2);
  if (values.initrd && !values.kernel) throw new CliError("--initrd needs --kernel", 2);
  if (values.append && !values.kernel) throw new CliError("--append needs --kernel", 2);
  const config: MachineConfig = {
    memoryBytes,
    disks: (values.disk ?? []).map((path) => ({
      path: readableFile(path, "--disk"),
      snapshot: values.snapshot ?? false,
    })),
    boot,
    debugExit: values["debug-exit"] ?? false,
    pcTestdev: values["pc-testdev"] ?? false,
    noReboot: values["no-reboot"] ?? false,
    clock: values.deterministic ? "deterministic" : "realtime",
  };
  if (values.jit !== undefined) {
    if (values.jit !== "off" && values.jit !== "on" && values.jit !== "force")
      throw new CliError(`invalid --jit '${values.jit}': use off, on or force`, 2);
    config.jit = values.jit;
  }
  if (values.timeout) config.timeoutSeconds = parseSeconds(values.timeout, "--timeout");
  if (values.kernel) config.kernel = readableFile(values.kernel, "--kernel");
  if (values.initrd) config.initrd = readableFile(values.initrd, "--initrd");
  if (values.append !== undefined) config.append = values.append;
  if (values["direct-boot"]) config.directBoot = true;
  if (values.cdrom) config.cdrom = readableFile(values.cdrom, "--cdrom");
  if (values.bios) config.bios = readableFile(values.bios, "--bios");
  if (values["vga-bios"]) config.vgaBios = readableFile(values["vga-bios"], "--vga-bios");
  if (!config.kernel && config.disks.length === 0 && !config.cdrom && !config.bios)
    await useDefaultGuest(config);
  if (!config.bios || !config.vgaBios) await useDefaultFirmware(config);
  return config;
}

/** The cached Debian kernel and initramfs, fetched first if missing. */
async function useDefaultGuest(config: MachineConfig): Promise<void> {
  const { defaultGuest } = await import("../default-guest.ts");
  const guest = await defaultGuest();
  config.kernel = guest.kernel;
  config.initrd = guest.initrd;
  config.append = guest.append;
}

/** Debian's SeaBIOS and VGA BIOS from the image cache, when the user named none. */
async function useDefaultFirmware(config: MachineConfig): Promise<void> {
  const { defaultFirmware } = await import("../default-guest.ts");
  const firmware = await defaultFirmware();
  config.bios ??= firmware.bios;
  config.vgaBios ??= firmware.vgaBios;
}

async function runAttached(
  config: MachineConfig,
  targets: Record<OutputStream, StreamTarget>,
  screenshot: string | undefined,
): Promise<ExitReason> {
  const vm = new Vm(config, { screenshotOnExit: screenshot !== undefined });
  const files: WriteStream[] = [];
  const sinks = {} as Record<OutputStream, ((d: Uint8Array) => void) | undefined>;
  for (const stream of OUTPUT_STREAMS) {
    const target = targets[stream];
    if (target.kind === "stdio") sinks[stream] = (d) => process.stdout.write(d);
    else if (target.kind === "stderr") sinks[stream] = (d) => process.stderr.write(d);
    else if (target.kind === "file") {
      const file = createWriteStream(target.path);
      file.on("error", (err) => {
        process.stderr.write(`tsvisor: ${stream} output ${target.path}: ${err.message}\n`);
        vm.stop();
      });
      files.push(file);
      sinks[stream] = (d) => file.write(d);
    }
  }
  vm.on("output", (stream, data) => sinks[stream]?.(data));
  const console = new ConsoleAttachment(vm, targets.serial.kind === "stdio");
  const reason = await vm.exited;
  console.detach();
  if (screenshot && vm.finalScreenshot) writeFileSync(screenshot, vm.finalScreenshot);
  await Promise.all(files.map((f) => new Promise((resolve) => f.end(resolve))));
  return reason;
}

const CTRL_A = 0x01;

/**
 * Connects the terminal to the guest's serial console. A terminal is put in raw mode with the
 * Ctrl-A escape prefix; piped input is streamed to the guest and the VM keeps running after EOF.
 */
class ConsoleAttachment {
  private readonly vm: Vm;
  private escape = false;
  private monitorMode = false;
  private line = "";
  private readonly tty: boolean;
  private readonly onData = (chunk: Buffer) => this.handle(chunk);

  constructor(vm: Vm, interactive: boolean) {
    this.vm = vm;
    this.tty = interactive && process.stdin.isTTY === true;
    if (this.tty) process.stdin.setRawMode(true);
    process.stdin.on("data", this.onData);
    process.stdin.resume();
  }

  detach(): void {
    process.stdin.off("data", this.onData);
    if (this.tty) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdin.unref?.();
  }

  private handle(chunk: Buffer): void {
    if (!this.tty) {
      this.vm.input(new Uint8Array(chunk));
      return;
    }
    const forward: number[] = [];
    for (const byte of chunk) {
      if (this.escape) {
        this.escape = false;
        const key = String.fromCharCode(byte).toLowerCase();
        if (key === "x") {
          this.vm.stop();
        } else if (key === "c") {
          this.monitorMode = !this.monitorMode;
          process.stdout.write(this.monitorMode ? "\r\n(tsvisor) " : "\r\n");
        } else if (key === "h") {
          process.stdout.write("\r\nCtrl-A x: quit  Ctrl-A c: monitor  Ctrl-A Ctrl-A: send Ctrl-A\r\n");
        } else if (byte === CTRL_A) {
          forward.push(CTRL_A);
        }
        continue;
      }
      if (byte === CTRL_A) {
        this.escape = true;
        continue;
      }
      if (this.monitorMode) this.monitorKey(byte);
      else forward.push(byte);
    }
    if (forward.length > 0) this.vm.input(Uint8Array.from(forward));
  }

  private monitorKey(byte: number): void {
    if (byte === 0x0d || byte === 0x0a) {
      const command = this.line.trim();
      this.line = "";
      process.stdout.write("\r\n");
      if (command === "quit" || command === "q") {
        this.vm.stop();
        return;
      }
      if (command === "") {
        process.stdout.write("(tsvisor) ");
        return;
      }
      this.vm.monitor(command).then((text) => {
        process.stdout.write(`${text.replace(/\n/g, "\r\n")}\r\n(tsvisor) `);
      });
    } else if (byte === 0x7f || byte === 0x08) {
      if (this.line.length > 0) {
        this.line = this.line.slice(0, -1);
        process.stdout.write("\b \b");
      }
    } else if (byte >= 0x20 && byte < 0x7f) {
      this.line += String.fromCharCode(byte);
      process.stdout.write(String.fromCharCode(byte));
    }
  }
}
