// The owner's handle on one VM running in its own worker thread.
import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import type { MachineConfig, OutputStream } from "../machine/machine.ts";
import type { ExitReason } from "../machine/run-loop.ts";
import type { FromWorker, ToWorker, VmOptions, WorkerData } from "./protocol.ts";

/** Old-generation heap limit of a VM's worker (MiB); the live set stays far below it. */
export const VM_HEAP_LIMIT_MB = 1024;

export interface VmEvents {
  output: [stream: OutputStream, data: Uint8Array];
  exit: [reason: ExitReason];
}

export class Vm extends EventEmitter<VmEvents> {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, (reply: { text: string; png?: Uint8Array }) => void>();
  /** Settles when the VM has stopped for good. */
  readonly exited: Promise<ExitReason>;

  /** The display when the VM stopped, if `screenshotOnExit` was asked for and there is one. */
  finalScreenshot: Uint8Array | undefined;

  constructor(config: MachineConfig, options: VmOptions = {}) {
    super();
    const data: WorkerData = { config, options };
    this.worker = new Worker(new URL("./worker.ts", import.meta.url), {
      workerData: data,
      // Each VM's JavaScript heap (devices, decoded and translated code) is capped: without a cap
      // V8 lets garbage from discarded translations grow with the host's free memory. Guest RAM
      // is a SharedArrayBuffer outside this limit.
      resourceLimits: { maxOldGenerationSizeMb: VM_HEAP_LIMIT_MB },
    });
    let settle!: (r: ExitReason) => void;
    this.exited = new Promise((resolve) => {
      settle = resolve;
    });
    let reported = false;
    const finish = (reason: ExitReason) => {
      if (reported) return;
      reported = true;
      for (const reply of this.pending.values()) reply({ text: "the VM has stopped" });
      this.pending.clear();
      this.emit("exit", reason);
      settle(reason);
    };
    this.worker.on("message", (message: FromWorker) => {
      switch (message.type) {
        case "ready":
          break;
        case "output":
          this.emit("output", message.stream, message.data);
          break;
        case "reply": {
          const reply = this.pending.get(message.id);
          this.pending.delete(message.id);
          reply?.(message.png ? { text: message.text, png: message.png } : { text: message.text });
          break;
        }
        case "exit":
          this.finalScreenshot = message.screenshot;
          finish(message.reason);
          break;
      }
    });
    this.worker.on("error", (err: Error) => finish({ kind: "error", detail: err.stack ?? err.message }));
    this.worker.on("exit", (code) =>
      finish({ kind: "error", detail: `the VM's worker thread ended (status ${code})` }),
    );
  }

  /** Sends bytes to the guest's serial console. */
  input(data: Uint8Array): void {
    this.post({ type: "input", data });
  }

  pause(): void {
    this.post({ type: "pause" });
  }

  resume(): void {
    this.post({ type: "resume" });
  }

  stop(): void {
    this.post({ type: "stop" });
  }

  monitor(command: string): Promise<string> {
    return this.request({ type: "monitor", id: 0, command }).then((r) => r.text);
  }

  screenshot(): Promise<Uint8Array> {
    return this.request({ type: "screenshot", id: 0 }).then((r) => {
      if (!r.png) throw new Error(r.text || "no screenshot");
      return r.png;
    });
  }

  /** Ends the worker at once (the VM's state is lost). */
  async kill(): Promise<void> {
    await this.worker.terminate();
  }

  private request(message: Extract<ToWorker, { id: number }>): Promise<{ text: string; png?: Uint8Array }> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.post({ ...message, id });
    });
  }

  private post(message: ToWorker): void {
    this.worker.postMessage(message);
  }
}
