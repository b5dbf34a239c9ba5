// Reliability (issue 18): a full disk, a file-size limit and an unwritable folder while `instill train` writes a
// checkpoint and while `instill eval` writes its predictions and report. Each time: the command fails with an
// error naming the path, the previous checkpoint is byte-identical and loads, no half-written or temporary file is
// left, and `--resume` (once the fault is gone) finishes the run.
//   - file-size limit: `ulimit -f` (Node ignores SIGXFSZ, so writes fail with EFBIG); works for any user;
//   - disk full: a small tmpfs (ENOSPC), and a read-only bind mount of the checkpoints folder (EROFS): these need
//     root and mount(8); without them they are skipped with a message (a chmod'ed folder is used for the
//     unwritable case instead when not root).
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { T5Model } from "../../src/model/model.js";
import { cliPath, hasAddon } from "../helpers/native.js";
import { runCli, synthDataAndModel } from "../helpers/tiny.js";

const root = mkdtempSync(join(tmpdir(), "instill-disk-"));
let data = "";
let model = "";
const mounts: string[] = [];
const isRoot = process.getuid?.() === 0;

function sh(cmd: string): { ok: boolean; out: string } {
  const r = spawnSync("bash", ["-c", cmd], { encoding: "utf8" });
  return { ok: r.status === 0, out: (r.stdout ?? "") + (r.stderr ?? "") };
}
/** A tmpfs of `kb` KiB at `dir`, or false when this user cannot mount. */
function mountTmpfs(dir: string, kb: number): boolean {
  mkdirSync(dir, { recursive: true });
  if (!isRoot || !sh(`mount -t tmpfs -o size=${kb}k instill-test "${dir}"`).ok) return false;
  mounts.push(dir);
  return true;
}
afterAll(() => {
  for (const m of mounts.reverse()) sh(`umount "${m}"`);
  rmSync(root, { recursive: true, force: true });
});

beforeAll(() => {
  ({ data, model } = synthDataAndModel(root));
});

const trainArgs = (out: string) => [
  "train", "--model", model, "--data", data, "--out", out, "--steps", "4", "--checkpoint-every", "2", "--steps-per-call", "1",
  "--keep-checkpoints", "3", "--max-train-instances", "3", "--max-source-length", "64", "--max-target-length", "12", "--batch-size", "4", "-q",
];

/** Runs the CLI under `ulimit -f <kb>` (1 KiB blocks). */
function runCliLimited(args: string[], kb: number) {
  return spawnSync("bash", ["-c", `ulimit -f ${kb}; exec "$0" "$@"`, process.execPath, cliPath, ...args], {
    encoding: "utf8",
    timeout: 300_000,
    env: { ...process.env, INSTILL_THREADS: "1" },
  });
}

function walk(dir: string, out: string[] = []): string[] {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, out);
    out.push(p);
  }
  return out;
}
/** Files (relative path -> sha256) under `dir`. */
function snapshot(dir: string): Record<string, string> {
  const o: Record<string, string> = {};
  for (const p of walk(dir)) if (statSync(p).isFile()) o[relative(dir, p)] = createHash("sha256").update(readFileSync(p)).digest("hex");
  return o;
}
/** A JSONL file written whole: it ends with a newline and every line parses. */
function wholeJsonl(path: string): boolean {
  const t = readFileSync(path, "utf8");
  if (t.length > 0 && !t.endsWith("\n")) return false;
  try {
    t.split("\n").filter((l) => l.trim() !== "").forEach((l) => JSON.parse(l));
    return true;
  } catch {
    return false;
  }
}
const leftovers = (dir: string) => walk(dir).filter((p) => /\.tmp/.test(p.slice(dir.length)));

/** A run killed (SIGKILL, test hook) right after checkpoint 2: the starting point of every fault below. */
function runToCheckpoint2(out: string): string {
  const r = runCli(trainArgs(out), { INSTILL_TEST_KILL_AT_STEP: "0:2" });
  expect(r.signal, r.stderr).toBe("SIGKILL");
  const ck2 = join(out, "checkpoints", "step-0000002");
  expect(existsSync(join(ck2, "trainer_state.json"))).toBe(true);
  return ck2;
}

/** What must hold after a failed write: error names a path under `out`, checkpoint 2 intact and loadable, no temporaries. */
async function checkAfterFault(r: { status: number | null; stderr: string }, out: string, ck2: string, before: Record<string, string>, what: RegExp) {
  console.log(`[reliability] disk fault: exit ${r.status}; ${r.stderr.trim().split("\n").pop()}`);
  expect(r.status).not.toBe(0);
  expect(r.status).not.toBeNull(); // an error exit, not a crash
  expect(r.stderr).toContain(out);
  expect(r.stderr).toMatch(what);
  expect(snapshot(ck2)).toEqual(before);
  expect(leftovers(out)).toEqual([]);
  expect(wholeJsonl(join(out, "metrics.jsonl"))).toBe(true);
  const m = await T5Model.load(join(ck2, "model"));
  try {
    m.setOptimizer({ name: "adamw", lr: 1e-3, totalSteps: 4 });
    await m.loadTrainingState(join(ck2, "training_state.safetensors"));
    expect(m.step).toBe(2);
  } finally {
    m.dispose();
  }
}

function resumeFinishes(out: string) {
  const r = runCli([...trainArgs(out), "--resume"]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/trained 4 steps/);
  expect(existsSync(join(out, "checkpoints", "step-0000004", "trainer_state.json"))).toBe(true);
  expect(leftovers(out)).toEqual([]);
}

describe.skipIf(!hasAddon)("disk faults during checkpoint and report writing (issue 18)", () => {
  it("file-size limit (ulimit -f, EFBIG) while writing checkpoint 4", async () => {
    const out = join(root, "efbig");
    const ck2 = runToCheckpoint2(out);
    const before = snapshot(ck2);
    const modelBytes = statSync(join(ck2, "model", "model.safetensors")).size;
    const r = runCliLimited([...trainArgs(out), "--resume"], Math.floor(modelBytes / 2048)); // half the weights file
    await checkAfterFault(r, out, ck2, before, /EFBIG|too large/i);
    resumeFinishes(out);
  });

  it("disk full (tmpfs, ENOSPC) while writing checkpoint 4", async (ctx) => {
    const fs = join(root, "enospc");
    if (!mountTmpfs(fs, 65536)) {
      console.warn("[skip] disk full: needs root and mount -t tmpfs");
      return ctx.skip();
    }
    const out = join(fs, "run");
    const ck2 = runToCheckpoint2(out);
    const before = snapshot(ck2);
    const used = Number(sh(`du -sk "${fs}" | cut -f1`).out.trim());
    const ckKb = Number(sh(`du -sk "${ck2}" | cut -f1`).out.trim());
    expect(sh(`mount -o remount,size=${used + Math.ceil(ckKb / 2)}k "${fs}"`).ok).toBe(true); // room for half a checkpoint
    const r = runCli([...trainArgs(out), "--resume"]);
    await checkAfterFault(r, out, ck2, before, /ENOSPC|no space/i);
    expect(sh(`mount -o remount,size=65536k "${fs}"`).ok).toBe(true);
    resumeFinishes(out);
  });

  it("unwritable checkpoints folder (read-only bind mount or chmod) while writing checkpoint 4", async (ctx) => {
    const out = join(root, "erofs");
    const ck2 = runToCheckpoint2(out);
    const before = snapshot(ck2);
    const ckRoot = join(out, "checkpoints");
    let undo: () => void;
    if (isRoot) {
      if (!sh(`mount --bind "${ckRoot}" "${ckRoot}" && mount -o remount,ro,bind "${ckRoot}"`).ok) {
        console.warn("[skip] read-only folder: root without mount --bind");
        return ctx.skip();
      }
      mounts.push(ckRoot);
      undo = () => {
        expect(sh(`umount "${ckRoot}"`).ok).toBe(true);
        mounts.pop();
      };
    } else {
      chmodSync(ckRoot, 0o555);
      undo = () => chmodSync(ckRoot, 0o755);
    }
    const r = runCli([...trainArgs(out), "--resume"]);
    undo();
    await checkAfterFault(r, out, ck2, before, /EROFS|EACCES|read-only|permission/i);
    resumeFinishes(out);
  });

  it("eval: predictions and report under a file-size limit fail naming the file and leave no partial file", () => {
    const out = join(root, "eval-efbig");
    const r = runCliLimited(["eval", "--model", model, "--data", data, "--out", out, "--max-eval-instances", "2", "--max-new-tokens", "4", "-q"], 1);
    console.log(`[reliability] eval under ulimit -f 1: exit ${r.status}; ${r.stderr.trim().split("\n").pop()}`);
    expect(r.status).not.toBe(0);
    expect(r.status).not.toBeNull();
    expect(r.stderr).toContain(out);
    expect(r.stderr).toMatch(/EFBIG|too large/i);
    expect(leftovers(out)).toEqual([]);
    // whatever was written is whole: predictions.jsonl parses line by line, metrics.json parses
    if (existsSync(join(out, "predictions.jsonl"))) expect(wholeJsonl(join(out, "predictions.jsonl"))).toBe(true);
    if (existsSync(join(out, "metrics.json"))) expect(() => JSON.parse(readFileSync(join(out, "metrics.json"), "utf8"))).not.toThrow();
    const ok = runCli(["eval", "--model", model, "--data", data, "--out", out, "--max-eval-instances", "2", "--max-new-tokens", "4", "-q"]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(readFileSync(join(out, "report.html"), "utf8")).toMatch(/<\/html>\s*$/);
  });
});
