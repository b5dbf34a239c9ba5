// src/dist without the native addon: the torchrun environment, batch sharding, launcher arguments and the
// launcher itself on plain node workers.
import { describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { readDistEnv, isDistributed, shardRange, shardItems } from "../../src/dist/env.js";
import { launch, parseLaunchArgs, freePort } from "../../src/dist/launcher.js";
import { resolveWorkerCommand } from "../../src/cli/launch.js";

function sink(): { stream: Writable; text: () => string } {
  let t = "";
  return {
    stream: new Writable({
      write(c, _e, cb) {
        t += c.toString();
        cb();
      },
    }),
    text: () => t,
  };
}

describe("readDistEnv", () => {
  it("reads torchrun's variables with single-process defaults", () => {
    expect(readDistEnv({})).toEqual({ masterAddr: "127.0.0.1", masterPort: 29500, worldSize: 1, rank: 0, localRank: 0 });
    expect(readDistEnv({ MASTER_ADDR: "node0", MASTER_PORT: "1234", WORLD_SIZE: "8", RANK: "5", LOCAL_RANK: "1" })).toEqual({
      masterAddr: "node0",
      masterPort: 1234,
      worldSize: 8,
      rank: 5,
      localRank: 1,
    });
    expect(readDistEnv({ WORLD_SIZE: "2", RANK: "1" }).localRank).toBe(1);
    expect(isDistributed({ WORLD_SIZE: "2" })).toBe(true);
    expect(isDistributed({})).toBe(false);
  });
  it("names the bad variable", () => {
    expect(() => readDistEnv({ WORLD_SIZE: "two" })).toThrow(/WORLD_SIZE/);
    expect(() => readDistEnv({ WORLD_SIZE: "2", RANK: "2" })).toThrow(/RANK: 2 is not below WORLD_SIZE 2/);
    expect(() => readDistEnv({ MASTER_PORT: "70000" })).toThrow(/MASTER_PORT/);
    expect(() => readDistEnv({ WORLD_SIZE: "0" })).toThrow(/WORLD_SIZE/);
  });
});

describe("sharding", () => {
  it("splits n items into disjoint contiguous ranges covering everything, sizes within one", () => {
    for (const n of [0, 1, 2, 5, 8, 13, 64])
      for (const w of [1, 2, 3, 4, 7]) {
        let next = 0;
        const sizes: number[] = [];
        for (let r = 0; r < w; r++) {
          const [a, b] = shardRange(n, r, w);
          expect(a).toBe(next);
          next = b;
          sizes.push(b - a);
        }
        expect(next).toBe(n);
        expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
      }
    expect(shardRange(8, 1, 2)).toEqual([4, 8]);
  });
  it("gives each rank 1/W of a global batch and refuses batches smaller than the world", () => {
    const items = [0, 1, 2, 3, 4, 5];
    expect([...shardItems(items, 0, 2), ...shardItems(items, 1, 2)]).toEqual(items);
    expect(shardItems(items, 2, 3)).toEqual([4, 5]);
    expect(() => shardItems([1], 0, 2)).toThrow(/batch size of at least 2/);
    expect(() => shardRange(4, 2, 2)).toThrow(/rank 2/);
  });
});

describe("launch arguments", () => {
  it("parses and checks the flags", () => {
    expect(parseLaunchArgs({ nproc: "2" })).toMatchObject({ nproc: 2, nnodes: 1, nodeRank: 0 });
    expect(parseLaunchArgs({ nproc: "4", nnodes: "2", nodeRank: "1", masterAddr: "10.0.0.1", masterPort: "29400" })).toEqual({
      nproc: 4,
      nnodes: 2,
      nodeRank: 1,
      masterAddr: "10.0.0.1",
      masterPort: 29400,
    });
    expect(() => parseLaunchArgs({})).toThrow(/--nproc/);
    expect(() => parseLaunchArgs({ nproc: "0" })).toThrow(/--nproc/);
    expect(() => parseLaunchArgs({ nproc: "2", nnodes: "2", masterAddr: "a", nodeRank: "2" })).toThrow(/--node-rank/);
    expect(() => parseLaunchArgs({ nproc: "2", nnodes: "2" })).toThrow(/--master-addr/);
    expect(() => parseLaunchArgs({ nproc: "2", masterPort: "x" })).toThrow(/--master-port/);
  });
  it("runs instill commands through this CLI and anything else as given", () => {
    const names = ["train", "eval", "doctor"];
    expect(resolveWorkerCommand(["train", "--config", "a.yaml"], names).slice(0, 1)).toEqual([process.execPath]);
    expect(resolveWorkerCommand(["train", "--config", "a.yaml"], names).slice(2)).toEqual(["train", "--config", "a.yaml"]);
    expect(resolveWorkerCommand(["instill", "eval"], names).slice(2)).toEqual(["eval"]);
    expect(resolveWorkerCommand(["python3", "x.py"], names)).toEqual(["python3", "x.py"]);
    expect(() => resolveWorkerCommand([], names)).toThrow(/after --/);
  });
  it("finds a free port", async () => {
    const p = await freePort();
    expect(p).toBeGreaterThan(0);
    expect(p).toBeLessThan(65536);
  });
});

describe("launch", () => {
  const node = process.execPath;
  it("sets torchrun's variables for each worker and prefixes output by rank", async () => {
    const out = sink();
    const err = sink();
    const script =
      "const e=process.env; console.log(['R',e.RANK,e.WORLD_SIZE,e.LOCAL_RANK,e.LOCAL_WORLD_SIZE,e.MASTER_ADDR,e.MASTER_PORT,e.GROUP_RANK].join(' ')); console.error('err line'); process.stdout.write('no newline at end')";
    const r = await launch({ nproc: 3, command: [node, "-e", script], stdout: out.stream, stderr: err.stream, forwardSignals: false });
    expect(r.code).toBe(0);
    expect(r.worldSize).toBe(3);
    const lines = out.text().trim().split("\n");
    for (let k = 0; k < 3; k++) {
      expect(lines).toContain(`[rank ${k}] R ${k} 3 ${k} 3 127.0.0.1 ${r.masterPort} 0`);
      expect(lines).toContain(`[rank ${k}] no newline at end`);
      expect(err.text()).toContain(`[rank ${k}] err line`);
    }
  });
  it("numbers ranks by node: node 1 of 2 with 2 workers holds ranks 2 and 3", async () => {
    const out = sink();
    const r = await launch({
      nproc: 2,
      nnodes: 2,
      nodeRank: 1,
      masterAddr: "127.0.0.1",
      masterPort: 29999,
      command: [node, "-e", "console.log(process.env.RANK, process.env.LOCAL_RANK, process.env.WORLD_SIZE, process.env.MASTER_PORT)"],
      stdout: out.stream,
      forwardSignals: false,
    });
    expect(r.code).toBe(0);
    expect(out.text()).toContain("[rank 2] 2 0 4 29999");
    expect(out.text()).toContain("[rank 3] 3 1 4 29999");
  });
  it("fails the job with the failing rank's code and stderr, stopping the others promptly", async () => {
    const err = sink();
    const script =
      "if (process.env.RANK === '1') { setTimeout(() => { console.error('boom: disk on fire'); process.exit(3); }, 200); } else { setInterval(() => {}, 1000); }";
    const t0 = Date.now();
    const r = await launch({ nproc: 2, command: [node, "-e", script], stdout: sink().stream, stderr: err.stream, forwardSignals: false, graceMs: 2000 });
    expect(r.code).toBe(3);
    expect(r.failedRank).toBe(1);
    expect(r.message).toMatch(/^instill launch: rank 1 exited with code 3/);
    expect(r.message).toContain("boom: disk on fire");
    expect(Date.now() - t0).toBeLessThan(8000);
  });
  it("escalates to SIGKILL for a worker that ignores SIGTERM", async () => {
    const script =
      "process.on('SIGTERM', () => {}); if (process.env.RANK === '0') { setTimeout(() => process.kill(process.pid, 'SIGKILL'), 200); } setInterval(() => {}, 1000);";
    const t0 = Date.now();
    const r = await launch({ nproc: 2, command: [node, "-e", script], stdout: sink().stream, stderr: sink().stream, forwardSignals: false, graceMs: 500 });
    expect(r.failedRank).toBe(0);
    expect(r.message).toMatch(/rank 0 was killed by signal SIGKILL/);
    expect(r.code).toBe(128 + 9);
    expect(Date.now() - t0).toBeLessThan(8000);
  });
  it("reports a worker that cannot be started", async () => {
    const r = await launch({ nproc: 2, command: ["/nonexistent/instill-worker"], stdout: sink().stream, stderr: sink().stream, forwardSignals: false });
    expect(r.code).not.toBe(0);
    expect(r.message).toMatch(/rank \d could not be started/);
  });
});
