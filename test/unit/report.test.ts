import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { markdownTable, writeReport } from "../../src/report/report.js";

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
});
