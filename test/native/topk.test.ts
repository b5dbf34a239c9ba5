// The native chunked exact top-k (native/core/select) through the addon, checked against the float64 JS
// brute force: random pools, ties, k = N, Q = 1, errors, the TopkIndex handle's lifetime, and selection parity.
import { describe, expect, it } from "vitest";
import { loadAddon } from "../../src/native/binding.js";
import { bruteForceTopk } from "../../src/select/topk.js";
import { normalizeRows } from "../../src/select/embedder.js";
import type { EmbeddingMatrix } from "../../src/select/embedder.js";
import { selectTasks } from "../../src/select/select.js";
import { LexicalEmbedder } from "../../src/select/lexical.js";

const addon = loadAddon();

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function randomMatrix(rows: number, dim: number, seed: number): EmbeddingMatrix {
  const r = rng(seed);
  return { data: Float32Array.from({ length: rows * dim }, r), rows, dim };
}

const host = (m: EmbeddingMatrix) => ({ data: m.data, shape: [m.rows, m.dim], dtype: "float32" as const });

/** Exactness against float64: same scores (to rounding), and every unselected row scores <= the k-th. */
function expectExact(q: EmbeddingMatrix, pool: EmbeddingMatrix, k: number, scores: Float32Array, indices: Int32Array) {
  const ref = bruteForceTopk(q, pool, pool.rows);
  for (let i = 0; i < q.rows; i++) {
    const all = new Map<number, number>();
    for (let j = 0; j < pool.rows; j++) all.set(ref.indices[i * pool.rows + j], ref.scores[i * pool.rows + j]);
    const chosen = new Set<number>();
    for (let j = 0; j < k; j++) {
      const idx = indices[i * k + j];
      expect(chosen.has(idx)).toBe(false);
      chosen.add(idx);
      expect(scores[i * k + j]).toBeCloseTo(all.get(idx)!, 5);
      expect(scores[i * k + j]).toBeCloseTo(ref.scores[i * pool.rows + j], 5);
      if (j) expect(scores[i * k + j - 1]).toBeGreaterThanOrEqual(scores[i * k + j]);
    }
    const kth = Math.min(...[...chosen].map((c) => all.get(c)!));
    for (const [idx, s] of all) if (!chosen.has(idx)) expect(s).toBeLessThanOrEqual(kth + 1e-5);
  }
}

describe("native topk", () => {
  it("matches the float64 brute force for several chunk sizes, Q = 1 and Q > 1", async () => {
    const pool = randomMatrix(777, 33, 1);
    for (const Q of [1, 5]) {
      const q = randomMatrix(Q, 33, 10 + Q);
      for (const chunkRows of [1, 50, 777, 10000]) {
        for (const k of [1, 13]) {
          const r = await addon.topk(host(q), host(pool), k, { chunkRows });
          expect(r.scores.shape).toEqual([Q, k]);
          expect(r.indices.dtype).toBe("int32");
          expectExact(q, pool, k, r.scores.data, r.indices.data);
        }
      }
    }
  });

  it("k = N sorts the whole pool; ties go to the lower index like the reference", async () => {
    const pool = { data: Float32Array.from([0, 1, 1, 0, 0, 1, 1, 0, 0.6, 0.8]), rows: 5, dim: 2 };
    const q = { data: Float32Array.from([0, 1]), rows: 1, dim: 2 };
    const r = await addon.topk(host(q), host(pool), 5, { chunkRows: 2 });
    const ref = bruteForceTopk(q, pool, 5);
    expect(Array.from(r.indices.data)).toEqual(Array.from(ref.indices));
    expect(Array.from(r.indices.data)).toEqual([0, 2, 4, 1, 3]);
  });

  it("rejects k > N, k < 1, mismatched dimensions and bad dtypes with named errors", async () => {
    const pool = randomMatrix(4, 3, 2), q = randomMatrix(1, 3, 3);
    expect(() => addon.topk(host(q), host(pool), 5)).toThrow(/k \(5\) exceeds the pool size \(4/);
    expect(() => addon.topk(host(q), host(pool), 0)).toThrow(RangeError);
    expect(() => addon.topk(host(randomMatrix(1, 2, 4)), host(pool), 1)).toThrow(/dimension/);
    expect(() => addon.topk({ data: new Float64Array(3), shape: [1, 3], dtype: "float64" } as never, host(pool), 1)).toThrow(/float32|Float32Array/);
    expect(() => addon.topk(host(q), host(pool), 1, { chunkRows: 0 })).toThrow(/chunkRows/);
  });
});

describe("TopkIndex", () => {
  it("keeps the pool native side across adds, normalizes, and reports progress", async () => {
    const index = new addon.TopkIndex({ dim: 16 });
    const a = randomMatrix(300, 16, 5), b = randomMatrix(200, 16, 6);
    expect(index.add(host(a))).toBe(300);
    expect(index.add(host(b))).toBe(500);
    expect(index.bytes).toBe(500 * 16 * 4);
    const all = normalizeRows({ data: Float32Array.from([...a.data, ...b.data]), rows: 500, dim: 16 });
    const q = randomMatrix(3, 16, 7);
    const events: number[] = [];
    const r = await index.search(host(q), 7, { chunkRows: 64, onProgress: (e) => events.push(e.fraction as number) });
    expectExact(normalizeRows(q), all, 7, r.scores.data, r.indices.data);
    expect(events.length).toBeGreaterThan(1);
    expect(events[events.length - 1]).toBe(1);
    index.dispose();
    expect(index.disposed).toBe(true);
    expect(() => index.add(host(a))).toThrow(/disposed/);
  });

  it("refuses dispose while a search is in flight, and add during a search does not change it", async () => {
    const index = new addon.TopkIndex({ dim: 64 });
    await index.addRandom({ rows: 200000, seed: 3 });
    expect(index.size).toBe(200000);
    const q = randomMatrix(8, 64, 9);
    const p = index.search(host(q), 5, { chunkRows: 1024 });
    expect(() => index.dispose()).toThrow(/in flight/);
    index.add(host(normalizeRows({ data: new Float32Array(64).fill(1), rows: 1, dim: 64 })));
    const r = await p;
    expect(Math.max(...r.indices.data)).toBeLessThan(200000);
    expect(index.size).toBe(200001);
    const again = new addon.TopkIndex({ dim: 64 });
    await again.addRandom({ rows: 200000, seed: 3 });
    const r2 = await again.search(host(q), 5);
    expect(Array.from(r2.indices.data)).toEqual(Array.from(r.indices.data)); // seeded: same rows
    index.dispose();
    const asyncDispose = (Symbol as unknown as { asyncDispose?: symbol }).asyncDispose;
    if (asyncDispose) {
      await (again as unknown as Record<symbol, () => Promise<void>>)[asyncDispose]();
      expect(again.disposed).toBe(true);
    } else again.dispose();
  });

  it("checks k against the index size", async () => {
    const index = new addon.TopkIndex({ dim: 4, normalize: false });
    index.add(host(randomMatrix(3, 4, 1)));
    expect(() => index.search(host(randomMatrix(1, 4, 2)), 4)).toThrow(/exceeds the pool size \(3/);
    expect(() => index.search(host(randomMatrix(1, 5, 2)), 1)).toThrow(/dimension/);
    index.dispose();
  });
});

describe("selection: native and JS searchers agree", () => {
  it("gives the same tasks and scores", async () => {
    const words = "title summary article news entail premise hypothesis pronoun refer sentiment review question answer".split(" ");
    const r = rng(11);
    const text = () => Array.from({ length: 8 }, () => words[Math.floor((r() + 0.5) * words.length)]).join(" ");
    const pool = Array.from({ length: 60 }, (_, i) => ({ name: `t${i}`, text: text() }));
    const targets = Array.from({ length: 6 }, (_, i) => ({ label: `q${i}`, text: text() }));
    const a = await selectTasks(pool, targets, new LexicalEmbedder(), { k: 7, searcher: "native" });
    const b = await selectTasks(pool, targets, new LexicalEmbedder(), { k: 7, searcher: "js" });
    expect(a.searcher).toBe("native");
    for (let i = 0; i < targets.length; i++) {
      const sa = a.selections[i].selected, sb = b.selections[i].selected;
      sa.forEach((x, j) => expect(x.score).toBeCloseTo(sb[j].score, 5));
      // identical ranking except where float32 rounding reorders exact ties
      const same = sa.filter((x, j) => x.task === sb[j].task).length;
      expect(same).toBeGreaterThanOrEqual(5);
    }
  });
});
