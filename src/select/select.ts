// INSTA task selection: rank pool tasks by cosine similarity of their instruction embeddings to a target's,
// and keep the top k, with an optional score threshold, exclusion of the target itself and a cap per category.
import type { Embedder, EmbeddingMatrix, ExampleLike } from "./embedder.js";
import { embedTaskMatrix, fitOnTasks, normalizeRows } from "./embedder.js";
import { createSearcher } from "./topk.js";
import type { Searcher } from "./topk.js";

export interface PoolTask {
  name: string;
  /** The instruction text that is embedded (the task definition). */
  text: string;
  /** Categories from task files; undefined when the source has none (definitions.jsonl). */
  categories?: string[];
  /** Positive examples (read by example-aware embedders such as `hybrid`). */
  examples?: ExampleLike[];
}

export interface SelectionTarget {
  /** The target's label in outputs; for a named task also what excludeSelf matches. */
  label: string;
  /** The task name when the target is a task (file or pool name); undefined for free text. */
  name?: string;
  text: string;
  categories?: string[];
  examples?: ExampleLike[];
}

export interface SelectOptions {
  k: number;
  /** Keep only tasks scoring at least this (cosine, in [-1, 1]). */
  threshold?: number;
  /** Leave out the pool task with the target's name, and pool tasks whose text equals the target's. */
  excludeSelf?: boolean;
  /** At most this many selected tasks per category (needs categories on every pool task). */
  maxPerCategory?: number;
  /** "native" (chunked exact top-k in the addon), "js" (float64 brute force) or "auto" (native when built). */
  searcher?: "native" | "js" | "auto";
  chunkRows?: number;
}

export interface SelectedTask {
  task: string;
  score: number;
  categories?: string[];
}

export interface Selection {
  target: string;
  selected: SelectedTask[];
}

export interface SelectionRun {
  selections: Selection[];
  /** Embedding dimension (lexical: vocabulary size). */
  dim: number;
  searcher: "native" | "js";
  /** Time spent embedding and searching (ms). */
  embedMs: number;
  searchMs: number;
}

export class SelectionError extends Error {}

function validate(pool: PoolTask[], opts: SelectOptions): void {
  if (!Number.isInteger(opts.k) || opts.k < 1) throw new RangeError(`k must be a positive integer, got ${opts.k}`);
  if (opts.threshold !== undefined && !Number.isFinite(opts.threshold)) throw new RangeError(`threshold must be a finite number, got ${opts.threshold}`);
  if (opts.maxPerCategory !== undefined) {
    if (!Number.isInteger(opts.maxPerCategory) || opts.maxPerCategory < 1)
      throw new RangeError(`maxPerCategory must be a positive integer, got ${opts.maxPerCategory}`);
    const without = pool.filter((t) => !t.categories || t.categories.length === 0);
    if (without.length)
      throw new SelectionError(
        `a cap per category needs categories, which come from task files; ${without.length} of ${pool.length} pool tasks have none (e.g. ${without[0].name})` +
          (without.length === pool.length ? ": this pool (e.g. definitions.jsonl) carries no categories" : ""),
      );
  }
  if (pool.length === 0) throw new SelectionError("the pool is empty");
  if (opts.k > pool.length) throw new RangeError(`k (${opts.k}) exceeds the pool size (${pool.length} tasks)`);
  const seen = new Set<string>();
  for (const t of pool) {
    if (seen.has(t.name)) throw new SelectionError(`the pool holds task '${t.name}' twice`);
    seen.add(t.name);
  }
}

/** Filters ranked candidates; returns the kept tasks and whether more candidates could still change them. */
function filterCandidates(
  target: SelectionTarget,
  pool: PoolTask[],
  idx: Int32Array,
  scores: Float32Array,
  from: number,
  count: number,
  opts: SelectOptions,
): { kept: SelectedTask[]; done: boolean } {
  const kept: SelectedTask[] = [];
  const perCat = new Map<string, number>();
  const targetText = target.text.trim();
  for (let j = 0; j < count; j++) {
    const t = pool[idx[from + j]];
    const score = scores[from + j];
    if (opts.threshold !== undefined && score < opts.threshold) return { kept, done: true };  // sorted: nothing after passes
    if (opts.excludeSelf && ((target.name !== undefined && t.name === target.name) || t.text.trim() === targetText)) continue;
    if (opts.maxPerCategory !== undefined) {
      const cats = t.categories ?? [];
      if (cats.some((c) => (perCat.get(c) ?? 0) >= opts.maxPerCategory!)) continue;
      for (const c of cats) perCat.set(c, (perCat.get(c) ?? 0) + 1);
    }
    kept.push({ task: t.name, score, ...(t.categories ? { categories: t.categories } : {}) });
    if (kept.length === opts.k) return { kept, done: true };
  }
  return { kept, done: false };
}

/**
 * Selects training tasks for each target. The pool is embedded once (the embedder is first fitted on the
 * pool's texts when it has fit(), or on its tasks with their examples when it has fitTasks()), rows are
 * L2-normalized, and every target is searched exactly; when filters drop candidates the search widens (k'
 * doubles) until k tasks pass or the pool is exhausted.
 */
export async function selectTasks(
  pool: PoolTask[],
  targets: SelectionTarget[],
  embedder: Embedder,
  opts: SelectOptions,
): Promise<SelectionRun> {
  validate(pool, opts);
  const t0 = performance.now();
  await fitOnTasks(embedder, pool);
  const poolM = normalizeRows(await embedTaskMatrix(embedder, pool));
  const targetM = targets.length
    ? normalizeRows(await embedTaskMatrix(embedder, targets))
    : { data: new Float32Array(0), rows: 0, dim: poolM.dim };
  if (targetM.dim !== poolM.dim) throw new SelectionError(`${embedder.name}: targets embed to dimension ${targetM.dim} but the pool to ${poolM.dim}`);
  const t1 = performance.now();
  const searcher: Searcher = createSearcher(poolM, opts.searcher ?? "auto", opts.chunkRows);
  const N = pool.length;
  const selections: Selection[] = targets.map((t) => ({ target: t.label, selected: [] }));
  try {
    const filtering = opts.excludeSelf || opts.maxPerCategory !== undefined;
    let kq = Math.min(N, opts.maxPerCategory !== undefined ? Math.max(4 * opts.k, opts.k + 16) : opts.k + (filtering ? 1 : 0));
    let pending = targets.map((_, i) => i);
    while (pending.length) {
      const q: EmbeddingMatrix = {
        data: new Float32Array(pending.length * poolM.dim),
        rows: pending.length,
        dim: poolM.dim,
      };
      pending.forEach((ti, r) => q.data.set(targetM.data.subarray(ti * poolM.dim, (ti + 1) * poolM.dim), r * poolM.dim));
      const out = await searcher.search(q, kq);
      const next: number[] = [];
      pending.forEach((ti, r) => {
        const { kept, done } = filterCandidates(targets[ti], pool, out.indices, out.scores, r * kq, kq, opts);
        selections[ti].selected = kept;
        if (!done && kq < N) next.push(ti);
      });
      pending = next;
      kq = Math.min(N, kq * 2);
    }
  } finally {
    searcher.dispose();
  }
  const t2 = performance.now();
  return { selections, dim: poolM.dim, searcher: searcher.kind, embedMs: t1 - t0, searchMs: t2 - t1 };
}
