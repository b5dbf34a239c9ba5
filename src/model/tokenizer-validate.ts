// Structural checks of a Hugging Face tokenizer.json before @huggingface/tokenizers sees it: every
// problem is reported as "<field path>: <what is wrong>" (e.g. `normalizer.type: unknown normalizer "Foo"`), which
// the caller prefixes with the file's path. The checks cover what the library reads while constructing,
// encoding and decoding (model and its vocabulary, added_tokens, the four pipeline components and the fields of
// theirs the library uses); unknown extra keys are allowed, as in HF's own reader. O(vocabulary), once per load.

/** The component types @huggingface/tokenizers 0.2 constructs (its create_* switches). */
export const SUPPORTED_TYPES = {
  model: ["WordLevel", "WordPiece", "BPE", "Unigram"],
  normalizer: ["BertNormalizer", "Precompiled", "Sequence", "Replace", "NFC", "NFD", "NFKC", "NFKD", "Strip", "StripAccents", "Lowercase", "Prepend"],
  pre_tokenizer: ["BertPreTokenizer", "Sequence", "Whitespace", "WhitespaceSplit", "Metaspace", "ByteLevel", "Split", "Punctuation", "Digits", "Replace", "FixedLength"],
  post_processor: ["TemplateProcessing", "ByteLevel", "BertProcessing", "RobertaProcessing", "Sequence"],
  decoder: ["ByteLevel", "WordPiece", "Metaspace", "BPEDecoder", "CTC", "Sequence", "Replace", "Fuse", "Strip", "ByteFallback"],
} as const;

type Component = Exclude<keyof typeof SUPPORTED_TYPES, "model">;
const NOUN: Record<Component, string> = { normalizer: "normalizer", pre_tokenizer: "pre-tokenizer", post_processor: "post-processor", decoder: "decoder" };
/** The children of a Sequence, per component. */
const SEQUENCE_KEY: Record<Component, string> = { normalizer: "normalizers", pre_tokenizer: "pretokenizers", post_processor: "processors", decoder: "decoders" };

/** Largest token id: ids travel as int32 to the native core. */
const MAX_ID = 2 ** 31 - 1;

export class TokenizerJsonError extends Error {
  override name = "TokenizerJsonError";
  constructor(readonly field: string, what: string) {
    super(`${field}: ${what}`);
  }
}

const show = (v: unknown): string => {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + "..." : s;
};
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);
const fail = (field: string, what: string): never => {
  throw new TokenizerJsonError(field, what);
};
/** obj[key] as an own property (so "__proto__" or "constructor" keys never read the prototype). */
const own = (obj: Record<string, unknown>, key: string): unknown => (Object.hasOwn(obj, key) ? obj[key] : undefined);

type Kind = "string" | "bool" | "int" | "number" | "pattern" | "pair" | "strings";
function checkKind(v: unknown, kind: Kind, field: string): void {
  switch (kind) {
    case "string":
      if (typeof v !== "string") fail(field, `expected a string, got ${show(v)}`);
      return;
    case "bool":
      if (typeof v !== "boolean") fail(field, `expected true or false, got ${show(v)}`);
      return;
    case "int":
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > MAX_ID) fail(field, `expected a non-negative integer, got ${show(v)}`);
      return;
    case "number":
      if (typeof v !== "number" || !Number.isFinite(v)) fail(field, `expected a finite number, got ${show(v)}`);
      return;
    case "strings":
      if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) fail(field, `expected an array of strings, got ${show(v)}`);
      return;
    case "pair": // [token, id] (BertProcessing's sep/cls)
      if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== "string" || !Number.isInteger(v[1]) || (v[1] as number) < 0)
        fail(field, `expected [token, id], got ${show(v)}`);
      return;
    case "pattern": {
      // {"String": s} or {"Regex": r}, as HF serializes a SplitPattern / ReplacePattern
      if (!isObject(v)) return fail(field, `expected {"String": ...} or {"Regex": ...}, got ${show(v)}`);
      const s = own(v, "String");
      const r = own(v, "Regex");
      if (typeof s === "string") return;
      // The regex itself is compiled by the library (it rewrites Oniguruma syntax first); its errors name the component.
      if (typeof r !== "string") fail(field, `expected {"String": ...} or {"Regex": ...}, got ${show(v)}`);
      return;
    }
  }
}

/** Field kinds per component type: `name` required, `name?` optional (null counts as absent for optional ones). */
const FIELDS: Record<Component, Record<string, Record<string, Kind>>> = {
  normalizer: {
    BertNormalizer: { "clean_text?": "bool", "handle_chinese_chars?": "bool", "lowercase?": "bool" },
    Precompiled: { precompiled_charsmap: "string" },
    Replace: { pattern: "pattern", content: "string" },
    Strip: { "strip_left?": "bool", "strip_right?": "bool" },
    Prepend: { prepend: "string" },
  },
  pre_tokenizer: {
    Metaspace: { "replacement?": "string", "add_prefix_space?": "bool", "prepend_scheme?": "string", "split?": "bool" },
    ByteLevel: { "add_prefix_space?": "bool", "trim_offsets?": "bool", "use_regex?": "bool" },
    Split: { pattern: "pattern", "behavior?": "string", "invert?": "bool" },
    Punctuation: { "behavior?": "string" },
    Digits: { "individual_digits?": "bool" },
    Replace: { pattern: "pattern", content: "string" },
    FixedLength: { "length?": "int" },
  },
  post_processor: {
    BertProcessing: { sep: "pair", cls: "pair" },
    RobertaProcessing: { sep: "pair", cls: "pair", "trim_offsets?": "bool", "add_prefix_space?": "bool" },
    ByteLevel: { "add_prefix_space?": "bool", "trim_offsets?": "bool", "use_regex?": "bool" },
  },
  decoder: {
    ByteLevel: { "add_prefix_space?": "bool", "trim_offsets?": "bool", "use_regex?": "bool" },
    WordPiece: { "prefix?": "string", "cleanup?": "bool" },
    Metaspace: { "replacement?": "string", "add_prefix_space?": "bool", "prepend_scheme?": "string", "split?": "bool" },
    BPEDecoder: { "suffix?": "string" },
    CTC: { "pad_token?": "string", "word_delimiter_token?": "string", "cleanup?": "bool" },
    Replace: { pattern: "pattern", content: "string" },
    Strip: { "content?": "string", "start?": "int", "stop?": "int" },
  },
};

const BEHAVIORS = ["Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"];
const PREPEND_SCHEMES = ["always", "never", "first"];

function checkFields(cfg: Record<string, unknown>, spec: Record<string, Kind>, path: string): void {
  for (const [k, kind] of Object.entries(spec)) {
    const optional = k.endsWith("?");
    const name = optional ? k.slice(0, -1) : k;
    const v = own(cfg, name);
    if (v === undefined || (optional && v === null)) {
      if (!optional) fail(`${path}.${name}`, "missing");
      continue;
    }
    checkKind(v, kind, `${path}.${name}`);
  }
}

/** TemplateProcessing: single/pair items and special_tokens (what its post_process and HF's reader need). */
function checkTemplate(cfg: Record<string, unknown>, path: string): void {
  const specials = own(cfg, "special_tokens") ?? {};
  if (!isObject(specials)) fail(`${path}.special_tokens`, `expected an object, got ${show(specials)}`);
  for (const [name, st] of Object.entries(specials as Record<string, unknown>)) {
    const p = `${path}.special_tokens[${JSON.stringify(name)}]`;
    if (!isObject(st)) fail(p, `expected {"id", "ids", "tokens"}, got ${show(st)}`);
    const s = st as Record<string, unknown>;
    checkKind(own(s, "id"), "string", `${p}.id`);
    const ids = own(s, "ids");
    if (!Array.isArray(ids) || !ids.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= MAX_ID))
      fail(`${p}.ids`, `expected an array of non-negative integers, got ${show(ids)}`);
    checkKind(own(s, "tokens"), "strings", `${p}.tokens`);
  }
  for (const which of ["single", "pair"]) {
    const items = own(cfg, which);
    const p = `${path}.${which}`;
    if (!Array.isArray(items)) {
      fail(p, `expected an array of {"Sequence": ...} / {"SpecialToken": ...} items, got ${show(items)}`);
      continue;
    }
    items.forEach((item, i) => {
      const ip = `${p}[${i}]`;
      if (!isObject(item)) return fail(ip, `expected {"Sequence": ...} or {"SpecialToken": ...}, got ${show(item)}`);
      const seq = own(item, "Sequence");
      const sp = own(item, "SpecialToken");
      const [key, body] = sp !== undefined ? ["SpecialToken", sp] : seq !== undefined ? ["Sequence", seq] : [undefined, undefined];
      if (key === undefined) return fail(ip, `expected {"Sequence": ...} or {"SpecialToken": ...}, got ${show(item)}`);
      if (!isObject(body)) return fail(`${ip}.${key}`, `expected {"id", "type_id"}, got ${show(body)}`);
      const id = own(body, "id");
      if (key === "Sequence") {
        if (id !== "A" && id !== "B") fail(`${ip}.Sequence.id`, `expected "A" or "B", got ${show(id)}`);
      } else {
        checkKind(id, "string", `${ip}.SpecialToken.id`);
        if (!Object.hasOwn(specials as object, id as string))
          fail(`${ip}.SpecialToken.id`, `${show(id)} is not in ${path}.special_tokens`);
      }
      const typeId = own(body, "type_id");
      if (typeId !== undefined) checkKind(typeId, "int", `${ip}.${key}.type_id`);
    });
  }
}

function checkComponent(which: Component, cfg: unknown, path: string): void {
  if (cfg === null || cfg === undefined) return;
  if (!isObject(cfg)) return fail(path, `expected an object with a "type", or null, got ${show(cfg)}`);
  const type = own(cfg, "type");
  const supported: readonly string[] = SUPPORTED_TYPES[which];
  if (typeof type !== "string" || !supported.includes(type))
    return fail(
      `${path}.type`,
      `${type === undefined ? "missing" : `unknown ${NOUN[which]} ${show(type)}`} (supported: ${supported.join(", ")})`,
    );
  if (type === "Sequence") {
    const key = SEQUENCE_KEY[which];
    const children = own(cfg, key);
    if (!Array.isArray(children)) return fail(`${path}.${key}`, `expected an array of ${NOUN[which]}s, got ${show(children)}`);
    children.forEach((c, i) => {
      if (c === null) fail(`${path}.${key}[${i}]`, `expected a ${NOUN[which]} object, got null`);
      checkComponent(which, c, `${path}.${key}[${i}]`);
    });
    return;
  }
  if (which === "post_processor" && type === "TemplateProcessing") checkTemplate(cfg, path);
  const spec = FIELDS[which][type];
  if (spec) checkFields(cfg, spec, path);
  const behavior = own(cfg, "behavior");
  if ((type === "Split" || type === "Punctuation") && behavior !== undefined && !BEHAVIORS.includes(behavior as string))
    fail(`${path}.behavior`, `expected one of ${BEHAVIORS.join(", ")}, got ${show(behavior)}`);
  const scheme = own(cfg, "prepend_scheme");
  if (type === "Metaspace" && scheme !== undefined && scheme !== null && !PREPEND_SCHEMES.includes(scheme as string))
    fail(`${path}.prepend_scheme`, `expected one of ${PREPEND_SCHEMES.join(", ")}, got ${show(scheme)}`);
}

function checkTokenVocab(vocab: unknown, path: string): void {
  if (!isObject(vocab)) return fail(path, `expected an object {token: id}, got ${show(vocab)}`);
  for (const token in vocab) {
    if (!Object.hasOwn(vocab, token)) continue;
    const id = vocab[token];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > MAX_ID)
      fail(`${path}[${show(token)}]`, `token id must be a non-negative integer, got ${show(id)}`);
  }
}

function checkModel(model: unknown): void {
  if (!isObject(model)) return fail("model", `expected an object, got ${show(model)}`);
  const type = own(model, "type");
  const supported: readonly string[] = SUPPORTED_TYPES.model;
  if (typeof type !== "string" || !supported.includes(type))
    return fail("model.type", `${type === undefined ? "missing" : `unknown model ${show(type)}`} (supported: ${supported.join(", ")})`);
  const vocab = own(model, "vocab");
  const optString = (k: string) => {
    const v = own(model, k);
    if (v !== undefined && v !== null) checkKind(v, "string", `model.${k}`);
  };
  if (type === "Unigram") {
    if (!Array.isArray(vocab) || vocab.length === 0) return fail("model.vocab", `expected a non-empty array of [piece, score], got ${show(vocab)}`);
    for (let i = 0; i < vocab.length; i++) {
      const e = vocab[i] as unknown;
      if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== "string" || typeof e[1] !== "number" || !Number.isFinite(e[1]))
        fail(`model.vocab[${i}]`, `expected [piece, finite score], got ${show(e)}`);
    }
    const unk = own(model, "unk_id");
    if (unk !== undefined && unk !== null && (typeof unk !== "number" || !Number.isInteger(unk) || unk < 0 || unk >= vocab.length))
      fail("model.unk_id", `expected an index into model.vocab (0..${vocab.length - 1}) or null, got ${show(unk)}`);
    const bf = own(model, "byte_fallback");
    if (bf !== undefined && bf !== null) checkKind(bf, "bool", "model.byte_fallback");
    return;
  }
  checkTokenVocab(vocab, "model.vocab");
  optString("unk_token");
  if (type === "WordPiece") {
    optString("continuing_subword_prefix");
    const m = own(model, "max_input_chars_per_word");
    if (m !== undefined && m !== null) checkKind(m, "int", "model.max_input_chars_per_word");
  }
  if (type === "BPE") {
    optString("continuing_subword_prefix");
    optString("end_of_word_suffix");
    for (const k of ["fuse_unk", "byte_fallback", "ignore_merges"]) {
      const v = own(model, k);
      if (v !== undefined && v !== null) checkKind(v, "bool", `model.${k}`);
    }
    const dropout = own(model, "dropout");
    if (dropout !== undefined && dropout !== null && (typeof dropout !== "number" || !(dropout >= 0 && dropout <= 1)))
      fail("model.dropout", `expected a number in [0, 1] or null, got ${show(dropout)}`);
    const merges = own(model, "merges");
    if (!Array.isArray(merges)) return fail("model.merges", `expected an array of "a b" strings or [a, b] pairs, got ${show(merges)}`);
    // The library picks the format from the first entry; all must share it.
    const pairs = merges.length > 0 && Array.isArray(merges[0]);
    merges.forEach((m, i) => {
      const ok = pairs
        ? Array.isArray(m) && m.length === 2 && typeof m[0] === "string" && typeof m[1] === "string"
        : typeof m === "string" && m.split(" ").length === 2;
      if (!ok) fail(`model.merges[${i}]`, `expected ${pairs ? "an [a, b] pair of strings (as model.merges[0])" : 'an "a b" string'}, got ${show(m)}`);
    });
  }
}

const ADDED_FLAGS = ["single_word", "lstrip", "rstrip", "normalized", "special"];

/** The model's vocabulary both ways (validated by checkModel first). */
function modelVocab(model: Record<string, unknown>): { idOf: (token: string) => number | undefined; tokenOf: (id: number) => string | undefined } {
  const vocab = own(model, "vocab");
  if (Array.isArray(vocab)) {
    const pieces = vocab as Array<[string, number]>;
    let index: Map<string, number> | undefined;
    return {
      idOf: (t) => (index ??= new Map(pieces.map(([p], i) => [p, i]))).get(t), // the last of duplicate pieces wins, as in the library
      tokenOf: (id) => pieces[id]?.[0],
    };
  }
  const v = vocab as Record<string, number>;
  let reverse: Map<number, string> | undefined;
  return {
    idOf: (t) => (Object.hasOwn(v, t) ? v[t] : undefined),
    tokenOf: (id) => {
      if (!reverse) {
        reverse = new Map();
        for (const t in v) if (Object.hasOwn(v, t) && !reverse.has(v[t]!)) reverse.set(v[t]!, t);
      }
      return reverse.get(id);
    },
  };
}

/**
 * Entries are {id, content, flags}; as HF's reader, a token of the model's vocabulary keeps its vocabulary id, and
 * one that is not needs an id no other token has (else the file is inconsistent: HF would renumber it, the
 * library would overwrite the vocabulary entry).
 */
function checkAddedTokens(added: unknown, model: Record<string, unknown>): void {
  if (added === undefined || added === null) return;
  if (!Array.isArray(added)) return fail("added_tokens", `expected an array, got ${show(added)}`);
  const vocab = modelVocab(model);
  const byId = new Map<number, { content: string; i: number }>();
  added.forEach((t, i) => {
    const p = `added_tokens[${i}]`;
    if (!isObject(t)) return fail(p, `expected {"id", "content", "special", ...}, got ${show(t)}`);
    const id = own(t, "id");
    checkKind(id, "int", `${p}.id`);
    const content = own(t, "content");
    if (typeof content !== "string" || content.length === 0) return fail(`${p}.content`, `expected a non-empty string, got ${show(content)}`);
    for (const f of ADDED_FLAGS) {
      const v = own(t, f);
      if (v !== undefined) checkKind(v, "bool", `${p}.${f}`);
    }
    const n = id as number;
    const inVocab = vocab.idOf(content);
    if (inVocab !== undefined && inVocab !== n) fail(`${p}.id`, `${n}, but ${show(content)} has id ${inVocab} in model.vocab`);
    const other = vocab.tokenOf(n);
    if (inVocab === undefined && other !== undefined)
      fail(`${p}.id`, `${n} is the id of ${show(other)} in model.vocab; ${show(content)} (content) needs an id of its own`);
    const prev = byId.get(n);
    if (prev && prev.content !== content) fail(`${p}.id`, `${n} is also the id of added_tokens[${prev.i}] (${show(prev.content)})`);
    byId.set(n, { content, i });
  });
}

/**
 * Throws a TokenizerJsonError naming the field when `json` is not a tokenizer.json @huggingface/tokenizers can
 * construct, encode and decode with. Accepts absent normalizer/pre_tokenizer/post_processor/decoder/added_tokens.
 */
export function validateTokenizerJson(json: unknown): void {
  if (!isObject(json)) return fail("(root)", `expected a tokenizer.json object, got ${show(json)}`);
  if (own(json, "model") === undefined) fail("model", `missing: not a Hugging Face tokenizer.json (no "model" object)`);
  checkModel(own(json, "model"));
  checkAddedTokens(own(json, "added_tokens"), own(json, "model") as Record<string, unknown>);
  for (const which of Object.keys(NOUN) as Component[]) checkComponent(which, own(json, which), which);
  for (const k of ["truncation", "padding"]) {
    const v = own(json, k);
    if (v !== undefined && v !== null && !isObject(v)) fail(k, `expected an object or null, got ${show(v)}`);
  }
}
