// INSTA selection without the addon: tokenizer, TF-IDF embedder, JS top-k reference, selection filters,
// the embedding cache, and selections on the real NIV2 definitions read for sense.
import { describe, expect, it, beforeAll } from "vitest";
import { mkdtempSync, readdirSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LexicalEmbedder, termsOf, tokenize } from "../../src/select/lexical.js";
import { bruteForceTopk } from "../../src/select/topk.js";
import { selectTasks, SelectionError } from "../../src/select/select.js";
import type { PoolTask } from "../../src/select/select.js";
import { EmbeddingCache, cachedEmbedder } from "../../src/select/cache.js";
import type { Embedder } from "../../src/select/embedder.js";
import { toMatrix } from "../../src/select/embedder.js";
import { readDefinitions, restrictPool, targetsFromNames } from "../../src/select/pool.js";
import { readTaskList } from "../../src/data/sni.js";
import { hasShared, sharedDir, sharedOrSkipMessage } from "../helpers/native.js";

const js = { searcher: "js" as const };

describe("tokenize", () => {
  it("lowercases, splits on non-alphanumerics, drops stopwords and stems", () => {
    expect(tokenize("Generate the TITLES of the given articles, e.g. news-articles!")).toEqual([
      "gener", "titl", "given", "articl", "e", "g", "news", "articl",
    ]);
    expect(tokenize("Classifying classified classes", false)).toEqual(["classifying", "classified", "classes"]);
  });
});

describe("lexical embedder (TF-IDF)", () => {
  const corpus = ["cats chase mice", "dogs chase cats", "the stock market fell"];
  it("matches an independent TF-IDF computation", async () => {
    const e = new LexicalEmbedder({ stem: false, bigrams: false });
    e.fit(corpus);
    const { terms, idf } = e.vocabulary();
    expect(terms).toEqual(["cats", "chase", "dogs", "fell", "market", "mice", "stock"]);
    // smoothed idf: ln((1+n)/(1+df)) + 1
    expect(idf[0]).toBeCloseTo(Math.log(4 / 3) + 1, 12);
    expect(idf[2]).toBeCloseTo(Math.log(4 / 2) + 1, 12);
    const m = toMatrix(await e.embed(["cats cats dogs unknownword"]), 1);
    const wc = (1 + Math.log(2)) * (Math.log(4 / 3) + 1);
    const wd = 1 * (Math.log(2) + 1);
    const n = Math.hypot(wc, wd);
    expect(m.data[0]).toBeCloseTo(wc / n, 6);
    expect(m.data[2]).toBeCloseTo(wd / n, 6);
    expect(Array.from(m.data).filter((x) => x !== 0)).toHaveLength(2);
  });
  it("adds the bigrams of adjacent tokens after stopwords are dropped, weighted like any term", async () => {
    expect(termsOf("Generate a question about the passage", false)).toEqual(["generate", "question", "passage", "generate_question", "question_passage"]);
    expect(termsOf("Generate a question", false, true, false)).toEqual(["generate", "question"]);
    expect(new LexicalEmbedder().name).toBe("lexical");  // bigrams are the default
    const e = new LexicalEmbedder({ stem: false });
    e.fit(corpus);
    const { terms, idf } = e.vocabulary();
    expect(terms).toEqual(["cats", "cats_chase", "chase", "chase_cats", "chase_mice", "dogs", "dogs_chase", "fell", "market", "market_fell", "mice", "stock", "stock_market"]);
    const m = toMatrix(await e.embed(["dogs chase cats"]), 1);
    const w = ["cats", "chase", "chase_cats", "dogs", "dogs_chase"].map((t) => idf[terms.indexOf(t)]);
    const n = Math.hypot(...w);
    expect(m.data[terms.indexOf("dogs_chase")]).toBeCloseTo(w[4] / n, 6);
    expect(Array.from(m.data).filter((x) => x !== 0)).toHaveLength(5);
    // the fingerprint (cache key) tells the two apart
    const u = new LexicalEmbedder({ stem: false, bigrams: false });
    u.fit(corpus);
    expect(u.cacheKey()).not.toBe(e.cacheKey());
  });
  it("needs fit first and gives zero vectors for out-of-vocabulary text", async () => {
    const e = new LexicalEmbedder();
    await expect(e.embed(["x"])).rejects.toThrow(/fit/);
    e.fit(corpus);
    const m = toMatrix(await e.embed(["zebra quantum"]), 1);
    expect(Array.from(m.data).every((x) => x === 0)).toBe(true);
  });
});

describe("JS brute-force top-k (the reference)", () => {
  it("sorts by score, breaks ties by the lower index, and checks k", () => {
    const pool = { data: Float32Array.from([1, 0, 0, 1, 1, 0, 0.5, 0.5]), rows: 4, dim: 2 };
    const q = { data: Float32Array.from([1, 0]), rows: 1, dim: 2 };
    const r = bruteForceTopk(q, pool, 3);
    expect(Array.from(r.indices)).toEqual([0, 2, 3]);
    expect(Array.from(r.scores)).toEqual([1, 1, 0.5]);
    expect(() => bruteForceTopk(q, pool, 5)).toThrow(/exceeds the pool size \(4/);
    expect(() => bruteForceTopk(q, pool, 0)).toThrow(RangeError);
  });
});

describe("selectTasks filters", () => {
  const pool: PoolTask[] = [
    { name: "a_title", text: "generate a title for the news article", categories: ["Title Generation"] },
    { name: "b_title", text: "write a short title for this article", categories: ["Title Generation"] },
    { name: "c_title", text: "title generation for a scientific article abstract", categories: ["Title Generation"] },
    { name: "d_summary", text: "summarize the news article in one sentence", categories: ["Summarization"] },
    { name: "e_nli", text: "does the premise entail the hypothesis", categories: ["Textual Entailment"] },
    { name: "f_sent", text: "classify the sentiment of the review", categories: ["Sentiment Analysis"] },
  ];
  const target = { label: "t", name: "a_title", text: pool[0].text };

  it("ranks by cosine and excludes the target itself", async () => {
    const r1 = await selectTasks(pool, [target], new LexicalEmbedder(), { k: 2, ...js });
    expect(r1.selections[0].selected[0].task).toBe("a_title");
    expect(r1.selections[0].selected[0].score).toBeCloseTo(1, 5);
    const r2 = await selectTasks(pool, [target], new LexicalEmbedder(), { k: 2, excludeSelf: true, ...js });
    expect(r2.selections[0].selected.map((s) => s.task)).not.toContain("a_title");
    expect(r2.selections[0].selected).toHaveLength(2);
  });

  it("applies a threshold and a cap per category (widening the search)", async () => {
    const r = await selectTasks(pool, [target], new LexicalEmbedder(), { k: 3, maxPerCategory: 1, ...js });
    const sel = r.selections[0].selected;
    expect(sel).toHaveLength(3);
    const cats = sel.map((s) => s.categories![0]);
    expect(new Set(cats).size).toBe(3);
    expect(cats[0]).toBe("Title Generation");
    const t = await selectTasks(pool, [target], new LexicalEmbedder(), { k: 6, threshold: 0.2, ...js });
    expect(t.selections[0].selected.length).toBeGreaterThan(0);
    expect(t.selections[0].selected.length).toBeLessThan(6);
    expect(t.selections[0].selected.every((s) => s.score >= 0.2)).toBe(true);
  });

  it("rejects bad k, and a cap on a pool without categories", async () => {
    await expect(selectTasks(pool, [target], new LexicalEmbedder(), { k: 0, ...js })).rejects.toThrow(/k must be/);
    await expect(selectTasks(pool, [target], new LexicalEmbedder(), { k: 7, ...js })).rejects.toThrow(/exceeds the pool size \(6/);
    const bare = pool.map(({ name, text }) => ({ name, text }));
    await expect(selectTasks(bare, [target], new LexicalEmbedder(), { k: 2, maxPerCategory: 1, ...js })).rejects.toThrow(SelectionError);
  });
});

describe("embedding cache", () => {
  function counting(): Embedder & { calls: number; texts: number } {
    const e = {
      name: "count",
      calls: 0,
      texts: 0,
      cacheKey: () => "count-v1",
      async embed(texts: string[]) {
        e.calls++;
        e.texts += texts.length;
        return texts.map((t) => Float32Array.from([t.length, t.charCodeAt(0) || 0, 0.5]));
      },
    };
    return e;
  }

  it("stores vectors by content hash and reads them back", async () => {
    const dir = mkdtempSync(join(tmpdir(), "instill-cache-"));
    const inner = counting();
    const cache = new EmbeddingCache(dir);
    const e = cachedEmbedder(inner, cache);
    const a = toMatrix(await e.embed(["alpha", "be"]), 2);
    expect(readdirSync(dir).filter((f) => f.endsWith(".f32"))).toHaveLength(2);
    const b = toMatrix(await e.embed(["be", "gamma", "alpha"]), 3);
    expect(inner.texts).toBe(3); // only "gamma" recomputed
    expect(cache.hits).toBe(2);
    expect(Array.from(b.data.subarray(6, 9))).toEqual(Array.from(a.data.subarray(0, 3)));
    // A truncated file is recomputed and rewritten.
    const key = EmbeddingCache.key("count-v1", "alpha");
    writeFileSync(cache.path(key), Buffer.from([1, 2, 3]));
    await e.embed(["alpha"]);
    expect(inner.texts).toBe(4);
    expect(readFileSync(cache.path(key)).length).toBe(12);
  });

  it("passes embedders without a cache key straight through", async () => {
    const dir = mkdtempSync(join(tmpdir(), "instill-cache-"));
    const e = cachedEmbedder(new LexicalEmbedder(), new EmbeddingCache(dir));
    await e.fit!(["a b c"]);
    // A fitted lexical embedder has a key (its vocabulary fingerprint), so it is cached from then on.
    await e.embed(["a b"]);
    expect(readdirSync(dir)).toHaveLength(1);
    const plain: Embedder = { name: "p", embed: async (t) => t.map(() => new Float32Array(2)) };
    const dir2 = mkdtempSync(join(tmpdir(), "instill-cache-"));
    await cachedEmbedder(plain, new EmbeddingCache(dir2)).embed(["x"]);
    expect(readdirSync(dir2)).toHaveLength(0);
  });
});

describe.skipIf(!sharedOrSkipMessage("INSTA selection on real NIV2 definitions"))("lexical selection on real NIV2 instructions", () => {
  const niv2 = join(sharedDir, "data", "niv2");
  let all: PoolTask[];
  let train: PoolTask[];
  let test: string[];
  beforeAll(() => {
    all = readDefinitions(join(niv2, "definitions.jsonl"));
    train = restrictPool(all, join(niv2, "splits", "default", "train_tasks.txt")).tasks;
    test = readTaskList(join(niv2, "splits", "default", "test_tasks.txt"));
  });

  // For each family of test tasks (picked by name), most targets' top-10 must contain training tasks whose
  // names carry a related keyword. The official split holds out whole categories (no training task is named
  // "*title*" or "*entailment*"), so the related tasks are neighbours: summaries for titles, pronoun and
  // gender tasks for coreference, other dialogue tasks for dialogue acts. `min` sits well above chance (the
  // share of targets a random top-10 would satisfy, computed below and shown on failure).
  const families: Array<{ family: RegExp; related: RegExp; min: number }> = [
    { family: /title/, related: /summar|title|headline/, min: 0.5 },
    { family: /coref|gap|wsc|winogrande|winobias/, related: /wsc|wino|gender|pronoun|coref|quoref/, min: 0.66 },
    { family: /dialog|dstc|woz/, related: /dialog|conv|woz|dstc|chat|samsum|dream|mutual/, min: 0.8 },
  ];

  for (const { family, related, min } of families) {
    it(`test tasks matching ${family} pick ${related} training tasks`, async () => {
      const { targets } = targetsFromNames(test.filter((n) => family.test(n)), all, "targets", true);
      expect(targets.length).toBeGreaterThanOrEqual(5);
      const run = await selectTasks(train, targets, new LexicalEmbedder(), { k: 10, ...js });
      const hits = run.selections.filter((s) => s.selected.some((x) => related.test(x.task))).length;
      // baseline: the fraction of training tasks with a related name, to show what chance gives
      const base = train.filter((t) => related.test(t.name)).length / train.length;
      const chanceTop10 = 1 - (1 - base) ** 10;
      expect(hits / targets.length, `${hits}/${targets.length} targets (chance ~${chanceTop10.toFixed(2)})`).toBeGreaterThanOrEqual(
        Math.max(min, chanceTop10 + 0.3),
      );
    });
  }
});
