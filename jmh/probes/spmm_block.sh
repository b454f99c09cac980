#!/usr/bin/env bash
# The 2:4 register kernel alone on a cache-resident buffer, FMAs per cycle (jmh/probes/spmm_block.c), e.g.
#   jmh/probes/spmm_block.sh                 # K = 64, 96, 256, 1152
#   jmh/probes/spmm_block.sh 64 -- -DNV=8 -DMR=3
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
grep -qw avx512f /proc/cpuinfo || { echo "spmm_block: the kernel under test is the AVX-512 one and this CPU has no AVX-512." >&2; exit 1; }
ks=(); flags=()
while [ $# -gt 0 ]; do [ "$1" = "--" ] && { shift; flags=("$@"); break; }; ks+=("$1"); shift; done
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
gcc -std=gnu11 -O3 -ffp-contract=fast -mavx512f -mavx512vl -mfma -I"$here/native-cuda/src/main/c" "${flags[@]}" \
    "$here/jmh/probes/spmm_block.c" -o "$tmp/spmm_block"
"$tmp/spmm_block" "${ks[@]}"
