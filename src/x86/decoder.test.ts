import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeInstruction, Insn } from "./decoder.ts";

describe("decoder", () => {
  it("keeps a far pointer's 32-bit offset signed, like every 32-bit immediate", () => {
    // EA: JMP 0008:C0001000. The far jump takes the offset unsigned; one immediate above 2^31
    // kept as such would make V8 box every instruction's immediate as a double.
    const insn = new Insn();
    const bytes = Uint8Array.of(0xea, 0x00, 0x10, 0x00, 0xc0, 0x08, 0x00);
    assert.equal(decodeInstruction(insn, bytes, bytes.length, true), 7);
    assert.equal(insn.imm, 0xc0001000 | 0);
    assert.equal(insn.imm2, 8);
    // With a 16-bit operand size, the offset is a word.
    const short = new Insn();
    const bytes16 = Uint8Array.of(0xea, 0x34, 0x92, 0x00, 0xf0);
    assert.equal(decodeInstruction(short, bytes16, bytes16.length, false), 5);
    assert.equal(short.imm, 0x9234);
    assert.equal(short.imm2, 0xf000);
  });
});
