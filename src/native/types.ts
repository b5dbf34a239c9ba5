// Hand-written types of the native addon (node-llama-cpp's AddonTypes.ts style): the one contract
// between native/napi and TypeScript. test/native/contract.test.ts checks it against the real exports (every class,
// function and prototype member named here exists, and nothing else does).

export type Dtype =
  | "float32"
  | "float64"
  | "float16"
  | "bfloat16"
  | "int8"
  | "uint8"
  | "int16"
  | "int32"
  | "int64"
  | "bool";

export type TypedArrayFor<D extends Dtype> = D extends "float32"
  ? Float32Array
  : D extends "float64"
    ? Float64Array
    : D extends "float16" | "bfloat16"
      ? Uint16Array
      : D extends "int8"
        ? Int8Array
        : D extends "uint8" | "bool"
          ? Uint8Array
          : D extends "int16"
            ? Int16Array
            : D extends "int32"
              ? Int32Array
              : BigInt64Array;

/** A host tensor as it crosses the boundary: a TypedArray, its shape and dtype. */
export interface HostTensor<D extends Dtype = Dtype> {
  data: TypedArrayFor<D>;
  shape: number[];
  dtype?: D;
}

/**
 * What every native class has (native/napi/handle.h): one asynchronous call at a time (a second call, or dispose(),
 * while one is in flight is refused with an Error naming the running call), native bytes reported to V8, a finalizer
 * as a backstop.
 */
export interface NativeHandle {
  /** Frees the native state now; refused while a call is in flight; a no-op once disposed. */
  dispose(): void;
  [Symbol.asyncDispose](): Promise<void>;
  /** True while an asynchronous call runs on the handle. */
  readonly busy: boolean;
  readonly disposed: boolean;
  /** Native bytes reported to V8 (weights, buffers, optimizer state). */
  readonly bytes: number;
}

/** A handle whose long calls (training) stop at the next step boundary on cancel(). */
export interface CancellableHandle extends NativeHandle {
  cancel(): void;
}

export interface ProgressEvent {
  [name: string]: number | string | undefined;
  message?: string;
}

export interface RuntimeInfo {
  torchVersion: string;
  cudaBuild: boolean;
  cudaAvailable: boolean;
  cudaDevices: string[];
  intraOpThreads: number;
  interOpThreads: number;
  /** OpenBLAS's own thread count (0 when another BLAS is loaded). */
  blasThreads: number;
  /** "instill-cache" (the caching CPU allocator, common/memory.h) or "system" (INSTILL_CPU_ALLOCATOR=system). */
  cpuAllocator: string;
  /** The CPU has bfloat16 dot-product instructions (AVX512-BF16 / AMX-BF16); without them bf16 is emulated. */
  cpuBf16: boolean;
  blas: { name: string; path: string; config: string; reference: boolean };
  addonVersion: string;
  napiVersion: number;
}

export interface MatmulBenchResult {
  n: number;
  iterations: number;
  seconds: number;
  gflops: number;
}

/** One entry of a safetensors header (io_wrap.cc). */
export interface SafetensorsEntryInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  dataOffsets: [number, number];
}

export interface SafetensorsHeaderInfo {
  metadata: Record<string, string>;
  headerBytes: number;
  dataBytes: number;
  tensors: SafetensorsEntryInfo[];
}

/** Tensors in file order as [name, tensor] pairs. */
export type NamedHostTensors = Array<[string, Required<HostTensor>]>;

export interface LoraModuleHost {
  /** HF module name, e.g. encoder.block.0.layer.0.SelfAttention.q */
  module: string;
  /** [r, in_features] */
  A: HostTensor;
  /** [out_features, r] */
  B: HostTensor;
}

export interface PeftAdapterHost {
  configJson: string;
  r: number;
  alpha: number;
  /** alpha / r (alpha / sqrt(r) with use_rslora) */
  scaling: number;
  targetModules: string[];
  baseModelNameOrPath: string;
  modules: Array<{ module: string; A: Required<HostTensor>; B: Required<HostTensor> }>;
}

/** dist_wrap.cc: the c10d rendezvous settings (torchrun's variables; see src/dist/env.ts). */
export interface DistConfig {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  localRank: number;
  /** "auto" | "gloo" | "nccl" */
  backend: string;
  timeoutSeconds: number;
}

export interface DistCommStats {
  calls: number;
  buckets: number;
  bytes: number;
  /** wall time inside gradient averaging */
  seconds: number;
}

export interface DdpBenchOptions {
  width?: number;
  layers?: number;
  globalBatch?: number;
  steps?: number;
  bucketBytes?: number;
}

export interface DdpBenchResult {
  steps: number;
  params: number;
  localBatch: number;
  seconds: number;
  allreduceSeconds: number;
  finalLoss: number;
}

/** A c10d process group (Gloo on CPU, NCCL on CUDA). Collectives: one in flight at a time, same order on every rank. */
export interface NativeProcessGroup extends NativeHandle {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly backend: string;
  barrier(): Promise<void>;
  /** Every rank gets root's tensors (same shapes/dtypes on every rank). */
  broadcast(tensors: HostTensor[], root?: number): Promise<Required<HostTensor>[]>;
  /** Element-wise mean over ranks, bucketed (default 25 MiB buckets). */
  allreduceMean(tensors: HostTensor[], options?: { bucketBytes?: number }): Promise<Required<HostTensor>[]>;
  allreduceSum(tensors: HostTensor[], options?: { bucketBytes?: number }): Promise<Required<HostTensor>[]>;
  /** values of rank r at [r * values.length + i]. */
  allgatherScalars(values: number[]): Promise<number[]>;
  allreduceMeanScalars(values: number[]): Promise<number[]>;
  stats(): DistCommStats;
  resetStats(): void;
  ddpBench(options?: DdpBenchOptions): Promise<DdpBenchResult>;
}

// select_wrap.cc: exact top-k (native/core/select/topk.h).
export interface TopkResultHost {
  /** [Q, k] float32, best first. */
  scores: Required<HostTensor<"float32">>;
  /** [Q, k] int32 pool row numbers; among equal scores the lower row comes first. */
  indices: Required<HostTensor<"int32">>;
}

export interface TopkSearchOptions {
  /** Pool rows scored per BLAS call (default 32768): memory is [Q x chunkRows] floats. */
  chunkRows?: number;
  onProgress?: (e: ProgressEvent) => void;
}

/**
 * A pool kept native side (rows copied once, appended as blocks). With normalize (default true) rows and
 * queries are L2-normalized, so scores are cosines. search() runs on a worker thread over a snapshot of the
 * rows: add() meanwhile is safe; dispose() is refused while a search or addRandom is in flight.
 */
export interface NativeTopkIndex extends NativeHandle {
  readonly size: number;
  readonly dim: number;
  /** Appends [n, dim] float32 rows (copied); returns the new size. */
  add(rows: HostTensor<"float32">): number;
  /** Appends n seeded N(0,1) rows generated natively (benchmarks, tests); resolves to the new size. */
  addRandom(options: { rows: number; seed?: number }): Promise<number>;
  search(queries: HostTensor<"float32">, k: number, options?: TopkSearchOptions): Promise<TopkResultHost>;
}

export interface BandwidthBenchResult {
  bytes: number;
  iterations: number;
  seconds: number;
  /** Bytes read per second / 1e9 (a multithreaded sum over a float32 tensor). */
  gbps: number;
}

/** The native T5 handle (native/napi/t5_wrap.cc); src/model/model.ts (T5Model) is its typed front. */
export interface NativeT5 extends CancellableHandle {
  /** dtype "stored" keeps the checkpoint's floating dtype (e.g. bfloat16); the default float32 converts. */
  load(dir: string, options?: { dtype?: "float32" | "float64" | "bfloat16" | "float16" | "stored"; seed?: number }): Promise<void>;
  /** config: a preset name ("tiny" | "small" | "base") or config.json text. */
  init(config: string, options?: { seed?: number; vocabSize?: number; dtype?: "float32" | "float64" }): Promise<void>;
  /** config.json text of the model. */
  config(): string;
  parameterCount(): { total: number; trainable: number };
  setOptimizer(o: object): void;
  addLora(o: object): void;
  mergeLora(): void;
  /** precision: "auto" (bf16 autocast on CUDA, float32 on CPU; default) | "float32" | "bf16" (autocast on CPU too). */
  trainSteps(batches: object[], options?: { onProgress?: (e: ProgressEvent) => void; processGroup?: unknown; precision?: "auto" | "float32" | "bf16" }): Promise<{
    losses: number[]; gradNorms: number[]; lrs: number[]; tokens: number; seconds: number; step: number; cancelled: boolean;
  }>;
  evalLoss(batches: object[]): Promise<number[]>;
  generate(batch: object, options: { maxNewTokens: number; numBeams?: number; useCache?: boolean }): Promise<number[][]>;
  scoreOptions(batch: object, options: number[][][]): Promise<number[][]>;
  save(dir: string): Promise<void>;
  saveAdapter(dir: string): Promise<void>;
  loadAdapter(dir: string): Promise<void>;
  saveTrainingState(path: string): Promise<void>;
  loadTrainingState(path: string): Promise<void>;
  /** Optimizer steps taken (0 without an optimizer; while a call runs, the count from before it). */
  readonly step: number;
}

export interface Addon {
  T5Native: new () => NativeT5;
  runtimeInfo(): RuntimeInfo;
  setThreads(n: number): void;
  getThreads(): number;
  /** Reseeds LibTorch's default CPU generator (dropout); call between native calls. */
  manualSeed(seed: number): void;
  tensorRoundTrip<D extends Dtype>(t: HostTensor<D>): Required<HostTensor<D>>;
  matmulBench(options: {
    n?: number;
    seconds?: number;
    onProgress?: (e: ProgressEvent) => void;
  }): Promise<MatmulBenchResult>;
  // io_wrap.cc: safetensors, HF checkpoint folders, PEFT adapters. Errors name the file (and tensor).
  readSafetensors(path: string): Promise<{ metadata: Record<string, string>; tensors: NamedHostTensors }>;
  readSafetensorsHeader(path: string): SafetensorsHeaderInfo;
  writeSafetensors(path: string, tensors: Array<[string, HostTensor]>, metadata?: Record<string, string>): Promise<void>;
  readCheckpointWeights(dir: string): Promise<NamedHostTensors>;
  checkpointWeightFiles(dir: string): string[];
  /** Tensors of a .safetensors header or of a torch.save file's pickle (restricted unpickler; dataOffsets [0, 0]). */
  readWeightsHeader(path: string): SafetensorsEntryInfo[];
  convertCheckpoint(
    src: string,
    outDir: string,
    options?: { dtype?: "stored" | "float32" | "float64" | "bfloat16" | "float16"; maxShardBytes?: number },
  ): Promise<{ tensors: number; bytes: number; dropped: string[]; files: string[] }>;
  readPeftAdapter(dir: string): Promise<PeftAdapterHost>;
  writePeftAdapter(dir: string, modules: LoraModuleHost[], configJson: string): Promise<void>;
  // dist_wrap.cc: c10d process groups (native/core/dist).
  /** The class of distInit's groups; constructing one directly throws a TypeError. */
  ProcessGroup: new (handle: never) => NativeProcessGroup;
  distInit(options?: Partial<DistConfig> & { device?: "cpu" | "cuda" }): Promise<NativeProcessGroup>;
  distConfigFromEnv(): DistConfig;
  distBackendAvailable(backend: string): boolean;
  ddpBenchLocal(options?: DdpBenchOptions): Promise<DdpBenchResult>;
  // select_wrap.cc: exact chunked top-k.
  TopkIndex: new (options: { dim: number; normalize?: boolean }) => NativeTopkIndex;
  /** One-shot exact top-k by dot product (normalize rows first for cosine); copies the pool for the call. */
  topk(queries: HostTensor<"float32">, pool: HostTensor<"float32">, k: number, options?: TopkSearchOptions): Promise<TopkResultHost>;
  readBandwidthBench(options?: { bytes?: number; seconds?: number }): Promise<BandwidthBenchResult>;
  // dio_wrap.cc: DIO bilevel trainer (native/core/dio/dio.h) and the hypergradient benchmark (dio/bench.h).
  DioNative: new () => NativeDio;
  dioBenchHypergrad(options: DioBenchOptions): Promise<DioBenchResult>;
  // tagi_wrap.cc: TAGI hypernetwork (native/core/hypernet).
  TagiNative: new () => NativeTagi;
  // embed_wrap.cc: instruction embedders (native/core/select/embed.h).
  EncoderEmbedder: new () => NativeEncoderEmbedder;
  SentenceEncoder: new () => NativeSentenceEncoder;
}

// ---- dio_wrap.cc ----
export interface DioOptimizerOptions {
  name?: "adamw" | "adafactor";
  lr: number;
  totalSteps?: number;
  weightDecay?: number;
  schedule?: "linear" | "constant";
  warmupSteps?: number;
  clipNorm?: number;
  eps?: number;
}

export interface DioNativeOptions {
  variant?: "prompt" | "embedder";
  promptLength?: number;
  numTasks?: number;
  /** Hypergradient spec from the registry: unroll:K, neumann:K, cg:K, fd (with ,key=value overrides). */
  hypergrad?: string;
  alpha?: number;
  damping?: number;
  unrollLr?: number;
  /** Outer update every metaEvery inner steps; 0 = never (fixed instructions). */
  metaEvery?: number;
  seed?: number;
  /** Embedder variant: what the map reads, the token embeddings or the encoder states of the written instruction. */
  instructionEncoding?: "embeddings" | "encoder";
  /** Demonstration selection: m candidates per training task with learnable logits (0 = off). */
  numDemonstrations?: number;
  /** Gumbel-softmax temperature of the demonstration sampling. */
  gumbelTau?: number;
  /** Data parallelism: inner gradients and the hypergradient's products averaged over the group. */
  processGroup?: NativeProcessGroup;
  inner: DioOptimizerOptions;
  outer: DioOptimizerOptions;
}

/** A batch plus what selects its soft tokens: taskIds [B] (prompt variant) or instrIds/instrMask [B, L] (embedder). */
export interface DioBatchHost {
  inputIds: HostTensor;
  attentionMask: HostTensor;
  labels?: HostTensor;
  taskIds?: HostTensor;
  instrIds?: HostTensor;
  instrMask?: HostTensor;
  /** Candidate demonstrations [B, m, Ld] (token ids), their mask, and the logits row per example (-1 = candidate 0). */
  demoIds?: HostTensor;
  demoMask?: HostTensor;
  demoTaskIds?: HostTensor;
  /** Multiplies the mean token loss (data parallelism: shard tokens * world / global tokens). */
  lossScale?: number;
}

export interface DioStepsResult {
  trainLoss: number[];
  /** NaN where no outer update ran. */
  metaLoss: number[];
  hypergradNorm: number[];
  seconds: number[];
  hypergradSeconds: number[];
  hvpCount: number;
  gradCount: number;
}

export interface NativeDio extends CancellableHandle {
  /** A trainer over the checkpoint folder modelDir with fresh instructions (initIds: the prompt variant's per-task ids). */
  init(modelDir: string, options: DioNativeOptions, initIds?: number[][]): Promise<void>;
  trainSteps(items: { train: DioBatchHost; meta?: DioBatchHost }[], onProgress?: (e: ProgressEvent) => void): Promise<DioStepsResult>;
  generate(batch: DioBatchHost, options: { maxNewTokens: number; numBeams?: number }): Promise<number[][]>;
  /** Rank classification with the batch's soft tokens: summed log-likelihood per option (as T5Model.scoreOptions). */
  scoreOptions(batch: DioBatchHost, options: number[][][]): Promise<number[][]>;
  evalLoss(batches: DioBatchHost[]): Promise<number[]>;
  save(dir: string): Promise<void>;
  loadPhi(path: string): Promise<void>;
  /** Both optimizers, RNG states and the step counter (native/core/dio/dio.h save_state). */
  saveTrainingState(path: string): Promise<void>;
  loadTrainingState(path: string): Promise<void>;
  /** The instruction parameters by name (float64 copies). */
  readPhi(): Record<string, HostTensor<"float64">>;
  info(): {
    variant: string;
    promptLength: number;
    numTasks: number;
    hypergrad: string;
    steps: number;
    instructionEncoding: string;
    numDemonstrations: number;
    phiParameters: number;
    thetaParameters: number;
  };
}

export interface DioBenchOptions {
  /** Preset name ("tiny", "small", ...) or config.json text. */
  config?: string;
  vocabSize?: number;
  batch?: number;
  sourceLength?: number;
  targetLength?: number;
  promptLength?: number;
  repeats?: number;
  specs: string[];
  /** More rounds than `repeats`, up to this, while the newest round still moves a median ratio by > 3%. */
  maxRepeats?: number;
  /** Full DIO steps with an outer update by each spec, timed against a plain inner step ("dio_step"). */
  dioSpecs?: string[];
  seed?: number;
}

/** One benchmark case: per-run arrays (rounds aligned across cases: run i of every case ran in round i). */
export interface DioBenchCase {
  seconds: number[];
  ratio_to_train_step: number[];
  ratio_to_grad: number[];
  peak_bytes: number;
  hvp_count: number;
  grad_count: number;
  iterations: number;
  negative_curvature: boolean;
}

export interface DioBenchResult {
  parameters: number;
  threads: number;
  interop_threads: number;
  matmul_gflops: number;
  /** The medians settled before maxRepeats rounds. */
  stable: boolean;
  /** "train_step", "grad", "hvp", "hvp_on_graph", each spec, and with dioSpecs "dio_step" and "dio_outer:<spec>". */
  cases: Record<string, DioBenchCase>;
}

// ---- tagi_wrap.cc ----
export interface TagiHypernetOptions {
  rank?: number;
  alpha?: number;
  projDim?: number;
  hidden?: number;
  /** Std of the weights that start near zero (all of them with init "paper", only B's last layer with "lora"). */
  initStd?: number;
  /**
   * "lora" (default): A's generator at a normal scale, B's last layer N(0, initStd), so B starts near zero but
   * learns at once. "paper": every weight N(0, initStd), the paper's code (a saddle: CE/KL gradients ~1e-19).
   */
  init?: "lora" | "paper";
  scaleB?: boolean;
  fusion?: boolean;
  targetModules?: string[];
}

export interface TagiLoadOptions {
  hypernet?: TagiHypernetOptions;
  /** A saved hypernet.safetensors (its options win over `hypernet`). */
  hypernetPath?: string;
  /** Teacher LoRA folders (PEFT), index i = teacherIndex i. */
  teachers?: string[];
  /** The base the teachers were trained on (default: the model dir). */
  teacherModelDir?: string;
  /** Train the base model together with the hypernetwork. */
  trainBase?: boolean;
  seed?: number;
  dtype?: "float32" | "float64";
}

export interface TagiBatchHost {
  inputIds: HostTensor;
  attentionMask: HostTensor;
  labels?: HostTensor;
  instrIds: HostTensor;
  instrMask: HostTensor;
  teacherInputIds?: HostTensor;
  teacherAttentionMask?: HostTensor;
  /** [B] int32, -1 = no teacher for the row. */
  teacherIndex?: HostTensor;
  /**
   * Data-parallel shard of a global batch: each term's share, local count * world size / global count (CE and KL:
   * labelled tokens, KL only of rows with a teacher; MSE: rows with a teacher). The mean over ranks of the scaled
   * terms is then the global batch's term. Default 1 each.
   */
  lossScale?: { ce?: number; kl?: number; mse?: number };
}

export interface TagiStepsResult {
  losses: number[];
  gradNorms: number[];
  lrs: number[];
  /** Per step; null where the term is off or no row had a teacher. */
  ce: (number | null)[];
  kl: (number | null)[];
  mse: (number | null)[];
  /**
   * With `termGradNorms: true`: the norm of the gradient each weighted loss term sends to the hypernetwork, on the
   * call's first batch (null where the term is off or has no teacher rows); otherwise null.
   */
  termGradNorms: { ce: number | null; kl: number | null; mse: number | null } | null;
  tokens: number;
  seconds: number;
  step: number;
  cancelled: boolean;
}

export interface TagiInfo {
  hypernetParameters: number;
  baseParameters: number;
  slots: number;
  rank: number;
  fusion: boolean;
  teachers: number;
  trainBase: boolean;
  options: string;
}

export interface NativeTagi extends CancellableHandle {
  load(modelDir: string, options?: TagiLoadOptions): Promise<void>;
  info(): TagiInfo;
  setLoss(loss: { ce?: number; kl?: number; temperature?: number; mse?: number }): void;
  setOptimizer(options: { name?: "adamw" | "adafactor"; lr?: number; totalSteps?: number; weightDecay?: number; schedule?: "linear" | "constant"; warmupSteps?: number; clipNorm?: number; gradAccumulation?: number; scaleParameter?: boolean }): void;
  /** With `processGroup`, gradients are averaged over its ranks each step; losses and terms stay this rank's. */
  trainSteps(
    batches: TagiBatchHost[],
    options?: { onProgress?: (e: ProgressEvent) => void; processGroup?: NativeProcessGroup; termGradNorms?: boolean },
  ): Promise<TagiStepsResult>;
  generate(batch: TagiBatchHost, options?: { maxNewTokens?: number; numBeams?: number }): Promise<number[][]>;
  /** Summed log-likelihood of each option (token ids, EOS included) under the example's generated adapter. */
  scoreOptions(batch: TagiBatchHost, options: number[][][]): Promise<number[][]>;
  writeAdapter(instrIds: HostTensor, dir: string, options?: { baseModel?: string }): Promise<{ modules: number; seconds: number }>;
  save(dir: string): Promise<void>;
  /** Optimizer state + scheduler step + RNG states to one safetensors file (checkpoints). */
  saveTrainingState(path: string): Promise<void>;
  /** Restores what saveTrainingState wrote; call setOptimizer first (same optimizer, same trainable parameters). */
  loadTrainingState(path: string): Promise<void>;
}

// ---- embed_wrap.cc: encoder and trained embedders ----
export interface NativeEncoderEmbedder extends NativeHandle {
  /** Loads a T5 checkpoint folder once (float32, eval mode). */
  load(dir: string, options?: { pool?: "mean" | "firstlast" }): Promise<void>;
  /** Pooled final-normed encoder states: ids [B,S] int32, mask [B,S] (nonzero = token) -> float32 [B, dModel]. */
  embed(ids: HostTensor, mask?: HostTensor): Promise<Required<HostTensor<"float32">>>;
  readonly dModel: number;
  readonly vocabSize: number;
}

export interface SentenceEncoderTrainResult {
  losses: number[];
  steps: number;
  seconds: number;
  cancelled: boolean;
}

/** cancel() stops train() at the next step. */
export interface NativeSentenceEncoder extends CancellableHandle {
  /** A fresh encoder from an embedder.json-style config (kind "words"), or initialized from a T5 checkpoint (kind "t5"). */
  init(configJson: string, options?: { seed?: number; init?: string }): Promise<void>;
  /** Loads a folder written by save(). */
  load(dir: string): Promise<void>;
  /** The embedder.json text (kind, vocab_size, dim, layers, heads, ff, max_len, dropout, pool, temperature). */
  config(): string;
  /** AdamW on symmetric InfoNCE with in-batch negatives; views of one group (task) are positives. */
  train(
    data: { ids: HostTensor; mask?: HostTensor; groups: HostTensor },
    options?: { steps?: number; batch?: number; lr?: number; weightDecay?: number; seed?: number; onProgress?: (e: ProgressEvent) => void },
  ): Promise<SentenceEncoderTrainResult>;
  embed(ids: HostTensor, mask?: HostTensor): Promise<Required<HostTensor<"float32">>>;
  save(dir: string): Promise<void>;
}
