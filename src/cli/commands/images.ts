// Placeholder replaced by the image commands.
import { CliError } from "../cli-error.ts";
export async function run(_args: string[]): Promise<number> {
  throw new CliError("images: not available yet", 2);
}
