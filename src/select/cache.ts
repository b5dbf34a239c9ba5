// Disk cache of embeddings by content hash: `<dir>/<sha256(cacheKey NUL text)>.f32`, raw little-endian float32.
// Only embedders with a cacheKey() are cached (equal keys promise equal vectors). Files are written through a
// temporary name and renamed, so a crash never leaves a half-written vector; unreadable or mis-sized files are
// recomputed and rewritten.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Embedder } from "./embedder.js";
import { toMatrix } from "./embedder.js";

export const DEFAULT_CACHE_DIR = join(".instill-cache", "embeddings");

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export class EmbeddingCache {
  hits = 0;
  misses = 0;
  writes = 0;

  constructor(readonly dir: string = DEFAULT_CACHE_DIR) {}

  static key(embedderKey: string, text: string): string {
    return createHash("sha256").update(embedderKey).update("\u0000").update(text).digest("hex");
  }

  path(key: string): string {
    return join(this.dir, `${key}.f32`);
  }

  /** The cached vector, or undefined (missing, unreadable, or not `dim` long when dim is given). */
  get(key: string, dim?: number): Float32Array | undefined {
    let buf: Buffer;
    try {
      buf = readFileSync(this.path(key));
    } catch {
      return undefined;
    }
    if (buf.length % 4 !== 0 || (dim !== undefined && buf.length !== dim * 4)) return undefined;
    const v = new Float32Array(buf.length / 4);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    for (let i = 0; i < v.length; i++) v[i] = view.getFloat32(i * 4, true);
    return v;
  }

  put(key: string, v: Float32Array): void {
    mkdirSync(this.dir, { recursive: true });
    let bytes: Uint8Array;
    if (littleEndian) bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    else {
      const dv = new DataView(new ArrayBuffer(v.length * 4));
      v.forEach((x, i) => dv.setFloat32(i * 4, x, true));
      bytes = new Uint8Array(dv.buffer);
    }
    const final = this.path(key);
    const tmp = `${final}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, final);
    this.writes++;
  }
}

/**
 * Wraps an embedder with the disk cache: cached texts are read back, the others embedded in one call and
 * written. Embedders without a cacheKey() pass straight through.
 */
export function cachedEmbedder(inner: Embedder, cache: EmbeddingCache): Embedder {
  return {
    name: inner.name,
    fit: inner.fit ? (corpus: string[]) => inner.fit!(corpus) : undefined,
    cacheKey: () => inner.cacheKey?.(),
    // Example-aware embedders are cheap and keyed by more than the text: they pass through uncached.
    fitTasks: inner.fitTasks ? (tasks) => inner.fitTasks!(tasks) : undefined,
    embedTasks: inner.embedTasks ? (tasks) => inner.embedTasks!(tasks) : undefined,
    async embed(texts: string[]) {
      const ek = inner.cacheKey?.();
      if (ek === undefined) return inner.embed(texts);
      const keys = texts.map((t) => EmbeddingCache.key(ek, t));
      const found: (Float32Array | undefined)[] = keys.map((k) => cache.get(k));
      // All cached vectors must agree on the dimension; odd ones out are recomputed.
      const dims = new Map<number, number>();
      for (const v of found) if (v) dims.set(v.length, (dims.get(v.length) ?? 0) + 1);
      const dim = [...dims.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
      const missing: number[] = [];
      found.forEach((v, i) => {
        if (!v || v.length !== dim) {
          found[i] = undefined;
          missing.push(i);
        }
      });
      cache.hits += texts.length - missing.length;
      cache.misses += missing.length;
      if (missing.length) {
        const m = toMatrix(await inner.embed(missing.map((i) => texts[i])), missing.length, inner.name);
        if (dim !== undefined && m.dim !== dim) {
          // The cache disagrees with the embedder: trust the embedder, recompute everything.
          const all = toMatrix(await inner.embed(texts), texts.length, inner.name);
          for (let i = 0; i < texts.length; i++) cache.put(keys[i], all.data.slice(i * all.dim, (i + 1) * all.dim));
          return { data: all.data, dim: all.dim };
        }
        missing.forEach((i, j) => {
          const v = m.data.slice(j * m.dim, (j + 1) * m.dim);
          found[i] = v;
          cache.put(keys[i], v);
        });
      }
      return found as Float32Array[];
    },
  };
}
