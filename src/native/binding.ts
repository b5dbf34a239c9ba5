// The one place that loads the native addon. On failure it explains what is missing and how to fix it
// (sharp's lib/sharp.mjs style) instead of surfacing a bare dlopen error.
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Addon } from "./types.js";

const require = createRequire(import.meta.url);

/** Repository (package) root: dist/src/native -> ../../.., src/native -> ../.. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, "package.json"))) return dir;
    dir = dirname(dir);
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
}

export function addonCandidates(): string[] {
  const root = packageRoot();
  const list: string[] = [];
  if (process.env.INSTILL_ADDON) list.push(resolve(process.env.INSTILL_ADDON));
  list.push(
    join(root, "build-cmake", "Release", "instill.node"), // cmake-js (npm install)
    join(root, "build-cmake", "Debug", "instill.node"),
    join(root, "build", "Release", "instill.node"), // node-gyp (npm run build:gyp)
  );
  return list;
}

let cached: Addon | undefined;
let threadsApplied = false;

export class AddonLoadError extends Error {}

export function loadAddon(): Addon {
  if (cached) return cached;
  // libgomp reads its wait policy once, when LibTorch loads it: without this its idle workers spin and take the
  // core that OpenBLAS's own thread needs (2-5x slower steps on 2 cores). A user's setting wins.
  process.env.OMP_WAIT_POLICY ??= "PASSIVE";
  const tried: string[] = [];
  let lastError: unknown;
  for (const p of addonCandidates()) {
    if (!existsSync(p)) {
      tried.push(`${p} (missing)`);
      continue;
    }
    try {
      cached = require(p) as Addon;
      break;
    } catch (e) {
      lastError = e;
      tried.push(`${p} (${(e as Error).message.split("\n")[0]})`);
    }
  }
  if (!cached) {
    const msg = (lastError as Error | undefined)?.message ?? "";
    const hints = [
      "the native addon could not be loaded.",
      "Tried:",
      ...tried.map((t) => `  - ${t}`),
      "",
      "How to fix:",
    ];
    if (/libtorch|libc10|libtorch_cpu/.test(msg)) {
      hints.push("  - LibTorch's shared libraries are not found: install them (sudo apt-get install libtorch-dev libopenblas0-pthread)");
      hints.push("    or set LD_LIBRARY_PATH to your LibTorch lib folder, then rebuild.");
    } else {
      hints.push("  - build it: ./install.sh   (or: npm run build:native)");
      hints.push("  - LibTorch is needed: sudo apt-get install libtorch-dev libopenblas0-pthread, or LIBTORCH=/path/to/libtorch");
    }
    throw new AddonLoadError(hints.join("\n"));
  }
  if (!threadsApplied) {
    threadsApplied = true;
    const env = process.env.INSTILL_THREADS;
    let n = availableParallelism();
    if (env !== undefined && env !== "") {
      n = Number(env);
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`INSTILL_THREADS must be a positive integer, got '${env}'`);
    }
    cached.setThreads(n);
  }
  return cached;
}

/** Sets LibTorch's intra-op threads (default: the machine's cores, or INSTILL_THREADS). */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`threads must be a positive integer, got ${n}`);
  loadAddon().setThreads(n);
}
