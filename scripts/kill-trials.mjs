#!/usr/bin/env node
// Kill trials (issue 18, README "Reliability"): `instill launch --nproc 2 -- train ...` with one worker killed by
// SIGKILL at a random moment (a random rank, after a random number of logged steps plus a random delay, so some
// kills land inside a checkpoint write), repeated N times. Each trial checks:
//   - no hung survivor: the launcher and every worker are gone within --deadline seconds of the kill;
//   - no corrupt checkpoint: every checkpoints/step-N folder that exists loads (weights + training state, via the
//     built dist/ and the addon) and its trainer_state.json says step N;
//   - --resume in one process finishes the run, and leaves no temporary folder.
// Prints one JSON line per trial and a summary line; exits 1 if any trial failed.
// Usage: node scripts/kill-trials.mjs [--trials 20] [--seed 1] [--steps 12] [--deadline 60] [--keep DIR]
// Needs `npm run build:ts` (dist/) and the addon.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const cli = join(repo, "bin", "instill.js");
const { T5Model } = await import(join(repo, "dist", "src", "model", "model.js"));

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const trials = Number(arg("trials", 20));
const steps = Number(arg("steps", 12));
const deadlineMs = Number(arg("deadline", 60)) * 1000;
let seed = Number(arg("seed", 1)) >>> 0;
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const root = arg("keep") ?? mkdtempSync(join(tmpdir(), "instill-kill-"));
const env = { ...process.env, INSTILL_THREADS: "1" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cliSync(args) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env, timeout: 600_000 });
  if (r.status !== 0) throw new Error(`instill ${args.join(" ")} failed (${r.status} ${r.signal}): ${r.stderr}`);
  return r;
}

// Setup: the embedded suite and a 1+1-layer d_model 32 T5 (as test/helpers/tiny.ts).
const data = join(root, "data");
const model = join(root, "model");
if (!existsSync(join(model, "config.json"))) {
  cliSync(["data", "synth", "--out", data, "--seed", "5"]);
  const cfg = { d_model: 32, d_kv: 8, d_ff: 64, num_heads: 4, num_layers: 1, num_decoder_layers: 1, relative_attention_num_buckets: 8, relative_attention_max_distance: 32, layer_norm_epsilon: 1e-6, feed_forward_proj: "gated-gelu", tie_word_embeddings: true, pad_token_id: 0, eos_token_id: 1, decoder_start_token_id: 0, dropout_rate: 0 };
  writeFileSync(join(root, "config.json"), JSON.stringify(cfg));
  cliSync(["model", "init", "--config", join(root, "config.json"), "--tokenizer", data, "--out", model, "--seed", "1"]);
}
const trainArgs = (out) => ["train", "--model", model, "--data", data, "--out", out, "--steps", String(steps), "--checkpoint-every", "2", "--steps-per-call", "1", "--keep-checkpoints", "3", "--max-train-instances", "3", "--max-source-length", "64", "--max-target-length", "12", "--batch-size", "4", "--set", "logEvery=1", "-q"];

function children(pid) {
  const out = [];
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const c = readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      if (c) out.push(...c.split(/\s+/).map(Number));
    }
  } catch {
    /* gone */
  }
  return out;
}
function rankOf(pid) {
  try {
    const e = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").find((x) => x.startsWith("RANK="));
    return e ? Number(e.slice(5)) : -1;
  } catch {
    return -1;
  }
}
const alive = (pid) => {
  try {
    process.kill(pid, 0);
    const st = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(st); // a zombie has exited
  } catch {
    return false;
  }
};
const loggedSteps = (out) => {
  const p = join(out, "metrics.jsonl");
  if (!existsSync(p)) return 0;
  return readFileSync(p, "utf8").split("\n").filter((l) => /"step":\d+/.test(l) && /"loss"/.test(l)).length;
};

async function checkCheckpoints(out) {
  const ckRoot = join(out, "checkpoints");
  if (!existsSync(ckRoot)) return { checked: 0, corrupt: [] };
  const corrupt = [];
  let checked = 0;
  for (const n of readdirSync(ckRoot).filter((n) => /^step-\d+$/.test(n))) {
    const dir = join(ckRoot, n);
    checked++;
    try {
      const st = JSON.parse(readFileSync(join(dir, "trainer_state.json"), "utf8"));
      if (st.step !== Number(n.slice(5))) throw new Error(`trainer_state.json step ${st.step}`);
      const m = await T5Model.load(join(dir, "model"));
      try {
        m.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: steps });
        await m.loadTrainingState(join(dir, "training_state.safetensors"));
        if (m.step !== st.step) throw new Error(`training state step ${m.step}`);
      } finally {
        m.dispose();
      }
    } catch (e) {
      corrupt.push(`${n}: ${e.message}`);
    }
  }
  return { checked, corrupt };
}

const results = [];
for (let i = 0; i < trials; i++) {
  const out = join(root, `trial-${i}`);
  rmSync(out, { recursive: true, force: true });
  const killAfterSteps = 1 + Math.floor(rand() * (steps - 2)); // 1 .. steps-2 logged steps
  const extraDelayMs = Math.floor(rand() * 400);
  const wantRank = rand() < 0.5 ? 0 : 1;
  const t0 = Date.now();
  const launcher = spawn(process.execPath, [cli, "launch", "--nproc", "2", "--grace", "5", "--", ...trainArgs(out)], { env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  launcher.stderr.on("data", (d) => (stderr = (stderr + d).slice(-4000)));
  launcher.stdout.on("data", () => {});
  let launcherExit = null;
  launcher.on("exit", (code, signal) => (launcherExit = { code, signal, at: Date.now() }));
  const r = { trial: i, killAfterSteps, extraDelayMs, rank: wantRank, ok: false };
  try {
    while (loggedSteps(out) < killAfterSteps && launcherExit === null && Date.now() - t0 < 300_000) await sleep(20);
    await sleep(extraDelayMs);
    const workers = children(launcher.pid).filter(alive);
    const victim = workers.find((p) => rankOf(p) === wantRank);
    if (launcherExit !== null || victim === undefined) {
      r.note = launcherExit !== null ? "run finished before the kill" : "worker not found";
    } else {
      r.stepAtKill = loggedSteps(out);
      process.kill(victim, "SIGKILL");
      const killedAt = Date.now();
      while ((launcherExit === null || workers.some(alive)) && Date.now() - killedAt < deadlineMs) await sleep(20);
      const survivors = workers.filter(alive);
      r.hung = launcherExit === null || survivors.length > 0;
      r.exitMs = Date.now() - killedAt;
      r.launcherCode = launcherExit?.code ?? null;
      r.namesRank = new RegExp(`instill launch: rank ${wantRank} (exited|was killed)`).test(stderr);
      for (const p of survivors) process.kill(p, "SIGKILL");
      if (launcherExit === null) launcher.kill("SIGKILL");
    }
    const ck = await checkCheckpoints(out);
    r.checkpoints = ck.checked;
    r.corrupt = ck.corrupt;
    const res = spawnSync(process.execPath, [cli, ...trainArgs(out), ...(ck.checked > 0 ? ["--resume"] : [])], { encoding: "utf8", env, timeout: 600_000 });
    r.resumed = res.status === 0 && new RegExp(`trained ${steps} steps`).test(res.stdout);
    if (!r.resumed) r.resumeError = res.stderr.slice(-500);
    r.tempLeft = existsSync(join(out, "checkpoints")) ? readdirSync(join(out, "checkpoints")).filter((n) => n.startsWith(".tmp")).length : 0;
    r.ok = !r.hung && ck.corrupt.length === 0 && r.resumed && r.tempLeft === 0 && (r.note !== undefined || (r.launcherCode !== 0 && r.namesRank));
  } catch (e) {
    r.error = e.message;
  }
  console.log(JSON.stringify(r));
  results.push(r);
  if (!arg("keep")) rmSync(out, { recursive: true, force: true });
}
const killed = results.filter((r) => r.stepAtKill !== undefined);
const summary = {
  trials: results.length,
  killed: killed.length,
  killedRank0: killed.filter((r) => r.rank === 0).length,
  killedRank1: killed.filter((r) => r.rank === 1).length,
  hungSurvivors: results.filter((r) => r.hung).length,
  corruptCheckpoints: results.reduce((a, r) => a + (r.corrupt?.length ?? 0), 0),
  checkpointsChecked: results.reduce((a, r) => a + (r.checkpoints ?? 0), 0),
  resumed: results.filter((r) => r.resumed).length,
  maxExitMs: Math.max(0, ...killed.map((r) => r.exitMs ?? 0)),
  failed: results.filter((r) => !r.ok).length,
};
console.log(JSON.stringify({ summary }));
if (!arg("keep")) rmSync(root, { recursive: true, force: true });
process.exit(summary.failed === 0 ? 0 : 1);
