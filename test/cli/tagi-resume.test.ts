// Checkpoints and --resume of `instill tagi train|pretrain` (issue 9): a run killed while writing its second
// checkpoint and resumed ends bit for bit where the uninterrupted run does (dropout 0.1 with --train-base, so the
// restored RNG state matters), Ctrl-C checkpoints and stops, and a checkpoint written by `instill launch --nproc 2`
// resumes in one process (and one written by one process under 2 workers).
import { afterAll, describe, expect, it } from "vitest";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { cliPath } from "../helpers/native.js";
import { runCli, synthDataAndModel } from "../helpers/tiny.js";

const run = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(args, env, 120_000);

interface Rec {
  step?: number;
  loss?: number;
  ce?: number | null;
  event?: string;
}
const records = (dir: string): Rec[] => readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Rec);
const stepRecords = (dir: string) => records(dir).filter((r) => typeof r.step === "number" && typeof r.loss === "number");
const ckpts = (dir: string) => (existsSync(join(dir, "checkpoints")) ? readdirSync(join(dir, "checkpoints")).sort() : []);

const root = mkdtempSync(join(tmpdir(), "instill-tagi-resume-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("instill tagi train --resume", () => {
  it("a run killed during its second checkpoint and resumed matches the uninterrupted run bit for bit", () => {
    const base = join(root, "a");
    mkdirSync(base);
    const { data, model } = synthDataAndModel(base, { instances: 4, dropout: 0.1 });
    // 6 steps of 4 over the tasks' examples: several epochs, so the order crosses epoch boundaries.
    const args = ["tagi", "train", "--model", model, "--data", data, "--steps", "6", "--batch-size", "4", "--max-train-instances", "2", "--rank", "2", "--lr", "0.01", "--train-base", "--checkpoint-every", "2", "--quiet"];
    const full = join(base, "full");
    const a = run([...args, "--out", full]);
    expect(a.status, a.stderr).toBe(0);
    expect(ckpts(full)).toEqual(["step-0000004", "step-0000006"]); // every 2 steps and at the end, last 2 kept
    expect(readdirSync(join(full, "checkpoints", "step-0000006")).sort()).toEqual(["hypernet.safetensors", "model", "tagi_state.safetensors", "trainer_state.json"]);

    const cut = join(base, "cut");
    const k = run([...args, "--out", cut], { INSTILL_TEST_KILL_DURING_CHECKPOINT: "4" });
    expect(k.signal).toBe("SIGKILL");
    expect(ckpts(cut).filter((n) => !n.startsWith("."))).toEqual(["step-0000002"]); // the half-written one is hidden
    expect(existsSync(join(cut, "hypernet.safetensors"))).toBe(false);
    const st = JSON.parse(readFileSync(join(cut, "checkpoints", "step-0000002", "trainer_state.json"), "utf8"));
    expect(st).toMatchObject({ step: 2, stage: "train", dataPosition: 8, batchSize: 4, total: 6 });
    expect(st.losses).toHaveLength(2);

    const r = run([...args, "--out", cut, "--resume"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/train: 6 steps/);
    const want = stepRecords(full);
    const got = stepRecords(cut);
    console.log(`uninterrupted ${want.map((x) => x.loss!.toFixed(6)).join(", ")} | resumed ${got.map((x) => x.loss!.toFixed(6)).join(", ")}`);
    expect(got.map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6]); // steps 3-4 of the killed run were dropped
    expect(got.map((x) => [x.loss, x.ce])).toEqual(want.map((x) => [x.loss, x.ce]));
    expect(records(cut).some((x) => x.event === "resumed" && x.step === 2)).toBe(true);
    for (const f of ["hypernet.safetensors", "model/model.safetensors"])
      expect(readFileSync(join(cut, f)).equals(readFileSync(join(full, f))), f).toBe(true);
    expect(ckpts(cut)).toEqual(["step-0000004", "step-0000006"]); // the killed run's temporary folder is gone
    expect(JSON.parse(readFileSync(join(cut, "tagi.json"), "utf8")).steps).toBe(6);

    // Resuming a finished run does nothing more; a different stage or batch size is refused.
    const bad = run([...args.map((x) => (x === "4" ? "2" : x)), "--out", cut, "--resume"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--resume: .* --batch-size 4, not 2/);
    const none = run([...args, "--out", join(base, "empty"), "--resume"]);
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/no checkpoint found/);
  }, 240_000);

  it("Ctrl-C checkpoints and stops; --resume finishes the run", async () => {
    const base = join(root, "c");
    mkdirSync(base);
    const { data, model } = synthDataAndModel(base, { instances: 4 });
    const out = join(base, "out");
    const args = ["tagi", "pretrain", "--model", model, "--data", data, "--steps", "400", "--batch-size", "2", "--max-train-instances", "2", "--rank", "2", "--checkpoint-every", "1000", "--out", out];
    const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, INSTILL_THREADS: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (/pretrain \d+\/400/.test(stderr) && !child.killed) child.kill("SIGINT"); // after the first call's progress
    });
    const code = await new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
    expect(code, stderr).toBe(130); // Ctrl-C: checkpoint saved, exit 130 as `instill train` (README "Reliability")
    const m = /interrupted after (\d+) of 400 steps/.exec(stdout);
    expect(m, stdout + stderr).not.toBeNull();
    const k = Number(m![1]);
    expect(k).toBeGreaterThan(0);
    expect(k).toBeLessThan(400);
    expect(ckpts(out)).toEqual([`step-${String(k).padStart(7, "0")}`]);
    expect(existsSync(join(out, "tagi.json"))).toBe(false);
    const r = run([...args, "--resume", "--quiet"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/pretrain: 400 steps/);
    expect(stepRecords(out).map((x) => x.step)).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
  }, 240_000);

  it("a checkpoint written by 2 workers resumes in one process", () => {
    const base = join(root, "b");
    mkdirSync(base);
    const { data, model } = synthDataAndModel(base, { instances: 4, feedForward: "relu" }); // dropout 0
    const args = ["tagi", "train", "--model", model, "--data", data, "--steps", "4", "--batch-size", "4", "--max-train-instances", "2", "--rank", "2", "--lr", "0.01", "--train-base", "--checkpoint-every", "2", "--quiet"];
    const two = join(base, "two");
    const b = run(["launch", "--nproc", "2", "--", ...args, "--out", two]);
    expect(b.status, b.stderr + b.stdout).toBe(0);
    expect(ckpts(two)).toEqual(["step-0000002", "step-0000004"]);
    expect(JSON.parse(readFileSync(join(two, "checkpoints", "step-0000002", "trainer_state.json"), "utf8")).worldSize).toBe(2);

    // Continue from step 2 in one process, as if the 2-worker run had stopped there.
    const one = join(base, "one");
    cpSync(two, one, { recursive: true });
    rmSync(join(one, "checkpoints", "step-0000004"), { recursive: true });
    const r = run([...args, "--out", one, "--resume"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/train: 4 steps in .* wrote/);
    expect(r.stdout).not.toMatch(/on 2 workers/);
    const w = stepRecords(two);
    const g = stepRecords(one);
    expect(g.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    console.log(`2 workers ${w.map((x) => x.loss!.toFixed(6)).join(", ")} | resumed in 1 process ${g.map((x) => x.loss!.toFixed(6)).join(", ")}`);
    // Steps 1-2 come from the checkpoint; 3-4 are the same global batches on one process: equal up to float rounding.
    for (let i = 0; i < 4; i++) expect(Math.abs(g[i].loss! - w[i].loss!)).toBeLessThan(1e-5 * Math.max(1, w[i].loss!));
    expect(existsSync(join(one, "hypernet.safetensors"))).toBe(true);
    expect(ckpts(one)).toEqual(["step-0000002", "step-0000004"]);

    // And back: the one-process checkpoint of step 2 continues under 2 workers.
    const back = join(base, "back");
    cpSync(one, back, { recursive: true });
    rmSync(join(back, "checkpoints", "step-0000004"), { recursive: true });
    const d = run(["launch", "--nproc", "2", "--", ...args, "--out", back, "--resume"]);
    expect(d.status, d.stderr + d.stdout).toBe(0);
    expect(d.stdout).toMatch(/train: 4 steps .* on 2 workers/);
    const h = stepRecords(back);
    expect(h.map((x) => x.step)).toEqual([1, 2, 3, 4]);
    for (let i = 0; i < 4; i++) expect(Math.abs(h[i].loss! - w[i].loss!)).toBeLessThan(1e-5 * Math.max(1, w[i].loss!));
  }, 240_000);
});
