// Multi-task instruction tuning (Tk-Instruct style): full fine-tuning or LoRA, checkpoints, resume,
// progress, JSONL logs, Ctrl-C that saves and exits. The loop is the training driver's (driver.ts); this file
// supplies the T5 step (one native call per `stepsPerCall` optimizer steps) and owns data, order and files.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import type { SniTask } from "../data/types.js";
import { T5Model } from "../model/model.js";
import { installTokenizer, loadTokenizer } from "../model/tokenizer.js";
import type { NativeModelHandle } from "../model/types.js";
import { writeFileAtomic } from "../util/fs.js";
import { initProcessGroup, isWriter, reseedRankDropout, type ProcessGroup } from "../dist/index.js";
import { BatchSchedule, batchTokens, buildExamples, collate, tokenizeExamples, type TokenizerLike } from "./batches.js";
import { CheckpointManager } from "./checkpoint.js";
import type { RunConfig } from "./config.js";
import { drive, shardBatch, tokenShare, type TrainHooks } from "./driver.js";

export type { TrainHooks };
import { JsonlLogger } from "./logger.js";
import { Progress } from "./progress.js";

export interface TrainResult {
  out: string;
  steps: number;
  losses: number[];
  /** Where the final model (full) or adapter (LoRA) was written. */
  modelDir?: string;
  adapterDir?: string;
  interrupted: boolean;
  seconds: number;
}

function totalSteps(cfg: RunConfig, perEpoch: number): number {
  const accum = cfg.optimizer.gradAccumulation ?? 1;
  return cfg.steps > 0 ? cfg.steps : Math.max(1, Math.floor((cfg.epochs * perEpoch) / accum));
}

/** A full model folder is usable on its own: weights, config and the base checkpoint's tokenizer. */
async function saveModelWithTokenizer(model: NativeModelHandle, dir: string, baseModel: string): Promise<void> {
  await model.save(dir);
  installTokenizer(baseModel, dir);
}

/** Saves what a checkpoint holds: the trainable weights and the native training state. */
async function fillCheckpoint(model: NativeModelHandle, lora: boolean, dir: string, baseModel: string): Promise<void> {
  if (lora) await model.saveAdapter(join(dir, "adapter"));
  else await saveModelWithTokenizer(model, join(dir, "model"), baseModel);
  await model.saveTrainingState(join(dir, "training_state.safetensors"));
}

/** Ctrl-C stopped a run whose result the caller needed (a demo row, a selection run): the CLI exits 130. */
export class InterruptedError extends Error {
  constructor(what: string) {
    super(`${what}: interrupted (Ctrl-C); its last checkpoint is kept`);
    this.name = "InterruptedError";
  }
}

/** The trained model's folder of a finished full-model run; InterruptedError when Ctrl-C stopped it first. */
export function finishedModelDir(tr: TrainResult): string {
  if (tr.interrupted || !tr.modelDir) throw new InterruptedError(`training in ${tr.out}`);
  return tr.modelDir;
}

/** Trains `model` on `tasks` with `cfg`; resumes from cfg.out's last checkpoint when `resume`. */
export async function trainOnTasks(
  cfg: RunConfig,
  tasks: SniTask[],
  tok: TokenizerLike,
  opts: { resume?: boolean; hooks?: TrainHooks; label?: string; processGroup?: ProcessGroup } = {},
): Promise<TrainResult> {
  const t0 = Date.now();
  // Data parallelism (instill launch / torchrun variables): each rank trains on its slice of every global
  // batch, gradients are averaged natively before each optimizer step, rank 0 alone writes files.
  const pg = opts.processGroup;
  const world = pg?.worldSize ?? 1;
  const writer = isWriter(pg);
  if (cfg.batchSize % world !== 0) throw new RangeError(`batchSize ${cfg.batchSize} must be a multiple of the world size ${world}`);
  mkdirSync(cfg.out, { recursive: true });
  if (writer) writeFileAtomic(join(cfg.out, "config.json"), JSON.stringify(cfg, null, 2));
  const examples = tokenizeExamples(
    buildExamples(tasks, cfg.encoding, (t) => tok.countTokens(t), { seed: cfg.seed, training: true }),
    tok,
    cfg.encoding.maxSourceLength,
    cfg.maxTargetLength,
  );
  const schedule = new BatchSchedule(examples, cfg.batchSize, cfg.seed);
  const accum = cfg.optimizer.gradAccumulation ?? 1;
  const total = totalSteps(cfg, schedule.perEpoch);
  const ckpt = new CheckpointManager(cfg.out, cfg.keepCheckpoints);
  const logger = writer ? new JsonlLogger(join(cfg.out, "metrics.jsonl")) : undefined;

  const resumed = ckpt.resumePoint<{ step: number; losses: number[] }>(opts.resume);
  let model: T5Model;
  let step = 0;
  let losses: number[] = [];
  const lora = cfg.lora !== null;
  if (resumed) {
    const { latest, state } = resumed;
    model = lora ? await T5Model.load(cfg.model, { seed: cfg.seed }) : await T5Model.load(join(latest.dir, "model"), { seed: cfg.seed });
    if (lora) {
      model.addLora({ ...cfg.lora!, seed: cfg.seed });
      await model.loadAdapter(join(latest.dir, "adapter"));
    }
    model.setOptimizer({ ...cfg.optimizer, totalSteps: total });
    await model.loadTrainingState(join(latest.dir, "training_state.safetensors"));
    step = state.step;
    losses = state.losses ?? [];
    logger?.truncateAfter(step);
    logger?.log({ event: "resumed", step, checkpoint: latest.dir });
  } else {
    model = await T5Model.load(cfg.model, { seed: cfg.seed });
    if (lora) model.addLora({ ...cfg.lora!, seed: cfg.seed });
    model.setOptimizer({ ...cfg.optimizer, totalSteps: total });
  }

  reseedRankDropout(pg, cfg.seed, step);
  const progress = new Progress({ total, label: opts.label ?? "train", quiet: cfg.quiet || !writer });
  progress.update(step);
  let last: { gradNorms: number[]; lrs: number[]; tokensPerSecond?: number } = { gradNorms: [], lrs: [] };
  const run = await drive(
    {
      cancel: () => model.cancel(),
      run: async (from, n) => {
        const batches = [];
        for (let s = from; s < from + n; s++)
          for (let a = 0; a < accum; a++) batches.push(shardBatch(schedule.examples(s * accum + a), pg, (xs) => collate(xs, tok.padId), tokenShare));
        const res = await model.trainSteps(batches, pg ? { processGroup: pg, precision: cfg.precision } : { precision: cfg.precision });
        const done = res.losses.length;
        const tokens = batches.slice(0, done * accum).reduce((acc, b) => acc + batchTokens(b), 0);
        last = { gradNorms: res.gradNorms, lrs: res.lrs, tokensPerSecond: res.seconds > 0 ? tokens / res.seconds : undefined };
        return { steps: done, series: { loss: res.losses } };
      },
      record: (r, before) => {
        const loss = r.series.loss as number[];
        for (let i = 0; i < r.steps; i++) {
          const s = before + i + 1;
          losses.push(loss[i]);
          if (s % cfg.logEvery === 0 || s === total || i === r.steps - 1)
            logger?.log({ step: s, loss: loss[i], grad_norm: last.gradNorms[i], lr: last.lrs[i], ...(world > 1 ? { world_size: world } : {}) });
        }
        progress.update(before + r.steps, { loss: loss[r.steps - 1], tokensPerSecond: last.tokensPerSecond });
      },
    },
    {
      start: step,
      total,
      stepsPerCall: cfg.stepsPerCall,
      processGroup: pg,
      hooks: opts.hooks,
      checkpoint: {
        every: cfg.checkpointEvery,
        save: async (s) => {
          if (writer) await ckpt.save(s, { losses, total, seed: cfg.seed, worldSize: world }, (dir) => fillCheckpoint(model, lora, dir, cfg.model));
        },
      },
    },
  ).finally(() => progress.stop());
  step = run.steps;
  const interrupted = run.stopped;

  const result: TrainResult = { out: cfg.out, steps: step, losses, interrupted, seconds: (Date.now() - t0) / 1000 };
  if (!interrupted) {
    if (lora) {
      result.adapterDir = join(cfg.out, "adapter");
      if (writer) await model.saveAdapter(result.adapterDir);
    } else {
      result.modelDir = join(cfg.out, "model");
      if (writer) await saveModelWithTokenizer(model, result.modelDir, cfg.model);
    }
    logger?.log({ event: "done", steps: step, seconds: result.seconds });
  } else {
    logger?.log({ event: "interrupted", steps: step });
  }
  await pg?.barrier();
  model.dispose();
  return result;
}

/** `instill train`: the split's training tasks, or one LoRA per task with cfg.perTask. */
export async function train(cfg: RunConfig, opts: { resume?: boolean; hooks?: TrainHooks } = {}): Promise<TrainResult[]> {
  if (!existsSync(cfg.model)) throw new Error(`--model: ${cfg.model}: no such checkpoint folder`);
  const tok = loadTokenizer(cfg.model);
  const split = loadSplitTasks({
    dataDir: cfg.data,
    split: cfg.split,
    maxTrainInstances: cfg.maxTrainInstances,
    maxEvalInstances: cfg.maxEvalInstances,
    seed: cfg.seed,
    englishOnly: cfg.englishOnly,
    onBadTask: cfg.onBadTask,
  });
  for (const s of split.skipped) process.stderr.write(`instill: skipped task ${s.task}: ${s.reason}\n`);
  if (split.train.length === 0) throw new Error(`${cfg.data}: split '${cfg.split}' has no readable training tasks`);
  const processGroup = await initProcessGroup();
  try {
    if (!cfg.perTask) return [await trainOnTasks(cfg, split.train, tok, { ...opts, processGroup })];
    return await trainPerTask(cfg, split.train, tok, { ...opts, processGroup });
  } finally {
    processGroup?.dispose();
  }
}

/** One LoRA adapter per task (`--per-task`): <cfg.out>/adapters/<task>/adapter; results in task order. */
export async function trainPerTask(cfg: RunConfig, tasks: SniTask[], tok: TokenizerLike, opts: { resume?: boolean; hooks?: TrainHooks; processGroup?: ProcessGroup }): Promise<TrainResult[]> {
  if (cfg.lora === null) throw new Error("--per-task trains one LoRA adapter per task: give --lora (e.g. --lora r=8,alpha=16,modules=q,v)");
  const results: TrainResult[] = [];
  for (const task of tasks) {
    const sub: RunConfig = { ...cfg, out: join(cfg.out, "adapters", task.name), perTask: false };
    results.push(await trainOnTasks(sub, [task], tok, { ...opts, label: task.name }));
  }
  return results;
}
