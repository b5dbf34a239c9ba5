// instill select-train: INSTA selected k vs random k vs all training tasks, evaluated on each target task.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { selectTrain } from "../select/train.js";
import { createEmbedder, DEFAULT_EMBEDDER } from "../select/registry.js";
import { loadPool, restrictPool, targetsFromNames } from "../select/pool.js";
import { selectTasks } from "../select/select.js";
import { readTaskList } from "../data/sni.js";
import { Rng } from "../util/rng.js";

/**
 * --selection-only: the selection stage alone, at any scale (INSTA's NIV2 setting is k = 70 for each of the 119
 * test tasks): the pool (--pool, default <data>/tasks) restricted to the split's training tasks, the split's test
 * tasks (or --targets) as targets, all searched in one batch; writes selection.json with the k random tasks the
 * comparison would train on beside them.
 */
async function selectionOnly(f: { data: string; pool?: string; split: string; targets?: string; k: string; embedder: string; seed: string; out: string; json?: boolean }) {
  const k = Number(f.k);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`--k: expected a positive integer, got '${f.k}'`);
  const splitDir = join(f.data, "splits", f.split);
  const trainList = join(splitDir, "train_tasks.txt");
  if (!existsSync(trainList)) throw new Error(`--data: ${trainList}: no such file (the split's training tasks)`);
  const loaded = loadPool(f.pool ?? join(f.data, "tasks"));
  const { tasks: pool, missing } = restrictPool(loaded.tasks, trainList);
  if (missing.length) process.stderr.write(`note: ${missing.length} training task(s) of the split are not in the pool: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}\n`);
  const names = f.targets ? f.targets.split(",").map((x) => x.trim()).filter(Boolean) : readTaskList(join(splitDir, "test_tasks.txt"));
  const { targets, missing: tm } = targetsFromNames(names, loaded.tasks, "--targets", !f.targets);
  if (tm.length) process.stderr.write(`note: ${tm.length} target(s) not in the pool, skipped: ${tm.join(", ")}\n`);
  if (k > pool.length) throw new RangeError(`--k ${k} exceeds the ${pool.length} training tasks in the pool`);
  const embedder = await createEmbedder(f.embedder);
  const t0 = performance.now();
  const run = await selectTasks(pool, targets, embedder, { k, excludeSelf: true });
  const seconds = (performance.now() - t0) / 1000;
  const rng = new Rng(Number(f.seed) + 17);
  const result = {
    k,
    embedder: embedder.name,
    pool: pool.length,
    seconds: Math.round(seconds * 1000) / 1000,
    targets: run.selections.map((s) => ({
      target: s.target,
      selected: s.selected.map((x) => ({ task: x.task, score: Math.round(x.score * 10000) / 10000 })),
      random: rng.sample(pool, k).map((t) => t.name),
    })),
  };
  writeFileAtomic(join(f.out, "selection.json"), JSON.stringify(result, null, 2));
  if (f.json) process.stdout.write(JSON.stringify(result) + "\n");
  else
    process.stdout.write(
      `selected ${k} of ${pool.length} training tasks for each of ${targets.length} targets with ${embedder.name} in ${seconds.toFixed(2)} s; ` +
        `wrote ${join(f.out, "selection.json")}\n`,
    );
}
import { resolveConfig } from "../train/config.js";
import { writeFileAtomic } from "../util/fs.js";
import { overridesFromFlags, type CommonFlags } from "./train.js";

export function registerSelectTrain(program: Command): void {
  program
    .command("select-train")
    .description("train on the k tasks selected from instructions (INSTA) vs k random tasks vs all tasks; evaluate on each target")
    .option("--model <dir>", "checkpoint folder to start from (not needed with --selection-only)")
    .requiredOption("--data <dir>", "data folder with tasks/ and splits/")
    .option("--split <name>", "split: training tasks form the pool, test tasks are the targets", "default")
    .option("--targets <names>", "comma-separated target task names (default: the split's test tasks)")
    .option("--k <n>", "tasks to select", "5")
    .option("--embedder <name>", "instruction embedder (see instill select --help)", DEFAULT_EMBEDDER)
    .option("--selection-only", "only select (k per target, with the random draws), write selection.json and stop: no training")
    .option("--pool <path>", "with --selection-only: the instructions to select from (a tasks folder or definitions.jsonl; default <data>/tasks)")
    .option("--steps <n>", "optimizer steps for every run (same budget)", "200")
    .option("--batch-size <n>", "batch size", "16")
    .option("--lr <x>", "learning rate", "1e-3")
    .option("--config <file>", "run config (YAML or JSON)")
    .option("--out <dir>", "output folder", "runs/select-train")
    .option("--seed <n>", "random seed", "42")
    .option("--json", "print the result as JSON")
    .option("-q, --quiet", "no progress bars")
    .action(async (f: CommonFlags & { targets?: string; k: string; embedder: string; steps: string; batchSize: string; lr: string; json?: boolean; selectionOnly?: boolean; pool?: string }) => {
      const raw = f as unknown as { data: string; split: string; seed: string; out: string; model?: string };
      if (f.selectionOnly) return selectionOnly({ ...raw, pool: f.pool, targets: f.targets, k: f.k, embedder: f.embedder, json: f.json });
      if (f.pool) throw new Error("--pool: only with --selection-only (training needs the task files of --data)");
      if (!raw.model) throw new Error("--model is required (or give --selection-only)");
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
