// Measures of selection quality that need no hand labels (`instill select-embedder eval`):
//   - dataset@k: leave-one-out over the pool, the share of a task's top-k selections from its own source dataset,
//     read from the task name (task1342_amazon_us_reviews_title -> "amazon"; the first word after the number);
//   - kind@k: the same with a task kind read from keywords of the name (translation, question generation,
//     question answering, sentiment analysis, ...; SNI's categories are named the same way), a stand-in for the
//     task categories;
//   - category@k: the same with the `Categories` of SNI task files, where the pool has them;
//   - example->task top-1: a task's positive example, embedded as text, retrieves its own task;
//   - held-out wording top-1, for pools with 3+ definitions per task (the embedded suite).
// Each precision comes with chance (the expected precision of k random picks: (group size - 1) / (N - 1),
// averaged over the labelled queries) and lift = precision / chance. Tasks whose label is unknown or unique in
// the pool are not queried (they still compete as candidates).
//
// Embedders that are trained (select-embedder train) are cross-fitted: the pool is split into folds by source
// dataset, the embedder is trained on the other folds and embeds only the held-out fold, so no measure is taken
// on a task it was trained on, and no dataset is on both sides.
import { createHash } from "node:crypto";
import type { Embedder, EmbeddingMatrix, ExampleLike, TaskText } from "./embedder.js";
import { embedTaskMatrix, fitOnTasks, normalizeRows } from "./embedder.js";

/** A task as the evaluation sees it. */
export interface EvalTask extends TaskText {
  name: string;
  categories?: string[];
  /** All definitions (several wordings where the source has them). */
  definitions?: string[];
}

/** Words that start task names without naming a dataset (task648_answer_generation). */
const GENERIC_FIRST = new Set(
  "answer answers question questions generation classification count find check synthetic qa text sentence sentences word words get is".split(" "),
);

/** The source dataset in a task name: the first word after `taskNNN_`, unless it is a generic word. */
export function datasetOf(name: string): string | undefined {
  const m = /^task\d+_([a-z0-9]+)/i.exec(name);
  if (!m) return undefined;
  const w = m[1].toLowerCase();
  return GENERIC_FIRST.has(w) ? undefined : w;
}

/** Name keywords -> a task kind (SNI category names), first match wins. */
export const KIND_RULES: ReadonlyArray<readonly [string, string]> = [
  ["translat", "translation"],
  ["title", "title generation"],
  ["summar", "summarization"],
  ["paraphras", "paraphrasing"],
  ["sentiment", "sentiment analysis"],
  ["polarity", "sentiment analysis"],
  ["emotion", "sentiment analysis"],
  ["question_generation", "question generation"],
  ["incorrect_answer", "wrong candidate generation"],
  ["wrong_answer", "wrong candidate generation"],
  ["answer_generation", "question answering"],
  ["answering", "question answering"],
  ["entailment", "textual entailment"],
  ["nli", "textual entailment"],
  ["coreference", "coreference resolution"],
  ["pos_tagging", "pos tagging"],
  ["_ner", "named entity recognition"],
  ["named_entity", "named entity recognition"],
  ["language_identification", "language identification"],
  ["toxic", "toxic language detection"],
  ["hate", "toxic language detection"],
  ["offensive", "toxic language detection"],
  ["abusive", "toxic language detection"],
  ["sql", "program execution"],
  ["code", "program execution"],
  ["grammar", "grammar error detection"],
  ["dialog", "dialogue"],
  ["ordering", "sentence ordering"],
  ["fill", "fill in the blank"],
  ["blank", "fill in the blank"],
  ["perturbation", "sentence perturbation"],
  ["story", "story composition"],
  ["spelling", "spelling error detection"],
  ["keyword", "keyword tagging"],
  ["question_rewriting", "question rewriting"],
  ["data_to_text", "data to text"],
  ["cause_effect", "cause effect classification"],
  ["stereotype", "stereotype detection"],
  ["fact", "fact verification"],
  ["arithmetic", "mathematics"],
  ["math", "mathematics"],
  ["sentence_generation", "sentence composition"],
  ["completion", "text completion"],
];

/** The task kind named by keywords of a task name, or undefined. */
export function kindOf(name: string): string | undefined {
  const s = name.toLowerCase().replace(/^task\d+/, "");
  for (const [k, v] of KIND_RULES) if (s.includes(k)) return v;
  return undefined;
}

/** Labels with singletons (and undefined) removed: only labels shared by 2+ tasks can be retrieved. */
export function sharedLabels(labels: (string | undefined)[]): (string | undefined)[] {
  const c = new Map<string, number>();
  for (const l of labels) if (l !== undefined) c.set(l, (c.get(l) ?? 0) + 1);
  return labels.map((l) => (l !== undefined && (c.get(l) as number) >= 2 ? l : undefined));
}

/** An inverted index over the non-zero columns of a matrix: dot products cost what the non-zeros cost. */
class ColumnIndex {
  private readonly rows: Int32Array[];
  private readonly vals: Float64Array[];
  constructor(readonly m: EmbeddingMatrix) {
    const { rows: N, dim: D, data } = m;
    const count = new Int32Array(D);
    for (let i = 0; i < N * D; i++) if (data[i] !== 0) count[i % D]++;
    this.rows = Array.from(count, (c) => new Int32Array(c));
    this.vals = Array.from(count, (c) => new Float64Array(c));
    const fill = new Int32Array(D);
    for (let r = 0; r < N; r++)
      for (let j = 0; j < D; j++) {
        const v = data[r * D + j];
        if (v !== 0) {
          this.rows[j][fill[j]] = r;
          this.vals[j][fill[j]++] = v;
        }
      }
  }
  /** out[r] = <row r of the indexed matrix, q[off .. off + dim)>. */
  scores(q: Float32Array, off: number, out: Float64Array): void {
    out.fill(0);
    for (let j = 0; j < this.m.dim; j++) {
      const v = q[off + j];
      if (v === 0) continue;
      const rs = this.rows[j];
      const vs = this.vals[j];
      for (let t = 0; t < rs.length; t++) out[rs[t]] += v * vs[t];
    }
  }
}

/** Row indices of the k highest scores (ties: lower row first). */
function topIndices(s: Float64Array, k: number): number[] {
  const idx = Array.from({ length: s.length }, (_, i) => i);
  idx.sort((a, b) => s[b] - s[a] || a - b);
  return idx.slice(0, k);
}

/**
 * Leave-one-out neighbours: for each row of an L2-normalized matrix, the k other rows of highest cosine
 * (ties: lower row first), exact, through an inverted index over non-zero columns (sparse lexical vectors cost
 * what their non-zeros cost). Returns [N * k] row indices.
 */
export function leaveOneOutTopk(m: EmbeddingMatrix, k: number): Int32Array {
  const N = m.rows;
  if (!Number.isInteger(k) || k < 1 || k > N - 1) throw new RangeError(`k must be an integer in [1, ${N - 1}] (pool of ${N}), got ${k}`);
  const index = new ColumnIndex(m);
  const out = new Int32Array(N * k);
  const s = new Float64Array(N);
  for (let q = 0; q < N; q++) {
    index.scores(m.data, q * m.dim, s);
    s[q] = -Infinity;
    topIndices(s, k).forEach((r, t) => (out[q * k + t] = r));
  }
  return out;
}

export interface PrecisionAtK {
  k: number;
  /** Mean share of the top-k in the query's own group, over the labelled queries. */
  precision: number;
  /** The same for k random picks (expected value). */
  chance: number;
  /** precision / chance. */
  lift: number;
  /** Labelled queries (labels shared by 2+ tasks). */
  queries: number;
  groups: number;
  /** Per-task precision (NaN for tasks that are not queried), for paired comparisons. */
  perTask?: number[];
}

/** Precision@k of leave-one-out neighbours against labels (undefined labels are not queried). */
export function precisionAtK(neighbours: Int32Array, k: number, labels: (string | undefined)[]): PrecisionAtK {
  const L = sharedLabels(labels);
  const N = L.length;
  const size = new Map<string, number>();
  for (const l of L) if (l !== undefined) size.set(l, (size.get(l) ?? 0) + 1);
  let p = 0;
  let ch = 0;
  let q = 0;
  const perTask = new Array<number>(N).fill(NaN);
  for (let i = 0; i < N; i++) {
    const l = L[i];
    if (l === undefined) continue;
    let hit = 0;
    for (let t = 0; t < k; t++) if (labels[neighbours[i * k + t]] === l) hit++;
    perTask[i] = hit / k;
    p += hit / k;
    ch += ((size.get(l) as number) - 1) / (N - 1);
    q++;
  }
  const precision = q ? p / q : NaN;
  const chance = q ? ch / q : NaN;
  return { k, precision, chance, lift: chance > 0 ? precision / chance : NaN, queries: q, groups: size.size, perTask };
}

export interface PairedDifference {
  /** mean(a) - mean(b) over the tasks queried in both. */
  diff: number;
  /** 95% paired bootstrap interval (percentiles of 2,000 resamples of the tasks, seeded). */
  lo: number;
  hi: number;
  queries: number;
}

/** Paired bootstrap of the difference in precision between two embedders on the same queries. */
export function pairedDifference(a: PrecisionAtK, b: PrecisionAtK, resamples = 2000, seed = 1): PairedDifference | undefined {
  if (!a.perTask || !b.perTask || a.perTask.length !== b.perTask.length) return undefined;
  const d: number[] = [];
  a.perTask.forEach((x, i) => {
    const y = b.perTask![i];
    if (!Number.isNaN(x) && !Number.isNaN(y)) d.push(x - y);
  });
  if (!d.length) return undefined;
  let state = seed >>> 0 || 1;
  const rnd = () => {
    // xorshift32: deterministic resamples
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 4294967296;
  };
  const means: number[] = [];
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < d.length; i++) s += d[Math.floor(rnd() * d.length)];
    means.push(s / d.length);
  }
  means.sort((x, y) => x - y);
  const mean = d.reduce((x, y) => x + y, 0) / d.length;
  return { diff: mean, lo: means[Math.floor(0.025 * resamples)], hi: means[Math.ceil(0.975 * resamples) - 1], queries: d.length };
}

export interface RetrievalTop1 {
  accuracy: number;
  queries: number;
  candidates: number;
  chance: number;
}

export interface EmbedderMeasures {
  embedder: string;
  tasks: number;
  dataset: PrecisionAtK;
  kind: PrecisionAtK;
  category?: PrecisionAtK;
  example?: RetrievalTop1;
  seconds: number;
}

/** Folds by source dataset (a stable hash of the dataset word, or of the name when it has none). */
export function datasetFolds(tasks: { name: string }[], folds: number): number[] {
  return tasks.map((t) => {
    const h = createHash("sha256").update(datasetOf(t.name) ?? t.name).digest();
    return h.readUInt32BE(0) % folds;
  });
}

function exampleText(e: ExampleLike): string {
  return `Input: ${e.input} Output: ${e.output}`;
}

/**
 * Embeds the pool for evaluation. A fixed embedder is fitted on the whole pool (as selection does); a
 * trainable one (`train` given) is cross-fitted over dataset folds. Returns the normalized pool matrix and,
 * for the example->task measure, the normalized example queries of the tasks that have examples.
 */
async function embedForEval(
  tasks: EvalTask[],
  embedder: Embedder | undefined,
  train: ((trainOn: EvalTask[], fold: number) => Promise<Embedder>) | undefined,
  folds: number,
): Promise<{ pool: EmbeddingMatrix; queries: EmbeddingMatrix; queryRows: number[] }> {
  const qRows = tasks.map((t, i) => (t.examples?.length ? i : -1)).filter((i) => i >= 0);
  // Queries are the example's text alone: handing the example itself to an example-aware embedder would
  // let it match the task's own example channels.
  const qTasks: TaskText[] = qRows.map((i) => ({ text: exampleText(tasks[i].examples![0]) }));
  if (!train) {
    await fitOnTasks(embedder!, tasks);
    const pool = normalizeRows(await embedTaskMatrix(embedder!, tasks));
    const queries = qTasks.length ? normalizeRows(await embedTaskMatrix(embedder!, qTasks)) : { data: new Float32Array(0), rows: 0, dim: pool.dim };
    return { pool, queries, queryRows: qRows };
  }
  const fold = datasetFolds(tasks, folds);
  let dim = -1;
  let pool: EmbeddingMatrix | undefined;
  let queries: EmbeddingMatrix | undefined;
  for (let f = 0; f < folds; f++) {
    const held = tasks.map((_, i) => i).filter((i) => fold[i] === f);
    if (!held.length) continue;
    const e = await train(tasks.filter((_, i) => fold[i] !== f), f);
    try {
      await fitOnTasks(e, tasks);
      const m = normalizeRows(await embedTaskMatrix(e, held.map((i) => tasks[i])));
      const qi = qRows.map((r, j) => (fold[r] === f ? j : -1)).filter((j) => j >= 0);
      const qm = qi.length ? normalizeRows(await embedTaskMatrix(e, qi.map((j) => qTasks[j]))) : undefined;
      if (dim < 0) {
        dim = m.dim;
        pool = { data: new Float32Array(tasks.length * dim), rows: tasks.length, dim };
        queries = { data: new Float32Array(qRows.length * dim), rows: qRows.length, dim };
      }
      if (m.dim !== dim) throw new Error(`cross-fitting: fold ${f} embeds to dimension ${m.dim}, fold 0 to ${dim}`);
      held.forEach((i, r) => pool!.data.set(m.data.subarray(r * dim, (r + 1) * dim), i * dim));
      if (qm) qi.forEach((j, r) => queries!.data.set(qm.data.subarray(r * dim, (r + 1) * dim), j * dim));
    } finally {
      (e as { dispose?: () => void }).dispose?.();
    }
  }
  return { pool: pool!, queries: queries!, queryRows: qRows };
}

function exampleRetrieval(pool: EmbeddingMatrix, queries: EmbeddingMatrix, rows: number[]): RetrievalTop1 | undefined {
  if (!rows.length) return undefined;
  const index = new ColumnIndex(pool);
  const s = new Float64Array(pool.rows);
  let hits = 0;
  for (let r = 0; r < rows.length; r++) {
    index.scores(queries.data, r * queries.dim, s);
    if (topIndices(s, 1)[0] === rows[r]) hits++;
  }
  return { accuracy: hits / rows.length, queries: rows.length, candidates: pool.rows, chance: 1 / pool.rows };
}

/** A task's categories as one label (sorted, joined), or undefined without any. */
function categoryLabel(t: EvalTask): string | undefined {
  return t.categories?.length ? [...t.categories].sort().join(" | ") : undefined;
}

export interface EvaluateOptions {
  k?: number;
  /** Cross-fitting folds for trained embedders (default 2). */
  folds?: number;
  /** Skip the example->task retrieval (it costs a dense pass over the pool per example). */
  noExample?: boolean;
}

/**
 * The measures of one embedder on a pool. `embedder` is fitted on the pool; with `train`, the embedder is
 * instead trained per fold on the other folds (cross-fitting) and `embedder` is unused.
 */
export async function evaluateEmbedder(
  tasks: EvalTask[],
  name: string,
  embedder: Embedder | undefined,
  o: EvaluateOptions & { train?: (trainOn: EvalTask[], fold: number) => Promise<Embedder> } = {},
): Promise<EmbedderMeasures> {
  const k = o.k ?? 5;
  if (tasks.length < k + 2) throw new RangeError(`select-embedder eval: the pool has ${tasks.length} tasks; k = ${k} needs at least ${k + 2}`);
  const t0 = performance.now();
  const { pool, queries, queryRows } = await embedForEval(tasks, embedder, o.train, o.folds ?? 2);
  const nb = leaveOneOutTopk(pool, k);
  const names = tasks.map((t) => t.name);
  const cats = tasks.map(categoryLabel);
  const res: EmbedderMeasures = {
    embedder: name,
    tasks: tasks.length,
    dataset: precisionAtK(nb, k, names.map(datasetOf)),
    kind: precisionAtK(nb, k, names.map(kindOf)),
    seconds: 0,
  };
  if (cats.some((c) => c !== undefined)) res.category = precisionAtK(nb, k, cats);
  if (!o.noExample) res.example = exampleRetrieval(pool, queries, queryRows);
  res.seconds = (performance.now() - t0) / 1000;
  return res;
}

/** Chance-level measures (k random picks), as a row beside the embedders. */
export function chanceMeasures(tasks: EvalTask[], k = 5): EmbedderMeasures {
  const nb = new Int32Array(0);
  const z = (labels: (string | undefined)[]): PrecisionAtK => {
    const r = precisionAtK(nb, 0, labels);
    return { ...r, k, precision: r.chance, lift: 1 };
  };
  const names = tasks.map((t) => t.name);
  const cats = tasks.map(categoryLabel);
  const res: EmbedderMeasures = { embedder: "random", tasks: tasks.length, dataset: z(names.map(datasetOf)), kind: z(names.map(kindOf)), seconds: 0 };
  if (cats.some((c) => c !== undefined)) res.category = z(cats);
  if (tasks.some((t) => t.examples?.length)) res.example = { accuracy: 1 / tasks.length, queries: tasks.filter((t) => t.examples?.length).length, candidates: tasks.length, chance: 1 / tasks.length };
  return res;
}

/** An embedder that can be trained on named tasks before it is fitted on a pool (e.g. `aligned`). */
interface Trainable {
  trained: boolean;
  train(tasks: { name: string; text: string }[]): Promise<unknown>;
}

/** Whether fitting this embedder on a pool would train it on that pool's names (and so on what is measured). */
export function trainsOnPool(e: Embedder): boolean {
  const t = e as unknown as Partial<Trainable>;
  return typeof t.train === "function" && t.trained === false;
}

/** One held-out measurement: train on `trainOn` (row indices), fit on and measure leave-one-out within `evalOn`. */
export interface HeldOutSplit {
  trainOn: number[];
  evalOn: number[];
}

/** The 2+ folds by source dataset as held-out splits: each fold measured within itself, trained on the rest. */
export function crossFitSplits(tasks: { name: string }[], folds = 2): HeldOutSplit[] {
  const f = datasetFolds(tasks, folds);
  return Array.from({ length: folds }, (_, k) => ({
    trainOn: f.map((x, i) => (x !== k ? i : -1)).filter((i) => i >= 0),
    evalOn: f.map((x, i) => (x === k ? i : -1)).filter((i) => i >= 0),
  })).filter((s) => s.evalOn.length >= 2);
}

function mergePrecision(parts: { p: PrecisionAtK; rows: number[] }[], n: number, k: number): PrecisionAtK {
  const perTask = new Array<number>(n).fill(NaN);
  let ch = 0;
  let q = 0;
  let groups = 0;
  for (const { p, rows } of parts) {
    p.perTask!.forEach((x, i) => (perTask[rows[i]] = x));
    if (p.queries) ch += p.chance * p.queries;
    q += p.queries;
    groups += p.groups;
  }
  const vals = perTask.filter((x) => !Number.isNaN(x));
  const precision = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : NaN;
  const chance = q ? ch / q : NaN;
  return { k, precision, chance, lift: chance > 0 ? precision / chance : NaN, queries: q, groups, perTask };
}

/**
 * Held-out measures: for each split, a fresh embedder (`create`) is trained on the split's `trainOn` tasks when
 * it is trainable (`aligned`), fitted on the `evalOn` tasks (the pool it selects from) and measured by
 * leave-one-out within them; fixed embedders are just fitted and measured the same way, so rows are paired.
 * No measured task (nor, with crossFitSplits, any task of its dataset) is trained on.
 */
export async function evaluateHeldOut(
  tasks: EvalTask[],
  name: string,
  create: () => Promise<Embedder>,
  splits: HeldOutSplit[],
  o: { k?: number } = {},
): Promise<EmbedderMeasures> {
  const k = o.k ?? 5;
  const t0 = performance.now();
  const parts: { ds: PrecisionAtK; kd: PrecisionAtK; cat?: PrecisionAtK; rows: number[] }[] = [];
  for (const s of splits) {
    if (s.evalOn.length < k + 2) throw new RangeError(`held-out measure: a split has ${s.evalOn.length} tasks; k = ${k} needs at least ${k + 2}`);
    const e = await create();
    try {
      if (trainsOnPool(e)) await (e as unknown as Trainable).train(s.trainOn.map((i) => tasks[i]));
      const held = s.evalOn.map((i) => tasks[i]);
      await fitOnTasks(e, held);
      const m = normalizeRows(await embedTaskMatrix(e, held));
      const nb = leaveOneOutTopk(m, k);
      const names = held.map((t) => t.name);
      const cats = held.map(categoryLabel);
      parts.push({
        ds: precisionAtK(nb, k, names.map(datasetOf)),
        kd: precisionAtK(nb, k, names.map(kindOf)),
        cat: cats.some((c) => c !== undefined) ? precisionAtK(nb, k, cats) : undefined,
        rows: s.evalOn,
      });
    } finally {
      (e as { dispose?: () => void }).dispose?.();
    }
  }
  const N = tasks.length;
  const res: EmbedderMeasures = {
    embedder: name,
    tasks: parts.reduce((a, p) => a + p.rows.length, 0),
    dataset: mergePrecision(parts.map((p) => ({ p: p.ds, rows: p.rows })), N, k),
    kind: mergePrecision(parts.map((p) => ({ p: p.kd, rows: p.rows })), N, k),
    seconds: (performance.now() - t0) / 1000,
  };
  if (parts.every((p) => p.cat)) res.category = mergePrecision(parts.map((p) => ({ p: p.cat!, rows: p.rows })), N, k);
  return res;
}

/** Precision@k of targets' top-k among pool rows against labels; only targets whose label the pool has are queried. */
export function targetPrecisionAtK(
  neighbours: Int32Array,
  k: number,
  targetLabels: (string | undefined)[],
  poolLabels: (string | undefined)[],
  rows: number[],
  n: number,
): PrecisionAtK {
  const size = new Map<string, number>();
  for (const l of poolLabels) if (l !== undefined) size.set(l, (size.get(l) ?? 0) + 1);
  const perTask = new Array<number>(n).fill(NaN);
  let p = 0;
  let ch = 0;
  let q = 0;
  const groups = new Set<string>();
  targetLabels.forEach((l, i) => {
    if (l === undefined || !size.has(l)) return;
    let hit = 0;
    for (let t = 0; t < k; t++) if (poolLabels[neighbours[i * k + t]] === l) hit++;
    perTask[rows[i]] = hit / k;
    p += hit / k;
    ch += (size.get(l) as number) / poolLabels.length;
    q++;
    groups.add(l);
  });
  const precision = q ? p / q : NaN;
  const chance = q ? ch / q : NaN;
  return { k, precision, chance, lift: chance > 0 ? precision / chance : NaN, queries: q, groups: groups.size, perTask };
}

/**
 * Targets select from a pool, as INSTA is used: the embedder is trained on the pool when it is trainable
 * (its names are the weak supervision; the targets' names are never read), fitted on the pool, and each target's
 * top-k pool tasks are scored against the target's label (chance: the pool's share of that label). Rows pair
 * across embedders; perTask is indexed by `tasks`.
 */
export async function evaluateTargets(
  tasks: EvalTask[],
  name: string,
  create: () => Promise<Embedder>,
  split: { pool: number[]; targets: number[] },
  o: { k?: number } = {},
): Promise<EmbedderMeasures> {
  const k = o.k ?? 5;
  if (split.pool.length < k) throw new RangeError(`target measure: the pool has ${split.pool.length} tasks; k = ${k} needs at least ${k}`);
  const t0 = performance.now();
  const pool = split.pool.map((i) => tasks[i]);
  const targets = split.targets.map((i) => tasks[i]);
  const e = await create();
  try {
    if (trainsOnPool(e)) await (e as unknown as Trainable).train(pool);
    await fitOnTasks(e, pool);
    const P = normalizeRows(await embedTaskMatrix(e, pool));
    const Q = normalizeRows(await embedTaskMatrix(e, targets));
    const index = new ColumnIndex(P);
    const s = new Float64Array(P.rows);
    const nb = new Int32Array(Q.rows * k);
    for (let q = 0; q < Q.rows; q++) {
      index.scores(Q.data, q * Q.dim, s);
      topIndices(s, k).forEach((r, t) => (nb[q * k + t] = r));
    }
    const N = tasks.length;
    const by = (f: (t: EvalTask) => string | undefined) => targetPrecisionAtK(nb, k, targets.map(f), pool.map(f), split.targets, N);
    const res: EmbedderMeasures = { embedder: name, tasks: targets.length, dataset: by((t) => datasetOf(t.name)), kind: by((t) => kindOf(t.name)), seconds: 0 };
    if (tasks.some((t) => t.categories?.length)) res.category = by(categoryLabel);
    res.seconds = (performance.now() - t0) / 1000;
    return res;
  } finally {
    (e as { dispose?: () => void }).dispose?.();
  }
}

/** Chance for target measures: k random pool picks (the pool's share of each target's label). */
export function chanceTargets(tasks: EvalTask[], split: { pool: number[]; targets: number[] }, k = 5): EmbedderMeasures {
  const none = new Int32Array(split.targets.length * k).fill(-1);
  const by = (f: (t: EvalTask) => string | undefined): PrecisionAtK => {
    const p = targetPrecisionAtK(none, k, split.targets.map((i) => f(tasks[i])), split.pool.map((i) => f(tasks[i])), split.targets, tasks.length);
    return { ...p, precision: p.chance, lift: 1, perTask: undefined };
  };
  const res: EmbedderMeasures = { embedder: "random", tasks: split.targets.length, dataset: by((t) => datasetOf(t.name)), kind: by((t) => kindOf(t.name)), seconds: 0 };
  if (tasks.some((t) => t.categories?.length)) res.category = by(categoryLabel);
  return res;
}

/** Chance for held-out measures: k random picks within each split's evalOn tasks. */
export function chanceHeldOut(tasks: EvalTask[], splits: HeldOutSplit[], k = 5): EmbedderMeasures {
  const parts = splits.map((s) => ({ m: chanceMeasures(s.evalOn.map((i) => tasks[i]), k), rows: s.evalOn }));
  const merge = (get: (m: EmbedderMeasures) => PrecisionAtK | undefined): PrecisionAtK | undefined => {
    const ps = parts.map((p) => get(p.m));
    if (ps.some((p) => !p)) return undefined;
    const q = ps.reduce((a, p) => a + p!.queries, 0);
    const ch = q ? ps.reduce((a, p) => a + p!.chance * p!.queries, 0) / q : NaN;
    return { k, precision: ch, chance: ch, lift: 1, queries: q, groups: ps.reduce((a, p) => a + p!.groups, 0) };
  };
  const res: EmbedderMeasures = { embedder: "random", tasks: parts.reduce((a, p) => a + p.rows.length, 0), dataset: merge((m) => m.dataset)!, kind: merge((m) => m.kind)!, seconds: 0 };
  const c = merge((m) => m.category);
  if (c) res.category = c;
  return res;
}
