// The `encoder` embedder: the T5 encoder of any instill checkpoint, pooled (mean over tokens, or the average of
// the first and last token as TAGI's code pools instruction states). `--embedder encoder:<dir>[,pool=firstlast]`.
// The checkpoint is loaded once natively (EncoderEmbedder in native/core/select/embed.h); texts are tokenized
// with the checkpoint's tokenizer, sorted by length and embedded in padded batches on a worker thread.
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadAddon } from "../native/binding.js";
import type { NativeEncoderEmbedder } from "../native/types.js";
import { loadTokenizer } from "../model/tokenizer.js";
import type { Tokenizer } from "../model/tokenizer.js";
import type { Embedder } from "./embedder.js";

export type PoolKind = "mean" | "firstlast";

export interface EncoderEmbedderOptions {
  pool?: PoolKind;
  /** Tokens per text (longer texts are truncated, EOS kept). Default 512. */
  maxLength?: number;
  /** Texts per native call. Default 32. */
  batchSize?: number;
}

/** Splits "<dir>[,pool=mean|firstlast][,maxlen=N]" (options are read from the end, so dirs may hold commas). */
export function parseEmbedderArg(arg: string | undefined, who: string, keys: readonly string[]): { dir: string; opts: Record<string, string> } {
  if (arg === undefined || !arg.trim()) throw new RangeError(`--embedder ${who}: give a folder: ${who}:<dir>`);
  let dir = arg;
  const opts: Record<string, string> = {};
  for (;;) {
    const m = dir.match(/,([a-z]+)=([^,=]*)$/);
    if (!m) break;
    if (!keys.includes(m[1])) throw new RangeError(`--embedder ${who}: unknown option '${m[1]}' (expected ${keys.join(", ")})`);
    opts[m[1]] = m[2];
    dir = dir.slice(0, m.index);
  }
  return { dir, opts };
}

/** Tokenizes, truncates (keeping the final EOS when there is one) and pads a batch: int32 ids and mask [B,S]. */
export function padBatch(seqs: number[][], padId: number): { ids: Int32Array; mask: Int32Array; shape: [number, number] } {
  const S = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new Int32Array(seqs.length * S).fill(padId);
  const mask = new Int32Array(seqs.length * S);
  seqs.forEach((s, r) => {
    ids.set(s, r * S);
    mask.fill(1, r * S, r * S + s.length);
  });
  return { ids, mask, shape: [seqs.length, S] };
}

export function truncate(ids: number[], maxLength: number, eosId: number | undefined): number[] {
  if (ids.length <= maxLength) return ids;
  const cut = ids.slice(0, maxLength);
  if (eosId !== undefined && ids[ids.length - 1] === eosId) cut[maxLength - 1] = eosId;
  return cut;
}

/**
 * Embeds token sequences in length-sorted batches through `run`, returning rows in the input order.
 * Empty sequences (a tokenizer without EOS on an empty text) become one pad token.
 */
export async function embedInBatches(
  seqs: number[][],
  padId: number,
  batchSize: number,
  run: (ids: Int32Array, mask: Int32Array, shape: [number, number]) => Promise<{ data: Float32Array; shape: number[] }>,
): Promise<{ data: Float32Array; dim: number }> {
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[a].length - seqs[b].length || a - b);
  let out: Float32Array | undefined;
  let dim = 0;
  for (let s = 0; s < order.length; s += batchSize) {
    const idx = order.slice(s, s + batchSize);
    const b = padBatch(idx.map((i) => (seqs[i].length ? seqs[i] : [padId])), padId);
    const r = await run(b.ids, b.mask, b.shape);
    dim = r.shape[1];
    if (!out) out = new Float32Array(seqs.length * dim);
    idx.forEach((i, j) => out!.set(r.data.subarray(j * dim, (j + 1) * dim), i * dim));
  }
  return { data: out ?? new Float32Array(0), dim };
}

/** sha256 over the named files of a folder (streamed), for cache keys. */
export function hashFiles(dir: string, names: string[], h = createHash("sha256")): string {
  const buf = Buffer.alloc(1 << 20);
  for (const n of names) {
    const p = join(dir, n);
    if (!existsSync(p) || !statSync(p).isFile()) continue;
    h.update(`${n}\0${statSync(p).size}\0`);
    const fd = openSync(p, "r");
    try {
      for (;;) {
        const k = readSync(fd, buf, 0, buf.length, null);
        if (k <= 0) break;
        h.update(buf.subarray(0, k));
      }
    } finally {
      closeSync(fd);
    }
  }
  return h.digest("hex");
}

function checkpointFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f === "config.json" || f.endsWith(".safetensors") || f === "model.safetensors.index.json" || f.startsWith("tokenizer") || f === "instill_tokenizer.json" || f === "special_tokens_map.json")
    .sort();
}

export class EncoderEmbedder implements Embedder {
  readonly name: string;
  #native: NativeEncoderEmbedder;
  #key: string | undefined;

  private constructor(
    native: NativeEncoderEmbedder,
    readonly dir: string,
    readonly tokenizer: Tokenizer,
    readonly pool: PoolKind,
    readonly maxLength: number,
    readonly batchSize: number,
  ) {
    this.#native = native;
    this.name = `encoder:${dir}${pool === "mean" ? "" : `,pool=${pool}`}`;
  }

  static async load(dir: string, opts: EncoderEmbedderOptions = {}): Promise<EncoderEmbedder> {
    const pool = opts.pool ?? "mean";
    if (pool !== "mean" && pool !== "firstlast") throw new RangeError(`pool: expected mean or firstlast, got '${pool}'`);
    const maxLength = opts.maxLength ?? 512;
    const batchSize = opts.batchSize ?? 32;
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`maxLength: expected a positive integer, got ${maxLength}`);
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`batchSize: expected a positive integer, got ${batchSize}`);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`--embedder encoder: ${dir}: no such checkpoint folder`);
    if (!existsSync(join(dir, "config.json"))) throw new Error(`--embedder encoder: ${dir}: not a checkpoint folder (no config.json)`);
    const tokenizer = loadTokenizer(dir);
    const native = new (loadAddon().EncoderEmbedder)();
    await native.load(dir, { pool });
    if (tokenizer.vocabSize > native.vocabSize)
      process.stderr.write(`note: ${dir}: the tokenizer has ${tokenizer.vocabSize} ids but the model ${native.vocabSize} embeddings\n`);
    return new EncoderEmbedder(native, dir, tokenizer, pool, maxLength, batchSize);
  }

  get dim(): number {
    return this.#native.dModel;
  }

  cacheKey(): string {
    if (this.#key === undefined) {
      const h = createHash("sha256");
      h.update(`encoder-v1 pool=${this.pool} maxlen=${this.maxLength}\n`);
      this.#key = `encoder:${hashFiles(this.dir, checkpointFiles(this.dir), h)}`;
    }
    return this.#key;
  }

  async embed(texts: string[]): Promise<{ data: Float32Array; dim: number }> {
    if (!texts.length) return { data: new Float32Array(0), dim: this.dim };
    const seqs = texts.map((t) => truncate(this.tokenizer.encode(t), this.maxLength, this.tokenizer.eosId));
    return embedInBatches(seqs, this.tokenizer.padId, this.batchSize, (ids, mask, shape) =>
      this.#native.embed({ data: ids, shape, dtype: "int32" }, { data: mask, shape, dtype: "int32" }),
    );
  }

  dispose(): void {
    this.#native.dispose();
  }
}

/** The registry's factory: encoder:<dir>[,pool=mean|firstlast][,maxlen=N]. */
export async function createEncoderEmbedder(arg: string | undefined): Promise<EncoderEmbedder> {
  const { dir, opts } = parseEmbedderArg(arg, "encoder", ["pool", "maxlen"]);
  const pool = opts.pool ?? "mean";
  if (pool !== "mean" && pool !== "firstlast") throw new RangeError(`--embedder encoder: pool must be mean or firstlast, got '${pool}'`);
  let maxLength: number | undefined;
  if (opts.maxlen !== undefined) {
    maxLength = Number(opts.maxlen);
    if (!Number.isInteger(maxLength) || maxLength < 1) throw new RangeError(`--embedder encoder: maxlen must be a positive integer, got '${opts.maxlen}'`);
  }
  return EncoderEmbedder.load(resolve(dir), { pool, maxLength });
}
