// The Tk-Instruct prompt encoding (Tk-Instruct's DataCollatorForNI), character for character, so that
// Tk-Instruct-trained checkpoints see the inputs they were trained on. Every method builds its sources here.
import type { EncodingOptions, SniExample, SniInstance, SniTask } from "./types.js";
import { PY_PUNCTUATION, pyStrip } from "../metrics/sni.js";

/**
 * Counts the tokens of a text exactly as the model will receive it; for T5 that is the length of
 * `tokenizer(text).input_ids`, which includes the appended EOS (what Tk-Instruct's length checks count).
 */
export type CountTokens = (text: string) => number;

const PUNCT = new Set(PY_PUNCTUATION);

/** Appends "." unless the text already ends in one of Python's string.punctuation characters. */
function endWithPunct(s: string): string {
  return s.length > 0 && PUNCT.has(s[s.length - 1]) ? s : s + ".";
}

function exampleString(kind: "Positive" | "Negative", idx: number, ex: SniExample, addExplanation: boolean): string {
  let s = ` ${kind} Example ${idx + 1} -\n`;
  s = endWithPunct(s + `Input: ${pyStrip(ex.input)}`) + "\n";
  s = endWithPunct(s + ` Output: ${pyStrip(ex.output)}`) + "\n";
  if (addExplanation && ex.explanation !== undefined) {
    s = endWithPunct(s + ` Explanation: ${pyStrip(ex.explanation)}`) + "\n";
  }
  return s + "\n";
}

export interface EncodedSource {
  source: string;
  /** How many positive / negative examples fit. */
  numPositive: number;
  numNegative: number;
  /** Tokens of the whole source (countTokens(source)). */
  numTokens: number;
  /** False when even the definition and the instance exceed maxSourceLength (the caller's tokenizer truncates). */
  fits: boolean;
}

export const DEFAULT_ENCODING: EncodingOptions = {
  addTaskName: false,
  addDefinition: true,
  numPositiveExamples: 2,
  numNegativeExamples: 0,
  addExplanation: false,
  maxSourceLength: 1024,
};

/**
 * Builds the Tk-Instruct source: [task name + ". "] + "Definition: <def>.\n\n" + positive examples +
 * negative examples + "Now complete the following example -\nInput: <input>.\nOutput: ".
 * Examples are added one at a time while the source still fits `maxSourceLength` tokens (checked, as
 * Tk-Instruct does, on definition + examples joined by " " + instance, without the task name), so the
 * instance itself is never displaced by examples. A task with no definitions (BBH) gets no definition part.
 */
export function encodeTkInstructDetailed(
  task: Pick<SniTask, "name" | "definition" | "positiveExamples" | "negativeExamples">,
  instance: Pick<SniInstance, "input">,
  options: EncodingOptions,
  countTokens: CountTokens,
): EncodedSource {
  let taskInput = "Now complete the following example -\n";
  taskInput = endWithPunct(taskInput + `Input: ${pyStrip(instance.input)}`) + "\n";
  taskInput += "Output: ";

  const taskName = options.addTaskName ? task.name + ". " : "";

  let definition = "";
  if (options.addDefinition && task.definition.length > 0) {
    const di = options.definitionIndex ?? 0;
    if (!Number.isInteger(di) || di < 0 || di >= task.definition.length)
      throw new RangeError(`encodeTkInstruct: definitionIndex ${di} is out of range for task ${task.name} (${task.definition.length} definitions)`);
    definition = endWithPunct("Definition: " + pyStrip(task.definition[di])) + "\n\n";
  }

  const pos: string[] = [];
  for (const [i, ex] of task.positiveExamples.slice(0, Math.max(0, options.numPositiveExamples)).entries()) {
    const s = exampleString("Positive", i, ex, options.addExplanation);
    if (countTokens(definition + pos.join(" ") + s + taskInput) <= options.maxSourceLength) pos.push(s);
    else break;
  }
  const neg: string[] = [];
  for (const [i, ex] of task.negativeExamples.slice(0, Math.max(0, options.numNegativeExamples)).entries()) {
    const s = exampleString("Negative", i, ex, options.addExplanation);
    if (countTokens(definition + pos.join(" ") + neg.join(" ") + s + taskInput) <= options.maxSourceLength) neg.push(s);
    else break;
  }
  const source = taskName + definition + pos.join("") + neg.join("") + taskInput;
  const numTokens = countTokens(source);
  return { source, numPositive: pos.length, numNegative: neg.length, numTokens, fits: numTokens <= options.maxSourceLength };
}

/** The Tk-Instruct source string for one instance (see encodeTkInstructDetailed). */
export function encodeTkInstruct(
  task: Pick<SniTask, "name" | "definition" | "positiveExamples" | "negativeExamples">,
  instance: Pick<SniInstance, "input">,
  options: EncodingOptions,
  countTokens: CountTokens,
): string {
  return encodeTkInstructDetailed(task, instance, options, countTokens).source;
}

/** A crude whitespace token counter (+1 for EOS), for callers without a tokenizer (tests, dry runs). */
export function countWhitespaceTokens(text: string): number {
  const t = text.trim();
  return (t.length === 0 ? 0 : t.split(/\s+/).length) + 1;
}
