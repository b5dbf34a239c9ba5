import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Rng } from "../../src/util/rng.js";
import { defaultConfig, mergeChecked, parseLoraSpec, resolveConfig } from "../../src/train/config.js";
import { CheckpointManager } from "../../src/train/checkpoint.js";
import { BatchSchedule, collate, type TokenizedExample } from "../../src/train/batches.js";
import { writeFileAtomic } from "../../src/util/fs.js";

const tmp = () => mkdtempSync(join(tmpdir(), "instill-train-"));

describe("Rng", () => {
  it("is deterministic per seed, resumable from its state, and roughly uniform", () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const xs = Array.from({ length: 5 }, () => a.nextUint32());
    expect(Array.from({ length: 5 }, () => b.nextUint32())).toEqual(xs);
    expect(new Rng(8).nextUint32()).not.toBe(xs[0]);
    const s = a.state();
    const next = a.next();
    expect(new Rng(s).next()).toBe(next);
    const counts = new Array(10).fill(0);
    const r = new Rng(1);
    for (let i = 0; i < 20000; i++) counts[r.int(10)]++;
    for (const c of counts) expect(Math.abs(c - 2000)).toBeLessThan(200);
    const perm = new Rng(3).shuffle([0, 1, 2, 3, 4, 5]);
    expect([...perm].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});

describe("run config", () => {
  it("merges defaults < file < flags and saves nothing unknown", () => {
    const d = tmp();
    const f = join(d, "run.yaml");
    writeFileSync(f, "batchSize: 4\noptimizer:\n  lr: 0.01\n  name: adafactor\nencoding:\n  numPositiveExamples: 2\n");
    const c = resolveConfig(f, { batchSize: 2 });
    expect(c.batchSize).toBe(2);
    expect(c.optimizer.lr).toBe(0.01);
    expect(c.optimizer.name).toBe("adafactor");
    expect(c.optimizer.clipNorm).toBe(1.0);
    expect(c.encoding.numPositiveExamples).toBe(2);
    expect(c.encoding.addDefinition).toBe(true);
  });

  it("names the file and key on unknown keys, bad types and bad values", () => {
    const d = tmp();
    const f = join(d, "run.json");
    writeFileSync(f, JSON.stringify({ batchsize: 4 }));
    expect(() => resolveConfig(f, {})).toThrow(/run.json: unknown option 'batchsize'/);
    writeFileSync(f, JSON.stringify({ optimizer: { lr: "fast" } }));
    expect(() => resolveConfig(f, {})).toThrow(/run.json: optimizer.lr: expected a number/);
    writeFileSync(f, "{not json");
    expect(() => resolveConfig(f, {})).toThrow(/run.json: cannot parse JSON/);
    expect(() => resolveConfig(undefined, { batchSize: 0 })).toThrow(/batchSize must be a positive integer/);
    expect(() => resolveConfig(join(d, "missing.yaml"), {})).toThrow(/missing.yaml: config file not found/);
    expect(() => mergeChecked(defaultConfig(), { eval: { beams: 2 } }, "x")).toThrow(/unknown option 'eval.beams'/);
  });

  it("parses LoRA specs with module lists", () => {
    expect(parseLoraSpec("r=16,alpha=32,modules=q,v")).toEqual({ r: 16, alpha: 32, dropout: 0, modules: ["q", "v"] });
    expect(parseLoraSpec("modules=q,k,v,o,r=4,alpha=8,dropout=0.1")).toEqual({ r: 4, alpha: 8, dropout: 0.1, modules: ["q", "k", "v", "o"] });
    expect(() => parseLoraSpec("r=0")).toThrow(/r must be a positive integer/);
    expect(() => parseLoraSpec("modules=q,x")).toThrow(/unknown module 'x'/);
    expect(() => parseLoraSpec("rank=4")).toThrow(/unknown key 'rank'/);
  });
});

describe("checkpoints", () => {
  it("writes atomically, keeps the last K, ignores and cleans half-written folders", async () => {
    const d = tmp();
    const m = new CheckpointManager(d, 2);
    for (const s of [10, 20, 30]) {
      await m.save(s, { losses: [s] }, async (dir) => writeFileSync(join(dir, "weights.bin"), String(s)));
    }
    expect(m.list().map((c) => c.step)).toEqual([20, 30]);
    expect(m.readState(m.latest()!)).toMatchObject({ step: 30, losses: [30] });
    // A killed run's leftovers: a temp folder and a step folder without its state file.
    mkdirSync(join(m.root, ".tmp-step-0000040-99999999"));
    mkdirSync(join(m.root, "step-0000050"));
    expect(m.latest()!.step).toBe(30);
    await m.save(60, {}, async () => {});
    expect(readdirSync(m.root).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
    // A failure while filling leaves no checkpoint and no temp folder.
    await expect(m.save(70, {}, async () => { throw new Error("disk full"); })).rejects.toThrow(/disk full/);
    expect(existsSync(join(m.root, "step-0000070"))).toBe(false);
    expect(readdirSync(m.root).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  });

  it("writeFileAtomic replaces content without leaving temp files", () => {
    const d = tmp();
    writeFileAtomic(join(d, "a.json"), "1");
    writeFileAtomic(join(d, "a.json"), "2");
    expect(readdirSync(d)).toEqual(["a.json"]);
  });
});

describe("batches", () => {
  const ex = (i: number): TokenizedExample => ({
    task: "t", id: String(i), category: "c", source: "", target: "", references: [""], src: Array.from({ length: 1 + (i % 3) }, () => 5 + i), tgt: [7, 1],
  });

  it("collates right-padded ids, masks and -100 labels", () => {
    const b = collate([ex(0), ex(2)], 0);
    expect(b.inputIds.shape).toEqual([2, 3]);
    expect(Array.from(b.inputIds.data)).toEqual([5, 0, 0, 7, 7, 7]);
    expect(Array.from(b.attentionMask.data)).toEqual([1, 0, 0, 1, 1, 1]);
    expect(Array.from(b.labels!.data)).toEqual([7, 1, 7, 1]);
    const c = collate([{ src: [3], tgt: [4, 1] }, { src: [3], tgt: [1] }], 0);
    expect(Array.from(c.labels!.data)).toEqual([4, 1, 1, -100]);
  });

  it("a schedule is a pure function of (seed, batch number): resumable", () => {
    const data = Array.from({ length: 10 }, (_, i) => ex(i));
    const a = new BatchSchedule(data, 3, 5);
    const b = new BatchSchedule(data, 3, 5);
    expect(a.perEpoch).toBe(3);
    const ids = (s: BatchSchedule, i: number) => s.examples(i).map((e) => e.id);
    const seqA = [0, 1, 2, 3, 4, 5].map((i) => ids(a, i));
    expect([5, 4, 3, 2, 1, 0].map((i) => ids(b, i)).reverse()).toEqual(seqA);
    expect(new Set(seqA.slice(0, 3).flat()).size).toBe(9); // no repeats within an epoch
    expect(seqA.slice(3)).not.toEqual(seqA.slice(0, 3)); // reshuffled next epoch
  });
});

describe("interrupted runs whose result a caller needs", () => {
  it("finishedModelDir returns the model of a finished run and throws InterruptedError (exit 130 in the CLI) otherwise", async () => {
    const { finishedModelDir, InterruptedError } = await import("../../src/train/trainer.js");
    const done = { out: "/runs/a", steps: 4, losses: [1], interrupted: false, seconds: 1, modelDir: "/runs/a/model" };
    expect(finishedModelDir(done)).toBe("/runs/a/model");
    const stopped = { ...done, interrupted: true, modelDir: undefined };
    expect(() => finishedModelDir(stopped)).toThrow(InterruptedError);
    expect(() => finishedModelDir(stopped)).toThrow("training in /runs/a: interrupted (Ctrl-C)");
  });
});
