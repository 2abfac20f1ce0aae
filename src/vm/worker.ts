// A VM's worker thread: builds the machine from plain configuration and runs it, off the owner's
// event loop, so a busy guest never stalls the host process. Output is batched per stream
// (output-batcher.ts).
import { parentPort, workerData } from "node:worker_threads";
import { ConfigError, OUTPUT_STREAMS } from "../machine/machine.ts";
import { buildPc } from "../machine/pc.ts";
import type { ExitReason } from "../machine/run-loop.ts";
import { OutputBatcher } from "./output-batcher.ts";
import type { FromWorker, ToWorker, WorkerData } from "./protocol.ts";

const port = parentPort;
if (!port) throw new Error("vm/worker.ts must run in a worker thread");

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

async function main(): Promise<void> {
  const { config, options } = workerData as WorkerData;
  const machine = buildPc(config);
  const batchers = OUTPUT_STREAMS.map(
    (stream) =>
      new OutputBatcher(stream, (data) =>
        send({ type: "output", stream, data }, [data.buffer as ArrayBuffer]),
      ),
  );
  for (const b of batchers) machine.setOutput(b.stream, b);
  port!.on("message", (message: ToWorker) => {
    switch (message.type) {
      case "input":
        machine.loop.post(() => machine.serialInput(message.data));
        break;
      case "pause":
        machine.loop.pause();
        break;
      case "resume":
        machine.loop.resume();
        break;
      case "stop":
        machine.loop.stop({ kind: "stopped", detail: "stopped by the user" });
        break;
      case "monitor":
        machine.loop.post(() =>
          send({ type: "reply", id: message.id, text: machine.monitor(message.command) }),
        );
        break;
      case "screenshot":
        machine.loop.post(() => {
          const png = machine.screenshot();
          send({
            type: "reply",
            id: message.id,
            text: png ? "" : "this machine has no display",
            ...(png ? { png } : {}),
          });
        });
        break;
    }
  });
  send({ type: "ready" });
  const reason = await machine.run();
  for (const b of batchers) b.flush();
  const screenshot = options.screenshotOnExit ? machine.screenshot() : undefined;
  send({ type: "exit", reason, ...(screenshot ? { screenshot } : {}) });
  port!.close();
}

main().catch((err: unknown) => {
  // Errors building the machine come from its configuration (a missing or malformed file);
  // anything else escaping the run loop is a bug, reported with its stack.
  const detail = err instanceof Error ? err.message : String(err);
  const reason: ExitReason =
    err instanceof ConfigError
      ? { kind: "config-error", detail }
      : { kind: "error", detail: err instanceof Error ? (err.stack ?? detail) : detail };
  send({ type: "exit", reason });
  port!.close();
});
