// Super-NaturalInstructions task files (the official schema) and split folders, loaded the way Tk-Instruct's
// ni_dataset.py does: per-task instance caps for training and evaluation (evaluation draws from the first 100
// instances, the official label-balanced ones), deterministic sampling by seed, optional English-only filter.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { SniExample, SniInstance, SniTask } from "./types.js";
import { DataError, describeJson, joinPath } from "./errors.js";
import { makeRng, shuffleInPlace } from "../util/rng.js";

export type OnBadTask = "skip" | "fail";

export interface SkippedTask {
  task: string;
  file: string;
  reason: string;
}

export interface ReadSniOptions {
  /** Task name (default: the file name without .json). */
  name?: string;
  /** Keep at most this many instances (sampled with `seed`); negative or undefined keeps all. */
  maxInstances?: number;
  /** Before sampling, keep only the first N instances (Tk-Instruct's evaluation uses the first 100). */
  firstInstances?: number;
  /** Sampling seed (default 42). The sample of a task depends on the seed and the task name only. */
  seed?: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function expectString(file: string, path: string, v: unknown): string {
  if (typeof v !== "string") throw new DataError(file, path, `expected a string, got ${describeJson(v)}`);
  return v;
}

function expectStringList(file: string, path: string, v: unknown, allowString = false): string[] {
  if (allowString && typeof v === "string") return [v];
  if (!Array.isArray(v)) throw new DataError(file, path, `expected a list of strings, got ${describeJson(v)}`);
  v.forEach((x, i) => {
    if (typeof x !== "string") throw new DataError(file, joinPath(path, i), `expected a list of strings, got ${describeJson(x)} in it`);
  });
  return v as string[];
}

function optionalStringList(file: string, obj: Record<string, unknown>, key: string): string[] | undefined {
  return obj[key] === undefined ? undefined : expectStringList(file, key, obj[key], true);
}

function readExamples(file: string, obj: Record<string, unknown>, key: string): SniExample[] {
  const v = obj[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new DataError(file, key, `expected a list of examples, got ${describeJson(v)}`);
  return v.map((e, i) => {
    const p = joinPath(key, i);
    if (!isRecord(e)) throw new DataError(file, p, `expected an object with input and output, got ${describeJson(e)}`);
    const ex: SniExample = {
      input: expectString(file, joinPath(p, "input"), e.input),
      output: expectString(file, joinPath(p, "output"), e.output),
    };
    if (e.explanation !== undefined) ex.explanation = expectString(file, joinPath(p, "explanation"), e.explanation);
    return ex;
  });
}

function readInstance(file: string, e: unknown, i: number): SniInstance {
  const p = joinPath("Instances", i);
  if (!isRecord(e)) throw new DataError(file, p, `expected an object with id, input and output, got ${describeJson(e)}`);
  const id = e.id;
  if (typeof id !== "string" && typeof id !== "number") throw new DataError(file, joinPath(p, "id"), `expected a string, got ${describeJson(id)}`);
  const output = expectStringList(file, joinPath(p, "output"), e.output);
  if (output.length === 0) throw new DataError(file, joinPath(p, "output"), "expected at least one reference output");
  return { id: String(id), input: expectString(file, joinPath(p, "input"), e.input), output };
}

/** Validates a parsed SNI task object and converts it to SniTask (all instances). */
export function sniTaskFromJson(json: unknown, file: string, name: string, pickInstances?: (n: number) => number[]): SniTask {
  if (!isRecord(json)) throw new DataError(file, "", `expected a JSON object (an SNI task), got ${describeJson(json)}`);
  if (json.Definition === undefined) throw new DataError(file, "Definition", "missing");
  const definition = expectStringList(file, "Definition", json.Definition, true);
  if (definition.length === 0) throw new DataError(file, "Definition", "expected at least one definition");
  if (!Array.isArray(json.Instances)) throw new DataError(file, "Instances", json.Instances === undefined ? "missing" : `expected a list of instances, got ${describeJson(json.Instances)}`);
  const all = json.Instances as unknown[];
  const idx = pickInstances ? pickInstances(all.length) : all.map((_, i) => i);
  // Validate every instance (a bad file should fail even if the bad instance is not sampled).
  for (let i = 0; i < all.length; i++) readInstance(file, all[i], i);
  const instances = idx.map((i) => readInstance(file, all[i], i));
  const task: SniTask = {
    name,
    source: file,
    definition,
    positiveExamples: readExamples(file, json, "Positive Examples"),
    negativeExamples: readExamples(file, json, "Negative Examples"),
    instances,
    categories: json.Categories === undefined ? [] : expectStringList(file, "Categories", json.Categories, true),
  };
  const opt: [keyof SniTask, string][] = [
    ["inputLanguage", "Input_language"],
    ["outputLanguage", "Output_language"],
    ["instructionLanguage", "Instruction_language"],
    ["domains", "Domains"],
  ];
  for (const [k, key] of opt) {
    const v = optionalStringList(file, json, key);
    if (v !== undefined) (task as unknown as Record<string, unknown>)[k] = v;
  }
  return task;
}

/** Indices kept by Tk-Instruct-style sampling: first N, then a seeded shuffle and the first maxInstances. */
export function sampleIndices(n: number, opts: { maxInstances?: number; firstInstances?: number; seed?: number; name: string }): number[] {
  let idx = Array.from({ length: n }, (_, i) => i);
  if (opts.firstInstances !== undefined && opts.firstInstances >= 0) idx = idx.slice(0, opts.firstInstances);
  if (opts.maxInstances !== undefined && opts.maxInstances >= 0) {
    shuffleInPlace(makeRng(`${opts.seed ?? 42}:${opts.name}`), idx);
    idx = idx.slice(0, opts.maxInstances);
  }
  return idx;
}

function parseJsonFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new DataError(path, "", `cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataError(path, "", `invalid JSON: ${(e as Error).message}`);
  }
}

/** Reads one SNI task file. The file is parsed once; only the kept instances survive the call. */
export function readSniTask(path: string, opts: ReadSniOptions = {}): SniTask {
  const name = opts.name ?? basename(path).replace(/\.json$/, "");
  const json = parseJsonFile(path);
  const sampling = opts.maxInstances !== undefined || opts.firstInstances !== undefined;
  return sniTaskFromJson(json, path, name, sampling ? (n) => sampleIndices(n, { ...opts, name }) : undefined);
}

/** True when every language field present is exactly ["English"]. */
export function isEnglishTask(task: SniTask): boolean {
  const only = (v?: string[]) => v === undefined || (v.length > 0 && v.every((x) => x === "English"));
  return only(task.inputLanguage) && only(task.outputLanguage) && only(task.instructionLanguage);
}

export interface ReadTaskDirOptions {
  onBadTask?: OnBadTask;
  /** Only these task names (default: every *.json in the folder, sorted). */
  names?: string[];
  maxInstances?: number;
  seed?: number;
}

export interface TaskCollection {
  tasks: SniTask[];
  skipped: SkippedTask[];
}

/** Reads every SNI task file of a folder; bad tasks fail the call or are skipped and reported. */
export function readTaskDir(dir: string, opts: ReadTaskDirOptions = {}): TaskCollection {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new DataError(dir, "", "not a folder of task files");
  const names = opts.names ?? readdirSync(dir).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)).sort();
  const tasks: SniTask[] = [];
  const skipped: SkippedTask[] = [];
  for (const name of names) {
    const file = join(dir, `${name}.json`);
    try {
      if (!existsSync(file)) throw new DataError(file, "", "no such task file");
      tasks.push(readSniTask(file, { name, maxInstances: opts.maxInstances, seed: opts.seed }));
    } catch (e) {
      if ((opts.onBadTask ?? "fail") === "fail") throw e;
      skipped.push({ task: name, file, reason: (e as Error).message });
    }
  }
  return { tasks, skipped };
}

/** Reads a task list (one name per line; blank lines and # comments ignored). */
export function readTaskList(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new DataError(path, "", `cannot read the task list: ${(e as Error).message}`);
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith("#"));
}

/** Finds a split folder: `<dataDir>/splits/<name>`, or `name` itself when it is a folder. */
export function splitDir(dataDir: string, splitName: string): string {
  const a = join(dataDir, "splits", splitName);
  if (existsSync(a)) return a;
  if (existsSync(splitName) && statSync(splitName).isDirectory()) return splitName;
  throw new DataError(a, "", `no such split folder (expected ${join("splits", splitName, "train_tasks.txt")} and test_tasks.txt under ${dataDir})`);
}

/** The task names of a split (`splits/<name>/train_tasks.txt`, `test_tasks.txt`). */
export function readSplit(dataDir: string, splitName: string): { train: string[]; test: string[] } {
  const d = splitDir(dataDir, splitName);
  return { train: readTaskList(join(d, "train_tasks.txt")), test: readTaskList(join(d, "test_tasks.txt")) };
}

export interface LoadSplitOptions {
  /** Folder with `tasks/` and `splits/` (the natural-instructions layout). */
  dataDir: string;
  /** Folder of task files (default `<dataDir>/tasks`). */
  tasksDir?: string;
  split?: string;
  /** Tk-Instruct's max_num_instances_per_task (default 100). */
  maxTrainInstances?: number;
  /** Tk-Instruct's max_num_instances_per_eval_task (default 100), drawn from the first 100 instances. */
  maxEvalInstances?: number;
  seed?: number;
  /** Keep only tasks whose language fields are all English (default false: the official split lists are English already). */
  englishOnly?: boolean;
  onBadTask?: OnBadTask;
}

export interface SplitTasks {
  train: SniTask[];
  test: SniTask[];
  /** Tasks that could not be read (missing or malformed) under onBadTask "skip". */
  skipped: SkippedTask[];
  /** Tasks left out by the English-only filter. */
  filtered: string[];
}

/** Loads the training and test tasks of a split with Tk-Instruct's instance caps and seeded sampling. */
export function loadSplitTasks(opts: LoadSplitOptions): SplitTasks {
  const split = readSplit(opts.dataDir, opts.split ?? "default");
  const tasksDir = opts.tasksDir ?? join(opts.dataDir, "tasks");
  const seed = opts.seed ?? 42;
  const skipped: SkippedTask[] = [];
  const filtered: string[] = [];
  const load = (names: string[], eval_: boolean): SniTask[] => {
    const out: SniTask[] = [];
    for (const name of names) {
      const file = join(tasksDir, `${name}.json`);
      try {
        if (!existsSync(file)) throw new DataError(file, "", "no such task file (listed in the split)");
        const t = readSniTask(file, {
          name,
          seed,
          maxInstances: eval_ ? (opts.maxEvalInstances ?? 100) : (opts.maxTrainInstances ?? 100),
          firstInstances: eval_ ? 100 : undefined,
        });
        if (opts.englishOnly && !isEnglishTask(t)) {
          filtered.push(name);
          continue;
        }
        out.push(t);
      } catch (e) {
        if ((opts.onBadTask ?? "fail") === "fail") throw e;
        skipped.push({ task: name, file, reason: (e as Error).message });
      }
    }
    return out;
  };
  return { train: load(split.train, false), test: load(split.test, true), skipped, filtered };
}
