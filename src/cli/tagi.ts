// instill tagi teach | pretrain | train | generate | eval: task adapters generated from instructions (src/tagi).
import type { Command } from "commander";
import { choice, int, num } from "./parse.js";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { loadSplitTasks } from "../data/index.js";
import { readSniTask } from "../data/sni.js";
import { initProcessGroup, isWriter, type ProcessGroup } from "../dist/index.js";
import { writeEvalFiles } from "../eval/evaluate.js";
import { loadTokenizer } from "../model/tokenizer.js";
import { parseLoraSpec, resolveConfig } from "../train/config.js";
import { JsonlLogger } from "../train/logger.js";
import { CheckpointManager } from "../train/checkpoint.js";
import { train } from "../train/trainer.js";
import { writeFileAtomic } from "../util/fs.js";
import { DEFAULT_LOSS, pretrainExamples, Tagi, tagiExamples, tagiResumePoint, taskInstruction, type StageResult, type TagiCheckpointState, type TagiDataOptions } from "../tagi/tagi.js";
import type { TagiHypernetOptions } from "../native/types.js";


interface Flags {
  model: string;
  data: string;
  out: string;
  split: string;
  seed: number;
  steps: number;
  batchSize: number;
  lr: number;
  maxTrainInstances: number;
  maxEvalInstances: number;
  rank: number;
  modules: string;
  fusion: boolean;
  hypernetInit: "lora" | "paper";
  trainBase: boolean;
  hypernet?: string;
  teachers?: string;
  kl: boolean;
  mse: boolean;
  checkpointEvery: number;
  keepCheckpoints: number;
  resume?: boolean;
  quiet?: boolean;
}

const DATA: TagiDataOptions = { maxSourceLength: 512, maxTargetLength: 64, maxInstructionLength: 256 };

function common(c: Command): Command {
  return c
    .requiredOption("--model <dir>", "base model folder")
    .option("--data <dir>", "data folder (tasks/ + splits/)", "data")
    .option("--split <name>", "split", "default")
    .option("--seed <n>", "seed", int("--seed"), 42)
    .option("--max-train-instances <n>", "instances per training task", int("--max-train-instances"), 100)
    .option("--max-eval-instances <n>", "instances per test task", int("--max-eval-instances"), 100)
    .option("--quiet", "no progress");
}

function trainingFlags(c: Command): Command {
  return c
    .requiredOption("--out <dir>", "output folder")
    .option("--steps <n>", "optimizer steps", int("--steps"), 200)
    .option("--batch-size <n>", "batch size", int("--batch-size"), 16)
    .option("--lr <x>", "learning rate", num("--lr"), 1e-3)
    .option("--rank <n>", "generated LoRA rank", int("--rank"), 8)
    .option("--modules <list>", "target modules (q,k,v,o,wi,wo)", "q,v")
    .option("--no-fusion", "do not give the encoded instruction to the decoder")
    .option("--hypernet-init <kind>", "hypernetwork init: lora (B starts near zero, A at LoRA's scale) or paper (all N(0, 1e-7))", choice("--hypernet-init", ["lora", "paper"]), "lora")
    .option("--train-base", "train the base model together with the hypernetwork", false)
    .option("--hypernet <file>", "start from this hypernet.safetensors (from pretrain)")
    .option("--checkpoint-every <n>", "checkpoint interval in steps (also at the end and on Ctrl-C)", int("--checkpoint-every"), 100)
    .option("--keep-checkpoints <n>", "checkpoints kept", int("--keep-checkpoints"), 2)
    .option("--resume", "continue from the last checkpoint in --out (any number of workers)");
}

function hyperOpts(f: Flags): TagiHypernetOptions {
  return {
    rank: f.rank,
    alpha: 2 * f.rank,
    targetModules: f.modules.split(",").map((s) => s.trim()).filter(Boolean),
    fusion: f.fusion,
    init: f.hypernetInit,
  };
}

function splitTasks(f: Flags) {
  const s = loadSplitTasks({ dataDir: f.data, split: f.split, maxTrainInstances: f.maxTrainInstances, maxEvalInstances: f.maxEvalInstances, seed: f.seed });
  for (const k of s.skipped) process.stderr.write(`instill: skipped task ${k.task}: ${k.reason}\n`);
  return s;
}

/** Base model of a TAGI run folder: <dir>/model when the base was trained, else the given one. */
function baseOf(tagiDir: string, model: string): string {
  return existsSync(join(tagiDir, "model", "config.json")) ? join(tagiDir, "model") : model;
}

async function runStage(f: Flags, stage: "pretrain" | "train"): Promise<void> {
  // Data parallelism (instill launch / torchrun variables): every rank trains on its shard of each global batch,
  // gradients are averaged natively, rank 0 alone writes the log, the weights and tagi.json.
  const pg = await initProcessGroup();
  try {
    const world = pg?.worldSize ?? 1;
    if (f.batchSize % world !== 0)
      throw new RangeError(`--batch-size ${f.batchSize} must be a multiple of the number of workers (${world}): each takes an equal share of every batch`);
    await runStageOn(f, stage, pg);
  } finally {
    pg?.dispose();
  }
}

async function runStageOn(f: Flags, stage: "pretrain" | "train", pg: ProcessGroup | undefined): Promise<void> {
  const writer = isWriter(pg);
  const world = pg?.worldSize ?? 1;
  const tok = loadTokenizer(f.model);
  const split = splitTasks(f);
  if (split.train.length === 0) throw new Error(`${f.data}: no training tasks`);
  let teachers: string[] = [];
  const index = new Map<string, number>();
  if (stage === "train" && f.teachers) {
    for (const t of split.train) {
      const d = join(f.teachers, "adapters", t.name, "adapter");
      if (existsSync(join(d, "adapter_config.json"))) {
        index.set(t.name, teachers.length);
        teachers.push(d);
      }
    }
    if (teachers.length === 0) throw new Error(`--teachers: no <dir>/adapters/<task>/adapter folders under ${f.teachers} (run 'instill tagi teach')`);
  }
  const useTeachers = teachers.length > 0 && (f.kl || f.mse);
  if (!useTeachers) teachers = [];
  if (f.checkpointEvery < 1) throw new RangeError(`--checkpoint-every: must be >= 1, got ${f.checkpointEvery}`);
  if (f.keepCheckpoints < 1) throw new RangeError(`--keep-checkpoints: must be >= 1, got ${f.keepCheckpoints}`);
  const ckpt = new CheckpointManager(f.out, f.keepCheckpoints);
  const resume = tagiResumePoint(ckpt, f.resume, { stage, batchSize: f.batchSize, seed: f.seed, trainBase: f.trainBase });
  const latest = resume?.latest;
  // The same seed on every rank: the same hypernetwork init (and the same batches below). A resumed run takes the
  // hypernetwork (and the trained base) from the checkpoint; the teachers keep the original base.
  const tagi = await Tagi.load(latest && f.trainBase ? join(latest.dir, "model") : f.model, {
    hypernet: hyperOpts(f),
    hypernetPath: latest ? join(latest.dir, "hypernet.safetensors") : f.hypernet,
    teachers: useTeachers ? teachers : undefined,
    teacherModelDir: latest && f.trainBase && useTeachers ? f.model : undefined,
    trainBase: f.trainBase,
    seed: f.seed,
  });
  try {
    const examples =
      stage === "pretrain"
        ? pretrainExamples(split.train, tok, DATA, f.seed)
        : tagiExamples(split.train, tok, DATA, { seed: f.seed, training: true, teacherIndex: useTeachers ? (n) => index.get(n) ?? -1 : undefined });
    const loss = stage === "pretrain" ? { ...DEFAULT_LOSS, ce: 1, kl: 0, mse: 0 } : { ...DEFAULT_LOSS, kl: f.kl && useTeachers ? DEFAULT_LOSS.kl : 0, mse: f.mse && useTeachers ? DEFAULT_LOSS.mse : 0, ce: useTeachers && f.kl ? DEFAULT_LOSS.ce : 1 };
    const ws = world > 1 ? { world_size: world } : {};
    const log = writer ? new JsonlLogger(join(f.out, "metrics.jsonl")) : undefined;
    if (resume) {
      log?.truncateAfter(resume.state.step);
      log?.log({ event: "resumed", step: resume.state.step, checkpoint: resume.latest.dir, ...ws });
      if (writer && !f.quiet) process.stderr.write(`${stage}: resuming from ${resume.latest.dir} (step ${resume.state.step})\n`);
    }
    const save = async (res: StageResult) => {
      if (writer) {
        const st: Omit<TagiCheckpointState, "step"> = {
          stage,
          losses: res.losses,
          ce: res.ce,
          kl: res.kl,
          mse: res.mse,
          dataPosition: res.steps * Math.min(f.batchSize, examples.length),
          total: f.steps,
          batchSize: f.batchSize,
          seed: f.seed,
          worldSize: world,
        };
        await ckpt.save(res.steps, st as unknown as Record<string, unknown>, (dir) => tagi.saveCheckpoint(dir));
      }
      // trainStage then holds every rank at a barrier until rank 0 has written the checkpoint.
    };
    const r = await tagi.trainStage(examples, tok, {
      steps: f.steps,
      batchSize: f.batchSize,
      lr: f.lr,
      optimizer: stage === "pretrain" ? "adafactor" : "adamw",
      seed: f.seed,
      loss,
      processGroup: pg,
      checkpoint: { every: f.checkpointEvery, save },
      resume,
      onSteps: (res, before) => {
        // The first step of each call also carries the hypernetwork's gradient norm per loss term (before that step).
        const g = res.termGradNorms.at(-1);
        const norms = (i: number) => (g && g.step === i ? { hypernetGradNorm: { ce: g.ce, kl: g.kl, mse: g.mse } } : {});
        for (let i = before; i < res.steps; i++)
          log?.log({ step: i + 1, loss: res.losses[i], ce: res.ce[i], kl: res.kl[i], mse: res.mse[i], ...norms(i), ...ws });
      },
      onProgress: (s, n, l) => {
        if (!f.quiet && writer) process.stderr.write(`\r${stage} ${s}/${n} loss ${l.toFixed(4)}`);
      },
    });
    if (r.interrupted) process.exitCode = 130; // Ctrl-C: checkpoint saved, exit 130 like `instill train`
    if (writer && r.interrupted) {
      if (!f.quiet) process.stderr.write("\n");
      log?.log({ event: "interrupted", steps: r.steps });
      process.stdout.write(`${stage}: interrupted after ${r.steps} of ${f.steps} steps; checkpoint in ${ckpt.root}, continue with --resume\n`);
    } else if (writer) {
      if (!f.quiet) process.stderr.write("\n");
      await tagi.save(f.out);
      writeFileAtomic(
        join(f.out, "tagi.json"),
        JSON.stringify({ stage, model: f.model, loss, teachers, info: tagi.info(), steps: r.steps, seconds: r.seconds, worldSize: world }, null, 2),
      );
      process.stdout.write(
        `${stage}: ${r.steps} steps in ${r.seconds.toFixed(1)} s${world > 1 ? ` on ${world} workers` : ""}, loss ${r.losses[0]?.toFixed(4)} -> ${r.losses[r.losses.length - 1]?.toFixed(4)}; wrote ${f.out}\n`,
      );
    }
    // No rank leaves (and no later command reads the folder) before rank 0 has written it.
    await pg?.barrier();
  } finally {
    tagi.dispose();
  }
}

export function registerTagi(program: Command): void {
  const tagi = program.command("tagi").description("task adapters generated from instructions (TAGI)");

  common(tagi.command("teach").description("train one teacher LoRA per training task (instill train --per-task)"))
    .requiredOption("--out <dir>", "output folder (adapters/<task>/adapter)")
    .option("--lora <spec>", "LoRA spec", "r=8,alpha=16,modules=q,v")
    .option("--steps <n>", "steps per task", int("--steps"), 100)
    .action(async (f: Flags & { lora: string }) => {
      const cfg = resolveConfig(undefined, { model: f.model, data: f.data, out: f.out, seed: f.seed, steps: f.steps, perTask: true, maxTrainInstances: f.maxTrainInstances, quiet: !!f.quiet });
      cfg.lora = parseLoraSpec(f.lora);
      // Teachers see the definition (Tk-Instruct "Definition" encoding), as the student's instruction.
      cfg.encoding = { ...cfg.encoding, addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0 };
      const res = await train(cfg);
      process.stdout.write(`teach: ${res.length} teacher adapters under ${join(f.out, "adapters")}\n`);
    });

  trainingFlags(common(tagi.command("pretrain").description("stage 1: hypernetwork pretraining (instruction = first part of a text)"))).action((f: Flags) =>
    runStage({ ...f, kl: false, mse: false }, "pretrain"),
  );

  trainingFlags(common(tagi.command("train").description("stage 2: finetuning on the meta-training tasks with distillation")))
    .option("--teachers <dir>", "output of 'instill tagi teach'")
    .option("--no-kl", "drop the KL(teacher || student) term")
    .option("--no-mse", "drop the parameter MSE term")
    .action((f: Flags) => runStage(f, "train"));

  common(tagi.command("eval").description("evaluate TAGI on the split's test tasks (ROUGE-L, exact match, rank accuracy)"))
    .requiredOption("--tagi <dir>", "output of 'instill tagi train'")
    .option("--out <dir>", "where to write predictions.jsonl and metrics.json")
    .action(async (f: Flags & { tagi: string }) => {
      const tok = loadTokenizer(f.model);
      const split = splitTasks(f);
      const t = await Tagi.load(baseOf(f.tagi, f.model), { hypernetPath: join(f.tagi, "hypernet.safetensors") });
      try {
        const ev = await t.evaluate(split.test, tok, { ...DATA, batchSize: 16, maxNewTokens: 32, seed: f.seed, quiet: f.quiet });
        if (f.out) writeEvalFiles(f.out, ev);
        const m = ev.metrics;
        const rank = m.rank_accuracy !== undefined ? { rank_accuracy: m.rank_accuracy } : {};
        process.stdout.write(JSON.stringify({ rougeL: m.rougeL, exact_match: m.exact_match, rouge1: m.rouge1, ...rank, num_examples: m.num_examples }) + "\n");
      } finally {
        t.dispose();
      }
    });

  tagi
    .command("generate")
    .description("write a PEFT adapter generated from an instruction alone")
    .requiredOption("--model <dir>", "base model folder")
    .requiredOption("--tagi <dir>", "output of 'instill tagi train'")
    .requiredOption("--out <dir>", "adapter folder to write")
    .option("--instruction <text>", "the instruction")
    .option("--task <file>", "an SNI task file (its definition is the instruction)")
    .action(async (f: { model: string; tagi: string; out: string; instruction?: string; task?: string }) => {
      if (!f.instruction === !f.task) throw new TypeError("give exactly one of --instruction or --task");
      const text = f.instruction ?? taskInstruction(readSniTask(f.task!));
      const base = baseOf(f.tagi, f.model);
      const tok = loadTokenizer(f.model);
      const t = await Tagi.load(base, { hypernetPath: join(f.tagi, "hypernet.safetensors") });
      try {
        const r = await t.writeAdapter(text.startsWith("Definition:") || f.task ? text : `Definition: ${text}`, tok, f.out, 256, base);
        const info = t.info();
        process.stdout.write(`wrote ${f.out}: ${r.modules} LoRA modules, rank ${info.rank}, generated in ${(r.seconds * 1000).toFixed(2)} ms${info.fusion ? " (note: instruction fusion is not part of a PEFT adapter)" : ""}\n`);
      } finally {
        t.dispose();
      }
    });
}
