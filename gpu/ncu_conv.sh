#!/usr/bin/env bash
# Nsight Compute on the implicit-GEMM convolutions (a lent GPU machine, .gpu/ from gpu/prepare.sh carried): runs
# CudaConvBench with 2 timed repetitions under ncu and profiles launches of the dense (fst_k_igemm) and 2:4
# (fst_k_igemm_sp) 64 x 128 kernels: speed of light, warp stall reasons, occupancy, launch statistics. Clocks are left
# as they are (--clock-control none). Writes OUTFILE; exits 0 whatever happened.
# Usage: bash gpu/ncu_conv.sh OUTFILE [launches to skip (12: past the stem)] [launches to profile (12)]
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTFILE [skip] [count]" >&2; exit 0; }
out="$1"; skip="${2:-12}"; count="${3:-12}"
source "$(dirname "${BASH_SOURCE[0]}")/ncu_env.sh"   # here, ncu (or a skip line and exit 0), CP
echo "NCU $ncu; kernels fst_k_igemm, fst_k_igemm_sp; skip $skip, profile $count" > "$out"
FST4J_CUDA_SYNC=0 timeout 240 "$ncu" --target-processes all --clock-control none -k 'regex:^fst_k_igemm(_sp)?$' \
  --launch-skip "$skip" --launch-count "$count" --section SpeedOfLight --section WarpStateStats --section Occupancy \
  --section LaunchStats --section MemoryWorkloadAnalysis \
  "$here/.gpu/jre/bin/java" --enable-native-access=ALL-UNNAMED -Xmx6g -cp "$CP" fst4j.shim.CudaConvBench --reps 2 \
  "${TMPDIR:-/tmp}/ncu-conv.txt" >> "$out" 2>&1 || echo "NCU exit code $?" >> "$out"
exit 0
