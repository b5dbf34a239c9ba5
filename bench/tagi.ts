// TAGI costs, measured side by side in one run on a small random T5 with the embedded suite's tokenizer:
//   (a) adapter generation (instruction encoding + one hypernetwork pass, timed natively by writeAdapter)
//       against one forward pass of the base model on one example (evalLoss, B = 1);
//   (b) inference with the generated adapter merged into the weights, against the base model (same shapes:
//       expected ratio 1.0) and against the base model reading the instruction in its input (what TAGI saves),
//       per example, for N = 1, 8, 32 examples of one task (one forward pass over the N examples; the TAGI
//       column also pays one adapter generation per task, amortized over the N examples);
//   (c) TAGI's batched per-example LoRA (one generate call, each row its own task's adapter) against a loop of
//       B = 1 calls over the same rows.
// Timings are medians of interleaved repetitions.
//   npm run bench -- tagi [--json] [--d-model 128] [--layers 2] [--seconds 1]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeTkInstruct, loadSplitTasks } from "../src/data/index.js";
import { writeSuite } from "../src/data/suite.js";
import { T5Model, makeBatch } from "../src/model/model.js";
import { loadTokenizer } from "../src/model/tokenizer.js";
import { loadAddon } from "../src/native/binding.js";
import { collateTagi, Tagi, tagiExamples, type TagiDataOptions, type TagiExample } from "../src/tagi/tagi.js";

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Runs every function once (warm-up), then round-robin until `seconds` have passed (at least `minReps` rounds). */
async function interleaved(fns: (() => Promise<number | void>)[], seconds: number, minReps = 3): Promise<number[]> {
  for (const f of fns) await f();
  const times: number[][] = fns.map(() => []);
  const t0 = performance.now();
  let reps = 0;
  while (reps < minReps || (performance.now() - t0) / 1000 < seconds) {
    for (let i = 0; i < fns.length; i++) {
      const s = performance.now();
      const own = await fns[i]();
      times[i].push(typeof own === "number" ? own * 1000 : performance.now() - s);
    }
    reps++;
    if (reps >= 200) break;
  }
  return times.map(median); // ms
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const dModel = Number(flag(args, "--d-model") ?? 128);
  const layers = Number(flag(args, "--layers") ?? 2);
  const seconds = Number(flag(args, "--seconds") ?? 1);
  const rank = 8;
  const log = (s: string) => {
    if (!json) process.stdout.write(s);
  };
  const tStart = performance.now();
  const tmp = mkdtempSync(join(tmpdir(), "instill-bench-tagi-"));
  const result: Record<string, unknown> = {};
  try {
    const suiteDir = join(tmp, "suite");
    writeSuite(suiteDir, 42, { instancesPerTask: 32 });
    const tok = loadTokenizer(suiteDir);
    const cfg = {
      d_model: dModel,
      d_kv: dModel / 4,
      d_ff: 4 * dModel,
      num_heads: 4,
      num_layers: layers,
      num_decoder_layers: layers,
      feed_forward_proj: "relu",
      vocab_size: tok.vocabSize,
      pad_token_id: tok.padId,
      eos_token_id: tok.eosId,
      decoder_start_token_id: tok.padId,
    };
    const modelDir = join(tmp, "model");
    const init = await T5Model.init(cfg as never, { seed: 1 });
    await init.save(modelDir);
    init.dispose();

    const data: TagiDataOptions = { maxSourceLength: 256, maxTargetLength: 32, maxInstructionLength: 128 };
    const split = loadSplitTasks({ dataDir: suiteDir, split: "default", maxTrainInstances: 32, maxEvalInstances: 32, seed: 1 });
    const tasks = split.train.slice(0, 8);
    // teacherIndex only makes tagiExamples also encode the input with the definition (teacherSrc).
    const exs = tagiExamples(tasks, tok, data, { seed: 1, training: false, teacherIndex: () => 0 });
    const byTask = new Map<string, TagiExample[]>();
    for (const e of exs) byTask.set(e.task, [...(byTask.get(e.task) ?? []), e]);
    const first = [...byTask.values()].find((v) => v.length >= 32)!;
    // Tk-Instruct's usual prompt (definition + 2 positive examples), the longer instruction-in-input baseline.
    const firstTask = tasks.find((t) => t.name === first[0].task)!;
    const withPos = firstTask.instances.map((inst) => {
      const text = encodeTkInstruct(
        firstTask,
        inst,
        { addTaskName: false, addDefinition: true, numPositiveExamples: 2, numNegativeExamples: 0, addExplanation: false, maxSourceLength: data.maxSourceLength },
        (t) => tok.countTokens(t),
      );
      const ids = tok.encode(text, { addEos: true });
      return ids.length > data.maxSourceLength ? [...ids.slice(0, data.maxSourceLength - 1), tok.eosId] : ids;
    });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const lens = {
      instruction: first[0].instr.length,
      input: mean(first.map((e) => e.src.length)),
      inputWithInstruction: mean(first.map((e) => e.teacherSrc!.length)),
      inputWithInstructionAnd2Positive: mean(withPos.slice(0, 32).map((r) => r.length)),
      target: mean(first.map((e) => e.tgt.length)),
    };
    const threads = loadAddon().getThreads();
    log(`T5 d_model ${dModel}, ${layers}+${layers} layers, vocab ${tok.vocabSize}; LoRA r ${rank} on q,v; threads ${threads}\n`);
    log(
      `task ${first[0].task}: instruction ${lens.instruction} tokens, input ${lens.input.toFixed(1)} (${lens.inputWithInstruction.toFixed(1)} with the definition, ${lens.inputWithInstructionAnd2Positive.toFixed(1)} with definition + 2 positive examples), target ${lens.target.toFixed(1)}\n\n`,
    );
    result.setup = { dModel, layers, vocab: tok.vocabSize, rank, threads, task: first[0].task, lengths: lens };

    // initStd 0.5 (default 1e-7) so the untrained hypernetwork's adapter visibly changes the model.
    // Fusion off: the generated adapter is then everything TAGI changes, so the merged model is exact TAGI.
    const tagi = await Tagi.load(modelDir, { hypernet: { rank, alpha: 2 * rank, targetModules: ["q", "v"], fusion: false, initStd: 0.5 }, seed: 1 });
    const base = await T5Model.load(modelDir);
    const merged = await T5Model.load(modelDir);
    try {
      const instr = first[0].instr;
      const adapterDir = join(tmp, "adapter");
      const writeAdapter = async () => (await tagi.writeAdapterIds(instr, adapterDir)).seconds;
      await writeAdapter();
      await merged.loadAdapter(adapterDir);
      merged.mergeLora();

      // (a)
      const one = makeBatch([first[0].src], [first[0].tgt], tok.padId);
      const [genMs, writeMs, fwdMs] = await interleaved(
        [writeAdapter, async () => void (await tagi.writeAdapterIds(instr, adapterDir)), async () => void (await base.evalLoss([one]))],
        seconds,
      );
      log(`(a) adapter generation (instruction encoding + hypernetwork, native timer): ${genMs.toFixed(3)} ms\n`);
      log(`    writeAdapter call incl. PEFT file write (wall): ${writeMs.toFixed(3)} ms\n`);
      log(`    base forward pass, 1 example (evalLoss, wall): ${fwdMs.toFixed(3)} ms\n`);
      log(`    generation / forward = ${(genMs / fwdMs).toFixed(2)}x\n\n`);
      result.a = { generationMs: genMs, writeAdapterMs: writeMs, baseForwardMs: fwdMs, ratio: genMs / fwdMs };

      // (b)
      log(`(b) forward pass per example (ms), N examples of one task in one batch; instr-in = definition in the input,\n`);
      log(`    +2pos = definition + 2 positive examples in the input; TAGI = merged + one generation per task / N\n`);
      log(`${"N".padStart(4)} ${"base".padStart(8)} ${"merged".padStart(8)} ${"instr-in".padStart(8)} ${"+2pos".padStart(8)} ${"TAGI".padStart(8)}  merged/base  TAGI/instr-in  TAGI/+2pos\n`);
      const rowsB: Record<string, number>[] = [];
      for (const n of [1, 8, 32]) {
        const sel = first.slice(0, n);
        const plain = makeBatch(sel.map((e) => e.src), sel.map((e) => e.tgt), tok.padId);
        const withInstr = makeBatch(sel.map((e) => e.teacherSrc!), sel.map((e) => e.tgt), tok.padId);
        const withTwo = makeBatch(withPos.slice(0, n), sel.map((e) => e.tgt), tok.padId);
        const [b, m, w, w2] = await interleaved(
          [
            async () => void (await base.evalLoss([plain])),
            async () => void (await merged.evalLoss([plain])),
            async () => void (await base.evalLoss([withInstr])),
            async () => void (await base.evalLoss([withTwo])),
          ],
          seconds,
        );
        const tagiPer = (genMs + m) / n; // one generation per task, amortized, then the merged model
        const row = { n, baseMs: b / n, mergedMs: m / n, instructionInInputMs: w / n, tagiMs: tagiPer, mergedOverBase: m / b, tagiOverInstructionInInput: tagiPer / (w / n), instructionAnd2PositiveMs: w2 / n, tagiOverInstructionAnd2Positive: tagiPer / (w2 / n) };
        rowsB.push(row);
        log(
          `${String(n).padStart(4)} ${(b / n).toFixed(3).padStart(8)} ${(m / n).toFixed(3).padStart(8)} ${(w / n).toFixed(3).padStart(8)} ${(w2 / n).toFixed(3).padStart(8)} ${tagiPer.toFixed(3).padStart(8)}  ${(m / b).toFixed(2).padStart(11)}  ${(tagiPer / (w / n)).toFixed(2).padStart(13)}  ${(tagiPer / (w2 / n)).toFixed(2).padStart(10)}\n`,
        );
      }
      // Checks: the adapter changes the model, and the merged model decodes as TAGI's on-the-fly LoRA (fusion off).
      const lb = (await base.evalLoss([one]))[0];
      const lm = (await merged.evalLoss([one]))[0];
      const eight = first.slice(0, 8).map((e) => ({ ...e, teacher: -1, teacherSrc: undefined }));
      const viaTagi = await tagi.generate(collateTagi(eight, tok.padId, false), { maxNewTokens: 8 });
      const viaMerged = await merged.generate(makeBatch(eight.map((e) => e.src), undefined, tok.padId), { maxNewTokens: 8 });
      const viaBase = await base.generate(makeBatch(eight.map((e) => e.src), undefined, tok.padId), { maxNewTokens: 8 });
      const agree = viaTagi.filter((r, i) => JSON.stringify(r) === JSON.stringify(viaMerged[i])).length;
      const changed = viaMerged.filter((r, i) => JSON.stringify(r) !== JSON.stringify(viaBase[i])).length;
      log(`    checks: loss on one example base ${lb.toFixed(4)}, merged ${lm.toFixed(4)}; merged-model greedy outputs = TAGI's in ${agree}/8 rows`);
      log(` (differ from the base model's in ${changed}/8)\n\n`);
      result.b = { rows: rowsB, lossBase: lb, lossMerged: lm, mergedAgreesWithTagi: agree, mergedDiffersFromBase: changed, checkedRows: 8 };

      // (c)
      const mixed: TagiExample[] = [];
      for (let i = 0; i < 4; i++) for (const v of byTask.values()) if (v[i]) mixed.push({ ...v[i], teacher: -1, teacherSrc: undefined });
      const rowsC = mixed.slice(0, 32);
      const maxNewTokens = 8;
      const batch = collateTagi(rowsC, tok.padId, false);
      const singles = rowsC.map((e) => collateTagi([e], tok.padId, false));
      let outBatched: number[][] = [];
      let outLoop: number[][] = [];
      const [bMs, lMs] = await interleaved(
        [
          async () => void (outBatched = await tagi.generate(batch, { maxNewTokens })),
          async () => {
            const o: number[][] = [];
            for (const s of singles) o.push(...(await tagi.generate(s, { maxNewTokens })));
            outLoop = o;
          },
        ],
        seconds,
        2,
      );
      const same = outBatched.filter((r, i) => JSON.stringify(r) === JSON.stringify(outLoop[i])).length;
      const tokensB = outBatched.reduce((a, r) => a + r.length, 0);
      const tokensL = outLoop.reduce((a, r) => a + r.length, 0);
      log(`(c) TAGI generate, ${rowsC.length} rows from ${new Set(rowsC.map((e) => e.task)).size} tasks (per-row adapters), greedy, max ${maxNewTokens} new tokens\n`);
      log(`    batched (one call): ${bMs.toFixed(2)} ms; loop of B = 1 calls: ${lMs.toFixed(2)} ms; loop / batched = ${(lMs / bMs).toFixed(2)}x\n`);
      log(`    outputs identical in ${same}/${rowsC.length} rows; tokens ${tokensB} batched, ${tokensL} looped\n`);
      result.c = { rows: rowsC.length, batchedMs: bMs, loopMs: lMs, speedup: lMs / bMs, identicalRows: same, tokensBatched: tokensB, tokensLoop: tokensL };
    } finally {
      tagi.dispose();
      base.dispose();
      merged.dispose();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  result.seconds = (performance.now() - tStart) / 1000;
  if (json) process.stdout.write(JSON.stringify(result) + "\n");
  else log(`\ntotal ${(result.seconds as number).toFixed(1)} s\n`);
}
