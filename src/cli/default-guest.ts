// The default guest of `tsvisor run`: Debian's kernel and the project's initramfs from the image
// cache, fetched first when missing, and Debian's SeaBIOS as firmware.
import { defaultBootFiles, ensureImages, ImagesError, type Manifest } from "../images/index.ts";
import { CliError } from "./cli-error.ts";

/** The kernel command line of the default guest: the console on the first serial port. */
export const DEFAULT_APPEND = "console=ttyS0";

async function manifest(): Promise<Manifest> {
  try {
    return await ensureImages({ onProgress: (line) => process.stderr.write(`${line}\n`) });
  } catch (err) {
    if (err instanceof ImagesError) throw new CliError(err.message, 1);
    throw err;
  }
}

export async function defaultGuest(): Promise<{ kernel: string; initrd: string; append: string }> {
  const files = defaultBootFiles(await manifest());
  return { kernel: files.kernel, initrd: files.initrd, append: DEFAULT_APPEND };
}

export async function defaultFirmware(): Promise<{ bios: string; vgaBios: string }> {
  const files = defaultBootFiles(await manifest());
  return { bios: files.bios, vgaBios: files.vgabios };
}
