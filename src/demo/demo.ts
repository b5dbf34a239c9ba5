// instill demo: the main job on the embedded default. Generates the instruction suite, creates a tiny
// random-initialized T5, trains it with and without instructions, evaluates on the unseen test tasks,
// prints the table and writes the report. Methods add their rows through DEMO_METHODS.
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks, writeSuite } from "../data/index.js";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { evaluateTasks, rougeLPerCategory, writeEvalFiles } from "../eval/evaluate.js";
import { T5Model } from "../model/model.js";
import { installTokenizer, loadTokenizer } from "../model/tokenizer.js";
import type { T5ConfigJson } from "../model/types.js";
import { writeReport, markdownTable, type ReportRow } from "../report/report.js";
import { defaultConfig, type RunConfig } from "../train/config.js";
import { trainOnTasks } from "../train/trainer.js";
import { selectTrain } from "../select/train.js";
import { tagiDemoRow } from "../tagi/demo.js";
import { dioDemoRow } from "../dio/demo.js";

export interface DemoOptions {
  out: string;
  quick?: boolean;
  seed?: number;
  quiet?: boolean;
  /** Row names to run (default: all). */
  methods?: string[];
}

export interface DemoRow extends ReportRow {
  method: string;
  rougeL: number;
  exact_match: number;
  rouge1: number;
  train_steps: number;
  train_seconds: number;
  final_loss: number;
}

export interface DemoResult {
  rows: DemoRow[];
  quick: boolean;
  seed: number;
  model: { config: T5ConfigJson; parameters: number };
  data: { dir: string; trainTasks: number; testTasks: number; trainExamples: number; testExamples: number };
  report: { markdown: string; html: string; pngs: string[] };
  seconds: number;
}

export function demoModelConfig(vocabSize: number): T5ConfigJson {
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
    dropout_rate: 0.0,
    model_type: "t5",
  };
}

interface Budget {
  steps: number;
  batchSize: number;
  lr: number;
  maxTrainInstances: number;
  maxEvalInstances: number;
}

function budget(quick: boolean): Budget {
  return quick
    ? { steps: 60, batchSize: 16, lr: 3e-3, maxTrainInstances: 20, maxEvalInstances: 10 }
    : { steps: 400, batchSize: 32, lr: 2e-3, maxTrainInstances: 100, maxEvalInstances: 30 };
}

export const BASELINE_ENCODINGS: Record<string, Partial<EncodingOptions>> = {
  "no-instruction": { addDefinition: false, numPositiveExamples: 0 },
  definition: { addDefinition: true, numPositiveExamples: 0 },
  "definition+2pos": { addDefinition: true, numPositiveExamples: 2 },
};

export interface DemoContext {
  out: string;
  modelDir: string;
  dataDir: string;
  train: SniTask[];
  test: SniTask[];
  budget: Budget;
  seed: number;
  quiet: boolean;
  quick: boolean;
  baseConfig: RunConfig;
}

/** Trains the tiny model with one prompt encoding on the training tasks and evaluates on the test tasks. */
async function baselineRow(ctx: DemoContext, method: string): Promise<{ row: DemoRow; curve: { step: number; loss: number }[]; perCategory: Record<string, number> }> {
  const enc: EncodingOptions = { ...ctx.baseConfig.encoding, ...BASELINE_ENCODINGS[method] };
  const cfg: RunConfig = { ...ctx.baseConfig, encoding: enc, out: join(ctx.out, "runs", method) };
  const tok = loadTokenizer(ctx.modelDir);
  const tr = await trainOnTasks(cfg, ctx.train, tok, { label: method });
  const model = await T5Model.load(tr.modelDir!, { seed: ctx.seed });
  try {
    const ev = await evaluateTasks(model, tok, ctx.test, {
      encoding: enc,
      maxTargetLength: cfg.maxTargetLength,
      batchSize: cfg.eval.batchSize,
      maxNewTokens: cfg.eval.maxNewTokens,
      numBeams: 1,
      seed: ctx.seed,
      quiet: ctx.quiet,
    });
    writeEvalFiles(join(cfg.out, "eval"), ev);
    const perCategory = rougeLPerCategory(ev.metrics, ctx.test);
    return {
      row: {
        method,
        rougeL: ev.metrics.rougeL,
        exact_match: ev.metrics.exact_match,
        rouge1: ev.metrics.rouge1,
        train_steps: tr.steps,
        train_seconds: Math.round(tr.seconds * 10) / 10,
        final_loss: Math.round(tr.losses[tr.losses.length - 1] * 10000) / 10000,
      },
      curve: tr.losses.map((loss, i) => ({ step: i + 1, loss })),
      perCategory,
    };
  } finally {
    model.dispose();
  }
}

export interface GroupResult {
  rows: DemoRow[];
  curves?: Record<string, { step: number; loss: number }[]>;
  perCategory?: Record<string, Record<string, number>>;
}

/** The demo's rows, in groups that share work; a method adds its row by adding a group here. */
export const DEMO_GROUPS: { methods: string[]; run: (ctx: DemoContext, methods: string[]) => Promise<GroupResult> }[] = [
  {
    methods: Object.keys(BASELINE_ENCODINGS),
    run: async (ctx, methods) => {
      const out: GroupResult = { rows: [], curves: {}, perCategory: {} };
      for (const m of methods) {
        const r = await baselineRow(ctx, m);
        out.rows.push(r.row);
        out.curves![m] = r.curve;
        out.perCategory![m] = r.perCategory;
      }
      return out;
    },
  },
  {
    methods: ["insta", "random-k", "all-tasks"],
    run: async (ctx) => instaRows(ctx),
  },
  {
    methods: ["dio", "dio-fixed"],
    run: async (ctx, methods) => {
      const out: GroupResult = { rows: [], curves: {}, perCategory: {} };
      for (const m of methods) {
        const r = await dioDemoRow(ctx, { fixed: m === "dio-fixed" });
        out.rows.push(r.row as DemoRow);
        out.curves![m] = r.curve;
        out.perCategory![m] = r.perCategory;
      }
      return out;
    },
  },
  {
    methods: ["tagi"],
    run: async (ctx) => {
      const r = await tagiDemoRow({ out: ctx.out, modelDir: ctx.modelDir, train: ctx.train, test: ctx.test, seed: ctx.seed, quiet: ctx.quiet, quick: ctx.quick, budget: ctx.budget });
      return { rows: [r.row], curves: { tagi: r.curve } };
    },
  },
];

/**
 * INSTA on the demo: for a few unseen target tasks, train on the k training tasks whose definitions are most
 * similar to the target's (lexical embedder), on k random tasks, and on all tasks, with the same step budget;
 * the rows are means over the targets.
 */
async function instaRows(ctx: DemoContext): Promise<GroupResult> {
  const tok = loadTokenizer(ctx.modelDir);
  const nTargets = ctx.quick ? 1 : 2;
  const targets = ctx.test.filter((t) => !/reworded|wording/i.test(t.name)).slice(0, nTargets);
  const steps = Math.max(10, Math.floor(ctx.budget.steps / 2));
  const cfg: RunConfig = {
    ...ctx.baseConfig,
    steps,
    out: join(ctx.out, "runs", "insta"),
    optimizer: { ...ctx.baseConfig.optimizer, totalSteps: steps, warmupSteps: Math.round(steps * 0.05) },
  };
  const r = await selectTrain({ cfg, tok, train: ctx.train, targets: targets.length ? targets : ctx.test.slice(0, nTargets), k: 5, quiet: ctx.quiet });
  const row = (method: string, k: "insta" | "random" | "all"): DemoRow => ({
    method,
    rougeL: r.mean[k].rougeL,
    exact_match: r.mean[k].exact_match,
    rouge1: NaN,
    train_steps: steps,
    train_seconds: NaN,
    final_loss: NaN,
    targets: r.targets.length,
  });
  return { rows: [row("insta", "insta"), row("random-k", "random"), row("all-tasks", "all")] };
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const t0 = Date.now();
  const quick = o.quick ?? false;
  const seed = o.seed ?? 42;
  const b = budget(quick);
  const out = o.out;
  const dataDir = join(out, "data");
  const modelDir = join(out, "model-init");
  if (existsSync(out)) rmSync(join(out, "runs"), { recursive: true, force: true });
  mkdirSync(out, { recursive: true });

  const suite = writeSuite(dataDir, seed);
  installTokenizer(dataDir, modelDir);
  const tok = loadTokenizer(modelDir);
  const config = demoModelConfig(tok.vocabSize);
  const init = await T5Model.init(config, { seed });
  await init.save(modelDir);
  const parameters = init.parameterCount().total;
  init.dispose();

  const split = loadSplitTasks({ dataDir, maxTrainInstances: b.maxTrainInstances, maxEvalInstances: b.maxEvalInstances, seed });
  const base = defaultConfig();
  const baseConfig: RunConfig = {
    ...base,
    model: modelDir,
    data: dataDir,
    seed,
    steps: b.steps,
    batchSize: b.batchSize,
    stepsPerCall: quick ? 10 : 25,
    checkpointEvery: 100000,
    keepCheckpoints: 1,
    logEvery: 5,
    quiet: o.quiet ?? false,
    maxTargetLength: 32,
    encoding: { ...base.encoding, maxSourceLength: 256 },
    optimizer: { ...base.optimizer, lr: b.lr, warmupSteps: Math.round(b.steps * 0.05), totalSteps: b.steps },
    eval: { batchSize: 64, maxNewTokens: 24, numBeams: 1 },
  };
  const ctx: DemoContext = { out, modelDir, dataDir, train: split.train, test: split.test, budget: b, seed, quiet: o.quiet ?? false, quick, baseConfig };

  const wanted = o.methods ?? DEMO_GROUPS.flatMap((g) => g.methods);
  const known = DEMO_GROUPS.flatMap((g) => g.methods);
  for (const m of wanted) if (!known.includes(m)) throw new TypeError(`--methods: unknown method '${m}' (known: ${known.join(", ")})`);
  const rows: DemoRow[] = [];
  const curves: Record<string, { step: number; loss: number }[]> = {};
  const perCategory: Record<string, Record<string, number>> = {};
  for (const g of DEMO_GROUPS) {
    const mine = g.methods.filter((m) => wanted.includes(m));
    if (!mine.length) continue;
    const r = await g.run(ctx, mine);
    rows.push(...r.rows.filter((x) => mine.includes(x.method)));
    Object.assign(curves, r.curves ?? {});
    Object.assign(perCategory, r.perCategory ?? {});
  }
  const trainExamples = split.train.reduce((a, t) => a + t.instances.length, 0);
  const testExamples = split.test.reduce((a, t) => a + t.instances.length, 0);
  const report = await writeReport(out, {
    title: `instill demo${quick ? " (quick)" : ""}: unseen test tasks of the embedded suite`,
    rows,
    curves,
    perCategory,
    facts: {
      model: `T5 ${config.feed_forward_proj}, d_model ${config.d_model}, ${config.num_layers}+${config.num_decoder_layers} layers, ${parameters} parameters, random init`,
      data: `${suite.tasks} tasks: ${split.train.length} train (${trainExamples} examples), ${split.test.length} unseen test (${testExamples} examples)`,
      training: `${b.steps} AdamW steps, batch ${b.batchSize}, lr ${b.lr}, seed ${seed}`,
    },
  });
  return {
    rows,
    quick,
    seed,
    model: { config, parameters },
    data: { dir: dataDir, trainTasks: split.train.length, testTasks: split.test.length, trainExamples, testExamples },
    report,
    seconds: Math.round((Date.now() - t0) / 100) / 10,
  };
}

export function demoTable(r: DemoResult): string {
  return markdownTable(r.rows.map(({ method, rougeL, exact_match, final_loss, train_seconds }) => ({ method, rougeL, exact_match, final_loss, train_seconds })));
}
