import { describe, expect, it } from "vitest";
import { execFileSync, spawnSync } from "node:child_process";
import { cliPath } from "../helpers/native.js";

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [cliPath, ...args], { encoding: "utf8", env: { ...process.env, ...env } });
}

describe("instill CLI", () => {
  it("--help lists the commands", () => {
    const r = run(["--help"]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/Usage: instill/);
    expect(r.stdout).toMatch(/doctor/);
  });

  it("--version prints the package version", () => {
    const out = execFileSync(process.execPath, [cliPath, "--version"], { encoding: "utf8" }).trim();
    expect(out).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("doctor --json reports LibTorch, OpenBLAS and threads", () => {
    const r = run(["doctor", "--json"]);
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.torch.version).toMatch(/^\d+\.\d+/);
    expect(typeof d.torch.cudaBuild).toBe("boolean");
    expect(Array.isArray(d.torch.cudaDevices)).toBe(true);
    expect(d.blas.name).toBe("openblas");
    expect(d.blas.reference).toBe(false);
    expect(d.threads.intraOp).toBeGreaterThanOrEqual(1);
    expect(d.node).toBe(process.versions.node);
    expect(d.addon.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(d.warnings).toEqual([]);
  });

  it("--threads and INSTILL_THREADS set intra-op threads; bad values are clear errors", () => {
    expect(JSON.parse(run(["--threads", "1", "doctor", "--json"]).stdout).threads.intraOp).toBe(1);
    expect(JSON.parse(run(["doctor", "--json"], { INSTILL_THREADS: "1" }).stdout).threads.intraOp).toBe(1);
    const bad = run(["--threads", "zero", "doctor"]);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--threads/);
    const badEnv = run(["doctor"], { INSTILL_THREADS: "-2" });
    expect(badEnv.status).not.toBe(0);
    expect(badEnv.stderr).toMatch(/INSTILL_THREADS/);
  });

  it("an unknown command fails with a message", () => {
    const r = run(["no-such-command"]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
