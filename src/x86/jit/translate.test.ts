// The translator's hand-kept tables against each other: `classify` (what is inline, and what it
// does to flags), `emitInsn` (what it emits) and `writesMemory` (where translated code looks at
// the attention flag after a store) must agree on every encoding, or an instruction silently goes
// to its handler with the flag-liveness assumptions of an inline one, or a store goes unchecked.
// Every inline instruction must also have a loop form that calls nothing, or the loops holding it
// lose their fast form without anything else showing it.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeInstruction, Insn } from "../decoder.ts";
import { inlineForm } from "./translate.ts";

/** ModRM bytes: every mod, several reg and rm values, SIB and disp32 forms. */
const MODRMS = [
  0x00, 0x04, 0x05, 0x08, 0x0c, 0x10, 0x18, 0x1d, 0x20, 0x28, 0x30, 0x38, 0x3f, 0x44, 0x48, 0x7f, 0x84, 0xbf,
  0xc0, 0xc1, 0xc8, 0xd0, 0xd8, 0xe0, 0xe8, 0xf0, 0xf8, 0xff,
];
const PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

describe("the translator's tables", () => {
  it("emit inline exactly what classify calls inline, check stores exactly where the code stores, and have loop forms", () => {
    const disagreements = new Set<string>();
    let checked = 0;
    for (const operandPrefix of [false, true]) {
      for (let op = 0; op < 0x200; op++) {
        if (op < 0x100 && (PREFIXES.has(op) || op === 0x0f)) continue;
        for (const modrm of MODRMS) {
          const bytes = new Uint8Array(16).fill(0x11);
          let p = 0;
          if (operandPrefix) bytes[p++] = 0x66;
          if (op >= 0x100) bytes[p++] = 0x0f;
          bytes[p++] = op & 0xff;
          bytes[p++] = modrm;
          const insn = new Insn();
          let length = 0;
          try {
            length = decodeInstruction(insn, bytes, bytes.length, true);
          } catch {
            continue;
          }
          if (length <= 0 || insn.lock || insn.entry.endsBlock) continue;
          checked++;
          const form = inlineForm(insn, true);
          const name = `${insn.entry.mnemonic} ${insn.entry.operands.join(",")} (${Array.from(bytes.subarray(0, p), (b) => b.toString(16)).join(" ")})`;
          if (form.classified !== form.emitted)
            disagreements.add(`${name}: classify ${form.classified}, emitted ${form.emitted}`);
          if (form.emitted && form.declaredStore !== form.emittedStore)
            disagreements.add(`${name}: writesMemory ${form.declaredStore}, stores ${form.emittedStore}`);
          if (form.emitted && !form.loopFormCallsNothing) disagreements.add(`${name}: loop form calls out`);
        }
      }
    }
    assert.ok(checked > 10_000, `checked ${checked}`);
    assert.deepEqual([...disagreements], []);
  });
});
