/** An error meant for the user: printed as one line, without a stack trace. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "CliError";
    this.exitCode = exitCode;
  }
}

/** What every `tsvisor <command>` module exports. Returns the process exit status. */
export interface CommandModule {
  run(args: string[]): Promise<number>;
}
