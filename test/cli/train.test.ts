// End to end through the CLI: synth data, a tiny model, a few training steps, eval, report files; a resume that
// reproduces the uninterrupted loss curve exactly; and a process killed in the middle of a checkpoint write.
import { describe, expect, it, beforeAll } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env: { ...process.env, INSTILL_THREADS: "1", ...env } });
}

const root = mkdtempSync(join(tmpdir(), "instill-e2e-"));
const data = join(root, "data");
const model = join(root, "model");
const small = { d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8, relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: "gated-gelu", tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: 0.1 };
const common = ["--max-train-instances", "3", "--max-source-length", "96", "--max-target-length", "16", "--batch-size", "4", "--lr", "0.003", "-q"];

function losses(dir: string): number[] {
  return readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l)).filter((r) => typeof r.loss === "number").map((r) => r.loss);
}

describe("instill train / eval end to end", () => {
  beforeAll(() => {
    expect(run(["data", "synth", "--out", data, "--seed", "3"]).status).toBe(0);
    writeFileSync(join(root, "config.json"), JSON.stringify(small));
    const r = run(["model", "init", "--config", join(root, "config.json"), "--tokenizer", data, "--out", model, "--seed", "1"]);
    expect(r.status, r.stderr).toBe(0);
  });

  it("trains, evaluates, and writes predictions, metrics and a report", () => {
    const out = join(root, "run");
    const t = run(["train", "--model", model, "--data", data, "--out", out, "--steps", "4", "--set", "logEvery=1", ...common]);
    expect(t.status, t.stderr).toBe(0);
    expect(existsSync(join(out, "model", "model.safetensors"))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).steps).toBe(4);
    expect(losses(out).length).toBeGreaterThan(0);
    const ev = join(root, "eval");
    const e = run(["eval", "--model", join(out, "model"), "--data", data, "--out", ev, "--max-eval-instances", "2", "--max-new-tokens", "8", "--json", "-q"]);
    expect(e.status, e.stderr).toBe(0);
    const m = JSON.parse(e.stdout.trim().split("\n").pop()!);
    expect(typeof m.rougeL).toBe("number");
    expect(m.num_examples).toBe(18 * 2);
    const preds = readFileSync(join(ev, "predictions.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(preds.length).toBe(36);
    expect(preds[0]).toHaveProperty("prediction");
    expect(JSON.parse(readFileSync(join(ev, "metrics.json"), "utf8")).rougeL).toBe(m.rougeL);
    expect(readFileSync(join(ev, "report.md"), "utf8")).toMatch(/\| model \|/);
    expect(readFileSync(join(ev, "report.html"), "utf8")).toContain("<svg");
    expect(readdirSync(ev).filter((f) => f.endsWith(".png")).length).toBeGreaterThan(0);
  });

  it("a resumed run reproduces the uninterrupted loss curve exactly (dropout on)", () => {
    const full = join(root, "full");
    const a = run(["train", "--model", model, "--data", data, "--out", full, "--steps", "6", "--checkpoint-every", "2", "--steps-per-call", "1", ...common]);
    expect(a.status, a.stderr).toBe(0);
    const part = join(root, "part");
    // Stop after 4 steps: the run is killed in the middle of writing checkpoint 4, so the last good one is 2.
    const b = run(["train", "--model", model, "--data", data, "--out", part, "--steps", "6", "--checkpoint-every", "2", "--steps-per-call", "1", ...common], {
      INSTILL_TEST_KILL_DURING_CHECKPOINT: "4",
    });
    expect(b.signal).toBe("SIGKILL");
    const ck = readdirSync(join(part, "checkpoints"));
    expect(ck).toContain("step-0000002");
    expect(ck).not.toContain("step-0000004"); // the half-written one never appears under its final name
    const c = run(["train", "--model", model, "--data", data, "--out", part, "--steps", "6", "--checkpoint-every", "2", "--steps-per-call", "1", "--resume", ...common]);
    expect(c.status, c.stderr).toBe(0);
    const state = JSON.parse(readFileSync(join(part, "checkpoints", "step-0000006", "trainer_state.json"), "utf8"));
    const fullState = JSON.parse(readFileSync(join(full, "checkpoints", "step-0000006", "trainer_state.json"), "utf8"));
    expect(state.losses).toEqual(fullState.losses);
    expect(readdirSync(join(part, "checkpoints")).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
    expect(readFileSync(join(part, "model", "model.safetensors")).equals(readFileSync(join(full, "model", "model.safetensors")))).toBe(true);
  });

  it("bad input gives clear errors", () => {
    const r = run(["train", "--model", join(root, "nope"), "--data", data, "--steps", "1", "-q"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--model: .*nope/);
    const r2 = run(["train", "--model", model, "--data", data, "--steps", "1", "--lora", "r=0", "-q"]);
    expect(r2.stderr).toMatch(/--lora: r must be a positive integer/);
    const r3 = run(["train", "--model", model, "--data", data, "--steps", "1", "--set", "batchsize=3", "-q"]);
    expect(r3.stderr).toMatch(/unknown option 'batchsize'/);
    const r4 = run(["train", "--model", model, "--data", data, "--out", join(root, "never"), "--steps", "1", "--resume", "-q"]);
    expect(r4.stderr).toMatch(/--resume: no checkpoint found/);
  });
});
