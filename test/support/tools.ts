// Host tools the system tests build guest media with (nasm, grub-mkrescue, xorriso, ...).
import { execFileSync } from "node:child_process";

/** True if `command` is on the PATH. */
export function have(command: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
