import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { markdownTable, markdownTableToHtml, writeReport } from "../../src/report/report.js";
import { demoMarkdown, summarize, type SeedRun } from "../../src/demo/summary.js";
import type { V2Group } from "../../src/data/suite-v2.js";

describe("reports", () => {
  it("renders a markdown table with the rows' numbers", () => {
    const md = markdownTable([
      { method: "no-instruction", rougeL: 12.345, exact_match: 3 },
      { method: "definition", rougeL: 40.5, exact_match: 20.25 },
    ]);
    expect(md.split("\n")[0]).toBe("| method | rougeL | exact_match |");
    expect(md).toContain("| no-instruction | 12.35 | 3.00 |");
    expect(md).toContain("| definition | 40.50 | 20.25 |");
  });

  it("writes markdown, HTML with inline SVG charts, and PNGs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "instill-report-"));
    const files = await writeReport(dir, {
      title: "Demo",
      rows: [
        { method: "a", rougeL: 10, exact_match: 5 },
        { method: "b", rougeL: 30, exact_match: 15 },
      ],
      curves: { a: [{ step: 1, loss: 3 }, { step: 2, loss: 2 }], b: [{ step: 1, loss: 3.5 }, { step: 2, loss: 1.5 }] },
      perCategory: { a: { Reverse: 10, Sort: 20 }, b: { Reverse: 30, Sort: 40 } },
      facts: { steps: 2 },
    });
    expect(readFileSync(files.markdown, "utf8")).toContain("| b | 30.00 | 15.00 |");
    const html = readFileSync(files.html, "utf8");
    expect(html).toContain("<svg");
    expect(html.match(/<figure>/g)?.length).toBe(3);
    expect(files.pngs.length).toBe(3);
    for (const p of files.pngs) {
      expect(existsSync(p)).toBe(true);
      const png = readFileSync(p);
      expect(png.subarray(1, 4).toString()).toBe("PNG");
      expect(png.length).toBeGreaterThan(2000);
    }
  });

  it("sections (pipe tables) go to both files, error bars replace the plain methods chart", async () => {
    const dir = mkdtempSync(join(tmpdir(), "instill-report-"));
    const files = await writeReport(dir, {
      title: "Seeds",
      rows: [{ method: "a", rougeL: 10, exact_match: 5 }],
      hideRowsTable: true,
      sections: [{ title: "Exact match", markdown: "| method | total |\n| --- | ---: |\n| a | 5.0 ± 1.2 |", note: "* = significant" }],
      errorBars: [
        { method: "a", group: "total", mean: 5, std: 1.2 },
        { method: "b", group: "total", mean: 9, std: 0.5 },
      ],
    });
    const md = readFileSync(files.markdown, "utf8");
    expect(md).toContain("## Exact match\n\n| method | total |");
    expect(md).not.toContain("| method | rougeL |");
    const html = readFileSync(files.html, "utf8");
    expect(html).toContain("<h2>Exact match</h2>\n<table><thead><tr><th>method</th><th>total</th></tr></thead><tbody><tr><td>a</td><td>5.0 ± 1.2</td></tr></tbody></table>");
    expect(html).toContain("* = significant");
    expect(files.pngs.map((p) => p.split("/").pop())).toEqual(["methods.png"]);
    expect(markdownTableToHtml("plain <text>")).toBe("<p>plain &lt;text&gt;</p>");
  });

  it("the demo summary: mean ± std over seeds per split, paired bootstrap differences, significance marks", () => {
    const groups = new Map<string, V2Group>([["t1", "arguments"], ["t2", "compositions"], ["t3", "wordings"]]);
    // 3 seeds x 3 tasks x 10 examples; "definition" right on every t1 example, "no-instruction" on none.
    const preds = (method: string, seed: number) =>
      ["t1", "t2", "t3"].flatMap((task) =>
        Array.from({ length: 10 }, (_, i) => {
          const right = method === "definition" ? task === "t1" || i < seed : i < 2;
          return { id: `${task}-${i}`, task, category: "", prediction: right ? "a b" : "c", references: ["a b"] };
        }),
      );
    const enc = { addTaskName: false, addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0, addExplanation: false, maxSourceLength: 64 };
    const runs: SeedRun[] = [1, 2, 3].map((seed) => ({
      seed,
      tokensPerExample: { "no-instruction": 10, definition: 20 },
      rows: ["no-instruction", "definition"].map((method) => ({ method, eval: { predictions: preds(method, seed) }, train_steps: 5, train_seconds: 1, final_loss: 0.5, curve: [1], encoding: enc })),
    }));
    const s = summarize(runs, groups, { resamples: 500 });
    const def = s.methods.find((m) => m.method === "definition")!;
    expect(def.exact_match.arguments).toMatchObject({ mean: 100, std: 0, perSeed: [100, 100, 100], examples: 10 });
    expect(def.exact_match.compositions.perSeed).toEqual([10, 20, 30]);
    expect(def.exact_match.compositions.std).toBeCloseTo(10, 12);
    expect(def.exact_match.total.perSeed[0]).toBeCloseTo(40, 12);
    const c = s.comparisons.find((x) => x.method === "definition" && x.baseline === "no-instruction")!;
    expect(c.exact_match.arguments.mean).toBeCloseTo(80, 12);
    expect(c.exact_match.arguments.significant).toBe(true);
    expect(c.exact_match.compositions.mean).toBeCloseTo(0, 12);
    expect(c.exact_match.compositions.significant).toBe(false);
    // without families no per-family table; with them, split (i) pooled over seeds per family
    expect(s.argumentsByFamily).toBeUndefined();
    const fam = summarize(runs, groups, { resamples: 50, families: new Map([["t1", "count"], ["t2", "remove > after"], ["t3", "count"]]) });
    expect(fam.argumentsByFamily).toEqual({ "no-instruction": { count: { exact_match: 20, examples: 30 } }, definition: { count: { exact_match: 100, examples: 30 } } });
    const fmd = demoMarkdown(fam, { quick: false, seeds: [1, 2, 3], facts: {}, instaTargets: [] });
    const sec = fmd.sections.find((x) => x.title.startsWith("Split (i) by family"))!;
    expect(sec.markdown).toContain("| definition | 100.0 |");
    expect(sec.note).toContain("count 30");
    const md = demoMarkdown(s, { quick: false, seeds: [1, 2, 3], facts: {}, instaTargets: [] });
    expect(md.terminal).toContain("| definition | 100.0 ± 0.0 | 20.0 ± 10.0 | 20.0 ± 10.0 | 46.7 ± 6.7 | 20.0 |");
    expect(md.terminal).toMatch(/\| definition − no-instruction \| \+80\.0 \[\+\d+\.\d, \+\d+\.\d\] \* \| \+0\.0 \[-\d+\.\d, \+\d+\.\d\] \|/);
  });
});
