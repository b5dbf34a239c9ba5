// The embedded instruction suite: small but genuine instruction tasks in the SNI schema, generated from a seed.
// Primitive operations on short inputs of words, spaced letters and numbers are combined into single-step
// tasks and two-step compositions ("sort the words, then uppercase them"). The default split holds out
// unseen compositions of seen primitives and unseen wordings of seen primitives, so solving a test task
// requires reading its instruction. A word-level tokenizer.json covering the whole vocabulary comes with it.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SniExample, SniInstance, SniTask } from "./types.js";
import { makeRng, pick, randInt, shuffleInPlace, type RandomFn } from "../util/rng.js";

export type Kind = "words" | "letters" | "numbers" | "answer";

export interface Primitive {
  id: string;
  input: Exclude<Kind, "answer">;
  output: Kind;
  category: string;
  /** Imperative phrases, lowercase, no final period. The last one is held out from training tasks. */
  phrases: string[];
  apply: (items: string[]) => string[];
}

export const SUITE_WORDS = [
  "cat", "dog", "sun", "tree", "red", "blue", "fish", "bird", "moon", "star", "cake", "milk", "book", "lamp",
  "ship", "road", "king", "gold", "rain", "snow", "leaf", "rock", "frog", "bell", "door", "ring", "wolf", "corn",
  "hat", "box",
] as const;
export const SUITE_LETTERS = "abcdefghijklmnopqrstuvwxyz".split("");
const VOWELS = new Set(["a", "e", "i", "o", "u"]);
/** Numbers in inputs are 0..19; outputs (sums, +1) stay below 100. */
export const SUITE_MAX_NUMBER = 99;

const byCode = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export const PRIMITIVES: Primitive[] = [
  {
    id: "reverse_words", input: "words", output: "words", category: "Reordering",
    phrases: ["reverse the order of the words", "write the words in reverse order", "list the words from last to first", "turn the list of words around", "put the words backwards, the last word first"],
    apply: (w) => [...w].reverse(),
  },
  {
    id: "sort_words", input: "words", output: "words", category: "Sorting",
    phrases: ["sort the words in alphabetical order", "put the words in alphabetical order", "arrange the words from a to z", "order the words alphabetically", "write the words sorted like in a dictionary"],
    apply: (w) => [...w].sort(byCode),
  },
  {
    id: "upper_words", input: "words", output: "words", category: "Case Conversion",
    phrases: ["write every word in uppercase", "change the words to capital letters", "make each word uppercase", "convert all the words to upper case", "shout the words in big letters"],
    apply: (w) => w.map((x) => x.toUpperCase()),
  },
  {
    id: "last_word", input: "words", output: "words", category: "Selection",
    phrases: ["keep only the last word", "give the last word", "return the final word of the list", "output the word at the end", "drop every word except the last one"],
    apply: (w) => [w[w.length - 1]],
  },
  {
    id: "first_word", input: "words", output: "words", category: "Selection",
    phrases: ["keep only the first word", "give the first word", "return the word at the start of the list", "output the opening word", "drop every word except the first one"],
    apply: (w) => [w[0]],
  },
  {
    id: "drop_first_word", input: "words", output: "words", category: "Filtering",
    phrases: ["remove the first word", "delete the first word and keep the rest", "write all the words but the first", "leave out the word at the start", "skip the opening word and copy the others"],
    apply: (w) => w.slice(1),
  },
  {
    id: "count_words", input: "words", output: "numbers", category: "Counting",
    phrases: ["count the words", "give the number of words", "say how many words there are", "tell how many words the list has", "find the length of the list of words"],
    apply: (w) => [String(w.length)],
  },
  {
    id: "reverse_letters", input: "letters", output: "letters", category: "Reordering",
    phrases: ["reverse the letters", "write the letters in reverse order", "spell the letters backwards", "list the letters from last to first", "read the letters from right to left"],
    apply: (l) => [...l].reverse(),
  },
  {
    id: "remove_vowels", input: "letters", output: "letters", category: "Filtering",
    phrases: ["remove the vowels", "delete every vowel from the letters", "keep only the consonants", "drop the letters a e i o u", "copy the letters without any vowel"],
    apply: (l) => l.filter((c) => !VOWELS.has(c)),
  },
  {
    id: "upper_letters", input: "letters", output: "letters", category: "Case Conversion",
    phrases: ["write every letter in uppercase", "change the letters to capital letters", "make each letter uppercase", "convert the letters to upper case", "shout the letters in big type"],
    apply: (l) => l.map((c) => c.toUpperCase()),
  },
  {
    id: "sort_letters", input: "letters", output: "letters", category: "Sorting",
    phrases: ["sort the letters in alphabetical order", "put the letters in alphabetical order", "arrange the letters from a to z", "order the letters alphabetically", "write the letters sorted like the alphabet"],
    apply: (l) => [...l].sort(byCode),
  },
  {
    id: "last_letter", input: "letters", output: "letters", category: "Selection",
    phrases: ["keep only the last letter", "give the last letter", "return the final letter", "output the letter at the end", "drop every letter except the last one"],
    apply: (l) => [l[l.length - 1]],
  },
  {
    id: "count_letters", input: "letters", output: "numbers", category: "Counting",
    phrases: ["count the letters", "give the number of letters", "say how many letters there are", "tell how many letters are given", "find the length of the letter list"],
    apply: (l) => [String(l.length)],
  },
  {
    id: "is_palindrome", input: "letters", output: "answer", category: "Classification",
    phrases: ["answer yes if the letters read the same backwards, otherwise no", "say yes when the letters form a palindrome and no when they do not", "tell if the letters are the same from both ends with yes or no", "reply yes for a palindrome, no for anything else", "check whether reversing the letters changes nothing, and answer yes or no"],
    apply: (l) => [l.join(" ") === [...l].reverse().join(" ") ? "yes" : "no"],
  },
  {
    id: "sort_numbers", input: "numbers", output: "numbers", category: "Sorting",
    phrases: ["sort the numbers from smallest to largest", "put the numbers in ascending order", "arrange the numbers from low to high", "order the numbers starting with the smallest", "write the numbers going up in size"],
    apply: (n) => [...n].sort((a, b) => Number(a) - Number(b)),
  },
  {
    id: "sort_numbers_desc", input: "numbers", output: "numbers", category: "Sorting",
    phrases: ["sort the numbers from largest to smallest", "put the numbers in descending order", "arrange the numbers from high to low", "order the numbers starting with the largest", "write the numbers going down in size"],
    apply: (n) => [...n].sort((a, b) => Number(b) - Number(a)),
  },
  {
    id: "sum_numbers", input: "numbers", output: "numbers", category: "Arithmetic",
    phrases: ["add up the numbers", "give the sum of the numbers", "compute the total of the numbers", "say what the numbers add up to", "find the result of adding all the numbers together"],
    apply: (n) => [String(n.reduce((s, x) => s + Number(x), 0))],
  },
  {
    id: "max_number", input: "numbers", output: "numbers", category: "Selection",
    phrases: ["give the largest number", "find the biggest number", "return the maximum of the numbers", "say which number is the highest", "pick the number that is larger than all the others"],
    apply: (n) => [String(Math.max(...n.map(Number)))],
  },
  {
    id: "min_number", input: "numbers", output: "numbers", category: "Selection",
    phrases: ["give the smallest number", "find the lowest number", "return the minimum of the numbers", "say which number is the least", "pick the number that is smaller than all the others"],
    apply: (n) => [String(Math.min(...n.map(Number)))],
  },
  {
    id: "add_one", input: "numbers", output: "numbers", category: "Arithmetic",
    phrases: ["add one to every number", "increase each number by one", "write each number plus one", "raise every number by 1", "replace each number with the next number up"],
    apply: (n) => n.map((x) => String(Number(x) + 1)),
  },
];

const PRIM = new Map(PRIMITIVES.map((p) => [p.id, p]));
export function primitive(id: string): Primitive {
  const p = PRIM.get(id);
  if (!p) throw new Error(`unknown suite primitive '${id}'`);
  return p;
}

const INPUT_DESC: Record<Primitive["input"], string[]> = {
  words: ["a list of words", "some words", "a few words"],
  letters: ["letters separated by spaces", "some letters", "a short row of letters"],
  numbers: ["a list of numbers", "some numbers", "a few numbers"],
};

/** How many phrases per primitive are used by training tasks; the rest are held out for test tasks. */
const SEEN_PHRASES = 4;

export interface SuiteTask extends SniTask {
  /** The primitive ids applied in order. */
  steps: string[];
  /** Which split the task belongs to, and why. */
  split: "train" | "test";
  kind: "single" | "composition" | "paraphrase";
}

export interface Suite {
  seed: number;
  tasks: SuiteTask[];
  train: string[];
  test: string[];
}

export interface SynthesizeOptions {
  seed?: number;
  /** Instances per task (default 100). */
  instancesPerTask?: number;
  /** Positive / negative examples per task (default 3 / 2). */
  positiveExamples?: number;
  negativeExamples?: number;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Applies the steps in order; returns every intermediate value (index 0 = input). */
export function runSteps(steps: string[], input: string[]): string[][] {
  const out = [input];
  let cur = input;
  for (const s of steps) {
    cur = primitive(s).apply(cur);
    out.push(cur);
  }
  return out;
}

const CONSONANTS = SUITE_LETTERS.filter((c) => !VOWELS.has(c));

/** A random input of a kind. Letters mix vowels in (about a third); `palindromes` makes 40% of them palindromes. */
function genInput(rng: RandomFn, kind: Primitive["input"], palindromes = false): string[] {
  if (kind === "words") {
    const n = randInt(rng, 3, 5);
    return shuffleInPlace(rng, [...SUITE_WORDS]).slice(0, n);
  }
  if (kind === "letters") {
    const n = randInt(rng, 3, 6);
    const letter = () => (rng() < 0.35 ? pick(rng, [...VOWELS]) : pick(rng, CONSONANTS));
    if (palindromes && rng() < 0.4) {
      const half = Array.from({ length: Math.ceil(n / 2) }, letter);
      const mirror = [...half].reverse().slice(n % 2);
      return [...half, ...mirror];
    }
    return Array.from({ length: n }, letter);
  }
  const n = randInt(rng, 3, 5);
  return Array.from({ length: n }, () => String(randInt(rng, 0, 19)));
}

function valid(vals: string[][]): boolean {
  return vals.every((v) => v.length > 0);
}

/**
 * A composition is used only if both steps matter and the answer varies: on sample inputs it differs from
 * each step alone, it has at least 3 distinct answers (yes/no tasks: each answer at least 15% of the time).
 */
function meaningful(a: Primitive, b: Primitive): boolean {
  if (a.output === "answer" || a.output !== b.input) return false;
  const rng = makeRng(`meaningful:${a.id}:${b.id}`);
  const pal = b.id === "is_palindrome";
  let diffA = false;
  let diffB = false;
  let ok = 0;
  const answers = new Map<string, number>();
  for (let i = 0; i < 400 && ok < 60; i++) {
    const x = genInput(rng, a.input, pal);
    const vals = runSteps([a.id, b.id], x);
    if (!valid(vals)) continue;
    ok++;
    const full = vals[2].join(" ");
    answers.set(full, (answers.get(full) ?? 0) + 1);
    if (full !== vals[1].join(" ")) diffA = true;
    if (a.input === b.input) {
      if (full !== b.apply(x).join(" ")) diffB = true;
    } else diffB = true;
  }
  const varied = b.output === "answer" ? answers.size === 2 && [...answers.values()].every((c) => c >= 0.15 * ok) : answers.size >= 3;
  return ok >= 30 && diffA && diffB && varied;
}

interface TaskSpec {
  steps: string[];
  split: "train" | "test";
  kind: SuiteTask["kind"];
}

/** The fixed task structure (independent of the instance seed), so every seed has the same tasks and split. */
let cachedSpecs: TaskSpec[] | undefined;

export function suiteTaskSpecs(): TaskSpec[] {
  if (cachedSpecs) return cachedSpecs.map((s) => ({ ...s, steps: [...s.steps] }));
  const specs: TaskSpec[] = PRIMITIVES.map((p) => ({ steps: [p.id], split: "train" as const, kind: "single" as const }));
  const pairs: [string, string][] = [];
  for (const a of PRIMITIVES) for (const b of PRIMITIVES) if (a.id !== b.id && meaningful(a, b)) pairs.push([a.id, b.id]);
  const rng = makeRng("instill-suite-structure-v1");
  shuffleInPlace(rng, pairs);
  // Unseen compositions for the test split: 10 pairs; 30 more pairs train.
  const test = pairs.slice(0, 10);
  const train = pairs.slice(10, 40);
  for (const p of train) specs.push({ steps: p, split: "train", kind: "composition" });
  for (const p of test) specs.push({ steps: p, split: "test", kind: "composition" });
  // Unseen wordings of seen primitives: two per input kind and the classifier.
  for (const id of ["reverse_words", "upper_words", "count_words", "remove_vowels", "sort_letters", "is_palindrome", "sort_numbers_desc", "add_one"]) {
    specs.push({ steps: [id], split: "test", kind: "paraphrase" });
  }
  cachedSpecs = specs;
  return suiteTaskSpecs();
}

function taskName(i: number, spec: TaskSpec): string {
  const num = String(i + 1).padStart(3, "0");
  const body = spec.steps.join("_then_");
  return `task${num}_${body}${spec.kind === "paraphrase" ? "_reworded" : ""}`;
}

function definitionsFor(spec: TaskSpec, rng: RandomFn): string[] {
  const first = primitive(spec.steps[0]);
  const descs = INPUT_DESC[first.input];
  const phraseIdx = (p: Primitive, k: number) => (spec.kind === "paraphrase" ? SEEN_PHRASES + (k % (p.phrases.length - SEEN_PHRASES)) : k % SEEN_PHRASES);
  const defs: string[] = [];
  if (spec.steps.length === 1) {
    const offset = randInt(rng, 0, SEEN_PHRASES - 1);
    const ph = (k: number) => first.phrases[phraseIdx(first, k + offset)];
    defs.push(`${cap(ph(0))}.`);
    defs.push(`You are given ${descs[0]}. ${cap(ph(1))}.`);
    defs.push(`In this task you get ${descs[1]}; ${ph(2)}.`);
    defs.push(`Read ${descs[2]} and ${ph(3)}.`);
  } else {
    const [a, b] = spec.steps.map(primitive);
    const o1 = randInt(rng, 0, SEEN_PHRASES - 1);
    const o2 = randInt(rng, 0, SEEN_PHRASES - 1);
    const pa = (k: number) => a.phrases[phraseIdx(a, k + o1)];
    const pb = (k: number) => b.phrases[phraseIdx(b, k + o2)];
    defs.push(`First ${pa(0)}, then ${pb(0)}.`);
    defs.push(`You are given ${descs[0]}. ${cap(pa(1))}. After that, ${pb(1)}.`);
    defs.push(`Do two steps: ${pa(2)}; then ${pb(2)}.`);
    defs.push(`${cap(pa(3))} and then ${pb(3)}.`);
  }
  // A paraphrase task keeps its (held-out) wording in every definition; distinct templates keep them different.
  return [...new Set(defs)];
}

function explain(spec: TaskSpec, vals: string[][]): string {
  const show = (v: string[]) => v.join(" ");
  if (spec.steps.length === 1) return `The rule turns ${show(vals[0])} into ${show(vals[1])}.`;
  return `The first step gives ${show(vals[1])}, and the second step gives ${show(vals[2])}.`;
}

/** Wrong answers for negative examples: the input unchanged, only one step, or a different operation. */
function wrongAnswers(spec: TaskSpec, vals: string[][], rng: RandomFn): { output: string; why: string }[] {
  const right = vals[vals.length - 1].join(" ");
  const cands: { output: string; why: string }[] = [];
  const first = primitive(spec.steps[0]);
  if (spec.steps.length === 2) {
    cands.push({ output: vals[1].join(" "), why: "it stops after the first step" });
    const second = primitive(spec.steps[1]);
    if (second.input === first.input) cands.push({ output: second.apply(vals[0]).join(" "), why: "it skips the first step" });
  }
  if (first.output === "answer") cands.push({ output: right === "yes" ? "no" : "yes", why: "it gives the opposite answer" });
  cands.push({ output: vals[0].join(" "), why: "it only copies the input" });
  const others = shuffleInPlace(rng, PRIMITIVES.filter((p) => p.input === first.input && p.id !== first.id));
  for (const o of others) cands.push({ output: o.apply(vals[0]).join(" "), why: `it does something else: it would ${o.phrases[0]}` });
  const seen = new Set<string>([right]);
  return cands.filter((c) => c.output.length > 0 && !seen.has(c.output) && (seen.add(c.output), true));
}

function sampleValid(rng: RandomFn, spec: TaskSpec, want?: string): string[][] {
  const first = primitive(spec.steps[0]);
  for (let tries = 0; tries < 1000; tries++) {
    const vals = runSteps(spec.steps, genInput(rng, first.input, spec.steps.includes("is_palindrome")));
    if (!valid(vals)) continue;
    if (want !== undefined && vals[vals.length - 1].join(" ") !== want) continue;
    return vals;
  }
  throw new Error(`suite: cannot generate an input for ${spec.steps.join(" then ")}${want ? ` with answer ${want}` : ""}`);
}

/** Generates the whole suite from a seed (deterministic: the same seed gives the same tasks, byte for byte). */
export function synthesizeSuite(opts: SynthesizeOptions = {}): Suite {
  const seed = opts.seed ?? 42;
  const nInst = opts.instancesPerTask ?? 100;
  const nPos = opts.positiveExamples ?? 3;
  const nNeg = opts.negativeExamples ?? 2;
  const specs = suiteTaskSpecs();
  const tasks: SuiteTask[] = specs.map((spec, i) => {
    const name = taskName(i, spec);
    const rng = makeRng(`${seed}:${name}`);
    const last = primitive(spec.steps[spec.steps.length - 1]);
    const isAnswer = last.output === "answer";
    const draw = (k: number) => sampleValid(rng, spec, isAnswer ? (k % 2 === 0 ? "yes" : "no") : undefined);
    const used = new Set<string>();
    const fresh = (k: number): string[][] => {
      for (let t = 0; t < 50; t++) {
        const v = draw(k);
        const key = v[0].join(" ");
        if (!used.has(key)) {
          used.add(key);
          return v;
        }
      }
      return draw(k);
    };
    const texts = syntheticTaskTexts(name, { positive: nPos, negative: nNeg, instances: nInst }, {
      fresh,
      explain: (v) => explain(spec, v),
      wrong: (v, k) => {
        const wrongs = wrongAnswers(spec, v, rng);
        return k === 0 || wrongs.length === 1 ? wrongs[0] : pick(rng, wrongs.slice(1));
      },
    });
    if (isAnswer) shuffleInPlace(rng, texts.instances);
    const task: SuiteTask = {
      name,
      source: "instill synthetic suite",
      definition: definitionsFor(spec, rng),
      ...texts,
      ...syntheticTaskMeta(last.category),
      steps: spec.steps,
      split: spec.split,
      kind: spec.kind,
    };
    if (isAnswer) task.answerChoices = ["yes", "no"];
    return task;
  });
  return {
    seed,
    tasks,
    train: tasks.filter((t) => t.split === "train").map((t) => t.name),
    test: tasks.filter((t) => t.split === "test").map((t) => t.name),
  };
}

/**
 * The examples and instances of one synthetic task (v1 and v2 alike), drawn in a fixed order: the positive examples,
 * then the negative ones, then the instances, each from `fresh(k)` (the input is vals[0], the answer the last value).
 * `wrong` gives a negative example's wrong answer and why.
 */
export function syntheticTaskTexts(
  name: string,
  n: { positive: number; negative: number; instances: number },
  f: { fresh: (k: number) => string[][]; explain: (vals: string[][]) => string; wrong: (vals: string[][], k: number) => { output: string; why: string } },
): { positiveExamples: SniExample[]; negativeExamples: SniExample[]; instances: SniInstance[] } {
  const answer = (v: string[][]) => v[v.length - 1].join(" ");
  const positiveExamples: SniExample[] = [];
  for (let k = 0; k < n.positive; k++) {
    const v = f.fresh(k);
    positiveExamples.push({ input: v[0].join(" "), output: answer(v), explanation: f.explain(v) });
  }
  const negativeExamples: SniExample[] = [];
  for (let k = 0; k < n.negative; k++) {
    const v = f.fresh(k);
    const wrong = f.wrong(v, k);
    negativeExamples.push({ input: v[0].join(" "), output: wrong.output, explanation: `This is wrong because ${wrong.why}. The right answer is ${answer(v)}.` });
  }
  const instances: SniInstance[] = [];
  for (let k = 0; k < n.instances; k++) {
    const v = f.fresh(k);
    instances.push({ id: `${name}-${k}`, input: v[0].join(" "), output: [answer(v)] });
  }
  return { positiveExamples, negativeExamples, instances };
}

/** The SNI metadata every synthetic task carries. */
export function syntheticTaskMeta(category: string): Pick<SniTask, "categories" | "inputLanguage" | "outputLanguage" | "instructionLanguage" | "domains"> {
  return { categories: [category], inputLanguage: ["English"], outputLanguage: ["English"], instructionLanguage: ["English"], domains: ["Synthetic"] };
}

/** What the SNI file schema needs of a suite task (v1 and v2 alike). */
export interface SuiteTaskLike {
  categories: string[];
  steps: readonly unknown[];
  definition: string[];
  positiveExamples: SniExample[];
  negativeExamples: SniExample[];
  instances: SniInstance[];
}

/** A suite task in the official SNI file schema; `source` names the suite, `meta` goes under "instill". */
export function sniJsonOf(t: SuiteTaskLike, source: string, meta: Record<string, unknown>): Record<string, unknown> {
  return {
    Contributors: ["instill"],
    Source: [source],
    URL: [],
    Categories: t.categories,
    Reasoning: [t.steps.length > 1 ? "Multi-step Reasoning" : "Rule Following"],
    Definition: t.definition,
    Input_language: ["English"],
    Output_language: ["English"],
    Instruction_language: ["English"],
    Domains: ["Synthetic"],
    "Positive Examples": t.positiveExamples,
    "Negative Examples": t.negativeExamples,
    Instances: t.instances,
    "Instance License": ["Apache-2.0"],
    instill: meta,
  };
}

/** The task in the official SNI file schema. */
export function suiteTaskToSniJson(t: SuiteTask): Record<string, unknown> {
  return sniJsonOf(t, "instill synthetic suite", { steps: t.steps, kind: t.kind, split: t.split });
}

// ---------------------------------------------------------------------------------------------------------
// The word-level tokenizer (HF tokenizers format).

/** HF's "Whitespace" pre-tokenizer: \w+|[^\w\s]+ (ASCII \w here: the suite is ASCII). */
export function whitespacePreTokenize(text: string): string[] {
  return text.match(/\w+|[^\w\s]+/g) ?? [];
}

export const SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"] as const;

/** Texts the Tk-Instruct encoding adds around the task's own strings. */
export const TEMPLATE_TEXT =
  "Definition: . Positive Example 1 2 3 4 5 6 7 8 9 -\nInput: .\n Output: .\n Explanation: .\n\n Negative Example - Now complete the following example -\nInput: .\nOutput: ";

/** The suite's vocabulary: specials, then every token any task text, encoding or answer can contain. */
export function suiteVocabulary(suite: Suite): string[] {
  const tokens = new Set<string>();
  const add = (s: string) => {
    for (const t of whitespacePreTokenize(s)) tokens.add(t);
  };
  add(TEMPLATE_TEXT);
  for (const w of SUITE_WORDS) {
    tokens.add(w);
    tokens.add(w.toUpperCase());
  }
  for (const c of SUITE_LETTERS) {
    tokens.add(c);
    tokens.add(c.toUpperCase());
  }
  for (let n = 0; n <= SUITE_MAX_NUMBER; n++) tokens.add(String(n));
  tokens.add("yes");
  tokens.add("no");
  for (const p of PRIMITIVES) for (const ph of p.phrases) add(ph);
  for (const d of Object.values(INPUT_DESC)) for (const s of d) add(s);
  for (const t of suite.tasks) addTaskTexts(t, add);
  for (const s of SPECIAL_TOKENS) tokens.delete(s);
  return [...SPECIAL_TOKENS, ...[...tokens].sort(byCode)];
}

/** Calls `add` on every text of a task (name, definitions, examples, instances): what its vocabulary must cover. */
export function addTaskTexts(t: SuiteTaskLike & { name: string }, add: (text: string) => void): void {
  add(t.name);
  t.definition.forEach(add);
  for (const e of [...t.positiveExamples, ...t.negativeExamples]) {
    add(e.input);
    add(e.output);
    if (e.explanation) add(e.explanation);
  }
  for (const x of t.instances) {
    add(x.input);
    x.output.forEach(add);
  }
}

/**
 * tokenizer.json in the HF tokenizers format: WordLevel model, Whitespace pre-tokenizer, T5's special ids
 * (<pad>=0, </s>=1, <unk>=2) and a TemplateProcessing post-processor that appends </s> like T5's tokenizer.
 */
export function suiteTokenizerJson(vocab: string[], opts: { extraSpecial?: string[] } = {}): Record<string, unknown> {
  const v: Record<string, number> = {};
  vocab.forEach((t, i) => (v[t] = i));
  const eos = { id: "</s>", ids: [1], tokens: ["</s>"] };
  // Extra special tokens (suite v2's sentinels <extra_id_N>) are added tokens, matched before pre-tokenization.
  const specials = [...SPECIAL_TOKENS, ...(opts.extraSpecial ?? [])];
  for (const s of specials) if (v[s] === undefined) throw new Error(`suiteTokenizerJson: special token ${s} is not in the vocabulary`);
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content) => ({
      id: v[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: {
      type: "TemplateProcessing",
      single: [{ Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "</s>", type_id: 0 } }],
      pair: [
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
        { Sequence: { id: "B", type_id: 0 } },
        { SpecialToken: { id: "</s>", type_id: 0 } },
      ],
      special_tokens: { "</s>": eos },
    },
    decoder: null,
    model: { type: "WordLevel", vocab: v, unk_token: "<unk>" },
  };
}

export interface WrittenSuite {
  dir: string;
  tasks: number;
  train: number;
  test: number;
  vocabSize: number;
}

/** Writes tasks/*.json, splits/default/{train,test}_tasks.txt, tokenizer.json and tokenizer_config.json. */
export function writeSuite(dir: string, seed = 42, opts: Omit<SynthesizeOptions, "seed"> = {}): WrittenSuite {
  const suite = synthesizeSuite({ ...opts, seed });
  mkdirSync(join(dir, "tasks"), { recursive: true });
  mkdirSync(join(dir, "splits", "default"), { recursive: true });
  for (const t of suite.tasks) writeFileSync(join(dir, "tasks", `${t.name}.json`), JSON.stringify(suiteTaskToSniJson(t), null, 1) + "\n");
  writeFileSync(join(dir, "splits", "default", "train_tasks.txt"), suite.train.join("\n") + "\n");
  writeFileSync(join(dir, "splits", "default", "test_tasks.txt"), suite.test.join("\n") + "\n");
  const vocab = suiteVocabulary(suite);
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(suiteTokenizerJson(vocab), null, 1) + "\n");
  writeFileSync(
    join(dir, "tokenizer_config.json"),
    JSON.stringify({ tokenizer_class: "PreTrainedTokenizerFast", pad_token: "<pad>", eos_token: "</s>", unk_token: "<unk>", model_max_length: 512 }, null, 1) + "\n",
  );
  return { dir, tasks: suite.tasks.length, train: suite.train.length, test: suite.test.length, vocabSize: vocab.length };
}
