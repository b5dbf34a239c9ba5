// `npm run bench -- hypergrad [--json] [--quick] [--repeats N] [--shape tiny|small|all]`: the cost of DIO's
// hypergradients, measured side by side in one native call per model (addon.dioBenchHypergrad,
// native/core/train/dio.cpp bench_hypergrad) on the DIO problem (theta = all model parameters, phi = per-task soft
// prompts): one plain training step (forward + backward), one gradient (autograd::grad w.r.t. theta), one
// Hessian-vector product (double backward with its own forward), one hypergradient for each method and K in
// {1, 3, 10}, and full DIO steps (inner AdamW update + outer update) against a plain inner step. Every case runs
// once to warm up, then `repeats` (>= 5) rounds, and more (up to 4x) until adding a round moves no median ratio by
// more than 3%, in each of which every case runs once, interleaved, so that the load of
// other processes falls on all of them alike; ratios are taken within a round (side by side) and reported as
// min / median / max over the rounds. Two models: T5 "tiny" (the bench model) and a t5-small-shaped one (d_model
// 512, 6 + 6 layers, vocab 32128), where compute dominates. Also printed: the thread settings and the machine's
// float32 matmul rate at the start, so that runs on different machines can be compared.
// Targets: HVP <= 2 gradients; neumann:K and cg:K <= (1 + 1.5 K) training steps; a DIO step with
// neumann:1 <= 2.5 plain steps; implicit peak memory flat in K.
// --json prints one JSON object on one line: {bench, shapes: [{shape, parameters, settings (threads, load, env), matmul_gflops, stable,
// cases: {name: {seconds, ratio_to_train_step, ratio_to_grad, [ratio_to_dio_step,] peak_bytes, hvp_count, grad_count,
// iterations, negative_curvature}}}]}, each ratio / seconds entry as {min, median, max, runs}.
import { loadAddon } from "../src/native/binding.js";
import type { DioBenchCase, DioBenchOptions, DioBenchResult } from "../src/native/types.js";
import { fmtSettings, fmtStat, stat, threadSettings, type Stat } from "./_stats.js";

type Shape = Omit<DioBenchOptions, "specs" | "dioSpecs"> & { name: string; specs: string[]; dioSpecs: string[] };

function shapes(quick: boolean, repeats: number): Record<string, Shape> {
  const all = (ks: number[]) => [...ks.map((k) => `unroll:${k}`), ...ks.map((k) => `neumann:${k}`), ...ks.map((k) => `cg:${k}`), "fd", "sama"];
  return {
    tiny: quick
      ? { name: "tiny", config: "tiny", vocabSize: 256, batch: 4, sourceLength: 32, targetLength: 8, promptLength: 4, repeats, specs: all([1, 3]), dioSpecs: ["neumann:1", "sama"] }
      : { name: "tiny", config: "tiny", vocabSize: 2048, batch: 8, sourceLength: 64, targetLength: 16, promptLength: 8, repeats, specs: all([1, 3, 10]), dioSpecs: ["neumann:1", "sama"] },
    small: quick
      ? { name: "t5-small-shaped", config: "small", vocabSize: 32128, batch: 2, sourceLength: 32, targetLength: 8, promptLength: 4, repeats, specs: ["neumann:1", "sama"], dioSpecs: ["neumann:1"] }
      : { name: "t5-small-shaped", config: "small", vocabSize: 32128, batch: 4, sourceLength: 64, targetLength: 16, promptLength: 8, repeats, specs: ["unroll:1", "neumann:1", "neumann:3", "cg:3", "fd", "sama"], dioSpecs: ["neumann:1", "sama"] },
  };
}

function summarise(r: DioBenchResult): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  const plain = r.cases["dio_step"];
  for (const [name, c] of Object.entries(r.cases)) {
    const e: Record<string, unknown> = {
      seconds: stat(c.seconds),
      ratio_to_train_step: stat(c.ratio_to_train_step),
      ratio_to_grad: stat(c.ratio_to_grad),
      peak_bytes: c.peak_bytes,
      hvp_count: c.hvp_count,
      grad_count: c.grad_count,
      iterations: c.iterations,
      negative_curvature: c.negative_curvature,
    };
    if (plain && name.startsWith("dio_")) e.ratio_to_dio_step = stat(c.seconds.map((s, i) => s / plain.seconds[i]));
    out[name] = e;
  }
  return out;
}

const fmt = (s: Stat, d = 2) => fmtStat(s, d);

function table(shape: Shape, r: DioBenchResult): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const c = r.cases;
  const ts = stat(c.train_step.seconds);
  const lines = [
    `hypergrad bench: T5 ${shape.name} (vocab ${shape.vocabSize}, ${r.parameters} parameters), batch ${shape.batch} x ${shape.sourceLength} -> ${shape.targetLength}, ${shape.promptLength} soft tokens`,
    `${fmtSettings(threadSettings(r.threads, { interopThreads: r.interop_threads }))}`,
    `matmul ${r.matmul_gflops.toFixed(1)} GFLOP/s (float32 512^3); ${c.train_step.seconds.length} interleaved rounds after a warm-up (at least ${shape.repeats}, more until every median ratio moved < 3%: ${r.stable ? "settled" : "not settled"}); min / median / max`,
    `train step (fwd+bwd) ${fmt(ts, 4)} s, peak +${mib(c.train_step.peak_bytes)} MiB`,
    `gradient            ${fmt(stat(c.grad.ratio_to_train_step))} x train step`,
    `HVP                 ${fmt(stat(c.hvp.ratio_to_grad))} x gradient (target <= 2; forward + create-graph backward + double backward), peak +${mib(c.hvp.peak_bytes)} MiB`,
    `HVP on a kept graph ${fmt(stat(c.hvp_on_graph.ratio_to_grad))} x gradient (the marginal cost of one more Neumann / CG term)`,
    "",
    `${"case".padEnd(22)} ${"x train step (min / med / max)".padEnd(32)} ${"target".padEnd(9)} ${"peak MiB".padStart(8)}  HVPs grads iters`,
  ];
  const plain = c["dio_step"];
  for (const [name, m] of Object.entries(c) as [string, DioBenchCase][]) {
    if (name === "train_step" || name === "grad" || name === "hvp" || name === "hvp_on_graph") continue;
    const k = Number(name.split(":")[1] ?? "1");
    let target = name.startsWith("neumann") || name.startsWith("cg") ? `<= ${(1 + 1.5 * k).toFixed(1)}` : "";
    let extra = "";
    if (plain && name.startsWith("dio_outer:")) {
      extra = `  = ${fmt(stat(m.seconds.map((s, i) => s / plain.seconds[i])))} x plain DIO step`;
      if (name === "dio_outer:neumann:1") target = "<= 2.5 pl";
    }
    lines.push(
      `${name.padEnd(22)} ${fmt(stat(m.ratio_to_train_step)).padEnd(32)} ${target.padEnd(9)} ${mib(m.peak_bytes).padStart(8)}  ${String(m.hvp_count).padStart(4)} ${String(m.grad_count).padStart(5)} ${String(m.iterations).padStart(5)}${m.negative_curvature ? " (cg stopped: negative curvature)" : ""}${extra}`,
    );
  }
  return lines.join("\n");
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const at = (flag: string) => (args.indexOf(flag) >= 0 ? args[args.indexOf(flag) + 1] : undefined);
  const repeats = Number(at("--repeats") ?? (quick ? 2 : 5));
  if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError(`--repeats: expected an integer >= 1, got ${at("--repeats")}`);
  const which = at("--shape") ?? "all";
  const all = shapes(quick, repeats);
  if (which !== "all" && !(which in all)) throw new RangeError(`--shape: expected tiny, small or all, got '${which}'`);
  const chosen = which === "all" ? Object.values(all) : [all[which]];
  const addon = loadAddon();
  const results: Record<string, unknown>[] = [];
  for (const shape of chosen) {
    const { name, ...opts } = shape;
    const r = await addon.dioBenchHypergrad({ ...opts, maxRepeats: 4 * repeats, seed: 0 });
    if (json) results.push({ shape, parameters: r.parameters, settings: threadSettings(r.threads, { interopThreads: r.interop_threads }), matmul_gflops: r.matmul_gflops, stable: r.stable, cases: summarise(r) });
    else process.stdout.write(table({ name, ...opts }, r) + "\n\n");
  }
  if (json) process.stdout.write(JSON.stringify({ bench: "hypergrad", shapes: results }) + "\n");
}
