// instill select-embedder: the embedder INSTA selects with, aligned to a pool's own instruction style.
//   instill select-embedder train --pool <tasks dir | definitions.jsonl> --out DIR [--init <t5 checkpoint>]
//                                 [--steps N] [--batch B] [--lr LR] [--seed S] [--hold-out-last] ...
//   instill select-embedder eval --pool <...> --embedder SPEC [--embedder SPEC ...] [--json]
//     held-out wording retrieval: each task's last definition must retrieve the task (its first definition)
//     top-1 among all tasks (tasks with 3+ definitions are queried).
import type { Command } from "commander";
import { existsSync, readFileSync, statSync } from "node:fs";
import { readTaskDir, readTaskList } from "../data/sni.js";
import type { SniExample } from "../data/types.js";
import { createEmbedder } from "../select/registry.js";
import { holdOutLastDefinition, trainSentenceEncoder, wordingRetrieval } from "../select/trained.js";
import type { ViewSource } from "../select/trained.js";

/** Tasks with all their definitions and positive examples, from a folder of task files or a definitions.jsonl. */
export function loadViewSources(path: string, trainTasks?: string): ViewSource[] {
  if (!existsSync(path)) throw new Error(`--pool: ${path}: no such file or folder`);
  let tasks: ViewSource[];
  if (statSync(path).isDirectory()) {
    const { tasks: read, skipped } = readTaskDir(path, { onBadTask: "skip" });
    for (const s of skipped) process.stderr.write(`note: skipped ${s.file}: ${s.reason}\n`);
    tasks = read.map((t) => ({ name: t.name, definitions: t.definition, positiveExamples: t.positiveExamples }));
  } else if (path.endsWith(".jsonl")) {
    tasks = [];
    readFileSync(path, "utf8").split(/\r?\n/).forEach((line, i) => {
      if (!line.trim()) return;
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch (e) {
        throw new Error(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
      }
      const defs = typeof o.definition === "string" ? [o.definition] : Array.isArray(o.definition) ? o.definition.filter((d): d is string => typeof d === "string") : [];
      if (typeof o.task !== "string" || !defs.length) throw new Error(`${path}:${i + 1}: expected {"task": string, "definition": string | string[]}`);
      const pos = Array.isArray(o.positive_examples) ? (o.positive_examples as SniExample[]).filter((e) => e && typeof e.input === "string" && typeof e.output === "string") : [];
      tasks.push({ name: o.task, definitions: defs, positiveExamples: pos });
    });
  } else {
    throw new Error(`--pool: ${path}: expected a folder of SNI task files or a definitions .jsonl file`);
  }
  if (trainTasks) {
    const keep = new Set(readTaskList(trainTasks));
    tasks = tasks.filter((t) => keep.has(t.name));
  }
  tasks = tasks.filter((t) => t.definitions.some((d) => d.trim()));
  if (!tasks.length) throw new Error(`--pool: ${path}: no task with a definition`);
  return tasks;
}

function num(v: string | undefined, arg: string, int: boolean, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min)
    throw new RangeError(`${arg}: expected ${int ? "an integer" : "a number"} >= ${min}, got '${v}'`);
  return n;
}

interface TrainFlags {
  pool?: string;
  out?: string;
  init?: string;
  steps?: string;
  batch?: string;
  lr?: string;
  seed?: string;
  temperature?: string;
  dim?: string;
  layers?: string;
  maxLen?: string;
  trainTasks?: string;
  holdOutLast?: boolean;
  json?: boolean;
}

export function registerSelectEmbedder(program: Command): void {
  const cmd = program.command("select-embedder").description("INSTA: train (align) and evaluate the instruction embedder used by `instill select`");
  cmd
    .command("train")
    .description("train a sentence encoder contrastively (InfoNCE, in-batch negatives) on a pool's instructions; use it with --embedder trained:<out>")
    .option("--pool <path>", "folder of SNI task files (all definitions and positive examples are used), or a definitions.jsonl")
    .option("--out <dir>", "folder to write the embedder to")
    .option("--init <checkpoint>", "initialize from a T5 checkpoint's encoder (and use its tokenizer); default: a word-level transformer with a vocabulary built from the pool")
    .option("--steps <n>", "optimizer steps (0 writes the untrained encoder)", "300")
    .option("--batch <n>", "tasks per step (each gives two views)", "32")
    .option("--lr <lr>", "AdamW learning rate (default 3e-3 words, 1e-4 with --init)")
    .option("--seed <s>", "initialization and sampling seed", "0")
    .option("--temperature <t>", "InfoNCE temperature", "0.05")
    .option("--dim <d>", "word model width", "128")
    .option("--layers <n>", "word model transformer layers (0: a mean-pooled embedding bag; 1+ are order-aware but far slower on CPU)", "0")
    .option("--max-len <n>", "tokens per view")
    .option("--train-tasks <file>", "restrict the pool to the task names in this file")
    .option("--hold-out-last", "leave out the last definition of tasks with 3+ definitions (for `select-embedder eval`)")
    .option("--json", "print the result as JSON")
    .action(async (o: TrainFlags) => {
      if (!o.pool) throw new Error("--pool is required");
      if (!o.out) throw new Error("--out is required");
      if (o.init && !existsSync(o.init)) throw new Error(`--init: ${o.init}: no such checkpoint folder`);
      let tasks = loadViewSources(o.pool, o.trainTasks);
      if (o.holdOutLast) tasks = holdOutLastDefinition(tasks);
      const steps = num(o.steps, "--steps", true, 0)!;
      let lastPrint = 0;
      const res = await trainSentenceEncoder({
        tasks,
        out: o.out,
        init: o.init,
        steps,
        batch: num(o.batch, "--batch", true, 2),
        lr: num(o.lr, "--lr", false, 0),
        seed: num(o.seed, "--seed", true, 0),
        temperature: num(o.temperature, "--temperature", false, 1e-6),
        dim: num(o.dim, "--dim", true, 1),
        layers: num(o.layers, "--layers", true, 0),
        maxLength: num(o.maxLen, "--max-len", true, 1),
        onProgress: o.json
          ? undefined
          : (e) => {
              const now = Date.now();
              if (now - lastPrint > 2000 || e.step === e.total) {
                lastPrint = now;
                process.stderr.write(`step ${e.step}/${e.total} loss ${Number(e.loss).toFixed(4)}\n`);
              }
            },
      });
      if (o.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
      else
        process.stdout.write(
          `wrote ${res.kind} embedder to ${res.dir}: ${res.tasks} tasks, ${res.views} views, vocabulary ${res.vocabSize}, ${res.steps} steps` +
            (res.firstLoss !== null ? `, loss ${res.firstLoss.toFixed(4)} -> ${res.lastLoss!.toFixed(4)}` : "") +
            ` in ${res.seconds.toFixed(1)} s\nuse it with: instill select --embedder trained:${res.dir} ...\n`,
        );
    });
  cmd
    .command("eval")
    .description("held-out wording retrieval: each task's last definition must retrieve its own task (first definition) top-1 among all tasks")
    .option("--pool <path>", "folder of SNI task files or a definitions.jsonl with several definitions per task")
    .option("--embedder <spec>", "embedder to evaluate (repeatable)", (v: string, p: string[]) => [...p, v], [] as string[])
    .option("--train-tasks <file>", "restrict the pool to the task names in this file")
    .option("--json", "print JSON")
    .action(async (o: { pool?: string; embedder: string[]; trainTasks?: string; json?: boolean }) => {
      if (!o.pool) throw new Error("--pool is required");
      if (!o.embedder.length) o.embedder = ["lexical"];
      const tasks = loadViewSources(o.pool, o.trainTasks);
      const out: Record<string, { accuracy: number; queries: number; candidates: number; chance: number }> = {};
      for (const spec of o.embedder) {
        const e = await createEmbedder(spec);
        try {
          out[spec] = await wordingRetrieval(tasks, e);
        } finally {
          (e as { dispose?: () => void }).dispose?.();
        }
      }
      if (o.json) process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      else
        for (const [spec, r] of Object.entries(out))
          process.stdout.write(`${(r.accuracy * 100).toFixed(1).padStart(5)}%  (${r.queries} queries, ${r.candidates} tasks, chance ${(r.chance * 100).toFixed(1)}%)  ${spec}\n`);
    });
}
