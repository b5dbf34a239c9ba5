// The distributed environment of a worker, from the variables torchrun sets (and `instill launch` sets the same way):
// MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK. Absent variables mean one process.
export interface DistEnv {
  masterAddr: string;
  masterPort: number;
  worldSize: number;
  rank: number;
  localRank: number;
}

function intVar(env: NodeJS.ProcessEnv, name: string, fallback: number, lo: number, hi: number): number {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  if (!/^\d+$/.test(v.trim())) throw new RangeError(`${name}: expected an integer in [${lo}, ${hi}], got '${v}'`);
  const n = Number(v.trim());
  if (n < lo || n > hi) throw new RangeError(`${name}: expected an integer in [${lo}, ${hi}], got '${v}'`);
  return n;
}

/** Reads and checks the variables; throws RangeError naming the variable. */
export function readDistEnv(env: NodeJS.ProcessEnv = process.env): DistEnv {
  const worldSize = intVar(env, "WORLD_SIZE", 1, 1, 1 << 20);
  const rank = intVar(env, "RANK", 0, 0, (1 << 20) - 1);
  if (rank >= worldSize) throw new RangeError(`RANK: ${rank} is not below WORLD_SIZE ${worldSize}`);
  const localRank = intVar(env, "LOCAL_RANK", rank, 0, (1 << 20) - 1);
  const masterAddr = env.MASTER_ADDR && env.MASTER_ADDR !== "" ? env.MASTER_ADDR : "127.0.0.1";
  const masterPort = intVar(env, "MASTER_PORT", 29500, 1, 65535);
  return { masterAddr, masterPort, worldSize, rank, localRank };
}

/** True when this process is one of several workers (WORLD_SIZE > 1). */
export function isDistributed(env: NodeJS.ProcessEnv = process.env): boolean {
  return readDistEnv(env).worldSize > 1;
}

/**
 * Rank `rank`'s contiguous part [start, end) of n items split over `world` ranks. Sizes differ by at most one;
 * with n divisible by world every rank gets n / world (the case where averaged gradients equal the full-batch
 * gradient exactly).
 */
export function shardRange(n: number, rank: number, world: number): [number, number] {
  if (!Number.isInteger(world) || world < 1) throw new RangeError(`world size must be a positive integer, got ${world}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= world) throw new RangeError(`rank ${rank} is not in [0, ${world - 1}]`);
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`item count must be a non-negative integer, got ${n}`);
  return [Math.floor((rank * n) / world), Math.floor(((rank + 1) * n) / world)];
}

/** This rank's slice of a global batch; throws when the batch has fewer items than ranks (a rank would idle). */
export function shardItems<T>(items: readonly T[], rank: number, world: number): T[] {
  if (items.length < world)
    throw new RangeError(`a global batch of ${items.length} examples cannot be split over ${world} workers: use a batch size of at least ${world}`);
  const [a, b] = shardRange(items.length, rank, world);
  return items.slice(a, b);
}

/**
 * The loss-scale factor of a shard: (its count of the loss's unit * world) / (the global batch's count), where the
 * unit is what the loss averages over (label tokens, rows with a teacher, ...). With each rank's mean loss scaled by
 * it, the mean over ranks of the shard losses (and of their gradients) is the global batch's mean exactly, also
 * when shards hold different counts. `empty` is returned when the global batch has none of the unit.
 */
export function shardShare(local: number, global: number, world: number, empty = 1): number {
  return global > 0 ? (local * world) / global : empty;
}

/** Label tokens of tokenized examples (every target id is a labelled position). */
export function labelTokens(examples: readonly { tgt: number[] }[]): number {
  return examples.reduce((n, e) => n + e.tgt.length, 0);
}
