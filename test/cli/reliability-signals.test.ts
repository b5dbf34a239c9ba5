// Reliability (issue 18): Ctrl-C (SIGINT) during the long commands. Each command is started, interrupted once it
// is working (its first log line or progress output), and must exit with 130 within a bounded time, having saved
// what it promises: train / dio train / tagi pretrain write a checkpoint that --resume continues from; eval
// and demo promise nothing and only have to stop (a process ended by SIGINT itself also counts as 130,
// which is what a shell reports for it).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, hasAddon } from "../helpers/native.js";
import { runCli, synthDataAndModel } from "../helpers/tiny.js";

const root = mkdtempSync(join(tmpdir(), "instill-sigint-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let data = "";
let model = "";
beforeAll(() => {
  ({ data, model } = synthDataAndModel(root));
});

interface Interrupted {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** ms from SIGINT to exit */
  stopMs: number;
}

/**
 * Starts `instill <args>`, waits until `ready()` is true (polled every 50 ms; at most `readyMs`), sends SIGINT and
 * waits for the exit (SIGKILL after `stopLimitMs`, which fails the test).
 */
function interrupt(args: string[], ready: (out: { stdout: string; stderr: string }) => boolean, readyMs = 120_000, stopLimitMs = 60_000): Promise<Interrupted> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { env: { ...process.env, INSTILL_THREADS: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    const out = { stdout: "", stderr: "" };
    child.stdout.on("data", (d) => (out.stdout += d));
    child.stderr.on("data", (d) => (out.stderr += d));
    let sentAt = 0;
    const t0 = Date.now();
    let killer: NodeJS.Timeout | undefined;
    const poll = setInterval(() => {
      if (sentAt === 0 && (ready(out) || Date.now() - t0 > readyMs)) {
        if (Date.now() - t0 > readyMs) {
          clearInterval(poll);
          child.kill("SIGKILL");
          reject(new Error(`not ready after ${readyMs} ms: ${out.stderr.slice(-500)}`));
          return;
        }
        sentAt = Date.now();
        child.kill("SIGINT");
        killer = setTimeout(() => child.kill("SIGKILL"), stopLimitMs);
      }
    }, 50);
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      clearTimeout(killer);
      // streams may still hold data: let them drain
      setTimeout(() => resolvePromise({ code, signal, ...out, stopMs: sentAt ? Date.now() - sentAt : -1 }), 50);
    });
  });
}

const exited130 = (r: Interrupted) => r.code === 130 || (r.code === null && r.signal === "SIGINT");
const fileHasLine = (path: string, re: RegExp) => () => existsSync(path) && re.test(readFileSync(path, "utf8"));
const checkpoints = (out: string) => (existsSync(join(out, "checkpoints")) ? readdirSync(join(out, "checkpoints")).filter((n) => /^step-\d+$/.test(n)) : []);

function report(what: string, r: Interrupted): void {
  console.log(`[reliability] Ctrl-C during ${what}: exit ${r.code ?? r.signal} after ${r.stopMs} ms; ${r.stderr.trim().split("\n").pop() ?? ""}`);
}

const trainCommon = ["--max-train-instances", "3", "--max-source-length", "64", "--max-target-length", "12", "--batch-size", "4", "-q"];

describe.skipIf(!hasAddon)("Ctrl-C during long commands (issue 18)", () => {
  it("train: saves a checkpoint, exits 130, --resume finishes the run", async () => {
    const out = join(root, "train");
    const args = ["train", "--model", model, "--data", data, "--out", out, "--steps", "400", "--checkpoint-every", "1000", "--steps-per-call", "1", "--set", "logEvery=1", ...trainCommon];
    const r = await interrupt(args, fileHasLine(join(out, "metrics.jsonl"), /"step":2\b/));
    report("instill train", r);
    expect(r.code, r.stderr).toBe(130);
    expect(r.stderr).toMatch(/interrupted at step \d+; checkpoint saved/);
    const ck = checkpoints(out);
    expect(ck.length).toBe(1);
    const step = Number(ck[0]!.slice(5));
    expect(step).toBeGreaterThanOrEqual(2);
    expect(step).toBeLessThan(400);
    const resumed = runCli([...args.map((a) => (a === "400" ? String(step + 2) : a)), "--resume"]);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`trained ${step + 2} steps`));
  });

  it("dio train: saves a checkpoint, exits 130", async () => {
    const out = join(root, "dio");
    const args = ["dio", "train", "--model", model, "--data", data, "--out", out, "--steps", "400", "--steps-per-call", "1", "--checkpoint-every", "1000", "--batch-size", "4", "--prompt-length", "2", "--max-train-instances", "3", "--max-source-length", "64", "--max-target-length", "12", "--quiet"];
    const r = await interrupt(args, fileHasLine(join(out, "metrics.jsonl"), /"step":\s*2\b/));
    report("instill dio train", r);
    expect(r.code, r.stderr + r.stdout).toBe(130);
    expect(checkpoints(out).length).toBe(1);
  });

  it("tagi pretrain: saves a checkpoint, exits 130", async () => {
    const out = join(root, "tagi");
    const args = ["tagi", "pretrain", "--model", model, "--data", data, "--out", out, "--steps", "400", "--checkpoint-every", "1000", "--batch-size", "4", "--rank", "2", "--max-train-instances", "3", "--quiet"];
    const r = await interrupt(args, fileHasLine(join(out, "metrics.jsonl"), /"step":\s*2\b/));
    report("instill tagi pretrain", r);
    expect(r.code, r.stderr + r.stdout).toBe(130);
    expect(checkpoints(out).length).toBe(1);
  });

  it("eval and demo (before its first training row) stop with 130", async () => {
    const ev = await interrupt(["eval", "--model", model, "--data", data, "--out", join(root, "eval"), "--max-eval-instances", "100", "--max-new-tokens", "32"], (o) => o.stderr.length > 0, 60_000);
    report("instill eval", ev);
    expect(exited130(ev), `${ev.code} ${ev.signal} ${ev.stderr}`).toBe(true);
    const demo = await interrupt(["demo", "--quick", "--out", join(root, "demo")], (o) => o.stderr.length + o.stdout.length > 0, 60_000);
    report("instill demo --quick", demo);
    expect(exited130(demo), `${demo.code} ${demo.signal} ${demo.stderr}`).toBe(true);
  });

  it("demo with its rows on worker processes stops them and exits 130 with a message", async () => {
    const demo = await interrupt(["demo", "--quick", "--jobs", "2", "--out", join(root, "demo-jobs")], (o) => /seed 42: (no-instruction|definition|dio|tagi|insta)/.test(o.stderr));
    report("instill demo --quick --jobs 2 (rows running)", demo);
    expect(demo.code, demo.stderr).toBe(130);
    expect(demo.stderr).toMatch(/demo in .*: interrupted \(Ctrl-C\)/);
    expect(demo.stopMs).toBeLessThan(10_000);
  });
});
