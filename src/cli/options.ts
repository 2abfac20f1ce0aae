// Parsing of the values users type on the command line.
import { CliError } from "./cli-error.ts";

const SIZE_UNITS: Record<string, number> = {
  "": 1 << 20,
  B: 1,
  K: 1 << 10,
  M: 1 << 20,
  G: 1 << 30,
  T: 2 ** 40,
};

/**
 * Parses a memory size the way QEMU does: a number with an optional K/M/G/T suffix (binary
 * units, optional trailing "B" or "iB"); a bare number means MiB. "256M", "1G", "512", "1.5G".
 */
export function parseSize(text: string, what = "size"): number {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([KMGT])(?:i?B)?|(B))?$/i.exec(text.trim());
  if (!m) throw new CliError(`invalid ${what} '${text}': use a number with K, M, G or T (e.g. 512M, 2G)`, 2);
  const unit = (m[2] ?? m[3] ?? "").toUpperCase();
  const bytes = Math.round(Number(m[1]) * SIZE_UNITS[unit]!);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new CliError(`invalid ${what} '${text}'`, 2);
  return bytes;
}

/** Parses a whole number of seconds (or a decimal), e.g. "30" or "2.5". */
export function parseSeconds(text: string, what = "time"): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text.trim()) || !Number.isFinite(n) || n <= 0) {
    throw new CliError(`invalid ${what} '${text}': expected a positive number of seconds`, 2);
  }
  return n;
}

/** Where a character stream goes: the terminal, a file, or nowhere. */
export type StreamTarget =
  | { kind: "stdio" }
  | { kind: "stderr" }
  | { kind: "file"; path: string }
  | { kind: "none" };

export function parseStreamTarget(text: string, option: string): StreamTarget {
  if (text === "stdio") return { kind: "stdio" };
  if (text === "stderr") return { kind: "stderr" };
  if (text === "none" || text === "null") return { kind: "none" };
  if (text.startsWith("file:") && text.length > 5) return { kind: "file", path: text.slice(5) };
  throw new CliError(`invalid ${option} '${text}': use stdio, stderr, file:PATH or none`, 2);
}
