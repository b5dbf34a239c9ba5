// DIO: differentiable instruction optimization. TypeScript owns the data side: the meta split of the training
// tasks, Tk-Instruct-encoded batches with what selects their soft tokens (task ids for per-task prompts,
// written-instruction ids for the embedder), files and evaluation; the loop is the training driver's
// (src/train/driver.ts). The bilevel step itself (inner theta update, hypergradient of the meta loss, outer phi
// update) runs natively (native/core/dio/dio.h, through the Dio class below) inside one call per `stepsPerCall` steps. Also here: run configs (resolveDioConfig:
// defaults < --config file < flags), checkpoints with exact resume, demonstration candidates (a task's positive
// examples) and data parallelism (each rank its shard of every batch, token-weighted so that the mean over ranks
// is the global batch's loss; rank 0 writes).
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { isWriter, type ProcessGroup } from "../dist/index.js";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { evaluateTasks, type EvalResult, type Predictor } from "../eval/evaluate.js";
import { installTokenizer } from "../model/tokenizer.js";
import { loadAddon } from "../native/binding.js";
import type { DioBatchHost, DioNativeOptions, DioStepsResult, HostTensor, NativeDio } from "../native/types.js";
import { BatchSchedule, buildExamples, collate, padRows, tokenizeExamples, type TokenizedExample, type TokenizerLike } from "../train/batches.js";
import { CheckpointManager } from "../train/checkpoint.js";
import { resolveWith } from "../train/config.js";
import { drive, shardBatch, tokenShare, type TrainHooks } from "../train/driver.js";
import { JsonlLogger } from "../train/logger.js";
import { Progress } from "../train/progress.js";
import { writeFileAtomic } from "../util/fs.js";
import { Rng } from "../util/rng.js";

export type DioVariant = "prompt" | "embedder";

export interface DioConfig {
  /** Checkpoint folder (config.json + model.safetensors + tokenizer). */
  model: string;
  /** Data folder and split (read by `instill dio train`; trainDio takes the tasks). */
  data: string;
  split: string;
  maxTrainInstances: number;
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
  /**
   * Embedder variant: the map reads the written instruction's token embeddings or its final encoder states (the
   * model's encoder run on the instruction alone; one more encoder pass per example, see README "DIO").
   */
  instructionEncoding: "embeddings" | "encoder";
  /**
   * Demonstration selection (DIO's instruction extractor): count > 0 gives each training task learnable logits
   * over its first `count` positive examples (cycled when it has fewer); each training step samples one per
   * example (straight-through Gumbel-softmax, temperature tau) and prepends its tokens (at most maxLength) after
   * the soft instruction. Meta and unseen tasks use their first positive example; seen tasks at evaluation the
   * argmax.
   */
  demonstrations: { count: number; tau: number; maxLength: number };
  /** Hypergradient spec from the native registry: unroll:K, neumann:K, cg:K, fd, sama (,key=value); unroll, fd and sama take the inner optimizer's learning rate unless the spec sets lr=. */
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
  /** Checkpoint (weights, instructions, both optimizers, RNG, step, losses) every N steps, on Ctrl-C and at the end. */
  checkpointEvery: number;
  keepCheckpoints: number;
  quiet: boolean;
}

export function defaultDioConfig(): DioConfig {
  return {
    model: "",
    data: "",
    split: "default",
    maxTrainInstances: 100,
    out: "runs/dio",
    seed: 42,
    encoding: { addTaskName: false, addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0, addExplanation: false, maxSourceLength: 512 },
    maxTargetLength: 64,
    variant: "embedder",
    promptLength: 8,
    init: "instruction",
    maxInstructionLength: 48,
    // "encoder" measured on the demo's setting (400 steps, batch 32, 1 thread): 35% more training time (98 -> 133 s)
    // for no clear gain (ROUGE-L 22.1 -> 22.9, exact match 10.7 -> 8.5 on the unseen tasks, one seed), so the
    // cheaper token embeddings stay the default.
    instructionEncoding: "embeddings",
    demonstrations: { count: 0, tau: 1.0, maxLength: 64 },
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
    checkpointEvery: 100,
    keepCheckpoints: 2,
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
  posInt(c.maxTrainInstances, "maxTrainInstances");
  posInt(c.checkpointEvery, "checkpointEvery");
  posInt(c.keepCheckpoints, "keepCheckpoints");
  posInt(c.demonstrations.count, "demonstrations.count", 0);
  posInt(c.demonstrations.maxLength, "demonstrations.maxLength");
  if (!(c.demonstrations.tau > 0) || !Number.isFinite(c.demonstrations.tau)) throw new RangeError(`demonstrations.tau: expected a number > 0, got ${c.demonstrations.tau}`);
  if (c.instructionEncoding !== "embeddings" && c.instructionEncoding !== "encoder")
    throw new TypeError(`instructionEncoding: expected embeddings or encoder, got '${c.instructionEncoding}'`);
  for (const k of ["inner", "outer"] as const) {
    if (!(c[k].lr >= 0)) throw new RangeError(`${k}.lr: expected a number >= 0, got ${c[k].lr}`);
    if (c[k].schedule !== "linear" && c[k].schedule !== "constant") throw new TypeError(`${k}.schedule: expected linear or constant, got '${c[k].schedule}'`);
    posInt(c[k].warmupSteps, `${k}.warmupSteps`, 0);
  }
  if (!(c.metaFraction > 0 && c.metaFraction < 1)) throw new RangeError(`metaFraction: expected a number in (0, 1), got ${c.metaFraction}`);
  return c;
}

/** defaults < config file < flags (resolveWith). */
export function resolveDioConfig(file: string | undefined, overrides: unknown): DioConfig {
  return resolveWith(defaultDioConfig(), validateDioConfig, file, overrides);
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

/** A demonstration as text: the SNI positive-example wording (input and output), without the example number. */
export function demonstrationText(ex: { input: string; output: string }): string {
  const end = (x: string) => (/[.!?]$/.test(x) ? x : x + ".");
  return `Positive Example -\n${end(`Input: ${ex.input.trim()}`)}\n ${end(`Output: ${ex.output.trim()}`)}`;
}

/** The `count` candidate demonstrations of a task as token ids (its positive examples in order, cycled; truncated). */
export function demonstrationIds(task: SniTask, tok: TokenizerLike, count: number, maxLen: number): number[][] {
  if (task.positiveExamples.length === 0) throw new Error(`DIO --demonstrations: task '${task.name}' has no positive examples`);
  const rows = task.positiveExamples.map((ex) => tok.encode(demonstrationText(ex), { addEos: false }).slice(0, maxLen));
  return Array.from({ length: count }, (_, j) => rows[j % rows.length]);
}

function int32(data: number[], shape: number[]): HostTensor<"int32"> {
  return { data: Int32Array.from(data), shape, dtype: "int32" };
}

/** A DIO batch: the collated examples plus task ids (prompt variant) or written-instruction ids (embedder). */
export function dioBatch(
  exs: TokenizedExample[],
  padId: number,
  withLabels: boolean,
  select: {
    taskIndex?: Map<string, number>;
    instr?: Map<string, number[]>;
    /** Candidate demonstrations per task (all tasks the same count) and the logits row of a task (absent: -1). */
    demos?: Map<string, number[][]>;
    demoIndex?: Map<string, number>;
  },
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
    const { ids, mask } = padRows(rows, padId);
    b.instrIds = ids;
    b.instrMask = mask;
  }
  if (select.demos) {
    const cands = exs.map((e) => {
      const r = select.demos!.get(e.task);
      if (!r) throw new Error(`DIO: task '${e.task}' has no candidate demonstrations`);
      return r;
    });
    const m = cands[0].length;
    const Ld = Math.max(1, ...cands.flatMap((c) => c.map((r) => r.length)));
    const ids = new Array<number>(exs.length * m * Ld).fill(padId);
    const mask = new Array<number>(exs.length * m * Ld).fill(0);
    cands.forEach((c, i) => {
      if (c.length !== m) throw new Error(`DIO: task '${exs[i].task}' has ${c.length} candidate demonstrations, expected ${m}`);
      c.forEach((r, j) => r.forEach((v, k) => ((ids[(i * m + j) * Ld + k] = v), (mask[(i * m + j) * Ld + k] = 1))));
    });
    b.demoIds = int32(ids, [exs.length, m, Ld]);
    b.demoMask = int32(mask, [exs.length, m, Ld]);
    b.demoTaskIds = int32(exs.map((e) => select.demoIndex?.get(e.task) ?? -1), [exs.length]);
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
  /** Stopped by Ctrl-C or a hook before `steps` (the last checkpoint holds the state; --resume continues). */
  interrupted: boolean;
  /** With DioTrainOptions.evaluate: the trained model's evaluation (as evaluateDio of modelDir gives it). */
  eval?: DioEvalResult;
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
  /** Absent in folders written before these options existed: "embeddings" and no demonstrations. */
  instructionEncoding?: "embeddings" | "encoder";
  demonstrations?: { count: number; tau: number; maxLength: number };
}

/** The DIO method's front: owns one native DioNative (a T5 model, its learnable instructions, both optimizers). */
export class Dio {
  private constructor(private readonly native: NativeDio) {}

  /** A trainer over the checkpoint folder `modelDir`; initIds: the prompt variant's per-task initial ids. */
  static async init(modelDir: string, options: DioNativeOptions, initIds?: number[][]): Promise<Dio> {
    const native = new (loadAddon().DioNative)();
    await native.init(modelDir, options, initIds).catch((e: unknown) => {
      native.dispose();
      throw e;
    });
    return new Dio(native);
  }

  /** Bilevel steps, one per item (an outer update where the item has a meta batch). */
  trainSteps(items: { train: DioBatchHost; meta?: DioBatchHost }[]): Promise<DioStepsResult> {
    return this.native.trainSteps(items);
  }

  /** Stops trainSteps at its next step. */
  cancel(): void {
    this.native.cancel();
  }

  generate(batch: DioBatchHost, options: { maxNewTokens: number; numBeams?: number }): Promise<number[][]> {
    return this.native.generate(batch, options);
  }

  scoreOptions(batch: DioBatchHost, options: number[][][]): Promise<number[][]> {
    return this.native.scoreOptions(batch, options);
  }

  /** The model (config.json + model.safetensors) and <dir>/dio_instructions.safetensors. */
  save(dir: string): Promise<void> {
    return this.native.save(dir);
  }

  /** The instructions a save() wrote (dio_instructions.safetensors). */
  loadPhi(path: string): Promise<void> {
    return this.native.loadPhi(path);
  }

  saveTrainingState(path: string): Promise<void> {
    return this.native.saveTrainingState(path);
  }

  loadTrainingState(path: string): Promise<void> {
    return this.native.loadTrainingState(path);
  }

  dispose(): void {
    this.native.dispose();
  }
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
    instructionEncoding: c.instructionEncoding,
    numDemonstrations: c.demonstrations.count,
    gumbelTau: c.demonstrations.tau,
    inner: { name: "adamw", lr: c.inner.lr, totalSteps: total, schedule: c.inner.schedule, warmupSteps: c.inner.warmupSteps, clipNorm: c.inner.clipNorm },
    outer: { name: "adamw", lr: c.outer.lr, totalSteps: Math.max(1, c.metaEvery > 0 ? Math.floor(total / c.metaEvery) : 1), schedule: c.outer.schedule, warmupSteps: c.outer.warmupSteps, clipNorm: c.outer.clipNorm },
  };
}

export interface DioTrainOptions {
  label?: string;
  /** Continue from the last checkpoint in c.out (an error when there is none). */
  resume?: boolean;
  hooks?: TrainHooks;
  /** Data parallelism (instill launch): each rank takes its shard of every batch; rank 0 alone writes files. */
  processGroup?: ProcessGroup;
  /** Evaluate the trained model on these tasks before it is freed (evaluateDio without loading modelDir again). */
  evaluate?: { tasks: SniTask[]; options: DioEvalOptions };
}

/** What a DIO checkpoint's trainer_state.json holds besides the step. */
interface DioCheckpointState {
  step: number;
  trainLosses: number[];
  metaLosses: number[];
  hypergradSeconds: number;
  hvpCount: number;
  config: DioConfig;
}

/** Options that may differ between a run and its resumption (they do not change the computation). */
const RESUME_FREE = new Set(["out", "quiet", "stepsPerCall", "checkpointEvery", "keepCheckpoints", "model", "data"]);

function checkResumable(saved: DioConfig, now: DioConfig, where: string): void {
  const diff = (a: unknown, b: unknown, path: string): string | undefined => {
    if (a !== null && b !== null && typeof a === "object" && typeof b === "object") {
      for (const k of new Set([...Object.keys(a as object), ...Object.keys(b as object)])) {
        if (path === "" && RESUME_FREE.has(k)) continue;
        const d = diff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
        if (d) return d;
      }
      return undefined;
    }
    return JSON.stringify(a) === JSON.stringify(b) ? undefined : `${path}: ${JSON.stringify(a)} in the checkpoint, ${JSON.stringify(b)} now`;
  };
  const d = diff(saved, now, "");
  if (d) throw new Error(`--resume: ${where} was written with another config (${d})`);
}

/**
 * Bilevel training on `tasks` (a meta split of them is held out for the outer loss). Checkpoints (atomic, the last
 * keepCheckpoints kept) every checkpointEvery steps, on Ctrl-C / a hook stop and at the end: <out>/checkpoints/
 * step-N/{model/ (weights + dio_instructions.safetensors), dio_state.safetensors (both optimizers, RNG states, step
 * counter), trainer_state.json (step, losses, config)}. Batches are a function of the step number, so the data
 * position is the step; a resumed run continues bit for bit.
 */
export async function trainDio(c: DioConfig, tasks: SniTask[], tok: TokenizerLike, opts: DioTrainOptions = {}): Promise<DioTrainResult> {
  validateDioConfig(c);
  const t0 = Date.now();
  const pg = opts.processGroup;
  const world = pg?.worldSize ?? 1;
  const writer = isWriter(pg);
  const metaBatch = c.metaBatchSize > 0 ? c.metaBatchSize : c.batchSize;
  if (c.batchSize % world !== 0) throw new RangeError(`batchSize ${c.batchSize} must be a multiple of the world size ${world}`);
  if (c.metaEvery > 0 && metaBatch % world !== 0) throw new RangeError(`metaBatchSize ${metaBatch} must be a multiple of the world size ${world}`);
  mkdirSync(c.out, { recursive: true });
  if (writer) writeFileAtomic(join(c.out, "config.json"), JSON.stringify(c, null, 2) + "\n");
  const { inner, meta } = metaSplit(tasks, c.metaFraction, c.seed);
  const encode = (ts: SniTask[], seed: number) =>
    tokenizeExamples(buildExamples(ts, c.encoding, (t) => tok.countTokens(t), { seed, training: true }), tok, c.encoding.maxSourceLength, c.maxTargetLength);
  const innerEx = encode(inner, c.seed);
  const metaEx = encode(meta, c.seed + 1);
  const trainSched = new BatchSchedule(innerEx, c.batchSize, c.seed);
  const metaSched = new BatchSchedule(metaEx, metaBatch, c.seed + 1);
  const instr = new Map(tasks.map((t) => [t.name, instructionIds(t, tok, c.maxInstructionLength, c.encoding.definitionIndex ?? 0)]));
  const taskIndex = new Map(inner.map((t, i) => [t.name, i]));
  const demos = c.demonstrations.count > 0 ? new Map(tasks.map((t) => [t.name, demonstrationIds(t, tok, c.demonstrations.count, c.demonstrations.maxLength)])) : undefined;
  const demoSelect = demos ? { demos, demoIndex: taskIndex } : {};
  const trainSelect = { ...(c.variant === "prompt" ? { taskIndex } : { instr }), ...demoSelect };
  // Prompt variant: meta tasks have no prompt, the meta loss reads the written instruction only. Meta tasks have
  // no demonstration logits either: they read their first positive example, as unseen tasks do at evaluation.
  const metaSelect = { ...(c.variant === "prompt" ? {} : { instr }), ...(demos ? { demos } : {}) };
  const initIds = c.variant === "prompt" ? inner.map((t) => (c.init === "instruction" ? instr.get(t.name)! : [])) : undefined;
  const numTasks = inner.length;  // rows of the per-task prompts and of the demonstration logits

  const ckpt = new CheckpointManager(c.out, c.keepCheckpoints);
  const resumed = ckpt.resumePoint<DioCheckpointState>(opts.resume);
  const latest = resumed?.latest;
  const saved = resumed?.state;
  if (latest && saved) checkResumable(saved.config, c, latest.dir);

  const dio = await Dio.init(latest ? join(latest.dir, "model") : c.model, { ...nativeOptions(c, numTasks, c.steps), ...(pg ? { processGroup: pg } : {}) }, initIds);
  const trainLosses: number[] = saved?.trainLosses ?? [];
  const metaLosses: number[] = saved?.metaLosses ?? [];
  let hypergradSeconds = saved?.hypergradSeconds ?? 0;
  let hvpCount = saved?.hvpCount ?? 0;
  const logger = writer ? new JsonlLogger(join(c.out, "metrics.jsonl")) : undefined;
  const progress = new Progress({ total: c.steps, label: opts.label ?? "dio", quiet: c.quiet || !writer });
  try {
    if (latest) {
      await dio.loadPhi(join(latest.dir, "model", "dio_instructions.safetensors"));
      await dio.loadTrainingState(join(latest.dir, "dio_state.safetensors"));
      logger?.truncateAfter(saved!.step);
      logger?.log({ event: "resumed", step: saved!.step, checkpoint: latest.dir });
    }
    progress.update(saved?.step ?? 0);
    // A rank's shard of each global batch, its mean token loss scaled by its share of the label tokens (exact also
    // when the shards hold different numbers of label tokens).
    const shard = (exs: TokenizedExample[], select: Parameters<typeof dioBatch>[3]): DioBatchHost =>
      shardBatch(exs, pg, (xs) => dioBatch(xs, tok.padId, true, select), tokenShare);
    let hypergradNorm: number[] = [];
    const run = await drive(
      {
        cancel: () => dio.cancel(),
        run: async (from, n) => {
          const items = [];
          for (let s = from; s < from + n; s++) {
            const item: { train: DioBatchHost; meta?: DioBatchHost } = { train: shard(trainSched.examples(s), trainSelect) };
            if (c.metaEvery > 0 && (s + 1) % c.metaEvery === 0) item.meta = shard(metaSched.examples(Math.floor(s / c.metaEvery)), metaSelect);
            items.push(item);
          }
          const r = await dio.trainSteps(items);
          hypergradNorm = r.hypergradNorm;
          hypergradSeconds += r.hypergradSeconds.reduce((a, b) => a + b, 0);
          hvpCount += r.hvpCount;
          // metaLoss is NaN where no outer update ran: absent (null) for the driver's mean over ranks.
          return { steps: r.trainLoss.length, series: { loss: r.trainLoss, meta: r.metaLoss.map((x) => (Number.isNaN(x) ? null : x)) } };
        },
        record: (r, before) => {
          const loss = r.series.loss as number[];
          for (let i = 0; i < r.steps; i++) {
            const meta = r.series.meta[i];
            const hn = hypergradNorm[i];
            trainLosses.push(loss[i]);
            if (meta !== null && Number.isFinite(meta)) metaLosses.push(meta);
            logger?.log({ step: before + i + 1, loss: loss[i], meta_loss: meta !== null && Number.isFinite(meta) ? meta : null, hypergrad_norm: Number.isFinite(hn) ? hn : null, ...(world > 1 ? { world_size: world } : {}) });
          }
          progress.update(before + r.steps, { loss: loss[r.steps - 1] });
        },
      },
      {
        start: saved?.step ?? 0,
        total: c.steps,
        stepsPerCall: c.stepsPerCall,
        processGroup: pg,
        hooks: opts.hooks,
        checkpoint: {
          every: c.checkpointEvery,
          save: async (step) => {
            if (!writer) return;
            const state: Omit<DioCheckpointState, "step"> = { trainLosses, metaLosses, hypergradSeconds, hvpCount, config: c };
            await ckpt.save(step, state as unknown as Record<string, unknown>, async (dir) => {
              await dio.save(join(dir, "model"));
              await dio.saveTrainingState(join(dir, "dio_state.safetensors"));
            });
          },
        },
      },
    );
    const step = run.steps;
    const interrupted = run.stopped;
    const modelDir = join(c.out, "model");
    const manifest: DioManifest = {
      format: "instill-dio",
      variant: c.variant,
      promptLength: c.promptLength,
      numTasks,
      tasks: inner.map((t) => t.name),
      maxInstructionLength: c.maxInstructionLength,
      encoding: c.encoding,
      maxTargetLength: c.maxTargetLength,
      hypergrad: c.hypergrad,
      metaEvery: c.metaEvery,
      instructionEncoding: c.instructionEncoding,
      demonstrations: c.demonstrations,
    };
    if (writer) {
      await dio.save(modelDir);
      installTokenizer(c.model, modelDir);
      writeFileAtomic(join(modelDir, "dio.json"), JSON.stringify(manifest, null, 2) + "\n");
    }
    await pg?.barrier();
    const seconds = (Date.now() - t0) / 1000;
    logger?.log({ event: interrupted ? "interrupted" : "done", steps: step, seconds });
    const ev = opts.evaluate && (await evaluateTrained(dio, manifest, opts.evaluate.tasks, tok, opts.evaluate.options));
    return { out: c.out, modelDir, steps: step, trainLosses, metaLosses, innerTasks: inner.map((t) => t.name), metaTasks: meta.map((t) => t.name), seconds, hypergradSeconds, hvpCount, interrupted, ...(ev ? { eval: ev } : {}) };
  } finally {
    progress.stop();
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
 * is scored through the DIO model with the same soft tokens (and demonstrations) as generation. With demonstration selection, seen training tasks read the
 * argmax of their learnt distribution over candidates and unseen tasks their first positive example.
 */
export async function evaluateDio(dir: string, tasks: SniTask[], tok: TokenizerLike, o: DioEvalOptions): Promise<DioEvalResult> {
  const m = readDioManifest(dir);
  const demoCfg = demonstrationsOf(m);
  const dio = await Dio.init(dir, {
    variant: m.variant,
    promptLength: m.promptLength,
    numTasks: Math.max(1, m.numTasks),
    metaEvery: 0,
    seed: o.seed,
    instructionEncoding: m.instructionEncoding ?? "embeddings",
    numDemonstrations: demoCfg.count,
    gumbelTau: demoCfg.tau,
    inner: { lr: 0 },
    outer: { lr: 0 },
  });
  try {
    await dio.loadPhi(join(dir, "dio_instructions.safetensors"));
    return await evaluateTrained(dio, m, tasks, tok, o);
  } finally {
    dio.dispose();
  }
}

export type DioEvalResult = EvalResult & { variant: DioVariant; softTokens: boolean };

/** Folders written before demonstration selection existed have none. */
const demonstrationsOf = (m: DioManifest) => m.demonstrations ?? { count: 0, tau: 1, maxLength: 64 };

/** evaluateDio's evaluation with a DIO model already in memory (`m`: its manifest). */
async function evaluateTrained(dio: Dio, m: DioManifest, tasks: SniTask[], tok: TokenizerLike, o: DioEvalOptions): Promise<DioEvalResult> {
  const demoCfg = demonstrationsOf(m);
  const instr = new Map(tasks.map((t) => [t.name, instructionIds(t, tok, m.maxInstructionLength, m.encoding.definitionIndex ?? 0)]));
  const taskIndex = new Map(m.tasks.map((t, i) => [t, i]));
  const soft = m.variant === "embedder" || (o.useTaskPrompts === true && tasks.every((t) => taskIndex.has(t.name)));
  // Demonstrations: a seen training task reads the argmax of its learnt distribution, any other task its first
  // positive example (it has no logits).
  const demoSelect =
    demoCfg.count > 0
      ? { demos: new Map(tasks.map((t) => [t.name, demonstrationIds(t, tok, demoCfg.count, demoCfg.maxLength)])), demoIndex: taskIndex }
      : {};
  const select = { ...(m.variant === "embedder" ? { instr } : soft ? { taskIndex } : {}), ...demoSelect };
  // Generation and rank classification both run through the DIO model with the soft tokens.
  const predictor: Predictor = {
    generate: (_b, g, exs) => dio.generate(dioBatch(exs, tok.padId, false, select), g),
    scoreOptions: (_b, options, exs) => dio.scoreOptions(dioBatch(exs, tok.padId, false, select), options),
  };
  const ev = await evaluateTasks(predictor, tok, tasks, {
    encoding: m.encoding,
    maxTargetLength: m.maxTargetLength,
    batchSize: o.batchSize,
    maxNewTokens: o.maxNewTokens,
    numBeams: o.numBeams,
    seed: o.seed,
    quiet: o.quiet,
  });
  return { ...ev, variant: m.variant, softTokens: soft };
}
