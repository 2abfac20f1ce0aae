// x87 constants and transcendental instructions (F2XM1, FYL2X, FYL2XP1, FPATAN, FSIN, FCOS, FPTAN,
// FSINCOS), evaluated in BigInt fixed point with a couple of hundred guard bits and rounded once to
// 64 bits under the rounding control, so results are the correctly rounded value of the function
// except for the documented argument reduction: like Intel's hardware (SDM vol. 1, 8.3.10), FSIN,
// FCOS, FPTAN and FSINCOS reduce modulo pi/2 using pi rounded to 66 bits, which is why
// fsin(double(pi)) gives 1.2246063538223773e-16 on real processors rather than 1.2246467991473532e-16.

import {
  bitLength,
  type F80,
  FLAG_DE,
  FLAG_IE,
  FLAG_ZE,
  type FpEnv,
  f80,
  fromBigInt,
  INDEFINITE,
  infinity,
  isDenormal,
  isNaN80,
  isqrt,
  isSignalingNaN,
  isUnsupported,
  isZero,
  mul,
  POS_ONE,
  propagateNaN,
  quiet,
  roundToF80,
  zero,
} from "./float80.ts";

const EXP_MAX = 0x7fff;
const EXP_BIAS = 16383;
/** Fraction bits of the stored constants. */
const CONST_BITS = 400;
const CONST_SHIFT = BigInt(CONST_BITS);
/** Guard bits kept beyond the result's own magnitude. */
const GUARD = 200;

/** sum over k of 1 / ((2k+1) n^(2k+1)), scaled by 2^bits: atanh(1/n) (or atan with alternating signs). */
function inverseSeries(n: bigint, bits: bigint, alternate: boolean): bigint {
  let power = (1n << bits) / n;
  const n2 = n * n;
  let sum = 0n;
  for (let k = 0n; power !== 0n; k++) {
    const term = power / (2n * k + 1n);
    sum += alternate && k % 2n === 1n ? -term : term;
    power /= n2;
  }
  return sum;
}

const WORK = CONST_SHIFT + 16n;
const PI_FIXED = (16n * inverseSeries(5n, WORK, true) - 4n * inverseSeries(239n, WORK, true)) >> 16n;
const LN2_FIXED = (2n * inverseSeries(3n, WORK, false)) >> 16n;
const LN10_FIXED = (3n * 2n * inverseSeries(3n, WORK, false) + 2n * inverseSeries(9n, WORK, false)) >> 16n;

/** pi rounded to 66 significant bits, as a multiple of 2^-64: Intel's reduction constant. */
const PI66 = (PI_FIXED + (1n << (CONST_SHIFT - 65n))) >> (CONST_SHIFT - 64n);

// ---- fixed-point helpers ----

function lsbExponent(a: F80): number {
  return (a.exp === 0 ? 1 : a.exp) - EXP_BIAS - 63;
}

/** Unbiased exponent of the leading significand bit of a finite non-zero value. */
function leadExponent(a: F80): number {
  return lsbExponent(a) + bitLength(a.sig) - 1;
}

/** |a| as a fixed-point integer with `bits` fraction bits (truncated). */
function toFixed(a: F80, bits: number): bigint {
  const shift = lsbExponent(a) + bits;
  return shift >= 0 ? a.sig << BigInt(shift) : a.sig >> BigInt(-shift);
}

/** A constant (CONST_BITS fraction bits) at `bits` fraction bits. */
function constantAt(c: bigint, bits: number): bigint {
  return bits >= CONST_BITS ? c << BigInt(bits - CONST_BITS) : c >> BigInt(CONST_BITS - bits);
}

/** Rounds an inexact fixed-point magnitude to extended precision. */
function fromFixed(env: FpEnv, sign: number, v: bigint, bits: number): F80 {
  if (v === 0n) return zero(sign);
  return roundToF80(env, sign, (v << 2n) | 1n, -bits - 2, 64);
}

/** Fixed-point product, truncated toward zero (so alternating series terms reach 0). */
function multiply(a: bigint, b: bigint, bits: bigint): bigint {
  return (a * b) / (1n << bits);
}

/** atanh(t) for |t| <= 1/2, fixed point. */
function atanhFixed(t: bigint, bits: number): bigint {
  const b = BigInt(bits);
  const t2 = multiply(t, t, b);
  let power = t;
  let sum = 0n;
  for (let k = 1n; power !== 0n; k += 2n) {
    sum += power / k;
    power = multiply(power, t2, b);
  }
  return sum;
}

/** atan(t) for 0 <= t <= 1, fixed point (halving the angle until the series converges fast). */
function atanFixed(t: bigint, bits: number): bigint {
  const b = BigInt(bits);
  const one = 1n << b;
  let doublings = 0n;
  while (t > one >> 3n) {
    // atan(t) = 2 atan(t / (1 + sqrt(1 + t^2)))
    const root = isqrt((one + multiply(t, t, b)) << b);
    t = (t << b) / (one + root);
    doublings++;
  }
  const t2 = multiply(t, t, b);
  let power = t;
  let sum = 0n;
  for (let k = 1n; power !== 0n; k += 2n) {
    const term = power / k;
    sum += (k & 2n) === 0n ? term : -term;
    power = multiply(power, t2, b);
  }
  return sum << doublings;
}

/** e^y - 1, fixed point, for moderate |y|. */
function expm1Fixed(y: bigint, bits: number): bigint {
  const b = BigInt(bits);
  let term = y;
  let sum = 0n;
  for (let k = 2n; term !== 0n; k++) {
    sum += term;
    term = multiply(term, y, b) / k;
  }
  return sum;
}

/** [sin r, cos r], fixed point, |r| <= 1. */
function sinCosFixed(r: bigint, bits: number): [bigint, bigint] {
  const b = BigInt(bits);
  const r2 = multiply(r, r, b);
  let s = 0n;
  let term = r;
  for (let k = 2n; term !== 0n; k += 2n) {
    s += term;
    term = -multiply(term, r2, b) / (k * (k + 1n));
  }
  let c = 0n;
  term = 1n << b;
  for (let k = 1n; term !== 0n; k += 2n) {
    c += term;
    term = -multiply(term, r2, b) / (k * (k + 1n));
  }
  return [s, c];
}

/** ln(m) for a significand m in [1, 2) given as sig (64 bits, integer bit set) and a fixed-point precision. */
function log2Fixed(a: F80, bits: number): bigint {
  // a > 0, finite: a = m * 2^e with m in [sqrt(1/2), sqrt(2)).
  const len = bitLength(a.sig);
  let e = lsbExponent(a) + len - 1;
  const b = BigInt(bits);
  let m = (a.sig << b) >> BigInt(len - 1);
  const one = 1n << b;
  const sqrt2 = isqrt(2n << (2n * b));
  if (m > sqrt2) {
    m >>= 1n;
    e += 1;
  }
  const t = ((m - one) << b) / (m + one);
  const ln = 2n * atanhFixed(t, bits);
  return (BigInt(e) << b) + (ln << CONST_SHIFT) / LN2_FIXED;
}

// ---- constants ----

const CONSTANTS = [
  null, // FLD1 is exact
  (LN10_FIXED << CONST_SHIFT) / LN2_FIXED, // log2(10)
  (1n << (2n * CONST_SHIFT)) / LN2_FIXED, // log2(e)
  PI_FIXED,
  (LN2_FIXED << CONST_SHIFT) / LN10_FIXED, // log10(2)
  LN2_FIXED,
];

/** FLD1, FLDL2T, FLDL2E, FLDPI, FLDLG2, FLDLN2, FLDZ (index = low 3 bits of D9 E8..EE). */
export function constant(env: FpEnv, index: number): F80 {
  if (index === 0) return POS_ONE;
  if (index === 6) return zero(0);
  const c = CONSTANTS[index] as bigint;
  // Rounded per RC, but the x87 does not report these roundings as inexact.
  const flags = env.flags;
  const up = env.roundedUp;
  const v = fromFixed(env, 0, c, CONST_BITS);
  env.flags = flags;
  env.roundedUp = up;
  return v;
}

// ---- operand screening ----

function screen1(env: FpEnv, a: F80): F80 | null {
  if (isUnsupported(a)) {
    env.flags |= FLAG_IE;
    return INDEFINITE;
  }
  if (isNaN80(a)) {
    if (isSignalingNaN(a)) env.flags |= FLAG_IE;
    return quiet(a);
  }
  if (isDenormal(a)) env.flags |= FLAG_DE;
  return null;
}

function screen2(env: FpEnv, a: F80, b: F80): F80 | null {
  if (isUnsupported(a) || isUnsupported(b)) {
    env.flags |= FLAG_IE;
    return INDEFINITE;
  }
  if (isNaN80(a) || isNaN80(b)) return propagateNaN(env, a, b);
  if (isDenormal(a) || isDenormal(b)) env.flags |= FLAG_DE;
  return null;
}

function invalid(env: FpEnv): F80 {
  env.flags |= FLAG_IE;
  return INDEFINITE;
}

// ---- F2XM1 ----

export function exp2Minus1(env: FpEnv, x: F80): F80 {
  const s = screen1(env, x);
  if (s) return s;
  if (isZero(x)) return x;
  if (x.exp === EXP_MAX) return x.sign ? f80(1, EXP_BIAS, 1n << 63n) : x;
  const lead = leadExponent(x);
  if (lead >= 0 && x.sig === 1n << 63n && lead === 0) {
    // Exactly +-1: 1 or -0.5.
    return x.sign ? f80(1, EXP_BIAS - 1, 1n << 63n) : POS_ONE;
  }
  if (lead >= 7) {
    // Outside the documented domain (|x| <= 1); give the limit values 2^x - 1 tends to.
    if (x.sign) return roundToF80(env, 1, (1n << 200n) - 1n, -200, 64);
    return roundToF80(env, 0, 1n, 1 << 20, 64);
  }
  const bits = GUARD + Math.max(0, -lead);
  const y = multiply(toFixed(x, bits), constantAt(LN2_FIXED, bits), BigInt(bits));
  const v = expm1Fixed(x.sign ? -y : y, bits);
  return fromFixed(env, v < 0n ? 1 : 0, v < 0n ? -v : v, bits);
}

// ---- FYL2X, FYL2XP1 ----

/** y * log2(x): ST(1) = y, ST(0) = x. */
export function yLog2X(env: FpEnv, x: F80, y: F80): F80 {
  const s = screen2(env, x, y);
  if (s) return s;
  const yInf = y.exp === EXP_MAX;
  if (x.sign && !isZero(x)) return invalid(env);
  if (isZero(x)) {
    if (isZero(y)) return invalid(env);
    if (!yInf) env.flags |= FLAG_ZE;
    return infinity(y.sign ^ 1);
  }
  if (x.exp === EXP_MAX) {
    if (isZero(y)) return invalid(env);
    return infinity(y.sign);
  }
  const lead = leadExponent(x);
  const isPowerOfTwo = x.sig === 1n << BigInt(bitLength(x.sig) - 1);
  if (isPowerOfTwo && lead === 0) {
    // log2(1) = +0
    if (yInf) return invalid(env);
    return zero(y.sign);
  }
  const below1 = lead < 0;
  if (yInf) return infinity(y.sign ^ (below1 ? 1 : 0));
  if (isZero(y)) return zero(y.sign ^ (below1 ? 1 : 0));
  if (isPowerOfTwo) return mul(env, y, fromBigInt(BigInt(lead)), 64);
  const bits = GUARD + 100;
  const l = log2Fixed(x, bits);
  const product = (l < 0n ? -l : l) * y.sig;
  return roundToF80(env, y.sign ^ (l < 0n ? 1 : 0), (product << 2n) | 1n, lsbExponent(y) - bits - 2, 64);
}

/** y * log2(x + 1): ST(1) = y, ST(0) = x. */
export function yLog2XPlus1(env: FpEnv, x: F80, y: F80): F80 {
  const s = screen2(env, x, y);
  if (s) return s;
  const yInf = y.exp === EXP_MAX;
  if (isZero(x)) {
    if (yInf) return invalid(env);
    return zero(x.sign ^ y.sign);
  }
  if (x.exp === EXP_MAX) {
    if (x.sign || isZero(y)) return invalid(env);
    return infinity(y.sign);
  }
  const lead = leadExponent(x);
  if (x.sign && lead >= 0) {
    // x <= -1: outside the domain of log2(1 + x).
    if (lead === 0 && x.sig === 1n << 63n) {
      if (isZero(y)) return invalid(env);
      if (!yInf) env.flags |= FLAG_ZE;
      return infinity(y.sign ^ 1);
    }
    return invalid(env);
  }
  if (yInf) return infinity(y.sign ^ x.sign);
  if (isZero(y)) return zero(y.sign ^ x.sign);
  const bits = GUARD + Math.max(0, -lead);
  const b = BigInt(bits);
  let l: bigint;
  if (lead >= -1) {
    // |x| >= 1/2: 1 + x is exact at this precision (x has no bits below 2^-64 here).
    l = log2FixedValue(toFixed(x, bits) * (x.sign ? -1n : 1n) + (1n << b), bits);
  } else {
    // ln(1 + x) = 2 atanh(x / (2 + x)) keeps full relative precision for tiny x.
    const xf = x.sign ? -toFixed(x, bits) : toFixed(x, bits);
    const t = (xf << b) / ((2n << b) + xf);
    const ln = 2n * atanhFixed(t, bits);
    l = (ln << CONST_SHIFT) / LN2_FIXED;
  }
  const product = (l < 0n ? -l : l) * y.sig;
  return roundToF80(env, y.sign ^ (l < 0n ? 1 : 0), (product << 2n) | 1n, lsbExponent(y) - bits - 2, 64);
}

/** log2 of a positive fixed-point value. */
function log2FixedValue(v: bigint, bits: number): bigint {
  const len = bitLength(v);
  const sig = len >= 64 ? v >> BigInt(len - 64) : v << BigInt(64 - len);
  return log2Fixed(f80(0, EXP_BIAS + len - 1 - bits, sig), bits);
}

// ---- FPATAN ----

/** atan(y / x) in the quadrant of (x, y): ST(1) = y, ST(0) = x. */
export function partialArctangent(env: FpEnv, y: F80, x: F80): F80 {
  const s = screen2(env, y, x);
  if (s) return s;
  const xInf = x.exp === EXP_MAX;
  const yInf = y.exp === EXP_MAX;
  const bitsBase = GUARD;
  const pi = (bits: number) => constantAt(PI_FIXED, bits);
  if (isZero(y)) {
    if (x.sign) return fromFixed(env, y.sign, pi(bitsBase), bitsBase);
    return zero(y.sign);
  }
  if (yInf) {
    let angle: bigint;
    if (!xInf) angle = pi(bitsBase) >> 1n;
    else if (x.sign) angle = (3n * pi(bitsBase)) >> 2n;
    else angle = pi(bitsBase) >> 2n;
    return fromFixed(env, y.sign, angle, bitsBase);
  }
  if (isZero(x)) return fromFixed(env, y.sign, pi(bitsBase) >> 1n, bitsBase);
  if (xInf) {
    if (x.sign) return fromFixed(env, y.sign, pi(bitsBase), bitsBase);
    return zero(y.sign);
  }
  const ey = leadExponent(y);
  const ex = leadExponent(x);
  const yBelow = ey < ex || (ey === ex && compareSig(y, x) <= 0);
  let bits = GUARD + Math.max(0, ex - ey);
  if (x.sign) bits = GUARD; // the result is near pi: absolute precision suffices
  // Exact ratio to `bits` fraction bits: (|small| / |large|).
  const small = yBelow ? y : x;
  const large = yBelow ? x : y;
  const shift = lsbExponent(small) - lsbExponent(large) + bits;
  const ratio =
    shift >= 0 ? (small.sig << BigInt(shift)) / large.sig : small.sig / (large.sig << BigInt(-shift));
  let angle = atanFixed(ratio, bits);
  if (!yBelow) angle = (pi(bits) >> 1n) - angle;
  if (x.sign) angle = pi(bits) - angle;
  return fromFixed(env, y.sign, angle, bits);
}

function compareSig(a: F80, b: F80): number {
  const ea = lsbExponent(a);
  const eb = lsbExponent(b);
  const e = Math.min(ea, eb);
  const va = a.sig << BigInt(ea - e);
  const vb = b.sig << BigInt(eb - e);
  return va < vb ? -1 : va > vb ? 1 : 0;
}

// ---- FSIN, FCOS, FPTAN, FSINCOS ----

/** Reduction result: the octant count k and r = x - k * pi66/2 as a fixed-point value. */
interface Reduced {
  quadrant: number;
  r: bigint; // signed
  bits: number;
}

/** null when |x| >= 2^63 (C2 set, operand unchanged). */
function reduce(x: F80): Reduced | null {
  const lead = leadExponent(x);
  if (lead >= 63) return null;
  const ex = lsbExponent(x);
  const scaleExp = Math.min(ex, -65);
  const xi = x.sig << BigInt(ex - scaleExp);
  const halfPi = PI66 << BigInt(-65 - scaleExp);
  let k = 0n;
  let r = xi;
  if (lead >= 0) {
    k = (2n * xi + halfPi) / (2n * halfPi); // nearest
    r = xi - k * halfPi;
  }
  // r is exact at 2^scaleExp; express it with enough bits for its own magnitude.
  const mag = r < 0n ? -r : r;
  const rLead = scaleExp + bitLength(mag) - 1;
  const bits = GUARD + Math.max(0, -rLead);
  const shift = scaleExp + bits;
  const fixed = shift >= 0 ? r << BigInt(shift) : r >> BigInt(-shift);
  const quadrant = Number(k & 3n);
  return { quadrant: x.sign ? (4 - quadrant) & 3 : quadrant, r: x.sign ? -fixed : fixed, bits };
}

function signed(env: FpEnv, v: bigint, bits: number): F80 {
  return v < 0n ? fromFixed(env, 1, -v, bits) : fromFixed(env, 0, v, bits);
}

function sinCosOf(x: F80): { sin: bigint; cos: bigint; bits: number } | null {
  const red = reduce(x);
  if (red === null) return null;
  const [s, c] = sinCosFixed(red.r, red.bits);
  switch (red.quadrant) {
    case 0:
      return { sin: s, cos: c, bits: red.bits };
    case 1:
      return { sin: c, cos: -s, bits: red.bits };
    case 2:
      return { sin: -s, cos: -c, bits: red.bits };
    default:
      return { sin: -c, cos: s, bits: red.bits };
  }
}

/** FSIN: null means out of range (C2). */
export function sine(env: FpEnv, x: F80): F80 | null {
  const s = screen1(env, x);
  if (s) return s;
  if (isZero(x)) return x;
  if (x.exp === EXP_MAX) return invalid(env);
  const sc = sinCosOf(x);
  if (sc === null) return null;
  return signed(env, sc.sin, sc.bits);
}

/** FCOS. */
export function cosine(env: FpEnv, x: F80): F80 | null {
  const s = screen1(env, x);
  if (s) return s;
  if (isZero(x)) return POS_ONE;
  if (x.exp === EXP_MAX) return invalid(env);
  const sc = sinCosOf(x);
  if (sc === null) return null;
  return signed(env, sc.cos, sc.bits);
}

/** FSINCOS: [sin, cos] (sin replaces ST(0), cos is pushed). */
export function sineCosine(env: FpEnv, x: F80): [F80, F80] | null {
  const s = screen1(env, x);
  if (s) return [s, s];
  if (isZero(x)) return [x, POS_ONE];
  if (x.exp === EXP_MAX) {
    const nan = invalid(env);
    return [nan, nan];
  }
  const sc = sinCosOf(x);
  if (sc === null) return null;
  // Both roundings report through C1/PE; the cosine (new ST(0)) is rounded last.
  const sin = signed(env, sc.sin, sc.bits);
  const cos = signed(env, sc.cos, sc.bits);
  return [sin, cos];
}

/** FPTAN: [tan, 1.0]. */
export function tangent(env: FpEnv, x: F80): [F80, F80] | null {
  const s = screen1(env, x);
  if (s) return [s, s];
  if (isZero(x)) return [x, POS_ONE];
  if (x.exp === EXP_MAX) {
    const nan = invalid(env);
    return [nan, nan];
  }
  const sc = sinCosOf(x);
  if (sc === null) return null;
  const b = BigInt(sc.bits);
  const t = (sc.sin << b) / sc.cos;
  return [signed(env, t, sc.bits), POS_ONE];
}
