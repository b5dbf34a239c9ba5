#!/usr/bin/env node
// The long soak (issue 18, README "Reliability"): one process trains, evaluates and generates on a tiny T5 for
// --minutes (default 30), sampling its RSS and open file descriptors every --sample seconds. Each cycle:
// trainSteps over the embedded suite's training batches (AdamW, dropout on), the official-metrics evaluation of
// two unseen tasks (evaluateTasks: tokenization, greedy generation, ROUGE-L), a beam-search generate, and every
// 5th cycle a checkpoint (save + saveTrainingState) that is loaded back into a second handle and disposed.
// After the warm-up (the first --warmup fraction of the samples, default 0.2) RSS and fds must be flat:
// RSS at most 5% (and 16 MiB) above its value at the end of the warm-up, fds exactly as many. Prints one JSON line
// per sample and a summary line; exits 1 when not flat. Needs `npm run build:ts` (dist/) and the addon.
// Usage: node scripts/soak-long.mjs [--minutes 30] [--sample 10] [--warmup 0.2] [--out DIR]
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => join(repo, "dist", "src", p);
const { T5Model, makeBatch } = await import(dist("model/model.js"));
const { loadTokenizer } = await import(dist("model/tokenizer.js"));
const { loadSplitTasks } = await import(dist("data/index.js"));
const { buildExamples, tokenizeExamples, collate } = await import(dist("train/batches.js"));
const { evaluateTasks } = await import(dist("eval/evaluate.js"));
const { DEFAULT_ENCODING } = await import(dist("data/encode.js"));

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const minutes = Number(arg("minutes", 30));
const sampleMs = Number(arg("sample", 10)) * 1000;
const warmup = Number(arg("warmup", 0.2));
const root = arg("out") ?? mkdtempSync(join(tmpdir(), "instill-soak-"));
const cli = join(repo, "bin", "instill.js");
const env = { ...process.env, INSTILL_THREADS: process.env.INSTILL_THREADS ?? "1" };
const run = (args) => {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env });
  if (r.status !== 0) throw new Error(`instill ${args.join(" ")}: ${r.stderr}`);
};

const data = join(root, "data");
const modelDir = join(root, "model");
run(["data", "synth", "--out", data, "--seed", "5"]);
const cfg = { d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8, relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: "gated-gelu", tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: 0.1 };
writeFileSync(join(root, "config.json"), JSON.stringify(cfg));
run(["model", "init", "--config", join(root, "config.json"), "--tokenizer", data, "--out", modelDir, "--seed", "1"]);

const tok = loadTokenizer(modelDir);
const split = loadSplitTasks({ dataDir: data, maxTrainInstances: 20, maxEvalInstances: 8, seed: 1 });
const encoding = { ...DEFAULT_ENCODING, maxSourceLength: 96 };
const examples = tokenizeExamples(buildExamples(split.train, encoding, (t) => tok.countTokens(t), { seed: 1, training: true }), tok, 96, 16);
const batches = [];
for (let i = 0; i + 8 <= examples.length && batches.length < 40; i += 8) batches.push(collate(examples.slice(i, i + 8), tok.padId));
const evalTasks = split.test.slice(0, 2);
const genBatch = makeBatch(examples.slice(0, 8).map((e) => e.src));

const fds = () => readdirSync("/proc/self/fd").length;
const model = await T5Model.load(modelDir, { seed: 1 });
model.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 1e9, schedule: "constant" });
const samples = [];
const t0 = Date.now();
let cycles = 0, steps = 0, generated = 0, evaluated = 0, checkpoints = 0;
let nextSample = t0;
const sample = () => {
  const m = process.memoryUsage();
  const s = { t: Math.round((Date.now() - t0) / 1000), cycles, steps, rssMb: +(m.rss / 2 ** 20).toFixed(1), heapMb: +(m.heapUsed / 2 ** 20).toFixed(1), externalMb: +(m.external / 2 ** 20).toFixed(1), fds: fds() };
  samples.push(s);
  console.log(JSON.stringify(s));
};
while (Date.now() - t0 < minutes * 60_000) {
  const r = await model.trainSteps(batches.slice(0, 10).map((b, i) => batches[(cycles * 10 + i) % batches.length]), { onProgress: () => {} });
  steps += r.losses.length;
  const ev = await evaluateTasks(model, tok, evalTasks, { encoding, maxTargetLength: 16, batchSize: 8, maxNewTokens: 12, numBeams: 1, seed: 1, quiet: true });
  evaluated += ev.predictions.length;
  const g = await model.generate(genBatch, { maxNewTokens: 12, numBeams: 2 });
  generated += g.length;
  if (cycles % 5 === 0) {
    const ck = join(root, "ck");
    await model.save(ck);
    await model.saveTrainingState(join(ck, "training_state.safetensors"));
    const back = await T5Model.load(ck);
    back.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 1e9, schedule: "constant" });
    await back.loadTrainingState(join(ck, "training_state.safetensors"));
    back.dispose();
    checkpoints++;
  }
  cycles++;
  if (Date.now() >= nextSample) {
    sample();
    nextSample += sampleMs;
  }
}
sample();
model.dispose();

const w = Math.max(1, Math.round(warmup * samples.length));
const base = samples[w - 1];
const after = samples.slice(w);
const maxRss = Math.max(...after.map((s) => s.rssMb));
const n = after.length;
const mt = after.reduce((a, s) => a + s.t, 0) / n, mr = after.reduce((a, s) => a + s.rssMb, 0) / n;
const slope = after.reduce((a, s) => a + (s.t - mt) * (s.rssMb - mr), 0) / Math.max(1e-9, after.reduce((a, s) => a + (s.t - mt) ** 2, 0));
const fdSet = [...new Set(after.map((s) => s.fds))];
const summary = {
  minutes: +((Date.now() - t0) / 60_000).toFixed(1),
  cycles, trainSteps: steps, evaluatedExamples: evaluated, generatedSequences: generated, checkpoints,
  samples: samples.length, warmupSamples: w,
  rssStartMb: samples[0].rssMb, rssAfterWarmupMb: base.rssMb, rssMaxAfterWarmupMb: maxRss, rssEndMb: samples.at(-1).rssMb,
  rssDriftPercent: +((100 * (maxRss - base.rssMb)) / base.rssMb).toFixed(2),
  rssSlopeMbPerHour: +(slope * 3600).toFixed(2),
  fdsAfterWarmup: base.fds, fdsSeenAfterWarmup: fdSet,
};
summary.flat = maxRss <= base.rssMb * 1.05 + 0 && maxRss - base.rssMb <= 16 && fdSet.every((f) => f === base.fds);
console.log(JSON.stringify({ summary }));
if (!arg("out")) rmSync(root, { recursive: true, force: true });
process.exit(summary.flat ? 0 : 1);
