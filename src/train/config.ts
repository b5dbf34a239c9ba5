// Run configuration: defaults < config file (YAML or JSON) < command-line flags. Every option has a
// default here; unknown keys and wrongly typed values are errors naming the key and the file.
// The resolved config is saved with the run (config.json in the output folder).
import { readFileSync, existsSync } from "node:fs";
import { extname } from "node:path";
import YAML from "yaml";
import type { EncodingOptions } from "../data/types.js";
import type { LoraOptions, OptimizerOptions } from "../model/types.js";

export interface RunConfig {
  model: string;
  data: string;
  split: string;
  out: string;
  seed: number;
  /** Prompt encoding (Tk-Instruct). */
  encoding: EncodingOptions;
  maxTargetLength: number;
  maxTrainInstances: number;
  maxEvalInstances: number;
  englishOnly: boolean;
  onBadTask: "skip" | "fail";
  /** null = full fine-tuning. */
  lora: LoraOptions | null;
  /** Train one LoRA adapter per training task (teachers for TAGI). */
  perTask: boolean;
  optimizer: OptimizerOptions;
  /** Training forward precision: "auto" (bf16 autocast on CUDA, float32 on CPU), "float32", or "bf16" (autocast
   * with float32 master weights and optimizer state, on CPU too). Evaluation always runs in the weights' dtype. */
  precision: "auto" | "float32" | "bf16";
  batchSize: number;
  /** Optimizer steps; 0 = derive from epochs. */
  steps: number;
  epochs: number;
  /** Optimizer steps per native call (progress granularity). */
  stepsPerCall: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  logEvery: number;
  quiet: boolean;
  eval: { batchSize: number; maxNewTokens: number; numBeams: number };
}

export function defaultConfig(): RunConfig {
  return {
    model: "",
    data: "",
    split: "default",
    out: "runs/train",
    seed: 42,
    encoding: {
      addTaskName: false,
      addDefinition: true,
      numPositiveExamples: 0,
      numNegativeExamples: 0,
      addExplanation: false,
      maxSourceLength: 1024,
    },
    maxTargetLength: 128,
    maxTrainInstances: 100,
    maxEvalInstances: 100,
    englishOnly: true,
    onBadTask: "fail",
    lora: null,
    perTask: false,
    optimizer: {
      name: "adamw",
      lr: 5e-4,
      weightDecay: 0,
      betas: [0.9, 0.999],
      eps: 1e-8,
      schedule: "linear",
      warmupSteps: 0,
      totalSteps: 0,
      clipNorm: 1.0,
      gradAccumulation: 1,
    },
    precision: "auto",
    batchSize: 8,
    steps: 0,
    epochs: 2,
    stepsPerCall: 10,
    checkpointEvery: 500,
    keepCheckpoints: 2,
    logEvery: 10,
    quiet: false,
    eval: { batchSize: 16, maxNewTokens: 64, numBeams: 1 },
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Merges `patch` into `base`, checking keys and value types against `base` (the defaults' shape). */
export function mergeChecked<T>(base: T, patch: unknown, where: string, path = ""): T {
  if (patch === undefined) return base;
  if (base === null || typeof base !== "object" || Array.isArray(base)) {
    if (base === null) {
      // Only `lora` is nullable: accept null or an object.
      if (patch === null) return patch as T;
      if (typeof patch === "object" && !Array.isArray(patch)) return patch as T;
      throw new TypeError(`${where}: ${path}: expected an object or null`);
    }
    if (Array.isArray(base)) {
      if (!Array.isArray(patch)) throw new TypeError(`${where}: ${path}: expected an array`);
      return patch as T;
    }
    if (typeof patch !== typeof base) throw new TypeError(`${where}: ${path}: expected a ${typeof base}, got ${JSON.stringify(patch)}`);
    return patch as T;
  }
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) {
    throw new TypeError(`${where}: ${path || "config"}: expected an object`);
  }
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    const p = path ? `${path}.${k}` : k;
    if (!(k in out)) {
      if (path === "lora" || path === "") {
        if (path === "") throw new TypeError(`${where}: unknown option '${p}' (known: ${Object.keys(out).join(", ")})`);
      } else throw new TypeError(`${where}: unknown option '${p}'`);
    }
    out[k] = mergeChecked(out[k], v, where, p);
  }
  return out as T;
}

export function readConfigFile(path: string): Record<string, Json> {
  if (!existsSync(path)) throw new Error(`${path}: config file not found`);
  const text = readFileSync(path, "utf8");
  const ext = extname(path).toLowerCase();
  try {
    const v = ext === ".json" ? JSON.parse(text) : YAML.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("expected a mapping at the top level");
    return v as Record<string, Json>;
  } catch (e) {
    throw new Error(`${path}: cannot parse ${ext === ".json" ? "JSON" : "YAML"}: ${(e as Error).message}`);
  }
}

/** Parses `--lora r=16,alpha=32,modules=q,v[,dropout=0.05]`. */
export function parseLoraSpec(spec: string): LoraOptions {
  const out: LoraOptions = { r: 8, alpha: 16, dropout: 0, modules: ["q", "v"] };
  // modules may itself hold commas: everything after "modules=" up to the next key=.
  const parts = spec.split(",");
  let i = 0;
  while (i < parts.length) {
    const [k, v] = parts[i].split("=");
    if (v === undefined) throw new TypeError(`--lora: expected key=value, got '${parts[i]}' in '${spec}'`);
    if (k === "modules") {
      const mods = [v];
      while (i + 1 < parts.length && !parts[i + 1].includes("=")) mods.push(parts[++i]);
      const known = ["q", "k", "v", "o", "wi", "wo"];
      for (const m of mods) if (!known.includes(m)) throw new TypeError(`--lora: unknown module '${m}' (known: ${known.join(", ")})`);
      out.modules = mods;
    } else if (k === "r" || k === "alpha" || k === "dropout" || k === "seed") {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new TypeError(`--lora: ${k} must be a number, got '${v}'`);
      (out as unknown as Record<string, number>)[k] = n;
    } else throw new TypeError(`--lora: unknown key '${k}' (known: r, alpha, dropout, modules, seed)`);
    i++;
  }
  if (!Number.isInteger(out.r) || out.r < 1) throw new RangeError(`--lora: r must be a positive integer, got ${out.r}`);
  if ((out.dropout ?? 0) < 0 || (out.dropout ?? 0) >= 1) throw new RangeError(`--lora: dropout must be in [0, 1)`);
  return out;
}

/**
 * A `lora:` section from a config file (merged unchecked, since its default is null): missing keys take --lora's
 * defaults (r 8, alpha 16, dropout 0, modules q,v); each value is checked as parseLoraSpec checks the flag.
 */
function validateLoraSection(l: LoraOptions): LoraOptions {
  const known = ["q", "k", "v", "o", "wi", "wo"];
  const defaults: LoraOptions = { r: 8, alpha: 16, dropout: 0, modules: ["q", "v"] };
  const out: LoraOptions = { ...defaults, ...l };
  const extra = Object.keys(out).filter((k) => !["r", "alpha", "dropout", "modules", "seed"].includes(k));
  if (extra.length) throw new TypeError(`lora.${extra[0]}: unknown option (known: r, alpha, dropout, modules, seed)`);
  if (!Number.isInteger(out.r) || out.r < 1) throw new RangeError(`lora.r must be a positive integer, got ${JSON.stringify(out.r)}`);
  if (typeof out.alpha !== "number" || !Number.isFinite(out.alpha)) throw new TypeError(`lora.alpha must be a number, got ${JSON.stringify(out.alpha)}`);
  if (typeof out.dropout !== "number" || !(out.dropout >= 0 && out.dropout < 1)) throw new RangeError(`lora.dropout must be in [0, 1), got ${JSON.stringify(out.dropout)}`);
  if (out.seed !== undefined && !Number.isInteger(out.seed)) throw new TypeError(`lora.seed must be an integer, got ${JSON.stringify(out.seed)}`);
  if (!Array.isArray(out.modules) || out.modules.length === 0 || out.modules.some((m) => !known.includes(m)))
    throw new TypeError(`lora.modules must be a non-empty list of ${known.join(", ")}, got ${JSON.stringify(out.modules)}`);
  return out;
}

/** Checks ranges after merging; messages name the option. */
export function validateConfig(c: RunConfig): RunConfig {
  const posInt = (v: number, name: string, allowZero = false) => {
    if (!Number.isInteger(v) || v < (allowZero ? 0 : 1)) throw new RangeError(`${name} must be a ${allowZero ? "non-negative" : "positive"} integer, got ${v}`);
  };
  posInt(c.batchSize, "batchSize");
  posInt(c.steps, "steps", true);
  posInt(c.epochs, "epochs", true);
  posInt(c.stepsPerCall, "stepsPerCall");
  posInt(c.checkpointEvery, "checkpointEvery");
  posInt(c.keepCheckpoints, "keepCheckpoints");
  posInt(c.maxTrainInstances, "maxTrainInstances");
  posInt(c.maxEvalInstances, "maxEvalInstances");
  posInt(c.maxTargetLength, "maxTargetLength");
  posInt(c.encoding.maxSourceLength, "encoding.maxSourceLength");
  posInt(c.encoding.numPositiveExamples, "encoding.numPositiveExamples", true);
  posInt(c.encoding.numNegativeExamples, "encoding.numNegativeExamples", true);
  posInt(c.optimizer.gradAccumulation ?? 1, "optimizer.gradAccumulation");
  if (!(c.optimizer.lr > 0)) throw new RangeError(`optimizer.lr must be > 0, got ${c.optimizer.lr}`);
  if (!["adamw", "adafactor"].includes(c.optimizer.name)) throw new TypeError(`optimizer.name must be adamw or adafactor, got '${c.optimizer.name}'`);
  if (!["auto", "float32", "bf16"].includes(c.precision)) throw new TypeError(`precision must be auto, float32 or bf16, got '${c.precision}'`);
  if (!["skip", "fail"].includes(c.onBadTask)) throw new TypeError(`onBadTask must be skip or fail, got '${c.onBadTask}'`);
  if (c.steps === 0 && c.epochs === 0) throw new RangeError("one of steps or epochs must be > 0");
  if (c.lora !== null) c.lora = validateLoraSection(c.lora);
  posInt(c.eval.maxNewTokens, "eval.maxNewTokens");
  posInt(c.eval.numBeams, "eval.numBeams");
  posInt(c.eval.batchSize, "eval.batchSize");
  return c;
}

/**
 * Runs `validate` on a merged config; a failure is prefixed with where its option was set: "command line" when
 * the overrides hold it, else the config file (defaults are valid, so a bad value came from one of the two).
 * Validation messages start with the option's path (`optimizer.lr must be > 0`, `variant: expected ...`).
 */
export function validateWithSource<T>(c: T, validate: (c: T) => T, file: string | undefined, overrides: unknown): T {
  try {
    return validate(c);
  } catch (e) {
    if (!(e instanceof Error)) throw e;
    const key = /^([A-Za-z_][A-Za-z0-9_.]*)/.exec(e.message)?.[1] ?? "";
    let o: unknown = overrides;
    for (const k of key.split(".")) o = o !== null && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined;
    const source = o !== undefined ? "command line" : file;
    if (source) e.message = `${source}: ${e.message}`;
    throw e;
  }
}

/** defaults < config file (YAML or JSON) < `overrides` (the flags given explicitly); unknown keys are errors naming them. */
export function resolveWith<T>(defaults: T, validate: (c: T) => T, file: string | undefined, overrides: unknown): T {
  let c = defaults;
  if (file) c = mergeChecked(c, readConfigFile(file), file);
  c = mergeChecked(c, overrides, "command line");
  return validateWithSource(c, validate, file, overrides);
}

/** defaults < file < overrides */
export function resolveConfig(file: string | undefined, overrides: unknown): RunConfig {
  return resolveWith(defaultConfig(), validateConfig, file, overrides);
}
