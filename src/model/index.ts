// The T5 model handle and the contract types of the model layer.
export { T5Model, makeBatch } from "./model.js";
export type { T5Preset, LoadOptions, InitOptions } from "./model.js";
export type {
  T5ConfigJson,
  Batch,
  LoraOptions,
  OptimizerOptions,
  TrainStepsResult,
  GenerateOptions,
  NativeModelHandle,
} from "./types.js";
