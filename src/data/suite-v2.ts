// Suite v2: instruction tasks whose instruction carries ARGUMENTS the model must read ("remove every fox",
// "replace every cat with dog", "add 4 to every number", "output item number 3"), and two-step compositions of
// them. Every task draws its inputs from one shared distribution (lists of 4-6 words and numbers), so the input
// alone does not reveal the task. The default split holds out three kinds of test task:
//   arguments:    seen families with argument values never used by that family in training (held-out words,
//                 letters, numbers);
//   compositions: two-step compositions of seen families, the pair never seen in training;
//   wordings:     seen families and argument values under an instruction phrasing held out from training.
// Same SNI schema and word-level tokenizer as suite v1 (suite.ts); the tokenizer adds T5's sentinel tokens
// <extra_id_0..> for the span-corruption stage that trains the demo's base model.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SniTask } from "./types.js";
import { makeRng, pick, randInt, shuffleInPlace, type RandomFn } from "../util/rng.js";
import { addTaskTexts, sniJsonOf, suiteTokenizerJson, syntheticTaskMeta, syntheticTaskTexts, whitespacePreTokenize, SPECIAL_TOKENS, TEMPLATE_TEXT } from "./suite.js";

/** 36 words, three per starting letter (12 letters), so "the words that start with the letter c" has answers. */
export const V2_WORDS = [
  "bird", "book", "bell", "cat", "cake", "corn", "dog", "door", "duck", "fish", "frog", "fox",
  "gold", "goat", "gate", "hat", "hill", "horn", "lamp", "leaf", "lion", "moon", "milk", "map",
  "pen", "pig", "pear", "rain", "ring", "rock", "sun", "ship", "star", "tree", "tent", "toy",
] as const;
export const V2_LETTERS = ["b", "c", "d", "f", "g", "h", "l", "m", "p", "r", "s", "t"] as const;
/** Argument values held out from training (every family with such arguments tests on them). */
/**
 * Argument values held out per family: a family's test tasks use them, its training tasks never do, and other
 * families' training tasks may (so the words themselves are known as arguments: what is new is the pairing).
 */
export const V2_HELD_OUT: Record<string, string[]> = (() => {
  const ws = shuffleInPlace(makeRng("instill-suite-v2:held"), [...V2_WORDS]);
  const ids = ["count", "after", "which", "first_is", "length_is"];
  return Object.fromEntries(ids.map((id, i) => [id, ws.slice(4 * i, 4 * i + 4)]));
})();
/** Numbers in inputs are 0..20; with "add n" (n <= 9) outputs stay below 30. */
export const V2_MAX_INPUT_NUMBER = 20;
export const V2_SENTINELS = 20;

export type ArgKind = "word" | "letter" | "number";
export type Args = (string | number)[];

export interface Family {
  id: string;
  /** A selector answers with one item or number; a transform rewrites the list (first step of a composition). */
  role: "selector" | "transform";
  category: string;
  args: ArgKind[];
  /** Phrases with {0}, {1} for the arguments; lowercase, no final period. The last one is held out. */
  phrases: string[];
  /** Argument values of training tasks and of the "arguments" test split. */
  trainArgs: Args[];
  testArgs: Args[];
  /** The answer, or null when this input is not a valid instance (e.g. an empty answer). */
  apply: (items: string[], args: Args) => string[] | null;
  /** Produces a list that contains what the family needs (the argument word, enough numbers, ...). */
  fit: (rng: RandomFn, items: string[], args: Args) => string[];
}

const isNum = (s: string) => /^\d+$/.test(s);
const TRAIN_WORDS: string[] = [...V2_WORDS];
/** The words a family's training tasks may take as arguments. */
const trainWords = (id: string) => V2_WORDS.filter((w) => !(V2_HELD_OUT[id] ?? []).includes(w));
const heldPairs = (id: string): Args[] => [V2_HELD_OUT[id].slice(0, 2), V2_HELD_OUT[id].slice(2, 4)];

/** Puts `w` at a random position (replacing an item) unless it is already there. */
function ensureWord(rng: RandomFn, items: string[], w: string): string[] {
  if (items.includes(w)) return items;
  const out = [...items];
  out[randInt(rng, 0, out.length - 1)] = w;
  return out;
}

/** The list with `w` exactly once, at a random position in [lo, hi]. */
function placeOnce(rng: RandomFn, items: string[], w: string, lo: number, hi: number): string[] {
  const out = items.map((x) => (x === w ? pick(rng, V2_WORDS.filter((t) => t !== w)) : x));
  out[randInt(rng, lo, Math.max(lo, hi))] = w;
  return out;
}

function ensureAt(items: string[], i: number, v: string): string[] {
  const out = [...items];
  out[i] = v;
  return out;
}

function structureRng(tag: string): RandomFn {
  return makeRng(`instill-suite-v2:${tag}`);
}

/** k distinct values from xs, fixed by the tag (the task structure does not depend on the instance seed). */
function fixedSample<T>(tag: string, xs: readonly T[], k: number): T[] {
  return shuffleInPlace(structureRng(tag), [...xs]).slice(0, k);
}

/** k distinct (x, y) pairs of training words, x != y, fixed by the tag. */
function trainPairs(tag: string, k: number): Args[] {
  const pool = trainWords(tag);
  const rng = structureRng(tag);
  const seen = new Set<string>();
  const out: Args[] = [];
  while (out.length < k) {
    const x = pick(rng, pool);
    const y = pick(rng, pool);
    if (x === y || seen.has(`${x} ${y}`)) continue;
    seen.add(`${x} ${y}`);
    out.push([x, y]);
  }
  return out;
}

function wordPairs(tag: string, words: readonly string[], k: number): Args[] {
  const rng = structureRng(tag);
  const out: Args[] = [];
  const xs = shuffleInPlace(rng, [...words]).slice(0, k);
  for (const x of xs) {
    let y = pick(rng, V2_WORDS);
    while (y === x) y = pick(rng, V2_WORDS);
    out.push([x, y]);
  }
  return out;
}

export const FAMILIES: Family[] = [
  // Selectors: the answer is one item or one number, picked by the argument.
  {
    id: "count", role: "selector", category: "Counting", args: ["word"],
    phrases: ["count how many times {0} appears", "say how often the word {0} occurs", "give the number of times you see {0}", "tell how many copies of {0} the list has", "find out how many items are {0}"],
    trainArgs: fixedSample("count", trainWords("count"), 20).map((w) => [w]),
    testArgs: V2_HELD_OUT.count.slice(0, 2).map((w) => [w]),
    apply: (xs, [w]) => [String(xs.filter((x) => x === w).length)],
    // 1 to 3 copies of the word, so the answer varies.
    fit: (rng, xs, [w]) => {
      const k = randInt(rng, 1, 3);
      const out = xs.map((x) => (x === w ? pick(rng, TRAIN_WORDS.filter((t) => t !== w)) : x));
      const pos = shuffleInPlace(rng, out.map((_, i) => i)).slice(0, Math.min(k, out.length));
      for (const p of pos) out[p] = String(w);
      return out;
    },
  },
  {
    id: "after", role: "selector", category: "Selection", args: ["word"],
    phrases: ["give the item that comes after {0}", "write the item right after {0}", "say which item follows {0}", "return the item next to {0} on its right", "name the item that sits just behind {0}"],
    trainArgs: fixedSample("after", trainWords("after"), 20).map((w) => [w]),
    testArgs: V2_HELD_OUT.after.slice(0, 2).map((w) => [w]),
    apply: (xs, [w]) => {
      const i = xs.indexOf(String(w));
      return i >= 0 && i + 1 < xs.length && xs.filter((x) => x === w).length === 1 ? [xs[i + 1]] : null;
    },
    fit: (rng, xs, [w]) => placeOnce(rng, xs, String(w), 0, xs.length - 2),
  },
  {
    id: "which", role: "selector", category: "Matching", args: ["word", "word"],
    phrases: ["say which of {0} and {1} is in the list", "tell whether the list has {0} or {1}", "write the one of {0} and {1} that appears", "name which word is present, {0} or {1}", "find out if you see {0} or {1}, and give that word"],
    trainArgs: trainPairs("which", 24),
    testArgs: heldPairs("which"),
    apply: (xs, [a, b]) => {
      const ha = xs.includes(String(a));
      const hb = xs.includes(String(b));
      return ha !== hb ? [String(ha ? a : b)] : null;
    },
    // exactly one of the two, chosen at random
    fit: (rng, xs, [a, b]) => {
      const [yes, no] = rng() < 0.5 ? [String(a), String(b)] : [String(b), String(a)];
      const out = xs.filter((x) => x !== no);
      while (out.length < xs.length) out.push(pick(rng, TRAIN_WORDS.filter((t) => t !== no && t !== yes)));
      return placeOnce(rng, out, yes, 0, out.length - 1);
    },
  },
  {
    id: "first_is", role: "selector", category: "Classification", args: ["word", "word"],
    phrases: ["say {0} if the list begins with a number, otherwise {1}", "answer {0} when the first item is a number and {1} when it is a word", "write {0} for a list that starts with a number, else write {1}", "reply {0} if a number comes first, or {1} if a word comes first", "look at the first item: a number means {0}, a word means {1}"],
    trainArgs: trainPairs("first_is", 24),
    testArgs: heldPairs("first_is"),
    apply: (xs, [a, b]) => [String(isNum(xs[0]) ? a : b)],
    // half the lists start with a number
    fit: (rng, xs) => ensureAt(xs, 0, rng() < 0.5 ? String(randInt(rng, 0, V2_MAX_INPUT_NUMBER)) : pick(rng, V2_WORDS)),
  },
  {
    id: "length_is", role: "selector", category: "Classification", args: ["word", "word"],
    phrases: ["say {0} if the list has four items and {1} if it has five", "answer {0} for four items, {1} for five items", "write {0} when there are four items, otherwise {1}", "reply {0} if you count four items, or {1} if you count five", "count the items: four means {0}, five means {1}"],
    trainArgs: trainPairs("length_is", 24),
    testArgs: heldPairs("length_is"),
    apply: (xs, [a, b]) => (xs.length === 4 ? [String(a)] : xs.length === 5 ? [String(b)] : null),
    fit: (_rng, xs) => xs,
  },
  {
    id: "nth", role: "selector", category: "Selection", args: ["number"],
    phrases: ["output item number {0}", "give the item at position {0}", "write only item {0} of the list", "return the item in place {0}", "keep nothing but item number {0}"],
    trainArgs: [[1], [2], [3], [5]],
    testArgs: [[4]],
    apply: (xs, [n]) => (xs.length >= Number(n) ? [xs[Number(n) - 1]] : null),
    fit: (_rng, xs) => xs,
  },
  // Transforms: list to list; they appear as the first step of two-step tasks.
  {
    id: "remove", role: "transform", category: "Filtering", args: ["word"],
    phrases: ["remove every {0}", "delete each {0} from the list", "copy the list but leave out {0}", "write the items without the word {0}", "drop all copies of {0} and keep the rest"],
    trainArgs: fixedSample("remove", TRAIN_WORDS, 6).map((w) => [w]),
    testArgs: [],
    apply: (xs, [w]) => {
      const out = xs.filter((x) => x !== w);
      return out.length ? out : null;
    },
    fit: (rng, xs, [w]) => ensureWord(rng, xs, String(w)),
  },
  {
    id: "replace", role: "transform", category: "Rewriting", args: ["word", "word"],
    phrases: ["replace every {0} with {1}", "change each {0} into {1}", "write {1} wherever the list has {0}", "swap every {0} for {1}", "put {1} in the place of each {0}"],
    trainArgs: wordPairs("replace", TRAIN_WORDS, 6),
    testArgs: [],
    apply: (xs, [a, b]) => xs.map((x) => (x === a ? String(b) : x)),
    fit: (rng, xs, [a]) => ensureWord(rng, xs, String(a)),
  },
  {
    id: "prepend", role: "transform", category: "Insertion", args: ["word"],
    phrases: ["put {0} at the start", "add the word {0} before the first item", "write {0} first and then the list", "begin the list with {0}", "place {0} in front of everything"],
    trainArgs: fixedSample("prepend", TRAIN_WORDS, 6).map((w) => [w]),
    testArgs: [],
    apply: (xs, [w]) => [String(w), ...xs],
    fit: (_rng, xs) => xs,
  },
  {
    id: "reverse", role: "transform", category: "Reordering", args: [],
    phrases: ["reverse the list", "write the items in reverse order", "turn the list around", "put the last item first and so on", "read the list from right to left"],
    trainArgs: [[]],
    testArgs: [],
    apply: (xs) => [...xs].reverse(),
    fit: (_rng, xs) => xs,
  },
];

const FAM = new Map(FAMILIES.map((f) => [f.id, f]));
export function family(id: string): Family {
  const f = FAM.get(id);
  if (!f) throw new Error(`unknown suite v2 family '${id}' (known: ${FAMILIES.map((x) => x.id).join(", ")})`);
  return f;
}

/** Phrases 0..SEEN-1 are used by training tasks; the rest only by "wordings" test tasks. */
export const V2_SEEN_PHRASES = 4;

export interface Step {
  family: string;
  args: Args;
}

/** Which test split a task belongs to ("train" for training tasks). */
export type V2Group = "train" | "arguments" | "compositions" | "wordings";
export const V2_TEST_GROUPS: Exclude<V2Group, "train">[] = ["arguments", "compositions", "wordings"];

export interface SuiteV2Task extends SniTask {
  steps: Step[];
  split: "train" | "test";
  group: V2Group;
}

export interface SuiteV2 {
  version: 2;
  seed: number;
  tasks: SuiteV2Task[];
  train: string[];
  test: string[];
}

export interface SynthesizeV2Options {
  seed?: number;
  /** Instances per task (default 60). */
  instancesPerTask?: number;
  positiveExamples?: number;
  negativeExamples?: number;
}

/** Applies the steps in order; every intermediate value (index 0 = the input), or null if a step is invalid. */
export function runV2Steps(steps: Step[], input: string[]): string[][] | null {
  const out = [input];
  let cur = input;
  for (const s of steps) {
    const next = family(s.family).apply(cur, s.args);
    if (next === null) return null;
    out.push(next);
    cur = next;
  }
  return out;
}

/** The shared input distribution: 4-5 items, each a word (75%) or a number 0..20 (25%). */
export function sharedInput(rng: RandomFn): string[] {
  const n = randInt(rng, 4, 5);
  return Array.from({ length: n }, () => (rng() < 0.75 ? pick(rng, V2_WORDS) : String(randInt(rng, 0, V2_MAX_INPUT_NUMBER))));
}

/** An input for the steps: a shared-distribution draw fitted to every step's needs; null after `tries` failures. */
function drawValid(rng: RandomFn, steps: Step[], tries = 2000): string[][] | null {
  for (let t = 0; t < tries; t++) {
    let x = sharedInput(rng);
    for (const s of [...steps].reverse()) x = family(s.family).fit(rng, x, s.args);
    const vals = runV2Steps(steps, x);
    if (!vals) continue;
    // every step changes its value (so every argument matters), and the answer is not the input
    if (vals.slice(1).some((v, i) => v.join(" ") === vals[i].join(" "))) continue;
    // a composition needs its first step: the second step alone gives another answer
    if (steps.length === 2 && family(steps[1].family).apply(x, steps[1].args)?.join(" ") === vals[2].join(" ")) continue;
    return vals;
  }
  return null;
}

interface Spec {
  steps: Step[];
  group: V2Group;
  /** phrase index per step (wordings: held-out phrases) */
  phrases: number[];
  template: number;
}

const SINGLE_TEMPLATES = ["{P}.", "Read the list and {p}.", "You are given a list of words and numbers. {P}.", "In this task, {p}."];
const PAIR_TEMPLATES = ["First {p1}, then {p2}.", "{P1}, and after that {p2}.", "Do two steps: {p1}; then {p2}.", "You are given a list of words and numbers. {P1}. Then {p2}."];

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function phraseText(f: Family, idx: number, args: Args): string {
  return f.phrases[idx].replace(/\{(\d)\}/g, (_, k) => String(args[Number(k)]));
}

function definitionText(steps: Step[], phrases: number[], template: number): string {
  const ps = steps.map((s, i) => phraseText(family(s.family), phrases[i], s.args));
  if (ps.length === 1) return SINGLE_TEMPLATES[template % SINGLE_TEMPLATES.length].replace("{P}", cap(ps[0])).replace("{p}", ps[0]);
  return PAIR_TEMPLATES[template % PAIR_TEMPLATES.length].replace("{P1}", cap(ps[0])).replace("{p1}", ps[0]).replace("{p2}", ps[1]);
}

/** A composition works: on sample inputs both steps matter (drawValid) nearly always and the answers vary. */
function composable(steps: Step[]): boolean {
  const [a, b] = steps.map((x) => family(x.family));
  if (a.role !== "transform" || b.role !== "selector") return false;
  const rng = structureRng(`composable:${JSON.stringify(steps)}`);
  const answers = new Set<string>();
  let ok = 0;
  for (let i = 0; i < 30; i++) {
    const v = drawValid(rng, steps, 60);
    if (!v && i + 1 - ok > 2) return false;
    if (!v) continue;
    ok++;
    answers.add(v[2].join(" "));
  }
  return ok >= 28 && answers.size >= 2;
}

/** Compositions: unseen test pairs of families, then training pairs. */
export const V2_TEST_COMPOSITIONS = 6;
export const V2_TRAIN_COMPOSITIONS = 22;

let cachedSpecs: Spec[] | undefined;

/** The fixed task structure (independent of the instance seed): every seed has the same tasks and split. */
export function suiteV2Specs(): Spec[] {
  if (cachedSpecs) return cachedSpecs;
  const rng = structureRng("specs");
  const specs: Spec[] = [];
  const seenPhrase = () => randInt(rng, 0, V2_SEEN_PHRASES - 1);
  const template = () => randInt(rng, 0, SINGLE_TEMPLATES.length - 1);
  const selectors = FAMILIES.filter((f) => f.role === "selector");
  const transforms = FAMILIES.filter((f) => f.role === "transform");
  for (const f of selectors) {
    for (const a of f.trainArgs) specs.push({ steps: [{ family: f.id, args: a }], group: "train", phrases: [seenPhrase()], template: template() });
  }
  for (const f of selectors) {
    for (const a of f.testArgs) specs.push({ steps: [{ family: f.id, args: a }], group: "arguments", phrases: [seenPhrase()], template: template() });
  }
  // Two-step tasks: a transform, then a selector; the first pairs (shuffled) are held out.
  const pairs: [Family, Family][] = [];
  for (const a of transforms) for (const b of selectors) pairs.push([a, b]);
  shuffleInPlace(rng, pairs);
  const cands: Step[][] = [];
  for (const [a, b] of pairs) {
    if (cands.length >= V2_TEST_COMPOSITIONS + V2_TRAIN_COMPOSITIONS) break;
    for (let tries = 0; tries < 20; tries++) {
      const steps: Step[] = [
        { family: a.id, args: pick(rng, a.trainArgs) },
        { family: b.id, args: pick(rng, b.trainArgs) },
      ];
      if (!composable(steps)) continue;
      cands.push(steps);
      break;
    }
  }
  // Held-out pairs: the first ones whose transform still has a training pair (so every family is seen).
  const test = new Set<number>();
  cands.forEach((c, i) => {
    if (test.size < V2_TEST_COMPOSITIONS && cands.some((d, j) => j !== i && !test.has(j) && d[0].family === c[0].family)) test.add(i);
  });
  cands.forEach((steps, i) => {
    specs.push({ steps, group: test.has(i) ? "compositions" : "train", phrases: [seenPhrase(), seenPhrase()], template: randInt(rng, 0, PAIR_TEMPLATES.length - 1) });
  });
  // Held-out wordings: seen selectors with seen argument values, phrased with the held-out phrase.
  for (const id of ["count", "after", "which", "first_is", "length_is", "nth"]) {
    const f = family(id);
    specs.push({ steps: [{ family: id, args: pick(rng, f.trainArgs) }], group: "wordings", phrases: [V2_SEEN_PHRASES], template: template() });
  }
  cachedSpecs = specs;
  return specs;
}

function taskName(i: number, spec: Spec): string {
  const num = String(i + 1).padStart(3, "0");
  const body = spec.steps.map((s) => [s.family, ...s.args].join("_")).join("_then_");
  return `v2task${num}_${body}${spec.group === "wordings" ? "_reworded" : ""}`;
}

function explain(vals: string[][]): string {
  const show = (v: string[]) => v.join(" ");
  if (vals.length === 2) return `The rule turns ${show(vals[0])} into ${show(vals[1])}.`;
  return `The first step gives ${show(vals[1])}, and the second step gives ${show(vals[2])}.`;
}

/** Wrong answers for negative examples: the input unchanged, only the first step, or another argument's answer. */
function wrongAnswers(steps: Step[], vals: string[][], rng: RandomFn): { output: string; why: string }[] {
  const right = vals[vals.length - 1].join(" ");
  const cands: { output: string; why: string }[] = [];
  if (steps.length === 2) cands.push({ output: vals[1].join(" "), why: "it stops after the first step" });
  cands.push({ output: vals[0].join(" "), why: "it only copies the input" });
  const last = family(steps[steps.length - 1].family);
  for (const a of shuffleInPlace(rng, [...last.trainArgs])) {
    const v = last.apply(vals[vals.length - 2], a);
    if (v) cands.push({ output: v.join(" "), why: `it uses ${a.join(" and ")} instead of ${steps[steps.length - 1].args.join(" and ")}` });
  }
  const seen = new Set<string>([right]);
  return cands.filter((c) => c.output.length > 0 && !seen.has(c.output) && (seen.add(c.output), true));
}

/** Generates suite v2 from a seed (deterministic: the same seed gives the same tasks, byte for byte). */
export function synthesizeSuiteV2(opts: SynthesizeV2Options = {}): SuiteV2 {
  const seed = opts.seed ?? 42;
  const nInst = opts.instancesPerTask ?? 60;
  const nPos = opts.positiveExamples ?? 3;
  const nNeg = opts.negativeExamples ?? 2;
  const specs = suiteV2Specs();
  const tasks = specs.map((spec, i): SuiteV2Task => {
    const name = taskName(i, spec);
    const rng = makeRng(`${seed}:${name}`);
    const used = new Set<string>();
    const fresh = (): string[][] => {
      let v: string[][] | null = null;
      for (let t = 0; t < 50; t++) {
        v = drawValid(rng, spec.steps);
        if (!v) break;
        const key = v[0].join(" ");
        if (!used.has(key)) {
          used.add(key);
          return v;
        }
      }
      if (!v) throw new Error(`suite v2: cannot generate an input for ${name}`);
      return v;
    };
    const texts = syntheticTaskTexts(name, { positive: nPos, negative: nNeg, instances: nInst }, {
      fresh,
      explain,
      wrong: (v) => wrongAnswers(spec.steps, v, rng)[0],
    });
    // Definitions: the first is what the encoding reads; two more wordings (same phrase set) follow.
    const defs = [definitionText(spec.steps, spec.phrases, spec.template)];
    for (let k = 1; k < 3; k++) {
      const ph = spec.group === "wordings" ? spec.phrases : spec.phrases.map((p) => (p + k) % V2_SEEN_PHRASES);
      defs.push(definitionText(spec.steps, ph, spec.template + k));
    }
    const last = family(spec.steps[spec.steps.length - 1].family);
    return {
      name,
      source: "instill synthetic suite v2",
      definition: [...new Set(defs)],
      ...texts,
      ...syntheticTaskMeta(last.category),
      steps: spec.steps,
      split: spec.group === "train" ? "train" : "test",
      group: spec.group,
    };
  });
  return {
    version: 2,
    seed,
    tasks,
    train: tasks.filter((t) => t.split === "train").map((t) => t.name),
    test: tasks.filter((t) => t.split === "test").map((t) => t.name),
  };
}

/** The task in the official SNI file schema (suite metadata under "instill"). */
export function suiteV2TaskToSniJson(t: SuiteV2Task): Record<string, unknown> {
  return sniJsonOf(t, "instill synthetic suite v2", { suite: 2, steps: t.steps, split: t.split, group: t.group });
}

export function sentinelToken(i: number): string {
  return `<extra_id_${i}>`;
}

/** Specials, then every token any task text can contain, then the sentinels <extra_id_0..19> (as T5: at the end). */
export function suiteV2Vocabulary(suite: SuiteV2): string[] {
  const tokens = new Set<string>();
  const add = (s: string) => {
    for (const t of whitespacePreTokenize(s)) tokens.add(t);
  };
  add(TEMPLATE_TEXT);
  for (const w of V2_WORDS) tokens.add(w);
  for (const c of V2_LETTERS) tokens.add(c);
  for (let n = 0; n <= 40; n++) tokens.add(String(n));
  for (const f of FAMILIES) for (const p of f.phrases) add(p.replace(/\{\d\}/g, " "));
  for (const t of [...SINGLE_TEMPLATES, ...PAIR_TEMPLATES]) add(t.replace(/\{\w+\}/g, " "));
  for (const t of suite.tasks) addTaskTexts(t, add);
  for (const s of SPECIAL_TOKENS) tokens.delete(s);
  const sorted = [...tokens].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [...SPECIAL_TOKENS, ...sorted, ...Array.from({ length: V2_SENTINELS }, (_, i) => sentinelToken(i))];
}

export interface WrittenSuiteV2 {
  dir: string;
  version: 2;
  tasks: number;
  train: number;
  test: number;
  vocabSize: number;
  groups: Record<Exclude<V2Group, "train">, number>;
}

/** Writes tasks/*.json, splits/default/{train,test}_tasks.txt, tokenizer.json and tokenizer_config.json. */
export function writeSuiteV2(dir: string, seed = 42, opts: Omit<SynthesizeV2Options, "seed"> = {}): WrittenSuiteV2 {
  const suite = synthesizeSuiteV2({ ...opts, seed });
  mkdirSync(join(dir, "tasks"), { recursive: true });
  mkdirSync(join(dir, "splits", "default"), { recursive: true });
  for (const t of suite.tasks) writeFileSync(join(dir, "tasks", `${t.name}.json`), JSON.stringify(suiteV2TaskToSniJson(t), null, 1) + "\n");
  writeFileSync(join(dir, "splits", "default", "train_tasks.txt"), suite.train.join("\n") + "\n");
  writeFileSync(join(dir, "splits", "default", "test_tasks.txt"), suite.test.join("\n") + "\n");
  const vocab = suiteV2Vocabulary(suite);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(suiteTokenizerJson(vocab, { extraSpecial: vocab.slice(vocab.length - V2_SENTINELS) }), null, 1) + "\n");
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", pad_token: "<pad>", eos_token: "</s>", unk_token: "<unk>", model_max_length: 512 }, null, 1) + "\n",
  );
  const count = (g: V2Group) => suite.tasks.filter((t) => t.group === g).length;
  return {
    dir,
    version: 2,
    tasks: suite.tasks.length,
    train: suite.train.length,
    test: suite.test.length,
    vocabSize: vocab.length,
    groups: { arguments: count("arguments"), compositions: count("compositions"), wordings: count("wordings") },
  };
}

/** name -> test group, for a synthesized suite (the demo's per-split tables). */
export function suiteV2Groups(suite: SuiteV2): Map<string, V2Group> {
  return new Map(suite.tasks.map((t) => [t.name, t.group]));
}
