// The interpreter on code it has decoded but that no longer sits in the host's caches: a chain of
// N distinct six-instruction blocks (loads, an add, a store, a compare, a jump to the next) run
// round and round in a bare CPU with the translator off. With a few hundred blocks the decoded
// instructions stay in the caches; with tens of thousands, as in a kernel's first seconds, each
// block's records come from memory. Measures nanoseconds per guest instruction after a warm-up of
// two rounds and at least 3 M instructions (decoding, and V8's own warm-up), the median of seven
// timed stretches.
//
//   node bench/cold-code.ts [N ...]        default: COLD_CODE_SIZES
import { assemble, makeMachine, startFlat32 } from "../src/x86/test-support.ts";

const BLOCK_INSNS = 6;
/** Chain lengths `npm run bench` measures: from well inside the host's caches to far outside. */
export const COLD_CODE_SIZES = [100, 2000, 20000, 100000];

function program(blocks: number): Uint8Array {
  return assemble(
    `
  mov ebx, 0x700000
  mov edx, 1
top:
%rep ${blocks}
  mov eax, [ebx + 4]
  add eax, edx
  mov [ebx + 8], eax
  cmp eax, 12345
  mov esi, [ebx + 12]
  jmp short $+2
%endrep
  jmp top`,
    32,
    0x10000,
  );
}

/** Nanoseconds per instruction with `blocks` blocks in the chain. */
export function coldCode(blocks: number): number {
  const m = makeMachine({ jit: "off" });
  startFlat32(m, program(blocks));
  const round = blocks * BLOCK_INSNS;
  const stretch = Math.max(round * 3, 3_000_000);
  const runFor = (count: number): void => {
    for (let done = 0; done < count; ) done += m.cpu.run(count - done);
  };
  runFor(Math.max(round * 2, 3_000_000));
  const times: number[] = [];
  for (let k = 0; k < 7; k++) {
    const t0 = performance.now();
    runFor(stretch);
    times.push(((performance.now() - t0) * 1e6) / stretch);
  }
  times.sort((a, b) => a - b);
  return times[3]!;
}

/** Measures each chain length in turn, printing a line for each; returns the figures. */
export function coldCodeSuite(sizes: readonly number[] = COLD_CODE_SIZES): { blocks: number; ns: number }[] {
  return sizes.map((blocks) => {
    const ns = coldCode(blocks);
    process.stdout.write(`cold-code blocks=${blocks} ${ns.toFixed(1)} ns/insn\n`);
    return { blocks, ns };
  });
}

if (import.meta.main) {
  const sizes = process.argv.slice(2).map(Number);
  coldCodeSuite(sizes.length > 0 ? sizes : undefined);
}
