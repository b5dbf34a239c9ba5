// Independent jobs on a few child processes (node's fork with structured-clone IPC), each job starting once the
// jobs it waits for are done: the demo's (seed, row) jobs, each a separate LibTorch process because LibTorch's
// random generator is global to a process (threads of one process could not train two seeded models at once).
// A worker script answers each {id, job} message with {id, type: "done", result} or {id, type: "error", message},
// and may send {id, type: "event", event} meanwhile (progress). The first failure stops every worker and rejects,
// naming the job; a worker that dies reports its exit and the last lines of its stderr. Ctrl-C (SIGINT) or
// SIGTERM to this process stops the workers and rejects with `interrupted(signal)`'s error.
import { fork, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface PoolJob<J> {
  id: string;
  /** The job, built when it starts (so it can read the results of the jobs it waited for). */
  job: () => J;
  /** Ids of jobs that must be done before this one starts. */
  after?: string[];
}

export type PoolMessage<R, E> =
  | { id: string; type: "done"; result: R }
  | { id: string; type: "error"; message: string; stack?: string }
  | { id: string; type: "event"; event: E };

export interface PoolOptions<R, E> {
  script: string;
  workers: number;
  env?: NodeJS.ProcessEnv;
  /** Called when a job starts, with the worker's index. */
  onStart?: (id: string, worker: number) => void;
  onEvent?: (id: string, event: E, worker: number) => void;
  onDone?: (id: string, result: R, worker: number) => void;
  /** The error a SIGINT / SIGTERM rejects with (default: a plain Error naming the signal). */
  interrupted?: (signal: NodeJS.Signals) => Error;
}

interface Slot {
  child: ChildProcess;
  busy?: string;
  tail: string[];
}

/** Runs the jobs (in list order among those ready) and returns their results by id. */
export async function runPool<J, R, E = unknown>(jobs: PoolJob<J>[], o: PoolOptions<R, E>): Promise<Map<string, R>> {
  const ids = new Set(jobs.map((j) => j.id));
  if (ids.size !== jobs.length) throw new Error("runPool: job ids must be unique");
  for (const j of jobs) for (const a of j.after ?? []) if (!ids.has(a)) throw new Error(`runPool: job '${j.id}' waits for unknown job '${a}'`);
  const results = new Map<string, R>();
  const pending = [...jobs];
  const nWorkers = Math.max(1, Math.min(o.workers, jobs.length));
  const slots: Slot[] = [];
  let failed: Error | undefined;

  return await new Promise<Map<string, R>>((resolve, reject) => {
    const onSignal = (sig: NodeJS.Signals) => finish(o.interrupted?.(sig) ?? new Error(`interrupted by ${sig}`));
    const onInt = () => onSignal("SIGINT");
    const onTerm = () => onSignal("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const finish = (err?: Error) => {
      if (failed) return;
      if (err) failed = err;
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      for (const s of slots) {
        s.child.removeAllListeners("exit");
        if (s.child.connected) s.child.disconnect();
        if (err && s.child.exitCode === null) s.child.kill("SIGKILL");
      }
      if (err) reject(err);
      else resolve(results);
    };
    const dispatch = () => {
      if (failed) return;
      if (results.size === jobs.length) return finish();
      for (let w = 0; w < slots.length; w++) {
        const s = slots[w];
        if (s.busy !== undefined) continue;
        const k = pending.findIndex((j) => (j.after ?? []).every((a) => results.has(a)));
        if (k < 0) break;
        const [j] = pending.splice(k, 1);
        s.busy = j.id;
        o.onStart?.(j.id, w);
        let job: J;
        try {
          job = j.job();
        } catch (e) {
          return finish(e as Error);
        }
        s.child.send({ id: j.id, job });
      }
      if (pending.length && slots.every((s) => s.busy === undefined)) finish(new Error(`runPool: jobs ${pending.map((j) => j.id).join(", ")} wait for jobs that never run`));
    };
    for (let w = 0; w < nWorkers; w++) {
      const child = fork(o.script, [], { env: o.env ?? process.env, serialization: "advanced", stdio: ["ignore", "ignore", "pipe", "ipc"] });
      const s: Slot = { child, tail: [] };
      slots.push(s);
      createInterface({ input: child.stderr! }).on("line", (l) => {
        s.tail.push(l);
        if (s.tail.length > 20) s.tail.shift();
      });
      child.on("message", (m: PoolMessage<R, E>) => {
        if (failed) return;
        if (m.type === "event") return o.onEvent?.(m.id, m.event, w);
        s.busy = undefined;
        if (m.type === "error") return finish(Object.assign(new Error(`${m.id}: ${m.message}`), { stack: m.stack ? `${m.id}: ${m.stack}` : undefined }));
        results.set(m.id, m.result);
        o.onDone?.(m.id, m.result, w);
        dispatch();
      });
      child.on("error", (e) => finish(new Error(`worker ${w} (${o.script}): ${e.message}`)));
      child.on("exit", (code, signal) => {
        const what = s.busy !== undefined ? `while running '${s.busy}'` : "between jobs";
        const tail = s.tail.length ? `; its last stderr lines:\n  ${s.tail.join("\n  ")}` : "";
        finish(new Error(`worker ${w} ${signal ? `was killed by ${signal}` : `exited with code ${code}`} ${what}${tail}`));
      });
    }
    dispatch();
  });
}
