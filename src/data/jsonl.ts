// JSONL task data for anything else, P3-style: one object per line
// {task, instruction, inputs, targets, answer_choices?, id?, category?}; lines are grouped into one SniTask
// per task name, in order of first appearance; distinct instructions become the task's definitions.
import { readFileSync } from "node:fs";
import type { SniTask } from "./types.js";
import { DataError, describeJson } from "./errors.js";

export function readJsonlTasks(path: string): SniTask[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new DataError(path, "", `cannot read: ${(e as Error).message}`);
  }
  const tasks = new Map<string, SniTask>();
  const lines = text.split("\n");
  lines.forEach((raw, li) => {
    const line = raw.trim();
    if (line.length === 0) return;
    const where = `line ${li + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (e) {
      throw new DataError(path, where, `invalid JSON: ${(e as Error).message}`);
    }
    if (typeof obj !== "object" || obj === null || Array.isArray(obj)) throw new DataError(path, where, `expected an object, got ${describeJson(obj)}`);
    const r = obj as Record<string, unknown>;
    const str = (k: string, optional = false): string | undefined => {
      if (r[k] === undefined && optional) return undefined;
      if (typeof r[k] !== "string") throw new DataError(path, `${where}: ${k}`, `expected a string, got ${r[k] === undefined ? "nothing" : describeJson(r[k])}`);
      return r[k] as string;
    };
    const strList = (k: string, optional = false): string[] | undefined => {
      const v = r[k];
      if (v === undefined && optional) return undefined;
      if (typeof v === "string") return [v];
      if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== "string"))
        throw new DataError(path, `${where}: ${k}`, `expected a string or a non-empty list of strings, got ${v === undefined ? "nothing" : describeJson(v)}`);
      return v as string[];
    };
    const name = str("task")!;
    const instruction = str("instruction")!;
    const inputs = str("inputs")!;
    const targets = strList("targets")!;
    const choices = strList("answer_choices", true);
    const category = str("category", true);
    let t = tasks.get(name);
    if (!t) {
      t = { name, source: path, definition: [], positiveExamples: [], negativeExamples: [], instances: [], categories: [] };
      tasks.set(name, t);
    }
    if (!t.definition.includes(instruction)) t.definition.push(instruction);
    if (category !== undefined && !t.categories.includes(category)) t.categories.push(category);
    const idv = r.id;
    const id = typeof idv === "string" || typeof idv === "number" ? String(idv) : `${name}-${t.instances.length}`;
    const inst: SniTask["instances"][number] = { id, input: inputs, output: targets };
    if (choices) {
      inst.answerChoices = choices;
      const a = choices.indexOf(targets[0]);
      if (a < 0) throw new DataError(path, `${where}: targets`, `'${targets[0]}' is not one of answer_choices`);
      inst.answerIndex = a;
    }
    t.instances.push(inst);
  });
  return [...tasks.values()];
}
