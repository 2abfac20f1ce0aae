// Protected-mode segmentation and control transfers: segment register loads with every check the
// SDM lists, far JMP/CALL/RET through code segments, call gates, task gates and TSS descriptors,
// interrupt and exception delivery through the IDT (interrupt, trap and task gates, privilege
// changes with the stack switch from the TSS, virtual-8086 entry and exit), IRET, and hardware task
// switching (32- and 16-bit TSS, busy bits, NT and the back link).

import type { Cpu } from "./cpu.ts";
import {
  AC,
  ARITH_FLAGS,
  ATTR_ACCESSED,
  ATTR_CE,
  ATTR_CODE,
  ATTR_P,
  ATTR_RW,
  ATTR_S,
  CR0_PG,
  CR0_TS,
  CR4_VME,
  CS,
  DF,
  DS,
  ES,
  EVENT_SOFTWARE,
  EVENT_SOFTWARE_EXC,
  EXC_DB,
  EXC_GP,
  EXC_NP,
  EXC_SS,
  EXC_TS,
  FS,
  GS,
  ID,
  IF,
  IOPL,
  LDTR,
  NT,
  RF,
  SS,
  TF,
  TR,
  VIF,
  VIP,
  VM,
} from "./flags.ts";

export function descBase(lo: number, hi: number): number {
  return (lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000) | 0;
}
export function descLimit(lo: number, hi: number): number {
  const raw = (lo & 0xffff) | (hi & 0xf0000);
  return hi & 0x800000 ? raw * 4096 + 0xfff : raw;
}
export function descAttr(hi: number): number {
  return (hi >>> 8) & 0xf0ff;
}
function dpl(attr: number): number {
  return (attr >> 5) & 3;
}

/** Loads a data or stack segment register (MOV, POP, LDS...). */
export function loadSegment(cpu: Cpu, seg: number, selector: number): void {
  selector &= 0xffff;
  if (!cpu.protectedMode || cpu.vm86) {
    cpu.loadRealSegment(seg, selector);
    return;
  }
  loadProtectedSegment(cpu, seg, selector, EXC_GP);
}

/**
 * Loads data/stack segment `seg` in protected mode; `fault` is #GP for instructions and #TS for
 * task switches (not-present faults are #NP, or #SS for SS, either way).
 */
function loadProtectedSegment(cpu: Cpu, seg: number, selector: number, fault: number): void {
  const rpl = selector & 3;
  const cpl = cpu.cpl;
  const sx = selector & 0xfffc;
  if (seg === SS) {
    if (sx === 0) cpu.raise(fault, 0);
    if (!cpu.readDescriptor(selector)) cpu.raise(fault, sx);
    const attr = descAttr(cpu.descHi);
    if (rpl !== cpl || !(attr & ATTR_S) || attr & ATTR_CODE || !(attr & ATTR_RW) || dpl(attr) !== cpl)
      cpu.raise(fault, sx);
    if (!(attr & ATTR_P)) cpu.raise(EXC_SS, sx);
    commitSegment(cpu, seg, selector, attr);
    cpu.updateMode();
    return;
  }
  if (sx === 0) {
    cpu.loadCache(seg, selector, 0, 0, 0);
    return;
  }
  if (!cpu.readDescriptor(selector)) cpu.raise(fault, sx);
  const attr = descAttr(cpu.descHi);
  if (!(attr & ATTR_S) || (attr & ATTR_CODE && !(attr & ATTR_RW))) cpu.raise(fault, sx);
  if (!(attr & ATTR_CODE) || !(attr & ATTR_CE)) {
    if (rpl > dpl(attr) || cpl > dpl(attr)) cpu.raise(fault, sx);
  }
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
  commitSegment(cpu, seg, selector, attr);
}

/** Sets the accessed bit and fills the cache from descLo/descHi. */
function commitSegment(cpu: Cpu, seg: number, selector: number, attr: number): void {
  const lo = cpu.descLo;
  const hi = cpu.descHi;
  if (!(attr & ATTR_ACCESSED)) {
    cpu.setDescriptorBit(selector, 0x100, true);
    attr |= ATTR_ACCESSED;
  }
  cpu.loadCache(seg, selector, descBase(lo, hi), descLimit(lo, hi), attr);
}

function loadCs(cpu: Cpu, selector: number, lo: number, hi: number, attr: number, cpl: number): void {
  if (!(attr & ATTR_ACCESSED)) {
    cpu.setDescriptorBit(selector, 0x100, true);
    attr |= ATTR_ACCESSED;
  }
  cpu.loadCache(CS, (selector & 0xfffc) | cpl, descBase(lo, hi), descLimit(lo, hi), attr);
  cpu.updateMode();
}

/** Saved CS/SS/ESP/flags so a multi-step transfer can be undone when it faults midway. */
class Snapshot {
  private readonly sel = new Int32Array(2);
  private readonly base = new Int32Array(2);
  private readonly limit = new Float64Array(2);
  private readonly attr = new Int32Array(2);
  private esp = 0;
  private flags = 0;
  save(cpu: Cpu): void {
    for (let k = 0; k < 2; k++) {
      const seg = k === 0 ? CS : SS;
      this.sel[k] = cpu.segSel[seg]!;
      this.base[k] = cpu.segBase[seg]!;
      this.limit[k] = cpu.segLimit[seg]!;
      this.attr[k] = cpu.segAttr[seg]!;
    }
    this.esp = cpu.regs[4]!;
    this.flags = cpu.getFlags();
  }
  restore(cpu: Cpu): void {
    cpu.setFlagsRaw(this.flags);
    for (let k = 0; k < 2; k++) {
      cpu.loadCache(k === 0 ? CS : SS, this.sel[k]!, this.base[k]!, this.limit[k]!, this.attr[k]!);
    }
    cpu.regs[4] = this.esp;
    cpu.updateMode();
    cpu.refreshWindows();
  }
}
// One per kind of transfer: a transfer restores its snapshot before the fault unwinds, so the
// delivery of that fault may reuse it.
const callSnapshot = new Snapshot();
const interruptSnapshot = new Snapshot();
const DATA_SEGMENTS = [ES, DS, FS, GS] as const;
const VM86_PUSH_ORDER = [GS, FS, DS, ES] as const;
/** SS:ESP read from the TSS by tssStack. */
let tssSs = 0;
let tssEsp = 0;

// ---- far JMP / CALL / RET --------------------------------------------------------------------

export const TASK_JMP = 0;
export const TASK_CALL = 1;
export const TASK_IRET = 2;
export const TASK_INT = 3;

export function farJump(cpu: Cpu, selector: number, offset: number, opsize: number): void {
  selector &= 0xffff;
  offset = opsize === 4 ? offset >>> 0 : offset & 0xffff;
  if (!cpu.protectedMode || cpu.vm86) {
    if (offset > cpu.segLimit[CS]! && !cpu.vm86) cpu.gp(0);
    cpu.loadRealSegment(CS, selector);
    cpu.eip = offset;
    return;
  }
  const sx = selector & 0xfffc;
  if (sx === 0) cpu.gp(0);
  if (!cpu.readDescriptor(selector)) cpu.gp(sx);
  const lo = cpu.descLo;
  const hi = cpu.descHi;
  const attr = descAttr(hi);
  const cpl = cpu.cpl;
  const rpl = selector & 3;
  if (attr & ATTR_S) {
    if (!(attr & ATTR_CODE)) cpu.gp(sx);
    if (attr & ATTR_CE ? dpl(attr) > cpl : rpl > cpl || dpl(attr) !== cpl) cpu.gp(sx);
    if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
    if (offset > descLimit(lo, hi)) cpu.gp(0);
    loadCs(cpu, selector, lo, hi, attr, cpl);
    cpu.eip = offset;
    return;
  }
  const type = attr & 0xf;
  if (type === 4 || type === 0xc) {
    if (dpl(attr) < cpl || dpl(attr) < rpl) cpu.gp(sx);
    if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
    const target = lo >>> 16;
    const tOff = type === 0xc ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
    const tx = target & 0xfffc;
    if (tx === 0) cpu.gp(0);
    if (!cpu.readDescriptor(target)) cpu.gp(tx);
    const tlo = cpu.descLo;
    const thi = cpu.descHi;
    const tattr = descAttr(thi);
    if (!(tattr & ATTR_S) || !(tattr & ATTR_CODE)) cpu.gp(tx);
    if (tattr & ATTR_CE ? dpl(tattr) > cpl : dpl(tattr) !== cpl) cpu.gp(tx);
    if (!(tattr & ATTR_P)) cpu.raise(EXC_NP, tx);
    if (tOff > descLimit(tlo, thi)) cpu.gp(0);
    loadCs(cpu, target, tlo, thi, tattr, cpl);
    cpu.eip = tOff;
    return;
  }
  if (type === 5) {
    if (dpl(attr) < cpl || dpl(attr) < rpl) cpu.gp(sx);
    if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
    taskSwitch(cpu, lo >>> 16, TASK_JMP, -1);
    return;
  }
  if (type === 1 || type === 9) {
    if (dpl(attr) < cpl || dpl(attr) < rpl) cpu.gp(sx);
    taskSwitch(cpu, selector, TASK_JMP, -1);
    return;
  }
  cpu.gp(sx);
}

export function farCall(cpu: Cpu, selector: number, offset: number, opsize: number): void {
  selector &= 0xffff;
  offset = opsize === 4 ? offset >>> 0 : offset & 0xffff;
  const retEip = cpu.eip;
  const retCs = cpu.segSel[CS]!;
  if (!cpu.protectedMode || cpu.vm86) {
    const saved = cpu.regs[4]!;
    try {
      cpu.push(opsize, retCs);
      cpu.push(opsize, retEip);
    } catch (e) {
      cpu.regs[4] = saved;
      throw e;
    }
    cpu.loadRealSegment(CS, selector);
    cpu.eip = offset;
    return;
  }
  const sx = selector & 0xfffc;
  if (sx === 0) cpu.gp(0);
  if (!cpu.readDescriptor(selector)) cpu.gp(sx);
  const lo = cpu.descLo;
  const hi = cpu.descHi;
  const attr = descAttr(hi);
  const cpl = cpu.cpl;
  const rpl = selector & 3;
  if (attr & ATTR_S) {
    if (!(attr & ATTR_CODE)) cpu.gp(sx);
    if (attr & ATTR_CE ? dpl(attr) > cpl : rpl > cpl || dpl(attr) !== cpl) cpu.gp(sx);
    if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
    if (offset > descLimit(lo, hi)) cpu.gp(0);
    const saved = cpu.regs[4]!;
    try {
      cpu.push(opsize, retCs);
      cpu.push(opsize, retEip);
    } catch (e) {
      cpu.regs[4] = saved;
      throw e;
    }
    loadCs(cpu, selector, lo, hi, attr, cpl);
    cpu.eip = offset;
    return;
  }
  const type = attr & 0xf;
  if (type === 5 || type === 1 || type === 9) {
    if (dpl(attr) < cpl || dpl(attr) < rpl) cpu.gp(sx);
    if (type === 5 && !(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
    taskSwitch(cpu, type === 5 ? lo >>> 16 : selector, TASK_CALL, -1);
    return;
  }
  if (type !== 4 && type !== 0xc) cpu.gp(sx);
  if (dpl(attr) < cpl || dpl(attr) < rpl) cpu.gp(sx);
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
  const gate32 = type === 0xc;
  const gsize = gate32 ? 4 : 2;
  const params = hi & 0x1f;
  const target = lo >>> 16;
  const tOff = gate32 ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
  const tx = target & 0xfffc;
  if (tx === 0) cpu.gp(0);
  if (!cpu.readDescriptor(target)) cpu.gp(tx);
  const tlo = cpu.descLo;
  const thi = cpu.descHi;
  const tattr = descAttr(thi);
  const tdpl = dpl(tattr);
  if (!(tattr & ATTR_S) || !(tattr & ATTR_CODE) || tdpl > cpl) cpu.gp(tx);
  if (!(tattr & ATTR_P)) cpu.raise(EXC_NP, tx);
  if (tOff > descLimit(tlo, thi)) cpu.gp(0);
  const snap = callSnapshot;
  snap.save(cpu);
  if (!(tattr & ATTR_CE) && tdpl < cpl) {
    // More privileged: switch to the stack the TSS gives for the new level.
    tssStack(cpu, tdpl, 0);
    const ss = tssSs;
    const esp = tssEsp;
    const oldSs = cpu.segSel[SS]!;
    const oldEsp = cpu.regs[4]!;
    const oldStack32 = cpu.stack32;
    const args: number[] = [];
    for (let k = params - 1; k >= 0; k--) {
      const off = oldStack32 ? (oldEsp + k * gsize) >>> 0 : (oldEsp + k * gsize) & 0xffff;
      args.push(cpu.rd(SS, off, gsize));
    }
    checkNewStack(cpu, ss, tdpl, 0);
    const slo = cpu.descLo;
    const shi = cpu.descHi;
    try {
      loadCs(cpu, target, tlo, thi, tattr, tdpl);
      commitStack(cpu, ss, slo, shi, esp);
      cpu.push(gsize, oldSs);
      cpu.push(gsize, oldStack32 ? oldEsp : oldEsp & 0xffff);
      for (const a of args) cpu.push(gsize, a);
      cpu.push(gsize, retCs);
      cpu.push(gsize, retEip);
    } catch (e) {
      snap.restore(cpu);
      throw e;
    }
  } else {
    try {
      cpu.push(gsize, retCs);
      cpu.push(gsize, retEip);
      loadCs(cpu, target, tlo, thi, tattr, cpl);
    } catch (e) {
      snap.restore(cpu);
      throw e;
    }
  }
  cpu.eip = tOff;
}

/** Reads SS:ESP for privilege level `level` from the current TSS into tssSs/tssEsp. */
function tssStack(cpu: Cpu, level: number, ext: number): void {
  const type = cpu.segAttr[TR]! & 0xf;
  const base = cpu.segBase[TR]!;
  const trx = cpu.segSel[TR]! & 0xfffc;
  if (type === 0xb || type === 0x9) {
    const at = 4 + level * 8;
    if (at + 5 > cpu.segLimit[TR]!) cpu.raise(EXC_TS, trx | ext);
    tssEsp = cpu.sysRead((base + at) | 0, 4) | 0;
    tssSs = cpu.sysRead((base + at + 4) | 0, 2);
    return;
  }
  const at = 2 + level * 4;
  if (at + 3 > cpu.segLimit[TR]!) cpu.raise(EXC_TS, trx | ext);
  tssEsp = cpu.sysRead((base + at) | 0, 2);
  tssSs = cpu.sysRead((base + at + 2) | 0, 2);
}

/** Checks a stack segment taken from the TSS (#TS, or #SS when not present); leaves it in descLo/Hi. */
function checkNewStack(cpu: Cpu, ss: number, level: number, ext: number): void {
  const sx = ss & 0xfffc;
  if (sx === 0) cpu.raise(EXC_TS, ext);
  if (!cpu.readDescriptor(ss)) cpu.raise(EXC_TS, sx | ext);
  const attr = descAttr(cpu.descHi);
  if ((ss & 3) !== level || dpl(attr) !== level || !(attr & ATTR_S) || attr & ATTR_CODE || !(attr & ATTR_RW))
    cpu.raise(EXC_TS, sx | ext);
  if (!(attr & ATTR_P)) cpu.raise(EXC_SS, sx | ext);
}

function commitStack(cpu: Cpu, ss: number, lo: number, hi: number, esp: number): void {
  let attr = descAttr(hi);
  if (!(attr & ATTR_ACCESSED)) {
    cpu.setDescriptorBit(ss, 0x100, true);
    attr |= ATTR_ACCESSED;
  }
  cpu.loadCache(SS, ss, descBase(lo, hi), descLimit(lo, hi), attr);
  cpu.updateMode();
  if (cpu.stack32) cpu.regs[4] = esp;
  else cpu.r16[8] = esp;
}

/** Checks CS for a return to privilege `rpl` (RETF, IRET); leaves the descriptor in descLo/Hi. */
function checkReturnCs(cpu: Cpu, selector: number): void {
  const sx = selector & 0xfffc;
  if (sx === 0) cpu.gp(0);
  if (!cpu.readDescriptor(selector)) cpu.gp(sx);
  const attr = descAttr(cpu.descHi);
  const rpl = selector & 3;
  if (rpl < cpu.cpl) cpu.gp(sx);
  if (!(attr & ATTR_S) || !(attr & ATTR_CODE)) cpu.gp(sx);
  if (attr & ATTR_CE ? dpl(attr) > rpl : dpl(attr) !== rpl) cpu.gp(sx);
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx);
}

/** Checks SS for a return to an outer level; leaves the descriptor in descLo/Hi. */
function checkReturnSs(cpu: Cpu, ss: number, rpl: number): void {
  const sx = ss & 0xfffc;
  if (sx === 0) cpu.gp(0);
  if (!cpu.readDescriptor(ss)) cpu.gp(sx);
  const attr = descAttr(cpu.descHi);
  if ((ss & 3) !== rpl || dpl(attr) !== rpl || !(attr & ATTR_S) || attr & ATTR_CODE || !(attr & ATTR_RW))
    cpu.gp(sx);
  if (!(attr & ATTR_P)) cpu.raise(EXC_SS, sx);
}

/** After a return to an outer level, data segments the new level may not use become null. */
function nullInaccessibleSegments(cpu: Cpu): void {
  for (const seg of DATA_SEGMENTS) {
    const attr = cpu.segAttr[seg]!;
    const dataOrNonConforming = !(attr & ATTR_CODE) || !(attr & ATTR_CE);
    if ((cpu.segSel[seg]! & 0xfffc) === 0 || (dataOrNonConforming && dpl(attr) < cpu.cpl)) {
      cpu.loadCache(seg, 0, 0, 0, 0);
    }
  }
}

/** RETF [imm16] (CA, CB). */
export function farReturn(cpu: Cpu, opsize: number, release: number): void {
  if (!cpu.protectedMode || cpu.vm86) {
    const off = cpu.peek(opsize, 0);
    const sel = cpu.peek(opsize, opsize) & 0xffff;
    const target = opsize === 4 ? off >>> 0 : off & 0xffff;
    if (target > cpu.segLimit[CS]! && !cpu.vm86) cpu.gp(0);
    cpu.addSp(2 * opsize + release);
    cpu.loadRealSegment(CS, sel);
    cpu.eip = target;
    return;
  }
  const off = opsize === 4 ? cpu.peek(4, 0) >>> 0 : cpu.peek(2, 0);
  const sel = cpu.peek(opsize, opsize) & 0xffff;
  checkReturnCs(cpu, sel);
  const lo = cpu.descLo;
  const hi = cpu.descHi;
  const attr = descAttr(hi);
  const rpl = sel & 3;
  if (rpl === cpu.cpl) {
    if (off > descLimit(lo, hi)) cpu.gp(0);
    loadCs(cpu, sel, lo, hi, attr, rpl);
    cpu.addSp(2 * opsize + release);
    cpu.eip = off;
    return;
  }
  const newEsp = cpu.peek(opsize, 2 * opsize + release);
  const newSs = cpu.peek(opsize, 3 * opsize + release) & 0xffff;
  checkReturnSs(cpu, newSs, rpl);
  const slo = cpu.descLo;
  const shi = cpu.descHi;
  if (off > descLimit(lo, hi)) cpu.gp(0);
  loadCs(cpu, sel, lo, hi, attr, rpl);
  commitStack(cpu, newSs, slo, shi, (opsize === 4 ? newEsp : newEsp & 0xffff) + release);
  cpu.eip = off;
  nullInaccessibleSegments(cpu);
}

// ---- IRET -----------------------------------------------------------------------------------

export function iret(cpu: Cpu, opsize: number): void {
  cpu.nmiBlocked = false;
  if (!cpu.protectedMode) {
    const off = cpu.peek(opsize, 0);
    const sel = cpu.peek(opsize, opsize) & 0xffff;
    const flags = cpu.peek(opsize, 2 * opsize);
    const target = opsize === 4 ? off >>> 0 : off & 0xffff;
    if (target > cpu.segLimit[CS]!) cpu.gp(0);
    cpu.addSp(3 * opsize);
    cpu.loadRealSegment(CS, sel);
    cpu.eip = target;
    const mask = opsize === 4 ? 0x257fd5 : 0x7fd5;
    cpu.setFlagsRaw((cpu.getFlags() & ~mask) | (flags & mask));
    return;
  }
  if (cpu.vm86) {
    // Below IOPL 3 only VME's 16-bit form is allowed; it moves the image's IF into VIF.
    const virtual = cpu.iopl < 3;
    if (virtual && (!(cpu.cr4 & CR4_VME) || opsize !== 2)) cpu.gp(0);
    const off = cpu.peek(opsize, 0);
    const sel = cpu.peek(opsize, opsize) & 0xffff;
    const flags = cpu.peek(opsize, 2 * opsize);
    if (virtual && (flags & TF || (flags & IF && cpu.flagsRaw & VIP))) cpu.gp(0);
    const target = opsize === 4 ? off >>> 0 : off & 0xffff;
    if (target > 0xffff) cpu.gp(0);
    cpu.addSp(3 * opsize);
    cpu.loadRealSegment(CS, sel);
    cpu.eip = target;
    // IOPL and VM are not changed from virtual-8086 mode.
    let mask = (opsize === 4 ? ARITH_FLAGS | TF | IF | DF | NT | RF | AC | ID : 0x7fd5) & ~IOPL;
    if (virtual) mask &= ~IF;
    const merged = (cpu.getFlags() & ~mask) | (flags & mask);
    cpu.setFlagsRaw(!virtual ? merged : flags & IF ? merged | VIF : merged & ~VIF);
    return;
  }
  if (cpu.getFlags() & NT) {
    const link = cpu.sysRead(cpu.segBase[TR]!, 2);
    taskSwitch(cpu, link, TASK_IRET, -1);
    return;
  }
  const off = cpu.peek(opsize, 0);
  const sel = cpu.peek(opsize, opsize) & 0xffff;
  const flags = cpu.peek(opsize, 2 * opsize);
  if (opsize === 4 && flags & VM && cpu.cpl === 0) {
    returnToVm86(cpu, off, sel, flags);
    return;
  }
  checkReturnCs(cpu, sel);
  const lo = cpu.descLo;
  const hi = cpu.descHi;
  const attr = descAttr(hi);
  const rpl = sel & 3;
  const target = opsize === 4 ? off >>> 0 : off & 0xffff;
  const oldCpl = cpu.cpl;
  let mask = ARITH_FLAGS | TF | DF | NT;
  if (opsize === 4) mask |= RF | AC | ID;
  if (oldCpl === 0) mask |= IOPL | (opsize === 4 ? VIF | VIP : 0);
  if (oldCpl <= cpu.iopl) mask |= IF;
  const newFlags = (cpu.getFlags() & ~mask) | (flags & mask);
  if (rpl === oldCpl) {
    if (target > descLimit(lo, hi)) cpu.gp(0);
    loadCs(cpu, sel, lo, hi, attr, rpl);
    cpu.addSp(3 * opsize);
    cpu.eip = target;
    cpu.setFlagsRaw(newFlags);
    cpu.updateMode();
    return;
  }
  const newEsp = cpu.peek(opsize, 3 * opsize);
  const newSs = cpu.peek(opsize, 4 * opsize) & 0xffff;
  checkReturnSs(cpu, newSs, rpl);
  const slo = cpu.descLo;
  const shi = cpu.descHi;
  if (target > descLimit(lo, hi)) cpu.gp(0);
  loadCs(cpu, sel, lo, hi, attr, rpl);
  commitStack(cpu, newSs, slo, shi, opsize === 4 ? newEsp : newEsp & 0xffff);
  cpu.eip = target;
  cpu.setFlagsRaw(newFlags);
  cpu.updateMode();
  nullInaccessibleSegments(cpu);
}

function returnToVm86(cpu: Cpu, off: number, sel: number, flags: number): void {
  const esp = cpu.peek(4, 12);
  const ss = cpu.peek(4, 16);
  const es = cpu.peek(4, 20);
  const ds = cpu.peek(4, 24);
  const fs = cpu.peek(4, 28);
  const gs = cpu.peek(4, 32);
  cpu.setFlagsRaw(flags | VM);
  cpu.updateMode();
  cpu.refreshWindows();
  cpu.loadRealSegment(CS, sel);
  cpu.loadRealSegment(SS, ss);
  cpu.loadRealSegment(ES, es);
  cpu.loadRealSegment(DS, ds);
  cpu.loadRealSegment(FS, fs);
  cpu.loadRealSegment(GS, gs);
  cpu.regs[4] = esp;
  cpu.eip = off & 0xffff;
}

// ---- interrupts and exceptions through the IDT ----------------------------------------------

export function deliverProtected(cpu: Cpu, vector: number, error: number, kind: number): void {
  const ext = cpu.ext;
  const idtErr = vector * 8 + 2 + ext;
  if (vector * 8 + 7 > cpu.idtLimit) cpu.gp(idtErr);
  const at = (cpu.idtBase + vector * 8) | 0;
  const lo = cpu.sysRead(at, 4) | 0;
  const hi = cpu.sysRead((at + 4) | 0, 4) | 0;
  const attr = descAttr(hi);
  const type = attr & 0x1f;
  if (type !== 5 && type !== 6 && type !== 7 && type !== 0xe && type !== 0xf) cpu.gp(idtErr);
  const software = kind === EVENT_SOFTWARE || kind === EVENT_SOFTWARE_EXC;
  if (software && dpl(attr) < cpu.cpl) cpu.gp(vector * 8 + 2);
  if (cpu.vm86 && kind === EVENT_SOFTWARE && cpu.iopl < 3) cpu.gp(0);
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, idtErr);
  if (type === 5) {
    taskSwitch(cpu, lo >>> 16, TASK_INT, error);
    return;
  }
  const gate32 = (type & 8) !== 0;
  const gsize = gate32 ? 4 : 2;
  const target = lo >>> 16;
  const tOff = gate32 ? ((lo & 0xffff) | (hi & 0xffff0000)) >>> 0 : lo & 0xffff;
  const tx = target & 0xfffc;
  if (tx === 0) cpu.gp(ext);
  if (!cpu.readDescriptor(target)) cpu.gp(tx | ext);
  const tlo = cpu.descLo;
  const thi = cpu.descHi;
  const tattr = descAttr(thi);
  const tdpl = dpl(tattr);
  if (!(tattr & ATTR_S) || !(tattr & ATTR_CODE) || tdpl > cpu.cpl) cpu.gp(tx | ext);
  if (!(tattr & ATTR_P)) cpu.raise(EXC_NP, tx | ext);
  if (tOff > descLimit(tlo, thi)) cpu.gp(ext);
  const oldFlags = cpu.getFlags();
  const oldCs = cpu.segSel[CS]!;
  const oldEip = cpu.eip;
  const fromVm86 = cpu.vm86;
  const snap = interruptSnapshot;
  snap.save(cpu);
  if (!(tattr & ATTR_CE) && tdpl < cpu.cpl) {
    if (fromVm86 && tdpl !== 0) cpu.gp(tx | ext);
    tssStack(cpu, tdpl, ext);
    const ss = tssSs;
    const esp = tssEsp;
    checkNewStack(cpu, ss, tdpl, ext);
    const slo = cpu.descLo;
    const shi = cpu.descHi;
    const oldSs = cpu.segSel[SS]!;
    const oldEsp = cpu.regs[4]!;
    try {
      if (fromVm86) {
        cpu.setFlagsRaw(oldFlags & ~VM);
        cpu.updateMode();
        cpu.refreshWindows();
      }
      loadCs(cpu, target, tlo, thi, tattr, tdpl);
      commitStack(cpu, ss, slo, shi, esp);
      if (fromVm86) for (const seg of VM86_PUSH_ORDER) cpu.push(gsize, cpu.segSel[seg]!);
      cpu.push(gsize, oldSs);
      cpu.push(gsize, oldEsp);
      cpu.push(gsize, oldFlags);
      cpu.push(gsize, oldCs);
      cpu.push(gsize, oldEip);
      if (error >= 0) cpu.push(gsize, error);
    } catch (e) {
      snap.restore(cpu);
      if (fromVm86) cpu.refreshWindows();
      throw e;
    }
    if (fromVm86) {
      for (const seg of DATA_SEGMENTS) cpu.loadCache(seg, 0, 0, 0, 0);
    }
  } else {
    if (fromVm86) cpu.gp(tx | ext);
    try {
      cpu.push(gsize, oldFlags);
      cpu.push(gsize, oldCs);
      cpu.push(gsize, oldEip);
      if (error >= 0) cpu.push(gsize, error);
      loadCs(cpu, target, tlo, thi, tattr, cpu.cpl);
    } catch (e) {
      snap.restore(cpu);
      throw e;
    }
  }
  let flags = cpu.getFlags() & ~(TF | NT | RF | VM);
  if (!(type & 1)) flags &= ~IF;
  cpu.setFlagsRaw(flags);
  cpu.updateMode();
  cpu.eip = tOff;
}

// ---- task switching -------------------------------------------------------------------------

/** Switches to the task whose TSS selector is `selector`; `error` >= 0 is pushed afterwards. */
export function taskSwitch(cpu: Cpu, selector: number, source: number, error: number): void {
  selector &= 0xffff;
  const sx = selector & 0xfffc;
  const ext = cpu.ext;
  const fault = source === TASK_IRET ? EXC_TS : EXC_GP;
  if (selector & 4 || !cpu.readDescriptor(selector)) cpu.raise(fault, sx | ext);
  const lo = cpu.descLo;
  const hi = cpu.descHi;
  const attr = descAttr(hi);
  const type = attr & 0x1f;
  const busyWanted = source === TASK_IRET;
  const ok = busyWanted ? type === 0xb || type === 3 : type === 9 || type === 1;
  if (!ok) cpu.raise(fault, sx | ext);
  if (!(attr & ATTR_P)) cpu.raise(EXC_NP, sx | ext);
  const new32 = (type & 8) !== 0;
  const newBase = descBase(lo, hi);
  const newLimit = descLimit(lo, hi);
  if (newLimit < (new32 ? 0x67 : 0x2b)) cpu.raise(EXC_TS, sx | ext);

  // Read the new task's state first, so a fault here leaves the old task untouched.
  const rd = (off: number, size: 2 | 4) => cpu.sysRead((newBase + off) | 0, size);
  const regs: number[] = [];
  const sels: number[] = [];
  let newEip: number;
  let newFlags: number;
  let newCr3 = cpu.cr3;
  let ldt: number;
  if (new32) {
    newCr3 = rd(0x1c, 4) | 0;
    newEip = rd(0x20, 4) >>> 0;
    newFlags = rd(0x24, 4);
    for (let r = 0; r < 8; r++) regs.push(rd(0x28 + r * 4, 4) | 0);
    for (let s = 0; s < 6; s++) sels.push(rd(0x48 + s * 4, 2));
    ldt = rd(0x60, 2);
  } else {
    newEip = rd(0x0e, 2);
    newFlags = rd(0x10, 2);
    for (let r = 0; r < 8; r++) regs.push(rd(0x12 + r * 2, 2));
    for (let s = 0; s < 4; s++) sels.push(rd(0x22 + s * 2, 2));
    sels.push(0, 0);
    ldt = rd(0x2a, 2);
  }

  // Save the outgoing task.
  const oldSel = cpu.segSel[TR]!;
  const oldBase = cpu.segBase[TR]!;
  const old32 = (cpu.segAttr[TR]! & 8) !== 0;
  let flags = cpu.getFlags();
  if (source === TASK_IRET) flags &= ~NT;
  const wr = (off: number, size: 2 | 4, v: number) => cpu.sysWrite((oldBase + off) | 0, size, v);
  if (old32) {
    wr(0x20, 4, cpu.eip);
    wr(0x24, 4, flags);
    for (let r = 0; r < 8; r++) wr(0x28 + r * 4, 4, cpu.regs[r]!);
    for (let s = 0; s < 6; s++) wr(0x48 + s * 4, 2, cpu.segSel[s]!);
  } else {
    wr(0x0e, 2, cpu.eip);
    wr(0x10, 2, flags);
    for (let r = 0; r < 8; r++) wr(0x12 + r * 2, 2, cpu.regs[r]!);
    for (let s = 0; s < 4; s++) wr(0x22 + s * 2, 2, cpu.segSel[s]!);
  }
  if (source === TASK_JMP || source === TASK_IRET) cpu.setDescriptorBit(oldSel, 0x200, false);
  if (source === TASK_CALL || source === TASK_INT) {
    cpu.sysWrite(newBase, 2, oldSel);
    newFlags |= NT;
  }
  if (source !== TASK_IRET) cpu.setDescriptorBit(selector, 0x200, true);

  // Commit: from here on faults belong to the new task.
  cpu.loadCache(TR, selector, newBase, newLimit, attr | 2);
  cpu.cr0 |= CR0_TS;
  if (new32 && cpu.cr0 & CR0_PG) cpu.writeCr3(newCr3);
  for (let r = 0; r < 8; r++) cpu.regs[r] = regs[r]!;
  cpu.setFlagsRaw(new32 ? newFlags : (flags & ~0xffff) | newFlags);
  cpu.eip = newEip;
  cpu.instrStart = cpu.ip;
  for (let s = 0; s < 6; s++) cpu.segSel[s] = sels[s]!;
  // Until the checks below pass the selectors are unusable.
  for (let s = 0; s < 6; s++) cpu.loadCache(s, sels[s]!, 0, 0, s === CS ? 0x9b : 0);
  cpu.updateMode();
  cpu.refreshWindows();

  const ldx = ldt & 0xfffc;
  if (ldt & 4) cpu.raise(EXC_TS, ldx | ext);
  if (ldx === 0) cpu.loadCache(LDTR, ldt, 0, 0, 0);
  else {
    if (!cpu.readDescriptor(ldt & ~4)) cpu.raise(EXC_TS, ldx | ext);
    const lattr = descAttr(cpu.descHi);
    if ((lattr & 0x1f) !== 2) cpu.raise(EXC_TS, ldx | ext);
    if (!(lattr & ATTR_P)) cpu.raise(EXC_TS, ldx | ext);
    cpu.loadCache(LDTR, ldt, descBase(cpu.descLo, cpu.descHi), descLimit(cpu.descLo, cpu.descHi), lattr);
  }

  if (cpu.getFlags() & VM) {
    for (let s = 0; s < 6; s++) cpu.loadRealSegment(s, sels[s]!);
  } else {
    const cs = sels[CS]!;
    const csx = cs & 0xfffc;
    if (csx === 0 || !cpu.readDescriptor(cs)) cpu.raise(EXC_TS, csx | ext);
    const cattr = descAttr(cpu.descHi);
    if (!(cattr & ATTR_S) || !(cattr & ATTR_CODE)) cpu.raise(EXC_TS, csx | ext);
    if (cattr & ATTR_CE ? dpl(cattr) > (cs & 3) : dpl(cattr) !== (cs & 3)) cpu.raise(EXC_TS, csx | ext);
    if (!(cattr & ATTR_P)) cpu.raise(EXC_NP, csx | ext);
    loadCs(cpu, cs, cpu.descLo, cpu.descHi, cattr, cs & 3);
    loadProtectedSegment(cpu, SS, sels[SS]!, EXC_TS);
    for (const s of [ES, DS, FS, GS]) loadProtectedSegment(cpu, s, sels[s]!, EXC_TS);
  }
  cpu.updateMode();
  if (cpu.eip > cpu.segLimit[CS]!) cpu.gp(ext);
  if (error >= 0) cpu.push(new32 ? 4 : 2, error);
  // The TSS's T bit: a debug trap before the new task's first instruction (DR6.BT).
  if (new32 && rd(0x64, 2) & 1) {
    cpu.dr[6] = cpu.dr[6]! | 0x8000;
    cpu.instrStart = cpu.ip;
    cpu.raise(EXC_DB);
  }
}
