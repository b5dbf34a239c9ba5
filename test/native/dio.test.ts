// DIO through the addon (native/napi/dio_wrap.cc + src/dio/dio.ts): the native handle validates its arguments,
// bilevel steps update the instructions (and fixed mode does not), trainDio + evaluateDio run end to end on the
// embedded suite for both variants, and the hypergradient benchmark entry returns its figures.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSplitTasks, writeSuite } from "../../src/data/index.js";
import { defaultDioConfig, dioBatch, evaluateDio, metaSplit, trainDio, type DioConfig } from "../../src/dio/dio.js";
import { T5Model } from "../../src/model/model.js";
import { installTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";
import { loadAddon } from "../../src/native/binding.js";
import { buildExamples, tokenizeExamples } from "../../src/train/batches.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-dio-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dataDir = join(tmp, "data");
const modelDir = join(tmp, "model");

beforeAll(async () => {
  writeSuite(dataDir, 7);
  installTokenizer(dataDir, modelDir);
  const tok = loadTokenizer(modelDir);
  const m = await T5Model.init(
    {
      d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8,
      relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: "gated-gelu", tie_word_embeddings: false,
      vocab_size: tok.vocabSize, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: 0, model_type: "t5",
    },
    { seed: 3 },
  );
  await m.save(modelDir);
  m.dispose();
});

function config(over: Partial<DioConfig>): DioConfig {
  const d = defaultDioConfig();
  return {
    ...d, model: modelDir, seed: 1, steps: 8, stepsPerCall: 4, batchSize: 4, promptLength: 3, quiet: true,
    encoding: { ...d.encoding, maxSourceLength: 96 }, maxTargetLength: 16, inner: { ...d.inner, lr: 3e-3 }, outer: { ...d.outer, lr: 1e-2 },
    ...over,
  };
}

describe("DIO native handle", () => {
  it("rejects bad options and batches with errors naming the argument", async () => {
    const addon = loadAddon();
    const d = new addon.DioNative();
    expect(() => d.create(modelDir, { variant: "prompt", numTasks: 2, hypergrad: "newton:3", inner: { lr: 1e-3 }, outer: { lr: 1e-3 } })).toThrow(/newton/);
    const d2 = new addon.DioNative();
    expect(() => d2.create(modelDir, { variant: "bogus" as "prompt", numTasks: 2, inner: { lr: 1e-3 }, outer: { lr: 1e-3 } })).toThrow(/variant/);
    await d2.create(modelDir, { variant: "prompt", numTasks: 2, promptLength: 2, inner: { lr: 1e-3 }, outer: { lr: 1e-3 } }, [[5, 6], []]);
    const i32 = (a: number[], shape: number[]) => ({ data: Int32Array.from(a), shape, dtype: "int32" as const });
    const train = { inputIds: i32([5, 6, 1, 7, 1, 0], [2, 3]), attentionMask: i32([1, 1, 1, 1, 1, 0], [2, 3]), labels: i32([8, 1, 9, 1], [2, 2]), taskIds: i32([0, 5], [2]) };
    await expect(d2.steps([{ train }])).rejects.toThrow(/taskIds/);  // checked on the worker thread
    const r = await d2.steps([{ train: { ...train, taskIds: i32([0, 1], [2]) }, meta: { ...train, taskIds: undefined } }]);
    expect(r.trainLoss).toHaveLength(1);
    expect(Number.isFinite(r.metaLoss[0])).toBe(true);
    expect(r.hypergradNorm[0]).toBeGreaterThan(0);
    expect(d2.info().phiParameters).toBe(2 * 2 * 32);
    d2.dispose();
    d.dispose();
  });
});

describe("DIO training and evaluation on the embedded suite", () => {
  const split = () => loadSplitTasks({ dataDir, maxTrainInstances: 12, maxEvalInstances: 4, seed: 1 });

  it("meta split is deterministic and disjoint", () => {
    const { train } = split();
    const a = metaSplit(train, 0.2, 1);
    const b = metaSplit(train, 0.2, 1);
    expect(a.meta.map((t) => t.name)).toEqual(b.meta.map((t) => t.name));
    expect(a.meta.length).toBe(Math.ceil(0.2 * train.length));
    const names = new Set(a.inner.map((t) => t.name));
    expect(a.meta.some((t) => names.has(t.name))).toBe(false);
    expect(() => metaSplit(train.slice(0, 1), 0.2, 1)).toThrow(/at least 2/);
  });

  it("dioBatch carries task ids or written-instruction ids", () => {
    const { train } = split();
    const tok = loadTokenizer(modelDir);
    const exs = tokenizeExamples(buildExamples(train.slice(0, 2), defaultDioConfig().encoding, (t) => tok.countTokens(t), { seed: 1, training: true }), tok, 96, 16).slice(0, 3);
    const b = dioBatch(exs, tok.padId, true, { taskIndex: new Map([[train[0].name, 0], [train[1].name, 1]]) });
    expect(Array.from(b.taskIds!.data)).toEqual(exs.map((e) => (e.task === train[0].name ? 0 : 1)));
    const instr = new Map(train.map((t) => [t.name, tok.encode(t.definition[0], { addEos: true })]));
    const e = dioBatch(exs, tok.padId, true, { instr });
    expect(e.instrIds!.shape[0]).toBe(3);
    expect(Array.from(e.instrMask!.data).filter((v) => v === 1).length).toBe(exs.reduce((a, x) => a + instr.get(x.task)!.length, 0));
  });

  for (const variant of ["embedder", "prompt"] as const) {
    it(`${variant}: trains (phi moves, meta losses reported) and evaluates unseen tasks`, async () => {
      const { train, test } = split();
      const tok = loadTokenizer(modelDir);
      const out = join(tmp, `run-${variant}`);
      const r = await trainDio(config({ variant, out, hypergrad: "neumann:2", metaEvery: 2 }), train, tok);
      expect(r.steps).toBe(8);
      expect(r.trainLosses.every(Number.isFinite)).toBe(true);
      expect(r.metaLosses).toHaveLength(4);
      expect(r.hvpCount).toBeGreaterThanOrEqual(4 * 2);
      const fixed = await trainDio(config({ variant, out: join(tmp, `fixed-${variant}`), metaEvery: 0 }), train, tok);
      expect(fixed.metaLosses).toHaveLength(0);
      // same seed and data: the fixed run's instructions stay at their initial values, the DIO run's moved
      const a = readFileSync(join(r.modelDir, "dio_instructions.safetensors"));
      const b = readFileSync(join(fixed.modelDir, "dio_instructions.safetensors"));
      expect(a.equals(b)).toBe(false);
      const ev = await evaluateDio(r.modelDir, test, tok, { batchSize: 8, maxNewTokens: 8, numBeams: 1, seed: 1, quiet: true });
      expect(ev.metrics.num_examples).toBe(test.reduce((n, t) => n + t.instances.length, 0));
      expect(ev.metrics.rougeL).toBeGreaterThanOrEqual(0);
      expect(ev.softTokens).toBe(variant === "embedder");
    });
  }
});

describe("hypergradient benchmark entry", () => {
  it("returns timings, ratios and peaks for each spec", async () => {
    const r = await loadAddon().dioBenchHypergrad({ config: "tiny", vocabSize: 64, batch: 2, sourceLength: 8, targetLength: 4, promptLength: 2, repeats: 1, specs: ["neumann:1", "cg:3", "unroll:2", "fd"] });
    expect(r.train_step_s).toBeGreaterThan(0);
    expect(r.hvp_s).toBeGreaterThan(0);
    expect(Object.keys(r.methods)).toEqual(["neumann:1", "cg:3", "unroll:2", "fd"]);
    expect(r.methods["cg:3"].iterations).toBe(3);  // damped: no early stop on negative curvature
    expect(r.methods["neumann:1"].hvp_count).toBeGreaterThanOrEqual(1);
    expect(r.methods["unroll:2"].peak_bytes).toBeGreaterThan(0);
    expect(() => loadAddon().dioBenchHypergrad({ specs: ["bogus:1"] })).toThrow(/bogus/);
  });
});
