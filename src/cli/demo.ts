import type { Command } from "commander";
import { demoTable, runDemo } from "../demo/demo.js";

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("the main job on the embedded default: synth suite, tiny model, train with/without instructions, evaluate on unseen tasks, report")
    .option("--out <dir>", "output folder", "runs/demo")
    .option("--quick", "a smaller version (under a minute) for smoke tests")
    .option("--seed <n>", "random seed", "42")
    .option("--methods <list>", "comma-separated rows to run (default: all)")
    .option("--json", "print the results as one JSON object")
    .option("-q, --quiet", "no progress bars")
    .action(async (f: { out: string; quick?: boolean; seed: string; methods?: string; json?: boolean; quiet?: boolean }) => {
      const seed = Number(f.seed);
      if (!Number.isInteger(seed)) throw new TypeError(`--seed: expected an integer, got '${f.seed}'`);
      const r = await runDemo({
        out: f.out,
        quick: f.quick,
        seed,
        quiet: f.quiet || f.json,
        methods: f.methods?.split(",").map((s) => s.trim()).filter(Boolean),
      });
      if (f.json) {
        process.stdout.write(JSON.stringify(r) + "\n");
        return;
      }
      process.stdout.write(`\n${demoTable(r)}\n\nunseen test tasks: ${r.data.testTasks} (${r.data.testExamples} examples); ${r.seconds} s\nreport: ${r.report.markdown}, ${r.report.html}\n`);
    });
}
