// `instill launch` end to end through the CLI (node bin/instill.js, which uses dist/: run `npx tsc -p .` first).
// Plain node workers test the launcher; workers that join a real c10d process group (Gloo, loopback) test the
// native collectives and that a dead worker never leaves a survivor hung in a collective.
import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { cliPath, hasAddon, repoRoot } from "../helpers/native.js";

function run(args: string[], timeout = 60_000) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", timeout });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "instill-launch-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("instill launch", () => {
  it("runs any command as N workers with rank-prefixed output", () => {
    const r = run(["launch", "--nproc", "2", "--", "node", "-e", "console.log('hello from', process.env.RANK, 'of', process.env.WORLD_SIZE)"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("[rank 0] hello from 0 of 2");
    expect(r.stdout).toContain("[rank 1] hello from 1 of 2");
  });

  it("runs instill commands through the CLI itself", () => {
    const r = run(["launch", "--nproc", "2", "--", "instill", "--version"]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\[rank 0\] \d+\.\d+\.\d+/);
    expect(r.stdout).toMatch(/\[rank 1\] \d+\.\d+\.\d+/);
    const h = run(["launch", "--nproc", "2", "--", "score", "--help"]);
    expect(h.status, h.stderr).toBe(0);
    expect(h.stdout).toContain("[rank 1] Usage: instill score");
  });

  it("fails the job when one worker dies, naming the rank, with no survivor", () => {
    const pids = join(dir, "pids");
    const script = `require('fs').appendFileSync(${JSON.stringify(pids)}, process.pid + '\\n'); if (process.env.RANK === '1') { setTimeout(() => { console.error('worker 1: out of memory'); process.exit(7); }, 300); } else { setInterval(() => {}, 1000); }`;
    const t0 = Date.now();
    const r = run(["launch", "--nproc", "2", "--grace", "1", "--", "node", "-e", script]);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.status).toBe(7);
    expect(r.stderr).toContain("instill launch: rank 1 exited with code 7");
    expect(r.stderr).toContain("worker 1: out of memory");
    const list = readFileSync(pids, "utf8").trim().split("\n").map(Number);
    expect(list).toHaveLength(2);
    for (const pid of list) expect(alive(pid)).toBe(false);
  });

  it("forwards Ctrl-C (SIGINT) to the workers", async () => {
    const script =
      "process.on('SIGINT', () => { console.log('saving and stopping'); process.exit(0); }); console.log('ready'); setInterval(() => {}, 1000);";
    const child = spawn(process.execPath, [cliPath, "launch", "--nproc", "2", "--", "node", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const ready = new Promise<void>((resolve) => {
      child.stdout.on("data", (d) => {
        out += d.toString();
        if ((out.match(/ready/g) ?? []).length === 2) resolve();
      });
    });
    await ready;
    child.kill("SIGINT");
    const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
    expect(code).toBe(0);
    expect(out).toContain("[rank 0] saving and stopping");
    expect(out).toContain("[rank 1] saving and stopping");
  });

  it("explains a missing command and bad flags", () => {
    const r = run(["launch", "--nproc", "0", "--", "node", "-e", ""]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--nproc/);
  });
});

describe.skipIf(!hasAddon)("instill launch with c10d (Gloo on loopback)", () => {
  const groupJs = pathToFileURL(join(repoRoot, "dist", "src", "dist", "group.js")).href;

  it("all-reduces, broadcasts and gathers exactly across 2 workers", () => {
    const worker = join(dir, "collectives.mjs");
    writeFileSync(
      worker,
      `import { initProcessGroup } from ${JSON.stringify(groupJs)};
const pg = await initProcessGroup();
const r = pg.rank;
const [a, b] = await pg.allreduceMean([
  { data: Float64Array.from([1 + r, 10 * (r + 1), 0.1 * r]), shape: [3], dtype: "float64" },
  { data: Float32Array.from([2 * r, 4]), shape: [2], dtype: "float32" },
], { bucketBytes: 8 });
const [w] = await pg.broadcast([{ data: Float64Array.from([r === 0 ? 3.5 : -1]), shape: [1], dtype: "float64" }], 0);
const g = await pg.allgatherScalars([r, r * r + 0.5]);
await pg.barrier();
console.log(JSON.stringify({ world: pg.worldSize, backend: pg.backend, a: Array.from(a.data), b: Array.from(b.data), w: Array.from(w.data), g, stats: pg.stats() }));
pg.dispose();
`,
    );
    const r = run(["launch", "--nproc", "2", "--", "node", worker], 120_000);
    expect(r.status, r.stderr).toBe(0);
    for (const k of [0, 1]) {
      const line = r.stdout.split("\n").find((l) => l.startsWith(`[rank ${k}] {`));
      expect(line, r.stdout).toBeDefined();
      const o = JSON.parse(line!.slice(`[rank ${k}] `.length));
      expect(o.world).toBe(2);
      expect(o.backend).toBe("gloo");
      expect(o.a).toEqual([(1 + 2) / 2, (10 + 20) / 2, (0 + 0.1) / 2]);
      expect(o.b).toEqual([1, 4]);
      expect(o.w).toEqual([3.5]);
      expect(o.g).toEqual([0, 0.5, 1, 1.5]);
      expect(o.stats.buckets).toBeGreaterThanOrEqual(2);
    }
  });

  it("a worker that dies before a collective fails the job; the survivor blocked in all-reduce is stopped", () => {
    const worker = join(dir, "dies.mjs");
    const pids = join(dir, "pids-native");
    writeFileSync(
      worker,
      `import { appendFileSync } from "node:fs";
import { initProcessGroup } from ${JSON.stringify(groupJs)};
appendFileSync(${JSON.stringify(pids)}, process.pid + "\\n");
const pg = await initProcessGroup();
if (pg.rank === 1) { console.error("rank 1 crashes mid-run"); process.exit(9); }
await pg.allreduceMean([{ data: Float64Array.from([1]), shape: [1], dtype: "float64" }]);
console.log("unreachable: the peer is gone");
`,
    );
    const t0 = Date.now();
    const r = run(["launch", "--nproc", "2", "--grace", "2", "--", "node", worker], 120_000);
    const seconds = (Date.now() - t0) / 1000;
    expect(r.status).toBe(9);
    expect(r.stderr).toContain("instill launch: rank 1 exited with code 9");
    expect(r.stderr).toContain("rank 1 crashes mid-run");
    expect(r.stdout).not.toContain("unreachable");
    expect(seconds).toBeLessThan(30);
    const list = readFileSync(pids, "utf8").trim().split("\n").map(Number);
    for (const pid of list) expect(alive(pid)).toBe(false);
  });
});
