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
