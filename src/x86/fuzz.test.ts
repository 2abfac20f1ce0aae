// Fuzz smoke test: random byte streams executed in real mode, 16-bit protected mode and 32-bit
// protected mode (ring 0 and ring 3, with and without paging). Whatever the bytes are, the host
// never throws and the CPU ends in an architectural state: running, halted or shut down, with EIP
// inside the code segment's limit.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CS } from "./flags.ts";
import { makeMachine, startProtected, startRealWithIvt, type TestMachine } from "./test-support.ts";

function xorshift(seed: number): () => number {
  let s = seed | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

/** Random bytes, biased towards prefixes, 0F and ModRM-heavy opcodes so more paths are reached. */
function randomCode(next: () => number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  const favourites = [
    0x0f, 0x66, 0x67, 0xf3, 0xf2, 0xf0, 0x26, 0x64, 0x8b, 0x89, 0xff, 0xf7, 0xc7, 0xcd, 0xcf,
  ];
  for (let k = 0; k < length; k++) {
    const r = next();
    out[k] = r % 5 === 0 ? favourites[(r >>> 8) % favourites.length]! : (r >>> 16) & 0xff;
  }
  return out;
}

function check(m: TestMachine, label: string): void {
  const cs = m.cpu.getSegment(CS);
  if (!m.cpu.isShutdown) {
    assert.ok(
      m.cpu.eip <= cs.limit || m.cpu.halted,
      `${label}: EIP ${m.cpu.eip} beyond CS limit ${cs.limit}`,
    );
  }
  assert.ok(Number.isInteger(m.cpu.eip) && m.cpu.eip >= 0, `${label}: EIP is a uint32`);
  // The state stays plain data that can be saved.
  structuredClone(m.cpu.saveState());
}

const SEEDS = Number(process.env.X86_FUZZ_SEEDS) || 120;
const STEPS = 400;

function fuzz(mode: "real" | "pm16" | "pm32" | "ring3" | "paged" | "v86"): void {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const next = xorshift(seed * 7919 + mode.length);
    const m = makeMachine({ interrupts: { acknowledge: () => 0x20 } });
    const code = randomCode(next, 256);
    if (mode === "real") {
      startRealWithIvt(m, code);
    } else {
      startProtected(m, code);
      if (mode === "pm16") {
        m.cpu.setSegment(CS, { selector: 0x30, base: 0, limit: 0xffff, attributes: 0x9b });
        m.cpu.eip = 0x8000;
        m.memory.writeBytes(0x8000, code);
      } else if (mode === "ring3") {
        m.cpu.setSegment(CS, { selector: 0x1b, base: 0, limit: 0xffffffff, attributes: 0xc0fb });
        for (const s of [0, 2, 3, 4, 5])
          m.cpu.setSegment(s, { selector: 0x23, base: 0, limit: 0xffffffff, attributes: 0xc0f3 });
      } else if (mode === "v86") {
        // Virtual-8086 mode at 0x1000:0 (the code copied there), IOPL 0 or 3 by seed.
        m.memory.writeBytes(0x10000, code);
        m.cpu.eflags = 0x20002 | (seed % 2 ? 0x3000 : 0);
        for (const s of [0, 1, 2, 3, 4, 5])
          m.cpu.setSegment(s, { selector: 0x1000, base: 0x10000, limit: 0xffff, attributes: 0xf3 });
        m.cpu.eip = 0;
        m.cpu.esp = 0xfff0;
      } else if (mode === "paged") {
        // Identity-map 4 MiB, leaving some pages absent or read-only.
        m.memory.write32(0x100000, 0x101000 | 7);
        for (let p = 0; p < 1024; p++) {
          const flags = p % 17 === 5 ? 0 : p % 13 === 3 ? 5 : 7;
          m.memory.write32(0x101000 + p * 4, (p << 12) | flags);
        }
        for (const p of [0x10, 0x11, 0x01, 0x03, 0x05, 0x90, 0x8f, 0x7f, 0x70])
          m.memory.write32(0x101000 + p * 4, (p << 12) | 7);
        m.cpu.setCr(3, 0x100000);
        m.cpu.setCr(0, 0x80000011);
      }
    }
    // Random register contents, small counts so REP loops stay short.
    for (let r = 0; r < 8; r++) if (r !== 4) m.cpu.setReg32(r, next() & (r === 1 ? 0xff : 0xffffffff));
    let ran = 0;
    for (let slice = 0; slice < 8 && !m.cpu.isShutdown; slice++) {
      ran += m.cpu.run(STEPS / 8);
      if (next() % 4 === 0) m.cpu.setIntr(next() % 2 === 0);
      if (m.cpu.halted) m.cpu.halted = false;
    }
    assert.ok(ran >= 0);
    check(m, `${mode} seed ${seed}`);
  }
}

describe("fuzz: random instruction streams never crash the host", () => {
  it("real mode", () => fuzz("real"));
  it("16-bit protected mode", () => fuzz("pm16"));
  it("32-bit protected mode, ring 0", () => fuzz("pm32"));
  it("32-bit protected mode, ring 3", () => fuzz("ring3"));
  it("32-bit protected mode with paging", () => fuzz("paged"));
  it("virtual-8086 mode", () => fuzz("v86"));
});
