// The CPU's run interface: instruction budgets and ending a slice early.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { JitMode } from "./jit/jit.ts";
import { assemble, makeMachine, run16, runToHalt, startFlat32, type TestMachine } from "./test-support.ts";

describe("run slices", () => {
  /**
   * Runs `source` (a loop that reads a device once a turn) for a long budget, with `attach`
   * wiring the device to call `onRead` on each read; the 1000th read ends the slice.
   */
  function sliceEndedByDevice(
    jit: JitMode,
    source: string,
    attach: (m: TestMachine, onRead: () => number) => void,
  ): TestMachine {
    const m = makeMachine({ jit });
    startFlat32(m, assemble(source, 32, 0x10000));
    let reads = 0;
    attach(m, () => {
      if (++reads === 1000) m.cpu.endSlice();
      return 0;
    });
    const retired = m.cpu.run(10_000_000);
    assert.ok(retired < 3000 + 10, `retired ${retired}`);
    assert.ok(reads >= 1000 && reads <= 1001, `reads ${reads}`);
    return m;
  }

  for (const jit of ["off", "force"] as JitMode[]) {
    it(`endSlice from a device makes run return at the next block boundary (translator ${jit})`, () => {
      const m = sliceEndedByDevice(jit, "again: in al, 0x80\ninc ebx\njmp again", (m, onRead) =>
        m.ports.register("poller", 0x80, 1, { ioRead: onRead, ioWrite: () => {} }),
      );
      // The next slice runs normally again.
      assert.equal(m.cpu.run(300), 300);
    });

    it(`endSlice from an MMIO read makes run return at the next block boundary (translator ${jit})`, () => {
      sliceEndedByDevice(jit, "again: mov eax, [0x900000]\ninc ebx\njmp again", (m, onRead) =>
        m.memory.addMmio("poller", 0x900000, 0x1000, { mmioRead: onRead, mmioWrite: () => {} }),
      );
    });
  }
});

describe("the decoded-block cache", () => {
  it("finds a block again after a colliding block took its cache slot", () => {
    // The functions at 0x30000 and 0x40038 share a slot of the direct-mapped cache; one call
    // site goes to five functions in turn, more than its successor links hold. A block pushed
    // out of its slot must be found again, not decoded anew: with the translator forced on,
    // every fresh block is translated, so the translation count shows any re-decoding.
    const m = makeMachine({ jit: "force" });
    startFlat32(m, assemble(callsInTurn(5, 500), 32, 0x10000));
    runToHalt(m.cpu);
    assert.deepEqual([m.cpu.eax, m.cpu.ebx, m.cpu.edx, m.cpu.edi, m.cpu.ebp], [100, 100, 100, 100, 100]);
    const translations = m.cpu.jit!.stats().translations;
    assert.ok(translations < 60, `${translations} translations for a handful of blocks`);
  });

  it("links a block to three successors that come in turn, without looking them up again", () => {
    // A block that enters a translated region is the predecessor of each place the region
    // leaves at, and those often come in turn, as the return here goes to three call sites.
    const m = makeMachine({ jit: "off" });
    startFlat32(m, assemble(callsInTurn(3, 300), 32, 0x10000));
    const cpu = m.cpu as unknown as { lookupBlock: (...args: unknown[]) => unknown };
    const lookup = cpu.lookupBlock;
    let lookups = 0;
    cpu.lookupBlock = function (this: unknown, ...args: unknown[]) {
      lookups++;
      return lookup.apply(this, args);
    };
    runToHalt(m.cpu);
    assert.deepEqual([m.cpu.eax, m.cpu.ebx, m.cpu.edx], [100, 100, 100]);
    // Each block is looked up when first reached and a few times while the links fill; with
    // two links per block the three-way turn missed on every round (309 lookups).
    assert.ok(lookups < 60, `${lookups} block lookups`);
  });
});

/**
 * A loop of `rounds` indirect calls that go to `count` (up to 5) leaf functions in turn, each
 * adding 1 to its own register: EAX, EBX, EDX, EDI, EBP. The first two share a slot of the
 * decoded-block cache.
 */
function callsInTurn(count: number, rounds: number): string {
  const at = [0x30000, 0x40038, 0x50000, 0x60000, 0x70000].slice(0, count);
  const registers = ["eax", "ebx", "edx", "edi", "ebp"];
  return `mov ecx, ${rounds}
       xor esi, esi
       xor eax, eax
       xor ebx, ebx
       xor edx, edx
       xor edi, edi
       xor ebp, ebp
    l: call [tbl + esi * 4]
       inc esi
       cmp esi, ${count}
       jb next
       xor esi, esi
    next:
       dec ecx
       jnz l
       hlt
    tbl: dd ${at.join(", ")}
${at.map((a, k) => `       times 0x${a.toString(16)} - 0x10000 - ($ - $$) db 0\n       add ${registers[k]}, 1\n       ret`).join("\n")}`;
}

describe("fetching after a far jump", () => {
  it("a jump to the same offset in another code segment runs that segment's code", () => {
    // The same far JMP goes to 1000:0000 and 2000:0000 in turn; a successor link keyed by EIP
    // must not carry the first segment's code over to the second. (The far pointer lives on
    // another page, so writing it leaves the jumping block decoded.)
    const m = run16(`mov cx, 4
       xor si, si
    l: mov ax, [tbl + si]
       mov [0x8002], ax
       mov word [0x8000], 0
       jmp far [0x8000]
    back:
       xor si, 2
       dec cx
       jnz l
       hlt
    tbl: dw 0x1000, 0x2000
       times 0x10000 - 0x1000 - ($ - $$) db 0
       add bx, 1
       jmp 0:back
       times 0x20000 - 0x1000 - ($ - $$) db 0
       add bx, 2
       jmp 0:back`);
    assert.equal(m.cpu.ebx & 0xffff, 1 + 2 + 1 + 2);
  });
});

describe("instructions that straddle a page boundary", () => {
  // `l:` is placed so that its MOV's immediate runs from 0x10ffe into the page at 0x11000.
  const loop = (patch: string) =>
    assemble(
      `mov ecx, 10
       xor ebx, ebx
       jmp l
       times 0xffd - ($ - $$) nop
    l: mov eax, 0x00000001
       add ebx, eax
       cmp ecx, 5
       jne skip
       ${patch}
    skip:
       dec ecx
       jnz l
       hlt`,
      32,
      0x10000,
    );

  for (const jit of ["off", "force"] as JitMode[]) {
    it(`see a write to the second page at once (translator ${jit})`, () => {
      const m = makeMachine({ jit });
      startFlat32(m, loop("mov byte [l + 3], 1"));
      runToHalt(m.cpu);
      // Six passes add 1, then the immediate is 0x00010001 for the last four.
      assert.equal(m.cpu.ebx, 6 + 4 * 0x10001);
    });

    it(`see the second page remapped (translator ${jit})`, () => {
      const m = makeMachine({ jit });
      startFlat32(m, loop("mov dword [0x101000 + 0x11 * 4], 0x12003\ninvlpg [0x11000]"));
      // Identity paging for the first 4 MiB; physical 0x12000 holds a copy of the page at
      // 0x11000 whose immediate byte differs.
      m.memory.write32(0x100000, 0x101003);
      for (let p = 0; p < 1024; p++) m.memory.write32(0x101000 + p * 4, (p << 12) | 3);
      m.memory.writeBytes(0x12000, m.memory.readBytes(0x11000, 4096));
      m.memory.write8(0x12000, 1);
      m.cpu.setCr(3, 0x100000);
      m.cpu.setCr(0, m.cpu.cr0 | 0x80000000);
      runToHalt(m.cpu);
      assert.equal(m.cpu.ebx, 6 + 4 * 0x10001);
    });
  }
});
