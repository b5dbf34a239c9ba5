// The shared benchmark helpers (bench/_stats.ts): statistics and the repeat-until-stable rule.
import { describe, expect, it } from "vitest";
import { fmtStat, repeatUntilStable, stat } from "../../bench/_stats.js";

describe("bench stats", () => {
  it("min / median / max, keeping the runs in order", () => {
    expect(stat([3, 1, 2])).toEqual({ min: 1, median: 2, max: 3, runs: [3, 1, 2] });
    expect(stat([4, 1, 3, 2]).median).toBe(2.5);
    expect(() => stat([])).toThrow(RangeError);
    expect(fmtStat(stat([0.001, 0.002, 0.003]), 1, 1e3)).toBe("1.0 / 2.0 / 3.0");
  });

  it("repeats at least minRuns times after the warm-up and stops once the median settles", async () => {
    let calls = 0;
    const steady = await repeatUntilStable(async () => (++calls, 1), { minRuns: 5, warmup: 1 });
    expect(calls).toBe(7); // warm-up + 5 + the one that shows the median did not move
    expect(steady.stable).toBe(true);
    expect(steady.runs.length).toBe(6);
    let t = 0;
    const drifting = await repeatUntilStable(async () => (t += 1), { minRuns: 5, maxRuns: 9, warmup: 0, relTol: 0.01 });
    expect(drifting.stable).toBe(false);
    expect(drifting.runs.length).toBe(9);
    expect(drifting.min).toBe(1);
    expect(drifting.max).toBe(9);
  });
});
