// DIO through the addon (native/napi/dio_wrap.cc + src/dio/dio.ts): the native handle validates its arguments,
// bilevel steps update the instructions (and fixed mode does not), trainDio + evaluateDio run end to end on the
// embedded suite for both variants, and the hypergradient benchmark entry returns its figures.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSplitTasks } from "../../src/data/index.js";
import { defaultDioConfig, demonstrationIds, dioBatch, evaluateDio, metaSplit, resolveDioConfig, trainDio, type DioConfig } from "../../src/dio/dio.js";
import { readSafetensors } from "../../src/model/checkpoint.js";
import { T5Model } from "../../src/model/model.js";
import { loadTokenizer } from "../../src/model/tokenizer.js";
import { loadAddon } from "../../src/native/binding.js";
import { buildExamples, tokenizeExamples } from "../../src/train/batches.js";
import { writeTinySuiteModel } from "../helpers/tiny.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-dio-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const dataDir = join(tmp, "data");
const modelDir = join(tmp, "model");

beforeAll(() => writeTinySuiteModel(dataDir, modelDir, { suiteSeed: 7, modelSeed: 3 }));

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
    expect(() => d.init(modelDir, { variant: "prompt", numTasks: 2, hypergrad: "newton:3", inner: { lr: 1e-3 }, outer: { lr: 1e-3 } })).toThrow(/newton/);
    const d2 = new addon.DioNative();
    expect(() => d2.init(modelDir, { variant: "bogus" as "prompt", numTasks: 2, inner: { lr: 1e-3 }, outer: { lr: 1e-3 } })).toThrow(/variant/);
    await d2.init(modelDir, { variant: "prompt", numTasks: 2, promptLength: 2, inner: { lr: 1e-3 }, outer: { lr: 1e-3 } }, [[5, 6], []]);
    const i32 = (a: number[], shape: number[]) => ({ data: Int32Array.from(a), shape, dtype: "int32" as const });
    const train = { inputIds: i32([5, 6, 1, 7, 1, 0], [2, 3]), attentionMask: i32([1, 1, 1, 1, 1, 0], [2, 3]), labels: i32([8, 1, 9, 1], [2, 2]), taskIds: i32([0, 5], [2]) };
    await expect(d2.trainSteps([{ train }])).rejects.toThrow(/taskIds/);  // checked on the worker thread
    const r = await d2.trainSteps([{ train: { ...train, taskIds: i32([0, 1], [2]) }, meta: { ...train, taskIds: undefined } }]);
    expect(r.trainLoss).toHaveLength(1);
    expect(Number.isFinite(r.metaLoss[0])).toBe(true);
    expect(r.hypergradNorm[0]).toBeGreaterThan(0);
    expect(d2.info().phiParameters).toBe(2 * 2 * 32);
    const phi = d2.readPhi();
    expect(Object.keys(phi)).toEqual(["dio.prompts"]);
    expect(phi["dio.prompts"].shape).toEqual([2, 2, 32]);
    // the training state round-trips; a file that is not one is refused naming it
    const statePath = join(tmp, "state.safetensors");
    await d2.saveTrainingState(statePath);
    await d2.loadTrainingState(statePath);
    expect(d2.info().steps).toBe(1);
    await expect(d2.loadTrainingState(join(modelDir, "model.safetensors"))).rejects.toThrow(/model\.safetensors.*not a DIO training state/);
    d2.dispose();
    d.dispose();
  });
});

describe("DIO rank classification", () => {
  it("scores options through the DIO model with its soft tokens (the plain model's scores without them)", async () => {
    const d = new (loadAddon().DioNative)();
    const plain = await T5Model.load(modelDir, { seed: 1 });
    try {
      await d.init(modelDir, { variant: "prompt", numTasks: 2, promptLength: 2, metaEvery: 0, inner: { lr: 0 }, outer: { lr: 0 } }, [[5, 6], [7]]);
      const i32 = (a: number[], shape: number[]) => ({ data: Int32Array.from(a), shape, dtype: "int32" as const });
      const batch = { inputIds: i32([5, 6, 1, 7, 1, 0], [2, 3]), attentionMask: i32([1, 1, 1, 1, 1, 0], [2, 3]) };
      const options = [[[8, 1], [9, 10, 1]], [[11, 1], [12, 1], [13, 1]]];
      const ref = await plain.scoreOptions(batch, options);
      const without = await d.scoreOptions(batch, options);
      const withSoft = await d.scoreOptions({ ...batch, taskIds: i32([0, 1], [2]) }, options);
      expect(without.map((r) => r.length)).toEqual([2, 3]);
      without.forEach((r, i) => r.forEach((v, j) => expect(v).toBeCloseTo(ref[i][j], 9)));
      const diff = Math.max(...withSoft.flatMap((r, i) => r.map((v, j) => Math.abs(v - ref[i][j]))));
      expect(diff).toBeGreaterThan(1e-6);
      expect(() => d.scoreOptions(batch, [[[8, 1]]])).toThrow(/options/);  // argument checks throw at the call
    } finally {
      d.dispose();
      plain.dispose();
    }
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

describe("DIO checkpoints, resume, config files", () => {
  const split = () => loadSplitTasks({ dataDir, maxTrainInstances: 12, maxEvalInstances: 4, seed: 1 });
  const bytes = (p: string) => readFileSync(p);

  it("a run stopped after k steps and resumed equals the uninterrupted run bit for bit", async () => {
    const { train } = split();
    const tok = loadTokenizer(modelDir);
    // Everything that carries state: encoder-read embedder, demonstration logits (Gumbel stream), outer updates
    // every 2 steps, a linear inner schedule over the full 6 steps.
    const over: Partial<DioConfig> = { variant: "embedder", instructionEncoding: "encoder", demonstrations: { count: 3, tau: 0.5, maxLength: 24 }, steps: 6, stepsPerCall: 2, checkpointEvery: 2, metaEvery: 2, hypergrad: "neumann:1" };
    const full = await trainDio(config({ ...over, out: join(tmp, "res-full") }), train, tok);
    const partOut = join(tmp, "res-part");
    const a = await trainDio(config({ ...over, out: partOut }), train, tok, { hooks: { stopAfterSteps: 3 } });
    expect(a.interrupted).toBe(true);
    expect(a.steps).toBe(3);
    expect(readdirSync(join(partOut, "checkpoints"))).toEqual(["step-0000002", "step-0000003"]);
    const b = await trainDio(config({ ...over, out: partOut }), train, tok, { resume: true });
    expect(b.steps).toBe(6);
    expect(b.interrupted).toBe(false);
    expect(b.trainLosses).toEqual(full.trainLosses);
    expect(b.metaLosses).toEqual(full.metaLosses);
    expect(bytes(join(b.modelDir, "model.safetensors")).equals(bytes(join(full.modelDir, "model.safetensors")))).toBe(true);
    expect(bytes(join(b.modelDir, "dio_instructions.safetensors")).equals(bytes(join(full.modelDir, "dio_instructions.safetensors")))).toBe(true);
    const st = JSON.parse(readFileSync(join(partOut, "checkpoints", "step-0000006", "trainer_state.json"), "utf8"));
    expect(st.trainLosses).toEqual(full.trainLosses);
    expect(existsSync(join(partOut, "checkpoints", "step-0000006", "dio_state.safetensors"))).toBe(true);
    const log = readFileSync(join(partOut, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(log.filter((r) => typeof r.loss === "number").map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    // a resume with a config that changes the computation is refused, naming the key
    await expect(trainDio(config({ ...over, out: partOut, seed: 2 }), train, tok, { resume: true })).rejects.toThrow(/seed/);
    await expect(trainDio(config({ ...over, out: join(tmp, "none") }), train, tok, { resume: true })).rejects.toThrow(/no checkpoint found/);
  });

  it("demonstration selection trains (logits move), evaluates, and candidates come from positive examples", async () => {
    const { train, test } = split();
    const tok = loadTokenizer(modelDir);
    const ids = demonstrationIds(train[0], tok, 5, 16);
    expect(ids).toHaveLength(5);
    expect(ids[3]).toEqual(ids[0]); // cycled: the suite has 3 positive examples per task
    expect(() => demonstrationIds({ ...train[0], positiveExamples: [] }, tok, 3, 16)).toThrow(new RegExp(train[0].name));
    const r = await trainDio(config({ variant: "prompt", out: join(tmp, "demos"), demonstrations: { count: 3, tau: 1, maxLength: 24 }, metaEvery: 1, outer: { ...defaultDioConfig().outer, lr: 0.1 } }), train, tok);
    const phi = await readSafetensors(join(r.modelDir, "dio_instructions.safetensors"));
    const logits = phi.tensors.get("dio.demo_logits")!;
    expect(logits.shape).toEqual([r.innerTasks.length, 3]);
    const moved = Array.from(logits.data as Float32Array).filter((v) => v !== 0).length;
    expect(moved).toBeGreaterThan(0);
    const ev = await evaluateDio(r.modelDir, test, tok, { batchSize: 8, maxNewTokens: 4, numBeams: 1, seed: 1, quiet: true });
    expect(ev.metrics.num_examples).toBeGreaterThan(0);
  });

  it("resolveDioConfig: file < flags, unknown keys name the key and the file", () => {
    const f = join(tmp, "dio.yaml");
    writeFileSync(f, "steps: 7\nbatchSize: 2\ndemonstrations:\n  count: 2\nouter:\n  lr: 0.5\n");
    const c = resolveDioConfig(f, { steps: 9 });
    expect(c.steps).toBe(9);
    expect(c.batchSize).toBe(2);
    expect(c.demonstrations).toEqual({ ...defaultDioConfig().demonstrations, count: 2 });
    expect(c.outer.lr).toBe(0.5);
    writeFileSync(f, "stepz: 7\n");
    expect(() => resolveDioConfig(f, {})).toThrow(/dio\.yaml: unknown option 'stepz'/);
    writeFileSync(f, "outer:\n  lrr: 1\n");
    expect(() => resolveDioConfig(f, {})).toThrow(/unknown option 'outer.lrr'/);
    expect(() => resolveDioConfig(undefined, { demonstrations: { tau: 0 } })).toThrow(/demonstrations.tau/);
    expect(() => resolveDioConfig(undefined, { instructionEncoding: "states" })).toThrow(/instructionEncoding/);
  });
});

describe("hypergradient benchmark entry", () => {
  it("returns per-round timings, ratios and peaks for each case", async () => {
    const r = await loadAddon().dioBenchHypergrad({ config: "tiny", vocabSize: 64, batch: 2, sourceLength: 8, targetLength: 4, promptLength: 2, repeats: 2, specs: ["neumann:1", "cg:3", "unroll:2", "fd", "sama"], dioSpecs: ["neumann:1"] });
    expect(Object.keys(r.cases)).toEqual(["train_step", "grad", "hvp", "hvp_on_graph", "neumann:1", "cg:3", "unroll:2", "fd", "sama", "dio_step", "dio_outer:neumann:1"]);
    for (const c of Object.values(r.cases)) {
      expect(c.seconds).toHaveLength(2);
      expect(Math.min(...c.seconds)).toBeGreaterThan(0);
    }
    expect(r.cases.train_step.ratio_to_train_step).toEqual([1, 1]);
    expect(r.threads).toBeGreaterThan(0);
    expect(r.matmul_gflops).toBeGreaterThan(0);
    expect(r.cases["cg:3"].iterations).toBe(3);  // damped: no early stop on negative curvature
    expect(r.cases["neumann:1"].hvp_count).toBe(2);
    expect(r.cases["neumann:1"].grad_count).toBe(2);  // v1 and f (no precomputed f in the bare problem)
    expect(r.cases["sama"].hvp_count).toBe(0);
    expect(r.cases["dio_outer:neumann:1"].grad_count).toBe(1);  // the inner step's f is reused: only v1
    expect(r.cases["unroll:2"].peak_bytes).toBeGreaterThan(0);
    expect(() => loadAddon().dioBenchHypergrad({ specs: ["bogus:1"] })).toThrow(/bogus/);
  });
});
