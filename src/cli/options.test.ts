import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CliError } from "./cli-error.ts";
import { parseSeconds, parseSize, parseStreamTarget } from "./options.ts";

describe("command-line values", () => {
  it("parses QEMU-style sizes", () => {
    assert.equal(parseSize("256M"), 256 << 20);
    assert.equal(parseSize("256"), 256 << 20);
    assert.equal(parseSize("1G"), 1 << 30);
    assert.equal(parseSize("1.5g"), 1.5 * (1 << 30));
    assert.equal(parseSize("64KiB"), 64 << 10);
    assert.equal(parseSize("4096B"), 4096);
  });

  it("rejects bad sizes with a usage error (status 2)", () => {
    for (const bad of ["256Q", "", "-1M", "M", "0", "1e3M"]) {
      assert.throws(
        () => parseSize(bad, "memory size"),
        (e: unknown) => e instanceof CliError && e.exitCode === 2 && /memory size/.test(e.message),
        bad,
      );
    }
  });

  it("parses seconds and stream targets", () => {
    assert.equal(parseSeconds("2.5"), 2.5);
    assert.throws(() => parseSeconds("soon"), CliError);
    assert.deepEqual(parseStreamTarget("stdio", "--serial"), { kind: "stdio" });
    assert.deepEqual(parseStreamTarget("file:/tmp/x", "--serial"), { kind: "file", path: "/tmp/x" });
    assert.deepEqual(parseStreamTarget("none", "--serial"), { kind: "none" });
    assert.throws(() => parseStreamTarget("tcp:1234", "--serial"), /use stdio, stderr, file:PATH or none/);
  });
});
