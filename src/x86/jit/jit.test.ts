// The binary translator against the interpreter: the same programs, run with the translator off
// and forced on, must leave the same registers, flags, memory and instruction counts, including
// when they fault, modify their own code, change segments under a translation or run out of
// instruction budget inside a translated loop.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Block, decodeInstruction, Insn } from "../decoder.ts";
import { Fpu } from "../fpu/fpu.ts";
import {
  assemble,
  makeMachine,
  runToHalt,
  startFlat32,
  startReal,
  type TestMachine,
} from "../test-support.ts";
import { type JitMode, successorsOf } from "./jit.ts";
import { LOOP_MISS_LIMIT, LOOP_MISS_WINDOW } from "./translate.ts";

function machine(mode: JitMode, code: Uint8Array, bits: 16 | 32): TestMachine {
  const m = makeMachine({ jit: mode });
  if (bits === 32) startFlat32(m, code);
  else startReal(m, code);
  return m;
}

/** Registers, flags, EIP and instruction count after running to HLT (or `budget`). */
function outcome(m: TestMachine, budget?: number) {
  if (budget === undefined) runToHalt(m.cpu, 50_000_000);
  else m.cpu.run(budget);
  const c = m.cpu;
  return {
    regs: [c.eax, c.ecx, c.edx, c.ebx, c.esp, c.ebp, c.esi, c.edi],
    eflags: c.eflags,
    eip: c.eip,
    count: c.instructionCount,
  };
}

/**
 * Turns paging on with the first 4 MiB identity-mapped, and mapped again at `alsoAt` if given;
 * `notPresent` names a page (of the first 4 MiB) left out.
 */
function mapFirst4MiB(
  m: TestMachine,
  { notPresent = -1, readOnly = -1, alsoAt }: { notPresent?: number; readOnly?: number; alsoAt?: number },
): void {
  const pd = 0x100000;
  const pt = 0x101000;
  m.memory.write32(pd, pt | 3);
  if (alsoAt !== undefined) m.memory.write32(pd + (alsoAt >>> 22) * 4, pt | 3);
  for (let p = 0; p < 1024; p++) {
    m.memory.write32(pt + p * 4, p === notPresent ? 0 : (p << 12) | (p === readOnly ? 1 : 3));
  }
  m.cpu.setCr(3, pd);
  // WP, so that a read-only page is read-only to ring 0 as well.
  m.cpu.setCr(0, m.cpu.cr0 | 0x80010000);
}

/**
 * Runs `code` with the interpreter and with every block translated, the first 4 MiB mapped as
 * `pages` says, until the page fault it runs into stops the CPU (no IDT: the #PF escalates to a
 * triple fault, with EIP at the faulting instruction). Both must stop in the same `state`, count
 * and CR2, and CR2 must be `cr2`.
 */
function sameAtPageFault(
  code: Uint8Array,
  pages: Parameters<typeof mapFirst4MiB>[1],
  cr2: number,
  state: (m: TestMachine) => object,
): void {
  const results = (["off", "force"] as const).map((mode) => {
    const m = machine(mode, code, 32);
    mapFirst4MiB(m, pages);
    m.cpu.run(10_000);
    return { ...state(m), cr2: m.cpu.cr2, count: m.cpu.instructionCount };
  });
  assert.deepEqual(results[1], results[0]);
  assert.equal(results[0]!.cr2, cr2);
}

/**
 * Runs `code` (ESI striding from 0x40000, EDI from 0x200000) in the interpreter and with the
 * translator forced on, over the first 4 MiB mapped with page 0x1f0 read-only (the stride reaches
 * it on turn 866 and the store there faults), and asserts the two end alike: registers, flags,
 * count, CR2 and memory, run to the fault and stopped at seven budgets part-way through turns
 * that missed. Returns the translations' sources.
 */
function missesAsTheInterpreterDoes(code: Uint8Array): string[] {
  const results = (["off", "force"] as const).map((mode) => {
    const m = machine(mode, code, 32);
    const sources: string[] = [];
    if (m.cpu.jit) m.cpu.jit.onTranslation = (_phys, _n, text) => sources.push(text);
    mapFirst4MiB(m, { readOnly: 0x1f0 });
    m.cpu.run(100_000);
    const c = m.cpu;
    return {
      state: {
        regs: [c.eax, c.ecx, c.edx, c.ebx, c.esp, c.ebp, c.esi, c.edi],
        eflags: c.eflags,
        eip: c.eip,
      },
      count: c.instructionCount,
      cr2: c.cr2,
      memory: [m.memory.readBytes(0x40000, 0x200000), m.memory.readBytes(0x200000, 0x1000)],
      sources,
    };
  });
  const [off, on] = results;
  assert.deepEqual({ ...on!, sources: [] }, { ...off!, sources: [] });
  assert.equal(off!.cr2 >>> 12, 0x1f0, "the store into the read-only page faulted");
  for (const budget of [9, 10, 11, 100, 101, 1003, 4444]) {
    const counted = (["off", "force"] as const).map((mode) => {
      const m = machine(mode, code, 32);
      mapFirst4MiB(m, { readOnly: 0x1f0 });
      return outcome(m, budget);
    });
    assert.deepEqual(counted[1], counted[0], `stopped after ${budget} instructions`);
  }
  return on!.sources;
}

/**
 * Runs the 32-bit `source` as missesAsTheInterpreterDoes does and returns its translation's loop
 * case, from the loop's head on.
 */
function loopCaseOf(source: string): string {
  const sources = missesAsTheInterpreterDoes(assemble(source, 32, 0x10000));
  const loop = sources.find((text) => text.includes("const self ="));
  assert.ok(loop, "the loop turns inside one case");
  return loop.slice(loop.indexOf("const self ="));
}

function same(source: string, bits: 16 | 32 = 32, budget?: number, dump?: [number, number]) {
  const code = assemble(source, bits, bits === 32 ? 0x10000 : 0x1000);
  const off = machine("off", code, bits);
  const on = machine("force", code, bits);
  const a = outcome(off, budget);
  const b = outcome(on, budget);
  assert.deepEqual(b, a);
  if (dump) assert.deepEqual(on.memory.readBytes(dump[0], dump[1]), off.memory.readBytes(dump[0], dump[1]));
  return { off, on };
}

describe("binary translator", () => {
  it("computes what the interpreter computes: ALU, flags, conditions, memory, calls", () => {
    const { on } = same(
      `mov ecx, 300
       mov ebx, 0x20000
       xor eax, eax
       xor edx, edx
    l: add eax, ecx
       adc edx, 0
       imul esi, eax, 7
       sub esi, ecx
       sbb edi, edi
       mov [ebx + ecx*4], esi
       movzx ebp, byte [ebx + ecx*4 + 1]
       movsx ebp, word [ebx + ecx*4]
       xchg [ebx], ebp
       cmp ebp, 0x1000
       setl byte [ebx + 4]
       cmovg ebp, eax
       shl ebp, 3
       ror ebp, cl
       sar edx, 1
       rol eax, 0
       neg edx
       not esi
       test esi, 0x80
       jz skip
       inc dword [ebx + 8]
    skip:
       call leaf
       push eax
       pop edi
       dec ecx
       jnz l
       lea esi, [eax + edx*2 + 0x1234]
       bswap esi
       cdq
       hlt
    leaf:
       dec dword [ebx + 12]
       ret`,
      32,
      undefined,
      [0x20000, 0x2000],
    );
    const stats = on.cpu.jit?.stats();
    assert.ok(stats && stats.translations > 0 && stats.inlinedInstructions > 0, JSON.stringify(stats));
  });

  it("reads and writes misaligned and page-crossing operands as the interpreter does", () => {
    // The fast path only takes aligned dwords; every other offset goes through the CPU's checked
    // path, including the ones that straddle the page boundary at 0x21000.
    same(
      `mov ecx, 0x40
       mov ebx, 0x20fe0
       mov eax, 0x11223344
    l: mov [ebx + ecx], eax
       add eax, 0x01010101
       mov edx, [ebx + ecx + 1]
       add [ebx + ecx + 2], edx
       mov word [ebx + ecx + 3], dx
       add esi, [ebx + ecx - 1]
       movzx edi, word [ebx + ecx + 1]
       xor esi, edi
       push esi
       pop ebp
       dec ecx
       jnz l
       hlt`,
      32,
      undefined,
      [0x20f00, 0x200],
    );
  });

  it("computes the flags of shifts and rotates by constants as the interpreter does", () => {
    same(
      `mov ecx, 256
       mov ebx, 0x40000
       mov eax, 0x12345
    l: imul eax, eax, 1103515245
       add eax, 12345
       mov esi, eax
       rol esi, 1
       setc byte [ebx + ecx + 0x1000]
       seto byte [ebx + ecx + 0x1100]
       add edi, esi
       mov esi, eax
       rol esi, 7
       setc byte [ebx + ecx + 0x1200]
       seto byte [ebx + ecx + 0x1300]
       add edi, esi
       mov esi, eax
       rol esi, 31
       setc byte [ebx + ecx + 0x1400]
       seto byte [ebx + ecx + 0x1500]
       add edi, esi
       mov esi, eax
       ror esi, 1
       setc byte [ebx + ecx + 0x1600]
       seto byte [ebx + ecx + 0x1700]
       add edi, esi
       mov esi, eax
       ror esi, 7
       setc byte [ebx + ecx + 0x1800]
       seto byte [ebx + ecx + 0x1900]
       add edi, esi
       mov esi, eax
       ror esi, 31
       setc byte [ebx + ecx + 0x1a00]
       seto byte [ebx + ecx + 0x1b00]
       add edi, esi
       mov esi, eax
       shl esi, 1
       setc byte [ebx + ecx + 0x1c00]
       seto byte [ebx + ecx + 0x1d00]
       add edi, esi
       mov esi, eax
       shl esi, 7
       setc byte [ebx + ecx + 0x1e00]
       seto byte [ebx + ecx + 0x1f00]
       add edi, esi
       mov esi, eax
       shl esi, 31
       setc byte [ebx + ecx + 0x2000]
       seto byte [ebx + ecx + 0x2100]
       add edi, esi
       mov esi, eax
       shr esi, 1
       setc byte [ebx + ecx + 0x2200]
       seto byte [ebx + ecx + 0x2300]
       add edi, esi
       mov esi, eax
       shr esi, 7
       setc byte [ebx + ecx + 0x2400]
       seto byte [ebx + ecx + 0x2500]
       add edi, esi
       mov esi, eax
       shr esi, 31
       setc byte [ebx + ecx + 0x2600]
       seto byte [ebx + ecx + 0x2700]
       add edi, esi
       mov esi, eax
       sar esi, 1
       setc byte [ebx + ecx + 0x2800]
       seto byte [ebx + ecx + 0x2900]
       add edi, esi
       mov esi, eax
       sar esi, 7
       setc byte [ebx + ecx + 0x2a00]
       seto byte [ebx + ecx + 0x2b00]
       add edi, esi
       mov esi, eax
       sar esi, 31
       setc byte [ebx + ecx + 0x2c00]
       seto byte [ebx + ecx + 0x2d00]
       add edi, esi
       mov esi, eax
       imul esi, [ebx + 8]
       seto byte [ebx + ecx + 0x300]
       add edi, esi
       imul esi, esi, -7
       setc byte [ebx + ecx + 0x400]
       add edi, esi
       mov edx, edi
       mul esi
       seto byte [ebx + ecx + 0x500]
       add edi, edx
       add edi, eax
       mov eax, esi
       imul dword [ebx + 4]
       setc byte [ebx + ecx + 0x600]
       add edi, edx
       mov eax, edi
       shl dword [ebx + 4], 3
       setc byte [ebx + ecx + 0x100]
       sar dword [ebx + 8], 2
       sets byte [ebx + ecx + 0x200]
       mov [ebx + 8], eax
       mov [ebx + 4], eax
       dec ecx
       jnz l
       hlt`,
      32,
      undefined,
      [0x40000, 0x4000],
    );
  });

  it("handles 16-bit real-mode code with segment arithmetic", () => {
    same(
      `mov ax, 0x2000
       mov ds, ax
       mov cx, 200
       xor bx, bx
    l: mov [bx], cx
       add word [bx], 3
       mov al, [bx]
       xor ah, al
       inc bx
       inc bx
       loop l
       hlt`,
      16,
      undefined,
      [0x20000, 0x200],
    );
  });

  it("hands the flags it holds to handlers, to flag readers in later blocks and to the exit", () => {
    // PUSHF runs in the interpreter's handler; ADC, SBB, DEC (which keeps CF) and the
    // conditions at block starts read the flags a previous block left; the loop ends on flags
    // set by the last block.
    same(
      `mov ecx, 300
       mov eax, 0x7ffffff0
    l: add eax, ecx
       pushf
       pop edx
       xor ebx, edx
       cmp eax, 0x80000100
       jb below
       adc esi, 7
       jmp join
    below:
       sbb edi, 3
    join:
       dec edx
       adc ebp, 0
       jo over
       rol eax, 3
       jc carry
       inc ebp
    carry:
       dec ecx
       jmp test
    over:
       inc dword [0x40000]
    test:
       test ecx, ecx
       jnz l
       hlt`,
      32,
      undefined,
      [0x40000, 4],
    );
  });

  it("shifts and rotates registers by CL as the interpreter does, a zero count included", () => {
    // Counts 0..36 (masked to 0..31, so 32..36 wrap to 0..4); each result's flags are read by
    // PUSHF, and a zero count must leave the flags of the CMP before it.
    const ops = ["shl", "shr", "sar", "rol", "ror", "sal"];
    const body = ops
      .map(
        (op) => `mov esi, eax
       cmp esi, edx
       ${op} esi, cl
       pushf
       pop ebp
       add edi, ebp
       add edi, esi`,
      )
      .join("\n       ");
    same(
      `mov ecx, 36
       mov eax, 0x9abcdef1
       mov edx, 0x40000000
    l: ${body}
       imul eax, eax, 1103515245
       add eax, 12345
       dec ecx
       jns l
       hlt`,
    );
  });

  it("shifts 8- and 16-bit registers by constants as the interpreter does", () => {
    // Each shift works on a copy (ESI, EDI, EBX, EDX) of the changing EAX/EDX, and PUSHF reads
    // its flags; counts past the operand's width are included.
    const ops = ["shl", "shr", "sar", "sal"];
    const forms = ["si", "di", "bl", "bh", "dh"];
    const counts = [1, 5, 8, 15, 16, 17, 31];
    const body = ops
      .flatMap((op) =>
        counts.map(
          (c, k) => `mov esi, eax
       mov edi, edx
       mov ebx, eax
       mov edx, eax
       ${op} ${forms[k % forms.length]}, ${c}
       pushf
       pop ebp
       add ecx, ebp
       add ecx, esi
       add ecx, edi
       add ecx, ebx
       add ecx, edx
       mov edx, edi`,
        ),
      )
      .join("\n       ");
    same(
      `mov eax, 0x9abcdef1
       mov edx, 0x80008080
       xor ecx, ecx
       mov ebp, 40
    l: push ebp
       ${body}
       pop ebp
       imul eax, eax, 1103515245
       add eax, 12345
       rol edx, 3
       dec ebp
       jnz l
       hlt`,
    );
  });

  it("names static branch targets by literal offsets, with no arithmetic a branch arm must run", () => {
    // V8 optimises a function for the operations that have run; arithmetic in an arm that has not
    // (a loop's exit) would throw the optimised code away the first time it does.
    const source = `mov ecx, 3000
       xor eax, eax
    l: test ecx, 1
       jz even
       add eax, 3
       jmp join
    even:
       call leaf
    join:
       mov [0x20000], eax
       loop l
       jecxz done
    done:
       hlt
    leaf:
       sub eax, 1
       ret`;
    const on = machine("force", assemble(source, 32, 0x10000), 32);
    const sources: string[] = [];
    on.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(on), outcome(machine("off", assemble(source, 32, 0x10000), 32)));
    const targets = sources.join("\n").match(/nx = [^;]*;/g) ?? [];
    assert.ok(targets.length >= 5, "the branches set nx");
    // Only the RET's target is computed: from the return address it pops.
    const computed = targets.filter((t) => /pb|\+/.test(t));
    assert.ok(computed.length >= 1 && computed.every((t) => /- pb\) \| 0;$/.test(t)), computed.join(" "));
    assert.ok(!sources.join("\n").match(/ic \+= \d+; break run/), "a store's exit counts through xi");
  });

  it("drops the flags of INC/DEC and rotates that a later instruction overwrites", () => {
    // ROR, INC and ROL keep the flags they do not set, so they would need the ADD's; XOR
    // overwrites all of them first. The last ROR and INC are read by ADC (CF from the ROR).
    const source = `mov eax, 0x80000001
       mov ecx, 0x7fffffff
       add eax, ecx
       ror eax, 6
       inc ebx
       rol eax, 3
       xor edx, eax
       ror edx, 1
       inc edx
       adc esi, 0
       hlt`;
    const { on } = same(source);
    const sources: string[] = [];
    const again = machine("force", assemble(source, 32, 0x10000), 32);
    again.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(again), outcome(on));
    const text = sources.join("\n");
    assert.equal(text.match(/cpu\.lazyMask &=/g)?.length, 1, "only the live rotate writes its flags");
    // Every mix of pending flags, at every position, against the interpreter.
    same(
      `mov ecx, 500
       mov eax, 0x12345
    l: imul eax, eax, 1103515245
       add eax, ecx
       ror eax, 6
       dec ebx
       rol eax, 3
       or edx, eax
       ror edx, 1
       inc edx
       adc esi, edx
       rol edi, 5
       dec edi
       sbb ebp, eax
       dec ecx
       jnz l
       hlt`,
    );
  });

  it("stops a translated loop exactly at the instruction budget", () => {
    for (const budget of [1, 3, 4, 5, 1001, 99_999]) {
      same(
        `l: add eax, 3
           xor ebx, eax
           dec ecx
           jmp l`,
        32,
        budget,
      );
    }
  });

  it("runs a loop with an if/else and a call on its page inside its translation", () => {
    // Branches between the region's blocks are followed inside the translated function, so the
    // loop does not go back to the dispatcher once per iteration.
    const source = `mov ecx, 3000
       xor eax, eax
    l: test ecx, 1
       jz even
       add eax, 3
       jmp join
    even:
       call leaf
    join:
       dec ecx
       jnz l
       hlt
    leaf:
       sub eax, 1
       ret`;
    const off = machine("off", assemble(source, 32, 0x10000), 32);
    const on = machine("force", assemble(source, 32, 0x10000), 32);
    const sources: string[] = [];
    on.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(on), outcome(off));
    assert.equal(on.cpu.eax, 1500 * 3 - 1500);
    // No block of this loop branches to itself: a case that loops did so through copies of the
    // other blocks.
    assert.ok(
      sources.some((text) => text.includes("const self =")),
      "a translation follows the loop's branches inside one case",
    );
    // At every instruction budget the result is the interpreter's.
    for (const budget of [7, 64, 65, 1000, 4321]) same(source, 32, budget);
  });

  it("looks for the run loop's flag once on the way into a loop that never calls out", () => {
    // Nothing can raise the flag while such a loop turns; a loop that calls out (a slow memory
    // path, a handler) keeps looking at every branch, as the CALL-rewrite test shows.
    const source = `mov ecx, 5000
       mov eax, 0x12345678
    l: imul eax, eax, 1103515245
       test eax, 0x10000
       jz skip
       inc ebx
    skip:
       dec ecx
       jnz l
       hlt`;
    const off = machine("off", assemble(source, 32, 0x10000), 32);
    const on = machine("force", assemble(source, 32, 0x10000), 32);
    const sources: string[] = [];
    on.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(on), outcome(off));
    const loop = sources
      .map((text) => text.slice(text.indexOf("const self =")))
      .find((text) => text.startsWith("const self ="));
    assert.ok(loop, "the loop turns inside one case");
    const body = loop.slice(loop.indexOf("for (;;) {"), loop.indexOf("\ndefault:"));
    assert.match(loop.slice(0, loop.indexOf("for (;;) {")), /cpu\.attention/);
    assert.doesNotMatch(body, /cpu\.attention/);
    for (const budget of [3, 5, 6, 77, 1000, 12_345]) same(source, 32, budget);
  });

  it("lets the machine look at the clock after translating, and only then", () => {
    // A slice that translates and compiles code may outlast a timer period; the machine's hook
    // reads the clock there and ends the slice when a timer fell due.
    const code = assemble(
      `mov ecx, 5000
    l: add eax, 3
       dec ecx
       jnz l
       hlt`,
      32,
      0x10000,
    );
    for (const mode of ["off", "on", "force"] as const) {
      const calls: number[] = [];
      const m = makeMachine({ jit: mode, afterHostWork: () => calls.push(m.cpu.instructionCount) });
      startFlat32(m, code);
      runToHalt(m.cpu, 1_000_000);
      assert.equal(m.cpu.eax, 15000, mode);
      if (mode === "off") assert.deepEqual(calls, []);
      else assert.ok(calls.length > 0 && calls.length < 10, `${mode}: ${calls.length} calls`);
    }
    // The hook can end the slice: `run` returns after the first block (MOV, ADD, DEC, JNZ), the
    // one translated first.
    const m = makeMachine({ jit: "force", afterHostWork: () => m.cpu.endSlice() });
    startFlat32(m, code);
    assert.equal(m.cpu.run(100_000), 4);
  });

  it("goes from one page's translation straight into another's, as the interpreter would", () => {
    // Each turn leaves the first page's translation for the second's and comes back, through the
    // successor links rather than the dispatcher; the second page stores into the first's code
    // once, which must end the chain there.
    const source = `mov ecx, 3000
       xor eax, eax
    l: add eax, ecx
       mov ebx, 7
    patched:
       jmp other
       times 4500 - ($ - $$) db 0x90
    other:
       sub eax, ebx
       cmp ecx, 1000
       jne skip
       mov dword [patched - 4], 11
    skip:
       dec ecx
       jnz l
       hlt`;
    for (const budget of [undefined, 7, 64, 1000, 4321, 9999]) same(source, 32, budget);
  });

  it("counts the runs of a block translated alone when translated code goes straight into it", () => {
    // The first loop gets page 0x10000 translated. The second loop's block on that page then
    // turns hot later, is translated alone, and is reached from the other page's translation each
    // turn; it must still come round to its page's next translation.
    const code = assemble(
      `mov ecx, 20000
    x: add eax, 1
       dec ecx
       jnz x
       mov ecx, 40000
       jmp z
       times 64 - ($ - $$) db 0x90
    y: add ebx, 1
       dec ecx
       jnz z
       hlt
       times 5000 - ($ - $$) db 0x90
    z: add edx, 2
       jmp y`,
      32,
      0x10000,
    );
    const m = machine("on", code, 32);
    const rootedAtY: string[] = [];
    m.cpu.jit!.onTranslation = (phys, _n, text) => {
      if (phys === 0x10040) rootedAtY.push(text.includes("e0 & -4096") ? "page" : "alone");
    };
    runToHalt(m.cpu, 50_000_000);
    assert.equal(m.cpu.ebx, 40000);
    assert.deepEqual(rootedAtY, ["alone", "page"]);
  });

  it("keeps every block's heat goal a small integer, however hot it gets", () => {
    // The dispatcher compares each block's heat with its goal. One goal that is not a small
    // integer (Infinity for a block done with, or a product of doubles) makes V8 box them all.
    const m = machine(
      "on",
      assemble("mov ecx, 100000\nl: add eax, ecx\ndec ecx\njnz l\nhlt", 32, 0x10000),
      32,
    );
    runToHalt(m.cpu, 50_000_000);
    const blocks = [...(m.cpu as unknown as { blockIndex: Map<number, Block> }).blockIndex.values()];
    assert.ok(blocks.some((b) => b.inRegion));
    for (const b of blocks)
      assert.ok(Number.isInteger(b.heatGoal) && b.heatGoal < 2 ** 31, String(b.heatGoal));
  });

  it("translates a long block after fewer runs than a short one", () => {
    // 1500 turns: short of the 8192 runs that make a short block hot, past the 1024 that make a
    // 64-instruction block hot (no block runs much more than 8192 x 8 instructions interpreted).
    const loop = (body: string) => assemble(`mov ecx, 1500\nl: ${body}\ndec ecx\njnz l\nhlt`, 32, 0x10000);
    const translations = (body: string) => {
      const m = machine("on", loop(body), 32);
      runToHalt(m.cpu, 50_000_000);
      return m.cpu.jit!.stats().translations;
    };
    assert.equal(translations("add eax, ecx"), 0);
    assert.ok(translations(Array(62).fill("add eax, ecx").join("\n")) > 0);
  });

  it("sees its own code change at once (self-modifying code)", () => {
    // The loop patches the immediate of an instruction later in its own block.
    const { on } = same(
      `mov ecx, 10
    l: mov dword [patch + 1], ecx
    patch:
       mov eax, 0
       add ebx, eax
       loop l
       hlt`,
    );
    assert.equal(on.cpu.ebx, 55);
    assert.ok((on.cpu.jit?.stats().invalidations ?? 0) > 0);
  });

  it("runs x87 register arithmetic as the interpreter does, on the unit's fast path and off it", () => {
    // FSAVE stores the whole unit (control, status and tag words, FIP/FCS/FOP, the registers)
    // and initialises it again, so each part starts afresh. The fast path takes normal operands;
    // a zero, an empty register (a masked stack fault) and an inexact quotient under another
    // rounding control go other ways or set other flags.
    const source = `finit
       fld1
       fld1
       fadd st0, st1
       fmul st0, st0
       fsub st1, st0
       fsubr st0, st1
       fdiv st1, st0
       fdivr st0, st1
       fld1
       fsubp st1, st0
       fld1
       fdivp st1, st0
       fsave [0x20000]
       fld1
       fldz
       fadd st1, st0
       fmul st0, st7
       fsave [0x20080]
       fld1
       fld1
       mov ecx, 50
    l: fadd st0, st1
       fmul st0, st1
       fld1
       faddp st1, st0
       dec ecx
       jnz l
       mov word [0x20200], 0x0c7f
       fldcw [0x20200]
       fldpi
       fdiv st0, st1
       fsave [0x20100]
       hlt`;
    const code = assemble(source, 32, 0x10000);
    const [off, on] = (["off", "force"] as const).map((jit) => {
      const m = makeMachine({ jit, fpu: new Fpu() });
      startFlat32(m, code);
      return m;
    }) as [TestMachine, TestMachine];
    const sources: string[] = [];
    on.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(on), outcome(off));
    assert.deepEqual(on.memory.readBytes(0x20000, 0x200), off.memory.readBytes(0x20000, 0x200));
    assert.ok(sources.some((text) => text.includes("X87(")));
  });

  it("sees a CALL's push rewrite the function it calls, inside a loop's copied path", () => {
    // On the turn with ECX = 100 the stack points into the leaf, so the return address lands on
    // its MOV's immediate; on every other turn the stack is elsewhere. The loop's copy of the
    // leaf was translated with the old immediate.
    const { on } = same(
      `mov ecx, 300
       mov ebp, esp
    l: mov edx, ecx
       sub edx, 100
       neg edx
       sbb edx, edx
       mov esp, ebp
       and esp, edx
       mov eax, edx
       not eax
       and eax, leaf + 5
       or esp, eax
       call leaf
       dec ecx
       jnz l
       mov esp, ebp
       hlt
    leaf:
       mov eax, 0x11111111
       add ebx, eax
       ret`,
    );
    // The first 200 turns add the old immediate, the last 100 the return address (0x10024).
    assert.equal(on.cpu.ebx, (200 * 0x11111111 + 100 * 0x10024) | 0);
  });

  it("leaves a loop that calls nothing at the access that missed, for the interpreter", () => {
    // The loop's accesses take the TLB fast path or leave the translation with EIP at the
    // instruction that missed, for the interpreter to run the rest of the block on the slow path
    // before the translation takes over again. Here they miss in every way: new pages
    // under paging (a stride of 0x7fe crosses a page every other turn), misaligned and
    // page-straddling operands, a read-modify-write, a push and a pop, a read-only page (the
    // store faults there, and the run stops with EIP at it), and in the block that the loop's
    // case copies in behind its head.
    const source = `mov ecx, 1000
       mov esi, 0x40000
       mov edi, 0x200000
       mov eax, 0x11223344
    l: mov edx, [esi]
       add edx, eax
       add [edi], edx
       mov [esi + 2], dx
       push edx
       pop ebx
       test ecx, 3
       jnz skip
       add ebp, [esi + 0x401]
       mov [edi + 0x800], ebp
    skip:
       add esi, 0x7fe
       add edi, 4
       dec ecx
       jnz l
       hlt`;
    const head = loopCaseOf(source);
    const body = head.slice(0, head.indexOf("\ncase "));
    assert.doesNotMatch(body, /\b(R[124]|W[124]|CW)\(/, "the loop form calls no slow path");
    assert.match(body, /ms = \d+; break; \}/);
  });

  it("leaves straight-line code that calls nothing at the access that missed, for the interpreter", () => {
    // The function at 0x10800 is no loop and too long to be copied into the caller's loop, so it
    // is a case of its own, in the same form as loop bodies: its accesses take the TLB fast path
    // or leave the translation at the instruction that missed. They miss as the loop test's do:
    // new pages every other call, misaligned and page-straddling operands, a read-modify-write,
    // a push and a pop, and a store into a read-only page, which faults (run stops there).
    const source = `mov ecx, 1000
       mov esi, 0x40000
       mov edi, 0x200000
       mov eax, 0x11223344
    l: call f
       dec ecx
       jnz l
       hlt
       times 0x800 - ($ - $$) db 0
    f: mov edx, [esi]
       add edx, eax
       add [edi], edx
       mov [esi + 2], dx
       push edx
       pop ebx
       add ebp, [esi + 0x401]
       mov [edi + 0x800], ebp
       movzx eax, byte [esi + 5]
       lea eax, [eax + ebx + 0x11223344]
       xor ebx, eax
       add ebx, ebp
       sub ebp, edx
       or edx, 1
       and ebx, 0x7fffffff
       add esi, 0x7fe
       add edi, 4
       ret`;
    const sources = missesAsTheInterpreterDoes(assemble(source, 32, 0x10000));
    const page = sources.find((text) => text.includes("case 2048: {"));
    assert.ok(page, "the function is a case of the page's translation");
    const tail = page.slice(page.indexOf("case 2048: {"));
    const body = tail.slice(0, tail.search(/\ncase |\ndefault: /));
    assert.doesNotMatch(body, /const self =/, "the function is no loop");
    assert.doesNotMatch(body, /\b(R[124]|W[124]|CW)\(/, "its case calls no slow path");
    assert.match(body, /ms = \d+; break; \}/);
  });

  it("checks a page group's accesses once, and leaves at its first access when any would miss", () => {
    // The dword accesses through ESI at displacements a multiple of four apart form a page group:
    // the first checks the TLB and that the whole span lies on its page, the others address RAM
    // from its index. The stride of 0x7fe makes every other turn misaligned and, now and then,
    // the span straddle a page (into the read-only page, where a later access of the group would
    // fault): the translation must leave at the group's first access and the interpreter run
    // the block, faulting where it faults. Adding a constant to ESI leaves the group open, its
    // later accesses counted from ESI's first value; any other write to ESI ends the group, and
    // the access after it starts another. Pushes and pops form a group through ESP. Bytes and
    // words join a group anywhere in its span.
    // ESI starts above the page tables (a store there would remap pages), where turn 476 puts
    // the group's first access at 0x1efff8 and its store through ESI + 0x10 into the read-only
    // page at 0x1f0000.
    const source = `mov ecx, 1000
       mov esi, 0x1023a8
       mov edi, 0x200000
       mov eax, 0x11223344
    l: mov edx, [esi + 8]
       add edx, eax
       add [esi + 4], edx
       mov ebx, [esi + 0x40]
       xor ebx, edx
       mov [esi + 0x10], ebx
       movzx ebp, byte [esi + 0x21]
       mov [esi + 0x23], bp
       add byte [esi + 0x30], 1
       mov [edi], ebx
       lea esi, [esi + 0x7fe]
       mov ebp, [esi - 0x7fe + 0x14]
       mov [esi - 0x7fe + 0x18], ebp
       xor esi, ecx
       xor esi, ecx
       mov [esi - 0x7fe + 0x1c], ebx
       mov edx, [esi - 0x7fe + 0x20]
       push eax
       push edx
       pop edx
       pop eax
       add edi, 4
       dec ecx
       jnz l
       hlt`;
    const body = loopCaseOf(source);
    assert.equal(
      body.match(/ram32\[t\d+(?: \+ -?\d+)?\]/g)?.length,
      10,
      "ten accesses address RAM from a group's index",
    );
    assert.equal(
      body.match(/ram\[\(t\d+ << 2\) \+ \d+(?: \+ 1)?\]/g)?.length,
      5,
      "a byte read, a word write and a byte's read and write address RAM from a group's index",
    );
    assert.equal(body.match(/tlb\[/g)?.length, 4, "three groups and the store through EDI look at the TLB");
  });

  it("opens page groups at bytes too, with the group's dwords sharing one alignment", () => {
    // The byte read opens a group through ESI (INC keeps it open); the word at distance 2 and
    // the dwords at distances 8 and 4 join it, and the first access checks their alignment; the dword at
    // distance 5 is aligned otherwise and has an access of its own. Every other turn the stride
    // leaves the dwords misaligned, and the loop leaves at the byte read.
    const source = `mov ecx, 1000
       mov esi, 0x102000
       mov edi, 0x200000
    l: movzx eax, byte [esi]
       inc esi
       mov dx, [esi + 1]
       add [esi + 7], eax
       mov ebx, [esi + 3]
       mov ebp, [esi + 4]
       add ebx, ebp
       mov [edi], ebx
       add esi, 0x7fd
       add edi, 4
       dec ecx
       jnz l
       hlt`;
    const body = loopCaseOf(source);
    assert.match(body, /ram\[t\d+ \+ 2\] \| \(ram\[t\d+ \+ 2 \+ 1\] << 8\)/, "the word joins");
    assert.match(body, /ram32\[\(t\d+ \+ 8\) >> 2\]/, "the dword at distance 8 joins");
    assert.match(body, /ram32\[\(t\d+ \+ 4\) >> 2\]/, "the dword at distance 4 joins");
    assert.match(
      body,
      /\(l & 3\) === 0 && \(\(l \^ \(l \+ 11\)\) & -4096\) === 0/,
      "checked aligned, on one page",
    );
  });

  it("runs random loops of memory instructions as the interpreter does, misses and faults included", () => {
    // Seeded loop bodies built from inline memory instructions whose pointers stride across pages
    // (misaligned and page-straddling too), over paging with a read-only and a missing page in
    // the way. Every run must end where the interpreter's does: registers, flags, count, CR2 and
    // memory, whether the loop finishes, faults or runs out of budget.
    let seed = 0x2545f491;
    const random = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const pick = <T>(items: readonly T[]) => items[random(items.length)]!;
    const displacements = [0, 1, 2, 3, 0x7fe, 0xffd, 0xfff];
    const strides = [4, 2, 0x7fe, 0x801, 0x1001];
    const templates = [
      () => `mov eax, [esi + ${pick(displacements)}]`,
      () => `mov [edi + ${pick(displacements)}], eax`,
      () => `add [ebx + ${pick(displacements)}], edx`,
      () => `mov dx, [esi + ${pick(displacements)}]`,
      () => `mov byte [edi + ${pick(displacements)}], al`,
      () => `movzx eax, word [ebx + ${pick(displacements)}]`,
      () => `adc eax, [ebx + ${pick(displacements)}]`,
      () => `inc dword [esi + ${pick(displacements)}]`,
      () => `shl dword [edi + ${pick(displacements)}], 1`,
      () => `cmp eax, [esi + ${pick(displacements)}]`,
      () => `xchg [ebx + ${pick(displacements)}], edx`,
      () => "push eax\n pop edx",
      () => "lodsd",
      () => "stosb",
      () => `add esi, ${pick(strides)}`,
      () => `add edi, ${pick(strides)}`,
      () => `sub ebx, ${pick(strides)}`,
      () => "xor edx, eax",
    ];
    for (let round = 0; round < 40; round++) {
      const body = Array.from({ length: 3 + random(8) }, () => pick(templates)()).join("\n ");
      const source = `mov ecx, ${50 + random(300)}
         mov esi, ${0x100000 + random(0x1000)}
         mov edi, ${0x200000 + random(0x1000)}
         mov ebx, ${0x300000 + random(0x1000)}
         mov esp, 0x90000
      l: ${body}
         dec ecx
         jnz l
         hlt`;
      const code = assemble(source, 32, 0x10000);
      const pages = { readOnly: 0x100 + random(0x300), notPresent: 0x100 + random(0x300) };
      for (const budget of [100_000, 1 + random(3000)]) {
        const [off, on] = (["off", "force"] as const).map((mode) => {
          const m = machine(mode, code, 32);
          mapFirst4MiB(m, pages);
          const state = outcome(m, budget);
          return {
            ...state,
            cr2: m.cpu.cr2,
            memory: [0x100000, 0x200000, 0x300000].map((at) => m.memory.readBytes(at, 0x110000)),
          };
        });
        assert.deepEqual(on, off, `${source}\n(pages ${JSON.stringify(pages)}, budget ${budget})`);
      }
    }
  });

  it("translates a loop again in the ordinary form when its accesses keep missing", () => {
    // Every dword read here straddles a page, so it misses every turn: after LOOP_MISS_LIMIT
    // misses the page is translated again with the block in the ordinary form, which calls the
    // slow path in place. The result stays the interpreter's throughout.
    const source = `mov ecx, 3000
       mov esi, 0x30ffe
    l: mov eax, [esi]
       add ebx, eax
       dec ecx
       jnz l
       hlt`;
    const off = machine("off", assemble(source, 32, 0x10000), 32);
    const on = machine("force", assemble(source, 32, 0x10000), 32);
    for (const m of [off, on]) {
      m.memory.write32(0x30ffc, 0x11223344);
      m.memory.write32(0x31000, 0x55667788);
    }
    const sources: string[] = [];
    on.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(on), outcome(off));
    assert.equal(on.cpu.jit!.stats().loopFormDrops, 1);
    // The loop's own case, from its head to the next case (the entry block before it keeps its
    // loop form, as its access never missed).
    const loops = sources
      .filter((text) => text.includes("const self ="))
      .map((text) => text.slice(text.indexOf("const self ="), text.indexOf("default: ")));
    assert.ok(loops.length >= 2, "translated again");
    assert.match(loops[0]!, /ms = \d+;/, "first in the loop form");
    assert.doesNotMatch(loops.at(-1)!, /ms = \d+;/, "then in the ordinary form");
    assert.match(loops.at(-1)!, /R4\(cpu, l\)/);
  });

  it("keeps the loop form of a block whose misses come far apart", () => {
    // The outer block's read straddles a page and misses every turn, but each turn also counts
    // down 9000 turns of an inner loop: LOOP_MISS_LIMIT misses take far more than
    // LOOP_MISS_WINDOW instructions, and the block keeps its loop form.
    const source = `mov ecx, ${LOOP_MISS_LIMIT + 100}
       mov esi, 0x30ffe
    l: mov eax, [esi]
       add ebx, eax
       mov edx, 9000
    inner:
       dec edx
       jnz inner
       dec ecx
       jnz l
       hlt`;
    assert.ok((LOOP_MISS_LIMIT + 100) * 18000 > LOOP_MISS_WINDOW);
    const off = machine("off", assemble(source, 32, 0x10000), 32);
    const on = machine("force", assemble(source, 32, 0x10000), 32);
    for (const m of [off, on]) {
      m.memory.write32(0x30ffc, 0x11223344);
      m.memory.write32(0x31000, 0x55667788);
    }
    assert.deepEqual(outcome(on), outcome(off));
    assert.equal(on.cpu.jit!.stats().loopFormDrops, 0);
  });

  it("translates a block again without page groups when its group's span keeps straddling pages", () => {
    // The function's pushes and pops form one page group through ESP, and its frame straddles
    // the page at 0x20000 on every call: the group's check fails each time. After
    // LOOP_MISS_LIMIT misses the function is translated again without page groups, in the loop
    // form still (no loop form was dropped), and no longer misses.
    const source = `mov ecx, 3000
       mov esp, 0x20008
    l: call f
       dec ecx
       jnz l
       hlt
       times 0x800 - ($ - $$) db 0
    f: push ebp
       push ebx
       push esi
       mov eax, [esp + 12]
       add edx, eax
       pop esi
       pop ebx
       pop ebp
       ret`;
    const code = assemble(source, 32, 0x10000);
    const off = machine("off", code, 32);
    const on = machine("force", code, 32);
    const sources: string[] = [];
    on.cpu.jit!.onTranslation = (_phys, _n, text) => sources.push(text);
    assert.deepEqual(outcome(on), outcome(off));
    assert.equal(on.cpu.jit!.stats().loopFormDrops, 0);
    const functions = sources
      .filter((text) => text.includes("case 2048: {"))
      .map((text) => text.slice(text.indexOf("case 2048: {")));
    assert.ok(functions.length >= 2, "translated again");
    assert.match(functions[0]!, /& -4096\) === 0/, "first with a page group");
    assert.doesNotMatch(functions.at(-1)!, /& -4096\) === 0/, "then without");
    assert.match(functions.at(-1)!, /ms = \d+;/, "in the loop form");
    assert.ok(on.cpu.jit!.stats().translations < 10);
  });

  it("sees a store into its own code after many turns of stores that took the fast path", () => {
    // The first 15 turns store to a data page; the 16th redirects the second store of the block
    // to the loop's code, after the first store's check found nothing to do.
    const { on } = same(
      `mov ecx, 20
       mov edi, 0x20000
    l: cmp ecx, 5
       jne store
       mov edi, patch + 1
    store:
       mov dword [0x21000], ecx
       mov dword [edi], ecx
    patch:
       mov eax, 0
       add ebx, eax
       dec ecx
       jnz l
       hlt`,
    );
    assert.equal(on.cpu.ebx, 5 + 4 + 3 + 2 + 1);
  });

  it("leaves the state of the faulting instruction on a page fault inside a translation", () => {
    // The loop's store runs into page 0x30000, left unmapped, part-way through the block.
    const code = assemble(
      `mov ebx, 0x2f000
       mov ecx, 0
    l: add eax, 5
       mov [ebx], eax
       add ebx, 0x100
       inc ecx
       jmp l`,
      32,
      0x10000,
    );
    sameAtPageFault(code, { notPresent: 0x30 }, 0x30000, ({ cpu: c }) => ({
      regs: [c.eax, c.ebx, c.ecx],
      eflags: c.eflags,
    }));
  });

  it("stores back to the address it just read as the interpreter does", () => {
    // A store of the same size to the same address as the read before it reuses the read's TLB
    // lookup. Each pair below must still write where the interpreter writes: a base register
    // changed in between, sizes that differ, a misaligned pair (the read takes the slow path), a
    // store into the loop's own code.
    same(
      `mov ecx, 2000
       mov esi, 0x20000
    l: mov eax, [esi]
       add eax, ecx
       mov [esi], eax
       movzx ebx, byte [esi + 8]
       inc ebx
       mov [esi + 8], bl
       mov edx, [esi + 12]
       xor edx, 0x5555
       mov [esi + 12], dx
       mov eax, [esi]
       add esi, 4
       mov [esi], eax
       mov eax, [esi + 1]
       not eax
       mov [esi + 1], eax
       mov eax, [imm + 2]
       inc eax
       mov [imm + 2], eax
    imm:
       add ebp, 0x1000
       add esi, 12
       dec ecx
       jnz l
       hlt`,
      32,
      undefined,
      [0x20000, 0x10000],
    );
    // The read is allowed and the store is not: the store faults at its own EIP, with the
    // registers and memory as the interpreter leaves them.
    const code = assemble(
      `mov ebx, 0x2ff00
       xor ecx, ecx
    l: mov eax, [ebx]
       add eax, ecx
       mov [ebx], eax
       add ebx, 0x40
       inc ecx
       jmp l`,
      32,
      0x10000,
    );
    sameAtPageFault(code, { readOnly: 0x30 }, 0x30000, ({ cpu: c, memory }) => ({
      regs: [c.eax, c.ebx, c.ecx],
      eflags: c.eflags,
      data: memory.readBytes(0x2ff00, 0x200),
    }));
    // An instruction between the read and the store that maps the address to another frame: the
    // store goes to the new frame.
    const remap = assemble(
      `mov esi, 0x20000
       mov ecx, 0x102000
       mov dword [esi], 5
       mov eax, [esi]
       mov cr3, ecx
       add eax, 1
       mov [esi], eax
       hlt`,
      32,
      0x10000,
    );
    for (const mode of ["off", "force"] as const) {
      const m = machine(mode, remap, 32);
      mapFirst4MiB(m, {});
      // A second page directory, the same but for page 0x20, which goes to frame 0x40.
      m.memory.write32(0x102000, 0x103000 | 3);
      for (let p = 0; p < 1024; p++) m.memory.write32(0x103000 + p * 4, ((p === 0x20 ? 0x40 : p) << 12) | 3);
      runToHalt(m.cpu, 1000);
      assert.deepEqual([m.memory.read32(0x20000), m.memory.read32(0x40000)], [5, 6], mode);
    }
  });

  it("runs code above 2 GiB as the interpreter does: branches, calls, returns, indirect jumps", () => {
    // Linux runs at 0xC0000000 and up. Translated code keeps EIPs as signed int32 there, and only
    // what it hands the CPU is unsigned: a slip either way sends control to the wrong address.
    const high = 0xc0000000;
    const code = assemble(
      `mov eax, hi + ${high}
       jmp eax
    hi:
       mov ecx, 3000
       xor ebx, ebx
       mov edx, join + ${high}
    l: test ecx, 1
       jz even
       add ebx, 3
       jmp edx
    even:
       call leaf
    join:
       lahf
       mov eax, ecx
       dec ecx
       jnz l
       hlt
    leaf:
       sub ebx, 1
       ret`,
      32,
      0x10000,
    );
    const results = (["off", "force"] as const).map((mode) => {
      const m = machine(mode, code, 32);
      mapFirst4MiB(m, { alsoAt: high });
      // EIP is kept signed, as V8 keeps a small integer, and read unsigned.
      return { ...outcome(m), ip: m.cpu.ip, instrStart: m.cpu.instrStart };
    });
    assert.deepEqual(results[1], results[0]);
    assert.equal(results[0]!.regs[3], 1500 * 3 - 1500);
    assert.ok(results[0]!.eip > high, "the program halts in the high half");
    assert.equal(results[0]!.ip, results[0]!.eip | 0);
    assert.ok(results[0]!.instrStart < 0 && results[0]!.instrStart >= (high | 0));
  });

  it("runs MOVS, STOS, LODS and SCAS without REP as the interpreter does, in both directions", () => {
    // FS is based at 0x800: the FS-prefixed forms read elsewhere than DS or ES would. LAHF reads
    // the flags SCAS leaves.
    const source = `mov edi, 0x20000
       mov ecx, 0x800
       mov eax, 0x12345678
    fill:
       mov [edi], eax
       imul eax, eax, 1103515245
       add eax, 12345
       add edi, 4
       dec ecx
       jnz fill
       mov esi, 0x20000
       mov edi, 0x21000
       mov ecx, 40
    up:
       lodsb
       add ebx, eax
       lodsd
       xor ebx, eax
       stosw
       movsd
       movsb
       scasb
       lahf
       add ebx, eax
       jne skip
       inc edx
    skip:
       scasd
       adc ebx, 0
       dec ecx
       jnz up
       std
       mov ecx, 30
    down:
       lodsw
       movsw
       stosb
       scasw
       sbb ebx, eax
       fs movsd
       fs lodsb
       cmp al, 0x80
       adc edx, ebx
       scasd
       lahf
       xor edx, eax
       dec ecx
       jnz down
       cld
       hlt`;
    const code = assemble(source, 32, 0x10000);
    const [off, on] = (["off", "force"] as const).map((mode) => {
      const m = machine(mode, code, 32);
      m.cpu.setSegment(4, { selector: 0x18, base: 0x800, limit: 0xffffffff, attributes: 0xc093 });
      return m;
    }) as [TestMachine, TestMachine];
    assert.deepEqual(outcome(on), outcome(off));
    assert.deepEqual(on.memory.readBytes(0x20000, 0x2000), off.memory.readBytes(0x20000, 0x2000));
  });

  it("divides EDX:EAX by a 32-bit operand as the interpreter does, and raises #DE where it does", () => {
    same(
      `mov ecx, 300
       mov esi, 0x9e3779b9
    l: imul esi, esi, 1103515245
       add esi, 12345
       mov ebx, esi
       or ebx, 0x1000
       mov edx, ecx
       mov eax, esi
       xor eax, 0x5a5a5a5a
       div ebx
       add edi, eax
       xor ebp, edx
       mov [0x20000], ebx
       mov edx, 0
       mov eax, esi
       div dword [0x20000]
       add edi, eax
       add ebp, edx
       mov eax, esi
       xor edx, edx
       mov ebx, ecx
       div ebx
       add edi, eax
       xor ebp, edx
       dec ecx
       jnz l
       hlt`,
    );
    // No IDT: #DE escalates to a triple fault, which stops the CPU with EIP at the DIV.
    for (const source of [
      "mov edx, 5\nmov eax, 1\nmov ebx, 5\ninc ecx\ndiv ebx\nhlt",
      "mov edx, 0\nmov eax, 1\nmov dword [0x20000], 0\ninc ecx\ndiv dword [0x20000]\nhlt",
    ]) {
      const code = assemble(source, 32, 0x10000);
      const results = (["off", "force"] as const).map((mode) => outcome(machine(mode, code, 32), 1000));
      assert.deepEqual(results[1], results[0]);
      assert.equal(results[0]!.regs[1], 1);
    }
  });

  it("raises #UD for C6/C7 with ModRM.reg other than 0, as the interpreter does", () => {
    // No IDT: #UD escalates to a triple fault, which stops the CPU with EIP at the instruction.
    for (const bytes of [
      "0xc7, 0x08, 1, 2, 3, 4",
      "0xc6, 0x10, 7",
      "0xc7, 0xf8, 0, 0, 0, 0",
      "0xc6, 0xf8, 1",
    ]) {
      const { off } = same(`mov eax, 0x20000\nmov ecx, 3\nl: db ${bytes}\ndec ecx\njnz l\nhlt`, 32, 1000);
      assert.equal(off.cpu.eip, 0x1000a);
      assert.deepEqual(off.shutdowns, ["triple fault"]);
    }
  });

  it("leaves ESI and EDI as they were when a single string instruction faults", () => {
    // MOVSD's store and then LODSD's load run into page 0x30000, left unmapped.
    for (const source of [
      `mov esi, 0x2f000
       mov edi, 0x2ff00
    l: movsd
       inc ecx
       jmp l`,
      `mov esi, 0x2ff00
       mov edi, 0x2e000
    l: lodsd
       stosd
       inc ecx
       jmp l`,
    ]) {
      const code = assemble(source, 32, 0x10000);
      sameAtPageFault(code, { notPresent: 0x30 }, 0x30000, ({ cpu: c }) => ({
        regs: [c.eax, c.ecx, c.esi, c.edi],
        eip: c.eip,
      }));
    }
  });

  it("translates again when a segment stops being flat under a translation", () => {
    same(
      `mov ecx, 5
    l: mov eax, [0x20000]
       add [0x20004], eax
       dec ecx
       jnz l
       mov ax, 0x10
       hlt`,
    );
    const code = assemble(
      `l: mov eax, [0x100]
       add [0x104], eax
       dec ecx
       jnz l
       hlt`,
      32,
      0x10000,
    );
    const results = (["off", "force"] as const).map((mode) => {
      const m = machine(mode, code, 32);
      m.memory.write32(0x100, 7);
      m.memory.write32(0x20100, 9);
      m.cpu.ecx = 3;
      m.cpu.run(6); // one and a half turns with a flat DS
      m.cpu.setSegment(3, { selector: 0x10, base: 0x20000, limit: 0xffff, attributes: 0x4093 });
      runToHalt(m.cpu);
      return {
        values: [m.memory.read32(0x104), m.memory.read32(0x20104), m.cpu.instructionCount],
        misses: m.cpu.jit?.stats().assumptionMisses ?? 0,
      };
    });
    assert.deepEqual(results[1]!.values, results[0]!.values);
    // The translation made with a flat DS refused to run and was made again.
    assert.ok(results[1]!.misses > 0);
  });

  it("keeps translations across a map change elsewhere and drops them when their page is remapped", () => {
    const m = machine("force", assemble("l: inc eax\njmp l", 32, 0x10000), 32);
    m.cpu.run(10_000);
    const before = m.cpu.jit!.stats();
    assert.ok(before.cachedBlocks > 0);
    // A PCI BAR appearing and moving far from the code (as during PCI probing).
    const bar = m.memory.addMmio("bar", 0x7f0000, 0x2000, { mmioRead: () => 0, mmioWrite: () => {} });
    m.memory.removeRegion(bar);
    m.cpu.run(10_000);
    const after = m.cpu.jit!.stats();
    assert.equal(after.invalidations, before.invalidations);
    assert.equal(after.cachedBlocks, before.cachedBlocks);
    // A ROM laid over the code's page: the same loop shape, counting in EBX instead.
    const eax = m.cpu.eax;
    m.memory.addRom("rom", 0x10000, assemble("l: inc ebx\njmp l", 32, 0x10000));
    m.cpu.run(10_000);
    assert.equal(m.cpu.eax, eax);
    assert.ok(m.cpu.ebx >= 4999, `ebx ${m.cpu.ebx}`);
    assert.ok(m.cpu.jit!.stats().invalidations > after.invalidations);
  });

  it("reads the new RAM, not the old, when the main RAM is replaced under its translations", () => {
    // In ROM above the RAM, so that the code and its translations outlive the RAM.
    const at = 0x1000000;
    const code = assemble("mov ecx, 1000\nl: add ebx, [0x20000]\ndec ecx\njnz l\nhlt", 32, at);
    const m = machine("force", assemble("hlt", 32, 0x10000), 32);
    m.memory.addRom("rom", at, code);
    m.memory.write32(0x20000, 1);
    m.cpu.eip = at;
    runToHalt(m.cpu);
    assert.equal(m.cpu.ebx, 1000);
    const old = m.memory.mainRam!;
    m.memory.removeRegion(old);
    m.memory.addRam("ram", 0, old.size);
    m.memory.write32(0x20000, 2);
    const translations = m.cpu.jit!.stats().translations;
    m.cpu.ebx = 0;
    m.cpu.eip = at;
    m.cpu.halted = false;
    runToHalt(m.cpu);
    assert.equal(m.cpu.ebx, 2000);
    assert.ok(m.cpu.jit!.stats().translations > translations);
  });

  it("keeps the translation cache within its bounds", async () => {
    const { Jit } = await import("./jit.ts");
    const m = machine("force", assemble("hlt", 32, 0x10000), 32);
    // Many small blocks in many pages: each page's code is a separate translation.
    const jit = new Jit({ mode: "force", maxBlocks: 8 });
    Object.defineProperty(m.cpu, "jit", { value: jit });
    for (let page = 0; page < 40; page++) {
      const at = 0x200000 + page * 4096;
      m.memory.writeBytes(at, assemble(`add eax, ${page}\njmp ${0x200000 + (page + 1) * 4096}`, 32, at));
    }
    m.memory.writeBytes(0x200000 + 40 * 4096, assemble("hlt", 32, 0x200000 + 40 * 4096));
    m.cpu.eip = 0x200000;
    runToHalt(m.cpu);
    const s = jit.stats();
    assert.equal(m.cpu.eax, (39 * 40) / 2);
    assert.ok(s.cachedBlocks <= 8, JSON.stringify(s));
    assert.ok(s.flushes >= 4, JSON.stringify(s));
  });

  it("finds where a block continues: branch targets and fall-through, not past jumps and returns", () => {
    // One block per source line, decoded at physical 0x10000 as the CPU would.
    const blockOf = (source: string, at: number) => {
      const bytes = assemble(source, 32, at);
      const block = new Block(at, true);
      for (let off = 0; off < bytes.length; ) {
        const insn = new Insn();
        const len = decodeInstruction(insn, bytes.subarray(off), bytes.length - off, true);
        block.insns.push(insn);
        off += len;
      }
      block.byteLength = bytes.length;
      return block;
    };
    const at = 0x10000;
    // jnz back to the start (2-byte form), falling through to 0x10005.
    assert.deepEqual(successorsOf(blockOf("l: inc eax\ndec ecx\njnz l", at)), [at, at + 4]);
    // A near jcc forward: target and fall-through.
    assert.deepEqual(successorsOf(blockOf("cmp eax, 1\njne near $ + 0x200", at)), [at + 3 + 0x200, at + 9]);
    // JMP and RET do not fall through; an indirect jump has no known target.
    assert.deepEqual(successorsOf(blockOf("inc eax\njmp $ + 0x40", at)), [at + 1 + 0x40]);
    assert.deepEqual(successorsOf(blockOf("pop eax\nret", at)), []);
    assert.deepEqual(successorsOf(blockOf("jmp eax", at)), []);
    // A call continues at its target and, once the callee returns, after itself.
    assert.deepEqual(successorsOf(blockOf("call $ + 0x100", at)), [at + 0x100, at + 5]);
  });
});
