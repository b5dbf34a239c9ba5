// The `encoder` and `trained` embedders through the addon: a tiny random T5 checkpoint gives finite vectors of
// dimension d_model (identical texts -> identical vectors), and contrastive alignment on the embedded suite
// raises held-out wording retrieval above the untrained encoder and chance.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { T5Model } from "../../src/model/model.js";
import { installTokenizer } from "../../src/model/tokenizer.js";
import { writeSuite } from "../../src/data/suite.js";
import { readTaskDir } from "../../src/data/sni.js";
import { createEmbedder } from "../../src/select/registry.js";
import { EncoderEmbedder, parseEmbedderArg } from "../../src/select/encoder.js";
import { LexicalEmbedder } from "../../src/select/lexical.js";
import { embedMatrix } from "../../src/select/embedder.js";
import { selectTasks } from "../../src/select/select.js";
import {
  holdOutLastDefinition,
  taskViews,
  trainSentenceEncoder,
  TrainedEmbedder,
  WordVocab,
  wordingRetrieval,
} from "../../src/select/trained.js";
import type { ViewSource } from "../../src/select/trained.js";

let tmp: string;
let ckpt: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "instill-embed-"));
  ckpt = join(tmp, "tiny");
  const m = await T5Model.init("tiny", { seed: 3 });
  await m.save(ckpt);
  m.dispose();
  installTokenizer("byte", ckpt);
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const TEXTS = [
  "Reverse the order of the words.",
  "Count the vowels in the word and answer with a number.",
  "Reverse the order of the words.",
  "",
  "Sort the letters alphabetically; then write them in upper case, keeping the spaces between letters exactly as given.",
];

describe("encoder embedder (tiny random T5, byte tokenizer)", () => {
  it("returns finite, unit-normalizable vectors of dimension d_model; identical texts give identical vectors", async () => {
    const e = (await createEmbedder(`encoder:${ckpt}`)) as EncoderEmbedder;
    try {
      const out = await embedMatrix(e, TEXTS);
      expect(out.dim).toBe(64);
      expect(out.rows).toBe(TEXTS.length);
      for (let r = 0; r < out.rows; r++) {
        const row = out.data.subarray(r * out.dim, (r + 1) * out.dim);
        expect(row.every(Number.isFinite)).toBe(true);
        const norm = Math.hypot(...row);
        expect(norm).toBeGreaterThan(1e-3);
      }
      // Rows 0 and 2 hold the same text: equal up to BLAS blocking within one batch, bit-equal across calls.
      for (let j = 0; j < out.dim; j++) expect(Math.abs(out.data[j] - out.data[2 * out.dim + j])).toBeLessThan(1e-5);
      const again = await embedMatrix(e, [TEXTS[0]]);
      const alone = await embedMatrix(e, [TEXTS[0]]);
      expect(Array.from(again.data)).toEqual(Array.from(alone.data));
      // Different texts differ.
      let diff = 0;
      for (let j = 0; j < out.dim; j++) diff += Math.abs(out.data[j] - out.data[out.dim + j]);
      expect(diff).toBeGreaterThan(1e-3);
      const key = e.cacheKey();
      expect(key).toMatch(/^encoder:[0-9a-f]{64}$/);
      const fl = (await createEmbedder(`encoder:${ckpt},pool=firstlast`)) as EncoderEmbedder;
      try {
        expect(fl.cacheKey()).not.toBe(key);
        const v = await embedMatrix(fl, [TEXTS[1]]);
        const m = await embedMatrix(e, [TEXTS[1]]);
        expect(v.dim).toBe(64);
        let d = 0;
        for (let j = 0; j < 64; j++) d += Math.abs(v.data[j] - m.data[j]);
        expect(d).toBeGreaterThan(1e-3);  // first-last pooling is not the mean
      } finally {
        fl.dispose();
      }
    } finally {
      e.dispose();
    }
  });

  it("selects with the encoder embedder end to end", async () => {
    const e = await createEmbedder(`encoder:${ckpt}`);
    const pool = ["a", "b", "c"].map((n, i) => ({ name: n, text: TEXTS[i + 1] || "empty" }));
    const run = await selectTasks(pool, [{ label: "t", text: TEXTS[1] }], e, { k: 1 });
    expect(run.dim).toBe(64);
    expect(run.selections[0].selected[0].task).toBe("a");  // its own text scores cosine 1
    expect(run.selections[0].selected[0].score).toBeCloseTo(1, 5);
    (e as EncoderEmbedder).dispose();
  });

  it("refuses bad arguments with messages", async () => {
    await expect(createEmbedder("encoder")).rejects.toThrow(/encoder:<dir>/);
    await expect(createEmbedder(`encoder:${ckpt},pool=max`)).rejects.toThrow(/mean or firstlast/);
    await expect(createEmbedder(`encoder:${ckpt},foo=1`)).rejects.toThrow(/unknown option 'foo'/);
    await expect(createEmbedder(`encoder:${join(tmp, "missing")}`)).rejects.toThrow(/no such checkpoint folder/);
    await expect(createEmbedder(`trained:${ckpt}`)).rejects.toThrow(/no embedder.json/);
    expect(parseEmbedderArg("/a,b/c,pool=firstlast", "encoder", ["pool"])).toEqual({ dir: "/a,b/c", opts: { pool: "firstlast" } });
  });
});

describe("trained embedder", () => {
  it("builds views and a word vocabulary", () => {
    const v = taskViews({ name: "t", definitions: ["Do A.", "Do a!"], positiveExamples: [{ input: "x", output: "y" }] });
    expect(v).toEqual(["Do A.", "Do a!", "Do A. Positive Example - Input: x Output: y"]);
    const src = { name: "t", definitions: ["Do A."], positiveExamples: [{ input: "x", output: "y" }] };
    expect(taskViews(src, 2, "alone")).toEqual(["Do A.", "Input: x Output: y"]);
    expect(taskViews(src, 2, "both")).toEqual(["Do A.", "Do A. Positive Example - Input: x Output: y", "Input: x Output: y"]);
    const voc = WordVocab.build(["b a a", "c"]);
    expect(voc.tokens).toEqual(["<pad>", "<unk>", "a", "b", "c"]);
    expect(voc.encode("A zz c")).toEqual([2, 1, 4]);
  });

  it("alignment on the embedded suite raises held-out wording retrieval above the untrained encoder and chance", async () => {
    const suiteDir = join(tmp, "suite");
    writeSuite(suiteDir, 42, { instancesPerTask: 2 });
    const tasks: ViewSource[] = readTaskDir(join(suiteDir, "tasks")).tasks.map((t) => ({
      name: t.name,
      definitions: t.definition,
      positiveExamples: t.positiveExamples,
    }));
    expect(tasks.filter((t) => t.definitions.length >= 3).length).toBeGreaterThan(40);
    const train = holdOutLastDefinition(tasks);
    const untrainedDir = join(tmp, "untrained");
    const alignedDir = join(tmp, "aligned");
    // layers 0 (the default: embedding bag + projection) keeps the run to seconds on a loaded CPU;
    // native/core/tests/test_select_embed.cpp trains a transformer layer.
    await trainSentenceEncoder({ tasks: train, out: untrainedDir, steps: 0, seed: 1, layers: 0 });
    const res = await trainSentenceEncoder({ tasks: train, out: alignedDir, steps: 300, seed: 1, layers: 0, lr: 3e-3 });
    expect(res.lastLoss!).toBeLessThan(res.firstLoss!);
    const lexical = await wordingRetrieval(tasks, new LexicalEmbedder());
    const untrained = await TrainedEmbedder.load(untrainedDir);
    const aligned = await TrainedEmbedder.load(alignedDir);
    const u = await wordingRetrieval(tasks, untrained);
    const a = await wordingRetrieval(tasks, aligned);
    console.log(
      `held-out wording retrieval top-1 on the suite (${a.queries} queries, ${a.candidates} tasks, chance ${(a.chance * 100).toFixed(1)}%): ` +
        `lexical ${(lexical.accuracy * 100).toFixed(1)}%, untrained ${(u.accuracy * 100).toFixed(1)}%, aligned ${(a.accuracy * 100).toFixed(1)}%`,
    );
    expect(a.accuracy).toBeGreaterThan(u.accuracy + 0.1);
    expect(a.accuracy).toBeGreaterThan(5 * a.chance);
    // Saved and reloaded: the same vectors; the cache key follows the weights.
    const again = await TrainedEmbedder.load(alignedDir);
    const x = await embedMatrix(aligned, [tasks[0].definitions[0]]);
    const y = await embedMatrix(again, [tasks[0].definitions[0]]);
    expect(Array.from(x.data)).toEqual(Array.from(y.data));
    expect(x.dim).toBe(128);
    expect(again.cacheKey()).toBe(aligned.cacheKey());
    expect(untrained.cacheKey()).not.toBe(aligned.cacheKey());
    for (const e of [untrained, aligned, again]) e.dispose();
  });

  it("initializes from a T5 checkpoint (its encoder and tokenizer) and round trips", async () => {
    const tasks: ViewSource[] = [
      { name: "a", definitions: ["Reverse the words.", "Write the words backwards."] },
      { name: "b", definitions: ["Count the letters.", "How many letters are there?"] },
      { name: "c", definitions: ["Sort the numbers.", "Put the numbers in order."] },
    ];
    const out = join(tmp, "from-t5");
    const res = await trainSentenceEncoder({ tasks, out, init: ckpt, steps: 3, batch: 3 });
    expect(res.kind).toBe("t5");
    expect(res.steps).toBe(3);
    const e = (await createEmbedder(`trained:${out}`)) as TrainedEmbedder;
    const m = await embedMatrix(e, ["Reverse the words.", "Count the letters."]);
    expect(m.dim).toBe(64);
    expect(m.data.every(Number.isFinite)).toBe(true);
    // The folder is a T5 checkpoint: the encoder embedder (mean pooling) gives the same vectors.
    const enc = (await createEmbedder(`encoder:${out}`)) as EncoderEmbedder;
    const n = await embedMatrix(enc, ["Reverse the words.", "Count the letters."]);
    for (let j = 0; j < m.data.length; j++) expect(Math.abs(m.data[j] - n.data[j])).toBeLessThan(1e-4);
    e.dispose();
    enc.dispose();
  });
});
