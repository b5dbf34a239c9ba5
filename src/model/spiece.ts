// SentencePiece model files (spiece.model, a serialized sentencepiece ModelProto) as the hub ships them for
// T5 v1.1 / LM-adapt and mT5 checkpoints that have no tokenizer.json. The protobuf is read here by hand (a
// bounded reader: every length is checked against the buffer) and turned into the tokenizer.json that HF's
// converter (transformers' convert_slow_tokenizer T5Converter) would write: the pieces as a Unigram vocabulary,
// the precompiled charsmap as the normalizer, Metaspace pre-tokenizer/decoder, control and unknown pieces as
// special added tokens, and T5Tokenizer's `extra_ids` sentinels appended at the top, <extra_id_0> highest.
import { readFileSync } from "node:fs";

export class SpieceError extends Error {
  override name = "SpieceError";
}

/** sentencepiece's SentencePiece.Type */
export const PieceType = { Normal: 1, Unknown: 2, Control: 3, UserDefined: 4, Unused: 5, Byte: 6 } as const;
export type PieceType = number;

export interface SpieceModel {
  pieces: Array<{ piece: string; score: number; type: PieceType }>;
  /** 1 = unigram, 2 = bpe, 3 = word, 4 = char (TrainerSpec.model_type; default unigram). */
  modelType: number;
  byteFallback: boolean;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

/** A bounded protobuf wire-format reader over one message. */
class Reader {
  pos: number;
  constructor(
    private readonly buf: Uint8Array,
    private readonly file: string,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }
  fail(what: string): never {
    throw new SpieceError(`${this.file}: not a sentencepiece model (${what} at byte ${this.pos})`);
  }
  varint(): bigint {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.pos >= this.end) this.fail("truncated varint");
      const b = this.buf[this.pos++]!;
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
    }
    this.fail("varint longer than 10 bytes");
  }
  small(): number {
    const v = this.varint();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail("length too large");
    return Number(v);
  }
  bytes(): [number, number] {
    const n = this.small();
    if (n > this.end - this.pos) this.fail(`length ${n} runs past the end of its message`);
    const s = this.pos;
    this.pos += n;
    return [s, this.pos];
  }
  float32(): number {
    if (this.end - this.pos < 4) this.fail("truncated float");
    const v = new DataView(this.buf.buffer, this.buf.byteOffset + this.pos, 4).getFloat32(0, true);
    this.pos += 4;
    return v;
  }
  skip(wire: number): void {
    switch (wire) {
      case 0:
        this.varint();
        return;
      case 1:
        if (this.end - this.pos < 8) this.fail("truncated fixed64");
        this.pos += 8;
        return;
      case 2:
        this.bytes();
        return;
      case 5:
        if (this.end - this.pos < 4) this.fail("truncated fixed32");
        this.pos += 4;
        return;
      default:
        this.fail(`unsupported wire type ${wire}`);
    }
  }
  /** Calls `field(number, wire)` for each field; the callback consumes the value or returns false to skip it. */
  each(field: (num: number, wire: number) => boolean): void {
    while (this.pos < this.end) {
      const key = this.small();
      const num = Math.floor(key / 8);
      const wire = key % 8;
      if (num === 0) this.fail("field number 0");
      if (!field(num, wire)) this.skip(wire);
    }
  }
  sub(range: [number, number]): Reader {
    return new Reader(this.buf, this.file, range[0], range[1]);
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses a serialized sentencepiece ModelProto. */
export function parseSpieceModel(buf: Uint8Array, file = "spiece.model"): SpieceModel {
  const m: SpieceModel = {
    pieces: [],
    modelType: 1,
    byteFallback: false,
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  const top = new Reader(buf, file, 0, buf.length);
  top.each((num, wire) => {
    if (num === 1 && wire === 2) {
      const r = top.sub(top.bytes());
      let piece = "";
      let score = 0;
      let type: PieceType = PieceType.Normal;
      r.each((n, w) => {
        if (n === 1 && w === 2) {
          const [s, e] = r.bytes();
          try {
            piece = utf8.decode(buf.subarray(s, e));
          } catch {
            r.fail(`piece ${m.pieces.length} is not UTF-8`);
          }
          return true;
        }
        if (n === 2 && w === 5) return (score = r.float32()), true;
        if (n === 3 && w === 0) return (type = r.small()), true;
        return false;
      });
      m.pieces.push({ piece, score, type });
      return true;
    }
    if (num === 2 && wire === 2) {
      const r = top.sub(top.bytes());
      r.each((n, w) => {
        if (n === 3 && w === 0) return (m.modelType = r.small()), true;
        if (n === 35 && w === 0) return (m.byteFallback = r.small() !== 0), true;
        return false;
      });
      return true;
    }
    if (num === 3 && wire === 2) {
      const r = top.sub(top.bytes());
      r.each((n, w) => {
        if (n === 2 && w === 2) {
          const [s, e] = r.bytes();
          m.precompiledCharsmap = buf.slice(s, e);
          return true;
        }
        if (n === 3 && w === 0) return (m.addDummyPrefix = r.small() !== 0), true;
        if (n === 4 && w === 0) return (m.removeExtraWhitespaces = r.small() !== 0), true;
        if (n === 5 && w === 0) return (m.escapeWhitespaces = r.small() !== 0), true;
        return false;
      });
      return true;
    }
    return false;
  });
  if (m.pieces.length === 0) throw new SpieceError(`${file}: not a sentencepiece model (no pieces)`);
  return m;
}

export interface SpieceTokenizerJsonOptions {
  /** T5Tokenizer's extra_ids: <extra_id_0..n-1> appended above the pieces, <extra_id_0> the highest id. */
  extraIds: number;
}

/** The tokenizer.json HF's T5Converter writes for a sentencepiece Unigram model. */
export function spieceToTokenizerJson(m: SpieceModel, opts: SpieceTokenizerJsonOptions, file = "spiece.model"): Record<string, unknown> {
  if (m.modelType !== 1)
    throw new SpieceError(`${file}: sentencepiece model_type ${m.modelType} is not supported (only unigram, as T5 and mT5 use)`);
  if (m.byteFallback) throw new SpieceError(`${file}: byte_fallback models are not supported`);
  if (!Number.isInteger(opts.extraIds) || opts.extraIds < 0 || opts.extraIds > 10000)
    throw new SpieceError(`extra_ids: expected an integer in [0, 10000], got ${opts.extraIds}`);
  const unkId = m.pieces.findIndex((p) => p.type === PieceType.Unknown);
  if (unkId < 0) throw new SpieceError(`${file}: no unknown piece (type UNKNOWN)`);
  const vocab: Array<[string, number]> = m.pieces.map((p) => [p.piece, p.score]);
  const added: Array<Record<string, unknown>> = [];
  const addedToken = (id: number, content: string, special: boolean) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: !special,
    special,
  });
  m.pieces.forEach((p, id) => {
    if (p.type === PieceType.Control || p.type === PieceType.Unknown) added.push(addedToken(id, p.piece, true));
    else if (p.type === PieceType.UserDefined) added.push(addedToken(id, p.piece, false));
  });
  for (let i = opts.extraIds - 1; i >= 0; i--) {
    const id = vocab.length;
    vocab.push([`<extra_id_${i}>`, 0]);
    added.push(addedToken(id, `<extra_id_${i}>`, true));
  }
  const scheme = m.addDummyPrefix ? "always" : "never";
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: m.precompiledCharsmap.length
      ? { type: "Precompiled", precompiled_charsmap: Buffer.from(m.precompiledCharsmap).toString("base64") }
      : null,
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [{ type: "WhitespaceSplit" }, { type: "Metaspace", replacement: "\u2581", prepend_scheme: scheme, split: true }],
    },
    post_processor: null,
    decoder: { type: "Metaspace", replacement: "\u2581", prepend_scheme: scheme, split: true },
    model: { type: "Unigram", unk_id: unkId, vocab, byte_fallback: false },
  };
}

export function readSpieceModel(path: string): SpieceModel {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new SpieceError(`${path}: cannot read (${(e as Error).message})`);
  }
  return parseSpieceModel(new Uint8Array(buf.buffer, buf.byteOffset, buf.length), path);
}
