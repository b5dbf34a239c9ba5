// Task data: SNI / BBH / JSONL loaders, the Tk-Instruct encoding and the embedded instruction suite.
export type { SniExample, SniInstance, SniTask, EncodingOptions, ScoredItem } from "./types.js";
export { DataError } from "./errors.js";
export {
  readSniTask,
  sniTaskFromJson,
  readTaskDir,
  readTaskList,
  readSplit,
  splitDir,
  loadSplitTasks,
  isEnglishTask,
  sampleIndices,
} from "./sni.js";
export type { OnBadTask, SkippedTask, ReadSniOptions, ReadTaskDirOptions, TaskCollection, LoadSplitOptions, SplitTasks } from "./sni.js";
export { readBbhTask, parseBbhOptions } from "./bbh.js";
export type { ReadBbhOptions, ParsedOptions } from "./bbh.js";
export { readJsonlTasks } from "./jsonl.js";
export { encodeTkInstruct, encodeTkInstructDetailed, countWhitespaceTokens, DEFAULT_ENCODING } from "./encode.js";
export type { CountTokens, EncodedSource } from "./encode.js";
export {
  synthesizeSuite,
  writeSuite,
  suiteVocabulary,
  suiteTokenizerJson,
  suiteTaskToSniJson,
  suiteTaskSpecs,
  whitespacePreTokenize,
  runSteps,
  primitive,
  PRIMITIVES,
  SUITE_WORDS,
  SUITE_LETTERS,
} from "./suite.js";
export type { Suite, SuiteTask, Primitive, SynthesizeOptions, WrittenSuite } from "./suite.js";
export { makeRng, shuffleInPlace } from "../util/rng.js";
export {
  synthesizeSuiteV2,
  writeSuiteV2,
  suiteV2Vocabulary,
  suiteV2TaskToSniJson,
  suiteV2Specs,
  suiteV2Groups,
  runV2Steps,
  sharedInput,
  family,
  phraseText,
  sentinelToken,
  FAMILIES,
  V2_WORDS,
  V2_LETTERS,
  V2_HELD_OUT,
  V2_SEEN_PHRASES,
  V2_SENTINELS,
  V2_TEST_GROUPS,
} from "./suite-v2.js";
export type { SuiteV2, SuiteV2Task, Family, Step, Args, V2Group, SynthesizeV2Options, WrittenSuiteV2 } from "./suite-v2.js";
