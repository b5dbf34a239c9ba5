// `instill launch`: starts N workers with torchrun's variables (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK,
// LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK), streams their output line by line with a `[rank N] ` prefix, forwards
// SIGINT/SIGTERM, and when one worker fails stops the others (SIGTERM, then SIGKILL after a grace period) and fails
// the job with that rank's error. No worker survives the launcher's result.
import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { availableParallelism } from "node:os";
import { constants as osConstants } from "node:os";
import { createInterface } from "node:readline";

export interface LaunchOptions {
  /** Workers on this node. */
  nproc: number;
  nnodes?: number;
  nodeRank?: number;
  /** Default 127.0.0.1. */
  masterAddr?: string;
  /** Default: a free port on one node; 29500 (torchrun's) with several nodes. */
  masterPort?: number;
  /** argv of each worker: [file, ...args]. */
  command: string[];
  env?: NodeJS.ProcessEnv;
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
  /** Between SIGTERM and SIGKILL when stopping survivors (default 5000 ms). */
  graceMs?: number;
  /** Lines of the failing rank's stderr in the error (default 20). */
  tailLines?: number;
  /** Forward this process's SIGINT / SIGTERM to the workers (default true). */
  forwardSignals?: boolean;
}

export interface LaunchResult {
  /** 0 when every worker exited 0. */
  code: number;
  failedRank?: number;
  /** `instill launch: rank N exited with code X` plus the last lines of its stderr. */
  message?: string;
  masterPort: number;
  worldSize: number;
}

/** A TCP port free on `host` right now (the OS picks it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => (port > 0 ? resolve(port) : reject(new Error("could not find a free port"))));
    });
  });
}

function checkInt(name: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${name}: expected an integer in [${lo}, ${hi}], got ${v}`);
}

/** Parses `--nproc N [--nnodes M --node-rank R --master-addr A --master-port P]` values given as strings. */
export function parseLaunchArgs(o: {
  nproc?: string;
  nnodes?: string;
  nodeRank?: string;
  masterAddr?: string;
  masterPort?: string;
}): Omit<LaunchOptions, "command"> {
  const int = (flag: string, v: string | undefined, dflt: number | undefined, lo: number, hi: number): number | undefined => {
    if (v === undefined) return dflt;
    if (!/^\d+$/.test(v)) throw new RangeError(`${flag}: expected an integer in [${lo}, ${hi}], got '${v}'`);
    const n = Number(v);
    checkInt(flag, n, lo, hi);
    return n;
  };
  const nproc = int("--nproc", o.nproc, undefined, 1, 1024);
  if (nproc === undefined) throw new RangeError("--nproc: required (workers on this node)");
  const nnodes = int("--nnodes", o.nnodes, 1, 1, 65536)!;
  const nodeRank = int("--node-rank", o.nodeRank, 0, 0, 65535)!;
  if (nodeRank >= nnodes) throw new RangeError(`--node-rank: ${nodeRank} is not below --nnodes ${nnodes}`);
  const masterPort = int("--master-port", o.masterPort, undefined, 1, 65535);
  if (o.masterAddr !== undefined && o.masterAddr.trim() === "") throw new RangeError("--master-addr: empty");
  if (nnodes > 1 && o.masterAddr === undefined)
    throw new RangeError("--master-addr: required with --nnodes > 1 (the address of node 0, reachable from every node)");
  return { nproc, nnodes, nodeRank, masterAddr: o.masterAddr, masterPort };
}

function signalCode(sig: NodeJS.Signals | null): number {
  const n = sig ? (osConstants.signals as Record<string, number>)[sig] : undefined;
  return n ? 128 + n : 1;
}

/** Runs the workers to completion; never rejects for a worker failure (see LaunchResult.code). */
export async function launch(opts: LaunchOptions): Promise<LaunchResult> {
  checkInt("nproc", opts.nproc, 1, 1024);
  const nnodes = opts.nnodes ?? 1;
  const nodeRank = opts.nodeRank ?? 0;
  checkInt("nnodes", nnodes, 1, 65536);
  checkInt("nodeRank", nodeRank, 0, nnodes - 1);
  if (opts.command.length === 0) throw new RangeError("launch: no worker command (give it after --)");
  const masterAddr = opts.masterAddr ?? "127.0.0.1";
  const masterPort = opts.masterPort ?? (nnodes > 1 ? 29500 : await freePort(masterAddr));
  const worldSize = opts.nproc * nnodes;
  const out = opts.stdout ?? process.stdout;
  const err = opts.stderr ?? process.stderr;
  // A reader that goes away (`instill launch ... | head`) must not crash the launcher and orphan the workers.
  for (const s of [out, err] as NodeJS.EventEmitter[]) if (s.listenerCount("error") === 0) s.on("error", () => {});
  const graceMs = opts.graceMs ?? 5000;
  const tailLines = opts.tailLines ?? 20;
  const baseEnv = opts.env ?? process.env;
  // One LibTorch thread pool per worker sharing the cores (torchrun sets OMP_NUM_THREADS=1 for the same reason).
  const threads = String(Math.max(1, Math.floor(availableParallelism() / opts.nproc)));

  interface Worker {
    rank: number;
    child: ChildProcess;
    tail: string[];
    done: boolean;
    code: number | null;
    signal: NodeJS.Signals | null;
    spawnError?: string;
  }
  const workers: Worker[] = [];
  let failure: { rank: number; text: string; code: number } | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let interruptedBy: NodeJS.Signals | undefined;

  const stopOthers = () => {
    for (const w of workers) if (!w.done) w.child.kill("SIGTERM");
    killTimer ??= setTimeout(() => {
      for (const w of workers) if (!w.done) w.child.kill("SIGKILL");
    }, graceMs);
  };

  const onSignal = (sig: NodeJS.Signals) => {
    if (interruptedBy) {
      // A second signal: stop now.
      for (const w of workers) if (!w.done) w.child.kill("SIGKILL");
      return;
    }
    interruptedBy = sig;
    for (const w of workers) if (!w.done) w.child.kill(sig);
    killTimer ??= setTimeout(() => {
      for (const w of workers) if (!w.done) w.child.kill("SIGKILL");
    }, Math.max(graceMs, 30000)); // a worker may be saving a checkpoint
  };
  const forward = opts.forwardSignals ?? true;
  const onInt = () => onSignal("SIGINT");
  const onTerm = () => onSignal("SIGTERM");
  if (forward) {
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
  }

  const finished: Promise<void>[] = [];
  try {
    for (let local = 0; local < opts.nproc; local++) {
      const rank = nodeRank * opts.nproc + local;
      const env: NodeJS.ProcessEnv = {
        ...baseEnv,
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
        WORLD_SIZE: String(worldSize),
        RANK: String(rank),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(opts.nproc),
        GROUP_RANK: String(nodeRank),
        INSTILL_THREADS: baseEnv.INSTILL_THREADS ?? threads,
      };
      const child = spawn(opts.command[0], opts.command.slice(1), { env, stdio: ["ignore", "pipe", "pipe"] });
      const w: Worker = { rank, child, tail: [], done: false, code: null, signal: null };
      workers.push(w);
      const prefix = `[rank ${rank}] `;
      createInterface({ input: child.stdout! }).on("line", (l) => out.write(prefix + l + "\n"));
      createInterface({ input: child.stderr! }).on("line", (l) => {
        err.write(prefix + l + "\n");
        w.tail.push(l);
        if (w.tail.length > tailLines) w.tail.shift();
      });
      finished.push(
        new Promise<void>((resolve) => {
          child.on("error", (e) => {
            w.spawnError = e.message;
            // 'close' follows for spawn errors too; make sure we settle if it does not.
            if (child.pid === undefined) {
              w.done = true;
              w.code = 127;
              onExit(w);
              resolve();
            }
          });
          child.on("close", (code, signal) => {
            if (w.done) return resolve();
            w.done = true;
            w.code = code;
            w.signal = signal;
            onExit(w);
            resolve();
          });
        }),
      );
    }

    function onExit(w: Worker): void {
      if (failure || (w.code === 0 && !w.spawnError)) return;
      // After a forwarded Ctrl-C / SIGTERM, a worker ending by that signal is the expected outcome, not a failure.
      if (interruptedBy && !w.spawnError && (w.signal === interruptedBy || w.code === signalCode(interruptedBy))) return;
      const how = w.spawnError
        ? `could not be started (${w.spawnError})`
        : w.signal
          ? `was killed by signal ${w.signal}`
          : `exited with code ${w.code}`;
      const lines = [`instill launch: rank ${w.rank} ${how}`];
      if (w.tail.length > 0) lines.push(`last lines of rank ${w.rank}'s stderr:`, ...w.tail.map((l) => `  ${l}`));
      failure = { rank: w.rank, text: lines.join("\n"), code: w.signal ? signalCode(w.signal) : w.code || 1 };
      stopOthers();
    }

    await Promise.all(finished);
  } finally {
    if (killTimer) clearTimeout(killTimer);
    if (forward) {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
    }
    for (const w of workers) if (!w.done) w.child.kill("SIGKILL");
  }
  if (failure) return { code: failure.code, failedRank: failure.rank, message: failure.text, masterPort, worldSize };
  if (interruptedBy && workers.some((w) => w.signal || w.code !== 0)) return { code: signalCode(interruptedBy), masterPort, worldSize };
  return { code: 0, masterPort, worldSize };
}
