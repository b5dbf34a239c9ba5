// The `aligned` embedder, INSTA's alignment to the meta-dataset (not the default of `instill select`: held out
// it beats `lexical` but not `hybrid`, README): the `hybrid` channels (BM25 over the definition, the output shape
// and the explanations of the positive examples, plus TF-IDF over the examples' inputs) concatenated with a
// learned low-rank channel z = normalize(W h) that is trained on the meta-dataset's own tasks. This is INSTA's
// alignment done at the size of the data: NIV2 has one definition per task, so views of one task are
// near-copies and a sentence encoder trained from scratch on them learns nothing beyond TF-IDF (README); what the
// meta-dataset does have is its task names, which say which tasks are alike. The weak supervision is read from
// the names of the *training* pool only:
//   positives of a task = the tasks whose name words (after the dataset word: "question generation", "answer
//   generation", ...) overlap its own with Jaccard >= 0.34, and the other tasks of its source dataset
//   (task1342_amazon_us_reviews_title -> amazon), the latter weighted by `dataset` (default 1; below 1 they
//   count less than a shared kind of task, see weakPositives); every other task of the pool is a negative
//   (lexically similar tasks of other datasets and kinds are the hard ones). With `minDatasets` = m > 1 only
//   features seen in m source datasets of the pool enter the learned channel (vocabulary that transfers).
// Names are never read at selection time: targets (and the pool) are embedded from their instruction and
// examples alone.
//
// Model: the hybrid vector h (L2-normalized, sparse) and W (one r-vector per feature key: `d:<term>`, `s:<j>`,
// `x:<term>`, `i:<term>`, as HybridEmbedder.featureKeys names them). W starts as a random projection, a
// Johnson-Lindenstrauss sketch of h (so the start is the lexical model itself), and a feature never seen in
// training keeps its sketch column (drawn from a hash of its key), so unseen words still match each other.
// The embedding is [h ; sqrt(beta) z] / sqrt(1 + beta): cosine = (cos_hybrid + beta cos_z) / (1 + beta).
// Training: full-batch supervised InfoNCE (weighted multi-positive: -log sum_j P_ij e^{s_ij/tau} / sum_{j != i} e^{s_ij/tau})
// on that cosine, Adam, `steps` steps; everything is deterministic for a seed.
//
// Folder (`instill select-embedder train --method aligned`): aligned.json (options, keys, what it was trained
// on, losses) and aligned.f32 (W, keys x rank, little-endian float32).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Embedder, TaskText } from "./embedder.js";
import { toMatrix } from "./embedder.js";
import { HybridEmbedder } from "./hybrid.js";
import { datasetOf } from "./evaluate.js";

export const ALIGNED_FORMAT = "instill-aligned-v1";

export interface AlignedOptions {
  /** Width of the learned channel (default 32). */
  rank?: number;
  /** Its weight beside the hybrid channels (default 0.15). */
  weight?: number;
  /** InfoNCE temperature on the combined cosine (default 0.2). */
  temperature?: number;
  /** Full-batch Adam steps (default 200). */
  steps?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  /** Name-word Jaccard from which two tasks count as alike (default 0.34). */
  jaccard?: number;
  /** Weight of a same-source-dataset pair as a positive when their name words differ (default 1). */
  dataset?: number;
  /**
   * Only features seen in at least this many source datasets of the training pool enter the learned channel
   * (default 1: all); the others, and features never seen in training, get zero columns instead of their
   * sketch, so the channel can only use vocabulary that is shared across datasets (measured in the README: 3
   * does not beat 1 held out).
   */
  minDatasets?: number;
  /** Hybrid channel weights (defaults: shape 0.15, explanation 0.5, input 0.35). */
  shape?: number;
  explanation?: number;
  input?: number;
}

export const ALIGNED_DEFAULTS: Required<AlignedOptions> = {
  rank: 32,
  weight: 0.15,
  temperature: 0.2,
  steps: 200,
  lr: 0.05,
  weightDecay: 1e-4,
  seed: 0,
  jaccard: 0.34,
  dataset: 1,
  minDatasets: 1,
  shape: 0.15,
  explanation: 0.5,
  input: 0.35,
};

/** A task with a name, as training reads it. */
export interface NamedTask extends TaskText {
  name: string;
}

/** The words of a task name after its number and source-dataset word, digits dropped. */
export function nameWords(name: string): string[] {
  const w = name.toLowerCase().replace(/^task\d+_?/, "").split(/[_\W]+/).filter(Boolean);
  const ds = datasetOf(name);
  if (ds !== undefined && w[0] === ds) w.shift();
  return [...new Set(w.filter((x) => !/^\d+$/.test(x)))];
}

/**
 * Weak positives from task names: row-major n x n weights. 1 where the name words of two different tasks
 * overlap with Jaccard >= `jaccard` (default 0.34: e.g. 1 of 2 words, 2 of 3 or 5; 1 of 3 is not enough),
 * else `dataset` (default 1) where they share their source dataset, else 0. Same-dataset tasks are often
 * different kinds of task (quoref question generation, quoref answer generation): `dataset` below 1 makes them
 * weaker positives than a shared kind (README, cross-fitted: 0 gives +0.012 kind@5 for -0.006 dataset@5).
 */
export function weakPositives(names: string[], jaccard = 0.34, dataset = 1): Float64Array {
  const n = names.length;
  const ds = names.map(datasetOf);
  const ws = names.map((x) => new Set(nameWords(x)));
  const P = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) {
      let inter = 0;
      for (const w of ws[i]) if (ws[j].has(w)) inter++;
      const uni = ws[i].size + ws[j].size - inter;
      const p = uni > 0 && inter / uni >= jaccard ? 1 : ds[i] !== undefined && ds[i] === ds[j] ? dataset : 0;
      if (p) P[i * n + j] = P[j * n + i] = p;
    }
  return P;
}

/** The sketch column of a feature key: r normal draws / sqrt(r) from a hash of (seed, key). */
export function sketchColumn(key: string, rank: number, seed: number, out: Float64Array, off = 0): void {
  const h = createHash("sha256").update(`${seed}\0${key}`).digest();
  let a = h.readUInt32LE(0) | 1;
  let b = h.readUInt32LE(4) | 1;
  let c = h.readUInt32LE(8) | 1;
  let d = h.readUInt32LE(12) | 1;
  const next = () => {
    // xoshiro128**
    const r = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = rotl(d, 11);
    return (r + 0.5) / 4294967296;
  };
  const s = 1 / Math.sqrt(rank);
  for (let j = 0; j < rank; j += 2) {
    const u = next();
    const v = next();
    const m = Math.sqrt(-2 * Math.log(u));
    out[off + j] = m * Math.cos(2 * Math.PI * v) * s;
    if (j + 1 < rank) out[off + j + 1] = m * Math.sin(2 * Math.PI * v) * s;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Sparse rows: for row i, cols[ptr[i]..ptr[i+1]) and vals. */
export interface SparseRows {
  n: number;
  ptr: Int32Array;
  cols: Int32Array;
  vals: Float64Array;
}

/** The non-zeros of a row-major matrix, each row L2-normalized. */
export function sparseNormalized(data: Float32Array, rows: number, dim: number): SparseRows {
  const ptr = new Int32Array(rows + 1);
  let nnz = 0;
  for (let i = 0; i < data.length; i++) if (data[i] !== 0) nnz++;
  const cols = new Int32Array(nnz);
  const vals = new Float64Array(nnz);
  let p = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let s = 0;
    for (let j = 0; j < dim; j++) s += data[o + j] * data[o + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < dim; j++)
      if (data[o + j] !== 0) {
        cols[p] = j;
        vals[p++] = data[o + j] * inv;
      }
    ptr[r + 1] = p;
  }
  return { n: rows, ptr, cols, vals };
}

/** Z = H W (W: dim x r, row-major), rows of Z normalized in place; returns the norms. */
function project(H: SparseRows, W: Float64Array, r: number, Z: Float64Array): Float64Array {
  const norms = new Float64Array(H.n);
  Z.fill(0);
  for (let i = 0; i < H.n; i++) {
    const zo = i * r;
    for (let p = H.ptr[i]; p < H.ptr[i + 1]; p++) {
      const v = H.vals[p];
      const wo = H.cols[p] * r;
      for (let j = 0; j < r; j++) Z[zo + j] += v * W[wo + j];
    }
    let s = 0;
    for (let j = 0; j < r; j++) s += Z[zo + j] * Z[zo + j];
    const nz = Math.sqrt(s) + 1e-9;
    norms[i] = nz;
    for (let j = 0; j < r; j++) Z[zo + j] /= nz;
  }
  return norms;
}

/** out = Z Z^T (Z: n x r row-major), symmetric, computed once per pair. */
function gram(Z: Float64Array, n: number, r: number, out: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const a = i * r;
    for (let j = i; j < n; j++) {
      const b = j * r;
      let d0 = 0;
      let d1 = 0;
      let d2 = 0;
      let d3 = 0;
      let t = 0;
      for (; t + 3 < r; t += 4) {
        d0 += Z[a + t] * Z[b + t];
        d1 += Z[a + t + 1] * Z[b + t + 1];
        d2 += Z[a + t + 2] * Z[b + t + 2];
        d3 += Z[a + t + 3] * Z[b + t + 3];
      }
      for (; t < r; t++) d0 += Z[a + t] * Z[b + t];
      out[i * n + j] = out[j * n + i] = d0 + d1 + d2 + d3;
    }
  }
}

/** out = A Z (A: n x n, Z: n x r, row-major). */
function matmul(A: Float64Array, Z: Float64Array, n: number, r: number, out: Float64Array): void {
  out.fill(0);
  for (let i = 0; i < n; i++) {
    const o = i * r;
    for (let j = 0; j < n; j++) {
      const g = A[i * n + j];
      if (g === 0) continue;
      const b = j * r;
      for (let t = 0; t < r; t++) out[o + t] += g * Z[b + t];
    }
  }
}

export interface AlignedTrainResult {
  keys: string[];
  /** keys.length x rank, row-major. */
  W: Float32Array;
  losses: number[];
  tasks: number;
  anchors: number;
  positives: number;
  seconds: number;
}

/** The rows of P (n x n) with a positive (anchors), how many, and how many positive pairs. */
function anchorsOf(P: Float64Array, n: number): { hasPos: Uint8Array; anchors: number; positives: number } {
  const hasPos = new Uint8Array(n);
  let positives = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++)
      if (P[i * n + j] > 0) {
        hasPos[i] = 1;
        positives++;
      }
  return { hasPos, anchors: hasPos.reduce((a, b) => a + b, 0), positives };
}

/**
 * The training objective for fixed lexical cosines HH (n x n) and weak positives P: a function of W (D x r,
 * row-major) that writes the gradient of loss + weightDecay/2 |W|^2 into gW and returns the loss, the mean over
 * anchors (rows with a positive) of -log sum_j P_ij e^{s_ij} / sum_{j != i} e^{s_ij},
 * s_ij = (HH_ij + beta z_i.z_j) / ((1 + beta) tau), z_i = normalize(W^T h_i). Buffers are allocated once.
 */
export function alignedObjective(
  H: SparseRows,
  HH: Float64Array,
  P: Float64Array,
  r: number,
  beta: number,
  tau: number,
  weightDecay: number,
): (W: Float64Array, gW: Float64Array) => number {
  const n = H.n;
  const { hasPos, anchors } = anchorsOf(P, n);
  const Z = new Float64Array(n * r);
  const G = new Float64Array(n * n);
  const dZ = new Float64Array(n * r);
  const S = new Float64Array(n);
  const ZZ = new Float64Array(n * n);
  const GS = new Float64Array(n * n);
  const cz = beta / ((1 + beta) * tau);
  return (W, gW) => {
    const norms = project(H, W, r, Z);
    gram(Z, n, r, ZZ);
    let loss = 0;
    G.fill(0);
    for (let i = 0; i < n; i++) {
      if (!hasPos[i]) continue;
      const ro = i * n;
      let mx = -Infinity;
      for (let j = 0; j < n; j++) {
        const s = j === i ? -Infinity : (HH[ro + j] + beta * ZZ[ro + j]) / ((1 + beta) * tau);
        S[j] = s;
        if (s > mx) mx = s;
      }
      let den = 0;
      let num = 0;
      for (let j = 0; j < n; j++) {
        const e = j === i ? 0 : Math.exp(S[j] - mx);
        S[j] = e;
        den += e;
        num += P[ro + j] * e;
      }
      loss -= Math.log(num / den);
      const a = 1 / (den * anchors);
      const b = 1 / (num * anchors);
      for (let j = 0; j < n; j++) G[ro + j] = S[j] * a - P[ro + j] * S[j] * b;
    }
    // dZh = cz (G + G^T) Zh, then through the normalization.
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) GS[i * n + j] = G[i * n + j] + G[j * n + i];
    matmul(GS, Z, n, r, dZ);
    for (let i = 0; i < n; i++) {
      const di = i * r;
      let dot = 0;
      for (let t = 0; t < r; t++) {
        dZ[di + t] *= cz;
        dot += Z[di + t] * dZ[di + t];
      }
      for (let t = 0; t < r; t++) dZ[di + t] = (dZ[di + t] - Z[di + t] * dot) / norms[i];
    }
    for (let q = 0; q < gW.length; q++) gW[q] = weightDecay * W[q];
    for (let i = 0; i < n; i++)
      for (let p = H.ptr[i]; p < H.ptr[i + 1]; p++) {
        const v = H.vals[p];
        const wo = H.cols[p] * r;
        for (let t = 0; t < r; t++) gW[wo + t] += v * dZ[i * r + t];
      }
    return loss / anchors;
  };
}

/**
 * Trains the learned channel on named tasks (their names give the weak positives; see the file comment).
 * Deterministic for a seed.
 */
export async function trainAligned(tasks: NamedTask[], opts: AlignedOptions = {}, onStep?: (step: number, total: number, loss: number) => void): Promise<AlignedTrainResult> {
  const o = { ...ALIGNED_DEFAULTS, ...opts };
  const t0 = performance.now();
  const n = tasks.length;
  if (n < 3) throw new RangeError(`aligned: training needs at least 3 named tasks, got ${n}`);
  for (const t of tasks) if (typeof t.name !== "string" || !t.name) throw new Error("aligned: training reads task names (weak positives); every task needs a name");
  const hybrid = new HybridEmbedder({ shape: o.shape, explanation: o.explanation, input: o.input });
  await hybrid.fitTasks(tasks);
  const keys = hybrid.featureKeys()!;
  const m = toMatrix(await hybrid.embedTasks(tasks), n, hybrid.name);
  const H = sparseNormalized(m.data, n, m.dim);
  const D = m.dim;
  const r = o.rank;
  const beta = o.weight;
  const tau = o.temperature;
  // Lexical cosines, fixed: HH^T through an inverted index.
  const HH = new Float64Array(n * n);
  {
    const colRows: number[][] = Array.from({ length: D }, () => []);
    const colVals: number[][] = Array.from({ length: D }, () => []);
    for (let i = 0; i < n; i++)
      for (let p = H.ptr[i]; p < H.ptr[i + 1]; p++) {
        colRows[H.cols[p]].push(i);
        colVals[H.cols[p]].push(H.vals[p]);
      }
    for (let c = 0; c < D; c++) {
      const rs = colRows[c];
      const vs = colVals[c];
      for (let a = 0; a < rs.length; a++) for (let b = 0; b < rs.length; b++) HH[rs[a] * n + rs[b]] += vs[a] * vs[b];
    }
  }
  const P = weakPositives(tasks.map((t) => t.name), o.jaccard, o.dataset);
  const { anchors, positives } = anchorsOf(P, n);
  if (!anchors) throw new Error(`aligned: no two of the ${n} tasks share a source dataset or name words (Jaccard >= ${o.jaccard}); nothing to align on`);
  // Features the learned channel may use: those seen in at least minDatasets source datasets.
  const active = new Uint8Array(D).fill(1);
  if (o.minDatasets > 1) {
    const seenIn: Set<string>[] = Array.from({ length: D }, () => new Set<string>());
    tasks.forEach((t, i) => {
      const ds = datasetOf(t.name) ?? t.name;
      for (let p = H.ptr[i]; p < H.ptr[i + 1]; p++) seenIn[H.cols[p]].add(ds);
    });
    seenIn.forEach((x, c) => (active[c] = x.size >= o.minDatasets ? 1 : 0));
  }
  const W = new Float64Array(D * r);
  keys.forEach((k, c) => active[c] && sketchColumn(k, r, o.seed, W, c * r));
  const objective = alignedObjective(H, HH, P, r, beta, tau, o.weightDecay);
  const mom = new Float64Array(D * r);
  const vel = new Float64Array(D * r);
  const gW = new Float64Array(D * r);
  const losses: number[] = [];
  const b1 = 0.9;
  const b2 = 0.999;
  for (let step = 0; step < o.steps; step++) {
    losses.push(objective(W, gW));
    for (let c = 0; c < D; c++) if (!active[c]) gW.fill(0, c * r, (c + 1) * r);
    const c1 = 1 - b1 ** (step + 1);
    const c2 = 1 - b2 ** (step + 1);
    for (let q = 0; q < W.length; q++) {
      const g = gW[q];
      mom[q] = b1 * mom[q] + (1 - b1) * g;
      vel[q] = b2 * vel[q] + (1 - b2) * g * g;
      W[q] -= (o.lr * (mom[q] / c1)) / (Math.sqrt(vel[q] / c2) + 1e-8);
    }
    onStep?.(step + 1, o.steps, losses[losses.length - 1]);
    if ((step & 15) === 15) await new Promise((res) => setImmediate(res));
  }
  return { keys, W: Float32Array.from(W), losses, tasks: n, anchors, positives, seconds: (performance.now() - t0) / 1000 };
}

export interface AlignedModel {
  options: Required<AlignedOptions>;
  keys: string[];
  W: Float32Array;
  trainedOn?: { tasks: number; anchors: number; positives: number; names_sha256: string };
  losses?: number[];
}

/** Writes an aligned model folder (aligned.json + aligned.f32), each through a temporary file. */
export function saveAligned(dir: string, m: AlignedModel): void {
  mkdirSync(dir, { recursive: true });
  const w = Buffer.from(m.W.buffer, m.W.byteOffset, m.W.byteLength);
  writeFileSync(join(dir, "aligned.f32.tmp"), w);
  renameSync(join(dir, "aligned.f32.tmp"), join(dir, "aligned.f32"));
  const j = { format: ALIGNED_FORMAT, options: m.options, trainedOn: m.trainedOn, losses: m.losses, keys: m.keys };
  writeFileSync(join(dir, "aligned.json.tmp"), JSON.stringify(j));
  renameSync(join(dir, "aligned.json.tmp"), join(dir, "aligned.json"));
}

export function loadAligned(dir: string): AlignedModel {
  const jp = join(dir, "aligned.json");
  if (!existsSync(jp)) throw new Error(`aligned: ${dir}: no aligned.json (write one with instill select-embedder train --method aligned)`);
  const j = JSON.parse(readFileSync(jp, "utf8")) as { format?: string; options?: Required<AlignedOptions>; keys?: string[]; trainedOn?: AlignedModel["trainedOn"]; losses?: number[] };
  if (j.format !== ALIGNED_FORMAT || !j.options || !Array.isArray(j.keys)) throw new Error(`aligned: ${jp}: not an ${ALIGNED_FORMAT} file`);
  const options = { ...ALIGNED_DEFAULTS, ...j.options };
  const buf = readFileSync(join(dir, "aligned.f32"));
  const expect = j.keys.length * options.rank * 4;
  if (buf.byteLength !== expect) throw new Error(`aligned: ${dir}/aligned.f32: ${buf.byteLength} bytes, expected ${expect} (${j.keys.length} keys x rank ${options.rank})`);
  const W = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return { options, keys: j.keys, W, trainedOn: j.trainedOn, losses: j.losses };
}

function namesDigest(names: string[]): string {
  return createHash("sha256").update(names.join("\n")).digest("hex");
}

/**
 * The aligned embedder. With a model (a folder, or train() called first) it embeds any pool with it; without
 * one, fitTasks(pool) trains it on the pool itself (the pool's names are the weak supervision), so
 * `instill select` needs no separate step.
 */
export class AlignedEmbedder implements Embedder {
  readonly name: string;
  readonly options: Required<AlignedOptions>;
  private model: AlignedModel | undefined;
  private readonly hybrid: HybridEmbedder;
  private cols: Float64Array | undefined;
  lastTraining: AlignedTrainResult | undefined;

  constructor(opts: AlignedOptions = {}, model?: AlignedModel, label = "aligned") {
    this.options = { ...ALIGNED_DEFAULTS, ...(model?.options ?? {}), ...opts };
    const o = this.options;
    if (!Number.isInteger(o.rank) || o.rank < 1) throw new RangeError(`aligned: rank must be an integer >= 1, got ${o.rank}`);
    if (!(o.weight >= 0) || !(o.temperature > 0) || !Number.isInteger(o.steps) || o.steps < 0 || !(o.lr >= 0) || !(o.jaccard > 0 && o.jaccard <= 1))
      throw new RangeError(`aligned: bad options ${JSON.stringify(opts)}`);
    this.model = model;
    this.hybrid = new HybridEmbedder({ shape: o.shape, explanation: o.explanation, input: o.input });
    this.name = label;
  }

  static load(dir: string, label = `aligned:${dir}`): AlignedEmbedder {
    const m = loadAligned(dir);
    return new AlignedEmbedder({}, m, label);
  }

  get trained(): boolean {
    return this.model !== undefined;
  }

  /** Trains the learned channel on these named tasks (replacing any model). */
  async train(tasks: NamedTask[], onStep?: (step: number, total: number, loss: number) => void): Promise<AlignedModel> {
    const res = await trainAligned(tasks, this.options, onStep);
    this.lastTraining = res;
    this.model = {
      options: this.options,
      keys: res.keys,
      W: res.W,
      losses: res.losses,
      trainedOn: { tasks: res.tasks, anchors: res.anchors, positives: res.positives, names_sha256: namesDigest(tasks.map((t) => t.name)) },
    };
    this.cols = undefined;
    return this.model;
  }

  async fitTasks(tasks: TaskText[]): Promise<void> {
    if (!this.model) {
      const named = tasks as NamedTask[];
      if (named.some((t) => typeof t.name !== "string"))
        throw new Error("aligned: no trained model given and the pool has no task names to train on (use aligned:<dir> from instill select-embedder train --method aligned)");
      await this.train(named);
    }
    await this.hybrid.fitTasks(tasks);
    const keys = this.hybrid.featureKeys()!;
    const r = this.options.rank;
    const m = this.model!;
    const at = new Map(m.keys.map((k, i) => [k, i]));
    const cols = new Float64Array(keys.length * r);
    keys.forEach((k, c) => {
      const i = at.get(k);
      if (i === undefined) {
        if (this.options.minDatasets <= 1) sketchColumn(k, r, this.options.seed, cols, c * r);
      }
      else for (let t = 0; t < r; t++) cols[c * r + t] = m.W[i * r + t];
    });
    this.cols = cols;
  }

  fit(corpus: string[]): Promise<void> {
    if (!this.model) throw new Error("aligned: fit(texts) has no task names to train on; call fitTasks(tasks) or load a trained model");
    return this.fitTasks(corpus.map((text) => ({ text })));
  }

  async embedTasks(tasks: TaskText[]): Promise<{ data: Float32Array; dim: number }> {
    if (!this.cols) throw new Error("aligned embedder: fitTasks(pool) must be called first");
    const m = toMatrix(await this.hybrid.embedTasks(tasks), tasks.length, this.hybrid.name);
    const H = sparseNormalized(m.data, tasks.length, m.dim);
    const r = this.options.rank;
    const Z = new Float64Array(tasks.length * r);
    project(H, this.cols, r, Z);
    const dim = m.dim + r;
    const out = new Float32Array(tasks.length * dim);
    const wh = 1 / Math.sqrt(1 + this.options.weight);
    const wz = Math.sqrt(this.options.weight) * wh;
    for (let i = 0; i < tasks.length; i++) {
      const o = i * dim;
      for (let p = H.ptr[i]; p < H.ptr[i + 1]; p++) out[o + H.cols[p]] = H.vals[p] * wh;
      if (H.ptr[i + 1] > H.ptr[i]) for (let t = 0; t < r; t++) out[o + m.dim + t] = Z[i * r + t] * wz;
    }
    return { data: out, dim };
  }

  embed(texts: string[]): Promise<{ data: Float32Array; dim: number }> {
    return this.embedTasks(texts.map((text) => ({ text })));
  }

  save(dir: string): void {
    if (!this.model) throw new Error("aligned: nothing to save (not trained)");
    saveAligned(dir, this.model);
  }
}

/** aligned[:DIR][,rank=R][,weight=W][,temperature=T][,steps=N][,lr=LR][,seed=S][,jaccard=J][,shape=W][,explanation=W][,input=W]. */
export function parseAlignedArg(arg: string | undefined): { dir?: string; options: AlignedOptions } {
  const options: AlignedOptions = {};
  let dir: string | undefined;
  const ints = new Set(["rank", "steps", "seed", "minDatasets"]);
  const known = new Set(Object.keys(ALIGNED_DEFAULTS).filter((k) => k !== "weightDecay"));
  for (const part of (arg ?? "").split(",").map((x) => x.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    if (eq < 0) {
      if (dir !== undefined) throw new RangeError(`--embedder aligned: two model folders ('${dir}', '${part}')`);
      dir = part;
      continue;
    }
    const k = part.slice(0, eq);
    const v = part.slice(eq + 1);
    const n = Number(v);
    if (!known.has(k)) throw new RangeError(`--embedder aligned: unknown option '${k}' (expected a model folder and/or ${[...known].join("=, ")}=)`);
    if (v.trim() === "" || !Number.isFinite(n) || n < 0 || (ints.has(k) && !Number.isInteger(n))) throw new RangeError(`--embedder aligned: ${k} must be a ${ints.has(k) ? "integer" : "number"} >= 0, got '${v}'`);
    (options as Record<string, number>)[k] = n;
  }
  return { dir, options };
}

export function createAlignedEmbedder(arg: string | undefined): AlignedEmbedder {
  const { dir, options } = parseAlignedArg(arg);
  if (dir !== undefined) {
    const m = loadAligned(dir);
    return new AlignedEmbedder(options, m, `aligned:${arg}`);
  }
  return new AlignedEmbedder(options, undefined, arg ? `aligned:${arg}` : "aligned");
}
