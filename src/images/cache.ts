// Where the images live, and a lock so that two tsvisor processes (say, two test files run in
// parallel) do not download into or rewrite the same cache at once.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ImagesError } from "./errors.ts";

/** The cache directory: $TSVISOR_CACHE, else $XDG_CACHE_HOME/tsvisor, else ~/.cache/tsvisor. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const explicit = env.TSVISOR_CACHE;
  if (explicit !== undefined && explicit !== "") return resolve(explicit);
  const xdg = env.XDG_CACHE_HOME;
  // The XDG spec says relative values are invalid and must be ignored.
  if (xdg !== undefined && xdg !== "" && isAbsolute(xdg)) return join(xdg, "tsvisor");
  return join(env.HOME !== undefined && env.HOME !== "" ? env.HOME : homedir(), ".cache", "tsvisor");
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

export interface CacheLockOptions {
  /** Give up after this long (default 15 minutes: a first download of ~110 MB may be slow). */
  readonly timeoutMs?: number;
  /** Told once when another process holds the lock and we start waiting. */
  readonly onWait?: (holderPid: number) => void;
}

/**
 * Runs `work` holding the cache's lock (a directory created atomically, holding the owner's pid).
 * A lock left behind by a process that no longer exists is taken over.
 */
export async function withCacheLock<T>(
  dir: string,
  work: () => Promise<T>,
  options: CacheLockOptions = {},
): Promise<T> {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new ImagesError(`cannot create the image cache ${dir}: ${(err as Error).message}`);
  }
  const lock = join(dir, ".lock");
  const deadline = Date.now() + (options.timeoutMs ?? 15 * 60_000);
  let told = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), `${process.pid}\n`);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new ImagesError(`cannot lock the image cache ${dir}: ${(err as Error).message}`);
      }
    }
    let holder = Number.NaN;
    try {
      holder = Number.parseInt(readFileSync(join(lock, "pid"), "utf8"), 10);
    } catch {
      // The holder may be between mkdir and writing its pid: wait and look again.
    }
    if (Number.isInteger(holder) && holder !== process.pid && !processAlive(holder)) {
      rmSync(lock, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new ImagesError(
        `the image cache ${dir} is locked by process ${Number.isInteger(holder) ? holder : "?"}; if no tsvisor is running, remove ${lock}`,
      );
    }
    if (!told && Number.isInteger(holder)) {
      options.onWait?.(holder);
      told = true;
    }
    await sleep(250);
  }
  try {
    return await work();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
