// Evaluation on test tasks: generation + the official SNI metrics (overall, per task, per category),
// and rank-classification accuracy for tasks with answer options. Writes predictions.jsonl and metrics.json.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { categoryKey, rankClassificationAccuracy, scoreItemsDetailed, type RankItem, type SniResults } from "../metrics/index.js";
import type { Batch, GenerateOptions } from "../model/types.js";
import { writeFileAtomic } from "../util/fs.js";
import { buildExamples, collate, tokenizeExamples, type TokenizedExample, type TokenizerLike } from "../train/batches.js";
import { Progress } from "../train/progress.js";

export interface Prediction {
  id: string;
  task: string;
  category: string;
  prediction: string;
  references: string[];
}

export interface EvalResult {
  metrics: SniResults & { rank_accuracy?: number; num_examples: number };
  predictions: Prediction[];
}

/**
 * What evaluation needs from a method: generation and rank classification for a batch of examples. T5Model is one
 * as it is (it ignores `examples`); TAGI and DIO add what selects their adapters / soft tokens from `examples`.
 */
export interface Predictor {
  generate(batch: Batch, options: GenerateOptions, examples: TokenizedExample[]): Promise<number[][]>;
  /** Summed log-likelihood of each option (token ids, EOS included) per example. */
  scoreOptions(batch: Batch, options: number[][][], examples: TokenizedExample[]): Promise<number[][]>;
}

export interface EvalOptions {
  encoding: EncodingOptions;
  maxTargetLength: number;
  batchSize: number;
  maxNewTokens: number;
  numBeams: number;
  seed: number;
  quiet?: boolean;
}

export async function evaluateTasks(
  model: Predictor,
  tok: TokenizerLike,
  tasks: SniTask[],
  o: EvalOptions,
): Promise<EvalResult> {
  const examples = tokenizeExamples(
    buildExamples(tasks, o.encoding, (t) => tok.countTokens(t), { seed: o.seed, training: false }),
    tok,
    o.encoding.maxSourceLength,
    o.maxTargetLength,
  );
  if (examples.length === 0) throw new Error("evaluation: the test tasks have no instances");
  // Sort by source length so batches pad little; predictions are reported in the original order.
  const order = examples.map((_, i) => i).sort((a, b) => examples[a].src.length - examples[b].src.length);
  const preds: string[] = new Array(examples.length);
  const progress = new Progress({ total: examples.length, label: "eval", quiet: o.quiet });
  for (let i = 0; i < order.length; i += o.batchSize) {
    const idx = order.slice(i, i + o.batchSize);
    const exs = idx.map((k) => examples[k]);
    const out = await model.generate(collate(exs, tok.padId, false), { maxNewTokens: o.maxNewTokens, numBeams: o.numBeams }, exs);
    idx.forEach((k, j) => (preds[k] = tok.decode(out[j], { skipSpecial: true }).trim()));
    progress.update(Math.min(i + o.batchSize, order.length), { unit: "examples" });
  }
  progress.stop();
  const predictions: Prediction[] = examples.map((e, i) => ({
    id: e.id,
    task: e.task,
    category: e.category,
    prediction: preds[i],
    references: e.references,
  }));
  const report = scoreItemsDetailed(
    predictions.map((p) => ({ id: p.id, prediction: p.prediction, references: p.references, taskId: p.task, taskCategory: p.category })),
  );
  const metrics: EvalResult["metrics"] = { ...report.results, num_examples: predictions.length };

  // Rank classification where tasks define answer options.
  const mc = examples.filter((e) => e.answerChoices && e.answerChoices.length > 1);
  if (mc.length > 0) {
    const rankItems: RankItem[] = [];
    for (let i = 0; i < mc.length; i += o.batchSize) {
      const exs = mc.slice(i, i + o.batchSize);
      const options = exs.map((e) => e.answerChoices!.map((c) => tok.encode(c, { addEos: true })));
      const scores = await model.scoreOptions(collate(exs, tok.padId, false), options, exs);
      exs.forEach((e, j) => {
        const gold = e.answerChoices!.findIndex((c) => e.references.some((r) => r.trim().toLowerCase() === c.trim().toLowerCase()));
        if (gold >= 0) rankItems.push({ scores: scores[j], gold });
      });
    }
    if (rankItems.length > 0) metrics.rank_accuracy = Math.round(rankClassificationAccuracy(rankItems) * 100 * 10000) / 10000;
  }
  return { metrics, predictions };
}

export function writeEvalFiles(dir: string, r: EvalResult): void {
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, "predictions.jsonl"), r.predictions.map((p) => JSON.stringify(p)).join("\n") + "\n");
  writeFileAtomic(join(dir, "metrics.json"), JSON.stringify(r.metrics, null, 2) + "\n");
}

/** ROUGE-L per category (each task's first category) from the official result keys, keyed by category name. */
export function rougeLPerCategory(metrics: SniResults, tasks: SniTask[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of new Set(tasks.map((t) => t.categories[0]).filter((c): c is string => c !== undefined))) {
    const v = metrics[`rougeL_for_${categoryKey(c)}`];
    if (v !== undefined) out[c] = v;
  }
  return out;
}
