// `instill data ...`: generate the embedded instruction suite; check a folder of task files.
import type { Command } from "commander";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { writeSuite } from "../data/suite.js";
import { writeSuiteV2 } from "../data/suite-v2.js";
import { loadSplitTasks, readSplit, readTaskDir, type OnBadTask } from "../data/sni.js";

const isDir = (p: string) => existsSync(p) && statSync(p).isDirectory();

function parseIntOpt(name: string, v: string | undefined, def: number, min = 0): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`${name}: expected an integer >= ${min}, got '${v}'`);
  return n;
}

function parsePolicy(v: string | undefined): OnBadTask {
  const p = v ?? "fail";
  if (p !== "skip" && p !== "fail") throw new Error(`--on-bad-task: expected skip or fail, got '${p}'`);
  return p;
}

export function registerData(program: Command): void {
  const data = program.command("data").description("task data: generate the embedded instruction suite, check task folders");

  data
    .command("synth")
    .description("write the embedded instruction suite: tasks/*.json (SNI schema), splits/default/{train,test}_tasks.txt, tokenizer.json")
    .requiredOption("--out <dir>", "output folder")
    .option("--seed <n>", "instance seed (the task list and split do not depend on it)", "42")
    .option("--instances <n>", "instances per task (default 100 for v1, 60 for v2)")
    .option("--suite <v>", "v1 (68 tasks: primitives and compositions) or v2 (tasks with arguments, the demo's suite)", "v1")
    .option("--json", "print a JSON summary")
    .action((o: { out: string; seed: string; instances?: string; suite: string; json?: boolean }) => {
      const seed = parseIntOpt("--seed", o.seed, 42);
      if (o.suite !== "v1" && o.suite !== "v2") throw new Error(`--suite: expected v1 or v2, got '${o.suite}'`);
      const instancesPerTask = parseIntOpt("--instances", o.instances, o.suite === "v2" ? 60 : 100, 1);
      const r = o.suite === "v2" ? writeSuiteV2(o.out, seed, { instancesPerTask }) : writeSuite(o.out, seed, { instancesPerTask });
      if (o.json) process.stdout.write(JSON.stringify({ ...r, seed, instancesPerTask, suite: o.suite }) + "\n");
      else
        process.stdout.write(
          `wrote ${r.tasks} tasks (${r.train} train, ${r.test} test) with ${instancesPerTask} instances each to ${r.dir}\n` +
            `tokenizer.json: WordLevel, ${r.vocabSize} tokens (<pad>=0, </s>=1, <unk>=2; </s> appended)\n`,
        );
    });

  data
    .command("check")
    .description("read and validate task files: a folder of SNI task files, or a data folder with a split")
    .argument("<dir>", "a folder of task files, or a data folder with tasks/ (and splits/), as `data synth` writes")
    .option("--split <name>", "load this split of <dir> the way training does")
    .option("--on-bad-task <policy>", "skip or fail", "fail")
    .option("--max-instances <n>", "instances per task (default: all, or 100 with --split)")
    .option("--seed <n>", "sampling seed", "42")
    .option("--english-only", "with --split: keep only English tasks")
    .option("--json", "print a JSON summary")
    .action((dir: string, o: { split?: string; onBadTask?: string; maxInstances?: string; seed: string; englishOnly?: boolean; json?: boolean }) => {
      const onBadTask = parsePolicy(o.onBadTask);
      const seed = parseIntOpt("--seed", o.seed, 42);
      let summary: Record<string, unknown>;
      if (o.split) {
        const max = parseIntOpt("--max-instances", o.maxInstances, 100);
        const r = loadSplitTasks({ dataDir: dir, split: o.split, onBadTask, seed, maxTrainInstances: max, maxEvalInstances: max, englishOnly: o.englishOnly });
        summary = {
          train: r.train.length,
          test: r.test.length,
          trainInstances: r.train.reduce((s, t) => s + t.instances.length, 0),
          testInstances: r.test.reduce((s, t) => s + t.instances.length, 0),
          filtered: r.filtered,
          skipped: r.skipped,
        };
      } else {
        const max = o.maxInstances === undefined ? undefined : parseIntOpt("--max-instances", o.maxInstances, 0);
        // A data folder (tasks/ + splits/ + tokenizer.json, as `data synth` writes it): check its task files and
        // that every split lists only tasks that exist. Otherwise `dir` itself is the folder of task files.
        const dataFolder = isDir(join(dir, "tasks"));
        const tasksDir = dataFolder ? join(dir, "tasks") : dir;
        const r = readTaskDir(tasksDir, { onBadTask, maxInstances: max, seed });
        summary = { tasks: r.tasks.length, instances: r.tasks.reduce((s, t) => s + t.instances.length, 0), skipped: r.skipped };
        if (dataFolder && isDir(join(dir, "splits"))) {
          const names = new Set([...r.tasks.map((t) => t.name), ...r.skipped.map((t) => t.task)]);
          const splits: Record<string, { train: number; test: number }> = {};
          for (const name of readdirSync(join(dir, "splits")).sort()) {
            if (!isDir(join(dir, "splits", name))) continue;
            const sp = readSplit(dir, name);
            const missing = [...sp.train, ...sp.test].filter((t) => !names.has(t));
            if (missing.length)
              throw new Error(`${join(dir, "splits", name)}: ${missing.length} listed task(s) have no file in ${tasksDir}: ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ", ..." : ""}`);
            splits[name] = { train: sp.train.length, test: sp.test.length };
          }
          summary.splits = splits;
        }
      }
      if (o.json) {
        process.stdout.write(JSON.stringify(summary) + "\n");
        return;
      }
      const skipped = summary.skipped as { task: string; reason: string }[];
      const head = Object.entries(summary)
        .filter(([k]) => k !== "skipped" && k !== "filtered" && k !== "splits")
        .map(([k, v]) => `${k} ${v}`)
        .join(", ");
      const lines = [head];
      for (const [name, sp] of Object.entries((summary.splits ?? {}) as Record<string, { train: number; test: number }>)) lines.push(`split ${name}: ${sp.train} train, ${sp.test} test`);
      if (Array.isArray(summary.filtered) && summary.filtered.length) lines.push(`filtered (not English): ${summary.filtered.length}`);
      if (skipped.length) {
        lines.push(`skipped ${skipped.length} task(s):`);
        for (const s of skipped) lines.push(`  ${s.task}: ${s.reason}`);
      }
      process.stdout.write(lines.join("\n") + "\n");
    });
}
