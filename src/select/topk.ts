// Exact top-k searchers over an embedding pool: the native chunked kernel (native/core/select, through a
// TopkIndex that keeps the pool native side), and a float64 brute force in plain JS that serves as the
// reference and as the fallback when the addon is not built. Both rank by dot product (pass normalized rows
// for cosine) and break ties by the lower pool index.
import { AddonLoadError, loadAddon } from "../native/binding.js";
import type { NativeTopkIndex } from "../native/types.js";
import type { EmbeddingMatrix } from "./embedder.js";

export interface TopkOutput {
  /** [Q * k] row-major. */
  scores: Float32Array;
  indices: Int32Array;
  k: number;
}

export interface Searcher {
  readonly size: number;
  readonly kind: "native" | "js";
  search(queries: EmbeddingMatrix, k: number): Promise<TopkOutput>;
  dispose(): void;
}

function checkK(k: number, n: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer, got ${k}`);
  if (k > n) throw new RangeError(`k (${k}) exceeds the pool size (${n} rows)`);
}

/** Float64 brute force: all scores, then a full sort by (score desc, index asc). */
export function bruteForceTopk(queries: EmbeddingMatrix, pool: EmbeddingMatrix, k: number): TopkOutput {
  if (queries.dim !== pool.dim) throw new TypeError(`queries have dimension ${queries.dim} but the pool has ${pool.dim}`);
  checkK(k, pool.rows);
  const scores = new Float32Array(queries.rows * k);
  const indices = new Int32Array(queries.rows * k);
  const s = new Float64Array(pool.rows);
  const order = new Int32Array(pool.rows);
  for (let q = 0; q < queries.rows; q++) {
    const qo = q * queries.dim;
    for (let i = 0; i < pool.rows; i++) {
      const po = i * pool.dim;
      let acc = 0;
      for (let j = 0; j < pool.dim; j++) acc += queries.data[qo + j] * pool.data[po + j];
      s[i] = Number.isNaN(acc) ? -Infinity : acc;
      order[i] = i;
    }
    order.sort((a, b) => (s[b] - s[a]) || a - b);
    for (let j = 0; j < k; j++) {
      scores[q * k + j] = s[order[j]];
      indices[q * k + j] = order[j];
    }
  }
  return { scores, indices, k };
}

export class JsSearcher implements Searcher {
  readonly kind = "js" as const;
  constructor(private readonly pool: EmbeddingMatrix) {}
  get size(): number {
    return this.pool.rows;
  }
  async search(queries: EmbeddingMatrix, k: number): Promise<TopkOutput> {
    return bruteForceTopk(queries, this.pool, k);
  }
  dispose(): void {}
}

export class NativeSearcher implements Searcher {
  readonly kind = "native" as const;
  private readonly index: NativeTopkIndex;
  constructor(pool: EmbeddingMatrix, private readonly chunkRows?: number) {
    const addon = loadAddon();
    this.index = new addon.TopkIndex({ dim: Math.max(pool.dim, 1), normalize: false });
    if (pool.rows > 0 && pool.dim > 0) this.index.add({ data: pool.data, shape: [pool.rows, pool.dim], dtype: "float32" });
    this.rows = pool.rows;
  }
  private readonly rows: number;
  get size(): number {
    return this.rows;
  }
  async search(queries: EmbeddingMatrix, k: number): Promise<TopkOutput> {
    checkK(k, this.rows);
    if (queries.dim === 0) {
      // An empty vocabulary: every score is 0, ties go to the lower index.
      const indices = new Int32Array(queries.rows * k).map((_, i) => i % k);
      return { scores: new Float32Array(queries.rows * k), indices, k };
    }
    const r = await this.index.search({ data: queries.data, shape: [queries.rows, queries.dim], dtype: "float32" }, k,
      this.chunkRows ? { chunkRows: this.chunkRows } : undefined);
    return { scores: r.scores.data, indices: r.indices.data, k };
  }
  dispose(): void {
    this.index.dispose();
  }
}

/** The native searcher when the addon loads, else (or when asked) the JS brute force. */
export function createSearcher(pool: EmbeddingMatrix, kind: "native" | "js" | "auto" = "auto", chunkRows?: number): Searcher {
  if (kind === "js") return new JsSearcher(pool);
  if (kind === "native") return new NativeSearcher(pool, chunkRows);
  try {
    return new NativeSearcher(pool, chunkRows);
  } catch (e) {
    if (e instanceof AddonLoadError) return new JsSearcher(pool);
    throw e;
  }
}
