// Handlers for segment-register instructions, far transfers, interrupts, port I/O and the system
// instructions (descriptor tables, control and debug registers, MSRs, SYSENTER/SYSEXIT).

import type { Cpu } from "./cpu.ts";
import type { Insn } from "./decoder.ts";
import {
  ATTR_CE,
  ATTR_CODE,
  ATTR_P,
  ATTR_RW,
  ATTR_S,
  CR0_PE,
  CR0_TS,
  CR4_DE,
  CR4_PCE,
  CR4_TSD,
  CR4_VME,
  CS,
  DS,
  ES,
  EVENT_ICEBP,
  EVENT_SOFTWARE,
  EVENT_SOFTWARE_EXC,
  EXC_DB,
  EXC_NP,
  FS,
  GS,
  IF,
  IOPL,
  LDTR,
  RF,
  SS,
  TF,
  TR,
  VIF,
  VM,
  ZF,
} from "./flags.ts";
import {
  descAttr,
  descBase,
  descLimit,
  farCall,
  farJump,
  farReturn,
  iret,
  loadSegment,
} from "./protected.ts";
import { cpuid, MSR_SYSENTER_CS, MSR_SYSENTER_EIP, MSR_SYSENTER_ESP, rdmsr, wrmsr } from "./system.ts";

/** DR7.GD: general detect. */
const DR7_GD = 1 << 13;
/** DR6.BD: a debug-register access was detected. */
const DR6_BD = 1 << 13;

function requirePm(cpu: Cpu): void {
  if (!cpu.protectedMode || cpu.vm86) cpu.ud();
}
function requireCpl0(cpu: Cpu): void {
  if (cpu.cpl !== 0) cpu.gp(0);
}

// ---- segment registers ----------------------------------------------------------------------

/** 8E: MOV Sreg, r/m16. */
export function movSegE(cpu: Cpu, i: Insn): void {
  if (i.reg === CS || i.reg > GS) cpu.ud();
  loadSegment(cpu, i.reg, cpu.getE(i, 2));
  if (i.reg === SS) cpu.setShadow(true);
}

/** 8C: MOV r/m16, Sreg (a register destination takes the operand size, zero-extended). */
export function movESeg(cpu: Cpu, i: Insn): void {
  if (i.reg > GS) cpu.ud();
  const sel = cpu.segSel[i.reg]!;
  if (i.mod === 3) cpu.setReg(i.opsize, i.rm, sel);
  else cpu.wr16(i.seg, cpu.ea(i), sel);
}

function segOf(i: Insn): number {
  return (i.opcode >> 3) & 7;
}

/** 06 0E 16 1E 0F A0 0F A8: PUSH Sreg. */
export function pushSeg(cpu: Cpu, i: Insn): void {
  cpu.push(i.opsize, cpu.segSel[segOf(i)]!);
}

/** 07 17 1F 0F A1 0F A9: POP Sreg (the load happens before ESP moves, so a fault leaves it). */
export function popSeg(cpu: Cpu, i: Insn): void {
  const seg = segOf(i);
  const v = cpu.peek(i.opsize, 0) & 0xffff;
  loadSegment(cpu, seg, v);
  cpu.addSp(i.opsize);
  if (seg === SS) cpu.setShadow(true);
}

/** C4 LES, C5 LDS, 0F B2 LSS, 0F B4 LFS, 0F B5 LGS. */
export function loadFarPointer(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  let seg: number;
  switch (i.opcode) {
    case 0xc4:
      seg = ES;
      break;
    case 0xc5:
      seg = DS;
      break;
    case 0x1b2:
      seg = SS;
      break;
    case 0x1b4:
      seg = FS;
      break;
    default:
      seg = GS;
  }
  const off = cpu.ea(i);
  const s = i.opsize;
  const value = cpu.rd(i.seg, off, s);
  const sel = cpu.rd16(i.seg, i.addr32 ? (off + s) >>> 0 : (off + s) & 0xffff);
  loadSegment(cpu, seg, sel);
  cpu.setReg(s, i.reg, value);
}

// ---- far transfers and interrupts -----------------------------------------------------------

/** EA: JMP ptr16:16/32. */
export function jmpFarAp(cpu: Cpu, i: Insn): void {
  farJump(cpu, i.imm2, i.imm, i.opsize);
}
/** 9A: CALL ptr16:16/32. */
export function callFarAp(cpu: Cpu, i: Insn): void {
  farCall(cpu, i.imm2, i.imm, i.opsize);
}

function readFarPointer(cpu: Cpu, i: Insn): [number, number] {
  if (i.mod === 3) cpu.ud();
  const off = cpu.ea(i);
  const s = i.opsize;
  const target = cpu.rd(i.seg, off, s);
  const sel = cpu.rd16(i.seg, i.addr32 ? (off + s) >>> 0 : (off + s) & 0xffff);
  return [sel, target];
}
/** FF /5: JMP m16:16/32. */
export function jmpFarE(cpu: Cpu, i: Insn): void {
  const [sel, off] = readFarPointer(cpu, i);
  farJump(cpu, sel, off, i.opsize);
}
/** FF /3: CALL m16:16/32. */
export function callFarE(cpu: Cpu, i: Insn): void {
  const [sel, off] = readFarPointer(cpu, i);
  farCall(cpu, sel, off, i.opsize);
}
/** CA, CB: RETF [imm16]. */
export function retFar(cpu: Cpu, i: Insn): void {
  farReturn(cpu, i.opsize, i.opcode === 0xca ? i.imm & 0xffff : 0);
}
/** CF: IRET / IRETD. */
export function iretH(cpu: Cpu, i: Insn): void {
  iret(cpu, i.opsize);
}

export function int3(cpu: Cpu): void {
  cpu.softwareInterrupt(3, EVENT_SOFTWARE_EXC);
}
export function intN(cpu: Cpu, i: Insn): void {
  const vector = i.imm & 0xff;
  if (cpu.vm86) {
    if (cpu.cr4 & CR4_VME && !redirectionBit(cpu, vector)) {
      v86Interrupt(cpu, vector);
      return;
    }
    if (cpu.iopl < 3) cpu.gp(0);
  }
  cpu.softwareInterrupt(vector, EVENT_SOFTWARE);
}

/** VME: the TSS's interrupt redirection bitmap (the 32 bytes below the I/O map) bit for `vector`. */
function redirectionBit(cpu: Cpu, vector: number): number {
  const base = cpu.segBase[TR]!;
  const type = cpu.segAttr[TR]! & 0xf;
  if ((type !== 9 && type !== 0xb) || cpu.segLimit[TR]! < 0x67) cpu.gp(0);
  const at = cpu.sysRead((base + 0x66) | 0, 2) - 32 + (vector >> 3);
  if (at < 0 || at > cpu.segLimit[TR]!) cpu.gp(0);
  return (cpu.sysRead((base + at) | 0, 1) >> (vector & 7)) & 1;
}

/** VME: INT n handled by the virtual-8086 task's own interrupt vector table, real-mode style. */
function v86Interrupt(cpu: Cpu, vector: number): void {
  const ip = cpu.readLin16(vector * 4);
  const cs = cpu.readLin16(vector * 4 + 2);
  const f = cpu.getFlags();
  const virtual = cpu.iopl < 3;
  // Below IOPL 3 the image shows VIF as IF and IOPL as 3.
  const image = virtual ? (f & 0xffff & ~IF) | (f & VIF ? IF : 0) | IOPL : f & 0xffff;
  const saved = cpu.regs[4]!;
  try {
    cpu.push16(image);
    cpu.push16(cpu.segSel[CS]!);
    cpu.push16(cpu.eip);
  } catch (e) {
    cpu.regs[4] = saved;
    throw e;
  }
  const cleared = f & ~(TF | RF);
  cpu.setFlagsRaw(virtual ? cleared & ~VIF : cleared & ~IF);
  cpu.loadRealSegment(CS, cs);
  cpu.eip = ip;
}
export function into(cpu: Cpu): void {
  if (cpu.of()) cpu.softwareInterrupt(4, EVENT_SOFTWARE_EXC);
}
export function int1(cpu: Cpu): void {
  cpu.softwareInterrupt(1, EVENT_ICEBP);
}

export function hlt(cpu: Cpu): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  cpu.halted = true;
  cpu.requestAttention();
}

// ---- port I/O -------------------------------------------------------------------------------

/** E4, E5, EC, ED: IN. */
export function inH(cpu: Cpu, i: Insn): void {
  const port = i.opcode & 8 ? cpu.r16[4]! : i.imm & 0xff;
  cpu.setReg(i.size, 0, cpu.portIn(port, i.size));
}
/** E6, E7, EE, EF: OUT. */
export function outH(cpu: Cpu, i: Insn): void {
  const port = i.opcode & 8 ? cpu.r16[4]! : i.imm & 0xff;
  cpu.portOut(port, i.size, cpu.getReg(i.size, 0));
}

// ---- descriptor tables ----------------------------------------------------------------------

/** 0F 00 /0 SLDT, /1 STR. */
export function storeSystemSelector(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  const sel = cpu.segSel[i.reg === 0 ? LDTR : TR]!;
  if (i.mod === 3) cpu.setReg(i.opsize, i.rm, sel);
  else cpu.wr16(i.seg, cpu.ea(i), sel);
}

/** 0F 00 /2: LLDT. */
export function lldt(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  requireCpl0(cpu);
  const sel = cpu.getE(i, 2);
  const sx = sel & 0xfffc;
  if (sx === 0) {
    cpu.loadCache(LDTR, sel, 0, 0, 0);
    return;
  }
  if (sel & 4 || !cpu.readDescriptor(sel)) cpu.gp(sx);
  const attr = descAttr(cpu.descHi);
  if ((attr & 0x1f) !== 2) cpu.gp(sx);
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
  cpu.loadCache(LDTR, sel, descBase(cpu.descLo, cpu.descHi), descLimit(cpu.descLo, cpu.descHi), attr);
}

/** 0F 00 /3: LTR (marks the TSS busy). */
export function ltr(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  requireCpl0(cpu);
  const sel = cpu.getE(i, 2);
  const sx = sel & 0xfffc;
  if (sx === 0) cpu.gp(0);
  if (sel & 4 || !cpu.readDescriptor(sel)) cpu.gp(sx);
  const attr = descAttr(cpu.descHi);
  const type = attr & 0x1f;
  if (type !== 1 && type !== 9) cpu.gp(sx);
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
  cpu.setDescriptorBit(sel, 0x200, true);
  cpu.loadCache(TR, sel, descBase(cpu.descLo, cpu.descHi), descLimit(cpu.descLo, cpu.descHi), attr | 2);
}

/** Reads the descriptor for LAR/LSL/VERR/VERW; returns its attributes or -1 if it cannot be used. */
function visibleDescriptor(cpu: Cpu, sel: number, systemTypes: number[]): number {
  if ((sel & 0xfffc) === 0 || !cpu.readDescriptor(sel)) return -1;
  const attr = descAttr(cpu.descHi);
  const d = (attr >> 5) & 3;
  if (attr & ATTR_S) {
    if (attr & ATTR_CODE && attr & ATTR_CE) return attr;
  } else if (!systemTypes.includes(attr & 0xf)) return -1;
  if (d < cpu.cpl || d < (sel & 3)) return -1;
  return attr;
}

/** 0F 02: LAR. */
export function lar(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  const sel = cpu.getE(i, 2);
  const attr = visibleDescriptor(cpu, sel, [1, 2, 3, 4, 5, 9, 0xb, 0xc]);
  if (attr < 0) {
    cpu.setFlag(ZF, false);
    return;
  }
  cpu.setFlag(ZF, true);
  cpu.setReg(i.size, i.reg, i.size === 4 ? cpu.descHi & 0x00ffff00 : cpu.descHi & 0xff00);
}

/** 0F 03: LSL. */
export function lsl(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  const sel = cpu.getE(i, 2);
  const attr = visibleDescriptor(cpu, sel, [1, 2, 3, 9, 0xb]);
  if (attr < 0) {
    cpu.setFlag(ZF, false);
    return;
  }
  cpu.setFlag(ZF, true);
  cpu.setReg(i.size, i.reg, descLimit(cpu.descLo, cpu.descHi));
}

/** 0F 00 /4 VERR, /5 VERW. */
export function verrVerw(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  const sel = cpu.getE(i, 2);
  const attr = visibleDescriptor(cpu, sel, []);
  let ok = attr >= 0 && (attr & ATTR_S) !== 0;
  if (ok) {
    if (i.reg === 4) ok = !(attr & ATTR_CODE) || (attr & ATTR_RW) !== 0;
    else ok = !(attr & ATTR_CODE) && (attr & ATTR_RW) !== 0;
  }
  cpu.setFlag(ZF, ok);
}

/** 63: ARPL r/m16, r16. */
export function arpl(cpu: Cpu, i: Insn): void {
  requirePm(cpu);
  const dest = cpu.getE(i, 2);
  const src = cpu.getReg(2, i.reg);
  if ((dest & 3) < (src & 3)) {
    cpu.setE(i, 2, (dest & ~3) | (src & 3));
    cpu.setFlag(ZF, true);
  } else cpu.setFlag(ZF, false);
}

/** 0F 01 /0 SGDT, /1 SIDT. */
export function storeTable(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  const off = cpu.ea(i);
  const idt = i.reg === 1;
  const limit = idt ? cpu.idtLimit : cpu.gdtLimit;
  let base = idt ? cpu.idtBase : cpu.gdtBase;
  if (i.opsize === 2) base &= 0xffffff;
  cpu.wr16(i.seg, off, limit);
  cpu.wr32(i.seg, i.addr32 ? (off + 2) >>> 0 : (off + 2) & 0xffff, base);
}

/** 0F 01 /2 LGDT, /3 LIDT. */
export function loadTable(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  const off = cpu.ea(i);
  const limit = cpu.rd16(i.seg, off);
  let base = cpu.rd32(i.seg, i.addr32 ? (off + 2) >>> 0 : (off + 2) & 0xffff);
  if (i.opsize === 2) base &= 0xffffff;
  if (i.reg === 3) {
    cpu.idtBase = base;
    cpu.idtLimit = limit;
  } else {
    cpu.gdtBase = base;
    cpu.gdtLimit = limit;
  }
}

/** 0F 01 /4: SMSW. */
export function smsw(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.setReg(i.opsize, i.rm, cpu.cr0);
  else cpu.wr16(i.seg, cpu.ea(i), cpu.cr0);
}

/** 0F 01 /6: LMSW (can set PE but never clear it). */
export function lmsw(cpu: Cpu, i: Insn): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  const v = cpu.getE(i, 2);
  const cr0 = (cpu.cr0 & ~0xe) | (v & 0xf) | (cpu.cr0 & CR0_PE);
  cpu.writeCr0(cr0);
  cpu.refreshWindows();
}

/** 0F 01 /7: INVLPG. */
export function invlpg(cpu: Cpu, i: Insn): void {
  if (i.mod === 3) cpu.ud();
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  cpu.invalidatePage((cpu.segBase[i.seg]! + cpu.ea(i)) | 0);
}

// ---- control, debug and model-specific registers --------------------------------------------

/** 0F 06: CLTS. */
export function clts(cpu: Cpu): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  cpu.cr0 &= ~CR0_TS;
}

/** 0F 08 INVD, 0F 09 WBINVD: no caches are modelled. */
export function invd(cpu: Cpu): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
}

/** 0F 20: MOV r32, CRn. */
export function movRCr(cpu: Cpu, i: Insn): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  let v: number;
  switch (i.reg) {
    case 0:
      v = cpu.cr0;
      break;
    case 2:
      v = cpu.cr2;
      break;
    case 3:
      v = cpu.cr3;
      break;
    case 4:
      v = cpu.cr4;
      break;
    default:
      cpu.ud();
  }
  cpu.regs[i.rm] = v;
}

/** 0F 22: MOV CRn, r32. */
export function movCrR(cpu: Cpu, i: Insn): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  const v = cpu.regs[i.rm]!;
  switch (i.reg) {
    case 0: {
      const wasPe = cpu.protectedMode;
      cpu.writeCr0(v);
      if (wasPe !== cpu.protectedMode) cpu.refreshWindows();
      break;
    }
    case 2:
      cpu.cr2 = v;
      break;
    case 3:
      cpu.writeCr3(v);
      break;
    case 4:
      cpu.writeCr4(v);
      break;
    default:
      cpu.ud();
  }
}

/** DR7.GD: any MOV DR faults with #DB (DR6.BD set, GD cleared so the handler can use them). */
function generalDetect(cpu: Cpu): void {
  if (cpu.dr[7]! & DR7_GD) {
    cpu.dr[6] = cpu.dr[6]! | DR6_BD;
    cpu.dr[7] = cpu.dr[7]! & ~DR7_GD;
    cpu.raise(EXC_DB);
  }
}

function debugIndex(cpu: Cpu, n: number): number {
  if (n === 4 || n === 5) {
    if (cpu.cr4 & CR4_DE) cpu.ud();
    return n + 2;
  }
  return n;
}

/** 0F 21: MOV r32, DRn. */
export function movRDr(cpu: Cpu, i: Insn): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  const n = debugIndex(cpu, i.reg);
  generalDetect(cpu);
  cpu.regs[i.rm] = cpu.dr[n]!;
}

/** 0F 23: MOV DRn, r32. */
export function movDrR(cpu: Cpu, i: Insn): void {
  if (cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  const n = debugIndex(cpu, i.reg);
  generalDetect(cpu);
  const v = cpu.regs[i.rm]!;
  if (n === 6) cpu.dr[6] = (v & 0xe00f) | 0xffff0ff0;
  else if (n === 7) cpu.dr[7] = (v & 0xffff2bff) | 0x400;
  else cpu.dr[n] = v;
  cpu.updateDebug();
}

export function cpuidH(cpu: Cpu): void {
  cpuid(cpu);
}
export function rdmsrH(cpu: Cpu): void {
  rdmsr(cpu);
}
export function wrmsrH(cpu: Cpu): void {
  wrmsr(cpu);
}

/** 0F 31: RDTSC (#GP at CPL > 0 when CR4.TSD). */
export function rdtsc(cpu: Cpu): void {
  if (cpu.cr4 & CR4_TSD && cpu.protectedMode && cpu.cpl !== 0) cpu.gp(0);
  const t = cpu.readTsc();
  cpu.regs[0] = t % 0x100000000;
  cpu.regs[2] = Math.floor(t / 0x100000000);
}

/** 0F 33: RDPMC: the two P6 counters exist and always read zero (no events are counted). */
export function rdpmc(cpu: Cpu): void {
  if (cpu.protectedMode && cpu.cpl !== 0 && !(cpu.cr4 & CR4_PCE)) cpu.gp(0);
  if (cpu.regs[1]! >>> 0 > 1) cpu.gp(0);
  cpu.regs[0] = 0;
  cpu.regs[2] = 0;
}

/** 0F 34: SYSENTER to the flat ring-0 segments named by SYSENTER_CS. */
export function sysenter(cpu: Cpu): void {
  const cs = cpu.msrs.get(MSR_SYSENTER_CS)![0] & 0xfffc;
  if (!cpu.protectedMode || cs === 0) cpu.gp(0);
  cpu.setFlagsRaw(cpu.getFlags() & ~(VM | IF | RF));
  cpu.loadCache(CS, cs, 0, 0xffffffff, 0xc09b);
  cpu.loadCache(SS, cs + 8, 0, 0xffffffff, 0xc093);
  cpu.updateMode();
  cpu.refreshWindows();
  cpu.regs[4] = cpu.msrs.get(MSR_SYSENTER_ESP)![0];
  cpu.eip = cpu.msrs.get(MSR_SYSENTER_EIP)![0] >>> 0;
}

/** 0F 35: SYSEXIT to the flat ring-3 segments at SYSENTER_CS + 16 / + 24. */
export function sysexit(cpu: Cpu): void {
  const cs = cpu.msrs.get(MSR_SYSENTER_CS)![0] & 0xfffc;
  if (!cpu.protectedMode || cpu.vm86 || cpu.cpl !== 0 || cs === 0) cpu.gp(0);
  cpu.loadCache(CS, (cs + 16) | 3, 0, 0xffffffff, 0xc0fb);
  cpu.loadCache(SS, (cs + 24) | 3, 0, 0xffffffff, 0xc0f3);
  cpu.updateMode();
  cpu.regs[4] = cpu.regs[1]!;
  cpu.eip = cpu.regs[2]! >>> 0;
}

/** Opcodes with no instruction on this CPU (and UD2). */
export function undefinedOpcode(cpu: Cpu): void {
  cpu.ud();
}
