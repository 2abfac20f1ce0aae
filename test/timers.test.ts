// System test: guest-visible time. A multiboot program written here measures, over one second of
// the ACPI PM timer, how far the PIT, the local APIC timer and the TSC advance, and reads the RTC;
// the rates must match the nominal frequencies within 1%, and the RTC the host's clock.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { buildPc } from "../src/machine/pc.ts";
import { testPc } from "../src/machine/test-support.ts";
import { have } from "./support/tools.ts";

const PM_TIMER_HZ = 3_579_545;
const PIT_HZ = 1_193_182;
/** The local APIC timer counts at the 1 GHz bus clock (divide by 1). */
const APIC_HZ = 1e9;
/** The TSC runs at 1 GHz. */
const TSC_HZ = 1e9;

// Prints EAX as 8 hex digits and a newline on the debug console (port 0xE9).
const PROGRAM = `
BITS 32
section .text
align 4
    dd 0x1BADB002, 0, -(0x1BADB002)
global _start
_start:
    mov esp, 0x90000
    ; RTC: wait for no update in progress, then read seconds, minutes, hours, day, month, year (BCD).
.uip: mov al, 0x0a
    out 0x70, al
    in al, 0x71
    test al, 0x80
    jnz .uip
    mov ecx, 0
    mov esi, rtc_regs
.rtc: mov al, [esi + ecx]
    out 0x70, al
    in al, 0x71
    movzx eax, al
    call hex
    inc ecx
    cmp ecx, 6
    jb .rtc
    ; PIT channel 0, mode 2, count 65536 (lobyte/hibyte 0).
    mov al, 0x34
    out 0x43, al
    xor al, al
    out 0x40, al
    out 0x40, al
    ; Local APIC: software enable, timer masked one-shot, divide by 1, count from 0xFFFFFFFF.
    mov dword [0xfee000f0], 0x1ff
    mov dword [0xfee00320], 0x10000
    mov dword [0xfee003e0], 0x0b
    mov dword [0xfee00380], 0xffffffff
    mov eax, [0xfee00390]
    mov [apic0], eax
    rdtsc
    mov [tsc0], eax
    mov [tsc0 + 4], edx
    call pit_read
    mov [pit_last], eax
    mov dx, 0x608
    in eax, dx
    and eax, 0xffffff
    mov [pm_last], eax
.loop:
    ; PIT ticks elapsed since the last read (the counter counts down and wraps at 65536).
    call pit_read
    mov ebx, [pit_last]
    mov [pit_last], eax
    sub ebx, eax
    and ebx, 0xffff
    add [pit_ticks], ebx
    ; PM timer ticks, 24 bits with wrap.
    mov dx, 0x608
    in eax, dx
    and eax, 0xffffff
    mov ebx, eax
    sub ebx, [pm_last]
    and ebx, 0xffffff
    mov [pm_last], eax
    add [pm_ticks], ebx
    cmp dword [pm_ticks], ${PM_TIMER_HZ}
    jb .loop
    rdtsc
    sub eax, [tsc0]
    sbb edx, [tsc0 + 4]
    mov [tsc_lo], eax
    mov eax, [0xfee00390]
    mov ebx, [apic0]
    sub ebx, eax
    mov eax, [pm_ticks]
    call hex
    mov eax, [pit_ticks]
    call hex
    mov eax, ebx
    call hex
    mov eax, [tsc_lo]
    call hex
    mov al, 0
    out 0xf4, al
.halt: cli
    hlt
    jmp .halt

; EAX = PIT channel 0 count (latched).
pit_read:
    mov al, 0x00
    out 0x43, al
    in al, 0x40
    mov ah, al
    in al, 0x40
    xchg al, ah
    movzx eax, ax
    ret

hex:
    push eax
    push ecx
    push edx
    mov edx, eax
    mov ecx, 8
.digit: rol edx, 4
    mov eax, edx
    and eax, 15
    mov al, [digits + eax]
    out 0xe9, al
    loop .digit
    mov al, 10
    out 0xe9, al
    pop edx
    pop ecx
    pop eax
    ret

section .data
digits: db "0123456789abcdef"
rtc_regs: db 0x00, 0x02, 0x04, 0x07, 0x08, 0x09
align 4
apic0: dd 0
tsc0: dd 0, 0
tsc_lo: dd 0
pit_last: dd 0
pit_ticks: dd 0
pm_last: dd 0
pm_ticks: dd 0
`;

describe("guest-visible time", () => {
  it("PIT, PM timer, APIC timer and TSC run at their nominal rates; the RTC shows the host's time", {
    skip: !(have("nasm") && have("ld")) && "nasm and ld are needed",
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "tsvisor-timers-"));
    writeFileSync(join(dir, "t.asm"), PROGRAM);
    execFileSync("nasm", ["-f", "elf32", "-o", join(dir, "t.o"), join(dir, "t.asm")]);
    execFileSync("ld", ["-m", "elf_i386", "-Ttext=0x100000", "-o", join(dir, "t.elf"), join(dir, "t.o")]);
    const machine = buildPc(
      testPc({ memoryBytes: 32 << 20, kernel: join(dir, "t.elf"), debugExit: true, timeoutSeconds: 10 }),
    );
    let out = "";
    machine.setOutput("debugcon", (d) => {
      out += Buffer.from(d).toString("latin1");
    });
    const hostStart = new Date();
    const reason = await machine.run();
    assert.equal(reason.kind, "debug-exit", `${reason.detail}\n${out}`);
    const values = out
      .trim()
      .split("\n")
      .map((h) => Number.parseInt(h, 16));
    assert.equal(values.length, 10, out);
    const [sec, min, hour, day, month, year, pm, pit, apic, tsc] = values as [number, ...number[]];
    const bcd = (v: number) => (v >> 4) * 10 + (v & 15);
    const rtc = Date.UTC(2000 + bcd(year!), bcd(month!) - 1, bcd(day!), bcd(hour!), bcd(min!), bcd(sec));
    assert.ok(
      Math.abs(rtc - hostStart.getTime()) < 5000,
      `RTC ${new Date(rtc).toISOString()} vs host ${hostStart.toISOString()}`,
    );
    const seconds = pm! / PM_TIMER_HZ;
    assert.ok(seconds >= 1 && seconds < 1.01, `PM timer measured ${pm} ticks`);
    const within1 = (measured: number, hz: number, what: string) => {
      const rate = measured / seconds;
      assert.ok(Math.abs(rate / hz - 1) < 0.01, `${what}: ${rate.toFixed(0)} Hz, nominal ${hz}`);
    };
    within1(pit!, PIT_HZ, "PIT");
    within1(apic!, APIC_HZ, "APIC timer");
    within1(tsc!, TSC_HZ, "TSC");
  });
});
