// `npm run bench -- soak [--json] [--steps N] [--generate N] [--hypergrad SPEC] [--warmup F]`: memory over long
// runs. Users of hypergradient libraries report memory that grows with every outer step (facebookresearch/higher
// #6, metaopt/torchopt #218: graphs kept alive through optimizer state). This runs N DIO outer steps (every step an
// inner AdamW update plus an outer update by SPEC, default neumann:1, dropout on) and then N generate calls on a
// tiny T5 (the same batches throughout, so nothing but leaks can grow), sampling the process RSS after every native
// call. After the warm-up (the first F = 10% of each phase) the RSS must stay within 2% of its value at the end of
// the warm-up; the figures are printed either way and the exit code is 1 when a phase grows beyond that.
// --json prints one JSON object on one line.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { T5Model } from "../src/model/model.js";
import { loadAddon } from "../src/native/binding.js";
import type { DioBatchHost, HostTensor } from "../src/native/types.js";

interface Phase {
  name: string;
  calls: number;
  units: number;
  seconds: number;
  /** RSS in bytes after each call. */
  rss: number[];
  warmupCalls: number;
  rssAfterWarmup: number;
  rssMaxAfterWarmup: number;
  rssFinal: number;
  /** (max RSS after the warm-up - RSS at its end) / RSS at its end, percent. */
  growthPercent: number;
  /** Least-squares slope of RSS over the calls after the warm-up, bytes per unit (step or generate call). */
  slopeBytesPerUnit: number;
  withinLimit: boolean;
}

const LIMIT_PERCENT = 2;

function summarise(name: string, rss: number[], units: number, seconds: number, warmup: number): Phase {
  const w = Math.min(rss.length - 1, Math.max(1, Math.round(warmup * rss.length)));
  const after = rss.slice(w);
  const base = rss[w - 1];
  const max = Math.max(...after);
  const n = after.length;
  const xm = (n - 1) / 2;
  const ym = after.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  after.forEach((y, i) => ((num += (i - xm) * (y - ym)), (den += (i - xm) ** 2)));
  const perCall = den > 0 ? num / den : 0;
  const growthPercent = (100 * (max - base)) / base;
  return {
    name, calls: rss.length, units, seconds, rss, warmupCalls: w, rssAfterWarmup: base, rssMaxAfterWarmup: max, rssFinal: rss[rss.length - 1],
    growthPercent, slopeBytesPerUnit: perCall / (units / rss.length), withinLimit: growthPercent <= LIMIT_PERCENT,
  };
}

function int32(data: number[], shape: number[]): HostTensor<"int32"> {
  return { data: Int32Array.from(data), shape, dtype: "int32" };
}

/** A seeded batch of random ids (LCG), B x S inputs and B x T labels, task ids 0..B-1 (prompt variant). */
function batch(B: number, S: number, T: number, vocab: number, seed: number, tasks: boolean): DioBatchHost {
  let x = seed >>> 0;
  const next = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0), 2 + (x % (vocab - 2)));
  const ids = Array.from({ length: B * S }, next);
  const labels = Array.from({ length: B * T }, next);
  return {
    inputIds: int32(ids, [B, S]),
    attentionMask: int32(new Array<number>(B * S).fill(1), [B, S]),
    labels: int32(labels, [B, T]),
    ...(tasks ? { taskIds: int32(Array.from({ length: B }, (_, i) => i), [B]) } : {}),
  } as DioBatchHost;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const at = (flag: string) => (args.indexOf(flag) >= 0 ? args[args.indexOf(flag) + 1] : undefined);
  const steps = Number(at("--steps") ?? 1000);
  const gens = Number(at("--generate") ?? 1000);
  const spec = at("--hypergrad") ?? "neumann:1";
  const warmup = Number(at("--warmup") ?? 0.1);
  if (!Number.isInteger(steps) || steps < 20) throw new RangeError(`--steps: expected an integer >= 20, got ${at("--steps")}`);
  if (!Number.isInteger(gens) || gens < 20) throw new RangeError(`--generate: expected an integer >= 20, got ${at("--generate")}`);
  if (!(warmup > 0 && warmup < 1)) throw new RangeError(`--warmup: expected a fraction in (0, 1), got ${at("--warmup")}`);
  const perCall = 10;
  const tmp = mkdtempSync(join(tmpdir(), "instill-bench-soak-"));
  const dio = new (loadAddon().DioNative)();
  try {
    const vocab = 256;
    const cfg = { d_model: 64, d_kv: 16, d_ff: 128, num_heads: 4, num_layers: 2, num_decoder_layers: 2, feed_forward_proj: "relu", vocab_size: vocab, dropout_rate: 0.1, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0 };
    const modelDir = join(tmp, "model");
    const init = await T5Model.init(cfg as never, { seed: 1 });
    await init.save(modelDir);
    init.dispose();
    const B = 4;
    await dio.init(modelDir, {
      variant: "prompt", promptLength: 4, numTasks: B, hypergrad: spec, metaEvery: 1, seed: 1,
      inner: { name: "adamw", lr: 1e-4, schedule: "constant", totalSteps: steps }, outer: { name: "adamw", lr: 1e-4, schedule: "constant", totalSteps: steps },
    });
    const train = batch(B, 24, 8, vocab, 11, true);
    const meta = batch(B, 24, 8, vocab, 12, false);
    const items = Array.from({ length: perCall }, () => ({ train, meta }));
    const rss = () => process.memoryUsage().rss;
    // Phase 1: outer steps.
    const stepRss: number[] = [];
    let t0 = performance.now();
    for (let s = 0; s < steps; s += perCall) {
      const r = await dio.trainSteps(items.slice(0, Math.min(perCall, steps - s)));
      if (!r.metaLoss.every(Number.isFinite)) throw new Error("soak: a meta loss is not finite");
      stepRss.push(rss());
    }
    const stepPhase = summarise(`dio steps (${spec}, outer update every step)`, stepRss, steps, (performance.now() - t0) / 1000, warmup);
    // Phase 2: generate calls.
    const genRss: number[] = [];
    const gen = batch(B, 24, 8, vocab, 13, true);
    t0 = performance.now();
    for (let i = 0; i < gens; i++) {
      await dio.generate(gen, { maxNewTokens: 8 });
      if ((i + 1) % perCall === 0 || i === gens - 1) genRss.push(rss());
    }
    const genPhase = summarise("generate (greedy, 8 new tokens)", genRss, gens, (performance.now() - t0) / 1000, warmup);
    const phases = [stepPhase, genPhase];
    const ok = phases.every((p) => p.withinLimit);
    if (json) {
      process.stdout.write(JSON.stringify({ bench: "soak", limitPercent: LIMIT_PERCENT, ok, phases: phases.map(({ rss: r, ...p }) => ({ ...p, rssSamples: r })) }) + "\n");
    } else {
      const mib = (b: number) => (b / 2 ** 20).toFixed(1);
      const lines = [`soak: tiny T5 (vocab ${vocab}, dropout 0.1), batch ${B}; RSS sampled after every native call; limit ${LIMIT_PERCENT}% after the warm-up`];
      for (const p of phases) {
        lines.push(
          `${p.name}: ${p.units} in ${p.seconds.toFixed(1)} s; RSS after warm-up (${p.warmupCalls} calls) ${mib(p.rssAfterWarmup)} MiB, max after ${mib(p.rssMaxAfterWarmup)} MiB, final ${mib(p.rssFinal)} MiB: ` +
            `growth ${p.growthPercent.toFixed(2)}%, trend ${(p.slopeBytesPerUnit / 1024).toFixed(2)} KiB per unit -> ${p.withinLimit ? "flat" : "GROWS"}`,
        );
      }
      process.stdout.write(lines.join("\n") + "\n");
    }
    if (!ok) process.exitCode = 1;
  } finally {
    dio.dispose();
    rmSync(tmp, { recursive: true, force: true });
  }
}
