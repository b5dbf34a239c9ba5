// The DIO row of `instill demo`: the demo's tiny T5 trained on the demo's training tasks with the same inner budget
// (steps, batch, lr) and the same written-definition encoding as the demo's "definition" row, plus learnable
// instructions (embedder variant: soft tokens computed from each task's written instruction) updated by
// hypergradients of the loss on a meta split of the training tasks. Unseen test tasks get soft tokens from their
// own written instructions. With { fixed: true } the same training runs without outer updates ("dio-fixed").
import { join } from "node:path";
import type { DemoContext } from "../demo/demo.js";
import { rougeLPerCategory, writeEvalFiles } from "../eval/evaluate.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { defaultDioConfig, evaluateDio, trainDio, type DioConfig } from "./dio.js";

export interface DioDemoRow {
  method: string;
  rougeL: number;
  exact_match: number;
  rouge1: number;
  train_steps: number;
  train_seconds: number;
  final_loss: number;
  [key: string]: string | number;
}

export interface DioDemoOptions {
  /** No outer updates: the same training with fixed instructions (row "dio-fixed"). */
  fixed?: boolean;
  /** Hypergradient spec (default neumann:1, DIO's setting). */
  hypergrad?: string;
  /** Outer update every n inner steps (default: 10 in the full demo, 4 in quick mode; with meta batches of half the
   * training batch size this keeps the row near the cost of one baseline row: one neumann:1 outer step costs ~5-6
   * training steps of the same batch size). */
  metaEvery?: number;
}

export function dioDemoConfig(ctx: DemoContext, o: DioDemoOptions = {}): DioConfig {
  const d = defaultDioConfig();
  const b = ctx.budget;
  const quick = b.steps <= 100;
  return {
    ...d,
    model: ctx.modelDir,
    out: join(ctx.out, "runs", o.fixed ? "dio-fixed" : "dio"),
    seed: ctx.seed,
    encoding: { ...ctx.baseConfig.encoding, addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0 },
    maxTargetLength: ctx.baseConfig.maxTargetLength,
    variant: "embedder",
    promptLength: 4,
    maxInstructionLength: 32,
    hypergrad: o.hypergrad ?? "neumann:1",
    alpha: 1e-2,
    metaEvery: o.fixed ? 0 : (o.metaEvery ?? (quick ? 4 : 10)),
    metaFraction: 0.2,
    batchSize: b.batchSize,
    metaBatchSize: Math.max(1, Math.floor(b.batchSize / 2)),
    steps: b.steps,
    stepsPerCall: quick ? 10 : 25,
    inner: { lr: b.lr, warmupSteps: Math.round(b.steps * 0.05), schedule: "linear", clipNorm: 1.0 },
    outer: { lr: 1e-2, warmupSteps: 0, schedule: "constant", clipNorm: 1.0 },
    quiet: ctx.quiet,
  };
}

export async function dioDemoRow(
  ctx: DemoContext,
  o: DioDemoOptions = {},
): Promise<{ row: DioDemoRow; curve: { step: number; loss: number }[]; perCategory: Record<string, number>; metaLosses: number[] }> {
  const cfg = dioDemoConfig(ctx, o);
  const tok = loadTokenizer(ctx.modelDir);
  const tr = await trainDio(cfg, ctx.train, tok, { label: o.fixed ? "dio-fixed" : "dio" });
  const ev = await evaluateDio(tr.modelDir, ctx.test, tok, {
    batchSize: ctx.baseConfig.eval.batchSize,
    maxNewTokens: ctx.baseConfig.eval.maxNewTokens,
    numBeams: 1,
    seed: ctx.seed,
    quiet: ctx.quiet,
  });
  writeEvalFiles(join(cfg.out, "eval"), ev);
  const perCategory = rougeLPerCategory(ev.metrics, ctx.test);
  return {
    row: {
      method: o.fixed ? "dio-fixed" : "dio",
      rougeL: ev.metrics.rougeL,
      exact_match: ev.metrics.exact_match,
      rouge1: ev.metrics.rouge1,
      train_steps: tr.steps,
      train_seconds: Math.round(tr.seconds * 10) / 10,
      final_loss: Math.round(tr.trainLosses[tr.trainLosses.length - 1] * 10000) / 10000,
    },
    curve: tr.trainLosses.map((loss, i) => ({ step: i + 1, loss })),
    perCategory,
    metaLosses: tr.metaLosses,
  };
}
