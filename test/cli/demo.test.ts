// The README's main job, smoke-sized: `instill demo --quick --json` runs every row end to end from one shared base,
// on two worker processes; a second run in this process gives the same predictions at the same thread count.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";

describe("instill demo --quick", () => {
  it("prints one JSON line with every row per split and seed, the paired differences, and writes the report", () => {
    const out = mkdtempSync(join(tmpdir(), "instill-demo-"));
    const env = { ...process.env, INSTILL_THREADS: "1" };
    const r = spawnSync(process.execPath, [cliPath, "demo", "--quick", "--json", "--jobs", "2", "--out", out], { encoding: "utf8", timeout: 600_000, env });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.length).toBe(1);
    const res = JSON.parse(lines[0]);
    const all = res.methods.filter((m: { scope: string }) => m.scope === "all").map((m: { method: string }) => m.method);
    expect(all).toEqual(["no-instruction", "definition", "definition+2pos", "dio", "dio-fixed", "tagi"]);
    const targets = res.methods.filter((m: { scope: string }) => m.scope === "targets").map((m: { method: string }) => m.method);
    expect(targets).toEqual(["insta", "random-k", "all-tasks", "definition"]);
    for (const m of res.methods)
      for (const metric of ["exact_match", "rougeL"])
        for (const s of ["arguments", "compositions", "wordings", "total"]) {
          const c = m[metric][s];
          expect(c.perSeed.length).toBe(res.seeds.length);
          if (m.scope === "all") {
            expect(c.mean).toBeGreaterThanOrEqual(0);
            expect(c.mean).toBeLessThanOrEqual(100);
          }
        }
    expect(res.data.testBySplit).toMatchObject({ arguments: expect.any(Number), compositions: expect.any(Number), wordings: expect.any(Number) });
    // every row starts from the one base of the seed; TAGI reads fewer tokens per example than the definition row
    expect(res.parallel).toEqual({ jobs: 2, threads: 1 });
    expect(res.instaEmbedder).toBe("hybrid");  // instill select's default unless --embedder
    expect(res.base.length).toBe(1);
    expect(res.base[0].cached).toBe(false);
    const def = res.methods.find((m: { method: string; scope: string }) => m.method === "definition" && m.scope === "all");
    const tagi = res.methods.find((m: { method: string }) => m.method === "tagi");
    expect(tagi.tokens_per_example).toBeLessThan(def.tokens_per_example);
    expect(tagi.instruction_tokens_per_task).toBeGreaterThan(0);
    const comps = res.comparisons.map((c: { method: string; baseline: string }) => `${c.method}-${c.baseline}`);
    for (const c of ["definition-no-instruction", "dio-dio-fixed", "dio-definition", "tagi-definition", "insta-random-k", "insta-all-tasks"]) expect(comps).toContain(c);
    // every comparison carries a paired bootstrap interval per split (whatever its sign)
    const d = res.comparisons.find((c: { method: string; baseline: string }) => c.method === "definition" && c.baseline === "no-instruction");
    for (const s of ["arguments", "compositions", "wordings", "total"]) {
      expect(d.exact_match[s].lo).toBeLessThanOrEqual(d.exact_match[s].mean);
      expect(d.exact_match[s].hi).toBeGreaterThanOrEqual(d.exact_match[s].mean);
      expect(d.exact_match[s].significant).toBe(d.exact_match[s].lo > 0 || d.exact_match[s].hi < 0);
    }
    const md = readFileSync(join(out, "report.md"), "utf8");
    expect(md).toMatch(/## Exact match on the unseen tasks/);
    expect(md).toMatch(/\| definition − no-instruction \|/);
    expect(existsSync(join(out, "report.html"))).toBe(true);
    expect(existsSync(join(out, "methods.png"))).toBe(true);
    expect(JSON.parse(readFileSync(join(out, "demo.json"), "utf8")).seeds).toEqual(res.seeds);
    // a second run, all in this process, reuses the cached base and predicts exactly what the worker process did
    const preds = join(out, "seed-42", "runs", "no-instruction", "eval", "predictions.jsonl");
    const before = readFileSync(preds, "utf8");
    const again = spawnSync(process.execPath, [cliPath, "demo", "--quick", "--json", "--methods", "no-instruction", "--jobs", "1", "--out", out], { encoding: "utf8", timeout: 600_000, env });
    expect(again.status, again.stderr).toBe(0);
    expect(readFileSync(preds, "utf8")).toBe(before);
    expect(JSON.parse(again.stdout).base[0]).toMatchObject({ cached: true, hash: res.base[0].hash });
    expect(readdirSync(join(out, "base-cache")).length).toBe(1);
  }, 900_000);

  it("refuses --jobs 0, naming the flag", () => {
    const r = spawnSync(process.execPath, [cliPath, "demo", "--quick", "--jobs", "0", "--out", mkdtempSync(join(tmpdir(), "instill-demo-"))], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--jobs: expected a positive integer, got 0/);
  });

  it("refuses an unknown --embedder for the insta row before any work", () => {
    const out = join(mkdtempSync(join(tmpdir(), "instill-demo-")), "out");
    const r = spawnSync(process.execPath, [cliPath, "demo", "--quick", "--methods", "insta", "--embedder", "nope", "--out", out], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--embedder: unknown embedder 'nope' \(available: lexical, hybrid/);
    expect(existsSync(out)).toBe(false);
  });

  it("refuses a reconstruction fraction outside [0, 1], naming the flag, before any work", () => {
    const out = mkdtempSync(join(tmpdir(), "instill-demo-"));
    const r = spawnSync(process.execPath, [cliPath, "demo", "--quick", "--base-reconstruct", "1.5", "--out", out], { encoding: "utf8", timeout: 60_000 });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--base-reconstruct: expected a fraction in \[0, 1\], got 1\.5/);
    expect(existsSync(join(out, "base-cache"))).toBe(false);
  });
});
