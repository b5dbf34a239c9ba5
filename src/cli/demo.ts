import type { Command } from "commander";
import { DEMO_METHODS, defaultDemoJobs, demoTable, runDemo } from "../demo/demo.js";
import { SPAN_CORRUPTION } from "../demo/base.js";
import { int, num } from "./parse.js";

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("the main job: suite v2, one shared base per seed, every method trained from it, evaluated on the unseen tasks (3 splits), mean ± std over seeds, paired bootstrap intervals, report")
    .option("--out <dir>", "output folder (the base is cached in <out>/base-cache)", "runs/demo")
    .option("--quick", "a smaller version (under 2 minutes on 2 cores, one seed unless --seeds) for smoke tests")
    .option("--seed <n>", "first seed (seeds are n, n+1, ...)", int("--seed"), 42)
    .option("--seeds <n>", "number of seeds (default 3; 1 with --quick)", int("--seeds"))
    .option("--methods <list>", `comma-separated rows to run (default: all of ${DEMO_METHODS.join(", ")})`)
    .option("--base-reconstruct <p>", "fraction of the base's sequences whose target is the whole text (0 = T5 span corruption only)", num("--base-reconstruct"), SPAN_CORRUPTION.reconstruct)
    .option("--jobs <n>", "worker processes the seeds' bases and rows run on, each with the cores shared out (1 = all in this process)", int("--jobs"), defaultDemoJobs())
    .option("--embedder <spec>", "the instruction embedder the insta row selects with (see instill select --help; default hybrid)")
    .option("--json", "print every number (per seed too) as one JSON object on one line")
    .option("-q, --quiet", "no progress bar")
    .action(async (f: { out: string; quick?: boolean; seed: number; seeds?: number; methods?: string; json?: boolean; quiet?: boolean; baseReconstruct: number; jobs: number; embedder?: string }) => {
      if (f.seeds !== undefined && f.seeds < 1) throw new RangeError(`--seeds: expected a positive integer, got ${f.seeds}`);
      const r = await runDemo({
        out: f.out,
        quick: f.quick,
        seed: f.seed,
        seeds: f.seeds,
        quiet: f.quiet || f.json,
        methods: f.methods?.split(",").map((s) => s.trim()).filter(Boolean),
        baseReconstruct: f.baseReconstruct,
        jobs: f.jobs,
        embedder: f.embedder,
      });
      if (f.json) {
        process.stdout.write(JSON.stringify(r) + "\n");
        return;
      }
      process.stdout.write(
        `\n${demoTable(r)}\n\nsuite v2: ${r.data.testTasks} unseen tasks (${Object.entries(r.data.testBySplit).map(([k, v]) => `${v} ${k}`).join(", ")}), ` +
          `${r.data.testExamples} examples per seed; seeds ${r.seeds.join(", ")}; ${r.seconds} s\nreport: ${r.report.markdown}, ${r.report.html}\n`,
      );
    });
}
