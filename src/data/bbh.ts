// BIG-Bench Hard task files ({examples: [{input, target}]}) as SniTask, with the answer options parsed from
// the input ("Options:" followed by "(A) ..." or "- ..." lines) for rank classification.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import type { SniInstance, SniTask } from "./types.js";
import { DataError, describeJson } from "./errors.js";

export interface ParsedOptions {
  /** What the model is asked to produce for each option: "(A)" for lettered options, the text for dashed ones. */
  choices: string[];
  /** The option texts. */
  texts: string[];
}

/** Parses the last "Options:" block of a BBH input, or returns undefined when there is none. */
export function parseBbhOptions(input: string): ParsedOptions | undefined {
  const at = input.lastIndexOf("Options:");
  if (at < 0) return undefined;
  const lines = input.slice(at + "Options:".length).split("\n").map((l) => l.trim()).filter((l) => l.length > 0);
  const choices: string[] = [];
  const texts: string[] = [];
  for (const l of lines) {
    const m = /^\(([A-Z])\)\s*(.*)$/.exec(l);
    if (m) {
      choices.push(`(${m[1]})`);
      texts.push(m[2].trim());
      continue;
    }
    const d = /^-\s*(.*)$/.exec(l);
    if (d) {
      choices.push(d[1].trim());
      texts.push(d[1].trim());
      continue;
    }
    break; // the options block ended
  }
  return choices.length >= 2 ? { choices, texts } : undefined;
}

function findAnswer(target: string, opts: ParsedOptions): number | undefined {
  const t = target.trim();
  let i = opts.choices.indexOf(t);
  if (i >= 0) return i;
  const lower = t.toLowerCase();
  i = opts.texts.findIndex((x) => x.toLowerCase() === lower);
  return i >= 0 ? i : undefined;
}

export interface ReadBbhOptions {
  name?: string;
  /** A definition (BBH files carry none; without one the encoding has no definition part). */
  definition?: string;
  categories?: string[];
}

/**
 * Reads a BBH task. Instances get `answerChoices` (and `answerIndex`) from their "Options:" block; a task
 * without option blocks whose targets take exactly two values (True/False, yes/no) gets those two values as
 * its task-level `answerChoices`. Free-form tasks (word sorting, arithmetic, ...) get none.
 */
export function readBbhTask(path: string, opts: ReadBbhOptions = {}): SniTask {
  const name = opts.name ?? basename(path).replace(/\.json$/, "");
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new DataError(path, "", `cannot read BBH task: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new DataError(path, "", `expected an object with examples, got ${describeJson(json)}`);
  const ex = (json as Record<string, unknown>).examples;
  if (!Array.isArray(ex)) throw new DataError(path, "examples", ex === undefined ? "missing" : `expected a list, got ${describeJson(ex)}`);
  const instances: SniInstance[] = ex.map((e, i) => {
    const p = `examples[${i}]`;
    if (typeof e !== "object" || e === null || Array.isArray(e)) throw new DataError(path, p, `expected an object with input and target, got ${describeJson(e)}`);
    const r = e as Record<string, unknown>;
    if (typeof r.input !== "string") throw new DataError(path, `${p}.input`, `expected a string, got ${describeJson(r.input)}`);
    if (typeof r.target !== "string") throw new DataError(path, `${p}.target`, `expected a string, got ${describeJson(r.target)}`);
    const inst: SniInstance = { id: `${name}-${i}`, input: r.input, output: [r.target] };
    const o = parseBbhOptions(r.input);
    if (o) {
      inst.answerChoices = o.choices;
      const a = findAnswer(r.target, o);
      if (a !== undefined) inst.answerIndex = a;
    }
    return inst;
  });
  const task: SniTask = {
    name,
    source: path,
    definition: opts.definition ? [opts.definition] : [],
    positiveExamples: [],
    negativeExamples: [],
    instances,
    categories: opts.categories ?? [],
  };
  if (instances.every((x) => x.answerChoices === undefined)) {
    const values = [...new Set(instances.map((x) => x.output[0].trim()))].sort();
    if (values.length === 2) {
      task.answerChoices = values;
      for (const x of instances) x.answerIndex = values.indexOf(x.output[0].trim());
    }
  }
  return task;
}
