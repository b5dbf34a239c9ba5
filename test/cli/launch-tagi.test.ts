// Data-parallel `instill tagi train` (and pretrain) through `instill launch`: 2 workers on shards of a global batch of 4 follow the
// single-process loss curve (each loss term weighted by its shard's share of tokens, gradients averaged), hypernetwork
// and base (--train-base) stay in step, and rank 0 alone writes the run folder.
import { afterAll, describe, expect, it } from "vitest";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, singleAndTwoWorkers, synthDataAndModel } from "../helpers/tiny.js";

const run = (args: string[]) => runCli(args, {}, 120_000);

const records = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; loss: number; ce: number; world_size?: number });

const tree = (dir: string, pre = ""): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tree(join(dir, e.name), `${pre}${e.name}/`) : [`${pre}${e.name}`])).sort();

const root = mkdtempSync(join(tmpdir(), "instill-tagi-ddp-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("instill launch -- tagi train (Gloo on loopback)", () => {
  it("2 workers follow the single-process loss curve and rank 0 alone writes", () => {
    const { data, model } = synthDataAndModel(root, { instances: 4, feedForward: "relu" });
    const args = ["tagi", "train", "--model", model, "--data", data, "--steps", "3", "--batch-size", "4", "--max-train-instances", "2", "--rank", "2", "--lr", "0.01", "--train-base", "--quiet"];
    const { one, two, single: a, launched: b } = singleAndTwoWorkers(root, args, 120_000);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr + b.stdout).toBe(0);
    expect(b.stdout).toMatch(/train: 3 steps .* on 2 workers/);
    expect(b.stdout.match(/train: 3 steps/g)).toHaveLength(1); // rank 0 alone reports

    const r1 = records(one);
    const r2 = records(two);
    expect(r2.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(r2.every((r) => r.world_size === 2)).toBe(true);
    const diffs = r1.map((r, i) => Math.abs(r.loss - r2[i].loss));
    console.log(`1 vs 2 workers: losses ${r1.map((r) => r.loss.toFixed(6)).join(", ")} | ${r2.map((r) => r.loss.toFixed(6)).join(", ")}; max |diff| ${Math.max(...diffs).toExponential(2)}`);
    // Same init, same global batches, token-weighted shards: equal up to float rounding (padding, summation order).
    // Steps 2 and 3 also check the updates: averaging wrongly (sum, no all-reduce, unweighted shards) or ranks that
    // drift apart would move them by far more.
    for (let i = 0; i < 3; i++) expect(Math.abs(r2[i].loss - r1[i].loss)).toBeLessThan(1e-5 * Math.max(1, r1[i].loss));
    expect(Math.abs(r2[2].loss - r2[0].loss)).toBeGreaterThan(1e-3); // the curve moves: updates happened

    // One set of outputs, the same files as one process writes (hypernetwork, trained base, log, run record).
    expect(tree(two)).toEqual(tree(one));
    expect(tree(two)).toEqual(expect.arrayContaining(["hypernet.safetensors", "metrics.jsonl", "tagi.json", "model/model.safetensors"]));
    expect(readFileSync(join(two, "metrics.jsonl"), "utf8").trim().split("\n")).toHaveLength(3);
    expect(JSON.parse(readFileSync(join(two, "tagi.json"), "utf8")).worldSize).toBe(2);

    // Stage 1 (pretrain, Adafactor) goes through the same sharded loop.
    const pre = ["tagi", "pretrain", "--model", model, "--data", data, "--steps", "2", "--batch-size", "4", "--max-train-instances", "2", "--rank", "2", "--quiet"];
    const p1 = run([...pre, "--out", join(root, "pre1")]);
    expect(p1.status, p1.stderr).toBe(0);
    const p2 = run(["launch", "--nproc", "2", "--", ...pre, "--out", join(root, "pre2")]);
    expect(p2.status, p2.stderr + p2.stdout).toBe(0);
    const q1 = records(join(root, "pre1"));
    const q2 = records(join(root, "pre2"));
    expect(q2).toHaveLength(2);
    for (let i = 0; i < 2; i++) expect(Math.abs(q2[i].loss - q1[i].loss)).toBeLessThan(1e-5 * Math.max(1, q1[i].loss));

    // A global batch that does not split evenly is refused on every rank, naming the flag.
    const c = run(["launch", "--nproc", "2", "--", ...args.map((x) => (x === "4" ? "3" : x)), "--out", join(root, "bad")]);
    expect(c.status).not.toBe(0);
    expect(c.stderr).toMatch(/--batch-size 3 must be a multiple of the number of workers \(2\)/);
  }, 180_000);
});
