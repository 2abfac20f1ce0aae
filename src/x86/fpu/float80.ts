// Extended-precision (80-bit) arithmetic with the x87's rounding, exception and NaN rules.
//
// A value is { sign, exp, sig }: the 15-bit biased exponent field and the 64-bit significand with its
// explicit integer bit, exactly as in the register. Arithmetic works on exact BigInt intermediates
// and rounds once in roundPack, which also implements precision control, the masked and unmasked
// overflow/underflow responses and C1 (rounded up). Flags accumulate in an FpEnv for the instruction.

export interface F80 {
  readonly sign: number; // 0 or 1
  readonly exp: number; // biased exponent field, 0..0x7fff
  readonly sig: bigint; // 64-bit significand, bit 63 is the explicit integer bit
}

// Status word exception flag bits.
export const FLAG_IE = 0x01; // invalid operation
export const FLAG_DE = 0x02; // denormal operand
export const FLAG_ZE = 0x04; // divide by zero
export const FLAG_OE = 0x08; // overflow
export const FLAG_UE = 0x10; // underflow
export const FLAG_PE = 0x20; // precision (inexact)

export const RC_NEAREST = 0;
export const RC_DOWN = 1;
export const RC_UP = 2;
export const RC_CHOP = 3;

const EXP_BIAS = 16383;
const EXP_MAX = 0x7fff;
/** Bias adjustment of unmasked overflow/underflow results kept in a register (SDM 4.9.1.4/4.9.1.5). */
const WRAP_BIAS = 24576;

export const SIG_INTEGER_BIT = 1n << 63n;
const SIG_QUIET_BIT = 1n << 62n;
const SIG_MASK = (1n << 64n) - 1n;

/** Per-instruction rounding context and accumulated exception flags. */
export class FpEnv {
  rounding = RC_NEAREST;
  /** Significand bits for FADD/FSUB/FMUL/FDIV/FSQRT (precision control): 24, 53 or 64. */
  precision = 64;
  /** Exception mask bits of the control word (low 6 bits). */
  masks = 0x3f;
  /** Flags raised so far. */
  flags = 0;
  /** The last inexact rounding went up in magnitude (becomes C1). */
  roundedUp = false;

  begin(rounding: number, precision: number, masks: number): void {
    this.rounding = rounding;
    this.precision = precision;
    this.masks = masks;
    this.flags = 0;
    this.roundedUp = false;
  }
}

export function f80(sign: number, exp: number, sig: bigint): F80 {
  return { sign, exp, sig };
}

export const POS_ZERO: F80 = f80(0, 0, 0n);
export const NEG_ZERO: F80 = f80(1, 0, 0n);
export const POS_ONE: F80 = f80(0, EXP_BIAS, SIG_INTEGER_BIT);
/** QNaN floating-point indefinite. */
export const INDEFINITE: F80 = f80(1, EXP_MAX, 0xc000000000000000n);

export function zero(sign: number): F80 {
  return sign ? NEG_ZERO : POS_ZERO;
}

export function infinity(sign: number): F80 {
  return f80(sign, EXP_MAX, SIG_INTEGER_BIT);
}

// ---- classification ----

export function isNaN80(a: F80): boolean {
  return a.exp === EXP_MAX && (a.sig & SIG_INTEGER_BIT) !== 0n && (a.sig & ~SIG_INTEGER_BIT) !== 0n;
}

export function isSignalingNaN(a: F80): boolean {
  return isNaN80(a) && (a.sig & SIG_QUIET_BIT) === 0n;
}

export function isInfinity(a: F80): boolean {
  return a.exp === EXP_MAX && a.sig === SIG_INTEGER_BIT;
}

export function isZero(a: F80): boolean {
  return a.exp === 0 && a.sig === 0n;
}

/** Denormals and pseudo-denormals (exponent 0, non-zero significand). */
export function isDenormal(a: F80): boolean {
  return a.exp === 0 && a.sig !== 0n;
}

/** Pseudo-NaN, pseudo-infinity and unnormal encodings: invalid operands since the 80387. */
export function isUnsupported(a: F80): boolean {
  return a.exp !== 0 && (a.sig & SIG_INTEGER_BIT) === 0n;
}

export function isFiniteNonZero(a: F80): boolean {
  return a.exp !== EXP_MAX && !isZero(a);
}

export function quiet(a: F80): F80 {
  return f80(a.sign, a.exp, a.sig | SIG_QUIET_BIT);
}

export function negate(a: F80): F80 {
  return f80(a.sign ^ 1, a.exp, a.sig);
}

export function abs80(a: F80): F80 {
  return a.sign ? f80(0, a.exp, a.sig) : a;
}

/** Exponent of the significand's lsb: value = sig * 2^unbiasedLsb(a) for finite values. */
function lsbExponent(a: F80): number {
  return (a.exp === 0 ? 1 : a.exp) - EXP_BIAS - 63;
}

/** Number of significant bits of x > 0. */
export function bitLength(x: bigint): number {
  if (x < 0x20000000000000n) return bitsOf(Number(x));
  const approx = Number(x);
  if (approx < 2 ** 1000) {
    // Number(x) may round up across a power of two: correct by one if needed.
    const guess = Math.floor(Math.log2(approx)) + 1;
    return x >> BigInt(guess - 1) === 0n ? guess - 1 : x >> BigInt(guess) !== 0n ? guess + 1 : guess;
  }
  return x.toString(16).length * 4 - (Math.clz32(Number.parseInt(x.toString(16)[0], 16)) - 28);
}

function bitsOf(n: number): number {
  // n < 2^53, exact
  return n < 2 ** 32 ? 32 - Math.clz32(n) : 32 + (32 - Math.clz32(Math.floor(n / 2 ** 32)));
}

// ---- rounding ----

export interface Format {
  readonly emin: number; // smallest normal unbiased exponent
  readonly emax: number; // largest unbiased exponent
  readonly bias: number;
}

export const EXTENDED: Format = { emin: -16382, emax: 16383, bias: EXP_BIAS };
export const DOUBLE: Format = { emin: -1022, emax: 1023, bias: 1023 };
export const SINGLE: Format = { emin: -126, emax: 127, bias: 127 };

/** Rounded value in a target format: exponent field and p-bit significand integer (or denormal). */
export interface Rounded {
  sign: number;
  exp: number;
  sig: bigint;
  /** Unmasked overflow or underflow happened (memory destinations are then left alone). */
  trapped: boolean;
}

/** Rounds sig*2^e to a multiple of 2^lsb; returns the multiplier and sets roundInexact/roundUp. */
let roundInexact = false;
let roundUp = false;
function roundAt(sign: number, sig: bigint, e: number, lsb: number, rounding: number): bigint {
  const shift = lsb - e;
  roundInexact = false;
  roundUp = false;
  if (shift <= 0) return sig << BigInt(-shift);
  const s = BigInt(shift);
  const q = sig >> s;
  const rem = sig - (q << s);
  if (rem === 0n) return q;
  roundInexact = true;
  let inc: boolean;
  switch (rounding) {
    case RC_NEAREST: {
      const half = 1n << (s - 1n);
      inc = rem > half || (rem === half && (q & 1n) === 1n);
      break;
    }
    case RC_DOWN:
      inc = sign === 1;
      break;
    case RC_UP:
      inc = sign === 0;
      break;
    default:
      inc = false;
  }
  roundUp = inc;
  return inc ? q + 1n : q;
}

/**
 * Rounds the exact value (-1)^sign * sig * 2^e (sig > 0; callers fold any sticky bits into sig's
 * low bits below the rounding point) to p significand bits in `fmt`. `wrap` selects the register
 * response to unmasked overflow/underflow (exponent re-biased by 24576) as opposed to the memory one.
 */
export function roundPack(
  env: FpEnv,
  sign: number,
  sig: bigint,
  e: number,
  p: number,
  fmt: Format,
  wrap: boolean,
): Rounded {
  const lead = e + bitLength(sig) - 1;
  let lsb = Math.max(lead, fmt.emin) - (p - 1);
  let q = roundAt(sign, sig, e, lsb, env.rounding);
  const inexact = roundInexact;
  const up = roundUp;
  if (bitLength(q) > p) {
    q >>= 1n;
    lsb += 1;
  }
  const newLead = q === 0n ? fmt.emin - 1 : lsb + bitLength(q) - 1;
  const result: Rounded = { sign, exp: 0, sig: 0n, trapped: false };

  if (lead < fmt.emin) {
    // Tininess is detected after rounding (to p bits with an unbounded exponent).
    let qu = roundAt(sign, sig, e, lead - (p - 1), env.rounding);
    const inexactU = roundInexact;
    const upU = roundUp;
    let leadU = lead;
    if (bitLength(qu) > p) {
      qu >>= 1n;
      leadU += 1;
    }
    if (leadU < fmt.emin) {
      if ((env.masks & FLAG_UE) === 0) {
        env.flags |= FLAG_UE;
        result.trapped = true;
        if (inexactU) {
          env.flags |= FLAG_PE;
          env.roundedUp = upU;
        }
        if (wrap) {
          result.exp = leadU + fmt.bias + WRAP_BIAS;
          result.sig = qu;
        }
        return result;
      }
      if (inexact) env.flags |= FLAG_UE;
    }
  }
  if (newLead > fmt.emax) {
    env.flags |= FLAG_OE;
    if ((env.masks & FLAG_OE) === 0) {
      result.trapped = true;
      if (inexact) {
        env.flags |= FLAG_PE;
        env.roundedUp = up;
      }
      if (wrap) {
        result.exp = newLead + fmt.bias - WRAP_BIAS;
        result.sig = q;
      }
      return result;
    }
    env.flags |= FLAG_PE;
    const toInfinity =
      env.rounding === RC_NEAREST ||
      (env.rounding === RC_UP && sign === 0) ||
      (env.rounding === RC_DOWN && sign === 1);
    env.roundedUp = toInfinity;
    if (toInfinity) {
      result.exp = fmt.emax + fmt.bias + 1;
      result.sig = 1n << BigInt(p - 1);
    } else {
      result.exp = fmt.emax + fmt.bias;
      result.sig = (1n << BigInt(p)) - 1n;
    }
    return result;
  }
  if (inexact) {
    env.flags |= FLAG_PE;
    env.roundedUp = up;
  }
  if (q === 0n) {
    result.exp = 0;
    result.sig = 0n;
  } else if (newLead < fmt.emin) {
    result.exp = 0;
    result.sig = q; // lsb is emin - (p - 1): the denormal encoding
  } else {
    result.exp = newLead + fmt.bias;
    result.sig = q;
  }
  return result;
}

/** roundPack to extended format with precision p, as a register value (64-bit significand). */
export function roundToF80(env: FpEnv, sign: number, sig: bigint, e: number, p: number): F80 {
  if (sig === 0n) return zero(sign);
  const r = roundPack(env, sign, sig, e, p, EXTENDED, true);
  if (r.exp === 0 && r.sig === 0n) return zero(sign);
  return f80(sign, r.exp & EXP_MAX, (r.sig << BigInt(64 - p)) & SIG_MASK);
}

// ---- NaN rules ----

/** Result of an operation with at least one NaN operand (SDM table 4-7, x87 column). */
export function propagateNaN(env: FpEnv, a: F80, b: F80): F80 {
  const aNaN = isNaN80(a);
  const bNaN = isNaN80(b);
  const aSignal = aNaN && isSignalingNaN(a);
  const bSignal = bNaN && isSignalingNaN(b);
  if (aSignal || bSignal) env.flags |= FLAG_IE;
  if (!bNaN) return quiet(a);
  if (!aNaN) return quiet(b);
  if (aSignal !== bSignal) return aSignal ? b : a; // a QNaN beats an SNaN
  const qa = a.sig | SIG_QUIET_BIT;
  const qb = b.sig | SIG_QUIET_BIT;
  if (qa > qb) return quiet(a);
  if (qb > qa) return quiet(b);
  return a.sign <= b.sign ? quiet(a) : quiet(b);
}

/** Common operand screening for two-operand arithmetic: returns the result if it is decided here. */
function screen2(env: FpEnv, a: F80, b: F80): F80 | null {
  if (isUnsupported(a) || isUnsupported(b)) {
    env.flags |= FLAG_IE;
    return INDEFINITE;
  }
  if (isNaN80(a) || isNaN80(b)) return propagateNaN(env, a, b);
  if (isDenormal(a) || isDenormal(b)) env.flags |= FLAG_DE;
  return null;
}

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

function invalid(env: FpEnv): F80 {
  env.flags |= FLAG_IE;
  return INDEFINITE;
}

// ---- arithmetic ----

export function add(env: FpEnv, a: F80, b: F80, p: number): F80 {
  const s = screen2(env, a, b);
  if (s) return s;
  const aInf = a.exp === EXP_MAX;
  const bInf = b.exp === EXP_MAX;
  if (aInf || bInf) {
    if (aInf && bInf && a.sign !== b.sign) return invalid(env);
    return aInf ? a : b;
  }
  const aZero = isZero(a);
  const bZero = isZero(b);
  if (aZero && bZero) {
    if (a.sign === b.sign) return a;
    return zero(env.rounding === RC_DOWN ? 1 : 0);
  }
  if (aZero) return roundToF80(env, b.sign, b.sig, lsbExponent(b), p);
  if (bZero) return roundToF80(env, a.sign, a.sig, lsbExponent(a), p);
  let ea = lsbExponent(a);
  let eb = lsbExponent(b);
  let ma = a.sig;
  let mb = b.sig;
  // Keep far-apart operands small: the smaller one only matters as a sticky bit.
  const FAR = 140;
  if (ea - eb > FAR) {
    mb = 1n;
    eb = ea - FAR;
  } else if (eb - ea > FAR) {
    ma = 1n;
    ea = eb - FAR;
  }
  const e = Math.min(ea, eb);
  const va = (a.sign ? -ma : ma) << BigInt(ea - e);
  const vb = (b.sign ? -mb : mb) << BigInt(eb - e);
  const sum = va + vb;
  if (sum === 0n) return zero(env.rounding === RC_DOWN ? 1 : 0);
  return sum < 0n ? roundToF80(env, 1, -sum, e, p) : roundToF80(env, 0, sum, e, p);
}

export function sub(env: FpEnv, a: F80, b: F80, p: number): F80 {
  // Negating b before screening would be wrong for NaN propagation: screen first.
  const s = screen2(env, a, b);
  if (s) return s;
  return add(env, a, negate(b), p);
}

export function mul(env: FpEnv, a: F80, b: F80, p: number): F80 {
  const s = screen2(env, a, b);
  if (s) return s;
  const sign = a.sign ^ b.sign;
  const aInf = a.exp === EXP_MAX;
  const bInf = b.exp === EXP_MAX;
  if (aInf || bInf) {
    if (isZero(a) || isZero(b)) return invalid(env);
    return infinity(sign);
  }
  if (isZero(a) || isZero(b)) return zero(sign);
  return roundToF80(env, sign, a.sig * b.sig, lsbExponent(a) + lsbExponent(b), p);
}

export function div(env: FpEnv, a: F80, b: F80, p: number): F80 {
  const s = screen2(env, a, b);
  if (s) return s;
  const sign = a.sign ^ b.sign;
  const aInf = a.exp === EXP_MAX;
  const bInf = b.exp === EXP_MAX;
  if (aInf && bInf) return invalid(env);
  if (aInf) return infinity(sign);
  if (bInf) return zero(sign);
  if (isZero(b)) {
    if (isZero(a)) return invalid(env);
    env.flags |= FLAG_ZE;
    return infinity(sign);
  }
  if (isZero(a)) return zero(sign);
  const EXTRA = 130n;
  const num = a.sig << EXTRA;
  let q = num / b.sig;
  if (q * b.sig !== num) q |= 1n; // sticky
  return roundToF80(env, sign, q, lsbExponent(a) - lsbExponent(b) - Number(EXTRA), p);
}

export function isqrt(n: bigint): bigint {
  if (n < 2n) return n;
  // Start from a double-precision estimate a little above the root; Newton then descends to it.
  const len = bitLength(n);
  const shift = len > 100 ? (len - 100) & ~1 : 0;
  const top = Number(n >> BigInt(shift));
  let x = (BigInt(Math.ceil(Math.sqrt(top) * (1 + 2 ** -40))) + 1n) << BigInt(shift / 2);
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

export function sqrt(env: FpEnv, a: F80, p: number): F80 {
  const s = screen1(env, a);
  if (s) return s;
  if (isZero(a)) return a;
  if (a.sign) return invalid(env);
  if (a.exp === EXP_MAX) return a;
  let e = lsbExponent(a);
  let m = a.sig;
  // Scale so the root has well over 66 bits and the exponent is even.
  let shift = 140;
  if ((e - shift) % 2 !== 0) shift += 1;
  m <<= BigInt(shift);
  e -= shift;
  let r = isqrt(m);
  if (r * r !== m) r |= 1n;
  return roundToF80(env, 0, r, e / 2, p);
}

// ---- comparison ----

export const CMP_LESS = -1;
export const CMP_EQUAL = 0;
export const CMP_GREATER = 1;
export const CMP_UNORDERED = 2;

/** Compares a with b; `quietCompare` (FUCOM) raises IE only for SNaNs, FCOM for any NaN. */
export function compare(env: FpEnv, a: F80, b: F80, quietCompare: boolean): number {
  if (isUnsupported(a) || isUnsupported(b)) {
    env.flags |= FLAG_IE;
    return CMP_UNORDERED;
  }
  if (isNaN80(a) || isNaN80(b)) {
    if (!quietCompare || isSignalingNaN(a) || isSignalingNaN(b)) env.flags |= FLAG_IE;
    return CMP_UNORDERED;
  }
  if (isDenormal(a) || isDenormal(b)) env.flags |= FLAG_DE;
  const aZero = isZero(a);
  const bZero = isZero(b);
  if (aZero && bZero) return CMP_EQUAL;
  if (a.sign !== b.sign) return aZero ? (b.sign ? CMP_GREATER : CMP_LESS) : a.sign ? CMP_LESS : CMP_GREATER;
  const mag = compareMagnitude(a, b);
  return a.sign ? -mag : mag;
}

function compareMagnitude(a: F80, b: F80): number {
  if (isZero(a)) return isZero(b) ? 0 : -1;
  if (isZero(b)) return 1;
  if (a.exp === EXP_MAX || b.exp === EXP_MAX) {
    if (a.exp === b.exp) return 0;
    return a.exp === EXP_MAX ? 1 : -1;
  }
  // Pseudo-denormals share the exponent of the smallest normals, so compare exact values.
  const ea = lsbExponent(a);
  const eb = lsbExponent(b);
  const e = Math.min(ea, eb);
  const va = a.sig << BigInt(ea - e);
  const vb = b.sig << BigInt(eb - e);
  return va < vb ? -1 : va > vb ? 1 : 0;
}

// ---- integers ----

/** Exact conversion of an integer (|v| < 2^64) to extended. */
export function fromBigInt(v: bigint): F80 {
  if (v === 0n) return POS_ZERO;
  const sign = v < 0n ? 1 : 0;
  const m = sign ? -v : v;
  const len = bitLength(m);
  return f80(sign, EXP_BIAS + len - 1, m << BigInt(64 - len));
}

/**
 * Rounds a finite value to an integer under `rounding`, returning the exact integer, with PE and
 * roundedUp set for inexact results.
 */
export function roundToInteger(env: FpEnv, a: F80, rounding: number): bigint {
  if (isZero(a)) return 0n;
  const e = lsbExponent(a);
  if (e >= 0) {
    const v = a.sig << BigInt(e);
    return a.sign ? -v : v;
  }
  let q: bigint;
  if (e < -70) {
    // |a| < 1/2 for sure: only the sticky bit matters.
    q = roundAt(a.sign, 1n, -2, 0, rounding);
  } else {
    q = roundAt(a.sign, a.sig, e, 0, rounding);
  }
  if (roundInexact) {
    env.flags |= FLAG_PE;
    env.roundedUp = roundUp;
  }
  return a.sign ? -q : q;
}

/**
 * FIST/FISTP: converts to a signed integer of `bits` bits. Returns null (and raises IE) when the
 * value is a NaN, infinity, unsupported or out of range; the caller stores the integer indefinite.
 */
export function toInteger(env: FpEnv, a: F80, bits: number): bigint | null {
  if (isUnsupported(a) || a.exp === EXP_MAX) {
    env.flags |= FLAG_IE;
    return null;
  }
  const saved = env.flags;
  const savedUp = env.roundedUp;
  const v = roundToInteger(env, a, env.rounding);
  const limit = 1n << BigInt(bits - 1);
  if (v >= limit || v < -limit) {
    env.flags = saved | FLAG_IE;
    env.roundedUp = savedUp;
    return null;
  }
  return v;
}

/** FRNDINT. */
export function roundToIntegral(env: FpEnv, a: F80): F80 {
  const s = screen1(env, a);
  if (s) return s;
  if (a.exp === EXP_MAX || isZero(a)) return a;
  if (a.exp >= EXP_BIAS + 63) return a; // already integral
  const v = roundToInteger(env, a, env.rounding);
  if (v === 0n) return zero(a.sign);
  const r = fromBigInt(v);
  return r.sign === a.sign ? r : negate(r);
}

// ---- single and double ----

/** Converts a 32-bit real to extended (exact). SNaNs raise IE and come back quiet; denormals raise DE. */
export function fromFloat32(env: FpEnv, bits: number): F80 {
  const sign = bits >>> 31;
  const exp = (bits >>> 23) & 0xff;
  const frac = BigInt(bits & 0x7fffff);
  if (exp === 0xff) {
    if (frac === 0n) return infinity(sign);
    const nan = f80(sign, EXP_MAX, SIG_INTEGER_BIT | (frac << 40n));
    if (isSignalingNaN(nan)) env.flags |= FLAG_IE;
    return quiet(nan);
  }
  if (exp === 0) {
    if (frac === 0n) return zero(sign);
    env.flags |= FLAG_DE;
    const len = bitLength(frac);
    return f80(sign, EXP_BIAS - 126 - 23 + len - 1, frac << BigInt(64 - len));
  }
  return f80(sign, exp - 127 + EXP_BIAS, SIG_INTEGER_BIT | (frac << 40n));
}

export function fromFloat64(env: FpEnv, lo: number, hi: number): F80 {
  const sign = hi >>> 31;
  const exp = (hi >>> 20) & 0x7ff;
  const frac = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo >>> 0);
  if (exp === 0x7ff) {
    if (frac === 0n) return infinity(sign);
    const nan = f80(sign, EXP_MAX, SIG_INTEGER_BIT | (frac << 11n));
    if (isSignalingNaN(nan)) env.flags |= FLAG_IE;
    return quiet(nan);
  }
  if (exp === 0) {
    if (frac === 0n) return zero(sign);
    env.flags |= FLAG_DE;
    const len = bitLength(frac);
    return f80(sign, EXP_BIAS - 1022 - 52 + len - 1, frac << BigInt(64 - len));
  }
  return f80(sign, exp - 1023 + EXP_BIAS, SIG_INTEGER_BIT | (frac << 11n));
}

/**
 * Rounds to single precision. Returns the 32-bit pattern, or null when an unmasked overflow or
 * underflow leaves memory untouched.
 */
export function toFloat32(env: FpEnv, a: F80): number | null {
  const r = toNarrow(env, a, 24, SINGLE, 8);
  if (r === null) return null;
  return Number(r) >>> 0;
}

/** Rounds to double precision: [low, high] words, or null (see toFloat32). */
export function toFloat64(env: FpEnv, a: F80): bigint | null {
  return toNarrow(env, a, 53, DOUBLE, 11);
}

function toNarrow(env: FpEnv, a: F80, p: number, fmt: Format, expBits: number): bigint | null {
  const fracBits = BigInt(p - 1);
  const signBit = BigInt(a.sign) << BigInt(p - 1 + expBits);
  const expAllOnes = (1n << BigInt(expBits)) - 1n;
  if (isUnsupported(a)) {
    env.flags |= FLAG_IE;
    return (1n << BigInt(p - 1 + expBits)) | (expAllOnes << fracBits) | (1n << (fracBits - 1n));
  }
  if (a.exp === EXP_MAX) {
    let frac = (a.sig & ~SIG_INTEGER_BIT) >> BigInt(64 - p);
    if (isNaN80(a)) {
      if (isSignalingNaN(a)) env.flags |= FLAG_IE;
      frac |= 1n << (fracBits - 1n);
    }
    return signBit | (expAllOnes << fracBits) | frac;
  }
  if (isZero(a)) return signBit;
  const r = roundPack(env, a.sign, a.sig, lsbExponent(a), p, fmt, false);
  if (r.trapped) return null;
  const frac = r.sig & ((1n << fracBits) - 1n);
  const exp = r.exp === 0 ? 0n : BigInt(r.exp);
  return signBit | (exp << fracBits) | frac;
}

// ---- FSCALE, FXTRACT, FPREM ----

export function scale(env: FpEnv, a: F80, b: F80): F80 {
  const s = screen2(env, a, b);
  if (s) return s;
  const aInf = a.exp === EXP_MAX;
  const bInf = b.exp === EXP_MAX;
  if (bInf) {
    if (b.sign) {
      if (aInf) return invalid(env);
      return zero(a.sign);
    }
    if (isZero(a)) return invalid(env);
    return infinity(a.sign);
  }
  if (aInf || isZero(a)) return a;
  // Truncate the scale factor toward zero; beyond +-2^20 the result saturates anyway.
  let n: number;
  if (isZero(b) || b.exp < EXP_BIAS) n = 0;
  else if (b.exp > EXP_BIAS + 20) n = b.sign ? -(1 << 21) : 1 << 21;
  else {
    const mag = Number(b.sig >> BigInt(EXP_BIAS + 63 - b.exp));
    n = b.sign ? -mag : mag;
  }
  return roundToF80(env, a.sign, a.sig, lsbExponent(a) + n, 64);
}

/** FXTRACT: [exponent, significand] of a; the exponent goes to ST(1), the significand to ST(0). */
export function extract(env: FpEnv, a: F80): [F80, F80] {
  const s = screen1(env, a);
  if (s) return [s, s];
  if (isZero(a)) {
    env.flags |= FLAG_ZE;
    return [infinity(1), a];
  }
  if (a.exp === EXP_MAX) return [infinity(0), a];
  const len = bitLength(a.sig);
  const unbiased = lsbExponent(a) + len - 1;
  return [fromBigInt(BigInt(unbiased)), f80(a.sign, EXP_BIAS, a.sig << BigInt(64 - len))];
}

/** FPREM/FPREM1 outcome: the remainder, the low quotient bits and whether reduction is incomplete. */
export interface Remainder {
  value: F80;
  quotientLow: number; // Q2 Q1 Q0
  incomplete: boolean; // C2
  /** An invalid or NaN case: condition codes other than C2 are left alone. */
  special: boolean;
}

export function remainder(env: FpEnv, a: F80, b: F80, nearest: boolean): Remainder {
  const out: Remainder = { value: a, quotientLow: 0, incomplete: false, special: true };
  const s = screen2(env, a, b);
  if (s) {
    out.value = s;
    return out;
  }
  if (a.exp === EXP_MAX || isZero(b)) {
    out.value = invalid(env);
    return out;
  }
  if (b.exp === EXP_MAX || isZero(a)) {
    out.special = false;
    return out; // a unchanged, quotient 0
  }
  out.special = false;
  const ea = lsbExponent(a);
  const eb = lsbExponent(b);
  const lenA = bitLength(a.sig);
  const lenB = bitLength(b.sig);
  const d = ea + lenA - 1 - (eb + lenB - 1);
  if (d >= 64) {
    // Partial reduction: bring the exponent difference down by a multiple of 32 (SDM: by 32..63).
    const reduce = d - (32 + (d % 32));
    // a - b * trunc(a / (b * 2^reduce)) * 2^reduce, computed exactly.
    const e = Math.min(ea, eb + reduce);
    const va = a.sig << BigInt(ea - e);
    const vb = b.sig << BigInt(eb + reduce - e);
    const q = va / vb;
    const r = va - q * vb;
    out.incomplete = true;
    out.value = r === 0n ? zero(a.sign) : roundToF80(env, a.sign, r, e, 64);
    return out;
  }
  if (d < -1 || (d < 0 && !nearest)) {
    // |a| < |b| (and, for FPREM1, |a| < |b|/2): the remainder is a itself.
    return out;
  }
  const e = Math.min(ea, eb);
  const va = a.sig << BigInt(ea - e);
  const vb = b.sig << BigInt(eb - e);
  let q = va / vb;
  let r = va - q * vb;
  let sign = a.sign;
  if (nearest) {
    const twice = r << 1n;
    if (twice > vb || (twice === vb && (q & 1n) === 1n)) {
      q += 1n;
      r = vb - r;
      sign ^= 1;
    }
  }
  out.quotientLow = Number(q & 7n);
  out.value = r === 0n ? zero(a.sign) : roundToF80(env, sign, r, e, 64);
  return out;
}
