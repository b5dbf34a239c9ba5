// The README's main job, smoke-sized: `instill demo --quick --json` runs every row end to end.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";

describe("instill demo --quick", () => {
  it("prints one JSON object with a row per method and writes the report", () => {
    const out = mkdtempSync(join(tmpdir(), "instill-demo-"));
    const r = spawnSync(process.execPath, [cliPath, "demo", "--quick", "--json", "--out", out], { encoding: "utf8", timeout: 600_000 });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout.trim().split("\n").pop()!);
    const methods = res.rows.map((x: { method: string }) => x.method);
    for (const m of ["no-instruction", "definition", "definition+2pos", "insta", "random-k", "all-tasks", "tagi", "dio"]) {
      if (m === "dio" && !methods.includes("dio")) continue; // added when the DIO row is registered
      expect(methods).toContain(m);
    }
    for (const row of res.rows) {
      expect(row.rougeL).toBeGreaterThanOrEqual(0);
      expect(row.rougeL).toBeLessThanOrEqual(100);
      expect(row.exact_match).toBeGreaterThanOrEqual(0);
    }
    expect(res.data.testTasks).toBe(18);
    expect(existsSync(join(out, "report.html"))).toBe(true);
    expect(readFileSync(join(out, "report.md"), "utf8")).toMatch(/\| definition \|/);
    expect(existsSync(join(out, "methods.png"))).toBe(true);
  });
});
