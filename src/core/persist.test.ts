import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  assertPlainData,
  field,
  loadVersioned,
  type Persistent,
  StateError,
  saveVersioned,
} from "./persist.ts";

interface CounterStateV2 {
  count: number;
  label: string;
  history: Uint8Array;
}

/** A component whose state grew a field in version 2. */
class Counter implements Persistent<CounterStateV2> {
  readonly stateVersion = 2;
  count = 0;
  label = "default";
  history = new Uint8Array(4);

  saveState(): CounterStateV2 {
    return { count: this.count, label: this.label, history: this.history.slice() };
  }

  loadState(state: CounterStateV2, version: number): void {
    const s = state as unknown as Record<string, unknown>;
    this.count = field(s, "count", "number");
    this.label = version >= 2 ? field(s, "label", "string") : "default";
    this.history = state.history instanceof Uint8Array ? state.history.slice() : new Uint8Array(4);
  }
}

describe("persistence", () => {
  it("round-trips state through structured clone", () => {
    const a = new Counter();
    a.count = 7;
    a.label = "x";
    a.history[2] = 9;
    const saved = structuredClone(saveVersioned(a));
    const b = new Counter();
    loadVersioned(b, saved, "counter");
    assert.deepEqual(b.saveState(), a.saveState());
    a.history[2] = 1;
    assert.equal(b.history[2], 9, "restored state does not share memory with the original");
  });

  it("loads an older version with defaults", () => {
    const b = new Counter();
    loadVersioned(b, { version: 1, state: { count: 3, history: new Uint8Array(4) } }, "counter");
    assert.equal(b.count, 3);
    assert.equal(b.label, "default");
  });

  it("refuses newer versions, missing versions and wrong field types with StateError", () => {
    const b = new Counter();
    assert.throws(() => loadVersioned(b, { version: 3, state: {} }, "counter"), /newer than this build/);
    assert.throws(() => loadVersioned(b, { state: {} } as never, "counter"), StateError);
    assert.throws(
      () => loadVersioned(b, { version: 2, state: { count: "7" } }, "counter"),
      /'count' should be a number/,
    );
    assert.throws(
      () => loadVersioned(b, { version: 2, state: { count: Number.NaN } }, "counter"),
      StateError,
    );
  });

  it("accepts only plain data", () => {
    assertPlainData({ a: [1, "x", true, null, new Int32Array(2)], b: { c: 1 } });
    assert.throws(() => assertPlainData({ f: () => 1 }), /state\.f is a function/);
    assert.throws(() => assertPlainData({ m: new Map() }), /state\.m is a Map/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.throws(() => assertPlainData(cyclic), /cycle/);
    assert.throws(() => assertPlainData([1n]), /bigint/);
  });
});
