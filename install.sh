#!/usr/bin/env bash
# instill setup: Debian packages for the native build (when missing), npm dependencies (which build the
# addon with cmake-js), and the TypeScript build. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")"

# libtorch-dev: prebuilt LibTorch (CPU). libopenblas0-pthread: the BLAS behind it; Debian's default
# reference BLAS runs a 512x512 matmul at ~4 GFLOP/s, OpenBLAS at ~58 on our 2-core machines.
# nlohmann-json3-dev: header-only JSON for config.json and safetensors headers in native/core.
# fonts-dejavu-core: a font for the PNG charts of reports.
# libgloo-dev: Gloo headers for c10d ProcessGroupGloo (distributed training); the library ships with LibTorch.
PKGS=(libtorch-dev libopenblas0-pthread libgloo-dev nlohmann-json3-dev fonts-dejavu-core cmake g++ make)
missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
fi
# A LibTorch from LIBTORCH / Torch_DIR / an installed PyTorch replaces libtorch-dev.
if [ ${#missing[@]} -gt 0 ] && { [ -n "${LIBTORCH:-}" ] || [ -n "${Torch_DIR:-}" ]; }; then
  missing=("${missing[@]/libtorch-dev}")
  missing=("${missing[@]/libopenblas0-pthread}")
  read -r -a missing <<< "${missing[*]}"
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "instill: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "instill: these packages are missing and this user cannot install them: ${missing[*]}" >&2
    echo "Run this, then ./install.sh again:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# npm ci builds the addon (its install script runs cmake-js) and fetches the TypeScript toolchain.
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
npm run build:ts
echo "instill: ready. Try: npx instill doctor"
