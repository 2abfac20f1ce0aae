// Linux kernel modules: reading their metadata and resolving dependencies without the host's
// kmod tools.
//
// Debian's kernel packages ship the modules but not modules.dep (depmod builds it when the package
// is installed, and we only unpack it). Each module carries its own metadata in the ELF section
// ".modinfo": NUL-separated "key=value" strings such as "name=ext4", "depends=jbd2,mbcache,crc16",
// "alias=fs-ext4" and "softdep=pre: crypto-crc32c". That is all depmod needs to write modules.dep
// and modules.alias, and all busybox's modprobe needs in the guest.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, zstdDecompressSync } from "node:zlib";
import { ImagesError } from "./errors.ts";

/** e_ident[EI_CLASS]: 32-bit objects. */
const ELFCLASS32 = 1;
/** e_ident[EI_CLASS]: 64-bit objects. */
const ELFCLASS64 = 2;
/** e_ident[EI_DATA]: little-endian. */
const ELFDATA2LSB = 1;
/** e_ident[EI_DATA]: big-endian. */
const ELFDATA2MSB = 2;

/** What one module declares about itself. */
export interface ModuleInfo {
  /** Module name as the kernel and modprobe know it ("ne2k_pci": dashes become underscores). */
  readonly name: string;
  /** Path relative to the modules directory, e.g. "kernel/fs/ext4/ext4.ko". */
  readonly path: string;
  /** Names of modules that must be loaded first (hard dependencies, from symbol use). */
  readonly depends: readonly string[];
  /** Names or aliases the module asks to have loaded first if available ("softdep=pre:"). */
  readonly softdepPre: readonly string[];
  /** Alias patterns (shell globs) the module answers to, e.g. "pci:v00008086d00007010sv*...". */
  readonly aliases: readonly string[];
}

const MODULE_SUFFIXES = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"] as const;

export function moduleNameFromFile(fileName: string): string {
  for (const suffix of MODULE_SUFFIXES) {
    if (fileName.endsWith(suffix)) return fileName.slice(0, -suffix.length).replaceAll("-", "_");
  }
  return fileName.replaceAll("-", "_");
}

/** Extracts the NUL-separated strings of the ".modinfo" section of an ELF relocatable object. */
export function readModinfoStrings(elf: Uint8Array, what = "module"): string[] {
  const fail = (why: string): never => {
    throw new ImagesError(`${what} is not a valid kernel module: ${why}`);
  };
  if (elf.length < 0x40 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c || elf[3] !== 0x46) {
    fail("no ELF header");
  }
  const elfClass = elf[4];
  const data = elf[5];
  if (elfClass !== ELFCLASS32 && elfClass !== ELFCLASS64) fail("unknown ELF class");
  if (data !== ELFDATA2LSB && data !== ELFDATA2MSB) fail("unknown byte order");
  const little = data === ELFDATA2LSB;
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const is64 = elfClass === ELFCLASS64;
  const u16 = (at: number) => view.getUint16(at, little);
  const u32 = (at: number) => view.getUint32(at, little);
  const word = (at: number) => (is64 ? Number(view.getBigUint64(at, little)) : u32(at));

  const sectionTable = word(is64 ? 0x28 : 0x20);
  const entrySize = u16(is64 ? 0x3a : 0x2e);
  const count = u16(is64 ? 0x3c : 0x30);
  const namesIndex = u16(is64 ? 0x3e : 0x32);
  const minEntry = is64 ? 0x40 : 0x28;
  if (entrySize < minEntry || count === 0 || namesIndex >= count) fail("bad section header table");
  if (!Number.isSafeInteger(sectionTable) || sectionTable + count * entrySize > elf.length) {
    fail("section header table outside the file");
  }
  const section = (index: number) => {
    const at = sectionTable + index * entrySize;
    const offset = word(at + (is64 ? 0x18 : 0x10));
    const size = word(at + (is64 ? 0x20 : 0x14));
    if (!Number.isSafeInteger(offset + size) || offset + size > elf.length) fail("section outside the file");
    return { nameOffset: u32(at), offset, size };
  };
  const names = section(namesIndex);
  const decoder = new TextDecoder();
  for (let i = 0; i < count; i++) {
    const s = section(i);
    const nameStart = names.offset + s.nameOffset;
    if (nameStart >= names.offset + names.size) continue;
    let nameEnd = nameStart;
    while (nameEnd < names.offset + names.size && elf[nameEnd] !== 0) nameEnd++;
    if (decoder.decode(elf.subarray(nameStart, nameEnd)) !== ".modinfo") continue;
    return decoder
      .decode(elf.subarray(s.offset, s.offset + s.size))
      .split("\0")
      .filter((entry) => entry.length > 0);
  }
  return fail("no .modinfo section");
}

/** Turns ".modinfo" strings into a ModuleInfo. */
export function parseModinfo(strings: readonly string[], path: string): ModuleInfo {
  let name = moduleNameFromFile(path.slice(path.lastIndexOf("/") + 1));
  const depends: string[] = [];
  const softdepPre: string[] = [];
  const aliases: string[] = [];
  for (const entry of strings) {
    const eq = entry.indexOf("=");
    if (eq < 0) continue;
    const key = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (key === "name" && value !== "") name = value;
    else if (key === "depends") depends.push(...value.split(",").filter((d) => d !== ""));
    else if (key === "alias") aliases.push(value);
    else if (key === "softdep") {
      // "pre: a b post: c": only "pre" matters for what has to be present.
      let inPre = false;
      for (const token of value.split(/\s+/)) {
        if (token === "pre:") inPre = true;
        else if (token.endsWith(":")) inPre = false;
        else if (inPre && token !== "") softdepPre.push(token);
      }
    }
  }
  return { name, path, depends, softdepPre, aliases };
}

/** Reads a module file as ELF bytes, decompressing .ko.gz/.ko.zst in-process and .ko.xz with xz. */
export function readModuleElf(file: string): Uint8Array {
  const raw = readFileSync(file);
  if (file.endsWith(".ko")) return raw;
  if (file.endsWith(".ko.gz")) return gunzipSync(raw);
  if (file.endsWith(".ko.zst")) return zstdDecompressSync(raw);
  if (file.endsWith(".ko.xz")) {
    const result = spawnSync("xz", ["-dc", file], { maxBuffer: 256 * 1024 * 1024 });
    if (result.error)
      throw new ImagesError(`cannot decompress ${file}: xz is not installed (apt-get install xz-utils)`);
    if (result.status !== 0)
      throw new ImagesError(`cannot decompress ${file}: ${result.stderr.toString().trim()}`);
    return result.stdout;
  }
  throw new ImagesError(`${file} is not a kernel module`);
}

/** Finds every module under a kernel's modules directory (e.g. /lib/modules/6.1.0-50-686). */
export function scanModules(modulesDir: string): ModuleInfo[] {
  const found: ModuleInfo[] = [];
  const walk = (relative: string) => {
    const entries = readdirSync(join(modulesDir, relative), { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const entry of entries) {
      const rel = relative === "" ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) walk(rel);
      else if (entry.isFile() && MODULE_SUFFIXES.some((s) => entry.name.endsWith(s))) {
        const file = join(modulesDir, rel);
        found.push(parseModinfo(readModinfoStrings(readModuleElf(file), file), rel));
      }
    }
  };
  for (const top of ["kernel", "updates", "extra"]) {
    if (existsSync(join(modulesDir, top))) walk(top);
  }
  return found;
}

/** Compiles a shell glob as modprobe uses for aliases ("*", "?" and "[...]" classes). */
export function globToRegExp(pattern: string): RegExp {
  let source = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else if (c === "[") {
      const close = pattern.indexOf("]", i + 2);
      if (close < 0) source += "\\[";
      else {
        let body = pattern.slice(i + 1, close).replace(/\\/g, "\\\\");
        if (body.startsWith("!")) body = `^${body.slice(1)}`;
        source += `[${body}]`;
        i = close;
      }
    } else source += c.replace(/[.+^${}()|\\/\]]/g, "\\$&");
  }
  return new RegExp(`${source}$`, "s");
}

export function globMatch(pattern: string, text: string): boolean {
  return globToRegExp(pattern).test(text);
}

const GLOB_CHARS = /[*?[]/;

/** Lookup by name and alias over a kernel's modules. */
export class ModuleIndex {
  readonly modules: readonly ModuleInfo[];
  readonly #byName = new Map<string, ModuleInfo>();
  /** Aliases without wildcards, looked up directly. */
  readonly #literalAliases = new Map<string, ModuleInfo[]>();
  /** Aliases with wildcards, compiled on first use. */
  #globAliases: { module: ModuleInfo; pattern: string; prefix: string; regexp?: RegExp }[] = [];

  constructor(modules: readonly ModuleInfo[]) {
    this.modules = modules;
    for (const m of modules) {
      if (!this.#byName.has(m.name)) this.#byName.set(m.name, m);
      for (const alias of m.aliases) {
        const wildcard = alias.search(GLOB_CHARS);
        if (wildcard >= 0)
          this.#globAliases.push({ module: m, pattern: alias, prefix: alias.slice(0, wildcard) });
        else {
          const list = this.#literalAliases.get(alias) ?? [];
          if (!list.includes(m)) list.push(m);
          this.#literalAliases.set(alias, list);
        }
      }
    }
  }

  /** A module by name; dashes and underscores are interchangeable, as for modprobe. */
  get(name: string): ModuleInfo | undefined {
    return this.#byName.get(name.replaceAll("-", "_"));
  }

  /** Modules whose name is `nameOrAlias`, or else those with an alias pattern matching it. */
  resolve(nameOrAlias: string): ModuleInfo[] {
    const direct = this.get(nameOrAlias);
    if (direct) return [direct];
    const found = [...(this.#literalAliases.get(nameOrAlias) ?? [])];
    for (const entry of this.#globAliases) {
      // Most patterns ("pci:v00008086d...") can be ruled out by their literal start, uncompiled.
      if (!nameOrAlias.startsWith(entry.prefix)) continue;
      entry.regexp ??= globToRegExp(entry.pattern);
      if (!found.includes(entry.module) && entry.regexp.test(nameOrAlias)) found.push(entry.module);
    }
    return found;
  }

  /**
   * Dependencies of `name` in load order (dependencies first, the module itself excluded), following
   * hard dependencies only. Throws if a dependency is missing: the module could never load.
   */
  dependencies(name: string): ModuleInfo[] {
    const root = this.get(name);
    if (!root) throw new ImagesError(`no kernel module named '${name}'`);
    const order: ModuleInfo[] = [];
    const done = new Set<string>();
    const active = new Set<string>();
    const visit = (m: ModuleInfo) => {
      if (done.has(m.name) || active.has(m.name)) return; // a cycle is broken rather than looped on
      active.add(m.name);
      for (const depName of m.depends) {
        const dep = this.get(depName);
        if (!dep) throw new ImagesError(`kernel module '${m.name}' needs '${depName}', which is missing`);
        visit(dep);
      }
      active.delete(m.name);
      done.add(m.name);
      order.push(m);
    };
    visit(root);
    return order.filter((m) => m !== root);
  }

  /**
   * The modules needed to load all of `wanted`: each one found, its hard dependencies and its
   * soft "pre" dependencies (resolved through aliases, e.g. ext4's "crypto-crc32c"). Names that do
   * not exist as modules (built into the kernel, or absent) are returned in `missing`.
   */
  closure(wanted: readonly string[]): { modules: ModuleInfo[]; missing: string[] } {
    const selected = new Map<string, ModuleInfo>();
    const missing: string[] = [];
    const add = (m: ModuleInfo) => {
      if (selected.has(m.name)) return;
      selected.set(m.name, m);
      for (const dep of this.dependencies(m.name)) add(dep);
      for (const soft of m.softdepPre) for (const s of this.resolve(soft)) add(s);
    };
    for (const name of wanted) {
      const m = this.get(name);
      if (m) add(m);
      else missing.push(name);
    }
    const modules = [...selected.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return { modules, missing };
  }

  /**
   * modules.dep text for `subset` (all modules by default), in depmod's format: "path: dep dep",
   * paths relative to the modules directory, dependencies listed so that modprobe loads them from
   * the last to the first.
   */
  modulesDep(subset: readonly ModuleInfo[] = this.modules): string {
    const lines = subset.map((m) => {
      const deps = this.dependencies(m.name)
        .reverse()
        .map((d) => d.path);
      return deps.length > 0 ? `${m.path}: ${deps.join(" ")}` : `${m.path}:`;
    });
    return lines.length > 0 ? `${lines.join("\n")}\n` : "";
  }

  /** modules.alias text for `subset`: "alias <pattern> <module name>" lines. */
  modulesAlias(subset: readonly ModuleInfo[] = this.modules): string {
    const lines = ["# Aliases extracted from modules themselves."];
    for (const m of subset) for (const a of m.aliases) lines.push(`alias ${a} ${m.name}`);
    return `${lines.join("\n")}\n`;
  }

  /** modules.softdep text for `subset`, as depmod writes it. */
  modulesSoftdep(subset: readonly ModuleInfo[] = this.modules): string {
    const lines = ["# Soft dependencies extracted from modules themselves."];
    for (const m of subset)
      if (m.softdepPre.length > 0) lines.push(`softdep ${m.name} pre: ${m.softdepPre.join(" ")}`);
    return `${lines.join("\n")}\n`;
  }

  toJSON(): readonly ModuleInfo[] {
    return this.modules;
  }

  /** Rebuilds an index from its JSON form; throws ImagesError if the data is not a module list. */
  static fromJSON(value: unknown, what: string): ModuleIndex {
    const strings = (v: unknown) => Array.isArray(v) && v.every((s) => typeof s === "string");
    if (
      !Array.isArray(value) ||
      !value.every(
        (m) =>
          typeof m === "object" &&
          m !== null &&
          typeof m.name === "string" &&
          typeof m.path === "string" &&
          strings(m.depends) &&
          strings(m.softdepPre) &&
          strings(m.aliases),
      )
    ) {
      throw new ImagesError(`${what} is not a module index; run 'tsvisor images fetch' to rebuild it`);
    }
    return new ModuleIndex(value as ModuleInfo[]);
  }
}
