import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FLUSH_BYTES, FLUSH_MS, OutputBatcher } from "./output-batcher.ts";

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
      const data = Uint8Array.from({ length: FLUSH_BYTES + 10 }, (_, i) => i & 0xff);
      if (how === "bytes") for (const b of data) batcher.writeByte(b);
      else batcher.write(data);
      assert.equal(batches.length, 1, how);
      assert.deepEqual(batches[0], data.subarray(0, FLUSH_BYTES), how);
      t.mock.timers.tick(FLUSH_MS);
      assert.equal(batches.length, 2, how);
      assert.deepEqual(batches[1], data.subarray(FLUSH_BYTES), how);
    }
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
