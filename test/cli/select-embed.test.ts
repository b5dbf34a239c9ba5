// instill select-embedder train / eval and instill select --embedder trained:<dir> | encoder:<dir>, end to end
// on the embedded suite (written to a temp dir) and a tiny random T5 checkpoint.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
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
    const u = run(["select-embedder", "train", "--pool", tasksDir, "--out", untrained, "--steps", "0", "--hold-out-last", "--all-tasks", "--json"]);
    expect(u.status, u.stderr).toBe(0);
    expect(JSON.parse(u.stdout).steps).toBe(0);
    expect(JSON.parse(u.stdout).tasks).toBe(68);
    const a = run(["select-embedder", "train", "--pool", tasksDir, "--out", aligned, "--steps", "300", "--seed", "2", "--hold-out-last", "--all-tasks"]);
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toMatch(/wrote words embedder .* 300 steps, loss/);
    for (const f of ["embedder.json", "embedder.safetensors", "vocab.json", "training.json"]) expect(existsSync(join(aligned, f))).toBe(true);

    const ev = run(["select-embedder", "eval", "--pool", tasksDir, "--all-tasks", "--embedder", "lexical", "--embedder", `trained:${untrained}`, "--embedder", `trained:${aligned}`, "--json"]);
    expect(ev.status, ev.stderr).toBe(0);
    type M = { wording: { accuracy: number; chance: number }; category: { precision: number; chance: number; queries: number } };
    const r = JSON.parse(ev.stdout) as Record<string, M>;
    const lex = r.lexical.wording.accuracy, unt = r[`trained:${untrained}`].wording.accuracy, ali = r[`trained:${aligned}`].wording.accuracy;
    console.log(`CLI held-out wording retrieval: lexical ${(lex * 100).toFixed(1)}%, untrained ${(unt * 100).toFixed(1)}%, aligned ${(ali * 100).toFixed(1)}% (chance ${(r.lexical.wording.chance * 100).toFixed(1)}%)`);
    expect(ali).toBeGreaterThan(unt + 0.1);
    expect(ali).toBeGreaterThan(5 * r.lexical.wording.chance);
    // the suite's task files carry categories: category@5 is measured, beside chance
    expect(r.random).toBeDefined();
    expect(r.lexical.category.queries).toBe(68);
    expect(r[`trained:${aligned}`].category.precision).toBeGreaterThan(2 * r.lexical.category.chance);

    // Selection with the trained embedder: k tasks, the target's own task first.
    const sel = run(["select", "--pool", tasksDir, "--target-task", "task001_reverse_words", "--k", "3", "--embedder", `trained:${aligned}`, "--json", "--no-cache"]);
    expect(sel.status, sel.stderr).toBe(0);
    const picked = JSON.parse(sel.stdout).task001_reverse_words as { task: string; score: number }[];
    expect(picked).toHaveLength(3);
    expect(picked[0].task).toBe("task001_reverse_words");
    expect(sel.stderr).toMatch(/dim 128/);
  });

  it("trains on the pool's training split unless told otherwise, and says so (issue 13, defect 6)", () => {
    const d = run(["select-embedder", "train", "--pool", tasksDir, "--out", join(tmp, "split"), "--steps", "0", "--json"]);
    expect(d.status, d.stderr).toBe(0);
    expect(JSON.parse(d.stdout).tasks).toBe(50);  // the suite's 50 training tasks, not its 18 test tasks
    expect(d.stderr).toMatch(/training on the training split .*splits[\\/]default[\\/]train_tasks\.txt/);
    const all = run(["select-embedder", "train", "--pool", tasksDir, "--out", join(tmp, "all"), "--steps", "0", "--all-tasks", "--json"]);
    expect(JSON.parse(all.stdout).tasks).toBe(68);
    const ev = run(["select-embedder", "eval", "--pool", tasksDir, "--embedder", "hybrid", "--recipe", "steps=20,dim=16", "--json"]);
    expect(ev.status, ev.stderr).toBe(0);
    const r = JSON.parse(ev.stdout);
    expect(Object.keys(r)).toEqual(["random", "hybrid", "recipe(steps=20,dim=16)", "hybrid+recipe(steps=20,dim=16)"]);
    expect(r.hybrid.tasks).toBe(50);
    expect(r["recipe(steps=20,dim=16)"].category.queries).toBe(50);
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
  it("aligned: trains in one command (--method aligned), selects with aligned:<dir>, and is measured only held out", () => {
    const dir = join(tmp, "aligned-names");
    const t = run(["select-embedder", "train", "--method", "aligned", "--pool", tasksDir, "--out", dir, "--all-tasks", "--options", "steps=20,rank=8", "--json"]);
    expect(t.status, t.stderr).toBe(0);
    const res = JSON.parse(t.stdout);
    expect(res).toMatchObject({ kind: "aligned", steps: 20 });
    expect(res.lastLoss).toBeLessThan(res.firstLoss);
    expect(existsSync(join(dir, "aligned.json")) && existsSync(join(dir, "aligned.f32"))).toBe(true);
    const sel = run(["select", "--pool", tasksDir, "--target-text", "reverse the words", "--k", "2", "--embedder", `aligned:${dir}`, "--no-cache", "--json"]);
    expect(sel.status, sel.stderr).toBe(0);
    expect(Object.values(JSON.parse(sel.stdout) as Record<string, unknown[]>)[0]).toHaveLength(2);
    const leak = run(["select-embedder", "eval", "--pool", tasksDir, "--all-tasks", "--embedder", "aligned:steps=5"]);
    expect(leak.status).toBe(1);
    expect(leak.stderr).toMatch(/trained on the names of the tasks it is measured on; use --cross-fit or --outside-split/);
    const cf = run(["select-embedder", "eval", "--pool", tasksDir, "--all-tasks", "--cross-fit", "--embedder", "lexical", "--embedder", "aligned:steps=10,rank=8", "--baseline", "lexical", "--json"]);
    expect(cf.status, cf.stderr).toBe(0);
    const j = JSON.parse(cf.stdout);
    expect(Object.keys(j)).toEqual(["random", "lexical", "aligned:steps=10,rank=8"]);
    expect(j["aligned:steps=10,rank=8"].vs.baseline).toBe("lexical");
    // targets outside the split select from it; aligned trains on the split
    const to = run(["select-embedder", "eval", "--pool", tasksDir, "--targets-outside", "--embedder", "lexical", "--embedder", "aligned:steps=5,rank=8", "--json"]);
    expect(to.status, to.stderr).toBe(0);
    expect(to.stderr).toMatch(/tasks outside the training split select from its \d+/);
    const tj = JSON.parse(to.stdout);
    expect(Object.keys(tj)).toEqual(["random", "lexical", "aligned:steps=5,rank=8"]);
    expect(tj.lexical.dataset.precision).toBeGreaterThan(tj.random.dataset.precision);
    expect(tj.lexical.category.precision).toBeGreaterThan(tj.random.category.precision);
    // --by-kind: kind@k per kind label of the names (two kinds of two tasks each, one query per task at k = 1)
    const jl = join(tmp, "kinds.jsonl");
    const defs = [
      ["task001_alpha_sentiment_analysis", "Classify the sentiment of the review as positive or negative."],
      ["task002_beta_sentiment_analysis", "Decide whether the sentiment of the tweet is positive or negative."],
      ["task003_gamma_question_generation", "Write a question about the passage."],
      ["task004_delta_question_generation", "Generate a question whose answer is in the passage."],
    ];
    writeFileSync(jl, defs.map(([task, definition]) => JSON.stringify({ task, definition })).join("\n") + "\n");
    const bk = run(["select-embedder", "eval", "--pool", jl, "--all-tasks", "--k", "1", "--embedder", "lexical:plain", "--embedder", "lexical", "--by-kind", "--no-example"]);
    expect(bk.status, bk.stderr).toBe(0);
    expect(bk.stdout).toMatch(/kind@1 by kind \(queries of that kind\):\n\| kind \| queries \| lexical:plain \| lexical \|/);
    expect(bk.stdout).toMatch(/\| question generation \| 2 \| 1\.000 \| 1\.000 \|/);
    expect(bk.stdout).toMatch(/\| sentiment analysis \| 2 \| 1\.000 \| 1\.000 \|/);
    const two = run(["select-embedder", "eval", "--pool", tasksDir, "--cross-fit", "--targets-outside", "--embedder", "lexical"]);
    expect(two.status).toBe(1);
    expect(two.stderr).toMatch(/give one of them/);
    const bad = run(["select-embedder", "train", "--method", "nope", "--pool", tasksDir, "--out", join(tmp, "y")]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--method: expected words or aligned/);
  });
});
