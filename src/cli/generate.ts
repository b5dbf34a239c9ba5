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
  const tok = loadTokenizer(o.model);
  const model = await T5Model.load(o.model);
  try {
    const ids = tok.encode(o.input);
    if (ids.length === 0) throw new Error("--input: empty after tokenization");
    const vocab = model.config.vocab_size;
    const bad = ids.find((i) => i >= vocab);
    if (bad !== undefined) throw new RangeError(`--input: token id ${bad} is outside the model's vocabulary (${vocab}); tokenizer and model do not match`);
    const [out] = await model.generate(makeBatch([ids], undefined, tok.padId), { maxNewTokens, numBeams });
    return { ids: out!, text: tok.decode(out!) };
  } finally {
    model.dispose();
  }
}

export function registerGenerate(program: Command): void {
  program
    .command("generate")
    .description("generate text from a T5 checkpoint (greedy, or beam search with --beams)")
    .requiredOption("--model <dir>", "checkpoint folder (config.json, model.safetensors, tokenizer)")
    .requiredOption("--input <text>", "input text")
    .option("--beams <n>", "beam width (1 = greedy)", "1")
    .option("--max-new-tokens <n>", "maximum generated tokens", "64")
    .option("--json", 'print {"ids": [...], "text": "..."} (ids without the decoder start id)')
    .action(async (o: GenerateCliOptions) => {
      const r = await generateText(o);
      process.stdout.write(o.json ? JSON.stringify(r) + "\n" : r.text + "\n");
    });
}
