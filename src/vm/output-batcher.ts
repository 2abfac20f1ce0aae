// Batches a VM's output bytes into messages: one message per byte would swamp the owner's event
// loop, so bytes gather until a batch is full or a short delay has passed since the first one. A
// line goes out as soon as it ends, unless LINE_BURST lines already went out that way in the
// current window of LINE_GAP_MS: a console shows each line when the guest prints it (the delay
// waits for the run loop's next turn, 5 to 10 ms late), a few lines printed together (a
// benchmark's phase markers) are not held back, and a guest printing lines faster than that still
// gets them batched.
import type { OutputSink, OutputStream } from "../machine/machine.ts";

export const FLUSH_BYTES = 4096;
export const FLUSH_MS = 5;
export const LINE_GAP_MS = 1;
export const LINE_BURST = 4;

export class OutputBatcher implements OutputSink {
  readonly stream: OutputStream;
  private readonly deliver: (data: Uint8Array) => void;
  private buffer = new Uint8Array(FLUSH_BYTES);
  private length = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** When the current line-gap window began, and the lines sent at once in it. */
  private windowStart = Number.NEGATIVE_INFINITY;
  private linesInWindow = 0;

  /**
   * `deliver` receives each batch as a fresh array it may keep or transfer; `now` is the clock in
   * milliseconds the line gap is measured with.
   */
  constructor(
    stream: OutputStream,
    deliver: (data: Uint8Array) => void,
    now: () => number = () => performance.now(),
  ) {
    this.stream = stream;
    this.deliver = deliver;
    this.now = now;
  }

  writeByte(byte: number): void {
    this.buffer[this.length++] = byte;
    if (this.length === FLUSH_BYTES) this.flush();
    else if (byte === 10) this.lineEnded();
    if (this.length > 0) this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  write(data: Uint8Array): void {
    let ended = false;
    for (let i = 0; i < data.length; i++) {
      const byte = data[i]!;
      this.buffer[this.length++] = byte;
      if (this.length === FLUSH_BYTES) this.flush();
      if (byte === 10) ended = true;
    }
    if (ended && this.length > 0) this.lineEnded();
    if (this.length > 0) this.timer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.length === 0) return;
    const data = this.buffer.slice(0, this.length);
    this.length = 0;
    this.deliver(data);
  }

  private lineEnded(): void {
    const now = this.now();
    if (now - this.windowStart >= LINE_GAP_MS) {
      this.windowStart = now;
      this.linesInWindow = 0;
    }
    if (this.linesInWindow < LINE_BURST) {
      this.linesInWindow++;
      this.flush();
    }
  }
}
