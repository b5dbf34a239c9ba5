// T5Model: the typed front of the native T5 handle (native/napi/t5_wrap.cc). It implements NativeModelHandle,
// the contract the training, evaluation and selection pipelines are written against (src/model/types.ts).
//
// One call at a time per model: a second call while one is in flight throws (await the first). dispose() frees the
// native memory at once and is refused while a call is in flight; `await using m = await T5Model.load(dir)` works
// through Symbol.asyncDispose. Heavy methods run off the event loop and return promises.
import { loadAddon } from "../native/binding.js";
import type { NativeT5, ProgressEvent } from "../native/types.js";
import type {
  Batch,
  GenerateOptions,
  LoraOptions,
  NativeModelHandle,
  OptimizerOptions,
  T5ConfigJson,
  TrainStepsResult,
} from "./types.js";

export type T5Preset = "tiny" | "small" | "base";

export interface LoadOptions {
  /**
   * Parameter dtype: float32 (default; bfloat16/float16 checkpoints convert exactly), float64 for reference checks,
   * bfloat16 / float16, or "stored" to keep the checkpoint's own floating dtype (shared.weight's).
   */
  dtype?: "float32" | "float64" | "bfloat16" | "float16" | "stored";
  /** Seeds LibTorch's default generator (dropout). */
  seed?: number;
}

export interface InitOptions extends Omit<LoadOptions, "dtype"> {
  /** Parameter dtype (default float32; float64 for reference checks). */
  dtype?: "float32" | "float64";
  /** Seeds the HF-style random initialisation (and LibTorch's default generator). Default 0. */
  seed?: number;
  /** Overrides the vocabulary size (presets default to 32128). */
  vocabSize?: number;
}

export class T5Model implements NativeModelHandle {
  readonly config: T5ConfigJson;
  #native: NativeT5;

  private constructor(native: NativeT5) {
    this.#native = native;
    this.config = JSON.parse(native.config()) as T5ConfigJson;
  }

  /**
   * Loads an HF checkpoint folder: config.json + model.safetensors (or a sharded index), or pytorch_model.bin (or its
   * index), read by a restricted unpickler that admits only tensor rebuilding (as torch.load(weights_only=True)).
   * config.json's sizes are checked against the weights before anything is allocated.
   */
  static async load(dir: string, opts: LoadOptions = {}): Promise<T5Model> {
    const native = new (loadAddon().T5Native)();
    await native.load(dir, { dtype: opts.dtype, seed: opts.seed });
    return new T5Model(native);
  }

  /** A randomly initialised T5 (HF _init_weights) from a preset or a config.json object. */
  static async init(config: T5ConfigJson | T5Preset, opts: InitOptions = {}): Promise<T5Model> {
    const native = new (loadAddon().T5Native)();
    const spec = typeof config === "string" ? config : JSON.stringify(config);
    await native.init(spec, { seed: opts.seed ?? 0, vocabSize: opts.vocabSize, dtype: opts.dtype });
    return new T5Model(native);
  }

  /** True while an asynchronous call runs on this model. */
  get busy(): boolean {
    return this.#native.busy;
  }
  get disposed(): boolean {
    return this.#native.disposed;
  }
  /** Native bytes held (weights, buffers, optimizer state), as reported to V8. */
  get bytes(): number {
    return this.#native.bytes;
  }
  /** Optimizer steps taken so far (the scheduler's step). */
  get step(): number {
    return this.#native.step;
  }

  parameterCount(): { total: number; trainable: number } {
    return this.#native.parameterCount();
  }

  /** Creates the optimizer over the trainable parameters (fresh state, step 0). */
  setOptimizer(o: OptimizerOptions): void {
    this.#native.setOptimizer(o);
  }

  /** Adds trainable LoRA adapters (PEFT init) and freezes the base; resets the optimizer if one is set. */
  addLora(o: LoraOptions): void {
    this.#native.addLora(o);
  }

  /** Folds the adapters into the weights (W += alpha/r B A) and unfreezes the base; resets the optimizer. */
  mergeLora(): void {
    this.#native.mergeLora();
  }

  async trainSteps(
    batches: Batch[],
    opts: { onProgress?: (e: ProgressEvent) => void; processGroup?: unknown; precision?: "auto" | "float32" | "bf16" } = {},
  ): Promise<TrainStepsResult> {
    return this.#native.trainSteps(batches, { onProgress: opts.onProgress, processGroup: opts.processGroup, precision: opts.precision });
  }

  cancel(): void {
    this.#native.cancel();
  }

  async evalLoss(batches: Batch[]): Promise<number[]> {
    return this.#native.evalLoss(batches);
  }

  async generate(batch: Batch, o: GenerateOptions): Promise<number[][]> {
    return this.#native.generate(batch, o);
  }

  async scoreOptions(batch: Batch, options: number[][][]): Promise<number[][]> {
    return this.#native.scoreOptions(batch, options);
  }

  async save(dir: string): Promise<void> {
    return this.#native.save(dir);
  }

  async saveAdapter(dir: string): Promise<void> {
    return this.#native.saveAdapter(dir);
  }

  /** Replaces any adapters with the folder's (trainable, base frozen); resets the optimizer if one is set. */
  async loadAdapter(dir: string): Promise<void> {
    return this.#native.loadAdapter(dir);
  }

  async saveTrainingState(path: string): Promise<void> {
    return this.#native.saveTrainingState(path);
  }

  /** Needs setOptimizer() with the same optimizer first; restores its state, the scheduler step and the RNG. */
  async loadTrainingState(path: string): Promise<void> {
    return this.#native.loadTrainingState(path);
  }

  /** Frees the native model now. Throws while a call is in flight; idempotent afterwards. */
  dispose(): void {
    this.#native.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.dispose();
  }
}

/**
 * A right-padded Batch from token-id lists: inputIds/attentionMask [B, max len] (pad = padId, mask 0), and
 * labels [B, max label len] padded with -100 when `labels` is given.
 */
export function makeBatch(inputs: readonly (readonly number[])[], labels?: readonly (readonly number[])[], padId = 0): Batch {
  if (inputs.length === 0) throw new RangeError("makeBatch: no inputs");
  if (labels && labels.length !== inputs.length) throw new RangeError(`makeBatch: ${inputs.length} inputs but ${labels.length} labels`);
  const B = inputs.length;
  const S = Math.max(1, ...inputs.map((r) => r.length));
  const ids = new Int32Array(B * S).fill(padId);
  const mask = new Int32Array(B * S);
  inputs.forEach((row, b) => {
    row.forEach((v, j) => {
      ids[b * S + j] = v;
      mask[b * S + j] = 1;
    });
  });
  const batch: Batch = {
    inputIds: { data: ids, shape: [B, S], dtype: "int32" },
    attentionMask: { data: mask, shape: [B, S], dtype: "int32" },
  };
  if (labels) {
    const T = Math.max(1, ...labels.map((r) => r.length));
    const lab = new Int32Array(B * T).fill(-100);
    labels.forEach((row, b) => row.forEach((v, j) => (lab[b * T + j] = v)));
    batch.labels = { data: lab, shape: [B, T], dtype: "int32" };
  }
  return batch;
}
