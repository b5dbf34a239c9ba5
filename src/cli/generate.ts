// `instill generate`: greedy or beam-search output of a checkpoint for one input text.
import type { Command } from "commander";
import { T5Model, makeBatch } from "../model/model.js";
import { loadTokenizer } from "../model/tokenizer.js";

export interface GenerateCliOptions {
  model: string;
  input: string;
  beams?: string;
  maxNewTokens?: string;
  json?: boolean;
  keepSpecial?: boolean;
  dtype?: string;
}

function positiveInt(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name}: expected a positive integer, got '${v}'`);
  return n;
}

export async function generateText(o: GenerateCliOptions): Promise<{ ids: number[]; text: string }> {
  const numBeams = positiveInt(o.beams, "--beams", 1);
  const maxNewTokens = positiveInt(o.maxNewTokens, "--max-new-tokens", 64);
  const dtypes = ["float32", "float64", "bfloat16", "float16", "stored"] as const;
  const dtype = (o.dtype ?? "float32") as (typeof dtypes)[number];
  if (!dtypes.includes(dtype)) throw new RangeError(`--dtype: expected one of ${dtypes.join(", ")}, got '${o.dtype}'`);
  const tok = loadTokenizer(o.model);
  const model = await T5Model.load(o.model, { dtype });
  try {
    const ids = tok.encode(o.input);
    if (ids.length === 0) throw new Error("--input: empty after tokenization");
    const vocab = model.config.vocab_size;
    const bad = ids.find((i) => i >= vocab);
    if (bad !== undefined) throw new RangeError(`--input: token id ${bad} is outside the model's vocabulary (${vocab}); tokenizer and model do not match`);
    const [out] = await model.generate(makeBatch([ids], undefined, tok.padId), { maxNewTokens, numBeams });
    return { ids: out!, text: tok.decode(out!, { skipSpecial: o.keepSpecial !== true }) };
  } finally {
    model.dispose();
  }
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("generate text from a T5 checkpoint (greedy, or beam search with --beams)")
    .requiredOption("--model <dir>", "checkpoint folder (config.json, model.safetensors or pytorch_model.bin, tokenizer)")
    .requiredOption("--input <text>", "input text")
    .option("--beams <n>", "beam width (1 = greedy)", "1")
    .option("--max-new-tokens <n>", "maximum generated tokens", "64")
    .option("--json", 'print {"ids": [...], "text": "..."} (raw ids, sentinels included, without the decoder start id)')
    .option("--dtype <dtype>", "weights in float32 (default; bf16/fp16 files convert exactly) | bfloat16 | float16 | float64 | stored (as in the file)")
    .option("--keep-special", "keep special tokens (<extra_id_N>, </s>) in the text, as HF's skip_special_tokens=False")
    .action(async (o: GenerateCliOptions) => {
      const r = await generateText(o);
      process.stdout.write(o.json ? JSON.stringify(r) + "\n" : r.text + "\n");
    });
}
