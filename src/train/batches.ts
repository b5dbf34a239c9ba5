// From tasks to examples to padded batches. Deterministic: the order of an epoch is a function of
// (seed, epoch) alone, so a resumed run sees exactly the batches the uninterrupted run would have.
import type { EncodingOptions, SniTask } from "../data/types.js";
import { encodeTkInstruct } from "../data/index.js";
import type { Batch } from "../model/types.js";
import type { HostTensor } from "../native/types.js";
import { Rng } from "../util/rng.js";

export interface TokenizerLike {
  padId: number;
  eosId: number;
  encode(text: string, opts?: { addEos?: boolean }): number[];
  countTokens(text: string): number;
  decode(ids: number[], opts?: { skipSpecial?: boolean }): string;
}

export interface Example {
  task: string;
  id: string;
  category: string;
  source: string;
  target: string;
  references: string[];
  answerChoices?: string[];
}

export interface TokenizedExample extends Example {
  src: number[];
  tgt: number[];
}

/**
 * One example per instance. Training targets: one of the references chosen with the seeded RNG
 * (Tk-Instruct picks random.choice(outputs)); evaluation keeps all references for scoring.
 */
export function buildExamples(
  tasks: SniTask[],
  enc: EncodingOptions,
  countTokens: (t: string) => number,
  opts: { seed: number; training: boolean },
): Example[] {
  const rng = new Rng(opts.seed);
  const out: Example[] = [];
  for (const task of tasks) {
    for (const inst of task.instances) {
      const source = encodeTkInstruct(task, inst, enc, countTokens);
      const target = opts.training ? inst.output[rng.int(inst.output.length)] : inst.output[0];
      out.push({
        task: task.name,
        id: inst.id,
        category: task.categories[0] ?? "",
        source,
        target,
        references: inst.output,
        answerChoices: inst.answerChoices ?? task.answerChoices,
      });
    }
  }
  return out;
}

export function tokenizeExamples(
  examples: Example[],
  tok: TokenizerLike,
  maxSourceLength: number,
  maxTargetLength: number,
): TokenizedExample[] {
  return examples.map((e) => {
    let src = tok.encode(e.source, { addEos: true });
    if (src.length > maxSourceLength) src = [...src.slice(0, maxSourceLength - 1), tok.eosId];
    let tgt = tok.encode(e.target, { addEos: true });
    if (tgt.length > maxTargetLength) tgt = [...tgt.slice(0, maxTargetLength - 1), tok.eosId];
    return { ...e, src, tgt };
  });
}

/** Token-id rows right-padded to [rows, max(minLength, longest)] int32, with a 0/1 mask of the same shape. */
export function padRows(rows: readonly (readonly number[])[], padValue: number, minLength = 0): { ids: HostTensor<"int32">; mask: HostTensor<"int32"> } {
  const B = rows.length;
  const L = Math.max(minLength, ...rows.map((r) => r.length));
  const ids = new Int32Array(B * L).fill(padValue);
  const mask = new Int32Array(B * L);
  rows.forEach((r, i) => {
    ids.set(r, i * L);
    mask.fill(1, i * L, i * L + r.length);
  });
  return { ids: { data: ids, shape: [B, L], dtype: "int32" }, mask: { data: mask, shape: [B, L], dtype: "int32" } };
}

/** Right-padded batch; labels padded with -100. */
export function collate(examples: { src: number[]; tgt?: number[] }[], padId: number, withLabels = true): Batch {
  const B = examples.length;
  if (B === 0) throw new RangeError("collate: empty batch");
  const { ids, mask } = padRows(examples.map((e) => e.src), padId);
  const batch: Batch = { inputIds: ids, attentionMask: mask };
  if (withLabels) {
    const T = Math.max(...examples.map((e) => e.tgt?.length ?? 0));
    if (T === 0) throw new RangeError("collate: examples have no targets");
    const labels = new Int32Array(B * T).fill(-100);
    examples.forEach((e, i) => labels.set(e.tgt ?? [], i * T));
    batch.labels = { data: labels, shape: [B, T], dtype: "int32" };
  }
  return batch;
}

/** Token count of a batch (non-pad source + label tokens), for tokens/s. */
export function batchTokens(b: Batch): number {
  let n = 0;
  for (const v of b.attentionMask.data) n += v;
  if (b.labels) for (const v of b.labels.data) if (v !== -100) n++;
  return n;
}

/**
 * The batch schedule: epoch e's order is a shuffle seeded by (seed, e); batch i of the run is
 * (epoch = floor(i / perEpoch), index = i % perEpoch). A partial last batch is dropped per epoch only
 * when the data holds at least one full batch.
 */
export class BatchSchedule {
  readonly perEpoch: number;
  private order?: { epoch: number; idx: number[] };

  constructor(
    private readonly data: TokenizedExample[],
    private readonly batchSize: number,
    private readonly seed: number,
  ) {
    if (data.length === 0) throw new RangeError("no training examples");
    this.perEpoch = Math.max(1, Math.floor(data.length / batchSize));
  }

  private orderFor(epoch: number): number[] {
    if (this.order?.epoch !== epoch) {
      const idx = this.data.map((_, i) => i);
      new Rng((this.seed * 1000003 + epoch) >>> 0).shuffle(idx);
      this.order = { epoch, idx };
    }
    return this.order.idx;
  }

  /** The examples of global batch number `i` (0-based). */
  examples(i: number): TokenizedExample[] {
    const epoch = Math.floor(i / this.perEpoch);
    const j = i % this.perEpoch;
    const idx = this.orderFor(epoch);
    const slice = idx.slice(j * this.batchSize, (j + 1) * this.batchSize);
    return slice.map((k) => this.data[k]);
  }

  batch(i: number, padId: number): Batch {
    return collate(this.examples(i), padId);
  }
}
