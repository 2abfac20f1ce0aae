import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Fpu } from "./fpu.ts";
import { FPU_DONE, FPU_INVALID_OPCODE, FPU_RAISE_MF } from "./host.ts";
import { isMmxOpcode } from "./mmx.ts";
import { exec, hex80, TestHost } from "./test-host.ts";

function setup(): { fpu: Fpu; host: TestHost } {
  const fpu = new Fpu();
  const host = new TestHost();
  exec(fpu, host, [0xdb, 0xe3]);
  return { fpu, host };
}

/** Loads MMn from a 64-bit value through MOVQ mm, m64. */
function load(fpu: Fpu, host: TestHost, n: number, v: bigint): void {
  host.writeU64(0x200, v);
  assert.equal(fpu.executeMmx(0x6f, (n << 3) | 0x05, 0x200, 0, host), FPU_DONE);
}

function mm(fpu: Fpu, n: number): bigint {
  return (BigInt(fpu.sigHi[n]) << 32n) | BigInt(fpu.sigLo[n]);
}

/** op mm0, mm1 */
function op(fpu: Fpu, host: TestHost, opcode: number, a: bigint, b: bigint): bigint {
  load(fpu, host, 0, a);
  load(fpu, host, 1, b);
  assert.equal(fpu.executeMmx(opcode, 0xc1, 0, 0, host), FPU_DONE);
  return mm(fpu, 0);
}

describe("MMX register aliasing", () => {
  test("writing MMn sets the x87 register's exponent to all ones; TOP=0 and every register in use", () => {
    const { fpu, host } = setup();
    exec(fpu, host, [0xd9, 0xe8]); // FLD1: TOP = 7
    load(fpu, host, 3, 0x0123456789abcdefn);
    assert.equal(fpu.top, 0);
    assert.equal(fpu.abridgedTags, 0xff);
    // FSTENV classifies from contents: MM3 (exponent all ones) is special, phys 7 (1.0) valid, the rest +0.
    assert.equal(fpu.tagWord, (0x5555 & ~(3 << 6) & ~(3 << 14)) | (2 << 6));
    assert.equal(hex80(fpu.readPhys(3)), "ffff:0123456789abcdef");
    // ST(3) is MM3 now that TOP is 0.
    assert.equal(hex80(fpu.st(3)), "ffff:0123456789abcdef");
  });

  test("FNSTENV and FNSAVE after MMX store each register's class: valid, zero, special", () => {
    const { fpu, host } = setup();
    // Physical registers 7..2 get 0, 1, 0, 1, 0, 1; then 1/0 = +inf lands in 1 and 1.0 in 0.
    for (const k of [0, 1, 0, 1, 0, 1]) exec(fpu, host, [0xd9, k ? 0xe8 : 0xee]);
    exec(fpu, host, [0xd9, 0xe8]); // FLD1
    exec(fpu, host, [0xd9, 0xee]); // FLDZ
    exec(fpu, host, [0xde, 0xf9]); // FDIVP: 1/0 = +inf in phys 1 (ZE masked)
    exec(fpu, host, [0xd9, 0xe8]); // FLD1: phys 0
    exec(fpu, host, [0xdb, 0xe3]); // FNINIT: every tag empty, contents kept
    load(fpu, host, 2, 0x8000000000000001n); // MM2: exponent all ones
    // phys 0..7 = 1.0 (valid), +inf (special), MM2 (special), 0, 1, 0, 1, 0 (zero, valid...).
    const classes = [0, 2, 2, 1, 0, 1, 0, 1];
    const expected = classes.reduce((word, tag, r) => word | (tag << (r * 2)), 0);
    exec(fpu, host, [0xd9, 0x35], 0x400); // FNSTENV
    assert.equal(host.read16(0x408), expected);
    exec(fpu, host, [0xdd, 0x35], 0x500); // FNSAVE
    assert.equal(host.read16(0x508), expected);
  });

  test("EMMS empties every tag", () => {
    const { fpu, host } = setup();
    load(fpu, host, 0, 1n);
    assert.equal(fpu.executeMmx(0x77, 0, 0, 0, host), FPU_DONE);
    assert.equal(fpu.tagWord, 0xffff);
  });

  test("x87 registers written by FLD are visible as MMX significands", () => {
    const { fpu, host } = setup();
    exec(fpu, host, [0xd9, 0xe8]); // phys 7 = 1.0
    assert.equal(fpu.executeMmx(0x7e, 0xf8, 0, 0, host), FPU_DONE); // MOVD EAX, MM7
    assert.equal(host.gpr[0], 0);
    assert.equal(fpu.executeMmx(0x7f, 0x3d, 0x300, 0, host), FPU_DONE); // MOVQ [0x300], MM7
    assert.equal(host.readU64(0x300), 0x8000000000000000n);
  });

  test("MOVD zero-extends into MMn and reads the low dword", () => {
    const { fpu, host } = setup();
    host.gpr[2] = 0xdeadbeef;
    fpu.executeMmx(0x6e, 0xc2 | (5 << 3), 0, 0, host); // MOVD MM5, EDX
    assert.equal(mm(fpu, 5), 0xdeadbeefn);
    fpu.executeMmx(0x7e, 0x05 | (5 << 3), 0x300, 0, host); // MOVD [0x300], MM5
    assert.equal(host.read32(0x300), 0xdeadbeef);
  });

  test("a pending x87 exception faults MMX instructions", () => {
    const { fpu, host } = setup();
    host.write16(0x80, 0x037e);
    exec(fpu, host, [0xd9, 0x2d], 0x80);
    exec(fpu, host, [0xd8, 0xc1]); // stack underflow, unmasked
    assert.equal(fpu.executeMmx(0x77, 0, 0, 0, host), FPU_RAISE_MF);
    assert.equal(fpu.executeMmx(0xd4, 0xc1, 0, 0, host), FPU_INVALID_OPCODE); // PADDQ is SSE2: #UD first
    assert.equal(fpu.executeMmx(0x73, 0xe1, 0, 0, host), FPU_INVALID_OPCODE);
  });
});

describe("MMX arithmetic", () => {
  test("wrapping and saturating byte/word adds and subtracts", () => {
    const { fpu, host } = setup();
    assert.equal(op(fpu, host, 0xfc, 0x7f01ff00n, 0x01ff0101n), 0x80000001n); // PADDB wraps
    assert.equal(op(fpu, host, 0xec, 0x7f80n, 0x0180n), 0x7f80n); // PADDSB: 127+1 -> 127, -128-128 -> -128
    assert.equal(op(fpu, host, 0xdc, 0xf0n, 0x20n), 0xffn); // PADDUSB
    assert.equal(op(fpu, host, 0xd8, 0x10n, 0x20n), 0n); // PSUBUSB floors at 0
    assert.equal(op(fpu, host, 0xe9, 0x8000n, 0x0001n), 0x8000n); // PSUBSW: -32768-1 -> -32768
    assert.equal(op(fpu, host, 0xed, 0x7fffn, 0x7fffn), 0x7fffn); // PADDSW
    assert.equal(op(fpu, host, 0xd9, 0x0001_ffffn, 0x0002_0001n), 0x0000_fffen); // PSUBUSW
    assert.equal(op(fpu, host, 0xfe, 0xffffffff_00000001n, 1n), 0xffffffff_00000002n); // PADDD
    assert.equal(op(fpu, host, 0xfa, 0n, 1n), 0x00000000_ffffffffn); // PSUBD
  });

  test("multiplies: PMULLW, PMULHW, PMADDWD (including its one overflow case)", () => {
    const { fpu, host } = setup();
    assert.equal(op(fpu, host, 0xd5, 0x0003_7fffn, 0x0004_0002n), 0x000c_fffen);
    assert.equal(op(fpu, host, 0xe5, 0x8000_7fffn, 0x8000_7fffn), 0x4000_3fffn);
    assert.equal(op(fpu, host, 0xf5, 0x0002_0003n, 0x0004_0005n), 23n); // 3*5 + 2*4
    assert.equal(op(fpu, host, 0xf5, 0x8000_8000n, 0x8000_8000n), 0x80000000n);
  });

  test("packs saturate and unpacks interleave (low unpacks read 32 bits of memory)", () => {
    const { fpu, host } = setup();
    assert.equal(op(fpu, host, 0x63, 0x8000_7fff_0080_ff7fn, 0x0001n), 0x00_00_00_01_80_7f_7f_80n); // PACKSSWB
    assert.equal(op(fpu, host, 0x67, 0x8000_7fff_0080_ff7fn, 0n), 0x00_00_00_00_00_ff_80_00n); // PACKUSWB
    assert.equal(op(fpu, host, 0x6b, 0x80000000_00012345n, 0x7fffffff_fffffffen), 0x7fff_fffe_8000_7fffn); // PACKSSDW
    assert.equal(op(fpu, host, 0x60, 0x44332211n, 0x88776655n), 0x8844_7733_6622_5511n); // PUNPCKLBW
    assert.equal(op(fpu, host, 0x69, 0x4444_3333_0000_0000n, 0x8888_7777_0000_0000n), 0x8888_4444_7777_3333n);
    assert.equal(op(fpu, host, 0x6a, 0xaaaaaaaa_00000000n, 0xbbbbbbbb_00000000n), 0xbbbbbbbb_aaaaaaaan);
    load(fpu, host, 0, 0x44332211n);
    host.writeU64(0x200, 0xffffffff_88776655n);
    host.readOnlyFrom = 0x10000;
    fpu.executeMmx(0x60, 0x05, 0x200, 0, host); // PUNPCKLBW mm0, m32: only the low dword matters
    assert.equal(mm(fpu, 0), 0x8844_7733_6622_5511n);
  });

  test("compares give all-ones lanes; PCMPGT is signed", () => {
    const { fpu, host } = setup();
    assert.equal(op(fpu, host, 0x74, 0x0102n, 0x0103n), 0xffffffff_ffffff00n); // PCMPEQB
    assert.equal(op(fpu, host, 0x65, 0x0001_8000n, 0x0000_0001n), 0x0000_0000_ffff_0000n); // PCMPGTW
    assert.equal(op(fpu, host, 0x66, 0n, 0xffffffffn), 0xffffffffn); // PCMPGTD: 0 > -1
  });

  test("logic ops", () => {
    const { fpu, host } = setup();
    assert.equal(op(fpu, host, 0xdb, 0xff00n, 0x0ff0n), 0x0f00n);
    assert.equal(op(fpu, host, 0xdf, 0xff00n, 0x0ff0n), 0x00f0n);
    assert.equal(op(fpu, host, 0xeb, 0xff00n, 0x0ff0n), 0xfff0n);
    assert.equal(op(fpu, host, 0xef, 0xff00n, 0x0ff0n), 0xf0f0n);
  });

  test("shifts by register and by immediate; counts beyond the lane width", () => {
    const { fpu, host } = setup();
    assert.equal(op(fpu, host, 0xf1, 0x0001_8001n, 4n), 0x0010_0010n); // PSLLW
    assert.equal(op(fpu, host, 0xd1, 0x8000n, 15n), 1n); // PSRLW
    assert.equal(op(fpu, host, 0xe1, 0x8000n, 100n), 0xffffn); // PSRAW fills with the sign
    assert.equal(op(fpu, host, 0xd1, 0x8000n, 16n), 0n);
    assert.equal(op(fpu, host, 0xf3, 1n, 63n), 0x8000000000000000n); // PSLLQ
    assert.equal(op(fpu, host, 0xd3, 0x8000000000000000n, 0x1_00000000n), 0n); // count >= 2^32
    assert.equal(op(fpu, host, 0xe2, 0x80000000_00000010n, 4n), 0xf8000000_00000001n); // PSRAD
    load(fpu, host, 2, 0x00000001_80000000n);
    fpu.executeMmx(0x73, 0xd2, 0, 33, host); // PSRLQ mm2, 33
    assert.equal(mm(fpu, 2), 0n);
    load(fpu, host, 2, 0x00000001_80000000n);
    fpu.executeMmx(0x73, 0xf2, 0, 1, host); // PSLLQ mm2, 1
    assert.equal(mm(fpu, 2), 0x00000003_00000000n);
    load(fpu, host, 2, 0x8000_0001n);
    fpu.executeMmx(0x71, 0xe2, 0, 1, host); // PSRAW mm2, 1
    assert.equal(mm(fpu, 2), 0xc000_0000n);
    assert.equal(fpu.executeMmx(0x73, 0xe2, 0, 1, host), FPU_INVALID_OPCODE); // no PSRAQ
    assert.equal(fpu.executeMmx(0x71, 0x05, 0x200, 1, host), FPU_INVALID_OPCODE); // register form only
  });

  test("the decoder helper knows the MMX opcode map", () => {
    assert.ok(isMmxOpcode(0x6f) && isMmxOpcode(0x77) && isMmxOpcode(0xfe) && isMmxOpcode(0x73));
    assert.ok(!isMmxOpcode(0x70) && !isMmxOpcode(0xd4) && !isMmxOpcode(0x78) && !isMmxOpcode(0xfb));
  });
});
