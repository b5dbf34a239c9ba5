import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath, sharedDir } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8" });
}
const jsonl = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).join("\n") + "\n";
const fixture = join(sharedDir, "fixtures", "sni-metrics-official.json");

describe("instill score", () => {
  it("scores with the official keys per task and per category", () => {
    const d = mkdtempSync(join(tmpdir(), "instill-score-"));
    writeFileSync(join(d, "p.jsonl"), jsonl([{ id: "a", prediction: "The Cat." }, { id: "b", prediction: "dog" }, { id: "c", prediction: "x" }]));
    writeFileSync(
      join(d, "r.jsonl"),
      jsonl([
        { id: "a", references: ["the cat"], task_id: "task1356_xlsum_title_generation", task_category: "Title Generation" },
        { id: "b", references: ["cat", "a dog"], task_id: "task1356_xlsum_title_generation", task_category: "Title Generation" },
        { id: "c", references: ["x"], task_id: "task2_other", task_category: "Textual Entailment" },
      ]),
    );
    const r = run(["score", "--predictions", join(d, "p.jsonl"), "--references", join(d, "r.jsonl"), "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const o = JSON.parse(r.stdout);
    expect(o.exact_match).toBe(66.6667);
    expect(o.rougeL).toBe(88.8889); // 1, 2/3 (dog vs a dog), 1
    expect(o.exact_match_for_task1356_xlsum_title_generation).toBe(50);
    expect(o.rougeL_for_title_generation).toBe(83.3333);
    expect(o.rouge1_for_textual_entailment).toBe(100);
    const text = run(["score", "--predictions", join(d, "p.jsonl"), "--references", join(d, "r.jsonl")]);
    expect(text.stdout).toMatch(/rougeL_for_task2_other\s+100\.0000/);
  });

  it("mismatched or missing ids are an error listing the first few", () => {
    const d = mkdtempSync(join(tmpdir(), "instill-score-"));
    writeFileSync(join(d, "p.jsonl"), jsonl([{ id: "a", prediction: "x" }, { id: "zz", prediction: "y" }]));
    writeFileSync(join(d, "r.jsonl"), jsonl(["a", "b", "c", "d", "e", "f", "g"].map((id) => ({ id, references: ["x"] }))));
    const r = run(["score", "--predictions", join(d, "p.jsonl"), "--references", join(d, "r.jsonl")]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/instill: .*6 reference id\(s\) have no prediction: b, c, d, e, f, \.\.\. \(6 in all\)/);
    expect(r.stderr).toMatch(/1 prediction id\(s\) have no reference: zz/);
    writeFileSync(join(d, "r.jsonl"), jsonl([{ id: "a", references: "x" }]));
    const bad = run(["score", "--predictions", join(d, "p.jsonl"), "--references", join(d, "r.jsonl")]);
    expect(bad.stderr).toMatch(/r\.jsonl: line 1: references: expected a non-empty list of strings/);
  });

  it.skipIf(!existsSync(fixture))("reproduces the official aggregate on the fixture", () => {
    const fx = JSON.parse(readFileSync(fixture, "utf8")) as { items: { id: string; prediction: string; references: string[] }[]; aggregate: Record<string, number> };
    const d = mkdtempSync(join(tmpdir(), "instill-score-"));
    writeFileSync(join(d, "p.jsonl"), jsonl(fx.items.map((x) => ({ id: x.id, prediction: x.prediction }))));
    writeFileSync(join(d, "r.jsonl"), jsonl(fx.items.map((x) => ({ id: x.id, references: x.references }))));
    const r = run(["score", "--predictions", join(d, "p.jsonl"), "--references", join(d, "r.jsonl"), "--json"]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(fx.aggregate);
  });
});
