// `npm run bench -- t5-step [--json] [--quick] [--precision float32|bf16] [--shapes small:8x256x64,...]`: T5 training-step throughput and generation speed, as ratios to the
// machine's matmul throughput measured in the same run (addon.matmulBench).
//
// Model FLOPs of one training step (counted analytically, matmuls only; training = 3 x forward: the backward pass
// costs two forwards). For a batch of B examples, S input tokens and T target tokens, d = d_model, i = heads * d_kv,
// f = d_ff (x2 for the gated wi_0/wi_1), V = vocab, Le/Ld = encoder/decoder layers:
//   forward = 2 * B * [ Le * S * (4 d i + (g+1) d f)                       encoder projections + FFN
//                     + Ld * T * (4 d i + 2 d i + (g+1) d f)              decoder self-attn, cross q/o, FFN
//                     + Ld * S * 2 d i                                    cross-attention k/v over encoder states
//                     + T * d * V ]                                       LM head
//           + 2 * B * [ Le * 2 S^2 i + Ld * (2 T^2 i + 2 T S i) ]         attention scores QK^T and weights x V
//   train step = 3 * forward
// This is "6 x parameters x tokens" with each weight matrix paired with the tokens that actually pass through it,
// plus the attention terms (padding counted as computed; dense, no causal savings).
import { loadAddon } from "../src/native/binding.js";
import { T5Model, makeBatch } from "../src/model/model.js";
import type { T5ConfigJson } from "../src/model/types.js";
import { fmtSettings, fmtStat, repeatUntilStable, stat, threadSettings, type Stat } from "./_stats.js";

interface Shape {
  model: "tiny" | "small";
  batch: number;
  source: number;
  target: number;
}

export function trainStepFlops(c: T5ConfigJson, B: number, S: number, T: number): number {
  const d = c.d_model;
  const i = c.num_heads * c.d_kv;
  const ffMats = c.feed_forward_proj.startsWith("gated") ? 3 : 2;
  const Le = c.num_layers;
  const Ld = c.num_decoder_layers ?? c.num_layers;
  const proj =
    Le * S * (4 * d * i + ffMats * d * c.d_ff) + Ld * T * (6 * d * i + ffMats * d * c.d_ff) + Ld * S * 2 * d * i + T * d * c.vocab_size;
  const attn = Le * 2 * S * S * i + Ld * (2 * T * T * i + 2 * T * S * i);
  return 3 * 2 * B * (proj + attn);
}

function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x;
  };
}

function randomRows(rows: number, len: number, vocab: number, seed: number, eos: boolean): number[][] {
  const r = lcg(seed);
  return Array.from({ length: rows }, () => {
    const row = Array.from({ length: len }, () => 2 + (r() % (vocab - 2)));
    if (eos) row[len - 1] = 1;
    return row;
  });
}

interface StepResult extends Shape {
  precision: string;
  parameters: number;
  stepSeconds: Stat;
  tokensPerSecond: number;
  gflopPerStep: number;
  modelGflops: number;
  fractionOfMatmul: number;
  stable: boolean;
}

interface GenResult {
  model: string;
  batch: number;
  source: number;
  newTokens: number;
  cachedSeconds: Stat;
  uncachedSeconds: Stat;
  cachedTokensPerSecond: number;
  uncachedTokensPerSecond: number;
  speedup: number;
}

// `--precision bf16` trains under bf16 autocast (float32 master weights); `--shapes small:8x256x64,...` picks shapes.
export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const pi = args.indexOf("--precision");
  const precision = (pi >= 0 ? args[pi + 1] : "float32") as "float32" | "bf16";
  if (!["float32", "bf16"].includes(precision)) throw new TypeError(`t5-step: --precision must be float32 or bf16, got '${precision}'`);
  const addon = loadAddon();
  const log = (s: string) => {
    if (!json) process.stdout.write(s + "\n");
  };
  // The matmul rate is measured three times (before, between and after the models) and its median is the reference.
  const mmRuns: number[] = [];
  const matmul = async () => mmRuns.push((await addon.matmulBench({ n: 1024, seconds: quick ? 0.5 : 1.5 })).gflops);
  await matmul();
  const info = addon.runtimeInfo();
  const settings = threadSettings(addon.getThreads(), { blasThreads: info.blasThreads, cpuAllocator: info.cpuAllocator, cpuBf16: info.cpuBf16, precision });
  log(`t5-step: ${fmtSettings(settings)}`);
  log(`matmul 1024^3 float32: ${mmRuns[0].toFixed(1)} GFLOP/s; step times min / median / max over >= 5 timed steps after a warm-up`);

  const si = args.indexOf("--shapes");
  const shapes: Shape[] =
    si >= 0
      ? args[si + 1].split(",").map((spec) => {
          const [model, dims] = spec.split(":");
          const [batch, source, target] = dims.split("x").map(Number);
          if (model !== "tiny" && model !== "small") throw new TypeError(`t5-step: --shapes: unknown model '${model}' in '${spec}'`);
          return { model, batch, source, target } as Shape;
        })
      : quick
        ? [
            { model: "tiny", batch: 8, source: 64, target: 16 },
            { model: "small", batch: 4, source: 128, target: 32 },
          ]
        : [
            { model: "tiny", batch: 8, source: 64, target: 16 },
            { model: "tiny", batch: 32, source: 64, target: 16 },
            { model: "small", batch: 4, source: 128, target: 32 },
            { model: "small", batch: 8, source: 256, target: 64 },
          ];
  const steps: StepResult[] = [];
  const gens: GenResult[] = [];
  const stepMeasures: { res: StepResult; flops: number }[] = [];
  for (const name of ["tiny", "small"] as const) {
    if (!shapes.some((s) => s.model === name)) continue;
    const model = await T5Model.init(name, { seed: 0, vocabSize: 32128 });
    try {
      const cfg = model.config;
      const parameters = model.parameterCount().total;
      model.setOptimizer({ name: "adafactor", lr: 1e-3, totalSteps: 1000, schedule: "constant" });
      for (const s of shapes.filter((x) => x.model === name)) {
        const batch = makeBatch(randomRows(s.batch, s.source, cfg.vocab_size, 1, true), randomRows(s.batch, s.target, cfg.vocab_size, 2, true));
        const big = s.batch * s.source >= 2048;
        const t = await repeatUntilStable(async () => (await model.trainSteps([batch], { precision })).seconds, {
          minRuns: 5,
          maxRuns: quick || big ? 5 : 12,
          warmup: 1,
        });
        const flops = trainStepFlops(cfg, s.batch, s.source, s.target);
        const res: StepResult = {
          ...s,
          precision,
          parameters,
          stepSeconds: t,
          tokensPerSecond: (s.batch * (s.source + s.target)) / t.median,
          gflopPerStep: flops / 1e9,
          modelGflops: flops / t.median / 1e9,
          fractionOfMatmul: NaN,  // set below, against the median matmul rate of the run
          stable: t.stable,
        };
        steps.push(res);
        stepMeasures.push({ res, flops });
        log(
          `train ${name} (${(parameters / 1e6).toFixed(1)}M) ${s.batch}x${s.source}->${s.target}: ${fmtStat(t, 0, 1e3)} ms/step, ` +
            `${res.tokensPerSecond.toFixed(0)} tok/s, ${res.modelGflops.toFixed(1)} model GFLOP/s${t.stable ? "" : " (not stable)"}`,
        );
      }
      // Generation: greedy with and without the KV cache (identical outputs; tokens = decoder positions run).
      const gb = name === "small" ? 4 : 8;
      const genBatch = makeBatch(randomRows(gb, 64, cfg.vocab_size, 3, true));
      const maxNew = quick ? 8 : 32;
      let outs: { c?: number[][]; u?: number[][] } = {};
      const time = (useCache: boolean) => async () => {
        const t0 = performance.now();
        const out = await model.generate(genBatch, { maxNewTokens: maxNew, useCache });
        outs = useCache ? { ...outs, c: out } : { ...outs, u: out };
        return (performance.now() - t0) / 1e3;
      };
      const c = await repeatUntilStable(time(true), { minRuns: 5, maxRuns: 10 });
      const u = await repeatUntilStable(time(false), { minRuns: 5, maxRuns: quick ? 5 : 10 });
      if (JSON.stringify(outs.c) !== JSON.stringify(outs.u)) throw new Error("t5-step: cached and uncached generation differ");
      const positions = Math.max(...(outs.c ?? []).map((r) => Math.min(maxNew, r.length + 1)));
      const g: GenResult = {
        model: name,
        batch: gb,
        source: 64,
        newTokens: positions,
        cachedSeconds: c,
        uncachedSeconds: u,
        cachedTokensPerSecond: (positions * gb) / c.median,
        uncachedTokensPerSecond: (positions * gb) / u.median,
        speedup: u.median / c.median,
      };
      gens.push(g);
      log(
        `generate ${name} ${gb}x64, ${g.newTokens} steps: cache ${g.cachedTokensPerSecond.toFixed(0)} tok/s (${fmtStat(c, 0, 1e3)} ms), ` +
          `no cache ${g.uncachedTokensPerSecond.toFixed(0)} tok/s (cache ${g.speedup.toFixed(2)}x)`,
      );
    } finally {
      model.dispose();
    }
    await matmul();
  }
  const mm = stat(mmRuns);
  for (const { res } of stepMeasures) res.fractionOfMatmul = res.modelGflops / mm.median;
  log(`matmul rate over the run: ${fmtStat(mm, 1)} GFLOP/s (min / median / max); fraction of the median:`);
  for (const r of steps)
    log(`  ${r.model} ${r.batch}x${r.source}->${r.target}: ${(r.fractionOfMatmul * 100).toFixed(1)}% of matmul (${r.modelGflops.toFixed(1)} GFLOP/s)`);
  if (json) process.stdout.write(JSON.stringify({ matmulGflops: mm, settings, train: steps, generate: gens }) + "\n");
}
