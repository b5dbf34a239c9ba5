// Helpers shared by tests: whether the native addon is built, and where ../shared is.
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { addonCandidates } from "../../src/native/binding.js";

export const repoRoot = resolve(__dirname, "..", "..");
export const sharedDir = resolve(repoRoot, "..", "shared");
export const hasShared = existsSync(join(sharedDir, "README.md"));
export const hasAddon = addonCandidates().some((p) => existsSync(p));

/** Prints why a data-dependent suite is skipped, so a skip is never silent. */
export function sharedOrSkipMessage(what: string): boolean {
  if (!hasShared) console.warn(`[skip] ${what}: ../shared is absent (${sharedDir})`);
  return hasShared;
}

export const cliPath = join(repoRoot, "bin", "instill.js");
