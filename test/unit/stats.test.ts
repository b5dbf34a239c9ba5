import { describe, expect, it } from "vitest";
import { meanStd, pairedBootstrap, pairedDiffs, quantileSorted } from "../../src/stats/bootstrap.js";
import { denoisingExample, SPAN_CORRUPTION, spanCorrupt, spanNoiseMask } from "../../src/demo/base.js";
import { Rng } from "../../src/util/rng.js";

describe("statistics", () => {
  it("meanStd is the sample standard deviation", () => {
    expect(meanStd([2, 4, 4, 4, 5, 5, 7, 9])).toEqual({ mean: 5, std: Math.sqrt(32 / 7), n: 8 });
    expect(meanStd([3])).toEqual({ mean: 3, std: 0, n: 1 });
  });

  it("quantiles interpolate like numpy's default", () => {
    expect(quantileSorted([1, 2, 3, 4], 0.5)).toBe(2.5);
    expect(quantileSorted([1, 2, 3, 4], 0.025)).toBeCloseTo(1.075, 12);
  });

  it("one seed: the bootstrap interval of a mean difference matches the normal approximation", () => {
    const rng = new Rng(3);
    const d = Array.from({ length: 400 }, () => (rng.next() < 0.3 ? 100 : 0) - (rng.next() < 0.1 ? 100 : 0));
    const r = pairedBootstrap([d], { resamples: 4000, seed: 1 });
    const m = d.reduce((a, b) => a + b, 0) / d.length;
    const se = Math.sqrt(d.reduce((a, b) => a + (b - m) ** 2, 0) / (d.length - 1) / d.length);
    expect(r.mean).toBeCloseTo(m, 10);
    expect(Math.abs(r.lo - (m - 1.96 * se))).toBeLessThan(0.15 * se * 1.96);
    expect(Math.abs(r.hi - (m + 1.96 * se))).toBeLessThan(0.15 * se * 1.96);
    expect(r.significant).toBe(true);
    // no effect -> the interval covers 0
    const z = pairedBootstrap([Array.from({ length: 200 }, (_, i) => (i % 2 ? 100 : -100))], { seed: 2 });
    expect(z.lo).toBeLessThan(0);
    expect(z.hi).toBeGreaterThan(0);
    expect(z.significant).toBe(false);
  });

  it("several seeds: the interval widens with the spread between seeds (two-stage resampling)", () => {
    const same = [Array(100).fill(10), Array(100).fill(10), Array(100).fill(10)];
    const spread = [Array(100).fill(-20), Array(100).fill(10), Array(100).fill(40)];
    const a = pairedBootstrap(same, { seed: 3 });
    const b = pairedBootstrap(spread, { seed: 3 });
    expect([a.lo, a.hi]).toEqual([10, 10]);
    expect(b.mean).toBeCloseTo(10, 12);
    expect(b.lo).toBeLessThan(0); // a seed with the opposite sign makes the difference uncertain
    expect(b.significant).toBe(false);
  });

  it("pairedDiffs pairs by example id and refuses a missing one", () => {
    const a = [new Map([["x", 1], ["y", 0]])];
    const b = [new Map([["y", 1], ["x", 1]])];
    expect(pairedDiffs(a, b)).toEqual([[0, -1]]);
    expect(() => pairedDiffs(a, [new Map([["x", 0]])])).toThrow(/example y .* missing/);
  });
});

describe("span corruption (the demo's base)", () => {
  it("drops ~15% of the tokens in spans, each replaced by one sentinel, and the target restores them", () => {
    const rng = new Rng(9);
    for (let n = 2; n < 60; n++) {
      const ids = Array.from({ length: n }, (_, i) => 100 + i);
      const mask = spanNoiseMask(n, rng);
      expect(mask.length).toBe(n);
      expect(mask[0]).toBe(0);
      const noise = mask.reduce((a, b) => a + b, 0);
      expect(noise).toBe(Math.min(n - 1, Math.max(1, Math.round(n * 0.15))));
      const sentinels = [900, 901, 902, 903, 904, 905, 906, 907, 908, 909, 910, 911];
      const { src, tgt } = spanCorrupt(ids, mask, sentinels, 1);
      // Interleaving the input's kept tokens with the target's spans gives back the sequence.
      const restored: number[] = [];
      let t = 0;
      for (const x of src.slice(0, -1)) {
        if (x < 900) {
          restored.push(x);
          continue;
        }
        expect(tgt[t]).toBe(x);
        t++;
        while (t < tgt.length - 1 && tgt[t] < 900) restored.push(tgt[t++]);
      }
      expect(restored).toEqual(ids);
      expect(src[src.length - 1]).toBe(1);
      expect(tgt[tgt.length - 1]).toBe(1);
    }
  });

  it("mixes in reconstruction: the same corrupted input with the whole original text as target, at the set rate", () => {
    const rng = new Rng(4);
    const sentinels = Array.from({ length: 20 }, (_, i) => 900 + i);
    const ids = Array.from({ length: 30 }, (_, i) => 100 + i);
    let recon = 0;
    const n = 2000;
    for (let k = 0; k < n; k++) {
      const { src, tgt } = denoisingExample(ids, rng, sentinels, 1);
      // the input is always span-corrupted (sentinels in it, shorter than the text + EOS)
      expect(src.some((x) => x >= 900)).toBe(true);
      expect(src.length).toBeLessThan(ids.length + 1);
      if (tgt.length === ids.length + 1 && tgt.slice(0, -1).every((x, i) => x === ids[i])) recon++;
      else expect(tgt[0]).toBe(900);
      expect(tgt[tgt.length - 1]).toBe(1);
    }
    expect(SPAN_CORRUPTION.reconstruct).toBe(0.5);
    expect(Math.abs(recon / n - 0.5)).toBeLessThan(0.05);
    // reconstruct = 0 is plain span corruption
    for (let k = 0; k < 50; k++) expect(denoisingExample(ids, rng, sentinels, 1, { ...SPAN_CORRUPTION, reconstruct: 0 }).tgt[0]).toBe(900);
  });
});
