// Tokenizers of a checkpoint directory: a Hugging Face tokenizer.json (T5's SentencePiece Unigram, or any
// model @huggingface/tokenizers reads, e.g. WordLevel) or ByT5's byte-level vocabulary.
//
// Which one: `instill_tokenizer.json` {"type":"byte"|"hf"} decides when present; else tokenizer.json -> HF;
// else a tokenizer_config.json / config.json naming ByT5 -> byte. For Unigram models with a Precompiled
// normalizer (T5) the library's normalizer, whitespace step and Viterbi are replaced by sentencepiece's exact
// algorithms (tokenizer-spm.ts), so ids equal Google's SentencePiece library's.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Tokenizer as HfLibTokenizer } from "@huggingface/tokenizers";
import { PrecompiledCharsmap, SpmUnigram, spmWhitespace } from "./tokenizer-spm.js";
import { readSpieceModel, spieceToTokenizerJson } from "./spiece.js";
import { TokenizerJsonError, validateTokenizerJson } from "./tokenizer-validate.js";

export interface EncodeOptions {
  /** Append the EOS id (</s> = 1 for T5), as HF's T5 tokenizer does. Default true. */
  addEos?: boolean;
}
export interface DecodeOptions {
  /** Drop special ids (pad, eos, unk and other special added tokens such as <extra_id_N>). Default true. */
  skipSpecial?: boolean;
}

export interface Tokenizer {
  kind: "hf" | "byte";
  /** One more than the largest id the tokenizer can produce (T5: 32100, ByT5: 384 with its 125 sentinels). */
  vocabSize: number;
  padId: number;
  eosId: number;
  unkId: number;
  encode(text: string, opts?: EncodeOptions): number[];
  encodeBatch(texts: readonly string[], opts?: EncodeOptions): number[][];
  /**
   * Text of ids as HF's decode(ids, skip_special_tokens) gives it. Ids at or above vocabSize (the padding rows of a
   * model embedding larger than the tokenizer, e.g. T5's 32128 vs 32100) decode to nothing, as HF's fast tokenizers
   * do; negative or non-integer ids are a RangeError.
   */
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The id of a token string (a special token such as "<extra_id_0>", or a vocabulary piece), else undefined. */
  tokenToId(token: string): number | undefined;
  /** encode(text).length, EOS included: what HF's len(tokenizer(text).input_ids) gives (Tk-Instruct's budget). */
  countTokens(text: string): number;
}

/** The marker file instill writes for (and reads to pick) a tokenizer type. */
export const TOKENIZER_MARKER = "instill_tokenizer.json";
const HF_FILES = ["tokenizer.json", "spiece.model", "tokenizer_config.json", "special_tokens_map.json"] as const;

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

// ---------------------------------------------------------------------------------------------------------
// Byte level (ByT5): id = utf-8 byte + 3; pad 0, eos 1, unk 2; then `extra_ids` sentinels (125 in ByT5).
//
// As transformers' ByT5Tokenizer: <extra_id_i> is added after the bytes in order, so it has id 259 + i
// (<extra_id_0> = 259, <extra_id_124> = 383; vocabulary 384, the vocab_size of every ByT5 checkpoint). Unlike
// T5's SentencePiece vocabulary, where <extra_id_0> is the highest id, ByT5's sentinels count upwards.
// <pad>, </s>, <unk> and the sentinels written in a text are split out and map to their ids; <pad>, </s> and
// <unk> are AddedToken(lstrip=True, rstrip=True) there, so whitespace around them is dropped. decode follows
// the slow tokenizer's _decode: sentinels are separate pieces joined with spaces (spaces_between_special_tokens),
// <pad>/</s>/<unk> are written inline, skipSpecial drops all of them.

const BYTE_OFFSET = 3;
const BYTE_SPECIAL = ["<pad>", "</s>", "<unk>"];
/** transformers' ByT5Tokenizer default. */
export const BYT5_EXTRA_IDS = 125;

export interface ByteTokenizerOptions {
  /** Sentinels <extra_id_0..n-1> after the 259 byte ids (ByT5: 125; tokenizer_config.json "extra_ids"). */
  extraIds?: number;
  /** transformers' clean_up_tokenization_spaces (default false). */
  cleanUpTokenizationSpaces?: boolean;
}

/** Python's str.isspace() characters (what str.strip() removes). */
const PY_SPACE = /[\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;
function pyRstrip(s: string): string {
  let e = s.length;
  while (e > 0 && PY_SPACE.test(s[e - 1]!)) e--;
  return s.slice(0, e);
}
function pyLstrip(s: string): string {
  let b = 0;
  while (b < s.length && PY_SPACE.test(s[b]!)) b++;
  return s.slice(b);
}

/** transformers' clean_up_tokenization. */
export function cleanUpTokenization(s: string): string {
  return s
    .replaceAll(" .", ".")
    .replaceAll(" ?", "?")
    .replaceAll(" !", "!")
    .replaceAll(" ,", ",")
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

function checkId(id: number): void {
  if (!Number.isInteger(id) || id < 0) throw new RangeError(`decode: id ${id} is not a token id (a non-negative integer)`);
}

export class ByteTokenizer implements Tokenizer {
  readonly kind = "byte" as const;
  readonly vocabSize: number;
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  readonly extraIds: number;
  private readonly encoder = new TextEncoder();
  private readonly specials = new Map<string, number>();
  private readonly splitter: RegExp;
  private readonly cleanUp: boolean;

  constructor(opts: ByteTokenizerOptions = {}) {
    const n = opts.extraIds ?? BYT5_EXTRA_IDS;
    if (!Number.isInteger(n) || n < 0 || n > 100000) throw new RangeError(`extra_ids: expected an integer in [0, 100000], got ${n}`);
    this.extraIds = n;
    this.vocabSize = 256 + BYTE_OFFSET + n;
    this.cleanUp = opts.cleanUpTokenizationSpaces === true;
    BYTE_SPECIAL.forEach((t, id) => this.specials.set(t, id));
    for (let i = 0; i < n; i++) this.specials.set(`<extra_id_${i}>`, 256 + BYTE_OFFSET + i);
    // <extra_id_N> alternatives: no token is a prefix of another (each ends with '>'), so the leftmost match is HF's.
    this.splitter = n > 0 ? /<pad>|<\/s>|<unk>|<extra_id_(?:0|[1-9][0-9]*)>/g : /<pad>|<\/s>|<unk>/g;
  }

  /** The id of a special token (<pad>, </s>, <unk>, <extra_id_N>) or of a one-byte string; else undefined. */
  tokenToId(token: string): number | undefined {
    const s = this.specials.get(token);
    if (s !== undefined) return s;
    const b = this.encoder.encode(token);
    return b.length === 1 ? b[0]! + BYTE_OFFSET : undefined;
  }

  private pushBytes(ids: number[], text: string): void {
    if (!text) return;
    const bytes = this.encoder.encode(text);
    for (let i = 0; i < bytes.length; i++) ids.push(bytes[i]! + BYTE_OFFSET);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: expected a string, got ${typeof text}`);
    const ids: number[] = [];
    // Split out the special tokens, as HF's added-token trie does; <pad>, </s>, <unk> eat the whitespace around them.
    const parts: Array<string | number> = [];
    let last = 0;
    for (const m of text.matchAll(this.splitter)) {
      const id = this.specials.get(m[0]);
      if (id === undefined) continue; // <extra_id_N> beyond extra_ids: plain bytes
      parts.push(text.slice(last, m.index), id);
      last = m.index! + m[0].length;
    }
    parts.push(text.slice(last));
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (typeof p === "number") {
        ids.push(p);
        continue;
      }
      let s = p;
      if (i > 0 && (parts[i - 1] as number) < BYTE_OFFSET) s = pyLstrip(s);
      if (i + 1 < parts.length && (parts[i + 1] as number) < BYTE_OFFSET) s = pyRstrip(s);
      this.pushBytes(ids, s);
    }
    if (opts.addEos !== false) ids.push(this.eosId);
    return ids;
  }

  encodeBatch(texts: readonly string[], opts?: EncodeOptions): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }

  /**
   * Like HF's ByT5Tokenizer.decode: bytes decoded as UTF-8 with invalid sequences dropped (errors="ignore");
   * skipSpecial (default) drops <pad>, </s>, <unk> and the sentinels. Ids at or above the vocabulary (rows of a
   * larger embedding) decode to nothing, as HF's fast tokenizers do.
   */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial !== false;
    const firstExtra = 256 + BYTE_OFFSET;
    const subTexts: string[] = [];
    let bytes: number[] = [];
    let open = false; // HF's `if current_sub_text`: a piece with tokens, even when they decode to ""
    for (const id of ids) {
      checkId(id);
      if (id >= this.vocabSize) continue;
      const special = id < BYTE_OFFSET || id >= firstExtra;
      if (special && skip) continue;
      if (id >= firstExtra) {
        if (open) {
          const s = decodeUtf8Ignore(bytes);
          if (s.length > 0) subTexts.push(s);
        }
        bytes = [];
        open = false;
        subTexts.push(`<extra_id_${id - firstExtra}>`);
        continue;
      }
      if (id < BYTE_OFFSET) for (const b of this.encoder.encode(BYTE_SPECIAL[id]!)) bytes.push(b);
      else bytes.push(id - BYTE_OFFSET);
      open = true;
    }
    if (open) subTexts.push(decodeUtf8Ignore(bytes));
    const text = subTexts.join(" ");
    return this.cleanUp ? cleanUpTokenization(text) : text;
  }
}

/** UTF-8 decoding that drops malformed bytes (Python's bytes.decode("utf-8", errors="ignore")). */
export function decodeUtf8Ignore(bytes: readonly number[]): string {
  let out = "";
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    }
    let need = 0;
    let cp = 0;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) (need = 1), (cp = b & 0x1f);
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else {
      i++; // invalid lead byte
      continue;
    }
    let j = i + 1;
    let ok = true;
    for (let k = 0; k < need; k++, j++) {
      const c = bytes[j];
      const l = k === 0 ? lo : 0x80;
      const h = k === 0 ? hi : 0xbf;
      if (c === undefined || c < l || c > h) {
        ok = false;
        break;
      }
      cp = (cp << 6) | (c & 0x3f);
    }
    if (ok) {
      out += String.fromCodePoint(cp);
      i = j;
    } else i = j; // drop the maximal invalid subpart (j stops at the offending byte)
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Hugging Face tokenizer.json

interface TokenizerJson {
  model: { type?: string; vocab?: unknown; unk_id?: number; unk_token?: string };
  normalizer?: { type?: string; precompiled_charsmap?: string; normalizers?: unknown[] } | null;
  pre_tokenizer?: { type?: string; pretokenizers?: Array<Record<string, unknown>>; [k: string]: unknown } | null;
  post_processor?: unknown;
  decoder?: unknown;
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
}

function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new TokenizerError(`${path}: cannot read (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${path}: invalid JSON (${(e as Error).message})`);
  }
}

function tokenContent(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return undefined;
}

/** The pre-tokenizer is [WhitespaceSplit?, Metaspace(▁, always)]: sentencepiece's whitespace rule applies. */
function isSpmMetaspace(pre: TokenizerJson["pre_tokenizer"]): string | undefined {
  if (!pre) return undefined;
  const steps = pre.type === "Sequence" ? (pre.pretokenizers ?? []) : [pre];
  const rest = steps.filter((s) => s.type !== "WhitespaceSplit");
  if (rest.length !== 1 || rest[0]!.type !== "Metaspace") return undefined;
  const m = rest[0]!;
  const scheme = m.prepend_scheme ?? (m.add_prefix_space === false ? "never" : "always");
  if (scheme !== "always") return undefined;
  return typeof m.replacement === "string" ? m.replacement : "\u2581";
}

const PUNCT = /[\p{P}\u0021-\u002F\u003A-\u0040\u005B-\u0060\u007B-\u007E]/u;

/** The library's Punctuation pre-tokenizer ignores `behavior` (it always keeps runs together); HF's default is Isolated. */
function patchPunctuation(pre: unknown): void {
  const p = pre as { config?: { type?: string; behavior?: string }; tokenizers?: unknown[]; pre_tokenize_text?: unknown } | null;
  if (!p) return;
  for (const child of p.tokenizers ?? []) patchPunctuation(child);
  if (p.config?.type !== "Punctuation") return;
  const behavior = p.config.behavior ?? "Isolated";
  p.pre_tokenize_text = (text: string): string[] => splitPunctuation(text, behavior);
}

/** HF's Punctuation pre-tokenizer with its SplitDelimiterBehavior. */
export function splitPunctuation(text: string, behavior: string): string[] {
  const parts: Array<{ s: string; punct: boolean }> = [];
  for (const ch of text) {
    const punct = PUNCT.test(ch);
    const last = parts[parts.length - 1];
    if (last && !punct && !last.punct) last.s += ch;
    else if (last && punct && last.punct && behavior === "Contiguous") last.s += ch;
    else parts.push({ s: ch, punct });
  }
  const out: string[] = [];
  switch (behavior) {
    case "Isolated":
    case "Contiguous":
      return parts.map((x) => x.s);
    case "Removed":
      return parts.filter((x) => !x.punct).map((x) => x.s);
    case "MergedWithPrevious":
      for (const x of parts) {
        if (x.punct && out.length && !PUNCT.test(out[out.length - 1]!.slice(-1))) out[out.length - 1] += x.s;
        else out.push(x.s);
      }
      return out;
    case "MergedWithNext": {
      let pending = "";
      for (const x of parts) {
        if (x.punct) {
          if (pending) out.push(pending);
          pending = x.s;
        } else {
          out.push(pending + x.s);
          pending = "";
        }
      }
      if (pending) out.push(pending);
      return out;
    }
    default:
      throw new TokenizerError(`tokenizer.json: unsupported Punctuation behavior ${JSON.stringify(behavior)}`);
  }
}

function libMessage(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/**
 * Which component made the library's constructor throw ("decoder"), found by constructing with one component
 * at a time (the others null); "" when none alone does. Only runs on the error path.
 */
function culprit(json: TokenizerJson, config: Record<string, unknown>): string {
  const parts = ["normalizer", "pre_tokenizer", "post_processor", "decoder"] as const;
  const bare: Record<string, unknown> = { ...json, normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null };
  const throws = (j: Record<string, unknown>) => {
    try {
      new HfLibTokenizer(j, config);
      return false;
    } catch {
      return true;
    }
  };
  if (throws({ ...bare, added_tokens: [] })) return "model";
  if (throws(bare)) return "added_tokens";
  for (const k of parts) if (throws({ ...bare, [k]: json[k] })) return k;
  return "";
}

export class HfTokenizer implements Tokenizer {
  readonly kind = "hf" as const;
  readonly vocabSize: number;
  readonly padId: number;
  readonly eosId: number;
  readonly unkId: number;
  /** True when sentencepiece's exact normalizer/Viterbi replace the library's (Unigram + Precompiled). */
  readonly sentencepieceExact: boolean;
  private readonly lib: HfLibTokenizer;
  private readonly specialIds: Set<number>;
  private readonly cleanUpSpaces: boolean;
  private readonly fast?: (text: string) => number[] | undefined;
  /** The file named in errors. */
  readonly file: string;

  constructor(
    readonly dir: string,
    json: TokenizerJson,
    config: Record<string, unknown>,
    /** the file named in errors (tokenizer.json, or the spiece.model it was converted from) */
    file = join(dir, "tokenizer.json"),
  ) {
    this.file = file;
    try {
      validateTokenizerJson(json);
    } catch (e) {
      if (e instanceof TokenizerJsonError) throw new TokenizerError(`${file}: ${e.message}`);
      throw e;
    }
    json.added_tokens ??= [];
    // HF's reader treats a missing component as none; the library requires the key.
    for (const k of ["normalizer", "pre_tokenizer", "post_processor", "decoder"] as const) if (!Object.hasOwn(json, k)) json[k] = null;
    try {
      this.lib = new HfLibTokenizer(json, config);
    } catch (e) {
      const part = culprit(json, config);
      throw new TokenizerError(`${file}: ${part ? `${part}: @huggingface/tokenizers cannot build it` : "unsupported tokenizer"} (${libMessage(e)})`);
    }
    const libAny = this.lib as unknown as {
      model: { vocab: string[]; encode: (tokens: string[]) => string[] };
      normalizer: unknown;
      pre_tokenizer: unknown;
    };
    this.specialIds = new Set(json.added_tokens.filter((t) => t.special).map((t) => t.id));
    const idOf = (name: string, candidates: Array<string | undefined>): number => {
      for (const c of candidates) {
        if (c === undefined) continue;
        const id = this.lib.token_to_id(c);
        if (id !== undefined) return id;
      }
      throw new TokenizerError(`${file}: no ${name} token in model.vocab or added_tokens (looked for ${candidates.filter(Boolean).map((c) => JSON.stringify(c)).join(", ")})`);
    };
    this.eosId = idOf("end-of-sequence", [tokenContent(config.eos_token), "</s>", "<eos>", "[SEP]"]);
    this.padId = idOf("padding", [tokenContent(config.pad_token), "<pad>", "[PAD]"]);
    const modelUnk = typeof json.model.unk_id === "number" ? libAny.model.vocab[json.model.unk_id] : json.model.unk_token;
    this.unkId = idOf("unknown", [tokenContent(config.unk_token), modelUnk, "<unk>", "[UNK]"]);
    let maxId = libAny.model.vocab.length - 1;
    for (const t of json.added_tokens) maxId = Math.max(maxId, t.id);
    this.vocabSize = maxId + 1;
    // transformers >= 4.45 defaults clean_up_tokenization_spaces to false; T5's tokenizer_config.json sets it true.
    this.cleanUpSpaces = config.clean_up_tokenization_spaces === true;

    // sentencepiece-exact mode for Unigram models (see tokenizer-spm.ts).
    this.sentencepieceExact = false;
    if (json.model.type === "Unigram" && Array.isArray(json.model.vocab)) {
      const excluded = new Set<number>(this.specialIds);
      const spm = new SpmUnigram(json.model.vocab as Array<[string, number]>, this.unkId, excluded);
      const replacement = isSpmMetaspace(json.pre_tokenizer);
      const norm = json.normalizer;
      if (norm && norm.type === "Precompiled" && typeof norm.precompiled_charsmap === "string" && replacement !== undefined) {
        const charsmap = new PrecompiledCharsmap(norm.precompiled_charsmap);
        libAny.normalizer = (text: string) => charsmap.normalize(text);
        libAny.pre_tokenizer = (text: string) => {
          const s = spmWhitespace(text, replacement);
          return s.length ? [s] : [];
        };
        this.sentencepieceExact = true;
        // Fast path (same result): a text containing no first character of an added token cannot be split
        // by them, so it goes straight through normalize -> whitespace -> Viterbi, skipping the library.
        const added = json.added_tokens;
        if (added.every((t) => t.content.length > 0 && (t as { normalized?: boolean }).normalized !== true) && config.remove_space !== true && !config.do_lowercase_and_remove_accent) {
          const firsts = new Set(added.map((t) => t.content[0]!));
          this.fast = (text: string) => {
            for (let i = 0; i < text.length; i++) if (firsts.has(text[i]!)) return undefined;
            return spm.encodeIds(spmWhitespace(charsmap.normalize(text), replacement));
          };
        }
      }
      (libAny.model as unknown as { fuse_unk: boolean }).fuse_unk = false; // encodeIds fuses unknowns itself
      libAny.model.encode = (tokens: string[]) => tokens.flatMap((t) => spm.encodePieces(t));
    }
    // The library has no WordLevel model (it falls back to a lookup whose unknown token comes from
    // tokenizer_config.json): take the unknown token from the model, as HF's WordLevel does.
    if (json.model.type === "WordLevel") {
      const unk = json.model.unk_token ?? "<unk>";
      const unkId = this.lib.token_to_id(unk);
      if (unkId === undefined) throw new TokenizerError(`${file}: model.unk_token: ${JSON.stringify(unk)} is not in model.vocab (WordLevel)`);
      const m = libAny.model as unknown as { unk_token: string; unk_token_id: number };
      m.unk_token = unk;
      m.unk_token_id = unkId;
    }
    patchPunctuation(libAny.pre_tokenizer);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: expected a string, got ${typeof text}`);
    let ids: number[];
    try {
      ids = text.length ? (this.fast?.(text) ?? this.lib.encode(text, { add_special_tokens: false }).ids) : [];
    } catch (e) {
      throw new TokenizerError(`${this.file}: encode failed in @huggingface/tokenizers (${libMessage(e)})`);
    }
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0)
        throw new TokenizerError(`${this.file}: encode produced ${JSON.stringify(id) ?? String(id)}, not a token id (is model.unk_token / model.unk_id set?)`);
    if (opts.addEos !== false) ids.push(this.eosId);
    return ids;
  }

  encodeBatch(texts: readonly string[], opts?: EncodeOptions): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }

  tokenToId(token: string): number | undefined {
    return this.lib.token_to_id(token) ?? undefined;
  }

  /** What HF's decode(ids, skip_special_tokens=...) gives, with clean_up_tokenization_spaces as configured. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial !== false;
    const kept: number[] = [];
    for (const id of ids) {
      checkId(id);
      if (id >= this.vocabSize) continue; // no token: HF's fast tokenizers skip it
      if (skip && (this.specialIds.has(id) || id === this.padId || id === this.eosId)) continue;
      kept.push(id);
    }
    if (kept.length === 0) return "";
    try {
      return this.lib.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
    } catch (e) {
      throw new TokenizerError(`${this.file}: decode failed in @huggingface/tokenizers (${libMessage(e)})`);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Loading and installing

function isByt5Config(path: string): boolean {
  if (!existsSync(path)) return false;
  const c = readJson(path) as Record<string, unknown>;
  const cls = String(c.tokenizer_class ?? "");
  const names = [cls, ...(Array.isArray(c.architectures) ? c.architectures.map(String) : []), String(c._name_or_path ?? "")];
  return names.some((n) => /byt5/i.test(n));
}

/** Which tokenizer a directory holds, or why none. */
export function detectTokenizerKind(dir: string): "hf" | "byte" {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new TokenizerError(`tokenizer directory not found: ${dir}`);
  const marker = join(dir, TOKENIZER_MARKER);
  if (existsSync(marker)) {
    const m = readJson(marker) as { type?: unknown };
    if (m?.type === "byte" || m?.type === "hf") return m.type;
    throw new TokenizerError(`${marker}: "type" must be "byte" or "hf", got ${JSON.stringify(m?.type)}`);
  }
  if (existsSync(join(dir, "tokenizer.json")) || existsSync(join(dir, "spiece.model"))) return "hf";
  if (isByt5Config(join(dir, "tokenizer_config.json")) || isByt5Config(join(dir, "config.json"))) return "byte";
  throw new TokenizerError(
    `${dir}: no tokenizer found (expected tokenizer.json, spiece.model, ${TOKENIZER_MARKER} {"type":"byte"}, or a ByT5 tokenizer_config.json/config.json)`,
  );
}

/** tokenizer_config.json "extra_ids" when it is a non-negative integer; else undefined. Errors name the file. */
function configExtraIds(config: Record<string, unknown>, path: string): number | undefined {
  const v = config.extra_ids;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 100000)
    throw new TokenizerError(`${path}: "extra_ids" must be an integer in [0, 100000], got ${JSON.stringify(v)}`);
  return v;
}

/** model_type of the directory's config.json, when there is one. */
function modelType(dir: string): string | undefined {
  const p = join(dir, "config.json");
  if (!existsSync(p)) return undefined;
  try {
    const c = JSON.parse(readFileSync(p, "utf8")) as { model_type?: unknown };
    return typeof c?.model_type === "string" ? c.model_type : undefined;
  } catch {
    return undefined; // config.json errors are reported by the model loader
  }
}

/**
 * Loads the tokenizer of a checkpoint directory (synchronous; a T5 tokenizer.json takes ~0.1 s).
 * tokenizer.json is used when present; else spiece.model (T5 v1.1 / LM-adapt, mT5 ship only that) is converted as
 * transformers' T5Converter does, with tokenizer_config.json's extra_ids sentinels (T5Tokenizer's default 100; 0
 * for an mT5 config.json without the key, as google/mt5-* set it); else a ByT5 byte vocabulary.
 */
export function loadTokenizer(dir: string): Tokenizer {
  const kind = detectTokenizerKind(dir);
  const cfgPath = join(dir, "tokenizer_config.json");
  const config = existsSync(cfgPath) ? (readJson(cfgPath) as Record<string, unknown>) : {};
  if (config === null || typeof config !== "object" || Array.isArray(config)) throw new TokenizerError(`${cfgPath}: expected a JSON object`);
  if (kind === "byte")
    return new ByteTokenizer({
      extraIds: configExtraIds(config, cfgPath) ?? BYT5_EXTRA_IDS,
      cleanUpTokenizationSpaces: config.clean_up_tokenization_spaces === true,
    });
  const jsonPath = join(dir, "tokenizer.json");
  if (existsSync(jsonPath)) return new HfTokenizer(dir, readJson(jsonPath) as TokenizerJson, config);
  const spPath = join(dir, "spiece.model");
  if (!existsSync(spPath)) throw new TokenizerError(`${jsonPath}: missing, and no spiece.model either (${TOKENIZER_MARKER} says "hf")`);
  let json: Record<string, unknown>;
  try {
    const extraIds = configExtraIds(config, cfgPath) ?? (modelType(dir) === "mt5" ? 0 : 100);
    json = spieceToTokenizerJson(readSpieceModel(spPath), { extraIds }, spPath);
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    throw new TokenizerError((e as Error).message);
  }
  return new HfTokenizer(dir, json as unknown as TokenizerJson, config, spPath);
}

/** Where the real T5 tokenizer lives: INSTILL_T5_TOKENIZER, else ../shared/data/t5-tokenizer beside the repo. */
export function t5TokenizerDir(): string {
  if (process.env.INSTILL_T5_TOKENIZER) return resolve(process.env.INSTILL_T5_TOKENIZER);
  // dist/src/model/tokenizer.js or src/model/tokenizer.ts -> repo root
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !existsSync(join(dir, "package.json")); i++) dir = dirname(dir);
  return resolve(dir, "..", "shared", "data", "t5-tokenizer");
}

/**
 * Puts a tokenizer into `outDir` (used by `instill model init --tokenizer <t5|byte|dir>`):
 * "t5" copies the real T5 files, "byte" writes the byte marker, a directory has its HF files copied
 * (or its byte marker, for a byte-level directory). Returns the kind installed.
 */
export function installTokenizer(spec: string, outDir: string): "hf" | "byte" {
  mkdirSync(outDir, { recursive: true });
  if (spec === "byte") {
    writeFileSync(join(outDir, TOKENIZER_MARKER), JSON.stringify({ type: "byte" }) + "\n");
    return "byte";
  }
  let src: string;
  if (spec === "t5") {
    src = t5TokenizerDir();
    if (!existsSync(join(src, "tokenizer.json")))
      throw new TokenizerError(
        `the T5 tokenizer is not available: ${join(src, "tokenizer.json")} is missing (set INSTILL_T5_TOKENIZER to a directory with T5's tokenizer.json, or pass --tokenizer <dir>)`,
      );
  } else {
    src = resolve(spec);
  }
  const kind = detectTokenizerKind(src);
  if (kind === "byte") {
    writeFileSync(join(outDir, TOKENIZER_MARKER), JSON.stringify({ type: "byte" }) + "\n");
    for (const f of ["tokenizer_config.json", "special_tokens_map.json"])
      if (existsSync(join(src, f)) && resolve(src, f) !== resolve(outDir, f)) copyFileSync(join(src, f), join(outDir, f));
    return "byte";
  }
  let copied = 0;
  for (const f of HF_FILES) {
    if (existsSync(join(src, f))) {
      if (resolve(src, f) !== resolve(outDir, f)) copyFileSync(join(src, f), join(outDir, f));
      copied++;
    }
  }
  if (!existsSync(join(outDir, "tokenizer.json")) && !existsSync(join(outDir, "spiece.model")))
    throw new TokenizerError(`${src}: no tokenizer.json or spiece.model to copy`);
  loadTokenizer(outDir); // fail now, naming the file, rather than at training time
  return copied > 0 ? "hf" : kind;
}
