// TAGI (task adapters generated from instructions): data preparation, the two training stages and evaluation.
// The math (instruction encoding, hypernetwork, per-example LoRA, CE/KL/MSE losses) is native
// (native/core/hypernet); the loop is the training driver's (src/train/driver.ts); this file owns examples,
// batches and order.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { encodeTkInstruct } from "../data/index.js";
import { labelTokens, reseedRankDropout, shardShare, type ProcessGroup } from "../dist/index.js";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { evaluateTasks, type EvalResult, type Predictor } from "../eval/evaluate.js";
import { loadAddon } from "../native/binding.js";
import type { NativeTagi, TagiBatchHost, TagiInfo, TagiLoadOptions, TagiStepsResult, HostTensor } from "../native/types.js";
import { padRows, type TokenizerLike } from "../train/batches.js";
import type { CheckpointInfo, CheckpointManager } from "../train/checkpoint.js";
import { drive, shardBatch } from "../train/driver.js";
import { Rng } from "../util/rng.js";

export interface TagiExample {
  task: string;
  teacher: number; // index into the teacher list, -1 = none
  src: number[]; // the instance without the instruction
  instr: number[]; // the instruction
  teacherSrc?: number[]; // what the teacher saw (definition + instance)
  tgt: number[];
}

export interface TagiDataOptions {
  maxSourceLength: number;
  maxTargetLength: number;
  maxInstructionLength: number;
}

const NO_INSTRUCTION: Omit<EncodingOptions, "maxSourceLength"> = {
  addTaskName: false,
  addDefinition: false,
  numPositiveExamples: 0,
  numNegativeExamples: 0,
  addExplanation: false,
};

function clip(ids: number[], n: number, eos: number): number[] {
  return ids.length > n ? [...ids.slice(0, n - 1), eos] : ids;
}

/** The instruction the hypernetwork reads: the task definition (Tk-Instruct "Definition: ..." part). */
export function taskInstruction(task: SniTask): string {
  const d = (task.definition[0] ?? "").trim();
  return `Definition: ${d}`;
}

/** Meta-training examples: student input without the definition; teacher input with it. */
export function tagiExamples(
  tasks: SniTask[],
  tok: TokenizerLike,
  o: TagiDataOptions,
  opts: { teacherIndex?: (task: string) => number; seed: number; training: boolean },
): TagiExample[] {
  const rng = new Rng(opts.seed);
  const out: TagiExample[] = [];
  const count = (t: string) => tok.countTokens(t);
  for (const task of tasks) {
    const instr = clip(tok.encode(taskInstruction(task), { addEos: true }), o.maxInstructionLength, tok.eosId);
    const teacher = opts.teacherIndex ? opts.teacherIndex(task.name) : -1;
    for (const inst of task.instances) {
      const srcText = encodeTkInstruct(task, inst, { ...NO_INSTRUCTION, maxSourceLength: o.maxSourceLength }, count);
      const target = opts.training ? inst.output[rng.int(inst.output.length)] : inst.output[0];
      const ex: TagiExample = {
        task: task.name,
        teacher,
        src: clip(tok.encode(srcText, { addEos: true }), o.maxSourceLength, tok.eosId),
        instr,
        tgt: clip(tok.encode(target, { addEos: true }), o.maxTargetLength, tok.eosId),
      };
      if (teacher >= 0) {
        const tText = encodeTkInstruct(task, inst, { ...NO_INSTRUCTION, addDefinition: true, maxSourceLength: o.maxSourceLength }, count);
        ex.teacherSrc = clip(tok.encode(tText, { addEos: true }), o.maxSourceLength, tok.eosId);
      }
      out.push(ex);
    }
  }
  return out;
}

/**
 * Hypernetwork pretraining examples (the paper's C4 stage, on the tasks' own text): the text of an instance
 * (input then output) is cut at a seeded point in its first half..three quarters; the first part is the
 * "instruction", the student input is empty (EOS only), and the model must produce the continuation.
 */
export function pretrainExamples(tasks: SniTask[], tok: TokenizerLike, o: TagiDataOptions, seed: number): TagiExample[] {
  const rng = new Rng(seed);
  const out: TagiExample[] = [];
  for (const task of tasks)
    for (const inst of task.instances) {
      const ids = tok.encode(`${inst.input} ${inst.output[0] ?? ""}`, { addEos: false });
      if (ids.length < 4) continue;
      const cut = Math.max(1, Math.floor(ids.length * (0.5 + 0.25 * rng.next())));
      out.push({
        task: task.name,
        teacher: -1,
        src: [tok.eosId],
        instr: clip([...ids.slice(0, cut), tok.eosId], o.maxInstructionLength, tok.eosId),
        tgt: clip([...ids.slice(cut), tok.eosId], o.maxTargetLength, tok.eosId),
      });
    }
  return out;
}

/**
 * One rank's share of each loss term for its shard of a global batch (see TagiBatchHost.lossScale): CE and KL are
 * token means (KL over rows with a teacher), MSE a mean over rows with a teacher, so a shard with more of the unit
 * weighs more. A term the global batch lacks gets 0.
 */
export function shardLossScale(shard: TagiExample[], global: TagiExample[], world: number): { ce: number; kl: number; mse: number } {
  const taught = (xs: TagiExample[]) => xs.filter((e) => e.teacher >= 0);
  const share = (local: number, all: number) => shardShare(local, all, world, 0);
  return {
    ce: share(labelTokens(shard), labelTokens(global)),
    kl: share(labelTokens(taught(shard)), labelTokens(taught(global))),
    mse: share(taught(shard).length, taught(global).length),
  };
}

/** Right-padded TAGI batch (labels -100 after each target). */
export function collateTagi(exs: TagiExample[], padId: number, withLabels = true): TagiBatchHost {
  const s = padRows(exs.map((e) => e.src), padId, 1);
  const ins = padRows(exs.map((e) => e.instr), padId, 1);
  const b: TagiBatchHost = { inputIds: s.ids, attentionMask: s.mask, instrIds: ins.ids, instrMask: ins.mask };
  if (withLabels) {
    const T = Math.max(...exs.map((e) => e.tgt.length));
    const labels = new Int32Array(exs.length * T).fill(-100);
    exs.forEach((e, i) => labels.set(e.tgt, i * T));
    b.labels = { data: labels, shape: [exs.length, T], dtype: "int32" };
  }
  if (exs.some((e) => e.teacher >= 0)) {
    const t = padRows(exs.map((e) => e.teacherSrc ?? e.src), padId, 1);
    b.teacherInputIds = t.ids;
    b.teacherAttentionMask = t.mask;
    b.teacherIndex = { data: Int32Array.from(exs.map((e) => e.teacher)), shape: [exs.length], dtype: "int32" };
  }
  return b;
}

export interface TagiLossWeights {
  ce: number;
  kl: number;
  temperature: number;
  mse: number;
}

/** The paper's code: CE/KL mix alpha = 0.4, temperature 3, parameter MSE weight 1000. */
export const DEFAULT_LOSS: TagiLossWeights = { ce: 0.6, kl: 0.4, temperature: 3, mse: 1000 };

export interface StageOptions {
  steps: number;
  batchSize: number;
  lr: number;
  optimizer?: "adamw" | "adafactor";
  warmupSteps?: number;
  seed: number;
  stepsPerCall?: number;
  loss?: TagiLossWeights;
  onProgress?: (step: number, total: number, loss: number) => void;
  /**
   * Data parallelism (instill launch): every rank draws the same global batches (same seed) and trains on its
   * shard; gradients are averaged natively, so the updates, and the returned (rank-averaged) losses, are those of
   * one process on the global batch.
   */
  processGroup?: ProcessGroup;
  /**
   * Checkpoints (optional; instill tagi pretrain|train): `save` is called on every rank after each multiple of
   * `every` steps, at the end and after Ctrl-C (SIGINT then stops the stage at the next call boundary); it writes
   * (on rank 0) and the ranks then meet at a barrier. Use `saveCheckpoint` inside it for the weights and the
   * optimizer/scheduler/RNG state.
   */
  checkpoint?: { every: number; save: (res: StageResult) => Promise<void> };
  /** Continue a checkpointed stage: what tagiResumePoint found. */
  resume?: TagiResumePoint;
  /** After each call: the result so far and the number of steps it had before the call. */
  onSteps?: (res: StageResult, before: number) => void;
}

export interface StageResult {
  steps: number;
  losses: number[];
  ce: (number | null)[];
  kl: (number | null)[];
  mse: (number | null)[];
  /**
   * Per native call: the norms of the gradients the weighted CE, KL and MSE terms send to the hypernetwork, on the
   * call's first batch before its first step (`step`: the steps done before it). A hypernetwork stuck at a saddle
   * shows CE/KL norms near 0.
   */
  termGradNorms: { step: number; ce: number | null; kl: number | null; mse: number | null }[];
  seconds: number;
  /** Stopped by Ctrl-C before o.steps (a checkpoint was written when checkpoints are on). */
  interrupted?: boolean;
}

/**
 * The stage's batch order as a pure function of (seed, step): the examples are shuffled once per epoch by one Rng
 * seeded with `seed` (epoch e's order is the e-th shuffle of 0..n-1, so it is the order the lazy draw always gave),
 * and global batch `step` takes positions [step * b, (step + 1) * b) of the concatenated epochs (b = min(batchSize,
 * n)), so a resumed run draws the batches the uninterrupted one would have.
 */
export class StageOrder {
  private readonly rng: Rng;
  private readonly epochs: number[][] = [];
  readonly perBatch: number;

  constructor(readonly n: number, batchSize: number, seed: number) {
    this.rng = new Rng(seed);
    this.perBatch = Math.min(batchSize, n);
  }

  private epoch(e: number): number[] {
    while (this.epochs.length <= e) this.epochs.push(this.rng.shuffle(Array.from({ length: this.n }, (_, i) => i)));
    return this.epochs[e];
  }

  /** Example indices of global batch `step` (0-based). */
  batch(step: number): number[] {
    const out: number[] = [];
    for (let p = step * this.perBatch; p < (step + 1) * this.perBatch; p++) out.push(this.epoch(Math.floor(p / this.n))[p % this.n]);
    return out;
  }
}

/** trainer_state.json of a TAGI checkpoint (besides hypernet.safetensors, model/ with trainBase, TAGI_STATE). */
export interface TagiCheckpointState {
  step: number;
  stage: "pretrain" | "train";
  losses: number[];
  ce: (number | null)[];
  kl: (number | null)[];
  mse: (number | null)[];
  /** Examples drawn so far (step * batch size): the order is a function of (seed, step), see StageOrder. */
  dataPosition: number;
  total: number;
  batchSize: number;
  seed: number;
  worldSize: number;
}

/** A checkpoint's optimizer, scheduler and RNG state file (saveCheckpoint writes it). */
const TAGI_STATE = "tagi_state.safetensors";

export interface TagiResumePoint {
  latest: CheckpointInfo;
  state: TagiCheckpointState;
}

/**
 * The checkpoint a resumed stage continues from (undefined without `resume`; an error when there is none), refused
 * when it comes from another stage, batch size or seed, or from a run with another trainBase: the stage would not
 * continue the computation it stopped.
 */
export function tagiResumePoint(
  ckpt: CheckpointManager,
  resume: boolean | undefined,
  run: { stage: "pretrain" | "train"; batchSize: number; seed: number; trainBase: boolean },
): TagiResumePoint | undefined {
  const r = ckpt.resumePoint<TagiCheckpointState>(resume);
  if (!r) return undefined;
  const differs = (what: string, was: unknown, now: unknown) => {
    if (was !== now) throw new Error(`--resume: ${r.latest.dir} is from a run with ${what} ${String(was)}, not ${String(now)}`);
  };
  differs("stage", r.state.stage, run.stage);
  differs("--batch-size", r.state.batchSize, run.batchSize);
  differs("--seed", r.state.seed, run.seed);
  if (run.trainBase !== existsSync(join(r.latest.dir, "model", "config.json")))
    throw new Error(`--resume: ${r.latest.dir} was written ${run.trainBase ? "without" : "with"} --train-base`);
  return r;
}

/** The TAGI method's front: owns one native TagiNative (base model, hypernetwork, teachers, optimizer). */
export class Tagi {
  private constructor(private readonly native: NativeTagi) {}

  static async load(modelDir: string, opts: TagiLoadOptions = {}): Promise<Tagi> {
    if (!existsSync(join(modelDir, "config.json"))) throw new Error(`${modelDir}: not a model folder (config.json missing)`);
    const n = new (loadAddon().TagiNative)();
    await n.load(modelDir, opts);
    return new Tagi(n);
  }

  /** Runs `o.steps` optimizer steps over `examples` (shuffled per epoch, batches mix tasks). */
  async trainStage(examples: TagiExample[], tok: TokenizerLike, o: StageOptions): Promise<StageResult> {
    if (examples.length === 0) throw new RangeError("TAGI: no training examples");
    const pg = o.processGroup;
    const world = pg?.worldSize ?? 1;
    if (o.batchSize % world !== 0) throw new RangeError(`batchSize ${o.batchSize} must be a multiple of the world size ${world}`);
    const loss = o.loss ?? DEFAULT_LOSS;
    this.native.setLoss(loss);
    this.native.setOptimizer({
      name: o.optimizer ?? "adamw",
      lr: o.lr,
      totalSteps: o.steps,
      warmupSteps: o.warmupSteps ?? Math.floor(o.steps * 0.02),
      schedule: "linear",
      clipNorm: 1.0,
    });
    const order = new StageOrder(examples.length, o.batchSize, o.seed);
    const res: StageResult = { steps: 0, losses: [], ce: [], kl: [], mse: [], termGradNorms: [], seconds: 0 };
    if (o.resume) {
      await this.native.loadTrainingState(join(o.resume.latest.dir, TAGI_STATE));
      const r = o.resume.state;
      Object.assign(res, { steps: r.step, losses: [...r.losses], ce: [...r.ce], kl: [...r.kl], mse: [...r.mse] });
    }
    reseedRankDropout(pg, o.seed, res.steps);
    const t0 = Date.now();
    await drive(
      {
        cancel: () => this.native.cancel(),
        run: async (from, n) => {
          const batches = Array.from({ length: n }, (_, i) =>
            shardBatch(order.batch(from + i).map((k) => examples[k]), pg, (xs) => collateTagi(xs, tok.padId), shardLossScale),
          );
          const r = await this.native.trainSteps(batches, { termGradNorms: true, ...(pg ? { processGroup: pg } : {}) });
          if (r.termGradNorms) res.termGradNorms.push({ step: from, ...r.termGradNorms });
          return { steps: r.losses.length, cancelled: r.cancelled, series: { loss: r.losses, ce: r.ce, kl: r.kl, mse: r.mse } };
        },
        record: (r, before) => {
          res.losses.push(...(r.series.loss as number[]));
          res.ce.push(...r.series.ce);
          res.kl.push(...r.series.kl);
          res.mse.push(...r.series.mse);
          res.steps = before + r.steps;
          o.onSteps?.(res, before);
          if (r.steps > 0) o.onProgress?.(res.steps, o.steps, res.losses[res.losses.length - 1]);
        },
      },
      {
        start: res.steps,
        total: o.steps,
        stepsPerCall: o.stepsPerCall ?? 20,
        processGroup: pg,
        checkpoint: o.checkpoint && {
          every: Math.max(1, o.checkpoint.every),
          save: async () => {
            res.seconds = (Date.now() - t0) / 1000;
            await o.checkpoint!.save(res);
          },
        },
      },
    );
    res.interrupted = res.steps < o.steps;
    res.seconds = (Date.now() - t0) / 1000;
    return res;
  }

  /**
   * Evaluates on `tasks` (ROUGE-L, exact match; rank accuracy where tasks have answer options): each example's
   * adapter comes from its task's instruction, for generation and for option scoring alike.
   */
  async evaluate(
    tasks: SniTask[],
    tok: TokenizerLike,
    o: TagiDataOptions & { batchSize: number; maxNewTokens: number; seed: number; quiet?: boolean },
  ): Promise<EvalResult> {
    const byTask = new Map(tasks.map((t) => [t.name, clip(tok.encode(taskInstruction(t), { addEos: true }), o.maxInstructionLength, tok.eosId)]));
    const enc: EncodingOptions = { ...NO_INSTRUCTION, maxSourceLength: o.maxSourceLength };
    const withInstructions = (batch: { inputIds: HostTensor; attentionMask: HostTensor }, exs: { task: string }[]): TagiBatchHost => {
      const ins = padRows(exs.map((e) => byTask.get(e.task)!), tok.padId, 1);
      return { inputIds: batch.inputIds, attentionMask: batch.attentionMask, instrIds: ins.ids, instrMask: ins.mask };
    };
    const predictor: Predictor = {
      generate: (batch, g, exs) => this.native.generate(withInstructions(batch, exs), g),
      scoreOptions: (batch, options, exs) => this.native.scoreOptions(withInstructions(batch, exs), options),
    };
    return evaluateTasks(predictor, tok, tasks, {
      encoding: enc,
      maxTargetLength: o.maxTargetLength,
      batchSize: o.batchSize,
      maxNewTokens: o.maxNewTokens,
      numBeams: 1,
      seed: o.seed,
      quiet: o.quiet,
    });
  }

  /** Writes the PEFT adapter generated from `instruction` alone. */
  async writeAdapter(instruction: string, tok: TokenizerLike, dir: string, maxInstructionLength = 512, baseModel = "") {
    const ids = clip(tok.encode(instruction, { addEos: true }), maxInstructionLength, tok.eosId);
    mkdirSync(dir, { recursive: true });
    return this.writeAdapterIds(ids, dir, baseModel);
  }

  /** Writes the PEFT adapter generated from instruction token ids (into an existing folder). */
  writeAdapterIds(ids: number[], dir: string, baseModel = ""): Promise<{ modules: number; seconds: number }> {
    return this.native.writeAdapter({ data: Int32Array.from(ids), shape: [1, ids.length], dtype: "int32" }, dir, { baseModel });
  }

  info(): TagiInfo {
    return this.native.info();
  }

  setOptimizer(options: Parameters<NativeTagi["setOptimizer"]>[0]): void {
    this.native.setOptimizer(options);
  }

  /** One native call over prepared batches (trainStage is the loop; this is for tests and benchmarks). */
  trainSteps(batches: TagiBatchHost[], options?: Parameters<NativeTagi["trainSteps"]>[1]): Promise<TagiStepsResult> {
    return this.native.trainSteps(batches, options);
  }

  generate(batch: TagiBatchHost, options?: Parameters<NativeTagi["generate"]>[1]): Promise<number[][]> {
    return this.native.generate(batch, options);
  }

  /** Summed log-likelihood of each option under the example's generated adapter. */
  scoreOptions(batch: TagiBatchHost, options: number[][][]): Promise<number[][]> {
    return this.native.scoreOptions(batch, options);
  }

  save(dir: string): Promise<void> {
    return this.native.save(dir);
  }

  /** Optimizer state + scheduler step + RNG states (after trainStage or setOptimizer has set the optimizer). */
  saveTrainingState(path: string): Promise<void> {
    return this.native.saveTrainingState(path);
  }

  /** Restores what saveTrainingState wrote; setOptimizer first (same optimizer, same trainable parameters). */
  loadTrainingState(path: string): Promise<void> {
    return this.native.loadTrainingState(path);
  }

  /** A checkpoint's TAGI files in `dir`: the weights (save) and the training state. */
  async saveCheckpoint(dir: string): Promise<void> {
    await this.save(dir);
    await this.saveTrainingState(join(dir, TAGI_STATE));
  }

  dispose(): void {
    this.native.dispose();
  }
}
