// `instill tagi train | generate | eval` end to end on the embedded suite and a tiny random T5 (no shared data).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliPath } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env: { ...process.env, INSTILL_THREADS: "1" } });
}
const tmp = mkdtempSync(join(tmpdir(), "instill-tagicli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("instill tagi", () => {
  it("trains a hypernetwork, writes a PEFT adapter from an instruction, evaluates, and rejects bad input", () => {
    const data = join(tmp, "data");
    const s = run(["data", "synth", "--out", data, "--instances", "4"]);
    expect(s.status, s.stderr).toBe(0);
    const cfgPath = join(tmp, "cfg.json");
    writeFileSync(cfgPath, JSON.stringify({ d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, feed_forward_proj: "relu" }));
    const model = join(tmp, "model");
    const m = run(["model", "init", "--config", cfgPath, "--tokenizer", data, "--out", model, "--seed", "1"]);
    expect(m.status, m.stderr).toBe(0);

    const tagiDir = join(tmp, "tagi");
    const common = ["--model", model, "--data", data, "--max-train-instances", "2", "--max-eval-instances", "1", "--quiet"];
    const t = run(["tagi", "train", ...common, "--out", tagiDir, "--steps", "3", "--batch-size", "4", "--rank", "2"]);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/train: 3 steps/);
    expect(existsSync(join(tagiDir, "hypernet.safetensors"))).toBe(true);
    const meta = JSON.parse(readFileSync(join(tagiDir, "tagi.json"), "utf8"));
    expect(meta.stage).toBe("train");
    expect(meta.steps).toBe(3);
    expect(meta.info.rank).toBe(2);
    const lines = readFileSync(join(tagiDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const losses = lines.map((l) => l.loss as number);
    expect(losses).toHaveLength(3);
    expect(losses.every((l) => Number.isFinite(l) && l > 0)).toBe(true);
    // The first step of the call logs each loss term's gradient norm at the hypernetwork: with the default (LoRA)
    // init CE reaches it at once; KL/MSE are off without teachers.
    expect(lines[0].hypernetGradNorm.ce).toBeGreaterThan(1e-6);
    expect(lines[0].hypernetGradNorm.kl).toBeNull();
    expect(lines[1].hypernetGradNorm).toBeUndefined();

    const adapter = join(tmp, "adapter");
    const g = run(["tagi", "generate", "--model", model, "--tagi", tagiDir, "--out", adapter, "--instruction", "reverse the order of the words"]);
    expect(g.status, g.stderr).toBe(0);
    expect(g.stdout).toMatch(/wrote .*LoRA modules, rank 2/);
    expect(existsSync(join(adapter, "adapter_model.safetensors"))).toBe(true);
    const ac = JSON.parse(readFileSync(join(adapter, "adapter_config.json"), "utf8"));
    expect(ac.r).toBe(2);
    expect(ac.lora_alpha).toBe(4); // the CLI's alpha = 2 * rank
    expect(Array.isArray(ac.target_modules) ? ac.target_modules.sort() : ac.target_modules).toEqual(["q", "v"]);
    // The safetensors header holds one lora_A [r, in] and one lora_B [out, r] per targeted module.
    const st = readFileSync(join(adapter, "adapter_model.safetensors"));
    const header = JSON.parse(st.subarray(8, 8 + Number(st.readBigUInt64LE(0))).toString("utf8")) as Record<string, { shape: number[] }>;
    const keys = Object.keys(header).filter((k) => k !== "__metadata__");
    const a = keys.filter((k) => /lora_A/.test(k));
    const b = keys.filter((k) => /lora_B/.test(k));
    expect(a.length).toBeGreaterThan(0);
    expect(b.length).toBe(a.length);
    for (const k of a) expect(header[k].shape).toEqual([2, 32]);
    for (const k of b) expect(header[k].shape[1]).toBe(2);
    expect(g.stdout).toContain(`${a.length} LoRA modules`);

    const e = run(["tagi", "eval", ...common, "--tagi", tagiDir, "--out", join(tmp, "eval")]);
    expect(e.status, e.stderr).toBe(0);
    const ev = JSON.parse(e.stdout.trim().split("\n").pop()!);
    expect(ev.num_examples).toBeGreaterThan(0);
    for (const k of ["rougeL", "exact_match", "rouge1"]) {
      expect(typeof ev[k]).toBe("number");
      expect(ev[k]).toBeGreaterThanOrEqual(0);
      expect(ev[k]).toBeLessThanOrEqual(100);
    }
    expect(existsSync(join(tmp, "eval", "metrics.json"))).toBe(true);

    // Bad input: both or neither of --instruction / --task, and a folder that is no TAGI run.
    const both = run(["tagi", "generate", "--model", model, "--tagi", tagiDir, "--out", join(tmp, "x"), "--instruction", "a", "--task", "b.json"]);
    expect(both.status).toBe(1);
    expect(both.stderr).toMatch(/instill: give exactly one of --instruction or --task/);
    const neither = run(["tagi", "generate", "--model", model, "--tagi", tagiDir, "--out", join(tmp, "x")]);
    expect(neither.status).toBe(1);
    expect(neither.stderr).toMatch(/exactly one of --instruction or --task/);
    const noRun = run(["tagi", "generate", "--model", model, "--tagi", join(tmp, "nope"), "--out", join(tmp, "y"), "--instruction", "a"]);
    expect(noRun.status).toBe(1);
    expect(noRun.stderr).toMatch(/instill: .*nope/);
    const badSteps = run(["tagi", "train", ...common, "--out", join(tmp, "z"), "--steps", "three"]);
    expect(badSteps.status).toBe(1);
    expect(badSteps.stderr).toMatch(/--steps: expected an integer, got 'three'/);
  }, 120_000);
});
