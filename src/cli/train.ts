// instill train / instill eval: Tk-Instruct-style instruction tuning and evaluation.
import type { Command } from "commander";
import { int, num, parseSet, setPath } from "./parse.js";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import { evaluateTasks, writeEvalFiles } from "../eval/evaluate.js";
import { T5Model } from "../model/model.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { writeReport } from "../report/report.js";
import { parseLoraSpec, resolveConfig, type RunConfig } from "../train/config.js";
import { JsonlLogger } from "../train/logger.js";
import { train } from "../train/trainer.js";


/** `--set a.b=value` (repeatable): value parsed as JSON when it parses, else kept as a string. */
function collectSet(v: string, prev: string[] = []) {
  return [...prev, v];
}

export interface CommonFlags {
  config?: string;
  model?: string;
  data?: string;
  split?: string;
  out?: string;
  seed?: number;
  maxSourceLength?: number;
  maxTargetLength?: number;
  maxTrainInstances?: number;
  maxEvalInstances?: number;
  taskName?: boolean;
  definition?: boolean;
  pos?: number;
  neg?: number;
  explanation?: boolean;
  quiet?: boolean;
  set?: string[];
  [k: string]: unknown;
}

/** Command-line flags -> a partial RunConfig (only the flags given). */
export function overridesFromFlags(f: CommonFlags): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const put = (path: string, v: unknown) => v !== undefined && setPath(o, path, v);
  put("model", f.model);
  put("data", f.data);
  put("split", f.split);
  put("out", f.out);
  put("seed", f.seed);
  put("encoding.maxSourceLength", f.maxSourceLength);
  put("maxTargetLength", f.maxTargetLength);
  put("maxTrainInstances", f.maxTrainInstances);
  put("maxEvalInstances", f.maxEvalInstances);
  put("encoding.addTaskName", f.taskName);
  put("encoding.addDefinition", f.definition === false ? false : undefined);
  put("encoding.numPositiveExamples", f.pos);
  put("encoding.numNegativeExamples", f.neg);
  put("encoding.addExplanation", f.explanation);
  put("quiet", f.quiet);
  put("steps", f.steps);
  put("epochs", f.epochs);
  put("batchSize", f.batchSize);
  put("optimizer.lr", f.lr);
  put("optimizer.name", f.optimizer);
  put("optimizer.warmupSteps", f.warmupSteps);
  put("optimizer.gradAccumulation", f.gradAccumulation);
  put("precision", f.precision);
  put("checkpointEvery", f.checkpointEvery);
  put("keepCheckpoints", f.keepCheckpoints);
  put("stepsPerCall", f.stepsPerCall);
  put("perTask", f.perTask);
  put("onBadTask", f.onBadTask);
  if (typeof f.lora === "string") o.lora = parseLoraSpec(f.lora);
  put("eval.numBeams", f.beams);
  put("eval.maxNewTokens", f.maxNewTokens);
  put("eval.batchSize", f.evalBatchSize);
  for (const s of f.set ?? []) {
    const [k, v] = parseSet(s);
    setPath(o, k, v);
  }
  return o;
}

function addCommonOptions(c: Command): Command {
  return c
    .option("--config <file>", "run config (YAML or JSON); flags override it")
    .option("--model <dir>", "checkpoint folder (config.json + model.safetensors + tokenizer)")
    .option("--data <dir>", "data folder with tasks/ and splits/")
    .option("--split <name>", "split name under splits/ (default: default)")
    .option("--out <dir>", "output folder")
    .option("--seed <n>", "random seed", int("--seed"))
    .option("--max-source-length <n>", "max source tokens", int("--max-source-length"))
    .option("--max-target-length <n>", "max target tokens", int("--max-target-length"))
    .option("--max-train-instances <n>", "instances per training task (default 100)", int("--max-train-instances"))
    .option("--max-eval-instances <n>", "instances per test task (default 100)", int("--max-eval-instances"))
    .option("--task-name", "prepend the task name to the prompt")
    .option("--no-definition", "leave the task definition out of the prompt")
    .option("--pos <k>", "positive examples in the prompt", int("--pos"))
    .option("--neg <k>", "negative examples in the prompt", int("--neg"))
    .option("--explanation", "include explanations of examples")
    .option("--on-bad-task <policy>", "skip | fail for unreadable task files")
    .option("--beams <n>", "beam size for evaluation", int("--beams"))
    .option("--max-new-tokens <n>", "generation length for evaluation", int("--max-new-tokens"))
    .option("--eval-batch-size <n>", "evaluation batch size", int("--eval-batch-size"))
    .option("--set <key=value>", "set any config option (repeatable), e.g. --set optimizer.clipNorm=0", collectSet)
    .option("-q, --quiet", "no progress bar");
}

export function registerTrain(program: Command): void {
  addCommonOptions(
    program
      .command("train")
      .description("multi-task instruction tuning on a split's training tasks (full fine-tuning or LoRA)"),
  )
    .option("--steps <n>", "optimizer steps (0: from --epochs)", int("--steps"))
    .option("--epochs <n>", "epochs over the training examples", int("--epochs"))
    .option("--batch-size <n>", "examples per micro-batch", int("--batch-size"))
    .option("--lr <x>", "learning rate", num("--lr"))
    .option("--optimizer <name>", "adamw | adafactor")
    .option("--warmup-steps <n>", "linear warmup steps", int("--warmup-steps"))
    .option("--grad-accumulation <n>", "micro-batches per optimizer step", int("--grad-accumulation"))
    .option("--precision <p>", "training forward: auto (bf16 on CUDA, float32 on CPU) | float32 | bf16 (autocast, float32 master weights)")
    .option("--lora <spec>", "train a LoRA adapter, e.g. r=16,alpha=32,modules=q,v")
    .option("--per-task", "train one LoRA adapter per training task (teachers for TAGI)")
    .option("--checkpoint-every <n>", "checkpoint interval in steps", int("--checkpoint-every"))
    .option("--keep-checkpoints <n>", "checkpoints kept", int("--keep-checkpoints"))
    .option("--steps-per-call <n>", "optimizer steps per native call", int("--steps-per-call"))
    .option("--resume", "continue from the last checkpoint in --out")
    .action(async (f: CommonFlags & { resume?: boolean }) => {
      const cfg = resolveConfig(f.config, overridesFromFlags(f));
      if (!cfg.model) throw new TypeError("--model: required (or `model:` in --config)");
      if (!cfg.data) throw new TypeError("--data: required (or `data:` in --config)");
      const results = await train(cfg, { resume: f.resume });
      const last = results[results.length - 1];
      if (last.interrupted) {
        process.stderr.write(`instill: interrupted at step ${last.steps}; checkpoint saved in ${join(last.out, "checkpoints")}; continue with --resume\n`);
        process.exitCode = 130;
        return;
      }
      for (const r of results)
        process.stdout.write(
          `trained ${r.steps} steps in ${r.seconds.toFixed(1)} s; final loss ${r.losses[r.losses.length - 1]?.toFixed(4)}; ${r.modelDir ? `model: ${r.modelDir}` : `adapter: ${r.adapterDir}`}\n`,
        );
    });
}

export async function runEval(cfg: RunConfig, adapter: string | undefined): Promise<{ metrics: Record<string, number>; dir: string }> {
  if (!existsSync(join(cfg.model, "config.json"))) throw new Error(`--model: ${cfg.model}: no config.json (not a checkpoint folder)`);
  const tok = loadTokenizer(cfg.model);
  const split = loadSplitTasks({
    dataDir: cfg.data,
    split: cfg.split,
    maxTrainInstances: 1,
    maxEvalInstances: cfg.maxEvalInstances,
    seed: cfg.seed,
    englishOnly: cfg.englishOnly,
    onBadTask: cfg.onBadTask,
  });
  if (split.test.length === 0) throw new Error(`${cfg.data}: split '${cfg.split}' has no readable test tasks`);
  const model = await T5Model.load(cfg.model, { seed: cfg.seed });
  try {
    if (adapter) {
      if (!existsSync(join(adapter, "adapter_config.json"))) throw new Error(`--adapter: ${adapter}: no adapter_config.json (not a PEFT adapter folder)`);
      const ac = JSON.parse(readFileSync(join(adapter, "adapter_config.json"), "utf8")) as { r: number; lora_alpha: number; target_modules: string[] };
      model.addLora({ r: ac.r, alpha: ac.lora_alpha, modules: ac.target_modules.map((m) => m.replace(/_[01]$/, "")), dropout: 0 });
      await model.loadAdapter(adapter);
      model.mergeLora();
    }
    const r = await evaluateTasks(model, tok, split.test, {
      encoding: cfg.encoding,
      maxTargetLength: cfg.maxTargetLength,
      batchSize: cfg.eval.batchSize,
      maxNewTokens: cfg.eval.maxNewTokens,
      numBeams: cfg.eval.numBeams,
      seed: cfg.seed,
      quiet: cfg.quiet,
    });
    writeEvalFiles(cfg.out, r);
    const perCategory: Record<string, number> = {};
    for (const [k, v] of Object.entries(r.metrics)) {
      const m = /^rougeL_for_(.+)$/.exec(k);
      if (m && !split.test.some((t) => t.name === m[1])) perCategory[m[1]] = v;
    }
    const curves: Record<string, { step: number; loss: number }[]> = {};
    const log = JsonlLogger.read(join(cfg.model, "..", "metrics.jsonl"));
    const pts = log.filter((x) => typeof x.loss === "number").map((x) => ({ step: x.step as number, loss: x.loss as number }));
    if (pts.length) curves.train = pts;
    await writeReport(cfg.out, {
      title: `instill eval: ${cfg.model}`,
      rows: [{ method: adapter ? "adapter" : "model", rougeL: r.metrics.rougeL, exact_match: r.metrics.exact_match, rouge1: r.metrics.rouge1 }],
      perCategory: Object.keys(perCategory).length ? { [adapter ? "adapter" : "model"]: perCategory } : undefined,
      curves,
      facts: { test_tasks: split.test.length, examples: r.metrics.num_examples },
    });
    return { metrics: r.metrics, dir: cfg.out };
  } finally {
    model.dispose();
  }
}

export function registerEval(program: Command): void {
  addCommonOptions(program.command("eval").description("evaluate on a split's test tasks: official SNI metrics, predictions and a report"))
    .option("--adapter <dir>", "a PEFT LoRA adapter to apply")
    .option("--json", "print the metrics as JSON")
    .action(async (f: CommonFlags & { adapter?: string; json?: boolean }) => {
      const over = overridesFromFlags(f);
      if (!("out" in over)) over.out = "runs/eval";
      const cfg = resolveConfig(f.config, over);
      if (!cfg.model) throw new TypeError("--model: required");
      if (!cfg.data) throw new TypeError("--data: required");
      const { metrics, dir } = await runEval(cfg, f.adapter);
      if (f.json) process.stdout.write(JSON.stringify(metrics) + "\n");
      else
        process.stdout.write(
          `rougeL ${metrics.rougeL}  exact_match ${metrics.exact_match}  rouge1 ${metrics.rouge1}${metrics.rank_accuracy !== undefined ? `  rank_accuracy ${metrics.rank_accuracy}` : ""}\nwrote ${dir}/predictions.jsonl, metrics.json, report.md, report.html\n`,
        );
    });
}
