// The `lexical` embedder: TF-IDF over instruction text, no weights needed.
// Tokens: lowercase, split on non-alphanumerics, a small English stopword list dropped, Porter stemming
// (NLTK mode, src/metrics/porter.ts). Weights: sublinear tf (1 + ln tf) times smoothed idf
// (ln((1 + n) / (1 + df)) + 1, as scikit-learn's TfidfVectorizer), dense L2-normalized vectors over the
// vocabulary of the corpus it was fitted on (the pool); words outside that vocabulary are ignored.
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
}

export function tokenize(text: string, stem = true): string[] {
  const out: string[] = [];
  for (const raw of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (!raw || STOPWORDS.has(raw)) continue;
    out.push(stem ? porterStem(raw) : raw);
  }
  return out;
}

export class LexicalEmbedder implements Embedder {
  readonly name = "lexical";
  private readonly stem: boolean;
  private readonly minDf: number;
  private vocab = new Map<string, number>();
  private idf = new Float64Array(0);
  private fingerprint: string | undefined;

  constructor(opts: LexicalOptions = {}) {
    this.stem = opts.stem ?? true;
    this.minDf = opts.minDf ?? 1;
    if (!Number.isInteger(this.minDf) || this.minDf < 1) throw new RangeError(`minDf must be a positive integer, got ${opts.minDf}`);
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
    for (const text of corpus) for (const t of new Set(tokenize(text, this.stem))) df.set(t, (df.get(t) ?? 0) + 1);
    const terms = [...df.entries()].filter(([, c]) => c >= this.minDf).map(([t]) => t).sort();
    this.vocab = new Map(terms.map((t, i) => [t, i]));
    const n = corpus.length;
    this.idf = Float64Array.from(terms, (t) => Math.log((1 + n) / (1 + (df.get(t) as number))) + 1);
    const h = createHash("sha256");
    h.update(`lexical-v1 stem=${this.stem} n=${n}\n`);
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
      for (const t of tokenize(text, this.stem)) {
        const j = this.vocab.get(t);
        if (j !== undefined) tf.set(j, (tf.get(j) ?? 0) + 1);
      }
      let norm = 0;
      for (const [j, c] of tf) {
        const w = (1 + Math.log(c)) * this.idf[j];
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
