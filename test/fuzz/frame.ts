// The frame random byte streams run in: a multiboot kernel that sets up one execution environment
// (real mode, 16-bit protected mode, 32-bit protected mode, or 32-bit with paging), points every
// interrupt vector at a stub that reports the vector through isa-debug-exit, and jumps to a code
// slot at linear 0x20000 that the fuzzer fills with random bytes.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type FuzzMode = "real" | "pm16" | "pm32" | "paging";
export const FUZZ_MODES: readonly FuzzMode[] = ["real", "pm16", "pm32", "paging"];

/** Linear address the random code runs at, in every mode. */
export const SLOT_ADDRESS = 0x20000;
/** Bytes of random code the slot holds (the rest of its 4 KiB page stays zero). */
export const SLOT_BYTES = 0x1000;
/** Marks the slot in the assembled image so the fuzzer can find and overwrite it. */
const SLOT_MARK = "TSVISOR-FUZZSLOT";

/** Exit status the vector stubs produce for vector v: QEMU's (v << 1) | 1. */
export function vectorStatus(vector: number): number {
  return (vector << 1) | 1;
}

function source(mode: FuzzMode): string {
  const enter: Record<FuzzMode, string[]> = {
    pm32: ["lidt [idt_descriptor]", "mov eax, 0x20000", "xor ebx, ebx", "jmp eax"],
    paging: [
      // 0-16 MiB identity-mapped with 4 MiB pages; everything above is not present.
      "mov edi, 0x200000",
      "xor eax, eax",
      "mov ecx, 1024",
      ".zero:",
      "mov [edi], eax",
      "add edi, 4",
      "dec ecx",
      "jnz .zero",
      "mov dword [0x200000], 0x00000083",
      "mov dword [0x200004], 0x00400083",
      "mov dword [0x200008], 0x00800083",
      "mov dword [0x20000c], 0x00c00083",
      "mov eax, cr4",
      "or eax, 0x10",
      "mov cr4, eax",
      "mov eax, 0x200000",
      "mov cr3, eax",
      "mov eax, cr0",
      "or eax, 0x80000000",
      "mov cr0, eax",
      "lidt [idt_descriptor]",
      "mov eax, 0x20000",
      "jmp eax",
    ],
    pm16: [
      "lidt [idt_descriptor]",
      "mov ax, 0x20",
      "mov ds, ax",
      "mov es, ax",
      "mov ss, ax",
      "mov esp, 0xf000",
      "jmp 0x18:0",
    ],
    real: ["lidt [real_idt_descriptor]", "jmp 0x18:real_trampoline"],
  };
  return `BITS 32
ORG 0x100000
MB_FLAGS equ 0x00010000
section .text
mb_header:
dd 0x1BADB002, MB_FLAGS, -(0x1BADB002 + MB_FLAGS)
dd mb_header, mb_header, 0, 0, start
start:
cli
lgdt [gdt_descriptor]
jmp 0x08:.flat
.flat:
mov ax, 0x10
mov ds, ax
mov es, ax
mov ss, ax
mov fs, ax
mov gs, ax
mov esp, 0x90000
; the low blob (code slot, real-mode trampoline) to 0x20000
mov esi, section..low.start
mov edi, 0x20000
mov ecx, 0x1100 / 4 ; the slot and the trampoline
cld
rep movsd
; vector stubs to 0x30000: mov al, v / out 0xf4, al / cli / hlt
mov edi, 0x30000
xor ecx, ecx
.stub:
mov byte [edi], 0xb0
mov [edi+1], cl
mov dword [edi+2], 0xf4faf4e6
add edi, 6
inc ecx
cmp ecx, 256
jb .stub
; IDT at 0x31000: 256 32-bit interrupt gates to the stubs; IVT at 0: the same stubs
mov edi, 0x31000
mov ebx, 0
mov eax, 0x30000
xor ecx, ecx
.gate:
mov [edi], ax
mov word [edi+2], 0x08
mov word [edi+4], 0x8e00
mov word [edi+6], 0x0003
mov [ebx], cx
mov word [ebx+2], 0x3000
add edi, 8
add ebx, 4
add eax, 6
add cx, 6
cmp eax, 0x30000 + 256*6
jb .gate
xor eax, eax
xor ebx, ebx
xor ecx, ecx
xor edx, edx
xor esi, esi
xor edi, edi
xor ebp, ebp
${enter[mode].join("\n")}
align 8
gdt:
dq 0
dd 0x0000ffff, 0x00cf9a00 ; 0x08 flat code
dd 0x0000ffff, 0x00cf9200 ; 0x10 flat data
dd 0x0000ffff, 0x00009a02 ; 0x18 16-bit code at 0x20000
dd 0x0000ffff, 0x00009202 ; 0x20 16-bit data at 0x20000
gdt_end:
gdt_descriptor:
dw gdt_end - gdt - 1
dd gdt
idt_descriptor:
dw 256*8 - 1
dd 0x31000
real_idt_descriptor:
dw 0x3ff
dd 0
section .low vstart=0 follows=.text
BITS 16
slot:
db "${SLOT_MARK}"
times ${SLOT_BYTES} - ($ - slot) db 0
real_trampoline:
mov ax, 0x20
mov ds, ax
mov es, ax
mov ss, ax
mov eax, cr0
and al, 0xfe
mov cr0, eax
jmp 0x2000:.real
.real:
mov ax, 0x2000
mov ds, ax
mov es, ax
mov ss, ax
mov sp, 0xf000
xor eax, eax
jmp 0x2000:0
times 0x1100 - ($ - slot) db 0
low_end:
`;
}

/** The assembled frames, one per mode, and where their code slots are. */
export class FuzzFrames {
  private readonly images = new Map<FuzzMode, { image: Uint8Array; slot: number }>();

  /** Assembles the frames with nasm (in a temporary directory, removed afterwards). */
  constructor() {
    const dir = mkdtempSync(join(tmpdir(), "tsvisor-fuzz-"));
    try {
      for (const mode of FUZZ_MODES) {
        const asm = join(dir, `${mode}.asm`);
        const bin = join(dir, `${mode}.bin`);
        writeFileSync(asm, source(mode));
        execFileSync("nasm", ["-f", "bin", "-o", bin, asm]);
        const image = new Uint8Array(readFileSync(bin));
        const slot = Buffer.from(image).indexOf(Buffer.from(SLOT_MARK));
        if (slot < 0) throw new Error(`fuzz frame ${mode}: code slot not found`);
        this.images.set(mode, { image, slot });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** A copy of the frame for `mode` with `code` in its slot. */
  withCode(mode: FuzzMode, code: Uint8Array): Uint8Array {
    const { image, slot } = this.images.get(mode)!;
    if (code.length > SLOT_BYTES) throw new RangeError(`fuzz code is longer than ${SLOT_BYTES} bytes`);
    const copy = image.slice();
    copy.fill(0, slot, slot + SLOT_BYTES);
    copy.set(code, slot);
    return copy;
  }
}
