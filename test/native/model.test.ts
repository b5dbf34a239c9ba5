// The T5 handle end to end through the addon (native/napi/t5_wrap.cc + src/model/model.ts): training lowers the
// loss, generation and option scoring agree with the loss, save/load and PEFT adapters round-trip bit for bit,
// bad batches become JS errors, one call at a time, cancel, dispose.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { T5Model, makeBatch } from "../../src/model/model.js";
import type { Batch, OptimizerOptions } from "../../src/model/types.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-model-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const VOCAB = 64;

// A deterministic pseudo-random id list in [2, VOCAB) (0 = pad, 1 = eos).
function ids(seed: number, n: number): number[] {
  let x = seed * 2654435761 + 1;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    out.push(2 + (x % (VOCAB - 2)));
  }
  return out;
}

const inputs = [ids(1, 10), ids(2, 7), ids(3, 12), ids(4, 5)];
const targets = [[...ids(5, 4), 1], [...ids(6, 3), 1], [...ids(7, 5), 1], [...ids(8, 2), 1]];
const batch: Batch = makeBatch(inputs, targets);

const adafactor: OptimizerOptions = { name: "adafactor", lr: 1e-2, schedule: "constant", totalSteps: 1000, scaleParameter: false };

describe("T5Model (tiny, random init)", () => {
  it("trains on a fixed batch (loss decreases), reports steps, lrs and tokens", async () => {
    const m = await T5Model.init("tiny", { seed: 1, vocabSize: VOCAB });
    try {
      expect(m.config.vocab_size).toBe(VOCAB);
      expect(m.config.d_model).toBe(64);
      const count = m.parameterCount();
      expect(count.total).toBeGreaterThan(100_000);
      expect(count.trainable).toBe(count.total);
      expect(m.bytes).toBeGreaterThanOrEqual(count.total * 4);
      m.setOptimizer({ ...adafactor, warmupSteps: 2 });
      const events: number[] = [];
      const r = await m.trainSteps(Array(25).fill(batch), { onProgress: (e) => events.push(e.step as number) });
      expect(r.losses).toHaveLength(25);
      expect(r.gradNorms.every((g) => g > 0 && Number.isFinite(g))).toBe(true);
      expect(r.lrs.slice(0, 3)).toEqual([0, 0.005, 0.01]);
      expect(r.tokens).toBe(25 * targets.flat().length);
      expect(r.step).toBe(25);
      expect(r.cancelled).toBe(false);
      expect(events).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
      expect(r.losses[24]!).toBeLessThan(0.6 * r.losses[0]!);
      const [after] = await m.evalLoss([batch]);
      expect(after!).toBeLessThan(r.losses[0]!);
      expect(m.step).toBe(25);
    } finally {
      m.dispose();
    }
  });

  it("generates (greedy, beams, no cache) and scores options consistently with the loss", async () => {
    const m = await T5Model.init("tiny", { seed: 2, vocabSize: VOCAB });
    try {
      const gen = makeBatch(inputs);
      const greedy = await m.generate(gen, { maxNewTokens: 6 });
      expect(greedy).toHaveLength(4);
      for (const row of greedy) {
        expect(row.length).toBeLessThanOrEqual(6);
        expect(row.every((t) => Number.isInteger(t) && t >= 0 && t < VOCAB && t !== 1)).toBe(true);
      }
      expect(await m.generate(gen, { maxNewTokens: 6, useCache: false })).toEqual(greedy);
      const beams = await m.generate(gen, { maxNewTokens: 6, numBeams: 3 });
      expect(beams).toHaveLength(4);
      // Option scores: sum log p = -(mean token loss) * tokens, per example (independent path: evalLoss).
      const options = inputs.map((_, i) => [targets[i]!, [...ids(20 + i, 2), 1]]);
      const scores = await m.scoreOptions(gen, options);
      for (let i = 0; i < inputs.length; i++) {
        expect(scores[i]).toHaveLength(2);
        for (let k = 0; k < 2; k++) {
          const [loss] = await m.evalLoss([makeBatch([inputs[i]!], [options[i]![k]!])]);
          expect(scores[i]![k]!).toBeCloseTo(-loss! * options[i]![k]!.length, 4);
        }
      }
      // Ragged option counts.
      const ragged = await m.scoreOptions(makeBatch(inputs.slice(0, 2)), [[[5, 1]], [[6, 1], [7, 8, 1], [9, 1]]]);
      expect(ragged.map((r) => r.length)).toEqual([1, 3]);
    } finally {
      m.dispose();
    }
  });

  it("save + load gives bitwise identical outputs; float64 loads too", async () => {
    const m = await T5Model.init("tiny", { seed: 3, vocabSize: VOCAB });
    const dir = join(tmp, "saved");
    try {
      m.setOptimizer(adafactor);
      await m.trainSteps([batch, batch]);
      await m.save(dir);
      expect(existsSync(join(dir, "config.json")) && existsSync(join(dir, "model.safetensors"))).toBe(true);
      const loss = await m.evalLoss([batch]);
      const gen = await m.generate(makeBatch(inputs), { maxNewTokens: 5, numBeams: 2 });
      const scores = await m.scoreOptions(makeBatch(inputs), targets.map((t) => [t]));
      const r = await T5Model.load(dir);
      try {
        expect(r.config).toEqual(m.config);
        expect(await r.evalLoss([batch])).toEqual(loss);
        expect(await r.generate(makeBatch(inputs), { maxNewTokens: 5, numBeams: 2 })).toEqual(gen);
        expect(await r.scoreOptions(makeBatch(inputs), targets.map((t) => [t]))).toEqual(scores);
      } finally {
        r.dispose();
      }
      const d = await T5Model.load(dir, { dtype: "float64" });
      try {
        const [l64] = await d.evalLoss([batch]);
        expect(l64!).toBeCloseTo(loss[0]!, 4);
      } finally {
        d.dispose();
      }
    } finally {
      m.dispose();
    }
  });

  it("LoRA: trains only adapters, PEFT save/load reproduces outputs, merge keeps them", async () => {
    const base = join(tmp, "lora-base");
    const m = await T5Model.init("tiny", { seed: 4, vocabSize: VOCAB });
    await m.save(base);
    const adapterDir = join(tmp, "adapter");
    try {
      const before = await m.evalLoss([batch]);
      m.addLora({ r: 4, alpha: 8, modules: ["q", "v", "wi"], seed: 1 });
      const count = m.parameterCount();
      expect(count.trainable).toBeGreaterThan(0);
      expect(count.trainable).toBeLessThan(count.total / 5);
      expect(await m.evalLoss([batch])).toEqual(before); // lora_B starts at zero
      m.setOptimizer({ name: "adamw", lr: 1e-2, totalSteps: 10, schedule: "constant" });
      const r = await m.trainSteps(Array(10).fill(batch));
      expect(r.losses[9]!).toBeLessThan(r.losses[0]!);
      await m.saveAdapter(adapterDir);
      expect(existsSync(join(adapterDir, "adapter_config.json")) && existsSync(join(adapterDir, "adapter_model.safetensors"))).toBe(true);
      const adapted = await m.evalLoss([batch]);
      const l = await T5Model.load(base);
      try {
        await l.loadAdapter(adapterDir);
        expect(l.parameterCount()).toEqual(count);
        expect(await l.evalLoss([batch])).toEqual(adapted);
        l.mergeLora();
        const [merged] = await l.evalLoss([batch]);
        expect(merged!).toBeCloseTo(adapted[0]!, 5);
        expect(l.parameterCount().trainable).toBe(l.parameterCount().total);
        await expect(l.saveAdapter(join(tmp, "x"))).rejects.toThrow(/no LoRA/);
      } finally {
        l.dispose();
      }
      expect(() => m.addLora({ r: 4, alpha: 8, modules: ["q"] })).toThrow(/already has LoRA/);
      const n = await T5Model.init("tiny", { seed: 4, vocabSize: VOCAB });
      try {
        expect(() => n.addLora({ r: 4, alpha: 8, modules: ["nope"] })).toThrow(/nope/);
        expect(n.parameterCount().trainable).toBe(n.parameterCount().total); // nothing changed
      } finally {
        n.dispose();
      }
    } finally {
      m.dispose();
    }
  });

  it("training state: save + load into a fresh model continues bit for bit", async () => {
    const dir = join(tmp, "resume");
    const opt: OptimizerOptions = { name: "adafactor", lr: 1e-2, warmupSteps: 1, totalSteps: 6 };
    const batches = [0, 1, 2, 3, 4, 5].map((s) => makeBatch([ids(30 + s, 8), ids(40 + s, 6)], [[...ids(50 + s, 3), 1], [...ids(60 + s, 2), 1]]));
    // init() seeds LibTorch's default generator (dropout), so each run starts from the same generator state.
    const full = await T5Model.init("tiny", { seed: 5, vocabSize: VOCAB });
    full.setOptimizer(opt);
    const rf = await full.trainSteps(batches);
    const a = await T5Model.init("tiny", { seed: 5, vocabSize: VOCAB });
    try {
      a.setOptimizer(opt);
      await a.trainSteps(batches.slice(0, 3));
      await a.save(dir);
      await a.saveTrainingState(join(dir, "training_state.safetensors"));
      const b = await T5Model.load(dir, { seed: 999 });
      try {
        await expect(b.loadTrainingState(join(dir, "training_state.safetensors"))).rejects.toThrow(/setOptimizer/);
        b.setOptimizer({ ...opt, name: "adamw" });
        await expect(b.loadTrainingState(join(dir, "training_state.safetensors"))).rejects.toThrow(/adafactor/);
        b.setOptimizer(opt);
        await b.loadTrainingState(join(dir, "training_state.safetensors"));
        expect(b.step).toBe(3);
        const r2 = await b.trainSteps(batches.slice(3));
        expect(r2.losses).toEqual(rf.losses.slice(3));
        expect(r2.lrs).toEqual(rf.lrs.slice(3));
      } finally {
        b.dispose();
      }
    } finally {
      full.dispose();
      a.dispose();
    }
  });

  it("rejects bad batches with JS errors and keeps working", async () => {
    const m = await T5Model.init("tiny", { seed: 6, vocabSize: VOCAB });
    try {
      m.setOptimizer(adafactor);
      const mismatch: Batch = { ...batch, attentionMask: { data: new Int32Array(3), shape: [1, 3], dtype: "int32" } };
      await expect(m.trainSteps([mismatch])).rejects.toThrow(RangeError);
      await expect(m.trainSteps([mismatch])).rejects.toThrow(/attentionMask/);
      const wrongDtype = { ...batch, inputIds: { data: new Float32Array(batch.inputIds.data), shape: batch.inputIds.shape, dtype: "float32" } } as unknown as Batch;
      await expect(m.trainSteps([wrongDtype])).rejects.toThrow(TypeError);
      const big = makeBatch([[3, VOCAB]], [[4, 1]]);
      await expect(m.trainSteps([big])).rejects.toThrow(new RegExp(`id ${VOCAB} is outside`));
      await expect(m.trainSteps([makeBatch([[3, 4]], [[4, VOCAB + 5]])])).rejects.toThrow(/labels/);
      await expect(m.trainSteps([makeBatch([[3, 4]])])).rejects.toThrow(/labels: required/);
      await expect(m.trainSteps([])).rejects.toThrow(/empty/);
      await expect(m.scoreOptions(makeBatch([[3, 4]]), [[[VOCAB, 1]]])).rejects.toThrow(RangeError);
      await expect(m.generate(makeBatch([[3, 4]]), { maxNewTokens: 3, numBeams: 2, useCache: false })).rejects.toThrow(/useCache/);
      expect(() => m.setOptimizer({ name: "sgd" as "adamw", lr: 1, totalSteps: 1 })).toThrow(/sgd/);
      m.setOptimizer({ ...adafactor, gradAccumulation: 2 });
      await expect(m.trainSteps([batch, batch, batch])).rejects.toThrow(/gradAccumulation/);
      // Still alive and usable.
      const r = await m.trainSteps([batch, batch]);
      expect(r.losses).toHaveLength(1);
      expect(await m.generate(makeBatch([[3, 4]]), { maxNewTokens: 2 })).toHaveLength(1);
      await expect(T5Model.load(join(tmp, "does-not-exist"))).rejects.toThrow(/does-not-exist/);
    } finally {
      m.dispose();
    }
  });

  it("one call at a time, cancel, dispose (refused while busy, clear error after)", async () => {
    const m = await T5Model.init("tiny", { seed: 7, vocabSize: VOCAB });
    m.setOptimizer(adafactor);
    const running = m.trainSteps(Array(200).fill(batch), {
      onProgress: (e) => {
        if (e.stepInCall === 2) m.cancel();
      },
    });
    expect(m.busy).toBe(true);
    await expect(m.generate(makeBatch([[3]]), { maxNewTokens: 1 })).rejects.toThrow(/still running/);
    expect(() => m.dispose()).toThrow(/still running/);
    const r = await running;
    expect(r.cancelled).toBe(true);
    expect(r.losses.length).toBeGreaterThanOrEqual(2);
    expect(r.losses.length).toBeLessThan(200);
    expect(m.busy).toBe(false);
    const bytes = m.bytes;
    expect(bytes).toBeGreaterThan(0);
    await m[Symbol.asyncDispose]();
    expect(m.disposed).toBe(true);
    expect(m.bytes).toBe(0);
    m.dispose(); // idempotent
    await expect(m.generate(makeBatch([[3]]), { maxNewTokens: 1 })).rejects.toThrow(/disposed/);
    expect(() => m.parameterCount()).toThrow(/disposed/);
  });
});
