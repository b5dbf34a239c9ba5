// The official Super-NaturalInstructions evaluation (allenai/natural-instructions eval/automatic/evaluation.py,
// also Tk-Instruct's compute_metrics.py): exact match after SQuAD-style normalization without article removal,
// ROUGE-L (and ROUGE-1) F-measure from rouge_score with the stemmer, each the max over references, averaged,
// times 100, rounded to 4 decimals; also per task and per category.
import type { ScoredItem } from "../data/types.js";
import { rougeLTokens, rougeNTokens, rougeTokenize } from "./rouge.js";

/** Python's string.punctuation. */
export const PY_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const PUNCT_SET = new Set(PY_PUNCTUATION);

/** The characters Python's str.split() / str.strip() treat as whitespace (str.isspace). */
const PY_WS = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_WS_RUN = new RegExp(`[${PY_WS}]+`, "g");
const PY_WS_EDGES = new RegExp(`^[${PY_WS}]+|[${PY_WS}]+$`, "g");

/** Python's str.strip() with no arguments. */
export function pyStrip(s: string): string {
  return s.replace(PY_WS_EDGES, "");
}

/** Python's " ".join(s.split()). */
export function pyCollapseWhitespace(s: string): string {
  return pyStrip(s).split(PY_WS_RUN).filter((t) => t.length > 0).join(" ");
}

/** SQuAD normalization without article removal: lowercase, drop ASCII punctuation, collapse whitespace. */
export function normalizeAnswer(s: string): string {
  let out = "";
  for (const ch of s.toLowerCase()) if (!PUNCT_SET.has(ch)) out += ch;
  return pyCollapseWhitespace(out);
}

/** 1 if the normalized prediction equals the normalized reference, else 0. */
export function exactMatch(prediction: string, reference: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(reference) ? 1 : 0;
}

/** Python's round(x, 4): correctly rounded, ties to even on the exact binary value. */
export function pyRound4(x: number): number {
  if (!Number.isFinite(x)) return x;
  const neg = x < 0;
  const a = Math.abs(x);
  if (a >= 1e15) return x;
  // toFixed(100) is exact for any double >= 2^-48 (it prints the exact binary value); smaller values round to 0.
  const s = a.toFixed(100);
  const dot = s.indexOf(".");
  const intPart = s.slice(0, dot);
  const frac = s.slice(dot + 1);
  const keep = frac.slice(0, 4);
  const rest = frac.slice(4);
  let digits = BigInt(intPart + keep);
  const first = rest.charCodeAt(0) - 48;
  const tail = rest.slice(1).replace(/0+$/, "");
  if (first > 5 || (first === 5 && tail.length > 0) || (first === 5 && tail.length === 0 && digits % 2n === 1n)) digits += 1n;
  const r = Number(digits) / 1e4;
  return neg ? -r : r;
}

export interface ItemScores {
  exact_match: number;
  rouge1: number;
  rougeL: number;
}

/** Max over references of exact match, ROUGE-1 and ROUGE-L for one prediction (each in 0..1). */
export function scorePrediction(prediction: string, references: string[]): ItemScores {
  if (references.length === 0) throw new Error("scorePrediction: at least one reference is required");
  const predTokens = rougeTokenize(prediction);
  const normPred = normalizeAnswer(prediction);
  let em = 0;
  let r1 = 0;
  let rl = 0;
  for (const ref of references) {
    const refTokens = rougeTokenize(ref);
    em = Math.max(em, normalizeAnswer(ref) === normPred ? 1 : 0);
    r1 = Math.max(r1, rougeNTokens(refTokens, predTokens, 1).fmeasure);
    rl = Math.max(rl, rougeLTokens(refTokens, predTokens).fmeasure);
  }
  return { exact_match: em, rouge1: r1, rougeL: rl };
}

/** The official result object: overall, then per task (`<metric>_for_<task_id>`), then per category. */
export type SniResults = Record<string, number>;

function aggregate(scores: ItemScores[]): ItemScores {
  let em = 0;
  let r1 = 0;
  let rl = 0;
  // Summed in order, as the official script does, then x100 / n and rounded.
  for (const s of scores) {
    em += s.exact_match;
    r1 += s.rouge1;
    rl += s.rougeL;
  }
  const n = scores.length;
  return {
    exact_match: pyRound4((100.0 * em) / n),
    rouge1: pyRound4((100.0 * r1) / n),
    rougeL: pyRound4((100.0 * rl) / n),
  };
}

/** The official script's category key: "_".join(category.lower().split()). */
export function categoryKey(category: string): string {
  return pyCollapseWhitespace(category.toLowerCase()).replace(/ /g, "_");
}

export interface ScoreOptions {
  /** Also compute the per-item scores (returned as `items`). */
  keepItems?: boolean;
}

export interface ScoreReport {
  results: SniResults;
  items?: (ItemScores & { id: string })[];
}

/**
 * Scores items as the official evaluation does. Keys: exact_match, rouge1, rougeL; exact_match_for_<task>,
 * rouge1_for_<task>, rougeL_for_<task> when items carry taskId; the same for categories (normalized with
 * categoryKey) when they carry taskCategory.
 */
export function scoreItems(items: ScoredItem[]): SniResults {
  return scoreItemsDetailed(items).results;
}

export function scoreItemsDetailed(items: ScoredItem[], opts: ScoreOptions = {}): ScoreReport {
  if (items.length === 0) throw new Error("scoreItems: no items to score");
  const scores = items.map((it, i) => {
    if (!Array.isArray(it.references) || it.references.length === 0)
      throw new Error(`scoreItems: item ${i} (id ${it.id}) has no references`);
    return scorePrediction(it.prediction, it.references);
  });
  const results: SniResults = { ...aggregate(scores) };
  const grouped = (key: (it: ScoredItem) => string | undefined) => {
    const groups = new Map<string, ItemScores[]>();
    items.forEach((it, i) => {
      const k = key(it);
      if (k === undefined) return;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = []));
      g.push(scores[i]);
    });
    for (const [g, s] of groups) {
      const a = aggregate(s);
      results[`exact_match_for_${g}`] = a.exact_match;
      results[`rouge1_for_${g}`] = a.rouge1;
      results[`rougeL_for_${g}`] = a.rougeL;
    }
  };
  grouped((it) => it.taskId);
  grouped((it) => (it.taskCategory === undefined ? undefined : categoryKey(it.taskCategory)));
  const report: ScoreReport = { results };
  if (opts.keepItems) report.items = scores.map((s, i) => ({ id: items[i].id, ...s }));
  return report;
}
