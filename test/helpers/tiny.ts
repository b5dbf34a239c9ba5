// A tiny random-initialized T5 on the embedded suite's tokenizer, for tests that train end to end in seconds.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeSuite } from "../../src/data/index.js";
import { T5Model } from "../../src/model/model.js";
import { installTokenizer, loadTokenizer } from "../../src/model/tokenizer.js";
import { cliPath } from "./native.js";

/** Writes the embedded suite to `dataDir` (seeded) and a 1+1-layer d_model 32 T5 with its tokenizer to `modelDir`. */
export async function writeTinySuiteModel(dataDir: string, modelDir: string, o: { suiteSeed: number; modelSeed: number; dropout?: number }): Promise<void> {
  writeSuite(dataDir, o.suiteSeed);
  installTokenizer(dataDir, modelDir);
  const tok = loadTokenizer(modelDir);
  const m = await T5Model.init(
    {
      d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8,
      relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: "gated-gelu", tie_word_embeddings: false,
      vocab_size: tok.vocabSize, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: o.dropout ?? 0, model_type: "t5",
    },
    { seed: o.modelSeed },
  );
  await m.save(modelDir);
  m.dispose();
}

/** Runs the CLI (dist/) with one intra-op thread per process, as workers under `instill launch` would get. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout: timeoutMs, env: { ...process.env, INSTILL_THREADS: "1", ...env } });
}

/**
 * Through the CLI: `data synth` into <root>/data and `model init` of a 1+1-layer d_model 32 T5 into <root>/model.
 * Returns the two folders (the caller checks nothing: a failure throws with the command's stderr).
 */
export function synthDataAndModel(root: string, o: { dropout?: number; instances?: number; feedForward?: "relu" | "gated-gelu" } = {}): { data: string; model: string } {
  const data = join(root, "data");
  const model = join(root, "model");
  const check = (r: ReturnType<typeof runCli>, what: string) => {
    if (r.status !== 0) throw new Error(`${what} failed: ${r.stderr}`);
  };
  check(runCli(["data", "synth", "--out", data, "--seed", "5", ...(o.instances ? ["--instances", String(o.instances)] : [])]), "data synth");
  const cfg = { d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8, relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: o.feedForward ?? "gated-gelu", tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: o.dropout ?? 0 };
  writeFileSync(join(root, "config.json"), JSON.stringify(cfg));
  check(runCli(["model", "init", "--config", join(root, "config.json"), "--tokenizer", data, "--out", model, "--seed", "1"]), "model init");
  return { data, model };
}

/**
 * The data-parallel check's two runs: `args` (an instill command) in one process with --out <root>/one, then under
 * `instill launch --nproc 2` with --out <root>/two. Returns both folders and both results (the caller asserts).
 */
export function singleAndTwoWorkers(root: string, args: string[], timeoutMs = 300_000) {
  const one = join(root, "one");
  const two = join(root, "two");
  const single = runCli([...args, "--out", one], {}, timeoutMs);
  const launched = runCli(["launch", "--nproc", "2", "--", ...args, "--out", two], {}, timeoutMs);
  return { one, two, single, launched };
}
