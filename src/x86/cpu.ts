// The x86 CPU (i386 to Pentium III class), interpreted.
//
// Public API (stable; the machine builder, the bare-metal runner and the differential harness use it):
//
//   const cpu = new Cpu({ memory, ports, interrupts?, onShutdown?, tsc?, fpu? });
//   cpu.reset();                         // SDM reset state (also CpuPins.reset: INIT/RESET)
//   cpu.run(maxInstructions): number     // retired count; returns early when halted or shut down
//   cpu.halted / cpu.isShutdown          // HLT (woken by INTR with IF=1, or NMI) / triple fault
//   CpuPins: setIntr(high), nmi(), setA20(enabled), reset()
//   Registers: cpu.eax ... cpu.edi, cpu.eip, cpu.eflags (lazy flags materialised on read),
//     cpu.getReg32(i) / cpu.setReg32(i, v) (i = EAX..EDI from flags.ts),
//     cpu.getSegment(i) -> SegmentState / cpu.setSegment(i, SegmentState) (i = ES, CS, SS, DS, FS, GS,
//     LDTR, TR), cpu.cr0/cr2/cr3/cr4 getters and cpu.setCr(n, value) (with the side effects of MOV CRn),
//     cpu.gdtr / cpu.idtr ({ base, limit }), cpu.instructionCount, cpu.cpl.
//   cpu.trace = (cpu) => { ... }         // called before every instruction while set (slows the CPU);
//                                        // cpu.instructionBytes() gives the bytes at CS:EIP
//   cpu.readLinear(addr, width) / cpu.translateLinear(addr) for monitors (no faults, no side effects).
//   cpu.onApicBaseChange = (lo, hi) => { ... }   // guest wrote IA32_APIC_BASE
//   cpu.dr (DR0-7), cpu.msrs, cpu.efer, cpu.protectedMode, cpu.vm86 for inspection.
//   Persistent: stateVersion, saveState(), loadState(state, version). The x87 unit passed as
//   `fpu` persists itself (the machine saves it next to the CPU).
//   EIP is stored unsigned; write cpu.eip only at instruction boundaries (between run() calls).
//
// Design: instructions are decoded once into `Insn` records (see decoder.ts, driven by the single
// opcode table in opcodes.ts) and cached per basic block, keyed by physical address and the code
// segment's default size. Pages holding decoded code are flagged PAGE_CODE in the memory map so that
// writes to them (by the guest, DMA or loaders) invalidate the blocks. A fault unwinds the current
// instruction by throwing one preallocated GuestFault; the run loop then delivers the exception.
// Arithmetic flags are lazy: the last flag-setting operation's inputs and result are kept and each
// flag is computed when read.

import type { PortBus } from "../core/bus.ts";
import type { CpuPins, InterruptAcknowledge } from "../core/interrupts.ts";
import type { PhysicalMemory } from "../core/memory.ts";
import { PAGE_SHIFT } from "../core/memory.ts";
import type { Persistent } from "../core/persist.ts";
import { StateError } from "../core/persist.ts";
import { Block, DECODE_NEED_MORE, DECODE_TOO_LONG, decodeInstruction, Insn } from "./decoder.ts";
import * as flags from "./flags.ts";
import type { FpuUnit } from "./fpu/host.ts";
import { CpuFpuHost } from "./fpu-glue.ts";
import { defaultJitMode, Jit, type JitMode } from "./jit/jit.ts";
import { deliverProtected } from "./protected.ts";
import { defaultMsrs, type MsrFile } from "./system.ts";

// Copied into module constants: V8 folds a module's own constants into optimised code, but loads
// and checks an imported binding on every use (the interpreter's handlers use these throughout).
const {
  AC,
  AF,
  ARITH_FLAGS,
  ATTR_CE,
  ATTR_CODE,
  ATTR_DB,
  ATTR_P,
  ATTR_RW,
  ATTR_S,
  CF,
  CR0_AM,
  CR0_CD,
  CR0_EM,
  CR0_ET,
  CR0_MP,
  CR0_NE,
  CR0_NW,
  CR0_PE,
  CR0_PG,
  CR0_TS,
  CR0_WP,
  CR4_DE,
  CR4_PAE,
  CR4_PGE,
  CR4_PSE,
  CR4_VALID,
  CS,
  EFER_NXE,
  EVENT_EXCEPTION,
  EVENT_EXTERNAL,
  EXC_AC,
  EXC_DB,
  EXC_DF,
  EXC_GP,
  EXC_NMI,
  EXC_PF,
  EXC_SS,
  FLAGS_FIXED,
  IF,
  LDTR,
  LZ_ADC,
  LZ_ADD,
  LZ_LOGIC,
  LZ_SBB,
  LZ_SUB,
  OF,
  PARITY,
  PF,
  PF_FETCH,
  PF_PRESENT,
  PF_RSVD,
  PF_USER,
  PF_WRITE,
  RF,
  SF,
  SIZE_MASK,
  SIZE_SIGN,
  SS,
  TF,
  TR,
  VM,
  ZF,
} = flags;

export interface CpuOptions {
  memory: PhysicalMemory;
  ports: PortBus;
  /** Who answers INTA (the PIC or the local APIC). */
  interrupts?: InterruptAcknowledge;
  /** Triple fault and other shutdown conditions: the machine resets or stops. */
  onShutdown?: (reason: string) => void;
  /** Time-stamp counter source (default: the instruction count). */
  tsc?: () => number;
  /** The x87/MMX unit; without it the escape opcodes raise #NM and CPUID does not advertise an FPU. */
  fpu?: FpuUnit;
  /** The binary translator: off, on (hot blocks), force (every block). Default: defaultJitMode(). */
  jit?: JitMode;
  /**
   * Called after the CPU spent host time on its own work (translating code and V8 compiling it)
   * instead of running the guest. The machine reads the clock then, so a timer that fell due
   * meanwhile ends the slice: guest time passes during that work, and a slice that ran on past
   * several timer periods would deliver one tick for all of them.
   */
  afterHostWork?: () => void;
}

/** One segment register with its descriptor cache (also LDTR and TR). */
export interface SegmentState {
  selector: number;
  base: number;
  /** Byte-granular limit (already scaled when G was set). */
  limit: number;
  /** Descriptor bits 8-23 of the high dword: type(0-3) S(4) DPL(5-6) P(7) AVL(12) L(13) D/B(14) G(15). */
  attributes: number;
}

export interface CpuState {
  regs: number[];
  eip: number;
  eflags: number;
  segments: SegmentState[];
  cr: number[];
  dr: number[];
  efer: number;
  gdtr: [number, number];
  idtr: [number, number];
  halted: boolean;
  shutdown: boolean;
  intr: boolean;
  nmiPending: boolean;
  nmiBlocked: boolean;
  a20: boolean;
  instructionCount: number;
  tscOffset: number;
  msrs: [number, number, number][];
  shadow: boolean;
}

/** Thrown (one preallocated instance) to unwind an instruction that raised an exception. */
export class GuestFault extends Error {
  constructor() {
    super("guest exception");
    this.name = "GuestFault";
  }
}
export const GUEST_FAULT = new GuestFault();

// TLB entry: (physical page << 9) | bits.
const TLB_VALID = 1;
/** User-mode reads allowed. */
const TLB_USER = 2;
/** Supervisor writes allowed (and the dirty bit is already set). */
const TLB_WSUP = 4;
/** User writes allowed (and the dirty bit is already set). */
const TLB_WUSER = 8;
/** The page is main RAM for reads: read `ram` directly. */
const TLB_RAMR = 16;
/** The page is write-fast main RAM. */
const TLB_RAMW = 32;
/** No-execute (PAE with EFER.NXE). */
const TLB_NX = 64;
/** Global page (survives CR3 writes while CR4.PGE). */
const TLB_GLOBAL = 128;
/** Never set in an entry: requiring it forces the slow path (data breakpoints). */
const TLB_NEVER = 256;
const TLB_LIST_MAX = 16384;

const ACCESS_READ = 0;
const ACCESS_WRITE = 1;
const ACCESS_FETCH = 2;

const BLOCK_CACHE_SIZE = 1 << 16;
const MAX_BLOCK_INSNS = 64;
const RESET_SIGNATURE = 0x00000673;

/** A decoded block's identity: its physical address and code size. */
function blockKey(phys: number, code32: boolean): number {
  return phys * 2 + (code32 ? 1 : 0);
}

const CONTRIBUTORY = new Set([0, 10, 11, 12, 13]);

export class Cpu implements CpuPins, Persistent<CpuState> {
  readonly stateVersion = 1;
  readonly memory: PhysicalMemory;
  readonly ports: PortBus;
  readonly fpu: FpuUnit | undefined;
  interrupts: InterruptAcknowledge | undefined;
  onShutdown: ((reason: string) => void) | undefined;
  private readonly tscSource: (() => number) | undefined;
  private readonly afterHostWork: (() => void) | undefined;
  /** Called before each instruction while set. */
  trace: ((cpu: Cpu) => void) | undefined;
  /** Called when the guest writes IA32_APIC_BASE (the machine relocates or disables the APIC). */
  onApicBaseChange: ((low: number, high: number) => void) | undefined;

  // ---- registers --------------------------------------------------------------------------
  readonly regs = new Int32Array(8);
  readonly r16 = new Uint16Array(this.regs.buffer);
  readonly r8 = new Uint8Array(this.regs.buffer);
  /**
   * EIP as a signed 32-bit number: the dispatcher, the interpreter and translated code read and
   * write it on every block. Kernel addresses are above 2^31, and held unsigned they would make V8
   * keep the field as a boxed double. `eip` is the unsigned view for everything else.
   */
  ip = 0;
  get eip(): number {
    return this.ip >>> 0;
  }
  set eip(value: number) {
    this.ip = value | 0;
  }
  /** EIP of the instruction being executed (faults restart here), signed like `ip`. */
  instrStart = 0;
  /** EFLAGS with the arithmetic bits in `lazyMask` stale. */
  flagsRaw = FLAGS_FIXED;
  lazyMask = 0;
  lzOp = 0;
  lzA = 0;
  lzB = 0;
  lzRes = 0;
  lzSize = 4;

  // Segment caches, indexed ES CS SS DS FS GS LDTR TR.
  readonly segSel = new Int32Array(8);
  readonly segBase = new Int32Array(8);
  readonly segLimit = new Float64Array(8);
  readonly segAttr = new Int32Array(8);
  /** Valid offsets for reads [rLo, rHi] and writes [wLo, wHi] (empty when not allowed). */
  readonly rLo = new Float64Array(6);
  readonly rHi = new Float64Array(6);
  readonly wLo = new Float64Array(6);
  readonly wHi = new Float64Array(6);
  /** Bit n: segment n reads with base 0 and limit 4 GiB; bit 8+n: the same for writes. */
  flatMask = 0;

  cr0 = 0;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  /** PAE: the four PDPTEs as (low, high) dwords, loaded from CR3 when the SDM says (loadPdptes). */
  readonly pdptes = new Int32Array(8);
  efer = 0;
  readonly dr = new Int32Array(8);
  gdtBase = 0;
  gdtLimit = 0;
  idtBase = 0;
  idtLimit = 0;
  msrs: MsrFile = defaultMsrs();
  tscOffset = 0;

  // ---- derived mode -----------------------------------------------------------------------
  cpl = 0;
  code32 = false;
  stack32 = false;
  protectedMode = false;
  vm86 = false;
  private pagingOn = false;
  private user = false;

  // ---- pins and run state -----------------------------------------------------------------
  halted = false;
  private shutdown = false;
  private intr = false;
  private nmiPending = false;
  /** NMIs are blocked from delivery of one until the next IRET. */
  nmiBlocked = false;
  private a20Mask = -1;
  /** Interrupts are inhibited for one instruction (after MOV SS, POP SS, STI). */
  shadow = false;
  /** Set when the block loop must return to the run loop (pins, HLT, TF, shadow, shutdown). */
  attention = false;
  /** Set by `endSlice`: `run` returns at the next block boundary. */
  private sliceEnded = false;
  /**
   * Set, with the attention flag, by a translation that left its loop form at an access that
   * missed the TLB (jit/): the interpreter runs the next block, which starts at that access, on
   * the slow path.
   */
  interpretNext = false;
  /** A block whose loop form has missed too often, for the translator to translate again. */
  missedOften: Block | undefined = undefined;
  /** Set by MOV SS / POP SS: debug traps wait until after the next instruction. */
  private shadowDebug = false;
  /** Debug-trap DR6 bits held back by MOV SS / POP SS. */
  private heldDebugDr6 = 0;
  /** The fault being raised is an instruction breakpoint's #DB (saved with RF as it was). */
  private instructionBreakpoint = false;
  /** A #DB trap is due after the current instruction (data breakpoint or TF). */
  private debugTrapDr6 = 0;
  instructionCount = 0;

  // ---- exceptions -------------------------------------------------------------------------
  excVector = 0;
  excError = -1;
  /** 1 while delivering an event external to the program: sets EXT in error codes. */
  ext = 0;

  // ---- memory -----------------------------------------------------------------------------
  /** Main RAM, and the same bytes as 32-bit words (translated code reads aligned words). */
  ram: Uint8Array;
  ram32: Int32Array;
  private ramSize = 0;
  private ramId = -1;
  readonly tlb = new Int32Array(1 << 20);
  private readonly tlbList = new Int32Array(TLB_LIST_MAX);
  /** Linear pages whose TLB entry a block link was made through (see `codeEpoch`). */
  private readonly tlbLinked = new Uint8Array(1 << 20);
  private tlbCount = 0;
  /**
   * CR0.AM, EFLAGS.AC and CPL 3: misaligned data accesses raise #AC(0). The TLB needs then send
   * every access to the slow path, which checks; with AC off the fast path does no extra work.
   */
  private alignmentCheck = false;
  /** TLB bits a direct read / write needs (translated code tests them inline). */
  readNeed = TLB_VALID | TLB_RAMR;
  writeNeed = TLB_VALID | TLB_RAMW | TLB_WSUP;
  private dataBreakpoints = false;

  // ---- decoded code -----------------------------------------------------------------------
  private readonly blockCache: (Block | undefined)[] = new Array(BLOCK_CACHE_SIZE).fill(undefined);
  private readonly pageBlocks = new Map<number, Block[]>();
  /**
   * Every live cacheable block by physical address and code size (`blockKey`): what a collision
   * in `blockCache` falls back to, so a block pushed out of its slot is found again rather than
   * decoded anew (which would also lose its heat and translation).
   */
  private readonly blockIndex = new Map<number, Block>();
  private readonly fetchBuffer = new Uint8Array(16);
  /** The block that ran last (its successor links are tried first). */
  private lastBlock: Block | undefined;
  /**
   * Changes whenever the same CS:EIP could fetch different code or fault differently in the same
   * mode: a CS load, or the TLB entry of a page a link was made through dropped or remapped.
   * (Dropping entries no link uses, as Linux does for every kmap, leaves it alone.)
   */
  private codeEpoch = 0;
  /**
   * The mode a fetch depends on besides the epoch: code size and user or supervisor. A block link
   * is made under the epoch and this mode together (`linkTag`) and trusted without checks while
   * both hold, so a system call and its return leave the links of either side alone.
   */
  private linkMode = 0;

  /** Descriptor read by readDescriptor. */
  descLo = 0;
  descHi = 0;
  /**
   * Scratch for effective address of the last memory operand read through readE, as int32 (an
   * offset above 2^31 kept as such would make V8 box the field).
   */
  eaOff = 0;

  readonly fpuHost: CpuFpuHost;
  /** The binary translator (undefined when off). */
  readonly jit: Jit | undefined;

  constructor(options: CpuOptions) {
    this.memory = options.memory;
    this.ports = options.ports;
    this.interrupts = options.interrupts;
    this.onShutdown = options.onShutdown;
    this.tscSource = options.tsc;
    this.afterHostWork = options.afterHostWork;
    this.fpu = options.fpu;
    this.fpuHost = new CpuFpuHost(this);
    this.ram = new Uint8Array(0);
    this.ram32 = new Int32Array(0);
    const jitMode = options.jit ?? defaultJitMode();
    this.jit = jitMode === "off" ? undefined : new Jit({ mode: jitMode });
    this.refreshRam();
    this.memory.setCodeListener((address) => this.invalidateCode(address));
    this.memory.onWriteProtect((page) => {
      // A page became code: only direct writes to it must stop. Dirty logging: all of them.
      if (page >= 0) this.dropFastWrites(page);
      else this.flushTlb(false);
    });
    this.memory.onMapChange((firstPage, endPage) => {
      // Shadowing or a moved BAR: direct accesses may now reach something else, and code decoded
      // from those pages may come from different bytes. Code elsewhere stays valid; PCI probing
      // moves BARs dozens of times during a Linux boot.
      this.refreshRam();
      this.flushTlb(false);
      for (const page of this.pageBlocks.keys()) {
        if (page >= firstPage && page < endPage) this.invalidateCode(page * 4096);
      }
    });
    this.reset();
  }

  // ---- reset and pins ---------------------------------------------------------------------

  reset(): void {
    this.regs.fill(0);
    this.regs[2] = RESET_SIGNATURE;
    this.eip = 0xfff0;
    this.instrStart = 0xfff0;
    this.flagsRaw = FLAGS_FIXED;
    this.lazyMask = 0;
    for (let s = 0; s < 8; s++) {
      // Present, read/write, accessed data; LDTR is an LDT and TR a busy 16-bit TSS.
      const attr = s === LDTR ? 0x82 : s === TR ? 0x8b : 0x93;
      this.loadCache(s, 0, 0, 0xffff, attr);
    }
    this.loadCache(CS, 0xf000, 0xffff0000, 0xffff, 0x93);
    this.cr0 = CR0_CD | CR0_NW | CR0_ET;
    this.cr2 = 0;
    this.cr3 = 0;
    this.cr4 = 0;
    this.pdptes.fill(0);
    this.efer = 0;
    this.dr.fill(0);
    this.dr[6] = 0xffff0ff0 | 0;
    this.dr[7] = 0x400;
    this.gdtBase = 0;
    this.gdtLimit = 0xffff;
    this.idtBase = 0;
    this.idtLimit = 0xffff;
    this.msrs = defaultMsrs();
    this.tscOffset = 0;
    this.halted = false;
    this.shutdown = false;
    this.nmiPending = false;
    this.nmiBlocked = false;
    this.shadow = false;
    this.shadowDebug = false;
    this.heldDebugDr6 = 0;
    this.debugTrapDr6 = 0;
    this.fpu?.reset();
    this.updateMode();
    this.flushTlb(false);
  }

  setIntr(high: boolean): void {
    this.intr = high;
    if (high) this.attention = true;
  }

  nmi(): void {
    this.nmiPending = true;
    this.attention = true;
  }

  setA20(enabled: boolean): void {
    const mask = enabled ? -1 : ~(1 << 20);
    if (mask === this.a20Mask) return;
    this.a20Mask = mask;
    this.flushTlb(false);
    this.flushBlocks();
  }

  get isShutdown(): boolean {
    return this.shutdown;
  }

  // ---- register access for runners, monitors and tests ------------------------------------

  get eax(): number {
    return this.regs[0]! >>> 0;
  }
  set eax(v: number) {
    this.regs[0] = v;
  }
  get ecx(): number {
    return this.regs[1]! >>> 0;
  }
  set ecx(v: number) {
    this.regs[1] = v;
  }
  get edx(): number {
    return this.regs[2]! >>> 0;
  }
  set edx(v: number) {
    this.regs[2] = v;
  }
  get ebx(): number {
    return this.regs[3]! >>> 0;
  }
  set ebx(v: number) {
    this.regs[3] = v;
  }
  get esp(): number {
    return this.regs[4]! >>> 0;
  }
  set esp(v: number) {
    this.regs[4] = v;
  }
  get ebp(): number {
    return this.regs[5]! >>> 0;
  }
  set ebp(v: number) {
    this.regs[5] = v;
  }
  get esi(): number {
    return this.regs[6]! >>> 0;
  }
  set esi(v: number) {
    this.regs[6] = v;
  }
  get edi(): number {
    return this.regs[7]! >>> 0;
  }
  set edi(v: number) {
    this.regs[7] = v;
  }
  getReg32(index: number): number {
    return this.regs[index & 7]! >>> 0;
  }
  setReg32(index: number, value: number): void {
    this.regs[index & 7] = value;
  }

  get eflags(): number {
    return this.getFlags() >>> 0;
  }
  set eflags(value: number) {
    this.setFlagsRaw(value);
    this.updateMode();
    this.refreshWindows();
  }

  get gdtr(): { base: number; limit: number } {
    return { base: this.gdtBase >>> 0, limit: this.gdtLimit };
  }
  set gdtr(v: { base: number; limit: number }) {
    this.gdtBase = v.base | 0;
    this.gdtLimit = v.limit & 0xffff;
  }
  get idtr(): { base: number; limit: number } {
    return { base: this.idtBase >>> 0, limit: this.idtLimit };
  }
  set idtr(v: { base: number; limit: number }) {
    this.idtBase = v.base | 0;
    this.idtLimit = v.limit & 0xffff;
  }

  getSegment(index: number): SegmentState {
    return {
      selector: this.segSel[index]!,
      base: this.segBase[index]! >>> 0,
      limit: this.segLimit[index]!,
      attributes: this.segAttr[index]!,
    };
  }

  /** Loads a segment register and its cache as given (no checks): for runners and snapshots. */
  setSegment(index: number, s: SegmentState): void {
    this.loadCache(index, s.selector, s.base, s.limit, s.attributes);
    if (index === CS || index === SS) this.updateMode();
  }

  /** MOV CRn semantics without privilege checks (may raise #GP through a GuestFault if invalid). */
  setCr(n: number, value: number): void {
    switch (n) {
      case 0:
        this.writeCr0(value);
        break;
      case 2:
        this.cr2 = value | 0;
        break;
      case 3:
        this.writeCr3(value);
        break;
      case 4:
        this.writeCr4(value);
        break;
      default:
        throw new RangeError(`no control register CR${n}`);
    }
  }

  // ---- flags ------------------------------------------------------------------------------

  /**
   * Records an arithmetic result whose six flags are computed when read. The operands are kept
   * as int32 (flags look at them only through masks of up to 32 bits): a sum past 2^31 kept as
   * such would make V8 box these fields, and every flag result would write a double.
   */
  setArith(op: number, a: number, b: number, res: number, size: number): void {
    this.lzOp = op;
    this.lzA = a | 0;
    this.lzB = b | 0;
    this.lzRes = res | 0;
    this.lzSize = size;
    this.lazyMask = ARITH_FLAGS;
  }

  /** INC/DEC: as setArith, but CF keeps the value `carry` (the flag before the operation). */
  setArithKeepCarry(op: number, a: number, res: number, size: number, carry: boolean): void {
    this.lzOp = op;
    this.lzA = a | 0;
    this.lzB = 1;
    this.lzRes = res | 0;
    this.lzSize = size;
    this.lazyMask = ARITH_FLAGS & ~CF;
    this.flagsRaw = carry ? this.flagsRaw | CF : this.flagsRaw & ~CF;
  }

  /** Logic result: CF=OF=AF=0, SF/ZF/PF from the result. */
  setLogic(res: number, size: number): void {
    this.lzOp = LZ_LOGIC;
    this.lzRes = res | 0;
    this.lzSize = size;
    this.flagsRaw &= ~(CF | OF | AF);
    this.lazyMask = PF | ZF | SF;
  }

  /** Sets SF/ZF/PF lazily from `res` and CF/OF/AF from `cfOfAf` (the caller's own computation). */
  setResultFlags(res: number, size: number, cfOfAf: number): void {
    this.lzOp = LZ_LOGIC;
    this.lzRes = res | 0;
    this.lzSize = size;
    this.flagsRaw = (this.flagsRaw & ~(CF | OF | AF)) | (cfOfAf & (CF | OF | AF));
    this.lazyMask = PF | ZF | SF;
  }

  cf(): boolean {
    if (!(this.lazyMask & CF)) return (this.flagsRaw & CF) !== 0;
    const m = SIZE_MASK[this.lzSize]!;
    switch (this.lzOp) {
      case LZ_ADD:
        return (this.lzRes & m) >>> 0 < (this.lzA & m) >>> 0;
      case LZ_ADC:
        return (this.lzRes & m) >>> 0 <= (this.lzA & m) >>> 0;
      case LZ_SUB:
        return (this.lzA & m) >>> 0 < (this.lzB & m) >>> 0;
      case LZ_SBB:
        return (this.lzA & m) >>> 0 <= (this.lzB & m) >>> 0;
      default:
        return false;
    }
  }
  zf(): boolean {
    if (!(this.lazyMask & ZF)) return (this.flagsRaw & ZF) !== 0;
    return (this.lzRes & SIZE_MASK[this.lzSize]!) === 0;
  }
  sf(): boolean {
    if (!(this.lazyMask & SF)) return (this.flagsRaw & SF) !== 0;
    return (this.lzRes & SIZE_SIGN[this.lzSize]!) !== 0;
  }
  pf(): boolean {
    if (!(this.lazyMask & PF)) return (this.flagsRaw & PF) !== 0;
    return PARITY[this.lzRes & 0xff] !== 0;
  }
  af(): boolean {
    if (!(this.lazyMask & AF)) return (this.flagsRaw & AF) !== 0;
    if (this.lzOp === LZ_LOGIC) return false;
    return ((this.lzA ^ this.lzB ^ this.lzRes) & 0x10) !== 0;
  }
  of(): boolean {
    if (!(this.lazyMask & OF)) return (this.flagsRaw & OF) !== 0;
    const s = SIZE_SIGN[this.lzSize]!;
    switch (this.lzOp) {
      case LZ_ADD:
      case LZ_ADC:
        return ((this.lzA ^ this.lzRes) & (this.lzB ^ this.lzRes) & s) !== 0;
      case LZ_SUB:
      case LZ_SBB:
        return ((this.lzA ^ this.lzB) & (this.lzA ^ this.lzRes) & s) !== 0;
      default:
        return false;
    }
  }

  /** Evaluates condition code `cc` (the low nibble of Jcc/SETcc/CMOVcc). */
  cond(cc: number): boolean {
    let r: boolean;
    switch (cc >> 1) {
      case 0:
        r = this.of();
        break;
      case 1:
        r = this.cf();
        break;
      case 2:
        r = this.zf();
        break;
      case 3:
        r = this.cf() || this.zf();
        break;
      case 4:
        r = this.sf();
        break;
      case 5:
        r = this.pf();
        break;
      case 6:
        r = this.sf() !== this.of();
        break;
      default:
        r = this.zf() || this.sf() !== this.of();
        break;
    }
    return (cc & 1) === 0 ? r : !r;
  }

  /** EFLAGS with every lazy flag computed (and no longer lazy). */
  getFlags(): number {
    if (this.lazyMask !== 0) {
      let f = this.flagsRaw & ~this.lazyMask;
      const m = this.lazyMask;
      if (m & CF && this.cf()) f |= CF;
      if (m & PF && this.pf()) f |= PF;
      if (m & AF && this.af()) f |= AF;
      if (m & ZF && this.zf()) f |= ZF;
      if (m & SF && this.sf()) f |= SF;
      if (m & OF && this.of()) f |= OF;
      this.flagsRaw = f;
      this.lazyMask = 0;
    }
    return this.flagsRaw;
  }

  /** Replaces EFLAGS (no privilege rules; callers apply them). Does not update the mode. */
  setFlagsRaw(value: number): void {
    const acChanged = (this.flagsRaw ^ value) & AC;
    this.flagsRaw = (value & 0x3f7fd5) | FLAGS_FIXED;
    this.lazyMask = 0;
    if (value & TF || (value & IF && this.intr)) this.attention = true;
    if (acChanged) this.updateNeeds();
  }

  /** Sets or clears one arithmetic flag, materialising the others. */
  setFlag(bit: number, on: boolean): void {
    this.getFlags();
    if (on) this.flagsRaw |= bit;
    else this.flagsRaw &= ~bit;
  }

  get iopl(): number {
    return (this.flagsRaw >> 12) & 3;
  }

  // ---- mode -------------------------------------------------------------------------------

  /** Recomputes the derived mode fields after CR0, EFLAGS.VM, CS or SS changed. */
  updateMode(): void {
    this.protectedMode = (this.cr0 & CR0_PE) !== 0;
    this.vm86 = this.protectedMode && (this.flagsRaw & VM) !== 0;
    if (!this.protectedMode) this.cpl = 0;
    else if (this.vm86) this.cpl = 3;
    else this.cpl = this.segSel[CS]! & 3;
    this.code32 = !this.vm86 && (this.segAttr[CS]! & ATTR_DB) !== 0;
    this.stack32 = !this.vm86 && (this.segAttr[SS]! & ATTR_DB) !== 0;
    this.pagingOn = (this.cr0 & CR0_PG) !== 0 && this.protectedMode;
    this.user = this.cpl === 3;
    this.linkMode = (this.user ? 2 : 0) | (this.code32 ? 1 : 0);
    this.updateNeeds();
  }

  private updateNeeds(): void {
    this.alignmentCheck = this.user && (this.cr0 & CR0_AM) !== 0 && (this.flagsRaw & AC) !== 0;
    if (this.dataBreakpoints || this.alignmentCheck) {
      this.readNeed = TLB_NEVER;
      this.writeNeed = TLB_NEVER;
    } else if (this.user) {
      this.readNeed = TLB_VALID | TLB_RAMR | TLB_USER;
      this.writeNeed = TLB_VALID | TLB_RAMW | TLB_WUSER;
    } else {
      this.readNeed = TLB_VALID | TLB_RAMR;
      this.writeNeed = TLB_VALID | TLB_RAMW | TLB_WSUP;
    }
  }

  writeCr0(value: number): void {
    value |= CR0_ET;
    // PG without PE, or NW without CD, is invalid.
    if ((value & CR0_PG && !(value & CR0_PE)) || (value & CR0_NW && !(value & CR0_CD))) this.gp(0);
    const changed = this.cr0 ^ value;
    if (value & CR0_PG && changed & (CR0_PG | CR0_CD | CR0_NW) && this.cr4 & CR4_PAE)
      this.loadPdptes(this.cr3);
    this.cr0 =
      value &
      (CR0_PE | CR0_MP | CR0_EM | CR0_TS | CR0_ET | CR0_NE | CR0_WP | 0x40000 | CR0_NW | CR0_CD | CR0_PG);
    if (changed & (CR0_PG | CR0_WP | CR0_PE)) this.flushTlb(false);
    this.updateMode();
    if (changed & CR0_PE) this.refreshWindows();
  }

  writeCr3(value: number): void {
    if (this.pagingOn && this.cr4 & CR4_PAE) this.loadPdptes(value);
    this.cr3 = value | 0;
    this.flushTlb(true);
  }

  writeCr4(value: number): void {
    if (value & ~CR4_VALID) this.gp(0);
    const changed = this.cr4 ^ value;
    if (this.pagingOn && value & CR4_PAE && changed & (CR4_PAE | CR4_PGE | CR4_PSE))
      this.loadPdptes(this.cr3);
    this.cr4 = value;
    if (changed & (CR4_PAE | CR4_PGE | CR4_PSE)) this.flushTlb(false);
  }

  /**
   * Loads the PAE page-directory-pointer table at `cr3` into `pdptes`, as MOV CR3 (and MOV CR0 or
   * CR4 enabling PAE paging) does; later walks use these copies, not memory. A present entry with
   * a reserved bit set is #GP(0), before anything changes (unless `check` is off: restored state).
   */
  private loadPdptes(cr3: number, check = true): void {
    const base = (cr3 & ~0x1f) >>> 0;
    const mem = this.memory;
    if (check) {
      for (let k = 0; k < 4; k++) {
        const lo = mem.read32(base + k * 8);
        if (lo & 1 && (lo & 0x1e6 || mem.read32(base + k * 8 + 4) & 0xfffffff0)) this.gp(0);
      }
    }
    for (let k = 0; k < 8; k++) this.pdptes[k] = mem.read32(base + k * 4);
  }

  writeEfer(value: number): void {
    this.efer = value & EFER_NXE;
    this.flushTlb(false);
  }

  /** Recomputes the data-breakpoint slow path after DR7 changes. */
  updateDebug(): void {
    const dr7 = this.dr[7]!;
    let data = false;
    for (let i = 0; i < 4; i++) {
      if ((dr7 >> (i * 2)) & 3 && (dr7 >>> (16 + i * 4)) & 3) data = true;
    }
    this.dataBreakpoints = data;
    this.updateNeeds();
    this.attention = true;
  }

  // ---- segments ---------------------------------------------------------------------------

  /** Fills a segment cache and its access windows. */
  loadCache(seg: number, selector: number, base: number, limit: number, attr: number): void {
    if (seg === CS && (this.segBase[CS] !== (base | 0) || this.segLimit[CS] !== limit >>> 0))
      this.codeEpoch++;
    this.segSel[seg] = selector & 0xffff;
    this.segBase[seg] = base | 0;
    this.segLimit[seg] = limit >>> 0;
    this.segAttr[seg] = attr;
    if (seg < 6) this.updateWindows(seg);
  }

  private updateWindows(seg: number): void {
    const attr = this.segAttr[seg]!;
    const limit = this.segLimit[seg]!;
    let lo = 0;
    let hi = limit;
    let readable = true;
    let writable = true;
    if (this.protectedMode && !this.vm86) {
      if (!(attr & ATTR_P) || !(attr & ATTR_S)) {
        // Null or unusable: every access faults.
        readable = false;
        writable = false;
      } else if (attr & ATTR_CODE) {
        readable = (attr & ATTR_RW) !== 0;
        writable = false;
      } else {
        writable = (attr & ATTR_RW) !== 0;
        if (attr & ATTR_CE) {
          lo = limit + 1;
          hi = attr & ATTR_DB ? 0xffffffff : 0xffff;
        }
      }
    }
    this.rLo[seg] = readable ? lo : 1;
    this.rHi[seg] = readable ? hi : 0;
    this.wLo[seg] = writable ? lo : 1;
    this.wHi[seg] = writable ? hi : 0;
    const whole = this.segBase[seg] === 0 && lo === 0 && hi === 0xffffffff;
    const bits = (whole && readable ? 1 << seg : 0) | (whole && writable ? 0x100 << seg : 0);
    this.flatMask = (this.flatMask & ~(0x101 << seg)) | bits;
  }

  /** Recomputes every segment's access windows (after a mode change). */
  refreshWindows(): void {
    for (let s = 0; s < 6; s++) this.updateWindows(s);
  }

  /** Real-mode and virtual-8086 segment load: base = selector * 16. */
  loadRealSegment(seg: number, selector: number): void {
    selector &= 0xffff;
    if (seg === CS && (this.segBase[CS] !== selector << 4 || (this.vm86 && this.segLimit[CS] !== 0xffff)))
      this.codeEpoch++;
    this.segSel[seg] = selector;
    this.segBase[seg] = selector << 4;
    if (this.vm86) {
      this.segLimit[seg] = 0xffff;
      this.segAttr[seg] = seg === CS ? 0xfb : 0xf3;
    }
    this.updateWindows(seg);
    if (seg === CS || seg === SS) this.updateMode();
  }

  segFault(seg: number): never {
    if (seg === SS) this.raise(EXC_SS, 0);
    this.raise(EXC_GP, 0);
  }

  /** Linear address for a read of `size` bytes at `off` in `seg`, after the limit check. */
  readAddr(seg: number, off: number, size: number): number {
    if (off < this.rLo[seg]! || off + size - 1 > this.rHi[seg]!) this.segFault(seg);
    return (this.segBase[seg]! + off) | 0;
  }

  writeAddr(seg: number, off: number, size: number): number {
    if (off < this.wLo[seg]! || off + size - 1 > this.wHi[seg]!) this.segFault(seg);
    return (this.segBase[seg]! + off) | 0;
  }

  rd8(seg: number, off: number): number {
    if (off < this.rLo[seg]! || off > this.rHi[seg]!) this.segFault(seg);
    return this.readLin8((this.segBase[seg]! + off) | 0);
  }
  rd16(seg: number, off: number): number {
    if (off < this.rLo[seg]! || off + 1 > this.rHi[seg]!) this.segFault(seg);
    return this.readLin16((this.segBase[seg]! + off) | 0);
  }
  rd32(seg: number, off: number): number {
    if (off < this.rLo[seg]! || off + 3 > this.rHi[seg]!) this.segFault(seg);
    return this.readLin32((this.segBase[seg]! + off) | 0);
  }
  wr8(seg: number, off: number, v: number): void {
    if (off < this.wLo[seg]! || off > this.wHi[seg]!) this.segFault(seg);
    this.writeLin8((this.segBase[seg]! + off) | 0, v);
  }
  wr16(seg: number, off: number, v: number): void {
    if (off < this.wLo[seg]! || off + 1 > this.wHi[seg]!) this.segFault(seg);
    this.writeLin16((this.segBase[seg]! + off) | 0, v);
  }
  wr32(seg: number, off: number, v: number): void {
    if (off < this.wLo[seg]! || off + 3 > this.wHi[seg]!) this.segFault(seg);
    this.writeLin32((this.segBase[seg]! + off) | 0, v);
  }
  rd(seg: number, off: number, size: number): number {
    return size === 1 ? this.rd8(seg, off) : size === 2 ? this.rd16(seg, off) : this.rd32(seg, off);
  }
  wr(seg: number, off: number, size: number, v: number): void {
    if (size === 1) this.wr8(seg, off, v);
    else if (size === 2) this.wr16(seg, off, v);
    else this.wr32(seg, off, v);
  }

  // ---- operands ---------------------------------------------------------------------------

  /** Offset of the instruction's memory operand. */
  ea(i: Insn): number {
    let a = i.disp;
    if (i.base >= 0) a += this.regs[i.base]!;
    if (i.index >= 0) a += this.regs[i.index]! << i.scale;
    return i.addr32 ? a >>> 0 : a & 0xffff;
  }

  getReg(size: number, r: number): number {
    if (size === 4) return this.regs[r]!;
    if (size === 2) return this.r16[r << 1]!;
    return this.r8[r < 4 ? r << 2 : ((r - 4) << 2) + 1]!;
  }
  setReg(size: number, r: number, v: number): void {
    if (size === 4) this.regs[r] = v;
    else if (size === 2) this.r16[r << 1] = v;
    else this.r8[r < 4 ? r << 2 : ((r - 4) << 2) + 1] = v;
  }

  /** Reads the r/m operand; for memory, remembers the offset for a following setE. */
  getE(i: Insn, size: number): number {
    if (i.mod === 3) return this.getReg(size, i.rm);
    const off = this.ea(i);
    this.eaOff = off | 0;
    return this.rd(i.seg, off, size);
  }
  /**
   * Reads the r/m operand of a read-modify-write instruction. Write permission (segment and page)
   * is checked before anything else, as the processor does, so a fault leaves flags and registers
   * untouched and the restarted instruction computes the same result.
   */
  getEW(i: Insn, size: number): number {
    if (i.mod === 3) return this.getReg(size, i.rm);
    const off = this.ea(i);
    this.eaOff = off | 0;
    this.checkWrite(i.seg, off, size);
    return this.rd(i.seg, off, size);
  }
  /** Faults now if `size` bytes at seg:off could not be written. */
  checkWrite(seg: number, off: number, size: number): void {
    if (off < this.wLo[seg]! || off + size - 1 > this.wHi[seg]!) this.segFault(seg);
    this.checkWritable((this.segBase[seg]! + off) | 0, size);
  }
  /** Writes the r/m operand read by getE. */
  setE(i: Insn, size: number, v: number): void {
    if (i.mod === 3) this.setReg(size, i.rm, v);
    else this.wr(i.seg, this.eaOff >>> 0, size, v);
  }
  /** Writes the r/m operand without a preceding read. */
  putE(i: Insn, size: number, v: number): void {
    if (i.mod === 3) this.setReg(size, i.rm, v);
    else this.wr(i.seg, this.ea(i), size, v);
  }

  // ---- stack ------------------------------------------------------------------------------

  push16(v: number): void {
    if (this.stack32) {
      const sp = (this.regs[4]! - 2) >>> 0;
      this.wr16(SS, sp, v);
      this.regs[4] = sp;
    } else {
      const sp = (this.r16[8]! - 2) & 0xffff;
      this.wr16(SS, sp, v);
      this.r16[8] = sp;
    }
  }
  push32(v: number): void {
    if (this.stack32) {
      const sp = (this.regs[4]! - 4) >>> 0;
      this.wr32(SS, sp, v);
      this.regs[4] = sp;
    } else {
      const sp = (this.r16[8]! - 4) & 0xffff;
      this.wr32(SS, sp, v);
      this.r16[8] = sp;
    }
  }
  push(size: number, v: number): void {
    if (size === 4) this.push32(v);
    else this.push16(v);
  }
  pop16(): number {
    if (this.stack32) {
      const v = this.rd16(SS, this.regs[4]! >>> 0);
      this.regs[4] = this.regs[4]! + 2;
      return v;
    }
    const v = this.rd16(SS, this.r16[8]!);
    this.r16[8] = this.r16[8]! + 2;
    return v;
  }
  pop32(): number {
    if (this.stack32) {
      const v = this.rd32(SS, this.regs[4]! >>> 0);
      this.regs[4] = this.regs[4]! + 4;
      return v;
    }
    const v = this.rd32(SS, this.r16[8]!);
    this.r16[8] = this.r16[8]! + 4;
    return v;
  }
  pop(size: number): number {
    return size === 4 ? this.pop32() : this.pop16();
  }
  /** Reads the stack `delta` bytes above the stack pointer without popping. */
  peek(size: number, delta: number): number {
    const sp = this.stack32 ? (this.regs[4]! + delta) >>> 0 : (this.r16[8]! + delta) & 0xffff;
    return this.rd(SS, sp, size);
  }
  /** Adds `delta` to the stack pointer, honouring SS's size. */
  addSp(delta: number): void {
    if (this.stack32) this.regs[4] = this.regs[4]! + delta;
    else this.r16[8] = this.r16[8]! + delta;
  }
  get sp(): number {
    return this.stack32 ? this.regs[4]! >>> 0 : this.r16[8]!;
  }

  // ---- linear memory ----------------------------------------------------------------------

  readLin8(lin: number): number {
    const e = this.tlb[lin >>> 12]!;
    if ((e & this.readNeed) === this.readNeed) return this.ram[(e >>> 9) * 4096 + (lin & 4095)]!;
    return this.slowRead(lin, 1);
  }
  readLin16(lin: number): number {
    const e = this.tlb[lin >>> 12]!;
    if ((e & this.readNeed) === this.readNeed && (lin & 4095) !== 4095) {
      const p = (e >>> 9) * 4096 + (lin & 4095);
      return this.ram[p]! | (this.ram[p + 1]! << 8);
    }
    return this.slowRead(lin, 2);
  }
  readLin32(lin: number): number {
    const e = this.tlb[lin >>> 12]!;
    if ((e & this.readNeed) === this.readNeed && (lin & 4095) <= 4092) {
      // Aligned (as compiled code almost always is): one access to the dword view.
      if ((lin & 3) === 0) return this.ram32[(e >>> 9) * 1024 + ((lin & 4095) >>> 2)]!;
      const p = (e >>> 9) * 4096 + (lin & 4095);
      const r = this.ram;
      return r[p]! | (r[p + 1]! << 8) | (r[p + 2]! << 16) | (r[p + 3]! << 24);
    }
    return this.slowRead(lin, 4) | 0;
  }
  writeLin8(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!;
    if ((e & this.writeNeed) === this.writeNeed) {
      this.ram[(e >>> 9) * 4096 + (lin & 4095)] = v;
      return;
    }
    this.slowWrite(lin, 1, v);
  }
  writeLin16(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!;
    if ((e & this.writeNeed) === this.writeNeed && (lin & 4095) !== 4095) {
      const p = (e >>> 9) * 4096 + (lin & 4095);
      this.ram[p] = v;
      this.ram[p + 1] = v >> 8;
      return;
    }
    this.slowWrite(lin, 2, v);
  }
  writeLin32(lin: number, v: number): void {
    const e = this.tlb[lin >>> 12]!;
    if ((e & this.writeNeed) === this.writeNeed && (lin & 4095) <= 4092) {
      if ((lin & 3) === 0) {
        this.ram32[(e >>> 9) * 1024 + ((lin & 4095) >>> 2)] = v;
        return;
      }
      const p = (e >>> 9) * 4096 + (lin & 4095);
      const r = this.ram;
      r[p] = v;
      r[p + 1] = v >> 8;
      r[p + 2] = v >> 16;
      r[p + 3] = v >> 24;
      return;
    }
    this.slowWrite(lin, 4, v);
  }

  /**
   * For bulk string operations: how many of the `max` bytes from `lin` on may be read (or written)
   * directly in `ramBytes`, back to back, 0 when the first may not. Pages count only while their TLB
   * entries already grant the access without the slow path (RAM, no breakpoint; for writes, dirty
   * and holding no code) and each follows the one before in RAM, so one copy covers them all.
   * `directOffset` gives where the first byte is.
   */
  directSpan(lin: number, max: number, write: boolean): number {
    const need = write ? this.writeNeed : this.readNeed;
    let page = lin >>> 12;
    const e = this.tlb[page]!;
    if ((e & need) !== need) return 0;
    let span = 4096 - (lin & 4095);
    let next = (e >>> 9) + 1;
    // The last page of the address space is where a run stops: the next is page 0.
    while (span < max && page < 0xfffff) {
      page++;
      const f = this.tlb[page]!;
      if ((f & need) !== need || f >>> 9 !== next) break;
      span += 4096;
      next++;
    }
    return Math.min(span, max);
  }
  /** Where `lin`'s byte is in `ramBytes`, once `directSpan` has found it there. */
  directOffset(lin: number): number {
    return (this.tlb[lin >>> 12]! >>> 9) * 4096 + (lin & 4095);
  }
  /** Main RAM's bytes (what directOffset indexes). */
  get ramBytes(): Uint8Array {
    return this.ram;
  }

  private slowRead(lin: number, size: number): number {
    // Operands wider than a dword arrive here in dword pieces, so they are held to 4-byte alignment.
    if (this.alignmentCheck && lin & (size - 1)) this.raise(EXC_AC, 0);
    if (this.dataBreakpoints) this.checkDataBreakpoint(lin, size, false);
    if ((lin & 4095) + size > 4096) {
      const first = this.translate(lin, ACCESS_READ, this.user);
      const second = this.translate((lin + size - 1) & ~4095, ACCESS_READ, this.user);
      let v = 0;
      for (let k = size - 1; k >= 0; k--) {
        const a = (lin & 4095) + k < 4096 ? first + k : second + ((lin + k) & 4095);
        v = v * 256 + this.memory.read(a, 1);
      }
      return v;
    }
    return this.memory.read(this.translate(lin, ACCESS_READ, this.user), size as 1 | 2 | 4);
  }

  private slowWrite(lin: number, size: number, v: number): void {
    if (this.alignmentCheck && lin & (size - 1)) this.raise(EXC_AC, 0);
    if (this.dataBreakpoints) this.checkDataBreakpoint(lin, size, true);
    if ((lin & 4095) + size > 4096) {
      // Both pages are checked before any byte is written.
      const first = this.translate(lin, ACCESS_WRITE, this.user);
      const second = this.translate((lin + size - 1) & ~4095, ACCESS_WRITE, this.user);
      for (let k = 0; k < size; k++) {
        const a = (lin & 4095) + k < 4096 ? first + k : second + ((lin + k) & 4095);
        this.memory.write(a, 1, (v >>> (8 * k)) & 0xff);
      }
      return;
    }
    const phys = this.translate(lin, ACCESS_WRITE, this.user);
    this.memory.write(phys, size as 1 | 2 | 4, size === 4 ? v >>> 0 : v & SIZE_MASK[size]!);
    // A page that was code (or not yet dirty) may be write-fast again: let the next writes
    // through this TLB entry go direct instead of waiting for the entry to be refilled, which for
    // global pages may be never.
    const page = Math.floor(phys / 4096);
    const entry = this.tlb[lin >>> 12]!;
    if (
      entry & TLB_VALID &&
      !(entry & TLB_RAMW) &&
      entry >>> 9 === page &&
      page < this.ramSize >>> PAGE_SHIFT &&
      this.memory.pageWriteRegion[page] === this.ramId &&
      this.memory.isWriteFast(page)
    ) {
      this.tlb[lin >>> 12] = entry | TLB_RAMW;
    }
  }

  /** Supervisor-privileged reads and writes (descriptor tables, TSS): implicit system accesses. */
  sysRead(lin: number, size: 1 | 2 | 4): number {
    if ((lin & 4095) + size > 4096) {
      let v = 0;
      for (let k = size - 1; k >= 0; k--) v = v * 256 + this.sysRead((lin + k) | 0, 1);
      return v;
    }
    return this.memory.read(this.translate(lin, ACCESS_READ, false), size);
  }
  sysWrite(lin: number, size: 1 | 2 | 4, v: number): void {
    if ((lin & 4095) + size > 4096) {
      this.translate((lin + size - 1) | 0, ACCESS_WRITE, false);
      for (let k = 0; k < size; k++) this.sysWrite((lin + k) | 0, 1, (v >>> (8 * k)) & 0xff);
      return;
    }
    this.memory.write(
      this.translate(lin, ACCESS_WRITE, false),
      size,
      size === 4 ? v >>> 0 : v & SIZE_MASK[size]!,
    );
  }

  /** Faults like a write of `length` bytes at `lin` would, writing nothing. */
  checkWritable(lin: number, length: number): void {
    const pages = ((lin & 4095) + length - 1) >>> 12;
    for (let k = 0; k <= pages; k++) {
      const at = k === 0 ? lin : ((lin & ~4095) + k * 4096) | 0;
      this.translate(at, ACCESS_WRITE, this.user);
    }
  }

  /** Physical address for `lin` without faulting or side effects (monitors); -1 if unmapped. */
  translateLinear(lin: number): number {
    lin >>>= 0;
    if (!this.pagingOn) return (lin & this.a20Mask) >>> 0;
    const mem = this.memory;
    if (!(this.cr4 & CR4_PAE)) {
      const pde = mem.read32((((this.cr3 & ~0xfff) | ((lin >>> 22) << 2)) & this.a20Mask) >>> 0);
      if (!(pde & 1)) return -1;
      if (pde & 0x80 && this.cr4 & CR4_PSE)
        return ((pde >>> 13) & 0xf) * 0x100000000 + ((pde & 0xffc00000) >>> 0) + (lin & 0x3fffff);
      const pte = mem.read32((((pde & ~0xfff) | (((lin >>> 12) & 0x3ff) << 2)) & this.a20Mask) >>> 0);
      if (!(pte & 1)) return -1;
      return ((pte & ~0xfff) >>> 0) + (lin & 0xfff);
    }
    const pdpte = this.pdptes[(lin >>> 30) * 2]!;
    if (!(pdpte & 1)) return -1;
    const pdeAddr =
      (this.pdptes[(lin >>> 30) * 2 + 1]! & 0xf) * 0x100000000 +
      ((pdpte & ~0xfff) >>> 0) +
      ((lin >>> 21) & 0x1ff) * 8;
    const pde = mem.read32(pdeAddr);
    const pdeHi = mem.read32(pdeAddr + 4) & 0xf;
    if (!(pde & 1)) return -1;
    if (pde & 0x80) return pdeHi * 0x100000000 + ((pde & 0xffe00000) >>> 0) + (lin & 0x1fffff);
    const pteAddr = pdeHi * 0x100000000 + ((pde & ~0xfff) >>> 0) + ((lin >>> 12) & 0x1ff) * 8;
    const pte = mem.read32(pteAddr);
    if (!(pte & 1)) return -1;
    return (mem.read32(pteAddr + 4) & 0xf) * 0x100000000 + ((pte & ~0xfff) >>> 0) + (lin & 0xfff);
  }

  /** Reads linear memory for monitors; unmapped bytes read as 0xff. */
  readLinear(lin: number, width: 1 | 2 | 4): number {
    let v = 0;
    for (let k = width - 1; k >= 0; k--) {
      const p = this.translateLinear((lin + k) | 0);
      v = v * 256 + (p < 0 ? 0xff : this.memory.read(p, 1));
    }
    return v;
  }

  /**
   * The bytes at CS:EIP (up to `max`, fewer where memory is unmapped or the segment ends), for
   * trace sinks and monitors. Never faults and changes nothing.
   */
  instructionBytes(max = 15): number[] {
    const out: number[] = [];
    for (let k = 0; k < max; k++) {
      const off = (this.eip + k) >>> 0;
      if (off > this.segLimit[CS]!) break;
      const phys = this.translateLinear((this.segBase[CS]! + off) | 0);
      if (phys < 0) break;
      out.push(this.memory.read(phys, 1));
    }
    return out;
  }

  /** Translates a linear address to physical, walking the page tables on a TLB miss. */
  translate(lin: number, access: number, user: boolean): number {
    const e = this.tlb[lin >>> 12]!;
    const need =
      access === ACCESS_WRITE ? TLB_VALID | (user ? TLB_WUSER : TLB_WSUP) : TLB_VALID | (user ? TLB_USER : 0);
    if ((e & need) === need && !(access === ACCESS_FETCH && e & TLB_NX)) {
      return (e >>> 9) * 4096 + (lin & 4095);
    }
    return this.walk(lin, access, user);
  }

  private pageFault(lin: number, code: number, access: number, user: boolean): never {
    this.cr2 = lin | 0;
    if (access === ACCESS_WRITE) code |= PF_WRITE;
    if (user) code |= PF_USER;
    if (access === ACCESS_FETCH && this.cr4 & CR4_PAE && this.efer & EFER_NXE) code |= PF_FETCH;
    this.raise(EXC_PF, code);
  }

  private walk(lin: number, access: number, user: boolean): number {
    const linPage = lin >>> 12;
    if (!this.pagingOn) {
      const phys = lin & this.a20Mask;
      this.fillTlb(linPage, (phys >>> 12) & 0xfffff, TLB_VALID | TLB_USER | TLB_WSUP | TLB_WUSER);
      return phys >>> 0;
    }
    const write = access === ACCESS_WRITE;
    const wp = (this.cr0 & CR0_WP) !== 0;
    const mem = this.memory;
    const a20 = this.a20Mask;
    let physPage: number;
    let us: number;
    let rw: number;
    let dirty: boolean;
    let global = false;
    let nx = false;
    if (!(this.cr4 & CR4_PAE)) {
      const pdeAddr = (((this.cr3 & ~0xfff) | ((lin >>> 22) << 2)) & a20) >>> 0;
      const pde = mem.read32(pdeAddr);
      if (!(pde & 1)) this.pageFault(lin, 0, access, user);
      if (pde & 0x80 && this.cr4 & CR4_PSE) {
        // PSE-36: PDE bits 16:13 are physical address bits 35:32; bits 21:17 are reserved.
        if (pde & 0x3e0000) this.pageFault(lin, PF_PRESENT | PF_RSVD, access, user);
        us = pde & 4;
        rw = pde & 2;
        this.checkPage(lin, us, rw, wp, access, user);
        const upd = pde | 0x20 | (write ? 0x40 : 0);
        if (upd !== pde) mem.write32(pdeAddr, upd);
        dirty = (upd & 0x40) !== 0;
        global = (pde & 0x100) !== 0;
        physPage = ((pde >>> 13) & 0xf) * 0x100000 + (((pde >>> 12) & 0xffc00) | ((lin >>> 12) & 0x3ff));
      } else {
        const pteAddr = (((pde & ~0xfff) | (((lin >>> 12) & 0x3ff) << 2)) & a20) >>> 0;
        const pte = mem.read32(pteAddr);
        if (!(pte & 1)) this.pageFault(lin, 0, access, user);
        us = pde & pte & 4;
        rw = pde & pte & 2;
        this.checkPage(lin, us, rw, wp, access, user);
        if (!(pde & 0x20)) mem.write32(pdeAddr, pde | 0x20);
        const upd = pte | 0x20 | (write ? 0x40 : 0);
        if (upd !== pte) mem.write32(pteAddr, upd);
        dirty = (upd & 0x40) !== 0;
        global = (pte & 0x100) !== 0;
        physPage = pte >>> 12;
      }
    } else {
      const nxe = (this.efer & EFER_NXE) !== 0;
      // The PDPTEs as loaded with CR3, not as memory holds them now.
      const pdpte = this.pdptes[(lin >>> 30) * 2]!;
      const pdpteHi = this.pdptes[(lin >>> 30) * 2 + 1]!;
      if (!(pdpte & 1)) this.pageFault(lin, 0, access, user);
      if (pdpte & 0x1e6 || pdpteHi & 0xfffffff0) this.pageFault(lin, PF_PRESENT | PF_RSVD, access, user);
      const pdeAddr = (pdpteHi & 0xf) * 0x100000000 + ((pdpte & ~0xfff) >>> 0) + ((lin >>> 21) & 0x1ff) * 8;
      const pde = mem.read32(pdeAddr);
      const pdeHi = mem.read32(pdeAddr + 4);
      if (!(pde & 1)) this.pageFault(lin, 0, access, user);
      if (pdeHi & 0x7ffffff0 || (pdeHi & 0x80000000 && !nxe))
        this.pageFault(lin, PF_PRESENT | PF_RSVD, access, user);
      nx = nxe && (pdeHi & 0x80000000) !== 0;
      if (pde & 0x80) {
        if (pde & 0x1fe000) this.pageFault(lin, PF_PRESENT | PF_RSVD, access, user);
        us = pde & 4;
        rw = pde & 2;
        this.checkPage(lin, us, rw, wp, access, user);
        if (access === ACCESS_FETCH && nx) this.pageFault(lin, PF_PRESENT, access, user);
        const upd = pde | 0x20 | (write ? 0x40 : 0);
        if (upd !== pde) mem.write32(pdeAddr, upd);
        dirty = (upd & 0x40) !== 0;
        global = (pde & 0x100) !== 0;
        physPage = (pdeHi & 0xf) * 0x100000 + ((pde >>> 12) & 0xffe00) + ((lin >>> 12) & 0x1ff);
      } else {
        const pteAddr = (pdeHi & 0xf) * 0x100000000 + ((pde & ~0xfff) >>> 0) + ((lin >>> 12) & 0x1ff) * 8;
        const pte = mem.read32(pteAddr);
        const pteHi = mem.read32(pteAddr + 4);
        if (!(pte & 1)) this.pageFault(lin, 0, access, user);
        if (pteHi & 0x7ffffff0 || (pteHi & 0x80000000 && !nxe))
          this.pageFault(lin, PF_PRESENT | PF_RSVD, access, user);
        nx = nx || (nxe && (pteHi & 0x80000000) !== 0);
        us = pde & pte & 4;
        rw = pde & pte & 2;
        this.checkPage(lin, us, rw, wp, access, user);
        if (access === ACCESS_FETCH && nx) this.pageFault(lin, PF_PRESENT, access, user);
        if (!(pde & 0x20)) mem.write32(pdeAddr, pde | 0x20);
        const upd = pte | 0x20 | (write ? 0x40 : 0);
        if (upd !== pte) mem.write32(pteAddr, upd);
        dirty = (upd & 0x40) !== 0;
        global = (pte & 0x100) !== 0;
        physPage = (pteHi & 0xf) * 0x100000 + (pte >>> 12);
      }
    }
    if (a20 !== -1) physPage &= a20 >> 12;
    let bits = TLB_VALID;
    if (us) bits |= TLB_USER;
    if (dirty && (rw || !wp)) bits |= TLB_WSUP;
    if (dirty && us && rw) bits |= TLB_WUSER;
    if (nx) bits |= TLB_NX;
    if (global && this.cr4 & CR4_PGE) bits |= TLB_GLOBAL;
    this.fillTlb(linPage, physPage, bits);
    return physPage * 4096 + (lin & 4095);
  }

  private checkPage(lin: number, us: number, rw: number, wp: boolean, access: number, user: boolean): void {
    if (user && !us) this.pageFault(lin, PF_PRESENT, access, user);
    if (access === ACCESS_WRITE && !rw && (user || wp)) this.pageFault(lin, PF_PRESENT, access, user);
  }

  private fillTlb(linPage: number, physPage: number, bits: number): void {
    if (physPage >= 1 << 23) return; // beyond the entry format: always walked
    if (this.ramId >= 0 && physPage < this.ramSize >>> PAGE_SHIFT) {
      const mem = this.memory;
      if (mem.pageReadRegion[physPage] === this.ramId) bits |= TLB_RAMR;
      if (mem.pageWriteRegion[physPage] === this.ramId && mem.isWriteFast(physPage)) bits |= TLB_RAMW;
    }
    const old = this.tlb[linPage]!;
    const entry = (physPage << 9) | bits;
    if (old === 0) {
      if (this.tlbCount >= TLB_LIST_MAX) this.flushTlb(false);
      this.tlbList[this.tlbCount++] = linPage;
    } else if (
      this.tlbLinked[linPage] &&
      (old >>> 9 !== physPage || ((old ^ entry) & (TLB_VALID | TLB_USER | TLB_NX)) !== 0)
    ) {
      this.tlbLinked[linPage] = 0;
      this.codeEpoch++;
    }
    this.tlb[linPage] = entry;
  }

  /** Flushes the TLB; `keepGlobal` keeps global pages (a CR3 write with CR4.PGE). */
  flushTlb(keepGlobal: boolean): void {
    const tlb = this.tlb;
    const linked = this.tlbLinked;
    let kept = 0;
    for (let k = 0; k < this.tlbCount; k++) {
      const page = this.tlbList[k]!;
      const e = tlb[page]!;
      if (keepGlobal && e & TLB_GLOBAL) {
        this.tlbList[kept++] = page;
      } else {
        tlb[page] = 0;
        if (linked[page]) {
          linked[page] = 0;
          this.codeEpoch++;
        }
      }
    }
    this.tlbCount = kept;
  }

  invalidatePage(lin: number): void {
    const page = lin >>> 12;
    this.tlb[page] = 0;
    if (this.tlbLinked[page]) {
      this.tlbLinked[page] = 0;
      this.codeEpoch++;
    }
  }

  /** Physical page `physPage` stopped being write-fast: entries mapping it lose direct writes. */
  private dropFastWrites(physPage: number): void {
    const tlb = this.tlb;
    for (let k = 0; k < this.tlbCount; k++) {
      const page = this.tlbList[k]!;
      const e = tlb[page]!;
      if (e >>> 9 === physPage) tlb[page] = e & ~TLB_RAMW;
    }
  }

  private refreshRam(): void {
    const main = this.memory.mainRam;
    const bytes = main ? main.bytes : new Uint8Array(0);
    this.ramSize = main ? main.size : 0;
    this.ramId = main ? main.id : -1;
    if (bytes === this.ram) return;
    this.ram = bytes;
    this.ram32 = new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length >> 2);
    // Translations hold the RAM arrays as constants: they go with the RAM they were made for.
    this.flushBlocks();
  }

  private checkDataBreakpoint(lin: number, size: number, write: boolean): void {
    const dr7 = this.dr[7]!;
    for (let n = 0; n < 4; n++) {
      if (!((dr7 >> (n * 2)) & 3)) continue;
      const rw = (dr7 >>> (16 + n * 4)) & 3;
      if (rw === 0 || rw === 2 || (rw === 1 && !write)) continue;
      const len = ((dr7 >>> (18 + n * 4)) & 3) + 1;
      const addr = this.dr[n]! & ~(len - 1);
      if (lin >>> 0 <= (addr >>> 0) + len - 1 && addr >>> 0 <= (lin >>> 0) + size - 1)
        this.debugTrapDr6 |= 1 << n;
    }
  }

  // ---- I/O --------------------------------------------------------------------------------

  /** With CR4.DE, DR7 R/W = 10b breakpoints match port accesses (a #DB trap after the instruction). */
  checkIoBreakpoint(port: number, size: number): void {
    if (!(this.cr4 & CR4_DE)) return;
    const dr7 = this.dr[7]!;
    for (let n = 0; n < 4; n++) {
      if (!((dr7 >> (n * 2)) & 3) || ((dr7 >>> (16 + n * 4)) & 3) !== 2) continue;
      const len = ((dr7 >>> (18 + n * 4)) & 3) + 1;
      const addr = this.dr[n]! & 0xffff & ~(len - 1);
      if (port <= addr + len - 1 && addr <= port + size - 1) this.debugTrapDr6 |= 1 << n;
    }
  }

  /** #GP(0) unless the current privilege (IOPL, or the TSS I/O bitmap) allows ports [port, port+size). */
  checkIo(port: number, size: number): void {
    if (!this.protectedMode || (!this.vm86 && this.cpl <= this.iopl)) return;
    const attr = this.segAttr[TR]!;
    if ((attr & 0xf) !== 0xb && (attr & 0xf) !== 0x9) this.gp(0);
    const limit = this.segLimit[TR]!;
    if (limit < 0x67) this.gp(0);
    const base = this.segBase[TR]!;
    const mapOff = this.sysRead((base + 0x66) | 0, 2);
    const at = mapOff + (port >> 3);
    if (at + 1 > limit) this.gp(0);
    const bits = this.sysRead((base + at) | 0, 2);
    const mask = ((1 << size) - 1) << (port & 7);
    if (bits & mask) this.gp(0);
  }

  portIn(port: number, size: number): number {
    this.checkIo(port, size);
    if (this.dr[7]! & 0xff) this.checkIoBreakpoint(port, size);
    return this.ports.read(port & 0xffff, size as 1 | 2 | 4);
  }
  portOut(port: number, size: number, v: number): void {
    this.checkIo(port, size);
    if (this.dr[7]! & 0xff) this.checkIoBreakpoint(port, size);
    this.ports.write(port & 0xffff, size as 1 | 2 | 4, size === 4 ? v >>> 0 : v & SIZE_MASK[size]!);
  }

  // ---- exceptions -------------------------------------------------------------------------

  /** Raises exception `vector` (error code -1 for none) and unwinds the current instruction. */
  raise(vector: number, error = -1): never {
    this.excVector = vector;
    this.excError = error;
    throw GUEST_FAULT;
  }
  gp(error: number): never {
    this.raise(EXC_GP, error);
  }
  ud(): never {
    this.raise(6);
  }

  // ---- descriptors ------------------------------------------------------------------------

  /**
   * Reads the descriptor for `selector` into descLo/descHi. Returns false if the selector is
   * outside its table (the caller raises the right exception).
   */
  readDescriptor(selector: number): boolean {
    let base: number;
    let limit: number;
    if (selector & 4) {
      if (!(this.segAttr[LDTR]! & ATTR_P) || (this.segSel[LDTR]! & 0xfffc) === 0) return false;
      base = this.segBase[LDTR]!;
      limit = this.segLimit[LDTR]!;
    } else {
      base = this.gdtBase;
      limit = this.gdtLimit;
    }
    if ((selector | 7) > limit) return false;
    const at = (base + (selector & ~7)) | 0;
    this.descLo = this.sysRead(at, 4) | 0;
    this.descHi = this.sysRead((at + 4) | 0, 4) | 0;
    return true;
  }

  /** Sets a bit in the high dword of the descriptor for `selector` (accessed, busy). */
  setDescriptorBit(selector: number, bit: number, on: boolean): void {
    const base = selector & 4 ? this.segBase[LDTR]! : this.gdtBase;
    const at = (base + (selector & ~7) + 4) | 0;
    const hi = this.sysRead(at, 4);
    const upd = on ? hi | bit : hi & ~bit;
    if (upd !== hi) this.sysWrite(at, 4, upd);
  }

  // ---- run loop ---------------------------------------------------------------------------

  /**
   * Executes up to `maxInstructions`; returns how many retired. Returns early when halted or shut
   * down. Exceptions and interrupts are delivered inside.
   */
  run(maxInstructions: number): number {
    const start = this.instructionCount;
    const end = start + maxInstructions;
    this.sliceEnded = false;
    while (this.instructionCount < end && !this.shutdown && !this.sliceEnded) {
      if (!this.shadow && (this.nmiPending || (this.intr && this.flagsRaw & IF))) {
        if (this.serviceInterrupts()) continue;
      }
      if (this.halted) break;
      const single =
        this.shadow || this.trace !== undefined || (this.flagsRaw & TF) !== 0 || (this.dr[7]! & 0xff) !== 0;
      this.attention = false;
      try {
        if (single) this.stepOne();
        else this.runBlocks(end);
      } catch (e) {
        if (e !== GUEST_FAULT) throw e;
        this.handleFault();
      }
    }
    return this.instructionCount - start;
  }

  /** Delivers a pending NMI or INTR; returns true if one was delivered. */
  private serviceInterrupts(): boolean {
    // A fault while delivering belongs to the instruction about to run.
    this.instrStart = this.ip;
    try {
      if (this.nmiPending && !this.nmiBlocked) {
        this.nmiPending = false;
        this.nmiBlocked = true;
        this.halted = false;
        this.deliverEvent(EXC_NMI, -1, EVENT_EXTERNAL);
        return true;
      }
      if (this.intr && this.flagsRaw & IF && this.interrupts) {
        const vector = this.interrupts.acknowledge() & 0xff;
        this.halted = false;
        this.deliverEvent(vector, -1, EVENT_EXTERNAL);
        return true;
      }
    } catch (e) {
      if (e !== GUEST_FAULT) throw e;
      this.handleFault();
      return true;
    }
    return false;
  }

  /** One instruction, with tracing, TF single-step and instruction breakpoints. */
  private stepOne(): void {
    const shadowed = this.shadow;
    this.shadow = false;
    const tfBefore = (this.getFlags() & TF) !== 0;
    this.instrStart = this.ip;
    if (this.dr[7]! & 0xff && !(this.flagsRaw & RF)) {
      const lin = (this.segBase[CS]! + this.eip) | 0;
      let hits = 0;
      const dr7 = this.dr[7]!;
      for (let n = 0; n < 4; n++) {
        if ((dr7 >> (n * 2)) & 3 && ((dr7 >>> (16 + n * 4)) & 3) === 0 && this.dr[n] === lin) hits |= 1 << n;
      }
      if (hits) {
        this.dr[6] = (this.dr[6]! & ~0xf) | hits;
        this.instructionBreakpoint = true;
        this.raise(EXC_DB);
      }
    }
    if (this.trace) this.trace(this);
    const block = this.fetchBlock(1);
    const insn = block.insns[0]!;
    this.ip = this.code32 ? (this.ip + insn.length) | 0 : (this.ip + insn.length) & 0xffff;
    this.debugTrapDr6 = 0;
    this.shadowDebug = false;
    // RF covers this instruction's breakpoint check only; one that loads it (IRET) keeps it set
    // for the next instruction.
    this.flagsRaw &= ~RF;
    insn.handler(this, insn);
    this.instructionCount++;
    if (shadowed && this.shadow) this.shadow = false;
    let dr6 = this.debugTrapDr6 | (tfBefore ? 0x4000 : 0);
    if (this.shadowDebug) {
      this.heldDebugDr6 |= dr6;
      dr6 = 0;
    } else {
      dr6 |= this.heldDebugDr6;
      this.heldDebugDr6 = 0;
    }
    if (dr6) {
      this.debugTrapDr6 = 0;
      this.dr[6] = (this.dr[6]! & ~0x400f) | dr6;
      this.instrStart = this.ip;
      this.deliverEvent(EXC_DB, -1, EVENT_EXCEPTION);
    }
  }

  /** Runs decoded blocks back to back until `end` or until something needs the run loop. */
  private runBlocks(end: number): void {
    // A loop form's miss raised the attention flag, so this is the first block after it.
    if (this.interpretNext) this.interpretAfterMiss(end);
    while (!this.attention) {
      const budget = end - this.instructionCount;
      if (budget <= 0) break;
      // A fault while fetching the block belongs to its first instruction, not the last one run.
      this.instrStart = this.ip;
      const block = this.fetchBlock(MAX_BLOCK_INSNS);
      const insns = block.insns;
      const jit = this.jit;
      if (jit !== undefined && block.cacheable && block.crossPage < 0 && insns.length <= budget) {
        // Set when this turn may translate: the translation and V8's compile at its first call.
        let hostWork = false;
        if (++block.heat >= block.heatGoal) {
          jit.heatReached(block, this);
          hostWork = true;
        }
        let translated = block.translated;
        if (translated !== undefined) {
          const ran = translated(this, end) >= 0;
          if (!ran) {
            translated = jit.retranslate(block, this);
            hostWork = true;
            if (translated === undefined || translated(this, end) < 0) this.interpretBlock(block, budget);
          }
          this.flagsRaw &= ~RF;
          if (hostWork) this.afterHostWork?.();
          if (ran) this.chainFrom(block, end);
          continue;
        }
        if (hostWork) this.afterHostWork?.();
      }
      this.interpretBlock(block, budget);
    }
  }

  /**
   * Runs the block at EIP, where a translation's loop form left at an access that missed the TLB,
   * in the interpreter (which takes the slow path), and translates a loop form that misses too
   * often again.
   */
  private interpretAfterMiss(end: number): void {
    this.interpretNext = false;
    const often = this.missedOften;
    if (often !== undefined && this.jit !== undefined) {
      this.missedOften = undefined;
      this.jit.loopFormMissedOften(often, this);
      this.afterHostWork?.();
    }
    this.instrStart = this.ip;
    this.interpretBlock(this.fetchBlock(MAX_BLOCK_INSNS), end - this.instructionCount);
  }

  /**
   * Goes on from the translation of `block` straight into the translations that follow it, through
   * the same successor links `fetchBlock` keeps, for as long as they hold and fit the budget. This
   * skips the dispatcher's lookups between translated code. A block translated alone goes back to
   * the dispatcher when its heat goal comes round, and so does anything that needs more than a
   * link: a miss, a refusal, an untranslated block.
   */
  private chainFrom(block: Block, end: number): void {
    let from = block;
    // The block whose translation runs (or last ran), for `lastBlock`. It is stored once on the
    // way out: a store of a block still in V8's young generation costs a write barrier each time.
    let running = block;
    try {
      while (!this.attention) {
        const eip = this.ip;
        const next = this.linkedNext(from, eip);
        if (next === undefined || !next.valid || end - this.instructionCount < next.insns.length) break;
        const translated = next.translated;
        if (translated === undefined) break;
        // Heat matters only to a block translated alone (its page may be due a translation).
        const alone = !next.inRegion;
        if (alone && ++next.heat >= next.heatGoal) {
          next.heat--;
          break;
        }
        running = next;
        this.instrStart = eip;
        if (translated(this, end) < 0) {
          // Nothing ran: the dispatcher finds `next` through the same link and translates it again.
          if (alone) next.heat--;
          running = from;
          break;
        }
        this.flagsRaw &= ~RF;
        from = next;
      }
    } finally {
      this.lastBlock = running;
    }
  }

  /** Runs up to `budget` instructions of a decoded block through the interpreter's handlers. */
  private interpretBlock(block: Block, budget: number): void {
    const insns = block.insns;
    const n = Math.min(insns.length, budget);
    const code32 = this.code32;
    for (let k = 0; k < n; k++) {
      const insn = insns[k]!;
      const ip = this.ip;
      this.instrStart = ip;
      this.ip = code32 ? (ip + insn.length) | 0 : (ip + insn.length) & 0xffff;
      insn.handler(this, insn);
      this.instructionCount++;
      if (!block.valid) break;
    }
    this.flagsRaw &= ~RF;
  }

  /** Makes the run loop look at pins, flags and modes before the next block. */
  requestAttention(): void {
    this.attention = true;
  }

  /** Makes `run` return at the next block boundary, before its instruction budget is spent. */
  endSlice(): void {
    this.sliceEnded = true;
    this.attention = true;
  }

  /**
   * Inhibits interrupts until after the next instruction (MOV SS, POP SS, STI); MOV SS and POP SS
   * (`holdDebugTraps`) also hold back debug traps, so a single-step lands after the next instruction.
   */
  setShadow(holdDebugTraps = false): void {
    this.shadow = true;
    this.attention = true;
    if (holdDebugTraps) this.shadowDebug = true;
  }

  /** The decoded block at CS:EIP (decoding it if needed). */
  private fetchBlock(maxInsns: number): Block {
    // A successor link made under the current code-mapping epoch needs no checks but validity.
    const prev = this.lastBlock;
    if (prev !== undefined && maxInsns === MAX_BLOCK_INSNS) {
      const b = this.linkedNext(prev, this.ip);
      if (b?.valid) {
        this.lastBlock = b;
        return b;
      }
    }
    const eip = this.eip;
    const limit = this.segLimit[CS]!;
    if (eip > limit) this.gp(0);
    const lin = (this.segBase[CS]! + eip) | 0;
    const e = this.tlb[lin >>> 12]!;
    const need = this.user ? TLB_VALID | TLB_USER : TLB_VALID;
    const found = this.lookupBlock(maxInsns, eip, lin, e, need);
    // Linked only through a TLB entry, so that dropping or remapping it ends the link.
    const linkable =
      found.cacheable && found.crossPage < 0 && maxInsns === MAX_BLOCK_INSNS && this.tlb[lin >>> 12] !== 0;
    if (prev !== undefined && linkable) {
      // The oldest link makes room.
      prev.next3 = prev.next2;
      prev.next3Eip = prev.next2Eip;
      prev.next3Epoch = prev.next2Epoch;
      prev.next2 = prev.next1;
      prev.next2Eip = prev.next1Eip;
      prev.next2Epoch = prev.next1Epoch;
      prev.next1 = prev.next0;
      prev.next1Eip = prev.next0Eip;
      prev.next1Epoch = prev.next0Epoch;
      prev.next0 = found;
      prev.next0Eip = eip | 0;
      prev.next0Epoch = this.linkTag();
      this.tlbLinked[lin >>> 12] = 1;
    }
    this.lastBlock = linkable ? found : undefined;
    return found;
  }

  /** The code-mapping epoch and the fetch mode, as one number a link records. */
  private linkTag(): number {
    return this.codeEpoch * 4 + this.linkMode;
  }

  /** The successor of `from` linked at `eip` under the current epoch and mode, if any. */
  private linkedNext(from: Block, eip: number): Block | undefined {
    const tag = this.linkTag();
    // Links keep EIP signed, as `ip` does: kernel addresses above 2^31 would otherwise make V8
    // keep the fields as boxed doubles, one more load each on the dispatcher's hot path.
    if (from.next0Eip === eip && from.next0Epoch === tag) return from.next0;
    if (from.next1Eip === eip && from.next1Epoch === tag) return from.next1;
    if (from.next2Eip === eip && from.next2Epoch === tag) return from.next2;
    if (from.next3Eip === eip && from.next3Epoch === tag) return from.next3;
    return undefined;
  }

  private lookupBlock(maxInsns: number, eip: number, lin: number, e: number, need: number): Block {
    const phys =
      (e & need) === need && !(e & TLB_NX)
        ? (e >>> 9) * 4096 + (lin & 4095)
        : this.translate(lin, ACCESS_FETCH, this.user);
    const slot = (phys ^ (phys >>> 13) ^ (this.code32 ? 0x8000 : 0)) & (BLOCK_CACHE_SIZE - 1);
    let cached = this.blockCache[slot];
    // The slot may hold another block; the index has every live one.
    if (cached === undefined || cached.phys !== phys || cached.code32 !== this.code32) {
      cached = this.blockIndex.get(blockKey(phys, this.code32));
      if (cached !== undefined) this.blockCache[slot] = cached;
    }
    if (
      cached?.valid &&
      eip + cached.byteLength - 1 <= this.segLimit[CS]! &&
      (cached.crossPage < 0 ||
        this.translate(((lin | 4095) + 1) | 0, ACCESS_FETCH, this.user) === cached.crossPage)
    ) {
      return cached;
    }
    const block = this.decodeBlock(eip, lin, phys, maxInsns);
    if (block.cacheable && maxInsns === MAX_BLOCK_INSNS) {
      this.blockCache[slot] = block;
      this.registerBlock(block);
    }
    return block;
  }

  private decodeBlock(eip: number, lin: number, phys: number, maxInsns: number): Block {
    const block = new Block(phys, this.code32);
    const limit = this.segLimit[CS]!;
    const buf = this.fetchBuffer;
    const region = this.memory.regionAt(phys);
    if (!region || region.kind === "mmio" || phys >= 0x100000000) block.cacheable = false;
    let off = eip;
    let curLin = lin;
    let curPhys = phys;
    let total = 0;
    for (let k = 0; k < maxInsns; k++) {
      const pageRemain = 4096 - (curLin & 4095);
      const limitRemain = limit - off + 1;
      let n = Math.min(15, pageRemain, limitRemain);
      for (let j = 0; j < n; j++) buf[j] = this.memory.read(curPhys + j, 1);
      const insn = new Insn();
      let len = decodeInstruction(insn, buf, n, this.code32);
      if (len === DECODE_NEED_MORE && n === pageRemain && n < limitRemain && n < 15) {
        if (k > 0) break;
        const nextPhys = this.translate((curLin + pageRemain) | 0, ACCESS_FETCH, this.user);
        const more = Math.min(15, limitRemain);
        for (let j = n; j < more; j++) buf[j] = this.memory.read(nextPhys + j - n, 1);
        n = more;
        len = decodeInstruction(insn, buf, n, this.code32);
        // Cached like any block while the next page still maps to the same RAM or ROM (Linux
        // loops over instructions that straddle pages).
        const next = this.memory.regionAt(nextPhys);
        if (next && next.kind !== "mmio" && nextPhys < 0x100000000) block.crossPage = nextPhys;
        else block.cacheable = false;
      }
      if (len < 0) {
        if (k > 0) break;
        // Past the segment limit or longer than 15 bytes.
        this.gp(0);
      }
      if (len === DECODE_TOO_LONG) this.gp(0);
      block.insns.push(insn);
      total += len;
      if (insn.entry.endsBlock || !block.cacheable) break;
      off += len;
      if ((curLin & 4095) + len >= 4096) break;
      curLin = (curLin + len) | 0;
      curPhys += len;
    }
    block.byteLength = total;
    return block;
  }

  private registerBlock(block: Block): void {
    this.blockIndex.set(blockKey(block.phys, block.code32), block);
    this.registerOnPage(block, block.phys);
    // A write to either page, or a remap of either, must drop a block that straddles them.
    if (block.crossPage >= 0) this.registerOnPage(block, block.crossPage);
  }

  private registerOnPage(block: Block, phys: number): void {
    const page = Math.floor(phys / 4096);
    let list = this.pageBlocks.get(page);
    if (!list) {
      list = [];
      this.pageBlocks.set(page, list);
      const region = this.memory.regionAt(phys);
      if (region?.kind === "ram") this.memory.markCode(page);
    }
    // Blocks dropped with the other page of a straddling block linger here; keep lists short.
    if (list.length >= 256 && list.length % 256 === 0) {
      const live = list.filter((b) => b.valid);
      list.length = 0;
      list.push(...live);
    }
    list.push(block);
  }

  /** The decoded blocks registered on `block`'s physical page (for the translator). */
  blocksOnPageOf(block: Block): readonly Block[] {
    return this.pageBlocks.get(Math.floor(block.phys / 4096)) ?? [];
  }

  /** A write hit a page holding decoded code: drop its blocks. */
  private invalidateCode(address: number): void {
    const page = Math.floor(address / 4096);
    const list = this.pageBlocks.get(page);
    if (list) {
      for (const b of list) {
        b.valid = false;
        this.jit?.dropped(b);
        const key = blockKey(b.phys, b.code32);
        if (this.blockIndex.get(key) === b) this.blockIndex.delete(key);
      }
      this.pageBlocks.delete(page);
      // Code running from these blocks (translated code checks only this) must stop at once.
      this.attention = true;
    }
    this.memory.clearCode(page);
  }

  /** Drops every decoded block (memory map changes). */
  flushBlocks(): void {
    for (const list of this.pageBlocks.values()) for (const b of list) b.valid = false;
    this.attention = true;
    this.jit?.dropAll();
    for (const page of this.pageBlocks.keys()) this.memory.clearCode(page);
    this.pageBlocks.clear();
    this.blockIndex.clear();
    this.blockCache.fill(undefined);
  }

  // ---- exception and interrupt delivery ---------------------------------------------------

  /** Delivers the exception recorded by raise(), escalating to #DF and shutdown as the SDM says. */
  private handleFault(): void {
    let vector = this.excVector;
    let error = this.excError;
    this.ip = this.instrStart;
    this.shadow = false;
    // Faults save EFLAGS with RF set, so the handler's IRET restarts the instruction without
    // hitting its instruction breakpoint again; an instruction breakpoint's own #DB does not
    // (SDM vol. 3, 18.3.1.1).
    if (this.instructionBreakpoint) this.instructionBreakpoint = false;
    else this.flagsRaw |= RF;
    for (;;) {
      try {
        this.deliverEvent(vector, error, EVENT_EXCEPTION);
        return;
      } catch (e) {
        if (e !== GUEST_FAULT) throw e;
        const next = this.excVector;
        if (vector === EXC_DF) {
          this.enterShutdown("triple fault");
          return;
        }
        const first = vector;
        if (
          (CONTRIBUTORY.has(first) && CONTRIBUTORY.has(next)) ||
          (first === EXC_PF && (next === EXC_PF || CONTRIBUTORY.has(next)))
        ) {
          vector = EXC_DF;
          error = 0;
        } else {
          vector = next;
          error = this.excError;
        }
      }
    }
  }

  enterShutdown(reason: string): void {
    this.shutdown = true;
    this.attention = true;
    this.halted = true;
    this.onShutdown?.(reason);
  }

  /** Delivers interrupt or exception `vector` through the IVT or IDT. */
  deliverEvent(vector: number, error: number, kind: number): void {
    this.halted = false;
    this.ext = kind === EVENT_EXTERNAL || kind === EVENT_EXCEPTION ? 1 : 0;
    if (!this.protectedMode) {
      this.deliverReal(vector);
    } else {
      deliverProtected(this, vector, error, kind);
    }
    this.ext = 0;
  }

  private deliverReal(vector: number): void {
    if (vector * 4 + 3 > this.idtLimit) this.gp(vector * 8 + 2);
    const entry = (this.idtBase + vector * 4) | 0;
    const ip = this.readLin16(entry);
    const cs = this.readLin16((entry + 2) | 0);
    this.push16(this.getFlags());
    this.push16(this.segSel[CS]!);
    this.push16(this.eip);
    this.flagsRaw &= ~(IF | TF | AC | RF);
    this.loadRealSegment(CS, cs);
    this.eip = ip;
  }

  /** INT n, INT3, INTO, INT1 from an instruction: EIP already points past it. */
  softwareInterrupt(vector: number, kind: number): void {
    this.deliverEvent(vector, -1, kind);
  }

  // ---- time -------------------------------------------------------------------------------

  readTsc(): number {
    const base = this.tscSource ? this.tscSource() : this.instructionCount;
    return base + this.tscOffset;
  }

  // ---- persistence ------------------------------------------------------------------------

  saveState(): CpuState {
    const segments: SegmentState[] = [];
    for (let s = 0; s < 8; s++) segments.push(this.getSegment(s));
    const msrs: [number, number, number][] = [];
    for (const [k, v] of this.msrs) msrs.push([k, v[0], v[1]]);
    return {
      regs: Array.from(this.regs),
      eip: this.eip,
      eflags: this.getFlags(),
      segments,
      cr: [this.cr0, this.cr2, this.cr3, this.cr4],
      dr: Array.from(this.dr),
      efer: this.efer,
      gdtr: [this.gdtBase, this.gdtLimit],
      idtr: [this.idtBase, this.idtLimit],
      halted: this.halted,
      shutdown: this.shutdown,
      intr: this.intr,
      nmiPending: this.nmiPending,
      nmiBlocked: this.nmiBlocked,
      a20: this.a20Mask === -1,
      instructionCount: this.instructionCount,
      tscOffset: this.tscOffset,
      msrs,
      shadow: this.shadow,
    };
  }

  loadState(state: CpuState, version: number): void {
    if (version !== 1) throw new StateError(`CPU state version ${version} is not supported`);
    checkCpuState(state);
    for (let i = 0; i < 8; i++) this.regs[i] = Number(state.regs[i]);
    this.eip = state.eip | 0;
    this.cr0 = state.cr[0]! | 0;
    this.cr2 = state.cr[1]! | 0;
    this.cr3 = state.cr[2]! | 0;
    this.cr4 = state.cr[3]! | 0;
    if (this.cr0 & CR0_PG && this.cr0 & CR0_PE && this.cr4 & CR4_PAE) this.loadPdptes(this.cr3, false);
    this.efer = state.efer | 0;
    for (let i = 0; i < 8; i++) this.dr[i] = Number(state.dr[i]);
    this.gdtBase = state.gdtr[0] | 0;
    this.gdtLimit = state.gdtr[1] & 0xffff;
    this.idtBase = state.idtr[0] | 0;
    this.idtLimit = state.idtr[1] & 0xffff;
    this.setFlagsRaw(state.eflags);
    this.updateMode();
    for (let s = 0; s < 8; s++) {
      const seg = state.segments[s]!;
      this.loadCache(s, seg.selector, seg.base, seg.limit, seg.attributes);
    }
    this.halted = !!state.halted;
    this.shutdown = !!state.shutdown;
    this.intr = !!state.intr;
    this.nmiPending = !!state.nmiPending;
    this.nmiBlocked = !!state.nmiBlocked;
    this.a20Mask = state.a20 ? -1 : ~(1 << 20);
    this.instructionCount = Number(state.instructionCount) || 0;
    this.tscOffset = Number(state.tscOffset) || 0;
    this.msrs = defaultMsrs();
    for (const [k, lo, hi] of state.msrs) this.msrs.set(k, [lo, hi]);
    this.shadow = !!state.shadow;
    this.updateMode();
    this.refreshWindows();
    this.updateDebug();
    this.flushTlb(false);
    this.flushBlocks();
  }
}

/** Throws StateError (naming the field) unless `state` has the shape saveState produces. */
function checkCpuState(state: CpuState): void {
  const bad = (what: string): never => {
    throw new StateError(`CPU state is malformed: ${what}`);
  };
  if (typeof state !== "object" || state === null) bad("not an object");
  const numbers = (v: unknown, n: number, what: string) => {
    if (!Array.isArray(v) || v.length !== n || !v.every((x) => typeof x === "number" && Number.isFinite(x)))
      bad(what);
  };
  numbers(state.regs, 8, "regs");
  numbers(state.cr, 4, "cr");
  numbers(state.dr, 8, "dr");
  numbers(state.gdtr, 2, "gdtr");
  numbers(state.idtr, 2, "idtr");
  for (const k of ["eip", "eflags", "efer", "instructionCount", "tscOffset"] as const) {
    if (typeof state[k] !== "number" || !Number.isFinite(state[k])) bad(k);
  }
  for (const k of ["halted", "shutdown", "intr", "nmiPending", "nmiBlocked", "a20", "shadow"] as const) {
    if (typeof state[k] !== "boolean") bad(k);
  }
  if (!Array.isArray(state.segments) || state.segments.length !== 8) bad("segments");
  for (const seg of state.segments) {
    if (typeof seg !== "object" || seg === null) bad("segments");
    for (const k of ["selector", "base", "limit", "attributes"] as const) {
      if (typeof seg[k] !== "number" || !Number.isFinite(seg[k])) bad(`segments.${k}`);
    }
  }
  if (!Array.isArray(state.msrs)) bad("msrs");
  for (const entry of state.msrs) numbers(entry, 3, "msrs");
}
