// The contract between the CPU core and the floating-point unit (x87, MMX, FXSAVE/FXRSTOR).
//
// The CPU decodes the instruction, applies its own checks (#UD for CR0.EM on MMX, #NM for CR0.TS or
// CR0.EM on x87, #GP for a misaligned FXSAVE area), resolves the memory operand to a linear address
// and then calls the unit. Memory accesses go back through the host so segmentation, paging and
// faults stay in the CPU: a fault is thrown from read*/write*/checkWritable and propagates out of the
// unit. The unit reads every source operand before it changes any state, and computes a store
// completely (after checkWritable for multi-part stores) before writing, so a faulting instruction
// can be restarted.

export interface FpuHost {
  /** Linear-address reads; may throw the CPU's page fault / segment fault. */
  read8(addr: number): number;
  read16(addr: number): number;
  read32(addr: number): number;
  /** Linear-address writes; may throw. */
  write8(addr: number, value: number): void;
  write16(addr: number, value: number): void;
  write32(addr: number, value: number): void;
  /** Throws the fault a write to any byte of [addr, addr + length) would raise. */
  checkWritable(addr: number, length: number): void;

  /** Effective operand size of the instruction (chooses the 14/28 and 94/108-byte FNSTENV/FNSAVE layouts). */
  readonly operandSize32: boolean;
  /** CR0.PE set and not virtual-8086 mode: chooses the protected-mode FNSTENV/FNSAVE layouts. */
  readonly protectedMode: boolean;
  /** CR0.NE: pending unmasked exceptions raise #MF (true) or go out on FERR# (false). */
  readonly numericErrorNative: boolean;

  // Last-instruction / last-operand bookkeeping (FIP, FCS, FDP, FDS). The host sets these before it
  // calls the unit for each instruction; plain mutable fields keep the call allocation-free.
  /** CS selector of the instruction. */
  readonly instructionSelector: number;
  /** Offset (EIP) of the instruction's first byte, prefixes included. */
  readonly instructionOffset: number;
  /** Segment selector of the memory operand (after segment overrides); ignored for register forms. */
  readonly operandSelector: number;
  /** Offset of the memory operand within its segment; ignored for register forms. */
  readonly operandOffset: number;

  /** EFLAGS as it stands before the instruction (FCMOVcc reads CF, ZF and PF). */
  readonly eflags: number;

  /** General registers for MOVD r/m32 and FNSTSW AX (index 0-7 = EAX..EDI). */
  readGpr32(index: number): number;
  writeGpr32(index: number, value: number): void;
}

// Results of executeEscape / executeMmx / waitCheck. A non-negative result is an EFLAGS update from
// FCOMI/FUCOMI and friends: the host sets ZF, PF and CF from it (EFLAGS bits 6, 2, 0) and clears OF,
// SF and AF.

/** Done; EFLAGS unchanged. */
export const FPU_DONE = -1;
/** A pending unmasked exception with CR0.NE=1: raise #MF (vector 16) with the instruction not executed. */
export const FPU_RAISE_MF = -2;
/**
 * A pending unmasked exception with CR0.NE=0 and IGNNE# inactive: FERR# has been asserted and the
 * instruction waits. The host does not retire it, lets pending interrupts in (IRQ 13), and runs it again.
 */
export const FPU_FREEZE = -3;
/** Reserved encoding: raise #UD. */
export const FPU_INVALID_OPCODE = -4;

/** EFLAGS bits an FCOMI-class result may set. */
export const EFLAGS_CF = 1 << 0;
export const EFLAGS_PF = 1 << 2;
export const EFLAGS_ZF = 1 << 6;

/** What the CPU calls (implemented by `Fpu` in fpu.ts). */
export interface FpuUnit {
  /**
   * One x87 instruction: `opcode` is the escape byte 0xD8-0xDF, `modrm` the ModRM byte, `ea` the
   * linear address of the memory operand (ignored when modrm >= 0xC0). Reserved encodings give
   * FPU_INVALID_OPCODE first; then waiting instructions check for a pending exception themselves
   * (FNINIT, FNCLEX, FNSTSW, FNSTCW, FNSTENV, FNSAVE do not). Returns FPU_DONE, FPU_RAISE_MF,
   * FPU_FREEZE, FPU_INVALID_OPCODE or EFLAGS bits (FCOMI family).
   */
  executeEscape(opcode: number, modrm: number, ea: number, host: FpuHost): number;
  /**
   * The register forms of FADD, FMUL, FSUB, FSUBR, FDIV and FDIVR (D8, DC, DE with modrm >= 0xC0)
   * when no exception is pending and both operands and the result are normal numbers: the whole
   * instruction as executeEscape would do it, with `fip`/`fcs` the instruction's offset and code
   * selector. Returns false, having changed nothing, for anything else.
   */
  registerArithmetic(opcode: number, modrm: number, fip: number, fcs: number): boolean;
  /**
   * One MMX instruction, `opcode` the byte after 0x0F (0x60-0x7F, 0xD1-0xFE, 0x77 EMMS), `imm8` the
   * immediate of 0F 71/72/73 (else ignored). Returns FPU_DONE, FPU_RAISE_MF, FPU_FREEZE or
   * FPU_INVALID_OPCODE.
   */
  executeMmx(opcode: number, modrm: number, ea: number, imm8: number, host: FpuHost): number;
  /** FWAIT/WAIT (0x9B): FPU_DONE, FPU_RAISE_MF or FPU_FREEZE. */
  waitCheck(host: FpuHost): number;
  /** FXSAVE / FXRSTOR to the 512-byte area at linear `ea` (the host checks 16-byte alignment). */
  fxsave(ea: number, host: FpuHost): void;
  fxrstor(ea: number, host: FpuHost): void;
  /** IGNNE# input (the PC drives it from port 0xF0 writes); while asserted, FERR# does not freeze. */
  setIgnne(asserted: boolean): void;
  /** FERR# output (the PC routes it to IRQ 13); FpuErrorLatch in ferr.ts does that wiring. */
  onFerr: (asserted: boolean) => void;
  /** RESET: the power-on state (FCW 0040h, all registers +0). INIT leaves the x87 state alone. */
  reset(): void;
}
