// The binary translator's cache and policy: which decoded blocks get translated (by measured heat),
// what assumptions a translation was made under, how much translated code may exist at once, and
// the counters `info jit` shows.
//
// Translations hang off the interpreter's decoded blocks (decoder.ts `Block`), so they share the
// blocks' keys (physical address and code-segment size) and their invalidation: a write to a page
// holding code (by the guest, DMA or a loader, seen through the memory map's CODE flag), a change
// of the memory map or of A20 marks the blocks invalid, and their translations die with them.
// Everything else a translation depends on (flat segments, the stack size) is checked when it is
// entered; a mismatch translates the block again under the new assumptions.
//
// The cache is bounded: past `maxBlocks` translations or `maxSourceBytes` of generated source,
// every translation is dropped at once and heat starts again (the policy QEMU's TCG uses when its
// code buffer fills); guests that generate code therefore cannot grow it without limit.

import type { Block } from "../decoder.ts";
import { type CpuArrays, type TranslatedBlock, translateRegion } from "./translate.ts";

export type JitMode = "off" | "on" | "force";

/** The translator mode from TSVISOR_JIT (for test runs), else `on`. */
export function defaultJitMode(env: Record<string, string | undefined> = process.env): JitMode {
  const v = env.TSVISOR_JIT;
  return v === "off" || v === "force" || v === "on" ? v : "on";
}

export interface JitOptions {
  mode: JitMode;
  /** Executions of a block before its page is translated (`force`: 1). */
  threshold?: number;
  /** Executions before a block not yet hot enough for its page is translated alone. */
  blockThreshold?: number;
  maxBlocks?: number;
  maxSourceBytes?: number;
  /** Most guest instructions one page translation may hold. */
  maxRegionInstructions?: number;
}

export interface JitStats {
  mode: JitMode;
  /** Blocks translated since start (including retranslations). */
  translations: number;
  /** Translations currently held. */
  cachedBlocks: number;
  /** Generated source held, in bytes (the cache's size measure). */
  cachedSourceBytes: number;
  /** Instructions translated inline / left to interpreter handlers, over all translations. */
  inlinedInstructions: number;
  handlerInstructions: number;
  /** Translations dropped because their code was written or remapped. */
  invalidations: number;
  /** Times the whole cache was dropped for being full. */
  flushes: number;
  /** Entries refused because the CPU no longer matched a translation's assumptions. */
  assumptionMisses: number;
  /** Translations made again without the loop form of a block whose accesses kept missing. */
  loopFormDrops: number;
  /** Milliseconds spent generating and compiling translations. */
  translateMs: number;
}

/** Blocks whose assumptions keep changing stop being translated after this many attempts. */
const MAX_RETRANSLATIONS = 4;

/**
 * The heat goal of a block the translator is done with. A small integer rather than Infinity, and
 * every goal an integer: one goal that is not makes V8 keep every block's goal as a boxed double,
 * which the dispatcher loads on each block it runs. A block that gets there starts counting again.
 */
const NEVER = 2 ** 30;

/** Most blocks one translation may hold (one page of code rarely has more). */
const MAX_REGION_BLOCKS = 64;

export interface JitCpuView extends CpuArrays {
  readonly flatMask: number;
  readonly stack32: boolean;
  readonly ram: Uint8Array;
  /** The decoded blocks on `block`'s physical page. */
  blocksOnPageOf(block: Block): readonly Block[];
}

export class Jit {
  readonly mode: JitMode;
  /** Executions before a block is translated alone, and before its page is translated. */
  readonly blockThreshold: number;
  readonly threshold: number;
  readonly maxBlocks: number;
  readonly maxSourceBytes: number;
  readonly maxRegionInstructions: number;
  private readonly held = new Set<Block>();
  /** Page translations so far, per physical page (the backoff for late-found blocks). */
  private readonly pageTranslations = new Map<number, number>();
  /** Sees each translation's generated source (the monitor's `trace jit`). */
  onTranslation: ((phys: number, instructions: number, source: string) => void) | undefined;
  private sourceBytes = 0;
  private translations = 0;
  private inlined = 0;
  private viaHandler = 0;
  private invalidations = 0;
  private flushes = 0;
  private misses = 0;
  private loopFormDrops = 0;
  private translateMs = 0;

  constructor(options: JitOptions) {
    this.mode = options.mode;
    // Translation costs V8 far more than one run of the code: measured on the reference guest,
    // thresholds in the thousands boot faster than tens and hold a third of the memory.
    this.threshold = options.mode === "force" ? 1 : (options.threshold ?? 8192);
    this.blockThreshold =
      options.mode === "force" ? 1 : Math.min(this.threshold, options.blockThreshold ?? 8192);
    this.maxBlocks = options.maxBlocks ?? 32768;
    this.maxSourceBytes = options.maxSourceBytes ?? 32 * 1024 * 1024;
    // The kernel's decompressor has about a thousand hot instructions on one page: at 128 a
    // region, its functions handed over to one another 89 M times before the kernel started, at
    // 192 far fewer, and the boot was a few percent faster for little more host CPU. At 384 and
    // more, V8 took longer to compile and optimise the larger functions than they saved.
    this.maxRegionInstructions = options.maxRegionInstructions ?? 192;
  }

  /**
   * `block` reached its heat goal. Flat 32-bit code is translated a page at a time: the first hot
   * block on a page brings every warm block of the page into one translation. A block found hot
   * later is translated alone at once, and the page is translated again with it only when it has
   * stayed hot for twice as long as the previous time: code discovered bit by bit (the kernel's
   * init code, modules) costs a bounded number of page translations.
   */
  heatReached(block: Block, cpu: JitCpuView): void {
    if (block.heatGoal === NEVER) {
      block.heat = 0;
      return;
    }
    const hot = this.hotAt(block);
    if (block.heat < hot) {
      block.heatGoal = hot;
      return;
    }
    block.heatGoal = NEVER;
    if (block.retranslations > MAX_RETRANSLATIONS || block.inRegion) return;
    const flatMask = cpu.flatMask;
    if (!block.code32 || (flatMask & (1 << 1)) === 0) {
      if (block.translated === undefined) this.translate([block], false, flatMask, cpu);
      return;
    }
    const page = Math.floor(block.phys / 4096);
    const done = this.pageTranslations.get(page) ?? 0;
    // Under `force` every block is translated at once, alone if its page already has a
    // translation; pages are translated again only for code that keeps running.
    const pageHot = this.mode === "force" ? 64 : (this.threshold * hot) / this.blockThreshold;
    // An integer V8 keeps unboxed (see NEVER), whatever arithmetic produced it.
    const goal = Math.min(pageHot * 2 ** Math.min(done, 8), NEVER) | 0;
    if (block.heat < goal) {
      // Warm, not yet hot enough for its page: translated alone, looked at again at the goal.
      if (block.translated === undefined) this.translate([block], false, flatMask, cpu);
      block.heatGoal = goal;
      return;
    }
    this.pageTranslations.set(page, done + 1);
    this.translate(this.regionAround(block, cpu), true, flatMask, cpu);
  }

  /**
   * Executions that make `block` hot: the block threshold for blocks of up to 8 instructions, and
   * proportionally fewer for longer ones (down to an eighth), so that no block runs much more than
   * threshold x 8 instructions in the interpreter first. The long straight-line bodies of hash and
   * cipher rounds, and the kernel's decompressor, would otherwise spend a long time there. With x 16
   * the reference guest reached GUEST-READY about half a second later; with x 4 it compiled more
   * than it saved.
   */
  private hotAt(block: Block): number {
    const scaled = Math.round((this.blockThreshold * 8) / block.insns.length);
    return Math.max(Math.ceil(this.blockThreshold / 8), Math.min(this.blockThreshold, scaled)) | 0;
  }

  /**
   * `block` and warm blocks on its page, up to `maxRegionInstructions`: first those reached from
   * it by direct branches and fall-through (its loop), then the hottest of the rest. V8 optimises
   * a function only below a bytecode size limit, and compiling one costs time in proportion to its
   * size, so a region holds the code that runs together, not every block the page ever decoded.
   */
  private regionAround(block: Block, cpu: JitCpuView): Block[] {
    const candidates = new Map<number, Block>();
    for (const b of cpu.blocksOnPageOf(block)) {
      if (
        b !== block &&
        b.valid &&
        b.cacheable &&
        b.crossPage < 0 &&
        b.code32 === block.code32 &&
        b.phys !== block.phys &&
        b.retranslations <= MAX_RETRANSLATIONS &&
        b.heat >= Math.max(1, this.hotAt(b) >> 2) &&
        !candidates.has(b.phys)
      ) {
        candidates.set(b.phys, b);
      }
    }
    const region = [block];
    let size = block.insns.length;
    const take = (b: Block): boolean => {
      if (region.length >= MAX_REGION_BLOCKS || size + b.insns.length > this.maxRegionInstructions)
        return false;
      candidates.delete(b.phys);
      region.push(b);
      size += b.insns.length;
      return true;
    };
    for (let k = 0; k < region.length; k++) {
      for (const phys of successorsOf(region[k]!)) {
        const next = candidates.get(phys);
        if (next !== undefined) take(next);
      }
    }
    for (const b of [...candidates.values()].sort((a, b) => b.heat - a.heat)) take(b);
    return region;
  }

  private translate(
    region: Block[],
    chain: boolean,
    flatMask: number,
    cpu: JitCpuView,
  ): TranslatedBlock | undefined {
    if (this.held.size >= this.maxBlocks || this.sourceBytes >= this.maxSourceBytes) this.flush();
    const started = performance.now();
    const t = translateRegion(region, chain, flatMask, cpu.stack32, cpu, cpu.ram.length <= 2 ** 31);
    this.translateMs += performance.now() - started;
    this.translations++;
    this.onTranslation?.(region[0]!.phys, t.instructions, t.source);
    this.inlined += t.inlined;
    this.viaHandler += t.instructions - t.inlined;
    for (const b of region) {
      if (b.translated !== undefined) this.sourceBytes -= b.translatedBytes;
      b.translated = t.run;
      b.translatedBytes = 0;
      b.translatedFlat = flatMask;
      b.inRegion = chain;
      if (chain) b.heatGoal = NEVER;
      this.held.add(b);
    }
    region[0]!.translatedBytes = t.source.length;
    this.sourceBytes += t.source.length;
    return t.run;
  }

  /** A translation refused to run: translate again for what the CPU looks like now. */
  retranslate(block: Block, cpu: JitCpuView): TranslatedBlock | undefined {
    this.misses++;
    block.retranslations++;
    if (block.retranslations > MAX_RETRANSLATIONS) {
      this.release(block);
      return undefined;
    }
    // Keep only the segments flat both then and now, so alternating users converge.
    const flatMask = cpu.flatMask & block.translatedFlat;
    const chain = block.inRegion && block.code32 && (flatMask & (1 << 1)) !== 0;
    return this.translate(chain ? this.regionAround(block, cpu) : [block], chain, flatMask, cpu);
  }

  /**
   * `block`'s accesses have left its translation's loop form too often (LOOP_MISS_LIMIT times
   * within LOOP_MISS_WINDOW instructions): translate the blocks of that translation again, under
   * the same assumptions. The block loses its page groups first, if it had any, and its loop
   * form the next time.
   */
  loopFormMissedOften(block: Block, cpu: JitCpuView): void {
    const old = block.translated;
    if (!block.valid || old === undefined) return;
    if (block.hasPageGroups && !block.pageGroupsOff) {
      // First without page groups, whose span may be what misses; the loop form stays.
      block.pageGroupsOff = true;
      block.loopMisses = 0;
    } else {
      this.loopFormDrops++;
    }
    const flatMask = block.translatedFlat;
    const chain = block.inRegion;
    const region = [block];
    if (chain) {
      for (const b of cpu.blocksOnPageOf(block))
        if (b !== block && b.valid && b.translated === old && !region.includes(b)) region.push(b);
    }
    this.translate(region, chain, flatMask, cpu);
  }

  /** The block's code changed or was unmapped. */
  dropped(block: Block): void {
    if (block.translated === undefined) return;
    this.invalidations++;
    this.release(block);
  }

  private release(block: Block): void {
    this.sourceBytes -= block.translatedBytes;
    block.translated = undefined;
    block.translatedBytes = 0;
    block.inRegion = false;
    this.held.delete(block);
  }

  /** Drops every translation because the cache is full. */
  flush(): void {
    if (this.held.size > 0) this.flushes++;
    this.dropAll();
  }

  /** Drops every translation (the decoded blocks are being dropped too). */
  dropAll(): void {
    for (const b of this.held) {
      b.translated = undefined;
      b.translatedBytes = 0;
      b.inRegion = false;
      b.heat = 0;
      b.heatGoal = 0;
    }
    this.held.clear();
    this.pageTranslations.clear();
    this.sourceBytes = 0;
  }

  stats(): JitStats {
    return {
      mode: this.mode,
      translations: this.translations,
      cachedBlocks: this.held.size,
      cachedSourceBytes: this.sourceBytes,
      inlinedInstructions: this.inlined,
      handlerInstructions: this.viaHandler,
      invalidations: this.invalidations,
      flushes: this.flushes,
      assumptionMisses: this.misses,
      loopFormDrops: this.loopFormDrops,
      translateMs: Math.round(this.translateMs),
    };
  }
}

/** Physical addresses a block continues at through direct branches or falling through. */
export function successorsOf(block: Block): number[] {
  const last = block.insns[block.insns.length - 1]!;
  const end = block.phys + block.byteLength;
  const op = last.opcode;
  const out: number[] = [];
  const relative =
    (op >= 0x70 && op <= 0x7f) ||
    (op >= 0x180 && op <= 0x18f) ||
    op === 0xe8 ||
    op === 0xe9 ||
    op === 0xeb ||
    (op >= 0xe0 && op <= 0xe3);
  if (relative && last.opsize === 4) out.push(end + last.imm);
  const noFallThrough =
    op === 0xe9 || op === 0xeb || op === 0xc3 || op === 0xc2 || (op === 0xff && last.reg === 4);
  if (!noFallThrough) out.push(end);
  return out;
}
