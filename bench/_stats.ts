// Shared helpers for the benchmarks (not a benchmark itself: bench/index.ts skips files starting with "_").
//
//   const s = await repeatUntilStable(async () => secondsOfOneRun(), { minRuns: 5 });  // {min, median, max, runs}
//   stat([..]) / fmtStat(s) / threadSettings()
//
// Method (the same for every bench that uses it): one warm-up run is not timed; then timed runs until at least
// `minRuns` are done and the median of the last `minRuns` moved by less than `relTol` when the newest run was
// added (or `maxRuns` / `maxSeconds` is reached; `stable` says which). The spread is reported as min / median / max.
import { availableParallelism, loadavg } from "node:os";

export interface Stat {
  min: number;
  median: number;
  max: number;
  runs: number[];
}

export function stat(xs: readonly number[]): Stat {
  if (xs.length === 0) throw new RangeError("stat: no values");
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  const median = n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
  return { min: s[0], median, max: s[n - 1], runs: [...xs] };
}

export function fmtStat(s: Stat, digits = 2, scale = 1): string {
  return `${(s.min * scale).toFixed(digits)} / ${(s.median * scale).toFixed(digits)} / ${(s.max * scale).toFixed(digits)}`;
}

export interface RepeatOptions {
  minRuns?: number;     // default 5
  maxRuns?: number;     // default 20
  relTol?: number;      // default 0.03: the median of the last minRuns moved by less than this
  maxSeconds?: number;  // default 120: stop adding runs after this much timed work
  warmup?: number;      // untimed runs first (default 1)
}

export interface Repeated extends Stat {
  stable: boolean;
}

/** Runs `once` (which returns the measured seconds of one run) until stable; see the file comment. */
export async function repeatUntilStable(once: () => Promise<number>, o: RepeatOptions = {}): Promise<Repeated> {
  const minRuns = o.minRuns ?? 5, maxRuns = Math.max(o.maxRuns ?? 20, minRuns);
  const relTol = o.relTol ?? 0.03, maxSeconds = o.maxSeconds ?? 120;
  for (let i = 0; i < (o.warmup ?? 1); i++) await once();
  const runs: number[] = [];
  let spent = 0;
  let prev = NaN;
  let stable = false;
  while (runs.length < maxRuns) {
    const s = await once();
    runs.push(s);
    spent += s;
    if (runs.length >= minRuns) {
      const m = stat(runs.slice(-minRuns)).median;
      if (Number.isFinite(prev) && Math.abs(m - prev) <= relTol * prev) {
        stable = true;
        break;
      }
      prev = m;
      if (spent > maxSeconds) break;
    }
  }
  return { ...stat(runs), stable };
}

/** The thread and allocator environment a bench ran under, for its header line and JSON. */
export function threadSettings(intraOpThreads: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const env = (k: string) => process.env[k] ?? null;
  return {
    intraOpThreads,
    cores: availableParallelism(),
    loadAverage1m: Number(loadavg()[0].toFixed(2)),
    OMP_NUM_THREADS: env("OMP_NUM_THREADS"),
    OMP_WAIT_POLICY: env("OMP_WAIT_POLICY"),
    OPENBLAS_NUM_THREADS: env("OPENBLAS_NUM_THREADS"),
    LD_PRELOAD: env("LD_PRELOAD"),
    INSTILL_CPU_ALLOCATOR: env("INSTILL_CPU_ALLOCATOR"),
    ...extra,
  };
}

export function fmtSettings(s: Record<string, unknown>): string {
  return Object.entries(s)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${v}`)
    .join(" ");
}
