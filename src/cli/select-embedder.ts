// instill select-embedder: the embedder INSTA selects with, aligned to a pool's own instruction style.
//   instill select-embedder train --pool <tasks dir | definitions.jsonl> --out DIR [--init <t5 checkpoint>]
//                                 [--steps N] [--batch B] [--lr LR] [--seed S] [--hold-out-last] ...
//   instill select-embedder eval --pool <...> [--embedder SPEC ...] [--recipe KEY=V,...] [--k 5] [--json]
//     measures without hand labels (src/select/evaluate.ts): leave-one-out precision@k of the source dataset and
//     of the task kind read from task names, of the task files' categories, example->task retrieval, and
//     held-out wording retrieval where tasks have 3+ definitions; each beside chance. Trained recipes are
//     cross-fitted over dataset folds (never measured on a task they were trained on).
//
// Both default to the pool's training split when one lies beside the pool (<data>/splits/default/train_tasks.txt
// next to <data>/tasks or <data>/definitions.jsonl), and say so; --all-tasks uses every task.
import type { Command } from "commander";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { readTaskDir, readTaskList } from "../data/sni.js";
import type { SniExample } from "../data/types.js";
import { createEmbedder } from "../select/registry.js";
import { holdOutLastDefinition, TrainedEmbedder, trainSentenceEncoder, wordingRetrieval } from "../select/trained.js";
import type { TrainEmbedderOptions, ViewSource } from "../select/trained.js";
import {
  chanceHeldOut,
  chanceMeasures,
  chanceTargets,
  crossFitSplits,
  evaluateEmbedder,
  evaluateHeldOut,
  evaluateTargets,
  kindOf,
  pairedDifference,
  trainsOnPool,
} from "../select/evaluate.js";
import type { EmbedderMeasures, EvalTask, HeldOutSplit, PairedDifference, PrecisionAtK } from "../select/evaluate.js";
import { HybridEmbedder } from "../select/hybrid.js";
import { AlignedEmbedder, parseAlignedArg } from "../select/aligned.js";
import { examplesOf, nameResolver } from "../select/pool.js";

/**
 * The training split that belongs to a pool, when there is one: `<data>/splits/default/train_tasks.txt` for a
 * pool `<data>/tasks` (a folder of task files) or `<data>/<file>.jsonl`.
 */
export function poolTrainSplit(poolPath: string): string | undefined {
  if (!existsSync(poolPath)) return undefined;
  const base = statSync(poolPath).isDirectory() ? dirname(poolPath.replace(/[\\/]+$/, "")) : dirname(poolPath);
  const candidates = [join(base, "splits", "default", "train_tasks.txt")];
  if (statSync(poolPath).isDirectory()) candidates.push(join(poolPath, "splits", "default", "train_tasks.txt"));
  return candidates.find((c) => existsSync(c));
}

/**
 * Which tasks of a pool a command works on: --train-tasks FILE, else the pool's training split when it has
 * one (said on stderr), else (or with --all-tasks) all of them.
 */
export function resolveTrainTasks(pool: string, o: { trainTasks?: string; allTasks?: boolean }, what: string): string | undefined {
  if (o.trainTasks && o.allTasks) throw new Error("--train-tasks and --all-tasks: give one of them");
  if (o.trainTasks) return o.trainTasks;
  if (o.allTasks) return undefined;
  const split = poolTrainSplit(pool);
  if (split) process.stderr.write(`note: ${what} the training split ${split} (the pool's test tasks are left out; --all-tasks uses every task)\n`);
  return split;
}

/** Tasks with all their definitions and positive examples, from a folder of task files or a definitions.jsonl. */
export function loadViewSources(path: string, trainTasks?: string): ViewSource[] {
  if (!existsSync(path)) throw new Error(`--pool: ${path}: no such file or folder`);
  let tasks: ViewSource[];
  if (statSync(path).isDirectory()) {
    const { tasks: read, skipped } = readTaskDir(path, { onBadTask: "skip" });
    for (const s of skipped) process.stderr.write(`note: skipped ${s.file}: ${s.reason}\n`);
    tasks = read.map((t) => ({ name: t.name, definitions: t.definition, positiveExamples: t.positiveExamples, categories: t.categories }));
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
    const resolve = nameResolver(tasks.map((t) => t.name));
    const keep = new Set(readTaskList(trainTasks).map(resolve));
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
  method?: string;
  options?: string;
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
  exampleViews?: string;
  nameView?: boolean;
  trainTasks?: string;
  allTasks?: boolean;
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
    .option(
      "--method <m>",
      "words (a sentence encoder trained on views of each task, InfoNCE; --init for T5) or aligned (hybrid + a low-rank channel trained on the pool's task names as weak positives; use it with --embedder aligned:<out>)",
      "words",
    )
    .option("--options <k=v,...>", "aligned: rank=32,weight=0.15,temperature=0.2,steps=200,lr=0.05,seed=0,jaccard=0.34,dataset=1,minDatasets=1,shape=0.15,explanation=0.5,input=0.35")
    .option("--init <checkpoint>", "initialize from a T5 checkpoint's encoder (and use its tokenizer); default: a word-level transformer with a vocabulary built from the pool")
    .option("--steps <n>", "optimizer steps (0 writes the untrained encoder)", "300")
    .option("--batch <n>", "tasks per step (each gives two views)", "32")
    .option("--lr <lr>", "AdamW learning rate (default 3e-3 words, 1e-4 with --init)")
    .option("--seed <s>", "initialization and sampling seed", "0")
    .option("--temperature <t>", "InfoNCE temperature", "0.2")
    .option("--dim <d>", "word model width", "128")
    .option("--layers <n>", "word model transformer layers (0: a mean-pooled embedding bag; 1+ are order-aware but far slower on CPU)", "0")
    .option("--max-len <n>", "tokens per view")
    .option("--example-views <mode>", "positive examples as views: with-definition (definition + example), alone (the example by itself) or both", "both")
    .option("--name-view", "add each task name's words as a view (weak supervision from names; names are never read at selection)")
    .option("--train-tasks <file>", "restrict the pool to the task names in this file (default: the pool's training split, when one lies beside it)")
    .option("--all-tasks", "train on every task of the pool, test tasks included")
    .option("--hold-out-last", "leave out the last definition of tasks with 3+ definitions (for `select-embedder eval`)")
    .option("--json", "print the result as JSON")
    .action(async (o: TrainFlags) => {
      if (!o.pool) throw new Error("--pool is required");
      if (!o.out) throw new Error("--out is required");
      if (o.init && !existsSync(o.init)) throw new Error(`--init: ${o.init}: no such checkpoint folder`);
      if (o.method !== "words" && o.method !== "aligned") throw new RangeError(`--method: expected words or aligned, got '${o.method}'`);
      if (o.method === "aligned") {
        const { dir, options } = parseAlignedArg(o.options);
        if (dir !== undefined) throw new RangeError(`--options: expected k=v pairs, got '${dir}'`);
        const sources = loadViewSources(o.pool, resolveTrainTasks(o.pool, o, "training on"));
        const named = sources.map((t) => ({ name: t.name, text: t.definitions[0].trim(), examples: examplesOf(t.positiveExamples) }));
        const e = new AlignedEmbedder(options);
        let lastPrint = 0;
        const t0 = performance.now();
        await e.train(named, (step, total, loss) => {
          const now = Date.now();
          if (!o.json && (now - lastPrint > 2000 || step === total)) {
            lastPrint = now;
            process.stderr.write(`step ${step}/${total} loss ${loss.toFixed(4)}\n`);
          }
        });
        e.save(o.out);
        const tr = e.lastTraining!;
        const res = {
          kind: "aligned",
          dir: o.out,
          tasks: tr.tasks,
          anchors: tr.anchors,
          positives: tr.positives,
          keys: tr.keys.length,
          steps: e.options.steps,
          options: e.options,
          firstLoss: tr.losses[0] ?? null,
          lastLoss: tr.losses.at(-1) ?? null,
          seconds: (performance.now() - t0) / 1000,
        };
        if (o.json) process.stdout.write(`${JSON.stringify(res, null, 2)}\n`);
        else
          process.stdout.write(
            `wrote aligned embedder to ${o.out}: ${res.tasks} tasks (${res.anchors} with weak positives), ${res.keys} features, rank ${e.options.rank}, ${res.steps} steps` +
              (res.firstLoss !== null ? `, loss ${res.firstLoss.toFixed(4)} -> ${res.lastLoss!.toFixed(4)}` : "") +
              ` in ${res.seconds.toFixed(1)} s\nuse it with: instill select --embedder aligned:${o.out} ...\n`,
          );
        return;
      }
      let tasks = loadViewSources(o.pool, resolveTrainTasks(o.pool, o, "training on"));
      if (o.holdOutLast) tasks = holdOutLastDefinition(tasks);
      const steps = num(o.steps, "--steps", true, 0)!;
      if (!["with-definition", "alone", "both"].includes(o.exampleViews ?? "both"))
        throw new RangeError(`--example-views: expected with-definition, alone or both, got '${o.exampleViews}'`);
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
        exampleViews: (o.exampleViews ?? "both") as TrainEmbedderOptions["exampleViews"],
        nameView: !!o.nameView,
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
    .description(
      "measure embedders without hand labels: leave-one-out precision@k of source dataset and task kind (from task names), of task-file categories, " +
        "example->task and held-out wording retrieval, each beside chance; trained recipes are cross-fitted over dataset folds",
    )
    .option("--pool <path>", "folder of SNI task files or a definitions.jsonl")
    .option("--embedder <spec>", "embedder to evaluate, fitted on the pool (repeatable; default: lexical:plain, lexical, lexical:bm25, hybrid)", (v: string, p: string[]) => [...p, v], [] as string[])
    .option(
      "--recipe <opts>",
      "a select-embedder train recipe to cross-fit, e.g. steps=300,dim=128,layers=0,lr=3e-3,temperature=0.2,examples=2,example-views=with-definition|alone|both; " +
        "measured alone and as hybrid's fourth channel (trained-weight=W, default 0.5) (repeatable)",
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .option("--k <k>", "selections per task", "5")
    .option("--folds <n>", "cross-fitting folds (by source dataset) for recipes", "2")
    .option("--train-tasks <file>", "evaluate on the task names in this file (default: the pool's training split, when one lies beside it)")
    .option("--all-tasks", "evaluate on every task of the pool")
    .option("--no-example", "skip example->task retrieval")
    .option(
      "--cross-fit",
      "held-out protocol: split the tasks into --folds folds by source dataset; every embedder is fitted on one fold and measured leave-one-out within it, " +
        "trainable ones (aligned) trained on the other folds first",
    )
    .option(
      "--baseline <spec>",
      "an embedder the others are compared with, paired (repeatable; default: lexical when measured, else the first)",
      (v: string, p: string[]) => [...p, v],
      [] as string[],
    )
    .option("--outside-split", "held-out protocol: measure on the pool's tasks outside the training split (trainable embedders are trained on the split)")
    .option(
      "--targets-outside",
      "held-out protocol, as INSTA is used: the pool's tasks outside the training split are targets that select from the split " +
        "(trainable embedders trained on the split); precision of each target's top-k split tasks against its own label",
    )
    .option("--by-kind", "also print kind@k per kind label (each embedder's mean over the queries of that kind)")
    .option("--json", "print JSON")
    .action(
      async (o: {
        pool?: string;
        embedder: string[];
        recipe: string[];
        k: string;
        folds: string;
        trainTasks?: string;
        allTasks?: boolean;
        example: boolean;
        crossFit?: boolean;
        outsideSplit?: boolean;
        targetsOutside?: boolean;
        byKind?: boolean;
        baseline: string[];
        json?: boolean;
      }) => {
        if (!o.pool) throw new Error("--pool is required");
        const k = num(o.k, "--k", true, 1)!;
        const folds = num(o.folds, "--folds", true, 2)!;
        if ([o.crossFit, o.outsideSplit, o.targetsOutside].filter(Boolean).length > 1) throw new Error("--cross-fit, --outside-split and --targets-outside: give one of them");
        const heldOut = o.crossFit || o.outsideSplit || o.targetsOutside;
        if (heldOut && o.recipe.length) throw new Error("--recipe is cross-fitted by itself; leave out --cross-fit / --outside-split / --targets-outside");
        const specs = o.embedder.length || o.recipe.length ? o.embedder : heldOut ? ["lexical:plain", "lexical", "hybrid", "aligned"] : ["lexical:plain", "lexical", "lexical:bm25", "hybrid"];
        const toEval = (t: ViewSource): EvalTask => ({
          name: t.name,
          text: t.definitions[0].trim(),
          definitions: t.definitions,
          examples: examplesOf(t.positiveExamples),
          categories: t.categories,
        });
        let sources: ViewSource[];
        let splits: HeldOutSplit[] | undefined;
        let targetSplit: { pool: number[]; targets: number[] } | undefined;
        let tasks: EvalTask[];
        if (o.outsideSplit || o.targetsOutside) {
          const flag = o.outsideSplit ? "--outside-split" : "--targets-outside";
          const split = resolveTrainTasks(o.pool, o, "training on");
          if (!split) throw new Error(`${flag}: no training split beside the pool; give --train-tasks FILE`);
          const inSplit = new Set(loadViewSources(o.pool, split).map((t) => t.name));
          const all = loadViewSources(o.pool);
          sources = [...all.filter((t) => inSplit.has(t.name)), ...all.filter((t) => !inSplit.has(t.name))];
          tasks = sources.map(toEval);
          const nIn = inSplit.size;
          const rows = tasks.map((_, i) => i);
          if (o.outsideSplit) {
            splits = [{ trainOn: rows.slice(0, nIn), evalOn: rows.slice(nIn) }];
            process.stderr.write(`note: measuring on the ${tasks.length - nIn} tasks outside the training split; trainable embedders train on its ${nIn}\n`);
          } else {
            targetSplit = { pool: rows.slice(0, nIn), targets: rows.slice(nIn) };
            process.stderr.write(`note: the ${tasks.length - nIn} tasks outside the training split select from its ${nIn}; trainable embedders train on the split\n`);
          }
        } else {
          sources = loadViewSources(o.pool, resolveTrainTasks(o.pool, o, "evaluating on"));
          tasks = sources.map(toEval);
          if (o.crossFit) splits = crossFitSplits(tasks, folds);
        }
        const multi = heldOut ? 0 : sources.filter((t) => t.definitions.length >= 3).length;
        const out: Record<string, EmbedderMeasures & { wording?: { accuracy: number; queries: number; candidates: number; chance: number } }> = {};
        out.random = targetSplit ? chanceTargets(tasks, targetSplit, k) : splits ? chanceHeldOut(tasks, splits, k) : chanceMeasures(tasks, k);
        for (const spec of specs) {
          if (targetSplit) {
            out[spec] = await evaluateTargets(tasks, spec, () => createEmbedder(spec), targetSplit, { k });
            continue;
          }
          if (splits) {
            out[spec] = await evaluateHeldOut(tasks, spec, () => createEmbedder(spec), splits, { k });
            continue;
          }
          const e = await createEmbedder(spec);
          if (trainsOnPool(e))
            throw new Error(`--embedder ${spec}: it would be trained on the names of the tasks it is measured on; use --cross-fit or --outside-split (or a folder trained elsewhere)`);
          try {
            out[spec] = await evaluateEmbedder(tasks, spec, e, { k, noExample: !o.example });
            if (multi) out[spec].wording = await wordingRetrieval(sources, e);
          } finally {
            (e as { dispose?: () => void }).dispose?.();
          }
        }
        for (const r of o.recipe) {
          const { train, weight, label } = parseRecipe(r);
          const tmp = mkdtempSync(join(tmpdir(), "instill-recipe-"));
          try {
            const fit = async (trainOn: EvalTask[], fold: number) => {
              const dir = join(tmp, `${label.replace(/[^\w.=-]+/g, "_")}-fold${fold}`);
              await trainSentenceEncoder({ ...train, tasks: trainOn.map(toViewSource), out: dir });
              return TrainedEmbedder.load(dir);
            };
            out[`recipe(${label})`] = await evaluateEmbedder(tasks, `recipe(${label})`, undefined, { k, folds, noExample: !o.example, train: fit });
            out[`hybrid+recipe(${label})`] = await evaluateEmbedder(tasks, `hybrid+recipe(${label})`, undefined, {
              k,
              folds,
              noExample: !o.example,
              train: async (trainOn, fold) => new HybridEmbedder({ extra: await fit(trainOn, fold), extraWeight: weight }),
            });
          } finally {
            rmSync(tmp, { recursive: true, force: true });
          }
        }
        // Each embedder against each baseline (lexical when measured, else the first), paired over the same queries.
        for (const b of o.baseline) if (!out[b]) throw new Error(`--baseline ${b}: not among the measured embedders (${Object.keys(out).join(", ")})`);
        const def = out.lexical ? "lexical" : Object.keys(out).find((x) => x !== "random");
        const baselines = o.baseline.length ? o.baseline : def ? [def] : [];
        type Vs = Record<string, { dataset?: PairedDifference; kind?: PairedDifference; category?: PairedDifference }>;
        const vsBy: Record<string, Vs> = {};
        for (const baseline of baselines) {
          const vs: Vs = (vsBy[baseline] = {});
          for (const [spec, m] of Object.entries(out)) {
            if (spec === "random" || spec === baseline) continue;
            const b = out[baseline];
            vs[spec] = { dataset: pairedDifference(m.dataset, b.dataset), kind: pairedDifference(m.kind, b.kind) };
            if (m.category && b.category) vs[spec].category = pairedDifference(m.category, b.category);
          }
        }
        const baseline = baselines[0];
        const vs: Vs = baseline ? vsBy[baseline] : {};
        const strip = (m: PrecisionAtK | undefined) => (m ? { ...m, perTask: undefined } : undefined);
        if (o.json) {
          const j: Record<string, unknown> = {};
          for (const [spec, m] of Object.entries(out))
            j[spec] = {
              ...m,
              dataset: strip(m.dataset),
              kind: strip(m.kind),
              category: strip(m.category),
              ...(vs[spec] ? { vs: { baseline, ...vs[spec] } } : {}),
              ...(baselines.length > 1 ? { vsAll: Object.fromEntries(baselines.filter((b) => vsBy[b][spec]).map((b) => [b, vsBy[b][spec]])) } : {}),
            };
          process.stdout.write(`${JSON.stringify(j, null, 2)}\n`);
          return;
        }
        const pk = (m: PrecisionAtK | undefined) => (m && m.queries ? m.precision.toFixed(3) : "-");
        const first = Object.values(out)[0];
        const protocol = o.crossFit
          ? `cross-fitted over ${splits!.length} folds by source dataset (fitted on, and leave-one-out within, each fold; trainable embedders trained on the other folds)`
          : o.outsideSplit
            ? `the ${first.tasks} tasks outside the training split (trainable embedders trained on the split)`
            : o.targetsOutside
              ? `the ${first.tasks} tasks outside the training split as targets selecting from its ${targetSplit!.pool.length} (trainable embedders trained on the split; chance = the split's share of the target's label)`
              : "leave-one-out";
        const lines = [
          `${heldOut ? first.tasks : tasks.length} tasks from ${basename(o.pool)}; ${protocol} precision@${k} (labelled queries: dataset ${first.dataset.queries}, kind ${first.kind.queries}` +
            (first.category ? `, category ${first.category.queries}` : "") +
            ")",
          `| embedder | dataset@${k} | kind@${k} |${first.category ? ` category@${k} |` : ""} example->task top-1 |${multi ? " wording top-1 |" : ""} seconds |`,
          `| --- | ---: | ---: |${first.category ? " ---: |" : ""} ---: |${multi ? " ---: |" : ""} ---: |`,
        ];
        for (const [spec, m] of Object.entries(out))
          lines.push(
            `| ${spec} | ${pk(m.dataset)} | ${pk(m.kind)} |${first.category ? ` ${pk(m.category)} |` : ""} ${m.example ? m.example.accuracy.toFixed(3) : "-"} |` +
              `${multi ? ` ${m.wording ? m.wording.accuracy.toFixed(3) : spec === "random" ? (1 / tasks.length).toFixed(3) : "-"} |` : ""} ${m.seconds.toFixed(1)} |`,
          );
        const fd = (d: PairedDifference | undefined) => (d ? `${d.diff >= 0 ? "+" : ""}${d.diff.toFixed(3)} [${d.lo.toFixed(3)}, ${d.hi.toFixed(3)}]` : "-");
        for (const b of baselines) {
          if (!Object.keys(vsBy[b]).length) continue;
          lines.push("", `difference from ${b}, 95% paired bootstrap interval over the labelled queries:`);
          for (const [spec, v] of Object.entries(vsBy[b]))
            lines.push(`  ${spec}: dataset@${k} ${fd(v.dataset)}, kind@${k} ${fd(v.kind)}${v.category ? `, category@${k} ${fd(v.category)}` : ""}`);
        }
        if (o.byKind) {
          const specsMeasured = Object.keys(out).filter((x) => x !== "random");
          const kinds = new Map<string, number[]>();
          tasks.forEach((t, i) => {
            const kd = kindOf(t.name);
            if (kd !== undefined && specsMeasured.every((x) => !Number.isNaN(out[x].kind.perTask?.[i] ?? NaN))) kinds.set(kd, [...(kinds.get(kd) ?? []), i]);
          });
          lines.push("", `kind@${k} by kind (queries of that kind):`, `| kind | queries | ${specsMeasured.join(" | ")} |`, `| --- | ---: |${" ---: |".repeat(specsMeasured.length)}`);
          for (const [kd, rows] of [...kinds].sort((a, b) => b[1].length - a[1].length || a[0].localeCompare(b[0])))
            lines.push(`| ${kd} | ${rows.length} | ${specsMeasured.map((x) => (rows.reduce((a, i) => a + out[x].kind.perTask![i], 0) / rows.length).toFixed(3)).join(" | ")} |`);
        }
        process.stdout.write(lines.join("\n") + "\n");
      },
    );
}

function toViewSource(t: EvalTask): ViewSource {
  return { name: t.name, definitions: t.definitions?.length ? t.definitions : [t.text], positiveExamples: t.examples };
}

/** steps=300,dim=128,layers=0,lr=3e-3,temperature=0.2,batch=32,examples=2,example-views=...,trained-weight=0.5,seed=0 */
export function parseRecipe(spec: string): { train: Omit<TrainEmbedderOptions, "tasks" | "out">; weight: number; label: string } {
  const train: Omit<TrainEmbedderOptions, "tasks" | "out"> = {};
  let weight = 0.5;
  const n = (k: string, v: string, int: boolean, min: number) => num(v, `--recipe ${k}`, int, min)!;
  for (const part of spec.split(",").map((x) => x.trim()).filter(Boolean)) {
    const [k, v = ""] = part.split("=");
    if (k === "steps") train.steps = n(k, v, true, 0);
    else if (k === "dim") train.dim = n(k, v, true, 1);
    else if (k === "layers") train.layers = n(k, v, true, 0);
    else if (k === "lr") train.lr = n(k, v, false, 0);
    else if (k === "temperature") train.temperature = n(k, v, false, 1e-6);
    else if (k === "batch") train.batch = n(k, v, true, 2);
    else if (k === "examples") train.examplesPerTask = n(k, v, true, 0);
    else if (k === "seed") train.seed = n(k, v, true, 0);
    else if (k === "example-views" && ["with-definition", "alone", "both"].includes(v)) train.exampleViews = v as TrainEmbedderOptions["exampleViews"];
    else if (k === "trained-weight") weight = n(k, v, false, 0);
    else if (k === "name-view" && (v === "1" || v === "0")) train.nameView = v === "1";
    else throw new RangeError(`--recipe: unknown option '${part}' (expected steps, dim, layers, lr, temperature, batch, examples, example-views=with-definition|alone|both, name-view=0|1, seed, trained-weight)`);
  }
  return { train, weight, label: spec };
}
