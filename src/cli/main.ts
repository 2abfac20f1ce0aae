#!/usr/bin/env node
// The `tsvisor` command. Each subcommand lives in its own module under commands/ and is loaded
// only when used, so `tsvisor images list` never pays for the CPU or the devices.
import { CliError, type CommandModule } from "./cli-error.ts";

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  run: {
    summary: "boot a virtual machine (default: the Debian guest on the serial console)",
    load: () => import("./commands/run.ts"),
  },
  images: { summary: "fetch and list the Debian guest images", load: () => import("./commands/images.ts") },
};

function usage(): string {
  const lines = ["usage: tsvisor <command> [options]", "", "commands:"];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push("", "Run 'tsvisor <command> --help' for a command's options.");
  return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const entry = COMMANDS[name];
  if (!entry) throw new CliError(`unknown command '${name}'\n${usage()}`, 2);
  const mod = await entry.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`tsvisor: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else {
      // An unexpected error is a bug in tsvisor: show the stack so it can be reported.
      process.stderr.write(
        `tsvisor: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 70;
    }
  },
);
