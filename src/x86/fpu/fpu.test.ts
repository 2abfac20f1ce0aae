import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type F80, f80 } from "./float80.ts";
import { Fpu, isReservedEscape } from "./fpu.ts";
import {
  EFLAGS_CF,
  EFLAGS_PF,
  EFLAGS_ZF,
  FPU_DONE,
  FPU_FREEZE,
  FPU_INVALID_OPCODE,
  FPU_RAISE_MF,
} from "./host.ts";
import { exec, hex80, PageFault, parse80, run, TestHost } from "./test-host.ts";

// Status word bits used below.
const IE = 0x01;
const DE = 0x02;
const ZE = 0x04;
const OE = 0x08;
const UE = 0x10;
const PE = 0x20;
const SF = 0x40;
const ES = 0x80;
const C0 = 0x100;
const C1 = 0x200;
const C2 = 0x400;
const C3 = 0x4000;
const B = 0x8000;

const M64 = 0x100; // scratch memory operand
const M80 = 0x180;

function setup(): { fpu: Fpu; host: TestHost } {
  const fpu = new Fpu();
  const host = new TestHost();
  exec(fpu, host, [0xdb, 0xe3]); // FNINIT
  return { fpu, host };
}

function fldDouble(fpu: Fpu, host: TestHost, v: number): void {
  host.writeF64(M64, v);
  exec(fpu, host, [0xdd, 0x05], M64);
}

function fld80(fpu: Fpu, host: TestHost, v: F80 | string): void {
  host.writeF80(M80, typeof v === "string" ? parse80(v) : v);
  exec(fpu, host, [0xdb, 0x2d], M80);
}

/** FSTP m64 and return the double. */
function popDouble(fpu: Fpu, host: TestHost): number {
  exec(fpu, host, [0xdd, 0x1d], M64);
  return host.readF64(M64);
}

function setControl(fpu: Fpu, host: TestHost, cw: number): void {
  host.write16(0x80, cw);
  exec(fpu, host, [0xd9, 0x2d], 0x80);
}

function status(fpu: Fpu): number {
  return fpu.statusWord & ~0x3800;
}

describe("initialisation", () => {
  test("power-on state is FCW 0040h, FSW 0, all registers +0 with zero tags", () => {
    const fpu = new Fpu();
    assert.equal(fpu.control, 0x0040);
    assert.equal(fpu.statusWord, 0);
    assert.equal(fpu.tagWord, 0x5555);
    assert.equal(hex80(fpu.st(0)), "0000:0000000000000000");
  });

  test("FNINIT sets FCW 037Fh, FSW 0, all tags empty, pointers 0", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1);
    exec(fpu, host, [0xdb, 0xe3]);
    assert.equal(fpu.control, 0x037f);
    assert.equal(fpu.statusWord, 0);
    assert.equal(fpu.tagWord, 0xffff);
    assert.equal(fpu.fip, 0);
    assert.equal(fpu.fdp, 0);
  });
});

describe("arithmetic, rounding and precision control", () => {
  test("FADD m64 adds exactly representable values", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1.5);
    host.writeF64(0x200, 2.25);
    exec(fpu, host, [0xdc, 0x05], 0x200);
    assert.equal(popDouble(fpu, host), 3.75);
    assert.equal(status(fpu) & PE, 0);
  });

  test("1/3 rounds per RC at 64-bit precision and sets C1 when rounded up", () => {
    const expected: [number, string, boolean][] = [
      [0, "3ffd:aaaaaaaaaaaaaaab", true],
      [1, "3ffd:aaaaaaaaaaaaaaaa", false],
      [2, "3ffd:aaaaaaaaaaaaaaab", true],
      [3, "3ffd:aaaaaaaaaaaaaaaa", false],
    ];
    for (const [rc, value, up] of expected) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      exec(fpu, host, [0xd9, 0xe8]); // FLD1
      fldDouble(fpu, host, 3);
      exec(fpu, host, [0xde, 0xf9]); // FDIVP: ST(1) = ST(1) / ST(0)
      assert.equal(hex80(fpu.st(0)), value, `rc=${rc}`);
      assert.equal(status(fpu) & (PE | C1), PE | (up ? C1 : 0), `rc=${rc}`);
    }
  });

  test("precision control rounds the significand to 24 and 53 bits", () => {
    for (const [pc, expected] of [
      [0, Math.fround(1 / 3)],
      [2, 1 / 3],
    ] as const) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x007f | (pc << 8));
      exec(fpu, host, [0xd9, 0xe8]);
      fldDouble(fpu, host, 3);
      exec(fpu, host, [0xde, 0xf9]);
      const v = fpu.st(0);
      assert.equal(v.exp, 0x3ffd);
      assert.equal(popDouble(fpu, host), expected, `pc=${pc}`);
    }
  });

  test("precision control does not apply to FLD or FRNDINT", () => {
    const { fpu, host } = setup();
    setControl(fpu, host, 0x007f); // PC = 24 bits
    fld80(fpu, host, "3fff:8000000000000001");
    assert.equal(hex80(fpu.st(0)), "3fff:8000000000000001");
    exec(fpu, host, [0xd9, 0xe1]); // FABS
    assert.equal(hex80(fpu.st(0)), "3fff:8000000000000001");
  });

  test("x + (-x) is +0, or -0 when rounding down", () => {
    for (const [rc, sign] of [
      [0, 0],
      [1, 1],
    ]) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      fldDouble(fpu, host, 5);
      fldDouble(fpu, host, -5);
      exec(fpu, host, [0xde, 0xc1]); // FADDP
      assert.equal(fpu.st(0).sign, sign);
      assert.ok(fpu.st(0).exp === 0 && fpu.st(0).sig === 0n);
    }
  });

  test("reverse and popping forms pick the right operands", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 10); // ST(1)
    fldDouble(fpu, host, 4); // ST(0)
    exec(fpu, host, [0xd8, 0xe1]); // FSUB ST(0), ST(1): 4 - 10
    assert.equal(popDouble(fpu, host), -6);
    fldDouble(fpu, host, 4);
    exec(fpu, host, [0xd8, 0xe9]); // FSUBR ST(0), ST(1): 10 - 4
    assert.equal(popDouble(fpu, host), 6);
    fldDouble(fpu, host, 4);
    exec(fpu, host, [0xdc, 0xe9]); // FSUB ST(1), ST(0): 10 - 4 -> ST(1)
    exec(fpu, host, [0xdd, 0xd8]);
    assert.equal(popDouble(fpu, host), 6);
    fldDouble(fpu, host, 10);
    fldDouble(fpu, host, 4);
    exec(fpu, host, [0xde, 0xf9]); // FDIVP ST(1), ST(0): 10 / 4
    assert.equal(popDouble(fpu, host), 2.5);
    fldDouble(fpu, host, 10);
    fldDouble(fpu, host, 4);
    exec(fpu, host, [0xde, 0xf1]); // FDIVRP ST(1), ST(0): 4 / 10
    assert.equal(popDouble(fpu, host), 0.4);
    assert.equal(fpu.tagWord, 0xffff);
  });

  test("integer operands: FIADD m32int, FIMUL m16int, FICOM", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 0.5);
    host.write32(0x200, -3 >>> 0);
    exec(fpu, host, [0xda, 0x05], 0x200);
    host.write16(0x204, 4);
    exec(fpu, host, [0xde, 0x0d], 0x204);
    assert.equal(fpu.st(0).sign, 1);
    host.write16(0x206, (-10 & 0xffff) >>> 0);
    exec(fpu, host, [0xde, 0x15], 0x206); // FICOM m16int: -10 vs -10
    assert.equal(status(fpu) & (C0 | C2 | C3), C3);
    assert.equal(popDouble(fpu, host), -10);
  });

  test("FSQRT is exact for squares and rounds otherwise; negative operands are invalid", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 144);
    exec(fpu, host, [0xd9, 0xfa]);
    assert.equal(popDouble(fpu, host), 12);
    assert.equal(status(fpu) & PE, 0);
    fldDouble(fpu, host, 2);
    exec(fpu, host, [0xd9, 0xfa]);
    assert.equal(hex80(fpu.st(0)), "3fff:b504f333f9de6484");
    exec(fpu, host, [0xdd, 0xd8]);
    fldDouble(fpu, host, -1);
    exec(fpu, host, [0xd9, 0xfa]);
    assert.equal(hex80(fpu.st(0)), "ffff:c000000000000000");
    assert.ok(status(fpu) & IE);
  });
});

describe("masked exception responses", () => {
  test("invalid operations give the QNaN indefinite", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, Number.POSITIVE_INFINITY);
    fldDouble(fpu, host, Number.NEGATIVE_INFINITY);
    exec(fpu, host, [0xde, 0xc1]);
    assert.equal(hex80(fpu.st(0)), "ffff:c000000000000000");
    assert.equal(status(fpu) & 0x3f, IE);
  });

  test("divide by zero gives a signed infinity", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, -3);
    fldDouble(fpu, host, 0);
    exec(fpu, host, [0xde, 0xf9]); // -3 / +0
    assert.equal(hex80(fpu.st(0)), "ffff:8000000000000000");
    assert.equal(status(fpu) & 0x3f, ZE);
  });

  test("overflow gives infinity or the largest finite value by rounding mode", () => {
    const cases: [number, number, string][] = [
      [0, 0, "7fff:8000000000000000"],
      [1, 0, "7ffe:ffffffffffffffff"],
      [2, 0, "7fff:8000000000000000"],
      [3, 0, "7ffe:ffffffffffffffff"],
      [1, 1, "ffff:8000000000000000"],
      [2, 1, "fffe:ffffffffffffffff"],
    ];
    for (const [rc, sign, expected] of cases) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      fld80(fpu, host, sign ? "fffe:ffffffffffffffff" : "7ffe:ffffffffffffffff");
      fld80(fpu, host, "4000:8000000000000000");
      exec(fpu, host, [0xde, 0xc9]);
      assert.equal(hex80(fpu.st(0)), expected, `rc=${rc} sign=${sign}`);
      assert.equal(status(fpu) & (OE | PE), OE | PE);
    }
  });

  test("tiny inexact results are denormalised with UE and PE; exact tiny results raise no UE", () => {
    const { fpu, host } = setup();
    fld80(fpu, host, "0001:8000000000000001");
    fld80(fpu, host, "3ffe:8000000000000000"); // 0.5
    exec(fpu, host, [0xde, 0xc9]);
    assert.equal(hex80(fpu.st(0)), "0000:4000000000000000"); // ties to even
    assert.equal(status(fpu) & (UE | PE), UE | PE);
    const second = setup();
    fld80(second.fpu, second.host, "0001:8000000000000000");
    fld80(second.fpu, second.host, "3ffe:8000000000000000");
    exec(second.fpu, second.host, [0xde, 0xc9]);
    assert.equal(hex80(second.fpu.st(0)), "0000:4000000000000000");
    assert.equal(status(second.fpu) & (UE | PE), 0);
  });

  test("tininess is detected after rounding", () => {
    // 2^-16382 (1 - 2^-26) at 24-bit precision rounds up to the smallest normal: tiny before rounding
    // but not after, so PE without UE.
    const { fpu, host } = setup();
    setControl(fpu, host, 0x007f);
    fld80(fpu, host, "0001:8000000000000000");
    fld80(fpu, host, "3ffe:ffffffc000000000");
    exec(fpu, host, [0xde, 0xc9]);
    assert.equal(hex80(fpu.st(0)), "0001:8000000000000000");
    assert.equal(status(fpu) & (UE | PE), PE);
    // 2^-16382 (1 - 2^-64) at 64 bits stays below the smallest normal after rounding: UE.
    const second = setup();
    fld80(second.fpu, second.host, "0001:ffffffffffffffff");
    fld80(second.fpu, second.host, "3ffe:8000000000000000");
    exec(second.fpu, second.host, [0xde, 0xc9]);
    assert.equal(hex80(second.fpu.st(0)), "0001:8000000000000000");
    assert.equal(status(second.fpu) & (UE | PE), UE | PE);
  });

  test("denormal operands raise DE and compute normally", () => {
    const { fpu, host } = setup();
    fld80(fpu, host, "0000:0000000000000001");
    fldDouble(fpu, host, 1);
    exec(fpu, host, [0xde, 0xc9]);
    assert.equal(hex80(fpu.st(0)), "0000:0000000000000001");
    assert.equal(status(fpu) & DE, DE);
  });

  test("SNaN operands raise IE and come back quiet; two NaNs give the larger significand", () => {
    const { fpu, host } = setup();
    fld80(fpu, host, "7fff:8000000000000005");
    fld80(fpu, host, "ffff:c000000000000001");
    exec(fpu, host, [0xde, 0xc1]);
    assert.equal(hex80(fpu.st(0)), "ffff:c000000000000001"); // the QNaN wins over the SNaN
    assert.equal(status(fpu) & IE, IE);
    exec(fpu, host, [0xdd, 0xd8]);
    fld80(fpu, host, "7fff:c000000000000005");
    fld80(fpu, host, "ffff:c000000000000001");
    exec(fpu, host, [0xde, 0xc9]);
    assert.equal(hex80(fpu.st(0)), "7fff:c000000000000005");
  });

  test("unsupported encodings (unnormals, pseudo-infinities) are invalid operands", () => {
    const { fpu, host } = setup();
    fld80(fpu, host, "4000:4000000000000000");
    fldDouble(fpu, host, 1);
    exec(fpu, host, [0xde, 0xc1]);
    assert.equal(hex80(fpu.st(0)), "ffff:c000000000000000");
    assert.equal(status(fpu) & IE, IE);
  });
});

describe("stack faults", () => {
  test("a ninth push overflows: IE, SF, C1=1 and the indefinite is pushed", () => {
    const { fpu, host } = setup();
    for (let i = 0; i < 8; i++) exec(fpu, host, [0xd9, 0xe8]);
    assert.equal(status(fpu) & (IE | SF), 0);
    exec(fpu, host, [0xd9, 0xee]);
    assert.equal(status(fpu) & (IE | SF | C1), IE | SF | C1);
    assert.equal(hex80(fpu.st(0)), "ffff:c000000000000000");
  });

  test("reading an empty register underflows: IE, SF, C1=0, destination gets the indefinite", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 2);
    exec(fpu, host, [0xd8, 0xc1]); // FADD ST(0), ST(1) with ST(1) empty
    assert.equal(status(fpu) & (IE | SF | C1), IE | SF);
    assert.equal(hex80(fpu.st(0)), "ffff:c000000000000000");
  });

  test("FSTP m32 from an empty register stores the single-precision indefinite and pops", () => {
    const { fpu, host } = setup();
    exec(fpu, host, [0xd9, 0x1d], 0x200);
    assert.equal(host.read32(0x200), 0xffc00000);
    assert.equal(fpu.top, 1);
  });

  test("FIST from an empty register stores the integer indefinite", () => {
    const { fpu, host } = setup();
    exec(fpu, host, [0xdf, 0x15], 0x200);
    assert.equal(host.read16(0x200), 0x8000);
    assert.equal(status(fpu) & (IE | SF), IE | SF);
  });
});

describe("unmasked exceptions and #MF / FERR#", () => {
  test("an unmasked invalid operation leaves the destination and sets ES and B; the next waiting instruction faults", () => {
    const { fpu, host } = setup();
    setControl(fpu, host, 0x037e); // IM clear
    fldDouble(fpu, host, -1);
    exec(fpu, host, [0xd9, 0xfa]); // FSQRT
    assert.equal(popDoubleRaw(fpu), "bfff:8000000000000000");
    assert.equal(fpu.statusWord & (IE | ES | B), IE | ES | B);
    assert.equal(run(fpu, host, [0xd9, 0xe8]), FPU_RAISE_MF);
    assert.equal(fpu.waitCheck(host), FPU_RAISE_MF);
    // No-wait forms still run.
    assert.equal(run(fpu, host, [0xdf, 0xe0]), FPU_DONE); // FNSTSW AX
    assert.equal(host.gpr[0] & 0xffff, fpu.statusWord);
    assert.equal(run(fpu, host, [0xdb, 0xe2]), FPU_DONE); // FNCLEX
    assert.equal(fpu.statusWord & (IE | ES | B), 0);
    assert.equal(run(fpu, host, [0xd9, 0xe8]), FPU_DONE);
  });

  test("with CR0.NE=0 the pending exception asserts FERR# and freezes until IGNNE# or FNCLEX", () => {
    const { fpu, host } = setup();
    const ferr: boolean[] = [];
    fpu.onFerr = (level) => ferr.push(level);
    host.numericErrorNative = false;
    setControl(fpu, host, 0x037b); // ZM clear
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, 0);
    exec(fpu, host, [0xde, 0xf9]); // 1/0, unmasked
    assert.deepEqual(ferr, []);
    assert.equal(fpu.waitCheck(host), FPU_FREEZE);
    assert.deepEqual(ferr, [true]);
    fpu.setIgnne(true);
    assert.equal(fpu.waitCheck(host), FPU_DONE);
    fpu.setIgnne(false);
    exec(fpu, host, [0xdb, 0xe2]);
    assert.deepEqual(ferr, [true, false]);
    assert.equal(fpu.waitCheck(host), FPU_DONE);
  });

  test("unmasked overflow to a register re-biases the exponent by 24576", () => {
    const { fpu, host } = setup();
    setControl(fpu, host, 0x0377); // OM clear
    fld80(fpu, host, "7ffe:c000000000000000");
    fld80(fpu, host, "4000:8000000000000000");
    exec(fpu, host, [0xde, 0xc9]);
    assert.equal(hex80(fpu.st(0)), `${(0x7fff - 24576).toString(16)}:c000000000000000`);
    assert.equal(fpu.statusWord & (OE | ES), OE | ES);
  });

  test("unmasked underflow to a register re-biases the exponent up by 24576", () => {
    const { fpu, host } = setup();
    setControl(fpu, host, 0x036f); // UM clear
    fld80(fpu, host, "0001:8000000000000000");
    fld80(fpu, host, "3ffe:8000000000000000");
    exec(fpu, host, [0xde, 0xc9]);
    assert.equal(hex80(fpu.st(0)), `${(24576).toString(16)}:8000000000000000`);
    assert.equal(fpu.statusWord & (UE | ES), UE | ES);
  });

  test("unmasked overflow on FSTP m32 leaves memory alone and does not pop", () => {
    const { fpu, host } = setup();
    setControl(fpu, host, 0x0377);
    fldDouble(fpu, host, 1e300);
    host.write32(0x200, 0x12345678);
    exec(fpu, host, [0xd9, 0x1d], 0x200);
    assert.equal(host.read32(0x200), 0x12345678);
    assert.equal(fpu.top, 7);
    assert.equal(fpu.statusWord & (OE | ES), OE | ES);
  });

  test("unmasked divide by zero leaves the destination", () => {
    const { fpu, host } = setup();
    setControl(fpu, host, 0x037b);
    fldDouble(fpu, host, 7);
    fldDouble(fpu, host, 0);
    exec(fpu, host, [0xde, 0xf9]);
    assert.equal(fpu.top, 6);
    assert.equal(popDoubleRaw(fpu), "0000:0000000000000000");
  });

  test("FLDCW unmasking a pending flag makes it pending; masking it again clears ES", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, 3);
    exec(fpu, host, [0xde, 0xf9]); // inexact, PE masked
    assert.equal(fpu.statusWord & ES, 0);
    setControl(fpu, host, 0x035f); // PM clear
    assert.equal(fpu.statusWord & (ES | B), ES | B);
    assert.equal(run(fpu, host, [0xd9, 0xe8]), FPU_RAISE_MF);
    assert.equal(run(fpu, host, [0xd9, 0x2d], 0x80), FPU_RAISE_MF); // FLDCW is a waiting instruction
  });
});

function popDoubleRaw(fpu: Fpu): string {
  return hex80(fpu.st(0));
}

describe("memory formats", () => {
  test("FST m32/m64 round by RC", () => {
    for (const [rc, f32, f64] of [
      [0, 0x3eaaaaab, 0x3fd5555555555555n],
      [1, 0x3eaaaaaa, 0x3fd5555555555555n],
      [2, 0x3eaaaaab, 0x3fd5555555555556n],
      [3, 0x3eaaaaaa, 0x3fd5555555555555n],
    ] as const) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      fld80(fpu, host, "3ffd:aaaaaaaaaaaaaaab");
      exec(fpu, host, [0xd9, 0x15], 0x200);
      exec(fpu, host, [0xdd, 0x15], 0x208);
      assert.equal(host.read32(0x200), f32, `rc=${rc}`);
      assert.equal(host.readU64(0x208), f64, `rc=${rc}`);
    }
  });

  test("FLD m32 of a denormal raises DE; of an SNaN raises IE and loads the QNaN", () => {
    const { fpu, host } = setup();
    host.write32(0x200, 0x00000001);
    exec(fpu, host, [0xd9, 0x05], 0x200);
    assert.equal(hex80(fpu.st(0)), "3f6a:8000000000000000");
    assert.equal(status(fpu) & DE, DE);
    host.write32(0x200, 0x7f800001);
    exec(fpu, host, [0xd9, 0x05], 0x200);
    assert.equal(hex80(fpu.st(0)), "7fff:c000010000000000");
    assert.equal(status(fpu) & IE, IE);
  });

  test("FIST rounds by RC; out-of-range values store the integer indefinite with IE", () => {
    const cases: [number, number, number][] = [
      [0, 2.5, 2],
      [0, 3.5, 4],
      [1, -2.5, -3],
      [2, 2.1, 3],
      [3, -2.9, -2],
    ];
    for (const [rc, v, expected] of cases) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      fldDouble(fpu, host, v);
      exec(fpu, host, [0xdb, 0x15], 0x200);
      assert.equal(host.read32(0x200) | 0, expected, `rc=${rc} v=${v}`);
      assert.equal(status(fpu) & PE, PE);
    }
    const { fpu, host } = setup();
    fldDouble(fpu, host, 40000);
    exec(fpu, host, [0xdf, 0x15], 0x200);
    assert.equal(host.read16(0x200), 0x8000);
    assert.equal(status(fpu) & IE, IE);
    fldDouble(fpu, host, -32768.4);
    exec(fpu, host, [0xdf, 0x15], 0x202);
    assert.equal(host.read16(0x202), 0x8000);
    fldDouble(fpu, host, 2 ** 63);
    exec(fpu, host, [0xdf, 0x3d], 0x208);
    assert.equal(host.readU64(0x208), 0x8000000000000000n);
    fldDouble(fpu, host, -(2 ** 62));
    exec(fpu, host, [0xdf, 0x3d], 0x208);
    assert.equal(host.readI64(0x208), -(2n ** 62n));
  });

  test("FILD m64 loads every 64-bit integer exactly", () => {
    const { fpu, host } = setup();
    host.writeU64(0x200, 0x7fffffffffffffffn);
    exec(fpu, host, [0xdf, 0x2d], 0x200);
    assert.equal(hex80(fpu.st(0)), "403d:fffffffffffffffe");
    host.writeU64(0x200, -0x8000000000000000n);
    exec(fpu, host, [0xdf, 0x2d], 0x200);
    assert.equal(hex80(fpu.st(0)), "c03e:8000000000000000");
  });

  test("FBLD and FBSTP convert packed BCD; out of range gives the BCD indefinite", () => {
    const { fpu, host } = setup();
    host.writeBytes(0x200, [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0x80]);
    exec(fpu, host, [0xdf, 0x25], 0x200);
    assert.equal(hex80(fpu.st(0)), hex80(parseDouble(-12345678)));
    fldDouble(fpu, host, 0.5);
    exec(fpu, host, [0xde, 0xc1]); // -12345677.5
    exec(fpu, host, [0xdf, 0x35], 0x210); // round to even: -12345678
    assert.deepEqual([...host.memory.subarray(0x210, 0x21a)], [0x78, 0x56, 0x34, 0x12, 0, 0, 0, 0, 0, 0x80]);
    fldDouble(fpu, host, 1e18);
    exec(fpu, host, [0xdf, 0x35], 0x220);
    assert.deepEqual([...host.memory.subarray(0x220, 0x22a)], [0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff]);
    assert.equal(status(fpu) & IE, IE);
  });

  test("FSTP m80 checks the whole operand before writing: a fault leaves the unit unchanged", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1);
    host.readOnlyFrom = 0x205;
    const before = fpu.saveState();
    host.instructionOffset = 0x2222;
    assert.throws(() => run(fpu, host, [0xdb, 0x3d], 0x200), PageFault);
    assert.deepEqual(fpu.saveState(), before); // pointers included
    assert.equal(fpu.top, 7);
    assert.equal(host.read32(0x200), 0);
    host.readOnlyFrom = 0x10000;
    exec(fpu, host, [0xdb, 0x3d], 0x200);
    assert.equal(hex80(host.readF80(0x200)), "3fff:8000000000000000");
    assert.equal(fpu.top, 0);
  });
});

function parseDouble(v: number): F80 {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v, true);
  const bits = view.getBigUint64(0, true);
  const sign = Number(bits >> 63n);
  const exp = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  return f80(sign, exp - 1023 + 16383, (1n << 63n) | (frac << 11n));
}

describe("comparisons and classification", () => {
  test("FCOM sets C3/C2/C0; a NaN is unordered with IE, FUCOM accepts QNaNs quietly", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 2);
    fldDouble(fpu, host, 1);
    exec(fpu, host, [0xd8, 0xd1]);
    assert.equal(status(fpu) & (C3 | C2 | C0), C0);
    exec(fpu, host, [0xd9, 0xc9]); // FXCH
    exec(fpu, host, [0xd8, 0xd1]);
    assert.equal(status(fpu) & (C3 | C2 | C0), 0);
    fld80(fpu, host, "7fff:c000000000000000");
    exec(fpu, host, [0xdd, 0xe1]); // FUCOM
    assert.equal(status(fpu) & (C3 | C2 | C0 | IE), C3 | C2 | C0);
    exec(fpu, host, [0xd8, 0xd1]); // FCOM
    assert.equal(status(fpu) & (C3 | C2 | C0 | IE), C3 | C2 | C0 | IE);
  });

  test("FCOMI/FUCOMIP return ZF PF CF and the popping form pops", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, 1);
    assert.equal(exec(fpu, host, [0xdb, 0xf1]), EFLAGS_ZF);
    fldDouble(fpu, host, 0.5);
    assert.equal(exec(fpu, host, [0xdf, 0xe9]), EFLAGS_CF); // FUCOMIP 0.5 < 1
    assert.equal(fpu.top, 6);
    fld80(fpu, host, "7fff:c000000000000000");
    assert.equal(exec(fpu, host, [0xdb, 0xe9]), EFLAGS_ZF | EFLAGS_PF | EFLAGS_CF);
    assert.equal(status(fpu) & IE, 0);
    assert.equal(exec(fpu, host, [0xdb, 0xf1]), EFLAGS_ZF | EFLAGS_PF | EFLAGS_CF);
    assert.equal(status(fpu) & IE, IE);
    // With IE unmasked, FCOMI on a NaN leaves EFLAGS alone.
    exec(fpu, host, [0xdb, 0xe2]);
    setControl(fpu, host, 0x037e);
    assert.equal(run(fpu, host, [0xdb, 0xf1]), FPU_DONE);
    assert.equal(fpu.statusWord & (IE | ES), IE | ES);
  });

  test("FCOMPP pops twice; FTST compares with zero", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 3);
    fldDouble(fpu, host, 3);
    exec(fpu, host, [0xde, 0xd9]);
    assert.equal(status(fpu) & (C3 | C2 | C0), C3);
    assert.equal(fpu.tagWord, 0xffff);
    fldDouble(fpu, host, -0.25);
    exec(fpu, host, [0xd9, 0xe4]);
    assert.equal(status(fpu) & (C3 | C2 | C0), C0);
  });

  test("FXAM reports every class with the sign in C1", () => {
    const classes: [string | null, number][] = [
      [null, C3 | C0],
      ["4000:4000000000000000", 0],
      ["7fff:c000000000000000", C0],
      ["3fff:8000000000000000", C2],
      ["ffff:8000000000000000", C2 | C0 | C1],
      ["8000:0000000000000000", C3 | C1],
      ["0000:0000000000000001", C3 | C2],
    ];
    for (const [value, codes] of classes) {
      const { fpu, host } = setup();
      if (value) fld80(fpu, host, value);
      exec(fpu, host, [0xd9, 0xe5]);
      assert.equal(status(fpu) & (C3 | C2 | C1 | C0), codes, String(value));
    }
  });

  test("FCMOVcc moves on EFLAGS conditions", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, 2);
    host.eflags = EFLAGS_CF;
    exec(fpu, host, [0xdb, 0xc1]); // FCMOVNB: CF set, no move
    assert.equal(fpu.st(0).exp, 0x4000);
    exec(fpu, host, [0xda, 0xc1]); // FCMOVB: move
    assert.equal(fpu.st(0).exp, 0x3fff);
    host.eflags = EFLAGS_PF;
    fldDouble(fpu, host, 5);
    exec(fpu, host, [0xda, 0xda]); // FCMOVU ST(0), ST(2)
    assert.equal(fpu.st(0).exp, 0x3fff);
  });
});

describe("stack manipulation", () => {
  test("FXCH swaps values and tags; FFREE empties; FINCSTP/FDECSTP rotate TOP", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1);
    exec(fpu, host, [0xd9, 0xee]); // FLDZ
    exec(fpu, host, [0xd9, 0xc9]);
    assert.equal(fpu.st(0).exp, 0x3fff);
    assert.equal(fpu.tagWord, 0x4fff); // phys 7 holds the zero, phys 6 the one
    exec(fpu, host, [0xdd, 0xc0]); // FFREE ST(0)
    assert.ok(fpu.isEmpty(fpu.phys(0)));
    exec(fpu, host, [0xd9, 0xf7]); // FINCSTP
    assert.equal(fpu.top, 7);
    exec(fpu, host, [0xd9, 0xf6]);
    assert.equal(fpu.top, 6);
  });

  test("FLD ST(i) and FST/FSTP ST(i) copy exactly", () => {
    const { fpu, host } = setup();
    fld80(fpu, host, "7fff:8000000000000005"); // SNaN: copied without exception
    exec(fpu, host, [0xd9, 0xc0]);
    assert.equal(hex80(fpu.st(0)), "7fff:8000000000000005");
    assert.equal(status(fpu) & IE, 0);
    fldDouble(fpu, host, 9);
    exec(fpu, host, [0xdd, 0xda]); // FSTP ST(2)
    assert.equal(hex80(fpu.st(1)), hex80(parseDouble(9)));
  });

  test("reserved encodings are #UD", () => {
    const { fpu, host } = setup();
    assert.equal(run(fpu, host, [0xd9, 0xd1]), FPU_INVALID_OPCODE);
    assert.equal(run(fpu, host, [0xd9, 0x08], 0x200), FPU_INVALID_OPCODE);
    assert.equal(run(fpu, host, [0xdf, 0xe1]), FPU_INVALID_OPCODE);
    assert.equal(run(fpu, host, [0xda, 0xe8]), FPU_INVALID_OPCODE);
    assert.equal(run(fpu, host, [0xdb, 0x08], 0x200), FPU_INVALID_OPCODE); // FISTTP needs SSE3
    // Every encoding is either executed or #UD, and #UD wins over a pending exception.
    host.write16(0x80, 0x037e);
    exec(fpu, host, [0xd9, 0x2d], 0x80);
    exec(fpu, host, [0xd8, 0xc1]); // unmasked stack underflow: pending
    assert.equal(run(fpu, host, [0xd9, 0xd1]), FPU_INVALID_OPCODE);
    assert.equal(run(fpu, host, [0xd9, 0xd0]), FPU_RAISE_MF); // FNOP waits
  });

  test("every encoding outside the reserved list executes", () => {
    for (let opcode = 0xd8; opcode <= 0xdf; opcode++) {
      for (let modrm = 0; modrm < 256; modrm++) {
        if (modrm < 0xc0 && (modrm & 7) !== 5) continue;
        const { fpu, host } = setup();
        fldDouble(fpu, host, 2);
        fldDouble(fpu, host, 3);
        const result = run(fpu, host, [opcode, modrm], 0x400);
        assert.equal(
          result === FPU_INVALID_OPCODE,
          isReservedEscape(opcode, modrm),
          `${opcode.toString(16)} ${modrm.toString(16)}`,
        );
      }
    }
  });
});

describe("FSCALE, FXTRACT, FRNDINT, FPREM", () => {
  test("FSCALE multiplies by 2^trunc(ST1)", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, -2.9);
    fldDouble(fpu, host, 3);
    exec(fpu, host, [0xd9, 0xfd]);
    assert.equal(popDouble(fpu, host), 0.75);
  });

  test("FXTRACT splits exponent and significand; zero raises ZE", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, -24);
    exec(fpu, host, [0xd9, 0xf4]);
    assert.equal(popDouble(fpu, host), -1.5);
    assert.equal(popDouble(fpu, host), 4);
    fldDouble(fpu, host, 0);
    exec(fpu, host, [0xd9, 0xf4]);
    assert.equal(popDouble(fpu, host), 0);
    assert.equal(popDouble(fpu, host), Number.NEGATIVE_INFINITY);
    assert.equal(status(fpu) & ZE, ZE);
  });

  test("FRNDINT rounds by RC", () => {
    for (const [rc, v, r] of [
      [0, 2.5, 2],
      [0, -3.5, -4],
      [1, 2.5, 2],
      [1, -2.1, -3],
      [2, 2.1, 3],
      [3, -2.9, -2],
    ] as const) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      fldDouble(fpu, host, v);
      exec(fpu, host, [0xd9, 0xfc]);
      assert.equal(popDouble(fpu, host), r, `rc=${rc} ${v}`);
    }
  });

  test("FPREM reports the quotient's low bits in C0 C3 C1 and iterates for large exponent gaps", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 3);
    fldDouble(fpu, host, 23); // 23 = 7*3 + 2, Q = 7 (111b)
    exec(fpu, host, [0xd9, 0xf8]);
    assert.equal(status(fpu) & (C0 | C1 | C2 | C3), C0 | C1 | C3);
    assert.equal(popDouble(fpu, host), 2);
    exec(fpu, host, [0xdd, 0xd8]);
    fldDouble(fpu, host, 3);
    fldDouble(fpu, host, 1e300);
    let rounds = 0;
    do {
      exec(fpu, host, [0xd9, 0xf8]);
      rounds++;
    } while (status(fpu) & C2);
    assert.ok(rounds > 1);
    // 1e300 mod 3, computed exactly in integers.
    const exact = BigInt(1e300) % 3n;
    assert.equal(popDouble(fpu, host), Number(exact));
  });

  test("FPREM1 rounds the quotient to nearest", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 3);
    fldDouble(fpu, host, 8); // 8/3 = 2.67 -> Q = 3, remainder -1
    exec(fpu, host, [0xd9, 0xf5]);
    assert.equal(status(fpu) & (C0 | C1 | C2 | C3), C1 | C3);
    assert.equal(popDouble(fpu, host), -1);
  });
});

describe("constants and transcendentals", () => {
  test("FLDPI, FLDL2E, FLDLN2 round per RC without raising PE", () => {
    const table: [number, number, string][] = [
      [0xeb, 0, "4000:c90fdaa22168c235"],
      [0xeb, 1, "4000:c90fdaa22168c234"],
      [0xeb, 3, "4000:c90fdaa22168c234"],
      [0xea, 0, "3fff:b8aa3b295c17f0bc"],
      [0xea, 1, "3fff:b8aa3b295c17f0bb"],
      [0xe9, 0, "4000:d49a784bcd1b8afe"],
      [0xe9, 2, "4000:d49a784bcd1b8aff"],
      [0xec, 0, "3ffd:9a209a84fbcff799"],
      [0xed, 0, "3ffe:b17217f7d1cf79ac"],
      [0xed, 3, "3ffe:b17217f7d1cf79ab"],
    ];
    for (const [modrm, rc, expected] of table) {
      const { fpu, host } = setup();
      setControl(fpu, host, 0x037f | (rc << 10));
      exec(fpu, host, [0xd9, modrm]);
      assert.equal(hex80(fpu.st(0)), expected, `${modrm.toString(16)} rc=${rc}`);
      assert.equal(status(fpu) & PE, 0);
    }
  });

  test("FSIN reduces with Intel's 66-bit pi: fsin(double pi) = 1.2246063538223773e-16", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, Math.PI);
    exec(fpu, host, [0xd9, 0xfe]);
    assert.equal(popDouble(fpu, host), 1.2246063538223773e-16);
    exec(fpu, host, [0xd9, 0xeb]); // FLDPI (extended)
    exec(fpu, host, [0xd9, 0xfe]);
    assert.equal(hex80(fpu.st(0)), "bfbf:8000000000000000"); // -2^-64
  });

  test("FSIN/FCOS match libm on ordinary arguments; out-of-range operands set C2", () => {
    const { fpu, host } = setup();
    for (const x of [0.5, -1.25, 3, 100, -1000.5]) {
      fldDouble(fpu, host, x);
      exec(fpu, host, [0xd9, 0xfe]);
      assert.ok(
        Math.abs(popDouble(fpu, host) - Math.sin(x)) <= 2 ** -52 * Math.abs(Math.sin(x)) * 2,
        `sin ${x}`,
      );
      fldDouble(fpu, host, x);
      exec(fpu, host, [0xd9, 0xff]);
      assert.ok(Math.abs(popDouble(fpu, host) - Math.cos(x)) <= 2 ** -52 * 2, `cos ${x}`);
    }
    fldDouble(fpu, host, 2 ** 63);
    exec(fpu, host, [0xd9, 0xfe]);
    assert.equal(status(fpu) & C2, C2);
    assert.equal(popDouble(fpu, host), 2 ** 63);
  });

  test("FPTAN pushes 1.0; FSINCOS leaves cos in ST(0) and sin in ST(1)", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 0.75);
    exec(fpu, host, [0xd9, 0xf2]);
    assert.equal(popDouble(fpu, host), 1);
    assert.equal(popDouble(fpu, host), Math.tan(0.75));
    fldDouble(fpu, host, 0.75);
    exec(fpu, host, [0xd9, 0xfb]);
    assert.equal(popDouble(fpu, host), Math.cos(0.75));
    assert.equal(popDouble(fpu, host), Math.sin(0.75));
  });

  test("F2XM1, FYL2X, FYL2XP1 and FPATAN", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 0.5);
    exec(fpu, host, [0xd9, 0xf0]);
    assert.equal(popDouble(fpu, host), 0.41421356237309503); // sqrt(2) - 1 correctly rounded
    exec(fpu, host, [0xdb, 0xe2]); // FNCLEX: flags are sticky
    fldDouble(fpu, host, -1);
    exec(fpu, host, [0xd9, 0xf0]);
    assert.equal(popDouble(fpu, host), -0.5);
    assert.equal(status(fpu) & PE, 0);
    fldDouble(fpu, host, 3); // y
    fldDouble(fpu, host, 8); // x
    exec(fpu, host, [0xd9, 0xf1]);
    assert.equal(popDouble(fpu, host), 9);
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, 10);
    exec(fpu, host, [0xd9, 0xf1]);
    assert.equal(popDouble(fpu, host), Math.log2(10));
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, 0);
    exec(fpu, host, [0xd9, 0xf1]); // log2(0) -> -inf with ZE
    assert.equal(popDouble(fpu, host), Number.NEGATIVE_INFINITY);
    assert.equal(status(fpu) & ZE, ZE);
    fldDouble(fpu, host, 2);
    fldDouble(fpu, host, 2 ** -70);
    exec(fpu, host, [0xd9, 0xf9]); // 2*log2(1 + 2^-70) ~ 2^-69 / ln 2
    assert.equal(popDouble(fpu, host), 2 ** -69 / Math.LN2);
    fldDouble(fpu, host, 1);
    fldDouble(fpu, host, -1);
    exec(fpu, host, [0xd9, 0xf3]); // atan2(1, -1)
    assert.equal(popDouble(fpu, host), (3 * Math.PI) / 4);
    fldDouble(fpu, host, -0);
    fldDouble(fpu, host, -5);
    exec(fpu, host, [0xd9, 0xf3]); // atan2(-0, -5) = -pi
    assert.equal(popDouble(fpu, host), -Math.PI);
  });
});

describe("environment and state images", () => {
  test("FIP/FCS/FOP/FDP/FDS follow the last non-control instruction", () => {
    const { fpu, host } = setup();
    host.instructionSelector = 0x23;
    host.instructionOffset = 0x4567;
    host.operandSelector = 0x2b;
    fldDouble(fpu, host, 1);
    host.instructionOffset = 0x4570;
    host.operandOffset = 0x89a;
    host.writeF64(0x89a, 2);
    fpu.executeEscape(0xdc, 0x05, 0x89a, host); // FADD m64
    host.instructionOffset = 0x9999;
    setControl(fpu, host, 0x037f); // control instruction: no update
    assert.equal(fpu.fip, 0x4570);
    assert.equal(fpu.fcs, 0x23);
    assert.equal(fpu.fop, 0x405);
    assert.equal(fpu.fdp, 0x89a);
    assert.equal(fpu.fds, 0x2b);
  });

  test("FNSTENV 32-bit protected layout, then all exceptions masked", () => {
    const { fpu, host } = setup();
    host.instructionOffset = 0x12345678;
    host.instructionSelector = 0x1b;
    host.operandSelector = 0x23;
    setControl(fpu, host, 0x0372);
    fldDouble(fpu, host, 1); // FLD m64 at 0x100
    exec(fpu, host, [0xd9, 0x35], 0x400);
    assert.equal(host.read16(0x400), 0x0372);
    assert.equal(host.read16(0x404), fpu.statusWord);
    assert.equal(host.read16(0x408), 0x3fff); // ST(0)=phys 7 valid, the rest empty
    assert.equal(host.read32(0x40c), 0x12345678);
    assert.equal(host.read16(0x410), 0x1b);
    assert.equal(host.read16(0x412), 0x505); // DD 05
    assert.equal(host.read32(0x414), 0x100);
    assert.equal(host.read16(0x418), 0x23);
    assert.equal(fpu.control & 0x3f, 0x3f);
  });

  test("FNSTENV 16-bit real-mode layout stores 20-bit linear pointers", () => {
    const { fpu, host } = setup();
    host.operandSize32 = false;
    host.protectedMode = false;
    host.instructionSelector = 0xf000;
    host.instructionOffset = 0x1234;
    host.operandSelector = 0x1000;
    fldDouble(fpu, host, 1); // FDP = 0x10000 + 0x100
    exec(fpu, host, [0xd9, 0x35], 0x400);
    assert.equal(host.read16(0x400), 0x037f);
    assert.equal(host.read16(0x406), 0x1234); // (0xf0000 + 0x1234) & 0xffff
    assert.equal(host.read16(0x408), (0xf << 12) | 0x505);
    assert.equal(host.read16(0x40a), 0x0100);
    assert.equal(host.read16(0x40c), 0x1 << 12);
    // FLDENV reads the same image back.
    exec(fpu, host, [0xdb, 0xe3]);
    exec(fpu, host, [0xd9, 0x25], 0x400);
    assert.equal(fpu.fip, 0xf1234);
    assert.equal(fpu.fdp, 0x10100);
    assert.equal(fpu.fop, 0x505);
  });

  test("FNSAVE stores the environment and ST(0)..ST(7), then initialises; FRSTOR brings it back", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 1.5);
    fldDouble(fpu, host, -2);
    exec(fpu, host, [0xd9, 0xee]);
    const before = fpu.saveState();
    exec(fpu, host, [0xdd, 0x35], 0x400);
    assert.equal(fpu.tagWord, 0xffff);
    assert.equal(fpu.control, 0x037f);
    assert.equal(host.read16(0x408), 0x07ff | (0x1 << 10) | (0 << 12) | (0 << 14)); // tags 5..7: zero, valid, valid
    assert.equal(hex80(host.readF80(0x400 + 28)), "0000:0000000000000000"); // ST(0)
    assert.equal(hex80(host.readF80(0x400 + 38)), "c000:8000000000000000"); // ST(1)
    exec(fpu, host, [0xdd, 0x25], 0x400);
    const after = fpu.saveState();
    assert.deepEqual({ ...after, fip: 0, fop: 0, fdp: 0 }, { ...before, fip: 0, fop: 0, fdp: 0 });
  });

  test("FRSTOR recomputes tags from contents, keeping only 'empty' from the image", () => {
    const { fpu, host } = setup();
    exec(fpu, host, [0xdd, 0x35], 0x400); // an all-empty image
    host.write16(0x408, 0x0000); // claim every register valid
    exec(fpu, host, [0xdd, 0x25], 0x400);
    assert.equal(fpu.tagWord, 0x5555); // all registers hold +0
  });

  test("FXSAVE writes the 512-byte layout with the abridged tag byte; FXRSTOR reverses it", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, 3);
    exec(fpu, host, [0xd9, 0xee]);
    host.writeBytes(0x1000, new Array(512).fill(0xcc));
    fpu.fxsave(0x1000, host);
    assert.equal(host.read16(0x1000), 0x037f);
    assert.equal(host.read16(0x1002), fpu.statusWord);
    assert.equal(host.read8(0x1004), 0xc0);
    assert.equal(host.read16(0x1006), 0x1ee); // D9 EE
    assert.equal(host.read32(0x1018), 0); // MXCSR: no SSE
    assert.equal(hex80(host.readF80(0x1020)), "0000:0000000000000000");
    assert.equal(hex80(host.readF80(0x1030)), "4000:c000000000000000");
    assert.equal(host.read8(0x1000 + 500), 0xcc); // software-available area untouched
    const saved = fpu.saveState();
    exec(fpu, host, [0xdb, 0xe3]);
    fpu.fxrstor(0x1000, host);
    assert.deepEqual(fpu.saveState(), saved);
  });
});

describe("persistence", () => {
  test("state round-trips and rejects malformed data", () => {
    const { fpu, host } = setup();
    fldDouble(fpu, host, Math.E);
    exec(fpu, host, [0xd9, 0xeb]);
    const state = fpu.saveState();
    const copy = new Fpu();
    copy.loadState(structuredClone(state), fpu.stateVersion);
    assert.deepEqual(copy.saveState(), state);
    assert.equal(hex80(copy.st(0)), hex80(fpu.st(0)));
    assert.throws(() => copy.loadState({ ...state, registers: [1, 2] }, 1));
    assert.throws(() => copy.loadState({ ...state, control: -1 }, 1));
    assert.throws(() => copy.loadState(state, 99));
  });
});
