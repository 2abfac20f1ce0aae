// Allocation-free FADD/FSUB/FMUL for the common case: two normal operands and a normal result. The
// significands live in 32-bit words; the exact sum or product is kept to 96 bits (the lowest bit
// sticky), which leaves at least 31 guard bits below any of the 24/53/64-bit rounding points.
// Anything else (zeros, denormals, infinities, NaNs, unsupported encodings, results that overflow
// or leave the normal range) returns false and goes through the exact BigInt path in float80.ts.

import { FLAG_PE, type FpEnv, RC_DOWN, RC_NEAREST, RC_UP } from "./float80.ts";

/** Result of a successful fast operation: sign/exponent word and significand words. */
export const fastResult = { signExp: 0, hi: 0, lo: 0 };

// The 96-bit working value, w[2]:w[1]:w[0].
// A typed array, not module variables: V8 boxes a non-small number stored in a module variable.
const w = new Float64Array(3);

const TWO32 = 2 ** 32;

/**
 * Rounds w[2]:w[1]:w[0] (normalised: bit 31 of w[2] set) to p bits at biased exponent `exp`, writes
 * fastResult and the flags. Returns false if the rounded result is not a normal number.
 */
function roundAndStore(env: FpEnv, sign: number, exp: number, p: number): boolean {
  let remTop: number;
  let width: number;
  let rest: boolean;
  let lsb: number;
  if (p === 64) {
    remTop = w[0];
    width = 32;
    rest = false;
    lsb = w[1] & 1;
  } else if (p === 53) {
    remTop = w[1] & 0x7ff;
    width = 11;
    rest = w[0] !== 0;
    lsb = (w[1] >>> 11) & 1;
  } else {
    remTop = w[2] & 0xff;
    width = 8;
    rest = (w[1] | w[0]) !== 0;
    lsb = (w[2] >>> 8) & 1;
  }
  const inexact = remTop !== 0 || rest;
  let increment = false;
  if (inexact) {
    const half = 2 ** (width - 1);
    switch (env.rounding) {
      case RC_NEAREST:
        increment = remTop > half || (remTop === half && (rest || lsb === 1));
        break;
      case RC_DOWN:
        increment = sign === 1;
        break;
      case RC_UP:
        increment = sign === 0;
        break;
      default:
        increment = false;
    }
  }
  // Truncate to p bits, then add one unit in the last place.
  let hi = w[2];
  let lo = w[1];
  if (p === 53) lo = (lo & ~0x7ff) >>> 0;
  else if (p === 24) {
    hi = (hi & ~0xff) >>> 0;
    lo = 0;
  }
  if (increment) {
    const unit = p === 64 ? 1 : p === 53 ? 0x800 : 0;
    if (p === 24) {
      hi += 0x100;
    } else {
      lo += unit;
      if (lo >= TWO32) {
        lo -= TWO32;
        hi += 1;
      }
    }
    if (hi >= TWO32) {
      hi = 0x80000000;
      lo = 0;
      exp += 1;
    }
  }
  if (exp < 1 || exp > 0x7ffe) return false;
  if (inexact) {
    env.flags |= FLAG_PE;
    env.roundedUp = increment;
  }
  fastResult.signExp = (sign << 15) | exp;
  fastResult.hi = hi >>> 0;
  fastResult.lo = lo >>> 0;
  return true;
}

/** Whether a register image is a normal number (biased exponent 1..7FFE, integer bit set). */
export function isNormalImage(signExp: number, hi: number): boolean {
  const exp = signExp & 0x7fff;
  return exp !== 0 && exp !== 0x7fff && (hi & 0x80000000) !== 0;
}

/** (-1)^sa * a + (-1)^sb * b for normal operands; false means "use the exact path". */
export function fastAdd(
  env: FpEnv,
  aSE: number,
  aHi: number,
  aLo: number,
  bSE: number,
  bHi: number,
  bLo: number,
  p: number,
): boolean {
  const ea = aSE & 0x7fff;
  const eb = bSE & 0x7fff;
  const sa = aSE >>> 15;
  const sb = bSE >>> 15;
  const subtract = sa !== sb ? 1 : 0;
  // The larger magnitude goes first and gives the result its sign.
  if (eb > ea || (eb === ea && (bHi > aHi || (bHi === aHi && bLo > aLo))))
    return addOrdered(env, sb, subtract, eb, bHi, bLo, ea, aHi, aLo, p);
  return addOrdered(env, sa, subtract, ea, aHi, aLo, eb, bHi, bLo, p);
}

/** |a| >= |b|; `subtract` when the signs differ; the result takes a's sign. */
function addOrdered(
  env: FpEnv,
  sign: number,
  subtract: number,
  ea: number,
  aHi: number,
  aLo: number,
  eb: number,
  bHi: number,
  bLo: number,
  p: number,
): boolean {
  // b shifted right by d into three words (b2:b1:b0), the last bit sticky.
  const d = ea - eb;
  let b2: number;
  let b1: number;
  let b0: number;
  if (d === 0) {
    b2 = bHi;
    b1 = bLo;
    b0 = 0;
  } else if (d < 32) {
    b2 = bHi >>> d;
    b1 = ((bHi << (32 - d)) | (bLo >>> d)) >>> 0;
    b0 = (bLo << (32 - d)) >>> 0;
  } else if (d === 32) {
    b2 = 0;
    b1 = bHi;
    b0 = bLo;
  } else if (d < 64) {
    const s = d - 32;
    b2 = 0;
    b1 = bHi >>> s;
    b0 = ((bHi << (32 - s)) | (bLo >>> s)) >>> 0;
    if ((bLo << (32 - s)) >>> 0 !== 0) b0 = (b0 | 1) >>> 0;
  } else if (d === 64) {
    b2 = 0;
    b1 = 0;
    b0 = bHi;
    if (bLo !== 0) b0 = (b0 | 1) >>> 0;
  } else if (d < 96) {
    const s = d - 64;
    b2 = 0;
    b1 = 0;
    b0 = bHi >>> s;
    if ((bHi << (32 - s)) >>> 0 !== 0 || bLo !== 0) b0 = (b0 | 1) >>> 0;
  } else {
    // Entirely below the window: only its stickiness counts.
    b2 = 0;
    b1 = 0;
    b0 = 1;
  }
  let exp = ea;
  if (subtract === 0) {
    let s0 = b0;
    let s1 = aLo + b1;
    let s2 = aHi + b2;
    if (s1 >= TWO32) {
      s1 -= TWO32;
      s2 += 1;
    }
    if (s2 >= TWO32) {
      // Carry out: shift right one bit, keeping the dropped bit sticky.
      s2 -= TWO32;
      const sticky = s0 & 1;
      s0 = ((s0 >>> 1) | ((s1 & 1) << 31) | sticky) >>> 0;
      s1 = ((s1 >>> 1) | ((s2 & 1) << 31)) >>> 0;
      s2 = ((s2 >>> 1) | 0x80000000) >>> 0;
      exp += 1;
    }
    w[2] = s2;
    w[1] = s1;
    w[0] = s0;
  } else {
    // a - b with borrows, word by word.
    let r0 = 0 - b0;
    let borrow = 0;
    if (r0 < 0) {
      r0 += TWO32;
      borrow = 1;
    }
    let r1 = aLo - b1 - borrow;
    borrow = 0;
    if (r1 < 0) {
      r1 += TWO32;
      borrow = 1;
    }
    let r2 = aHi - b2 - borrow;
    if (r2 < 0) return false; // cannot happen for |a| >= |b|; be safe
    if (r2 === 0 && r1 === 0 && r0 === 0) return false; // exact zero: sign rules on the exact path
    // Normalise left.
    while (r2 === 0) {
      r2 = r1;
      r1 = r0;
      r0 = 0;
      exp -= 32;
    }
    const shift = Math.clz32(r2);
    if (shift > 0) {
      r2 = ((r2 << shift) | (r1 >>> (32 - shift))) >>> 0;
      r1 = ((r1 << shift) | (r0 >>> (32 - shift))) >>> 0;
      r0 = (r0 << shift) >>> 0;
      exp -= shift;
    }
    w[2] = r2;
    w[1] = r1;
    w[0] = r0;
  }
  return roundAndStore(env, sign, exp, p);
}

// 16-bit limbs of the operands and the product columns (scratch, reused).
const x = new Float64Array(4);
const y = new Float64Array(4);
const col = new Float64Array(8);

/** (-1)^(sa^sb) * a * b for normal operands. */
export function fastMul(
  env: FpEnv,
  aSE: number,
  aHi: number,
  aLo: number,
  bSE: number,
  bHi: number,
  bLo: number,
  p: number,
): boolean {
  x[0] = aLo & 0xffff;
  x[1] = aLo >>> 16;
  x[2] = aHi & 0xffff;
  x[3] = aHi >>> 16;
  y[0] = bLo & 0xffff;
  y[1] = bLo >>> 16;
  y[2] = bHi & 0xffff;
  y[3] = bHi >>> 16;
  col.fill(0);
  for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) col[i + j] += x[i] * y[j];
  // Carry-propagate into 16-bit limbs (each column < 2^35, so doubles stay exact).
  let carry = 0;
  for (let k = 0; k < 8; k++) {
    const v = col[k] + carry;
    const limb = v % 65536;
    carry = (v - limb) / 65536;
    col[k] = limb;
  }
  let p3 = (col[7] * 65536 + col[6]) >>> 0;
  let p2 = (col[5] * 65536 + col[4]) >>> 0;
  let p1 = (col[3] * 65536 + col[2]) >>> 0;
  let p0 = (col[1] * 65536 + col[0]) >>> 0;
  let exp = (aSE & 0x7fff) + (bSE & 0x7fff) - 16383 + 1;
  if ((p3 & 0x80000000) === 0) {
    p3 = ((p3 << 1) | (p2 >>> 31)) >>> 0;
    p2 = ((p2 << 1) | (p1 >>> 31)) >>> 0;
    p1 = ((p1 << 1) | (p0 >>> 31)) >>> 0;
    p0 = (p0 << 1) >>> 0;
    exp -= 1;
  }
  w[2] = p3;
  w[1] = p2;
  w[0] = p0 !== 0 ? (p1 | 1) >>> 0 : p1;
  return roundAndStore(env, (aSE ^ bSE) >>> 15, exp, p);
}

/** (-1)^(sa^sb) * a / b for normal operands, by restoring division to 68 quotient bits plus sticky. */
export function fastDiv(
  env: FpEnv,
  aSE: number,
  aHi: number,
  aLo: number,
  bSE: number,
  bHi: number,
  bLo: number,
  p: number,
): boolean {
  let rHi = aHi;
  let rLo = aLo;
  let carry = 0;
  let qA = 0;
  let qB = 0;
  let qC = 0;
  for (let k = 0; k < 68; k++) {
    if (k > 0) {
      carry = rHi >>> 31;
      rHi = ((rHi << 1) | (rLo >>> 31)) >>> 0;
      rLo = (rLo << 1) >>> 0;
    }
    let bit = 0;
    if (carry !== 0 || rHi > bHi || (rHi === bHi && rLo >= bLo)) {
      let lo = rLo - bLo;
      let borrow = 0;
      if (lo < 0) {
        lo += TWO32;
        borrow = 1;
      }
      rHi = (rHi - bHi - borrow) >>> 0;
      rLo = lo;
      bit = 1;
    }
    qA = ((qA << 1) | (qB >>> 31)) >>> 0;
    qB = ((qB << 1) | (qC >>> 31)) >>> 0;
    qC = ((qC << 1) | bit) >>> 0;
  }
  // The 68 quotient bits (weights 2^0 .. 2^-67) sit at the bottom of qA:qB:qC; align bit 67 to 95.
  w[2] = ((qA << 28) | (qB >>> 4)) >>> 0;
  w[1] = ((qB << 28) | (qC >>> 4)) >>> 0;
  w[0] = (qC << 28) >>> 0;
  let exp = (aSE & 0x7fff) - (bSE & 0x7fff) + 16383;
  if ((w[2] & 0x80000000) === 0) {
    w[2] = ((w[2] << 1) | (w[1] >>> 31)) >>> 0;
    w[1] = ((w[1] << 1) | (w[0] >>> 31)) >>> 0;
    w[0] = (w[0] << 1) >>> 0;
    exp -= 1;
  }
  if (rHi !== 0 || rLo !== 0) w[0] = (w[0] | 1) >>> 0;
  return roundAndStore(env, (aSE ^ bSE) >>> 15, exp, p);
}

/**
 * Rounds a normal register image to `p` significand bits (FST m32: 24, FST m64: 53) when the result
 * stays a normal number of that format (unbiased exponent within [emin, emax]); false otherwise.
 */
export function fastNarrow(
  env: FpEnv,
  signExp: number,
  hi: number,
  lo: number,
  p: number,
  emin: number,
  emax: number,
): boolean {
  w[2] = hi;
  w[1] = lo;
  w[0] = 0;
  const flags = env.flags;
  if (!roundAndStore(env, signExp >>> 15, signExp & 0x7fff, p)) return false;
  const unbiased = (fastResult.signExp & 0x7fff) - 16383;
  if (unbiased < emin || unbiased > emax) {
    env.flags = flags;
    env.roundedUp = false;
    return false;
  }
  return true;
}

// Register images that are normal doubles: biased exponents (bias 16383) of the double range
// (bias 1023), and significands whose low 11 bits are clear.
export const DOUBLE_EXP_MIN = 16383 - 1022;
export const DOUBLE_EXP_MAX = 16383 + 1023;

/**
 * 2^(e - 16383) for the biased exponents e that are normal doubles, by e - DOUBLE_EXP_MIN. (Not
 * folded with the significand's 2^-63: that product is no double at the range's lower end.)
 */
export const DOUBLE_SCALE = Float64Array.from(
  { length: DOUBLE_EXP_MAX - DOUBLE_EXP_MIN + 1 },
  (_, k) => 2 ** (k + DOUBLE_EXP_MIN - 16383),
);

/** A double and its two 32-bit halves, for taking a double result apart. */
export const doubleBits = new Float64Array(1);
export const doubleHalves = new Uint32Array(doubleBits.buffer);

/** The halves' order follows the host; a big-endian host never takes the double path. */
export const LITTLE_ENDIAN_HOST = (() => {
  doubleBits[0] = 1;
  return doubleHalves[1] === 0x3ff00000;
})();

/** Bits from the top of a 64-bit significand down to its lowest set bit. */
export function significantBits(hi: number, lo: number): number {
  if (lo !== 0) return 64 - (31 - Math.clz32(lo & -lo));
  return 32 - (31 - Math.clz32(hi & -hi));
}
