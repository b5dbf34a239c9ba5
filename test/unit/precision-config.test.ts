// `instill train --precision` and the run config's `precision` key.
import { describe, expect, it } from "vitest";
import { overridesFromFlags } from "../../src/cli/train.js";
import { defaultConfig, resolveConfig } from "../../src/train/config.js";

describe("precision option", () => {
  it("defaults to auto, accepts float32 / bf16 from flags or files, names the key on bad values", () => {
    expect(defaultConfig().precision).toBe("auto");
    expect(overridesFromFlags({ precision: "bf16" })).toEqual({ precision: "bf16" });
    expect(resolveConfig(undefined, overridesFromFlags({ precision: "bf16" })).precision).toBe("bf16");
    expect(resolveConfig(undefined, { precision: "float32" }).precision).toBe("float32");
    expect(() => resolveConfig(undefined, { precision: "fp8" })).toThrow(/precision must be auto, float32 or bf16, got 'fp8'/);
  });
});
