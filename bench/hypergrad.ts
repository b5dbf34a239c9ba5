// `npm run bench -- hypergrad [--json] [--quick]`: the cost of DIO's hypergradients on one small T5 and one batch,
// measured side by side in one native call (addon.dioBenchHypergrad, native/core/train/dio.cpp bench_hypergrad):
// one plain training step (forward + backward), one gradient (autograd::grad w.r.t. theta), one Hessian-vector
// product (double backward, with its own forward), and one hypergradient of the DIO problem (theta = all model
// parameters, phi = per-task soft prompts) for each method and K in {1, 3, 10}, as ratios to the training step,
// with the peak extra memory (counting CPU allocator, bytes above what was live when the call started).
// Targets (issue 8): HVP <= 2x a gradient; neumann:K and cg:K <= (1 + 1.5 K) x a training step; implicit memory
// flat in K.
import { loadAddon } from "../src/native/binding.js";
import type { DioBenchResult } from "../src/native/types.js";

const KS = [1, 3, 10];

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const specs = [...KS.map((k) => `unroll:${k}`), ...KS.map((k) => `neumann:${k}`), ...KS.map((k) => `cg:${k}`), "fd"];
  const shape = quick
    ? { config: "tiny", vocabSize: 256, batch: 4, sourceLength: 32, targetLength: 8, promptLength: 4, repeats: 1 }
    : { config: "tiny", vocabSize: 2048, batch: 8, sourceLength: 64, targetLength: 16, promptLength: 8, repeats: 3 };
  const r: DioBenchResult = await loadAddon().dioBenchHypergrad({ ...shape, specs, seed: 0 });
  if (json) {
    process.stdout.write(JSON.stringify({ shape, ...r }, null, 2) + "\n");
    return;
  }
  const mib = (b: number) => (b / 2 ** 20).toFixed(1);
  const lines = [
    `hypergrad bench: T5 ${shape.config} (vocab ${shape.vocabSize}, ${r.parameters} parameters), batch ${shape.batch} x ${shape.sourceLength} -> ${shape.targetLength}, ${shape.promptLength} soft tokens, median of ${shape.repeats}`,
    `train step (fwd+bwd) ${(r.train_step_s * 1000).toFixed(1)} ms, peak +${mib(r.train_step_peak_bytes)} MiB`,
    `gradient            ${(r.grad_s * 1000).toFixed(1)} ms (${(r.grad_s / r.train_step_s).toFixed(2)}x train step)`,
    `HVP                 ${(r.hvp_s * 1000).toFixed(1)} ms (${(r.hvp_s / r.grad_s).toFixed(2)}x gradient, target <= 2), peak +${mib(r.hvp_peak_bytes)} MiB`,
    "",
    "method       seconds   x train step   target     peak MiB   HVPs  iters",
  ];
  for (const [name, m] of Object.entries(r.methods)) {
    const k = Number(name.split(":")[1] ?? "1");
    const target = name.startsWith("neumann") || name.startsWith("cg") ? `<= ${(1 + 1.5 * k).toFixed(1)}` : "";
    lines.push(
      `${name.padEnd(12)} ${m.seconds.toFixed(4).padStart(7)}   ${m.ratio_to_train_step.toFixed(2).padStart(12)}   ${target.padEnd(8)}   ${mib(m.peak_bytes).padStart(8)}   ${String(m.hvp_count).padStart(4)}  ${String(m.iterations).padStart(5)}${m.negative_curvature ? " (stopped: negative curvature)" : ""}`,
    );
  }
  process.stdout.write(lines.join("\n") + "\n");
}
