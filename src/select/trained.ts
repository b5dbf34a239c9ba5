// The `trained` embedder: a small sentence encoder trained by instill itself with InfoNCE (in-batch negatives,
// temperature) on a pool's instructions, aligning it to the meta-dataset's own instruction style as INSTA's
// aligned variant does. Positives are different views of one task (each of its definitions, a definition with a
// positive example); negatives are the other tasks of the batch. The model (native/core/select/embed.h) is
// either word-level ("words": a vocabulary built from the pool, stored in vocab.json; token + position embeddings,
// `layers` transformer layers (default 0: a mean-pooled embedding bag), LayerNorm, a linear projection) or the
// encoder of a T5 checkpoint given with --init ("t5": the checkpoint's tokenizer is copied along).
//
// Folder: embedder.json (config, written natively), embedder.safetensors (words) or config.json +
// model.safetensors + tokenizer files (t5), vocab.json (words), training.json (what it was trained on).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadAddon } from "../native/binding.js";
import type { NativeSentenceEncoder, ProgressEvent } from "../native/types.js";
import { installTokenizer, loadTokenizer } from "../model/tokenizer.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { SniExample } from "../data/types.js";
import type { Embedder } from "./embedder.js";
import { embedMatrix, normalizeRows } from "./embedder.js";
import { embedInBatches, hashFiles, parseEmbedderArg, truncate } from "./encoder.js";

export const PAD = "<pad>";
export const UNK = "<unk>";

/** Words of a text for the word-level encoder: lowercase runs of letters and digits. */
export function words(text: string): string[] {
  return text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? [];
}

/** A word vocabulary: id 0 = <pad>, 1 = <unk>, then words by frequency (ties alphabetically). */
export class WordVocab {
  readonly index: Map<string, number>;
  constructor(readonly tokens: string[]) {
    if (tokens[0] !== PAD || tokens[1] !== UNK) throw new Error(`word vocabulary: ids 0 and 1 must be ${PAD} and ${UNK}`);
    this.index = new Map(tokens.map((t, i) => [t, i]));
  }
  static build(texts: string[], maxSize = 30000, minCount = 1): WordVocab {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of words(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const kept = [...counts.entries()]
      .filter(([, c]) => c >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, Math.max(0, maxSize - 2))
      .map(([w]) => w);
    return new WordVocab([PAD, UNK, ...kept]);
  }
  get size(): number {
    return this.tokens.length;
  }
  encode(text: string): number[] {
    return words(text).map((w) => this.index.get(w) ?? 1);
  }
}

/** A task as the trainer sees it: its definitions (several wordings where the source has them) and examples. */
export interface ViewSource {
  name: string;
  definitions: string[];
  positiveExamples?: SniExample[] | { input: string; output: string }[];
  categories?: string[];
}

/**
 * How positive examples become views: "with-definition" (definition i followed by example i, the default),
 * "alone" (the example by itself, so the encoder must map example and definition words into one space) or
 * "both".
 */
export type ExampleViews = "with-definition" | "alone" | "both";

/**
 * The views of a task: each definition, and up to `withExamples` definitions followed by a positive example
 * (definition i with example i, cycling), in Tk-Instruct's wording.
 */
export function taskViews(t: ViewSource, withExamples = 2, mode: ExampleViews = "with-definition", nameView = false): string[] {
  const defs = t.definitions.map((d) => d.trim()).filter(Boolean);
  const views = [...defs];
  if (nameView && defs.length) {
    const words = taskNameWords(t.name);
    if (words) views.push(words);
  }
  const ex = t.positiveExamples ?? [];
  for (let i = 0; i < Math.min(withExamples, ex.length) && defs.length; i++) {
    if (mode !== "alone") views.push(`${defs[i % defs.length]} Positive Example - Input: ${ex[i].input} Output: ${ex[i].output}`);
    if (mode !== "with-definition") views.push(`Input: ${ex[i].input} Output: ${ex[i].output}`);
  }
  return [...new Set(views)];
}

/** The words of a task name without its number: task001_quoref_question_generation -> "quoref question generation". */
export function taskNameWords(name: string): string {
  return name.replace(/^task\d+_?/, "").split(/[_\W]+/).filter(Boolean).join(" ");
}

export interface TrainEmbedderOptions {
  tasks: ViewSource[];
  out: string;
  /** A T5 checkpoint to initialize from (its encoder, pooled; its tokenizer). Default: a fresh word-level model. */
  init?: string;
  steps?: number;
  batch?: number;
  lr?: number;
  weightDecay?: number;
  seed?: number;
  /** InfoNCE temperature (default 0.2). */
  temperature?: number;
  pool?: "mean" | "firstlast";
  /** words: model width, transformer layers, heads, feed-forward width, positions. */
  dim?: number;
  layers?: number;
  heads?: number;
  ff?: number;
  maxLength?: number;
  /** Views with a positive example per task (default 2). */
  examplesPerTask?: number;
  /**
   * How examples become views (default "both"; with temperature 0.2, the measured best on the NIV2 training
   * split: kind@5 0.447 vs 0.409 for "with-definition" at 0.05).
   */
  exampleViews?: ExampleViews;
  /**
   * Add the task name's words as a view (weak supervision from the meta-dataset's names: dataset and task
   * type). Names are never read at selection time; measure it cross-fitted (select-embedder eval --recipe
   * name-view=1), since a name shares its dataset word with its siblings.
   */
  nameView?: boolean;
  onProgress?: (e: ProgressEvent) => void;
}

export interface TrainEmbedderResult {
  dir: string;
  kind: "words" | "t5";
  tasks: number;
  views: number;
  vocabSize: number;
  steps: number;
  firstLoss: number | null;
  lastLoss: number | null;
  seconds: number;
}

function tokenizerFor(kind: "words" | "t5", dir: string, vocab?: WordVocab): { encode: (t: string) => number[]; padId: number; eosId?: number } {
  if (kind === "words") return { encode: (t) => vocab!.encode(t), padId: 0 };
  const tok: Tokenizer = loadTokenizer(dir);
  return { encode: (t) => tok.encode(t), padId: tok.padId, eosId: tok.eosId };
}

/** Trains (or, with steps 0, just initializes) a sentence encoder and writes it to `out`. */
export async function trainSentenceEncoder(o: TrainEmbedderOptions): Promise<TrainEmbedderResult> {
  const kind: "words" | "t5" = o.init ? "t5" : "words";
  const steps = o.steps ?? 300;
  const maxLength = o.maxLength ?? (kind === "words" ? 128 : 256);
  const groups: number[] = [];
  const texts: string[] = [];
  o.tasks.forEach((t, g) => {
    for (const v of taskViews(t, o.examplesPerTask ?? 2, o.exampleViews ?? "both", o.nameView ?? false)) {
      texts.push(v);
      groups.push(g);
    }
  });
  if (!texts.length) throw new Error("select-embedder train: the pool has no instruction text");
  mkdirSync(o.out, { recursive: true });
  let vocab: WordVocab | undefined;
  if (kind === "words") {
    vocab = WordVocab.build(texts);
    writeFileSync(join(o.out, "vocab.json"), JSON.stringify({ type: "words", tokens: vocab.tokens }) + "\n");
  } else {
    installTokenizer(resolve(o.init!), o.out);
  }
  const tok = tokenizerFor(kind, o.out, vocab);
  const cfg = {
    kind,
    vocab_size: vocab?.size ?? 0,
    dim: o.dim ?? 128,
    layers: o.layers ?? 0,
    heads: o.heads ?? 4,
    ff: o.ff ?? 256,
    max_len: maxLength,
    pool: o.pool ?? "mean",
    temperature: o.temperature ?? 0.2,
  };
  const native: NativeSentenceEncoder = new (loadAddon().SentenceEncoder)();
  try {
    await native.init(JSON.stringify(cfg), { seed: o.seed ?? 0, init: o.init ? resolve(o.init) : undefined });
    const seqs = texts.map((t) => {
      const ids = truncate(tok.encode(t), maxLength, tok.eosId);
      return ids.length ? ids : [kind === "words" ? 1 : tok.padId];
    });
    const S = Math.max(...seqs.map((s) => s.length));
    const ids = new Int32Array(seqs.length * S).fill(tok.padId);
    const mask = new Int32Array(seqs.length * S);
    seqs.forEach((s, r) => {
      ids.set(s, r * S);
      mask.fill(1, r * S, r * S + s.length);
    });
    const shape = [seqs.length, S];
    let result = { losses: [] as number[], steps: 0, seconds: 0, cancelled: false };
    if (steps > 0) {
      result = await native.train(
        { ids: { data: ids, shape, dtype: "int32" }, mask: { data: mask, shape, dtype: "int32" }, groups: { data: Int32Array.from(groups), shape: [groups.length], dtype: "int32" } },
        { steps, batch: o.batch ?? 32, lr: o.lr ?? (kind === "words" ? 3e-3 : 1e-4), weightDecay: o.weightDecay ?? 0.01, seed: o.seed ?? 0, onProgress: o.onProgress },
      );
    }
    await native.save(o.out);
    const avg = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);
    const res: TrainEmbedderResult = {
      dir: o.out,
      kind,
      tasks: o.tasks.length,
      views: texts.length,
      vocabSize: kind === "words" ? vocab!.size : JSON.parse(native.config()).vocab_size,
      steps: result.steps,
      firstLoss: avg(result.losses.slice(0, 10)),
      lastLoss: avg(result.losses.slice(-10)),
      seconds: result.seconds,
    };
    writeFileSync(
      join(o.out, "training.json"),
      JSON.stringify({ ...res, dir: undefined, init: o.init ?? null, seed: o.seed ?? 0, batch: o.batch ?? 32, losses: result.losses.map((l) => Number(l.toFixed(5))) }, null, 1) + "\n",
    );
    return res;
  } finally {
    native.dispose();
  }
}

export class TrainedEmbedder implements Embedder {
  readonly name: string;
  #native: NativeSentenceEncoder;
  #key: string | undefined;

  private constructor(
    native: NativeSentenceEncoder,
    readonly dir: string,
    readonly kind: "words" | "t5",
    private readonly tok: { encode: (t: string) => number[]; padId: number; eosId?: number },
    readonly maxLength: number,
    readonly dim: number,
  ) {
    this.#native = native;
    this.name = `trained:${dir}`;
  }

  static async load(dir: string): Promise<TrainedEmbedder> {
    const cfgPath = join(dir, "embedder.json");
    if (!existsSync(cfgPath)) throw new Error(`--embedder trained: ${dir}: not a trained embedder folder (no embedder.json; create one with instill select-embedder train)`);
    const native = new (loadAddon().SentenceEncoder)();
    await native.load(dir);
    const cfg = JSON.parse(native.config()) as { kind: "words" | "t5"; max_len: number; dim: number };
    let tok: { encode: (t: string) => number[]; padId: number; eosId?: number };
    if (cfg.kind === "words") {
      const vp = join(dir, "vocab.json");
      if (!existsSync(vp)) throw new Error(`${vp}: missing (the word vocabulary of the embedder)`);
      const v = JSON.parse(readFileSync(vp, "utf8")) as { type?: string; tokens?: unknown };
      if (v.type !== "words" || !Array.isArray(v.tokens) || !v.tokens.every((t) => typeof t === "string"))
        throw new Error(`${vp}: expected {"type": "words", "tokens": [string, ...]}`);
      tok = tokenizerFor("words", dir, new WordVocab(v.tokens as string[]));
    } else {
      tok = tokenizerFor("t5", dir);
    }
    return new TrainedEmbedder(native, dir, cfg.kind, tok, cfg.kind === "words" ? cfg.max_len : 512, cfg.dim);
  }

  cacheKey(): string {
    if (this.#key === undefined) {
      const h = createHash("sha256");
      h.update(`trained-v1 maxlen=${this.maxLength}\n`);
      const files = ["embedder.json", "embedder.safetensors", "vocab.json", "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "instill_tokenizer.json"];
      this.#key = `trained:${hashFiles(this.dir, files, h)}`;
    }
    return this.#key;
  }

  async embed(texts: string[]): Promise<{ data: Float32Array; dim: number }> {
    if (!texts.length) return { data: new Float32Array(0), dim: this.dim };
    const seqs = texts.map((t) => {
      const ids = truncate(this.tok.encode(t), this.maxLength, this.tok.eosId);
      return ids.length ? ids : [this.kind === "words" ? 1 : this.tok.padId];
    });
    return embedInBatches(seqs, this.tok.padId, 64, (ids, mask, shape) =>
      this.#native.embed({ data: ids, shape, dtype: "int32" }, { data: mask, shape, dtype: "int32" }),
    );
  }

  dispose(): void {
    this.#native.dispose();
  }
}

/** The registry's factory: trained:<dir>. */
export async function createTrainedEmbedder(arg: string | undefined): Promise<TrainedEmbedder> {
  const { dir } = parseEmbedderArg(arg, "trained", []);
  return TrainedEmbedder.load(resolve(dir));
}

export interface RetrievalResult {
  /** Top-1 accuracy: the held-out wording retrieves its own task. */
  accuracy: number;
  queries: number;
  candidates: number;
  chance: number;
}

/**
 * Held-out wording retrieval: each task with at least `minDefinitions` definitions is queried with its LAST
 * definition against the FIRST definition of every task (the pool's instruction texts); a hit is the own task
 * ranking first by cosine. The embedder is fitted on the candidates when it has fit().
 */
export async function wordingRetrieval(tasks: ViewSource[], embedder: Embedder, minDefinitions = 3): Promise<RetrievalResult> {
  const cands = tasks.map((t) => t.definitions[0].trim());
  const qi = tasks.map((t, i) => (t.definitions.length >= minDefinitions ? i : -1)).filter((i) => i >= 0);
  if (!qi.length) throw new Error(`wording retrieval: no task has ${minDefinitions}+ definitions`);
  if (embedder.fit) await embedder.fit(cands);
  const C = normalizeRows(await embedMatrix(embedder, cands));
  const Q = normalizeRows(await embedMatrix(embedder, qi.map((i) => tasks[i].definitions[tasks[i].definitions.length - 1].trim())));
  let hits = 0;
  qi.forEach((ti, r) => {
    let best = -Infinity;
    let arg = -1;
    for (let c = 0; c < C.rows; c++) {
      let s = 0;
      for (let j = 0; j < C.dim; j++) s += Q.data[r * Q.dim + j] * C.data[c * C.dim + j];
      if (s > best) {
        best = s;
        arg = c;
      }
    }
    if (arg === ti) hits++;
  });
  return { accuracy: hits / qi.length, queries: qi.length, candidates: C.rows, chance: 1 / C.rows };
}

/** Drops the last definition of every task that has at least `minDefinitions` (the held-out wording). */
export function holdOutLastDefinition(tasks: ViewSource[], minDefinitions = 3): ViewSource[] {
  return tasks.map((t) => (t.definitions.length >= minDefinitions ? { ...t, definitions: t.definitions.slice(0, -1) } : t));
}
