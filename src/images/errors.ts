/**
 * A problem with the guest images the user can act on: a missing host tool, no network, a corrupt
 * package or cache file. The message is one complete sentence meant for the user; the CLI prints it
 * without a stack trace.
 */
export class ImagesError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImagesError";
  }
}
