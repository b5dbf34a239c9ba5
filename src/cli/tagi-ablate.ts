// instill tagi ablate: the TAGI results table on the embedded suite (src/tagi/ablation.ts). Registered on the
// `tagi` command that src/cli/tagi.ts creates.
import type { Command } from "commander";
import { int } from "./parse.js";
import { runTagiAblation, TAGI_VARIANTS } from "../tagi/ablation.js";

export function registerTagiAblate(program: Command): void {
  const tagi = program.commands.find((c) => c.name() === "tagi");
  if (!tagi) throw new Error("registerTagiAblate: register the tagi command first");
  const methods = ["base, no instruction", "definition (Tk-Instruct)", ...TAGI_VARIANTS.map((v) => v.method)];
  tagi
    .command("ablate")
    .description("the TAGI table on the embedded suite: base, definition baseline, TAGI and TAGI without KL / MSE / pretraining / fusion")
    .option("--out <dir>", "output folder (suite, base, teachers, runs, ablation.md, ablation.json)", "runs/tagi-ablation")
    .option("--quick", "tiny budget: a smoke test of the whole recipe (~2 min), scores are not meaningful")
    .option("--seed <n>", "seed", int("--seed"), 42)
    .option("--only <list>", `rows to run, separated by ';' (known: ${methods.join("; ")})`)
    .option("--json", "print the result as JSON")
    .option("--quiet", "no progress")
    .action(async (f: { out: string; quick?: boolean; seed: number; only?: string; json?: boolean; quiet?: boolean }) => {
      const only = f.only?.split(";").map((s) => s.trim()).filter(Boolean);
      for (const m of only ?? []) if (!methods.includes(m)) throw new TypeError(`--only: unknown row '${m}' (known: ${methods.join("; ")})`);
      const r = await runTagiAblation({ out: f.out, quick: f.quick, seed: f.seed, quiet: f.quiet, only });
      process.stdout.write(f.json ? JSON.stringify(r, null, 2) + "\n" : r.markdown + `\n(${r.seconds} s; files in ${f.out})\n`);
    });
}
