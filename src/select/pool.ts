// Pools and targets for selection: a folder of SNI task files (with categories) or a definitions.jsonl
// (`{task, definition, positive_examples}` per line, no categories); targets from task files, pool names or text.
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, extname } from "node:path";
import { readSniTask, readTaskDir, readTaskList } from "../data/sni.js";
import type { SkippedTask } from "../data/sni.js";
import type { SniTask } from "../data/types.js";
import type { PoolTask, SelectionTarget } from "./select.js";
import type { ExampleLike } from "./embedder.js";

export interface LoadedPool {
  tasks: PoolTask[];
  source: "task-files" | "definitions";
  path: string;
  skipped: SkippedTask[];
}

export class PoolError extends Error {}

function firstDefinition(def: unknown): string {
  if (typeof def === "string") return def;
  if (Array.isArray(def) && def.length && typeof def[0] === "string") return def[0];
  return "";
}

/** The instruction text of a task: its first definition (as Tk-Instruct encodes it). */
export function instructionOf(task: SniTask): string {
  return (task.definition[0] ?? "").trim();
}

export function poolTaskFromSni(task: SniTask): PoolTask {
  return { name: task.name, text: instructionOf(task), categories: task.categories, examples: examplesOf(task.positiveExamples) };
}

/** Positive examples with string input and output (others dropped); undefined when none. */
export function examplesOf(raw: unknown): ExampleLike[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  const out = raw
    .filter((e): e is ExampleLike => !!e && typeof (e as ExampleLike).input === "string" && typeof (e as ExampleLike).output === "string")
    .map((e) => ({ input: e.input, output: e.output, ...(typeof e.explanation === "string" && e.explanation.trim() ? { explanation: e.explanation } : {}) }));
  return out.length ? out : undefined;
}

/** Reads definitions.jsonl: one `{task, definition, positive_examples}` object per line. */
export function readDefinitions(path: string): PoolTask[] {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new PoolError(`${path}: cannot read (${(e as Error).message})`);
  }
  const out: PoolTask[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (!line.trim()) return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new PoolError(`${path}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    const r = o as Record<string, unknown>;
    if (typeof r !== "object" || r === null || typeof r.task !== "string" || !r.task)
      throw new PoolError(`${path}:${i + 1}: expected an object with a string field "task"`);
    const def = firstDefinition(r.definition).trim();
    if (!def) throw new PoolError(`${path}:${i + 1}: task ${r.task}: "definition" must be a non-empty string (or list of strings)`);
    const examples = examplesOf(r.positive_examples);
    out.push({ name: r.task, text: def, ...(examples ? { examples } : {}) });
  });
  return out;
}

/** A pool from a folder of task files or a definitions.jsonl file. */
export function loadPool(path: string): LoadedPool {
  if (!existsSync(path)) throw new PoolError(`--pool: ${path}: no such file or folder`);
  if (statSync(path).isDirectory()) {
    const { tasks, skipped } = readTaskDir(path, { onBadTask: "skip" });
    if (!tasks.length) throw new PoolError(`--pool: ${path}: no readable task files (*.json)${skipped.length ? `; ${skipped.length} skipped, e.g. ${skipped[0].reason}` : ""}`);
    return { tasks: tasks.map(poolTaskFromSni), source: "task-files", path, skipped };
  }
  if (path.endsWith(".jsonl")) return { tasks: readDefinitions(path), source: "definitions", path, skipped: [] };
  throw new PoolError(`--pool: ${path}: expected a folder of SNI task files or a definitions .jsonl file`);
}

/**
 * Looks a task name up in a set of pool names. Besides the exact name it accepts the one pool task with the same
 * `taskNNN_` number whose name is a prefix of the requested one cut at a dot: definitions.jsonl (FLAN's task
 * metadata) truncates names at the first dot, e.g. `task074_squad1` for the split's `task074_squad1.1_question_generation`.
 */
export function nameResolver(poolNames: Iterable<string>): (name: string) => string | undefined {
  const exact = new Set(poolNames);
  const byNumber = new Map<string, string[]>();
  for (const n of exact) {
    const m = /^task\d+(?=_)/.exec(n);
    if (m) byNumber.set(m[0], [...(byNumber.get(m[0]) ?? []), n]);
  }
  return (name) => {
    if (exact.has(name)) return name;
    const dot = name.indexOf(".");
    const m = /^task\d+(?=_)/.exec(name);
    if (dot < 0 || !m) return undefined;
    const cands = (byNumber.get(m[0]) ?? []).filter((c) => c === name.slice(0, dot));
    return cands.length === 1 ? cands[0] : undefined;
  };
}

/** Keeps the pool tasks named in a list file (e.g. splits/default/train_tasks.txt); reports names not in the pool. */
export function restrictPool(pool: PoolTask[], listPath: string): { tasks: PoolTask[]; missing: string[] } {
  if (!existsSync(listPath)) throw new PoolError(`--train-tasks: ${listPath}: no such file`);
  const names = readTaskList(listPath);
  const resolve = nameResolver(pool.map((t) => t.name));
  const keep = new Set<string>();
  const missing: string[] = [];
  for (const n of names) {
    const r = resolve(n);
    if (r === undefined) missing.push(n);
    else keep.add(r);
  }
  return { tasks: pool.filter((t) => keep.has(t.name)), missing };
}

/** A target from a file: an SNI task file (.json), else the file's text as the instruction. */
export function targetFromFile(path: string): SelectionTarget {
  if (!existsSync(path) || !statSync(path).isFile()) throw new PoolError(`--target: ${path}: no such file`);
  if (extname(path) === ".json") {
    const t = readSniTask(path);
    return { label: t.name, name: t.name, text: instructionOf(t), categories: t.categories, examples: examplesOf(t.positiveExamples) };
  }
  const text = readFileSync(path, "utf8").trim();
  if (!text) throw new PoolError(`--target: ${path}: the file is empty`);
  return { label: basename(path), text };
}

/** Targets named in the (unrestricted) pool. Unknown names throw, or are returned in `missing` when skipMissing. */
export function targetsFromNames(
  names: string[],
  fullPool: PoolTask[],
  arg: string,
  skipMissing = false,
): { targets: SelectionTarget[]; missing: string[] } {
  const byName = new Map(fullPool.map((t) => [t.name, t]));
  const resolve = nameResolver(byName.keys());
  const targets: SelectionTarget[] = [];
  const missing: string[] = [];
  for (const n of names) {
    const r = resolve(n);
    const t = r === undefined ? undefined : byName.get(r);
    if (!t) {
      missing.push(n);
      continue;
    }
    targets.push({ label: n, name: t.name, text: t.text, categories: t.categories, ...(t.examples ? { examples: t.examples } : {}) });
  }
  if (missing.length && !skipMissing) {
    const near = missing[0].match(/^task\d+/)?.[0];
    const hint = near ? fullPool.filter((t) => t.name.startsWith(`${near}_`)).map((t) => t.name)[0] : undefined;
    throw new PoolError(
      `${arg}: unknown task${missing.length > 1 ? "s" : ""} ${missing.slice(0, 5).map((m) => `'${m}'`).join(", ")}${missing.length > 5 ? ` and ${missing.length - 5} more` : ""} (not in the pool)` +
        (hint ? `; did you mean '${hint}'?` : ""),
    );
  }
  return { targets, missing };
}
