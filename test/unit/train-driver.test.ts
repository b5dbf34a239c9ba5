// The training driver (src/train/driver.ts) without the addon: chunking to checkpoints and hooks, checkpoint points,
// stop on a cancelled call, and the rank average of per-step series (nulls absent).
import { describe, expect, it } from "vitest";
import { averageSeries, drive, type CallResult } from "../../src/train/driver.js";
import type { ProcessGroup } from "../../src/dist/index.js";

function fakeMethod(opts: { cancelAt?: number } = {}) {
  const calls: [number, number][] = [];
  const recorded: number[] = [];
  return {
    calls,
    recorded,
    cancel: () => {},
    run: async (from: number, n: number): Promise<CallResult> => {
      calls.push([from, n]);
      const steps = opts.cancelAt !== undefined && from + n > opts.cancelAt ? Math.max(0, opts.cancelAt - from) : n;
      return { steps, cancelled: steps < n, series: { loss: Array.from({ length: steps }, (_, i) => from + i) } };
    },
    record: (r: CallResult) => recorded.push(...(r.series.loss as number[])),
  };
}

describe("drive", () => {
  it("cuts calls at stepsPerCall, checkpoints and stopAfterSteps; checkpoints at every multiple, the end and a stop", async () => {
    const m = fakeMethod();
    const saved: number[] = [];
    const r = await drive(m, { start: 2, total: 20, stepsPerCall: 4, checkpoint: { every: 5, save: async (s) => void saved.push(s) }, hooks: { stopAfterSteps: 13 } });
    expect(m.calls).toEqual([[2, 3], [5, 4], [9, 1], [10, 3]]);
    expect(saved).toEqual([5, 10, 13]);
    expect(r).toEqual({ steps: 13, stopped: true });
    expect(m.recorded).toEqual(Array.from({ length: 11 }, (_, i) => 2 + i));
  });

  it("runs to the end without checkpoints, and stops after a cancelled call", async () => {
    expect(await drive(fakeMethod(), { start: 0, total: 7, stepsPerCall: 3 })).toEqual({ steps: 7, stopped: false });
    const saved: number[] = [];
    const r = await drive(fakeMethod({ cancelAt: 4 }), { start: 0, total: 10, stepsPerCall: 3, checkpoint: { every: 100, save: async (s) => void saved.push(s) } });
    expect(r).toEqual({ steps: 4, stopped: true });
    expect(saved).toEqual([4]);
  });
});

describe("averageSeries", () => {
  it("means every series over the ranks in one all-reduce; null where no rank had a value", async () => {
    const other = [3, 5, 1, 1, 0, 0, 0, 0]; // the other rank: {loss: [3, 5], ce: [null, null]}, each followed by its presence
    const calls: number[][] = [];
    const pg = { allreduceMeanScalars: async (xs: number[]) => (calls.push(xs), xs.map((x, i) => (x + other[i]) / 2)) } as unknown as ProcessGroup;
    const out = await averageSeries(pg, { loss: [1, 2], ce: [4, null] });
    expect(calls).toHaveLength(1);
    expect(out).toEqual({ loss: [2, 3.5], ce: [2, null] });
  });
});
