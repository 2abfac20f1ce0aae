import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { assemble, makeMachine, runToHalt, startFlat32 } from "../x86/test-support.ts";
import { renderMonitor } from "./monitor.ts";

describe("monitor: info jit", () => {
  const loop = assemble("mov ecx, 1000\nl: add eax, ecx\ndec ecx\njnz l\nhlt", 32, 0x10000);

  it("shows the translator's counters after it has translated code", () => {
    const m = makeMachine({ jit: "force" });
    startFlat32(m, loop);
    runToHalt(m.cpu);
    const text = renderMonitor({ cpu: m.cpu, memory: m.memory, screenshot: () => undefined }, "info jit");
    assert.match(text, /^binary translator: force/);
    const translations = Number(/translations (\d+)/.exec(text)?.[1]);
    assert.ok(translations >= 1, text);
    assert.match(text, /invalidations \d+, cache flushes \d+, assumption misses \d+/);
    assert.match(text, /time translating \d+ ms/);
  });

  it("says when the interpreter runs alone", () => {
    const m = makeMachine({ jit: "off" });
    const text = renderMonitor({ cpu: m.cpu, memory: m.memory, screenshot: () => undefined }, "info jit");
    assert.equal(text, "binary translator: off (interpreter only)");
  });
});
