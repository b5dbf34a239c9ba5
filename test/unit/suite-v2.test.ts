import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  FAMILIES,
  loadSplitTasks,
  readSniTask,
  sentinelToken,
  synthesizeSuiteV2,
  V2_SEEN_PHRASES,
  V2_SENTINELS,
  V2_HELD_OUT,
  V2_WORDS,
  whitespacePreTokenize,
  writeSuiteV2,
  type SuiteV2Task,
} from "../../src/data/index.js";

// An independent answer checker: each family written again from its description, not from the suite's code.
const isNumber = (s: string) => s.length > 0 && [...s].every((c) => c >= "0" && c <= "9");
const once = (xs: string[], w: string) => xs.filter((x) => x === w).length === 1;
const REF: Record<string, (xs: string[], a: (string | number)[]) => string[]> = {
  // selectors: one item or number
  count: (xs, [w]) => [String(xs.reduce((n, x) => n + (x === String(w) ? 1 : 0), 0))],
  after: (xs, [w]) => (once(xs, String(w)) ? [xs[xs.indexOf(String(w)) + 1]] : ["?"]),
  which: (xs, [a, b]) => [xs.indexOf(String(a)) >= 0 ? String(a) : String(b)],
  nth: (xs, [n]) => [xs[Number(n) - 1]],
  first_is: (xs, [a, b]) => [String(isNumber(xs[0]) ? a : b)],
  length_is: (xs, [a, b]) => [String(xs.length === 4 ? a : b)],
  // transforms: list to list
  remove: (xs, [w]) => {
    const out: string[] = [];
    for (const x of xs) if (x !== String(w)) out.push(x);
    return out;
  },
  replace: (xs, [a, b]) => xs.map((x) => (x === String(a) ? String(b) : x)),
  prepend: (xs, [w]) => [String(w)].concat(xs),
  reverse: (xs) => xs.map((_, i) => xs[xs.length - 1 - i]),
};

function expected(t: SuiteV2Task, input: string): string {
  let cur = input.split(" ");
  for (const s of t.steps) cur = REF[s.family](cur, s.args);
  return cur.join(" ");
}

const suite = synthesizeSuiteV2({ seed: 5, instancesPerTask: 30 });
const train = suite.tasks.filter((t) => t.split === "train");
const test = suite.tasks.filter((t) => t.split === "test");

describe("suite v2 (instructions with arguments)", () => {
  it("has families with arguments, compositions and the three test splits", () => {
    expect(Object.keys(REF).sort()).toEqual(FAMILIES.map((f) => f.id).sort());
    expect(train.length).toBeGreaterThanOrEqual(50);
    const groups = (g: string) => test.filter((t) => t.group === g).length;
    expect(groups("arguments")).toBeGreaterThanOrEqual(10);
    expect(groups("compositions")).toBeGreaterThanOrEqual(4);
    expect(groups("wordings")).toBeGreaterThanOrEqual(5);
    expect(train.filter((t) => t.steps.length === 2).length).toBeGreaterThanOrEqual(4);
    expect(new Set(suite.tasks.map((t) => t.name)).size).toBe(suite.tasks.length);
  });

  it("every answer is right (an independent implementation of each family) and every argument is in the instruction", () => {
    let checked = 0;
    for (const t of suite.tasks) {
      const words = new Set(whitespacePreTokenize(t.definition[0]));
      for (const s of t.steps) for (const a of s.args) expect(words.has(String(a)), `${t.name}: argument ${a} in "${t.definition[0]}"`).toBe(true);
      for (const x of [...t.instances, ...t.positiveExamples.map((e) => ({ input: e.input, output: [e.output] }))]) {
        expect(x.output[0], `${t.name}: ${x.input}`).toBe(expected(t, x.input));
        expect(x.output[0].split(" ").length, `${t.name}: one answer item`).toBe(1);
        checked++;
      }
      for (const e of t.negativeExamples) expect(e.output).not.toBe(expected(t, e.input));
    }
    expect(checked).toBeGreaterThan(2500);
  });

  it("one input distribution: every input is 4-5 items of the shared words and numbers 0..20, and answers need the instruction", () => {
    const words = new Set<string>(V2_WORDS);
    for (const t of suite.tasks)
      for (const x of t.instances) {
        const items = x.input.split(" ");
        expect(items.length).toBeGreaterThanOrEqual(4);
        expect(items.length).toBeLessThanOrEqual(5);
        for (const it of items) expect(words.has(it) || (isNumber(it) && Number(it) <= 20), `${t.name}: ${it}`).toBe(true);
      }
    // Tasks of one family with different arguments answer the same input differently: the input alone cannot tell.
    const after = train.filter((t) => t.steps.length === 1 && t.steps[0].family === "after");
    const probe = after.map((t) => String(t.steps[0].args[0])).join(" ") + " 7";
    const answers = new Set(after.map((t) => expected(t, probe)));
    expect(answers.size).toBe(after.length);
    // selectors stand alone; transforms only come first in two-step tasks
    for (const t of suite.tasks) {
      expect(FAMILIES.find((f) => f.id === t.steps[t.steps.length - 1].family)!.role).toBe("selector");
      if (t.steps.length === 2) expect(FAMILIES.find((f) => f.id === t.steps[0].family)!.role).toBe("transform");
    }
  });

  it("the split holds out argument values, family pairs and wordings", () => {
    const trainArgs = new Set(train.filter((t) => t.steps.length === 1).map((t) => `${t.steps[0].family}:${t.steps[0].args[0]}`));
    for (const t of test.filter((x) => x.group === "arguments")) {
      const s = t.steps[0];
      expect(trainArgs.has(`${s.family}:${s.args[0]}`), t.name).toBe(false);
      const held = V2_HELD_OUT[s.family] ?? [];
      if (typeof s.args[0] === "string") {
        for (const a of s.args) expect(held).toContain(a);
        // the held-out word is a training argument of another family (known as an argument, new for this family)
        expect(train.some((x) => x.steps.some((y) => y.family !== s.family && y.args.includes(s.args[0]))), `${t.name}: ${s.args[0]} seen elsewhere`).toBe(true);
      }
      else expect(FAMILIES.find((f) => f.id === s.family)!.trainArgs.map((a) => a[0])).not.toContain(s.args[0]);
      // the family itself is seen
      expect(train.some((x) => x.steps.some((y) => y.family === s.family))).toBe(true);
    }
    const trainPairs = new Set(train.filter((t) => t.steps.length === 2).map((t) => t.steps.map((s) => s.family).join(">")));
    for (const t of test.filter((x) => x.group === "compositions")) {
      expect(t.steps.length).toBe(2);
      expect(trainPairs.has(t.steps.map((s) => s.family).join(">")), t.name).toBe(false);
      for (const st of t.steps) expect(train.some((x) => x.steps.some((y) => y.family === st.family)), `${t.name}: ${st.family} is seen`).toBe(true);
    }
    const trainText = train.flatMap((t) => t.definition).join("\n");
    for (const t of test.filter((x) => x.group === "wordings")) {
      const f = FAMILIES.find((x) => x.id === t.steps[0].family)!;
      const held = f.phrases[V2_SEEN_PHRASES];
      // the held-out phrase's fixed words (without its arguments) never occur in a training definition
      const skeleton = held.split(/\{\d\}/)[0].trim() || held.split(/\{\d\}/)[1].trim();
      expect(t.definition[0].toLowerCase()).toContain(skeleton);
      expect(trainText.toLowerCase()).not.toContain(held.split(/\{\d\}/).map((p) => p.trim()).filter(Boolean).sort((a, b) => b.length - a.length)[0]);
    }
  });

  it("is deterministic by seed and writes a tokenizer with single-token sentinels", async () => {
    const a = mkdtempSync(join(tmpdir(), "instill-v2-"));
    const b = mkdtempSync(join(tmpdir(), "instill-v2-"));
    const ra = writeSuiteV2(a, 3, { instancesPerTask: 12 });
    writeSuiteV2(b, 3, { instancesPerTask: 12 });
    expect(ra.groups.arguments).toBeGreaterThan(0);
    for (const f of ["tokenizer.json", "splits/default/test_tasks.txt", ...readdirSync(join(a, "tasks")).slice(0, 5).map((x) => `tasks/${x}`)])
      expect(readFileSync(join(a, f), "utf8")).toBe(readFileSync(join(b, f), "utf8"));
    const split = loadSplitTasks({ dataDir: a, maxTrainInstances: 12, maxEvalInstances: 12 });
    expect(split.test.length).toBe(ra.test);
    const one = readSniTask(join(a, "tasks", `${split.test[0].name}.json`));
    expect(one.definition.length).toBeGreaterThan(0);
    // every text of the suite encodes without <unk> (HF's own library reads the file)
    const json = JSON.parse(readFileSync(join(a, "tokenizer.json"), "utf8"));
    const tok = new Tokenizer(json, JSON.parse(readFileSync(join(a, "tokenizer_config.json"), "utf8")));
    const vocab = json.model.vocab as Record<string, number>;
    for (let i = 0; i < V2_SENTINELS; i++) expect(json.added_tokens.some((t: { content: string; id: number }) => t.content === sentinelToken(i) && t.id === vocab[sentinelToken(i)])).toBe(true);
    for (const t of split.train.concat(split.test))
      for (const s of [...t.definition, ...t.instances.flatMap((x) => [x.input, ...x.output])])
        for (const w of whitespacePreTokenize(s)) expect(vocab[w], `${t.name}: ${w}`).toBeDefined();
    expect(tok.encode(`cat ${sentinelToken(0)} dog`).ids).toEqual([vocab.cat, vocab[sentinelToken(0)], vocab.dog, 1]);
  });
});

