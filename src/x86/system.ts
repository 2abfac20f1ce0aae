// CPUID identity and model-specific registers of a Pentium III-class (family 6) processor that
// advertises exactly what this CPU implements.

import type { Cpu } from "./cpu.ts";
import { EFER_NXE } from "./flags.ts";

/** MSR number -> [low dword, high dword]. */
export type MsrFile = Map<number, [number, number]>;

export const MSR_TSC = 0x10;
export const MSR_PLATFORM_ID = 0x17;
export const MSR_APIC_BASE = 0x1b;
export const MSR_BIOS_SIGN_ID = 0x8b;
export const MSR_MTRRCAP = 0xfe;
export const MSR_PERFCTR0 = 0xc1;
export const MSR_EVNTSEL0 = 0x186;
export const MSR_SYSENTER_CS = 0x174;
export const MSR_SYSENTER_ESP = 0x175;
export const MSR_SYSENTER_EIP = 0x176;
export const MSR_MISC_ENABLE = 0x1a0;
export const MSR_PAT = 0x277;
export const MSR_MTRR_DEF_TYPE = 0x2ff;
export const MSR_EFER = 0xc0000080;

/** Family 6, model 7, stepping 3: the signature in EDX after reset and CPUID.1:EAX. */
export const CPU_SIGNATURE = 0x00000673;

// CPUID.1:EDX feature bits.
/** x87 FPU on chip. */
const FEAT_FPU = 1 << 0;
/** Virtual-8086 mode extensions (VME and PVI). */
const FEAT_VME = 1 << 1;
/** Debugging extensions (CR4.DE, I/O breakpoints not supported but DR4/5 aliasing is). */
const FEAT_DE = 1 << 2;
/** 4 MiB pages. */
const FEAT_PSE = 1 << 3;
/** RDTSC. */
const FEAT_TSC = 1 << 4;
/** RDMSR/WRMSR. */
const FEAT_MSR = 1 << 5;
/** PAE paging. */
const FEAT_PAE = 1 << 6;
/** CMPXCHG8B. */
const FEAT_CX8 = 1 << 8;
/** Local APIC (a separate device the machine wires). */
const FEAT_APIC = 1 << 9;
/** SYSENTER/SYSEXIT. */
const FEAT_SEP = 1 << 11;
/** MTRR MSRs. */
const FEAT_MTRR = 1 << 12;
/** Global pages. */
const FEAT_PGE = 1 << 13;
/** CMOVcc. */
const FEAT_CMOV = 1 << 15;
/** PAT MSR. */
const FEAT_PAT = 1 << 16;
/** 36-bit physical addresses in 4 MiB pages. */
const FEAT_PSE36 = 1 << 17;
/** MMX. */
const FEAT_MMX = 1 << 23;
/** FXSAVE/FXRSTOR. */
const FEAT_FXSR = 1 << 24;
/** CPUID.80000001:EDX.NX: execute-disable. */
const EXT_FEAT_NX = 1 << 20;

/** The MTRR MSRs a P6 exposes: 8 variable pairs, the fixed-range set, and the default type. */
const MTRR_MSRS = [
  ...Array.from({ length: 16 }, (_, k) => 0x200 + k),
  0x250,
  0x258,
  0x259,
  0x268,
  0x269,
  0x26a,
  0x26b,
  0x26c,
  0x26d,
  0x26e,
  0x26f,
  MSR_MTRR_DEF_TYPE,
];

export function defaultMsrs(): MsrFile {
  const m: MsrFile = new Map();
  m.set(MSR_PLATFORM_ID, [0, 0]);
  // APIC enabled (bit 11), this is the bootstrap processor (bit 8), at 0xFEE00000.
  m.set(MSR_APIC_BASE, [0xfee00900 | 0, 0]);
  m.set(MSR_BIOS_SIGN_ID, [0, 0]);
  // 8 variable ranges, fixed ranges supported (bit 8), write-combining supported (bit 10).
  m.set(MSR_MTRRCAP, [0x508, 0]);
  m.set(MSR_SYSENTER_CS, [0, 0]);
  m.set(MSR_SYSENTER_ESP, [0, 0]);
  m.set(MSR_SYSENTER_EIP, [0, 0]);
  m.set(MSR_MISC_ENABLE, [1, 0]);
  m.set(MSR_PAT, [0x00070406, 0x00070406]);
  for (const n of MTRR_MSRS) m.set(n, [0, 0]);
  // The two P6 performance counters and their event selects exist; nothing is ever counted.
  for (const n of [MSR_PERFCTR0, MSR_PERFCTR0 + 1, MSR_EVNTSEL0, MSR_EVNTSEL0 + 1]) m.set(n, [0, 0]);
  return m;
}

export function cpuidFeatures(cpu: Cpu): number {
  let f =
    FEAT_VME |
    FEAT_DE |
    FEAT_PSE |
    FEAT_TSC |
    FEAT_MSR |
    FEAT_PAE |
    FEAT_CX8 |
    FEAT_APIC |
    FEAT_SEP |
    FEAT_MTRR |
    FEAT_PGE |
    FEAT_CMOV |
    FEAT_PAT |
    FEAT_PSE36;
  if (cpu.fpu) f |= FEAT_FPU | FEAT_MMX | FEAT_FXSR;
  return f;
}

function str4(s: string, at: number): number {
  return (
    s.charCodeAt(at) |
    (s.charCodeAt(at + 1) << 8) |
    (s.charCodeAt(at + 2) << 16) |
    (s.charCodeAt(at + 3) << 24)
  );
}

const BRAND = "tsvisor Pentium III class CPU".padEnd(48, "\0");

/** CPUID: EAX (and ECX) in, EAX EBX ECX EDX out. */
export function cpuid(cpu: Cpu): void {
  const r = cpu.regs;
  let leaf = r[0]! >>> 0;
  if (leaf > 2 && leaf < 0x80000000) leaf = 2;
  if (leaf > 0x80000004) leaf = 2;
  let a = 0;
  let b = 0;
  let c = 0;
  let d = 0;
  switch (leaf) {
    case 0:
      a = 2;
      b = str4("Genu", 0);
      d = str4("ineI", 0);
      c = str4("ntel", 0);
      break;
    case 1:
      a = CPU_SIGNATURE;
      b = 0; // APIC id 0, one logical processor
      c = 0;
      d = cpuidFeatures(cpu);
      break;
    case 2:
      // Cache and TLB descriptors of a Pentium III (Katmai): 16 KiB L1 each, 512 KiB L2.
      a = 0x03020101;
      b = 0;
      c = 0;
      d = 0x0c040843;
      break;
    case 0x80000000:
      a = 0x80000004;
      break;
    case 0x80000001:
      d = EXT_FEAT_NX;
      break;
    default: {
      const at = (leaf - 0x80000002) * 16;
      a = str4(BRAND, at);
      b = str4(BRAND, at + 4);
      c = str4(BRAND, at + 8);
      d = str4(BRAND, at + 12);
    }
  }
  r[0] = a;
  r[3] = b;
  r[1] = c;
  r[2] = d;
}

/** RDMSR (0F 32): CPL 0 only; unknown MSRs raise #GP(0). */
export function rdmsr(cpu: Cpu): void {
  if (cpu.cpl !== 0 || cpu.vm86) cpu.gp(0);
  const n = cpu.regs[1]! >>> 0;
  let lo: number;
  let hi: number;
  if (n === MSR_TSC) {
    const t = cpu.readTsc();
    lo = t % 0x100000000;
    hi = Math.floor(t / 0x100000000);
  } else if (n === MSR_EFER) {
    lo = cpu.efer;
    hi = 0;
  } else {
    const v = cpu.msrs.get(n);
    if (!v) cpu.gp(0);
    [lo, hi] = v;
  }
  cpu.regs[0] = lo;
  cpu.regs[2] = hi;
}

/** WRMSR (0F 30). */
export function wrmsr(cpu: Cpu): void {
  if (cpu.cpl !== 0 || cpu.vm86) cpu.gp(0);
  const n = cpu.regs[1]! >>> 0;
  const lo = cpu.regs[0]! | 0;
  const hi = cpu.regs[2]! | 0;
  if (n === MSR_TSC) {
    // Writes set the counter to EDX:EAX (only the low 32 bits are writable on a P6; EDX ignored).
    const base = cpu.readTsc() - cpu.tscOffset;
    cpu.tscOffset = (lo >>> 0) - base;
    return;
  }
  if (n === MSR_EFER) {
    if (lo & ~EFER_NXE || hi) cpu.gp(0);
    cpu.writeEfer(lo);
    return;
  }
  if (!cpu.msrs.has(n) || n === MSR_MTRRCAP || n === MSR_PLATFORM_ID) cpu.gp(0);
  cpu.msrs.set(n, [lo, hi]);
  if (n === MSR_APIC_BASE) cpu.onApicBaseChange?.(lo >>> 0, hi >>> 0);
}
