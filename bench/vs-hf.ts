// `npm run bench -- vs-hf [--json] [--quick] [--rounds N] [--threads 1,2] [--configs fair,tcmalloc,default]
//                         [--modes train,generate] [--presets tiny,small] [--bf16]`
//
// instill against Hugging Face's T5 (PyTorch eager on the same LibTorch 1.13 and OpenBLAS; the anchor in
// ../shared/anchors/hf-t5, needs Debian's python3-torch) on the same shapes: training steps (AdamW, clip 1.0,
// dropout 0) and greedy generation with the KV cache. Each side runs in its own child process (instill:
// bench/_vs_hf_worker.ts, HF: hf_t5_bench.py) with exactly the same environment, alternating A B B A ... within
// one invocation so that the load of the machine hits both alike; each child warms up and times >= 5 steps. The
// ratio HF ms / instill ms (> 1: instill is faster) is taken per round from the two medians and reported as
// min / median / max over the rounds.
//
// Settings rows (--configs):
//   fair      both under OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, OMP_WAIT_POLICY=PASSIVE, n intra-op threads
//   tcmalloc  fair + LD_PRELOAD of libtcmalloc_minimal.so.4 for both (skipped when the library is absent)
//   default   each as a user runs it: the bench's own environment, n intra-op threads (torch.set_num_threads /
//             instill --threads), nothing else set
// --bf16 adds rows with instill training under --precision bf16 against HF float32.
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadAddon } from "../src/native/binding.js";
import { fmtSettings, fmtStat, stat, threadSettings, type Stat } from "./_stats.js";

const here = dirname(fileURLToPath(import.meta.url));
// The environment as the user started the bench, before loading the addon here (which sets OMP_WAIT_POLICY).
const launchEnv: NodeJS.ProcessEnv = { ...process.env };
const PYTHON = "/usr/bin/python3";
const TCMALLOC = ["/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4"];

interface Job {
  mode: "train" | "generate";
  preset: "tiny" | "small";
  shapes: string[];
  precision: "float32" | "bf16";
}

interface Line {
  impl: string;
  mode: string;
  preset: string;
  batch: number;
  source: number;
  target: number;
  median_ms: number;
  steps_ms: number[];
  sys_share: number;
  generated_tokens_max_row?: number;
  last_loss?: number;
}

export interface VsHfRow {
  config: string;
  threads: number;
  mode: string;
  preset: string;
  shape: string;
  precision: string;
  instillMs: Stat;
  hfMs: Stat;
  ratio: Stat;
  instillSysShare: number;
  hfSysShare: number;
  note?: string;
}

function listArg(args: string[], name: string, dflt: string): string[] {
  const i = args.indexOf(name);
  return (i >= 0 && i + 1 < args.length ? args[i + 1] : dflt).split(",").filter(Boolean);
}

function numArg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`vs-hf: ${name} must be a positive integer, got '${args[i + 1]}'`);
  return v;
}

function runChild(cmd: string, argv: string[], env: NodeJS.ProcessEnv): Promise<Line[]> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    p.on("error", rej);
    p.on("close", (code) => {
      if (code !== 0) return rej(new Error(`vs-hf: ${cmd} ${argv.join(" ")} exited with ${code}:\n${err.slice(-2000)}`));
      try {
        res(out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line));
      } catch (e) {
        rej(new Error(`vs-hf: unreadable output of ${cmd}: ${(e as Error).message}\n${out.slice(-1000)}`));
      }
    });
  });
}

/** The environment of one settings row, for both programs. */
function rowEnv(config: string, threads: number, tcmalloc: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...launchEnv };
  if (config === "default") return env;
  for (const k of Object.keys(env)) if (/^(OMP_|GOMP_|OPENBLAS_|KMP_)/.test(k) || k === "LD_PRELOAD") delete env[k];
  env.OMP_NUM_THREADS = String(threads);
  env.OPENBLAS_NUM_THREADS = String(threads);
  env.OMP_WAIT_POLICY = "PASSIVE";
  if (config === "tcmalloc" && tcmalloc) env.LD_PRELOAD = tcmalloc;
  return env;
}

export async function run(args: string[]): Promise<void> {
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const log = (s: string) => {
    if (!json) process.stdout.write(s + "\n");
  };
  const anchor = resolve(process.env.HF_T5_ANCHOR ?? join(here, "..", "..", "..", "shared", "anchors", "hf-t5"));
  const skip = (why: string) => {
    if (json) process.stdout.write(JSON.stringify({ skipped: why }) + "\n");
    else process.stdout.write(`vs-hf: skipped: ${why}\n`);
  };
  if (!existsSync(join(anchor, "hf_t5_bench.py"))) return skip(`the HF anchor is absent (${anchor}; set HF_T5_ANCHOR)`);
  const probe = spawnSync(PYTHON, ["-c", "import torch; print(torch.__version__)"], { encoding: "utf8" });
  if (probe.status !== 0) return skip(`${PYTHON} cannot import torch: install Debian's python3-torch (apt-get install -y python3-torch)`);
  const worker = join(here, "_vs_hf_worker.js");
  if (!existsSync(worker)) throw new Error(`vs-hf: ${worker} is missing: run npm run build:ts`);

  const rounds = numArg(args, "--rounds", quick ? 1 : 3);
  const steps = quick ? 5 : numArg(args, "--steps", 5);
  const threadsList = listArg(args, "--threads", "2").map(Number);
  const tcmalloc = TCMALLOC.find((p) => existsSync(p));
  const configs = listArg(args, "--configs", "fair").filter((c) => {
    if (!["fair", "tcmalloc", "default"].includes(c)) throw new TypeError(`vs-hf: unknown config '${c}' (fair, tcmalloc, default)`);
    if (c === "tcmalloc" && !tcmalloc) {
      log("vs-hf: tcmalloc row skipped: libtcmalloc_minimal.so.4 is absent (apt-get install -y libtcmalloc-minimal4)");
      return false;
    }
    return true;
  });
  const modes = listArg(args, "--modes", "train,generate") as Job["mode"][];
  const presets = listArg(args, "--presets", "tiny,small") as Job["preset"][];
  const shapes: Record<string, Record<string, string[]>> = {
    train: { tiny: quick ? ["8x64x16"] : ["8x64x16", "32x64x16"], small: quick ? ["4x128x32"] : ["4x128x32", "8x256x64"] },
    generate: { tiny: ["8x64"], small: ["4x64"] },
  };
  const jobs: Job[] = [];
  for (const mode of modes)
    for (const preset of presets) {
      jobs.push({ mode, preset, shapes: shapes[mode][preset], precision: "float32" });
      if (mode === "train" && args.includes("--bf16")) jobs.push({ mode, preset, shapes: shapes[mode][preset], precision: "bf16" });
    }

  const addon = loadAddon();
  const mm = await addon.matmulBench({ n: 1024, seconds: quick ? 0.5 : 2 });
  log(`vs-hf: HF T5 (PyTorch ${probe.stdout.trim()} eager, ${anchor}) vs instill, separate processes alternating, ${rounds} round(s), ${steps} timed steps each`);
  log(`matmul 1024^3 float32 (instill, this process): ${mm.gflops.toFixed(1)} GFLOP/s; ${fmtSettings(threadSettings(addon.getThreads()))}`);
  const rows: VsHfRow[] = [];
  for (const config of configs)
    for (const threads of threadsList) {
      const env = rowEnv(config, threads, tcmalloc);
      log(`[${config}, ${threads} thread(s)] ${config === "default" ? "environment as given" : fmtSettings({ OMP_NUM_THREADS: env.OMP_NUM_THREADS, OPENBLAS_NUM_THREADS: env.OPENBLAS_NUM_THREADS, OMP_WAIT_POLICY: env.OMP_WAIT_POLICY, LD_PRELOAD: env.LD_PRELOAD ?? null })}`);
      for (const job of jobs) {
        const common = ["--preset", job.preset, "--shapes", job.shapes.join(","), "--mode", job.mode, "--steps", String(steps), "--warmup", "1", "--threads", String(threads), "--new-tokens", "32"];
        const hfArgs = [join(anchor, "hf_t5_bench.py"), "--hf-dir", join(anchor, "hf_t5"), ...common];
        const inArgs = [worker, ...common, "--precision", job.precision];
        const per: { instill: Line[]; hf: Line[] }[] = [];
        for (let r = 0; r < rounds; r++) {
          const order = r % 2 === 0 ? ["instill", "hf"] : ["hf", "instill"];
          const got: Record<string, Line[]> = {};
          for (const who of order) got[who] = who === "hf" ? await runChild(PYTHON, hfArgs, env) : await runChild(process.execPath, inArgs, env);
          per.push({ instill: got.instill, hf: got.hf });
        }
        job.shapes.forEach((shape, si) => {
          const ins = per.map((p) => p.instill[si]), hfs = per.map((p) => p.hf[si]);
          const row: VsHfRow = {
            config, threads, mode: job.mode, preset: job.preset, shape, precision: job.precision,
            instillMs: stat(ins.map((l) => l.median_ms)),
            hfMs: stat(hfs.map((l) => l.median_ms)),
            ratio: stat(per.map((_, r) => hfs[r].median_ms / ins[r].median_ms)),
            instillSysShare: stat(ins.map((l) => l.sys_share)).median,
            hfSysShare: stat(hfs.map((l) => l.sys_share)).median,
          };
          if (job.mode === "generate" && ins[0].generated_tokens_max_row !== hfs[0].generated_tokens_max_row)
            row.note = `generated lengths differ: instill ${ins[0].generated_tokens_max_row}, HF ${hfs[0].generated_tokens_max_row}`;
          rows.push(row);
          const what = job.mode === "train" ? `train${job.precision === "bf16" ? " (instill bf16)" : ""}` : "generate 32";
          log(
            `  ${what} ${job.preset} ${shape}: instill ${row.instillMs.median.toFixed(1)} ms (sys ${(row.instillSysShare * 100).toFixed(0)}%), ` +
              `HF ${row.hfMs.median.toFixed(1)} ms (sys ${(row.hfSysShare * 100).toFixed(0)}%); HF/instill ${fmtStat(row.ratio)} (min/median/max)` +
              (row.note ? `; ${row.note}` : ""),
          );
        });
      }
    }
  if (json)
    process.stdout.write(
      JSON.stringify({ matmulGflops: mm.gflops, rounds, steps, settings: threadSettings(addon.getThreads()), rows }) + "\n",
    );
}
