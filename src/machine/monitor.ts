// The monitor's inspection commands (QEMU-style): registers, memory, disassembly.
import { writeFileSync } from "node:fs";
import type { PhysicalMemory } from "../core/memory.ts";
import type { Cpu } from "../x86/cpu.ts";
import { disassemble } from "../x86/disasm.ts";

/** What the monitor can look at. */
export interface Inspectable {
  readonly cpu: Cpu;
  readonly memory: PhysicalMemory;
  screenshot(): Uint8Array | undefined;
}

const SEGMENT_NAMES = ["ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR"];
const REG_NAMES = ["EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI"];

export const MONITOR_HELP = `commands:
  info registers       CPU registers, segments, control registers
  info cpu             mode, CPL, halted, instructions executed
  info jit             binary translator: translations, cache size, invalidations, time spent
  x/Nx ADDR            N dwords of guest-linear memory at ADDR (through paging)
  xp/Nx ADDR           N dwords of guest-physical memory at ADDR
  x/Ni ADDR            disassemble N instructions at linear ADDR
  screendump FILE      write the display as PNG
  trace ports on|off   log every port access (to --trace, stderr by default)
  trace unhandled on|off  log accesses to ports no device claims
  trace cpu on|off     log every instruction with registers (slow)
  trace jit on|off     log the JavaScript each translation generates
  stop / cont          pause / resume the guest
  system_reset         reset the machine
  quit                 stop the VM`;

function hex(n: number, digits = 8): string {
  return (n >>> 0).toString(16).padStart(digits, "0");
}

export function renderMonitor(target: Inspectable, command: string): string {
  const words = command.trim().split(/\s+/);
  const cpu = target.cpu;
  switch (words[0]) {
    case "help":
    case "?":
      return MONITOR_HELP;
    case "info":
      if (words[1] === "registers" || words[1] === "r") return infoRegisters(cpu);
      if (words[1] === "cpu") {
        const pe = (cpu.cr0 & 1) !== 0;
        const vm = (cpu.eflags & 0x20000) !== 0;
        const mode = !pe
          ? "real"
          : vm
            ? "virtual-8086"
            : (cpu.getSegment(1).attributes & 0x4000) !== 0
              ? "protected 32-bit"
              : "protected 16-bit";
        return `mode=${mode} cpl=${cpu.cpl} halted=${cpu.halted} paging=${cpu.cr0 >>> 31 === 1} instructions=${cpu.instructionCount}`;
      }
      if (words[1] === "jit") return infoJit(cpu);
      return `unknown info command '${words[1] ?? ""}' (try: info registers, info cpu, info jit)`;
    case "screendump": {
      if (!words[1]) return "usage: screendump FILE";
      const png = target.screenshot();
      if (!png) return "this machine has no display";
      try {
        writeFileSync(words[1], png);
      } catch (err) {
        return `screendump: ${(err as Error).message}`;
      }
      return `wrote ${png.length} bytes to ${words[1]}`;
    }
    default: {
      const m = /^(x|xp)\/(\d*)([xi])$/.exec(words[0] ?? "");
      if (m && words[1])
        return examine(target, m[1] === "xp", Number(m[2] || "1"), m[3] as "x" | "i", words[1]);
      return `unknown command '${words[0]}'; type 'help'`;
    }
  }
}

function infoJit(cpu: Cpu): string {
  const jit = cpu.jit;
  if (!jit) return "binary translator: off (interpreter only)";
  const s = jit.stats();
  const total = s.inlinedInstructions + s.handlerInstructions;
  const inline = total > 0 ? ((100 * s.inlinedInstructions) / total).toFixed(1) : "0.0";
  return [
    `binary translator: ${s.mode} (threshold ${jit.threshold} runs)`,
    `translations ${s.translations}, held ${s.cachedBlocks} blocks in ${(s.cachedSourceBytes / 1024).toFixed(0)} KiB of source (limit ${jit.maxBlocks} blocks, ${(jit.maxSourceBytes / 2 ** 20).toFixed(0)} MiB)`,
    `instructions translated ${total} (${inline}% inline, the rest through interpreter handlers)`,
    `invalidations ${s.invalidations}, cache flushes ${s.flushes}, assumption misses ${s.assumptionMisses}, loop forms dropped ${s.loopFormDrops}`,
    `time translating ${s.translateMs} ms`,
  ].join("\n");
}

/** One line of the instruction trace: CS:EIP, the instruction and the general registers. */
export function traceLine(cpu: Cpu, memory: PhysicalMemory): string {
  const cs = cpu.getSegment(1);
  const linear = (cs.base + cpu.eip) >>> 0;
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const phys = cpu.translateLinear((linear + i) >>> 0);
    bytes[i] = phys < 0 ? 0 : memory.read8(phys);
  }
  const mode = (cs.attributes & 0x4000) !== 0 ? 32 : 16;
  const text = disassemble(bytes, 0, mode, cpu.eip).text;
  const regs = REG_NAMES.map((n, i) => `${n.toLowerCase()}=${hex(cpu.getReg32(i))}`).join(" ");
  return `${hex(cs.selector, 4)}:${hex(cpu.eip)} ${text.padEnd(32)} ${regs} efl=${hex(cpu.eflags)}`;
}

function infoRegisters(cpu: Cpu): string {
  const lines: string[] = [];
  const regs = REG_NAMES.map((n, i) => `${n}=${hex(cpu.getReg32(i))}`);
  lines.push(regs.slice(0, 4).join(" "), regs.slice(4).join(" "));
  lines.push(
    `EIP=${hex(cpu.eip)} EFL=${hex(cpu.eflags)} CPL=${cpu.cpl} A20=${cpu.saveState().a20 ? 1 : 0} HLT=${cpu.halted ? 1 : 0}`,
  );
  for (let s = 0; s < 8; s++) {
    const seg = cpu.getSegment(s);
    lines.push(
      `${SEGMENT_NAMES[s]!.padEnd(3)} =${hex(seg.selector, 4)} ${hex(seg.base)} ${hex(seg.limit)} ${hex(seg.attributes, 4)}`,
    );
  }
  lines.push(
    `GDT=     ${hex(cpu.gdtr.base)} ${hex(cpu.gdtr.limit)}`,
    `IDT=     ${hex(cpu.idtr.base)} ${hex(cpu.idtr.limit)}`,
  );
  lines.push(`CR0=${hex(cpu.cr0)} CR2=${hex(cpu.cr2)} CR3=${hex(cpu.cr3)} CR4=${hex(cpu.cr4)}`);
  return lines.join("\n");
}

function examine(
  target: Inspectable,
  physical: boolean,
  count: number,
  format: "x" | "i",
  where: string,
): string {
  const address = Number.parseInt(where.replace(/^0x/i, ""), 16);
  if (!Number.isFinite(address) || address < 0) return `bad address '${where}'`;
  const n = Math.min(Math.max(count, 1), 1024);
  const cpu = target.cpu;
  const read8 = (a: number): number | undefined => {
    if (physical) return target.memory.read8(a);
    const phys = cpu.translateLinear(a >>> 0);
    return phys < 0 ? undefined : target.memory.read8(phys);
  };
  const lines: string[] = [];
  if (format === "x") {
    for (let row = 0; row < n; row += 4) {
      const words: string[] = [];
      for (let k = row; k < Math.min(n, row + 4); k++) {
        let v = 0;
        for (let b = 3; b >= 0; b--) {
          const byte = read8(address + k * 4 + b);
          if (byte === undefined) return `${lines.join("\n")}\n${hex(address + k * 4)}: not mapped`.trim();
          v = v * 256 + byte;
        }
        words.push(`0x${hex(v)}`);
      }
      lines.push(`${hex(address + row * 4)}: ${words.join(" ")}`);
    }
    return lines.join("\n");
  }
  const mode = (cpu.getSegment(1).attributes & 0x4000) !== 0 ? 32 : 16;
  let at = address;
  for (let k = 0; k < n; k++) {
    const bytes = new Uint8Array(16);
    for (let b = 0; b < 16; b++) bytes[b] = read8(at + b) ?? 0;
    const d = disassemble(bytes, 0, mode, at);
    lines.push(`${hex(at)}: ${d.text}`);
    at += d.length;
  }
  return lines.join("\n");
}
