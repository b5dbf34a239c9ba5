// What a method's row of a comparison (train on a split, evaluate on its test tasks) reads from its caller: the demo
// (src/demo/demo.ts's DemoContext is one) or any other driver of side-by-side runs. A row module depends on this
// narrow shape, not on the demo, so the demo can import the rows without an import cycle.
import type { EncodingOptions, SniTask } from "../data/types.js";
import type { EvalResult } from "./evaluate.js";
import type { RunConfig } from "../train/config.js";

export interface RowContext {
  /** This run's folder (rows write under <out>/runs/<method>). */
  out: string;
  /** The checkpoint every row starts from. */
  modelDir: string;
  train: SniTask[];
  test: SniTask[];
  seed: number;
  /** Steps, batch size and learning rate of every row. */
  budget: { steps: number; batchSize: number; lr: number };
  baseConfig: Pick<RunConfig, "encoding" | "maxTargetLength">;
  evalOptions: { batchSize: number; maxNewTokens: number; numBeams: number };
}

/** What one row gives for one seed. */
export interface RowRun {
  method: string;
  eval: Pick<EvalResult, "predictions">;
  train_steps: number;
  train_seconds: number;
  final_loss: number;
  curve: number[];
  /** The encoder input at inference (for the tokens read per example). */
  encoding: EncodingOptions;
  /** Soft tokens prepended per example (DIO). */
  softTokens?: number;
  /** Instruction tokens read once per task by a hypernetwork (TAGI). */
  instructionTokensPerTask?: number;
  /** The tasks this row was evaluated on, when not all test tasks (INSTA rows). */
  targets?: string[];
}
