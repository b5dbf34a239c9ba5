// `instill launch --nproc N [--nnodes M --node-rank R --master-addr A --master-port P] -- <command>`:
// data-parallel workers. The command is an instill command (`-- train ...`, `-- instill train ...`) or any program
// (`-- node worker.js`, `-- python train.py`). Workers get torchrun's variables; see src/dist/launcher.ts.
import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { launch, parseLaunchArgs } from "../dist/launcher.js";
import { packageRoot } from "../native/binding.js";

/** The worker argv: instill commands run through this CLI (same node, same script), anything else as given. */
export function resolveWorkerCommand(command: string[], instillCommands: readonly string[]): string[] {
  if (command.length === 0) throw new RangeError("launch: give the worker command after --, e.g. instill launch --nproc 2 -- train --config run.yaml");
  const script = process.argv[1] && existsSync(process.argv[1]) ? process.argv[1] : join(packageRoot(), "bin", "instill.js");
  if (command[0] === "instill") return [process.execPath, script, ...command.slice(1)];
  if (instillCommands.includes(command[0])) return [process.execPath, script, ...command];
  return command;
}

export function registerLaunch(program: Command): void {
  program
    .command("launch")
    .description("run a command as N data-parallel workers (torchrun's MASTER_ADDR/MASTER_PORT/WORLD_SIZE/RANK/LOCAL_RANK)")
    .requiredOption("--nproc <n>", "workers on this node")
    .option("--nnodes <m>", "nodes in the job", "1")
    .option("--node-rank <r>", "this node's index", "0")
    .option("--master-addr <addr>", "address of rank 0's rendezvous store (default 127.0.0.1)")
    .option("--master-port <port>", "port of the rendezvous store (default: a free port; 29500 with several nodes)")
    .option("--grace <seconds>", "after a worker fails, seconds between SIGTERM and SIGKILL for the others", "5")
    .argument("<command...>", "after --: an instill command (train ...) or any program")
    .addHelpText("after", "\nExamples:\n  instill launch --nproc 2 -- train --config run.yaml\n  instill launch --nproc 2 -- node worker.js")
    .action(async (command: string[], o: Record<string, string | undefined>) => {
      const parsed = parseLaunchArgs({
        nproc: o.nproc,
        nnodes: o.nnodes,
        nodeRank: o.nodeRank,
        masterAddr: o.masterAddr,
        masterPort: o.masterPort,
      });
      const grace = Number(o.grace);
      if (!Number.isFinite(grace) || grace < 0) throw new RangeError(`--grace: expected seconds >= 0, got '${o.grace}'`);
      const names = program.commands.map((c) => c.name()).filter((n) => n !== "launch");
      const res = await launch({ ...parsed, command: resolveWorkerCommand(command, names), graceMs: grace * 1000 });
      if (res.code !== 0) {
        if (res.message) process.stderr.write(res.message + "\n");
        process.exitCode = res.code;
      }
    });
}
