import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { PhysicalMemory } from "../core/memory.ts";
import {
  findMultibootHeader,
  loadMultiboot,
  MULTIBOOT_HEADER_MAGIC,
  MultibootError,
  pcMemoryMap,
} from "./multiboot.ts";

const work = mkdtempSync(join(tmpdir(), "tsvisor-multiboot-"));
after(() => rmSync(work, { recursive: true, force: true }));

/** Assembles `source` with nasm (and links it with ld when `link` is given). */
function build(name: string, source: string, format: "bin" | "elf32" | "elf64", link?: string[]): Uint8Array {
  // Copies: a Buffer from readFileSync may share a pooled ArrayBuffer, which DataView edits would miss.
  const asm = join(work, `${name}.asm`);
  const obj = join(work, `${name}.o`);
  writeFileSync(asm, source);
  execFileSync("nasm", ["-f", format, "-o", obj, asm]);
  if (!link) return new Uint8Array(readFileSync(obj));
  const out = join(work, `${name}.elf`);
  execFileSync("ld", [...link, "-o", out, obj]);
  return new Uint8Array(readFileSync(out));
}

const ELF_KERNEL = `
BITS 32
section .text
align 4
    dd 0x1BADB002
    dd 0x00000003
    dd -(0x1BADB002 + 3)
global _start
_start:
    mov eax, 0x12345678
    hlt
section .data
marker: db "DATA-SEGMENT"
section .bss
zeros: resb 8192
`;

const KLUDGE_KERNEL = `
BITS 32
ORG 0x200000
FLAGS equ 0x00010002
header:
    dd 0x1BADB002
    dd FLAGS
    dd -(0x1BADB002 + FLAGS)
    dd header        ; header_addr
    dd header        ; load_addr
    dd load_end      ; load_end_addr
    dd bss_end       ; bss_end_addr
    dd entry         ; entry_addr
entry:
    cli
    hlt
    db "KLUDGE"
load_end:
    times 100 db 0   ; in the file but beyond load_end_addr: must not be loaded
bss_end equ load_end + 0x3000
`;

function machine(ramBytes = 4 << 20): PhysicalMemory {
  const memory = new PhysicalMemory();
  memory.addRam("ram", 0, ramBytes);
  return memory;
}

function cstring(memory: PhysicalMemory, address: number): string {
  let s = "";
  for (let c = memory.read8(address); c !== 0; c = memory.read8(++address)) s += String.fromCharCode(c);
  return s;
}

function indexOf(haystack: Uint8Array, text: string): number {
  return Buffer.from(haystack).indexOf(Buffer.from(text));
}

describe("multiboot loader: ELF kernels", () => {
  const image = build("elf", ELF_KERNEL, "elf32", ["-m", "elf_i386", "-Ttext", "0x100000"]);

  test("loads PT_LOAD segments, zeroes bss and reports the entry point", () => {
    const memory = machine();
    memory.writeBytes(0x100000, new Uint8Array(0x10000).fill(0xaa));
    const result = loadMultiboot(memory, image, { memoryMap: pcMemoryMap(4 << 20) });
    assert.equal(result.entry, 0x10000c);
    // mov eax, imm32 at the entry point.
    assert.equal(memory.read8(result.entry), 0xb8);
    assert.equal(memory.read32(result.entry + 1), 0x12345678);
    const kernel = result.loadedRanges.filter((r) => r.what.startsWith("kernel"));
    assert.ok(kernel.length >= 2, "text and data/bss segments");
    const all = memory.readBytes(0x100000, 0x10000);
    assert.ok(indexOf(all, "DATA-SEGMENT") > 0);
    const bssEnd = Math.max(...kernel.map((r) => r.end));
    const bssTail = memory.readBytes(bssEnd - 4096, 4096);
    assert.ok(
      bssTail.every((b) => b === 0),
      "bss is zeroed",
    );
    assert.equal(memory.read8(bssEnd), 0xaa, "nothing is written past the last segment");
  });

  test("builds the information structure: memory sizes, map, cmdline, modules, loader name", () => {
    const memory = machine(8 << 20);
    const map = pcMemoryMap(8 << 20);
    const result = loadMultiboot(memory, image, {
      memoryMap: map,
      cmdline: "console=ttyS0 quiet",
      bootLoaderName: "test loader",
      modules: [
        { data: new TextEncoder().encode("first module"), cmdline: "mod1 arg" },
        { data: new Uint8Array(5000) },
      ],
    });
    const mbi = result.mbiAddress;
    const flags = memory.read32(mbi);
    assert.equal(flags, (1 << 0) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9));
    assert.equal(memory.read32(mbi + 4), 639, "mem_lower in KiB");
    assert.equal(memory.read32(mbi + 8), 7 * 1024, "mem_upper in KiB");
    assert.equal(cstring(memory, memory.read32(mbi + 16)), "console=ttyS0 quiet");
    assert.equal(cstring(memory, memory.read32(mbi + 64)), "test loader");

    assert.equal(memory.read32(mbi + 20), 2);
    const mods = memory.read32(mbi + 24);
    const start0 = memory.read32(mods);
    const end0 = memory.read32(mods + 4);
    assert.equal(start0 % 4096, 0, "modules are page aligned");
    assert.equal(end0 - start0, 12);
    assert.equal(new TextDecoder().decode(memory.readBytes(start0, 12)), "first module");
    assert.equal(cstring(memory, memory.read32(mods + 8)), "mod1 arg");
    const start1 = memory.read32(mods + 16);
    assert.equal(start1 % 4096, 0);
    assert.ok(start1 >= end0);
    assert.equal(memory.read32(mods + 20) - start1, 5000);
    const kernelEnd = Math.max(
      ...result.loadedRanges.filter((r) => r.what.startsWith("kernel")).map((r) => r.end),
    );
    assert.ok(start0 >= kernelEnd, "modules follow the kernel");

    const mmapLength = memory.read32(mbi + 44);
    const mmapAddr = memory.read32(mbi + 48);
    assert.equal(mmapLength, map.length * 24);
    for (let i = 0; i < map.length; i++) {
      const at = mmapAddr + i * 24;
      assert.equal(memory.read32(at), 20, "size field excludes itself");
      assert.equal(memory.read32(at + 4), map[i]!.base);
      assert.equal(memory.read32(at + 8), 0);
      assert.equal(memory.read32(at + 12), map[i]!.length);
      assert.equal(memory.read32(at + 20), map[i]!.type);
    }
  });

  test("a higher-half kernel loads at its physical addresses; the entry point is translated", () => {
    const script = join(work, "higher-half.ld");
    writeFileSync(
      script,
      `ENTRY(_start)
SECTIONS {
  . = 0xC0100000;
  .text : AT(0x100000) { *(.text) }
  .data : AT(0x100000 + (ADDR(.data) - 0xC0100000)) { *(.data) }
  .bss : AT(0x100000 + (ADDR(.bss) - 0xC0100000)) { *(.bss) }
}`,
    );
    const image = build("higher-half", ELF_KERNEL, "elf32", ["-m", "elf_i386", "-T", script]);
    const memory = machine();
    const result = loadMultiboot(memory, image, { memoryMap: pcMemoryMap(4 << 20) });
    assert.equal(result.entry, 0x10000c);
    assert.equal(memory.read8(0x10000c), 0xb8, "mov eax, imm32 at the physical entry point");
    assert.ok(result.loadedRanges.every((r) => r.end <= 4 << 20));
  });

  test("refuses a kernel that does not fit in RAM", () => {
    const high = build("elf-high", ELF_KERNEL, "elf32", ["-m", "elf_i386", "-Ttext", "0x800000"]);
    assert.throws(
      () => loadMultiboot(machine(4 << 20), high, { memoryMap: pcMemoryMap(4 << 20) }),
      (e: unknown) => e instanceof MultibootError && /does not fit in RAM/.test(e.message),
    );
  });

  test("refuses a kernel that overlaps the information structure", () => {
    const low = build("elf-low", ELF_KERNEL, "elf32", ["-m", "elf_i386", "-Ttext", "0x9000"]);
    assert.throws(
      () => loadMultiboot(machine(), low, { memoryMap: pcMemoryMap(4 << 20) }),
      /overlaps multiboot information/,
    );
  });

  test("refuses ELF64 images by name", () => {
    const source = ELF_KERNEL.replace("BITS 32", "BITS 64").replace("mov eax, 0x12345678", "mov rax, 1");
    const elf64 = build("elf64", source, "elf64", ["-m", "elf_x86_64", "-Ttext", "0x100000"]);
    assert.throws(() => loadMultiboot(machine(), elf64, { memoryMap: [] }), /64-bit ELF image \(ELF64\)/);
  });

  test("refuses ELF files whose program headers lie outside the file", () => {
    const truncated = new Uint8Array(image);
    const view = new DataView(truncated.buffer);
    view.setUint32(28, 0xff00, true); // e_phoff far beyond the end
    assert.throws(
      () => loadMultiboot(machine(), truncated, { memoryMap: [] }),
      /program header table lies outside/,
    );
  });
});

describe("multiboot loader: a.out kludge", () => {
  const image = build("kludge", KLUDGE_KERNEL, "bin");

  test("loads exactly load_addr..load_end_addr and zeroes up to bss_end_addr", () => {
    const memory = machine();
    memory.writeBytes(0x200000, new Uint8Array(0x8000).fill(0xaa));
    const header = findMultibootHeader(image);
    assert.ok(header);
    assert.equal(header.offset, 0);
    const result = loadMultiboot(memory, image, { memoryMap: pcMemoryMap(4 << 20) });
    assert.equal(result.entry, 0x200020);
    assert.equal(memory.read8(0x200020), 0xfa, "cli at the entry point");
    assert.equal(new TextDecoder().decode(memory.readBytes(0x200022, 6)), "KLUDGE");
    const loadEnd = 0x200028;
    assert.ok(
      memory.readBytes(loadEnd, 0x3000).every((b) => b === 0),
      "bss zeroed",
    );
    assert.equal(memory.read8(loadEnd + 0x3000), 0xaa, "nothing past bss_end_addr");
  });

  test("refuses a load range longer than the file", () => {
    const bad = new Uint8Array(image);
    new DataView(bad.buffer).setUint32(20, 0x300000, true);
    new DataView(bad.buffer).setUint32(24, 0, true);
    assert.throws(() => loadMultiboot(machine(), bad, { memoryMap: [] }), /load range needs/);
  });

  test("refuses an entry point outside the image", () => {
    const bad = new Uint8Array(image);
    new DataView(bad.buffer).setUint32(28, 0x100000, true);
    assert.throws(() => loadMultiboot(machine(), bad, { memoryMap: [] }), /entry_addr 0x100000 is outside/);
  });
});

describe("multiboot loader: things that are not multiboot kernels", () => {
  const refuse = (image: Uint8Array, pattern: RegExp): void => {
    assert.throws(
      () => loadMultiboot(machine(), image, { memoryMap: [] }),
      (e: unknown) => e instanceof MultibootError && pattern.test(e.message),
    );
  };

  test("an empty file", () => refuse(new Uint8Array(0), /file is empty/));

  test("random bytes", () => {
    const junk = new Uint8Array(10000);
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
    refuse(junk, /no multiboot header in the first 8 KiB/);
  });

  test("a header beyond the first 8 KiB", () => {
    const image = new Uint8Array(12000);
    const view = new DataView(image.buffer);
    view.setUint32(8192, MULTIBOOT_HEADER_MAGIC, true);
    view.setUint32(8196, 0, true);
    view.setUint32(8200, -MULTIBOOT_HEADER_MAGIC >>> 0, true);
    refuse(image, /no multiboot header/);
  });

  test("a bad checksum", () => {
    const image = new Uint8Array(64);
    const view = new DataView(image.buffer);
    view.setUint32(4, MULTIBOOT_HEADER_MAGIC, true);
    view.setUint32(8, 0, true);
    view.setUint32(12, 0x1234, true);
    refuse(image, /bad checksum/);
  });

  test("an unknown required flag", () => {
    const image = new Uint8Array(64);
    const view = new DataView(image.buffer);
    const flags = 1 << 5;
    view.setUint32(0, MULTIBOOT_HEADER_MAGIC, true);
    view.setUint32(4, flags, true);
    view.setUint32(8, -(MULTIBOOT_HEADER_MAGIC + flags) >>> 0, true);
    refuse(image, /requires unsupported features \(flags 0x20\)/);
  });

  test("a valid header without load addresses in a non-ELF file", () => {
    const image = new Uint8Array(64);
    const view = new DataView(image.buffer);
    view.setUint32(0, MULTIBOOT_HEADER_MAGIC, true);
    view.setUint32(8, -MULTIBOOT_HEADER_MAGIC >>> 0, true);
    refuse(image, /not an ELF executable/);
  });

  test("a Linux bzImage", () => {
    const image = new Uint8Array(0x1000);
    image[0x1fe] = 0x55;
    image[0x1ff] = 0xaa;
    new DataView(image.buffer).setUint32(0x202, 0x53726448, true); // "HdrS"
    refuse(image, /Linux bzImage/);
  });

  test("a Multiboot2 image", () => {
    const image = new Uint8Array(64);
    new DataView(image.buffer).setUint32(8, 0xe85250d6, true);
    refuse(image, /Multiboot2/);
  });

  test("a PE executable", () =>
    refuse(new Uint8Array([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0, 4, 0, 0, 0, 0xff, 0xff]), /MZ/));
});
