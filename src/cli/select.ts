// instill select: INSTA task selection from the command line.
//   instill select --pool <tasks dir | definitions.jsonl> (--target FILE | --target-task NAME... | --target-text "..."
//                  | --target-list FILE) --k K [--embedder hybrid] [--threshold T] [--exclude-self]
//                  [--max-per-category N] [--train-tasks FILE] [--json]
import type { Command } from "commander";
import { cachedEmbedder, DEFAULT_CACHE_DIR, EmbeddingCache } from "../select/cache.js";
import { loadPool, restrictPool, targetFromFile, targetsFromNames } from "../select/pool.js";
import { createEmbedder, DEFAULT_EMBEDDER } from "../select/registry.js";
import { selectTasks } from "../select/select.js";
import type { SelectionTarget } from "../select/select.js";
import { readTaskList } from "../data/sni.js";

interface SelectCliOptions {
  pool?: string;
  target: string[];
  targetTask: string[];
  targetText: string[];
  targetList?: string;
  skipMissing?: boolean;
  k?: string;
  embedder: string;
  threshold?: string;
  excludeSelf?: boolean;
  maxPerCategory?: string;
  trainTasks?: string;
  json?: boolean;
  cache: string | false;
  searcher: string;
}

const collect = (v: string, prev: string[]) => [...prev, v];

function positiveInt(v: string | undefined, arg: string): number {
  if (v === undefined) throw new Error(`${arg} is required`);
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${arg}: expected a positive integer, got '${v}'`);
  return n;
}

export function registerSelect(program: Command): void {
  program
    .command("select")
    .description("INSTA: pick the training tasks whose instructions are most similar to a target's (exact cosine top-k)")
    .option("--pool <path>", "folder of SNI task files, or a definitions.jsonl ({task, definition, ...} per line)")
    .option("--target <file>", "target task file (.json SNI task; any other file is read as the instruction text); repeatable", collect, [])
    .option("--target-task <names...>", "target tasks by name, looked up in the whole pool (before --train-tasks)", [])
    .option("--target-text <text>", "a free-text target instruction; repeatable", collect, [])
    .option("--target-list <file>", "a file of target task names, one per line (e.g. splits/default/test_tasks.txt)")
    .option("--skip-missing", "skip target names that are not in the pool (with a note) instead of failing")
    .option("--k <k>", "tasks to select per target")
    .option(
      "--embedder <name>",
      "embedder: hybrid (the default: BM25 over the instruction + the output shape of its positive examples), lexical[:bm25|raw|plain|nostem|nobigram] (TF-IDF with bigrams), " +
        "encoder:<checkpoint dir>[,pool=mean|firstlast], trained:<dir> (instill select-embedder train), hybrid:trained=<dir> (both), " +
        "aligned:<dir> (instill select-embedder train --method aligned; hybrid + a channel aligned on the pool's task names)",
      DEFAULT_EMBEDDER,
    )
    .option("--threshold <t>", "keep only tasks with cosine similarity >= t")
    .option("--exclude-self", "leave out the target task itself (same name, or identical instruction text)")
    .option("--max-per-category <n>", "at most n selected tasks per category (needs task files: definitions.jsonl has no categories)")
    .option("--train-tasks <file>", "restrict the pool to the task names in this file (e.g. splits/default/train_tasks.txt)")
    .option("--cache <dir>", "embedding cache folder (for embedders with a stable identity)", DEFAULT_CACHE_DIR)
    .option("--no-cache", "do not read or write the embedding cache")
    .option("--searcher <kind>", "top-k: native (chunked, in the addon), js (float64 brute force) or auto", "auto")
    .option("--json", "print JSON {target: [{task, score}]}")
    .action(async (o: SelectCliOptions) => {
      if (!o.pool) throw new Error("--pool is required (a folder of task files or a definitions.jsonl)");
      const k = positiveInt(o.k, "--k");
      let threshold: number | undefined;
      if (o.threshold !== undefined) {
        threshold = Number(o.threshold);
        if (o.threshold.trim() === "" || !Number.isFinite(threshold)) throw new RangeError(`--threshold: expected a number, got '${o.threshold}'`);
      }
      const maxPerCategory = o.maxPerCategory === undefined ? undefined : positiveInt(o.maxPerCategory, "--max-per-category");
      if (!["native", "js", "auto"].includes(o.searcher)) throw new RangeError(`--searcher: expected native, js or auto, got '${o.searcher}'`);

      const loaded = loadPool(o.pool);
      for (const s of loaded.skipped) process.stderr.write(`note: skipped ${s.file}: ${s.reason}\n`);
      if (maxPerCategory !== undefined && loaded.source === "definitions")
        throw new Error(`--max-per-category: unavailable for ${o.pool}: definitions.jsonl carries no categories (use a folder of task files)`);

      const targets: SelectionTarget[] = [];
      for (const f of o.target) targets.push(targetFromFile(f));
      const names = [...o.targetTask];
      if (o.targetList) names.push(...readTaskList(o.targetList));
      if (names.length) {
        const arg = o.targetTask.length ? "--target-task" : "--target-list";
        const r = targetsFromNames(names, loaded.tasks, arg, o.skipMissing);
        if (r.missing.length) process.stderr.write(`note: ${r.missing.length} target name(s) not in the pool, skipped: ${r.missing.join(", ")}\n`);
        targets.push(...r.targets);
      }
      o.targetText.forEach((t) => {
        if (!t.trim()) throw new Error("--target-text: empty text");
        targets.push({ label: t, text: t });
      });
      if (!targets.length) throw new Error("no target: give --target FILE, --target-task NAME..., --target-list FILE or --target-text TEXT");

      let pool = loaded.tasks;
      if (o.trainTasks) {
        const r = restrictPool(pool, o.trainTasks);
        if (r.missing.length) process.stderr.write(`note: ${r.missing.length} --train-tasks name(s) are not in the pool: ${r.missing.slice(0, 5).join(", ")}${r.missing.length > 5 ? ", ..." : ""}\n`);
        pool = r.tasks;
        if (!pool.length) throw new Error(`--train-tasks: none of the names in ${o.trainTasks} are in the pool ${o.pool}`);
      }
      if (k > pool.length) throw new RangeError(`--k: ${k} exceeds the pool size (${pool.length} tasks)`);

      let embedder = await createEmbedder(o.embedder);
      const cache = o.cache === false ? undefined : new EmbeddingCache(o.cache);
      if (cache) embedder = cachedEmbedder(embedder, cache);
      const t0 = performance.now();
      const run = await selectTasks(pool, targets, embedder, {
        k,
        threshold,
        excludeSelf: !!o.excludeSelf,
        maxPerCategory,
        searcher: o.searcher as "native" | "js" | "auto",
      });
      const ms = performance.now() - t0;
      if (o.json) {
        const out: Record<string, { task: string; score: number }[]> = {};
        for (const s of run.selections) out[s.target] = s.selected.map((x) => ({ task: x.task, score: Number(x.score.toFixed(6)) }));
        process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      } else {
        const lines: string[] = [];
        for (const s of run.selections) {
          lines.push(`${s.target}`);
          if (!s.selected.length) lines.push("  (no task passes the filters)");
          s.selected.forEach((x, i) => {
            const cat = x.categories?.length ? `  [${x.categories.join(", ")}]` : "";
            lines.push(`  ${String(i + 1).padStart(3)}  ${x.score.toFixed(4)}  ${x.task}${cat}`);
          });
          lines.push("");
        }
        process.stdout.write(lines.join("\n"));
      }
      process.stderr.write(
        `selected for ${targets.length} target(s) from ${pool.length} tasks with ${embedder.name} (dim ${run.dim}, ${run.searcher} top-k) ` +
          `in ${(ms / 1000).toFixed(2)} s (embed ${(run.embedMs / 1000).toFixed(2)} s, search ${(run.searchMs / 1000).toFixed(2)} s)\n`,
      );
    });
}
