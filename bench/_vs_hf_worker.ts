// instill's side of `npm run bench -- vs-hf`: the same protocol as ../shared/anchors/hf-t5/hf_t5_bench.py (HF's
// side), in its own process so that both run under exactly the same environment (threads, wait policy,
// allocator preload). Prints one JSON line per shape in the anchor's format, with "impl": "instill".
//
//   node dist/bench/_vs_hf_worker.js --preset tiny|small --shapes 8x64x16,... [--mode train|infer|generate]
//        [--steps 5] [--warmup 2] [--new-tokens 32] [--threads 2] [--precision float32|bf16]
//
// train: one optimizer step per trainSteps call (forward with labels, loss read back, backward, clip 1.0, AdamW
// lr 1e-3 without weight decay, constant schedule), dropout 0, as the anchor; infer: evalLoss; generate: greedy
// with the KV cache. Model: the preset with the anchor's dropout 0 and vocabulary 32128, random init (seed 0);
// inputs from the same LCG as the anchor (bench/t5-step.ts randomRows).
import { T5Model, makeBatch } from "../src/model/model.js";
import { loadAddon } from "../src/native/binding.js";

function lcgRows(rows: number, len: number, vocab: number, seed: number, eos: boolean): number[][] {
  let x = seed >>> 0;
  const out: number[][] = [];
  for (let r = 0; r < rows; r++) {
    const row: number[] = [];
    for (let j = 0; j < len; j++) {
      x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
      row.push(2 + (x % (vocab - 2)));
    }
    if (eos) row[len - 1] = 1;
    out.push(row);
  }
  return out;
}

function arg(args: string[], name: string, dflt?: string): string {
  const i = args.indexOf(name);
  if (i >= 0 && i + 1 < args.length) return args[i + 1];
  if (dflt === undefined) throw new TypeError(`_vs_hf_worker: ${name} is required`);
  return dflt;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(args: string[]): Promise<void> {
  const preset = arg(args, "--preset") as "tiny" | "small";
  const mode = arg(args, "--mode", "train");
  const steps = Number(arg(args, "--steps", "5"));
  const warmup = Number(arg(args, "--warmup", "2"));
  const newTokens = Number(arg(args, "--new-tokens", "32"));
  const threads = Number(arg(args, "--threads", "2"));
  const precision = arg(args, "--precision", "float32") as "float32" | "bf16";
  const tag = arg(args, "--tag", "");
  const addon = loadAddon();
  addon.setThreads(threads);
  const vocab = 32128;
  const base = await T5Model.init(preset, { seed: 0, vocabSize: vocab });
  const cfg = { ...base.config, dropout_rate: 0 };
  base.dispose();
  const model = await T5Model.init(cfg, { seed: 0, vocabSize: vocab });
  const params = model.parameterCount().total;
  if (mode === "train") model.setOptimizer({ name: "adamw", lr: 1e-3, weightDecay: 0, schedule: "constant", clipNorm: 1.0, totalSteps: 1e6 });
  try {
    for (const spec of arg(args, "--shapes").split(",")) {
      const [B, S, T = 0] = spec.split("x").map(Number);
      const batch =
        mode === "generate"
          ? makeBatch(lcgRows(B, S, vocab, 3, true))
          : makeBatch(lcgRows(B, S, vocab, 1, true), lcgRows(B, T, vocab, 2, true));
      let last: unknown = null;
      const once = async () => {
        if (mode === "train") last = (await model.trainSteps([batch], { precision })).losses[0];
        else if (mode === "infer") last = (await model.evalLoss([batch]))[0];
        else last = await model.generate(batch, { maxNewTokens: newTokens });
      };
      for (let i = 0; i < warmup; i++) await once();
      const ms: number[] = [];
      const r0 = process.resourceUsage();
      const w0 = performance.now();
      for (let i = 0; i < steps; i++) {
        const t0 = performance.now();
        await once();
        ms.push(performance.now() - t0);
      }
      const wall = (performance.now() - w0) / 1e3;
      const r1 = process.resourceUsage();
      const user = (r1.userCPUTime - r0.userCPUTime) / 1e6, sys = (r1.systemCPUTime - r0.systemCPUTime) / 1e6;
      const extra: Record<string, unknown> =
        mode === "generate"
          ? { generated_tokens_max_row: Math.max(...(last as number[][]).map((r) => r.length)) }
          : { last_loss: last };
      process.stdout.write(
        JSON.stringify({
          impl: "instill", tag: tag || null, mode, preset, params, batch: B, source: S,
          target: mode === "generate" ? newTokens : T, threads: addon.getThreads(), precision,
          optimizer: mode === "train" ? "adamw" : null, steps_ms: ms.map((x) => Number(x.toFixed(2))),
          median_ms: Number(median(ms).toFixed(2)), timed_wall_s: Number(wall.toFixed(3)), user_s: Number(user.toFixed(3)),
          sys_s: Number(sys.toFixed(3)), sys_share: Number((sys / Math.max(1e-9, user + sys)).toFixed(3)),
          cpu_per_wall: Number(((user + sys) / wall).toFixed(2)), cpu_allocator: addon.runtimeInfo().cpuAllocator ?? null,
          ...extra,
        }) + "\n",
      );
    }
  } finally {
    model.dispose();
  }
}

await main(process.argv.slice(2));
