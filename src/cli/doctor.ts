import type { Command } from "commander";
import { versions } from "node:process";
import { loadAddon, packageRoot } from "../native/binding.js";
import type { RuntimeInfo } from "../native/types.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface DoctorReport {
  instillVersion: string;
  node: string;
  addon: { version: string; napiVersion: number };
  torch: { version: string; cudaBuild: boolean; cudaAvailable: boolean; cudaDevices: string[] };
  blas: RuntimeInfo["blas"] & { matmulGflops?: number };
  threads: { intraOp: number; interOp: number };
  warnings: string[];
}

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

export async function doctor(opts: { measure?: boolean } = {}): Promise<DoctorReport> {
  const addon = loadAddon();
  const info = addon.runtimeInfo();
  const report: DoctorReport = {
    instillVersion: packageVersion(),
    node: versions.node,
    addon: { version: info.addonVersion, napiVersion: info.napiVersion },
    torch: {
      version: info.torchVersion,
      cudaBuild: info.cudaBuild,
      cudaAvailable: info.cudaAvailable,
      cudaDevices: info.cudaDevices,
    },
    blas: { ...info.blas },
    threads: { intraOp: info.intraOpThreads, interOp: info.interOpThreads },
    warnings: [],
  };
  if (info.blas.reference || info.blas.name === "unknown") {
    report.warnings.push(
      `LibTorch is using ${info.blas.name === "unknown" ? "an unknown" : "the reference"} BLAS (${info.blas.path || "no path"}): ` +
        "matmuls run ~15x slower. Install OpenBLAS: sudo apt-get install libopenblas0-pthread",
    );
  }
  if (opts.measure) {
    const r = await addon.matmulBench({ n: 512, seconds: 0.5 });
    report.blas.matmulGflops = Math.round(r.gflops * 10) / 10;
  }
  return report;
}

export function registerDoctor(program: Command): void {
  program
    .command("doctor")
    .description("check the native build: LibTorch version, CUDA, the BLAS actually loaded, threads")
    .option("--json", "print one JSON object")
    .option("--measure", "also measure 512x512 float32 matmul GFLOP/s")
    .action(async (o: { json?: boolean; measure?: boolean }) => {
      const r = await doctor({ measure: o.measure });
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + "\n");
        return;
      }
      const lines = [
        `instill        ${r.instillVersion} (addon ${r.addon.version}, N-API ${r.addon.napiVersion})`,
        `node           ${r.node}`,
        `libtorch       ${r.torch.version}`,
        `cuda           build: ${r.torch.cudaBuild ? "yes" : "no (CPU only)"}; available: ${r.torch.cudaAvailable ? "yes" : "no"}` +
          (r.torch.cudaDevices.length ? `; devices: ${r.torch.cudaDevices.join(", ")}` : ""),
        `blas           ${r.blas.name}  ${r.blas.path}` + (r.blas.config ? `  [${r.blas.config}]` : ""),
        `threads        intra-op ${r.threads.intraOp}, inter-op ${r.threads.interOp}`,
      ];
      if (r.blas.matmulGflops !== undefined) lines.push(`matmul 512     ${r.blas.matmulGflops} GFLOP/s`);
      for (const w of r.warnings) lines.push(`WARNING        ${w}`);
      process.stdout.write(lines.join("\n") + "\n");
    });
}
