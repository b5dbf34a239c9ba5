// INSTA end to end: for each target task, train on the k training tasks whose instructions are most similar
// to the target's, beside the same budget on k random training tasks and on all training tasks, and evaluate
// each on the target. "all tasks" is one run shared by every target (same steps, same seed).
import { join } from "node:path";
import type { SniTask } from "../data/types.js";
import { evaluateTasks, type Prediction } from "../eval/evaluate.js";
import { T5Model } from "../model/model.js";
import type { RunConfig } from "../train/config.js";
import { finishedModelDir, trainOnTasks, type TrainHooks } from "../train/trainer.js";
import type { TokenizerLike } from "../train/batches.js";
import { Rng } from "../util/rng.js";
import { examplesOf, instructionOf, poolTaskFromSni } from "./pool.js";
import { createEmbedder, DEFAULT_EMBEDDER } from "./registry.js";
import { selectTasks } from "./select.js";

export interface SelectTrainOptions {
  cfg: RunConfig;
  tok: TokenizerLike;
  train: SniTask[];
  targets: SniTask[];
  k: number;
  embedder?: string;
  quiet?: boolean;
  /** Keep each run's predictions on its target in the result (the demo's paired statistics need them). */
  keepPredictions?: boolean;
  /** Passed to every training run (`label` names the run: "all-tasks", "insta <target>", "random <target>"). */
  hooks?: (label: string) => TrainHooks;
}

export interface TargetResult {
  target: string;
  selected: { task: string; score: number }[];
  random: string[];
  rougeL: { insta: number; random: number; all: number };
  exact_match: { insta: number; random: number; all: number };
  predictions?: { insta: Prediction[]; random: Prediction[]; all: Prediction[] };
}

export interface SelectTrainResult {
  targets: TargetResult[];
  mean: { insta: { rougeL: number; exact_match: number }; random: { rougeL: number; exact_match: number }; all: { rougeL: number; exact_match: number } };
  k: number;
  steps: number;
}

async function trainAndEval(cfg: RunConfig, tok: TokenizerLike, train: SniTask[], evalOn: SniTask[], label: string, quiet: boolean, hooks?: TrainHooks) {
  const tr = await trainOnTasks(cfg, train, tok, { label, hooks });
  const model = await T5Model.load(finishedModelDir(tr), { seed: cfg.seed });
  try {
    const results = [];
    for (const t of evalOn) {
      const ev = await evaluateTasks(model, tok, [t], {
        encoding: cfg.encoding,
        maxTargetLength: cfg.maxTargetLength,
        batchSize: cfg.eval.batchSize,
        maxNewTokens: cfg.eval.maxNewTokens,
        numBeams: cfg.eval.numBeams,
        seed: cfg.seed,
        quiet,
      });
      results.push({ task: t.name, rougeL: ev.metrics.rougeL, exact_match: ev.metrics.exact_match, predictions: ev.predictions });
    }
    return results;
  } finally {
    model.dispose();
  }
}

const mean = (xs: number[]) => Math.round((xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length)) * 10000) / 10000;

export async function selectTrain(o: SelectTrainOptions): Promise<SelectTrainResult> {
  if (!Number.isInteger(o.k) || o.k < 1) throw new RangeError(`--k must be a positive integer, got ${o.k}`);
  if (o.k > o.train.length) throw new RangeError(`--k ${o.k} exceeds the ${o.train.length} training tasks`);
  if (o.targets.length === 0) throw new Error("select-train: no target tasks");
  const quiet = o.quiet ?? o.cfg.quiet;
  const embedder = await createEmbedder(o.embedder ?? DEFAULT_EMBEDDER);
  const pool = o.train.map(poolTaskFromSni);
  const run = await selectTasks(
    pool,
    o.targets.map((t) => ({ label: t.name, name: t.name, text: instructionOf(t), categories: t.categories, examples: examplesOf(t.positiveExamples) })),
    embedder,
    { k: o.k, excludeSelf: true },
  );
  const byName = new Map(o.train.map((t) => [t.name, t]));
  const all = await trainAndEval({ ...o.cfg, out: join(o.cfg.out, "all-tasks") }, o.tok, o.train, o.targets, "all-tasks", quiet, o.hooks?.("all-tasks"));
  const rng = new Rng(o.cfg.seed + 17);
  const out: TargetResult[] = [];
  for (let i = 0; i < o.targets.length; i++) {
    const target = o.targets[i];
    const sel = run.selections[i].selected;
    const random = rng.sample(o.train, o.k);
    const ins = await trainAndEval({ ...o.cfg, out: join(o.cfg.out, target.name, "insta") }, o.tok, sel.map((s) => byName.get(s.task)!), [target], `insta ${target.name}`, quiet, o.hooks?.(`insta ${target.name}`));
    const rnd = await trainAndEval({ ...o.cfg, out: join(o.cfg.out, target.name, "random") }, o.tok, random, [target], `random ${target.name}`, quiet, o.hooks?.(`random ${target.name}`));
    out.push({
      target: target.name,
      selected: sel.map((s) => ({ task: s.task, score: Math.round(s.score * 10000) / 10000 })),
      random: random.map((t) => t.name),
      rougeL: { insta: ins[0].rougeL, random: rnd[0].rougeL, all: all[i].rougeL },
      exact_match: { insta: ins[0].exact_match, random: rnd[0].exact_match, all: all[i].exact_match },
      ...(o.keepPredictions ? { predictions: { insta: ins[0].predictions, random: rnd[0].predictions, all: all[i].predictions } } : {}),
    });
  }
  const m = (k: "insta" | "random" | "all") => ({ rougeL: mean(out.map((r) => r.rougeL[k])), exact_match: mean(out.map((r) => r.exact_match[k])) });
  return { targets: out, mean: { insta: m("insta"), random: m("random"), all: m("all") }, k: o.k, steps: o.cfg.steps };
}
