import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { assembledLinuxBoot, linuxBootRom } from "./linuxboot.ts";

const sum = (b: Uint8Array) => b.reduce((s, x) => (s + x) & 0xff, 0);

describe("linuxboot option ROM", () => {
  it("is a valid option ROM with a PnP header whose boot entry vector points into it", () => {
    const rom = linuxBootRom();
    assert.equal(rom[0], 0x55);
    assert.equal(rom[1], 0xaa);
    assert.equal(rom[2]! * 512, rom.length);
    assert.equal(sum(rom), 0, "whole-image checksum");
    const pnp = rom[0x1a]! | (rom[0x1b]! << 8);
    assert.equal(new TextDecoder().decode(rom.subarray(pnp, pnp + 4)), "$PnP");
    assert.equal(sum(rom.subarray(pnp, pnp + rom[pnp + 5]! * 16)), 0, "PnP header checksum");
    const bev = rom[pnp + 0x1a]! | (rom[pnp + 0x1b]! << 8);
    assert.ok(bev > pnp + 0x20 && bev < rom.length, `BEV at ${bev}`);
    assert.equal(rom[bev], 0xfa, "the boot entry starts with CLI");
  });

  it("matches its assembly source", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "linuxboot-"));
    const out = join(dir, "linuxboot.bin");
    const r = spawnSync("nasm", ["-f", "bin", "-o", out, join(import.meta.dirname, "linuxboot.asm")]);
    if (r.error) {
      t.skip("nasm is not installed");
      return;
    }
    assert.equal(r.status, 0, r.stderr?.toString());
    assert.deepEqual(assembledLinuxBoot(), new Uint8Array(readFileSync(out)));
  });
});
