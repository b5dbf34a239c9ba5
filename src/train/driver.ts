// The one training driver (Betty's Engine/Problem split): it owns the loop over native calls (each call runs up to
// `stepsPerCall` steps, never past the next checkpoint or a requested stop), the all-reduce of the logged per-step
// values over the ranks, the stop agreement, Ctrl-C and checkpoint + barrier. A method (T5 fine-tuning, DIO, TAGI)
// supplies only its step: what one native call does for steps [from, from + n) on this rank's shard.
import { anyRank, labelTokens, shardItems, shardShare, type ProcessGroup } from "../dist/index.js";

/** One native call: the steps it completed (fewer when cancelled) and named per-step values of this rank (null:
 * none this step), each `steps` long, which the driver replaces by their means over the ranks. */
export interface CallResult {
  steps: number;
  cancelled?: boolean;
  series: Record<string, (number | null)[]>;
}

export interface MethodStep {
  /** Runs steps [from, from + n) natively (this rank's shard of each global batch). */
  run(from: number, n: number): Promise<CallResult>;
  /** Stops the call in flight at its next step (Ctrl-C in one process). */
  cancel(): void;
  /** After each call, with rank-averaged series; `before` is the step count before the call. */
  record(r: CallResult, before: number): void;
}

export interface DriveOptions {
  /** Steps done so far (a resumed run), the step to stop at, and the most steps one call runs. */
  start: number;
  total: number;
  stepsPerCall: number;
  processGroup?: ProcessGroup;
  /**
   * Checkpoints: `save(step)` runs on every rank (it writes on the writer rank) every `every` steps, at the end and
   * when the run stops early; the ranks then meet at a barrier. With checkpoints Ctrl-C stops the run (after the
   * current call, cancelled in one process) and the ranks agree on stopping after each call; without them Ctrl-C
   * keeps its default meaning (nothing would keep what was done).
   */
  checkpoint?: { every: number; save: (step: number) => Promise<void> };
  hooks?: TrainHooks;
}

export interface TrainHooks {
  /** Called after each native call; returning true stops like Ctrl-C (tests simulate an interruption with it). */
  afterCall?: (step: number) => boolean | void;
  /** Stop (checkpoint and return) once this many steps are done. */
  stopAfterSteps?: number;
}

/** stopped: early, by Ctrl-C, a cancelled call or a hook. */
export interface DriveResult {
  steps: number;
  stopped: boolean;
}

/**
 * Means over the ranks of every series, in one all-reduce. A null entry counts as 0 in the mean (each rank's value is
 * already its share of the global batch, lossScale) and the result is null where no rank had a value.
 */
export async function averageSeries(pg: ProcessGroup, series: Record<string, (number | null)[]>): Promise<Record<string, (number | null)[]>> {
  // Every rank sends the same layout: each series' values (null as 0), then its presence flags.
  const keys = Object.keys(series);
  const flat = keys.flatMap((k) => [...series[k].map((x) => x ?? 0), ...series[k].map((x) => (x === null ? 0 : 1))]);
  const m = await pg.allreduceMeanScalars(flat);
  const out: Record<string, (number | null)[]> = {};
  let at = 0;
  for (const k of keys) {
    const n = series[k].length;
    out[k] = m.slice(at, at + n).map((v, j) => (m[at + n + j] > 0 ? v : null));
    at += 2 * n;
  }
  return out;
}

/**
 * This rank's batch of a global batch: with a group, its contiguous shard, with `lossScale` = its share (`scale`) so
 * that the mean over ranks of the scaled losses (gradients natively, logged values in drive) is the global batch's.
 */
export function shardBatch<T, B, S = number>(items: T[], pg: ProcessGroup | undefined, build: (xs: T[]) => B, scale: (shard: T[], global: T[], world: number) => S): B {
  if (!pg || pg.worldSize === 1) return build(items);
  const mine = shardItems(items, pg.rank, pg.worldSize);
  return { ...build(mine), lossScale: scale(mine, items, pg.worldSize) };
}

/** Token-mean losses: a shard's label tokens * world / the global batch's. */
export const tokenShare = (shard: { tgt: number[] }[], global: { tgt: number[] }[], world: number) => shardShare(labelTokens(shard), labelTokens(global), world);

/** Runs a method's steps from o.start to o.total (see DriveOptions). */
export async function drive(method: MethodStep, o: DriveOptions): Promise<DriveResult> {
  const pg = o.processGroup;
  const every = o.checkpoint ? o.checkpoint.every : Infinity;
  const stopAfter = o.hooks?.stopAfterSteps ?? Infinity;
  const killAt = testKillStep(pg?.rank ?? 0);
  let step = o.start;
  // `interrupted`: Ctrl-C seen on this rank; `stop`: what the ranks agreed on after a call. With a group every rank
  // finishes its call (no rank may wait alone in an all-reduce) and the ranks stop together.
  let interrupted = false;
  let stop = false;
  const onSigint = () => {
    interrupted = true;
    if (!pg) method.cancel();
  };
  if (o.checkpoint) process.on("SIGINT", onSigint);
  try {
    while (step < o.total && !stop && !(interrupted && !pg)) {
      const nextCkpt = (Math.floor(step / every) + 1) * every;
      const n = Math.min(o.stepsPerCall, o.total - step, nextCkpt - step, stopAfter - step);
      const r = await method.run(step, n);
      if (pg) {
        r.series = await averageSeries(pg, r.series);
        if (o.checkpoint && (await anyRank(pg, interrupted))) stop = true;
      } else stop = interrupted;
      if (r.cancelled) stop = true;
      const before = step;
      step += r.steps;
      method.record(r, before);
      if (o.hooks?.afterCall?.(step) === true || step >= stopAfter) stop = true;
      if (o.checkpoint && (step % every === 0 || step >= o.total || stop)) {
        await o.checkpoint.save(step);
        await pg?.barrier();
      }
      if (step >= killAt) process.kill(process.pid, "SIGKILL"); // tests: a worker dying mid-run
    }
  } finally {
    if (o.checkpoint) process.off("SIGINT", onSigint);
  }
  return { steps: step, stopped: stop || interrupted };
}

/** INSTILL_TEST_KILL_AT_STEP="<rank>:<step>" (tests only): that rank kills itself once it has done `step` steps. */
function testKillStep(rank: number): number {
  const v = process.env.INSTILL_TEST_KILL_AT_STEP;
  const m = v ? /^(\d+):(\d+)$/.exec(v) : null;
  return m && Number(m[1]) === rank ? Number(m[2]) : Infinity;
}
