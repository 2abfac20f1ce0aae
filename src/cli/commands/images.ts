// `tsvisor images fetch|list`: the Debian guest images in the local cache.
import { statSync } from "node:fs";
import { basename } from "node:path";
import { parseArgs } from "node:util";
import {
  cacheDir,
  type FileRecord,
  fetchImages,
  formatSize,
  ImagesError,
  type KernelImage,
  type Manifest,
  readManifest,
} from "../../images/index.ts";
import { CliError } from "../cli-error.ts";

const HELP = `usage: tsvisor images <fetch|list> [options]

Guest software from Debian's archive (kernels, busybox, SeaBIOS, memtest86+), kept in
$TSVISOR_CACHE, else $XDG_CACHE_HOME/tsvisor, else ~/.cache/tsvisor.

  fetch            download (with apt-get download), check and unpack the packages, and build
                   the default initramfs; reuses what is already cached and valid
    -q, --quiet    print only errors
  list             show what is cached, with versions and sizes
    -v, --verbose  also show paths and SHA-256 sums`;

export async function run(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
    process.stdout.write(`${HELP}\n`);
    return sub === undefined ? 2 : 0;
  }
  try {
    if (sub === "fetch") return await fetchCommand(rest);
    if (sub === "list") return listCommand(rest);
  } catch (err) {
    if (err instanceof ImagesError) throw new CliError(err.message, 1);
    throw err;
  }
  throw new CliError(
    `images: unknown subcommand '${sub}' (use fetch or list; see 'tsvisor images --help')`,
    2,
  );
}

function parseOptions<T extends Record<string, { type: "boolean"; short?: string }>>(
  sub: string,
  args: string[],
  options: T,
) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true })
      .values;
  } catch (err) {
    throw new CliError(`images ${sub}: ${(err as Error).message} (see 'tsvisor images --help')`, 2);
  }
}

async function fetchCommand(args: string[]): Promise<number> {
  const values = parseOptions("fetch", args, { quiet: { type: "boolean", short: "q" } });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const quiet = values.quiet === true;
  const dir = cacheDir();
  if (!quiet) process.stderr.write(`Fetching guest images into ${dir}\n`);
  const manifest = await fetchImages({
    cacheDir: dir,
    onProgress: quiet ? undefined : (line) => process.stderr.write(`${line}\n`),
  });
  if (!quiet) {
    process.stdout.write(
      `Guest images ready: kernel ${manifest.kernel.release} and ${manifest.kernelPae.release} (${manifest.kernel.package.version}), busybox ${manifest.busybox.package.version}, SeaBIOS ${manifest.seabios.package.version}, memtest86+ ${manifest.memtest.package.version}.\n`,
    );
  }
  return 0;
}

interface Row {
  item: string;
  version: string;
  file: FileRecord;
}

function kernelRows(label: string, kernel: KernelImage): Row[] {
  return [
    {
      item: label,
      version: `${kernel.release} (${kernel.package.name} ${kernel.package.version})`,
      file: kernel.vmlinuz,
    },
    {
      item: "initramfs",
      version: `${kernel.release}, busybox + ${kernel.initramfs.modules.length} modules`,
      file: kernel.initramfs,
    },
  ];
}

export function manifestRows(manifest: Manifest): Row[] {
  const rows: Row[] = [
    ...kernelRows("kernel", manifest.kernel),
    ...kernelRows("kernel-pae", manifest.kernelPae),
  ];
  rows.push({ item: "busybox", version: manifest.busybox.package.version, file: manifest.busybox.binary });
  const seabios = manifest.seabios;
  for (const file of [seabios.bios, seabios.bios256k, seabios.vgabiosStdvga]) {
    rows.push({ item: "seabios", version: seabios.package.version, file });
  }
  for (const name of Object.keys(manifest.memtest.files).sort()) {
    rows.push({
      item: "memtest86+",
      version: manifest.memtest.package.version,
      file: manifest.memtest.files[name]!,
    });
  }
  return rows;
}

function present(file: FileRecord): boolean {
  try {
    return statSync(file.path).size === file.size;
  } catch {
    return false;
  }
}

function listCommand(args: string[]): number {
  const values = parseOptions("list", args, { verbose: { type: "boolean", short: "v" } });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const dir = cacheDir();
  const state = readManifest(dir);
  if (state.status === "missing") {
    process.stdout.write(`No guest images are cached in ${dir} yet. Fetch them with: tsvisor images fetch\n`);
    return 0;
  }
  if (state.status === "corrupt") throw new CliError(state.reason, 1);
  const { manifest } = state;
  const rows = manifestRows(manifest);
  const table = [["ITEM", "VERSION", "FILE", "SIZE"]];
  let missing = 0;
  for (const row of rows) {
    const ok = present(row.file);
    if (!ok) missing++;
    const cells = [
      row.item,
      row.version,
      basename(row.file.path),
      ok ? formatSize(row.file.size) : "MISSING",
    ];
    table.push(cells);
  }
  const widths = [0, 1, 2].map((c) => Math.max(...table.map((r) => r[c]!.length)));
  const lines = [`Guest images in ${dir} (fetched ${manifest.fetchedAt})`];
  table.forEach((cells, i) => {
    const text = cells
      .slice(0, 3)
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join("  ");
    lines.push(`${text}  ${cells[3]!.padStart(9)}`);
    if (values.verbose && i > 0) {
      const file = rows[i - 1]!.file;
      lines.push(`    ${file.path}`, `    ${file.size} bytes, sha256 ${file.sha256}`);
    }
  });
  if (values.verbose) {
    for (const kernel of [manifest.kernel, manifest.kernelPae]) {
      lines.push(`Modules in the ${kernel.release} initramfs: ${kernel.initramfs.modules.join(" ")}`);
      if (kernel.initramfs.missingModules.length > 0) {
        lines.push(`  not available as modules: ${kernel.initramfs.missingModules.join(" ")}`);
      }
    }
  }
  process.stdout.write(`${lines.join("\n")}\n`);
  if (missing > 0) {
    throw new CliError(
      `${missing} cached file(s) are missing or changed; run 'tsvisor images fetch' to repair`,
      1,
    );
  }
  return 0;
}
