// Shared data types: the contract between src/data (loaders, encodings), src/metrics and the methods.
// Field names follow the Super-NaturalInstructions schema, in camelCase.

export interface SniExample {
  input: string;
  output: string;
  explanation?: string;
}

export interface SniInstance {
  id: string;
  input: string;
  /** All acceptable references (the official schema keeps a list). */
  output: string[];
  /** Answer options of this instance for rank classification (BBH options parsed from the input). */
  answerChoices?: string[];
  /** Index of the gold answer in answerChoices (or in the task's answerChoices), when known. */
  answerIndex?: number;
}

/** One task in the SNI schema (also what BBH and JSONL tasks are converted to). */
export interface SniTask {
  /** Task name, e.g. "task1356_xlsum_title_generation" (file name without .json). */
  name: string;
  /** Where it was read from (for error messages). */
  source?: string;
  definition: string[];
  positiveExamples: SniExample[];
  negativeExamples: SniExample[];
  instances: SniInstance[];
  categories: string[];
  inputLanguage?: string[];
  outputLanguage?: string[];
  instructionLanguage?: string[];
  domains?: string[];
  /** Answer options for rank classification (BBH multiple choice, P3 answer_choices), per task. */
  answerChoices?: string[];
}

/** Options of the Tk-Instruct encoding (Wang et al. 2022, Super-NaturalInstructions: definition, examples, then the instance). */
export interface EncodingOptions {
  addTaskName: boolean;
  addDefinition: boolean;
  numPositiveExamples: number;
  numNegativeExamples: number;
  addExplanation: boolean;
  /** Maximum source length in tokens: examples are added only while the source still fits. */
  maxSourceLength: number;
  /** Which definition to use when a task has several (default 0 = the first, as Tk-Instruct). */
  definitionIndex?: number;
}

/** A single prediction to be scored against its references. */
export interface ScoredItem {
  id: string;
  prediction: string;
  references: string[];
  taskId?: string;
  taskCategory?: string;
}
