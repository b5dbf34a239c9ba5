// The demo's TAGI row: the tiny base model and the hypernetwork are trained together (the demo's base is a random
// initialization, so a frozen base could not follow instructions), first a short hypernetwork pretraining stage
// (instance text split into "instruction" and continuation), then finetuning on the training tasks with the
// definition given ONLY to the hypernetwork (and to the decoder through instruction fusion). No teachers here:
// teachers (one LoRA per task) would cost more than the row's budget; `instill tagi teach` + `tagi train
// --teachers` run the full recipe. Cost: pretrain steps/6 + finetune steps*2/3 of the demo's step budget.
import { join } from "node:path";
import type { SniTask } from "../data/types.js";
import { writeEvalFiles } from "../eval/evaluate.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { DEFAULT_LOSS, pretrainExamples, Tagi, tagiExamples } from "./tagi.js";

export interface TagiDemoContext {
  out: string;
  modelDir: string;
  train: SniTask[];
  test: SniTask[];
  seed: number;
  quiet?: boolean;
  quick?: boolean;
  budget?: { steps: number; batchSize: number; lr: number };
}

export async function tagiDemoRow(ctx: TagiDemoContext): Promise<{
  row: { method: string; rougeL: number; exact_match: number; rouge1: number; train_steps: number; train_seconds: number; final_loss: number };
  curve: { step: number; loss: number }[];
}> {
  const b = ctx.budget ?? (ctx.quick ? { steps: 60, batchSize: 16, lr: 3e-3 } : { steps: 600, batchSize: 32, lr: 2e-3 });
  const DATA = { maxSourceLength: 256, maxTargetLength: 64, maxInstructionLength: 128 };
  const tok = loadTokenizer(ctx.modelDir);
  const out = join(ctx.out, "runs", "tagi");
  const tagi = await Tagi.load(ctx.modelDir, { hypernet: { rank: 8, alpha: 16, projDim: 64, hidden: 8 }, trainBase: true, seed: ctx.seed });
  try {
    const preSteps = Math.max(1, Math.floor(b.steps / 6));
    const ftSteps = Math.max(1, Math.floor((b.steps * 2) / 3));
    const pre = await tagi.trainStage(pretrainExamples(ctx.train, tok, DATA, ctx.seed), tok, {
      steps: preSteps,
      batchSize: b.batchSize,
      lr: b.lr,
      seed: ctx.seed,
      loss: { ...DEFAULT_LOSS, ce: 1, kl: 0, mse: 0 },
    });
    const ft = await tagi.trainStage(tagiExamples(ctx.train, tok, DATA, { seed: ctx.seed, training: true }), tok, {
      steps: ftSteps,
      batchSize: b.batchSize,
      lr: b.lr,
      seed: ctx.seed + 1,
      loss: { ...DEFAULT_LOSS, ce: 1, kl: 0, mse: 0 },
    });
    const ev = await tagi.evaluate(ctx.test, tok, { ...DATA, batchSize: 32, maxNewTokens: 32, seed: ctx.seed, quiet: ctx.quiet ?? true });
    writeEvalFiles(join(out, "eval"), ev);
    const losses = [...pre.losses, ...ft.losses];
    return {
      row: {
        method: "tagi",
        rougeL: ev.metrics.rougeL,
        exact_match: ev.metrics.exact_match,
        rouge1: ev.metrics.rouge1,
        train_steps: losses.length,
        train_seconds: pre.seconds + ft.seconds,
        final_loss: ft.losses[ft.losses.length - 1],
      },
      curve: losses.map((loss, i) => ({ step: i + 1, loss })),
    };
  } finally {
    tagi.dispose();
  }
}
