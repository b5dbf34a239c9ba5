// Reports: a Markdown table, an HTML page with charts (training curves, per-category scores), and the
// charts as PNG. Charts are Vega-Lite specs compiled and rendered with vega (SVG, no browser), then
// rasterized with resvg; the HTML inlines the SVGs so it opens anywhere without network access.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import * as vega from "vega";
import * as vegaLite from "vega-lite";
import { Resvg } from "@resvg/resvg-js";
import { writeFileAtomic } from "../util/fs.js";

export interface ReportRow {
  method: string;
  rougeL: number;
  exact_match: number;
  rouge1?: number;
  [extra: string]: number | string | undefined;
}

export interface ReportInput {
  title: string;
  rows: ReportRow[];
  /** method -> loss curve */
  curves?: Record<string, { step: number; loss: number }[]>;
  /** method -> category -> ROUGE-L */
  perCategory?: Record<string, Record<string, number>>;
  notes?: string[];
  /** extra key/value facts shown under the table (model size, steps, seconds, ...) */
  facts?: Record<string, string | number>;
  /** Further tables (Markdown pipe tables), each with a heading and an optional note; rendered in both files. */
  sections?: ReportSection[];
  /** Leave out the default rows table (when the sections carry the numbers). */
  hideRowsTable?: boolean;
  /** A chart of means with ± std error bars per method and group (e.g. per split, over seeds). */
  errorBars?: ErrorBarPoint[];
  errorBarsTitle?: string;
}

export interface ReportSection {
  title: string;
  /** A Markdown pipe table (header, alignment row, rows) or plain text. */
  markdown: string;
  note?: string;
}

export interface ErrorBarPoint {
  method: string;
  group: string;
  mean: number;
  std: number;
}

export interface ReportFiles {
  markdown: string;
  html: string;
  pngs: string[];
}

export function markdownTable(rows: ReportRow[]): string {
  const extra = Array.from(new Set(rows.flatMap((r) => Object.keys(r)))).filter(
    (k) => !["method", "rougeL", "exact_match", "rouge1"].includes(k) && rows.some((r) => typeof r[k] === "number"),
  );
  const cols = ["method", "rougeL", "exact_match", ...(rows.some((r) => r.rouge1 !== undefined) ? ["rouge1"] : []), ...extra];
  const fmt = (v: unknown) => (typeof v === "number" ? (Number.isNaN(v) ? "" : v.toFixed(2)) : v === undefined ? "" : String(v));
  const lines = [`| ${cols.join(" | ")} |`, `| ${cols.map((c) => (c === "method" ? "---" : "---:")).join(" | ")} |`];
  for (const r of rows) lines.push(`| ${cols.map((c) => fmt(r[c])).join(" | ")} |`);
  return lines.join("\n");
}

async function renderSvg(spec: vegaLite.TopLevelSpec): Promise<string> {
  const compiled = vegaLite.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

function svgToPng(svg: string): Buffer {
  const r = new Resvg(svg, { fitTo: { mode: "zoom", value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: "DejaVu Sans" }, background: "white" });
  return r.render().asPng();
}

export function lossChartSpec(curves: Record<string, { step: number; loss: number }[]>): vegaLite.TopLevelSpec {
  const values = Object.entries(curves).flatMap(([method, pts]) => pts.map((p) => ({ method, step: p.step, loss: p.loss })));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "Training loss",
    width: 480,
    height: 260,
    data: { values },
    mark: { type: "line", interpolate: "monotone" },
    encoding: {
      x: { field: "step", type: "quantitative", title: "optimizer step" },
      y: { field: "loss", type: "quantitative", title: "cross-entropy", scale: { zero: false } },
      color: { field: "method", type: "nominal" },
    },
  };
}

export function categoryChartSpec(per: Record<string, Record<string, number>>): vegaLite.TopLevelSpec {
  const values = Object.entries(per).flatMap(([method, cats]) => Object.entries(cats).map(([category, rougeL]) => ({ method, category, rougeL })));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "ROUGE-L per category (unseen test tasks)",
    width: 480,
    height: { step: 14 } as never,
    data: { values },
    mark: "bar",
    encoding: {
      y: { field: "category", type: "nominal", title: null },
      yOffset: { field: "method" },
      x: { field: "rougeL", type: "quantitative", title: "ROUGE-L", scale: { domain: [0, 100] } },
      color: { field: "method", type: "nominal" },
    },
  } as vegaLite.TopLevelSpec;
}

export function methodChartSpec(rows: ReportRow[]): vegaLite.TopLevelSpec {
  const values = rows.flatMap((r) => [
    { method: r.method, metric: "ROUGE-L", value: r.rougeL },
    { method: r.method, metric: "exact match", value: r.exact_match },
  ]);
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: "Unseen test tasks",
    width: 480,
    height: { step: 16 } as never,
    data: { values },
    mark: "bar",
    encoding: {
      y: { field: "method", type: "nominal", sort: null, title: null },
      yOffset: { field: "metric" },
      x: { field: "value", type: "quantitative", scale: { domain: [0, 100] }, title: "score" },
      color: { field: "metric", type: "nominal" },
    },
  } as vegaLite.TopLevelSpec;
}

/** Mean bars with ± std error bars, one panel row per group, methods on the y axis. */
export function errorBarChartSpec(points: ErrorBarPoint[], title = "mean ± std"): vegaLite.TopLevelSpec {
  const values = points.filter((p) => Number.isFinite(p.mean)).map((p) => ({ ...p, lo: p.mean - (p.std || 0), hi: p.mean + (p.std || 0) }));
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title,
    data: { values },
    facet: { column: { field: "group", type: "nominal", sort: [...new Set(points.map((p) => p.group))], title: null } },
    spec: {
      width: 150,
      height: { step: 14 } as never,
      layer: [
        { mark: "bar", encoding: { y: { field: "method", type: "nominal", sort: null, title: null }, x: { field: "mean", type: "quantitative", scale: { domain: [0, 100] }, title: "score" }, color: { field: "method", type: "nominal", legend: null } } },
        { mark: { type: "rule", color: "black" }, encoding: { y: { field: "method", type: "nominal", sort: null }, x: { field: "lo", type: "quantitative" }, x2: { field: "hi" } } },
      ],
    },
  } as vegaLite.TopLevelSpec;
}

/** A Markdown pipe table as an HTML table (other text becomes a paragraph). */
export function markdownTableToHtml(md: string): string {
  return md
    .split(/\n\s*\n/)
    .map((block) => {
      const lines = block.split("\n").filter((l) => l.trim().length);
      if (lines.length < 2 || !lines.every((l) => l.trim().startsWith("|"))) return `<p>${escapeHtml(block)}</p>`;
      const cells = (l: string) => l.trim().replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => escapeHtml(c.trim()));
      const [head, , ...body] = lines;
      return `<table><thead><tr>${cells(head).map((c) => `<th>${c}</th>`).join("")}</tr></thead><tbody>${body.map((l) => `<tr>${cells(l).map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table>`;
    })
    .join("\n");
}

function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export async function writeReport(dir: string, input: ReportInput): Promise<ReportFiles> {
  mkdirSync(dir, { recursive: true });
  const charts: { name: string; svg: string }[] = [];
  if (input.errorBars?.length) charts.push({ name: "methods", svg: await renderSvg(errorBarChartSpec(input.errorBars, input.errorBarsTitle)) });
  else if (input.rows.length) charts.push({ name: "methods", svg: await renderSvg(methodChartSpec(input.rows)) });
  if (input.curves && Object.keys(input.curves).length) charts.push({ name: "loss", svg: await renderSvg(lossChartSpec(input.curves)) });
  if (input.perCategory && Object.keys(input.perCategory).length)
    charts.push({ name: "categories", svg: await renderSvg(categoryChartSpec(input.perCategory)) });
  const pngs: string[] = [];
  for (const c of charts) {
    const p = join(dir, `${c.name}.png`);
    writeFileAtomic(p, svgToPng(c.svg));
    writeFileAtomic(join(dir, `${c.name}.svg`), c.svg);
    pngs.push(p);
  }
  const facts = Object.entries(input.facts ?? {}).map(([k, v]) => `- ${k}: ${v}`);
  const md = [
    `# ${input.title}`,
    "",
    ...(input.hideRowsTable ? [] : [markdownTable(input.rows), ""]),
    ...(input.sections ?? []).flatMap((s) => [`## ${s.title}`, "", s.markdown, "", ...(s.note ? [s.note, ""] : [])]),
    ...(facts.length ? [...facts, ""] : []),
    ...(input.notes?.length ? [...input.notes.map((n) => `> ${n}`), ""] : []),
    ...charts.map((c) => `![${c.name}](${c.name}.png)`),
    "",
  ].join("\n");
  const mdPath = join(dir, "report.md");
  writeFileAtomic(mdPath, md);
  const tableHtml =
    "<table><thead><tr>" +
    ["method", "ROUGE-L", "exact match"].map((h) => `<th>${h}</th>`).join("") +
    "</tr></thead><tbody>" +
    input.rows.map((r) => `<tr><td>${escapeHtml(r.method)}</td><td>${r.rougeL.toFixed(2)}</td><td>${r.exact_match.toFixed(2)}</td></tr>`).join("") +
    "</tbody></table>";
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(input.title)}</title>
<style>body{font-family:DejaVu Sans,Arial,sans-serif;max-width:980px;margin:2em auto;color:#222}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}</style></head><body>
<h1>${escapeHtml(input.title)}</h1>
${input.hideRowsTable ? "" : tableHtml}
${(input.sections ?? []).map((s) => `<h2>${escapeHtml(s.title)}</h2>\n${markdownTableToHtml(s.markdown)}${s.note ? `<p><small>${escapeHtml(s.note)}</small></p>` : ""}`).join("\n")}
${facts.length ? `<ul>${Object.entries(input.facts ?? {}).map(([k, v]) => `<li>${escapeHtml(k)}: ${escapeHtml(String(v))}</li>`).join("")}</ul>` : ""}
${(input.notes ?? []).map((n) => `<p><em>${escapeHtml(n)}</em></p>`).join("\n")}
${charts.map((c) => `<figure>${c.svg}</figure>`).join("\n")}
</body></html>
`;
  const htmlPath = join(dir, "report.html");
  writeFileAtomic(htmlPath, html);
  return { markdown: mdPath, html: htmlPath, pngs };
}
