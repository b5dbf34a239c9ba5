// The demo's numbers: each row's per-example scores per seed -> mean ± std over seeds per split, and paired
// differences (method - baseline) with 95% bootstrap intervals over (seed, example); tables for the report.
import type { V2Group } from "../data/suite-v2.js";
import { scorePrediction } from "../metrics/index.js";
import { meanStd, pairedBootstrap, type PairedDiff } from "../stats/bootstrap.js";
import type { ReportSection } from "../report/report.js";
import type { RowRun } from "../eval/row.js";

export const SPLITS = ["arguments", "compositions", "wordings", "total"] as const;
export type SplitName = (typeof SPLITS)[number];
export const SPLIT_LABEL: Record<SplitName, string> = { arguments: "(i) arguments", compositions: "(ii) compositions", wordings: "(iii) wordings", total: "total" };
export type Metric = "exact_match" | "rougeL";

export interface SeedRun {
  seed: number;
  rows: RowRun[];
  /** method -> mean encoder input tokens per example at inference (all test tasks). */
  tokensPerExample: Record<string, number>;
}

export interface ScoreCell {
  mean: number;
  std: number;
  perSeed: number[];
  /** Examples per seed in this cell. */
  examples: number;
}

export interface MethodSummary {
  method: string;
  /** "all": every unseen task; "targets": the INSTA targets only. */
  scope: "all" | "targets";
  exact_match: Record<SplitName, ScoreCell>;
  rougeL: Record<SplitName, ScoreCell>;
  train_steps: number;
  train_seconds: number[];
  final_loss: number[];
  tokens_per_example?: number;
  instruction_tokens_per_task?: number;
}

export interface Comparison {
  method: string;
  baseline: string;
  scope: "all" | "targets";
  exact_match: Record<SplitName, PairedDiff>;
  rougeL: Record<SplitName, PairedDiff>;
}

/** Split (i) by family: each row's exact match on the held-out argument values of one family, pooled over seeds. */
export interface FamilyCell {
  exact_match: number;
  /** Examples over all seeds. */
  examples: number;
}

export interface DemoSummary {
  methods: MethodSummary[];
  comparisons: Comparison[];
  /** method -> family -> cell, for the rows on every unseen task (present when the caller gave task families). */
  argumentsByFamily?: Record<string, Record<string, FamilyCell>>;
}

/** Each method against its baseline, as the issue lists them (plus the few-shot row against the definition). */
export const COMPARISONS: { method: string; baseline: string; scope: "all" | "targets" }[] = [
  { method: "definition", baseline: "no-instruction", scope: "all" },
  { method: "definition+2pos", baseline: "definition", scope: "all" },
  { method: "dio", baseline: "dio-fixed", scope: "all" },
  { method: "dio", baseline: "definition", scope: "all" },
  { method: "tagi", baseline: "definition", scope: "all" },
  { method: "insta", baseline: "random-k", scope: "targets" },
  { method: "insta", baseline: "all-tasks", scope: "targets" },
  { method: "insta", baseline: "definition", scope: "targets" },
];

interface Item {
  task: string;
  split: SplitName;
  exact_match: number;
  rougeL: number;
}

/** Per-example scores (x100) of one row, keyed by example id. */
export function itemScores(r: Pick<RowRun, "eval">, groups: Map<string, V2Group>): Map<string, Item> {
  const out = new Map<string, Item>();
  for (const p of r.eval.predictions) {
    const s = scorePrediction(p.prediction, p.references);
    const g = groups.get(p.task);
    if (g === undefined || g === "train") throw new Error(`demo: ${p.task} is not an unseen test task of the suite`);
    out.set(p.id, { task: p.task, split: g, exact_match: 100 * s.exact_match, rougeL: 100 * s.rougeL });
  }
  return out;
}

const inSplit = (it: Item, s: SplitName) => s === "total" || it.split === s;

function cell(perSeedItems: Map<string, Item>[], metric: Metric, s: SplitName): ScoreCell {
  const perSeed = perSeedItems.map((m) => {
    const xs = [...m.values()].filter((it) => inSplit(it, s)).map((it) => it[metric]);
    return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
  });
  const ms = meanStd(perSeed.filter((x) => !Number.isNaN(x)));
  return { mean: ms.mean, std: ms.std, perSeed, examples: perSeedItems.length ? [...perSeedItems[0].values()].filter((it) => inSplit(it, s)).length : 0 };
}

export function summarize(runs: SeedRun[], groups: Map<string, V2Group>, o: { resamples?: number; families?: Map<string, string> } = {}): DemoSummary {
  const methods: MethodSummary[] = [];
  const items = new Map<string, Map<string, Item>[]>(); // key `${scope}:${method}`
  const names = runs[0]?.rows.map((r) => r.method) ?? [];
  for (const name of names) {
    const rs = runs.map((run) => {
      const r = run.rows.find((x) => x.method === name);
      if (!r) throw new Error(`demo: seed ${run.seed} has no row ${name}`);
      return r;
    });
    const scope = rs[0].targets ? "targets" : "all";
    const its = rs.map((r) => itemScores(r, groups));
    items.set(`${scope}:${name}`, its);
    const first = rs[0];
    methods.push({
      method: name,
      scope,
      exact_match: Object.fromEntries(SPLITS.map((s) => [s, cell(its, "exact_match", s)])) as Record<SplitName, ScoreCell>,
      rougeL: Object.fromEntries(SPLITS.map((s) => [s, cell(its, "rougeL", s)])) as Record<SplitName, ScoreCell>,
      train_steps: first.train_steps,
      train_seconds: rs.map((r) => Math.round(r.train_seconds * 10) / 10),
      final_loss: rs.map((r) => Math.round(r.final_loss * 10000) / 10000),
      ...(scope === "all" ? { tokens_per_example: runs[0].tokensPerExample[name] } : {}),
      ...(first.instructionTokensPerTask !== undefined ? { instruction_tokens_per_task: Math.round(first.instructionTokensPerTask * 10) / 10 } : {}),
    });
  }
  // The definition row restricted to the INSTA targets: the baseline the INSTA rows stand next to.
  const targetRow = runs[0]?.rows.find((r) => r.targets);
  const def = items.get("all:definition");
  if (targetRow && def) {
    const keep = new Set(targetRow.targets);
    const its = def.map((m) => new Map([...m].filter(([, it]) => keep.has(it.task))));
    items.set("targets:definition", its);
    const d = methods.find((m) => m.method === "definition")!;
    methods.push({
      method: "definition",
      scope: "targets",
      exact_match: Object.fromEntries(SPLITS.map((s) => [s, cell(its, "exact_match", s)])) as Record<SplitName, ScoreCell>,
      rougeL: Object.fromEntries(SPLITS.map((s) => [s, cell(its, "rougeL", s)])) as Record<SplitName, ScoreCell>,
      train_steps: d.train_steps,
      train_seconds: d.train_seconds,
      final_loss: d.final_loss,
    });
  }
  const comparisons: Comparison[] = [];
  for (const c of COMPARISONS) {
    const a = items.get(`${c.scope}:${c.method}`);
    const b = items.get(`${c.scope}:${c.baseline}`);
    if (!a || !b) continue;
    const diff = (metric: Metric, s: SplitName) =>
      pairedBootstrap(
        a.map((ma, k) =>
          [...ma].filter(([, it]) => inSplit(it, s)).map(([id, it]) => {
            const jt = b[k].get(id);
            if (!jt) throw new Error(`demo: example ${id} of ${c.method} is missing from ${c.baseline} (seed ${runs[k].seed})`);
            return it[metric] - jt[metric];
          }),
        ),
        { resamples: o.resamples ?? 2000, seed: 7 },
      );
    comparisons.push({
      ...c,
      exact_match: Object.fromEntries(SPLITS.map((s) => [s, diff("exact_match", s)])) as Record<SplitName, PairedDiff>,
      rougeL: Object.fromEntries(SPLITS.map((s) => [s, diff("rougeL", s)])) as Record<SplitName, PairedDiff>,
    });
  }
  let argumentsByFamily: DemoSummary["argumentsByFamily"];
  if (o.families) {
    argumentsByFamily = {};
    for (const m of methods.filter((x) => x.scope === "all")) {
      const acc: Record<string, { sum: number; n: number }> = {};
      for (const seedItems of items.get(`all:${m.method}`)!)
        for (const it of seedItems.values()) {
          if (it.split !== "arguments") continue;
          const fam = o.families.get(it.task);
          if (fam === undefined) throw new Error(`demo: no family for ${it.task}`);
          (acc[fam] ??= { sum: 0, n: 0 }).sum += it.exact_match;
          acc[fam].n++;
        }
      argumentsByFamily[m.method] = Object.fromEntries(Object.keys(acc).sort().map((f) => [f, { exact_match: acc[f].sum / acc[f].n, examples: acc[f].n }]));
    }
  }
  return { methods, comparisons, ...(argumentsByFamily ? { argumentsByFamily } : {}) };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : "–");
const signed = (x: number) => (Number.isFinite(x) ? (x >= 0 ? "+" : "") + x.toFixed(1) : "–");

export function cellText(c: ScoreCell, seeds: number): string {
  if (!Number.isFinite(c.mean)) return "–";
  return seeds > 1 ? `${f1(c.mean)} ± ${f1(c.std)}` : f1(c.mean);
}

export function diffText(d: PairedDiff): string {
  if (!Number.isFinite(d.mean)) return "–";
  return `${signed(d.mean)} [${signed(d.lo)}, ${signed(d.hi)}]${d.significant ? " *" : ""}`;
}

export interface DemoMarkdown {
  sections: ReportSection[];
  /** What the CLI prints. */
  terminal: string;
}

function table(header: string[], rows: string[][]): string {
  const right = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [`| ${header.join(" | ")} |`, `| ${right.join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function demoMarkdown(s: DemoSummary, o: { quick: boolean; seeds: number[]; facts: Record<string, string>; instaTargets: string[] }): DemoMarkdown {
  const n = o.seeds.length;
  const all = s.methods.filter((m) => m.scope === "all");
  const header = ["method", ...SPLITS.map((x) => SPLIT_LABEL[x])];
  const scoreRows = (metric: Metric, withTokens: boolean) =>
    all.map((m) => [
      m.method,
      ...SPLITS.map((x) => cellText(m[metric][x], n)),
      ...(withTokens ? [m.tokens_per_example !== undefined ? f1(m.tokens_per_example) + (m.instruction_tokens_per_task !== undefined ? ` (+${f1(m.instruction_tokens_per_task)}/task)` : "") : "–"] : []),
    ]);
  const spread = n > 1 ? `mean ± std over ${n} seeds` : "one seed";
  const sections: ReportSection[] = [];
  const emTitle = `Exact match on the unseen tasks (${spread})`;
  const emTable = table([...header, "tokens read / example"], scoreRows("exact_match", true));
  sections.push({ title: emTitle, markdown: emTable });
  sections.push({ title: `ROUGE-L on the unseen tasks (${spread})`, markdown: table(header, scoreRows("rougeL", false)) });
  const diffRows = (metric: Metric, scope: "all" | "targets") =>
    s.comparisons.filter((c) => c.scope === scope).map((c) => [`${c.method} − ${c.baseline}`, ...SPLITS.map((x) => diffText(c[metric][x]))]);
  const ciNote = `paired difference, mean [95% bootstrap interval over ${n > 1 ? "seeds, then examples within each seed" : "examples"}]; * = the interval excludes 0`;
  const emDiff = table(["comparison", ...SPLITS.map((x) => SPLIT_LABEL[x])], diffRows("exact_match", "all"));
  sections.push({ title: "Differences, exact match", markdown: emDiff, note: ciNote });
  sections.push({ title: "Differences, ROUGE-L", markdown: table(["comparison", ...SPLITS.map((x) => SPLIT_LABEL[x])], diffRows("rougeL", "all")), note: ciNote });
  if (s.argumentsByFamily) {
    const fams = [...new Set(Object.values(s.argumentsByFamily).flatMap((r) => Object.keys(r)))].sort();
    const rows = Object.entries(s.argumentsByFamily).map(([method, r]) => [method, ...fams.map((f) => (r[f] ? f1(r[f].exact_match) : "–"))]);
    const counts = fams.map((f) => Object.values(s.argumentsByFamily!).find((r) => r[f])?.[f].examples ?? 0);
    sections.push({
      title: "Split (i) by family: exact match on each family's held-out argument values",
      markdown: table(["method", ...fams], rows),
      note: `pooled over ${n > 1 ? `${n} seeds` : "the seed"}; examples per family: ${fams.map((f, i) => `${f} ${counts[i]}`).join(", ")}`,
    });
  }
  const targets = s.methods.filter((m) => m.scope === "targets");
  let instaText = "";
  if (targets.length) {
    const rows = targets.map((m) => [m.method === "definition" ? "definition (all tasks, full budget)" : m.method, cellText(m.exact_match.total, n), cellText(m.rougeL.total, n), String(m.train_steps)]);
    const t = table(["method", "exact match", "ROUGE-L", "steps"], rows);
    const d = table(
      ["comparison", "exact match", "ROUGE-L"],
      s.comparisons.filter((c) => c.scope === "targets").map((c) => [`${c.method} − ${c.baseline}`, diffText(c.exact_match.total), diffText(c.rougeL.total)]),
    );
    const title = `INSTA on ${o.instaTargets.length} unseen target task(s): ${o.instaTargets.join(", ")} (${spread})`;
    sections.push({ title, markdown: t + "\n\n" + d, note: ciNote });
    instaText = `\n\n${title}\n${t}\n\n${d}`;
  }
  const terminal = `${emTitle}\n${emTable}\n\nDifferences, exact match (${ciNote})\n${emDiff}${instaText}`;
  return { sections, terminal };
}
