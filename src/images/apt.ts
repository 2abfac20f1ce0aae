// Talking to Debian's package tools: apt-cache to find out what to fetch, apt-get download to
// fetch it (no root needed: nothing is installed), dpkg-deb to check and unpack it.

import { spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { ImagesError } from "./errors.ts";

/** Full path of `tool` on $PATH, or undefined. */
export function findTool(tool: string, path = process.env.PATH ?? ""): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === "") continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Fails with a clear message naming the Debian package to install if a tool is missing. */
export function requireTools(tools: readonly string[]): void {
  const packages: Record<string, string> = { "apt-get": "apt", "apt-cache": "apt", "dpkg-deb": "dpkg" };
  const missing = tools.filter((t) => findTool(t) === undefined);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => packages[t] ?? t))];
    throw new ImagesError(
      `${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not installed or not on PATH; tsvisor fetches guest images with Debian's package tools (package ${pkgs.join(", ")}), so it needs a Debian or Ubuntu host`,
    );
  }
}

export interface RunResult {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly cwd?: string;
  /** Called with each complete line of output (stdout and stderr) as it arrives. */
  readonly onLine?: (line: string) => void;
}

/** apt's messages are parsed, so they must not be translated. */
const C_LOCALE = { LC_ALL: "C", LANG: "C", LANGUAGE: "" };

/** Runs a command to completion, collecting its output. Never rejects for a non-zero exit. */
export function runTool(
  command: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...C_LOCALE },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const pending = { stdout: "", stderr: "" };
    const feed = (which: "stdout" | "stderr", chunk: Buffer) => {
      (which === "stdout" ? out : err).push(chunk);
      if (!options.onLine) return;
      pending[which] += chunk.toString("utf8");
      const lines = pending[which].split(/\r?\n|\r/);
      pending[which] = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") options.onLine(line);
    };
    child.stdout.on("data", (c: Buffer) => feed("stdout", c));
    child.stderr.on("data", (c: Buffer) => feed("stderr", c));
    child.on("error", (e: NodeJS.ErrnoException) => {
      reject(
        e.code === "ENOENT"
          ? new ImagesError(`${command} is not installed or not on PATH`)
          : new ImagesError(`cannot run ${command}: ${e.message}`),
      );
    });
    child.on("close", (code, signal) => {
      if (options.onLine) {
        for (const rest of [pending.stdout, pending.stderr]) if (rest.trim() !== "") options.onLine(rest);
      }
      resolve({
        status: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
  });
}

/** The "Candidate:" version of `apt-cache policy` output, or undefined if there is none. */
export function parsePolicyCandidate(output: string): string | undefined {
  const match = /^\s*Candidate:\s*(\S+)\s*$/m.exec(output);
  if (!match || match[1] === "(none)") return undefined;
  return match[1];
}

/** The "Depends:" targets of `apt-cache depends` output, in order, without alternatives markers. */
export function parseDepends(output: string): string[] {
  const result: string[] = [];
  for (const line of output.split("\n")) {
    const match = /^\s*\|?Depends:\s*<?([^\s>]+)>?/.exec(line);
    if (match) result.push(match[1]!);
  }
  return result;
}

/** The stanzas of `apt-cache show` output as field maps (continuation lines dropped). */
export function parseControlStanzas(output: string): Record<string, string>[] {
  const stanzas: Record<string, string>[] = [];
  let fields: Record<string, string> = {};
  for (const line of output.split("\n")) {
    if (line.trim() === "") {
      if (Object.keys(fields).length > 0) stanzas.push(fields);
      fields = {};
      continue;
    }
    if (line.startsWith(" ") || line.startsWith("\t")) continue;
    const colon = line.indexOf(":");
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  if (Object.keys(fields).length > 0) stanzas.push(fields);
  return stanzas;
}

/** A package version in the archive, as apt-cache describes it. */
export interface ArchivePackage {
  readonly name: string;
  readonly version: string;
  readonly architecture: string;
  readonly size: number;
  /** SHA-256 from the archive's index, if it lists one. */
  readonly sha256: string | undefined;
}

/**
 * Looks up the candidate versions of several packages in one apt-cache call (each call reads all of
 * apt's package lists, so they are not cheap). `specs` are "name" or "name:arch".
 */
export async function showCandidates(specs: readonly string[]): Promise<Map<string, ArchivePackage>> {
  const result = await runTool("apt-cache", ["show", "--no-all-versions", ...specs]);
  const stanzas = parseControlStanzas(result.stdout);
  const found = new Map<string, ArchivePackage>();
  for (const spec of specs) {
    const [name, arch] = spec.split(":") as [string, string | undefined];
    const fields = stanzas.find(
      (f) =>
        f.Package === name && (arch === undefined || f.Architecture === arch || f.Architecture === "all"),
    );
    const size = Number.parseInt(fields?.Size ?? "", 10);
    if (!fields?.Version || !fields.Architecture || !Number.isFinite(size)) {
      const why = result.stderr.trim().split("\n").at(-1) ?? "";
      throw new ImagesError(
        `apt-cache knows no installable version of ${spec}${why ? ` (${why})` : ""}; run 'sudo apt-get update' and try again`,
      );
    }
    const sha256 = fields.SHA256?.toLowerCase();
    found.set(spec, {
      name,
      version: fields.Version,
      architecture: fields.Architecture,
      size,
      sha256: sha256 && /^[0-9a-f]{64}$/.test(sha256) ? sha256 : undefined,
    });
  }
  return found;
}
