import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { PhysicalMemory } from "../core/memory.ts";
import { decodeE820Table, E820_ACPI, E820_RAM, E820_RESERVED, type E820Entry, pcMemoryMap } from "./e820.ts";
import {
  BOOT_CS,
  BOOT_DS,
  BootError,
  bootGdt,
  CAN_USE_HEAP,
  CR0_PE,
  identifyKernelImage,
  LOADED_HIGH,
  loadLinux,
  notBootableMessage,
  parseBzImage,
  prepareFirmwareLinuxBoot,
} from "./linux-boot.ts";

const MIB = 1024 * 1024;

interface FakeKernel {
  version?: number;
  setupSects?: number;
  loadflags?: number;
  /** Protected-mode bytes in the file. */
  kernelBytes?: number;
  /** Protected-mode bytes claimed by syssize (default: kernelBytes). */
  claimedBytes?: number;
  relocatable?: boolean;
  kernelAlignment?: number;
  prefAddress?: number;
  initSize?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  versionString?: string;
  /** Override of the jump displacement that gives the header's end. */
  jumpDisplacement?: number;
  payload?: { offset: number; length: number };
}

/** A synthetic bzImage: boot sector, setup sectors with a setup header, protected-mode bytes. */
function fakeKernel(k: FakeKernel = {}): Uint8Array {
  const setupSects = k.setupSects ?? 4;
  const setupBytes = ((setupSects || 4) + 1) * 512;
  const kernelBytes = k.kernelBytes ?? 64 * 1024;
  const image = new Uint8Array(setupBytes + kernelBytes);
  const view = new DataView(image.buffer);
  const version = k.version ?? 0x020f;
  image[0x1f1] = setupSects;
  view.setUint32(0x1f4, Math.ceil((k.claimedBytes ?? kernelBytes) / 16), true);
  view.setUint16(0x1fe, 0xaa55, true);
  image[0x200] = 0xeb;
  image[0x201] = k.jumpDisplacement ?? 0x6a; // header ends at 0x26c, like a 2.15 kernel
  image.set(new TextEncoder().encode("HdrS"), 0x202);
  view.setUint16(0x206, version, true);
  image[0x211] = k.loadflags ?? LOADED_HIGH;
  view.setUint32(0x214, 0x100000, true);
  view.setUint32(0x22c, k.initrdAddrMax ?? 0x7fffffff, true);
  view.setUint32(0x230, k.kernelAlignment ?? 0x200000, true);
  image[0x234] = k.relocatable ? 1 : 0;
  view.setUint32(0x238, k.cmdlineSize ?? 2047, true);
  view.setUint32(0x248, k.payload?.offset ?? 0x100, true);
  view.setUint32(0x24c, k.payload?.length ?? kernelBytes - 0x200, true);
  view.setUint32(0x258, k.prefAddress ?? 0x100000, true);
  view.setUint32(0x260, k.initSize ?? 4 * MIB, true);
  if (k.versionString !== undefined) {
    const at = 0x300;
    view.setUint16(0x20e, at - 0x200, true);
    image.set(new TextEncoder().encode(k.versionString), at);
  }
  // Recognisable protected-mode contents.
  for (let i = 0; i < kernelBytes; i++) image[setupBytes + i] = (i * 7 + 3) & 0xff;
  return image;
}

function machine(ramBytes: number): PhysicalMemory {
  const memory = new PhysicalMemory();
  memory.addRam("ram", 0, ramBytes);
  return memory;
}

function bootErrorMatching(pattern: RegExp) {
  return (err: unknown) => err instanceof BootError && pattern.test(err.message);
}

describe("parseBzImage", () => {
  it("reads the setup header fields", () => {
    const header = parseBzImage(
      fakeKernel({
        setupSects: 0,
        relocatable: true,
        prefAddress: 0x1000000,
        versionString: "6.1.0-test (me@here) #1",
      }),
    );
    assert.equal(header.protocolVersion, 0x020f);
    assert.equal(header.protocol, "2.15");
    assert.equal(header.setupSects, 4, "setup_sects 0 means 4");
    assert.equal(header.setupBytes, 5 * 512);
    assert.equal(header.kernelBytes, 64 * 1024);
    assert.equal(header.relocatable, true);
    assert.equal(header.kernelAlignment, 0x200000);
    assert.equal(header.prefAddress, 0x1000000);
    assert.equal(header.initSize, 4 * MIB);
    assert.equal(header.cmdlineSize, 2047);
    assert.equal(header.headerEnd, 0x26c);
    assert.equal(header.kernelVersionString, "6.1.0-test (me@here) #1");
    assert.equal(header.is64Bit, false);
  });

  it("uses the defaults of old protocols for fields they lack", () => {
    const header = parseBzImage(fakeKernel({ version: 0x0202, jumpDisplacement: 0x2c, relocatable: true }));
    assert.equal(header.protocol, "2.02");
    assert.equal(header.initrdAddrMax, 0x37ffffff);
    assert.equal(header.cmdlineSize, 255);
    assert.equal(header.relocatable, false, "relocatable_kernel only exists from 2.05");
    assert.equal(header.prefAddress, 0x100000);
    assert.equal(header.initSize, 0);
  });

  it("refuses truncated images", () => {
    assert.throws(() => parseBzImage(new Uint8Array(100)), bootErrorMatching(/truncated.*100 bytes/));
    const whole = fakeKernel();
    assert.throws(() => parseBzImage(whole.subarray(0, 1024)), bootErrorMatching(/truncated.*setup sectors/));
    assert.throws(
      () => parseBzImage(fakeKernel({ claimedBytes: 128 * 1024 })),
      bootErrorMatching(/truncated.*131072 bytes of protected-mode code/),
    );
    assert.throws(
      () => parseBzImage(fakeKernel({ payload: { offset: 0x100, length: 64 * 1024 } })),
      bootErrorMatching(/truncated.*payload/),
    );
  });

  it("refuses images without the boot signature or the HdrS magic", () => {
    const noSignature = fakeKernel();
    noSignature[0x1fe] = 0;
    assert.throws(() => parseBzImage(noSignature), bootErrorMatching(/0xAA55/));
    const noMagic = fakeKernel();
    noMagic[0x202] = 0x41;
    assert.throws(() => parseBzImage(noMagic), bootErrorMatching(/HdrS/));
  });

  it("refuses protocols older than 2.02 with the version in the message", () => {
    assert.throws(
      () => parseBzImage(fakeKernel({ version: 0x0201 })),
      bootErrorMatching(/protocol 2\.01.*2\.02 or newer/),
    );
  });

  it("refuses zImages", () => {
    assert.throws(() => parseBzImage(fakeKernel({ loadflags: 0 })), bootErrorMatching(/zImage/));
  });

  it("refuses a header that ends before the fields its protocol defines", () => {
    assert.throws(
      () => parseBzImage(fakeKernel({ jumpDisplacement: 0x30 })),
      bootErrorMatching(/malformed setup header.*2\.15/),
    );
  });

  it("ignores a version string pointer that leaves the setup code", () => {
    const image = fakeKernel();
    new DataView(image.buffer).setUint16(0x20e, 0xf000, true);
    assert.equal(parseBzImage(image).kernelVersionString, "");
  });
});

describe("loadLinux", () => {
  it("loads a non-relocatable kernel at 1 MiB and fills boot_params", () => {
    const memory = machine(64 * MIB);
    const kernel = fakeKernel({ relocatable: false, versionString: "5.0.0-fake" });
    const result = loadLinux(memory, { kernel, cmdline: "console=ttyS0 quiet", ramSize: 64 * MIB });

    assert.equal(result.kernelLoad, 0x100000);
    assert.equal(result.entry32, 0x100000);
    assert.equal(result.kernelEnd, 0x100000 + 64 * 1024);
    assert.equal(result.bootParams, 0x7000);
    assert.equal(result.cmdlineAddress, 0x20000);
    assert.equal(result.protocolVersion, 0x020f);
    assert.equal(result.kernelVersionString, "5.0.0-fake");
    assert.equal(result.initrd, undefined);
    assert.deepEqual(memory.readBytes(0x100000, 64 * 1024), kernel.subarray(5 * 512));

    const bp = 0x7000;
    // The setup header is copied from the image...
    assert.equal(memory.read16(bp + 0x1fe), 0xaa55);
    assert.equal(memory.read32(bp + 0x202), 0x53726448);
    assert.equal(memory.read16(bp + 0x206), 0x020f);
    assert.equal(memory.read32(bp + 0x260), 4 * MIB);
    // ...then the loader's fields are filled in.
    assert.equal(memory.read8(bp + 0x210), 0xff, "type_of_loader");
    assert.equal(memory.read8(bp + 0x211), LOADED_HIGH | CAN_USE_HEAP, "loadflags");
    assert.equal(memory.read16(bp + 0x224), 0xde00, "heap_end_ptr");
    assert.equal(memory.read16(bp + 0x1fa), 0xffff, "vid_mode normal");
    assert.equal(memory.read32(bp + 0x214), 0x100000, "code32_start");
    assert.equal(memory.read32(bp + 0x228), 0x20000, "cmd_line_ptr");
    assert.equal(memory.read32(bp + 0x218), 0, "no ramdisk_image");
    assert.equal(memory.read32(bp + 0x21c), 0, "no ramdisk_size");
    assert.equal(memory.read8(bp + 0x1ef), 0, "sentinel stays 0");
    assert.equal(memory.read32(bp + 0x1e0), 63 * 1024, "alt_mem_k");
    // No VGA console asked for: screen_info stays empty, the kernel finds no VGA.
    assert.equal(memory.read8(bp + 0x0f), 0);
    assert.equal(memory.read8(bp + 0x06), 0);

    const entries = memory.read8(bp + 0x1e8);
    const map = pcMemoryMap(64 * MIB);
    assert.equal(entries, map.length);
    assert.deepEqual(decodeE820Table(memory.readBytes(bp + 0x2d0, entries * 20)), map);

    const cmdline = memory.readBytes(0x20000, 20);
    assert.equal(new TextDecoder().decode(cmdline.subarray(0, 19)), "console=ttyS0 quiet");
    assert.equal(cmdline[19], 0);

    assert.deepEqual(memory.readBytes(0x500, 32), bootGdt());
  });

  it("describes the 32-bit entry state the protocol requires", () => {
    const memory = machine(64 * MIB);
    const { entryState, gdt } = loadLinux(memory, { kernel: fakeKernel(), ramSize: 64 * MIB });
    assert.equal(entryState.registers.esi, 0x7000);
    assert.equal(entryState.registers.ebp, 0);
    assert.equal(entryState.registers.edi, 0);
    assert.equal(entryState.registers.ebx, 0);
    assert.equal(entryState.cr0, CR0_PE);
    assert.equal(entryState.eflags & 0x200, 0, "interrupts disabled");
    assert.equal(entryState.cs.selector, BOOT_CS);
    for (const s of [entryState.ds, entryState.es, entryState.ss]) {
      assert.equal(s.selector, BOOT_DS);
      assert.equal(s.base, 0);
      assert.equal(s.limit, 0xffffffff);
    }
    assert.deepEqual(entryState.gdtr, { base: gdt.address, limit: 31 });
  });

  it("builds a GDT with flat 4 GiB code and data at __BOOT_CS and __BOOT_DS", () => {
    const gdt = bootGdt();
    const descriptor = (selector: number) => {
      const d = gdt.subarray(selector, selector + 8);
      return {
        base: d[2]! | (d[3]! << 8) | (d[4]! << 16) | (d[7]! << 24),
        limit: d[0]! | (d[1]! << 8) | ((d[6]! & 0xf) << 16),
        access: d[5]!,
        granularity: (d[6]! & 0x80) !== 0,
        big: (d[6]! & 0x40) !== 0,
      };
    };
    assert.deepEqual([...gdt.subarray(0, 16)], new Array(16).fill(0));
    const code = descriptor(BOOT_CS);
    const data = descriptor(BOOT_DS);
    for (const d of [code, data]) {
      assert.equal(d.base, 0);
      assert.equal(d.limit, 0xfffff);
      assert.ok(d.granularity && d.big);
      assert.equal(d.access & 0x80, 0x80, "present");
      assert.equal(d.access & 0x60, 0, "ring 0");
    }
    assert.equal(code.access & 0x1a, 0x1a, "code, readable");
    assert.equal(data.access & 0x1a, 0x12, "data, writable");
  });

  it("loads a relocatable kernel at its preferred address when its window fits", () => {
    const memory = machine(64 * MIB);
    const kernel = fakeKernel({ relocatable: true, prefAddress: 0x1000000, initSize: 8 * MIB });
    const result = loadLinux(memory, { kernel, ramSize: 64 * MIB });
    assert.equal(result.kernelLoad, 0x1000000);
    assert.equal(result.entry32, 0x1000000);
    assert.deepEqual(result.kernelWindow, { start: 0x1000000, end: 0x1800000 });
    assert.equal(memory.read32(0x7000 + 0x214), 0x1000000, "code32_start follows the load address");
  });

  it("loads at 1 MiB when the preferred address is not suitably aligned", () => {
    const memory = machine(64 * MIB);
    const kernel = fakeKernel({
      relocatable: true,
      prefAddress: 0x1001000,
      kernelAlignment: 0x200000,
      initSize: 8 * MIB,
    });
    const result = loadLinux(memory, { kernel, ramSize: 64 * MIB });
    assert.equal(result.kernelLoad, 0x100000);
    // The kernel then runs no lower than pref_address, aligned up.
    assert.deepEqual(result.kernelWindow, { start: 0x1200000, end: 0x1a00000 });
  });

  it("refuses a kernel too large for the RAM", () => {
    // A relocatable kernel still runs at pref_address at the earliest, wherever it is loaded.
    const preferHigh = fakeKernel({ relocatable: true, prefAddress: 0x1000000, initSize: 12 * MIB });
    assert.throws(
      () => loadLinux(machine(24 * MIB), { kernel: preferHigh, ramSize: 24 * MIB }),
      bootErrorMatching(/needs memory up to 0x1c00000/),
    );
    const memory = machine(4 * MIB);
    assert.throws(
      () => loadLinux(memory, { kernel: fakeKernel({ kernelBytes: 4 * MIB }), ramSize: 4 * MIB }),
      bootErrorMatching(/does not fit in RAM at 1 MiB/),
    );
    assert.throws(
      () =>
        loadLinux(memory, {
          kernel: fakeKernel({ relocatable: false, prefAddress: 0x100000, initSize: 8 * MIB }),
          ramSize: 4 * MIB,
        }),
      bootErrorMatching(/needs memory up to 0x900000.*more memory/),
    );
  });

  it("puts the initrd as high as possible, page-aligned, and records it", () => {
    const memory = machine(64 * MIB);
    const initrd = new Uint8Array(3 * MIB + 123).fill(0x5a);
    const result = loadLinux(memory, { kernel: fakeKernel(), initrd, ramSize: 64 * MIB });
    const expected = Math.floor((64 * MIB - initrd.length) / 4096) * 4096;
    assert.deepEqual(result.initrd, { address: expected, size: initrd.length });
    assert.equal(memory.read32(0x7000 + 0x218), expected, "ramdisk_image");
    assert.equal(memory.read32(0x7000 + 0x21c), initrd.length, "ramdisk_size");
    assert.deepEqual(memory.readBytes(expected, initrd.length), initrd);
  });

  it("keeps the initrd below initrd_addr_max", () => {
    const memory = machine(64 * MIB);
    const kernel = fakeKernel({ initrdAddrMax: 0x2ffffff, relocatable: false, prefAddress: 0x100000 });
    const result = loadLinux(memory, { kernel, initrd: new Uint8Array(MIB), ramSize: 64 * MIB });
    assert.equal(result.initrd?.address, 0x3000000 - MIB);
  });

  it("keeps the initrd out of reserved ranges and the kernel's window", () => {
    const memory = machine(64 * MIB);
    const map = pcMemoryMap(64 * MIB, {
      extra: [{ base: 64 * MIB - 0x20000, length: 0x20000, type: E820_ACPI }],
    });
    const result = loadLinux(memory, { kernel: fakeKernel(), initrd: new Uint8Array(MIB), memoryMap: map });
    assert.equal(result.initrd?.address, 63 * MIB - 0x20000);

    // Only 9.5 MiB of RAM below initrd_addr_max, and the kernel's window takes [1, 9) MiB.
    const kernel = fakeKernel({
      relocatable: false,
      prefAddress: 0x100000,
      initSize: 8 * MIB,
      initrdAddrMax: 0x97ffff,
    });
    const squeezed = loadLinux(machine(64 * MIB), {
      kernel,
      initrd: new Uint8Array(MIB / 2),
      ramSize: 64 * MIB,
    });
    assert.equal(squeezed.initrd?.address, 9 * MIB);
    assert.throws(
      () => loadLinux(machine(64 * MIB), { kernel, initrd: new Uint8Array(MIB), ramSize: 64 * MIB }),
      bootErrorMatching(/initrd \(1\.0 MiB\) does not fit/),
    );
  });

  it("refuses an initrd too large for the RAM", () => {
    const memory = machine(16 * MIB);
    assert.throws(
      () =>
        loadLinux(memory, {
          kernel: fakeKernel({ initSize: MIB }),
          initrd: new Uint8Array(15 * MIB),
          ramSize: 16 * MIB,
        }),
      bootErrorMatching(/initrd .* does not fit/),
    );
  });

  it("checks the command line against cmdline_size", () => {
    const memory = machine(16 * MIB);
    const kernel = fakeKernel({ cmdlineSize: 10, initSize: MIB });
    loadLinux(memory, { kernel, cmdline: "0123456789", ramSize: 16 * MIB });
    assert.equal(memory.read8(0x20000 + 10), 0, "NUL-terminated");
    assert.throws(
      () => loadLinux(memory, { kernel, cmdline: "0123456789a", ramSize: 16 * MIB }),
      bootErrorMatching(/11 bytes; this kernel accepts at most 10/),
    );
    const old = fakeKernel({ version: 0x0205, jumpDisplacement: 0x33, initSize: MIB });
    loadLinux(memory, { kernel: old, cmdline: "x".repeat(255), ramSize: 16 * MIB });
    assert.throws(
      () => loadLinux(memory, { kernel: old, cmdline: "x".repeat(256), ramSize: 16 * MIB }),
      bootErrorMatching(/at most 255/),
    );
    assert.throws(
      () => loadLinux(memory, { kernel, cmdline: "a\0b", ramSize: 16 * MIB }),
      bootErrorMatching(/NUL/),
    );
  });

  it("describes an 80x25 VGA text console when asked", () => {
    const memory = machine(16 * MIB);
    loadLinux(memory, { kernel: fakeKernel({ initSize: MIB }), ramSize: 16 * MIB, vgaTextConsole: true });
    assert.equal(memory.read8(0x7000 + 0x06), 3, "orig_video_mode");
    assert.equal(memory.read8(0x7000 + 0x07), 80, "orig_video_cols");
    assert.equal(memory.read8(0x7000 + 0x0e), 25, "orig_video_lines");
    assert.equal(memory.read8(0x7000 + 0x0f), 1, "orig_video_isVGA");
    assert.equal(memory.read16(0x7000 + 0x10), 16, "orig_video_points");
    assert.notEqual(memory.read16(0x7000 + 0x0a) & 0xff, 0x10, "ega_bx says EGA or better");
  });

  it("passes the ACPI RSDP address and the loader type", () => {
    const memory = machine(16 * MIB);
    loadLinux(memory, {
      kernel: fakeKernel({ initSize: MIB }),
      ramSize: 16 * MIB,
      acpiRsdpAddress: 0xf5a40,
      loaderType: 0xb0,
    });
    assert.equal(memory.read32(0x7000 + 0x70), 0xf5a40);
    assert.equal(memory.read32(0x7000 + 0x74), 0);
    assert.equal(memory.read8(0x7000 + 0x210), 0xb0);
  });

  it("clears a previous boot's zero page", () => {
    const memory = machine(16 * MIB);
    loadLinux(memory, { kernel: fakeKernel({ initSize: MIB }), ramSize: 16 * MIB, vgaTextConsole: true });
    loadLinux(memory, { kernel: fakeKernel({ initSize: MIB }), ramSize: 16 * MIB });
    assert.equal(memory.read8(0x7000 + 0x0f), 0);
  });

  it("refuses a memory map that promises RAM the machine does not have", () => {
    const memory = machine(16 * MIB);
    assert.throws(
      () =>
        loadLinux(memory, {
          kernel: fakeKernel({ initSize: MIB }),
          initrd: new Uint8Array(4096),
          ramSize: 32 * MIB,
        }),
      bootErrorMatching(/no RAM is mapped/),
    );
  });

  it("refuses boot structures outside usable RAM or on top of each other", () => {
    const memory = machine(16 * MIB);
    const kernel = fakeKernel({ initSize: MIB });
    assert.throws(
      () => loadLinux(memory, { kernel, ramSize: 16 * MIB, bootParamsAddress: 0x9f000 }),
      bootErrorMatching(/boot_params at 0x9f000 is not in usable RAM/),
    );
    assert.throws(
      () => loadLinux(memory, { kernel, ramSize: 16 * MIB, gdtAddress: 0x7100 }),
      bootErrorMatching(/overlaps the boot GDT/),
    );
  });

  it("only throws BootError for mangled headers", () => {
    // A deterministic xorshift PRNG: the same mutations every run.
    let seed = 0x12345678;
    const random = () => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) / 0x100000000;
    };
    const memory = machine(16 * MIB);
    const pristine = fakeKernel({ kernelBytes: 8192, initSize: MIB });
    let loaded = 0;
    for (let round = 0; round < 1500; round++) {
      const truncate = random() < 0.25;
      const image = pristine.slice(
        0,
        truncate ? 512 + Math.floor(random() * (pristine.length - 511)) : undefined,
      );
      const mutations = 1 + Math.floor(random() * 3);
      for (let n = 0; n < mutations; n++)
        image[0x1f1 + Math.floor(random() * 0x80)] = Math.floor(random() * 256);
      try {
        loadLinux(memory, {
          kernel: image,
          initrd: new Uint8Array(4096),
          ramSize: 16 * MIB,
          cmdline: "a b c",
        });
        loaded++;
      } catch (err) {
        if (!(err instanceof BootError)) throw err;
      }
      identifyKernelImage(image);
    }
    assert.ok(loaded > 0, "some mutations are still bootable");
  });
});

describe("prepareFirmwareLinuxBoot", () => {
  it("puts the protected-mode code at 1 MiB and the initrd at the top of the RAM it is given", () => {
    const image = fakeKernel({ relocatable: true, prefAddress: 0x1000000, initSize: 8 * MIB });
    const prepared = prepareFirmwareLinuxBoot(image, {
      initrd: new Uint8Array(10_000),
      cmdline: "console=ttyS0",
      ramEnd: 32 * MIB,
    });
    assert.equal(prepared.kernel.address, 0x100000);
    assert.deepEqual(prepared.kernel.data, image.subarray(5 * 512));
    assert.equal(prepared.initrd?.address, 32 * MIB - 3 * 4096);
    assert.deepEqual(prepared.cmdline.data, new TextEncoder().encode("console=ttyS0\0"));
  });

  it("refuses a kernel that does not fit, or cannot decompress, below the end of RAM", () => {
    assert.throws(
      () => prepareFirmwareLinuxBoot(fakeKernel({ kernelBytes: 4 * MIB }), { ramEnd: 4 * MIB }),
      bootErrorMatching(
        /the kernel \(4\.0 MiB\) does not fit in RAM at 1 MiB: usable memory there ends at 0x400000/,
      ),
    );
    // Loaded at 1 MiB, a relocatable kernel still runs at pref_address at the earliest.
    const preferHigh = fakeKernel({ relocatable: true, prefAddress: 0x1000000, initSize: 12 * MIB });
    assert.throws(
      () => prepareFirmwareLinuxBoot(preferHigh, { ramEnd: 24 * MIB }),
      bootErrorMatching(/needs memory up to 0x1c00000 .*give the machine more memory/),
    );
    assert.doesNotThrow(() => prepareFirmwareLinuxBoot(preferHigh, { ramEnd: 28 * MIB }));
    assert.throws(
      () => prepareFirmwareLinuxBoot(preferHigh, { initrd: new Uint8Array(2 * MIB), ramEnd: 29 * MIB }),
      bootErrorMatching(/the initrd .* does not fit between the kernel and 0x1d00000/),
    );
  });
});

describe("identifyKernelImage", () => {
  function withBytes(length: number, patches: [number, number[] | string][]): Uint8Array {
    const bytes = new Uint8Array(length);
    for (const [at, data] of patches) {
      bytes.set(typeof data === "string" ? [...data].map((c) => c.charCodeAt(0)) : data, at);
    }
    return bytes;
  }
  const le32 = (n: number) => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24];

  it("recognises bzImages and zImages", () => {
    assert.equal(identifyKernelImage(fakeKernel()).kind, "bzimage");
    assert.match(identifyKernelImage(fakeKernel()).description, /boot protocol 2\.15/);
    assert.equal(identifyKernelImage(fakeKernel({ loadflags: 0 })).kind, "zimage");
  });

  it("recognises ELF files with and without a multiboot header", () => {
    const elf32 = withBytes(4096, [
      [0, "\x7fELF"],
      [4, [1, 1, 1]],
      [0x10, [2, 0, 3, 0]],
    ]);
    assert.deepEqual(identifyKernelImage(elf32), {
      kind: "elf32",
      description: "an ELF32 executable for i386 without a multiboot header",
    });
    const elf64 = withBytes(4096, [
      [0, "\x7fELF"],
      [4, [2, 1, 1]],
      [0x10, [2, 0, 62, 0]],
    ]);
    assert.match(identifyKernelImage(elf64).description, /ELF64 executable for x86-64/);
    const flags = 0x00010003;
    const multiboot = elf32.slice();
    multiboot.set([...le32(0x1badb002), ...le32(flags), ...le32(-(0x1badb002 + flags) >>> 0)], 0x1000 - 64);
    assert.equal(identifyKernelImage(multiboot).kind, "multiboot");
    // A bad checksum is not a multiboot header.
    multiboot[0x1000 - 64 + 8] ^= 1;
    assert.equal(identifyKernelImage(multiboot).kind, "elf32");
  });

  it("recognises a multiboot2 header", () => {
    const length = 24;
    const checksum = -(0xe85250d6 + 0 + length) >>> 0;
    const bytes = withBytes(8192, [
      [0x1000, [...le32(0xe85250d6), ...le32(0), ...le32(length), ...le32(checksum)]],
    ]);
    assert.equal(identifyKernelImage(bytes).kind, "multiboot2");
  });

  it("recognises compressed data, archives, PE files, CD and disk images", () => {
    assert.equal(identifyKernelImage(withBytes(64, [[0, [0x1f, 0x8b, 8]]])).kind, "gzip");
    assert.equal(identifyKernelImage(withBytes(64, [[0, "\xfd7zXZ\0"]])).kind, "xz");
    assert.equal(identifyKernelImage(withBytes(64, [[0, [0x28, 0xb5, 0x2f, 0xfd]]])).kind, "zstd");
    assert.equal(identifyKernelImage(withBytes(64, [[0, "BZh9"]])).kind, "bzip2");
    assert.equal(identifyKernelImage(withBytes(512, [[0, "070701"]])).kind, "cpio");
    const pe = withBytes(512, [
      [0, "MZ"],
      [0x3c, [0x80, 0, 0, 0]],
      [0x80, "PE\0\0"],
    ]);
    assert.match(identifyKernelImage(pe).description, /PE\/COFF/);
    assert.equal(identifyKernelImage(withBytes(0x9000, [[0x8001, "CD001"]])).kind, "iso9660");
    assert.equal(identifyKernelImage(withBytes(512, [[510, [0x55, 0xaa]]])).kind, "mbr");
  });

  it("says something useful about anything else, never throwing", () => {
    assert.equal(identifyKernelImage(new Uint8Array(0)).kind, "empty");
    const text = new TextEncoder().encode("hello world");
    assert.deepEqual(identifyKernelImage(text), {
      kind: "unknown",
      description: "unrecognised data (starts with 68 65 6c 6c 6f 20 77 6f)",
    });
    for (let n = 0; n < 600; n += 7) identifyKernelImage(new Uint8Array(n).fill(0xff));
    const truncatedPe = withBytes(0x40, [
      [0, "MZ"],
      [0x3c, [0xff, 0xff, 0, 0]],
    ]);
    assert.equal(identifyKernelImage(truncatedPe).description, "a DOS MZ executable");
  });

  it("builds the not-a-kernel error message", () => {
    assert.equal(
      notBootableMessage("disk.img", withBytes(512, [[510, [0x55, 0xaa]]])),
      "disk.img is not a bzImage or a multiboot image: it looks like a boot sector or disk image (signature 0x55AA, but no Linux setup header)",
    );
  });
});

/** The Debian kernel (and its initramfs) from the image cache, if `tsvisor images fetch` ran. */
function cachedDebianKernel(): { kernel: string; initrd: string | undefined } | undefined {
  const env = process.env;
  const dir =
    env.TSVISOR_CACHE !== undefined && env.TSVISOR_CACHE !== ""
      ? resolve(env.TSVISOR_CACHE)
      : join(env.XDG_CACHE_HOME || join(homedir(), ".cache"), "tsvisor");
  if (!existsSync(dir)) return undefined;
  try {
    const manifest = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8")) as {
      kernel?: { vmlinuz?: { path?: string }; initramfs?: { path?: string } };
    };
    const kernel = manifest.kernel?.vmlinuz?.path;
    const initrd = manifest.kernel?.initramfs?.path;
    if (kernel) {
      return { kernel: resolve(dir, kernel), initrd: initrd ? resolve(dir, initrd) : undefined };
    }
  } catch {
    // No manifest: look for the files themselves.
  }
  const found: { kernel?: string; initrd?: string } = {};
  const walk = (path: string, depth: number) => {
    for (const name of readdirSync(path)) {
      const full = join(path, name);
      const stat = statSync(full, { throwIfNoEntry: false });
      if (!stat) continue;
      if (stat.isDirectory() && depth < 5) walk(full, depth + 1);
      else if (stat.isFile() && /^vmlinuz-.*-686$/.test(name)) found.kernel ??= full;
      else if (stat.isFile() && /^initrd\.img-.*-686$/.test(name)) found.initrd ??= full;
    }
  };
  walk(dir, 0);
  return found.kernel ? { kernel: found.kernel, initrd: found.initrd } : undefined;
}

describe("the Debian i386 kernel", () => {
  const files = cachedDebianKernel();
  it("parses, places and describes itself in boot_params", {
    skip: files ? false : "no Debian kernel in the image cache (run `tsvisor images fetch` to get one)",
  }, (t) => {
    const kernel = new Uint8Array(readFileSync(files!.kernel));
    const header = parseBzImage(kernel);
    t.diagnostic(`${files!.kernel}: protocol ${header.protocol}, version "${header.kernelVersionString}"`);
    assert.ok(header.protocolVersion >= 0x020a, "a modern kernel");
    assert.match(header.kernelVersionString, /^\d+\.\d+\.\d+-\S+-686(-pae)? \(/);
    assert.equal(header.is64Bit, false);
    assert.equal(identifyKernelImage(kernel).kind, "bzimage");

    const ram = 256 * MIB;
    const memory = machine(ram);
    const initrd = files!.initrd
      ? new Uint8Array(readFileSync(files!.initrd))
      : new Uint8Array(4 * MIB).fill(0xa5);
    const map: E820Entry[] = pcMemoryMap(ram);
    const result = loadLinux(memory, {
      kernel,
      initrd,
      memoryMap: map,
      cmdline: "console=ttyS0",
      vgaTextConsole: true,
    });
    t.diagnostic(
      `kernel at 0x${result.kernelLoad.toString(16)}, window to 0x${result.kernelWindow.end.toString(16)}, ` +
        `initrd at 0x${result.initrd!.address.toString(16)} (${result.initrd!.size} bytes)`,
    );
    const bp = result.bootParams;
    assert.equal(memory.read32(bp + 0x202), 0x53726448);
    assert.equal(memory.read16(bp + 0x206), header.protocolVersion);
    assert.equal(memory.read32(bp + 0x228), result.cmdlineAddress);
    assert.equal(memory.read32(bp + 0x218), result.initrd!.address);
    assert.equal(memory.read32(bp + 0x21c), initrd.length);
    assert.equal(memory.read8(bp + 0x211) & (LOADED_HIGH | CAN_USE_HEAP), LOADED_HIGH | CAN_USE_HEAP);
    assert.equal(memory.read8(bp + 0x1e8), map.length);
    assert.deepEqual(decodeE820Table(memory.readBytes(bp + 0x2d0, map.length * 20)), map);
    assert.equal(memory.read8(bp + 0x0f), 1, "VGA console");
    // The initrd is page-aligned, below initrd_addr_max, clear of the kernel's window, in RAM.
    const { address, size } = result.initrd!;
    assert.equal(address % 4096, 0);
    assert.ok(address + size - 1 <= header.initrdAddrMax);
    assert.ok(address >= result.kernelWindow.end || address + size <= result.kernelWindow.start);
    assert.ok(
      map.some((e) => e.type === E820_RAM && e.base <= address && address + size <= e.base + e.length),
    );
    assert.deepEqual(memory.readBytes(address, 4096), initrd.subarray(0, 4096));
    assert.deepEqual(
      memory.readBytes(result.kernelLoad, 4096),
      kernel.subarray(header.setupBytes, header.setupBytes + 4096),
    );
    // The command line is where cmd_line_ptr says.
    assert.equal(new TextDecoder().decode(memory.readBytes(result.cmdlineAddress, 13)), "console=ttyS0");
  });
});

function haveCommand(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A cpio "newc" archive holding one executable file: the smallest initramfs. */
function newcArchive(name: string, data: Uint8Array): Uint8Array {
  const parts: Uint8Array[] = [];
  const encoder = new TextEncoder();
  const pad4 = (n: number) => new Uint8Array((4 - (n % 4)) % 4);
  const entry = (path: string, mode: number, body: Uint8Array) => {
    const fields = [1, mode, 0, 0, 1, 0, body.length, 0, 0, 0, 0, path.length + 1, 0];
    const header = `070701${fields.map((f) => f.toString(16).padStart(8, "0")).join("")}`;
    const head = encoder.encode(`${header}${path}\0`);
    parts.push(head, pad4(head.length), body, pad4(body.length));
  };
  entry(name, 0o100755, data);
  entry("TRAILER!!!", 0, new Uint8Array(0));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** An i386 Linux program that prints a line and reboots (QEMU's -no-reboot then exits). */
const INIT_ASM = `bits 32
global _start
section .text
_start:
  mov eax, 4            ; write(1, message, length)
  mov ebx, 1
  mov ecx, message
  mov edx, length
  int 0x80
  mov eax, 88           ; reboot(magic, magic2, LINUX_REBOOT_CMD_RESTART)
  mov ebx, 0xfee1dead
  mov ecx, 672274793
  mov edx, 0x01234567
  int 0x80
hang:
  jmp hang
section .data
message: db "tsvisor initrd reached", 10
length equ $ - message
`;

describe("the Debian i386 kernel under QEMU", () => {
  const files = cachedDebianKernel();
  const missing = ["qemu-system-i386", "nasm", "ld"].filter((c) => !haveCommand(c));
  const skip = !files
    ? "no Debian kernel in the image cache (run `tsvisor images fetch` to get one)"
    : missing.length > 0
      ? `needs ${missing.join(", ")}`
      : false;
  it("boots to the initrd from memory laid out by loadLinux", { skip, timeout: 180_000 }, (t) => {
    const dir = mkdtempSync(join(tmpdir(), "tsvisor-linux-boot-"));
    try {
      writeFileSync(join(dir, "init.asm"), INIT_ASM);
      execFileSync("nasm", ["-f", "elf32", "-o", join(dir, "init.o"), join(dir, "init.asm")]);
      execFileSync("ld", ["-m", "elf_i386", "-static", "-o", join(dir, "init"), join(dir, "init.o")]);
      const initrd = newcArchive("init", new Uint8Array(readFileSync(join(dir, "init"))));

      const ram = 256 * MIB;
      const memory = machine(ram);
      // SeaBIOS keeps its tables in the last few KiB of RAM: keep the initrd clear of them.
      const map = pcMemoryMap(ram, { extra: [{ base: ram - MIB, length: MIB, type: E820_RESERVED }] });
      const cmdline = "console=ttyS0 acpi=off panic=-1 tsvisor.test=1";
      const kernel = new Uint8Array(readFileSync(files!.kernel));
      const result = loadLinux(memory, { kernel, initrd, memoryMap: map, cmdline, vgaTextConsole: true });

      // QEMU boots a multiboot stub whose modules are the blobs loadLinux wrote; the stub copies
      // each to its address, sets up the entry state loadLinux described and jumps to the kernel.
      const blobs: [number, number][] = [
        [result.gdt.address, result.gdt.bytes.length],
        [result.bootParams, 4096],
        [result.cmdlineAddress, cmdline.length + 1],
        [result.kernelLoad, result.kernelEnd - result.kernelLoad],
        [result.initrd!.address, result.initrd!.size],
      ];
      const modules = blobs.map(([address, length], i) => {
        const path = join(dir, `blob${i}.bin`);
        writeFileSync(path, memory.readBytes(address, length));
        return path;
      });
      const s = result.entryState;
      const stub = `bits 32
org 0x200000
header:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd header, 0x200000, 0, 0, start
start:
  cli
  mov ecx, [ebx + 20]     ; mods_count
  mov edx, [ebx + 24]     ; mods_addr
  mov ebp, targets
copy:
  test ecx, ecx
  jz copied
  push ecx
  mov esi, [edx]
  mov ecx, [edx + 4]
  sub ecx, esi
  mov edi, [ebp]
  cld
  rep movsb
  pop ecx
  add edx, 16
  add ebp, 4
  dec ecx
  jmp copy
copied:
  lgdt [gdtr]
  jmp ${s.cs.selector}:flush
flush:
  mov ax, ${s.ds.selector}
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov fs, ax
  mov gs, ax
  mov esp, ${s.registers.esp}
  mov esi, ${s.registers.esi}
  mov ebp, ${s.registers.ebp}
  mov edi, ${s.registers.edi}
  mov ebx, ${s.registers.ebx}
  mov eax, ${s.eip}
  jmp eax
align 4
gdtr:
  dw ${s.gdtr.limit}
  dd ${s.gdtr.base}
targets:
  dd ${blobs.map(([address]) => address).join(", ")}
`;
      writeFileSync(join(dir, "stub.asm"), stub);
      execFileSync("nasm", ["-f", "bin", "-o", join(dir, "stub.bin"), join(dir, "stub.asm")]);
      const serial = join(dir, "serial.log");
      try {
        execFileSync(
          "qemu-system-i386",
          [
            "-m",
            "256",
            "-kernel",
            join(dir, "stub.bin"),
            "-initrd",
            modules.join(","),
            "-display",
            "none",
          ].concat(["-serial", `file:${serial}`, "-monitor", "none", "-no-reboot"]),
          { timeout: 150_000, stdio: "ignore" },
        );
      } catch (err) {
        t.diagnostic(`qemu: ${(err as Error).message}`);
      }
      const log = existsSync(serial) ? readFileSync(serial, "utf8") : "";
      const expect = (text: string) =>
        assert.ok(log.includes(text), `serial log lacks "${text}":\n${log.slice(-3000)}`);
      expect(`Kernel command line: ${cmdline}`);
      expect("BIOS-e820: [mem 0x0000000000100000-0x000000000fefffff] usable");
      expect("BIOS-e820: [mem 0x000000000ff00000-0x000000000fffffff] reserved");
      const { address, size } = result.initrd!;
      const last = address + Math.ceil(size / 4096) * 4096 - 1;
      expect(
        `RAMDISK: [mem 0x${address.toString(16).padStart(8, "0")}-0x${last.toString(16).padStart(8, "0")}]`,
      );
      expect("Console: colour VGA+ 80x25");
      expect("tsvisor initrd reached");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
