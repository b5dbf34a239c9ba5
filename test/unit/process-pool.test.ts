// runPool: jobs on forked workers, each started once the jobs it waits for are done; the first failure (a job's
// error or a worker's death) stops every worker and names the job.
import { describe, expect, it } from "vitest";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runPool } from "../../src/util/process-pool.js";

const WORKER = `
process.on("message", (m) => {
  const j = m.job;
  if (j.op === "throw") return process.send({ id: m.id, type: "error", message: "bad job " + j.x });
  if (j.op === "die") { process.stderr.write("about to die\\n"); process.exit(3); }
  process.send({ id: m.id, type: "event", event: j.x });
  setTimeout(() => process.send({ id: m.id, type: "done", result: { x: j.x, pid: process.pid, nan: NaN } }), j.ms ?? 5);
});
process.on("disconnect", () => process.exit(0));
`;

function script(): string {
  const dir = mkdtempSync(join(tmpdir(), "instill-pool-"));
  const p = join(dir, "worker.cjs");
  writeFileSync(p, WORKER);
  return p;
}

describe("runPool", () => {
  it("runs every job once, respects order constraints, carries NaN and events", async () => {
    const order: string[] = [];
    const events: number[] = [];
    const jobs = [
      { id: "a", job: () => ({ op: "ok", x: 1, ms: 60 }) },
      { id: "b", job: () => ({ op: "ok", x: 2 }) },
      { id: "c", job: () => ({ op: "ok", x: 3 }), after: ["a"] },
      { id: "d", job: () => ({ op: "ok", x: 4 }), after: ["c", "b"] },
    ];
    const r = await runPool<{ op: string; x: number }, { x: number; pid: number; nan: number }, number>(jobs, {
      script: script(),
      workers: 2,
      onStart: (id) => order.push(id),
      onEvent: (_id, e) => events.push(e),
    });
    expect([...r.keys()].sort()).toEqual(["a", "b", "c", "d"]);
    expect(r.get("d")!.x).toBe(4);
    expect(Number.isNaN(r.get("a")!.nan)).toBe(true);
    expect(new Set([...r.values()].map((v) => v.pid)).size).toBe(2);
    expect(order.indexOf("c")).toBeGreaterThan(order.indexOf("a"));
    expect(order[3]).toBe("d");
    expect(events.sort()).toEqual([1, 2, 3, 4]);
  });

  it("rejects with the failing job's id and message", async () => {
    const jobs = [
      { id: "seed 1: base", job: () => ({ op: "ok", x: 1, ms: 200 }) },
      { id: "seed 2: dio", job: () => ({ op: "throw", x: 2 }) },
    ];
    await expect(runPool(jobs, { script: script(), workers: 2 })).rejects.toThrow(/seed 2: dio: bad job 2/);
  });

  it("reports a worker that dies, with the job it ran and its last stderr line", async () => {
    const jobs = [{ id: "seed 1: tagi", job: () => ({ op: "die", x: 0 }) }];
    await expect(runPool(jobs, { script: script(), workers: 1 })).rejects.toThrow(/exited with code 3 while running 'seed 1: tagi'[\s\S]*about to die/);
  });

  it("refuses a job that waits for a job that does not exist", async () => {
    await expect(runPool([{ id: "x", job: () => ({}), after: ["y"] }], { script: script(), workers: 1 })).rejects.toThrow(/job 'x' waits for unknown job 'y'/);
  });
});
