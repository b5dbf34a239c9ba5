// `instill model init`: a randomly initialised T5 checkpoint (HF layout: config.json + model.safetensors) with its
// tokenizer, ready for `instill train` / `instill generate`.
import type { Command } from "commander";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { T5Model, type T5Preset } from "../model/model.js";
import { installTokenizer, loadTokenizer } from "../model/tokenizer.js";
import type { T5ConfigJson } from "../model/types.js";

export interface ModelInitOptions {
  config: string;
  tokenizer: string;
  out: string;
  seed?: string;
  vocabSize?: string;
}

const PRESETS = ["tiny", "small", "base"] as const;

function parseIntOption(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${name}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

export interface ModelInitResult {
  dir: string;
  config: T5ConfigJson;
  parameters: number;
  tokenizer: "hf" | "byte";
}

/**
 * Writes the tokenizer, then a random T5 whose vocab_size is --vocab-size, else the config file's vocab_size, else
 * the tokenizer's vocabulary size; it must cover the tokenizer. pad/eos ids come from the tokenizer.
 */
export async function modelInit(o: ModelInitOptions): Promise<ModelInitResult> {
  const seed = parseIntOption(o.seed, "--seed", 0) ?? 0;
  const vocabOpt = parseIntOption(o.vocabSize, "--vocab-size", 1);
  const out = resolve(o.out);
  if (existsSync(resolve(out, "model.safetensors")) || existsSync(resolve(out, "model.safetensors.index.json")))
    throw new Error(`--out: ${out} already holds a checkpoint; choose another folder`);
  let fileConfig: T5ConfigJson | undefined;
  if (!(PRESETS as readonly string[]).includes(o.config)) {
    let text: string;
    try {
      text = readFileSync(o.config, "utf8");
    } catch (e) {
      throw new Error(`--config: '${o.config}' is neither a preset (${PRESETS.join(", ")}) nor a readable config.json (${(e as Error).message})`);
    }
    try {
      fileConfig = JSON.parse(text) as T5ConfigJson;
    } catch (e) {
      throw new Error(`${o.config}: invalid JSON (${(e as Error).message})`);
    }
    if (fileConfig === null || typeof fileConfig !== "object" || Array.isArray(fileConfig)) throw new Error(`${o.config}: expected a JSON object`);
  }
  const kind = installTokenizer(o.tokenizer, out);
  const tok = loadTokenizer(out);
  const fromFile = typeof fileConfig?.vocab_size === "number" ? fileConfig.vocab_size : undefined;
  const vocab = vocabOpt ?? fromFile ?? tok.vocabSize;
  if (vocab < tok.vocabSize)
    throw new RangeError(
      `vocab_size ${vocab} (${vocabOpt !== undefined ? "--vocab-size" : o.config}) does not cover the tokenizer's ${tok.vocabSize} ids`,
    );
  let model: T5Model;
  if (fileConfig) {
    const cfg: T5ConfigJson = { ...fileConfig, vocab_size: vocab, pad_token_id: tok.padId, eos_token_id: tok.eosId };
    if (cfg.decoder_start_token_id === undefined) cfg.decoder_start_token_id = tok.padId;
    try {
      model = await T5Model.init(cfg, { seed });
    } catch (e) {
      // The native check names "config"; the user's file is o.config.
      const msg = (e as Error).message;
      if (msg.startsWith("config: ")) throw new RangeError(`${o.config}: ${msg.slice("config: ".length)}`);
      throw e;
    }
  } else {
    model = await T5Model.init(o.config as T5Preset, { seed, vocabSize: vocab });
    if (model.config.pad_token_id !== tok.padId || model.config.eos_token_id !== tok.eosId) {
      model.dispose();
      throw new Error(`the tokenizer's pad/eos ids (${tok.padId}/${tok.eosId}) differ from the preset's (0/1); pass a config.json`);
    }
  }
  try {
    await model.save(out);
    return { dir: out, config: model.config, parameters: model.parameterCount().total, tokenizer: kind };
  } finally {
    model.dispose();
  }
}

export function registerModel(program: Command): void {
  const model = program.command("model").description("create and inspect T5 checkpoints");
  model
    .command("init")
    .description("write a randomly initialised T5 checkpoint (config.json + model.safetensors) with its tokenizer")
    .requiredOption("--config <preset|file>", "tiny | small | base, or a config.json")
    .requiredOption("--tokenizer <spec>", "t5 (the real T5 tokenizer) | byte (ByT5 bytes) | a tokenizer directory")
    .requiredOption("--out <dir>", "output checkpoint folder")
    .option("--seed <n>", "initialisation seed", "0")
    .option("--vocab-size <n>", "vocabulary size (default: the config file's, else the tokenizer's)")
    .action(async (o: ModelInitOptions) => {
      const r = await modelInit(o);
      process.stdout.write(
        `wrote ${r.dir}: T5 d_model ${r.config.d_model}, ${r.config.num_layers}+${r.config.num_decoder_layers ?? r.config.num_layers} layers, ` +
          `vocab ${r.config.vocab_size}, ${(r.parameters / 1e6).toFixed(2)}M parameters, ${r.tokenizer} tokenizer\n`,
      );
    });
}
