// instill select-train --selection-only: the selection stage of INSTA end to end, at INSTA's NIV2 scale
// (k = 70 for the 119 official test tasks from the 756 training tasks), without training.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath, sharedDir, sharedOrSkipMessage } from "../helpers/native.js";
import { writeSuite } from "../../src/data/suite.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, "select-train", ...args], { encoding: "utf8", timeout: 120_000 });
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "instill-select-train-"));
  writeSuite(join(tmp, "suite"), 42, { instancesPerTask: 2 });
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Selection = { k: number; pool: number; targets: { target: string; selected: { task: string }[]; random: string[] }[] };

describe("instill select-train --selection-only", () => {
  it("selects k per test task of the split with the default embedder and writes selection.json (no --model needed)", () => {
    const out = join(tmp, "sel");
    const r = run(["--data", join(tmp, "suite"), "--k", "3", "--selection-only", "--out", out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/selected 3 of 50 training tasks for each of 18 targets with hybrid/);
    const s = JSON.parse(readFileSync(join(out, "selection.json"), "utf8")) as Selection;
    expect(s.targets).toHaveLength(18);
    for (const t of s.targets) {
      expect(t.selected).toHaveLength(3);
      expect(t.random).toHaveLength(3);
      expect(t.selected.map((x) => x.task)).not.toContain(t.target);
    }
    const noModel = run(["--data", join(tmp, "suite"), "--k", "3"]);
    expect(noModel.status).toBe(1);
    expect(noModel.stderr).toMatch(/--model is required \(or give --selection-only\)/);
    const big = run(["--data", join(tmp, "suite"), "--k", "51", "--selection-only", "--out", out]);
    expect(big.status).toBe(1);
    expect(big.stderr).toMatch(/--k 51 exceeds the 50 training tasks/);
  });

  it.skipIf(!sharedOrSkipMessage("select-train --selection-only on NIV2"))("runs INSTA's NIV2 scale: k = 70 for all 119 test tasks from the 756 training tasks", () => {
    const niv2 = join(sharedDir, "data", "niv2");
    const out = join(tmp, "niv2");
    const r = run(["--data", niv2, "--pool", join(niv2, "definitions.jsonl"), "--k", "70", "--selection-only", "--out", out, "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as Selection & { seconds: number };
    expect(s.pool).toBe(756);
    expect(s.targets).toHaveLength(119);
    for (const t of s.targets) expect(t.selected).toHaveLength(70);
    console.log(`select-train --selection-only, NIV2: k = 70 for 119 targets from 756 tasks in ${s.seconds.toFixed(2)} s`);
  });
});
