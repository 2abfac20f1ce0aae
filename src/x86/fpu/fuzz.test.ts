// Random x87/MMX instruction streams over random register and memory contents: the unit must never
// throw (no host faults are armed here), loop, or leave its state out of range.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Fpu } from "./fpu.ts";
import { FPU_INVALID_OPCODE, FPU_RAISE_MF } from "./host.ts";
import { TestHost } from "./test-host.ts";

let seed = 0x2545f491;
function next(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed;
}

/** Interesting 16-bit sign/exponent words: specials, extremes and ordinary magnitudes. */
const EXPONENTS = [
  0, 1, 0x3ffe, 0x3fff, 0x4000, 0x403e, 0x7ffe, 0x7fff, 0x8000, 0xbfff, 0xffff, 0x3fbf, 0x43fe,
];

test("20k random instructions never throw and keep the state in range", () => {
  const fpu = new Fpu();
  const host = new TestHost();
  host.numericErrorNative = true;
  let executed = 0;
  for (let n = 0; n < 20_000; n++) {
    // Fresh random memory operand area and, now and then, random register contents.
    for (let k = 0; k < 16; k++) host.memory[0x400 + k] = next() & 0xff;
    if (n % 16 === 0) {
      for (let r = 0; r < 8; r++) {
        fpu.signExp[r] = next() % 3 === 0 ? EXPONENTS[next() % EXPONENTS.length] : next() & 0xffff;
        fpu.sigHi[r] = next() % 4 === 0 ? 0x80000000 : next();
        fpu.sigLo[r] = next() % 4 === 0 ? 0 : next();
      }
      fpu.tags = next() & 0xffff;
      fpu.control = (next() & 0x0f00) | (next() % 4 === 0 ? next() & 0x3f : 0x3f) | 0x40;
      fpu.status = 0;
    }
    if (n % 100 === 0) fpu.control = (fpu.control & ~0x3f) | 0x3f;
    host.eflags = next() & 0x45;
    const opcode = 0xd8 + (next() & 7);
    let modrm = next() & 0xff;
    if (modrm < 0xc0) {
      modrm = (modrm & 0x38) | 0x05;
      // Keep the environment/state images away from the operand area.
      if ((opcode === 0xd9 || opcode === 0xdd) && (modrm & 0x38) >= 0x20) modrm = (modrm & 0x38) | 0x05;
    }
    const ea = (modrm & 0x38) >= 0x20 && (opcode === 0xd9 || opcode === 0xdd) ? 0x800 : 0x400;
    const result = fpu.executeEscape(opcode, modrm, ea, host);
    if (result !== FPU_RAISE_MF) executed++;
    assert.ok(result >= FPU_INVALID_OPCODE && result <= 0x45, `result ${result}`);
    if (n % 7 === 0) {
      const mmx = [0x60, 0x63, 0x67, 0x6b, 0x6f, 0x74, 0xd5, 0xe5, 0xf5, 0xfc, 0xe8, 0xd1, 0x71, 0x72, 0x73][
        next() % 15
      ];
      fpu.executeMmx(mmx, 0xc0 | (next() & 0x3f), 0x400, next() & 0xff, host);
    }
    // A pending unmasked exception would stop every waiting instruction: clear it now and then.
    if (n % 5 === 0) fpu.executeEscape(0xdb, 0xe2, 0, host);
    assert.ok(fpu.top >= 0 && fpu.top <= 7);
    assert.ok(fpu.tags >= 0 && fpu.tags <= 0xffff);
    assert.ok(fpu.statusWord >= 0 && fpu.statusWord <= 0xffff);
    assert.ok(fpu.control >= 0 && fpu.control <= 0xffff);
  }
  assert.ok(executed > 15_000, `only ${executed} executed`);
  // The state is still plain, loadable data.
  const copy = new Fpu();
  copy.loadState(structuredClone(fpu.saveState()), fpu.stateVersion);
  assert.deepEqual(copy.saveState(), fpu.saveState());
});
