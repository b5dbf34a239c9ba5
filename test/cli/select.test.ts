// instill select end to end (node bin/instill.js, which runs dist/: run `npx tsc -p .` first).
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath, hasShared, sharedDir, sharedOrSkipMessage } from "../helpers/native.js";

function run(args: string[]) {
  return spawnSync(process.execPath, [cliPath, "select", ...args], { encoding: "utf8", timeout: 120_000 });
}

function writeTask(dir: string, name: string, definition: string, category: string) {
  writeFileSync(
    join(dir, `${name}.json`),
    JSON.stringify({
      Definition: [definition],
      Categories: [category],
      "Positive Examples": [],
      "Negative Examples": [],
      Instances: [{ id: `${name}-1`, input: "x", output: ["y"] }],
      "Input_language": ["English"],
      "Output_language": ["English"],
      "Instruction_language": ["English"],
    }),
  );
}

function fixturePool(): string {
  const dir = mkdtempSync(join(tmpdir(), "instill-select-"));
  const pool = join(dir, "tasks");
  mkdirSync(pool);
  writeTask(pool, "task1_news_title", "Generate a title for the given news article.", "Title Generation");
  writeTask(pool, "task2_paper_title", "Write a title for the scientific paper abstract.", "Title Generation");
  writeTask(pool, "task3_news_summary", "Summarize the given news article in one sentence.", "Summarization");
  writeTask(pool, "task4_nli", "Decide whether the premise entails the hypothesis.", "Textual Entailment");
  writeTask(pool, "task5_sentiment", "Classify the sentiment of the movie review.", "Sentiment Analysis");
  return pool;
}

describe("instill select", () => {
  it("selects from a folder of task files, with a cap per category and JSON output", () => {
    const pool = fixturePool();
    const r = run(["--pool", pool, "--target-task", "task1_news_title", "--k", "2", "--exclude-self", "--json", "--no-cache"]);
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(["task1_news_title"]);
    expect(out.task1_news_title.map((x: { task: string }) => x.task).sort()).toEqual(["task2_paper_title", "task3_news_summary"]);
    expect(out.task1_news_title.map((x: { task: string }) => x.task)).not.toContain("task1_news_title");
    const capped = run(["--pool", pool, "--target-text", "write a title for an article", "--k", "3", "--max-per-category", "1", "--json", "--no-cache"]);
    expect(capped.status, capped.stderr).toBe(0);
    const sel = Object.values(JSON.parse(capped.stdout))[0] as { task: string; score: number }[];
    expect(sel).toHaveLength(3);
    expect(sel.filter((x) => /title/.test(x.task))).toHaveLength(1);
    expect(sel[0].score).toBeGreaterThanOrEqual(sel[1].score);
  });

  it("prints a table for a target file", () => {
    const pool = fixturePool();
    const target = join(pool, "..", "target.txt");
    writeFileSync(target, "Is the hypothesis entailed by the premise?");
    const r = run(["--pool", pool, "--target", target, "--k", "1", "--no-cache"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/target\.txt\n\s+1\s+0\.\d{4}\s+task4_nli\s+\[Textual Entailment\]/);
    expect(r.stderr).toMatch(/selected for 1 target\(s\) from 5 tasks with hybrid\(lexical:bm25/);  // the default embedder
  });

  it("gives clear errors naming the argument", () => {
    const pool = fixturePool();
    const cases: Array<[string[], RegExp]> = [
      [["--pool", pool, "--target-task", "task9_nope", "--k", "2"], /--target-task: unknown task 'task9_nope'/],
      [["--pool", join(pool, "missing"), "--target-text", "x", "--k", "2"], /--pool: .*no such file or folder/],
      [["--pool", pool, "--target", join(pool, "none.json"), "--k", "2"], /--target: .*no such file/],
      [["--pool", pool, "--target-text", "x", "--k", "0"], /--k: expected a positive integer, got '0'/],
      [["--pool", pool, "--target-text", "x", "--k", "9"], /--k: 9 exceeds the pool size \(5 tasks\)/],
      [["--pool", pool, "--target-text", "x", "--k", "1", "--embedder", "magic"], /--embedder: unknown embedder 'magic'/],
      [["--pool", pool, "--k", "1"], /no target/],
    ];
    for (const [args, msg] of cases) {
      const r = run(args);
      expect(r.status, args.join(" ")).toBe(1);
      expect(r.stderr).toMatch(msg);
    }
  });
});

describe.skipIf(!sharedOrSkipMessage("instill select on NIV2 definitions"))("instill select on the real NIV2 split", () => {
  const niv2 = join(sharedDir, "data", "niv2");
  it("selects k = 70 (INSTA's NIV2 setting) for all 119 official test tasks from the 756 training tasks in seconds", () => {
    const t0 = Date.now();
    const r = run([
      "--pool", join(niv2, "definitions.jsonl"),
      "--train-tasks", join(niv2, "splits", "default", "train_tasks.txt"),
      "--target-list", join(niv2, "splits", "default", "test_tasks.txt"), "--skip-missing",
      "--k", "70", "--json", "--no-cache",
    ]);
    const seconds = (Date.now() - t0) / 1000;
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Record<string, { task: string; score: number }[]>;
    // every name resolves: definitions.jsonl cuts names at a dot (task349_squad2 for task349_squad2.0_...)
    expect(Object.keys(out)).toHaveLength(119);
    expect(r.stderr).not.toMatch(/not in the pool/);
    expect(r.stderr).toMatch(/from 756 tasks/);
    for (const sel of Object.values(out)) expect(sel).toHaveLength(70);
    expect(seconds).toBeLessThan(30);
  });

  it("reports --max-per-category as unavailable for definitions.jsonl", () => {
    const r = run(["--pool", join(niv2, "definitions.jsonl"), "--target-text", "x", "--k", "2", "--max-per-category", "1"]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--max-per-category: unavailable .*no categories/);
  });
});
