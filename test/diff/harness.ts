// The frame every differential test program shares: a multiboot kernel (flat binary with the a.out
// kludge header, so QEMU and tsvisor load the same bytes) that sets up a GDT and IDT, runs
// generated cases in 32-bit protected mode, then drops to real mode and to 16-bit protected mode
// for the 16-bit cases, and ends through isa-debug-exit.
//
// Each case sets EFLAGS and the eight general registers, runs the code under test, then dumps the
// registers, EFLAGS and a 96-byte memory window (data operands and the test stack) to port 0xE9.
// A fault inside a case goes to a handler that dumps vector, error code, CS:EIP, EFLAGS and CR2,
// restores the registers and IRETs to the end of the case, which then dumps as usual.
//
// Record format on port 0xE9 (little-endian):
//   'C' id:u32 eax ecx edx ebx esp ebp esi edi eflags:u32 window:96 bytes tail:4 bytes
//   'X' id:u32 vector err eip cs eflags cr2:u32
//   'E'  (end of program)

/** Linear base of the segment holding the data window and the harness variables. */
export const WINDOW_BASE = 0x80000;
/** Bytes of memory dumped after every case, from WINDOW_BASE. */
export const WINDOW_BYTES = 96;
/**
 * Also dumped: the last 4 bytes of the window's 4 KiB page (offset 0xFFC), so accesses that cross
 * into or out of the page are visible on both sides.
 */
export const WINDOW_TAIL = 0xffc;
export const WINDOW_TAIL_BYTES = 4;
/** Initial stack pointer of a case, as an offset from WINDOW_BASE (inside the window). */
export const TEST_STACK = 0x58;
/** Where the 16-bit code is copied to (it runs with CS base 0x10000 in both 16-bit modes). */
const LOW_CODE = 0x10000;

export type CaseMode = "pm32" | "real" | "pm16" | "v86";

/** One generated test case. */
export interface DiffCase {
  readonly id: number;
  readonly mode: CaseMode;
  /** What it tests, for failure messages (the code and the inputs). */
  readonly text: string;
  /** Assembly lines of the code under test (labels may use `@` for a unique per-case prefix). */
  readonly code: readonly string[];
  /** Initial EAX, ECX, EDX, EBX, EBP, ESI, EDI (ESP is always the test stack). */
  readonly registers: readonly number[];
  readonly eflags: number;
  /** EFLAGS bits the SDM leaves undefined for this code: not compared. */
  readonly undefinedFlags: number;
  /** Registers (bit i = encoding i: EAX, ECX, EDX, EBX, ESP, EBP, ESI, EDI) left undefined. */
  readonly undefinedRegisters: number;
  /**
   * Where QEMU is known to deviate from the SDM (see README.md), the exceptions the SDM requires;
   * tsvisor is checked against these instead of against QEMU.
   */
  readonly sdmExceptions?: readonly { readonly vector: number; readonly error: number }[];
  /** Register bits the SDM leaves undefined (e.g. LAR's bits 16-19): not compared. */
  readonly undefinedBits?: readonly { readonly index: number; readonly mask: number }[];
  /** Byte ranges [from, to) of the window page (offsets 0-0x5F and 0xFFC-0xFFF are dumped) the SDM leaves undefined: not compared. */
  readonly undefinedWindow?: readonly (readonly [number, number])[];
  /**
   * Where QEMU is known to compute some bits differently from the SDM (README.md, "Deviations"):
   * those bits are checked against `value` (the SDM's answer) when given, else not compared.
   */
  readonly qemuDeviation?: {
    readonly note: string;
    readonly registerBits?: readonly {
      readonly index: number;
      readonly mask: number;
      readonly value?: number;
    }[];
    readonly flags?: { readonly mask: number; readonly value?: number };
  };
  /**
   * Runs the code under test at CPL 3 (32-bit protected mode only): the harness enters ring 3
   * through IRET with these EFLAGS (IOPL included) and comes back through `int 0x20`.
   */
  readonly ring3?: boolean;
  /** Lines run after the dump, to undo state the case changed (CR0.TS, MSRs...). */
  readonly cleanup?: readonly string[];
  /** Runs with paging on (32-bit protected mode only; see `paging_on` below). */
  readonly paging?: boolean;
  /** Runs with PAE paging on (32-bit protected mode only; see `pae_on` below). */
  readonly pae?: boolean;
  /** Ring-0 lines run before a ring-3 or virtual-8086 case leaves ring 0 (page-table edits, INVLPG, MSRs). */
  readonly setup?: readonly string[];
}

/** Page directory and the page table the paging cases edit (identity maps everything else). */
export const PAGE_DIRECTORY = 0x200000;
export const TEST_PAGE_TABLE = 0x202000;
/** Linear address the test page table maps (initially nothing). */
export const TEST_LINEAR = 0x800000;
/** PAE: page-directory-pointer table, the directory, and the test table for 8-10 MiB. */
export const PAE_PDPT = 0x203000;
export const PAE_DIRECTORY = 0x204000;
export const PAE_TEST_TABLE = 0x205000;

/** Offsets (from WINDOW_BASE, through FS) of the harness variables. */
const V_ID = 0x100;
const V_REGS = 0x104; // 8 x u32, then EFLAGS at 0x124
const V_EFLAGS = 0x124;
const V_RESUME = 0x128;
const V_XREC = 0x140; // vector, error, eip, cs, eflags, cr2
const V_XREGS = 0x160;
/** Where ring-3 cases continue in ring 0 after `int 0x20`. */
const V_RESUME0 = 0x12c;
/** One dword of scratch for handlers that run before FS is usable. */
const V_SCRATCH = 0x180;
/** EIP the second task starts at (see init_task2). */
const V_TASK_EIP = 0x184;

/** The TSS of the harness's own task, and of the task the task-switch cases switch to. */
export const TSS1 = 0x81000;
export const TSS2 = 0x84000;
/** Ring-0 stack for interrupts and gates from ring 3 (TSS1.ESP0), and for SYSENTER. */
const RING0_STACK = WINDOW_BASE + 0xe000;
const SYSENTER_STACK = WINDOW_BASE + 0xd000;
/** The vector of the DPL-3 trap gate that takes ring-3 cases back to ring 0. */
export const RETURN_VECTOR = 0x20;
/** The harness stack, as an offset from WINDOW_BASE (the 16-bit modes share SS with the cases). */
const HARNESS_STACK = 0xf000;

/** Vectors for which the CPU pushes an error code in protected mode. */
const ERROR_CODE_VECTORS = new Set([8, 10, 11, 12, 13, 14, 17]);

const hex = (n: number): string => `0x${(n >>> 0).toString(16)}`;

/** Replaces `@` in label names with the case's unique prefix. */
function localise(line: string, id: number): string {
  return line.replace(/@/g, `c${id}_`);
}

function emitCase(c: DiffCase, bits: 16 | 32): string[] {
  const regs = c.registers;
  const sp = bits === 32 ? WINDOW_BASE + TEST_STACK : TEST_STACK;
  const hs = bits === 32 ? WINDOW_BASE + HARNESS_STACK : HARNESS_STACK;
  const resume = `c${c.id}_resume`;
  const resume0 = `c${c.id}_resume0`;
  const ring3 = bits === 32 && c.ring3 === true;
  // Ring-3 entry: user data segments, then IRET to the code under test with the case's EFLAGS.
  const enterRing3 = ring3
    ? [
        "push eax",
        `mov ax, ${SEL.data32user}`,
        "mov ds, ax",
        "mov es, ax",
        "mov gs, ax",
        "pop eax",
        `push dword ${SEL.data32user}`,
        `push dword ${hex(sp)}`,
        `push dword ${hex(c.eflags)}`,
        `push dword ${SEL.code32user}`,
        `push dword c${c.id}_user`,
        "iretd",
        `c${c.id}_user:`,
      ]
    : [];
  const lines = [
    `; case ${c.id}: ${c.text.replace(/\n/g, " ")}`,
    `mov dword [fs:${V_ID}], ${c.id}`,
    bits === 32 ? `mov dword [fs:${V_RESUME}], ${resume}` : `mov word [fs:${V_RESUME}], ${resume}`,
    `call init_window${bits}`,
    `mov esp, ${hex(hs)}`,
    `push dword ${hex(c.eflags)}`,
    "popfd",
    `mov eax, ${hex(regs[0]!)}`,
    `mov ecx, ${hex(regs[1]!)}`,
    `mov edx, ${hex(regs[2]!)}`,
    `mov ebx, ${hex(regs[3]!)}`,
    `mov ebp, ${hex(regs[4]!)}`,
    `mov esi, ${hex(regs[5]!)}`,
    `mov edi, ${hex(regs[6]!)}`,
    ...(ring3 ? [`mov dword [fs:${V_RESUME0}], ${resume0}`] : []),
    `mov esp, ${hex(sp)}`,
    ...(c.setup ?? []).map((l) => localise(l, c.id)),
    ...enterRing3,
    `c${c.id}_code:`,
    ...c.code.map((l) => localise(l, c.id)),
    `${resume}:`,
    ...(ring3 ? [`int ${RETURN_VECTOR}`, `${resume0}:`] : []),
    ...saveAndDump(bits),
    ...(c.cleanup ?? []).map((l) => localise(l, c.id)),
  ];
  return lines;
}

/** EFLAGS.VM: virtual-8086 mode. */
const EFLAGS_VM = 0x20000;
/** EFLAGS.IOPL = 3: INT n, PUSHF/POPF, CLI/STI and IRET work in virtual-8086 mode. */
const EFLAGS_IOPL3 = 0x3000;

/**
 * The 32-bit half of a virtual-8086 case: IRET into the case's code in the 16-bit part (CS = the
 * low copy, all data segments and SS = the window) with VM and IOPL 3 set, then, after the code's
 * `int 0x20` has come back to ring 0, the usual dump. Faults in the code go through the 32-bit
 * IDT and back into virtual-8086 mode at the resume label, like ring-3 faults.
 */
function emitV86Entry(c: DiffCase): string[] {
  const regs = c.registers;
  const window = WINDOW_BASE >> 4;
  return [
    `; case ${c.id}: ${c.text.replace(/\n/g, " ")} (virtual-8086 mode)`,
    `mov dword [fs:${V_ID}], ${c.id}`,
    `mov dword [fs:${V_RESUME}], c${c.id}_resume`,
    `mov dword [fs:${V_RESUME0}], c${c.id}_resume0`,
    "call init_window32",
    `mov esp, ${hex(WINDOW_BASE + HARNESS_STACK)}`,
    ...[0, 1, 2, 3, 4].map(() => `push dword ${hex(window)}`), // GS, FS, DS, ES, SS
    `push dword ${hex(TEST_STACK)}`,
    `push dword ${hex(c.eflags | EFLAGS_VM | EFLAGS_IOPL3)}`,
    `push dword ${hex(LOW_CODE >> 4)}`,
    `push dword c${c.id}_v86`,
    ...(c.setup ?? []).map((l) => localise(l, c.id)),
    `mov eax, ${hex(regs[0]!)}`,
    `mov ecx, ${hex(regs[1]!)}`,
    `mov edx, ${hex(regs[2]!)}`,
    `mov ebx, ${hex(regs[3]!)}`,
    `mov ebp, ${hex(regs[4]!)}`,
    `mov esi, ${hex(regs[5]!)}`,
    `mov edi, ${hex(regs[6]!)}`,
    "iretd",
    `c${c.id}_resume0:`,
    ...saveAndDump(32),
    ...(c.cleanup ?? []).map((l) => localise(l, c.id)),
  ];
}

/** The 16-bit half of a virtual-8086 case: the code, then home through `int 0x20`. */
function emitV86Body(c: DiffCase): string[] {
  return [
    `c${c.id}_v86:`,
    ...c.code.map((l) => localise(l, c.id)),
    `c${c.id}_resume:`,
    `int ${RETURN_VECTOR}`,
  ];
}

/** Stores the registers and EFLAGS, switches to the harness stack and writes the case record. */
function saveAndDump(bits: 16 | 32): string[] {
  const hs = bits === 32 ? WINDOW_BASE + HARNESS_STACK : HARNESS_STACK;
  return [
    `mov [fs:${V_REGS}], eax`,
    `mov [fs:${V_REGS + 4}], ecx`,
    `mov [fs:${V_REGS + 8}], edx`,
    `mov [fs:${V_REGS + 12}], ebx`,
    `mov [fs:${V_REGS + 16}], esp`,
    `mov [fs:${V_REGS + 20}], ebp`,
    `mov [fs:${V_REGS + 24}], esi`,
    `mov [fs:${V_REGS + 28}], edi`,
    `mov esp, ${hex(hs)}`,
    "pushfd",
    `pop dword [fs:${V_EFLAGS}]`,
    `call dump${bits}`,
  ];
}

/** Routines shared by every case of one code size: window fill, dumps, exception handlers. */
function helpers(bits: 16 | 32): string[] {
  const si = bits === 32 ? "esi" : "si";
  const cx = bits === 32 ? "ecx" : "cx";
  const resumeLoad = bits === 32 ? `mov eax, [fs:${V_RESUME}]` : `mov ax, [fs:${V_RESUME}]`;
  return [
    // Fills the window with a pattern that depends on the case id, so stale data never matches.
    `init_window${bits}:`,
    `mov eax, [fs:${V_ID}]`,
    "imul eax, eax, 37",
    "add eax, 0x5a",
    `xor ${si}, ${si}`,
    `.fill${bits}:`,
    `mov [fs:${si}], al`,
    "add eax, 101",
    "rol al, 1",
    `inc ${si}`,
    // The whole 256 bytes below the variables: stack pops may read past the dumped part.
    `cmp ${si}, ${V_ID}`,
    `jb .fill${bits}`,
    `mov [fs:${WINDOW_TAIL}], eax`,
    "ret",
    // out_bytes: writes CX bytes from fs:SI to the debug console.
    `out_bytes${bits}:`,
    "mov dx, 0xe9",
    `.o${bits}:`,
    `mov al, [fs:${si}]`,
    "out dx, al",
    `inc ${si}`,
    `dec ${cx}`,
    `jnz .o${bits}`,
    "ret",
    `dump${bits}:`,
    "mov dx, 0xe9",
    "mov al, 'C'",
    "out dx, al",
    `mov ${si}, ${V_ID}`,
    `mov ${cx}, 40`,
    `call out_bytes${bits}`,
    `xor ${si}, ${si}`,
    `mov ${cx}, ${WINDOW_BYTES}`,
    `call out_bytes${bits}`,
    `mov ${si}, ${WINDOW_TAIL}`,
    `mov ${cx}, ${WINDOW_TAIL_BYTES}`,
    `call out_bytes${bits}`,
    // Cases may leave other data segments loaded; the next one starts from the standard ones.
    ...(bits === 32 ? [`mov ax, ${SEL.data32}`] : ["mov ax, fs"]),
    "mov ds, ax",
    "mov es, ax",
    "mov gs, ax",
    "ret",
    // The common exception path. On entry the stub has pushed the vector and an error code
    // (real or dummy) above the CPU's frame. Records, restores registers, returns to the resume label.
    `exception${bits}:`,
    ...(bits === 32
      ? [
          // From ring 3, FS arrives null: reload it without touching registers or the stack.
          `mov [ss:${hex(WINDOW_BASE + V_SCRATCH)}], eax`,
          `mov ax, ${SEL.window32}`,
          "mov fs, ax",
          `mov eax, [ss:${hex(WINDOW_BASE + V_SCRATCH)}]`,
        ]
      : []),
    ...["eax", "ecx", "edx", "ebx", "ebp", "esi", "edi"].map((r, i) => `mov [fs:${V_XREGS + i * 4}], ${r}`),
    ...(bits === 32
      ? [
          "mov eax, [esp]",
          `mov [fs:${V_XREC}], eax`,
          "mov eax, [esp+4]",
          `mov [fs:${V_XREC + 4}], eax`,
          "mov eax, [esp+8]",
          `mov [fs:${V_XREC + 8}], eax`,
          "movzx eax, word [esp+12]",
          `mov [fs:${V_XREC + 12}], eax`,
          "mov eax, [esp+16]",
          `mov [fs:${V_XREC + 16}], eax`,
          "mov eax, cr2",
          `mov [fs:${V_XREC + 20}], eax`,
        ]
      : [
          // 16-bit frames: IP, CS, FLAGS are words; BP addresses them through SS.
          "mov bp, sp",
          "movzx eax, word [bp]",
          `mov [fs:${V_XREC}], eax`,
          "movzx eax, word [bp+2]",
          `mov [fs:${V_XREC + 4}], eax`,
          "movzx eax, word [bp+4]",
          `mov [fs:${V_XREC + 8}], eax`,
          "movzx eax, word [bp+6]",
          `mov [fs:${V_XREC + 12}], eax`,
          "movzx eax, word [bp+8]",
          `mov [fs:${V_XREC + 16}], eax`,
          "mov eax, cr2",
          `mov [fs:${V_XREC + 20}], eax`,
        ]),
    "mov dx, 0xe9",
    "mov al, 'X'",
    "out dx, al",
    `mov ${si}, ${V_ID}`,
    `mov ${cx}, 4`,
    `call out_bytes${bits}`,
    `mov ${si}, ${V_XREC}`,
    `mov ${cx}, 24`,
    `call out_bytes${bits}`,
    // Drop vector and error code, point the frame's return address at the resume label, and
    // clear TF in the frame so a single-stepping case does not trap again in the harness.
    ...(bits === 32
      ? ["add esp, 8", resumeLoad, "mov [esp], eax", "and dword [esp+8], ~0x100"]
      : ["add sp, 4", resumeLoad, "mov bp, sp", "mov [bp], ax", "and word [bp+4], ~0x100"]),
    ...["eax", "ecx", "edx", "ebx", "ebp", "esi", "edi"].map((r, i) => `mov ${r}, [fs:${V_XREGS + i * 4}]`),
    bits === 32 ? "iretd" : "iret",
  ];
}

/**
 * Paging: identity-maps 0-4 MiB with 4 KiB pages and 4-8 MiB with one 4 MiB page, and leaves
 * 8-12 MiB to a test page table the cases fill in. `paging_reset` puts that state back before
 * each case without disturbing registers or flags.
 */
function pagingHelpers(): string[] {
  const pd = PAGE_DIRECTORY;
  const pt0 = PAGE_DIRECTORY + 0x1000;
  return [
    "paging_on:",
    `mov edi, ${hex(pd)}`,
    "xor eax, eax",
    "mov ecx, 3*1024",
    ".zero:",
    "mov [edi], eax",
    "add edi, 4",
    "dec ecx",
    "jnz .zero",
    `mov dword [${hex(pd)}], ${hex(pt0 | 7)}`,
    `mov dword [${hex(pd + 4)}], 0x400087`,
    `mov dword [${hex(pd + 8)}], ${hex(TEST_PAGE_TABLE | 7)}`,
    `mov edi, ${hex(pt0)}`,
    "mov eax, 7",
    ".pt0:",
    "mov [edi], eax",
    "add edi, 4",
    "add eax, 0x1000",
    `cmp edi, ${hex(pt0 + 0x1000)}`,
    "jb .pt0",
    "mov eax, cr4",
    "or eax, 0x10",
    "mov cr4, eax",
    `mov eax, ${hex(pd)}`,
    "mov cr3, eax",
    "mov eax, cr0",
    "or eax, 0x80000000",
    "mov cr0, eax",
    "ret",
    "paging_off:",
    "mov eax, cr0",
    "and eax, 0x7ffeffff",
    "mov cr0, eax",
    "mov eax, cr4",
    "and eax, ~0x30",
    "mov cr4, eax",
    "ret",
    // PAE: PDPT entry 0 → a page directory of 2 MiB pages identity-mapping 0-8 MiB, PDE 4 → the
    // PAE test table for 8-10 MiB, everything else not present.
    "pae_on:",
    `mov edi, ${hex(PAE_PDPT)}`,
    "xor eax, eax",
    "mov ecx, 3*1024",
    ".pzero:",
    "mov [edi], eax",
    "add edi, 4",
    "dec ecx",
    "jnz .pzero",
    `mov dword [${hex(PAE_PDPT)}], ${hex(PAE_DIRECTORY | 1)}`,
    ...[0, 1, 2, 3].map((k) => `mov dword [${hex(PAE_DIRECTORY + k * 8)}], ${hex((k << 21) | 0x87)}`),
    `mov dword [${hex(PAE_DIRECTORY + 4 * 8)}], ${hex(PAE_TEST_TABLE | 7)}`,
    "mov eax, cr4",
    "or eax, 0x20",
    "mov cr4, eax",
    `mov eax, ${hex(PAE_PDPT)}`,
    "mov cr3, eax",
    "mov eax, cr0",
    "or eax, 0x80000000",
    "mov cr0, eax",
    "ret",
    "pae_reset:",
    "pushfd",
    "push eax",
    "mov eax, cr0",
    "and eax, ~0x10000",
    "mov cr0, eax",
    ...[0, 4, 8, 12, 16, 20].map((k) => `mov dword [${hex(PAE_TEST_TABLE + k)}], 0`),
    `mov dword [${hex(PAE_DIRECTORY + 5 * 8)}], 0`,
    `mov dword [${hex(PAE_DIRECTORY + 5 * 8 + 4)}], 0`,
    "mov eax, cr3",
    "mov cr3, eax",
    "pop eax",
    "popfd",
    "ret",
    "paging_reset:",
    "pushfd",
    "push eax",
    "mov eax, cr0",
    "and eax, ~0x10000",
    "mov cr0, eax",
    `mov dword [${hex(TEST_PAGE_TABLE)}], 0`,
    `mov dword [${hex(TEST_PAGE_TABLE + 4)}], 0`,
    `mov dword [${hex(TEST_PAGE_TABLE + 8)}], 0`,
    `mov dword [${hex(pd + 8)}], ${hex(TEST_PAGE_TABLE | 7)}`,
    `mov dword [${hex(pd + 12)}], 0`,
    "mov eax, cr3",
    "mov cr3, eax",
    "pop eax",
    "popfd",
    "ret",
  ];
}

/**
 * Ring changes and tasks: the DPL-3 return gate, call-gate targets, the SYSENTER entry and the
 * second task's entry points. None of them may disturb the registers the case will dump.
 */
function privilegeHelpers(): string[] {
  return [
    // int 0x20 from ring 3: back to ring 0 at the case's resume0 label with the user ESP.
    "ring0_return:",
    `mov [ss:${hex(WINDOW_BASE + V_SCRATCH)}], eax`,
    `mov ax, ${SEL.window32}`,
    "mov fs, ax",
    `mov eax, [ss:${hex(WINDOW_BASE + V_SCRATCH)}]`,
    "mov esp, [esp+12]",
    `jmp [fs:${V_RESUME0}]`,
    // Call-gate targets: report the frame the gate built, then return to the caller.
    "gate_target:",
    "mov eax, [esp]",
    "mov ebx, [esp+4]",
    "mov ecx, [esp+8]",
    "mov edx, [esp+12]",
    "mov esi, esp",
    "retf",
    "gate_target_params:",
    "mov eax, [esp+8]",
    "mov ebx, [esp+12]",
    "mov ecx, [esp+16]",
    "mov edx, [esp+20]",
    "mov esi, esp",
    "retf 8",
    // SYSENTER: the caller passes its ESP in EBP and its return address in EBX.
    "sysenter_target:",
    "mov esi, esp",
    "mov edi, cs",
    "mov ecx, ebp",
    "mov edx, ebx",
    "sysexit",
    // Fills TSS2 for a task that starts at [fs:V_TASK_EIP] and marks its descriptor available.
    "init_task2:",
    "pushfd",
    "push eax",
    "push edi",
    "push ecx",
    `mov edi, ${hex(TSS2)}`,
    "xor eax, eax",
    "mov ecx, 26",
    ".clear:",
    "mov [edi], eax",
    "add edi, 4",
    "dec ecx",
    "jnz .clear",
    "mov eax, cr3",
    `mov [${hex(TSS2 + 28)}], eax`,
    `mov eax, [fs:${V_TASK_EIP}]`,
    `mov [${hex(TSS2 + 32)}], eax`,
    `mov dword [${hex(TSS2 + 36)}], 0x2`,
    ...[0x11111111, 0x22222222, 0x33333333, 0x44444444].map(
      (v, i) => `mov dword [${hex(TSS2 + 40 + i * 4)}], ${hex(v)}`,
    ),
    `mov dword [${hex(TSS2 + 56)}], ${hex(WINDOW_BASE + 0xc000)}`,
    ...[0x55555555, 0x66666666, 0x77777777].map((v, i) => `mov dword [${hex(TSS2 + 60 + i * 4)}], ${hex(v)}`),
    `mov word [${hex(TSS2 + 72)}], ${SEL.data32}`,
    `mov word [${hex(TSS2 + 76)}], ${SEL.code32}`,
    `mov word [${hex(TSS2 + 80)}], ${SEL.data32}`,
    `mov word [${hex(TSS2 + 84)}], ${SEL.data32}`,
    `mov word [${hex(TSS2 + 88)}], ${SEL.window32}`,
    `mov word [${hex(TSS2 + 92)}], ${SEL.data32}`,
    `mov word [${hex(TSS2 + 102)}], 104`,
    `mov byte [gdt + ${SEL.tss2} + 5], 0x89`,
    "pop ecx",
    "pop edi",
    "pop eax",
    "popfd",
    "ret",
    // The second task records what it started with in the window, then goes back.
    "task2_jmp:",
    `mov [${hex(WINDOW_BASE)}], eax`,
    `mov [${hex(WINDOW_BASE + 4)}], esp`,
    "pushfd",
    `pop dword [${hex(WINDOW_BASE + 8)}]`,
    "str ax",
    `mov [${hex(WINDOW_BASE + 12)}], ax`,
    `jmp ${SEL.tss1}:0`,
    "task2_call:",
    `mov [${hex(WINDOW_BASE)}], ebx`,
    "pushfd",
    `pop dword [${hex(WINDOW_BASE + 8)}]`,
    `mov ax, [${hex(TSS2)}]`,
    `mov [${hex(WINDOW_BASE + 12)}], ax`,
    "iretd",
  ];
}

/** Interrupt stubs: push a dummy error code when the CPU pushes none, then the vector. */
function stubs(prefix: string, bits: 16 | 32, errorCodes: boolean): string[] {
  const lines: string[] = [];
  for (let v = 0; v < 32; v++) {
    lines.push(`${prefix}${v}:`);
    if (!(errorCodes && ERROR_CODE_VECTORS.has(v))) lines.push(bits === 32 ? "push dword 0" : "push word 0");
    lines.push(bits === 32 ? `push dword ${v}` : `push word ${v}`, `jmp exception${bits}`);
  }
  return lines;
}

/** GDT selectors the cases may use. */
export const SEL = {
  code32: 0x08,
  data32: 0x10,
  code16: 0x18,
  data16: 0x20,
  window: 0x28,
  small: 0x30,
  code32user: 0x3b,
  data32user: 0x43,
  readOnly: 0x50,
  window32: 0x58,
  tss1: 0x48,
  sysCode: 0x60,
  sysData: 0x68,
  sysCodeUser: 0x73,
  sysDataUser: 0x7b,
  tss2: 0x80,
  callGateUser: 0x8b,
  callGate: 0x90,
  callGateParams: 0x9b,
  notPresent: 0xa0,
  expandDown: 0xa8,
  ldt: 0xb0,
  /** Selectors in the LDT (TI = 1). */
  ldtData: 0x0c,
  ldtNotPresent: 0x14,
} as const;

/** The local descriptor table the LDT cases load. */
export const LDT_TABLE = 0x85000;

function descriptor(base: number, limit: number, access: number, flags: number): string {
  const lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const hi =
    (base & 0xff000000) | ((flags & 0xf) << 20) | (limit & 0xf0000) | (access << 8) | ((base >>> 16) & 0xff);
  return `dd ${hex(lo)}, ${hex(hi)}`;
}

/** Code that writes a 32-bit call gate into GDT slot `slot` (targets are known only at run time). */
function callGate(slot: number, target: string, dpl: number, params: number): string[] {
  return [
    `mov eax, ${target}`,
    `mov [gdt + ${slot}], ax`,
    `mov word [gdt + ${slot + 2}], ${SEL.code32}`,
    `mov word [gdt + ${slot + 4}], ${hex(0x8c00 | (dpl << 13) | params)}`,
    "shr eax, 16",
    `mov [gdt + ${slot + 6}], ax`,
  ];
}

/** Assembles the whole program's source from its cases. */
export function programSource(cases: readonly DiffCase[]): string {
  const pm32 = cases.filter((c) => c.mode === "pm32" && !c.paging && !c.pae);
  const paged = cases.filter((c) => c.mode === "pm32" && c.paging);
  const pae = cases.filter((c) => c.mode === "pm32" && c.pae);
  const v86 = cases.filter((c) => c.mode === "v86");
  const real = cases.filter((c) => c.mode === "real");
  const pm16 = cases.filter((c) => c.mode === "pm16");
  const out: string[] = [
    "BITS 32",
    "ORG 0x100000",
    "MB_FLAGS equ 0x00010000",
    "section .text",
    "mb_header:",
    "dd 0x1BADB002, MB_FLAGS, -(0x1BADB002 + MB_FLAGS)",
    "dd mb_header, mb_header, 0, 0, start",
    "start:",
    "cli",
    // Mask both PICs: cases may set IF, and the firmware left the timer running (QEMU).
    "mov al, 0xff",
    "out 0x21, al",
    "out 0xa1, al",
    `mov esp, ${hex(WINDOW_BASE + HARNESS_STACK)}`,
    "lgdt [gdt_descriptor]",
    `jmp ${SEL.code32}:.flat`,
    ".flat:",
    `mov ax, ${SEL.data32}`,
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov gs, ax",
    `mov ax, ${SEL.window32}`,
    "mov fs, ax",
    // IDT entries: 32-bit interrupt gates to the stubs.
    "xor ecx, ecx",
    ".idt:",
    "mov eax, [stub_table + ecx*4]",
    "mov [idt + ecx*8], ax",
    `mov word [idt + ecx*8 + 2], ${SEL.code32}`,
    "mov word [idt + ecx*8 + 4], 0x8e00",
    "shr eax, 16",
    "mov [idt + ecx*8 + 6], ax",
    "inc ecx",
    "cmp ecx, 32",
    "jb .idt",
    // Vector 0x20: a DPL-3 trap gate that brings ring-3 cases home.
    "mov eax, ring0_return",
    `mov [idt + ${RETURN_VECTOR * 8}], ax`,
    `mov word [idt + ${RETURN_VECTOR * 8 + 2}], ${SEL.code32}`,
    `mov word [idt + ${RETURN_VECTOR * 8 + 4}], 0xef00`,
    "shr eax, 16",
    `mov [idt + ${RETURN_VECTOR * 8 + 6}], ax`,
    // Vector 0x21: the same way home through a DPL-3 interrupt gate (which clears IF).
    "mov eax, ring0_return",
    `mov [idt + ${(RETURN_VECTOR + 1) * 8}], ax`,
    `mov word [idt + ${(RETURN_VECTOR + 1) * 8 + 2}], ${SEL.code32}`,
    `mov word [idt + ${(RETURN_VECTOR + 1) * 8 + 4}], 0xee00`,
    "shr eax, 16",
    `mov [idt + ${(RETURN_VECTOR + 1) * 8 + 6}], ax`,
    "lidt [idt_descriptor]",
    // Call gates (type 0xC) to the gate targets.
    ...callGate(0x88, "gate_target", 3, 0),
    ...callGate(0x90, "gate_target", 0, 0),
    ...callGate(0x98, "gate_target_params", 3, 2),
    // The LDT: null, flat data (selector 0x0c), a not-present data segment (0x14).
    `mov dword [${hex(LDT_TABLE)}], 0`,
    `mov dword [${hex(LDT_TABLE + 4)}], 0`,
    `mov dword [${hex(LDT_TABLE + 8)}], 0x0000ffff`,
    `mov dword [${hex(LDT_TABLE + 12)}], 0x00cf9200`,
    `mov dword [${hex(LDT_TABLE + 16)}], 0x0000ffff`,
    `mov dword [${hex(LDT_TABLE + 20)}], 0x00cf1200`,
    // The harness's TSS: ring-0 stack for entries from ring 3.
    `mov dword [${hex(TSS1 + 4)}], ${hex(RING0_STACK)}`,
    `mov dword [${hex(TSS1 + 8)}], ${SEL.data32}`,
    // I/O permission bitmap right after the TSS: every port denied but 0x80.
    `mov word [${hex(TSS1 + 102)}], 104`,
    `mov edi, ${hex(TSS1 + 104)}`,
    "mov ecx, 8192 + 1",
    "mov al, 0xff",
    "cld",
    "rep stosb",
    `mov byte [${hex(TSS1 + 104 + 0x10)}], 0xfe`,
    `mov ax, ${SEL.tss1}`,
    "ltr ax",
    // SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP.
    "xor edx, edx",
    "mov ecx, 0x174",
    `mov eax, ${SEL.sysCode}`,
    "wrmsr",
    "mov ecx, 0x175",
    `mov eax, ${hex(SYSENTER_STACK)}`,
    "wrmsr",
    "mov ecx, 0x176",
    "mov eax, sysenter_target",
    "wrmsr",
    // Copy the 16-bit code below 1 MiB.
    "mov esi, section..low.start",
    `mov edi, ${hex(LOW_CODE)}`,
    "mov ecx, low_code_size",
    ".copy:",
    "mov al, [esi]",
    "mov [edi], al",
    "inc esi",
    "inc edi",
    "dec ecx",
    "jnz .copy",
  ];
  for (const c of pm32) out.push(...emitCase(c, 32));
  if (paged.length > 0) {
    out.push("call paging_on");
    for (const c of paged) out.push(...emitCase(c, 32));
    out.push("call paging_off");
  }
  if (pae.length > 0) {
    out.push("call pae_on");
    for (const c of pae) out.push(...emitCase(c, 32));
    out.push("call paging_off");
  }
  for (const c of v86) out.push(...emitV86Entry(c));
  out.push(
    // To the 16-bit world: a 16-bit code segment first, then real mode, then 16-bit protected mode.
    `jmp ${SEL.code16}:low_entry`,
    "back_to_32:",
    `mov ax, ${SEL.data32}`,
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov gs, ax",
    `mov ax, ${SEL.window32}`,
    "mov fs, ax",
    `mov esp, ${hex(WINDOW_BASE + HARNESS_STACK)}`,
    "lidt [idt_descriptor]",
    "mov dx, 0xe9",
    "mov al, 'E'",
    "out dx, al",
    "mov dx, 0xf4",
    "xor eax, eax",
    "out dx, al",
    ".halt:",
    "cli",
    "hlt",
    "jmp .halt",
    ...helpers(32),
    ...pagingHelpers(),
    ...privilegeHelpers(),
    ...stubs("pm32_stub", 32, true),
    "stub_table:",
    ...Array.from({ length: 32 }, (_, v) => `dd pm32_stub${v}`),
    "align 8",
    "gdt:",
    "dq 0",
    descriptor(0, 0xfffff, 0x9a, 0xc), // 0x08 flat code
    descriptor(0, 0xfffff, 0x92, 0xc), // 0x10 flat data
    descriptor(LOW_CODE, 0xffff, 0x9a, 0x0), // 0x18 16-bit code at the low copy
    descriptor(0, 0xffff, 0x92, 0x0), // 0x20 real-mode-like data
    descriptor(WINDOW_BASE, 0xffff, 0x92, 0x0), // 0x28 16-bit data over the window
    descriptor(WINDOW_BASE, 0x3f, 0x92, 0x4), // 0x30 data, 64-byte limit
    descriptor(0, 0xfffff, 0xfa, 0xc), // 0x38 ring-3 flat code
    descriptor(0, 0xfffff, 0xf2, 0xc), // 0x40 ring-3 flat data
    descriptor(TSS1, 104 + 8192, 0x89, 0x0), // 0x48 the harness's TSS and its I/O bitmap
    descriptor(WINDOW_BASE, 0xffff, 0x90, 0x4), // 0x50 read-only data over the window
    descriptor(WINDOW_BASE, 0xfffff, 0x92, 0xc), // 0x58 32-bit data over the window (FS)
    descriptor(0, 0xfffff, 0x9a, 0xc), // 0x60 SYSENTER_CS: ring-0 code
    descriptor(0, 0xfffff, 0x92, 0xc), // 0x68 its stack
    descriptor(0, 0xfffff, 0xfa, 0xc), // 0x70 SYSEXIT: ring-3 code
    descriptor(0, 0xfffff, 0xf2, 0xc), // 0x78 its stack
    descriptor(TSS2, 0x67, 0x89, 0x0), // 0x80 the second task's TSS
    "dq 0", // 0x88 call gate, DPL 3, to gate_target (filled in at start)
    "dq 0", // 0x90 call gate, DPL 0, to gate_target
    "dq 0", // 0x98 call gate, DPL 3, two parameters, to gate_target_params
    descriptor(WINDOW_BASE, 0xfffff, 0x12, 0xc), // 0xa0 data, not present
    descriptor(WINDOW_BASE, 0x000f, 0x96, 0x0), // 0xa8 expand-down data: offsets 0x10-0xffff
    descriptor(LDT_TABLE, 0x17, 0x82, 0x0), // 0xb0 the LDT
    "gdt_end:",
    "gdt_descriptor:",
    "dw gdt_end - gdt - 1",
    "dd gdt",
    "idt_descriptor:",
    "dw 34*8 - 1",
    "dd idt",
    "real_idt_descriptor:",
    "dw 0x3ff",
    "dd 0",
    "align 8",
    "idt: times 34*8 db 0",
    // The 16-bit part: assembled for offset 0 of a segment based at LOW_CODE.
    "section .low vstart=0 follows=.text",
    "BITS 16",
    "low_entry:",
    // Still protected mode with a 16-bit CS: load real-mode-compatible limits, then leave PE.
    `mov ax, ${SEL.data16}`,
    "mov ds, ax",
    "mov es, ax",
    "mov gs, ax",
    "mov ss, ax",
    "mov fs, ax",
    "mov eax, cr0",
    "and al, 0xfe",
    "mov cr0, eax",
    `jmp ${LOW_CODE >> 4}:real_entry`,
    "real_entry:",
    `mov ax, ${WINDOW_BASE >> 4}`,
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov fs, ax",
    "mov gs, ax",
    `mov sp, ${HARNESS_STACK}`,
    `o32 lidt [cs:real_idt_descriptor_low]`,
    // Point the real-mode vectors 0-31 at the stubs.
    "push ds",
    "xor ax, ax",
    "mov ds, ax",
    "xor bx, bx",
    "xor si, si",
    ".ivt:",
    "mov ax, [cs:real_stub_table + si]",
    "mov [bx], ax",
    `mov word [bx + 2], ${LOW_CODE >> 4}`,
    "add bx, 4",
    "add si, 2",
    "cmp si, 64",
    "jb .ivt",
    "pop ds",
  );
  for (const c of real) out.push(...emitCase(c, 16));
  out.push(
    // 16-bit protected mode: fill the 16-bit IDT (interrupt gates, type 6).
    "cli",
    "xor si, si",
    "xor bx, bx",
    "push ds",
    `mov ax, ${(LOW_CODE >> 4) - 0}`,
    "mov ds, ax",
    ".pidt:",
    "mov ax, [cs:pm16_stub_table + si]",
    "mov di, bx",
    "add di, pm16_idt_low",
    "mov [di], ax",
    `mov word [di + 2], ${SEL.code16}`,
    "mov word [di + 4], 0x8600",
    "mov word [di + 6], 0",
    "add bx, 8",
    "add si, 2",
    "cmp si, 64",
    "jb .pidt",
    "pop ds",
    "o32 lidt [cs:pm16_idt_descriptor_low]",
    "mov eax, cr0",
    "or al, 1",
    "mov cr0, eax",
    `jmp ${SEL.code16}:pm16_entry`,
    "pm16_entry:",
    `mov ax, ${SEL.window}`,
    "mov ds, ax",
    "mov es, ax",
    "mov ss, ax",
    "mov fs, ax",
    "mov gs, ax",
    `mov sp, ${HARNESS_STACK}`,
  );
  for (const c of pm16) out.push(...emitCase(c, 16));
  out.push(
    `jmp dword ${SEL.code32}:back_to_32`,
    ...v86.flatMap(emitV86Body),
    ...helpers(16),
    ...stubs("real_stub", 16, false),
    ...stubs("pm16_stub", 16, true),
    "real_stub_table:",
    ...Array.from({ length: 32 }, (_, v) => `dw real_stub${v}`),
    "pm16_stub_table:",
    ...Array.from({ length: 32 }, (_, v) => `dw pm16_stub${v}`),
    "real_idt_descriptor_low:",
    "dw 0x3ff",
    "dd 0",
    "pm16_idt_descriptor_low:",
    "dw 32*8 - 1",
    `dd ${hex(LOW_CODE)} + pm16_idt_low`,
    "align 8",
    "pm16_idt_low: times 32*8 db 0",
    "low_code_end:",
    "low_code_size equ low_code_end",
  );
  return `${out.join("\n")}\n`;
}
