// Batches a VM's output bytes into messages: one message per byte would swamp the owner's event
// loop, so bytes gather until a batch is full or a short delay has passed since the first one.
import type { OutputSink, OutputStream } from "../machine/machine.ts";

export const FLUSH_BYTES = 4096;
export const FLUSH_MS = 5;

export class OutputBatcher implements OutputSink {
  readonly stream: OutputStream;
  private readonly deliver: (data: Uint8Array) => void;
  private buffer = new Uint8Array(FLUSH_BYTES);
  private length = 0;
  private timer: NodeJS.Timeout | undefined;

  /** `deliver` receives each batch as a fresh array it may keep or transfer. */
  constructor(stream: OutputStream, deliver: (data: Uint8Array) => void) {
    this.stream = stream;
    this.deliver = deliver;
  }

  writeByte(byte: number): void {
    this.buffer[this.length++] = byte;
    if (this.length === FLUSH_BYTES) this.flush();
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  write(data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) {
      this.buffer[this.length++] = data[i]!;
      if (this.length === FLUSH_BYTES) this.flush();
    }
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.length === 0) return;
    const data = this.buffer.slice(0, this.length);
    this.length = 0;
    this.deliver(data);
  }
}
