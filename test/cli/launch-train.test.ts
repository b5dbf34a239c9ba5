// Data-parallel `instill train` through `instill launch`: 2 workers with a global batch of 4 take the same steps,
// on the same examples, as 1 worker; rank 0 alone writes the checkpoint and the log.
import { describe, expect, it } from "vitest";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli, singleAndTwoWorkers, synthDataAndModel } from "../helpers/tiny.js";

const run = runCli;

const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => typeof r.loss === "number").map((r) => r.loss as number);

function setup(dropout = 0.0) {
  const root = mkdtempSync(join(tmpdir(), "instill-ddp-"));
  return { root, ...synthDataAndModel(root, { dropout }) };
}

describe("instill launch -- train (Gloo on loopback)", () => {
  it("2 workers follow the single-process loss curve and rank 0 writes the checkpoint", () => {
    const { root, data, model } = setup();
    // Shards hold different numbers of label tokens; each rank scales its loss by its share of the global batch's
    // tokens, so the averaged gradients and losses are the single-process token mean (float32 rounding apart).
    const args = ["--model", model, "--data", data, "--steps", "3", "--batch-size", "4", "--max-train-instances", "2", "--max-source-length", "64", "--lr", "0.003", "--set", "logEvery=1", "--set", "optimizer.clipNorm=0", "-q"];
    const { one, two, single: a, launched: b } = singleAndTwoWorkers(root, ["train", ...args]);
    expect(a.status, a.stderr).toBe(0);
    expect(b.status, b.stderr + b.stdout).toBe(0);
    const l1 = losses(one);
    const l2 = losses(two);
    expect(l2.length).toBe(l1.length);
    for (let i = 0; i < l1.length; i++) expect(Math.abs(l2[i] - l1[i])).toBeLessThan(1e-5 * Math.abs(l1[i]));
    expect(existsSync(join(two, "model", "model.safetensors"))).toBe(true);
    expect(existsSync(join(two, "checkpoints", "step-0000003", "trainer_state.json"))).toBe(true);
  });

  it("a worker killed mid-run fails the job within seconds naming the rank; the last checkpoint is intact and resumes", () => {
    const { root, data, model } = setup(0.1);
    const out = join(root, "run");
    const args = ["train", "--model", model, "--data", data, "--out", out, "--steps", "8", "--batch-size", "4", "--max-train-instances", "2", "--max-source-length", "64", "--set", "checkpointEvery=2", "--set", "stepsPerCall=1", "--set", "keepCheckpoints=3", "-q"];
    // Rank 1 SIGKILLs itself after step 5: rank 0 is then waiting in step 6's all-reduce, which can never finish.
    const a = run(["launch", "--nproc", "2", "--", ...args], { INSTILL_TEST_KILL_AT_STEP: "1:5", INSTILL_DIST_TIMEOUT: "120" });
    const ended = Date.now();
    expect(a.status, a.stdout + a.stderr).not.toBe(0);
    expect(a.stderr).toMatch(/rank 1 .*(SIGKILL|code)/);
    const ckpts = join(out, "checkpoints");
    const step4 = join(ckpts, "step-0000004");
    expect(readdirSync(ckpts).sort()).toEqual(["step-0000002", "step-0000004"]); // no step 6, no temp folder left
    expect(ended - statSync(join(step4, "trainer_state.json")).mtimeMs).toBeLessThan(15_000);
    // Resume with a different world size (1 process): continues at step 4 and finishes.
    const b = run([...args, "--resume"]);
    expect(b.status, b.stderr).toBe(0);
    const log = readFileSync(join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(log.find((r) => r.event === "resumed")?.step).toBe(4);
    expect(log.filter((r) => typeof r.loss === "number").map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(existsSync(join(out, "model", "model.safetensors"))).toBe(true);
  });
});
