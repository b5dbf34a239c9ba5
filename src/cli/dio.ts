// instill dio train / instill dio eval: differentiable instruction optimization (issue 8).
import type { Command } from "commander";
import { int, num } from "./parse.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import { evaluateDio, defaultDioConfig, trainDio, validateDioConfig, type DioConfig } from "../dio/dio.js";
import { writeEvalFiles } from "../eval/evaluate.js";
import { loadTokenizer } from "../model/tokenizer.js";


interface TrainFlags {
  model: string;
  data: string;
  split: string;
  out: string;
  seed: number;
  variant: "prompt" | "embedder";
  promptLength: number;
  init: "instruction" | "vocab";
  hypergrad: string;
  alpha: number;
  damping: number;
  metaEvery: number;
  metaFraction: number;
  steps: number;
  batchSize: number;
  lr: number;
  outerLr: number;
  maxSourceLength: number;
  maxTargetLength: number;
  maxTrainInstances: number;
  stepsPerCall: number;
  fixed?: boolean;
  quiet?: boolean;
  json?: boolean;
}

export function registerDio(program: Command): void {
  const dio = program.command("dio").description("DIO: learnable instructions trained by bilevel optimization (hypergradients)");
  const d = defaultDioConfig();
  dio
    .command("train")
    .description("train the model (inner) and the instructions (outer, on a meta split of the training tasks)")
    .requiredOption("--model <dir>", "checkpoint folder (config.json, model.safetensors, tokenizer)")
    .requiredOption("--data <dir>", "data folder with tasks/ and splits/")
    .option("--split <name>", "split name", "default")
    .option("--out <dir>", "output folder", d.out)
    .option("--seed <n>", "seed", int("--seed"), d.seed)
    .option("--variant <v>", "prompt (per-task soft prompts) | embedder (instruction -> soft tokens)", d.variant)
    .option("--prompt-length <n>", "soft tokens per instruction", int("--prompt-length"), d.promptLength)
    .option("--init <how>", "per-task prompt init: instruction | vocab", d.init)
    .option("--hypergrad <spec>", "unroll:K | neumann:K | cg:K | fd (with ,key=value options)", d.hypergrad)
    .option("--alpha <x>", "Neumann step", num("--alpha"), d.alpha)
    .option("--damping <x>", "CG damping", num("--damping"), d.damping)
    .option("--meta-every <n>", "outer update every n inner steps (0 = fixed instructions)", int("--meta-every"), d.metaEvery)
    .option("--meta-fraction <x>", "fraction of training tasks held out as meta tasks", num("--meta-fraction"), d.metaFraction)
    .option("--steps <n>", "inner steps", int("--steps"), d.steps)
    .option("--batch-size <n>", "batch size", int("--batch-size"), d.batchSize)
    .option("--lr <x>", "inner (model) learning rate", num("--lr"), d.inner.lr)
    .option("--outer-lr <x>", "outer (instruction) learning rate", num("--outer-lr"), d.outer.lr)
    .option("--max-source-length <n>", "max source tokens", int("--max-source-length"), d.encoding.maxSourceLength)
    .option("--max-target-length <n>", "max target tokens", int("--max-target-length"), d.maxTargetLength)
    .option("--max-train-instances <n>", "instances per training task", int("--max-train-instances"), 100)
    .option("--steps-per-call <n>", "steps per native call", int("--steps-per-call"), d.stepsPerCall)
    .option("--fixed", "no outer updates (the fixed-instruction baseline; same as --meta-every 0)")
    .option("--quiet", "no progress bar")
    .option("--json", "print the result as JSON")
    .action(async (f: TrainFlags) => {
      if (!existsSync(f.model)) throw new Error(`--model: ${f.model}: no such checkpoint folder`);
      const c: DioConfig = validateDioConfig({
        ...d,
        model: f.model,
        out: f.out,
        seed: f.seed,
        variant: f.variant,
        promptLength: f.promptLength,
        init: f.init,
        hypergrad: f.hypergrad,
        alpha: f.alpha,
        damping: f.damping,
        metaEvery: f.fixed ? 0 : f.metaEvery,
        metaFraction: f.metaFraction,
        steps: f.steps,
        batchSize: f.batchSize,
        stepsPerCall: f.stepsPerCall,
        encoding: { ...d.encoding, maxSourceLength: f.maxSourceLength },
        maxTargetLength: f.maxTargetLength,
        inner: { ...d.inner, lr: f.lr },
        outer: { ...d.outer, lr: f.outerLr },
        quiet: f.quiet ?? false,
      });
      const tok = loadTokenizer(f.model);
      const split = loadSplitTasks({ dataDir: f.data, split: f.split, maxTrainInstances: f.maxTrainInstances, seed: f.seed });
      const r = await trainDio(c, split.train, tok);
      const summary = {
        modelDir: r.modelDir,
        steps: r.steps,
        variant: c.variant,
        hypergrad: c.hypergrad,
        metaEvery: c.metaEvery,
        innerTasks: r.innerTasks.length,
        metaTasks: r.metaTasks.length,
        firstLoss: r.trainLosses[0],
        finalLoss: r.trainLosses[r.trainLosses.length - 1],
        firstMetaLoss: r.metaLosses[0] ?? null,
        finalMetaLoss: r.metaLosses[r.metaLosses.length - 1] ?? null,
        seconds: Math.round(r.seconds * 10) / 10,
        hypergradSeconds: Math.round(r.hypergradSeconds * 10) / 10,
        hvpCount: r.hvpCount,
      };
      if (f.json) process.stdout.write(JSON.stringify(summary, null, 2) + "\n");
      else
        process.stdout.write(
          `dio train: ${r.steps} steps (${c.variant}, ${c.metaEvery > 0 ? `${c.hypergrad} every ${c.metaEvery}` : "fixed instructions"}), ` +
            `loss ${summary.firstLoss?.toFixed(4)} -> ${summary.finalLoss?.toFixed(4)}` +
            (r.metaLosses.length > 0 ? `, meta loss ${summary.firstMetaLoss?.toFixed(4)} -> ${summary.finalMetaLoss?.toFixed(4)}` : "") +
            `, ${summary.seconds} s; model and instructions in ${r.modelDir}\n`,
        );
    });

  dio
    .command("eval")
    .description("evaluate a DIO model folder on the split's test tasks (official SNI ROUGE-L / exact match)")
    .requiredOption("--model <dir>", "DIO model folder (written by dio train: <out>/model)")
    .requiredOption("--data <dir>", "data folder with tasks/ and splits/")
    .option("--split <name>", "split name", "default")
    .option("--out <dir>", "where predictions.jsonl and metrics.json go (default <model>/eval)")
    .option("--seed <n>", "seed", int("--seed"), 42)
    .option("--max-eval-instances <n>", "instances per test task", int("--max-eval-instances"), 100)
    .option("--batch-size <n>", "batch size", int("--batch-size"), 16)
    .option("--max-new-tokens <n>", "generation length", int("--max-new-tokens"), 64)
    .option("--num-beams <n>", "beams", int("--num-beams"), 1)
    .option("--quiet", "no progress bar")
    .option("--json", "print metrics as JSON")
    .action(async (f: { model: string; data: string; split: string; out?: string; seed: number; maxEvalInstances: number; batchSize: number; maxNewTokens: number; numBeams: number; quiet?: boolean; json?: boolean }) => {
      const tok = loadTokenizer(f.model);
      const split = loadSplitTasks({ dataDir: f.data, split: f.split, maxEvalInstances: f.maxEvalInstances, seed: f.seed });
      if (split.test.length === 0) throw new Error(`${f.data}: split '${f.split}' has no test tasks`);
      const ev = await evaluateDio(f.model, split.test, tok, { batchSize: f.batchSize, maxNewTokens: f.maxNewTokens, numBeams: f.numBeams, seed: f.seed, quiet: f.quiet });
      writeEvalFiles(f.out ?? join(f.model, "eval"), ev);
      const m = { variant: ev.variant, softTokens: ev.softTokens, rougeL: ev.metrics.rougeL, exact_match: ev.metrics.exact_match, rouge1: ev.metrics.rouge1, num_examples: ev.metrics.num_examples };
      if (f.json) process.stdout.write(JSON.stringify(m, null, 2) + "\n");
      else
        process.stdout.write(
          `dio eval (${ev.variant}, ${ev.softTokens ? "soft tokens from the written instruction" : "written instruction only"}): ` +
            `rougeL ${m.rougeL} exact_match ${m.exact_match} rouge1 ${m.rouge1} on ${m.num_examples} examples\n`,
        );
    });
}
