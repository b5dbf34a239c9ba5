// One worker of `npm run bench -- ddp` (started by the launcher): runs the native DDP workload and, on rank 0,
// prints `DDP_RESULT <json>`. argv[2]: the DdpBenchOptions as JSON.
import { initProcessGroup } from "../src/dist/group.js";
import { loadAddon } from "../src/native/binding.js";
import type { DdpBenchOptions, DdpBenchResult } from "../src/native/types.js";

const opts = JSON.parse(process.argv[2] ?? "{}") as DdpBenchOptions;
const pg = await initProcessGroup();
let r: DdpBenchResult;
if (pg) {
  r = await pg.ddpBench(opts);
  const stats = pg.stats();
  if (pg.rank === 0) process.stdout.write(`DDP_RESULT ${JSON.stringify({ ...r, worldSize: pg.worldSize, bytes: stats.bytes, buckets: stats.buckets })}\n`);
  pg.dispose();
} else {
  r = await loadAddon().ddpBenchLocal(opts);
  process.stdout.write(`DDP_RESULT ${JSON.stringify({ ...r, worldSize: 1, bytes: 0, buckets: 0 })}\n`);
}
