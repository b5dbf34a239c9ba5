// A worker process of `instill demo --jobs N` (forked by src/util/process-pool.ts): runs each job it is sent with
// runDemoJob, the function the demo runs in its own process with --jobs 1, and reports progress as events.
import { runDemoJob, type DemoJob, type WorkerEvent } from "./demo.js";

if (!process.send) throw new Error("src/demo/worker.ts runs as a forked worker of instill demo, not on its own");
const send = (m: unknown) => process.send!(m);

process.on("message", (m: { id: string; job: DemoJob }) => {
  const event = (e: WorkerEvent) => send({ id: m.id, type: "event", event: e });
  runDemoJob(m.job, { stage: (name) => event({ kind: "stage", name }), advance: (units) => event({ kind: "advance", units }) }).then(
    (result) => send({ id: m.id, type: "done", result }),
    (e: Error) => send({ id: m.id, type: "error", message: e.message, stack: e.stack }),
  );
});
process.on("disconnect", () => process.exit(0));
