// Messages between a VM's worker thread and its owner. Closed unions: each side switches on
// `type` and the compiler checks that every message is handled.
import type { MachineConfig, OutputStream } from "../machine/machine.ts";
import type { ExitReason } from "../machine/run-loop.ts";

export type ToWorker =
  | { type: "input"; data: Uint8Array }
  | { type: "pause" }
  | { type: "resume" }
  | { type: "stop" }
  | { type: "monitor"; id: number; command: string }
  | { type: "screenshot"; id: number };

export type FromWorker =
  | { type: "ready" }
  | { type: "output"; stream: OutputStream; data: Uint8Array }
  | { type: "reply"; id: number; text: string; png?: Uint8Array }
  | { type: "exit"; reason: ExitReason; screenshot?: Uint8Array };

export interface WorkerData {
  config: MachineConfig;
  options: VmOptions;
}

export interface VmOptions {
  /** Capture the display as PNG when the machine stops (for `run --screenshot`). */
  screenshotOnExit?: boolean;
}
