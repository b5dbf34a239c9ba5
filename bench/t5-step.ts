// `npm run bench -- t5-step [--json] [--quick]`: T5 training-step throughput and generation speed, as ratios to the
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
  parameters: number;
  stepSeconds: number;
  tokensPerSecond: number;
  gflopPerStep: number;
  modelGflops: number;
  fractionOfMatmul: number;
}

interface GenResult {
  model: string;
  batch: number;
  source: number;
  newTokens: number;
  cachedTokensPerSecond: number;
  uncachedTokensPerSecond: number;
  speedup: number;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const addon = loadAddon();
  const log = (s: string) => {
    if (!json) process.stdout.write(s + "\n");
  };
  const matmul = await addon.matmulBench({ n: 1024, seconds: quick ? 0.5 : 2 });
  log(`matmul 1024^3 float32: ${matmul.gflops.toFixed(1)} GFLOP/s (${addon.getThreads()} threads)`);

  const shapes: Shape[] = [
    { model: "tiny", batch: 8, source: 64, target: 16 },
    { model: "tiny", batch: 32, source: 64, target: 16 },
    { model: "small", batch: 4, source: 128, target: 32 },
    { model: "small", batch: 8, source: 256, target: 64 },
  ];
  const steps: StepResult[] = [];
  const gens: GenResult[] = [];
  for (const name of ["tiny", "small"] as const) {
    const model = await T5Model.init(name, { seed: 0, vocabSize: 32128 });
    try {
      const cfg = model.config;
      const parameters = model.parameterCount().total;
      model.setOptimizer({ name: "adafactor", lr: 1e-3, totalSteps: 1000, schedule: "constant" });
      for (const s of shapes.filter((x) => x.model === name)) {
        const batch = makeBatch(randomRows(s.batch, s.source, cfg.vocab_size, 1, true), randomRows(s.batch, s.target, cfg.vocab_size, 2, true));
        await model.trainSteps([batch]); // warm-up (allocator, first-touch)
        const n = quick ? 1 : name === "small" && s.batch * s.source >= 2048 ? 3 : 5;
        const r = await model.trainSteps(Array(n).fill(batch));
        const stepSeconds = r.seconds / n;
        const flops = trainStepFlops(cfg, s.batch, s.source, s.target);
        const res: StepResult = {
          ...s,
          parameters,
          stepSeconds,
          tokensPerSecond: (s.batch * (s.source + s.target)) / stepSeconds,
          gflopPerStep: flops / 1e9,
          modelGflops: flops / stepSeconds / 1e9,
          fractionOfMatmul: flops / stepSeconds / 1e9 / matmul.gflops,
        };
        steps.push(res);
        log(
          `train ${name} (${(parameters / 1e6).toFixed(1)}M) ${s.batch}x${s.source}->${s.target}: ${(stepSeconds * 1e3).toFixed(0)} ms/step, ` +
            `${res.tokensPerSecond.toFixed(0)} tok/s, ${res.modelGflops.toFixed(1)} model GFLOP/s = ${(res.fractionOfMatmul * 100).toFixed(1)}% of matmul`,
        );
      }
      // Generation: greedy with and without the KV cache (identical outputs; tokens = decoder positions run).
      const gb = name === "small" ? 4 : 8;
      const genBatch = makeBatch(randomRows(gb, 64, cfg.vocab_size, 3, true));
      const maxNew = quick ? 8 : 32;
      const time = async (useCache: boolean) => {
        const t0 = performance.now();
        const out = await model.generate(genBatch, { maxNewTokens: maxNew, useCache });
        const sec = (performance.now() - t0) / 1e3;
        const positions = Math.max(...out.map((r) => Math.min(maxNew, r.length + 1)));
        return { out, sec, tokens: positions * gb };
      };
      await time(true);
      const c = await time(true);
      const u = await time(false);
      if (JSON.stringify(c.out) !== JSON.stringify(u.out)) throw new Error("t5-step: cached and uncached generation differ");
      const g: GenResult = {
        model: name,
        batch: gb,
        source: 64,
        newTokens: c.tokens / gb,
        cachedTokensPerSecond: c.tokens / c.sec,
        uncachedTokensPerSecond: u.tokens / u.sec,
        speedup: u.sec / c.sec,
      };
      gens.push(g);
      log(
        `generate ${name} ${gb}x64, ${g.newTokens} steps: cache ${g.cachedTokensPerSecond.toFixed(0)} tok/s, ` +
          `no cache ${g.uncachedTokensPerSecond.toFixed(0)} tok/s (cache ${g.speedup.toFixed(2)}x)`,
      );
    } finally {
      model.dispose();
    }
  }
  if (json) process.stdout.write(JSON.stringify({ matmulGflops: matmul.gflops, threads: addon.getThreads(), train: steps, generate: gens }, null, 2) + "\n");
}
