// instill's public API.
export { loadAddon, setThreads, AddonLoadError } from "./native/binding.js";
export type { Addon, HostTensor, Dtype, RuntimeInfo, ProgressEvent } from "./native/types.js";
export { doctor } from "./cli/doctor.js";
export * from "./data/index.js";
export * from "./metrics/index.js";
export { loadTokenizer, installTokenizer, detectTokenizerKind, t5TokenizerDir, HfTokenizer, ByteTokenizer, TokenizerError, TOKENIZER_MARKER } from "./model/tokenizer.js";
export type { Tokenizer, EncodeOptions as TokenizerEncodeOptions, DecodeOptions as TokenizerDecodeOptions } from "./model/tokenizer.js";
export * from "./select/index.js";
export type { NativeTopkIndex, TopkResultHost, TopkSearchOptions, BandwidthBenchResult } from "./native/types.js";
export * from "./model/index.js";
export type { NativeT5 } from "./native/types.js";
export { inspectCheckpoint, readSafetensors, writeSafetensors, readCheckpointWeights, readPeftAdapter, writePeftAdapter, convertCheckpoint } from "./model/checkpoint.js";
export type { CheckpointFolderInfo, LoraModule, PeftAdapter, PeftWriteOptions, ConvertOptions, ConvertResult } from "./model/checkpoint.js";
export type { SafetensorsEntryInfo, SafetensorsHeaderInfo, NamedHostTensors, PeftAdapterHost, LoraModuleHost } from "./native/types.js";
