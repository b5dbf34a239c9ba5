// `instill dio train` / `instill dio eval` end to end on the embedded suite with a tiny random T5
// (node bin/instill.js runs dist/: run `npx tsc -p .` first).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath } from "../helpers/native.js";
import { writeTinySuiteModel } from "../helpers/tiny.js";

const tmp = mkdtempSync(join(tmpdir(), "instill-cli-dio-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const data = join(tmp, "data");
const model = join(tmp, "model");

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8" });
}

beforeAll(() => writeTinySuiteModel(data, model, { suiteSeed: 5, modelSeed: 2 }));

describe("instill dio", () => {
  it("dio train --hypergrad neumann:3 then dio eval", () => {
    const out = join(tmp, "run");
    const tr = run(["dio", "train", "--model", model, "--data", data, "--out", out, "--hypergrad", "neumann:3", "--steps", "6", "--meta-every", "2",
      "--batch-size", "4", "--prompt-length", "2", "--max-source-length", "96", "--max-target-length", "16", "--max-train-instances", "8", "--quiet", "--json"]);
    expect(tr.status, tr.stderr).toBe(0);
    const s = JSON.parse(tr.stdout);
    expect(s.steps).toBe(6);
    expect(s.hypergrad).toBe("neumann:3");
    expect(s.hvpCount).toBeGreaterThanOrEqual(9);
    expect(typeof s.finalMetaLoss).toBe("number");
    expect(existsSync(join(out, "model", "dio_instructions.safetensors"))).toBe(true);
    expect(existsSync(join(out, "metrics.jsonl"))).toBe(true);
    const ev = run(["dio", "eval", "--model", join(out, "model"), "--data", data, "--max-eval-instances", "3", "--max-new-tokens", "6", "--quiet", "--json"]);
    expect(ev.status, ev.stderr).toBe(0);
    const m = JSON.parse(ev.stdout);
    expect(m.variant).toBe("embedder");
    expect(m.softTokens).toBe(true);
    expect(m.num_examples).toBeGreaterThan(0);
    expect(existsSync(join(out, "model", "eval", "metrics.json"))).toBe(true);
  });

  it("bad options are clear errors", () => {
    const bad = run(["dio", "train", "--model", model, "--data", data, "--hypergrad", "newton:2", "--steps", "2", "--quiet"]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/instill: .*newton/);
    const notDio = run(["dio", "eval", "--model", model, "--data", data, "--quiet"]);
    expect(notDio.status).toBe(1);
    expect(notDio.stderr).toMatch(/not a DIO model folder/);
  });
});
