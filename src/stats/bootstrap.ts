// Statistics for comparing methods evaluated on the same examples: mean ± sample standard deviation over seeds,
// and paired differences with a percentile bootstrap confidence interval over (seed, example).
//
// The bootstrap is two-stage (hierarchical): each resample draws the seeds with replacement, then, within each
// drawn seed, that seed's examples with replacement, and averages the paired differences. So the interval
// reflects both the spread between training seeds and the finite sample of test examples; with one seed it is the
// ordinary paired bootstrap over examples. Differences are paired: both methods were scored on the same
// examples under the same seed, so diff[s][i] = score_a[s][i] - score_b[s][i].
import { Rng } from "../util/rng.js";

export interface MeanStd {
  mean: number;
  /** Sample standard deviation (n - 1); 0 for a single value. */
  std: number;
  n: number;
}

export function meanStd(xs: readonly number[]): MeanStd {
  const n = xs.length;
  if (n === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0, n };
  const v = xs.reduce((a, b) => a + (b - mean) * (b - mean), 0) / (n - 1);
  return { mean, std: Math.sqrt(v), n };
}

export interface PairedDiff {
  /** Mean over seeds of the per-seed mean difference (equal to the pooled mean when seeds have equal sizes). */
  mean: number;
  lo: number;
  hi: number;
  /** The interval excludes 0. */
  significant: boolean;
  seeds: number;
  examples: number;
  level: number;
  resamples: number;
}

export interface BootstrapOptions {
  resamples?: number;
  /** Confidence level (default 0.95). */
  level?: number;
  seed?: number;
}

/** Linear-interpolated quantile of sorted values (type 7, as numpy's default). */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
}

/** diff[s] holds seed s's paired per-example differences. */
export function pairedBootstrap(diff: readonly (readonly number[])[], o: BootstrapOptions = {}): PairedDiff {
  const resamples = o.resamples ?? 2000;
  const level = o.level ?? 0.95;
  const seeds = diff.filter((d) => d.length > 0);
  const examples = seeds.reduce((a, d) => a + d.length, 0);
  if (seeds.length === 0) return { mean: NaN, lo: NaN, hi: NaN, significant: false, seeds: 0, examples: 0, level, resamples };
  const seedMean = (d: readonly number[]) => d.reduce((a, b) => a + b, 0) / d.length;
  const mean = seeds.reduce((a, d) => a + seedMean(d), 0) / seeds.length;
  const rng = new Rng(o.seed ?? 12345);
  const stats = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let total = 0;
    for (let k = 0; k < seeds.length; k++) {
      const d = seeds[rng.int(seeds.length)];
      let s = 0;
      for (let i = 0; i < d.length; i++) s += d[rng.int(d.length)];
      total += s / d.length;
    }
    stats[r] = total / seeds.length;
  }
  const sorted = Array.from(stats).sort((a, b) => a - b);
  const lo = quantileSorted(sorted, (1 - level) / 2);
  const hi = quantileSorted(sorted, 1 - (1 - level) / 2);
  return { mean, lo, hi, significant: lo > 0 || hi < 0, seeds: seeds.length, examples, level, resamples };
}

/** Paired differences a - b per seed, matched by example id (ids missing on either side are an error). */
export function pairedDiffs(
  a: readonly ReadonlyMap<string, number>[],
  b: readonly ReadonlyMap<string, number>[],
  keep: (id: string) => boolean = () => true,
): number[][] {
  if (a.length !== b.length) throw new RangeError(`paired differences: ${a.length} seeds against ${b.length}`);
  return a.map((ma, s) => {
    const mb = b[s];
    const out: number[] = [];
    for (const [id, va] of ma) {
      if (!keep(id)) continue;
      const vb = mb.get(id);
      if (vb === undefined) throw new RangeError(`paired differences: example ${id} (seed index ${s}) is missing from the baseline`);
      out.push(va - vb);
    }
    return out;
  });
}
