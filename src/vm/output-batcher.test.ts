import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FLUSH_BYTES, FLUSH_MS, LINE_BURST, LINE_GAP_MS, OutputBatcher } from "./output-batcher.ts";

describe("OutputBatcher", () => {
  it("gathers single bytes and chunks, in order, into one batch delivered after a short delay", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const batches: Uint8Array[] = [];
    const batcher = new OutputBatcher("serial", (data) => batches.push(data));
    batcher.writeByte(0x61);
    batcher.write(Uint8Array.of(0x62, 0x63));
    batcher.writeByte(0x64);
    assert.equal(batches.length, 0, "nothing is sent before the delay");
    t.mock.timers.tick(FLUSH_MS);
    assert.deepEqual(batches, [Uint8Array.of(0x61, 0x62, 0x63, 0x64)]);
    t.mock.timers.tick(FLUSH_MS * 10);
    assert.equal(batches.length, 1, "an empty batch is never sent");
  });

  it("sends a full batch at once, byte by byte or in chunks, and the rest after the delay", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    for (const how of ["bytes", "chunk"] as const) {
      const batches: Uint8Array[] = [];
      const batcher = new OutputBatcher("debugcon", (data) => batches.push(data));
      // No line ends, which go out at once (next test).
      const data = Uint8Array.from({ length: FLUSH_BYTES + 10 }, (_, i) => 0x61 + (i % 26));
      if (how === "bytes") for (const b of data) batcher.writeByte(b);
      else batcher.write(data);
      assert.equal(batches.length, 1, how);
      assert.deepEqual(batches[0], data.subarray(0, FLUSH_BYTES), how);
      t.mock.timers.tick(FLUSH_MS);
      assert.equal(batches.length, 2, how);
      assert.deepEqual(batches[1], data.subarray(FLUSH_BYTES), how);
    }
  });

  it("sends a line as soon as it ends, and batches lines beyond a few within the line gap", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    let clock = 1000;
    const batches: string[] = [];
    const batcher = new OutputBatcher(
      "serial",
      (data) => batches.push(Buffer.from(data).toString()),
      () => clock,
    );
    for (const c of Buffer.from("ok\n")) batcher.writeByte(c);
    assert.deepEqual(batches, ["ok\n"], "a line ending by itself");
    clock += LINE_GAP_MS / 2;
    for (let n = 1; n < LINE_BURST; n++) batcher.write(Buffer.from(`${n}\n`));
    assert.equal(batches.length, LINE_BURST, "a few lines in quick succession, each at once");
    batcher.write(Buffer.from("a\nb\n"));
    batcher.writeByte(0x63);
    assert.equal(batches.length, LINE_BURST, "more lines within the gap wait");
    clock += LINE_GAP_MS;
    batcher.write(Buffer.from("\nd"));
    assert.deepEqual(
      batches.slice(LINE_BURST),
      ["a\nb\nc\nd"],
      "a chunk holding a line end, once the gap has passed",
    );
    t.mock.timers.tick(FLUSH_MS);
    assert.equal(batches.length, LINE_BURST + 1, "nothing was left for the delay");
    batcher.writeByte(0x65);
    t.mock.timers.tick(FLUSH_MS);
    assert.deepEqual(batches.at(-1), "e", "an unfinished line still goes out after the delay");
  });

  it("delivers each batch as its own array, untouched by later output", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const batches: Uint8Array[] = [];
    const batcher = new OutputBatcher("serial", (data) => batches.push(data));
    batcher.writeByte(1);
    batcher.flush();
    batcher.writeByte(2);
    batcher.flush();
    assert.deepEqual(batches, [Uint8Array.of(1), Uint8Array.of(2)]);
  });
});
