// instill's public API.
export { loadAddon, setThreads, AddonLoadError } from "./native/binding.js";
export type { Addon, HostTensor, Dtype, RuntimeInfo, ProgressEvent } from "./native/types.js";
export { doctor } from "./cli/doctor.js";
export * from "./data/index.js";
export * from "./metrics/index.js";
export { loadTokenizer, installTokenizer, detectTokenizerKind, t5TokenizerDir, HfTokenizer, ByteTokenizer, TokenizerError, TOKENIZER_MARKER } from "./model/tokenizer.js";
export type { Tokenizer, EncodeOptions as TokenizerEncodeOptions, DecodeOptions as TokenizerDecodeOptions } from "./model/tokenizer.js";
