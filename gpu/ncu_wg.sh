#!/usr/bin/env bash
# Nsight Compute on the warpgroup GEMM (a lent GPU machine, .gpu/ from gpu/prepare.sh carried): runs CudaWgGemmBench on one
# product (--gemm MxKxN --untimed: each form launched once per tile) under ncu and profiles our wgmma / wgmma.sp kernels
# (fst_k_wggemm: 64-row tile; wggemm2: 128 rows through registers; wggemm3: 128 rows through cp.async) beside cuBLAS's
# kernel for the same product: speed of light, warp stall reasons, occupancy, launch statistics, shared-memory bank
# conflicts. Clocks are left as they are (--clock-control none). Writes OUTFILE; exits 0 whatever happened.
# Usage: bash gpu/ncu_wg.sh OUTFILE [MxKxN (256x2304x50176: ResNet-18 layer 3's Eq. 1 at batch 256)]
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTFILE [MxKxN]" >&2; exit 0; }
out="$1"; shape="${2:-256x2304x50176}"
source "$(dirname "${BASH_SOURCE[0]}")/ncu_env.sh"   # here, ncu (or a skip line and exit 0), CP
echo "NCU $ncu; CudaWgGemmBench --gemm $shape --untimed; our wgmma kernels and cuBLAS's" > "$out"
FST4J_CUDA_SYNC=0 timeout "${NCU_S:-150}" "$ncu" --target-processes all --clock-control none \
  -k 'regex:^(fst_k_wggemm[23]?|nvjet.*|sm90_.*|cutlass.*)$' --launch-count 12 \
  --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats \
  --section MemoryWorkloadAnalysis_Tables --section ComputeWorkloadAnalysis \
  "$here/.gpu/jre/bin/java" --enable-native-access=ALL-UNNAMED -Xmx6g -cp "$CP" fst4j.shim.CudaWgGemmBench --gemm "$shape" --untimed \
  >> "$out" 2>&1 || echo "NCU exit code $?" >> "$out"
exit 0
