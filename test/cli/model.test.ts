// `instill model init` + `instill generate` with the byte tokenizer (no shared data needed).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliPath } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8" });
}
const tmp = mkdtempSync(join(tmpdir(), "instill-modelcli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("instill model init / generate", () => {
  it("writes a tiny byte-level checkpoint and generates from it, deterministically", () => {
    const out = join(tmp, "tiny");
    const r = run(["model", "init", "--config", "tiny", "--tokenizer", "byte", "--out", out, "--seed", "3"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/vocab 384/);
    for (const f of ["config.json", "model.safetensors", "instill_tokenizer.json"]) expect(existsSync(join(out, f))).toBe(true);
    const cfg = JSON.parse(readFileSync(join(out, "config.json"), "utf8"));
    expect(cfg.vocab_size).toBe(384); // the byte tokenizer's size: 259 bytes and specials + 125 sentinels, as ByT5
    expect(cfg.model_type).toBe("t5");
    const g = run(["generate", "--model", out, "--input", "hello world", "--max-new-tokens", "5", "--json"]);
    expect(g.status, g.stderr).toBe(0);
    const j = JSON.parse(g.stdout);
    expect(Array.isArray(j.ids)).toBe(true);
    expect(j.ids.length).toBeLessThanOrEqual(5);
    expect(j.ids.every((i: number) => Number.isInteger(i) && i >= 0 && i < 384 && i !== 1)).toBe(true);
    expect(typeof j.text).toBe("string");
    const g2 = run(["generate", "--model", out, "--input", "hello world", "--max-new-tokens", "5", "--beams", "2", "--json"]);
    expect(g2.status, g2.stderr).toBe(0);
    expect(JSON.parse(g2.stdout).ids.length).toBeLessThanOrEqual(5);
    // Same seed, same weights.
    const out2 = join(tmp, "tiny2");
    expect(run(["model", "init", "--config", "tiny", "--tokenizer", "byte", "--out", out2, "--seed", "3"]).status).toBe(0);
    expect(readFileSync(join(out2, "model.safetensors")).equals(readFileSync(join(out, "model.safetensors")))).toBe(true);
  }, 300_000);

  it("config files, vocab sizes and errors", () => {
    const cfgPath = join(tmp, "cfg.json");
    writeFileSync(cfgPath, JSON.stringify({ d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, feed_forward_proj: "relu", vocab_size: 400 }));
    const out = join(tmp, "fromfile");
    const r = run(["model", "init", "--config", cfgPath, "--tokenizer", "byte", "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8")).vocab_size).toBe(400);
    const small = run(["model", "init", "--config", "tiny", "--tokenizer", "byte", "--out", join(tmp, "v"), "--vocab-size", "100"]);
    expect(small.status).toBe(1);
    expect(small.stderr).toMatch(/does not cover the tokenizer's 384/);
    const bad = run(["model", "init", "--config", "huge", "--tokenizer", "byte", "--out", join(tmp, "h")]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/neither a preset/);
    const again = run(["model", "init", "--config", "tiny", "--tokenizer", "byte", "--out", out]);
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already holds a checkpoint/);
    // Implausible sizes are refused before allocating, naming the file and the key (was std::bad_alloc).
    for (const [key, value] of [["vocab_size", 1e12], ["num_layers", 1e9]] as const) {
      const huge = join(tmp, `huge-${key}.json`);
      writeFileSync(huge, JSON.stringify({ d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, feed_forward_proj: "relu", [key]: value }));
      const h = run(["model", "init", "--config", huge, "--tokenizer", "byte", "--out", join(tmp, `h-${key}`)]);
      expect(h.status, h.stdout).toBe(1);
      expect(h.stderr).toContain(`${huge}: field "${key}" = ${value}`);
      expect(h.stderr).toMatch(/parameters .*nothing was allocated/);
    }
    const missing = run(["generate", "--model", join(tmp, "nope"), "--input", "x"]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/instill: .*nope/);
  }, 300_000);
});
