#!/usr/bin/env node
// The `tsvisor` command. This launcher is plain JavaScript so that it runs before any TypeScript
// is compiled: it turns on Node's on-disk compile cache, which keeps the modules' type-stripped
// source and bytecode between runs, then loads the command (src/cli/main.ts). The VMs' worker
// threads take the cache from the environment. The cache checks each file's contents, and when
// it cannot be opened (or NODE_DISABLE_COMPILE_CACHE is set) everything is compiled as before.
import { enableCompileCache } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

process.env.NODE_COMPILE_CACHE ??= join(tmpdir(), "tsvisor-compile-cache");
enableCompileCache();
await import("../src/cli/main.ts");
