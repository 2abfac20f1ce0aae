import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { withCacheLock } from "./cache.ts";

test("the cache lock serialises work and is released after errors", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-lock-"));
  try {
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let waited = 0;
    const first = withCacheLock(dir, async () => {
      events.push("first start");
      await gate;
      events.push("first end");
    });
    const second = withCacheLock(
      dir,
      async () => {
        events.push("second");
      },
      { onWait: () => waited++ },
    );
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(events, ["first start"], "the second waits while the first holds the lock");
    release();
    await Promise.all([first, second]);
    assert.deepEqual(events, ["first start", "first end", "second"]);
    assert.equal(waited, 1);
    await assert.rejects(
      withCacheLock(dir, async () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(existsSync(join(dir, ".lock")), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a lock left by a dead process is taken over; a live holder makes us time out", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsvisor-lock-"));
  try {
    // A pid that surely exited: a child we ran to completion.
    const dead = spawnSync("sh", ["-c", "echo $$"], { encoding: "utf8" }).stdout.trim();
    mkdirSync(join(dir, ".lock"));
    writeFileSync(join(dir, ".lock", "pid"), `${dead}\n`);
    assert.equal(await withCacheLock(dir, async () => 42, { timeoutMs: 2000 }), 42);

    mkdirSync(join(dir, ".lock"));
    writeFileSync(join(dir, ".lock", "pid"), `${process.ppid}\n`);
    await assert.rejects(
      withCacheLock(dir, async () => 0, { timeoutMs: 300 }),
      /is locked by process/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
