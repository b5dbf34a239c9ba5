import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8" });
}

describe("instill data", () => {
  it("synth writes the suite, deterministically by seed, and check loads it", () => {
    const a = mkdtempSync(join(tmpdir(), "instill-synth-"));
    const b = mkdtempSync(join(tmpdir(), "instill-synth-"));
    const r = run(["data", "synth", "--out", a, "--seed", "3", "--instances", "20", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.tasks).toBeGreaterThanOrEqual(40);
    expect(run(["data", "synth", "--out", b, "--seed", "3", "--instances", "20"]).stdout).toMatch(/wrote \d+ tasks/);
    for (const f of ["splits/default/train_tasks.txt", "splits/default/test_tasks.txt", "tokenizer.json", "tasks/task001_reverse_words.json"]) {
      expect(existsSync(join(a, f)), f).toBe(true);
      expect(readFileSync(join(a, f), "utf8")).toBe(readFileSync(join(b, f), "utf8"));
    }
    const c = run(["data", "check", a, "--split", "default", "--json"]);
    expect(c.status, c.stderr).toBe(0);
    const cj = JSON.parse(c.stdout);
    expect([cj.train, cj.test, cj.trainInstances]).toEqual([s.train, s.test, s.train * 20]);
    expect(cj.skipped).toEqual([]);
  });

  it("check reports bad tasks under --on-bad-task skip and fails with the JSON path otherwise", () => {
    const d = mkdtempSync(join(tmpdir(), "instill-check-"));
    const good = { Definition: ["d"], Instances: [{ id: "1", input: "i", output: ["o"] }] };
    writeFileSync(join(d, "task1_good.json"), JSON.stringify(good));
    writeFileSync(join(d, "task2_bad.json"), JSON.stringify({ ...good, Instances: [{ id: "1", input: "i", output: "o" }] }));
    const skip = run(["data", "check", d, "--on-bad-task", "skip"]);
    expect(skip.status, skip.stderr).toBe(0);
    expect(skip.stdout).toMatch(/tasks 1/);
    expect(skip.stdout).toMatch(/skipped 1 task\(s\):\n  task2_bad: .*task2_bad\.json: Instances\[0\]\.output: expected a list of strings/);
    const fail = run(["data", "check", d]);
    expect(fail.status).toBe(1);
    expect(fail.stderr).toMatch(/instill: .*task2_bad\.json: Instances\[0\]\.output: expected a list of strings/);
    expect(run(["data", "check", d, "--on-bad-task", "maybe"]).stderr).toMatch(/--on-bad-task: expected skip or fail/);
  });
});
