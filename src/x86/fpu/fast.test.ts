// The word-based FADD/FSUB/FMUL/FDIV path must agree bit for bit (value, PE, C1) with the exact BigInt
// path whenever it accepts an operation.

import assert from "node:assert/strict";
import { test } from "node:test";
import { fastAdd, fastDiv, fastMul, fastResult } from "./fast.ts";
import {
  add,
  CMP_EQUAL,
  CMP_LESS,
  compare,
  div,
  type F80,
  FLAG_PE,
  FpEnv,
  f80,
  fromBigInt,
  mul,
  sub,
  toFloat32,
  toFloat64,
  toInteger,
} from "./float80.ts";
import { Fpu, tagOf, tagOfRaw } from "./fpu.ts";
import { TestHost } from "./test-host.ts";

let seed = 0x9e3779b9;
function next(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed;
}

/** Random normal value; significands biased towards runs of ones/zeros and exact halves. */
function randomNormal(expCentre: number, spread: number): F80 {
  const shape = next() % 6;
  let hi = (next() | 0x80000000) >>> 0;
  let lo = next();
  if (shape === 0) lo = 0;
  else if (shape === 1) lo = 0xffffffff;
  else if (shape === 2) {
    hi = 0x80000000;
    lo = next() % 4;
  } else if (shape === 3) {
    hi = 0xffffffff;
    lo = (0xffffffff - (next() % 4)) >>> 0;
  } else if (shape === 4) lo = (lo & ~0x7ff) >>> 0;
  const exp = expCentre + (next() % (2 * spread + 1)) - spread;
  return f80(next() & 1, exp, (BigInt(hi) << 32n) | BigInt(lo));
}

function words(v: F80): [number, number, number] {
  return [(v.sign << 15) | v.exp, Number(v.sig >> 32n), Number(v.sig & 0xffffffffn)];
}

function check(
  kind: "add" | "mul" | "div",
  a: F80,
  b: F80,
  rounding: number,
  p: number,
  fast: FpEnv,
  slow: FpEnv,
): boolean {
  fast.begin(rounding, p, 0x3f);
  slow.begin(rounding, p, 0x3f);
  const [aSE, aHi, aLo] = words(a);
  const [bSE, bHi, bLo] = words(b);
  const fastOp = kind === "add" ? fastAdd : kind === "mul" ? fastMul : fastDiv;
  if (!fastOp(fast, aSE, aHi, aLo, bSE, bHi, bLo, p)) return false;
  const want = (kind === "add" ? add : kind === "mul" ? mul : div)(slow, a, b, p);
  const got = f80(
    fastResult.signExp >> 15,
    fastResult.signExp & 0x7fff,
    (BigInt(fastResult.hi) << 32n) | BigInt(fastResult.lo),
  );
  const label = `${kind} rc=${rounding} p=${p} ${JSON.stringify([a, b], (_, v) => (typeof v === "bigint" ? v.toString(16) : v))}`;
  assert.deepEqual(got, want, label);
  assert.equal(fast.flags, slow.flags, label);
  assert.equal(fast.flags ? fast.roundedUp : false, slow.flags ? slow.roundedUp : false, label);
  return true;
}

test("fast FADD/FSUB agree with the exact path on 200k random operands", () => {
  const fast = new FpEnv();
  const slow = new FpEnv();
  let accepted = 0;
  for (let n = 0; n < 200_000; n++) {
    const a = randomNormal(16383, 40);
    const b = n % 3 === 0 ? randomNormal(a.exp, 2) : randomNormal(a.exp, 100);
    if (check("add", a, b, n & 3, [24, 53, 64][n % 3], fast, slow)) accepted++;
  }
  assert.ok(accepted > 190_000, `only ${accepted} taken by the fast path`);
});

test("fast FMUL agrees with the exact path on 200k random operands", () => {
  const fast = new FpEnv();
  const slow = new FpEnv();
  let accepted = 0;
  for (let n = 0; n < 200_000; n++) {
    const a = randomNormal(16383, 100);
    const b = randomNormal(16383, 100);
    if (check("mul", a, b, n & 3, [24, 53, 64][n % 3], fast, slow)) accepted++;
  }
  assert.ok(accepted > 190_000);
});

test("fast FDIV agrees with the exact path on 100k random operands", () => {
  const fast = new FpEnv();
  const slow = new FpEnv();
  let accepted = 0;
  for (let n = 0; n < 100_000; n++) {
    const a = randomNormal(16383, 100);
    const b = n % 5 === 0 ? f80(next() & 1, a.exp, a.sig) : randomNormal(16383, 100);
    if (check("div", a, b, n & 3, [24, 53, 64][n % 3], fast, slow)) accepted++;
  }
  assert.ok(accepted > 95_000);
});

test("the fast path declines zero results and leaves-the-range results", () => {
  const fast = new FpEnv();
  fast.begin(0, 64, 0x3f);
  const one = words(f80(0, 16383, 1n << 63n));
  const minusOne = words(f80(1, 16383, 1n << 63n));
  assert.equal(fastAdd(fast, one[0], one[1], one[2], minusOne[0], minusOne[1], minusOne[2], 64), false);
  const huge = words(f80(0, 0x7ffe, 1n << 63n));
  assert.equal(fastMul(fast, huge[0], huge[1], huge[2], huge[0], huge[1], huge[2], 64), false);
  const tiny = words(f80(0, 1, 1n << 63n));
  assert.equal(fastMul(fast, tiny[0], tiny[1], tiny[2], one[0] - 1, one[1], one[2], 64), false);
  assert.equal(fast.flags, 0);
});

test("FIST m16/m32 through the fast conversion agrees with the exact conversion", () => {
  const fpu = new Fpu();
  const host = new TestHost();
  const env = new FpEnv();
  for (let n = 0; n < 40_000; n++) {
    const v = n % 50 === 0 ? f80(next() & 1, 0, 0n) : randomNormal(16383 + 12, 18);
    const rc = n & 3;
    const bits = n % 2 ? 32 : 16;
    fpu.executeEscape(0xdb, 0xe3, 0, host);
    host.write16(0x80, 0x037f | (rc << 10));
    fpu.executeEscape(0xd9, 0x2d, 0x80, host);
    host.writeF80(0x100, v);
    fpu.executeEscape(0xdb, 0x2d, 0x100, host);
    fpu.executeEscape(bits === 32 ? 0xdb : 0xdf, 0x1d, 0x200, host); // FISTP
    env.begin(rc, 64, 0x3f);
    const want = toInteger(env, v, bits) ?? -(1n << BigInt(bits - 1));
    const got = bits === 32 ? host.read32(0x200) | 0 : (host.read16(0x200) << 16) >> 16;
    const label = `rc=${rc} bits=${bits} ${v.sign}:${v.exp.toString(16)}:${v.sig.toString(16)}`;
    assert.equal(BigInt(got), want, label);
    assert.equal(fpu.statusWord & 0x3f, env.flags, label);
    assert.equal((fpu.statusWord & 0x200) !== 0, env.flags === FLAG_PE && env.roundedUp, label);
  }
});

test("register compares through the fast comparison agree with the exact comparison", () => {
  const fpu = new Fpu();
  const host = new TestHost();
  const env = new FpEnv();
  for (let n = 0; n < 40_000; n++) {
    const a = n % 20 === 0 ? f80(next() & 1, 0, 0n) : randomNormal(16383, 3);
    const b = n % 7 === 0 ? a : n % 20 === 1 ? f80(next() & 1, 0, 0n) : randomNormal(a.exp || 16383, 1);
    fpu.executeEscape(0xdb, 0xe3, 0, host);
    host.writeF80(0x100, b);
    fpu.executeEscape(0xdb, 0x2d, 0x100, host);
    host.writeF80(0x100, a);
    fpu.executeEscape(0xdb, 0x2d, 0x100, host);
    const eflags = fpu.executeEscape(0xdb, 0xf1, 0, host); // FCOMI ST(0)=a, ST(1)=b
    env.begin(0, 64, 0x3f);
    const outcome = compare(env, a, b, false);
    const want = outcome === CMP_EQUAL ? 0x40 : outcome === CMP_LESS ? 0x01 : 0;
    assert.equal(
      eflags,
      want,
      `${JSON.stringify([a, b], (_, v) => (typeof v === "bigint" ? v.toString(16) : v))}`,
    );
  }
});

test("tagOfRaw classifies raw register images like tagOf", () => {
  const exponents = [0, 1, 0x3fff, 0x7ffe, 0x7fff];
  for (let n = 0; n < 5000; n++) {
    const se = ((next() & 1) << 15) | (n % 2 ? exponents[next() % 5] : next() & 0x7fff);
    const hi = n % 3 === 0 ? 0 : n % 3 === 1 ? 0x80000000 : next();
    const lo = n % 4 === 0 ? 0 : next();
    const v = f80(se >> 15, se & 0x7fff, (BigInt(hi) << 32n) | BigInt(lo));
    assert.equal(tagOfRaw(se, hi, lo), tagOf(v), `${se.toString(16)} ${hi.toString(16)} ${lo.toString(16)}`);
  }
});

test("FST m32/m64 through the fast rounding agree with the exact conversion", () => {
  const fpu = new Fpu();
  const host = new TestHost();
  const env = new FpEnv();
  for (let n = 0; n < 40_000; n++) {
    const v = n % 2 ? randomNormal(16383, 140) : randomNormal(16383 + (n % 4 ? 1023 : -1022), 3);
    const rc = n & 3;
    const bits = n % 3 === 0 ? 32 : 64;
    fpu.executeEscape(0xdb, 0xe3, 0, host);
    host.write16(0x80, 0x037f | (rc << 10));
    fpu.executeEscape(0xd9, 0x2d, 0x80, host);
    host.writeF80(0x100, v);
    fpu.executeEscape(0xdb, 0x2d, 0x100, host);
    fpu.executeEscape(bits === 32 ? 0xd9 : 0xdd, 0x15, 0x200, host); // FST m32/m64
    env.begin(rc, 64, 0x3f);
    const want = bits === 32 ? BigInt(toFloat32(env, v) ?? -1) : toFloat64(env, v);
    const got = bits === 32 ? BigInt(host.read32(0x200)) : host.readU64(0x200);
    const label = `rc=${rc} bits=${bits} ${v.sign}:${v.exp.toString(16)}:${v.sig.toString(16)}`;
    assert.equal(got, want, label);
    assert.equal(fpu.statusWord & 0x3f, env.flags, label);
    assert.equal((fpu.statusWord & 0x200) !== 0, (env.flags & FLAG_PE) !== 0 && env.roundedUp, label);
  }
});

test("FISTP m64 and FILD m64 through the word paths agree with the exact conversions", () => {
  const fpu = new Fpu();
  const host = new TestHost();
  const env = new FpEnv();
  for (let n = 0; n < 40_000; n++) {
    const v = randomNormal(16383 + 31, 34);
    const rc = n & 3;
    fpu.executeEscape(0xdb, 0xe3, 0, host);
    host.write16(0x80, 0x037f | (rc << 10));
    fpu.executeEscape(0xd9, 0x2d, 0x80, host);
    host.writeF80(0x100, v);
    fpu.executeEscape(0xdb, 0x2d, 0x100, host);
    fpu.executeEscape(0xdf, 0x3d, 0x200, host); // FISTP m64
    env.begin(rc, 64, 0x3f);
    const want = toInteger(env, v, 64) ?? -(1n << 63n);
    const label = `rc=${rc} ${v.sign}:${v.exp.toString(16)}:${v.sig.toString(16)}`;
    assert.equal(host.readI64(0x200), want, label);
    assert.equal(fpu.statusWord & 0x3f, env.flags, label);
    assert.equal((fpu.statusWord & 0x200) !== 0, (env.flags & FLAG_PE) !== 0 && env.roundedUp, label);
    // And back: FILD m64 of the stored integer is exact.
    fpu.executeEscape(0xdf, 0x2d, 0x200, host);
    assert.deepEqual(fpu.st(0), fromBigInt(want), label);
  }
  for (const edge of [1n, -1n, (1n << 63n) - 1n, -(1n << 63n), 1n << 32n, -(1n << 32n), 0xffffffffn]) {
    host.writeU64(0x200, edge);
    fpu.executeEscape(0xdb, 0xe3, 0, host);
    fpu.executeEscape(0xdf, 0x2d, 0x200, host);
    assert.deepEqual(fpu.st(0), fromBigInt(edge), edge.toString());
  }
});

/** A value that is often a double: few significant bits, exponents near 1 or near the double range's ends. */
function doubleShaped(): F80 {
  const bits = next() % 8 === 0 ? 54 + (next() % 11) : 1 + (next() % 53);
  let sig = 1n << 63n;
  for (let k = 1; k < bits; k++) if (next() & 1) sig |= 1n << BigInt(63 - k);
  if (bits > 1) sig |= 1n << BigInt(64 - bits);
  const where = next() % 8;
  const exp =
    where === 0
      ? 16383 - 1022 - 2 + (next() % 6) // the double range's lower end, either side
      : where === 1
        ? 16383 + 1023 - 3 + (next() % 6) // its upper end
        : 16383 + (next() % 41) - 20;
  return f80(next() & 1, exp, sig);
}

test("register FADD/FSUB/FSUBR/FMUL forms agree with the exact path, also where the host's doubles do them", () => {
  // [opcode, modrm, operation, destination is ST(1), pops]: operands as x = ST(0), y = ST(1).
  type Form = [number, number, (env: FpEnv, x: F80, y: F80, p: number) => F80, boolean, boolean];
  const forms: Form[] = [
    [0xd8, 0xc1, (e, x, y, p) => add(e, x, y, p), false, false],
    [0xd8, 0xc9, (e, x, y, p) => mul(e, x, y, p), false, false],
    [0xd8, 0xe1, (e, x, y, p) => sub(e, x, y, p), false, false],
    [0xd8, 0xe9, (e, x, y, p) => sub(e, y, x, p), false, false],
    [0xdc, 0xc1, (e, x, y, p) => add(e, y, x, p), true, false],
    [0xdc, 0xc9, (e, x, y, p) => mul(e, y, x, p), true, false],
    [0xdc, 0xe1, (e, x, y, p) => sub(e, x, y, p), true, false], // FSUBR ST(1), ST(0)
    [0xdc, 0xe9, (e, x, y, p) => sub(e, y, x, p), true, false], // FSUB ST(1), ST(0)
    [0xde, 0xc1, (e, x, y, p) => add(e, y, x, p), true, true],
    [0xde, 0xe9, (e, x, y, p) => sub(e, y, x, p), true, true], // FSUBP
  ];
  const host = new TestHost();
  const env = new FpEnv();
  let exactDoubles = 0;
  for (let n = 0; n < 60_000; n++) {
    const x = doubleShaped();
    let y = n % 4 === 0 ? f80(next() & 1, x.exp + (next() % 5) - 2, x.sig) : doubleShaped();
    // Now and then an unnormal (integer bit clear), which no path may take for a number.
    if (n % 64 === 5) y = f80(y.sign, y.exp, y.sig & ~(1n << 63n));
    const rc = next() & 3;
    const pc = [0, 2, 3][n % 3]!;
    const p = [24, 53, 64][pc === 0 ? 0 : pc - 1]!;
    const [opcode, modrm, operation, toSt1, pops] = forms[n % forms.length]!;
    env.begin(rc, p, 0x3f);
    const want = operation(env, x, y, p);
    const label = `${opcode.toString(16)} ${modrm.toString(16)} rc=${rc} p=${p} ${JSON.stringify([x, y], (_, v) => (typeof v === "bigint" ? v.toString(16) : v))}`;
    // The translator's entry, then the interpreter's, on the same operands.
    for (const entry of ["registerArithmetic", "executeEscape"] as const) {
      const fpu = new Fpu();
      fpu.executeEscape(0xdb, 0xe3, 0, host);
      host.write16(0x80, 0x007f | (pc << 8) | (rc << 10));
      fpu.executeEscape(0xd9, 0x2d, 0x80, host);
      host.writeF80(0x100, y);
      fpu.executeEscape(0xdb, 0x2d, 0x100, host);
      host.writeF80(0x100, x);
      fpu.executeEscape(0xdb, 0x2d, 0x100, host);
      // Set C1, so that a path that forgets to clear it shows.
      fpu.status |= 0x200;
      if (entry === "registerArithmetic") {
        if (!fpu.registerArithmetic(opcode, modrm, 0x1234, 8)) continue;
      } else fpu.executeEscape(opcode, modrm, 0, host);
      const at = pops ? 0 : toSt1 ? 1 : 0;
      assert.deepEqual(fpu.st(at), want, `${entry} ${label}`);
      assert.equal(fpu.top, pops ? 7 : 6, `${entry} ${label}`);
      assert.equal(fpu.statusWord & 0x3f, env.flags, `${entry} ${label}`);
      assert.equal(
        (fpu.statusWord & 0x200) !== 0,
        env.flags === FLAG_PE && env.roundedUp,
        `${entry} ${label}`,
      );
      assert.equal(
        tagOfRaw(fpu.signExp[fpu.phys(at)]!, fpu.sigHi[fpu.phys(at)]!, fpu.sigLo[fpu.phys(at)]!),
        tagOf(want),
      );
      assert.equal((fpu.tags >> (fpu.phys(at) * 2)) & 3, tagOf(want), `${entry} ${label}`);
      if (pops) assert.equal((fpu.tags >> (fpu.phys(7) * 2)) & 3, 3, `${entry} ${label}`);
    }
    if (env.flags === 0 && want.exp !== 0 && (want.sig & 0x7ffn) === 0n) exactDoubles++;
  }
  // Most results are exact doubles, the ones the host's doubles compute.
  assert.ok(exactDoubles > 20_000, `only ${exactDoubles} exact double results`);
});
