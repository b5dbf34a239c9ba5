// The demo's TAGI row: from the demo's shared base, the base and the hypernetwork trained together (a base this
// small cannot follow instructions through rank-8 adapters alone), with the same total step budget as every other
// row: a short hypernetwork pretraining stage (steps/6: instance text split into "instruction" and continuation),
// then finetuning on the training tasks with the definition given ONLY to the hypernetwork (and to the decoder
// through instruction fusion). No teachers here: teachers (one LoRA per task) would cost more than the row's
// budget; `instill tagi ablate` runs the full recipe (teachers, KL, parameter MSE). At inference the encoder reads
// the instance alone; the hypernetwork reads each task's instruction once.
import { join } from "node:path";
import type { EncodingOptions } from "../data/types.js";
import { writeEvalFiles } from "../eval/evaluate.js";
import type { RowContext } from "../eval/row.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { DEFAULT_LOSS, pretrainExamples, Tagi, tagiExamples, taskInstruction } from "./tagi.js";

export async function tagiDemoRow(ctx: RowContext, o: { onStep?: (step: number) => void } = {}) {
  const b = ctx.budget;
  const DATA = { maxSourceLength: ctx.baseConfig.encoding.maxSourceLength, maxTargetLength: ctx.baseConfig.maxTargetLength, maxInstructionLength: 64 };
  const tok = loadTokenizer(ctx.modelDir);
  const out = join(ctx.out, "runs", "tagi");
  const tagi = await Tagi.load(ctx.modelDir, { hypernet: { rank: 8, alpha: 16, projDim: 64, hidden: 8 }, trainBase: true, seed: ctx.seed });
  try {
    const preSteps = Math.max(1, Math.floor(b.steps / 6));
    const ftSteps = Math.max(1, b.steps - preSteps);
    const pre = await tagi.trainStage(pretrainExamples(ctx.train, tok, DATA, ctx.seed), tok, {
      steps: preSteps,
      batchSize: b.batchSize,
      lr: b.lr,
      seed: ctx.seed,
      stepsPerCall: 25,
      loss: { ...DEFAULT_LOSS, ce: 1, kl: 0, mse: 0 },
      onProgress: (step) => o.onStep?.(step),
    });
    const ft = await tagi.trainStage(tagiExamples(ctx.train, tok, DATA, { seed: ctx.seed, training: true }), tok, {
      steps: ftSteps,
      batchSize: b.batchSize,
      lr: b.lr,
      seed: ctx.seed + 1,
      stepsPerCall: 25,
      loss: { ...DEFAULT_LOSS, ce: 1, kl: 0, mse: 0 },
      onProgress: (step) => o.onStep?.(preSteps + step),
    });
    const ev = await tagi.evaluate(ctx.test, tok, { ...DATA, batchSize: ctx.evalOptions.batchSize, maxNewTokens: ctx.evalOptions.maxNewTokens, seed: ctx.seed, quiet: true });
    writeEvalFiles(join(out, "eval"), ev);
    const losses = [...pre.losses, ...ft.losses];
    const instr = ctx.test.map((t) => Math.min(DATA.maxInstructionLength, tok.countTokens(taskInstruction(t))));
    const encoding: EncodingOptions = { ...ctx.baseConfig.encoding, addDefinition: false, numPositiveExamples: 0, numNegativeExamples: 0 };
    return {
      method: "tagi",
      eval: ev,
      train_steps: losses.length,
      train_seconds: pre.seconds + ft.seconds,
      final_loss: ft.losses[ft.losses.length - 1],
      curve: losses,
      encoding,
      instructionTokensPerTask: instr.reduce((a, x) => a + x, 0) / Math.max(1, instr.length),
    };
  } finally {
    tagi.dispose();
  }
}
