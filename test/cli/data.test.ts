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

  it("check accepts the very folder synth writes (v1 and v2), checking its tasks and split lists", () => {
    for (const suite of ["v1", "v2"]) {
      const d = mkdtempSync(join(tmpdir(), `instill-synth-${suite}-`));
      const w = run(["data", "synth", "--out", d, "--suite", suite, "--instances", "5", "--json"]);
      expect(w.status, w.stderr).toBe(0);
      const s = JSON.parse(w.stdout);
      const c = run(["data", "check", d, "--json"]);
      expect(c.status, c.stderr).toBe(0);
      const cj = JSON.parse(c.stdout);
      expect(cj).toMatchObject({ tasks: s.tasks, instances: s.tasks * 5, skipped: [], splits: { default: { train: s.train, test: s.test } } });
      expect(run(["data", "check", d]).stdout).toMatch(new RegExp(`tasks ${s.tasks}, instances ${s.tasks * 5}\nsplit default: ${s.train} train, ${s.test} test`));
    }
    // a split naming a task without a file is an error naming the split and the task
    const d = mkdtempSync(join(tmpdir(), "instill-synth-bad-"));
    expect(run(["data", "synth", "--out", d, "--instances", "2"]).status).toBe(0);
    writeFileSync(join(d, "splits", "default", "test_tasks.txt"), "task999_missing\n");
    const bad = run(["data", "check", d]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/splits\/default: 1 listed task\(s\) have no file in .*tasks: task999_missing/);
    expect(run(["data", "synth", "--out", d, "--suite", "v3"]).stderr).toMatch(/--suite: expected v1 or v2, got 'v3'/);
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
