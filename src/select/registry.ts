// Embedders by name (--embedder NAME[:ARG]): adding one is one entry. An unknown name is an error that lists
// what is available.
import type { Embedder } from "./embedder.js";
import { LexicalEmbedder } from "./lexical.js";
import { createEncoderEmbedder } from "./encoder.js";
import { createTrainedEmbedder } from "./trained.js";

export type EmbedderFactory = (arg: string | undefined) => Embedder | Promise<Embedder>;

export const EMBEDDERS = new Map<string, { describe: string; create: EmbedderFactory }>([
  [
    "lexical",
    {
      describe: "TF-IDF over the instruction text (stemmed, stopwords dropped), fitted on the pool; no weights needed. lexical:nostem turns stemming off",
      create: (arg) => {
        if (arg !== undefined && arg !== "nostem") throw new RangeError(`--embedder lexical: unknown option '${arg}' (expected lexical or lexical:nostem)`);
        return new LexicalEmbedder({ stem: arg !== "nostem" });
      },
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
