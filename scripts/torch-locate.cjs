#!/usr/bin/env node
// LibTorch locator for binding.gyp (node-gyp cannot run CMake's find_package). Same order as
// cmake/InstillTorch.cmake: LIBTORCH or Torch_DIR, then an installed PyTorch, then the system install.
// Usage: node scripts/torch-locate.cjs --include | --libdir | --cflags | --libs | --sources | --json
"use strict";
const fs = require("fs");
const path = require("path");
const { execFileSync } = require("child_process");

function fromPrefix(prefix, source) {
  // prefix is a libtorch root (include/, lib/) or a folder with TorchConfig.cmake inside it.
  let root = prefix;
  for (let i = 0; i < 5 && root !== path.dirname(root); i++) {
    if (fs.existsSync(path.join(root, "include", "torch", "csrc", "api", "include"))) break;
    root = path.dirname(root);
  }
  const inc = path.join(root, "include");
  if (!fs.existsSync(path.join(inc, "torch", "csrc", "api", "include"))) return null;
  const lib = path.join(root, "lib");
  return { source, root, include: [inc, path.join(inc, "torch", "csrc", "api", "include")], libdir: lib, cmake: findConfig(root) };
}

function findConfig(root) {
  const cands = [path.join(root, "share", "cmake", "Torch", "TorchConfig.cmake")];
  return cands.find((c) => fs.existsSync(c)) || null;
}

function systemTorch() {
  const triplets = ["x86_64-linux-gnu", "aarch64-linux-gnu"];
  for (const t of triplets) {
    const cfg = `/usr/lib/${t}/cmake/Torch/TorchConfig.cmake`;
    if (fs.existsSync(cfg) && fs.existsSync("/usr/include/torch/csrc/api/include")) {
      return {
        source: "system install",
        root: "/usr",
        include: ["/usr/include", "/usr/include/torch/csrc/api/include"],
        libdir: `/usr/lib/${t}`,
        cmake: cfg,
      };
    }
  }
  return null;
}

function locate() {
  if (process.env.LIBTORCH) {
    const r = fromPrefix(process.env.LIBTORCH, `LIBTORCH=${process.env.LIBTORCH}`);
    if (r) return r;
  }
  if (process.env.Torch_DIR) {
    const r = fromPrefix(process.env.Torch_DIR, `Torch_DIR=${process.env.Torch_DIR}`);
    if (r) return r;
  }
  for (const py of ["python3", "python"]) {
    try {
      const out = execFileSync(py, ["-c", "import torch; print(torch.utils.cmake_prefix_path)"], {
        stdio: ["ignore", "pipe", "ignore"],
      })
        .toString()
        .trim();
      if (out) {
        const r = fromPrefix(path.join(out, "Torch"), `PyTorch at ${out}`);
        if (r) return r;
      }
    } catch {
      /* no python or no torch */
    }
  }
  const sys = systemTorch();
  if (sys) return sys;
  process.stderr.write(
    "instill: LibTorch was not found. Fix it one of three ways:\n" +
      "  1. export LIBTORCH=/path/to/libtorch   (or Torch_DIR=/path/with/TorchConfig.cmake)\n" +
      "  2. install PyTorch for python3 (pip install torch); its bundled LibTorch is used\n" +
      "  3. sudo apt-get install libtorch-dev libopenblas0-pthread   (Debian/Ubuntu)\n",
  );
  process.exit(1);
}

// The ABI flag comes from Torch's own TorchConfig.cmake (TORCH_CXX_FLAGS), never hard-coded.
function cxxFlags(t) {
  if (t.cmake) {
    const txt = fs.readFileSync(t.cmake, "utf8");
    const m = txt.match(/_GLIBCXX_USE_CXX11_ABI=([01])/);
    if (m) return [`-D_GLIBCXX_USE_CXX11_ABI=${m[1]}`];
  }
  return [];
}

function coreSources() {
  const root = path.join(__dirname, "..", "native", "core");
  const dirs = ["common", "io", "t5", "lora", "hypernet", "hypergrad", "select", "train", "dio", "dist"];
  const out = [];
  for (const d of dirs) {
    const p = path.join(root, d);
    if (!fs.existsSync(p)) continue;
    for (const f of fs.readdirSync(p).sort()) if (f.endsWith(".cpp")) out.push(`native/core/${d}/${f}`);
  }
  const napi = path.join(__dirname, "..", "native", "napi");
  for (const f of fs.readdirSync(napi).sort()) if (f.endsWith(".cc")) out.push(`native/napi/${f}`);
  return out;
}

const t = locate();
const arg = process.argv[2] || "--json";
const libs = ["-ltorch", "-ltorch_cpu", "-lc10"];
switch (arg) {
  case "--include": console.log(t.include.join(" ")); break;
  case "--libdir": console.log(t.libdir); break;
  case "--cflags": console.log(cxxFlags(t).join(" ")); break;
  case "--libs": console.log([`-L${t.libdir}`, ...libs, `-Wl,-rpath,${t.libdir}`].join(" ")); break;
  case "--sources": console.log(coreSources().join(" ")); break;
  default: console.log(JSON.stringify({ ...t, cflags: cxxFlags(t), libs }, null, 2));
}
