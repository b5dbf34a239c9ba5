// Checkpoint files from TypeScript: HF checkpoint folders (config.json + model.safetensors or an index + shards),
// safetensors files and PEFT LoRA adapters. Parsing and validation live in native/core/io (hardened reader);
// this module only shapes the results.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
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

/** Lists a checkpoint's tensors (names, dtypes, shapes) from the safetensors headers, without reading weights. */
export function inspectCheckpoint(dir: string): CheckpointFolderInfo {
  const addon = loadAddon();
  const files = addon.checkpointWeightFiles(dir);
  const tensors: SafetensorsEntryInfo[] = [];
  let totalBytes = 0;
  for (const f of files) {
    const h = addon.readSafetensorsHeader(f);
    tensors.push(...h.tensors);
    totalBytes += h.dataBytes;
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
  const format = existsSync(join(dir, "model.safetensors")) || files.length === 1 ? "single" : "sharded";
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
