// `instill tokenize`: token ids of texts as JSON, one line per input.
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { loadTokenizer, type Tokenizer } from "../model/tokenizer.js";

export interface TokenizeCliOptions {
  tokenizer: string;
  text?: string;
  input?: string;
  eos?: boolean;
  decode?: boolean;
  keepSpecial?: boolean;
}

/** Texts of a JSONL file of {"text": ...} lines; errors name the file and the 1-based line. */
export function readTextJsonl(path: string): string[] {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as Error).message})`);
  }
  const texts: string[] = [];
  const lines = raw.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new Error(`${path}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
    const text = (v as { text?: unknown } | null)?.text;
    if (v === null || typeof v !== "object" || Array.isArray(v) || typeof text !== "string")
      throw new Error(`${path}:${i + 1}: expected an object with a string "text" field`);
    texts.push(text);
  }
  return texts;
}

export function tokenizeLines(tok: Tokenizer, texts: readonly string[], addEos: boolean): string[] {
  return tok.encodeBatch(texts, { addEos }).map((ids) => JSON.stringify(ids));
}

export function registerTokenize(program: Command): void {
  program
    .command("tokenize")
    .description("print the token ids of texts as JSON, one line per input (HF tokenizer.json, spiece.model or ByT5 bytes)")
    .requiredOption("--tokenizer <dir>", "checkpoint or tokenizer directory (tokenizer.json, or instill_tokenizer.json {\"type\":\"byte\"})")
    .option("--text <text>", "one text to tokenize")
    .option("--input <file.jsonl>", 'a JSONL file of {"text": ...} lines')
    .option("--no-eos", "do not append the end-of-sequence id")
    .option("--decode", "print the decoded text (special ids dropped) instead of ids, as a JSON string")
    .option("--keep-special", "with --decode: keep special tokens (<extra_id_N>, </s>) in the text")
    .action((o: TokenizeCliOptions) => {
      if ((o.text === undefined) === (o.input === undefined)) throw new Error("tokenize: give exactly one of --text or --input");
      const tok = loadTokenizer(o.tokenizer);
      const texts = o.text !== undefined ? [o.text] : readTextJsonl(o.input!);
      const addEos = o.eos !== false;
      const out: string[] = o.decode
        ? tok.encodeBatch(texts, { addEos }).map((ids) => JSON.stringify(tok.decode(ids, { skipSpecial: o.keepSpecial !== true })))
        : tokenizeLines(tok, texts, addEos);
      if (out.length) process.stdout.write(out.join("\n") + "\n");
    });
}
