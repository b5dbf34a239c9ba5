// instill dio train / instill dio eval: differentiable instruction optimization (src/dio). `dio train` takes
// --config run.yaml|json (any DioConfig key) under the flags given explicitly and --set key.path=value; --resume
// continues from the last checkpoint in --out; under `instill launch` it trains data-parallel.
import type { Command } from "commander";
import { int, num, parseSet, setPath } from "./parse.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import { initProcessGroup, isWriter } from "../dist/index.js";
import { evaluateDio, defaultDioConfig, resolveDioConfig, trainDio, type DioConfig } from "../dio/dio.js";
import { writeEvalFiles } from "../eval/evaluate.js";
import { loadTokenizer } from "../model/tokenizer.js";


interface TrainFlags {
  config?: string;
  set?: string[];
  resume?: boolean;
  model?: string;
  data?: string;
  split?: string;
  out?: string;
  seed?: number;
  variant?: string;
  promptLength?: number;
  init?: string;
  instructionEncoding?: string;
  demonstrations?: number;
  gumbelTau?: number;
  maxDemoLength?: number;
  hypergrad?: string;
  alpha?: number;
  damping?: number;
  metaEvery?: number;
  metaFraction?: number;
  metaBatchSize?: number;
  steps?: number;
  batchSize?: number;
  lr?: number;
  outerLr?: number;
  maxSourceLength?: number;
  maxTargetLength?: number;
  maxTrainInstances?: number;
  stepsPerCall?: number;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  fixed?: boolean;
  quiet?: boolean;
  json?: boolean;
}


/** Flags given on the command line -> a partial DioConfig (flags left out do not override the config file). */
export function dioOverridesFromFlags(f: TrainFlags): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  const put = (path: string, v: unknown) => v !== undefined && setPath(o, path, v);
  put("model", f.model);
  put("data", f.data);
  put("split", f.split);
  put("out", f.out);
  put("seed", f.seed);
  put("variant", f.variant);
  put("promptLength", f.promptLength);
  put("init", f.init);
  put("instructionEncoding", f.instructionEncoding);
  put("demonstrations.count", f.demonstrations);
  put("demonstrations.tau", f.gumbelTau);
  put("demonstrations.maxLength", f.maxDemoLength);
  put("hypergrad", f.hypergrad);
  put("alpha", f.alpha);
  put("damping", f.damping);
  put("metaEvery", f.fixed ? 0 : f.metaEvery);
  put("metaFraction", f.metaFraction);
  put("metaBatchSize", f.metaBatchSize);
  put("steps", f.steps);
  put("batchSize", f.batchSize);
  put("inner.lr", f.lr);
  put("outer.lr", f.outerLr);
  put("encoding.maxSourceLength", f.maxSourceLength);
  put("maxTargetLength", f.maxTargetLength);
  put("maxTrainInstances", f.maxTrainInstances);
  put("stepsPerCall", f.stepsPerCall);
  put("checkpointEvery", f.checkpointEvery);
  put("keepCheckpoints", f.keepCheckpoints);
  put("quiet", f.quiet);
  for (const s of f.set ?? []) setPath(o, ...parseSet(s));
  return o;
}

export function registerDio(program: Command): void {
  const dio = program.command("dio").description("DIO: learnable instructions trained by bilevel optimization (hypergradients)");
  const d = defaultDioConfig();
  dio
    .command("train")
    .description("train the model (inner) and the instructions (outer, on a meta split of the training tasks)")
    .option("--config <file>", "run config (YAML or JSON) with any DioConfig key (src/dio/dio.ts); flags override it")
    .option("--set <key=value>", "set any config key (repeatable), e.g. --set outer.clipNorm=0", (v: string, p: string[] = []) => [...p, v])
    .option("--resume", "continue from the last checkpoint in --out")
    .option("--model <dir>", "checkpoint folder (config.json, model.safetensors, tokenizer)")
    .option("--data <dir>", "data folder with tasks/ and splits/")
    .option("--split <name>", `split name (default ${d.split})`)
    .option("--out <dir>", `output folder (default ${d.out})`)
    .option("--seed <n>", `seed (default ${d.seed})`, int("--seed"))
    .option("--variant <v>", `prompt (per-task soft prompts) | embedder (instruction -> soft tokens) (default ${d.variant})`)
    .option("--prompt-length <n>", `soft tokens per instruction (default ${d.promptLength})`, int("--prompt-length"))
    .option("--init <how>", `per-task prompt init: instruction | vocab (default ${d.init})`)
    .option("--instruction-encoding <e>", `embedder reads the instruction's token embeddings | encoder states (default ${d.instructionEncoding})`)
    .option("--demonstrations <m>", "learn which of each task's first m positive examples to show (Gumbel-softmax; 0 = off)", int("--demonstrations"))
    .option("--gumbel-tau <x>", `Gumbel-softmax temperature (default ${d.demonstrations.tau})`, num("--gumbel-tau"))
    .option("--max-demo-length <n>", `tokens per demonstration (default ${d.demonstrations.maxLength})`, int("--max-demo-length"))
    .option("--hypergrad <spec>", `unroll:K | neumann:K | cg:K | fd | sama (with ,key=value options; lr defaults to the inner learning rate) (default ${d.hypergrad})`)
    .option("--alpha <x>", `Neumann step (default ${d.alpha})`, num("--alpha"))
    .option("--damping <x>", `CG damping (default ${d.damping})`, num("--damping"))
    .option("--meta-every <n>", `outer update every n inner steps, 0 = fixed instructions (default ${d.metaEvery})`, int("--meta-every"))
    .option("--meta-fraction <x>", `fraction of training tasks held out as meta tasks (default ${d.metaFraction})`, num("--meta-fraction"))
    .option("--meta-batch-size <n>", "meta batch size (default: --batch-size)", int("--meta-batch-size"))
    .option("--steps <n>", `inner steps (default ${d.steps})`, int("--steps"))
    .option("--batch-size <n>", `batch size (default ${d.batchSize})`, int("--batch-size"))
    .option("--lr <x>", `inner (model) learning rate (default ${d.inner.lr})`, num("--lr"))
    .option("--outer-lr <x>", `outer (instruction) learning rate (default ${d.outer.lr})`, num("--outer-lr"))
    .option("--max-source-length <n>", `max source tokens (default ${d.encoding.maxSourceLength})`, int("--max-source-length"))
    .option("--max-target-length <n>", `max target tokens (default ${d.maxTargetLength})`, int("--max-target-length"))
    .option("--max-train-instances <n>", `instances per training task (default ${d.maxTrainInstances})`, int("--max-train-instances"))
    .option("--steps-per-call <n>", `steps per native call (default ${d.stepsPerCall})`, int("--steps-per-call"))
    .option("--checkpoint-every <n>", `checkpoint interval in steps (default ${d.checkpointEvery})`, int("--checkpoint-every"))
    .option("--keep-checkpoints <n>", `checkpoints kept (default ${d.keepCheckpoints})`, int("--keep-checkpoints"))
    .option("--fixed", "no outer updates (the fixed-instruction baseline; same as --meta-every 0)")
    .option("--quiet", "no progress bar")
    .option("--json", "print the result as JSON")
    .action(async (f: TrainFlags) => {
      const c: DioConfig = resolveDioConfig(f.config, dioOverridesFromFlags(f));
      if (!c.model) throw new TypeError("--model: required (or `model:` in --config)");
      if (!c.data) throw new TypeError("--data: required (or `data:` in --config)");
      if (!existsSync(c.model)) throw new Error(`--model: ${c.model}: no such checkpoint folder`);
      const tok = loadTokenizer(c.model);
      const split = loadSplitTasks({ dataDir: c.data, split: c.split, maxTrainInstances: c.maxTrainInstances, seed: c.seed });
      const processGroup = await initProcessGroup();
      const writer = isWriter(processGroup);
      let r;
      try {
        r = await trainDio(c, split.train, tok, { resume: f.resume, processGroup });
      } finally {
        processGroup?.dispose();
      }
      // Ctrl-C: the checkpoint is saved; exit 130 like `instill train` (every rank, so the launcher sees it too).
      if (r.interrupted) process.exitCode = 130;
      if (!writer) return;
      const summary = {
        modelDir: r.modelDir,
        steps: r.steps,
        interrupted: r.interrupted,
        variant: c.variant,
        instructionEncoding: c.instructionEncoding,
        demonstrations: c.demonstrations.count,
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
            `, ${summary.seconds} s; ${r.interrupted ? "interrupted, resume with --resume" : `model and instructions in ${r.modelDir}`}\n`,
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
