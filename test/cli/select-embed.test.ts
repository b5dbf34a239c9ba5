// instill select-embedder train / eval and instill select --embedder trained:<dir> | encoder:<dir>, end to end
// on the embedded suite (written to a temp dir) and a tiny random T5 checkpoint.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";
import { writeSuite } from "../../src/data/suite.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout: 300_000 });
}

let tmp: string;
let tasksDir: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "instill-select-embed-"));
  writeSuite(join(tmp, "suite"), 42, { instancesPerTask: 2 });
  tasksDir = join(tmp, "suite", "tasks");
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("instill select-embedder", () => {
  it("trains on a pool with held-out wordings and evaluates retrieval against lexical and the untrained encoder", () => {
    const untrained = join(tmp, "untrained");
    const aligned = join(tmp, "aligned");
    const u = run(["select-embedder", "train", "--pool", tasksDir, "--out", untrained, "--steps", "0", "--hold-out-last", "--json"]);
    expect(u.status, u.stderr).toBe(0);
    expect(JSON.parse(u.stdout).steps).toBe(0);
    const a = run(["select-embedder", "train", "--pool", tasksDir, "--out", aligned, "--steps", "300", "--seed", "2", "--hold-out-last"]);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/wrote words embedder .* 300 steps, loss/);
    for (const f of ["embedder.json", "embedder.safetensors", "vocab.json", "training.json"]) expect(existsSync(join(aligned, f))).toBe(true);

    const ev = run(["select-embedder", "eval", "--pool", tasksDir, "--embedder", "lexical", "--embedder", `trained:${untrained}`, "--embedder", `trained:${aligned}`, "--json"]);
    expect(ev.status, ev.stderr).toBe(0);
    const r = JSON.parse(ev.stdout) as Record<string, { accuracy: number; chance: number; queries: number }>;
    const lex = r.lexical.accuracy, unt = r[`trained:${untrained}`].accuracy, ali = r[`trained:${aligned}`].accuracy;
    console.log(`CLI held-out wording retrieval: lexical ${(lex * 100).toFixed(1)}%, untrained ${(unt * 100).toFixed(1)}%, aligned ${(ali * 100).toFixed(1)}% (chance ${(r.lexical.chance * 100).toFixed(1)}%)`);
    expect(ali).toBeGreaterThan(unt + 0.1);
    expect(ali).toBeGreaterThan(5 * r.lexical.chance);

    // Selection with the trained embedder: k tasks, the target's own task first.
    const sel = run(["select", "--pool", tasksDir, "--target-task", "task001_reverse_words", "--k", "3", "--embedder", `trained:${aligned}`, "--json", "--no-cache"]);
    expect(sel.status, sel.stderr).toBe(0);
    const picked = JSON.parse(sel.stdout).task001_reverse_words as { task: string; score: number }[];
    expect(picked).toHaveLength(3);
    expect(picked[0].task).toBe("task001_reverse_words");
    expect(sel.stderr).toMatch(/dim 128/);
  });

  it("selects with encoder:<checkpoint> and reports bad specs", () => {
    const ck = join(tmp, "tiny");
    const init = run(["model", "init", "--config", "tiny", "--tokenizer", "byte", "--out", ck, "--seed", "1"]);
    expect(init.status, init.stderr).toBe(0);
    for (const pool of ["mean", "firstlast"]) {
      const sel = run(["select", "--pool", tasksDir, "--target-task", "task001_reverse_words", "--k", "2", "--embedder", `encoder:${ck},pool=${pool}`, "--json", "--cache", join(tmp, "cache")]);
      expect(sel.status, sel.stderr).toBe(0);
      const picked = JSON.parse(sel.stdout).task001_reverse_words as { task: string; score: number }[];
      expect(picked[0].task).toBe("task001_reverse_words");
      expect(picked[0].score).toBeCloseTo(1, 4);
      expect(sel.stderr).toMatch(/dim 64/);
    }
    expect(existsSync(join(tmp, "cache"))).toBe(true);  // the encoder has a stable identity: cached
    const missing = run(["select", "--pool", tasksDir, "--target-text", "reverse the words", "--k", "2", "--embedder", `trained:${join(tmp, "nope")}`]);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/instill: .*no embedder\.json/);
    const bad = run(["select", "--pool", tasksDir, "--target-text", "reverse the words", "--k", "2", "--embedder", `encoder:${ck},pool=max`]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/pool must be mean or firstlast/);
    const noPool = run(["select-embedder", "train", "--out", join(tmp, "x")]);
    expect(noPool.status).toBe(1);
    expect(noPool.stderr).toMatch(/--pool is required/);
  });
});
