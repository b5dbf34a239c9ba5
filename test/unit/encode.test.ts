import { describe, expect, it } from "vitest";
import { encodeTkInstruct, encodeTkInstructDetailed, type EncodingOptions, type SniTask } from "../../src/data/index.js";

const task: Pick<SniTask, "name" | "definition" | "positiveExamples" | "negativeExamples"> = {
  name: "task1_demo",
  definition: ["  Reverse the words ", "Second wording"],
  positiveExamples: [
    { input: "a b", output: "b a", explanation: "Reversed" },
    { input: "c d!", output: "d c", explanation: "Done." },
    { input: "e f", output: "f e", explanation: "Third" },
  ],
  negativeExamples: [{ input: "x y", output: "x y", explanation: "Not reversed" }, { input: "u v", output: "u v" }],
};
const inst = { input: " p q \n" };
const chars = (t: string) => t.length;

const opts = (o: Partial<EncodingOptions>): EncodingOptions => ({
  addTaskName: false,
  addDefinition: true,
  numPositiveExamples: 0,
  numNegativeExamples: 0,
  addExplanation: false,
  maxSourceLength: 100000,
  ...o,
});

const TAIL = "Now complete the following example -\nInput: p q.\nOutput: ";
const DEF = "Definition: Reverse the words.\n\n";
const POS1 = " Positive Example 1 -\nInput: a b.\n Output: b a.\n\n";
const POS2 = " Positive Example 2 -\nInput: c d!\n Output: d c.\n\n";
const POS1X = " Positive Example 1 -\nInput: a b.\n Output: b a.\n Explanation: Reversed.\n\n";
const POS2X = " Positive Example 2 -\nInput: c d!\n Output: d c.\n Explanation: Done.\n\n";
const NEG1 = " Negative Example 1 -\nInput: x y.\n Output: x y.\n\n";
const NEG1X = " Negative Example 1 -\nInput: x y.\n Output: x y.\n Explanation: Not reversed.\n\n";
const NEG2X = " Negative Example 2 -\nInput: u v.\n Output: u v.\n\n"; // no explanation in the data: none added

describe("Tk-Instruct encoding", () => {
  it("definition only (Tk-Instruct's default)", () => {
    expect(encodeTkInstruct(task, inst, opts({}), chars)).toBe(
      "Definition: Reverse the words.\n\nNow complete the following example -\nInput: p q.\nOutput: ",
    );
  });

  it("task name, definition, 2 positive and 2 negative examples with explanations", () => {
    expect(
      encodeTkInstruct(task, inst, opts({ addTaskName: true, numPositiveExamples: 2, numNegativeExamples: 2, addExplanation: true }), chars),
    ).toBe("task1_demo. " + DEF + POS1X + POS2X + NEG1X + NEG2X + TAIL);
  });

  it("examples without explanations, no definition, a chosen definition", () => {
    expect(encodeTkInstruct(task, inst, opts({ addDefinition: false, numPositiveExamples: 2, numNegativeExamples: 1 }), chars)).toBe(
      POS1 + POS2 + NEG1 + TAIL,
    );
    expect(encodeTkInstruct(task, inst, opts({ definitionIndex: 1 }), chars)).toBe("Definition: Second wording.\n\n" + TAIL);
    expect(() => encodeTkInstruct(task, inst, opts({ definitionIndex: 2 }), chars)).toThrow(/definitionIndex 2/);
  });

  it("adds a period only when the text does not end in ASCII punctuation", () => {
    const t = { ...task, definition: ["Answer with 'yes' or 'no'?"] };
    expect(encodeTkInstruct(t, { input: "is it (A)" }, opts({}), chars)).toBe(
      "Definition: Answer with 'yes' or 'no'?\n\nNow complete the following example -\nInput: is it (A)\nOutput: ",
    );
    // A non-ASCII final character still gets a period, as Python's string.punctuation is ASCII only.
    expect(encodeTkInstruct(t, { input: "über…" }, opts({ addDefinition: false }), chars)).toBe(
      "Now complete the following example -\nInput: über….\nOutput: ",
    );
    expect(encodeTkInstruct(t, { input: "" }, opts({ addDefinition: false }), chars)).toBe(
      "Now complete the following example -\nInput: .\nOutput: ",
    );
  });

  it("adds examples only while the source fits, and never drops the instance", () => {
    const max = (DEF + POS1 + TAIL).length;
    const r = encodeTkInstructDetailed(task, inst, opts({ numPositiveExamples: 3, numNegativeExamples: 2, maxSourceLength: max }), chars);
    expect(r.source).toBe(DEF + POS1 + TAIL);
    expect([r.numPositive, r.numNegative, r.fits, r.numTokens]).toEqual([1, 0, true, max]);
    // One short of fitting the first example: no examples, the definition and instance stay.
    const r2 = encodeTkInstructDetailed(task, inst, opts({ numPositiveExamples: 3, maxSourceLength: max - 1 }), chars);
    expect(r2.source).toBe(DEF + TAIL);
    // Too small even for the instance: the source is returned whole and flagged; the tokenizer truncates.
    const r3 = encodeTkInstructDetailed(task, inst, opts({ numPositiveExamples: 1, maxSourceLength: 10 }), chars);
    expect(r3.source).toBe(DEF + TAIL);
    expect(r3.fits).toBe(false);
  });

  it("checks the budget on examples joined by a space and without the task name, as Tk-Instruct does", () => {
    const seen: string[] = [];
    const spy = (t: string) => (seen.push(t), 0);
    encodeTkInstruct(task, inst, opts({ addTaskName: true, numPositiveExamples: 2, numNegativeExamples: 1 }), spy);
    expect(seen.slice(0, 3)).toEqual([DEF + POS1 + TAIL, DEF + POS1 + POS2 + TAIL, DEF + POS1 + " " + POS2 + NEG1 + TAIL]);
  });

  it("a task without definitions (BBH) has no definition part", () => {
    expect(encodeTkInstruct({ ...task, definition: [] }, inst, opts({}), chars)).toBe(TAIL);
  });
});
