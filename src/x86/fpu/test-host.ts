// A flat-memory FpuHost for the unit tests: 64 KiB of bytes, eight general registers, settable
// mode bits, and a write-protected range to exercise faulting stores.

import { type F80, f80 } from "./float80.ts";
import type { Fpu } from "./fpu.ts";
import { FPU_DONE, type FpuHost } from "./host.ts";

export class PageFault extends Error {
  readonly address: number;
  constructor(address: number) {
    super(`fault at ${address.toString(16)}`);
    this.address = address;
  }
}

export class TestHost implements FpuHost {
  readonly memory = new Uint8Array(0x10000);
  readonly gpr = new Uint32Array(8);
  operandSize32 = true;
  protectedMode = true;
  numericErrorNative = true;
  instructionSelector = 0x08;
  instructionOffset = 0x1000;
  operandSelector = 0x10;
  operandOffset = 0;
  eflags = 0;
  /** Writes at or above this address fault. */
  readOnlyFrom = 0x10000;

  read8(addr: number): number {
    return this.memory[addr];
  }
  read16(addr: number): number {
    return this.memory[addr] | (this.memory[addr + 1] << 8);
  }
  read32(addr: number): number {
    return (this.read16(addr) | (this.read16(addr + 2) << 16)) >>> 0;
  }
  write8(addr: number, v: number): void {
    if (addr >= this.readOnlyFrom) throw new PageFault(addr);
    this.memory[addr] = v;
  }
  write16(addr: number, v: number): void {
    this.write8(addr, v & 0xff);
    this.write8(addr + 1, (v >>> 8) & 0xff);
  }
  write32(addr: number, v: number): void {
    this.write16(addr, v & 0xffff);
    this.write16(addr + 2, (v >>> 16) & 0xffff);
  }
  checkWritable(addr: number, length: number): void {
    if (addr + length > this.readOnlyFrom) throw new PageFault(Math.max(addr, this.readOnlyFrom));
  }
  readGpr32(index: number): number {
    return this.gpr[index];
  }
  writeGpr32(index: number, value: number): void {
    this.gpr[index] = value;
  }

  writeBytes(addr: number, bytes: number[]): void {
    for (let i = 0; i < bytes.length; i++) this.memory[addr + i] = bytes[i];
  }
  writeF64(addr: number, v: number): void {
    new DataView(this.memory.buffer).setFloat64(addr, v, true);
  }
  readF64(addr: number): number {
    return new DataView(this.memory.buffer).getFloat64(addr, true);
  }
  writeF32(addr: number, v: number): void {
    new DataView(this.memory.buffer).setFloat32(addr, v, true);
  }
  readF32(addr: number): number {
    return new DataView(this.memory.buffer).getFloat32(addr, true);
  }
  writeU64(addr: number, v: bigint): void {
    new DataView(this.memory.buffer).setBigUint64(addr, BigInt.asUintN(64, v), true);
  }
  readI64(addr: number): bigint {
    return new DataView(this.memory.buffer).getBigInt64(addr, true);
  }
  readU64(addr: number): bigint {
    return new DataView(this.memory.buffer).getBigUint64(addr, true);
  }
  writeF80(addr: number, v: F80): void {
    this.writeU64(addr, v.sig);
    this.write16(addr + 8, (v.sign << 15) | v.exp);
  }
  readF80(addr: number): F80 {
    const se = this.read16(addr + 8);
    return f80(se >> 15, se & 0x7fff, this.readU64(addr));
  }
}

/** Runs one escape instruction given as bytes [D8..DF, modrm]; memory operands use `ea`. */
export function run(fpu: Fpu, host: TestHost, bytes: [number, number], ea = 0): number {
  host.operandOffset = ea;
  return fpu.executeEscape(bytes[0], bytes[1], ea, host);
}

/** Runs and asserts the instruction completed. */
export function exec(fpu: Fpu, host: TestHost, bytes: [number, number], ea = 0): number {
  const r = run(fpu, host, bytes, ea);
  if (r < FPU_DONE)
    throw new Error(`instruction ${bytes.map((b) => b.toString(16)).join(" ")} returned ${r}`);
  return r;
}

/** Formats a register value as 'sexp:significand' hex, e.g. '3fff:8000000000000000'. */
export function hex80(v: F80): string {
  return `${((v.sign << 15) | v.exp).toString(16).padStart(4, "0")}:${v.sig.toString(16).padStart(16, "0")}`;
}

export function parse80(text: string): F80 {
  const [se, sig] = text.split(":");
  const w = Number.parseInt(se, 16);
  return f80(w >> 15, w & 0x7fff, BigInt(`0x${sig}`));
}
