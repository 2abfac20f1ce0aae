// The machine the tests build: a PC with no disks, time counted in instructions (so a run does
// the same at any host speed), a reset that stops instead of rebooting, and no test devices unless
// a test asks for one.
import type { MachineConfig } from "./machine.ts";

/** A test PC's configuration: these defaults under whatever `config` sets. */
export function testPc(config: Partial<MachineConfig> & Pick<MachineConfig, "memoryBytes">): MachineConfig {
  return {
    disks: [],
    boot: "c",
    debugExit: false,
    pcTestdev: false,
    noReboot: true,
    clock: "deterministic",
    ...config,
  };
}
