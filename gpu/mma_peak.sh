#!/usr/bin/env bash
# Builds and runs gpu/mma_peak.cu on a lent GPU machine: the warp-level tensor-core ceilings, dense mma.sync m16n8k16
# against 2:4 mma.sp m16n8k32 (bf16, f32 accumulation, operands in registers), dense-equivalent TFLOP/s. Needs nvcc
# only (the CUDA runtime is linked statically). Everything goes into OUTFILE; exits 0 whatever happened.
# Usage: bash gpu/mma_peak.sh OUTFILE [iterations]
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTFILE [iterations]" >&2; exit 0; }
out="$1"; shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/mma_peak.XXXXXX")"; trap 'rm -rf "$work"' EXIT
nvcc="$(command -v nvcc || ls /usr/local/cuda*/bin/nvcc 2>/dev/null | head -1)"
[ -n "$nvcc" ] || { echo "MMA skipped: no nvcc on this machine" > "$out"; exit 0; }
# sm_90a where the GPU is a Hopper (what the shim is built for), else the GPU's own compute capability
cc="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')"
arch="${cc:-90}"; [ "$arch" = 90 ] && arch=90a
if ! "$nvcc" -O3 -gencode=arch=compute_$arch,code=sm_$arch -o "$work/mma_peak" "$here/gpu/mma_peak.cu" > "$work/build.txt" 2>&1; then
  { echo "MMA FAILED: build for sm_$arch"; cat "$work/build.txt"; } > "$out"; exit 0
fi
timeout 60 "$work/mma_peak" "$@" > "$out" 2>&1 || echo "MMA exit code $?" >> "$out"
exit 0
