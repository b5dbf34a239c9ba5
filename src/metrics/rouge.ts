// ROUGE-1 and ROUGE-L F-measure as Google's `rouge_score` computes them with use_stemmer=True
// (rouge_score/tokenize.py and rouge_scorer.py): lowercase, every run of characters outside [a-z0-9]
// becomes a space, split on whitespace, Porter-stem (NLTK mode) tokens longer than 3 characters,
// drop empty tokens; ROUGE-N counts clipped n-gram overlaps, ROUGE-L uses the longest common subsequence.
import { porterStem } from "./porter.js";

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

const stemCache = new Map<string, string>();

function stemCached(tok: string): string {
  let s = stemCache.get(tok);
  if (s === undefined) {
    s = porterStem(tok);
    if (stemCache.size > 100_000) stemCache.clear();
    stemCache.set(tok, s);
  }
  return s;
}

/** rouge_score's default tokenizer with the stemmer on (or off). */
export function rougeTokenize(text: string, stem = true): string[] {
  const cleaned = text.toLowerCase().replace(/[^a-z0-9]+/g, " ");
  const out: string[] = [];
  for (const t of cleaned.split(" ")) {
    if (t.length === 0) continue;
    out.push(stem && t.length > 3 ? stemCached(t) : t);
  }
  return out;
}

function fmeasure(p: number, r: number): number {
  return p + r > 0 ? (2 * p * r) / (p + r) : 0.0;
}

function ngramCounts(tokens: string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const key = n === 1 ? tokens[i] : tokens.slice(i, i + n).join("\u0000");
    m.set(key, (m.get(key) ?? 0) + 1);
  }
  return m;
}

/** ROUGE-N between tokenized target and prediction (rouge_scorer._score_ngrams). */
export function rougeNTokens(target: string[], prediction: string[], n: number): RougeScore {
  const t = ngramCounts(target, n);
  const p = ngramCounts(prediction, n);
  let overlap = 0;
  for (const [g, c] of t) overlap += Math.min(c, p.get(g) ?? 0);
  const tCount = Math.max(0, target.length - n + 1);
  const pCount = Math.max(0, prediction.length - n + 1);
  const precision = overlap / Math.max(pCount, 1);
  const recall = overlap / Math.max(tCount, 1);
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** Length of the longest common subsequence (O(n*m) time, O(m) memory). */
export function lcsLength(a: string[], b: string[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  const prev = new Int32Array(b.length + 1);
  const cur = new Int32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    cur[0] = 0;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1] + 1 : Math.max(prev[j], cur[j - 1]);
    }
    prev.set(cur);
  }
  return prev[b.length];
}

/** ROUGE-L between tokenized target and prediction (rouge_scorer._score_lcs). */
export function rougeLTokens(target: string[], prediction: string[]): RougeScore {
  if (target.length === 0 || prediction.length === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const l = lcsLength(target, prediction);
  const precision = l / prediction.length;
  const recall = l / target.length;
  return { precision, recall, fmeasure: fmeasure(precision, recall) };
}

/** ROUGE-1 F-measure of a prediction against one reference (rouge_score, use_stemmer=True). */
export function rouge1(prediction: string, reference: string): number {
  return rougeNTokens(rougeTokenize(reference), rougeTokenize(prediction), 1).fmeasure;
}

/** ROUGE-L F-measure of a prediction against one reference (rouge_score, use_stemmer=True). */
export function rougeL(prediction: string, reference: string): number {
  return rougeLTokens(rougeTokenize(reference), rougeTokenize(prediction)).fmeasure;
}
