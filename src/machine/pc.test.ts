import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PortBus } from "../core/bus.ts";
import { buildPc } from "./pc.ts";
import { testPc } from "./test-support.ts";

/** A board without firmware or kernel: enough to drive its ports from the test. */
function bareBoard(jit?: "off" | "on") {
  const machine = buildPc(testPc({ ...(jit !== undefined ? { jit } : {}), memoryBytes: 16 << 20 }));
  return { machine, ports: (machine as unknown as { ports: PortBus }).ports };
}

describe("Pc output streams", () => {
  it("hands bytes written to COM1 and port 0xE9 to a byte sink one number at a time", () => {
    const { machine, ports } = bareBoard();
    const serial: number[] = [];
    const debugcon: number[] = [];
    const chunks: Uint8Array[] = [];
    machine.setOutput("serial", { writeByte: (b) => serial.push(b), write: (d) => chunks.push(d) });
    machine.setOutput("debugcon", { writeByte: (b) => debugcon.push(b), write: (d) => chunks.push(d) });
    for (const b of [0x68, 0x69, 0x0a]) ports.write(0x3f8, 1, b);
    ports.write(0xe9, 1, 0x41);
    ports.write(0xe9, 1, 0xff);
    assert.deepEqual(serial, [0x68, 0x69, 0x0a]);
    assert.deepEqual(debugcon, [0x41, 0xff]);
    assert.deepEqual(chunks, []);
  });

  it("gives a plain function sink each byte as its own array, and nothing once unset", () => {
    const { machine, ports } = bareBoard();
    const received: Uint8Array[] = [];
    machine.setOutput("debugcon", (d) => received.push(d));
    ports.write(0xe9, 1, 0x41);
    ports.write(0xe9, 1, 0x42);
    assert.deepEqual(received, [Uint8Array.of(0x41), Uint8Array.of(0x42)]);
    assert.notEqual(received[0], received[1]);
    machine.setOutput("debugcon", undefined);
    ports.write(0xe9, 1, 0x43);
    assert.equal(received.length, 2);
  });

  it("writes monitor-started port traces to the trace sink as whole lines", () => {
    const { machine, ports } = bareBoard();
    let trace = "";
    machine.setOutput("trace", {
      write: (d) => (trace += Buffer.from(d).toString("latin1")),
      writeByte() {},
    });
    machine.monitor("trace ports on");
    ports.write(0xe9, 1, 0x41);
    assert.match(trace, /^port out 00e9 8-bit 41 debugcon\n$/);
  });

  it("writes each translation's source to the trace sink while trace jit is on", () => {
    assert.match(bareBoard("off").machine.monitor("trace jit on"), /translator is off/);
    const { machine } = bareBoard("on");
    let trace = "";
    machine.setOutput("trace", {
      write: (d) => (trace += Buffer.from(d).toString("latin1")),
      writeByte() {},
    });
    assert.equal(machine.monitor("trace jit on"), "translation trace on");
    const jit = (
      machine as unknown as { cpu: { jit: { onTranslation?: (p: number, n: number, s: string) => void } } }
    ).cpu.jit;
    jit.onTranslation?.(0x1000, 3, "function translated() {}");
    assert.equal(trace, "jit 1000 3 instructions\nfunction translated() {}\n");
    machine.monitor("trace jit off");
    assert.equal(jit.onTranslation, undefined);
  });
});
