// `npm run bench -- ddp [--json] [--steps N] [--width W] [--layers L] [--global-batch B] [--repeats R]`
// Data-parallel scaling on this machine: the same workload (an MLP of torch::nn::Linear layers trained with
// instill's train_steps + AdamW, float32) at a FIXED global batch, run by 1 worker (all cores) and by 2 workers
// (`instill launch --nproc 2`, Gloo over loopback, cores split between them), side by side in one run.
// Reports steps/s of each, the speedup, and the time per step spent averaging gradients (bucketed all-reduce).
import { Writable } from "node:stream";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { availableParallelism, loadavg } from "node:os";
import { launch } from "../src/dist/launcher.js";

interface WorkerResult {
  steps: number;
  params: number;
  localBatch: number;
  seconds: number;
  allreduceSeconds: number;
  finalLoss: number;
  worldSize: number;
  bytes: number;
  buckets: number;
}

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name}: expected a positive integer, got '${args[i + 1]}'`);
  return v;
}

async function runWorkers(nproc: number, opts: object): Promise<WorkerResult> {
  const worker = join(dirname(fileURLToPath(import.meta.url)), "_ddp_worker.js");
  let text = "";
  const sink = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const res = await launch({ nproc, command: [process.execPath, worker, JSON.stringify(opts)], stdout: sink, forwardSignals: true });
  if (res.code !== 0) throw new Error(res.message ?? `workers failed with code ${res.code}`);
  const line = text.split("\n").find((l) => l.includes("DDP_RESULT "));
  if (!line) throw new Error(`no result from rank 0; output:\n${text}`);
  return JSON.parse(line.slice(line.indexOf("DDP_RESULT ") + 11)) as WorkerResult;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const opts = {
    steps: arg(args, "--steps", 20),
    width: arg(args, "--width", 512),
    layers: arg(args, "--layers", 4),
    globalBatch: arg(args, "--global-batch", 256),
  };
  // Alternate 1 and 2 workers and keep each one's fastest run, so background load hits both alike.
  const repeats = arg(args, "--repeats", 2);
  const best = (a: WorkerResult | undefined, b: WorkerResult) => (a === undefined || b.seconds < a.seconds ? b : a);
  let one: WorkerResult | undefined;
  let two: WorkerResult | undefined;
  for (let i = 0; i < repeats; i++) {
    one = best(one, await runWorkers(1, opts));
    two = best(two, await runWorkers(2, opts));
  }
  if (!one || !two) throw new Error("no runs");
  const sps1 = one.steps / one.seconds;
  const sps2 = two.steps / two.seconds;
  const result = {
    benchmark: "ddp",
    cores: availableParallelism(),
    loadAverage: loadavg()[0],
    repeats,
    workload: { ...opts, params: one.params, gradientBytesPerStep: one.params * 4 },
    oneWorker: { stepsPerSecond: sps1, seconds: one.seconds, finalLoss: one.finalLoss },
    twoWorkers: {
      stepsPerSecond: sps2,
      seconds: two.seconds,
      finalLoss: two.finalLoss,
      allreduceMsPerStep: (1000 * two.allreduceSeconds) / two.steps,
      allreduceFraction: two.allreduceSeconds / two.seconds,
      bucketsPerStep: two.buckets / two.steps,
      allreduceBytesPerStep: two.bytes / two.steps,
    },
    speedup: sps2 / sps1,
    scalingEfficiency: sps2 / sps1 / 2,
  };
  if (json) {
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  const f = (x: number, d = 2) => x.toFixed(d);
  process.stdout.write(
    [
      `ddp: MLP ${opts.layers}x${opts.width} (${(one.params / 1e6).toFixed(2)} M params, float32), global batch ${opts.globalBatch}, ${opts.steps} steps, ${result.cores} cores, best of ${repeats}, load average ${result.loadAverage.toFixed(1)}`,
      `  1 worker : ${f(sps1)} steps/s`,
      `  2 workers: ${f(sps2)} steps/s  (speedup ${f(result.speedup)}x, efficiency ${f(100 * result.scalingEfficiency, 0)}%)`,
      `  all-reduce: ${f(result.twoWorkers.allreduceMsPerStep)} ms/step = ${f(100 * result.twoWorkers.allreduceFraction, 1)}% of the step, ${f(result.twoWorkers.bucketsPerStep, 1)} buckets, ${(result.twoWorkers.allreduceBytesPerStep / 1e6).toFixed(1)} MB/step`,
      `  final loss: 1 worker ${one.finalLoss.toPrecision(8)}, 2 workers ${two.finalLoss.toPrecision(8)}`,
      "",
    ].join("\n"),
  );
}
