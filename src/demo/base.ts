// The demo's shared base: a short self-supervised stage on the suite's training-task texts (definitions, example
// and instance inputs and outputs), two denoising objectives of Raffel et al. 2020 mixed per sequence: T5 span
// corruption (§3.1.4: 15% of the tokens dropped in spans of mean length 3, each span replaced by one sentinel
// <extra_id_i> in the input; the target lists the sentinels each followed by its span) and, for a fraction
// `reconstruct` of the sequences, the same corrupted input with the whole original text as the target (the
// "BERT-style" objective of their Table 4, as in MASS and BART). Span corruption alone never asks the decoder to
// reproduce what the encoder reads; reconstruction does, and copying from the input is what a pretrained LM
// brings to instructions with arguments ("replace every cat with dog"): measured on the demo, a base trained with
// reconstruct = 0.5 lifts the definition row on every split (see the README's Results). It is the stand-in for a
// pretrained LM (the model learns the suite's language, not its tasks), trained once per (suite, seed, model
// config, budget, objectives) and cached by a content hash in the run folder, so every row of the demo starts from
// the same weights.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { SniTask } from "../data/types.js";
import { T5Model } from "../model/model.js";
import { installTokenizer } from "../model/tokenizer.js";
import type { T5ConfigJson } from "../model/types.js";
import { collate, type TokenizerLike } from "../train/batches.js";
import { Rng } from "../util/rng.js";
import { writeFileAtomic } from "../util/fs.js";

export interface SpanCorruptionOptions {
  noiseDensity: number;
  meanSpanLength: number;
  /** The fraction of sequences whose target is the whole original text instead of the dropped spans. */
  reconstruct: number;
}
export const SPAN_CORRUPTION: SpanCorruptionOptions = { noiseDensity: 0.15, meanSpanLength: 3, reconstruct: 0.5 };

/**
 * T5's random_spans_noise_mask, for one sequence of length n: round(n * density) noise tokens (at least 1, at most
 * n - 1) in round(noise / mean span) spans (at least 1); noise and non-noise lengths are random segmentations, the
 * sequence starts with non-noise. Returns a 0/1 mask.
 */
export function spanNoiseMask(n: number, rng: Rng, o: SpanCorruptionOptions = SPAN_CORRUPTION): number[] {
  if (n < 2) return new Array(n).fill(0);
  const numNoise = Math.min(n - 1, Math.max(1, Math.round(n * o.noiseDensity)));
  const numSpans = Math.max(1, Math.min(numNoise, n - numNoise, Math.round(numNoise / o.meanSpanLength)));
  // Random segmentation of `total` items into `parts` non-empty segments.
  const segment = (total: number, parts: number): number[] => {
    const cuts = rng.shuffle(Array.from({ length: total - 1 }, (_, i) => i + 1)).slice(0, parts - 1).sort((a, b) => a - b);
    const out: number[] = [];
    let prev = 0;
    for (const c of [...cuts, total]) {
      out.push(c - prev);
      prev = c;
    }
    return out;
  };
  const noise = segment(numNoise, numSpans);
  const keep = segment(n - numNoise, numSpans);
  const mask: number[] = [];
  for (let i = 0; i < numSpans; i++) {
    for (let k = 0; k < keep[i]; k++) mask.push(0);
    for (let k = 0; k < noise[i]; k++) mask.push(1);
  }
  return mask;
}

/** Input / target ids of one span-corrupted sequence (EOS appended to both), sentinel i = sentinels[i]. */
export function spanCorrupt(ids: number[], mask: number[], sentinels: number[], eosId: number): { src: number[]; tgt: number[] } {
  const src: number[] = [];
  const tgt: number[] = [];
  let span = -1;
  for (let i = 0; i < ids.length; i++) {
    if (mask[i] === 1) {
      if (i === 0 || mask[i - 1] === 0) {
        span++;
        if (span >= sentinels.length) throw new RangeError(`span corruption: more than ${sentinels.length} spans in one sequence (${ids.length} tokens)`);
        src.push(sentinels[span]);
        tgt.push(sentinels[span]);
      }
      tgt.push(ids[i]);
    } else src.push(ids[i]);
  }
  src.push(eosId);
  tgt.push(eosId);
  return { src, tgt };
}

/**
 * One denoising example of the base: the span-corrupted input, and as target the sentinels with their spans or,
 * with probability `o.reconstruct`, the whole original sequence (EOS appended).
 */
export function denoisingExample(ids: number[], rng: Rng, sentinels: number[], eosId: number, o: SpanCorruptionOptions = SPAN_CORRUPTION): { src: number[]; tgt: number[] } {
  const x = spanCorrupt(ids, spanNoiseMask(ids.length, rng, o), sentinels, eosId);
  return rng.next() < o.reconstruct ? { src: x.src, tgt: [...ids, eosId] } : x;
}

/** The texts of the self-supervised stage: every definition, example and instance text of the tasks, deduplicated. */
export function pretrainingTexts(tasks: SniTask[]): string[] {
  const out = new Set<string>();
  for (const t of tasks) {
    for (const d of t.definition) out.add(d);
    for (const e of [...t.positiveExamples, ...t.negativeExamples]) {
      out.add(e.input);
      out.add(e.output);
    }
    for (const x of t.instances) {
      out.add(x.input);
      for (const o of x.output) out.add(o);
    }
  }
  return [...out].filter((s) => s.trim().length > 0);
}

export interface BaseBudget {
  steps: number;
  batchSize: number;
  lr: number;
}

export interface BaseResult {
  dir: string;
  hash: string;
  cached: boolean;
  steps: number;
  losses: number[];
  seconds: number;
}

/** The cache key: everything the base's weights depend on. */
export function baseHash(parts: { texts: string[]; tokenizer: string; config: T5ConfigJson; seed: number; budget: BaseBudget; corruption?: SpanCorruptionOptions }): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ v: 2, config: parts.config, seed: parts.seed, budget: parts.budget, corruption: parts.corruption ?? SPAN_CORRUPTION }));
  h.update("\0");
  h.update(parts.tokenizer);
  for (const t of parts.texts) h.update("\0" + t);
  return h.digest("hex").slice(0, 16);
}

/**
 * Trains (or reuses) the base: init weights from `initDir`, `budget.steps` AdamW steps of span corruption on
 * `texts`; cached in `<cacheRoot>/<hash>/model` (a `done.json` marks a finished one). Batch s is a pure function of
 * (seed, s): epoch e is a seeded shuffle of the texts, and each text's noise mask is drawn from (seed, s, slot).
 */
export async function trainBase(o: {
  initDir: string;
  cacheRoot: string;
  texts: string[];
  tok: TokenizerLike;
  sentinels: number[];
  config: T5ConfigJson;
  seed: number;
  budget: BaseBudget;
  stepsPerCall?: number;
  /** The denoising objectives (default SPAN_CORRUPTION: span corruption, half the sequences reconstructed). */
  corruption?: SpanCorruptionOptions;
  onSteps?: (done: number, total: number, loss: number) => void;
}): Promise<BaseResult> {
  const tokenizerText = readFileSync(join(o.initDir, "tokenizer.json"), "utf8");
  const corruption = o.corruption ?? SPAN_CORRUPTION;
  const hash = baseHash({ texts: o.texts, tokenizer: tokenizerText, config: o.config, seed: o.seed, budget: o.budget, corruption });
  const dir = join(o.cacheRoot, hash);
  const done = join(dir, "done.json");
  if (existsSync(done)) {
    const d = JSON.parse(readFileSync(done, "utf8")) as { steps: number; losses: number[]; seconds: number };
    o.onSteps?.(o.budget.steps, o.budget.steps, d.losses[d.losses.length - 1] ?? NaN);
    return { dir: join(dir, "model"), hash, cached: true, steps: d.steps, losses: d.losses, seconds: d.seconds };
  }
  const t0 = Date.now();
  const seqs = o.texts.map((t) => o.tok.encode(t, { addEos: false }));
  const n = seqs.length;
  if (n === 0) throw new RangeError("base: no pretraining texts");
  const b = Math.min(o.budget.batchSize, n);
  const perEpoch = Math.floor(n / b);
  const orders = new Map<number, number[]>();
  const batchAt = (s: number) => {
    const epoch = Math.floor(s / perEpoch);
    if (!orders.has(epoch)) orders.set(epoch, new Rng((o.seed * 7919 + epoch) >>> 0).shuffle(Array.from({ length: n }, (_, i) => i)));
    const idx = orders.get(epoch)!.slice((s % perEpoch) * b, (s % perEpoch + 1) * b);
    const rng = new Rng((o.seed * 1000003 + s * 31 + 17) >>> 0);
    return collate(idx.map((k) => denoisingExample(seqs[k], rng, o.sentinels, o.tok.eosId, corruption)), o.tok.padId);
  };
  const model = await T5Model.load(o.initDir, { seed: o.seed });
  const losses: number[] = [];
  try {
    model.setOptimizer({ name: "adamw", lr: o.budget.lr, totalSteps: o.budget.steps, warmupSteps: Math.round(o.budget.steps * 0.05), schedule: "linear", clipNorm: 1.0 });
    const per = o.stepsPerCall ?? 25;
    for (let s = 0; s < o.budget.steps; ) {
      const k = Math.min(per, o.budget.steps - s);
      const r = await model.trainSteps(Array.from({ length: k }, (_, i) => batchAt(s + i)));
      losses.push(...r.losses);
      s += r.losses.length;
      o.onSteps?.(s, o.budget.steps, r.losses[r.losses.length - 1]);
    }
    await model.save(join(dir, "model"));
  } finally {
    model.dispose();
  }
  installTokenizer(o.initDir, join(dir, "model"));
  const seconds = (Date.now() - t0) / 1000;
  writeFileAtomic(done, JSON.stringify({ hash, steps: losses.length, losses, seconds, seed: o.seed, budget: o.budget }) + "\n");
  return { dir: join(dir, "model"), hash, cached: false, steps: losses.length, losses, seconds };
}
