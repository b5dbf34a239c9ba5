// The DIO rows of `instill demo`: from the demo's shared base, the same inner budget (steps, batch, lr) and the same
// written-definition encoding as the demo's "definition" row, plus learnable instructions (embedder variant: soft
// tokens computed from each task's written instruction) updated by hypergradients of the loss on a meta split of
// the training tasks. Unseen test tasks get soft tokens from their own written instructions. With { fixed: true }
// the same training runs without outer updates ("dio-fixed"), so dio vs dio-fixed isolates the outer updates.
import { join } from "node:path";
import { writeEvalFiles } from "../eval/evaluate.js";
import type { RowContext } from "../eval/row.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { defaultDioConfig, trainDio, type DioConfig } from "./dio.js";

export interface DioDemoOptions {
  /** No outer updates: the same training with fixed instructions (row "dio-fixed"). */
  fixed?: boolean;
  /** Hypergradient spec (default neumann:1, DIO's setting). */
  hypergrad?: string;
  /** Outer update every n inner steps (default 10; with meta batches of half the training batch size one neumann:1
   * outer step costs ~5-6 training steps, so the row costs ~1.5 baseline rows). */
  metaEvery?: number;
  /** Called after each native call with the inner steps done (the demo's progress bar). */
  onStep?: (step: number) => void;
}

export function dioDemoConfig(ctx: RowContext, o: DioDemoOptions = {}): DioConfig {
  const d = defaultDioConfig();
  const b = ctx.budget;
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
    metaEvery: o.fixed ? 0 : (o.metaEvery ?? 10),
    metaFraction: 0.2,
    batchSize: b.batchSize,
    metaBatchSize: Math.max(1, Math.floor(b.batchSize / 2)),
    steps: b.steps,
    stepsPerCall: 25,
    inner: { lr: b.lr, warmupSteps: Math.round(b.steps * 0.05), schedule: "linear", clipNorm: 1.0 },
    outer: { lr: 1e-2, warmupSteps: 0, schedule: "constant", clipNorm: 1.0 },
    checkpointEvery: 1_000_000,
    keepCheckpoints: 1,
    quiet: true,
  };
}

export async function dioDemoRow(ctx: RowContext, o: DioDemoOptions = {}) {
  const cfg = dioDemoConfig(ctx, o);
  const tok = loadTokenizer(ctx.modelDir);
  const method = o.fixed ? "dio-fixed" : "dio";
  // The trained model is evaluated in memory (as evaluateDio would after loading tr.modelDir).
  const tr = await trainDio(cfg, ctx.train, tok, {
    label: method,
    hooks: { afterCall: (step) => void o.onStep?.(step) },
    evaluate: { tasks: ctx.test, options: { ...ctx.evalOptions, seed: ctx.seed, quiet: true } },
  });
  const ev = tr.eval!;
  writeEvalFiles(join(cfg.out, "eval"), ev);
  return {
    method,
    eval: ev,
    train_steps: tr.steps,
    train_seconds: tr.seconds,
    final_loss: tr.trainLosses[tr.trainLosses.length - 1],
    curve: tr.trainLosses,
    encoding: cfg.encoding,
    softTokens: cfg.promptLength,
    metaLosses: tr.metaLosses,
  };
}
