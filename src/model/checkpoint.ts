// Checkpoint files from TypeScript: HF checkpoint folders (config.json + model.safetensors or an index + shards, or
// pytorch_model.bin read by a restricted unpickler), safetensors files, conversion to safetensors and PEFT LoRA
// adapters. Parsing and validation live in native/core/io (hardened readers); this module only shapes the results.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadAddon } from "../native/binding.js";
import type { HostTensor, NamedHostTensors, SafetensorsEntryInfo } from "../native/types.js";

export interface CheckpointFolderInfo {
  dir: string;
  /** config.json, or undefined when the folder has none */
  config: Record<string, unknown> | undefined;
  format: "single" | "sharded";
  files: string[];
  tensors: SafetensorsEntryInfo[];
  totalBytes: number;
}

const DTYPE_BYTES: Record<string, number> = { float64: 8, int64: 8, float32: 4, int32: 4, float16: 2, bfloat16: 2, int16: 2, int8: 1, uint8: 1, bool: 1 };

/** Lists a checkpoint's tensors (names, dtypes, shapes) from the headers (or a .bin's pickle), without reading weights. */
export function inspectCheckpoint(dir: string): CheckpointFolderInfo {
  const addon = loadAddon();
  const files = addon.checkpointWeightFiles(dir);
  const tensors: SafetensorsEntryInfo[] = [];
  let totalBytes = 0;
  for (const f of files) {
    const entries = addon.readWeightsHeader(f);
    tensors.push(...entries);
    for (const e of entries) totalBytes += e.shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[e.dtype] ?? 0);
  }
  const cfgPath = join(dir, "config.json");
  let config: Record<string, unknown> | undefined;
  if (existsSync(cfgPath)) {
    try {
      config = JSON.parse(readFileSync(cfgPath, "utf8")) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`${cfgPath}: not valid JSON: ${(e as Error).message}`);
    }
  }
  const format = files.length === 1 ? "single" : "sharded";
  return { dir, config, format, files, tensors, totalBytes };
}

export async function readSafetensors(
  path: string,
): Promise<{ metadata: Record<string, string>; tensors: Map<string, Required<HostTensor>> }> {
  const r = await loadAddon().readSafetensors(path);
  return { metadata: r.metadata, tensors: new Map(r.tensors) };
}

/** Atomic write; accepts a Map, a plain object or [name, tensor] pairs. Layout is deterministic. */
export async function writeSafetensors(
  path: string,
  tensors: Map<string, HostTensor> | Record<string, HostTensor> | Array<[string, HostTensor]>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const pairs: Array<[string, HostTensor]> = Array.isArray(tensors)
    ? tensors
    : tensors instanceof Map
      ? [...tensors.entries()]
      : Object.entries(tensors);
  await loadAddon().writeSafetensors(path, pairs, metadata);
}

export async function readCheckpointWeights(dir: string): Promise<NamedHostTensors> {
  return loadAddon().readCheckpointWeights(dir);
}

export interface LoraModule {
  module: string;
  A: HostTensor;
  B: HostTensor;
}

export interface PeftAdapter {
  config: Record<string, unknown>;
  r: number;
  alpha: number;
  scaling: number;
  targetModules: string[];
  baseModelNameOrPath: string;
  modules: Array<{ module: string; A: Required<HostTensor>; B: Required<HostTensor> }>;
}

export async function readPeftAdapter(dir: string): Promise<PeftAdapter> {
  const r = await loadAddon().readPeftAdapter(dir);
  const { configJson, ...rest } = r;
  return { ...rest, config: JSON.parse(configJson) as Record<string, unknown> };
}

export interface PeftWriteOptions {
  r: number;
  alpha: number;
  /** default: the last name component of each module, e.g. ["q", "v"] */
  targetModules?: string[];
  baseModelNameOrPath?: string;
  dropout?: number;
  /** further adapter_config.json fields (override the defaults) */
  extra?: Record<string, unknown>;
}

/** Writes adapter_config.json + adapter_model.safetensors in PEFT's layout (keys base_model.model.<module>.lora_A.weight). */
export async function writePeftAdapter(dir: string, modules: LoraModule[], opts: PeftWriteOptions): Promise<void> {
  if (!Number.isInteger(opts.r) || opts.r <= 0) throw new RangeError(`r: must be a positive integer, got ${opts.r}`);
  if (!Number.isFinite(opts.alpha)) throw new RangeError(`alpha: must be a finite number, got ${opts.alpha}`);
  const cfg: Record<string, unknown> = { r: opts.r, lora_alpha: opts.alpha, ...(opts.extra ?? {}) };
  if (opts.targetModules) cfg.target_modules = opts.targetModules;
  if (opts.baseModelNameOrPath !== undefined) cfg.base_model_name_or_path = opts.baseModelNameOrPath;
  if (opts.dropout !== undefined) cfg.lora_dropout = opts.dropout;
  await loadAddon().writePeftAdapter(dir, modules, JSON.stringify(cfg));
}

/** Files a checkpoint folder carries beside its weights, copied by convertCheckpoint. */
export const CHECKPOINT_SIDE_FILES = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "spiece.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "instill_tokenizer.json",
] as const;

export interface ConvertOptions {
  /** "stored" (default) keeps each tensor's dtype; otherwise floating tensors are cast. */
  dtype?: "stored" | "float32" | "float64" | "bfloat16" | "float16";
  /** Shard the output above this many bytes (0 = one model.safetensors). */
  maxShardBytes?: number;
}

export interface ConvertResult {
  outDir: string;
  tensors: number;
  bytes: number;
  /** Names written once under an earlier name they alias (T5's tied embed_tokens in a torch.save state dict). */
  dropped: string[];
  files: string[];
  copied: string[];
}

/**
 * Converts a checkpoint (pytorch_model.bin, sharded .bin, or safetensors) into a safetensors checkpoint folder and
 * copies config.json and the tokenizer files. The source is never executed: .bin files go through the restricted
 * unpickler. `outDir` must not already hold weights.
 */
export async function convertCheckpoint(src: string, outDir: string, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const out = resolve(outDir);
  if (resolve(src) === out) throw new Error(`--out: ${out} is the source folder; choose another folder`);
  for (const f of ["model.safetensors", "model.safetensors.index.json"])
    if (existsSync(join(out, f))) throw new Error(`--out: ${join(out, f)} exists; choose an empty folder`);
  mkdirSync(out, { recursive: true });
  const r = await loadAddon().convertCheckpoint(src, out, { dtype: opts.dtype, maxShardBytes: opts.maxShardBytes });
  const copied: string[] = [];
  const srcDir = existsSync(src) && statSync(src).isDirectory() ? src : undefined;
  if (srcDir)
    for (const f of CHECKPOINT_SIDE_FILES)
      if (existsSync(join(srcDir, f))) {
        copyFileSync(join(srcDir, f), join(out, f));
        copied.push(f);
      }
  return { outDir: out, ...r, copied };
}
