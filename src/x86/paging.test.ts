// Paging (4 KiB, 4 MiB, PAE with NX), #PF error codes, accessed/dirty bits, TLB flushing, the A20
// gate, and invalidation of decoded code when it is written.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  assemble,
  makeMachine,
  recorded,
  run16,
  run32,
  runToHalt,
  startProtected,
  type TestMachine,
} from "./test-support.ts";

const PD = 0x100000;
const PT0 = 0x101000;
const ENABLE = "mov eax, 0x100000\nmov cr3, eax\nmov eax, cr0\nor eax, 0x80010000\nmov cr0, eax\n";

/** Identity-maps 0-4 MiB with user read/write pages through one page table. */
function identity4M(m: TestMachine): void {
  for (let k = 0; k < 1024; k += 1) m.memory.write32(PD + k * 4, 0);
  m.memory.write32(PD, PT0 | 7);
  for (let p = 0; p < 1024; p++) m.memory.write32(PT0 + p * 4, (p << 12) | 7);
}
/** IRETD to ring 3 (flat segments 0x1b/0x23, ESP 0x70000); what follows runs there. */
const toRing3 = "push 0x23\npush 0x70000\npush 2\npush 0x1b\npush ring3\niretd\nring3:\n";
function pte(page: number): number {
  return PT0 + page * 4;
}
function pageFault(m: TestMachine): { error: number; cr2: number } {
  assert.equal(recorded(m), 14);
  return { error: m.memory.read32(m.cpu.esp), cr2: m.cpu.cr2 >>> 0 };
}

describe("4 KiB paging", () => {
  it("fetching from a not-present page reports the target as the faulting EIP", () => {
    const m = run32(`${ENABLE}mov eax, 0x400000\njmp eax`, identity4M);
    assert.deepEqual(pageFault(m), { error: 0, cr2: 0x400000 });
    assert.equal(m.memory.read32(m.cpu.esp + 4), 0x400000);
  });
  it("a not-present page: #PF with CR2 and error code 0", () => {
    const m = run32(`${ENABLE}mov eax, [0x400123]\nhlt`, identity4M);
    assert.deepEqual(pageFault(m), { error: 0, cr2: 0x400123 });
  });
  it("a supervisor write to a read-only page with CR0.WP: error P|W", () => {
    const m = run32(`${ENABLE}mov [0x7000], eax\nhlt`, (mm) => {
      identity4M(mm);
      mm.memory.write32(pte(7), 0x7000 | 5);
    });
    assert.deepEqual(pageFault(m), { error: 3, cr2: 0x7000 });
  });
  it("without CR0.WP the supervisor may write read-only pages", () => {
    const m = run32(
      "mov eax, 0x100000\nmov cr3, eax\nmov eax, cr0\nor eax, 0x80000000\nmov cr0, eax\nmov dword [0x7000], 9\nhlt",
      (mm) => {
        identity4M(mm);
        mm.memory.write32(pte(7), 0x7000 | 5);
      },
    );
    assert.equal(recorded(m), 0xff);
    assert.equal(m.memory.read32(0x7000), 9);
  });
  it("user access to a supervisor page: error P|U (read) and P|W|U (write)", () => {
    const setup = (mm: TestMachine) => {
      identity4M(mm);
      mm.memory.write32(pte(7), 0x7000 | 3);
    };
    let m = run32(`${ENABLE}${toRing3}mov eax, [ss:0x7004]\nhlt`, setup);
    assert.deepEqual(pageFault(m), { error: 5, cr2: 0x7004 });
    m = run32(`${ENABLE}${toRing3}mov [ss:0x7008], eax\nhlt`, setup);
    assert.deepEqual(pageFault(m), { error: 7, cr2: 0x7008 });
  });
  it("sets accessed on reads and dirty on writes", () => {
    const m = run32(`${ENABLE}mov eax, [0x8000]\nmov [0x9000], eax\nhlt`, identity4M);
    assert.equal(m.memory.read32(pte(8)) & 0x60, 0x20);
    assert.equal(m.memory.read32(pte(9)) & 0x60, 0x60);
    assert.equal(m.memory.read32(PD) & 0x20, 0x20);
  });
  it("a write crossing into a missing page faults before writing anything", () => {
    const m = run32(`${ENABLE}mov eax, 0x11223344\nmov [0x3ffffe], eax\nhlt`, (mm) => {
      identity4M(mm);
      mm.memory.write16(0x3ffffe, 0xaaaa);
    });
    assert.deepEqual(pageFault(m), { error: 2, cr2: 0x400000 });
    assert.equal(m.memory.read16(0x3ffffe), 0xaaaa);
  });
  it("REP STOSD stops at a missing page with ECX/EDI showing the progress", () => {
    const m = run32(
      `${ENABLE}mov eax, 7\nmov edi, 0x8ff0\nmov ecx, 100\nmov dword [0x8000], 0\nrep stosd\nhlt`,
      (mm) => {
        identity4M(mm);
        mm.memory.write32(pte(9), 0);
      },
    );
    assert.deepEqual(pageFault(m), { error: 2, cr2: 0x9000 });
    assert.equal(m.cpu.edi, 0x9000);
    assert.equal(m.cpu.ecx, 96);
    assert.equal(m.memory.read32(0x8ffc), 7);
  });
  // Every page below is touched first, so the TLB maps them all when the copy starts.
  const touch = (pages: number[]) => pages.map((p) => `mov eax, [0x${p.toString(16)}000]\n`).join("");
  const writeTouch = (pages: number[]) => pages.map((p) => `mov [0x${p.toString(16)}000], eax\n`).join("");
  it("REP MOVSD across pages follows each page's own mapping", () => {
    const m = run32(
      `${ENABLE}${touch([0x200, 0x201, 0x202, 0x203])}${writeTouch([0x300, 0x301, 0x302, 0x303])}` +
        "mov esi, 0x200000\nmov edi, 0x300000\nmov ecx, 0x1000\ncld\nrep movsd\nhlt",
      (mm) => {
        identity4M(mm);
        // The destination's second page lies elsewhere in RAM, its third just before its first.
        mm.memory.write32(pte(0x301), 0x310000 | 7);
        mm.memory.write32(pte(0x302), 0x2ff000 | 7);
        for (let k = 0; k < 0x4000; k += 4) mm.memory.write32(0x200000 + k, k * 3 + 1);
      },
    );
    assert.equal(m.cpu.ecx, 0);
    const at = [0x300000, 0x310000, 0x2ff000, 0x303000];
    for (let page = 0; page < 4; page++) {
      for (let k = 0; k < 4096; k += 4) {
        const v = page * 4096 + k;
        if (m.memory.read32(at[page]! + k) !== v * 3 + 1) assert.fail(`page ${page} at ${k}`);
      }
    }
    assert.equal(m.memory.read32(0x301000), 0, "the page the second one replaced is untouched");
  });
  it("REP MOVSD into a read-only page faults with the pages before it copied", () => {
    const m = run32(
      `${ENABLE}${touch([0x200, 0x201, 0x202, 0x302])}${writeTouch([0x300, 0x301])}` +
        "mov esi, 0x200000\nmov edi, 0x300000\nmov ecx, 0xc00\ncld\nrep movsd\nhlt",
      (mm) => {
        identity4M(mm);
        mm.memory.write32(pte(0x302), 0x302000 | 5);
        for (let k = 0; k < 0x3000; k += 4) mm.memory.write32(0x200000 + k, k + 5);
      },
    );
    assert.deepEqual(pageFault(m), { error: 3, cr2: 0x302000 });
    assert.equal(m.cpu.edi, 0x302000);
    assert.equal(m.cpu.esi, 0x202000);
    assert.equal(m.cpu.ecx, 0x400);
    assert.equal(m.memory.read32(0x301ffc), 0x1ffc + 5);
    assert.equal(m.memory.read32(0x302000), 0);
  });
  it("keeps stale translations until INVLPG or a CR3 write", () => {
    const m = run32(
      `${ENABLE}mov al, [0x9000]
       mov [0x2000], al
       mov dword [${pte(9)}], 0xa007
       mov al, [0x9000]
       mov [0x2001], al
       invlpg [0x9000]
       mov al, [0x9000]
       mov [0x2002], al
       mov dword [${pte(9)}], 0x9007
       mov eax, cr3
       mov cr3, eax
       mov al, [0x9000]
       mov [0x2003], al
       hlt`,
      (mm) => {
        identity4M(mm);
        mm.memory.write8(0x9000, 0x11);
        mm.memory.write8(0xa000, 0x22);
      },
    );
    assert.deepEqual([...m.memory.readBytes(0x2000, 4)], [0x11, 0x11, 0x22, 0x11]);
  });
  it("a call site reaches the new code after its target page is remapped (INVLPG, CR3)", () => {
    // The same CALL runs before and after each remap, so a successor link from its block to the
    // code it reached must not outlive the mapping it was made under.
    const m = run32(
      `${ENABLE}mov esi, 3
    outer:
       mov ecx, 20
    l: call 0x9000
       add ebx, eax
       dec ecx
       jnz l
       cmp esi, 3
       jne by_cr3
       mov dword [${pte(9)}], 0xa007
       invlpg [0x9000]
       jmp next
    by_cr3:
       mov dword [${pte(9)}], 0xb007
       mov eax, cr3
       mov cr3, eax
    next:
       dec esi
       jnz outer
       hlt`,
      (mm) => {
        identity4M(mm);
        for (const [page, value] of [
          [0x9000, 1],
          [0xa000, 2],
          [0xb000, 4],
        ]) {
          // mov eax, value ; ret
          mm.memory.writeBytes(page!, Uint8Array.of(0xb8, value!, 0, 0, 0, 0xc3));
        }
      },
    );
    assert.equal(m.cpu.ebx, 20 * 1 + 20 * 2 + 20 * 4);
  });
  it("a block link made in supervisor mode is not followed into a supervisor page from user mode", () => {
    // The same JMP runs twenty times at CPL 0 (so its block is linked to the supervisor-only page
    // it reaches, and translated under --jit force) and then at CPL 3, where the fetch must fault.
    // Following the ring-0 link would run the RET there and end at the HLT's #GP instead.
    const m = run32(
      `${ENABLE}mov ecx, 20
    l: call hop
       dec ecx
       jnz l
       ${toRing3}
       call hop
       mov ebx, 1
       hlt
    hop:
       jmp 0x9000`,
      (mm) => {
        identity4M(mm);
        mm.memory.write32(pte(9), 0x9000 | 3); // supervisor only
        mm.memory.write8(0x9000, 0xc3); // ret
      },
    );
    assert.deepEqual(pageFault(m), { error: 5, cr2: 0x9000 });
    assert.equal(m.cpu.ebx, 0);
  });

  it("global pages survive CR3 writes while CR4.PGE is set", () => {
    const m = run32(
      `mov eax, cr4
       or eax, 0x80
       mov cr4, eax
       ${ENABLE}mov al, [0x9000]
       mov al, [0xb000]
       mov dword [${pte(9)}], 0xa107
       mov dword [${pte(0xb)}], 0xa007
       mov eax, cr3
       mov cr3, eax
       mov al, [0x9000]
       mov [0x2000], al
       mov al, [0xb000]
       mov [0x2001], al
       hlt`,
      (mm) => {
        identity4M(mm);
        mm.memory.write32(pte(9), 0x9107);
        mm.memory.write8(0x9000, 0x11);
        mm.memory.write8(0xa000, 0x22);
        mm.memory.write8(0xb000, 0x33);
      },
    );
    assert.deepEqual([...m.memory.readBytes(0x2000, 2)], [0x11, 0x22]);
  });
});

describe("monitor access", () => {
  it("translateLinear and readLinear walk the tables without faulting or setting accessed bits", () => {
    const m = run32(`${ENABLE}hlt`, (mm) => {
      identity4M(mm);
      mm.memory.write32(pte(0x20), 0x30000 | 7);
      mm.memory.write32(pte(0x21), 0);
      mm.memory.write32(0x30004, 0x12345678);
    });
    assert.equal(m.cpu.translateLinear(0x20004), 0x30004);
    assert.equal(m.cpu.translateLinear(0x21000), -1);
    assert.equal(m.cpu.translateLinear(0x800000), -1);
    assert.equal(m.cpu.readLinear(0x20004, 4), 0x12345678);
    assert.equal(m.cpu.readLinear(0x21000, 2), 0xffff);
    assert.equal(m.memory.read32(pte(0x20)) & 0x20, 0, "no accessed bit");
    m.cpu.eip -= 1;
    assert.deepEqual(m.cpu.instructionBytes(2), [0xf4, 0]);
  });
});

describe("large pages and PAE", () => {
  it("4 MiB pages with CR4.PSE", () => {
    const m = run32(
      `mov eax, cr4
       or eax, 0x10
       mov cr4, eax
       ${ENABLE}mov dword [0xc00010], 0x5a5a5a5a
       mov eax, [0x800010]
       hlt`,
      (mm) => {
        identity4M(mm);
        mm.memory.write32(PD + 2 * 4, 0x400000 | 0x83);
        mm.memory.write32(PD + 3 * 4, 0x400000 | 0x83);
      },
    );
    assert.equal(recorded(m), 0xff);
    assert.equal(m.cpu.eax, 0x5a5a5a5a);
    assert.equal(m.memory.read32(PD + 3 * 4) & 0x60, 0x60);
  });
  it("PSE-36: a 4 MiB page above 4 GiB, and reserved PDE bits fault with RSVD", () => {
    const m = makeMachine();
    m.memory.addRam("high", 0x1_0000_0000, 4 << 20);
    startProtected(
      m,
      assemble(
        `mov eax, cr4\nor eax, 0x10\nmov cr4, eax\n${ENABLE}mov dword [0x800004], 0xfeedf00d\nmov eax, [0xc00000]\nhlt`,
        32,
        0x10000,
      ),
    );
    identity4M(m);
    m.memory.write32(PD + 2 * 4, 0x83 | (1 << 13)); // 0x800000 -> 0x1_0000_0000
    m.memory.write32(PD + 3 * 4, 0x83 | (1 << 17)); // reserved bit 17
    runToHalt(m.cpu);
    assert.equal(m.memory.read32(0x1_0000_0004), 0xfeedf00d);
    assert.equal(m.cpu.translateLinear(0x800004), 0x1_0000_0004);
    assert.deepEqual(pageFault(m), { error: 9, cr2: 0xc00000 });
  });
  it("PAE with EFER.NXE: fetching from a no-execute page faults with I/D set", () => {
    const PDPT = 0x102000;
    const PAE_PD = 0x103000;
    const PAE_PT = 0x104000;
    const m = run32(
      `mov ecx, 0xc0000080
       rdmsr
       or eax, 0x800
       wrmsr
       mov eax, cr4
       or eax, 0x20
       mov cr4, eax
       mov eax, ${PDPT}
       mov cr3, eax
       mov eax, cr0
       or eax, 0x80000000
       mov cr0, eax
       mov eax, [0x9000]
       mov [0x2000], eax
       jmp 0x9000`,
      (mm) => {
        mm.memory.write32(PDPT, PAE_PD | 1);
        mm.memory.write32(PAE_PD, PAE_PT | 7);
        for (let p = 0; p < 512; p++) mm.memory.write32(PAE_PT + p * 8, (p << 12) | 7);
        mm.memory.write32(PAE_PT + 9 * 8 + 4, 0x80000000);
        mm.memory.write32(0x9000, 0x90909090);
      },
    );
    assert.equal(m.memory.read32(0x2000), 0x90909090, "NX pages stay readable");
    assert.deepEqual(pageFault(m), { error: 0x11, cr2: 0x9000 });
    assert.equal(m.memory.read32(m.cpu.esp + 4), 0x9000, "the fault's EIP is the target, not the jump");
  });
  describe("PAE PDPTEs are loaded with CR3", () => {
    const PDPT = 0x102000;
    const PAE_PD = 0x103000;
    const PD_A = 0x105000;
    const PD_B = 0x106000;
    const BAD_PDPT = 0x107000;
    const enablePae = `mov eax, cr4\nor eax, 0x20\nmov cr4, eax\nmov eax, ${PDPT}\nmov cr3, eax\n`;
    const pagingOn = "mov eax, cr0\nor eax, 0x80000000\nmov cr0, eax\n";
    /** PDPTE 0 identity-maps 0-2 MiB, PDPTE 1 maps 1 GiB to 0x200000 (PD_A); PD_B would map 0x400000. */
    const tables = (m: TestMachine): void => {
      m.memory.write32(PDPT, PAE_PD | 1);
      m.memory.write32(PDPT + 8, PD_A | 1);
      m.memory.write32(PAE_PD, 0x87);
      m.memory.write32(PD_A, 0x200000 | 0x87);
      m.memory.write32(PD_B, 0x400000 | 0x87);
      m.memory.write32(0x200000, 0x11111111);
      m.memory.write32(0x400000, 0x22222222);
      m.memory.write32(BAD_PDPT, PAE_PD | 1);
      m.memory.write32(BAD_PDPT + 8, PD_A | 1 | 4); // bit 2 is reserved in a PDPTE
    };

    it("walks use the loaded copies: a PDPT rewrite shows only after the next CR3 write", () => {
      const m = run32(
        `${enablePae}${pagingOn}
         mov ebx, [0x40000000]
         mov dword [${PDPT + 8}], ${PD_B | 1}
         invlpg [0x40000000]
         mov ecx, [0x40000000]
         mov eax, cr3
         mov cr3, eax
         mov edx, [0x40000000]
         hlt`,
        tables,
      );
      assert.equal(recorded(m), 0xff);
      assert.equal(m.cpu.ebx, 0x11111111);
      assert.equal(m.cpu.ecx, 0x11111111, "INVLPG does not reload the PDPTEs");
      assert.equal(m.cpu.edx, 0x22222222, "MOV CR3 does");
      assert.equal(m.cpu.translateLinear(0x40000000), 0x400000);
    });
    it("MOV CR3 to a PDPT with a reserved bit in a present entry: #GP(0), CR3 unchanged", () => {
      const m = run32(`${enablePae}${pagingOn}mov eax, ${BAD_PDPT}\nmov cr3, eax\nhlt`, tables);
      assert.equal(recorded(m), 13);
      assert.equal(m.memory.read32(m.cpu.esp), 0, "error code");
      assert.equal(m.cpu.cr3, PDPT);
      assert.equal(m.cpu.translateLinear(0x40000000), 0x200000);
    });
    it("MOV CR0 enabling PAE paging checks the PDPTEs too; not-present ones may hold anything", () => {
      const bad = run32(
        `mov eax, cr4\nor eax, 0x20\nmov cr4, eax\nmov eax, ${BAD_PDPT}\nmov cr3, eax\n${pagingOn}hlt`,
        tables,
      );
      assert.equal(recorded(bad), 13);
      assert.equal(bad.cpu.cr0 & 0x80000000, 0, "paging stays off");
      const notPresent = run32(`${enablePae}${pagingOn}mov ebx, [0x40000000]\nhlt`, (m) => {
        tables(m);
        m.memory.write32(PDPT + 16, 0xffe); // entry 2: reserved bits, but not present
      });
      assert.equal(recorded(notPresent), 0xff);
      assert.equal(notPresent.cpu.ebx, 0x11111111);
    });
  });
  it("CPUID advertises NX and EFER accepts only NXE", () => {
    const m = run32(
      "mov eax, 0x80000001\ncpuid\nmov ecx, 0xc0000080\nmov eax, 0x100\nxor edx, edx\nwrmsr\nhlt",
    );
    assert.ok(m.cpu.edx === 0 || (m.cpu.edx & (1 << 20)) !== 0);
    assert.equal(recorded(m), 13);
  });
});

describe("A20 and self-modifying code", () => {
  it("with A20 masked, addresses above 1 MiB wrap", () => {
    const m = makeMachine();
    m.cpu.setA20(false);
    m.memory.write8(0x0010, 0x5a);
    const code = assemble("mov ax, 0xffff\nmov ds, ax\nmov al, [0x20]\nhlt", 16, 0x1000);
    m.memory.writeBytes(0x1000, code);
    m.cpu.setSegment(1, { selector: 0, base: 0, limit: 0xffff, attributes: 0x9b });
    m.cpu.eip = 0x1000;
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax & 0xff, 0x5a);
    m.cpu.setA20(true);
    m.memory.write8(0x100010, 0xa5);
    m.cpu.eip = 0x1000;
    m.cpu.halted = false;
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax & 0xff, 0xa5);
  });
  it("a store into the current block changes what executes next", () => {
    const m = run32("mov byte [target+1], 0x42\ntarget: mov al, 0x11\nhlt");
    assert.equal(m.cpu.eax & 0xff, 0x42);
  });
  it("code rewritten after it was cached runs in its new form", () => {
    const m = run32(
      `mov ecx, 3
       again:
       call fn
       add ebx, eax
       mov byte [fn+1], 10
       loop again
       hlt
       fn: mov eax, 1
       ret`,
    );
    assert.equal(m.cpu.ebx, 1 + 10 + 10);
  });
  it("DMA-style writes (PhysicalMemory.writeBytes) invalidate decoded code", () => {
    const m = makeMachine();
    startProtected(m, assemble("mov eax, 1\nhlt", 32, 0x10000));
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax, 1);
    m.memory.writeBytes(0x10000, assemble("mov eax, 2\nhlt", 32, 0x10000));
    m.cpu.eip = 0x10000;
    m.cpu.halted = false;
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax, 2);
  });
  it("real-mode code runs after the BIOS-style jump at the reset vector", () => {
    const m = run16("mov ax, 0x1234\nhlt");
    assert.equal(m.cpu.eax & 0xffff, 0x1234);
  });
});

describe("memory map changes", () => {
  it("re-routing a page drops direct RAM access and decoded code from it", () => {
    const m = makeMachine();
    startProtected(m, assemble("mov eax, [0x7000]\nhlt", 32, 0x10000));
    m.memory.write32(0x7000, 0x11111111);
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax, 0x11111111);
    // A ROM laid over the page (as chipset shadowing or a BAR would) must be seen at once.
    const rom = m.memory.addRom("overlay", 0x7000, Uint8Array.of(0x22, 0x22, 0x22, 0x22));
    m.cpu.eip = 0x10000;
    m.cpu.halted = false;
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax, 0x22222222);
    m.memory.removeRegion(rom);
    m.cpu.eip = 0x10000;
    m.cpu.halted = false;
    runToHalt(m.cpu);
    assert.equal(m.cpu.eax, 0x11111111);
  });
});
