import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  type BareCpu,
  type BareCpuEnvironment,
  BareMachine,
  ByteSink,
  formatTrace,
  type GeneralRegisters,
  loadTsvisorCpu,
  runMultiboot,
  SerialTransmitter,
} from "./bare-runner.ts";
import { MULTIBOOT_BOOTLOADER_MAGIC } from "./multiboot.ts";

const work = mkdtempSync(join(tmpdir(), "tsvisor-bare-"));
after(() => rmSync(work, { recursive: true, force: true }));

function assemble(source: string): Uint8Array {
  const asm = join(work, "prog.asm");
  const out = join(work, "prog.bin");
  writeFileSync(asm, source);
  execFileSync("nasm", ["-f", "bin", "-o", out, asm]);
  return new Uint8Array(readFileSync(out));
}

/**
 * A stand-in CPU that knows the handful of instructions the tests below use, so the runner and
 * its devices are tested without the real CPU: mov al/dx, in/out, test al, jz/jnz/jmp short,
 * cli/sti/hlt, and ud2 as "shut down".
 */
class TinyCpu implements BareCpu {
  halted = false;
  entered: { mode: string; eip: number; cs: number; registers: GeneralRegisters } | undefined;
  private eip = 0;
  private base = 0;
  private bits: 16 | 32 = 32;
  private al = 0;
  private dx = 0;
  private zf = false;
  private ifFlag = false;
  private readonly env: BareCpuEnvironment;
  private stopRequested = false;

  constructor(env: BareCpuEnvironment) {
    this.env = env;
  }

  interruptsEnabled(): boolean {
    return this.ifFlag;
  }

  enterRealMode(cs: number, ip: number, registers: GeneralRegisters): void {
    this.entered = { mode: "real", eip: ip, cs, registers };
    this.base = cs * 16;
    this.eip = ip;
    this.bits = 16;
  }

  enterFlatProtectedMode(eip: number, registers: GeneralRegisters): void {
    this.entered = { mode: "protected32", eip, cs: 0x08, registers };
    this.base = 0;
    this.eip = eip;
    this.bits = 32;
  }

  requestStop(): void {
    this.stopRequested = true;
  }

  run(max: number): number {
    const m = this.env.memory;
    let n = 0;
    this.stopRequested = false;
    while (n < max && !this.halted && !this.stopRequested) {
      const at = this.base + this.eip;
      const op = m.read8(at);
      n++;
      let length = 1;
      switch (op) {
        case 0xb0:
          this.al = m.read8(at + 1);
          length = 2;
          break;
        case 0xba:
          this.dx = m.read16(at + 1);
          length = this.bits === 16 ? 3 : 5;
          break;
        case 0xa8:
          this.zf = (this.al & m.read8(at + 1)) === 0;
          length = 2;
          break;
        case 0xee:
          this.env.ports.out8(this.dx, this.al);
          break;
        case 0xec:
          this.al = this.env.ports.in8(this.dx);
          break;
        case 0xe6:
          this.env.ports.out8(m.read8(at + 1), this.al);
          length = 2;
          break;
        case 0x74:
        case 0x75:
        case 0xeb: {
          const taken = op === 0xeb || (op === 0x74) === this.zf;
          length = 2 + (taken ? (m.read8(at + 1) << 24) >> 24 : 0);
          break;
        }
        case 0xfa:
          this.ifFlag = false;
          break;
        case 0xfb:
          this.ifFlag = true;
          break;
        case 0xf4:
          this.halted = true;
          break;
        case 0x0f:
          this.env.onShutdown("triple fault (ud2 in the stand-in CPU)");
          return n;
        default:
          throw new Error(`TinyCpu: opcode 0x${op.toString(16)}`);
      }
      this.eip += length;
    }
    return n;
  }
}

const tiny = (env: BareCpuEnvironment): TinyCpu => new TinyCpu(env);

describe("bare runner", () => {
  test("debugcon bytes are captured and debug-exit ends the run with (v << 1) | 1", () => {
    const machine = new BareMachine({ ramBytes: 1 << 20, createCpu: tiny });
    const program = assemble(`BITS 32
      mov edx, 0xe9
      mov al, 'O'
      out dx, al
      mov al, 'K'
      out 0xe9, al
      in al, dx          ; debugcon reads back 0xE9
      out 0xe9, al
      mov al, 0x21
      out 0xf4, al
      mov al, 'X'        ; after the exit request: never captured as output of the run
      out 0xe9, al
      hlt`);
    machine.loadFlat(program, 0x1000, { mode: "protected32", eip: 0x1000 });
    const result = machine.run(1000);
    assert.equal(result.reason, "debug-exit");
    assert.equal(result.exitStatus, (0x21 << 1) | 1);
    assert.deepEqual([...result.debugcon], [0x4f, 0x4b, 0xe9], "the CPU stops right after the exit request");
  });

  test("COM1 polled output: LSR reports the transmitter empty, THR bytes go to the sink", () => {
    const machine = new BareMachine({ ramBytes: 1 << 20, createCpu: tiny });
    // The putc loop of microbench.asm, reduced: wait for LSR bit 5, then write THR.
    const program = assemble(`BITS 16
      mov al, 'h'
      call_putc:
      mov dx, 0x3fd
    wait_empty:
      in al, dx
      test al, 0x20
      jz wait_empty
      mov dx, 0x3f8
      mov al, 'h'
      out dx, al
      mov al, 'i'
      out dx, al
      cli
      hlt`);
    machine.loadFlat(program, 0x7c00, { mode: "real", cs: 0x07c0, ip: 0 });
    const result = machine.run(1000);
    assert.equal(result.reason, "halted");
    assert.equal(result.interruptsEnabled, false);
    assert.equal(new TextDecoder().decode(result.serial), "hi");
    assert.equal(result.debugcon.length, 0);
  });

  test("the instruction budget stops an endless loop", () => {
    const machine = new BareMachine({ ramBytes: 1 << 20, createCpu: tiny });
    machine.loadFlat(assemble("BITS 32\nspin: jmp spin"), 0x2000, { mode: "protected32", eip: 0x2000 });
    const result = machine.run(25_000);
    assert.equal(result.reason, "budget");
    assert.equal(result.instructions, 25_000);
  });

  test("a CPU shutdown is reported as a triple fault", () => {
    const machine = new BareMachine({ ramBytes: 1 << 20, createCpu: tiny });
    machine.loadFlat(assemble("BITS 32\nsti\nud2"), 0x2000, { mode: "protected32", eip: 0x2000 });
    const result = machine.run(100);
    assert.equal(result.reason, "triple-fault");
    assert.match(result.detail, /triple fault/);
  });

  test("a halt with IF=1 is reported with interrupts enabled", () => {
    const machine = new BareMachine({ ramBytes: 1 << 20, createCpu: tiny });
    machine.loadFlat(assemble("BITS 32\nsti\nhlt"), 0x2000, { mode: "protected32", eip: 0x2000 });
    const result = machine.run(100);
    assert.equal(result.reason, "halted");
    assert.equal(result.interruptsEnabled, true);
  });

  test("multiboot kernels start flat with EAX=0x2BADB002 and EBX=the info structure", () => {
    let cpu: TinyCpu | undefined;
    const kernel = assemble(`BITS 32
      ORG 0x100000
      FLAGS equ 0x10000
      hdr: dd 0x1BADB002, FLAGS, -(0x1BADB002 + FLAGS), hdr, hdr, 0, 0, start
      start:
      mov al, 3
      out 0xf4, al`);
    const result = runMultiboot(kernel, {
      budget: 100,
      ramBytes: 4 << 20,
      createCpu: (env) => (cpu = new TinyCpu(env)),
    });
    assert.equal(result.reason, "debug-exit");
    assert.equal(result.exitStatus, 7);
    assert.equal(cpu?.entered?.mode, "protected32");
    assert.equal(cpu?.entered?.eip, 0x100020);
    assert.equal(cpu?.entered?.registers.eax, MULTIBOOT_BOOTLOADER_MAGIC);
    assert.equal(cpu?.entered?.registers.ebx, 0x9000);
  });

  test("a flat binary that does not fit in RAM is refused", () => {
    const machine = new BareMachine({ ramBytes: 1 << 20, createCpu: tiny });
    assert.throws(
      () => machine.loadFlat(new Uint8Array(0x2000), 0xff000, { mode: "protected32", eip: 0xff000 }),
      /does not fit/,
    );
  });

  test("the serial stub keeps its divisor latch apart from THR", () => {
    const sink = new ByteSink();
    const uart = new SerialTransmitter(sink);
    uart.ioWrite(3, 1, 0x80);
    uart.ioWrite(0, 1, 0x01);
    uart.ioWrite(1, 1, 0x00);
    assert.equal(uart.ioRead(0, 1), 0x01);
    uart.ioWrite(3, 1, 0x03);
    uart.ioWrite(0, 1, 0x41);
    assert.equal(uart.ioRead(3, 1), 0x03);
    assert.equal(uart.ioRead(5, 1), 0x60);
    assert.equal(sink.text(), "A");
  });

  test("output after the exit request is dropped even without requestStop", () => {
    const machine = new BareMachine({
      ramBytes: 1 << 20,
      createCpu: (env) => {
        const cpu = new TinyCpu(env);
        return {
          run: (n: number) => cpu.run(n),
          get halted() {
            return cpu.halted;
          },
          interruptsEnabled: () => cpu.interruptsEnabled(),
          enterRealMode: (cs: number, ip: number, r: GeneralRegisters) => cpu.enterRealMode(cs, ip, r),
          enterFlatProtectedMode: (eip: number, r: GeneralRegisters) => cpu.enterFlatProtectedMode(eip, r),
        };
      },
    });
    machine.loadFlat(
      assemble("BITS 32\nmov al, 'a'\nout 0xe9, al\nout 0xf4, al\nmov al, 'b'\nout 0xe9, al\nhlt"),
      0x1000,
      {
        mode: "protected32",
        eip: 0x1000,
      },
    );
    const result = machine.run(100);
    assert.equal(result.reason, "debug-exit");
    assert.equal(new TextDecoder().decode(result.debugcon), "a");
  });

  test("the output sink stops growing at its cap", () => {
    const sink = new ByteSink(5000);
    for (let i = 0; i < 10000; i++) sink.push(i & 0xff);
    assert.equal(sink.length, 5000);
    assert.equal(sink.bytes()[4999], 4999 & 0xff);
  });

  test("tsvisor's CPU runs flat binaries from both entry states", async (t) => {
    const lookup = await loadTsvisorCpu();
    if ("missing" in lookup) {
      t.todo(`the CPU is not runnable yet: ${lookup.missing}`);
      return;
    }
    // Real mode at 0x07C0:0000 with DS=CS: print the string at its label, then exit with 5.
    const real = new BareMachine({ ramBytes: 1 << 20, createCpu: lookup.factory });
    real.loadFlat(
      assemble(`BITS 16
        mov si, msg
        mov dx, 0xe9
      next:
        lodsb
        test al, al
        jz done
        out dx, al
        jmp next
      done:
        mov ax, cs
        cmp ax, 0x07c0
        jne bad
        mov al, 5
        out 0xf4, al
      bad:
        cli
        hlt
      msg: db "real", 0`),
      0x7c00,
      { mode: "real", cs: 0x07c0, ip: 0 },
    );
    const r = real.run(10_000);
    assert.equal(r.reason, "debug-exit");
    assert.equal(r.exitStatus, 11);
    assert.equal(new TextDecoder().decode(r.debugcon), "real");
    // Flat 32-bit protected mode with registers handed over.
    const flat = new BareMachine({ ramBytes: 1 << 20, createCpu: lookup.factory });
    flat.loadFlat(
      assemble(`BITS 32
        ORG 0x10000
        mov [0x20000], ebx
        mov eax, [0x20000]
        add eax, ecx
        out 0xe9, al
        mov eax, cr0
        and al, 1
        out 0xe9, al
        hlt`),
      0x10000,
      { mode: "protected32", eip: 0x10000, registers: { ebx: 0x40, ecx: 1 } },
    );
    const traced: string[] = [];
    flat.cpu.setTrace?.((state) => traced.push(formatTrace(state)));
    const p = flat.run(10_000);
    if (flat.cpu.setTrace) {
      assert.match(
        traced[0]!,
        /^0008:00010000 {2}mov \[dword 0x20000\],ebx +eax=00000000 ecx=00000001 edx=00000000 ebx=00000040/,
      );
      assert.equal(traced.length, 8);
    }
    assert.equal(p.reason, "halted");
    assert.equal(p.interruptsEnabled, false);
    assert.deepEqual([...p.debugcon], [0x41, 1]);
  });

  test("tsvisor's CPU is found, or the reason it cannot be used is given", async () => {
    const lookup = await loadTsvisorCpu();
    if ("missing" in lookup) assert.match(lookup.missing, /cpu\.ts|Cpu/);
    else assert.equal(typeof lookup.factory, "function");
  });
});
