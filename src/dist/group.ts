// The worker side of data parallelism: a c10d process group from the environment (torchrun's variables), or
// undefined in a single process. Rank 0 alone writes checkpoints, logs and reports (isWriter).
import { loadAddon } from "../native/binding.js";
import type { DistConfig, NativeProcessGroup } from "../native/types.js";
import { readDistEnv } from "./env.js";

export type ProcessGroup = NativeProcessGroup;

export interface InitOptions extends Partial<DistConfig> {
  device?: "cpu" | "cuda";
  env?: NodeJS.ProcessEnv;
}

/**
 * Joins the process group described by the environment (or options). Returns undefined when WORLD_SIZE is 1 and
 * no explicit worldSize > 1 is given, so single-process runs never open a socket.
 */
export async function initProcessGroup(opts: InitOptions = {}): Promise<ProcessGroup | undefined> {
  const env = readDistEnv(opts.env ?? process.env);
  const worldSize = opts.worldSize ?? env.worldSize;
  if (worldSize <= 1) return undefined;
  const timeout = (opts.env ?? process.env).INSTILL_DIST_TIMEOUT;
  return loadAddon().distInit({
    masterAddr: opts.masterAddr ?? env.masterAddr,
    masterPort: opts.masterPort ?? env.masterPort,
    worldSize,
    rank: opts.rank ?? env.rank,
    localRank: opts.localRank ?? env.localRank,
    backend: opts.backend ?? "auto",
    timeoutSeconds: opts.timeoutSeconds ?? (timeout ? Number(timeout) : 300),
    device: opts.device ?? "cpu",
  });
}

/** Whether this process writes files and reports (rank 0, or no group). */
export function isWriter(pg: ProcessGroup | undefined): boolean {
  return pg === undefined || pg.rank === 0;
}

/**
 * Dropout under data parallelism: every rank would draw the same masks from the same seed (and a resumed group
 * would all restore rank 0's saved generator state), so ranks > 0 reseed LibTorch's CPU generator from
 * (seed, rank, step). Weights are unaffected (they come from files or seeded inits). Rank 0 keeps the
 * single-process stream, so a world-size-1 resume of a group's checkpoint continues it bitwise.
 */
export function reseedRankDropout(pg: ProcessGroup | undefined, seed: number, step: number): void {
  if (pg && pg.worldSize > 1 && pg.rank > 0) loadAddon().manualSeed((seed + 1_000_003 * pg.rank + step) % 2 ** 52);
}

/** True on every rank when `flag` is true on any rank (e.g. a Ctrl-C seen by one worker: all stop together). */
export async function anyRank(pg: ProcessGroup, flag: boolean): Promise<boolean> {
  return Math.max(...(await pg.allgatherScalars([flag ? 1 : 0]))) > 0;
}
