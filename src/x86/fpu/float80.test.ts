import assert from "node:assert/strict";
import { test } from "node:test";
import {
  bitLength,
  DOUBLE,
  FLAG_OE,
  FLAG_PE,
  FLAG_UE,
  FpEnv,
  fromFloat64,
  isqrt,
  roundPack,
  SINGLE,
  toFloat32,
  toFloat64,
} from "./float80.ts";

let seed = 0x1234567;
function next(): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed;
}

test("bitLength matches the binary length across sizes and power-of-two edges", () => {
  for (let b = 1; b < 1100; b++) {
    for (const d of [-1n, 0n, 1n]) {
      const x = (1n << BigInt(b)) + d;
      if (x > 0n) assert.equal(bitLength(x), x.toString(2).length, `2^${b}${d}`);
    }
  }
});

test("isqrt is the floor square root", () => {
  for (let i = 0; i < 20_000; i++) {
    let n = 0n;
    for (let k = 1 + (next() % 10); k > 0; k--) n = (n << 32n) | BigInt(next());
    if (i % 3 === 0) n *= n;
    if (i % 5 === 0 && n > 0n) n -= 1n;
    const r = isqrt(n);
    assert.ok(r * r <= n && (r + 1n) * (r + 1n) > n, n.toString());
  }
});

test("conversions to double and single agree with the host's IEEE arithmetic", () => {
  const env = new FpEnv();
  const view = new DataView(new ArrayBuffer(8));
  for (let i = 0; i < 20_000; i++) {
    view.setUint32(0, next(), true);
    view.setUint32(4, next(), true);
    const d = view.getFloat64(0, true);
    if (Number.isNaN(d)) continue;
    env.begin(0, 64, 0x3f);
    const v = fromFloat64(env, view.getUint32(0, true), view.getUint32(4, true));
    const back = toFloat64(env, v);
    assert.equal(back, view.getBigUint64(0, true));
    const single = toFloat32(env, v);
    const expected = new DataView(new ArrayBuffer(4));
    expected.setFloat32(0, d, true);
    assert.equal(single, expected.getUint32(0, true), `${d}`);
  }
});

test("roundPack: masked overflow and underflow responses in the narrow formats", () => {
  const env = new FpEnv();
  env.begin(0, 53, 0x3f);
  const over = roundPack(env, 0, 1n, 1024, 53, DOUBLE, false);
  assert.equal(over.exp, 0x7ff); // infinity
  assert.equal(env.flags, FLAG_OE | FLAG_PE);
  env.begin(3, 24, 0x3f);
  const chopped = roundPack(env, 1, 1n, 128, 24, SINGLE, false);
  assert.equal(chopped.exp, 0xfe); // largest finite under chop
  env.begin(0, 24, 0x3f);
  const tiny = roundPack(env, 0, 5n, -150, 24, SINGLE, false); // 2.5 * 2^-149
  assert.equal(tiny.exp, 0);
  assert.equal(tiny.sig, 2n); // 2 * 2^-149, ties to even
  assert.equal(env.flags, FLAG_UE | FLAG_PE);
});
