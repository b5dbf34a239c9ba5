// Benchmark dispatcher: `npm run bench -- <name> [--json] [...]` runs bench/<name>.ts's run(args).
// Benchmarks print ratios measured side by side in one run, never absolute timings alone (bench/<name>.ts files are
// found by name: t5-step, vs-hf, topk, hypergrad, ddp, tagi, and soak, the memory-over-long-runs check, which prints RSS
// figures and exits 1 when memory grows beyond its limit).
import { readdirSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

function available(): string[] {
  return readdirSync(here)
    .filter((f) => f.endsWith(".js") && f !== "index.js" && !f.startsWith("_"))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(): Promise<void> {
  const [name, ...args] = process.argv.slice(2);
  const names = available();
  if (!name || name === "--help" || name === "-h") {
    process.stdout.write(`usage: npm run bench -- <name> [--json]\nbenchmarks: ${names.join(", ")}\n`);
    return;
  }
  if (!names.includes(name)) {
    process.stderr.write(`unknown benchmark '${name}'; available: ${names.join(", ")}\n`);
    process.exitCode = 2;
    return;
  }
  const mod = (await import(pathToFileURL(`${here}/${name}.js`).href)) as { run(args: string[]): Promise<void> };
  await mod.run(args);
}

await main();
