// Exact top-k throughput (native/core/select) against what the machine can do, measured in the same run:
//   single query (Q = 1): one pass over the pool, bytes read per second as a fraction of the read bandwidth
//     (readBandwidthBench: a multithreaded sum over a 1 GiB float32 tensor);
//   batched (Q = 64): 2 Q N d flops per search as a fraction of the float32 matmul rate (matmulBench).
// Pools (N = 1e4, 1e5, 1e6; d = 384, 768) are random unit rows generated natively (TopkIndex.addRandom).
//   npm run bench -- topk [--json] [--chunk-rows R] [--seconds S] [--k K] [--sizes 1e4,1e5] [--dims 384]
import { loadAddon } from "../src/native/binding.js";

interface Row {
  n: number;
  d: number;
  q: number;
  k: number;
  ms: number;
  reps: number;
  queriesPerSecond: number;
  gbps: number;
  gflops: number;
  /** Q = 1: gbps / measured bandwidth; Q > 1: gflops / measured matmul rate. */
  fraction: number;
  bound: "bandwidth" | "matmul";
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function list(v: string | undefined, dflt: number[]): number[] {
  return v ? v.split(",").map((x) => Number(x)) : dflt;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const chunkRows = Number(flag(args, "--chunk-rows") ?? 32768);
  const minSeconds = Number(flag(args, "--seconds") ?? 0.4);
  const k = Number(flag(args, "--k") ?? 10);
  const sizes = list(flag(args, "--sizes"), [1e4, 1e5, 1e6]);
  const dims = list(flag(args, "--dims"), [384, 768]);
  const batches = list(flag(args, "--queries"), [1, 64]);
  const addon = loadAddon();
  const log = (s: string) => {
    if (!json) process.stdout.write(s);
  };
  const t0 = performance.now();
  const bw = await addon.readBandwidthBench({ bytes: 1 << 30, seconds: 1 });
  const mm = await addon.matmulBench({ n: 1024, seconds: 1 });
  const threads = addon.getThreads();
  log(`threads ${threads}; read bandwidth ${bw.gbps.toFixed(2)} GB/s (sum over 1 GiB); matmul ${mm.gflops.toFixed(1)} GFLOP/s (1024^3 float32)\n`);
  log(`chunk rows ${chunkRows}, k ${k}\n\n`);
  log(`${"N".padStart(8)} ${"d".padStart(4)} ${"Q".padStart(3)} ${"ms/search".padStart(10)} ${"queries/s".padStart(10)} ${"GB/s".padStart(7)} ${"GFLOP/s".padStart(8)}  fraction\n`);
  const rows: Row[] = [];
  let seed = 1;
  for (const d of dims) {
    for (const n of sizes) {
      const index = new addon.TopkIndex({ dim: d });
      const g0 = performance.now();
      await index.addRandom({ rows: n, seed: seed++ });
      const genMs = performance.now() - g0;
      for (const q of batches) {
        const data = new Float32Array(q * d);
        for (let i = 0; i < data.length; i++) data[i] = Math.random() - 0.5;
        const queries = { data, shape: [q, d], dtype: "float32" as const };
        // one warm-up search (page faults, BLAS buffers), then repeat until minSeconds
        await index.search(queries, k, { chunkRows });
        let reps = 0;
        const s0 = performance.now();
        let elapsed = 0;
        do {
          await index.search(queries, k, { chunkRows });
          reps++;
          elapsed = (performance.now() - s0) / 1000;
        } while (elapsed < minSeconds);
        const sec = elapsed / reps;
        const gbps = (n * d * 4) / sec / 1e9;
        const gflops = (2 * q * n * d) / sec / 1e9;
        const bound = q === 1 ? "bandwidth" : "matmul";
        const fraction = q === 1 ? gbps / bw.gbps : gflops / mm.gflops;
        const row: Row = { n, d, q, k, ms: sec * 1000, reps, queriesPerSecond: q / sec, gbps, gflops, fraction, bound };
        rows.push(row);
        log(
          `${String(n).padStart(8)} ${String(d).padStart(4)} ${String(q).padStart(3)} ${row.ms.toFixed(2).padStart(10)} ${row.queriesPerSecond.toFixed(0).padStart(10)} ` +
            `${gbps.toFixed(2).padStart(7)} ${gflops.toFixed(1).padStart(8)}  ${(fraction * 100).toFixed(0)}% of ${bound}\n`,
        );
      }
      index.dispose();
      if (!json && n >= 1e6) log(`         (generating ${n} x ${d} natively took ${(genMs / 1000).toFixed(1)} s)\n`);
    }
  }
  const totalSeconds = (performance.now() - t0) / 1000;
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ threads, chunkRows, k, bandwidthGbps: bw.gbps, matmulGflops: mm.gflops, rows, totalSeconds }, null, 2)}\n`,
    );
  } else log(`\ntotal ${totalSeconds.toFixed(1)} s\n`);
}
