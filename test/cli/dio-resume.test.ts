// `instill dio train` checkpoints, --resume and --config through the CLI: a run killed while writing a checkpoint
// resumes from the last complete one and ends with the uninterrupted run's losses, weights and instructions (bit
// for bit); config files merge under explicit flags, unknown keys name the key and the file; demonstration
// selection and the encoder-read embedder run end to end (node bin/instill.js runs dist/: `npx tsc -p .` first).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath } from "../helpers/native.js";
import { writeTinySuiteModel } from "../helpers/tiny.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-cli-dio-resume-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const data = join(tmp, "data");
const model = join(tmp, "model");

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env: { ...process.env, INSTILL_THREADS: "1", ...env } });
}

beforeAll(() => writeTinySuiteModel(data, model, { suiteSeed: 5, modelSeed: 2, dropout: 0.1 }));

const bytes = (p: string) => readFileSync(p);

describe("instill dio train: checkpoints, --resume, --config", () => {
  it("a run killed while writing checkpoint 4 resumes from 2 and equals the uninterrupted run (dropout on)", () => {
    // The config file holds most options; explicit flags (--out) override it.
    const cfg = join(tmp, "run.yaml");
    writeFileSync(
      cfg,
      [
        `model: ${model}`, `data: ${data}`, "steps: 6", "batchSize: 4", "promptLength: 2", "metaEvery: 2", "hypergrad: neumann:2",
        "maxTrainInstances: 8", "maxTargetLength: 16", "encoding:", "  maxSourceLength: 96", "checkpointEvery: 2", "stepsPerCall: 1",
        "keepCheckpoints: 5", "instructionEncoding: encoder", "demonstrations:", "  count: 3", "  maxLength: 20", "quiet: true", "",
      ].join("\n"),
    );
    const full = join(tmp, "full");
    const a = run(["dio", "train", "--config", cfg, "--out", full, "--json"]);
    expect(a.status, a.stderr).toBe(0);
    const sa = JSON.parse(a.stdout);
    expect(sa.steps).toBe(6);
    expect(sa.demonstrations).toBe(3);
    expect(sa.instructionEncoding).toBe("encoder");
    const saved = JSON.parse(readFileSync(join(full, "config.json"), "utf8"));
    expect(saved.out).toBe(full);
    expect(saved.steps).toBe(6);
    expect(saved.demonstrations.count).toBe(3);

    const part = join(tmp, "part");
    const b = run(["dio", "train", "--config", cfg, "--out", part, "--json"], { INSTILL_TEST_KILL_DURING_CHECKPOINT: "4" });
    expect(b.signal).toBe("SIGKILL");
    const ck = readdirSync(join(part, "checkpoints"));
    expect(ck).toContain("step-0000002");
    expect(ck).not.toContain("step-0000004");
    const c = run(["dio", "train", "--config", cfg, "--out", part, "--resume", "--json"]);
    expect(c.status, c.stderr).toBe(0);
    const st = JSON.parse(readFileSync(join(part, "checkpoints", "step-0000006", "trainer_state.json"), "utf8"));
    const fst = JSON.parse(readFileSync(join(full, "checkpoints", "step-0000006", "trainer_state.json"), "utf8"));
    expect(st.trainLosses).toEqual(fst.trainLosses);
    expect(st.metaLosses).toEqual(fst.metaLosses);
    expect(st.metaLosses).toHaveLength(3);
    for (const f of ["model.safetensors", "dio_instructions.safetensors"])
      expect(bytes(join(part, "model", f)).equals(bytes(join(full, "model", f))), f).toBe(true);
    expect(readdirSync(join(part, "checkpoints")).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
    const log = readFileSync(join(part, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(log.find((r) => r.event === "resumed")?.step).toBe(2);
    expect(log.filter((r) => typeof r.loss === "number").map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    // the trained folder evaluates (seen tasks would read their argmax demonstration, test tasks their first one)
    const ev = run(["dio", "eval", "--model", join(full, "model"), "--data", data, "--max-eval-instances", "2", "--max-new-tokens", "4", "--quiet", "--json"]);
    expect(ev.status, ev.stderr).toBe(0);
    expect(JSON.parse(ev.stdout).num_examples).toBeGreaterThan(0);
  });

  it("config errors name the key and the file; --resume without a checkpoint is an error", () => {
    const bad = join(tmp, "bad.json");
    writeFileSync(bad, JSON.stringify({ model, data, stepz: 3 }));
    const r = run(["dio", "train", "--config", bad, "--quiet"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/bad\.json: unknown option 'stepz'/);
    const r2 = run(["dio", "train", "--model", model, "--data", data, "--steps", "1", "--set", "outer.lrr=1", "--quiet"]);
    expect(r2.stderr).toMatch(/command line: unknown option 'outer.lrr'/);
    const r3 = run(["dio", "train", "--model", model, "--data", data, "--steps", "1", "--instruction-encoding", "states", "--quiet"]);
    expect(r3.stderr).toMatch(/instructionEncoding/);
    const r4 = run(["dio", "train", "--model", model, "--data", data, "--out", join(tmp, "never"), "--steps", "1", "--resume", "--quiet"]);
    expect(r4.stderr).toMatch(/--resume: no checkpoint found/);
    expect(existsSync(join(tmp, "never", "model"))).toBe(false);
  });
});
