// The `lexical` embedder: TF-IDF over instruction text, no weights needed.
// Tokens: lowercase, split on non-alphanumerics, a small English stopword list dropped, Porter stemming
// (NLTK mode, src/metrics/porter.ts). Weights: sublinear tf (1 + ln tf) times smoothed idf
// (ln((1 + n) / (1 + df)) + 1, as scikit-learn's TfidfVectorizer), dense L2-normalized vectors over the
// vocabulary of the corpus it was fitted on (the pool); words outside that vocabulary are ignored.
// Variants (measured in the README): `tf: "raw"` (plain counts), `tf: "bm25"` (Okapi BM25 saturation
// tf·(k1+1) / (tf + k1·(1 − b + b·len/avglen)), the average length taken from the fitted corpus), and
// `plain` (= raw tf, no stemming, no stopwords, no bigrams: textbook TF-IDF).
// Terms are the tokens and, by default, the bigrams of adjacent tokens after stopword removal
// ("generat_question" beside "generat" and "question"): an instruction's task is often a phrase ("generate a
// question" vs "answer the question"). Measured against unigrams in the README (issue 16): +0.019 kind@5
// on the whole training split, +0.025 cross-fitted; `nobigram` turns them off.
import { createHash } from "node:crypto";
import { porterStem } from "../metrics/porter.js";
import type { Embedder } from "./embedder.js";

export const STOPWORDS: ReadonlySet<string> = new Set(
  ("a about above after again against all am an and any are as at be because been before being below between both but by " +
    "can could did do does doing down during each few for from further had has have having he her here hers herself him " +
    "himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other " +
    "our ours ourselves out over own same she should so some such than that the their theirs them themselves then there " +
    "these they this those through to too under until up very was we were what when where which while who whom why will " +
    "with would you your yours yourself yourselves s t")
    .split(" "),
);

export interface LexicalOptions {
  /** Porter-stem tokens (default true). */
  stem?: boolean;
  /** Keep terms seen in at least this many corpus documents (default 1). */
  minDf?: number;
  /** Term-frequency weighting (default "sublinear": 1 + ln tf). */
  tf?: "sublinear" | "raw" | "bm25";
  /** Drop the stopword list (default true). */
  stopwords?: boolean;
  /** BM25 parameters (defaults 1.2 and 0.75). */
  k1?: number;
  b?: number;
  /** Add the bigrams of adjacent tokens as terms (default true). */
  bigrams?: boolean;
}

export function tokenize(text: string, stem = true, stopwords = true): string[] {
  const out: string[] = [];
  for (const raw of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (!raw || (stopwords && STOPWORDS.has(raw))) continue;
    out.push(stem ? porterStem(raw) : raw);
  }
  return out;
}

/** The terms of a text: its tokens, then (with `bigrams`) each pair of adjacent tokens joined by "_". */
export function termsOf(text: string, stem = true, stopwords = true, bigrams = true): string[] {
  const t = tokenize(text, stem, stopwords);
  if (!bigrams) return t;
  const out = t.slice();
  for (let i = 0; i + 1 < t.length; i++) out.push(`${t[i]}_${t[i + 1]}`);
  return out;
}

export class LexicalEmbedder implements Embedder {
  readonly name: string;
  private readonly stem: boolean;
  private readonly minDf: number;
  private readonly tf: "sublinear" | "raw" | "bm25";
  private readonly stopwords: boolean;
  private readonly k1: number;
  private readonly b: number;
  private readonly bigrams: boolean;
  private avgLen = 1;
  private vocab = new Map<string, number>();
  private idf = new Float64Array(0);
  private fingerprint: string | undefined;

  constructor(opts: LexicalOptions = {}) {
    this.stem = opts.stem ?? true;
    this.minDf = opts.minDf ?? 1;
    this.tf = opts.tf ?? "sublinear";
    this.stopwords = opts.stopwords ?? true;
    this.k1 = opts.k1 ?? 1.2;
    this.b = opts.b ?? 0.75;
    this.bigrams = opts.bigrams ?? true;
    if (!Number.isInteger(this.minDf) || this.minDf < 1) throw new RangeError(`minDf must be a positive integer, got ${opts.minDf}`);
    if (!["sublinear", "raw", "bm25"].includes(this.tf)) throw new RangeError(`tf must be sublinear, raw or bm25, got ${opts.tf}`);
    if (!(this.k1 > 0) || !(this.b >= 0 && this.b <= 1)) throw new RangeError(`bm25: need k1 > 0 and 0 <= b <= 1, got k1=${opts.k1} b=${opts.b}`);
    const tags = [this.tf !== "sublinear" ? this.tf : "", this.stem ? "" : "nostem", this.stopwords ? "" : "nostop", this.bigrams ? "" : "nobigram"].filter(Boolean);
    this.name = tags.length ? `lexical:${tags.join(",")}` : "lexical";
  }

  get fitted(): boolean {
    return this.fingerprint !== undefined;
  }

  get dim(): number {
    return this.vocab.size;
  }

  /** The vocabulary (sorted terms) and idf weights learned by fit(). */
  vocabulary(): { terms: string[]; idf: Float64Array } {
    return { terms: [...this.vocab.keys()], idf: this.idf.slice() };
  }

  fit(corpus: string[]): void {
    const df = new Map<string, number>();
    let total = 0;
    for (const text of corpus) {
      const toks = termsOf(text, this.stem, this.stopwords, this.bigrams);
      total += toks.length;
      for (const t of new Set(toks)) df.set(t, (df.get(t) ?? 0) + 1);
    }
    this.avgLen = corpus.length && total ? total / corpus.length : 1;
    const terms = [...df.entries()].filter(([, c]) => c >= this.minDf).map(([t]) => t).sort();
    this.vocab = new Map(terms.map((t, i) => [t, i]));
    const n = corpus.length;
    this.idf = Float64Array.from(terms, (t) => Math.log((1 + n) / (1 + (df.get(t) as number))) + 1);
    const h = createHash("sha256");
    h.update(`lexical-v1 stem=${this.stem} n=${n}\n`);
    if (this.bigrams) h.update("bigrams\n");
    if (this.tf !== "sublinear" || !this.stopwords) h.update(`tf=${this.tf} k1=${this.k1} b=${this.b} avglen=${this.avgLen} stop=${this.stopwords}\n`);
    terms.forEach((t, i) => h.update(`${t}\t${this.idf[i]}\n`));
    this.fingerprint = h.digest("hex");
  }

  cacheKey(): string | undefined {
    return this.fingerprint ? `lexical:${this.fingerprint}` : undefined;
  }

  embedSync(texts: string[]): { data: Float32Array; dim: number } {
    if (!this.fitted) throw new Error("lexical embedder: fit(corpus) must be called first (the pool's texts define the vocabulary)");
    const dim = this.vocab.size;
    const data = new Float32Array(texts.length * dim);
    const row = new Float64Array(dim);
    texts.forEach((text, r) => {
      const tf = new Map<number, number>();
      const toks = termsOf(text, this.stem, this.stopwords, this.bigrams);
      for (const t of toks) {
        const j = this.vocab.get(t);
        if (j !== undefined) tf.set(j, (tf.get(j) ?? 0) + 1);
      }
      const lenNorm = this.k1 * (1 - this.b + (this.b * toks.length) / this.avgLen);
      let norm = 0;
      for (const [j, c] of tf) {
        const t = this.tf === "sublinear" ? 1 + Math.log(c) : this.tf === "raw" ? c : (c * (this.k1 + 1)) / (c + lenNorm);
        const w = t * this.idf[j];
        row[j] = w;
        norm += w * w;
      }
      const inv = norm > 0 ? 1 / Math.sqrt(norm) : 0;
      for (const j of tf.keys()) {
        data[r * dim + j] = row[j] * inv;
        row[j] = 0;
      }
    });
    return { data, dim };
  }

  async embed(texts: string[]): Promise<{ data: Float32Array; dim: number }> {
    return this.embedSync(texts);
  }
}
