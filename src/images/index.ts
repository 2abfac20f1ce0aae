// The images layer's public API: what the CLI, the `run` command and the host daemon use.

export { cacheDir, withCacheLock } from "./cache.ts";
export { type CpioEntry, type CpioRecord, readNewcCpio, writeNewcCpio } from "./cpio.ts";
export { ImagesError } from "./errors.ts";
export {
  ensureImages,
  type FetchOptions,
  fetchImages,
  MULTIARCH_HINT,
  manifestFilesPresent,
} from "./fetch.ts";
export { gunzip, gzipReproducible } from "./gzip.ts";
export {
  buildGuestInitramfs,
  buildInitramfs,
  DEFAULT_APPLETS,
  DEFAULT_GUEST_MODULES,
  DEFAULT_INIT,
  type ExtraFile,
  GUEST_READY_MARKER,
  type GuestInitramfsOptions,
  type InitramfsOptions,
  initramfsContents,
  loadModuleIndex,
} from "./initramfs.ts";
export { ModuleIndex, type ModuleInfo } from "./kmod.ts";
export {
  type DefaultBootFiles,
  defaultBootFiles,
  type FileRecord,
  formatSize,
  type InitramfsRecord,
  type KernelImage,
  loadManifest,
  type Manifest,
  type ManifestStatus,
  memtestImage,
  type PackageRecord,
  readManifest,
} from "./manifest.ts";
