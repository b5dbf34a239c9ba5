// Sentinels (<extra_id_N>) and the tokenizer files the hub ships: ByT5's 125 sentinels (ids 259..383, as
// transformers' ByT5Tokenizer), T5's 100 (32099 = <extra_id_0> down to 32000), ids above the tokenizer (padding
// rows of the model's embedding) and spiece.model-only folders (T5 v1.1 / LM-adapt, mT5).
import { describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteTokenizer, HfTokenizer, installTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";
import { PieceType, parseSpieceModel, spieceToTokenizerJson } from "../../src/model/spiece.js";
import { sharedDir, sharedOrSkipMessage } from "../helpers/native.js";

const t5Dir = join(sharedDir, "data", "t5-tokenizer");
const fixturePath = join(sharedDir, "fixtures", "t5-spiece-encodings.jsonl");
const haveT5 = sharedOrSkipMessage("T5 sentinel / spiece.model tests") && existsSync(join(t5Dir, "spiece.model")) && existsSync(fixturePath);
const tmp = (p: string) => mkdtempSync(join(tmpdir(), `instill-sent-${p}-`));

describe("ByT5 sentinels (transformers' ByT5Tokenizer: <extra_id_i> = 259 + i)", () => {
  const tok = new ByteTokenizer();
  it("has ByT5's 384 ids and maps the sentinels both ways", () => {
    expect(tok.vocabSize).toBe(384);
    expect(tok.tokenToId("<extra_id_0>")).toBe(259);
    expect(tok.tokenToId("<extra_id_124>")).toBe(383);
    expect(tok.tokenToId("<extra_id_125>")).toBeUndefined();
    expect(tok.tokenToId("</s>")).toBe(1);
    expect(tok.tokenToId("a")).toBe(100);
  });

  it("encodes sentinels and special tokens written in the text, as HF's added-token split", () => {
    expect(tok.encode("a<extra_id_0>b")).toEqual([100, 259, 101, 1]);
    // sentinels keep the spaces around them; <pad>, </s>, <unk> are lstrip/rstrip AddedTokens in ByT5Tokenizer
    expect(tok.encode("x <extra_id_124> y", { addEos: false })).toEqual([123, 35, 383, 35, 124]);
    expect(tok.encode("a </s>\tb <pad>", { addEos: false })).toEqual([100, 1, 101, 0]);
    // not a sentinel of this vocabulary: plain bytes
    expect(tok.encode("<extra_id_125>", { addEos: false })).toEqual([...Buffer.from("<extra_id_125>")].map((b) => b + 3));
    expect(tok.countTokens("a<extra_id_3>")).toBe(3);
  });

  it("decodes as HF: sentinels dropped by skipSpecial, else spaced pieces; raw ids above the vocabulary give ''", () => {
    // the ids of the issue: a ByT5-shaped model generating a sentinel (292 = <extra_id_33>) no longer throws
    expect(tok.decode([100, 292, 101, 1])).toBe("ab");
    expect(tok.decode([100, 292, 101, 1], { skipSpecial: false })).toBe("a <extra_id_33> b</s>");
    expect(tok.decode([259, 260], { skipSpecial: false })).toBe("<extra_id_0> <extra_id_1>");
    // a piece decoding to nothing before a sentinel is dropped; one after it is kept (HF's _decode)
    expect(tok.decode([0xc3 + 3, 259, 0xc3 + 3], { skipSpecial: false })).toBe("<extra_id_0> ");
    expect(tok.decode([384, 500, 100, 1000])).toBe("a");
    const text = "sentinel <extra_id_7> inside";
    expect(tok.decode(tok.encode(text), { skipSpecial: false })).toBe("sentinel  <extra_id_7>  inside</s>");
  });

  it("reads extra_ids and clean-up from a ByT5 tokenizer_config.json", () => {
    const d = tmp("byt5-cfg");
    writeFileSync(join(d, "tokenizer_config.json"), JSON.stringify({ tokenizer_class: "ByT5Tokenizer", extra_ids: 3 }));
    const t = loadTokenizer(d);
    expect(t.vocabSize).toBe(262);
    expect(t.encode("<extra_id_2><extra_id_3>", { addEos: false }).slice(0, 2)).toEqual([261, 63]);
    const bad = tmp("byt5-bad");
    writeFileSync(join(bad, "tokenizer_config.json"), JSON.stringify({ tokenizer_class: "ByT5Tokenizer", extra_ids: -1 }));
    expect(() => loadTokenizer(bad)).toThrow(/tokenizer_config\.json: "extra_ids" must be an integer/);
  });
});

describe.skipIf(!haveT5)("T5 sentinels and spiece.model", () => {
  const fixture = haveT5
    ? readFileSync(fixturePath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as { text: string; ids: number[] })
    : [];

  it("maps <extra_id_0> to 32099 and <extra_id_99> to 32000; skipSpecial drops them; padding rows decode to ''", () => {
    const tok = loadTokenizer(t5Dir);
    expect(tok.tokenToId("<extra_id_0>")).toBe(32099);
    expect(tok.tokenToId("<extra_id_99>")).toBe(32000);
    expect(tok.encode("<extra_id_0> dog", { addEos: false })).toEqual([32099, 1782]);
    expect(tok.decode([32099, 1782, 32127])).toBe("dog");
    expect(tok.decode([32099, 1782, 32127], { skipSpecial: false })).toContain("<extra_id_0>");
  });

  it("a folder with only spiece.model (T5 v1.1 / LM-adapt) tokenizes exactly as tokenizer.json", () => {
    const d = tmp("spiece");
    copyFileSync(join(t5Dir, "spiece.model"), join(d, "spiece.model"));
    writeFileSync(join(d, "tokenizer_config.json"), JSON.stringify({ tokenizer_class: "T5Tokenizer", extra_ids: 100, clean_up_tokenization_spaces: true }));
    const sp = loadTokenizer(d) as HfTokenizer;
    const ref = loadTokenizer(t5Dir);
    expect(sp.kind).toBe("hf");
    expect(sp.sentencepieceExact).toBe(true);
    expect([sp.vocabSize, sp.padId, sp.eosId, sp.unkId]).toEqual([32100, 0, 1, 2]);
    const bad: number[] = [];
    for (const [i, l] of fixture.entries()) if (JSON.stringify(sp.encode(l.text)) !== JSON.stringify([...l.ids, 1])) bad.push(i + 1);
    expect(bad).toEqual([]);
    for (const t of ["<extra_id_0> is a dog <extra_id_1>.", "Translate: </s> and <pad>", "I do n't know ."]) {
      expect(sp.encode(t)).toEqual(ref.encode(t));
      const ids = ref.encode(t);
      expect(sp.decode(ids)).toBe(ref.decode(ids));
      expect(sp.decode(ids, { skipSpecial: false })).toBe(ref.decode(ids, { skipSpecial: false }));
    }
    // the converted vocabulary is tokenizer.json's, sentinels included
    const refJson = JSON.parse(readFileSync(join(t5Dir, "tokenizer.json"), "utf8"));
    const conv = spieceToTokenizerJson(parseSpieceModel(readFileSync(join(d, "spiece.model"))), { extraIds: 100 }) as { model: { vocab: unknown[] }; normalizer: unknown };
    expect(conv.model.vocab.length).toBe(refJson.model.vocab.length);
    expect(JSON.stringify(conv.model.vocab.map((v) => (v as [string, number])[0]))).toBe(JSON.stringify(refJson.model.vocab.map((v: [string, number]) => v[0])));
    expect(conv.normalizer).toEqual(refJson.normalizer);
    // installs by copying spiece.model
    const out = tmp("spiece-inst");
    expect(installTokenizer(d, out)).toBe("hf");
    expect(loadTokenizer(out).encode("New York")).toEqual([368, 1060, 1]);
  });

  it("an mT5-style folder (config model_type mt5, no extra_ids) has no sentinels, as google/mt5-* in HF", () => {
    const d = tmp("mt5");
    copyFileSync(join(t5Dir, "spiece.model"), join(d, "spiece.model"));
    writeFileSync(join(d, "config.json"), JSON.stringify({ model_type: "mt5", vocab_size: 32128 }));
    const tok = loadTokenizer(d);
    expect(tok.vocabSize).toBe(32000);
    expect(tok.tokenToId("<extra_id_0>")).toBeUndefined();
    expect(tok.decode([368, 1060, 32050, 32127])).toBe("New York");
  });
});

// A protobuf writer for hand-made sentencepiece models (no ../shared needed).
function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
const field = (num: number, wire: number, body: number[]): number[] => [...varint(num * 8 + wire), ...(wire === 2 ? varint(body.length) : []), ...body];
const str = (s: string) => [...Buffer.from(s, "utf8")];
const f32 = (x: number) => {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x);
  return [...b];
};
function piece(p: string, score: number, type: number): number[] {
  return field(1, 2, [...field(1, 2, str(p)), ...field(2, 5, f32(score)), ...field(3, 0, varint(type))]);
}

describe("spiece.model reader (hand-made protobufs)", () => {
  const pieces = [
    piece("<pad>", 0, PieceType.Control),
    piece("</s>", 0, PieceType.Control),
    piece("<unk>", 0, PieceType.Unknown),
    piece("\u2581a", -1, PieceType.Normal),
    piece("\u2581b", -2, PieceType.Normal),
    piece("c", -3, PieceType.Normal),
  ].flat();

  it("parses pieces, scores and types, skipping unknown fields", () => {
    const extra = field(99, 0, varint(7)); // an unknown field
    const m = parseSpieceModel(Uint8Array.from([...pieces, ...extra, ...field(2, 2, field(3, 0, varint(1)))]));
    expect(m.pieces.map((p) => p.piece)).toEqual(["<pad>", "</s>", "<unk>", "\u2581a", "\u2581b", "c"]);
    expect(m.pieces[4]!.score).toBe(-2);
    expect(m.pieces[2]!.type).toBe(PieceType.Unknown);
    const j = spieceToTokenizerJson(m, { extraIds: 2 }) as { model: { vocab: Array<[string, number]>; unk_id: number }; added_tokens: Array<{ id: number; content: string }> };
    expect(j.model.unk_id).toBe(2);
    expect(j.model.vocab.slice(-2).map((v) => v[0])).toEqual(["<extra_id_1>", "<extra_id_0>"]);
    expect(j.added_tokens.map((t) => [t.id, t.content])).toEqual([[0, "<pad>"], [1, "</s>"], [2, "<unk>"], [6, "<extra_id_1>"], [7, "<extra_id_0>"]]);
  });

  it("refuses truncated or hostile files with the file name and offset, and non-unigram models", () => {
    const cut = Uint8Array.from(pieces.slice(0, pieces.length - 3));
    expect(() => parseSpieceModel(cut, "x/spiece.model")).toThrow(/x\/spiece\.model: not a sentencepiece model \(.* at byte \d+\)/);
    expect(() => parseSpieceModel(Uint8Array.from(field(1, 2, []).slice(0, 1).concat(varint(2 ** 40))), "big.model")).toThrow(/big\.model: .*runs past the end/);
    expect(() => parseSpieceModel(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toThrow(/varint longer/);
    expect(() => parseSpieceModel(new Uint8Array(0), "empty.model")).toThrow(/empty\.model: .*no pieces/);
    const bpe = parseSpieceModel(Uint8Array.from([...pieces, ...field(2, 2, field(3, 0, varint(2)))]));
    expect(() => spieceToTokenizerJson(bpe, { extraIds: 0 }, "bpe.model")).toThrow(/bpe\.model: sentencepiece model_type 2 is not supported/);
  });

  it("loads a folder holding a hand-made spiece.model", () => {
    const d = tmp("spiece-mini");
    writeFileSync(join(d, "spiece.model"), Uint8Array.from(pieces));
    writeFileSync(join(d, "tokenizer_config.json"), JSON.stringify({ extra_ids: 2 }));
    const tok = loadTokenizer(d);
    expect(tok.vocabSize).toBe(8);
    expect(tok.encode("a b <extra_id_0>")).toEqual([3, 4, 7, 1]);
    expect(tok.decode([3, 4, 7, 1])).toBe("a b");
    expect(tok.decode([3, 4, 7, 9])).toBe("a b");
  });
});
