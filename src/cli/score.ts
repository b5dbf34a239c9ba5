// `instill score`: the official SNI evaluation over JSONL predictions and references.
// Predictions: {id, prediction}; references: {id, references, task_id?, task_category?} (the formats of
// natural-instructions eval/automatic/evaluation.py). Keys as Tk-Instruct's compute_ni_metrics names them.
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { scoreItems } from "../metrics/sni.js";
import type { ScoredItem } from "../data/types.js";

function readJsonl(path: string, what: string): { line: number; obj: Record<string, unknown> }[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`${path}: cannot read the ${what} file: ${(e as Error).message}`);
  }
  const out: { line: number; obj: Record<string, unknown> }[] = [];
  text.split("\n").forEach((raw, i) => {
    if (raw.trim().length === 0) return;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw new Error(`${path}: line ${i + 1}: invalid JSON: ${(e as Error).message}`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new Error(`${path}: line ${i + 1}: expected a JSON object`);
    out.push({ line: i + 1, obj: obj as Record<string, unknown> });
  });
  if (out.length === 0) throw new Error(`${path}: no ${what} in the file`);
  return out;
}

function idOf(path: string, line: number, v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number") return String(v);
  throw new Error(`${path}: line ${line}: id: expected a string`);
}

function firstFew(ids: string[], n = 5): string {
  return ids.slice(0, n).join(", ") + (ids.length > n ? `, ... (${ids.length} in all)` : "");
}

/** Joins prediction and reference files by id into scored items; mismatched or missing ids are errors. */
export function joinPredictionsAndReferences(predPath: string, refPath: string): ScoredItem[] {
  const preds = new Map<string, string>();
  for (const { line, obj } of readJsonl(predPath, "predictions")) {
    const id = idOf(predPath, line, obj.id);
    if (typeof obj.prediction !== "string") throw new Error(`${predPath}: line ${line}: prediction: expected a string`);
    if (preds.has(id)) throw new Error(`${predPath}: line ${line}: duplicate id ${id}`);
    preds.set(id, obj.prediction);
  }
  const items: ScoredItem[] = [];
  const seen = new Set<string>();
  const missing: string[] = [];
  for (const { line, obj } of readJsonl(refPath, "references")) {
    const id = idOf(refPath, line, obj.id);
    if (seen.has(id)) throw new Error(`${refPath}: line ${line}: duplicate id ${id}`);
    seen.add(id);
    const refs = obj.references;
    if (!Array.isArray(refs) || refs.length === 0 || refs.some((r) => typeof r !== "string"))
      throw new Error(`${refPath}: line ${line}: references: expected a non-empty list of strings`);
    if (obj.track !== undefined && obj.track !== "default")
      throw new Error(`${refPath}: line ${line}: track '${String(obj.track)}' is not supported (only the default track; xlingual needs GPT-2's tokenizer)`);
    const p = preds.get(id);
    if (p === undefined) {
      missing.push(id);
      continue;
    }
    const it: ScoredItem = { id, prediction: p, references: refs as string[] };
    if (obj.task_id !== undefined) it.taskId = String(obj.task_id);
    if (obj.task_category !== undefined) it.taskCategory = String(obj.task_category);
    items.push(it);
  }
  const extra = [...preds.keys()].filter((id) => !seen.has(id));
  const problems: string[] = [];
  if (missing.length) problems.push(`${missing.length} reference id(s) have no prediction: ${firstFew(missing)}`);
  if (extra.length) problems.push(`${extra.length} prediction id(s) have no reference: ${firstFew(extra)}`);
  if (problems.length) throw new Error(`ids of ${predPath} and ${refPath} do not match: ${problems.join("; ")}`);
  return items;
}

export function registerScore(program: Command): void {
  program
    .command("score")
    .description("score predictions with the official SNI metrics (exact match, ROUGE-1, ROUGE-L; per task and category)")
    .requiredOption("--predictions <file>", "JSONL of {id, prediction}")
    .requiredOption("--references <file>", "JSONL of {id, references, task_id?, task_category?}")
    .option("--json", "print one JSON object")
    .action((o: { predictions: string; references: string; json?: boolean }) => {
      const items = joinPredictionsAndReferences(o.predictions, o.references);
      const r = scoreItems(items);
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + "\n");
        return;
      }
      const width = Math.max(...Object.keys(r).map((k) => k.length));
      const lines = [`${items.length} predictions`];
      for (const [k, v] of Object.entries(r)) lines.push(`${k.padEnd(width)}  ${v.toFixed(4)}`);
      process.stdout.write(lines.join("\n") + "\n");
    });
}
