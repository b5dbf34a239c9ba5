// instill select-train: INSTA selected k vs random k vs all training tasks, evaluated on each target task.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { selectTrain } from "../select/train.js";
import { resolveConfig } from "../train/config.js";
import { writeFileAtomic } from "../util/fs.js";
import { overridesFromFlags, type CommonFlags } from "./train.js";

export function registerSelectTrain(program: Command): void {
  program
    .command("select-train")
    .description("train on the k tasks selected from instructions (INSTA) vs k random tasks vs all tasks; evaluate on each target")
    .requiredOption("--model <dir>", "checkpoint folder to start from")
    .requiredOption("--data <dir>", "data folder with tasks/ and splits/")
    .option("--split <name>", "split: training tasks form the pool, test tasks are the targets", "default")
    .option("--targets <names>", "comma-separated target task names (default: the split's test tasks)")
    .option("--k <n>", "tasks to select", "5")
    .option("--embedder <name>", "instruction embedder", "lexical")
    .option("--steps <n>", "optimizer steps for every run (same budget)", "200")
    .option("--batch-size <n>", "batch size", "16")
    .option("--lr <x>", "learning rate", "1e-3")
    .option("--config <file>", "run config (YAML or JSON)")
    .option("--out <dir>", "output folder", "runs/select-train")
    .option("--seed <n>", "random seed", "42")
    .option("--json", "print the result as JSON")
    .option("-q, --quiet", "no progress bars")
    .action(async (f: CommonFlags & { targets?: string; k: string; embedder: string; steps: string; batchSize: string; lr: string; json?: boolean }) => {
      const k = Number(f.k);
      const over = overridesFromFlags({ ...f, seed: Number(f.seed), steps: Number(f.steps), batchSize: Number(f.batchSize), lr: Number(f.lr) });
      const cfg = resolveConfig(f.config, over);
      if (!existsSync(join(cfg.model, "config.json"))) throw new Error(`--model: ${cfg.model}: no config.json`);
      const tok = loadTokenizer(cfg.model);
      const split = loadSplitTasks({ dataDir: cfg.data, split: cfg.split, maxTrainInstances: cfg.maxTrainInstances, maxEvalInstances: cfg.maxEvalInstances, seed: cfg.seed, onBadTask: cfg.onBadTask });
      let targets = split.test;
      if (f.targets) {
        const names = f.targets.split(",").map((s) => s.trim()).filter(Boolean);
        const all = [...split.test, ...split.train];
        const missing = names.filter((n) => !all.some((t) => t.name === n));
        if (missing.length) throw new Error(`--targets: unknown task(s) ${missing.slice(0, 5).join(", ")}`);
        targets = names.map((n) => all.find((t) => t.name === n)!);
      }
      const train = split.train.filter((t) => !targets.some((x) => x.name === t.name));
      const r = await selectTrain({ cfg, tok, train, targets, k, embedder: f.embedder, quiet: f.quiet || f.json });
      writeFileAtomic(join(cfg.out, "select-train.json"), JSON.stringify(r, null, 2));
      if (f.json) {
        process.stdout.write(JSON.stringify(r) + "\n");
        return;
      }
      const lines = ["| target | selected k | random k | all tasks |", "| --- | ---: | ---: | ---: |"];
      for (const t of r.targets) lines.push(`| ${t.target} | ${t.rougeL.insta.toFixed(2)} | ${t.rougeL.random.toFixed(2)} | ${t.rougeL.all.toFixed(2)} |`);
      lines.push(`| **mean ROUGE-L** | ${r.mean.insta.rougeL.toFixed(2)} | ${r.mean.random.rougeL.toFixed(2)} | ${r.mean.all.rougeL.toFixed(2)} |`);
      process.stdout.write(lines.join("\n") + `\n(k = ${r.k}, ${r.steps} steps each; details in ${join(cfg.out, "select-train.json")})\n`);
    });
}
