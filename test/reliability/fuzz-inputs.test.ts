// Reliability (issue 18): seeded mutations of the files instill reads on the TypeScript side (SNI task files,
// JSONL tasks, run configs in YAML and JSON, DIO configs, tokenizer.json). Every rejection must name the file and
// the field; every accepted input must survive its downstream use (encoding, tokenizing). No native addon needed.
// Short runs here (INSTILL_FUZZ_RUNS, default 300 per target); `scripts/fuzz-ts.sh` runs the long ones.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import YAML from "yaml";
import { afterAll, describe, expect, it } from "vitest";
import { countWhitespaceTokens, encodeTkInstruct } from "../../src/data/encode.js";
import { readJsonlTasks } from "../../src/data/jsonl.js";
import { isEnglishTask, readSniTask } from "../../src/data/sni.js";
import { writeSuite } from "../../src/data/suite.js";
import { resolveDioConfig } from "../../src/dio/dio.js";
import { loadTokenizer } from "../../src/model/tokenizer.js";
import { resolveConfig } from "../../src/train/config.js";
import { runTarget, type Json, type TargetSpec } from "./mutate.js";

// Every target is strict: a rejection names the file and the field (tokenizer.json is checked field by field at load
// time by src/model/tokenizer-validate.ts, and library errors are wrapped with the file's path).
const STRICT = new Set(["sni-task", "jsonl-tasks", "run-config-yaml", "run-config-json", "dio-config-yaml", "tokenizer-json"]);
const RUNS = Number(process.env.INSTILL_FUZZ_RUNS ?? 300);
const SEED = Number(process.env.INSTILL_FUZZ_SEED ?? 1);
const tmp = mkdtempSync(join(tmpdir(), "instill-fuzz-ts-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const suiteDir = join(tmp, "suite");
writeSuite(suiteDir, 3);
const taskFiles = readdirSync(join(suiteDir, "tasks")).filter((f) => f.endsWith(".json")).sort();
const sniSeeds: Json[] = [0, 7, 40].map((i) => JSON.parse(readFileSync(join(suiteDir, "tasks", taskFiles[i % taskFiles.length]!), "utf8")) as Json);
// The full SNI schema, with the optional fields the suite does not write.
sniSeeds.push({
  Contributors: ["x"], Source: ["y"], URL: ["u"], Categories: ["Title Generation"], Reasoning: [], Definition: ["Write a title."],
  Input_language: ["English"], Output_language: ["English"], Instruction_language: ["English"], Domains: ["News"],
  "Positive Examples": [{ input: "a b", output: "A", explanation: "because" }], "Negative Examples": [{ input: "c", output: "d", explanation: "no" }],
  Instances: [{ id: "task1-1", input: "some text", output: ["T"] }, { id: 2, input: "more", output: ["U", "V"] }],
  "Instance License": ["MIT"],
});

const lines = (v: Json) => (Array.isArray(v) ? v.map((x) => JSON.stringify(x)).join("\n") + "\n" : JSON.stringify(v));

const runConfigSeed: Json = {
  model: "m", data: "d", out: "o", seed: 3, steps: 10, batchSize: 4, stepsPerCall: 2, checkpointEvery: 5, keepCheckpoints: 2,
  optimizer: { name: "adamw", lr: 0.001, warmupSteps: 2, gradAccumulation: 1, weightDecay: 0.01 },
  lora: { r: 8, alpha: 16, modules: ["q", "v"], dropout: 0 },
  encoding: { maxSourceLength: 128, numPositiveExamples: 2, addTaskName: false },
  eval: { maxNewTokens: 16, numBeams: 1, batchSize: 8 },
};
const dioSeed: Json = { model: "m", steps: 8, batchSize: 4, promptLength: 3, variant: "embedder", hypergrad: "neumann:3", inner: { lr: 0.003 }, outer: { lr: 0.01 }, demonstrations: { count: 2, tau: 1, maxLength: 32 } };

const tokDir = join(tmp, "tok");
mkdirSync(tokDir, { recursive: true });
const tokSeed = JSON.parse(readFileSync(join(suiteDir, "tokenizer.json"), "utf8")) as Json;

function sniRead(file: string): void {
  const task = readSniTask(file, { maxInstances: 5, seed: 1 });
  isEnglishTask(task);
  for (const inst of task.instances.slice(0, 2))
    encodeTkInstruct(task, inst, { addTaskName: true, addDefinition: true, numPositiveExamples: 2, numNegativeExamples: 2, addExplanation: true, maxSourceLength: 256 }, countWhitespaceTokens);
}

/** An accepted run config is usable: a LoRA section (when present) is what addLora needs. */
function checkRunConfig(c: ReturnType<typeof resolveConfig>): void {
  if (c.lora === null) return;
  const l = c.lora as unknown as Record<string, unknown>;
  const ok =
    Number.isInteger(l.r) && (l.r as number) > 0 && typeof l.alpha === "number" && Number.isFinite(l.alpha) &&
    Array.isArray(l.modules) && l.modules.length > 0 && l.modules.every((m) => ["q", "k", "v", "o", "wi", "wo"].includes(m as string)) &&
    (l.dropout === undefined || (typeof l.dropout === "number" && l.dropout >= 0 && l.dropout < 1));
  if (!ok) throw new Error(`accepted an unusable lora section: ${JSON.stringify(l)}`);
}

const targets: TargetSpec[] = [
  { name: "sni-task", file: join(tmp, "task001_fuzz.json"), seeds: sniSeeds, read: sniRead },
  {
    name: "jsonl-tasks",
    file: join(tmp, "tasks.jsonl"),
    seeds: [[
      { task: "a", instruction: "Say yes.", inputs: "q", targets: "yes", category: "c" },
      { task: "a", instruction: "Say yes.", inputs: "r", targets: ["yes", "y"], id: 7 },
      { task: "b", instruction: "Pick one.", inputs: "s", targets: "x", answer_choices: ["x", "y"] },
    ]],
    serialize: lines,
    // deleting a line shifts the later ones, so any "line N" counts once a line index was touched
    aliases: (keys) => (keys.some((k) => typeof k === "number") ? ["line "] : []),
    read: (f) => {
      for (const t of readJsonlTasks(f))
        for (const inst of t.instances) encodeTkInstruct(t, inst, { addTaskName: false, addDefinition: true, numPositiveExamples: 0, numNegativeExamples: 0, addExplanation: false, maxSourceLength: 64 }, countWhitespaceTokens);
    },
  },
  { name: "run-config-yaml", file: join(tmp, "run.yaml"), seeds: [runConfigSeed], serialize: (v) => YAML.stringify(v), read: (f) => checkRunConfig(resolveConfig(f, {})) },
  { name: "run-config-json", file: join(tmp, "run.json"), seeds: [runConfigSeed], read: (f) => checkRunConfig(resolveConfig(f, {})) },
  { name: "dio-config-yaml", file: join(tmp, "dio.yaml"), seeds: [dioSeed], serialize: (v) => YAML.stringify(v), read: (f) => void resolveDioConfig(f, {}) },
  {
    name: "tokenizer-json",
    file: join(tokDir, "tokenizer.json"),
    seeds: [tokSeed],
    read: () => {
      const tok = loadTokenizer(tokDir);
      const ids = tok.encode("reverse the words : a b c");
      tok.decode(ids);
    },
  },
];

describe("seeded mutations of TypeScript-side inputs (issue 18)", () => {
  for (const t of targets) {
    it(`${t.name}: ${RUNS} inputs, ${STRICT.has(t.name) ? "every rejection names the file and the field" : "every failure is an Error (known issues reported)"}`, () => {
      const f = runTarget(t, RUNS, SEED);
      console.log(`[reliability] fuzz ${t.name}: ${JSON.stringify({ inputs: f.inputs, accepted: f.accepted, rejected: f.rejected, violations: f.violationCount, slowestMs: Math.round(f.slowestMs) })}`);
      for (const v of f.violations.slice(0, 3)) console.log(`  violation (${v.op}): ${v.message}\n  input: ${v.input.slice(0, 400)}`);
      expect(f.inputs).toBe(RUNS);
      if (STRICT.has(t.name)) expect(f.violations.map((v) => v.message)).toEqual([]);
      else expect(f.violations.filter((v) => v.message.startsWith("not an Error"))).toEqual([]);
    });
  }
});
