// Training precision through the addon (trainSteps {precision}) and the runtime facts the speed work reports
// (allocator, BLAS threads, bf16 instructions). The loss tolerances themselves are checked in C++
// (native/core/tests/test_precision.cpp, on the HF parity fixtures and a 30-step curve).
import { describe, expect, it } from "vitest";
import { T5Model, makeBatch } from "../../src/model/model.js";
import { loadAddon } from "../../src/native/binding.js";

const VOCAB = 64;
const row = (seed: number, n: number) => Array.from({ length: n }, (_, i) => 2 + ((seed * 31 + i * 17) % (VOCAB - 2)));
const batch = makeBatch([row(1, 10), row(2, 7), row(3, 12)], [[...row(4, 4), 1], [...row(5, 3), 1], [...row(6, 5), 1]]);

describe("training precision", () => {
  it("bf16 autocast reaches the native trainer: first-step loss (before any update) close to float32", async () => {
    const losses: number[][] = [];
    const config = { ...(await tinyConfig()), dropout_rate: 0 };
    for (const precision of ["float32", "bf16"] as const) {
      const m = await T5Model.init(config, { seed: 3, vocabSize: VOCAB });
      try {
        m.setOptimizer({ name: "adamw", lr: 1e-3, schedule: "constant", totalSteps: 100 });
        losses.push((await m.trainSteps([batch, batch], { precision })).losses);
      } finally {
        m.dispose();
      }
    }
    expect(losses[1][0]).not.toBe(losses[0][0]); // bf16 matmuls did run
    expect(Math.abs(losses[1][0] - losses[0][0])).toBeLessThan(0.01 * losses[0][0]);
    expect(Number.isFinite(losses[1][1])).toBe(true);
  });

  it("rejects an unknown precision naming the option", async () => {
    const m = await T5Model.init("tiny", { seed: 1, vocabSize: VOCAB });
    try {
      m.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 10 });
      await expect(m.trainSteps([batch], { precision: "fp8" as "bf16" })).rejects.toThrow(/options\.precision.*fp8/);
      const r = await m.trainSteps([batch], { precision: "auto" });
      expect(Number.isFinite(r.losses[0])).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it("runtimeInfo reports the CPU allocator, BLAS threads and bf16 support", () => {
    const info = loadAddon().runtimeInfo();
    expect(["instill-cache", "system"]).toContain(info.cpuAllocator);
    expect(typeof info.cpuBf16).toBe("boolean");
    expect(info.blasThreads).toBeGreaterThanOrEqual(0);
  });
});

async function tinyConfig() {
  const m = await T5Model.init("tiny", { seed: 0, vocabSize: VOCAB });
  const c = m.config;
  m.dispose();
  return c;
}
