// MMX instructions. MMn is the significand of physical x87 register n; writing one sets that
// register's sign/exponent field to all ones, and every MMX instruction except EMMS sets TOP to 0
// and tags all registers valid (SDM vol. 1, 9.5).

import { FPU_DONE, FPU_INVALID_OPCODE, type FpuHost } from "./host.ts";

/** What the MMX unit needs from the x87 register file. */
export interface MmxRegisters {
  readonly signExp: Uint16Array;
  readonly sigLo: Uint32Array;
  readonly sigHi: Uint32Array;
  enterMmx(): void;
  emms(): void;
}

// Scratch lanes (little-endian views over 8-byte buffers), reused so instructions allocate nothing.
const destBuffer = new ArrayBuffer(8);
const srcBuffer = new ArrayBuffer(8);
const outBuffer = new ArrayBuffer(8);
const d32 = new Uint32Array(destBuffer);
const s32 = new Uint32Array(srcBuffer);
const o32 = new Uint32Array(outBuffer);
const dU8 = new Uint8Array(destBuffer);
const sU8 = new Uint8Array(srcBuffer);
const oU8 = new Uint8Array(outBuffer);
const dI8 = new Int8Array(destBuffer);
const sI8 = new Int8Array(srcBuffer);
const oI8 = new Int8Array(outBuffer);
const dU16 = new Uint16Array(destBuffer);
const sU16 = new Uint16Array(srcBuffer);
const oU16 = new Uint16Array(outBuffer);
const dI16 = new Int16Array(destBuffer);
const sI16 = new Int16Array(srcBuffer);
const oI16 = new Int16Array(outBuffer);
const dI32 = new Int32Array(destBuffer);
const sI32 = new Int32Array(srcBuffer);
const oI32 = new Int32Array(outBuffer);

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error("MMX lanes assume a little-endian host");
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(Math.max(v, lo), hi);
}

/** Source operand: 64 bits of an MMX register or memory, or 32 bits for the low unpacks. */
function loadSource(regs: MmxRegisters, modrm: number, ea: number, host: FpuHost, narrow: boolean): void {
  if (modrm >= 0xc0) {
    const r = modrm & 7;
    s32[0] = regs.sigLo[r];
    s32[1] = regs.sigHi[r];
  } else {
    s32[0] = host.read32(ea);
    s32[1] = narrow ? 0 : host.read32(ea + 4);
  }
}

function writeMmx(regs: MmxRegisters, r: number, lo: number, hi: number): void {
  regs.sigLo[r] = lo;
  regs.sigHi[r] = hi;
  regs.signExp[r] = 0xffff;
}

/** Shift count from a 64-bit source: anything at or beyond 64 behaves like 64. */
function sourceCount(): number {
  return s32[1] !== 0 || s32[0] > 64 ? 64 : s32[0];
}

function shiftWords(kind: number, count: number): void {
  for (let i = 0; i < 4; i++) {
    if (kind === 0) oU16[i] = count > 15 ? 0 : dU16[i] >>> count;
    else if (kind === 1) oI16[i] = dI16[i] >> Math.min(count, 15);
    else oU16[i] = count > 15 ? 0 : dU16[i] << count;
  }
}

function shiftDwords(kind: number, count: number): void {
  for (let i = 0; i < 2; i++) {
    if (kind === 0) o32[i] = count > 31 ? 0 : d32[i] >>> count;
    else if (kind === 1) oI32[i] = dI32[i] >> Math.min(count, 31);
    else o32[i] = count > 31 ? 0 : d32[i] << count;
  }
}

function shiftQword(left: boolean, count: number): void {
  const lo = d32[0];
  const hi = d32[1];
  if (count > 63) {
    o32[0] = 0;
    o32[1] = 0;
  } else if (count === 0) {
    o32[0] = lo;
    o32[1] = hi;
  } else if (left) {
    if (count >= 32) {
      o32[1] = lo << (count - 32);
      o32[0] = 0;
    } else {
      o32[1] = (hi << count) | (lo >>> (32 - count));
      o32[0] = lo << count;
    }
  } else if (count >= 32) {
    o32[0] = hi >>> (count - 32);
    o32[1] = 0;
  } else {
    o32[0] = (lo >>> count) | (hi << (32 - count));
    o32[1] = hi >>> count;
  }
}

/** Computes out = dest op src for the two-operand instructions; false for an undefined opcode. */
function compute(opcode: number): boolean {
  switch (opcode) {
    case 0x60: // PUNPCKLBW
      for (let i = 0; i < 4; i++) {
        oU8[2 * i] = dU8[i];
        oU8[2 * i + 1] = sU8[i];
      }
      return true;
    case 0x61: // PUNPCKLWD
      for (let i = 0; i < 2; i++) {
        oU16[2 * i] = dU16[i];
        oU16[2 * i + 1] = sU16[i];
      }
      return true;
    case 0x62: // PUNPCKLDQ
      o32[0] = d32[0];
      o32[1] = s32[0];
      return true;
    case 0x63: // PACKSSWB
      for (let i = 0; i < 4; i++) {
        oI8[i] = clamp(dI16[i], -128, 127);
        oI8[i + 4] = clamp(sI16[i], -128, 127);
      }
      return true;
    case 0x64: // PCMPGTB
      for (let i = 0; i < 8; i++) oU8[i] = dI8[i] > sI8[i] ? 0xff : 0;
      return true;
    case 0x65: // PCMPGTW
      for (let i = 0; i < 4; i++) oU16[i] = dI16[i] > sI16[i] ? 0xffff : 0;
      return true;
    case 0x66: // PCMPGTD
      for (let i = 0; i < 2; i++) o32[i] = dI32[i] > sI32[i] ? 0xffffffff : 0;
      return true;
    case 0x67: // PACKUSWB
      for (let i = 0; i < 4; i++) {
        oU8[i] = clamp(dI16[i], 0, 255);
        oU8[i + 4] = clamp(sI16[i], 0, 255);
      }
      return true;
    case 0x68: // PUNPCKHBW
      for (let i = 0; i < 4; i++) {
        oU8[2 * i] = dU8[i + 4];
        oU8[2 * i + 1] = sU8[i + 4];
      }
      return true;
    case 0x69: // PUNPCKHWD
      for (let i = 0; i < 2; i++) {
        oU16[2 * i] = dU16[i + 2];
        oU16[2 * i + 1] = sU16[i + 2];
      }
      return true;
    case 0x6a: // PUNPCKHDQ
      o32[0] = d32[1];
      o32[1] = s32[1];
      return true;
    case 0x6b: // PACKSSDW
      for (let i = 0; i < 2; i++) {
        oI16[i] = clamp(dI32[i], -32768, 32767);
        oI16[i + 2] = clamp(sI32[i], -32768, 32767);
      }
      return true;
    case 0x74: // PCMPEQB
      for (let i = 0; i < 8; i++) oU8[i] = dU8[i] === sU8[i] ? 0xff : 0;
      return true;
    case 0x75: // PCMPEQW
      for (let i = 0; i < 4; i++) oU16[i] = dU16[i] === sU16[i] ? 0xffff : 0;
      return true;
    case 0x76: // PCMPEQD
      for (let i = 0; i < 2; i++) o32[i] = d32[i] === s32[i] ? 0xffffffff : 0;
      return true;
    case 0xd1: // PSRLW
      shiftWords(0, sourceCount());
      return true;
    case 0xd2: // PSRLD
      shiftDwords(0, sourceCount());
      return true;
    case 0xd3: // PSRLQ
      shiftQword(false, sourceCount());
      return true;
    case 0xd5: // PMULLW
      for (let i = 0; i < 4; i++) oU16[i] = Math.imul(dI16[i], sI16[i]);
      return true;
    case 0xd8: // PSUBUSB
      for (let i = 0; i < 8; i++) oU8[i] = clamp(dU8[i] - sU8[i], 0, 255);
      return true;
    case 0xd9: // PSUBUSW
      for (let i = 0; i < 4; i++) oU16[i] = clamp(dU16[i] - sU16[i], 0, 65535);
      return true;
    case 0xdb: // PAND
      o32[0] = d32[0] & s32[0];
      o32[1] = d32[1] & s32[1];
      return true;
    case 0xdc: // PADDUSB
      for (let i = 0; i < 8; i++) oU8[i] = clamp(dU8[i] + sU8[i], 0, 255);
      return true;
    case 0xdd: // PADDUSW
      for (let i = 0; i < 4; i++) oU16[i] = clamp(dU16[i] + sU16[i], 0, 65535);
      return true;
    case 0xdf: // PANDN
      o32[0] = ~d32[0] & s32[0];
      o32[1] = ~d32[1] & s32[1];
      return true;
    case 0xe1: // PSRAW
      shiftWords(1, sourceCount());
      return true;
    case 0xe2: // PSRAD
      shiftDwords(1, sourceCount());
      return true;
    case 0xe5: // PMULHW
      for (let i = 0; i < 4; i++) oU16[i] = (dI16[i] * sI16[i]) >> 16;
      return true;
    case 0xe8: // PSUBSB
      for (let i = 0; i < 8; i++) oI8[i] = clamp(dI8[i] - sI8[i], -128, 127);
      return true;
    case 0xe9: // PSUBSW
      for (let i = 0; i < 4; i++) oI16[i] = clamp(dI16[i] - sI16[i], -32768, 32767);
      return true;
    case 0xeb: // POR
      o32[0] = d32[0] | s32[0];
      o32[1] = d32[1] | s32[1];
      return true;
    case 0xec: // PADDSB
      for (let i = 0; i < 8; i++) oI8[i] = clamp(dI8[i] + sI8[i], -128, 127);
      return true;
    case 0xed: // PADDSW
      for (let i = 0; i < 4; i++) oI16[i] = clamp(dI16[i] + sI16[i], -32768, 32767);
      return true;
    case 0xef: // PXOR
      o32[0] = d32[0] ^ s32[0];
      o32[1] = d32[1] ^ s32[1];
      return true;
    case 0xf1: // PSLLW
      shiftWords(2, sourceCount());
      return true;
    case 0xf2: // PSLLD
      shiftDwords(2, sourceCount());
      return true;
    case 0xf3: // PSLLQ
      shiftQword(true, sourceCount());
      return true;
    case 0xf5: // PMADDWD: the one overflow case (all four words 0x8000) wraps to 0x80000000
      for (let i = 0; i < 2; i++) {
        oI32[i] = (dI16[2 * i] * sI16[2 * i] + dI16[2 * i + 1] * sI16[2 * i + 1]) | 0;
      }
      return true;
    case 0xf8: // PSUBB
      for (let i = 0; i < 8; i++) oU8[i] = dU8[i] - sU8[i];
      return true;
    case 0xf9: // PSUBW
      for (let i = 0; i < 4; i++) oU16[i] = dU16[i] - sU16[i];
      return true;
    case 0xfa: // PSUBD
      for (let i = 0; i < 2; i++) o32[i] = d32[i] - s32[i];
      return true;
    case 0xfc: // PADDB
      for (let i = 0; i < 8; i++) oU8[i] = dU8[i] + sU8[i];
      return true;
    case 0xfd: // PADDW
      for (let i = 0; i < 4; i++) oU16[i] = dU16[i] + sU16[i];
      return true;
    case 0xfe: // PADDD
      for (let i = 0; i < 2; i++) o32[i] = d32[i] + s32[i];
      return true;
    default:
      return false;
  }
}

/** Whether 0F `opcode` is an MMX instruction this unit implements (for the CPU's decoder). */
export function isMmxOpcode(opcode: number): boolean {
  if (opcode >= 0x60 && opcode <= 0x6b) return true;
  if (opcode === 0x6e || opcode === 0x6f || opcode === 0x7e || opcode === 0x7f) return true;
  if (opcode >= 0x71 && opcode <= 0x77) return true;
  return MMX_RANGE_OPCODES.has(opcode);
}

/** Whether 0F `opcode` with this ModRM is a valid MMX encoding (the shift-by-immediate groups need /2, /4 or /6 on a register). */
export function isMmxEncoding(opcode: number, modrm: number): boolean {
  if (!isMmxOpcode(opcode)) return false;
  if (opcode < 0x71 || opcode > 0x73) return true;
  const reg = (modrm >> 3) & 7;
  if (modrm < 0xc0) return false;
  return reg === 2 || reg === 6 || (reg === 4 && opcode !== 0x73);
}

const MMX_RANGE_OPCODES = new Set([
  0xd1, 0xd2, 0xd3, 0xd5, 0xd8, 0xd9, 0xdb, 0xdc, 0xdd, 0xdf, 0xe1, 0xe2, 0xe5, 0xe8, 0xe9, 0xeb, 0xec, 0xed,
  0xef, 0xf1, 0xf2, 0xf3, 0xf5, 0xf8, 0xf9, 0xfa, 0xfc, 0xfd, 0xfe,
]);

export function executeMmxInstruction(
  regs: MmxRegisters,
  opcode: number,
  modrm: number,
  ea: number,
  imm8: number,
  host: FpuHost,
): number {
  const reg = (modrm >> 3) & 7;
  const isRegister = modrm >= 0xc0;
  switch (opcode) {
    case 0x77: // EMMS
      regs.emms();
      return FPU_DONE;
    case 0x6e: {
      // MOVD mm, r/m32
      const v = isRegister ? host.readGpr32(modrm & 7) : host.read32(ea);
      regs.enterMmx();
      writeMmx(regs, reg, v >>> 0, 0);
      return FPU_DONE;
    }
    case 0x7e: {
      // MOVD r/m32, mm
      const v = regs.sigLo[reg];
      if (isRegister) host.writeGpr32(modrm & 7, v);
      else host.write32(ea, v);
      regs.enterMmx();
      return FPU_DONE;
    }
    case 0x6f: {
      // MOVQ mm, mm/m64
      loadSource(regs, modrm, ea, host, false);
      regs.enterMmx();
      writeMmx(regs, reg, s32[0], s32[1]);
      return FPU_DONE;
    }
    case 0x7f: {
      // MOVQ mm/m64, mm
      const lo = regs.sigLo[reg];
      const hi = regs.sigHi[reg];
      if (isRegister) {
        regs.enterMmx();
        writeMmx(regs, modrm & 7, lo, hi);
      } else {
        host.checkWritable(ea, 8);
        host.write32(ea, lo);
        host.write32(ea + 4, hi);
        regs.enterMmx();
      }
      return FPU_DONE;
    }
    case 0x71:
    case 0x72:
    case 0x73: {
      // Shift by immediate: /2 logical right, /4 arithmetic right, /6 left.
      if (!isRegister) return FPU_INVALID_OPCODE;
      const kind = reg === 2 ? 0 : reg === 4 ? 1 : reg === 6 ? 2 : -1;
      if (kind < 0 || (opcode === 0x73 && kind === 1)) return FPU_INVALID_OPCODE;
      const r = modrm & 7;
      d32[0] = regs.sigLo[r];
      d32[1] = regs.sigHi[r];
      const count = imm8 & 0xff;
      if (opcode === 0x71) shiftWords(kind, count);
      else if (opcode === 0x72) shiftDwords(kind, count);
      else shiftQword(kind === 2, count);
      regs.enterMmx();
      writeMmx(regs, r, o32[0], o32[1]);
      return FPU_DONE;
    }
    default: {
      if (
        !(
          (opcode >= 0x60 && opcode <= 0x6b) ||
          (opcode >= 0x74 && opcode <= 0x76) ||
          MMX_RANGE_OPCODES.has(opcode)
        )
      )
        return FPU_INVALID_OPCODE;
      const narrow = opcode >= 0x60 && opcode <= 0x62;
      loadSource(regs, modrm, ea, host, narrow);
      d32[0] = regs.sigLo[reg];
      d32[1] = regs.sigHi[reg];
      compute(opcode);
      regs.enterMmx();
      writeMmx(regs, reg, o32[0], o32[1]);
      return FPU_DONE;
    }
  }
}
