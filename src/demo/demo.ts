// instill demo: the main job, run as an experiment on suite v2 (tasks whose instructions carry arguments).
// For each seed: generate the suite (instances depend on the seed, tasks and split do not), create a tiny
// random-initialized T5, train the shared base once (denoising on the training tasks' texts, T5 span corruption
// mixed with whole-text reconstruction: the stand-in for a pretrained LM, cached by content hash), then train
// every row from that base with the same number of steps, evaluate every row on the same unseen tasks with the
// same greedy decoding, and keep each example's scores. Across seeds: mean ± std per split (arguments /
// compositions / wordings / total) and paired differences with 95% bootstrap intervals over (seed, example) for
// each method against its baseline.
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadSplitTasks, sentinelToken, synthesizeSuiteV2, suiteV2Groups, V2_SENTINELS, writeSuiteV2 } from "../data/index.js";
import type { V2Group } from "../data/suite-v2.js";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { evaluateTasks, writeEvalFiles } from "../eval/evaluate.js";
import type { RowRun } from "../eval/row.js";
import { T5Model } from "../model/model.js";
import { installTokenizer, loadTokenizer } from "../model/tokenizer.js";
import type { T5ConfigJson } from "../model/types.js";
import { writeReport } from "../report/report.js";
import { selectTrain } from "../select/train.js";
import { createEmbedder, DEFAULT_EMBEDDER } from "../select/registry.js";
import { buildExamples, tokenizeExamples, type TokenizerLike } from "../train/batches.js";
import { defaultConfig, type RunConfig } from "../train/config.js";
import { finishedModelDir, InterruptedError, trainOnTasks } from "../train/trainer.js";
import { writeFileAtomic } from "../util/fs.js";
import { runPool } from "../util/process-pool.js";
import { loadAddon, packageRoot } from "../native/binding.js";
import { dioDemoRow } from "../dio/demo.js";
import { tagiDemoRow } from "../tagi/demo.js";
import { pretrainingTexts, SPAN_CORRUPTION, trainBase, type BaseResult, type SpanCorruptionOptions } from "./base.js";
import { RunProgress, stepReporter, type ProgressSink } from "./progress.js";
import { demoMarkdown, summarize, type DemoSummary, type SeedRun } from "./summary.js";

export interface DemoOptions {
  out: string;
  quick?: boolean;
  /** The first seed (default 42); seeds are seed, seed + 1, ... */
  seed?: number;
  /** How many seeds (default 3; 1 with --quick). */
  seeds?: number;
  quiet?: boolean;
  /** Row names to run (default: all). */
  methods?: string[];
  /** The base's fraction of reconstruction sequences (default SPAN_CORRUPTION.reconstruct; 0 = span corruption only). */
  baseReconstruct?: number;
  /**
   * Worker processes for the jobs (default 1: all in this process; the CLI's default is defaultDemoJobs()). Each job
   * runs the same code either way, so the numbers do not depend on it beyond LibTorch's thread count.
   */
  jobs?: number;
  /** INSTA's instruction embedder for the insta row (default: `instill select`'s, DEFAULT_EMBEDDER). */
  embedder?: string;
}

/**
 * The tiny T5 of the demos (also the TAGI ablation's, measured with dropout 0). Dropout 0.1 is T5's own default; on
 * the demo it lifted the definition row on split (i) in 4 of 4 screening seeds (see the README's Results).
 */
export function demoModelConfig(vocabSize: number, dropout = 0.1): T5ConfigJson {
  return {
    d_model: 128,
    d_kv: 32,
    d_ff: 256,
    num_heads: 4,
    num_layers: 2,
    num_decoder_layers: 2,
    relative_attention_num_buckets: 16,
    relative_attention_max_distance: 64,
    layer_norm_epsilon: 1e-6,
    feed_forward_proj: "gated-gelu",
    tie_word_embeddings: true,
    vocab_size: vocabSize,
    pad_token_id: 0,
    eos_token_id: 1,
    decoder_start_token_id: 0,
    dropout_rate: dropout,
    model_type: "t5",
  };
}

export interface DemoBudget {
  /** Denoising steps of the shared base. */
  baseSteps: number;
  /** Steps of every row from the base. */
  steps: number;
  batchSize: number;
  lr: number;
  maxTrainInstances: number;
  maxEvalInstances: number;
  /** INSTA: targets (one per test split, in split order, cycling), tasks selected per target, steps per run. */
  instaTargets: number;
  instaK: number;
  instaSteps: number;
}

export function demoBudget(quick: boolean): DemoBudget {
  return quick
    ? { baseSteps: 100, steps: 120, batchSize: 32, lr: 3e-3, maxTrainInstances: 20, maxEvalInstances: 20, instaTargets: 1, instaK: 5, instaSteps: 40 }
    : { baseSteps: 200, steps: 300, batchSize: 32, lr: 3e-3, maxTrainInstances: 60, maxEvalInstances: 30, instaTargets: 3, instaK: 5, instaSteps: 120 };
}

export const BASELINE_ENCODINGS: Record<string, Partial<EncodingOptions>> = {
  "no-instruction": { addDefinition: false, numPositiveExamples: 0 },
  definition: { addDefinition: true, numPositiveExamples: 0 },
  "definition+2pos": { addDefinition: true, numPositiveExamples: 2 },
};

export interface DemoContext {
  /** This seed's folder. */
  out: string;
  /** The shared base every row starts from. */
  modelDir: string;
  dataDir: string;
  train: SniTask[];
  test: SniTask[];
  budget: DemoBudget;
  seed: number;
  quick: boolean;
  baseConfig: RunConfig;
  evalOptions: { batchSize: number; maxNewTokens: number; numBeams: number };
  progress: ProgressSink;
  /** The embedder INSTA selects with. */
  embedder: string;
}

export type { RowRun } from "../eval/row.js";

/** Work units per training step of each row (about one baseline step of the demo's batch), for the progress bar. */
const UNITS: Record<string, number> = { base: 0.6, "no-instruction": 0.9, definition: 1, "definition+2pos": 1.6, dio: 1.6, "dio-fixed": 1.05, tagi: 1.3, insta: 1 };
const EVAL_UNITS_PER_EXAMPLE = 0.05;

async function baselineRow(ctx: DemoContext, method: string): Promise<RowRun> {
  const enc: EncodingOptions = { ...ctx.baseConfig.encoding, ...BASELINE_ENCODINGS[method] };
  const cfg: RunConfig = { ...ctx.baseConfig, encoding: enc, out: join(ctx.out, "runs", method) };
  const tok = loadTokenizer(ctx.modelDir);
  const tick = stepReporter(ctx.progress, UNITS[method]);
  const tr = await trainOnTasks(cfg, ctx.train, tok, { label: method, hooks: { afterCall: (s) => void tick(s) } });
  const model = await T5Model.load(finishedModelDir(tr), { seed: ctx.seed });
  try {
    const ev = await evaluateTasks(model, tok, ctx.test, { ...ctx.evalOptions, encoding: enc, maxTargetLength: cfg.maxTargetLength, seed: ctx.seed, quiet: true });
    writeEvalFiles(join(cfg.out, "eval"), ev);
    return { method, eval: ev, train_steps: tr.steps, train_seconds: tr.seconds, final_loss: tr.losses[tr.losses.length - 1], curve: tr.losses, encoding: enc };
  } finally {
    model.dispose();
  }
}

/** INSTA targets: one unseen task per test split in turn (the first of each split, then the second, ...). */
export function instaTargets(test: SniTask[], groups: Map<string, V2Group>, n: number): SniTask[] {
  const bySplit = (["arguments", "compositions", "wordings"] as const).map((g) => test.filter((t) => groups.get(t.name) === g));
  const out: SniTask[] = [];
  for (let i = 0; out.length < n && i < test.length; i++) for (const xs of bySplit) if (out.length < n && xs[i]) out.push(xs[i]);
  return out;
}

/**
 * INSTA (instill select-train) from the base: for each target, k training tasks selected by instruction similarity
 * (INSTA's default embedder), k at random, and all training tasks, each trained `instaSteps` steps with the definition
 * encoding and evaluated on the target.
 */
async function instaRows(ctx: DemoContext, targets: SniTask[]): Promise<RowRun[]> {
  const tok = loadTokenizer(ctx.modelDir);
  const steps = ctx.budget.instaSteps;
  const cfg: RunConfig = {
    ...ctx.baseConfig,
    steps,
    out: join(ctx.out, "runs", "insta"),
    optimizer: { ...ctx.baseConfig.optimizer, totalSteps: steps, warmupSteps: Math.round(steps * 0.05) },
  };
  const r = await selectTrain({
    cfg,
    tok,
    train: ctx.train,
    targets,
    k: ctx.budget.instaK,
    embedder: ctx.embedder,
    quiet: true,
    keepPredictions: true,
    hooks: () => {
      const tick = stepReporter(ctx.progress, UNITS.insta);
      return { afterCall: (s) => void tick(s) };
    },
  });
  const row = (method: string, key: "insta" | "random" | "all"): RowRun => ({
    method,
    eval: { predictions: r.targets.flatMap((t) => t.predictions![key]) },
    train_steps: steps,
    train_seconds: NaN,
    final_loss: NaN,
    curve: [],
    encoding: cfg.encoding,
    targets: targets.map((t) => t.name),
  });
  return [row("insta", "insta"), row("random-k", "random"), row("all-tasks", "all")];
}

/** The demo's rows, in groups that share work. */
export const DEMO_GROUPS: {
  methods: string[];
  /** One job for all its rows (they come from one run); otherwise one job per row. */
  together?: boolean;
  run: (ctx: DemoContext, methods: string[], targets: SniTask[]) => Promise<RowRun[]>;
}[] = [
  {
    methods: Object.keys(BASELINE_ENCODINGS),
    run: async (ctx, methods) => {
      const out: RowRun[] = [];
      for (const m of methods) {
        ctx.progress.stage(`seed ${ctx.seed}: ${m}`);
        out.push(await baselineRow(ctx, m));
        ctx.progress.advance(ctx.test.reduce((a, t) => a + t.instances.length, 0) * EVAL_UNITS_PER_EXAMPLE);
      }
      return out;
    },
  },
  {
    methods: ["dio", "dio-fixed"],
    run: async (ctx, methods) => {
      const out: RowRun[] = [];
      for (const m of methods) {
        ctx.progress.stage(`seed ${ctx.seed}: ${m}`);
        out.push(await dioDemoRow(ctx, { fixed: m === "dio-fixed", onStep: stepReporter(ctx.progress, UNITS[m]) }));
        ctx.progress.advance(ctx.test.reduce((a, t) => a + t.instances.length, 0) * EVAL_UNITS_PER_EXAMPLE);
      }
      return out;
    },
  },
  {
    methods: ["tagi"],
    run: async (ctx) => {
      ctx.progress.stage(`seed ${ctx.seed}: tagi`);
      const r = await tagiDemoRow(ctx, { onStep: stepReporter(ctx.progress, UNITS.tagi) });
      ctx.progress.advance(ctx.test.reduce((a, t) => a + t.instances.length, 0) * EVAL_UNITS_PER_EXAMPLE);
      return [r];
    },
  },
  {
    methods: ["insta", "random-k", "all-tasks"],
    together: true,
    run: async (ctx, _methods, targets) => {
      ctx.progress.stage(`seed ${ctx.seed}: insta / random-k / all-tasks`);
      return instaRows(ctx, targets);
    },
  },
];

export const DEMO_METHODS = DEMO_GROUPS.flatMap((g) => g.methods);

/** Planned work units of one job's rows (for the bar's total and ETA, and the order of jobs on a pool). */
function rowUnits(b: DemoBudget, methods: string[], testExamples: number): number {
  let u = 0;
  for (const m of methods) {
    if (m === "insta") u += (2 * b.instaTargets + 1) * b.instaSteps * UNITS.insta;
    else if (m === "random-k" || m === "all-tasks") continue;
    else u += b.steps * UNITS[m] + testExamples * EVAL_UNITS_PER_EXAMPLE;
  }
  return u;
}

/** Mean encoder input tokens per example under an encoding (EOS included), on the given tasks. */
export function tokensPerExample(tasks: SniTask[], enc: EncodingOptions, tok: TokenizerLike, maxTargetLength: number, seed: number): number {
  const exs = tokenizeExamples(buildExamples(tasks, enc, (t) => tok.countTokens(t), { seed, training: false }), tok, enc.maxSourceLength, maxTargetLength);
  return exs.reduce((a, e) => a + e.src.length, 0) / Math.max(1, exs.length);
}

/**
 * Everything one seed's jobs read, all of it plain data: a job rebuilds the tasks and the tokenizer from the seed's
 * files, so it runs the same in this process or in a worker process.
 */
export interface SeedSpec {
  seed: number;
  quick: boolean;
  seedDir: string;
  dataDir: string;
  initDir: string;
  cacheRoot: string;
  budget: DemoBudget;
  config: T5ConfigJson;
  corruption: SpanCorruptionOptions;
  embedder: string;
}

/** One unit of the demo's work: a seed's base, or rows of one group trained from that base. */
export type DemoJob =
  | { kind: "base"; spec: SeedSpec }
  | { kind: "rows"; spec: SeedSpec; baseDir: string; group: number; methods: string[]; targets: string[] };

function seedInputs(spec: SeedSpec) {
  const tok = loadTokenizer(spec.initDir);
  const b = spec.budget;
  const split = loadSplitTasks({ dataDir: spec.dataDir, maxTrainInstances: b.maxTrainInstances, maxEvalInstances: b.maxEvalInstances, seed: spec.seed });
  return { tok, split };
}

/** The run configuration every row of a seed starts from. */
function rowConfig(spec: SeedSpec, baseDir: string): RunConfig {
  const std = defaultConfig();
  const b = spec.budget;
  return {
    ...std,
    model: baseDir,
    data: spec.dataDir,
    seed: spec.seed,
    steps: b.steps,
    batchSize: b.batchSize,
    stepsPerCall: 25,
    checkpointEvery: 1_000_000,
    keepCheckpoints: 1,
    logEvery: 5,
    quiet: true,
    maxTargetLength: 32,
    encoding: { ...std.encoding, maxSourceLength: 192 },
    optimizer: { ...std.optimizer, lr: b.lr, warmupSteps: Math.round(b.steps * 0.05), totalSteps: b.steps },
    eval: { batchSize: 64, maxNewTokens: 24, numBeams: 1 },
  };
}

/** Runs one job; the same function in this process (--jobs 1) and in a worker process (src/demo/worker.ts). */
export async function runDemoJob(job: DemoJob, progress: ProgressSink): Promise<BaseResult | RowRun[]> {
  const { spec } = job;
  const { tok, split } = seedInputs(spec);
  if (job.kind === "base") {
    progress.stage(`seed ${spec.seed}: base (denoising)`);
    const sentinels = Array.from({ length: V2_SENTINELS }, (_, i) => {
      const ids = tok.encode(sentinelToken(i), { addEos: false });
      if (ids.length !== 1) throw new Error(`${spec.dataDir}/tokenizer.json: sentinel ${sentinelToken(i)} is not one token (${ids.join(",")})`);
      return ids[0];
    });
    const b = spec.budget;
    const tick = stepReporter(progress, UNITS.base);
    return trainBase({
      initDir: spec.initDir,
      cacheRoot: spec.cacheRoot,
      texts: pretrainingTexts(split.train),
      tok,
      sentinels,
      config: spec.config,
      seed: spec.seed,
      budget: { steps: b.baseSteps, batchSize: b.batchSize, lr: b.lr },
      corruption: spec.corruption,
      onSteps: (s) => tick(s),
    });
  }
  const baseConfig = rowConfig(spec, job.baseDir);
  const ctx: DemoContext = {
    out: spec.seedDir,
    modelDir: job.baseDir,
    dataDir: spec.dataDir,
    train: split.train,
    test: split.test,
    budget: spec.budget,
    seed: spec.seed,
    quick: spec.quick,
    baseConfig,
    evalOptions: baseConfig.eval,
    progress,
    embedder: spec.embedder,
  };
  const targets = job.targets.map((n) => {
    const t = split.test.find((x) => x.name === n);
    if (!t) throw new Error(`${spec.dataDir}: INSTA target ${n} is not a test task`);
    return t;
  });
  return DEMO_GROUPS[job.group].run(ctx, job.methods, targets);
}

/** What a worker process sends about a running job (src/demo/worker.ts). */
export type WorkerEvent = { kind: "stage"; name: string } | { kind: "advance"; units: number };

/** LibTorch threads of each of n worker processes: INSTILL_THREADS if set, else the cores shared out. */
function childThreads(n: number): number {
  const env = process.env.INSTILL_THREADS;
  return env ? Number(env) : Math.max(1, Math.floor(availableParallelism() / n));
}

/** Worker processes the demo uses by default: one per core, at most 4 (each with the cores left to it). */
export function defaultDemoJobs(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** The compiled worker script (dist/demo/worker.js), next to this module or under the package root. */
function workerScript(): string {
  const here = fileURLToPath(new URL("./worker.js", import.meta.url));
  if (existsSync(here)) return here;
  const built = join(packageRoot(), "dist", "src", "demo", "worker.js");
  if (existsSync(built)) return built;
  throw new Error(`demo --jobs: the worker script ${built} is not built (npm run build:ts), or use --jobs 1`);
}

export interface DemoResult extends DemoSummary {
  quick: boolean;
  seeds: number[];
  budget: DemoBudget;
  model: { config: T5ConfigJson; parameters: number };
  data: { suite: string; trainTasks: number; testTasks: number; testBySplit: Record<string, number>; trainExamples: number; testExamples: number; instaTargets: string[] };
  base: { seed: number; hash: string; cached: boolean; steps: number; seconds: number; finalLoss: number }[];
  /** The base's denoising objectives. */
  baseObjective: SpanCorruptionOptions;
  /** Processes the jobs ran on (1 = this process) and the LibTorch threads of each. */
  parallel: { jobs: number; threads: number };
  /** The embedder the insta row selected with. */
  instaEmbedder: string;
  report: { markdown: string; html: string; pngs: string[] };
  seconds: number;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const quick = o.quick ?? false;
  const first = o.seed ?? 42;
  const nSeeds = o.seeds ?? (quick ? 1 : 3);
  if (!Number.isInteger(nSeeds) || nSeeds < 1) throw new RangeError(`--seeds: expected a positive integer, got ${nSeeds}`);
  const nJobs = o.jobs ?? 1;
  if (!Number.isInteger(nJobs) || nJobs < 1) throw new RangeError(`--jobs: expected a positive integer, got ${o.jobs}`);
  const seeds = Array.from({ length: nSeeds }, (_, i) => first + i);
  const b = demoBudget(quick);
  const wanted = o.methods ?? DEMO_METHODS;
  for (const m of wanted) if (!DEMO_METHODS.includes(m)) throw new TypeError(`--methods: unknown method '${m}' (known: ${DEMO_METHODS.join(", ")})`);
  // INSTA rows come together (one select-train run gives all three).
  const methods = DEMO_METHODS.filter((m) => wanted.includes(m) || (["insta", "random-k", "all-tasks"].includes(m) && ["insta", "random-k", "all-tasks"].some((x) => wanted.includes(x))));
  const out = o.out;
  const corruption = { ...SPAN_CORRUPTION, reconstruct: o.baseReconstruct ?? SPAN_CORRUPTION.reconstruct };
  if (!(corruption.reconstruct >= 0 && corruption.reconstruct <= 1)) throw new RangeError(`--base-reconstruct: expected a fraction in [0, 1], got ${o.baseReconstruct}`);
  const embedder = o.embedder ?? DEFAULT_EMBEDDER;
  if (methods.includes("insta")) ((await createEmbedder(embedder)) as { dispose?: () => void }).dispose?.();  // a bad --embedder fails here, before any work
  mkdirSync(out, { recursive: true });

  const structure = synthesizeSuiteV2({ seed: first, instancesPerTask: 1 });
  const groups = suiteV2Groups(structure);
  const testExamples = structure.test.length * b.maxEvalInstances;

  // Each seed's files (suite, tokenizer, random init), then the jobs: every seed's base, then its rows (groups whose
  // rows are independent are one job per row).
  const specs: SeedSpec[] = [];
  let config: T5ConfigJson | undefined;
  let parameters = 0;
  for (const seed of seeds) {
    const seedDir = join(out, `seed-${seed}`);
    rmSync(join(seedDir, "runs"), { recursive: true, force: true });
    const dataDir = join(seedDir, "data");
    const initDir = join(seedDir, "model-init");
    writeSuiteV2(dataDir, seed);
    installTokenizer(dataDir, initDir);
    config = demoModelConfig(loadTokenizer(initDir).vocabSize);
    const init = await T5Model.init(config, { seed });
    await init.save(initDir);
    parameters = init.parameterCount().total;
    init.dispose();
    specs.push({ seed, quick, seedDir, dataDir, initDir, cacheRoot: join(out, "base-cache"), budget: b, config, corruption, embedder });
  }
  // The tasks and the split do not depend on the seed, so neither do the INSTA targets.
  const targetNames = instaTargets(seedInputs(specs[0]).split.test, groups, b.instaTargets).map((t) => t.name);
  // A rows job is built when it starts, from its seed's finished base.
  const results = new Map<string, BaseResult | RowRun[]>();
  const baseOf = (seed: number) => results.get(`seed ${seed}: base`) as BaseResult;
  type Planned = { id: string; job: () => DemoJob; units: number; seed: number; after?: string[] };
  const planned: Planned[] = [];
  for (const spec of specs) planned.push({ id: `seed ${spec.seed}: base`, job: () => ({ kind: "base", spec }), units: b.baseSteps * UNITS.base, seed: spec.seed });
  const rowJobs: Planned[] = [];
  for (const spec of specs)
    DEMO_GROUPS.forEach((g, gi) => {
      const mine = g.methods.filter((m) => methods.includes(m));
      if (!mine.length) return;
      for (const ms of g.together ? [mine] : mine.map((m) => [m]))
        rowJobs.push({
          id: `seed ${spec.seed}: ${ms.join(" / ")}`,
          job: () => ({ kind: "rows", spec, baseDir: baseOf(spec.seed).dir, group: gi, methods: ms, targets: targetNames }),
          units: rowUnits(b, ms, testExamples),
          seed: spec.seed,
          after: [`seed ${spec.seed}: base`],
        });
    });
  // On a pool the longest jobs go first (so the last ones to finish are short); in this process, in table order.
  planned.push(...(nJobs > 1 ? [...rowJobs].sort((x, y) => y.units - x.units) : rowJobs));
  const progress = new RunProgress(planned.reduce((a, p) => a + p.units, 0), o.quiet ?? false);

  // In this process: what the addon loader applied (INSTILL_THREADS or the cores); workers: the cores shared out.
  const threads = nJobs > 1 ? childThreads(nJobs) : loadAddon().runtimeInfo().intraOpThreads;
  try {
    if (nJobs === 1) {
      for (const p of planned) results.set(p.id, await runDemoJob(p.job(), progress));
    } else {
      // The bar's stage names what each worker runs, in worker order.
      const stages: string[] = [];
      const stage = (w: number, name: string) => {
        stages[w] = name;
        progress.stage(stages.filter(Boolean).join(" | "));
      };
      await runPool<DemoJob, BaseResult | RowRun[], WorkerEvent>(planned, {
        script: workerScript(),
        workers: nJobs,
        env: { ...process.env, INSTILL_THREADS: String(threads) },
        onEvent: (_id, e, w) => (e.kind === "stage" ? stage(w, e.name) : progress.advance(e.units)),
        onDone: (id, r) => results.set(id, r),
        interrupted: () => new InterruptedError(`demo in ${out}`),
      });
    }
  } finally {
    progress.stop();
  }

  // Per seed, the rows in table order, and what the tables say about the data.
  const runs: SeedRun[] = [];
  const bases: DemoResult["base"] = [];
  let dataFacts: DemoResult["data"] | undefined;
  for (const spec of specs) {
    const base = baseOf(spec.seed);
    bases.push({ seed: spec.seed, hash: base.hash, cached: base.cached, steps: base.steps, seconds: round1(base.seconds), finalLoss: round4(base.losses[base.losses.length - 1]) });
    const rows = rowJobs.filter((p) => p.seed === spec.seed).flatMap((p) => results.get(p.id) as RowRun[]);
    const { tok, split } = seedInputs(spec);
    const maxTargetLength = rowConfig(spec, base.dir).maxTargetLength;
    const tokens: Record<string, number> = {};
    for (const r of rows) if (!r.targets) tokens[r.method] = round1(tokensPerExample(split.test, r.encoding, tok, maxTargetLength, spec.seed) + (r.softTokens ?? 0));
    runs.push({ seed: spec.seed, rows, tokensPerExample: tokens });
    const testBySplit: Record<string, number> = {};
    for (const t of split.test) testBySplit[groups.get(t.name) ?? "?"] = (testBySplit[groups.get(t.name) ?? "?"] ?? 0) + 1;
    dataFacts = {
      suite: "v2",
      trainTasks: split.train.length,
      testTasks: split.test.length,
      testBySplit,
      trainExamples: split.train.reduce((a, t) => a + t.instances.length, 0),
      testExamples: split.test.reduce((a, t) => a + t.instances.length, 0),
      instaTargets: targetNames,
    };
  }

  const families = new Map(structure.tasks.map((t) => [t.name, t.steps.map((x) => x.family).join(" > ")]));
  const summary = summarize(runs, groups, { families });
  const seconds = round1((Date.now() - t0) / 1000);
  const facts = {
    model: `T5 ${config!.feed_forward_proj}, d_model ${config!.d_model}, ${config!.num_layers}+${config!.num_decoder_layers} layers, ${parameters} parameters`,
    base: `${b.baseSteps} steps of denoising on the training tasks' definitions and instance texts, from random init: T5 span corruption (15% noise, mean span 3), the whole text as target for ${Math.round(corruption.reconstruct * 100)}% of the sequences; the stand-in for a pretrained LM; cached by content hash in ${join(out, "base-cache")}`,
    rows: `every row starts from that base and trains ${b.steps} AdamW steps (batch ${b.batchSize}, lr ${b.lr}); INSTA runs ${b.instaSteps} steps each (k = ${b.instaK}, selected with ${embedder})`,
    data: `suite v2: ${dataFacts!.trainTasks} training tasks (${dataFacts!.trainExamples} examples per seed), ${dataFacts!.testTasks} unseen test tasks (${Object.entries(dataFacts!.testBySplit).map(([k, v]) => `${v} ${k}`).join(", ")}; ${dataFacts!.testExamples} examples per seed)`,
    decoding: "greedy, at most 24 new tokens, the same for every row",
    seeds: `${seeds.join(", ")} (each seed regenerates the suite's instances, the model init and the base)`,
    wall: `${seconds} s (${nJobs > 1 ? `${nJobs} worker processes of ${threads} thread(s)` : `one process, ${threads} thread(s)`})`,
  };
  const md = demoMarkdown(summary, { quick, seeds, facts, instaTargets: dataFacts!.instaTargets });
  const report = await writeReport(out, {
    title: `instill demo${quick ? " (quick)" : ""}: unseen tasks of suite v2, ${seeds.length} seed(s)`,
    rows: summary.methods.filter((m) => m.scope === "all").map((m) => ({ method: m.method, rougeL: m.rougeL.total.mean, exact_match: m.exact_match.total.mean })),
    hideRowsTable: true,
    sections: md.sections,
    errorBars: summary.methods.filter((m) => m.scope === "all").flatMap((m) =>
      (["arguments", "compositions", "wordings", "total"] as const).map((s) => ({ method: m.method, group: s, mean: m.exact_match[s].mean, std: m.exact_match[s].std })),
    ),
    errorBarsTitle: "Exact match on the unseen tasks, mean ± std over seeds",
    curves: Object.fromEntries(runs[0].rows.filter((r) => r.curve.length).map((r) => [r.method, r.curve.map((loss, i) => ({ step: i + 1, loss }))])),
    facts,
  });
  const result: DemoResult = {
    ...summary,
    quick,
    seeds,
    budget: b,
    model: { config: config!, parameters },
    data: dataFacts!,
    base: bases,
    baseObjective: corruption,
    parallel: { jobs: nJobs, threads },
    instaEmbedder: embedder,
    report,
    seconds,
  };
  writeFileAtomic(join(out, "demo.json"), JSON.stringify(result) + "\n");
  return result;
}

/** The terminal table: exact match per split, then the paired differences. */
export function demoTable(r: DemoResult): string {
  return demoMarkdown(r, { quick: r.quick, seeds: r.seeds, facts: {}, instaTargets: r.data.instaTargets }).terminal;
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round4 = (x: number) => Math.round(x * 10000) / 10000;
