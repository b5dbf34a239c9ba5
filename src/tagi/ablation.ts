// The TAGI results table: on the embedded suite's unseen test tasks, side by side, the base model without
// instruction, the instruction-tuned baseline (definition in the input), TAGI (teachers, KL + parameter MSE,
// hypernetwork pretraining, instruction fusion), and TAGI without each of KL, parameter MSE, pretraining and
// instruction fusion.
//
// The recipe, on the demo's tiny T5 (random init: there is no pretrained checkpoint on this machine):
//   1. base:      S0 steps of multi-task training on the training tasks WITHOUT instructions (the stand-in for a
//                 pretrained LM such as T5-LM: it knows the inputs' language, not the tasks' instructions).
//   2. baselines: the base trained S1 more steps without instruction ("base, no instruction") or with the
//                 definition in the input ("definition"): both rows see S0 + S1 steps.
//   3. teachers:  one LoRA per training task on the base, definition in the input (`instill tagi teach`).
//   4. TAGI:      from the base, the base and the hypernetwork trained together (a frozen base this small cannot
//                 follow instructions through rank-8 adapters alone): P steps of hypernetwork pretraining
//                 (instance text split into "instruction" and continuation), then F = S1 - P steps of finetuning
//                 with CE + KL(teacher || student) + parameter MSE, the definition given only to the hypernetwork
//                 (and to the decoder by instruction fusion). Each ablation row drops one ingredient and keeps the
//                 rest, including F (so "no pretraining" trains P steps less).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks, writeSuite } from "../data/index.js";
import type { EncodingOptions, SniTask } from "../data/types.js";
import { demoModelConfig } from "../demo/demo.js";
import { evaluateTasks, writeEvalFiles, type EvalResult } from "../eval/evaluate.js";
import { T5Model } from "../model/model.js";
import { installTokenizer, loadTokenizer } from "../model/tokenizer.js";
import { markdownTable } from "../report/report.js";
import { defaultConfig, type RunConfig } from "../train/config.js";
import { finishedModelDir, trainOnTasks, trainPerTask } from "../train/trainer.js";
import { writeFileAtomic } from "../util/fs.js";
import { DEFAULT_LOSS, pretrainExamples, Tagi, tagiExamples, type TagiLossWeights } from "./tagi.js";

export interface AblationBudget {
  baseSteps: number; // S0
  steps: number; // S1 (baselines); TAGI: pretrainSteps + finetune
  pretrainSteps: number; // P
  teacherSteps: number;
  batchSize: number;
  teacherBatchSize: number;
  lr: number;
  teacherLr: number;
  maxTrainInstances: number;
  maxEvalInstances: number;
}

export function ablationBudget(quick: boolean): AblationBudget {
  return quick
    ? { baseSteps: 30, steps: 20, pretrainSteps: 5, teacherSteps: 4, batchSize: 16, teacherBatchSize: 8, lr: 3e-3, teacherLr: 5e-3, maxTrainInstances: 16, maxEvalInstances: 6 }
    : { baseSteps: 300, steps: 300, pretrainSteps: 50, teacherSteps: 40, batchSize: 32, teacherBatchSize: 16, lr: 2e-3, teacherLr: 5e-3, maxTrainInstances: 100, maxEvalInstances: 30 };
}

export interface AblationRow {
  method: string;
  rougeL: number;
  exact_match: number;
  rank_accuracy: number | null;
  train_steps: number;
  train_seconds: number;
  final_loss: number;
}

export interface AblationResult {
  rows: AblationRow[];
  budget: AblationBudget;
  seed: number;
  teachers: number;
  seconds: number;
  markdown: string;
}

/** The TAGI variants of the table: what each one drops. */
export const TAGI_VARIANTS: { method: string; kl: boolean; mse: boolean; pretrain: boolean; fusion: boolean }[] = [
  { method: "tagi", kl: true, mse: true, pretrain: true, fusion: true },
  { method: "tagi w/o KL", kl: false, mse: true, pretrain: true, fusion: true },
  { method: "tagi w/o parameter MSE", kl: true, mse: false, pretrain: true, fusion: true },
  { method: "tagi w/o pretraining", kl: true, mse: true, pretrain: false, fusion: true },
  { method: "tagi w/o instruction fusion", kl: true, mse: true, pretrain: true, fusion: false },
];

const NO_INSTR: Partial<EncodingOptions> = { addDefinition: false, numPositiveExamples: 0, numNegativeExamples: 0 };
const DEFINITION: Partial<EncodingOptions> = { addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0 };

function rankAccuracy(ev: EvalResult): number | null {
  const v = (ev.metrics as Record<string, unknown>).rank_accuracy;
  return typeof v === "number" ? v : null;
}

export async function runTagiAblation(o: { out: string; quick?: boolean; seed?: number; quiet?: boolean; only?: string[] }): Promise<AblationResult> {
  const t0 = Date.now();
  const quick = o.quick ?? false;
  const seed = o.seed ?? 42;
  const quiet = o.quiet ?? false;
  const b = ablationBudget(quick);
  const say = (s: string) => {
    if (!quiet) process.stderr.write(`tagi ablate: ${s}\n`);
  };
  mkdirSync(o.out, { recursive: true });
  const dataDir = join(o.out, "data");
  const initDir = join(o.out, "model-init");
  writeSuite(dataDir, seed);
  installTokenizer(dataDir, initDir);
  const tok = loadTokenizer(initDir);
  const init = await T5Model.init(demoModelConfig(tok.vocabSize, 0), { seed });
  await init.save(initDir);
  init.dispose();
  const split = loadSplitTasks({ dataDir, maxTrainInstances: b.maxTrainInstances, maxEvalInstances: b.maxEvalInstances, seed });
  const base = defaultConfig();
  const cfgFor = (model: string, out: string, enc: Partial<EncodingOptions>, steps: number): RunConfig => ({
    ...base,
    model,
    data: dataDir,
    out,
    seed,
    steps,
    batchSize: b.batchSize,
    stepsPerCall: quick ? 10 : 25,
    checkpointEvery: 1_000_000,
    keepCheckpoints: 1,
    logEvery: 5,
    quiet,
    maxTargetLength: 32,
    encoding: { ...base.encoding, maxSourceLength: 256, ...enc },
    optimizer: { ...base.optimizer, lr: b.lr, warmupSteps: Math.round(steps * 0.05), totalSteps: steps },
    eval: { batchSize: 64, maxNewTokens: 24, numBeams: 1 },
  });
  const evalOpts = { batchSize: 64, maxNewTokens: 24, numBeams: 1, seed, quiet: true };
  const rows: AblationRow[] = [];
  const want = (m: string) => !o.only || o.only.includes(m);

  // 1. the base ("pretrained LM" stand-in)
  say(`base: ${b.baseSteps} steps without instructions`);
  const baseRun = await trainOnTasks(cfgFor(initDir, join(o.out, "base"), NO_INSTR, b.baseSteps), split.train, tok, { label: "base" });
  const baseDir = finishedModelDir(baseRun);

  // 2. baselines
  for (const [method, enc] of [
    ["base, no instruction", NO_INSTR],
    ["definition (Tk-Instruct)", DEFINITION],
  ] as const) {
    if (!want(method)) continue;
    say(`${method}: ${b.steps} more steps`);
    const cfg = cfgFor(baseDir, join(o.out, "runs", method.replace(/[^a-z0-9]+/gi, "-")), enc, b.steps);
    const tr = await trainOnTasks(cfg, split.train, tok, { label: method });
    const model = await T5Model.load(finishedModelDir(tr), { seed });
    try {
      const ev = await evaluateTasks(model, tok, split.test, { ...evalOpts, encoding: cfg.encoding, maxTargetLength: cfg.maxTargetLength });
      writeEvalFiles(join(cfg.out, "eval"), ev);
      rows.push({ method, rougeL: ev.metrics.rougeL, exact_match: ev.metrics.exact_match, rank_accuracy: rankAccuracy(ev), train_steps: b.baseSteps + tr.steps, train_seconds: round1(baseRun.seconds + tr.seconds), final_loss: round4(tr.losses[tr.losses.length - 1]) });
    } finally {
      model.dispose();
    }
  }

  // 3. teachers: one LoRA per training task on the base, with the definition in the input
  const teachersDir = join(o.out, "teachers");
  let teacherDirs: string[] = [];
  const teacherIndex = new Map<string, number>();
  let teacherSeconds = 0;
  const variants = TAGI_VARIANTS.filter((v) => want(v.method));
  if (variants.some((v) => v.kl || v.mse)) {
    say(`teachers: ${split.train.length} LoRA adapters x ${b.teacherSteps} steps`);
    const cfg: RunConfig = {
      ...cfgFor(baseDir, teachersDir, DEFINITION, b.teacherSteps),
      batchSize: b.teacherBatchSize,
      lora: { r: 8, alpha: 16, dropout: 0, modules: ["q", "v"] },
      quiet: true,
    };
    cfg.optimizer = { ...cfg.optimizer, lr: b.teacherLr };
    // `instill train --per-task` / `tagi teach`: <teachersDir>/adapters/<task>/adapter, in task order.
    const trained = await trainPerTask(cfg, split.train, tok, {});
    teacherDirs = trained.map((r) => r.adapterDir!);
    split.train.forEach((t, i) => teacherIndex.set(t.name, i));
    teacherSeconds = trained.reduce((a, r) => a + r.seconds, 0);
  }

  // 4. TAGI and its ablations
  const DATA = { maxSourceLength: 256, maxTargetLength: 32, maxInstructionLength: 128 };
  for (const v of variants) {
    say(`${v.method}: ${v.pretrain ? `${b.pretrainSteps} pretraining + ` : ""}${b.steps - b.pretrainSteps} finetuning steps`);
    const useTeachers = v.kl || v.mse;
    const tagi = await Tagi.load(baseDir, {
      hypernet: { rank: 8, alpha: 16, projDim: 64, hidden: 8, targetModules: ["q", "v"], fusion: v.fusion },
      teachers: useTeachers ? teacherDirs : undefined,
      trainBase: true,
      seed,
    });
    try {
      const losses: number[] = [];
      let seconds = 0;
      if (v.pretrain) {
        const pre = await tagi.trainStage(pretrainExamples(split.train, tok, DATA, seed), tok, { steps: b.pretrainSteps, batchSize: b.batchSize, lr: b.lr, seed, loss: { ...DEFAULT_LOSS, ce: 1, kl: 0, mse: 0 } });
        losses.push(...pre.losses);
        seconds += pre.seconds;
      }
      const loss: TagiLossWeights = { ...DEFAULT_LOSS, ce: v.kl ? DEFAULT_LOSS.ce : 1, kl: v.kl ? DEFAULT_LOSS.kl : 0, mse: v.mse ? DEFAULT_LOSS.mse : 0 };
      const exs = tagiExamples(split.train, tok, DATA, { seed, training: true, teacherIndex: useTeachers ? (n) => teacherIndex.get(n) ?? -1 : undefined });
      const ft = await tagi.trainStage(exs, tok, { steps: b.steps - b.pretrainSteps, batchSize: b.batchSize, lr: b.lr, seed: seed + 1, loss });
      losses.push(...ft.losses);
      seconds += ft.seconds;
      const ev = await tagi.evaluate(split.test, tok, { ...DATA, batchSize: evalOpts.batchSize, maxNewTokens: evalOpts.maxNewTokens, seed, quiet: true });
      writeEvalFiles(join(o.out, "runs", v.method.replace(/[^a-z0-9]+/gi, "-"), "eval"), ev);
      rows.push({
        method: v.method,
        rougeL: ev.metrics.rougeL,
        exact_match: ev.metrics.exact_match,
        rank_accuracy: rankAccuracy(ev),
        train_steps: b.baseSteps + losses.length,
        train_seconds: round1(baseRun.seconds + seconds + (useTeachers ? teacherSeconds : 0)),
        final_loss: round4(ft.losses[ft.losses.length - 1]),
      });
      say(`${v.method}: rougeL ${ev.metrics.rougeL} exact_match ${ev.metrics.exact_match}`);
    } finally {
      tagi.dispose();
    }
  }

  const markdown = ablationMarkdown(rows, b, seed, teacherDirs.length, split.train, split.test);
  const result: AblationResult = { rows, budget: b, seed, teachers: teacherDirs.length, seconds: round1((Date.now() - t0) / 1000), markdown };
  writeFileAtomic(join(o.out, "ablation.md"), markdown);
  writeFileAtomic(join(o.out, "ablation.json"), JSON.stringify(result, null, 2) + "\n");
  return result;
}

function ablationMarkdown(rows: AblationRow[], b: AblationBudget, seed: number, teachers: number, train: SniTask[], test: SniTask[]): string {
  const n = test.reduce((a, t) => a + t.instances.length, 0);
  return [
    `# TAGI on the embedded suite: ${test.length} unseen test tasks (${n} examples), ROUGE-L / exact match`,
    "",
    markdownTable(rows.map((r) => ({ method: r.method, rougeL: r.rougeL, exact_match: r.exact_match, ...(r.rank_accuracy !== null ? { rank_accuracy: r.rank_accuracy } : {}), train_steps: r.train_steps, final_loss: r.final_loss, train_seconds: r.train_seconds }))),
    "",
    `Base: ${b.baseSteps} steps without instructions on ${train.length} training tasks; every row then trains ${b.steps} more steps ` +
      `(TAGI: ${b.pretrainSteps} hypernetwork pretraining + ${b.steps - b.pretrainSteps} finetuning; "w/o pretraining" skips the ${b.pretrainSteps}). ` +
      `Batch ${b.batchSize}, lr ${b.lr}, seed ${seed}. Teachers: ${teachers} LoRA adapters (r 8, q,v), ${b.teacherSteps} steps each at lr ${b.teacherLr}, batch ${b.teacherBatchSize}. ` +
      `Loss weights: CE ${DEFAULT_LOSS.ce} / KL ${DEFAULT_LOSS.kl} (T ${DEFAULT_LOSS.temperature}) / MSE ${DEFAULT_LOSS.mse}; without KL, CE weight 1.`,
    "",
  ].join("\n");
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const round4 = (x: number) => Math.round(x * 10000) / 10000;

