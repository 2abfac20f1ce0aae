// EFLAGS bits, control-register bits, exception vectors and other architectural constants shared by
// the decoder, the interpreter and the tests.

/** EFLAGS.CF: carry. */
export const CF = 1 << 0;
/** EFLAGS bit 1 always reads as 1. */
export const FLAGS_FIXED = 1 << 1;
/** EFLAGS.PF: even parity of the result's low byte. */
export const PF = 1 << 2;
/** EFLAGS.AF: carry out of bit 3. */
export const AF = 1 << 4;
/** EFLAGS.ZF: zero result. */
export const ZF = 1 << 6;
/** EFLAGS.SF: sign of the result. */
export const SF = 1 << 7;
/** EFLAGS.TF: single-step trap. */
export const TF = 1 << 8;
/** EFLAGS.IF: maskable interrupts enabled. */
export const IF = 1 << 9;
/** EFLAGS.DF: string direction (down). */
export const DF = 1 << 10;
/** EFLAGS.OF: signed overflow. */
export const OF = 1 << 11;
/** EFLAGS.IOPL (two bits). */
export const IOPL = 3 << 12;
/** EFLAGS.NT: nested task. */
export const NT = 1 << 14;
/** EFLAGS.RF: resume (suppresses instruction breakpoints for one instruction). */
export const RF = 1 << 16;
/** EFLAGS.VM: virtual-8086 mode. */
export const VM = 1 << 17;
/** EFLAGS.AC: alignment check (only settable, never enforced: CR0.AM checks are not modelled). */
export const AC = 1 << 18;
/** EFLAGS.VIF (VME). */
export const VIF = 1 << 19;
/** EFLAGS.VIP (VME). */
export const VIP = 1 << 20;
/** EFLAGS.ID: CPUID is available when software can toggle it. */
export const ID = 1 << 21;

/** The six arithmetic flags. */
export const ARITH_FLAGS = CF | PF | AF | ZF | SF | OF;
/** Bits of EFLAGS that exist on this CPU (P6 with CPUID; VIF/VIP only change through POPF at CPL0). */
export const FLAGS_IMPLEMENTED = ARITH_FLAGS | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;

/** CR0.PE: protected mode. */
export const CR0_PE = 1 << 0;
/** CR0.MP: WAIT honours TS. */
export const CR0_MP = 1 << 1;
/** CR0.EM: no FPU, escape opcodes raise #NM. */
export const CR0_EM = 1 << 2;
/** CR0.TS: task switched, FPU use raises #NM. */
export const CR0_TS = 1 << 3;
/** CR0.ET: always 1 on P6. */
export const CR0_ET = 1 << 4;
/** CR0.NE: native FPU error reporting. */
export const CR0_NE = 1 << 5;
/** CR0.WP: supervisor writes honour read-only pages. */
export const CR0_WP = 1 << 16;
/** CR0.AM: alignment mask. */
export const CR0_AM = 1 << 18;
/** CR0.NW: not write-through. */
export const CR0_NW = 1 << 29;
/** CR0.CD: cache disable. */
export const CR0_CD = 1 << 30;
/** CR0.PG: paging. */
export const CR0_PG = 1 << 31;

/** CR4.VME: virtual-8086 mode extensions (VIF, interrupt redirection). */
export const CR4_VME = 1 << 0;
/** CR4.PVI: protected-mode virtual interrupts (CLI/STI on VIF at CPL 3). */
export const CR4_PVI = 1 << 1;
/** CR4.TSD: RDTSC is privileged. */
export const CR4_TSD = 1 << 2;
/** CR4.DE: DR4/DR5 references raise #UD. */
export const CR4_DE = 1 << 3;
/** CR4.PSE: 4 MiB pages. */
export const CR4_PSE = 1 << 4;
/** CR4.PAE: physical address extension. */
export const CR4_PAE = 1 << 5;
/** CR4.MCE (accepted and ignored: no machine checks are ever raised). */
export const CR4_MCE = 1 << 6;
/** CR4.PGE: global pages. */
export const CR4_PGE = 1 << 7;
/** CR4.PCE: RDPMC allowed at any CPL. */
export const CR4_PCE = 1 << 8;
/** CR4.OSFXSR: FXSAVE/FXRSTOR save SSE state (accepted; no SSE state exists). */
export const CR4_OSFXSR = 1 << 9;
/** CR4.OSXMMEXCPT. */
export const CR4_OSXMMEXCPT = 1 << 10;
/** CR4 bits this CPU accepts; others raise #GP. */
export const CR4_VALID =
  CR4_VME |
  CR4_PVI |
  CR4_TSD |
  CR4_DE |
  CR4_PSE |
  CR4_PAE |
  CR4_MCE |
  CR4_PGE |
  CR4_PCE |
  CR4_OSFXSR |
  CR4_OSXMMEXCPT;

/** EFER.NXE: execute-disable bit honoured in PAE page tables. */
export const EFER_NXE = 1 << 11;

// Exception vectors.
export const EXC_DE = 0;
export const EXC_DB = 1;
export const EXC_NMI = 2;
export const EXC_BP = 3;
export const EXC_OF = 4;
export const EXC_BR = 5;
export const EXC_UD = 6;
export const EXC_NM = 7;
export const EXC_DF = 8;
export const EXC_TS = 10;
export const EXC_NP = 11;
export const EXC_SS = 12;
export const EXC_GP = 13;
export const EXC_PF = 14;
export const EXC_MF = 16;
export const EXC_AC = 17;
export const EXC_MC = 18;

/** Page-fault error code bits. */
export const PF_PRESENT = 1;
export const PF_WRITE = 2;
export const PF_USER = 4;
export const PF_RSVD = 8;
export const PF_FETCH = 16;

// Segment register indexes, in the order x86 encodes them. LDTR and TR share the cache arrays.
export const ES = 0;
export const CS = 1;
export const SS = 2;
export const DS = 3;
export const FS = 4;
export const GS = 5;
export const LDTR = 6;
export const TR = 7;

// General register indexes.
export const EAX = 0;
export const ECX = 1;
export const EDX = 2;
export const EBX = 3;
export const ESP = 4;
export const EBP = 5;
export const ESI = 6;
export const EDI = 7;

/** Parity flag for every byte value (PF set when the count of one bits is even). */
export const PARITY = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let bits = 0;
  for (let v = i; v; v >>= 1) bits += v & 1;
  PARITY[i] = bits & 1 ? 0 : PF;
}

// Descriptor attribute bits (descriptor high dword >> 8).
/** Type bit 0: accessed. */
export const ATTR_ACCESSED = 0x01;
/** Type bit 1: readable (code) / writable (data). */
export const ATTR_RW = 0x02;
/** Type bit 2: conforming (code) / expand-down (data). */
export const ATTR_CE = 0x04;
/** Type bit 3: code. */
export const ATTR_CODE = 0x08;
/** S: code or data (not system). */
export const ATTR_S = 0x10;
/** P: present. */
export const ATTR_P = 0x80;
/** D/B: 32-bit default size / big stack / expand-down upper bound 4 GiB. */
export const ATTR_DB = 0x4000;
/** G: limit in 4 KiB units. */
export const ATTR_G = 0x8000;

// Lazy flag operations.
export const LZ_ADD = 0;
export const LZ_ADC = 1;
export const LZ_SUB = 2;
export const LZ_SBB = 3;
export const LZ_LOGIC = 4;

/** Value mask per operand size in bytes. */
export const SIZE_MASK = [0, 0xff, 0xffff, 0, 0xffffffff];
/** Sign bit per operand size in bytes. */
export const SIZE_SIGN = [0, 0x80, 0x8000, 0, 0x80000000];

/** Event classes for interrupt delivery. */
export const EVENT_EXCEPTION = 0;
export const EVENT_EXTERNAL = 1;
export const EVENT_SOFTWARE = 2;
/** INT3 and INTO: software, gate DPL checked, but reported like exceptions. */
export const EVENT_SOFTWARE_EXC = 3;
/** INT1 (ICEBP): no gate DPL check. */
export const EVENT_ICEBP = 4;

/** Iterations of a REP string instruction per execution before it yields to interrupts. */
export const REP_CHUNK = 4096;
