// INSTA embedder variants and the label-free evaluation (no addon): BM25 and plain TF-IDF against written-out
// formulas, the hybrid embedder's cosine as the weighted sum of its channels, the output-shape features,
// leave-one-out precision@k against a brute force, the name-derived labels, the pool's training split
// (issue 13 defect 6), and the measured ordering plain TF-IDF < lexical < hybrid on the real NIV2 definitions.
import { describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LexicalEmbedder, tokenize } from "../../src/select/lexical.js";
import { HybridEmbedder, exampleShape, SHAPE_FEATURES } from "../../src/select/hybrid.js";
import { createEmbedder } from "../../src/select/registry.js";
import { toMatrix, normalizeRows } from "../../src/select/embedder.js";
import { bruteForceTopk } from "../../src/select/topk.js";
import { chanceMeasures, datasetOf, datasetFolds, evaluateEmbedder, kindOf, leaveOneOutTopk, pairedDifference, precisionAtK } from "../../src/select/evaluate.js";
import type { EvalTask } from "../../src/select/evaluate.js";
import { loadViewSources, poolTrainSplit, resolveTrainTasks } from "../../src/cli/select-embedder.js";
import { nameResolver, readDefinitions, restrictPool, targetsFromNames } from "../../src/select/pool.js";
import { selectTasks } from "../../src/select/select.js";
import { sharedDir, sharedOrSkipMessage } from "../helpers/native.js";

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, x, i) => s + x * b[i], 0);

describe("lexical variants", () => {
  const corpus = ["cats chase mice", "dogs chase cats cats", "the stock market fell"];
  it("bm25 matches the written-out Okapi formula with the corpus's average length", async () => {
    const e = new LexicalEmbedder({ stem: false, tf: "bm25", bigrams: false });
    e.fit(corpus);
    expect(e.name).toBe("lexical:bm25,nostem,nobigram");
    const { terms, idf } = e.vocabulary();
    const avg = (3 + 4 + 3) / 3;  // "the" is a stopword: 3 tokens in the last text
    const text = "cats cats dogs";
    const len = 3;
    const w = (tf: number, t: string) => ((tf * 2.2) / (tf + 1.2 * (1 - 0.75 + (0.75 * len) / avg))) * idf[terms.indexOf(t)];
    const wc = w(2, "cats"), wd = w(1, "dogs");
    const m = toMatrix(await e.embed([text]), 1);
    const n = Math.hypot(wc, wd);
    expect(m.data[terms.indexOf("cats")]).toBeCloseTo(wc / n, 6);
    expect(m.data[terms.indexOf("dogs")]).toBeCloseTo(wd / n, 6);
  });
  it("plain is raw counts without stemming or stopwords; unknown options are errors", async () => {
    const e = await createEmbedder("lexical:plain");
    expect(e.name).toBe("lexical:raw,nostem,nostop,nobigram");
    e.fit!(corpus);
    const m = toMatrix(await e.embed(["the cats cats"]), 1);
    const { terms, idf } = (e as LexicalEmbedder).vocabulary();
    expect(terms).toContain("the");
    const a = 2 * idf[terms.indexOf("cats")], b = idf[terms.indexOf("the")];
    expect(m.data[terms.indexOf("cats")]).toBeCloseTo(a / Math.hypot(a, b), 6);
    expect(tokenize("The cats", false, false)).toEqual(["the", "cats"]);
    await expect(createEmbedder("lexical:fancy")).rejects.toThrow(/unknown option 'fancy'.*bm25/);
    await expect(createEmbedder("hybrid:shape=-1")).rejects.toThrow(/shape must be a number >= 0/);
  });
});

describe("hybrid embedder", () => {
  const pool: EvalTask[] = [
    { name: "a", text: "Classify the sentiment of the review as positive or negative.", examples: [{ input: "Great movie, loved it", output: "positive", explanation: "The review praises the movie." }] },
    { name: "b", text: "Generate a question about the passage.", examples: [{ input: "The sky is blue because of scattering.", output: "Why is the sky blue?", explanation: "The question is answered by the passage." }] },
    { name: "c", text: "Answer yes or no: is the review positive?", examples: [{ input: "Bad food", output: "No", explanation: "The review is negative about the food." }] },
    { name: "d", text: "Translate the sentence into French.", examples: [{ input: "Hello friend", output: "Bonjour ami" }] },
  ];
  it("computes the documented output-shape features", () => {
    const f = exampleShape({ input: "The sky is blue because of scattering.", output: "Why is the sky blue?" });
    expect(f).toHaveLength(SHAPE_FEATURES.length);
    expect(f[0]).toBeCloseTo(Math.log1p(5), 12);
    expect(f[1]).toBe(1);  // ends with '?'
    expect(f[2]).toBe(0);
    expect(f[3]).toBe(1);
    expect(f[9]).toBeCloseTo(3 / 5, 12);  // "the", "sky", "is" appear in the input ("blue?" does not)
    const y = exampleShape({ input: "Bad food", output: "No." });
    expect(y[7]).toBe(1);
    expect(exampleShape({ input: "pick one", output: "(B)" })[11]).toBe(1);
  });
  it("cosine is (cos_lexical + w * cos_shape + v * cos_explanations + u * cos_inputs) / (1 + w + v + u), zero channels for what a task lacks", async () => {
    const w = 0.3, v = 0.5, u = 0.35;
    const h = new HybridEmbedder({ shape: w, explanation: v, input: u });
    await h.fitTasks(pool);
    const lex = new LexicalEmbedder({ tf: "bm25", bigrams: false });
    lex.fit(pool.map((t) => t.text));
    const H = normalizeRows(toMatrix(await h.embedTasks(pool), pool.length));
    const L = toMatrix(await lex.embed(pool.map((t) => t.text)), pool.length);
    const xl = new LexicalEmbedder({ bigrams: false });
    const expl = pool.map((t) => t.examples![0].explanation ?? "");
    xl.fit(expl.filter(Boolean));
    const X = toMatrix(await xl.embed(expl), pool.length);
    const il = new LexicalEmbedder({ bigrams: false });
    const inputs = pool.map((t) => t.examples![0].input);
    il.fit(inputs);
    const I = toMatrix(await il.embed(inputs), pool.length);
    const S = pool.map((t) => h.shapeVector(t.examples));
    // independent shape: z-score by the pool's mean and (population) std, then L2-normalize
    const raw = pool.map((t) => exampleShape(t.examples![0]));
    const F = raw[0].length;
    const mean = Array.from({ length: F }, (_, j) => raw.reduce((s, r) => s + r[j], 0) / raw.length);
    const sd = Array.from({ length: F }, (_, j) => Math.sqrt(raw.reduce((s, r) => s + (r[j] - mean[j]) ** 2, 0) / raw.length));
    raw.forEach((r, i) => {
      const z = Array.from(r, (x, j) => (sd[j] > 1e-12 ? (x - mean[j]) / sd[j] : 0));
      const n = Math.hypot(...z);
      z.forEach((x, j) => expect(S[i][j]).toBeCloseTo(x / n, 10));
    });
    const row = (m: { data: Float32Array; dim: number }, i: number) => m.data.subarray(i * m.dim, (i + 1) * m.dim);
    // task d has no explanation: its row's norm^2 is 1 + w + u, the others' 1 + w + v + u
    const n2 = (i: number) => 1 + w + (expl[i] ? v : 0) + u;
    for (let i = 0; i < pool.length; i++)
      for (let j = 0; j < pool.length; j++)
        expect(dot(row(H, i), row(H, j))).toBeCloseTo(
          (dot(row(L, i), row(L, j)) + w * dot(S[i], S[j]) + v * dot(row(X, i), row(X, j)) + u * dot(row(I, i), row(I, j))) / Math.sqrt(n2(i) * n2(j)),
          5,
        );
    const free = toMatrix(await h.embed(["Classify the sentiment"]), 1);
    expect(Array.from(free.data.subarray(L.dim)).every((x) => x === 0)).toBe(true);
    await expect(new HybridEmbedder().embed(["x"])).rejects.toThrow(/fitTasks/);
  });
  it("is what selectTasks uses by default through the registry, reading the pool's examples", async () => {
    const e = await createEmbedder("hybrid");
    const run = await selectTasks(pool, [{ label: "t", text: "Is the review positive or negative?", examples: [{ input: "Awful", output: "negative" }] }], e, { k: 2, searcher: "js" });
    expect(run.selections[0].selected.map((s) => s.task)).toEqual(["a", "c"]);
    expect(run.dim).toBe((e as HybridEmbedder).lexical.dim + SHAPE_FEATURES.length + (e as HybridEmbedder).explanations.dim + (e as HybridEmbedder).inputs.dim);
  });
});

describe("label-free evaluation", () => {
  it("reads datasets and kinds from task names", () => {
    expect(datasetOf("task1342_amazon_us_reviews_title")).toBe("amazon");
    expect(datasetOf("task001_quoref_question_generation")).toBe("quoref");
    expect(datasetOf("task648_answer_generation")).toBeUndefined();
    expect(datasetOf("not_a_task")).toBeUndefined();
    expect(kindOf("task001_quoref_question_generation")).toBe("question generation");
    expect(kindOf("task1342_amazon_us_reviews_title")).toBe("title generation");
    expect(kindOf("task363_sst2_polarity_classification")).toBe("sentiment analysis");
    expect(kindOf("task1295_adversarial_qa_question_answering")).toBe("question answering");
    expect(kindOf("task1316_remove_duplicates_string")).toBeUndefined();
    const f = datasetFolds([{ name: "task1_x_a" }, { name: "task2_x_b" }, { name: "task3_y_c" }], 2);
    expect(f[0]).toBe(f[1]);  // one dataset never straddles folds
  });
  it("leave-one-out top-k equals the brute force without self, and precision / chance follow their definitions", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647) - 0.5;
    const N = 12, D = 5, k = 3;
    const m = normalizeRows({ data: Float32Array.from({ length: N * D }, () => (rnd() > 0.2 ? rnd() : 0)), rows: N, dim: D });
    const nb = leaveOneOutTopk(m, k);
    const ref = bruteForceTopk(m, m, k + 1);
    for (let q = 0; q < N; q++) {
      const want = Array.from(ref.indices.subarray(q * (k + 1), (q + 1) * (k + 1))).filter((i) => i !== q).slice(0, k);
      expect(Array.from(nb.subarray(q * k, (q + 1) * k))).toEqual(want);
    }
    const labels = ["a", "a", "a", "b", "b", undefined, "c", "c", "c", "c", "d", "a"];
    const p = precisionAtK(nb, k, labels);
    let hit = 0, ch = 0, n = 0;
    const size: Record<string, number> = { a: 4, b: 2, c: 4 };
    labels.forEach((l, q) => {
      if (!l || !size[l]) return;  // "d" is unique: not queried
      hit += Array.from(nb.subarray(q * k, (q + 1) * k)).filter((i) => labels[i] === l).length / k;
      ch += (size[l] - 1) / (N - 1);
      n++;
    });
    expect(p.queries).toBe(10);
    expect(p.precision).toBeCloseTo(hit / n, 12);
    expect(p.chance).toBeCloseTo(ch / n, 12);
    expect(() => leaveOneOutTopk(m, N)).toThrow(/k must be an integer in \[1, 11\]/);
    // paired bootstrap: a constant shift is exact with a zero-width interval; the mean sits inside the interval
    const shift = { ...p, perTask: p.perTask!.map((x) => (Number.isNaN(x) ? x : x + 0.2)) };
    const d = pairedDifference(shift, p)!;
    expect(d.queries).toBe(10);
    expect(d.diff).toBeCloseTo(0.2, 12);
    expect(d.lo).toBeCloseTo(0.2, 12);
    expect(d.hi).toBeCloseTo(0.2, 12);
    const noisy = { ...p, perTask: p.perTask!.map((x, i) => (Number.isNaN(x) ? x : x + (i % 2 ? 0.1 : -0.1))) };
    const e = pairedDifference(noisy, p)!;
    expect(e.lo).toBeLessThanOrEqual(e.diff);
    expect(e.hi).toBeGreaterThanOrEqual(e.diff);
    expect(e.hi - e.lo).toBeGreaterThan(0);
  });
});

describe("select-embedder uses the pool's training split by default (issue 13, defect 6)", () => {
  it("finds <data>/splits/default/train_tasks.txt beside a tasks folder or a definitions.jsonl, and says so", () => {
    const dir = mkdtempSync(join(tmpdir(), "instill-split-"));
    mkdirSync(join(dir, "splits", "default"), { recursive: true });
    writeFileSync(join(dir, "splits", "default", "train_tasks.txt"), "task1_a_x\n");
    const defs = join(dir, "definitions.jsonl");
    writeFileSync(defs, ['{"task":"task1_a_x","definition":"Do x."}', '{"task":"task2_b_y","definition":"Do y."}'].join("\n") + "\n");
    mkdirSync(join(dir, "tasks"));
    const split = join(dir, "splits", "default", "train_tasks.txt");
    expect(poolTrainSplit(defs)).toBe(split);
    expect(poolTrainSplit(join(dir, "tasks"))).toBe(split);
    const writes: string[] = [];
    const orig = process.stderr.write.bind(process.stderr);
    (process.stderr as { write: unknown }).write = (s: string) => (writes.push(s), true);
    try {
      expect(resolveTrainTasks(defs, {}, "training on")).toBe(split);
    } finally {
      (process.stderr as { write: unknown }).write = orig;
    }
    expect(writes.join("")).toMatch(/training on the training split .*train_tasks\.txt.*--all-tasks/);
    expect(loadViewSources(defs, resolveTrainTasks(defs, {}, "x")).map((t) => t.name)).toEqual(["task1_a_x"]);
    expect(resolveTrainTasks(defs, { allTasks: true }, "x")).toBeUndefined();
    expect(() => resolveTrainTasks(defs, { allTasks: true, trainTasks: split }, "x")).toThrow(/give one of them/);
    const bare = mkdtempSync(join(tmpdir(), "instill-nosplit-"));
    writeFileSync(join(bare, "d.jsonl"), '{"task":"t","definition":"x"}\n');
    expect(poolTrainSplit(join(bare, "d.jsonl"))).toBeUndefined();
  });
});

describe("task names cut at a dot (definitions.jsonl)", () => {
  it("resolves split names like task074_squad1.1_question_generation to the pool's task074_squad1", () => {
    const r = nameResolver(["task074_squad1", "task075_squad1", "task1_a_b"]);
    expect(r("task074_squad1.1_question_generation")).toBe("task074_squad1");
    expect(r("task1_a_b")).toBe("task1_a_b");
    expect(r("task1_a_c")).toBeUndefined();
    expect(r("task076_squad1.1_x")).toBeUndefined();
    const pool = [{ name: "task074_squad1", text: "Write a question." }, { name: "task2_x_y", text: "Other." }];
    const { targets } = targetsFromNames(["task074_squad1.1_question_generation"], pool, "--target-task");
    expect(targets[0]).toMatchObject({ label: "task074_squad1.1_question_generation", name: "task074_squad1" });
  });
});

describe.skipIf(!sharedOrSkipMessage("INSTA embedder measures on real NIV2 definitions"))("measures on the 756 NIV2 training tasks", () => {
  it("orders plain TF-IDF < lexical < hybrid on kind@5, far above chance", async () => {
    const niv2 = join(sharedDir, "data", "niv2");
    const { tasks, missing }: { tasks: EvalTask[]; missing: string[] } = restrictPool(readDefinitions(join(niv2, "definitions.jsonl")), join(niv2, "splits", "default", "train_tasks.txt"));
    expect(missing).toEqual([]);  // the two squad1.1 names resolve to their truncated entries
    expect(tasks).toHaveLength(756);
    const r: Record<string, Awaited<ReturnType<typeof evaluateEmbedder>>> = {};
    for (const spec of ["lexical:plain", "lexical", "hybrid"]) r[spec] = await evaluateEmbedder(tasks, spec, await createEmbedder(spec), { k: 5, noExample: true });
    const chance = chanceMeasures(tasks, 5);
    const line = Object.entries(r).map(([s, m]) => `${s} kind ${m.kind.precision.toFixed(3)} dataset ${m.dataset.precision.toFixed(3)}`).join("; ");
    console.log(`NIV2 train split (756): ${line}; chance kind ${chance.kind.precision.toFixed(3)} dataset ${chance.dataset.precision.toFixed(3)}`);
    expect(r.lexical.kind.precision).toBeGreaterThan(r["lexical:plain"].kind.precision);
    expect(r.hybrid.kind.precision).toBeGreaterThan(r.lexical.kind.precision + 0.01);
    expect(r.hybrid.kind.precision).toBeGreaterThan(4 * chance.kind.precision);
    expect(r.hybrid.dataset.precision).toBeGreaterThan(r.lexical.dataset.precision);
    expect(r.lexical.dataset.precision).toBeGreaterThan(20 * chance.dataset.precision);
  });
});
