#!/usr/bin/env bash
# The compiled 2:4 product (native-cuda/src/main/c/sparse_jit.c) against the register kernel and the dense GEMM,
# in-process and taking turns (NOTES-step-cpu.md v15): the issue's conv-as-GEMM shapes on a materialised B, then
# ResNet-18 (CIFAR) convolutions at batch 32 on the implicit lowering; 1 and 2 threads.
# Needs the shim built (./fst4j test or ./fst4j probe-cpu builds it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
src="$here/native-cuda/src/main/c"; lib="$here/native-cuda/target/classes/native/linux-x86_64"
[ -f "$lib/libfst4j.so" ] || { echo "spmm_jit_ab: $lib/libfst4j.so missing: run ./fst4j probe-cpu (or ./fst4j test) first." >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
gcc -std=c11 -O2 -D_GNU_SOURCE -Wall -Wextra -I"$src" "$here/jmh/probes/spmm_jit_ab.c" -o "$tmp/spmm_jit_ab" -L"$lib" -lfst4j -Wl,-rpath,"$lib" -lm
for th in 1 2; do
  for s in "64 25088 576" "128 6272 1152" "256 1568 2304"; do "$tmp/spmm_jit_ab" $s $th; done
  for s in "64 64 32 32" "128 128 16 32" "32 32 14 128"; do "$tmp/spmm_jit_ab" conv $s $th; done
done
