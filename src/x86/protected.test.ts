// Protected mode: mode switches, segment checks with their error codes, privilege changes through
// IRET, interrupt and call gates, task switches, virtual-8086 mode, double and triple faults.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CS, DS, IF, NT, RF as RF_BIT, VM } from "./flags.ts";
import {
  assemble,
  IDT_BASE,
  makeMachine,
  RECORD,
  recorded,
  run32,
  runToHalt,
  startProtected,
  startRealWithIvt,
  type TestMachine,
  TSS_BASE,
  writeDescriptor,
  writeStandardGdt,
} from "./test-support.ts";

/**
 * Enters ring 3 (flat segments 0x1b/0x23, ESP 0x70000) with EFLAGS `flags`; what follows runs there.
 * DS and ES are reloaded: the IRET to an outer level nulls the ring-0 data selectors.
 */
function toRing3(flags = "0x002"): string {
  return `push 0x23\npush 0x70000\npush ${flags}\npush 0x1b\npush ring3\niretd\nring3:\nmov ax, 0x23\nmov ds, ax\nmov es, ax\n`;
}

/** Points IDT vector `v` at `label` with the given access byte (default: DPL 3 interrupt gate). */
function gate(v: number, label: string, access = 0xee): string {
  const at = 0x1000 + v * 8;
  return (
    `mov eax, ${label}\nmov [${at}], ax\nmov word [${at + 2}], 0x08\nmov byte [${at + 5}], ${access}\n` +
    `shr eax, 16\nmov [${at + 6}], ax\n`
  );
}

describe("alignment check", () => {
  const setAm = "mov eax, cr0\nor eax, 0x40000\nmov cr0, eax\n";
  const AC_FLAGS = "0x40002";
  /** Runs `body` at CPL 3 with the given EFLAGS; ends with EBX = 1 and a HLT, which is #GP at CPL 3. */
  const user = (prefix: string, flags: string, body: string): TestMachine =>
    run32(`${prefix}${toRing3(flags)}${body}\nmov ebx, 1\nhlt`);
  it("CR0.AM, EFLAGS.AC and CPL 3: a misaligned read or write raises #AC(0)", () => {
    for (const body of [
      "mov eax, [0x60001]",
      "mov [0x60002], eax",
      "mov ax, [0x60003]",
      "push dword 1\npush word 2\npush dword 3",
    ]) {
      const m = user(setAm, AC_FLAGS, body);
      assert.equal(recorded(m), 17, body);
      assert.equal(m.memory.read32(m.cpu.esp), 0, "error code 0");
      assert.equal(m.cpu.ebx, 0);
    }
  });
  it("aligned accesses, byte accesses, and any access without AM, without AC or at CPL 0 are fine", () => {
    const aligned = user(setAm, AC_FLAGS, "mov eax, [0x60004]\nmov [0x60002], ax\nmov al, [0x60003]");
    assert.equal(recorded(aligned), 13);
    assert.equal(aligned.cpu.ebx, 1);
    for (const [prefix, flags] of [
      ["", AC_FLAGS],
      [setAm, "0x002"],
    ]) {
      const m = user(prefix!, flags!, "mov eax, [0x60001]");
      assert.equal(recorded(m), 13);
      assert.equal(m.cpu.ebx, 1);
    }
    const ring0 = run32(`${setAm}push dword ${AC_FLAGS}\npopfd\nmov eax, [0x60001]\nmov ebx, 1\nhlt`);
    assert.equal(recorded(ring0), 0xff);
    assert.equal(ring0.cpu.ebx, 1);
  });
  it("POPF setting AC at CPL 3 turns the check on", () => {
    const m = user(
      setAm,
      "0x002",
      "mov eax, [0x60001]\npush dword 0x40002\npopfd\nmov ecx, 7\nmov eax, [0x60001]",
    );
    assert.equal(m.cpu.ecx, 7);
    assert.equal(recorded(m), 17);
  });
});

describe("mode switches", () => {
  it("real -> protected -> real keeps a 4 GiB data limit (unreal mode)", () => {
    const m = makeMachine();
    writeStandardGdt(m.memory);
    const code = assemble(
      `cli
       lgdt [gdtr]
       mov eax, cr0
       or al, 1
       mov cr0, eax
       jmp 0x08:pm32
       bits 32
       pm32:
       mov ax, 0x10
       mov ds, ax
       mov dword [0x200000], 0xcafef00d
       jmp 0x30:pm16
       bits 16
       pm16:
       mov eax, cr0
       and al, 0xfe
       mov cr0, eax
       jmp 0:real
       real:
       mov ebx, [dword 0x200000]
       xor ax, ax
       mov ds, ax
       mov ecx, [dword 0x200004 - 4]
       hlt
       gdtr: dw 0xff
       dd 0x800`,
      16,
      0x1000,
    );
    startRealWithIvt(m, code);
    runToHalt(m.cpu);
    assert.equal(recorded(m), 0xff);
    assert.equal(m.cpu.ebx, 0xcafef00d);
    assert.equal(m.cpu.ecx, 0xcafef00d);
    assert.equal(m.cpu.protectedMode, false);
    assert.equal(m.cpu.getSegment(DS).limit, 0xffffffff);
  });
});

describe("segment checks", () => {
  function fault(src: string, setup?: Parameters<typeof run32>[1]) {
    const m = run32(`${src}\nhlt`, setup);
    return { vector: recorded(m), error: m.memory.read32(m.cpu.esp), m };
  }
  it("a selector beyond the GDT limit: #GP(selector)", () => {
    assert.deepEqual((({ vector, error }) => ({ vector, error }))(fault("mov ax, 0x100\nmov ds, ax")), {
      vector: 13,
      error: 0x100,
    });
  });
  it("a null SS: #GP(0)", () => {
    const r = fault("xor eax, eax\nmov ss, ax");
    assert.equal(r.vector, 13);
    assert.equal(r.error, 0);
  });
  it("a not-present data segment: #NP(selector)", () => {
    const r = fault("mov ax, 0x40\nmov ds, ax", (m) =>
      writeDescriptor(m.memory, 0x840, 0, 0xfffff, 0x13, 0xc),
    );
    assert.equal(r.vector, 11);
    assert.equal(r.error, 0x40);
  });
  it("a code segment without read permission cannot be loaded into DS", () => {
    const r = fault("mov ax, 0x40\nmov ds, ax", (m) =>
      writeDescriptor(m.memory, 0x840, 0, 0xfffff, 0x98, 0xc),
    );
    assert.equal(r.vector, 13);
    assert.equal(r.error, 0x40);
  });
  it("an offset past the limit: #GP(0), and #SS(0) through SS", () => {
    const setup = (m: Parameters<NonNullable<Parameters<typeof run32>[1]>>[0]) =>
      writeDescriptor(m.memory, 0x848, 0, 0xfff, 0x93, 0x4);
    let r = fault("mov ax, 0x48\nmov es, ax\nmov eax, [es:0xffd]", setup);
    assert.equal(r.vector, 13);
    assert.equal(r.error, 0);
    r = fault("mov ax, 0x48\nmov ss, ax\nmov esp, 0xf00\nmov eax, [ss:0x2000]", setup);
    assert.equal(r.vector, 12);
    assert.equal(r.error, 0);
  });
  it("expand-down segments accept only offsets above the limit", () => {
    const setup = (m: Parameters<NonNullable<Parameters<typeof run32>[1]>>[0]) =>
      writeDescriptor(m.memory, 0x850, 0, 0xfff, 0x97, 0x4);
    const ok = fault("mov ax, 0x50\nmov es, ax\nmov eax, [es:0x1000]", setup);
    assert.equal(ok.vector, 0xff);
    const bad = fault("mov ax, 0x50\nmov es, ax\nmov eax, [es:0xfff]", setup);
    assert.equal(bad.vector, 13);
  });
  it("writing through a code segment: #GP(0)", () => {
    const r = fault("mov [cs:0x2000], eax");
    assert.equal(r.vector, 13);
    assert.equal(r.error, 0);
  });
});

describe("privilege changes", () => {
  it("INT from ring 3 switches to the TSS stack and IRET returns", () => {
    const m = run32(
      `${gate(0x80, "handler")}${toRing3()}
       int 0x80
       mov [0x2004], esp
       mov ecx, cs
       mov [0x2008], ecx
       cli
       hlt
       handler:
       mov [0x2000], esp
       mov eax, [esp+4]
       mov [0x200c], eax
       iretd`,
    );
    assert.equal(m.memory.read32(0x2000), 0x90000 - 20);
    assert.equal(m.memory.read32(0x2004), 0x70000);
    assert.equal(m.memory.read32(0x2008), 0x1b);
    assert.equal(m.memory.read32(0x200c), 0x1b);
    // CLI at CPL 3 with IOPL 0: #GP(0) on the ring-0 stack (with SS:ESP, EFLAGS, CS:EIP, error code).
    assert.equal(recorded(m), 13);
    assert.equal(m.cpu.esp, 0x90000 - 24);
    assert.equal(m.memory.read32(m.cpu.esp), 0);
    assert.equal(m.cpu.cpl, 0);
  });
  it("PVI: CLI and STI at CPL 3 toggle VIF instead of faulting; STI with VIP pending faults", () => {
    const m = run32(
      `mov eax, cr4\nor eax, 2\nmov cr4, eax\n${toRing3("0x80002")}cli\npushfd\npop ebx\nsti\npushfd\npop ecx\nhlt`,
    );
    assert.equal(m.cpu.ebx & (1 << 19), 0);
    assert.ok(m.cpu.ecx & (1 << 19));
    assert.equal(recorded(m), 13, "HLT still faults");
    const vip = run32(`mov eax, cr4\nor eax, 2\nmov cr4, eax\n${toRing3("0x100002")}sti\nmov ebx, 1\nhlt`);
    assert.equal(recorded(vip), 13);
    assert.equal(vip.cpu.ebx, 0);
  });
  it("INT n through a DPL 0 gate from ring 3: #GP(n*8+2)", () => {
    const m = run32(`${toRing3()}int 0x81\nhlt`, (mm) => mm.memory.write8(0x1000 + 0x81 * 8 + 5, 0x8e));
    assert.equal(recorded(m), 13);
    assert.equal(m.memory.read32(m.cpu.esp), 0x81 * 8 + 2);
  });
  it("a 16-bit interrupt gate pushes a 16-bit frame and enters 16-bit code", () => {
    const m = run32(
      "mov word [0x1000 + 0x50 * 8 + 2], 0x30\nmov byte [0x1000 + 0x50 * 8 + 5], 0xe6\nint 0x50\nhlt",
      (mm) => {
        mm.memory.write16(0x1000 + 0x50 * 8, 0x7000);
        mm.memory.write16(0x1000 + 0x50 * 8 + 6, 0);
        mm.memory.writeBytes(0x7000, Uint8Array.of(0xb8, 0x34, 0x12, 0xf4)); // mov ax, 0x1234 ; hlt
      },
    );
    assert.equal(m.cpu.eax & 0xffff, 0x1234);
    assert.equal(m.cpu.esp, 0x80000 - 6);
    assert.equal(m.memory.read16(m.cpu.esp), 0x0012, "IP: the low half of the return address 0x10012");
    assert.equal(m.memory.read16(m.cpu.esp + 2), 0x08, "CS");
    assert.equal(m.cpu.getSegment(CS).selector, 0x30);
    assert.equal(m.cpu.eflags & IF, 0);
  });
  it("a call gate copies parameters to the inner stack and RETF n returns outward", () => {
    const m = run32(
      `mov eax, gatehandler
       mov [0x840], ax
       mov word [0x842], 0x08
       mov byte [0x844], 2
       mov byte [0x845], 0xec
       shr eax, 16
       mov [0x846], ax
       ${toRing3()}
       push 0x11111111
       push 0x22222222
       call 0x43:0
       mov [0x2010], esp
       hlt
       gatehandler:
       mov [0x2000], esp
       mov eax, [esp+8]
       mov [0x2004], eax
       mov eax, [esp+12]
       mov [0x2008], eax
       mov eax, [esp+16]
       mov [0x200c], eax
       retf 8`,
    );
    assert.equal(m.memory.read32(0x2000), 0x90000 - 24);
    assert.equal(m.memory.read32(0x2004), 0x22222222);
    assert.equal(m.memory.read32(0x2008), 0x11111111);
    assert.equal(m.memory.read32(0x200c), 0x70000 - 8);
    assert.equal(m.memory.read32(0x2010), 0x70000);
    assert.equal(recorded(m), 13); // HLT at CPL 3
  });
  it("a ring-3 data segment selector cannot reach DPL 0 data", () => {
    const m = run32(`${toRing3()}mov ax, 0x10\nmov ds, ax\nhlt`);
    assert.equal(recorded(m), 13);
    assert.equal(m.memory.read32(m.cpu.esp), 0x10);
  });
  it("SYSENTER and SYSEXIT use the flat segments next to SYSENTER_CS", () => {
    const m = run32(
      `mov ecx, 0x174
       mov eax, 0x08
       xor edx, edx
       wrmsr
       inc ecx
       mov eax, 0x90000
       wrmsr
       inc ecx
       mov eax, kernel
       wrmsr
       ${toRing3()}
       sysenter
       kernel:
       mov [0x2000], esp
       mov eax, cs
       mov [0x2004], eax
       mov ecx, 0x70000
       mov edx, back
       sysexit
       back:
       mov eax, cs
       mov [0x2008], eax
       mov [0x200c], esp
       hlt`,
    );
    assert.equal(m.memory.read32(0x2000), 0x90000);
    assert.equal(m.memory.read32(0x2004), 0x08);
    assert.equal(m.memory.read32(0x2008), 0x1b);
    assert.equal(m.memory.read32(0x200c), 0x70000);
  });
  it("port I/O at CPL 3 follows the TSS I/O bitmap", () => {
    const denied = run32(`${toRing3()}in al, 0x80\nhlt`);
    assert.equal(recorded(denied), 13);
    assert.equal(denied.memory.read32(denied.cpu.esp), 0);
    const allowed = run32(`${toRing3()}in al, 0x80\nmov [0x2000], al\nhlt`, (m) => {
      writeDescriptor(m.memory, 0x828, TSS_BASE, 0x68 + 0x20, 0x8b, 0);
      m.cpu.setSegment(7, { selector: 0x28, base: TSS_BASE, limit: 0x88, attributes: 0x8b });
      m.memory.write8(TSS_BASE + 0x68 + 16, 0xfe); // port 0x80 allowed, 0x81.. denied
    });
    assert.equal(allowed.memory.read8(0x2000), 0xff);
  });
});

describe("task switching", () => {
  it("CALL to a TSS sets NT and the back link; IRET returns to the caller", () => {
    const t2 = 0x5100;
    const m = run32(
      `mov dword [${t2 + 0x20}], task2
       mov dword [${t2 + 0x24}], 2
       mov dword [${t2 + 0x38}], 0x60000
       mov word [${t2 + 0x48}], 0x10
       mov word [${t2 + 0x4c}], 0x08
       mov word [${t2 + 0x50}], 0x10
       mov word [${t2 + 0x54}], 0x10
       mov eax, 0x11
       call 0x58:0
       mov [0x2008], eax
       hlt
       task2:
       mov [0x2000], esp
       pushfd
       pop eax
       mov [0x2004], eax
       str word [0x200c]
       iretd`,
      (mm) => writeDescriptor(mm.memory, 0x858, t2, 0x67, 0x89, 0),
    );
    assert.equal(recorded(m), 0xff);
    assert.equal(m.memory.read32(0x2000), 0x60000);
    assert.ok(m.memory.read32(0x2004) & NT);
    assert.equal(m.memory.read32(0x2008), 0x11);
    assert.equal(m.memory.read16(0x200c), 0x58);
    assert.equal(m.memory.read16(t2), 0x28, "back link");
    assert.equal(m.cpu.getSegment(7).selector, 0x28);
    assert.equal((m.memory.read32(0x858 + 4) >> 8) & 0xf, 9, "task 2 no longer busy");
    assert.ok(m.cpu.cr0 & 8, "CR0.TS");
    assert.equal(m.cpu.eflags & NT, 0);
  });
  it("INT through a task gate runs the handler as a task and IRET resumes the interrupted one", () => {
    const t2 = 0x5100;
    const m = run32(
      `mov dword [${t2 + 0x20}], task2
       mov dword [${t2 + 0x24}], 2
       mov dword [${t2 + 0x38}], 0x60000
       mov word [${t2 + 0x48}], 0x10
       mov word [${t2 + 0x4c}], 0x08
       mov word [${t2 + 0x50}], 0x10
       mov word [${t2 + 0x54}], 0x10
       mov word [0x1000 + 0x40 * 8 + 2], 0x58
       mov byte [0x1000 + 0x40 * 8 + 5], 0xe5
       mov ebx, 0x77
       int 0x40
       mov [0x2004], ebx
       hlt
       task2:
       mov dword [0x2000], 1
       mov ebx, 0x99
       iretd`,
      (mm) => writeDescriptor(mm.memory, 0x858, t2, 0x67, 0x89, 0),
    );
    assert.equal(recorded(m), 0xff);
    assert.equal(m.memory.read32(0x2000), 1);
    assert.equal(m.memory.read32(0x2004), 0x77);
    assert.equal(m.memory.read32(t2 + 0x34), 0x99, "task 2's EBX saved in its TSS");
  });
  it("a TSS with the T bit traps into #DB before the new task's first instruction", () => {
    const t2 = 0x5100;
    const m = run32(
      `mov dword [${t2 + 0x20}], task2
       mov dword [${t2 + 0x24}], 2
       mov dword [${t2 + 0x38}], 0x60000
       mov word [${t2 + 0x48}], 0x10
       mov word [${t2 + 0x4c}], 0x08
       mov word [${t2 + 0x50}], 0x10
       mov word [${t2 + 0x54}], 0x10
       mov word [${t2 + 0x64}], 1
       jmp 0x58:0
       task2:
       mov ebx, 5
       hlt`,
      (mm) => writeDescriptor(mm.memory, 0x858, t2, 0x67, 0x89, 0),
    );
    assert.equal(recorded(m), 1);
    assert.equal(m.cpu.ebx, 0);
    assert.ok(m.cpu.dr[6]! & 0x8000);
  });
  it("JMP to a busy TSS raises #GP(selector)", () => {
    const m = run32("jmp 0x28:0\nhlt");
    assert.equal(recorded(m), 13);
    assert.equal(m.memory.read32(m.cpu.esp), 0x28);
  });
});

describe("virtual-8086 mode", () => {
  const enter = (flags: string) => `push 0
     push 0
     push 0x200
     push 0
     push 0
     push 0x7000
     push ${flags}
     push 0x1000
     push v86 - 0x10000
     iretd
     bits 16
     v86:
     mov ax, [0x10]
     mov [0x12], ax
     `;
  it("runs real-mode style code and INT n leaves through a ring-0 gate with the segment frame", () => {
    const m = run32(`${enter("0x23002")}int 0x21\nhlt`, (mm) => mm.memory.write16(0x2010, 0xbeef));
    assert.equal(m.memory.read16(0x2012), 0xbeef);
    assert.equal(recorded(m), 0x21);
    const sp = m.cpu.esp;
    assert.equal(sp, 0x90000 - 36);
    assert.equal(m.memory.read32(sp + 4), 0x1000, "CS");
    assert.ok(m.memory.read32(sp + 8) & VM, "EFLAGS.VM");
    assert.equal(m.memory.read32(sp + 12), 0x7000, "ESP");
    assert.equal(m.memory.read32(sp + 24), 0x200, "DS");
    assert.equal(m.cpu.vm86, false);
    assert.equal(m.cpu.getSegment(DS).selector, 0);
  });
  it("VME: CLI/STI/PUSHF use VIF and INT n is redirected through the task's own IVT", () => {
    const m = run32(
      `mov eax, cr4
       or eax, 1
       mov cr4, eax
       ${enter("0x20002")}cli
       sti
       pushf
       pop bx
       int 0x21
       mov cx, ax
       int 0x22
       hlt`,
      (mm) => {
        // I/O map at 0x88, so the 32-byte redirection bitmap is at 0x68; vector 0x22 not redirected.
        mm.memory.write16(TSS_BASE + 0x66, 0x88);
        mm.memory.write8(TSS_BASE + 0x68 + (0x22 >> 3), 1 << (0x22 & 7));
        mm.cpu.setSegment(7, { selector: 0x28, base: TSS_BASE, limit: 0x88 + 8, attributes: 0x8b });
        mm.memory.write16(0x21 * 4, 0x0100);
        mm.memory.write16(0x21 * 4 + 2, 0x2000);
        mm.memory.writeBytes(0x20100, Uint8Array.of(0xb8, 0x55, 0x00, 0xcf)); // mov ax, 0x55 ; iret
      },
    );
    assert.equal(m.cpu.ebx & 0x3200, 0x3200, "PUSHF image: IF from VIF, IOPL 3");
    assert.equal(m.cpu.ecx & 0xffff, 0x55, "the redirected handler ran and IRET came back");
    assert.equal(recorded(m), 13, "a vector whose redirection bit is set faults below IOPL 3");
    assert.ok(m.memory.read32(m.cpu.esp + 12) & (1 << 19), "VIF survived the virtual IRET");
    assert.equal(m.memory.read32(m.cpu.esp + 12) & 0x200, 0, "IF itself stayed clear");
  });
  it("CLI with IOPL < 3 raises #GP(0)", () => {
    const m = run32(`${enter("0x20002")}cli\nhlt`);
    assert.equal(recorded(m), 13);
    assert.equal(m.memory.read32(m.cpu.esp), 0);
  });
});

describe("exception escalation", () => {
  it("#GP whose handler is not present becomes a double fault", () => {
    const m = run32("mov ax, 0x100\nmov ds, ax\nhlt", (mm) => mm.memory.write8(0x1000 + 13 * 8 + 5, 0x6e));
    assert.equal(recorded(m), 8);
    assert.equal(m.memory.read32(m.cpu.esp), 0);
  });
  it("a fault with no usable IDT shuts the CPU down (triple fault)", () => {
    const m = run32("ud2\nhlt", (mm) => {
      mm.cpu.idtr = { base: 0x1000, limit: 0 };
    });
    assert.deepEqual(m.shutdowns, ["triple fault"]);
    assert.equal(m.cpu.isShutdown, true);
    assert.equal(m.cpu.run(100), 0);
  });
});

describe("interrupts", () => {
  it("INTR wakes HLT and vectors through the IDT", () => {
    const m = makeMachine({ interrupts: { acknowledge: () => 0x30 } });
    startProtected(m, assemble("sti\nhlt\nafter: mov eax, 1\nhlt", 32, 0x10000));
    runToHalt(m.cpu);
    assert.equal(m.cpu.halted, true);
    m.cpu.setIntr(true);
    m.cpu.run(10);
    assert.equal(recorded(m), 0x30);
    assert.equal(m.memory.read32(m.cpu.esp), 0x10002, "return EIP is after HLT");
  });
  it("a fault while delivering INTR reports the interrupted EIP and sets EXT", () => {
    const m = makeMachine({ interrupts: { acknowledge: () => 0x30 } });
    startProtected(m, assemble("sti\nnop\nnop\nhlt", 32, 0x10000));
    writeDescriptor(m.memory, 0x840, 0, 0xfffff, 0x1b, 0xc); // code segment, not present
    m.memory.write16(0x1000 + 0x30 * 8 + 2, 0x40);
    m.cpu.setIntr(true);
    runToHalt(m.cpu, 100);
    assert.equal(recorded(m), 11);
    assert.equal(m.memory.read32(m.cpu.esp), 0x41, "#NP(selector | EXT)");
    assert.equal(m.memory.read32(m.cpu.esp + 4), 0x10002);
  });
  it("STI delays interrupts by one instruction", () => {
    const m = makeMachine({ interrupts: { acknowledge: () => 0x31 } });
    startProtected(m, assemble("sti\nmov eax, 1\nmov ebx, 2\nhlt", 32, 0x10000));
    m.cpu.setIntr(true);
    runToHalt(m.cpu);
    assert.equal(recorded(m), 0x31);
    assert.equal(m.cpu.eax, 1);
    assert.equal(m.cpu.ebx, 0);
    assert.equal(m.memory.read32(m.cpu.esp + 8) & IF, IF, "pushed EFLAGS has IF");
  });
  it("INTR is ignored while IF is clear; NMI is not", () => {
    const m = makeMachine({ interrupts: { acknowledge: () => 0x31 } });
    startProtected(m, assemble("cli\njmp $", 32, 0x10000));
    m.cpu.setIntr(true);
    m.cpu.run(1000);
    assert.equal(recorded(m), 0xff);
    m.cpu.nmi();
    runToHalt(m.cpu, 1000);
    assert.equal(recorded(m), 2);
  });
  it("real-mode interrupts push FLAGS, CS, IP", () => {
    const m = makeMachine({ interrupts: { acknowledge: () => 0x08 } });
    startRealWithIvt(m, assemble("sti\nnop\nnop\nhlt", 16, 0x1000));
    m.cpu.setIntr(true);
    runToHalt(m.cpu, 100);
    assert.equal(recorded(m), 8);
    assert.equal(m.cpu.esp & 0xffff, 0x8000 - 6);
    assert.equal(m.memory.read16(0x8000 - 6), 0x1002);
    assert.equal(m.cpu.getSegment(CS).selector, 0);
  });
});

describe("debugging", () => {
  it("TF traps after the instruction following POPF, with DR6.BS", () => {
    const m = run32("pushfd\nor dword [esp], 0x100\npopfd\nmov eax, 1\nmov ebx, 2\nhlt");
    assert.equal(recorded(m), 1);
    assert.equal(m.cpu.eax, 1);
    assert.equal(m.cpu.ebx, 0);
    assert.ok(m.cpu.dr[6]! & 0x4000);
  });
  it("MOV SS holds a single-step trap until after the next instruction", () => {
    const m = run32(
      "pushfd\nor dword [esp], 0x100\npopfd\nmov ax, ss\nmov ss, ax\nmov ebx, 2\nmov ecx, 3\nhlt",
    );
    assert.equal(recorded(m), 1);
    assert.equal(m.cpu.ebx, 0, "first trap after MOV AX, SS");
    const m2 = run32(
      "mov ax, ss\npushfd\nor dword [esp], 0x100\npopfd\nmov ss, ax\nmov ebx, 2\nmov ecx, 3\nhlt",
    );
    assert.equal(recorded(m2), 1);
    assert.equal(m2.cpu.ebx, 2, "the MOV SS trap waits for MOV EBX");
    assert.equal(m2.cpu.ecx, 0);
  });
  it("a DR0 execution breakpoint faults before the instruction", () => {
    const m = run32("mov eax, target\nmov dr0, eax\nmov eax, 1\nmov dr7, eax\nnop\ntarget: mov ebx, 2\nhlt");
    assert.equal(recorded(m), 1);
    assert.equal(m.cpu.ebx, 0);
    assert.equal(m.cpu.dr[6]! & 0xf, 1);
  });
  it("with CR4.DE an I/O breakpoint traps after the port access", () => {
    const m = run32(
      "mov eax, cr4\nor eax, 8\nmov cr4, eax\nmov eax, 0x80\nmov dr0, eax\nmov eax, 0x20001\nmov dr7, eax\n" +
        "in al, 0x70\nout 0x80, al\nafter: mov ebx, 2\nhlt",
    );
    assert.equal(recorded(m), 1);
    assert.equal(m.cpu.ebx, 0);
    assert.equal(m.cpu.dr[6]! & 0xf, 1);
  });
  it("faults push EFLAGS with RF set; traps and an instruction breakpoint's #DB do not", () => {
    const ud = run32("ud2\nhlt");
    assert.equal(recorded(ud), 6);
    assert.equal(ud.memory.read32(ud.cpu.esp + 8) & RF_BIT, RF_BIT, "#UD frame");
    const int3 = run32("int3\nhlt");
    assert.equal(recorded(int3), 3);
    assert.equal(int3.memory.read32(int3.cpu.esp + 8) & RF_BIT, 0, "#BP frame");
    const bp = run32("mov eax, target\nmov dr0, eax\nmov eax, 1\nmov dr7, eax\nnop\ntarget: mov ebx, 2\nhlt");
    assert.equal(recorded(bp), 1);
    assert.equal(bp.memory.read32(bp.cpu.esp + 8) & RF_BIT, 0, "instruction-breakpoint #DB frame");
    assert.equal(bp.cpu.getFlags() & RF_BIT, 0, "the handler runs with RF clear");
  });
  it("IRET from a fault handler restarts a breakpointed instruction without a second #DB", () => {
    // DR0 on WAIT while CR0.MP and CR0.TS are set: #DB (the handler sets RF and returns), then
    // #NM, whose frame carries RF, so the restart after CLTS does not hit the breakpoint again.
    const m = run32(
      [
        ...[1, 7].flatMap((v) => [
          `mov eax, handler${v}`,
          `mov [${IDT_BASE + v * 8}], ax`,
          "shr eax, 16",
          `mov [${IDT_BASE + v * 8 + 6}], ax`,
        ]),
        "mov eax, cr0",
        "or eax, 0xa",
        "mov cr0, eax",
        "mov eax, target",
        "mov dr0, eax",
        "mov eax, 1",
        "mov dr7, eax",
        "target: fwait",
        "mov ecx, 5",
        "hlt",
        "handler1:",
        "inc dword [0x6000]",
        "or dword [esp+8], 0x10000",
        "iretd",
        "handler7:",
        "mov eax, [esp+8]",
        "mov [0x6004], eax",
        "clts",
        "iretd",
      ].join("\n"),
      (machine) => {
        machine.memory.write32(0x6000, 0);
        machine.memory.write32(0x6004, 0);
      },
    );
    assert.equal(m.cpu.ecx, 5, "ran to the end");
    assert.equal(m.memory.read32(0x6000), 1, "one #DB");
    assert.equal(m.memory.read32(0x6004) & RF_BIT, RF_BIT, "#NM frame has RF");
  });
  it("DR7.GD makes the next MOV DR fault with DR6.BD", () => {
    const m = run32("mov eax, 0x2000\nmov dr7, eax\nmov ebx, dr0\nhlt");
    assert.equal(recorded(m), 1);
    assert.ok(m.cpu.dr[6]! & 0x2000);
    assert.equal(m.cpu.dr[7]! & 0x2000, 0);
  });
  it("the trace hook sees every instruction", () => {
    const m = makeMachine();
    startProtected(m, assemble("nop\nnop\nnop\nhlt", 32, 0x10000));
    const seen: number[] = [];
    m.cpu.trace = (cpu) => seen.push(cpu.eip);
    runToHalt(m.cpu);
    assert.deepEqual(seen, [0x10000, 0x10001, 0x10002, 0x10003]);
  });
});

describe("state", () => {
  it("reset gives the SDM's power-on state", () => {
    const m = makeMachine();
    m.cpu.eax = 5;
    m.cpu.reset();
    const cs = m.cpu.getSegment(CS);
    assert.equal(cs.selector, 0xf000);
    assert.equal(cs.base, 0xffff0000);
    assert.equal(cs.limit, 0xffff);
    assert.equal(m.cpu.eip, 0xfff0);
    assert.equal(m.cpu.edx, 0x673);
    assert.equal(m.cpu.eax, 0);
    assert.equal(m.cpu.cr0 >>> 0, 0x60000010);
    assert.equal(m.cpu.eflags, 2);
  });
  it("saveState/loadState round-trips through structured clone", () => {
    const a = run32("mov eax, 0x1234\nmov ebx, 0x5678\nstc\nhlt");
    const saved = structuredClone(a.cpu.saveState());
    const b = makeMachine();
    b.memory.writeBytes(0, a.memory.readBytes(0, 0x100000));
    b.cpu.loadState(saved, a.cpu.stateVersion);
    assert.deepEqual(b.cpu.saveState(), a.cpu.saveState());
    assert.equal(b.cpu.ebx, 0x5678);
    assert.equal(b.cpu.eflags & 1, 1);
    assert.equal(b.cpu.getSegment(CS).attributes, 0xc09b);
  });
  it("loadState rejects malformed state and newer versions", () => {
    const m = makeMachine();
    assert.throws(() => m.cpu.loadState({} as never, 1), /malformed/);
    const good = m.cpu.saveState();
    assert.throws(() => m.cpu.loadState({ ...good, segments: good.segments.slice(1) }, 1), /segments/);
    assert.throws(() => m.cpu.loadState({ ...good, eip: "x" as never }, 1), /eip/);
    assert.throws(() => m.cpu.loadState({ ...good, msrs: [[1, 2]] as never }, 1), /msrs/);
    assert.equal(m.cpu.eip, good.eip, "a rejected state changes nothing");
    assert.throws(() => m.cpu.loadState(m.cpu.saveState(), 99), /version/);
  });
  it("tracks the mode", () => {
    const m = run32("hlt");
    assert.equal(m.cpu.protectedMode, true);
    assert.equal(m.memory.read8(RECORD), 0xff);
  });
});
