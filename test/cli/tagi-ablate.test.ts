// `instill tagi ablate --quick`: the TAGI table's recipe end to end at a smoke budget (base, teachers, one TAGI
// variant and one baseline), and the files it writes.
import { describe, expect, it } from "vitest";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cliPath } from "../helpers/native.js";

describe("instill tagi ablate --quick", () => {
  it("trains the base and the teachers, runs the chosen rows and writes ablation.md / ablation.json", () => {
    const out = mkdtempSync(join(tmpdir(), "instill-tagi-ablate-"));
    const only = "base, no instruction;tagi w/o parameter MSE";
    const r = spawnSync(process.execPath, [cliPath, "tagi", "ablate", "--quick", "--quiet", "--json", "--out", out, "--only", only], { encoding: "utf8", timeout: 600_000 });
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(readFileSync(join(out, "ablation.json"), "utf8"));
    expect(res.rows.map((x: { method: string }) => x.method)).toEqual(["base, no instruction", "tagi w/o parameter MSE"]);
    for (const row of res.rows) {
      expect(row.rougeL).toBeGreaterThanOrEqual(0);
      expect(row.rougeL).toBeLessThanOrEqual(100);
      expect(Number.isFinite(row.final_loss)).toBe(true);
    }
    expect(res.teachers).toBe(50); // one LoRA teacher per training task of the suite (KL still on)
    expect(readdirSync(join(out, "teachers", "adapters")).length).toBe(50);
    expect(existsSync(join(out, "teachers", "adapters", readdirSync(join(out, "teachers", "adapters"))[0], "adapter", "adapter_config.json"))).toBe(true);
    expect(readFileSync(join(out, "ablation.md"), "utf8")).toMatch(/\| tagi w\/o parameter MSE \|/);
    // Bad row names are refused, naming the flag.
    const bad = spawnSync(process.execPath, [cliPath, "tagi", "ablate", "--quick", "--out", out, "--only", "tagi w/o everything"], { encoding: "utf8" });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--only: unknown row 'tagi w\/o everything'/);
  });
});
