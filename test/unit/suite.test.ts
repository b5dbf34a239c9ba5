import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  encodeTkInstruct,
  loadSplitTasks,
  PRIMITIVES,
  readSniTask,
  synthesizeSuite,
  whitespacePreTokenize,
  writeSuite,
  type SuiteTask,
} from "../../src/data/index.js";

// Independent reference implementations, one per primitive (they do not use the suite's own code).
function insertionSort(xs: string[], less: (a: string, b: string) => boolean): string[] {
  const out: string[] = [];
  for (const x of xs) {
    let i = out.length;
    while (i > 0 && less(x, out[i - 1])) i--;
    out.splice(i, 0, x);
  }
  return out;
}
const upper = (w: string) =>
  String.fromCharCode(...[...w].map((c) => (c.charCodeAt(0) >= 97 && c.charCodeAt(0) <= 122 ? c.charCodeAt(0) - 32 : c.charCodeAt(0))));
const reversed = (xs: string[]) => {
  const out: string[] = [];
  for (let i = xs.length - 1; i >= 0; i--) out.push(xs[i]);
  return out;
};
const REF: Record<string, (xs: string[]) => string[]> = {
  reverse_words: reversed,
  sort_words: (xs) => insertionSort(xs, (a, b) => a.localeCompare(b, "en") < 0),
  upper_words: (xs) => xs.map(upper),
  last_word: (xs) => xs.slice(-1),
  first_word: (xs) => xs.slice(0, 1),
  drop_first_word: (xs) => xs.filter((_, i) => i > 0),
  count_words: (xs) => [`${xs.length}`],
  reverse_letters: reversed,
  remove_vowels: (xs) => xs.join("").replace(/[aeiou]/g, "").split(""),
  upper_letters: (xs) => xs.map(upper),
  sort_letters: (xs) => insertionSort(xs, (a, b) => a.charCodeAt(0) < b.charCodeAt(0)),
  last_letter: (xs) => [xs[xs.length - 1]],
  count_letters: (xs) => [`${xs.length}`],
  is_palindrome: (xs) => {
    for (let i = 0, j = xs.length - 1; i < j; i++, j--) if (xs[i] !== xs[j]) return ["no"];
    return ["yes"];
  },
  sort_numbers: (xs) => insertionSort(xs, (a, b) => parseInt(a, 10) < parseInt(b, 10)),
  sort_numbers_desc: (xs) => insertionSort(xs, (a, b) => parseInt(a, 10) > parseInt(b, 10)),
  sum_numbers: (xs) => [`${xs.reduce((s, x) => s + parseInt(x, 10), 0)}`],
  max_number: (xs) => [`${xs.map((x) => parseInt(x, 10)).reduce((m, x) => (x > m ? x : m), -Infinity)}`],
  min_number: (xs) => [`${xs.map((x) => parseInt(x, 10)).reduce((m, x) => (x < m ? x : m), Infinity)}`],
  add_one: (xs) => xs.map((x) => `${parseInt(x, 10) + 1}`),
};

function expected(t: SuiteTask, input: string): string {
  let cur = input.split(" ");
  for (const s of t.steps) cur = REF[s](cur);
  return cur.join(" ");
}

const suite = synthesizeSuite({ seed: 7, instancesPerTask: 60 });

describe("embedded instruction suite", () => {
  it("has at least 12 primitives and 40 tasks, with two-step compositions", () => {
    expect(PRIMITIVES.length).toBeGreaterThanOrEqual(12);
    expect(Object.keys(REF).sort()).toEqual(PRIMITIVES.map((p) => p.id).sort());
    expect(suite.tasks.length).toBeGreaterThanOrEqual(40);
    expect(suite.tasks.filter((t) => t.steps.length === 2).length).toBeGreaterThanOrEqual(20);
    expect(new Set(suite.tasks.map((t) => t.name)).size).toBe(suite.tasks.length);
  });

  it("every answer is right (checked by an independent implementation of each primitive)", () => {
    let checked = 0;
    for (const t of suite.tasks) {
      for (const x of t.instances) {
        expect(x.output, `${t.name} ${x.id}`).toEqual([expected(t, x.input)]);
        checked++;
      }
      for (const e of t.positiveExamples) expect(e.output, t.name).toBe(expected(t, e.input));
      for (const e of t.negativeExamples) {
        expect(e.output, t.name).not.toBe(expected(t, e.input));
        expect(e.explanation).toContain(`The right answer is ${expected(t, e.input)}.`);
      }
    }
    expect(checked).toBe(suite.tasks.length * 60);
  });

  it("every task has a category, >= 3 different definitions, positive and negative examples with explanations", () => {
    for (const t of suite.tasks) {
      expect(t.categories.length, t.name).toBe(1);
      expect(new Set(t.definition).size, t.name).toBeGreaterThanOrEqual(3);
      expect(t.positiveExamples.length).toBeGreaterThanOrEqual(2);
      expect(t.negativeExamples.length).toBeGreaterThanOrEqual(1);
      for (const e of [...t.positiveExamples, ...t.negativeExamples]) expect(e.explanation?.length).toBeGreaterThan(0);
      // Sized for a tiny model: short definitions and inputs.
      for (const d of t.definition) expect(whitespacePreTokenize(d).length, d).toBeLessThanOrEqual(40);
      for (const x of t.instances) expect(whitespacePreTokenize(x.input).length).toBeLessThanOrEqual(20);
    }
  });

  it("yes/no tasks are balanced", () => {
    for (const t of suite.tasks.filter((t) => t.answerChoices)) {
      const yes = t.instances.filter((x) => x.output[0] === "yes").length;
      expect(yes, t.name).toBe(30);
    }
  });

  it("is deterministic by seed; the task list and split do not depend on the seed", () => {
    const a = synthesizeSuite({ seed: 7, instancesPerTask: 60 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(suite));
    const b = synthesizeSuite({ seed: 8, instancesPerTask: 60 });
    expect(b.tasks.map((t) => t.name)).toEqual(suite.tasks.map((t) => t.name));
    expect(b.test).toEqual(suite.test);
    expect(JSON.stringify(b.tasks.map((t) => t.instances))).not.toBe(JSON.stringify(suite.tasks.map((t) => t.instances)));
  });

  it("test tasks are unseen compositions of seen primitives and unseen wordings", () => {
    const train = suite.tasks.filter((t) => t.split === "train");
    const test = suite.tasks.filter((t) => t.split === "test");
    expect(test.length).toBeGreaterThanOrEqual(10);
    const trainSteps = new Set(train.map((t) => t.steps.join(">")));
    const trainSingles = new Set(train.filter((t) => t.steps.length === 1).map((t) => t.steps[0]));
    const trainDefs = train.flatMap((t) => t.definition).join("\n").toLowerCase();
    for (const t of test) {
      for (const s of t.steps) expect(trainSingles.has(s), `${t.name}: ${s} is seen`).toBe(true);
      if (t.kind === "composition") expect(trainSteps.has(t.steps.join(">")), t.name).toBe(false);
      if (t.kind === "paraphrase") {
        const p = PRIMITIVES.find((x) => x.id === t.steps[0])!;
        const heldOut = p.phrases[p.phrases.length - 1];
        expect(trainDefs.includes(heldOut), `${heldOut} must not appear in training definitions`).toBe(false);
        for (const d of t.definition) expect(d.toLowerCase()).toContain(heldOut.split(",")[0]);
      }
    }
    expect(test.some((t) => t.kind === "composition")).toBe(true);
    expect(test.some((t) => t.kind === "paraphrase")).toBe(true);
  });

  it("writes SNI task files, the default split and a word-level tokenizer.json covering every encoding", () => {
    const dir = mkdtempSync(join(tmpdir(), "instill-suite-"));
    const r = writeSuite(dir, 7, { instancesPerTask: 60 });
    expect(readdirSync(join(dir, "tasks")).length).toBe(r.tasks);
    const split = loadSplitTasks({ dataDir: dir, maxTrainInstances: 1000, maxEvalInstances: 1000 });
    expect(split.train.map((t) => t.name)).toEqual(suite.train);
    expect(split.test.map((t) => t.name)).toEqual(suite.test);
    const t0 = readSniTask(join(dir, "tasks", `${suite.tasks[30].name}.json`));
    expect(t0.instances).toEqual(suite.tasks[30].instances);
    expect(t0.definition).toEqual(suite.tasks[30].definition);

    const tj = JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8"));
    expect(tj.model.type).toBe("WordLevel");
    expect(tj.pre_tokenizer).toEqual({ type: "Whitespace" });
    const vocab = tj.model.vocab as Record<string, number>;
    expect([vocab["<pad>"], vocab["</s>"], vocab["<unk>"]]).toEqual([0, 1, 2]);
    expect(Object.keys(vocab).length).toBe(r.vocabSize);
    expect(r.vocabSize).toBeLessThan(800);
    expect(new Set(Object.values(vocab)).size).toBe(r.vocabSize);
    const missing = new Set<string>();
    const covered = (s: string) => whitespacePreTokenize(s).forEach((t) => vocab[t] === undefined && missing.add(t));
    const enc = { addTaskName: true, addDefinition: true, numPositiveExamples: 3, numNegativeExamples: 2, addExplanation: true, maxSourceLength: 1e9 };
    for (const t of [...split.train, ...split.test]) {
      for (let d = 0; d < t.definition.length; d++)
        for (const x of t.instances) {
          covered(encodeTkInstruct(t, x, { ...enc, definitionIndex: d }, () => 0));
          x.output.forEach(covered);
        }
    }
    for (const c of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") covered(c);
    for (let n = 0; n < 100; n++) covered(String(n));
    expect([...missing]).toEqual([]);

    // HF tokenizers (JS) reads it: word ids, <unk> for unknown words, </s> appended.
    const tok = new Tokenizer(tj, JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")));
    const e = tok.encode("c a t zzzz.");
    expect(e.ids).toEqual([vocab.c, vocab.a, vocab.t, 2, vocab["."], 1]);
  });
});
