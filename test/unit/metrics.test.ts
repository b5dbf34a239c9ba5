import { describe, expect, it } from "vitest";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { sharedDir } from "../helpers/native.js";
import {
  exactMatch,
  normalizeAnswer,
  porterStem,
  pyRound4,
  rouge1,
  rougeL,
  rougeTokenize,
  scoreItems,
  scorePrediction,
  categoryKey,
  rankClassificationAccuracy,
  rankClassify,
} from "../../src/metrics/index.js";

const fixturePath = join(sharedDir, "fixtures", "sni-metrics-official.json");
const hasFixture = existsSync(fixturePath);
if (!hasFixture) console.warn(`[skip] official SNI metric fixture: ${fixturePath} is absent`);

interface FixtureItem {
  id: string;
  source: string;
  prediction: string;
  references: string[];
  exact_match: number;
  rouge1: number;
  rougeL: number;
}

describe.skipIf(!hasFixture)("official SNI metrics fixture", () => {
  const fx = hasFixture
    ? (JSON.parse(readFileSync(fixturePath, "utf8")) as { items: FixtureItem[]; aggregate: Record<string, number> })
    : { items: [], aggregate: {} };

  it("matches every item's exact match, ROUGE-1 and ROUGE-L within 1e-9", () => {
    const bad: string[] = [];
    for (const it of fx.items) {
      const s = scorePrediction(it.prediction, it.references);
      for (const k of ["exact_match", "rouge1", "rougeL"] as const) {
        if (Math.abs(s[k] - it[k]) > 1e-9) bad.push(`${it.id} ${k}: got ${s[k]}, want ${it[k]}`);
      }
    }
    expect(bad.slice(0, 10)).toEqual([]);
    expect(fx.items.length).toBeGreaterThan(600);
  });

  it("matches the aggregate exactly", () => {
    const r = scoreItems(fx.items.map((it) => ({ id: it.id, prediction: it.prediction, references: it.references })));
    expect(r).toEqual(fx.aggregate);
  });
});

describe("Porter stemmer (NLTK mode)", () => {
  it("follows NLTK's documented examples and departures", () => {
    const cases: Record<string, string> = {
      caresses: "caress",
      ponies: "poni",
      ties: "tie", // NLTK: 4-letter -ies -> -ie
      caress: "caress",
      cats: "cat",
      feed: "feed",
      agreed: "agre",
      plastered: "plaster",
      bled: "bled",
      motoring: "motor",
      sing: "sing",
      conflated: "conflat",
      troubled: "troubl",
      sized: "size",
      hopping: "hop",
      tanned: "tan",
      falling: "fall",
      hissing: "hiss",
      fizzed: "fizz",
      failing: "fail",
      filing: "file",
      happy: "happi",
      sky: "sky",
      enjoy: "enjoy",
      relational: "relat",
      conditional: "condit",
      rational: "ration",
      generalization: "gener",
      hopefulness: "hope",
      goodness: "good",
      adjustable: "adjust",
      adoption: "adopt",
      controlling: "control",
      roll: "roll",
      dying: "die",
      spied: "spi",
      died: "die",
      proceed: "proceed",
      archaeology: "archaeolog",
      geology: "geolog",
      running: "run",
      generously: "gener",
    };
    const got = Object.fromEntries(Object.keys(cases).map((w) => [w, porterStem(w)]));
    expect(got).toEqual(cases);
  });
});

describe("ROUGE and exact match", () => {
  it("tokenizes like rouge_score: lowercase, non-alphanumerics split, stems long tokens", () => {
    expect(rougeTokenize("The Cats' running-shoes, café!")).toEqual(["the", "cat", "run", "shoe", "caf"]);
    expect(rougeTokenize("")).toEqual([]);
    expect(rougeTokenize("... ---")).toEqual([]);
  });

  it("computes ROUGE-1 and ROUGE-L by hand-checked values", () => {
    // target: a b c d e (5), prediction: a c e x (4): LCS 3 -> P=3/4, R=3/5, F=2*.75*.6/1.35
    expect(rougeL("a c e x", "a b c d e")).toBeCloseTo((2 * 0.75 * 0.6) / 1.35, 12);
    // ROUGE-1 counts clipped overlaps regardless of order: "e a" vs "a e a" -> overlap 2, P=1, R=2/3
    expect(rouge1("e a", "a e a")).toBeCloseTo((2 * 1 * (2 / 3)) / (1 + 2 / 3), 12);
    expect(rougeL("e a", "a e a")).toBeCloseTo(0.8, 12); // LCS "e a": P=1, R=2/3
    expect(rougeL("b a", "a b c")).toBeCloseTo((2 * 0.5 * (1 / 3)) / (0.5 + 1 / 3), 12); // LCS 1
    expect(rougeL("", "a")).toBe(0);
    expect(rouge1("a", "")).toBe(0);
  });

  it("exact match keeps articles and drops ASCII punctuation", () => {
    expect(normalizeAnswer("  The  Answer,\tis: (A)! ")).toBe("the answer is a");
    expect(exactMatch("the cat", "cat")).toBe(0);
    expect(exactMatch("Cat.", "cat")).toBe(1);
    expect(exactMatch("a\u00a0b", "a b")).toBe(1); // Python's split() treats NBSP as whitespace
  });

  it("rounds like Python's round(x, 4)", () => {
    expect(pyRound4(0.03125)).toBe(0.0312); // an exact binary tie goes to even
    // Expected values from CPython: 0.03135 is stored just above the tie, 0.00015 just below it.
    expect(pyRound4(0.03135)).toBe(0.0314);
    expect(pyRound4(0.00015)).toBe(0.0001);
    expect(pyRound4(1.00005)).toBe(1.0001);
    expect(pyRound4(12.34565)).toBe(12.3456);
    expect(pyRound4(59.52874999)).toBe(59.5287);
    expect(pyRound4(100)).toBe(100);
    expect(pyRound4(0)).toBe(0);
    expect(pyRound4(2.675e-1)).toBe(0.2675);
  });

  it("groups per task and per category with the official key names", () => {
    const r = scoreItems([
      { id: "1", prediction: "yes", references: ["yes"], taskId: "task1_x", taskCategory: "Title Generation" },
      { id: "2", prediction: "no", references: ["yes"], taskId: "task1_x", taskCategory: "Title Generation" },
      { id: "3", prediction: "b", references: ["a", "b"], taskId: "task2_y", taskCategory: "Textual  Entailment" },
    ]);
    expect(r.exact_match).toBe(66.6667);
    expect(r.rougeL).toBe(66.6667);
    expect(r.exact_match_for_task1_x).toBe(50);
    expect(r.rougeL_for_task2_y).toBe(100);
    expect(r.rouge1_for_title_generation).toBe(50);
    expect(r.exact_match_for_textual_entailment).toBe(100);
    expect(categoryKey(" Question  Rewriting ")).toBe("question_rewriting");
  });
});

describe("rank classification", () => {
  it("picks the highest score, first on ties, and computes accuracy", () => {
    expect(rankClassify([-3, -1, -1, -2])).toBe(1);
    expect(rankClassify([NaN, -5])).toBe(1);
    const acc = rankClassificationAccuracy([
      { scores: [-1, -2], gold: 0 },
      { scores: [-1, -2], gold: 1 },
      { scores: [-4, -3, -9], gold: "(B)", options: ["(A)", "(B)", "(C)"] },
      { scores: [-4, -3], gold: "yes", options: ["No", "Yes"] },
    ]);
    expect(acc).toBe(0.75);
    expect(() => rankClassificationAccuracy([{ scores: [1, 2], gold: 2 }])).toThrow(/out of range/);
    expect(() => rankClassificationAccuracy([{ scores: [1, 2], gold: "z", options: ["a", "b"] }])).toThrow(/not one of the options/);
  });
});
