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
  /** One more than the largest id the tokenizer can produce (T5: 32100, ByT5 bytes: 259). */
  vocabSize: number;
  padId: number;
  eosId: number;
  unkId: number;
  encode(text: string, opts?: EncodeOptions): number[];
  encodeBatch(texts: readonly string[], opts?: EncodeOptions): number[][];
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** encode(text).length, EOS included: what HF's len(tokenizer(text).input_ids) gives (Tk-Instruct's budget). */
  countTokens(text: string): number;
}

/** The marker file instill writes for (and reads to pick) a tokenizer type. */
export const TOKENIZER_MARKER = "instill_tokenizer.json";
const HF_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"] as const;

export class TokenizerError extends Error {
  override name = "TokenizerError";
}

// ---------------------------------------------------------------------------------------------------------
// Byte level (ByT5): id = utf-8 byte + 3; pad 0, eos 1, unk 2.

const BYTE_OFFSET = 3;
const BYTE_SPECIAL = ["<pad>", "</s>", "<unk>"];

export class ByteTokenizer implements Tokenizer {
  readonly kind = "byte" as const;
  readonly vocabSize = 256 + BYTE_OFFSET;
  readonly padId = 0;
  readonly eosId = 1;
  readonly unkId = 2;
  private readonly encoder = new TextEncoder();

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const bytes = this.encoder.encode(text);
    const ids = new Array<number>(bytes.length + (opts.addEos === false ? 0 : 1));
    for (let i = 0; i < bytes.length; i++) ids[i] = bytes[i]! + BYTE_OFFSET;
    if (opts.addEos !== false) ids[bytes.length] = this.eosId;
    return ids;
  }

  encodeBatch(texts: readonly string[], opts?: EncodeOptions): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  countTokens(text: string): number {
    return Buffer.byteLength(text, "utf8") + 1;
  }

  /** Like HF's ByT5Tokenizer: bytes decoded as UTF-8 with invalid sequences dropped (errors="ignore"). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial !== false;
    let out = "";
    let bytes: number[] = [];
    const flush = () => {
      if (bytes.length) out += decodeUtf8Ignore(bytes);
      bytes = [];
    };
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`decode: id ${id} is outside the byte vocabulary [0, ${this.vocabSize})`);
      if (id < BYTE_OFFSET) {
        if (!skip) {
          flush();
          out += BYTE_SPECIAL[id];
        }
      } else bytes.push(id - BYTE_OFFSET);
    }
    flush();
    return out;
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
  model?: { type?: string; vocab?: unknown; unk_id?: number; unk_token?: string };
  normalizer?: { type?: string; precompiled_charsmap?: string; normalizers?: unknown[] } | null;
  pre_tokenizer?: { type?: string; pretokenizers?: Array<Record<string, unknown>>; [k: string]: unknown } | null;
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

  constructor(
    readonly dir: string,
    json: TokenizerJson,
    config: Record<string, unknown>,
  ) {
    const file = join(dir, "tokenizer.json");
    if (!json || typeof json !== "object" || !json.model || typeof json.model !== "object")
      throw new TokenizerError(`${file}: not a Hugging Face tokenizer.json (no "model" object)`);
    json.added_tokens ??= [];
    try {
      this.lib = new HfLibTokenizer(json, config);
    } catch (e) {
      throw new TokenizerError(`${file}: unsupported tokenizer (${(e as Error).message})`);
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
      throw new TokenizerError(`${file}: no ${name} token (looked for ${candidates.filter(Boolean).map((c) => JSON.stringify(c)).join(", ")})`);
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
      if (unkId === undefined) throw new TokenizerError(`${file}: WordLevel unk_token ${JSON.stringify(unk)} is not in the vocabulary`);
      const m = libAny.model as unknown as { unk_token: string; unk_token_id: number };
      m.unk_token = unk;
      m.unk_token_id = unkId;
    }
    patchPunctuation(libAny.pre_tokenizer);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== "string") throw new TypeError(`encode: expected a string, got ${typeof text}`);
    const ids = text.length ? (this.fast?.(text) ?? this.lib.encode(text, { add_special_tokens: false }).ids) : [];
    if (opts.addEos !== false) ids.push(this.eosId);
    return ids;
  }

  encodeBatch(texts: readonly string[], opts?: EncodeOptions): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  countTokens(text: string): number {
    return this.encode(text).length;
  }

  /** What HF's decode(ids, skip_special_tokens=...) gives, with clean_up_tokenization_spaces as configured. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const skip = opts.skipSpecial !== false;
    const kept: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`decode: id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      if (skip && (this.specialIds.has(id) || id === this.padId || id === this.eosId)) continue;
      kept.push(id);
    }
    if (kept.length === 0) return "";
    return this.lib.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.cleanUpSpaces });
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
  if (existsSync(join(dir, "tokenizer.json"))) return "hf";
  if (isByt5Config(join(dir, "tokenizer_config.json")) || isByt5Config(join(dir, "config.json"))) return "byte";
  throw new TokenizerError(
    `${dir}: no tokenizer found (expected tokenizer.json, ${TOKENIZER_MARKER} {"type":"byte"}, or a ByT5 tokenizer_config.json/config.json)`,
  );
}

/** Loads the tokenizer of a checkpoint directory (synchronous; a T5 tokenizer.json takes ~0.1 s). */
export function loadTokenizer(dir: string): Tokenizer {
  const kind = detectTokenizerKind(dir);
  if (kind === "byte") return new ByteTokenizer();
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath)) throw new TokenizerError(`${jsonPath}: missing (${TOKENIZER_MARKER} says "hf")`);
  const json = readJson(jsonPath) as TokenizerJson;
  const cfgPath = join(dir, "tokenizer_config.json");
  const config = existsSync(cfgPath) ? (readJson(cfgPath) as Record<string, unknown>) : {};
  return new HfTokenizer(dir, json, config);
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
    return "byte";
  }
  let copied = 0;
  for (const f of HF_FILES) {
    if (existsSync(join(src, f))) {
      if (resolve(src, f) !== resolve(outDir, f)) copyFileSync(join(src, f), join(outDir, f));
      copied++;
    }
  }
  if (!existsSync(join(outDir, "tokenizer.json"))) throw new TokenizerError(`${src}: no tokenizer.json to copy`);
  loadTokenizer(outDir); // fail now, naming the file, rather than at training time
  return copied > 0 ? "hf" : kind;
}
