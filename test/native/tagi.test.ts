// TAGI through the addon on the embedded suite: training lowers the loss, evaluation runs with per-task
// generated adapters, generate writes a PEFT adapter that the PEFT reader accepts, argument errors are clean,
// answer options are scored under generated adapters exactly as the plain model scores them with the exported adapter.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSplitTasks, writeSuite } from "../../src/data/index.js";
import { synthesizeSuite } from "../../src/data/suite.js";
import { demoModelConfig } from "../../src/demo/demo.js";
import { T5Model } from "../../src/model/model.js";
import { installTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";
import { loadAddon } from "../../src/native/binding.js";
import { collateTagi, pretrainExamples, shardLossScale, StageOrder, Tagi, tagiExamples, taskInstruction } from "../../src/tagi/tagi.js";
import { Rng } from "../../src/util/rng.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-tagi-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("TAGI native", () => {
  const dataDir = join(tmp, "data");
  const modelDir = join(tmp, "model");
  const DATA = { maxSourceLength: 128, maxTargetLength: 32, maxInstructionLength: 64 };

  it("trains, evaluates and writes an adapter on the embedded suite", async () => {
    writeSuite(dataDir, 3);
    installTokenizer(dataDir, modelDir);
    const tok = loadTokenizer(modelDir);
    const cfg = { ...demoModelConfig(tok.vocabSize), d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4 };
    const init = await T5Model.init(cfg, { seed: 1 });
    await init.save(modelDir);
    init.dispose();
    const split = loadSplitTasks({ dataDir, maxTrainInstances: 8, maxEvalInstances: 2, seed: 1 });
    const tagi = await Tagi.load(modelDir, { hypernet: { rank: 4, alpha: 8, projDim: 32 }, trainBase: true, seed: 1 });
    try {
      const info = tagi.info();
      expect(info.slots).toBe(4 * 2 + 2 * 2); // q, v in 2 encoder self, 2 decoder self, 2 cross layers
      const pre = pretrainExamples(split.train, tok, DATA, 1);
      expect(pre.length).toBeGreaterThan(0);
      expect(pre[0].src).toEqual([tok.eosId]);
      const ex = tagiExamples(split.train, tok, DATA, { seed: 1, training: true });
      const r = await tagi.trainStage(ex, tok, { steps: 30, batchSize: 8, lr: 3e-3, seed: 1, loss: { ce: 1, kl: 0, temperature: 3, mse: 0 } });
      expect(r.losses).toHaveLength(30);
      const head = (r.losses[0] + r.losses[1]) / 2;
      const tail = (r.losses[28] + r.losses[29]) / 2;
      expect(tail).toBeLessThan(head);
      expect(r.kl.every((x) => x === null)).toBe(true);
      const ev = await tagi.evaluate(split.test.slice(0, 3), tok, { ...DATA, batchSize: 8, maxNewTokens: 8, seed: 1, quiet: true });
      expect(ev.metrics.num_examples).toBeGreaterThan(0);
      expect(ev.metrics.rougeL).toBeGreaterThanOrEqual(0);
      const w = await tagi.writeAdapter("Definition: reverse the words.", tok, join(tmp, "adapter"));
      expect(w.modules).toBe(12);
      const peft = await loadAddon().readPeftAdapter(join(tmp, "adapter"));
      expect(peft.r).toBe(4);
      await tagi.save(join(tmp, "run"));
    } finally {
      tagi.dispose();
    }
    // reload the hypernetwork with the trained base
    const back = await Tagi.load(join(tmp, "run", "model"), { hypernetPath: join(tmp, "run", "hypernet.safetensors") });
    expect(back.info().rank).toBe(4);
    back.dispose();
  }, 120_000);

  it("scores answer options under generated adapters as the plain model with the exported PEFT adapter", async () => {
    const tok = loadTokenizer(modelDir);
    // Yes/no tasks of the same suite (in memory: the SNI files carry no options).
    const suite = synthesizeSuite({ seed: 3, instancesPerTask: 6 });
    const mc = suite.tasks.filter((t) => t.answerChoices && t.answerChoices.length > 1);
    expect(mc.length).toBeGreaterThan(1);
    // initStd 0.3: adapters far from zero, so scoring without them would differ; fusion off: a PEFT adapter is all.
    const tagi = await Tagi.load(modelDir, { hypernet: { rank: 2, alpha: 4, projDim: 16, initStd: 0.3, fusion: false }, seed: 2 });
    const plain = await T5Model.load(modelDir);
    try {
      const task = mc[0];
      const exs = tagiExamples([task], tok, DATA, { seed: 1, training: false });
      const options = exs.map(() => task.answerChoices!.map((c) => tok.encode(c, { addEos: true })));
      const batch = collateTagi(exs, tok.padId, false);
      const got = await tagi.scoreOptions(batch, options);
      const base = await plain.scoreOptions({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }, options);
      const dir = join(tmp, "mc-adapter");
      await tagi.writeAdapter(taskInstruction(task), tok, dir, DATA.maxInstructionLength);
      await plain.loadAdapter(dir);
      const want = await plain.scoreOptions({ inputIds: batch.inputIds, attentionMask: batch.attentionMask }, options);
      let worst = 0;
      let moved = 0;
      got.forEach((row, i) =>
        row.forEach((x, k) => {
          worst = Math.max(worst, Math.abs(x - want[i][k]));
          moved = Math.max(moved, Math.abs(x - base[i][k]));
        }),
      );
      console.log(`TAGI option scores vs plain model + exported adapter: max |diff| ${worst.toExponential(2)} (adapter moves scores by ${moved.toFixed(3)})`);
      expect(worst).toBeLessThan(1e-5);
      expect(moved).toBeGreaterThan(1e-3);
      // Tagi.evaluate reports rank accuracy from these scores (one task: the argmax of `got` against the gold).
      const ev = await tagi.evaluate([task], tok, { ...DATA, batchSize: 4, maxNewTokens: 4, seed: 1, quiet: true });
      const gold = exs.map((_, i) => task.answerChoices!.findIndex((c) => c === task.instances[i].output[0]));
      const hits = got.filter((row, i) => row.indexOf(Math.max(...row)) === gold[i]).length;
      expect(ev.metrics.rank_accuracy).toBeCloseTo((100 * hits) / exs.length, 3);
      const all = await tagi.evaluate(mc.slice(0, 3), tok, { ...DATA, batchSize: 8, maxNewTokens: 4, seed: 1, quiet: true });
      expect(all.metrics.rank_accuracy).toBeGreaterThanOrEqual(0);
      expect(all.metrics.rank_accuracy).toBeLessThanOrEqual(100);
      await expect(Promise.resolve().then(() => tagi.scoreOptions(batch, options.slice(1)))).rejects.toThrow(/options: expected one array of options per example/);
    } finally {
      tagi.dispose();
      plain.dispose();
    }
  }, 120_000);

  it("splits loss terms over data-parallel shards by their share of tokens and taught rows", () => {
    const ex = (tgt: number, teacher: number) => ({ task: "t", teacher, src: [1], instr: [1], tgt: new Array<number>(tgt).fill(5) });
    const global = [ex(3, 0), ex(1, -1), ex(2, 1), ex(2, -1)];
    const a = shardLossScale(global.slice(0, 2), global, 2);
    const b = shardLossScale(global.slice(2), global, 2);
    expect(a).toEqual({ ce: (4 * 2) / 8, kl: (3 * 2) / 5, mse: 1 });
    expect(b).toEqual({ ce: (4 * 2) / 8, kl: (2 * 2) / 5, mse: 1 });
    // no teacher anywhere: the KL and MSE shares are 0 (the terms are off)
    expect(shardLossScale([ex(1, -1)], [ex(1, -1), ex(3, -1)], 2)).toEqual({ ce: 0.5, kl: 0, mse: 0 });
  });

  it("draws a stage's batches as a pure function of (seed, step): the lazy per-epoch shuffle, indexable", () => {
    // The order the stage always drew: one Rng, a fresh shuffle of 0..n-1 whenever an epoch runs out.
    const n = 7;
    const bs = 3;
    const rng = new Rng(9);
    let order: number[] = [];
    let pos = 0;
    const lazy = Array.from({ length: 10 }, () =>
      Array.from({ length: bs }, () => {
        if (pos >= order.length) [order, pos] = [rng.shuffle(Array.from({ length: n }, (_, i) => i)), 0];
        return order[pos++];
      }),
    );
    const o = new StageOrder(n, bs, 9);
    expect(Array.from({ length: 10 }, (_, s) => o.batch(s))).toEqual(lazy);
    // A resumed stage starts anywhere: a fresh order gives step 8's batch without drawing the earlier ones first.
    expect(new StageOrder(n, bs, 9).batch(8)).toEqual(lazy[8]);
    expect(new StageOrder(2, 4, 1).batch(3)).toHaveLength(2); // batch size capped at the number of examples
  });

  it("saves and restores the optimizer/scheduler/RNG state, refusing a state that does not fit", async () => {
    const tagi = await Tagi.load(modelDir, { hypernet: { rank: 2 }, seed: 3 });
    const other = await Tagi.load(modelDir, { hypernet: { rank: 2 }, seed: 3 });
    try {
      const path = join(tmp, "tagi_state.safetensors");
      await expect(Promise.resolve().then(() => tagi.saveTrainingState(path))).rejects.toThrow(/setOptimizer/);
      tagi.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 4 });
      await tagi.saveTrainingState(path);
      await expect(Promise.resolve().then(() => other.loadTrainingState(path))).rejects.toThrow(/setOptimizer/);
      other.setOptimizer({ name: "adafactor", lr: 1e-3, totalSteps: 4 });
      await expect(other.loadTrainingState(path)).rejects.toThrow(/optimizer 'adamw'.*'adafactor'/);
      other.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 4 });
      await other.loadTrainingState(path);
      await expect(other.loadTrainingState(join(tmp, "missing.safetensors"))).rejects.toThrow();
    } finally {
      tagi.dispose();
      other.dispose();
    }
  });

  it("rejects malformed batches with a message naming the field", async () => {
    const tok = loadTokenizer(modelDir);
    const tagi = await Tagi.load(modelDir, { hypernet: { rank: 2 } });
    try {
      tagi.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 1 });
      const b = collateTagi([{ task: "x", teacher: -1, src: [5, 1], instr: [6, 1], tgt: [7, 1] }], tok.padId);
      b.instrIds = { data: new Int32Array([1, 2, 3]), shape: [3, 1], dtype: "int32" };
      await expect(Promise.resolve().then(() => tagi.trainSteps([b]))).rejects.toThrow(/instrIds/);
      await expect(Tagi.load(join(tmp, "nope"))).rejects.toThrow(/config.json/);
    } finally {
      tagi.dispose();
    }
  });
});
