// The contract between the TypeScript pipeline (src/train, src/tagi, src/dio, src/select) and the native
// T5 handle (src/model/model.ts over native/napi/t5_wrap.cc). Token ids cross the boundary as int32
// HostTensors (a batch crosses once); the native side converts to int64.
import type { HostTensor, ProgressEvent } from "../native/types.js";

/** HF config.json fields instill reads (T5 family). */
export interface T5ConfigJson {
  d_model: number;
  d_kv: number;
  d_ff: number;
  num_heads: number;
  num_layers: number;
  num_decoder_layers?: number;
  relative_attention_num_buckets: number;
  relative_attention_max_distance?: number;
  layer_norm_epsilon: number;
  feed_forward_proj: string;
  tie_word_embeddings?: boolean;
  vocab_size: number;
  pad_token_id: number;
  eos_token_id: number;
  decoder_start_token_id: number;
  dropout_rate?: number;
  [key: string]: unknown;
}

/** One batch: right-padded ids [B, S]; labels [B, T] with -100 where ignored. */
export interface Batch {
  inputIds: HostTensor<"int32">;
  attentionMask: HostTensor<"int32">;
  labels?: HostTensor<"int32">;
  /**
   * Training only: multiplies the batch's mean token loss (default 1). Data parallelism sets it to this shard's
   * share of the global batch's label tokens times the world size, so the mean over ranks is the global token mean.
   */
  lossScale?: number;
}

export interface LoraOptions {
  r: number;
  alpha: number;
  dropout?: number;
  /** Module names among q, k, v, o, wi, wo (wi covers wi_0/wi_1). */
  modules: string[];
  seed?: number;
}

export interface OptimizerOptions {
  name: "adamw" | "adafactor";
  lr: number;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
  /** Linear warmup then linear decay to 0 at totalSteps ("linear"), or constant after warmup. */
  schedule?: "linear" | "constant";
  warmupSteps?: number;
  totalSteps: number;
  /** Max global gradient norm; 0 = off. */
  clipNorm?: number;
  /** Micro-batches accumulated per optimizer step. */
  gradAccumulation?: number;
  /** Adafactor only: scale the step by max(1e-3, RMS(param)) (HF `scale_parameter`, default true). */
  scaleParameter?: boolean;
}

export interface TrainStepsResult {
  /** One loss per optimizer step (mean over its micro-batches). */
  losses: number[];
  gradNorms: number[];
  lrs: number[];
  tokens: number;
  seconds: number;
  step: number;
  /** True when cancel() stopped the call early (the arrays then hold the steps done). */
  cancelled?: boolean;
}

export interface GenerateOptions {
  maxNewTokens: number;
  numBeams?: number;
  /** Decoder KV cache (default true); false re-runs the decoder over the whole prefix (greedy only, benchmarks). */
  useCache?: boolean;
}

export interface NativeModelHandle {
  readonly config: T5ConfigJson;
  parameterCount(): { total: number; trainable: number };
  setOptimizer(o: OptimizerOptions): void;
  addLora(o: LoraOptions): void;
  mergeLora(): void;
  /** Runs one optimizer step per `gradAccumulation` batches, off the event loop. */
  /** precision: "auto" (default: bf16 autocast on CUDA, float32 on CPU) | "float32" | "bf16" (autocast on CPU too). */
  trainSteps(batches: Batch[], opts?: { onProgress?: (e: ProgressEvent) => void; processGroup?: unknown; precision?: "auto" | "float32" | "bf16" }): Promise<TrainStepsResult>;
  /** Mean loss per batch, no gradients. */
  evalLoss(batches: Batch[]): Promise<number[]>;
  /** Generated ids per example (no decoder start id; stops at EOS, EOS not included). */
  generate(batch: Batch, o: GenerateOptions): Promise<number[][]>;
  /** Summed log-likelihood of each option for each example: options[i] are token-id lists (EOS included). */
  scoreOptions(batch: Batch, options: number[][][]): Promise<number[][]>;
  /** HF layout: config.json + model.safetensors (LoRA merged copy not implied). */
  save(dir: string): Promise<void>;
  /** PEFT layout: adapter_config.json + adapter_model.safetensors. */
  saveAdapter(dir: string): Promise<void>;
  loadAdapter(dir: string): Promise<void>;
  /** Optimizer, scheduler step and RNG state to one safetensors file (atomic). */
  saveTrainingState(path: string): Promise<void>;
  loadTrainingState(path: string): Promise<void>;
  /** Asks the running native call (trainSteps) to stop after its current step; it resolves with the steps done. */
  cancel(): void;
  dispose(): void;
}
