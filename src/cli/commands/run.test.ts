import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { HELP, RUN_OPTIONS } from "./run.ts";

const optionsIn = (text: string) => new Set(text.match(/(?<![\w-])--[a-z][a-z0-9-]*/g) ?? []);

describe("tsvisor run's documentation", () => {
  const implemented = new Set(Object.keys(RUN_OPTIONS).map((name) => `--${name}`));

  it("--help describes every option run takes, and no other", () => {
    assert.deepEqual([...optionsIn(HELP)].sort(), [...implemented].sort());
    for (const [name, option] of Object.entries(RUN_OPTIONS)) {
      if ("short" in option) assert.match(HELP, new RegExp(`-${option.short}, --${name}\\b`));
    }
  });

  it("the README's section on running VMs names only options run takes", () => {
    const readme = readFileSync(join(import.meta.dirname, "../../../README.md"), "utf8");
    const section = readme.slice(
      readme.indexOf("## Running virtual machines"),
      readme.indexOf("## Guest images"),
    );
    assert.ok(section.length > 100, "the README has the section");
    for (const option of optionsIn(section)) assert.ok(implemented.has(option), `${option} in the README`);
  });
});
