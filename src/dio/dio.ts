// DIO (issue 8): differentiable instruction optimization. TypeScript owns the data side: the meta split of
// the training tasks, Tk-Instruct-encoded batches with what selects their soft tokens (task ids for per-task
// prompts, written-instruction ids for the embedder), the call loop, files and evaluation. The bilevel step
// itself (inner theta update, hypergradient of the meta loss, outer phi update) runs natively
// (native/core/train/dio.h) inside one call per `stepsPerCall` steps.
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { evaluateTasks, type EvalResult } from "../eval/evaluate.js";
import { T5Model } from "../model/model.js";
import { installTokenizer } from "../model/tokenizer.js";
import { loadAddon } from "../native/binding.js";
import type { DioBatchHost, DioNativeOptions, HostTensor, NativeDio } from "../native/types.js";
import { BatchSchedule, buildExamples, collate, tokenizeExamples, type TokenizedExample, type TokenizerLike } from "../train/batches.js";
import { JsonlLogger } from "../train/logger.js";
import { Progress } from "../train/progress.js";
import { writeFileAtomic } from "../util/fs.js";
import { Rng } from "../util/rng.js";

export type DioVariant = "prompt" | "embedder";

export interface DioConfig {
  /** Checkpoint folder (config.json + model.safetensors + tokenizer). */
  model: string;
  out: string;
  seed: number;
  encoding: EncodingOptions;
  maxTargetLength: number;
  variant: DioVariant;
  /** Soft tokens per instruction (DIO's default is 128; small models want fewer). */
  promptLength: number;
  /** Per-task prompt initialisation: the task's written instruction, or sampled vocabulary embeddings. */
  init: "instruction" | "vocab";
  /** Written instruction tokens fed to the embedder (and used for init). */
  maxInstructionLength: number;
  /** Hypergradient spec from the native registry: unroll:K, neumann:K, cg:K, fd (,key=value). */
  hypergrad: string;
  alpha: number;
  damping: number;
  /** Outer update every metaEvery inner steps; 0 = never ("fixed instructions"). */
  metaEvery: number;
  /** Fraction of the training tasks held out as meta tasks (at least one task each side). */
  metaFraction: number;
  batchSize: number;
  /** Batch size of the meta (outer-loss) batches; 0 = batchSize. */
  metaBatchSize: number;
  steps: number;
  stepsPerCall: number;
  inner: { lr: number; warmupSteps: number; schedule: "linear" | "constant"; clipNorm: number };
  outer: { lr: number; warmupSteps: number; schedule: "linear" | "constant"; clipNorm: number };
  quiet: boolean;
}

export function defaultDioConfig(): DioConfig {
  return {
    model: "",
    out: "runs/dio",
    seed: 42,
    encoding: { addTaskName: false, addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0, addExplanation: false, maxSourceLength: 512 },
    maxTargetLength: 64,
    variant: "embedder",
    promptLength: 8,
    init: "instruction",
    maxInstructionLength: 48,
    hypergrad: "neumann:1",
    alpha: 1e-2,
    damping: 0.1,
    metaEvery: 1,
    metaFraction: 0.2,
    batchSize: 8,
    metaBatchSize: 0,
    steps: 200,
    stepsPerCall: 10,
    inner: { lr: 1e-3, warmupSteps: 0, schedule: "linear", clipNorm: 1.0 },
    outer: { lr: 1e-3, warmupSteps: 0, schedule: "constant", clipNorm: 1.0 },
    quiet: false,
  };
}

export function validateDioConfig(c: DioConfig): DioConfig {
  if (c.variant !== "prompt" && c.variant !== "embedder") throw new TypeError(`variant: expected prompt or embedder, got '${c.variant}'`);
  if (c.init !== "instruction" && c.init !== "vocab") throw new TypeError(`init: expected instruction or vocab, got '${c.init}'`);
  const posInt = (v: number, k: string, min = 1) => {
    if (!Number.isInteger(v) || v < min) throw new RangeError(`${k}: expected an integer >= ${min}, got ${v}`);
  };
  posInt(c.promptLength, "promptLength");
  posInt(c.maxInstructionLength, "maxInstructionLength");
  posInt(c.metaEvery, "metaEvery", 0);
  posInt(c.batchSize, "batchSize");
  posInt(c.metaBatchSize, "metaBatchSize", 0);
  posInt(c.steps, "steps");
  posInt(c.stepsPerCall, "stepsPerCall");
  if (!(c.metaFraction > 0 && c.metaFraction < 1)) throw new RangeError(`metaFraction: expected a number in (0, 1), got ${c.metaFraction}`);
  return c;
}

/** Deterministic meta split: a seeded shuffle of the training tasks; the first ceil(f * n) are meta tasks. */
export function metaSplit(tasks: SniTask[], fraction: number, seed: number): { inner: SniTask[]; meta: SniTask[] } {
  if (tasks.length < 2) throw new RangeError(`DIO needs at least 2 training tasks (inner + meta), got ${tasks.length}`);
  const idx = tasks.map((_, i) => i);
  new Rng((seed * 7919 + 17) >>> 0).shuffle(idx);
  const nMeta = Math.min(tasks.length - 1, Math.max(1, Math.ceil(fraction * tasks.length)));
  const metaSet = new Set(idx.slice(0, nMeta));
  return { inner: tasks.filter((_, i) => !metaSet.has(i)), meta: tasks.filter((_, i) => metaSet.has(i)) };
}

/** The written instruction of a task as token ids (first definition, truncated, EOS kept). */
export function instructionIds(task: SniTask, tok: TokenizerLike, maxLen: number, definitionIndex = 0): number[] {
  const def = (task.definition[definitionIndex] ?? task.definition[0] ?? task.name).trim();
  let ids = tok.encode(def.length > 0 ? def : task.name, { addEos: true });
  if (ids.length > maxLen) ids = [...ids.slice(0, maxLen - 1), tok.eosId];
  return ids;
}

function int32(data: number[], shape: number[]): HostTensor<"int32"> {
  return { data: Int32Array.from(data), shape, dtype: "int32" };
}

/** A DIO batch: the collated examples plus task ids (prompt variant) or written-instruction ids (embedder). */
export function dioBatch(
  exs: TokenizedExample[],
  padId: number,
  withLabels: boolean,
  select: { taskIndex?: Map<string, number>; instr?: Map<string, number[]> },
): DioBatchHost {
  const b = collate(exs, padId, withLabels) as DioBatchHost;
  if (select.taskIndex) {
    b.taskIds = int32(
      exs.map((e) => {
        const t = select.taskIndex!.get(e.task);
        if (t === undefined) throw new Error(`DIO: task '${e.task}' has no soft prompt`);
        return t;
      }),
      [exs.length],
    );
  }
  if (select.instr) {
    const rows = exs.map((e) => {
      const r = select.instr!.get(e.task);
      if (!r) throw new Error(`DIO: task '${e.task}' has no written instruction ids`);
      return r;
    });
    const L = Math.max(...rows.map((r) => r.length));
    const ids = new Array<number>(rows.length * L).fill(padId);
    const mask = new Array<number>(rows.length * L).fill(0);
    rows.forEach((r, i) => r.forEach((v, j) => ((ids[i * L + j] = v), (mask[i * L + j] = 1))));
    b.instrIds = int32(ids, [rows.length, L]);
    b.instrMask = int32(mask, [rows.length, L]);
  }
  return b;
}

export interface DioTrainResult {
  out: string;
  modelDir: string;
  steps: number;
  trainLosses: number[];
  metaLosses: number[];
  innerTasks: string[];
  metaTasks: string[];
  seconds: number;
  hypergradSeconds: number;
  hvpCount: number;
}

/** What `dio eval` needs to rebuild the trainer: written next to the model as dio.json. */
export interface DioManifest {
  format: "instill-dio";
  variant: DioVariant;
  promptLength: number;
  numTasks: number;
  tasks: string[];
  maxInstructionLength: number;
  encoding: EncodingOptions;
  maxTargetLength: number;
  hypergrad: string;
  metaEvery: number;
}

function nativeOptions(c: DioConfig, numTasks: number, total: number): DioNativeOptions {
  return {
    variant: c.variant,
    promptLength: c.promptLength,
    numTasks,
    hypergrad: c.hypergrad,
    alpha: c.alpha,
    damping: c.damping,
    metaEvery: c.metaEvery,
    seed: c.seed,
    inner: { name: "adamw", lr: c.inner.lr, totalSteps: total, schedule: c.inner.schedule, warmupSteps: c.inner.warmupSteps, clipNorm: c.inner.clipNorm },
    outer: { name: "adamw", lr: c.outer.lr, totalSteps: Math.max(1, c.metaEvery > 0 ? Math.floor(total / c.metaEvery) : 1), schedule: c.outer.schedule, warmupSteps: c.outer.warmupSteps, clipNorm: c.outer.clipNorm },
  };
}

/** Bilevel training on `tasks` (a meta split of them is held out for the outer loss). */
export async function trainDio(c: DioConfig, tasks: SniTask[], tok: TokenizerLike, opts: { label?: string } = {}): Promise<DioTrainResult> {
  validateDioConfig(c);
  const t0 = Date.now();
  mkdirSync(c.out, { recursive: true });
  writeFileAtomic(join(c.out, "dio_config.json"), JSON.stringify(c, null, 2) + "\n");
  const { inner, meta } = metaSplit(tasks, c.metaFraction, c.seed);
  const encode = (ts: SniTask[], seed: number) =>
    tokenizeExamples(buildExamples(ts, c.encoding, (t) => tok.countTokens(t), { seed, training: true }), tok, c.encoding.maxSourceLength, c.maxTargetLength);
  const innerEx = encode(inner, c.seed);
  const metaEx = encode(meta, c.seed + 1);
  const trainSched = new BatchSchedule(innerEx, c.batchSize, c.seed);
  const metaSched = new BatchSchedule(metaEx, c.metaBatchSize > 0 ? c.metaBatchSize : c.batchSize, c.seed + 1);
  const instr = new Map(tasks.map((t) => [t.name, instructionIds(t, tok, c.maxInstructionLength, c.encoding.definitionIndex ?? 0)]));
  const taskIndex = new Map(inner.map((t, i) => [t.name, i]));
  const trainSelect = c.variant === "prompt" ? { taskIndex } : { instr };
  // Prompt variant: meta tasks have no prompt, the meta loss reads the written instruction only.
  const metaSelect = c.variant === "prompt" ? {} : { instr };
  const initIds = c.variant === "prompt" ? inner.map((t) => (c.init === "instruction" ? instr.get(t.name)! : [])) : undefined;

  const addon = loadAddon();
  const dio: NativeDio = new addon.DioNative();
  await dio.create(c.model, nativeOptions(c, inner.length, c.steps), initIds);
  const logger = new JsonlLogger(join(c.out, "metrics.jsonl"));
  const progress = new Progress({ total: c.steps, label: opts.label ?? "dio", quiet: c.quiet });
  const trainLosses: number[] = [];
  const metaLosses: number[] = [];
  let hypergradSeconds = 0;
  let hvpCount = 0;
  let step = 0;
  let interrupted = false;
  const onSigint = () => {
    interrupted = true;
    dio.cancel();
  };
  process.on("SIGINT", onSigint);
  try {
    while (step < c.steps && !interrupted) {
      const n = Math.min(c.stepsPerCall, c.steps - step);
      const items = [];
      for (let s = step; s < step + n; s++) {
        const item: { train: DioBatchHost; meta?: DioBatchHost } = { train: dioBatch(trainSched.examples(s), tok.padId, true, trainSelect) };
        if (c.metaEvery > 0 && (s + 1) % c.metaEvery === 0) item.meta = dioBatch(metaSched.examples(Math.floor(s / c.metaEvery)), tok.padId, true, metaSelect);
        items.push(item);
      }
      const r = await dio.steps(items);
      for (let i = 0; i < r.trainLoss.length; i++) {
        trainLosses.push(r.trainLoss[i]);
        if (Number.isFinite(r.metaLoss[i])) metaLosses.push(r.metaLoss[i]);
        logger.log({ step: step + i + 1, loss: r.trainLoss[i], meta_loss: Number.isFinite(r.metaLoss[i]) ? r.metaLoss[i] : null, hypergrad_norm: Number.isFinite(r.hypergradNorm[i]) ? r.hypergradNorm[i] : null });
      }
      hypergradSeconds += r.hypergradSeconds.reduce((a, b) => a + b, 0);
      hvpCount += r.hvpCount;
      step += r.trainLoss.length;
      progress.update(step, { loss: r.trainLoss[r.trainLoss.length - 1] });
    }
    const modelDir = join(c.out, "model");
    await dio.save(modelDir);
    installTokenizer(c.model, modelDir);
    const manifest: DioManifest = {
      format: "instill-dio",
      variant: c.variant,
      promptLength: c.promptLength,
      numTasks: inner.length,
      tasks: inner.map((t) => t.name),
      maxInstructionLength: c.maxInstructionLength,
      encoding: c.encoding,
      maxTargetLength: c.maxTargetLength,
      hypergrad: c.hypergrad,
      metaEvery: c.metaEvery,
    };
    writeFileAtomic(join(modelDir, "dio.json"), JSON.stringify(manifest, null, 2) + "\n");
    const seconds = (Date.now() - t0) / 1000;
    logger.log({ event: interrupted ? "interrupted" : "done", steps: step, seconds });
    return { out: c.out, modelDir, steps: step, trainLosses, metaLosses, innerTasks: inner.map((t) => t.name), metaTasks: meta.map((t) => t.name), seconds, hypergradSeconds, hvpCount };
  } finally {
    progress.stop();
    process.off("SIGINT", onSigint);
    dio.dispose();
  }
}

export function readDioManifest(dir: string): DioManifest {
  const p = join(dir, "dio.json");
  if (!existsSync(p)) throw new Error(`${dir}: not a DIO model folder (no dio.json; train one with 'instill dio train')`);
  const m = JSON.parse(readFileSync(p, "utf8")) as DioManifest;
  if (m.format !== "instill-dio") throw new Error(`${p}: format is '${String(m.format)}', expected 'instill-dio'`);
  return m;
}

export interface DioEvalOptions {
  batchSize: number;
  maxNewTokens: number;
  numBeams: number;
  seed: number;
  quiet?: boolean;
  /** Prompt variant only: evaluate seen training tasks with their own soft prompts (default: written instruction only). */
  useTaskPrompts?: boolean;
}

/**
 * Evaluates a DIO model folder on `tasks`. Embedder variant: every task (unseen ones included) gets soft tokens
 * computed from its own written instruction. Prompt variant: unseen tasks run with the written instruction only
 * (their per-task prompts exist only for training tasks). Rank classification, where tasks define answer options,
 * is scored by the plain model (without soft tokens).
 */
export async function evaluateDio(dir: string, tasks: SniTask[], tok: TokenizerLike, o: DioEvalOptions): Promise<EvalResult & { variant: DioVariant; softTokens: boolean }> {
  const m = readDioManifest(dir);
  const plain = await T5Model.load(dir, { seed: o.seed });
  const addon = loadAddon();
  const dio: NativeDio = new addon.DioNative();
  try {
    await dio.create(dir, { variant: m.variant, promptLength: m.promptLength, numTasks: Math.max(1, m.numTasks), metaEvery: 0, seed: o.seed, inner: { lr: 0 }, outer: { lr: 0 } });
    await dio.loadPhi(join(dir, "dio_instructions.safetensors"));
    const instr = new Map(tasks.map((t) => [t.name, instructionIds(t, tok, m.maxInstructionLength, m.encoding.definitionIndex ?? 0)]));
    const taskIndex = new Map(m.tasks.map((t, i) => [t, i]));
    const soft = m.variant === "embedder" || (o.useTaskPrompts === true && tasks.every((t) => taskIndex.has(t.name)));
    const select = m.variant === "embedder" ? { instr } : soft ? { taskIndex } : {};
    const ev = await evaluateTasks(plain, tok, tasks, {
      encoding: m.encoding,
      maxTargetLength: m.maxTargetLength,
      batchSize: o.batchSize,
      maxNewTokens: o.maxNewTokens,
      numBeams: o.numBeams,
      seed: o.seed,
      quiet: o.quiet,
      generate: async (_b, exs) => dio.generate(dioBatch(exs, tok.padId, false, select), { maxNewTokens: o.maxNewTokens, numBeams: o.numBeams }),
    });
    return { ...ev, variant: m.variant, softTokens: soft };
  } finally {
    dio.dispose();
    plain.dispose();
  }
}
