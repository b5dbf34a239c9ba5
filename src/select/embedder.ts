// The embedder interface of INSTA task selection: anything that maps instruction texts to vectors.
// `lexical` (TF-IDF, no weights) lives here; the `encoder` (a checkpoint's T5 encoder) and `trained`
// (contrastively aligned) embedders plug in through the same interface.

/** Rows of an embedding matrix, row-major. */
export interface EmbeddingMatrix {
  data: Float32Array;
  rows: number;
  dim: number;
}

/** A positive example of a task (input and output), as the task files and definitions.jsonl carry them. */
export interface ExampleLike {
  input: string;
  output: string;
  explanation?: string;
}

/** What an example-aware embedder sees of a task: its instruction text and, where the source has them, examples. */
export interface TaskText {
  text: string;
  examples?: ExampleLike[];
}

export interface Embedder {
  /** Short name shown in outputs ("lexical", "encoder:t5-small", ...). */
  name: string;
  /** One vector per text, all of the same dimension: as separate rows or as one row-major matrix. */
  embed(texts: string[]): Promise<Float32Array[] | { data: Float32Array; dim: number }>;
  /**
   * Embedders whose space depends on the pool (lexical: vocabulary and idf) are fitted on the pool's texts
   * before anything is embedded; selection calls this when it exists.
   */
  fit?(corpus: string[]): void | Promise<void>;
  /**
   * Identity of the embedding function for the disk cache (e.g. "encoder:<sha256 of the weights>"): equal keys
   * must mean equal vectors for equal texts. Undefined: never cached.
   */
  cacheKey?(): string | undefined;
  /**
   * Example-aware embedders (e.g. `hybrid`, which also reads the output shape of a task's positive examples)
   * implement these; selection then passes whole tasks. Without examples a task embeds as its text alone.
   */
  fitTasks?(tasks: TaskText[]): void | Promise<void>;
  embedTasks?(tasks: TaskText[]): Promise<Float32Array[] | { data: Float32Array; dim: number }>;
}

/** Fits an embedder on a pool: fitTasks when it reads examples, else fit on the texts, else nothing. */
export async function fitOnTasks(embedder: Embedder, tasks: TaskText[]): Promise<void> {
  if (embedder.fitTasks) await embedder.fitTasks(tasks);
  else if (embedder.fit) await embedder.fit(tasks.map((t) => t.text));
}

/** Embeds tasks into one matrix: embedTasks when the embedder reads examples, else embed on the texts. */
export async function embedTaskMatrix(embedder: Embedder, tasks: TaskText[]): Promise<EmbeddingMatrix> {
  if (embedder.embedTasks) return toMatrix(await embedder.embedTasks(tasks), tasks.length, embedder.name);
  return embedMatrix(embedder, tasks.map((t) => t.text));
}

/** Normalizes what embed() returns into one matrix, checking the count and the dimensions. */
export function toMatrix(out: Float32Array[] | { data: Float32Array; dim: number }, expectedRows: number, who = "embedder"): EmbeddingMatrix {
  if (Array.isArray(out)) {
    if (out.length !== expectedRows) throw new Error(`${who}: returned ${out.length} vectors for ${expectedRows} texts`);
    const dim = out.length ? out[0].length : 0;
    const data = new Float32Array(expectedRows * dim);
    out.forEach((v, i) => {
      if (v.length !== dim) throw new Error(`${who}: vector ${i} has dimension ${v.length}, expected ${dim}`);
      data.set(v, i * dim);
    });
    return { data, rows: expectedRows, dim };
  }
  const { data, dim } = out;
  if (!Number.isInteger(dim) || dim < 0) throw new Error(`${who}: bad dimension ${dim}`);
  if (data.length !== expectedRows * dim)
    throw new Error(`${who}: returned ${data.length} numbers, expected ${expectedRows} x ${dim}`);
  return { data, rows: expectedRows, dim };
}

/** Embeds texts and returns one matrix. */
export async function embedMatrix(embedder: Embedder, texts: string[]): Promise<EmbeddingMatrix> {
  return toMatrix(await embedder.embed(texts), texts.length, embedder.name);
}

/** Copy of the matrix with each row divided by its L2 norm (computed in float64); zero rows stay zero. */
export function normalizeRows(m: EmbeddingMatrix): EmbeddingMatrix {
  const out = new Float32Array(m.data.length);
  for (let r = 0; r < m.rows; r++) {
    const o = r * m.dim;
    let s = 0;
    for (let j = 0; j < m.dim; j++) s += m.data[o + j] * m.data[o + j];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let j = 0; j < m.dim; j++) out[o + j] = m.data[o + j] * inv;
  }
  return { data: out, rows: m.rows, dim: m.dim };
}

/** Rows `indices` of a matrix. */
export function pickRows(m: EmbeddingMatrix, indices: number[]): EmbeddingMatrix {
  const out = new Float32Array(indices.length * m.dim);
  indices.forEach((r, i) => out.set(m.data.subarray(r * m.dim, (r + 1) * m.dim), i * m.dim));
  return { data: out, rows: indices.length, dim: m.dim };
}
