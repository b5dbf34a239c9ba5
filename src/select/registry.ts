// Embedders by name (--embedder NAME[:ARG]): adding one is one entry. An unknown name is an error that lists
// what is available.
import type { Embedder } from "./embedder.js";
import { LexicalEmbedder } from "./lexical.js";
import { createEncoderEmbedder } from "./encoder.js";
import { createTrainedEmbedder } from "./trained.js";
import { HybridEmbedder } from "./hybrid.js";
import { createAlignedEmbedder } from "./aligned.js";
import type { LexicalOptions } from "./lexical.js";

/** The embedder `instill select` and `select-train` use when none is named. */
export const DEFAULT_EMBEDDER = "hybrid";

const LEXICAL_FLAGS = "nostem, nostop, nobigram, raw, bm25, plain (= raw,nostem,nostop,nobigram)";

/** lexical[:flag,flag...]: nostem, nostop, nobigram, raw, bm25, plain. */
export function lexicalOptions(arg: string | undefined, who = "--embedder lexical"): LexicalOptions {
  const o: LexicalOptions = {};
  for (const f of (arg ?? "").split(",").map((x) => x.trim()).filter(Boolean)) {
    if (f === "nostem") o.stem = false;
    else if (f === "nostop") o.stopwords = false;
    else if (f === "nobigram") o.bigrams = false;
    else if (f === "raw" || f === "bm25" || f === "sublinear") o.tf = f;
    else if (f === "plain") Object.assign(o, { tf: "raw", stem: false, stopwords: false, bigrams: false });
    else throw new RangeError(`${who}: unknown option '${f}' (expected ${LEXICAL_FLAGS})`);
  }
  return o;
}

/** hybrid[:shape=W][,explanation=W][,input=W][,tf=bm25|sublinear|raw][,nostem][,bigram][,trained=DIR][,trained-weight=W]. */
async function createHybrid(arg: string | undefined): Promise<HybridEmbedder> {
  let shape: number | undefined;
  let explanation: number | undefined;
  let input: number | undefined;
  let trained: string | undefined;
  let extraWeight: number | undefined;
  const lex: LexicalOptions = {};
  const weight = (k: string, v: string) => {
    const n = Number(v);
    if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new RangeError(`--embedder hybrid: ${k} must be a number >= 0, got '${v}'`);
    return n;
  };
  for (const part of (arg ?? "").split(",").map((x) => x.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    const v = eq < 0 ? "" : part.slice(eq + 1);
    if (k === "shape") shape = weight(k, v);
    else if (k === "explanation") explanation = weight(k, v);
    else if (k === "input") input = weight(k, v);
    else if (k === "tf" && ["bm25", "sublinear", "raw"].includes(v)) lex.tf = v as LexicalOptions["tf"];
    else if (k === "nostem" && eq < 0) lex.stem = false;
    else if (k === "bigram" && eq < 0) lex.bigrams = true;
    else if (k === "trained" && v) trained = v;
    else if (k === "trained-weight") extraWeight = weight(k, v);
    else throw new RangeError(`--embedder hybrid: unknown option '${part}' (expected shape=W, explanation=W, input=W, tf=bm25|sublinear|raw, nostem, bigram, trained=DIR, trained-weight=W)`);
  }
  const extra = trained ? await createTrainedEmbedder(trained) : undefined;
  return new HybridEmbedder({ lexical: lex, shape, explanation, input, extra, extraWeight });
}

export type EmbedderFactory = (arg: string | undefined) => Embedder | Promise<Embedder>;

export const EMBEDDERS = new Map<string, { describe: string; create: EmbedderFactory }>([
  [
    "lexical",
    {
      describe: `TF-IDF over the instruction text (stemmed, stopwords dropped, sublinear tf), fitted on the pool; no weights needed. Options lexical:${LEXICAL_FLAGS.replace(/, /g, "|")}`,
      create: (arg) => new LexicalEmbedder(lexicalOptions(arg)),
    },
  ],
  [
    "hybrid",
    {
      describe:
        "the default: BM25 over the instruction + the output shape (weight 0.15) and TF-IDF of the explanations (0.5) of the task's positive examples (input=W adds TF-IDF of their inputs), fitted on the pool; " +
        "hybrid:shape=W,explanation=W,input=W,tf=bm25|sublinear|raw,nostem,trained=DIR,trained-weight=W",
      create: createHybrid,
    },
  ],
  [
    "aligned",
    {
      describe:
        "hybrid (with input=0.35) and a learned low-rank channel aligned on the meta-dataset's task names (same source dataset or name words as positives); " +
        "trained on the pool when no folder is given: aligned[:DIR][,rank=R,weight=W,temperature=T,steps=N,lr=LR,seed=S,jaccard=J,dataset=W,shape=W,explanation=W,input=W]",
      create: createAlignedEmbedder,
    },
  ],
  [
    "encoder",
    {
      describe: "the T5 encoder of a checkpoint, pooled: encoder:<checkpoint dir>[,pool=mean|firstlast][,maxlen=N]",
      create: createEncoderEmbedder,
    },
  ],
  [
    "trained",
    {
      describe: "a sentence encoder aligned contrastively on a pool's instructions (instill select-embedder train): trained:<dir>",
      create: createTrainedEmbedder,
    },
  ],
]);

export function registerEmbedder(name: string, describe: string, create: EmbedderFactory): void {
  EMBEDDERS.set(name, { describe, create });
}

export async function createEmbedder(spec: string): Promise<Embedder> {
  const i = spec.indexOf(":");
  const name = i < 0 ? spec : spec.slice(0, i);
  const arg = i < 0 ? undefined : spec.slice(i + 1);
  const e = EMBEDDERS.get(name);
  if (!e) throw new RangeError(`--embedder: unknown embedder '${name}' (available: ${[...EMBEDDERS.keys()].join(", ")})`);
  return e.create(arg);
}
