// Port scripts for device tests: the same accesses were recorded on QEMU's pc machine by a
// multiboot program, so a device model can be checked against QEMU's reads.
import type { PortBus } from "../core/bus.ts";

/**
 * Runs a port script: `oPP=VV` writes VV to port PP, `iPP` reads PP (`iPP&MM` masks the value
 * first), `flush` reads port 0x60 while port 0x64 says data is waiting. Returns the reads in hex.
 */
export function replayPortScript(bus: PortBus, script: string): string {
  const reads: string[] = [];
  for (const step of script.split(" ")) {
    if (step === "flush") {
      for (let i = 0; i < 32 && bus.in8(0x64) & 1; i++) bus.in8(0x60);
      continue;
    }
    const [, kind, port, arg] = /^([oi])([0-9a-f]+)(?:[=&]([0-9a-f]+))?$/.exec(step)!;
    const value = arg === undefined ? 0xff : Number.parseInt(arg, 16);
    if (kind === "o") bus.out8(Number.parseInt(port!, 16), value);
    else reads.push((bus.in8(Number.parseInt(port!, 16)) & value).toString(16).padStart(2, "0"));
  }
  return reads.join(" ");
}
