// Integer instructions: results, flags and exceptions as the SDM specifies them.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AF, CF, OF, PF, SF, ZF } from "./flags.ts";
import { assemble, makeMachine, recorded, run16, run32, startFlat32 } from "./test-support.ts";

const FLAGS6 = CF | PF | AF | ZF | SF | OF;
function arith(flags: number): number {
  return flags & FLAGS6;
}

describe("arithmetic flags", () => {
  it("ADD sets OF, SF, AF and PF on 0x7fffffff + 1", () => {
    const m = run32("mov eax, 0x7fffffff\nadd eax, 1\nhlt");
    assert.equal(m.cpu.eax, 0x80000000);
    assert.equal(arith(m.cpu.eflags), OF | SF | AF | PF);
  });
  it("SUB 0 - 1 borrows", () => {
    const m = run32("xor eax, eax\nsub eax, 1\nhlt");
    assert.equal(m.cpu.eax, 0xffffffff);
    assert.equal(arith(m.cpu.eflags), CF | SF | AF | PF);
  });
  it("ADC and SBB use the carry", () => {
    let m = run32("stc\nmov al, 0xff\nadc al, 0\nhlt");
    assert.equal(m.cpu.eax & 0xff, 0);
    assert.equal(arith(m.cpu.eflags), CF | ZF | AF | PF);
    m = run32("stc\nmov al, 0\nsbb al, 0xff\nhlt");
    assert.equal(m.cpu.eax & 0xff, 0);
    assert.equal(arith(m.cpu.eflags), CF | ZF | AF | PF);
    m = run32("stc\nmov eax, 0x7fffffff\nadc eax, 0\nhlt");
    assert.equal(m.cpu.eax, 0x80000000);
    assert.equal(arith(m.cpu.eflags), OF | SF | AF | PF);
  });
  it("INC and DEC leave CF alone", () => {
    let m = run32("stc\nmov eax, -1\ninc eax\nhlt");
    assert.equal(m.cpu.eax, 0);
    assert.equal(arith(m.cpu.eflags), CF | ZF | AF | PF);
    m = run32("clc\nmov eax, 0x80000000\ndec eax\nhlt");
    assert.equal(m.cpu.eax, 0x7fffffff);
    assert.equal(arith(m.cpu.eflags), OF | AF | PF);
  });
  it("NEG sets CF unless the operand is zero", () => {
    let m = run32("mov eax, 5\nneg eax\nhlt");
    assert.equal(m.cpu.eax, 0xfffffffb);
    assert.equal(m.cpu.eflags & (CF | SF | ZF), CF | SF);
    m = run32("xor eax, eax\nneg eax\nhlt");
    assert.equal(m.cpu.eflags & (CF | ZF), ZF);
  });
  it("logic clears CF and OF", () => {
    const m = run32("stc\nmov eax, 0xf0\nand eax, 0x0f\nhlt");
    assert.equal(arith(m.cpu.eflags), ZF | PF);
  });
  it("16-bit and 8-bit forms wrap at their size", () => {
    const m = run32("mov eax, 0x1234ffff\nadd ax, 1\nmov ebx, 0x12345680\nadd bl, 0x80\nhlt");
    assert.equal(m.cpu.eax, 0x12340000);
    assert.equal(m.cpu.ebx, 0x12345600);
    assert.equal(m.cpu.eflags & (CF | ZF | OF), CF | ZF | OF);
  });
});

describe("shifts and rotates", () => {
  const cases: [string, number, number][] = [
    ["mov eax, 0x80000001\nshl eax, 1", 2, CF | OF],
    ["mov eax, 0x80000001\nshr eax, 1", 0x40000000, CF | OF],
    ["mov eax, 0x80000000\nsar eax, 4", 0xf8000000, 0],
    ["mov eax, 0x81\nrol al, 1", 0x03, CF | OF],
    ["mov eax, 0x01\nror al, 1", 0x80, CF | OF],
    ["clc\nmov eax, 0x80\nrcl al, 1", 0x00, CF | OF],
    ["stc\nmov eax, 0x01\nrcr al, 1", 0x80, CF | OF],
    ["mov eax, 1\nmov cl, 33\nshl eax, cl", 2, 0],
    ["mov eax, 0x12345678\nmov ebx, 0x9abcdef0\nshld eax, ebx, 8", 0x3456789a, 0],
    ["mov eax, 0x12345678\nmov ebx, 0x9abcdef0\nshrd eax, ebx, 8", 0xf0123456, 0],
    ["mov eax, 0x8001\nmov ebx, 0xffff\nshld ax, bx, 4", 0x001f, 0],
  ];
  for (const [src, result, flags] of cases) {
    it(src.replaceAll("\n", "; "), () => {
      const m = run32(`${src}\nhlt`);
      assert.equal(m.cpu.eax, result);
      assert.equal(m.cpu.eflags & (CF | OF), flags);
    });
  }
  it("a zero count changes no flags", () => {
    const m = run32("stc\nmov eax, 0x80000000\nadd eax, eax\nmov cl, 32\nshl ebx, cl\nhlt");
    assert.equal(arith(m.cpu.eflags), CF | ZF | OF | PF);
  });
});

describe("multiply and divide", () => {
  it("MUL sets CF/OF when the high half is used", () => {
    const m = run32("mov eax, 0x80000000\nmov ebx, 4\nmul ebx\nhlt");
    assert.equal(m.cpu.edx, 2);
    assert.equal(m.cpu.eax, 0);
    assert.equal(m.cpu.eflags & (CF | OF), CF | OF);
  });
  it("IMUL one-operand sign-extends", () => {
    const m = run32("mov eax, -2\nmov ebx, 3\nimul ebx\nhlt");
    assert.equal(m.cpu.edx, 0xffffffff);
    assert.equal(m.cpu.eax, 0xfffffffa);
    assert.equal(m.cpu.eflags & (CF | OF), 0);
  });
  it("IMUL three-operand truncates and flags overflow", () => {
    const m = run32("mov ebx, 4\nimul ecx, ebx, 0x40000000\nimul edx, ebx, -3\nhlt");
    assert.equal(m.cpu.ecx, 0);
    assert.equal(m.cpu.edx, 0xfffffff4);
    assert.equal(m.cpu.eflags & (CF | OF), 0);
    const m2 = run32("mov ebx, 4\nimul ecx, ebx, 0x40000000\nhlt");
    assert.equal(m2.cpu.eflags & (CF | OF), CF | OF);
  });
  it("DIV divides EDX:EAX", () => {
    const m = run32("mov edx, 1\nxor eax, eax\nmov ebx, 2\ndiv ebx\nhlt");
    assert.equal(m.cpu.eax, 0x80000000);
    assert.equal(m.cpu.edx, 0);
    const m2 = run32("mov edx, 0x12345678\nmov eax, 0x9abcdef0\nmov ebx, 0x87654321\ndiv ebx\nhlt");
    // 0x123456789abcdef0 / 0x87654321 = 0x2253c8ad rem 0x6a0a06e3 (checked with BigInt below)
    const n = 0x123456789abcdef0n;
    const d = 0x87654321n;
    assert.equal(BigInt(m2.cpu.eax), n / d);
    assert.equal(BigInt(m2.cpu.edx), n % d);
  });
  it("IDIV rounds toward zero with the remainder's sign from the dividend", () => {
    const m = run32("mov edx, -1\nmov eax, -7\nmov ebx, 2\nidiv ebx\nhlt");
    assert.equal(m.cpu.eax | 0, -3);
    assert.equal(m.cpu.edx | 0, -1);
  });
  for (const [name, src] of [
    ["DIV by zero", "xor ebx, ebx\ndiv ebx"],
    ["DIV quotient overflow", "mov edx, 2\nxor eax, eax\nmov ebx, 2\ndiv ebx"],
    ["IDIV 8-bit overflow (-128 / -1)", "mov ax, 0xff80\nmov bl, -1\nidiv bl"],
    ["IDIV 32-bit overflow", "mov edx, -1\nmov eax, 0x80000000\nmov ebx, -1\nidiv ebx"],
    ["AAM 0", "aam 0"],
  ]) {
    it(`${name} raises #DE at the faulting instruction`, () => {
      const lines = src.split("\n");
      const last = lines.pop();
      const m = run32(`mov dword [0x2100], fault\n${lines.join("\n")}\nfault: ${last}\nhlt`);
      assert.equal(recorded(m), 0);
      // The stub halted with EIP, CS, EFLAGS on the stack; EIP is the faulting instruction.
      const sp = m.cpu.esp;
      assert.equal(m.memory.read32(sp), m.memory.read32(0x2100));
    });
  }
});

describe("BCD", () => {
  it("DAA after ADD", () => {
    const m = run32("mov al, 0x79\nadd al, 0x35\ndaa\nhlt");
    assert.equal(m.cpu.eax & 0xff, 0x14);
    assert.equal(m.cpu.eflags & CF, CF);
  });
  it("DAS after SUB", () => {
    const m = run32("mov al, 0x35\nsub al, 0x47\ndas\nhlt");
    assert.equal(m.cpu.eax & 0xff, 0x88);
    assert.equal(m.cpu.eflags & CF, CF);
  });
  it("AAA and AAS adjust AH", () => {
    let m = run32("mov eax, 9\nadd al, 3\naaa\nhlt");
    assert.equal(m.cpu.eax & 0xffff, 0x0102);
    assert.equal(m.cpu.eflags & (CF | AF), CF | AF);
    m = run32("mov eax, 0x0102\nsub al, 3\naas\nhlt");
    assert.equal(m.cpu.eax & 0xffff, 0x0009);
  });
  it("AAM and AAD", () => {
    const m = run32("mov eax, 63\naam\nmov ebx, eax\nmov eax, 0x0603\naad\nhlt");
    assert.equal(m.cpu.ebx & 0xffff, 0x0603);
    assert.equal(m.cpu.eax & 0xffff, 63);
  });
});

describe("bit instructions", () => {
  it("BT with a register offset reaches beyond the operand, in both directions", () => {
    const m = run32(
      "mov dword [0x2000], 0\nmov dword [0x2004], 2\nmov eax, 33\nbt dword [0x2000], eax\nsetc cl\n" +
        "mov eax, -1\nbts dword [0x2004], eax\nhlt",
    );
    assert.equal(m.cpu.ecx & 0xff, 1);
    assert.equal(m.memory.read32(0x2000), 0x80000000);
  });
  it("BTR/BTC with an immediate take the offset modulo the size", () => {
    const m = run32("mov eax, 0xff\nbtr eax, 33\nbtc eax, 8\nhlt");
    assert.equal(m.cpu.eax, 0x1fd);
    assert.equal(m.cpu.eflags & CF, 0);
  });
  it("BSF/BSR find bits; a zero source sets ZF and leaves the destination", () => {
    const m = run32(
      "mov ebx, 0xf0\nbsf eax, ebx\nbsr ecx, ebx\nmov edx, 77\nxor ebx, ebx\nbsf edx, ebx\nhlt",
    );
    assert.equal(m.cpu.eax, 4);
    assert.equal(m.cpu.ecx, 7);
    assert.equal(m.cpu.edx, 77);
    assert.equal(m.cpu.eflags & ZF, ZF);
  });
});

describe("data movement and exchange", () => {
  it("CMPXCHG stores on equal, loads the accumulator otherwise", () => {
    const m = run32(
      "mov dword [0x2000], 5\nmov eax, 5\nmov ecx, 9\ncmpxchg [0x2000], ecx\nsetz bl\n" +
        "mov dword [0x2004], 6\nmov eax, 5\ncmpxchg [0x2004], ecx\nsetz bh\nhlt",
    );
    assert.equal(m.memory.read32(0x2000), 9);
    assert.equal(m.cpu.eax, 6);
    assert.equal(m.cpu.ebx & 0xffff, 0x0001);
  });
  it("CMPXCHG8B", () => {
    const m = run32(
      "mov dword [0x2000], 1\nmov dword [0x2004], 2\nmov eax, 1\nmov edx, 2\nmov ebx, 3\nmov ecx, 4\n" +
        "cmpxchg8b [0x2000]\nsetz [0x2010]\ncmpxchg8b [0x2000]\nsetz [0x2011]\nhlt",
    );
    assert.equal(m.memory.read32(0x2000), 3);
    assert.equal(m.memory.read32(0x2004), 4);
    assert.equal(m.memory.read8(0x2010), 1);
    assert.equal(m.memory.read8(0x2011), 0);
    assert.equal(m.cpu.eax, 3);
    assert.equal(m.cpu.edx, 4);
  });
  it("XADD, XCHG, BSWAP, MOVSX, MOVZX, CBW family", () => {
    const m = run32(
      "mov eax, 1\nmov ebx, 2\nxadd eax, ebx\nmov ecx, 0x12345678\nbswap ecx\n" +
        "mov dl, 0x80\nmovsx esi, dl\nmovzx edi, dl\nmov ebp, eax\nmov ax, 0x8000\ncwde\nmov [0x2000], eax\ncdq\nhlt",
    );
    assert.equal(m.cpu.ebp, 3);
    assert.equal(m.cpu.ebx, 1);
    assert.equal(m.cpu.ecx, 0x78563412);
    assert.equal(m.cpu.esi, 0xffffff80);
    assert.equal(m.cpu.edi, 0x80);
    assert.equal(m.memory.read32(0x2000), 0xffff8000);
    assert.equal(m.cpu.edx, 0xffffffff);
  });
  it("SETcc and CMOVcc follow the conditions", () => {
    const m = run32(
      "mov eax, 3\nmov ebx, 5\nmov ecx, 11\nmov edx, 22\ncmp eax, ebx\nsetl [0x2000]\nsetg [0x2001]\n" +
        "setb [0x2002]\ncmovg ecx, edx\ncmovle edx, eax\nhlt",
    );
    assert.deepEqual([...m.memory.readBytes(0x2000, 3)], [1, 0, 1]);
    assert.equal(m.cpu.ecx, 11);
    assert.equal(m.cpu.edx, 3);
  });
  it("LAHF/SAHF, XLAT, LEA", () => {
    const m = run32(
      "mov ah, 0xd5\nsahf\nmov ah, 0\nlahf\nmov byte [0x2005], 0x42\nmov ebx, 0x2000\nmov al, 5\nxlatb\n" +
        "lea ecx, [ebx+esi*4+0x10]\nhlt",
      (mm) => {
        mm.cpu.esi = 3;
      },
    );
    assert.equal((m.cpu.eax >> 8) & 0xff, 0xd7);
    assert.equal(m.cpu.eax & 0xff, 0x42);
    assert.equal(m.cpu.ecx, 0x2000 + 12 + 0x10);
  });
});

describe("stack", () => {
  it("PUSHA/POPA keep ESP", () => {
    const m = run32(
      "mov eax, 1\nmov ecx, 2\nmov edx, 3\nmov ebx, 4\nmov ebp, 6\nmov esi, 7\nmov edi, 8\npushad\n" +
        "mov eax, [esp+28]\nmov [0x2000], eax\nmov eax, [esp+12]\nmov [0x2004], eax\nxor eax, eax\nxor ebx, ebx\npopad\nhlt",
    );
    assert.equal(m.memory.read32(0x2000), 1);
    assert.equal(m.memory.read32(0x2004), 0x80000);
    assert.equal(m.cpu.eax, 1);
    assert.equal(m.cpu.ebx, 4);
    assert.equal(m.cpu.esp, 0x80000);
  });
  it("ENTER with nesting copies frame pointers; LEAVE undoes it", () => {
    const m = run32(
      "mov ebp, 0x70000\nmov dword [0x6fffc], 0xdeadbeef\nenter 8, 2\nmov [0x2000], esp\nmov [0x2004], ebp\n" +
        "mov eax, [esp+8]\nmov [0x2008], eax\nmov eax, [esp+12]\nmov [0x200c], eax\nleave\nhlt",
    );
    assert.equal(m.memory.read32(0x2000), 0x7ffec);
    assert.equal(m.memory.read32(0x2004), 0x7fffc);
    assert.equal(m.memory.read32(0x2008), 0x7fffc);
    assert.equal(m.memory.read32(0x200c), 0xdeadbeef);
    assert.equal(m.cpu.esp, 0x80000);
    assert.equal(m.cpu.ebp, 0x70000);
  });
  it("POP to memory addressed through ESP uses the incremented ESP", () => {
    const m = run32("push 0x1234\npush 0x5678\npop dword [esp]\nhlt");
    assert.equal(m.memory.read32(0x7fffc), 0x5678);
    assert.equal(m.cpu.esp, 0x7fffc);
  });
  it("BOUND raises #BR outside the range", () => {
    const m = run32(
      "mov dword [0x2000], 10\nmov dword [0x2004], 20\nmov eax, 15\nbound eax, [0x2000]\nmov eax, 21\nbound eax, [0x2000]\nhlt",
    );
    assert.equal(recorded(m), 5);
    assert.equal(m.cpu.eax, 21);
  });
});

describe("string instructions", () => {
  it("REP MOVSB copies forwards and REP STOSD fills", () => {
    const m = run32(
      "mov dword [0x2000], 0x44332211\nmov esi, 0x2000\nmov edi, 0x6000\nmov ecx, 4\ncld\nrep movsb\n" +
        "mov eax, 0xabababab\nmov edi, 0x6100\nmov ecx, 3\nrep stosd\nhlt",
    );
    assert.equal(m.memory.read32(0x6000), 0x44332211);
    assert.equal(m.cpu.esi, 0x2004);
    assert.equal(m.cpu.ecx, 0);
    assert.equal(m.memory.read32(0x6108), 0xabababab);
    assert.equal(m.memory.read32(0x610c), 0);
  });
  it("STD makes MOVS go backwards", () => {
    const m = run32(
      "mov dword [0x2000], 0x44332211\nmov esi, 0x2003\nmov edi, 0x6003\nmov ecx, 4\nstd\nrep movsb\ncld\nhlt",
    );
    assert.equal(m.memory.read32(0x6000), 0x44332211);
    assert.equal(m.cpu.edi, 0x5fff);
  });
  it("REPE CMPSB stops at the first difference, REPNE SCASB at the first match", () => {
    const m = run32(
      "mov dword [0x2000], 0x44332211\nmov dword [0x6000], 0x55332211\nmov esi, 0x2000\nmov edi, 0x6000\n" +
        "mov ecx, 4\nrepe cmpsb\nmov [0x2100], ecx\nmov edi, 0x2000\nmov al, 0x33\nmov ecx, 10\nrepne scasb\nhlt",
    );
    assert.equal(m.memory.read32(0x2100), 0);
    assert.equal(m.cpu.esi, 0x2004);
    assert.equal(m.cpu.edi, 0x2003);
    assert.equal(m.cpu.ecx, 7);
    assert.equal(m.cpu.eflags & ZF, ZF);
  });
  it("a long REP yields and resumes without losing count", () => {
    const m = run32("mov edi, 0x100000\nmov ecx, 100000\nmov al, 7\nrep stosb\nhlt");
    assert.equal(m.cpu.ecx, 0);
    assert.equal(m.memory.read8(0x100000 + 99999), 7);
    assert.equal(m.memory.read8(0x100000 + 100000), 0);
  });
  it("a long REP MOVSD/STOSD over RAM yields after its fast-path chunk, registers where it stopped", () => {
    for (const insn of ["rep movsd", "rep stosd"]) {
      const source = `mov esi, 0x100000\nmov edi, 0x400000\nmov ecx, 100000\n${insn}\nhlt`;
      const m = run32(source);
      // The whole copy or fill is done, by whole chunks: each turn of the instruction does
      // 4 * 4096 dwords through the fast path and nothing element by element behind it.
      assert.equal(m.cpu.ecx, 0);
      assert.equal(m.cpu.edi, 0x400000 + 400000);
      const steps = makeMachine();
      startFlat32(steps, assemble(source, 32));
      steps.cpu.run(4);
      assert.equal(steps.cpu.ecx, 100000 - 4 * 4096, insn);
      assert.equal(steps.cpu.edi, 0x400000 + 4 * 4 * 4096, insn);
      assert.equal(steps.cpu.eip, 0x10000 + 15, "EIP stays on the instruction until it is done");
    }
  });
  it("bulk REP MOVS matches element-by-element semantics, overlaps included", () => {
    const m = run32(
      "mov byte [0x20000], 0xab\nmov esi, 0x20000\nmov edi, 0x20001\nmov ecx, 5000\nrep movsb\n" +
        "mov esi, 0x30002\nmov edi, 0x40001\nmov ecx, 3000\nrep movsd\n" +
        "mov eax, 0x12345678\nmov edi, 0x50003\nmov ecx, 2000\nrep stosd\nhlt",
      (mm) => {
        for (let k = 0; k < 12000; k++) mm.memory.write8(0x30002 + k, (k * 7 + 3) & 0xff);
      },
    );
    const run = m.memory.readBytes(0x20000, 5001);
    assert.ok(
      run.every((b) => b === 0xab),
      "forward overlap propagates the first byte",
    );
    const copied = m.memory.readBytes(0x40001, 12000);
    assert.ok(
      copied.every((b, k) => b === ((k * 7 + 3) & 0xff)),
      "unaligned copy across pages",
    );
    for (let k = 0; k < 2000; k++) assert.equal(m.memory.read32(0x50003 + k * 4), 0x12345678);
    assert.equal(m.memory.read8(0x50003 + 8000), 0);
    assert.equal(m.cpu.edi, 0x50003 + 8000);
    assert.equal(m.cpu.esi, 0x30002 + 12000);
    assert.equal(m.cpu.ecx, 0);
  });
  it("REP MOVS over code that is about to run replaces it", () => {
    const m = run32(
      "mov esi, newcode\nmov edi, target\nmov ecx, 5\nrep movsb\ntarget: mov eax, 1\nhlt\nnewcode: mov eax, 2",
    );
    assert.equal(m.cpu.eax, 2);
  });
  it("16-bit addressing wraps SI/DI", () => {
    const m = run16(
      "mov ax, 0x200\nmov ds, ax\nmov es, ax\nmov si, 0xffff\nmov di, 0x10\nmov cx, 2\nrep movsb\nhlt",
      (mm) => {
        mm.memory.write8(0x2000 + 0xffff, 0xaa);
        mm.memory.write8(0x2000, 0xbb);
      },
    );
    assert.equal(m.memory.read8(0x2010), 0xaa);
    assert.equal(m.memory.read8(0x2011), 0xbb);
    assert.equal(m.cpu.esi & 0xffff, 1);
  });
});

describe("decoder rules", () => {
  it("LOCK on a register destination raises #UD; on memory it executes", () => {
    const ok = run32("lock add [0x2000], eax\nhlt", (m) => {
      m.cpu.eax = 3;
    });
    assert.equal(ok.memory.read32(0x2000), 3);
    assert.equal(recorded(ok), 0xff);
    const bad = run32("db 0xf0, 0x01, 0xc0\nhlt");
    assert.equal(recorded(bad), 6);
  });
  it("an instruction longer than 15 bytes raises #GP", () => {
    const fine = run16(`${"db 0x66\n".repeat(14)}nop\nhlt`);
    assert.equal(recorded(fine), 0xff);
    const long = run16(`${"db 0x66\n".repeat(15)}nop\nhlt`);
    assert.equal(recorded(long), 13);
  });
  it("undefined opcodes and UD2 raise #UD", () => {
    assert.equal(recorded(run32("ud2\nhlt")), 6);
    assert.equal(recorded(run32("db 0x0f, 0x0a\nhlt")), 6);
    assert.equal(recorded(run32("db 0x0f, 0x1f, 0x44, 0x00, 0x00\nhlt")), 0xff);
  });
  it("16-bit addressing modes", () => {
    const m = run16(
      "mov bx, 0x100\nmov si, 0x20\nmov bp, 0x300\nmov di, 4\nmov word [bx+si+2], 0x1234\nmov word [bp+di-1], 0x5678\nhlt",
    );
    assert.equal(m.memory.read16(0x122), 0x1234);
    assert.equal(m.memory.read16(0x303), 0x5678);
  });
});

describe("identification", () => {
  it("CPUID reports GenuineIntel family 6 with the implemented features", () => {
    const m = run32(
      "xor eax, eax\ncpuid\nmov [0x2000], ebx\nmov [0x2004], edx\nmov [0x2008], ecx\nmov eax, 1\ncpuid\nhlt",
    );
    assert.equal(Buffer.from(m.memory.readBytes(0x2000, 12)).toString("latin1"), "GenuineIntel");
    assert.equal(m.cpu.eax, 0x673);
    const features = m.cpu.edx;
    for (const bit of [1, 2, 3, 4, 5, 6, 8, 9, 11, 12, 13, 15, 16])
      assert.ok(features & (1 << bit), `bit ${bit}`);
    for (const bit of [7, 25, 26]) assert.equal(features & (1 << bit), 0, `bit ${bit}`);
  });
  it("RDTSC counts up", () => {
    const m = run32("rdtsc\nmov ebx, eax\nnop\nnop\nrdtsc\nsub eax, ebx\nhlt");
    assert.ok(m.cpu.eax > 0);
  });
});
