// INSTA task selection (issue 6): embedders, the embedding cache, exact top-k searchers and selection.
export type { Embedder, EmbeddingMatrix } from "./embedder.js";
export { toMatrix, embedMatrix, normalizeRows, pickRows } from "./embedder.js";
export { LexicalEmbedder, tokenize, STOPWORDS } from "./lexical.js";
export type { LexicalOptions } from "./lexical.js";
export { EmbeddingCache, cachedEmbedder, DEFAULT_CACHE_DIR } from "./cache.js";
export { bruteForceTopk, createSearcher, JsSearcher, NativeSearcher } from "./topk.js";
export type { Searcher, TopkOutput } from "./topk.js";
export { selectTasks, SelectionError } from "./select.js";
export type { PoolTask, SelectionTarget, SelectOptions, SelectedTask, Selection, SelectionRun } from "./select.js";
export { loadPool, readDefinitions, restrictPool, targetFromFile, targetsFromNames, instructionOf, PoolError } from "./pool.js";
export type { LoadedPool } from "./pool.js";
export { createEmbedder, registerEmbedder, EMBEDDERS } from "./registry.js";
export type { EmbedderFactory } from "./registry.js";
export { EncoderEmbedder, createEncoderEmbedder } from "./encoder.js";
export { TrainedEmbedder, createTrainedEmbedder, trainSentenceEncoder, wordingRetrieval } from "./trained.js";
export { selectTrain } from "./train.js";
export type { SelectTrainOptions, SelectTrainResult, TargetResult } from "./train.js";
