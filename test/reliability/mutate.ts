// A seeded mutation driver for the files instill reads from strangers on the TypeScript side (issue 18): SNI task
// files, run configs (YAML/JSON), JSONL task and score files, tokenizer.json. Each target writes one mutated
// input to a file, runs the reader, and checks the contract:
//   - accepted: the result is usable downstream (the target's own check, e.g. encoding an instance);
//   - rejected: an Error whose message names the file (starts with its path) and, when the input is well-formed
//     JSON/YAML, the field (one of the keys on the mutated path, or a JSON path given by the reader);
//   - anything else (a TypeError from deep inside, a message without the file, a hang) is a violation.
// `runTarget` returns the figures; violations carry the input so a failure can be replayed.
import { writeFileSync } from "node:fs";
import { makeRng, type RandomFn } from "../../src/util/rng.js";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Key = string | number;

/** What a mutation did: for tree mutations the path it touched (keys, old and new names for renames). */
export interface Mutation {
  text: string;
  /** True when the text is still well-formed JSON (tree mutations, serialized): a rejection must name a field. */
  wellFormed: boolean;
  /** Keys on the touched path (names only; array indices as numbers) and any key names involved. */
  keys: Key[];
  op: string;
}

export interface TargetSpec {
  name: string;
  /** Where the input goes (the reader's file); the file's name is what rejections must start with. */
  file: string;
  seeds: Json[];
  /** Serializes a tree (JSON by default; YAML for configs; JSONL for line files). */
  serialize?: (v: Json, rng: RandomFn) => string;
  /** Runs the reader on `file`; throws to reject; returns to accept. May do downstream checks. */
  read: (file: string) => void;
  /** Extra field names a message may use for a mutated path (e.g. the reader's own spelling). */
  aliases?: (keys: Key[]) => string[];
}

export interface Figures {
  target: string;
  inputs: number;
  accepted: number;
  rejected: number;
  /** The first 20 violations with their inputs; `violationCount` counts them all. */
  violations: { op: string; message: string; input: string }[];
  violationCount: number;
  ops: Record<string, number>;
  slowestMs: number;
}

const pickOf = <T>(rng: RandomFn, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const intBelow = (rng: RandomFn, n: number) => Math.floor(rng() * n);

const REPLACEMENTS: Json[] = [
  null, true, false, 0, -1, 1, 1.5, -0.5, 1e300, -1e300, 2 ** 53 + 2, 2 ** 31, "", " ", "x", "\u0000", "\ud800", "é✓", "-1", "1e309",
  [], [null], [1], [""], {}, { a: 1 }, "a".repeat(5000),
];

function clone<T extends Json>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** All paths in a tree (root included). */
function paths(v: Json, base: Key[] = [], out: Key[][] = []): Key[][] {
  out.push(base);
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...base, i], out));
  else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) paths(x, [...base, k], out);
  return out;
}

function getAt(v: Json, p: Key[]): Json {
  let cur: Json = v;
  for (const k of p) cur = (cur as Record<string, Json>)[k as string] as Json;
  return cur;
}

/** obj[k] = v as an own property, even for "__proto__" (as JSON.parse and YAML.parse create it). */
function putKey(obj: Record<string, Json>, k: string, v: Json): void {
  Object.defineProperty(obj, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function setAt(root: Json, p: Key[], value: Json | undefined): Json {
  if (p.length === 0) return value === undefined ? null : value;
  const parent = getAt(root, p.slice(0, -1)) as Record<string, Json> | Json[];
  const k = p[p.length - 1]!;
  if (Array.isArray(parent)) {
    if (value === undefined) parent.splice(k as number, 1);
    else parent[k as number] = value;
  } else if (value === undefined) delete parent[k as string];
  else putKey(parent, k as string, value);
  return root;
}

/** One mutated input from `seed`: usually a tree mutation (well-formed), sometimes a text mutation. */
export function mutate(seed: Json, rng: RandomFn, serialize: (v: Json, rng: RandomFn) => string): Mutation {
  let tree = clone(seed);
  // Paths touched so far; a later mutation of an ancestor supersedes them (its value is what the reader sees).
  let touched: Key[][] = [];
  const touch = (p: Key[]) => {
    touched = touched.filter((t) => !(t.length >= p.length && p.every((k, i) => t[i] === k)));
    touched.push(p);
  };
  const ops: string[] = [];
  const n = 1 + intBelow(rng, 3);
  for (let m = 0; m < n; m++) {
    const p = pickOf(rng, paths(tree));
    const cur = getAt(tree, p);
    const op = intBelow(rng, 9);
    touch(p);
    if (op <= 2) {
      tree = setAt(tree, p, clone(pickOf(rng, REPLACEMENTS)));
      ops.push("replace");
    } else if (op === 3 && p.length > 0) {
      tree = setAt(tree, p, undefined);
      ops.push("delete");
    } else if (op === 4 && p.length > 0 && typeof p[p.length - 1] === "string") {
      const parent = getAt(tree, p.slice(0, -1)) as Record<string, Json>;
      const old = p[p.length - 1] as string;
      const nu = pickOf(rng, [old + "x", old.toLowerCase(), old.toUpperCase(), old.replace(/[ _]/g, ""), "", "__proto__", "constructor"]);
      const v = parent[old]!;
      delete parent[old];
      putKey(parent, nu, v);
      touch([...p.slice(0, -1), nu]);
      touched.push(p);
      ops.push("rename");
    } else if (op === 5 && Array.isArray(cur)) {
      if (cur.length > 0 && rng() < 0.5) cur.push(clone(cur[intBelow(rng, cur.length)]!));
      else cur.length = 0;
      ops.push("array");
    } else if (op === 6) {
      tree = setAt(tree, p, [clone(cur)]);
      ops.push("wrap");
    } else if (op === 7 && cur !== null && typeof cur === "object" && !Array.isArray(cur)) {
      const k = pickOf(rng, ["extra", "Definition", "lr", "__proto__", "steps", "", "task"]);
      putKey(cur, k, clone(pickOf(rng, REPLACEMENTS)));
      touch([...p, k]);
      ops.push("add-key");
    } else if (typeof cur === "number") {
      tree = setAt(tree, p, pickOf(rng, [cur + 1, cur - 1, -cur, cur * 1e6, cur + 0.5, 0, 2 ** 31, Number.MAX_SAFE_INTEGER]));
      ops.push("number");
    } else {
      tree = setAt(tree, p, clone(pickOf(rng, REPLACEMENTS)));
      ops.push("replace");
    }
  }
  // The root replaced: naming the file is all a message can do.
  const keys: Key[] = touched.some((t) => t.length === 0) ? [] : touched.flat();
  let text = serialize(tree, rng);
  let wellFormed = true;
  if (rng() < 0.2) {
    wellFormed = false;
    const t = intBelow(rng, 5);
    const at = intBelow(rng, text.length + 1);
    if (t === 0) text = text.slice(0, at);
    else if (t === 1) text = text.slice(0, at) + pickOf(rng, ["{", "}", "[", "]", ",", ":", '"', "\\", "\n", "\u0000", "\ufeff", "'"]) + text.slice(at);
    else if (t === 2) text = text.slice(0, at) + text.slice(at + 1 + intBelow(rng, 8));
    else if (t === 3) text = "\ufeff" + text;
    else text = text + pickOf(rng, ["\n", "\n{}", "garbage", "\n\n\n", "\u0000"]);
    ops.push("text");
  }
  return { text, wellFormed, keys, op: ops.join("+") };
}

/** Does `message` name the field the mutation touched (any string key on its path, or an alias)? */
export function namesField(message: string, m: Mutation, aliases: string[] = []): boolean {
  if (m.keys.length === 0) return true;
  const names = [...m.keys.filter((k): k is string => typeof k === "string" && k.length > 0), ...aliases];
  if (names.length === 0) return true; // only array indices touched, and no alias spells them
  return names.some((k) => message.includes(k));
}

export function runTarget(spec: TargetSpec, runs: number, seed: number): Figures {
  const rng = makeRng(`${spec.name}:${seed}`);
  const serialize = spec.serialize ?? ((v: Json) => JSON.stringify(v, null, rng() < 0.5 ? 1 : undefined));
  const fig: Figures = { target: spec.name, inputs: 0, accepted: 0, rejected: 0, violations: [], violationCount: 0, ops: {}, slowestMs: 0 };
  const violation = (v: Figures["violations"][number]) => {
    fig.violationCount++;
    if (fig.violations.length < 20) fig.violations.push(v);
  };
  for (let i = 0; i < runs; i++) {
    const m: Mutation =
      i < spec.seeds.length
        ? { text: serialize(spec.seeds[i]!, rng), wellFormed: true, keys: [], op: "seed" }
        : mutate(pickOf(rng, spec.seeds), rng, serialize);
    fig.ops[m.op] = (fig.ops[m.op] ?? 0) + 1;
    writeFileSync(spec.file, m.text);
    const t0 = performance.now();
    let err: unknown;
    try {
      spec.read(spec.file);
      fig.accepted++;
    } catch (e) {
      err = e;
      fig.rejected++;
    }
    fig.slowestMs = Math.max(fig.slowestMs, performance.now() - t0);
    fig.inputs++;
    if (i < spec.seeds.length && err !== undefined) violation({ op: "seed", message: `a seed input was rejected: ${(err as Error).message}`, input: m.text });
    if (err === undefined) continue;
    const msg = err instanceof Error ? err.message : String(err);
    let why = "";
    if (!(err instanceof Error)) why = "not an Error";
    else if (!msg.startsWith(spec.file)) why = "does not start with the file's path";
    else if (m.wellFormed && !namesField(msg, m, spec.aliases?.(m.keys))) why = `names none of the touched fields (${m.keys.filter((k) => typeof k === "string").join(", ")})`;
    if (why) violation({ op: m.op, message: `${why}: ${err instanceof Error ? err.name + ": " : ""}${msg.slice(0, 300)}`, input: m.text.slice(0, 2000) });
  }
  return fig;
}
