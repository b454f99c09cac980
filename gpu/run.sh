#!/usr/bin/env bash
# One call on a lent GPU machine (no Java, no network): checks the CUDA declarations against NVIDIA's headers,
# makes sure both shims load (rebuilding them there with gcc/nvcc if the carried ones do not), runs the GPU tests
# (first the block kernels CudaBlockKernelsTest in their own JVM, then CudaKernelsTest against the CPU kernels, the CUDA tensor ops CudaTensorOpsTest / CudaMemoryTest and the optimizer
# CudaOptimizerTest and two ResNet training steps CudaResNetStepTest / CudaModelTest against the CPU, CudaStatusTest,
# NativeLoadTest, the cuBLAS GemmEx / cuSPARSELt / event entry points CudaMixedPrecisionTest, the GEMM benchmark's
# smoke mode CudaGemmBenchTest, the 2:4 product CudaSpmmTest, the GEMM precisions CudaMatmulPrecisionTest), runs
# the kernel and cuSPARSELt tests under compute-sanitizer's memcheck (gpu/sanitize.sh, memcheck.txt) and the block
# kernels under its racecheck (racecheck.txt), the convolution benchmark (CudaConvBench, conv.txt: lowered vs implicit
# GEMMs, dense and 2:4), the GEMM benchmark (CudaGemmBench, gemm.txt), the training-step comparison (gpu/step.sh, step.txt, with each fst4j
# configuration's kernel profile), the cuSPARSELt layout / algorithm probe (gpu/splt_probe.sh, probe.txt) and the
# warp-level tensor-core ceilings, mma.sync against mma.sp (gpu/mma_peak.sh, mma.txt, in all.tgz), our own GEMM on the
# warpgroup tensor cores, wgmma and wgmma.sp, against cuBLAS (CudaWgGemmBench, wgg.txt), and prints a short table last.
# Results of past calls: gpu/results/.
# Time: the whole run stays within RUN_BUDGET_S (default 480 s; the run tool allows 600 s a call and the session's
# device time is 15 minutes, machine start included): tests <= 40 + 150 s, convolution benchmark <= 120 s, GEMM
# benchmark <= 150 s, the step comparison
# gets what is left (at most 180 s), the probe after it (at most 120 s), the ceilings (60 s) and the warpgroup GEMM (90 s);
# the sanitizers come last (since session 35) and take what is left: memcheck <= 90 s, racecheck <= 60 s, memcheck of
# the everyday ops (ops-memcheck.txt) <= 75 s.
# --only tests,memcheck,conv,gemm,step,probe,mma,wgg runs only the named parts (a second, shorter call).
# Needs .gpu/ from gpu/prepare.sh, carried with the run tool:  carry [".gpu"], command "bash gpu/run.sh".
# Results under $OUT (default .gpu/out). --no-gpu: for a machine without a GPU (checks the script's paths and
# steps; the kernel tests are then skipped and a missing device is not an error). FORCE_REBUILD=1 rebuilds the
# shims on the machine even when the carried ones load.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
nogpu=0; only="tests,memcheck,conv,gemm,step,probe,mma,wgg"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-gpu) nogpu=1 ;;
    --only) only="$2"; shift ;;
    *) echo "run: unknown argument $1 (--no-gpu, --only tests,memcheck,conv,gemm,step,probe,mma,wgg)" >&2; exit 2 ;;
  esac; shift
done
wants() { [[ ",$only," == *",$1,"* ]]; }
BUDGET="${RUN_BUDGET_S:-480}"
left() { echo $(( BUDGET - SECONDS )); }
cap() { local l; l=$(left); [ "$1" -lt "$l" ] && echo "$1" || echo $(( l > 0 ? l : 1 )); }   # min(want, what is left)
# Everything is written under .gpu/out; where the run tool's $OUT is set, a copy goes there as it is made, within the tool's
# limit of 8 files coming back: the five main text files, the JUnit table and all.tgz with every file (JUnit XML, logs)
DEST="${OUT:-}"; OUT="$here/.gpu/out"; rm -rf "$OUT"; mkdir -p "$OUT"
[ "$DEST" = "$OUT" ] && DEST=""
publish() {
  [ -n "$DEST" ] || return 0
  tar czf "$DEST/all.tgz.part" -C "$OUT" . 2>/dev/null && mv -f "$DEST/all.tgz.part" "$DEST/all.tgz"
  for f in summary.txt tests.txt conv.txt step.txt run.log table.txt probe.txt; do [ -f "$OUT/$f" ] && cp -f "$OUT/$f" "$DEST/$f"; done
  return 0
}
if [ -n "$DEST" ]; then ( while sleep 15; do publish; done ) & PUBLISHER=$!; trap 'kill $PUBLISHER 2>/dev/null; publish' EXIT; fi
G="$here/.gpu"; JAVA="$G/jre/bin/java"
LIB="$G/lib"; CP="$LIB/junit-platform-console-standalone.jar"
for m in native-cuda tensor sparse autograd nn; do CP="$CP:$LIB/fst4j-$m.jar"; done
for m in native-cuda tensor sparse nn; do CP="$CP:$LIB/fst4j-$m-tests.jar"; done
CP="$CP:$LIB/jqwik-api.jar:$LIB/jqwik-engine.jar"
log() { echo "run: $*" | tee -a "$OUT/run.log"; }
[ -x "$JAVA" ] && [ -f "$LIB/fst4j-native-cuda.jar" ] || { echo "run: .gpu/ missing: run gpu/prepare.sh here and carry .gpu" >&2; exit 2; }
: > "$OUT/run.log"

# ---- the machine ----
{ echo "== nvidia-smi"; nvidia-smi 2>&1 | head -20; echo "== nvcc"; nvcc --version 2>&1 | tail -2; echo "== gcc"; gcc --version 2>&1 | head -1
  echo "== python3"; python3 --version 2>&1; } > "$OUT/machine.txt"
if [ "$nogpu" = 0 ] && ! nvidia-smi -L > /dev/null 2>&1; then log "WARNING: nvidia-smi finds no GPU"; fi

# ---- NVIDIA wheel folders (libraries and headers) found with python3 ----
source "$here/gpu/wheel_dirs.sh"   # wheel_dirs lib|include
LIBDIRS="$(wheel_dirs lib)"; INCDIRS="$(wheel_dirs include)"
export FST4J_CUDA_LIB_DIR="${FST4J_CUDA_LIB_DIR:+$FST4J_CUDA_LIB_DIR:}$LIBDIRS"
log "wheel lib folders: ${LIBDIRS:-none}"
echo "$LIBDIRS" | tr ':' '\n' > "$OUT/wheel-lib-dirs.txt"
for d in ${LIBDIRS//:/ }; do ls "$d"; done > "$OUT/wheel-libs.txt" 2>&1

# ---- our CUDA declarations against the real headers ----
inc=(-I/usr/local/cuda/include); for d in ${INCDIRS//:/ }; do inc+=(-I"$d"); done
# as C first; cuSPARSELt 0.8.0's header is C++ only (<cstddef>), so then as C++ (the same checks, see decl_check.c)
if gcc -std=gnu11 -Wall -Werror "${inc[@]}" gpu/decl_check.c -o "$G/decl_check" > "$OUT/decl_check.txt" 2>&1 \
   || { echo "== as C++" >> "$OUT/decl_check.txt"
        g++ -x c++ -std=gnu++17 -Wall -Werror "${inc[@]}" gpu/decl_check.c -o "$G/decl_check" >> "$OUT/decl_check.txt" 2>&1; }; then
  "$G/decl_check" >> "$OUT/decl_check.txt" 2>&1; DECL="ok"
else DECL="MISMATCH (see decl_check.txt)"; fi
log "declarations: $DECL"; sed 's/^/  /' "$OUT/decl_check.txt" | tail -5

# ---- do the carried shims load here? else rebuild them on this machine ----
JOPTS=(--enable-native-access=ALL-UNNAMED)
probe() { "$JAVA" "${JOPTS[@]}" -cp "$CP" "$1" 2>&1; }
cpu="$(probe fst4j.shim.NativeLoadTest)"; cuda="$(probe fst4j.shim.CudaStatusTest)"
echo "$cpu" > "$OUT/probe-carried.txt"; echo "$cuda" >> "$OUT/probe-carried.txt"
rebuilt="no"
if [ "${FORCE_REBUILD:-0}" = 1 ] || ! grep -q '^LOADED' <<< "$cpu" || grep -Eq 'STATUS (libfst4j_cuda.so not built|cannot load libfst4j_cuda.so|cannot load the fst4j kernels|cannot load the CUDA shim)' <<< "$cuda"; then
  log "carried shims do not load here: rebuilding with $(command -v nvcc || echo 'no nvcc')"
  # only the two libraries the device runs (the host emulator is not needed here, and g++ may be missing)
  if make -C native-cuda/src/main/c OUT="$G/build/native" OBJ="$G/build/obj" -j8 "$G/build/native/libfst4j.so" "$G/build/native/libfst4j_cuda.so" \
       > "$OUT/build.txt" 2>&1; then
    export FST4J_NATIVE_LIB="$G/build/native/libfst4j.so"
    [ -f "$G/build/native/libfst4j_cuda.so" ] && export FST4J_CUDA_LIB="$G/build/native/libfst4j_cuda.so"
    rebuilt="yes"
  else log "rebuild failed (see build.txt)"; tail -5 "$OUT/build.txt"; fi
  cpu="$(probe fst4j.shim.NativeLoadTest)"; cuda="$(probe fst4j.shim.CudaStatusTest)"
fi
STATUS="$(sed -n 's/^STATUS //p' <<< "$cuda")"
log "CPU shim: $(head -1 <<< "$cpu"); CUDA: $STATUS"

# ---- the tests ----
trc=skipped
if wants tests; then
# every kernel launch synchronised, so that a fault names its kernel (first runs are about correctness, not speed)
export FST4J_CUDA_SYNC="${FST4J_CUDA_SYNC:-1}"
# the block kernels (shared memory, mma, mma.sp) first and in their own JVM: a fault there (the emulator cannot see every
# shared-memory access) would leave that JVM's CUDA context unusable and fail every test after it
timeout "$(cap 40)" "$JAVA" "${JOPTS[@]}" -Xmx4g -cp "$CP" org.junit.platform.console.ConsoleLauncher execute --config jqwik.database="$G/jqwik-database" --disable-banner --disable-ansi-colors --details=tree \
  --select-class fst4j.shim.CudaBlockKernelsTest --reports-dir "$OUT/junit-block" > "$OUT/tests-block.txt" 2>&1
brc=$?
log "block-kernel tests exit code $brc ($(grep -hoE '[0-9]+ tests (successful|failed)' "$OUT/tests-block.txt" | tr '\n' ' '))"
timeout "$(cap 150)" "$JAVA" "${JOPTS[@]}" -Xmx4g -Dfst4j.splt.layoutDir="$OUT/splt-layout" -cp "$CP" org.junit.platform.console.ConsoleLauncher execute --config jqwik.database="$G/jqwik-database" --disable-banner --disable-ansi-colors --details=tree \
  --select-class fst4j.shim.CudaSparseLtLayoutTest --select-class fst4j.shim.CudaKernelsTest --select-class fst4j.shim.CudaStatusTest --select-class fst4j.shim.NativeLoadTest \
  --select-class fst4j.shim.CudaMixedPrecisionTest --select-class fst4j.shim.CudaGemmBenchTest \
  --select-class fst4j.tensor.CudaTensorOpsTest --select-class fst4j.tensor.CudaMemoryTest --select-class fst4j.nn.CudaOptimizerTest \
  --select-class fst4j.tensor.CudaSpmmTest --select-class fst4j.tensor.CudaMatmulPrecisionTest --select-class fst4j.tensor.CudaLanesTest --select-class fst4j.tensor.CudaLineSortTest \
  --select-class fst4j.nn.CudaResNetStepTest --select-class fst4j.nn.CudaModelTest --select-class fst4j.nn.CudaStepTimingTest \
  --select-class fst4j.sparse.CudaSparseTest --select-class fst4j.nn.CudaSparseMethodsTest --select-class fst4j.nn.train.CudaTrainerTest \
  --select-class fst4j.nn.CudaReSpropTest --select-class fst4j.nn.CudaAspMaskTest \
  --select-class fst4j.tensor.CudaMathOpsTest --select-class fst4j.tensor.CudaReduceOpsTest --select-class fst4j.nn.CudaVarMathTest \
  --select-class fst4j.nn.CudaLossesTest --select-class fst4j.nn.CudaLayerNormTest \
  --select-class fst4j.tensor.CudaAvgPoolTest --select-class fst4j.tensor.CudaBatchNormEvalBackwardTest --select-class fst4j.tensor.CudaNonFiniteTest \
  --select-class fst4j.tensor.CudaStridedWritesTest --select-class fst4j.tensor.CudaRefusedWritesKeepTheVersionTest --select-class fst4j.nn.CudaFrozenBatchNormTest \
  --select-class fst4j.tensor.CudaActivationOpsTest --select-class fst4j.nn.CudaActivationsTest \
  --select-class fst4j.nn.CudaConvGeometryTest --select-class fst4j.tensor.CudaDilatedLoweringTest \
  --select-class fst4j.nn.CudaVarOpsTest --select-class fst4j.nn.CudaAdamWTest --select-class fst4j.nn.train.CudaGradClipTrainerTest \
  --select-class fst4j.nn.CudaSrSteNMTest --select-class fst4j.sparse.CudaMagnitudeNMTest --select-class fst4j.nn.CudaTransformerTest \
  --select-class fst4j.nn.CudaPoolNormTorchTest --select-class fst4j.nn.CudaConvTransposeUpsampleTest \
  --select-class fst4j.nn.CudaVarEverydayOpsTest --select-class fst4j.nn.CudaMaxWithIndicesTest --select-class fst4j.nn.CudaSortTest \
  --select-class fst4j.nn.CudaMaskCheckCacheTest --select-class fst4j.nn.CudaUpsampleCacheTest --select-class fst4j.nn.CudaInterpolateModesTest \
  --select-class fst4j.nn.CudaQuantileTest --select-class fst4j.sparse.CudaMaskBitsTest --select-class fst4j.nn.CudaFlipRateTest \
  --select-class fst4j.nn.CudaKeptPrunedWeightsTest --select-class fst4j.nn.CudaSharedModuleThreadsTest --select-class fst4j.tensor.CudaInPlaceStepsCountTheWriteTest \
  --reports-dir "$OUT/junit" > "$OUT/tests.txt" 2>&1
trc=$?
[ "$trc" = 0 ] && [ "$brc" != 0 ] && trc=$brc
fi

# ---- convolution benchmark (fst4j.shim.CudaConvBench): Eq. 1 and 2 at ResNet-18's ImageNet convolutions, batch 256, the
# lowered path vs the implicit GEMMs, dense and 2:4 (mma.sp), both tiles, each checked first; conv.txt, its "CONV" lines in
# the summary. Without a GPU: the smoke mode on the emulator ----
crc=skipped
if wants conv; then
  if [ "$nogpu" = 0 ]; then
    FST4J_CUDA_SYNC=0 timeout "$(cap 120)" "$JAVA" "${JOPTS[@]}" -Xmx6g -cp "$CP" fst4j.shim.CudaConvBench "$OUT/conv.txt" > "$OUT/conv-log.txt" 2>&1
  else
    FST4J_CUDA_SYNC=0 timeout "$(cap 120)" "$JAVA" "${JOPTS[@]}" -Dfst4j.cuda.emulate=true -cp "$CP" fst4j.shim.CudaConvBench --smoke "$OUT/conv.txt" \
      > "$OUT/conv-log.txt" 2>&1
  fi
  crc=$?
  log "convolution benchmark exit code $crc"
fi

# ---- GEMM benchmark: Eq. 1-3 at ResNet-18 ImageNet conv shapes, batch 256 (fp32, TF32, bf16, cuSPARSELt 2:4, half-K),
# CUDA events, each variant checked once first; full results in gemm.txt, its "GEMM" table lines go into the summary.
# Without a GPU: the smoke mode on whatever back end loads (checks the paths) ----
grc=skipped
if wants gemm; then
if [ "$nogpu" = 0 ]; then
  FST4J_CUDA_SYNC=0 timeout "$(cap 150)" "$JAVA" "${JOPTS[@]}" -Xmx6g -cp "$CP" fst4j.shim.CudaGemmBench "$OUT/gemm.txt" > "$OUT/gemm-log.txt" 2>&1
  grc=$?
else
  FST4J_CUDA_SYNC=0 timeout "$(cap 150)" "$JAVA" "${JOPTS[@]}" -Dfst4j.cuda.emulate=true -cp "$CP" fst4j.shim.CudaGemmBench --smoke "$OUT/gemm.txt" \
    > "$OUT/gemm-log.txt" 2>&1
  grc=$?
fi
log "GEMM benchmark exit code $grc"
fi
[ -f "$OUT/gemm.txt" ] || echo "(no gemm.txt: benchmark $grc; see gemm-log.txt)" > "$OUT/gemm.txt"
[ -f "$OUT/gemm-log.txt" ] || : > "$OUT/gemm-log.txt"

# ---- step timing (gpu/step.sh): ResNet-18 ImageNet stem, batch 256, 224x224, fst4j DENSE vs FST3_IR at bf16 GEMM
# precision vs PyTorch bf16 channels_last (and fp32), CIFAR ResNet-18, torch's 2:4 GEMM; within what is left of the
# budget (at most 180 s); step.txt and step-table.txt. Without a GPU: the same parts at toy sizes ----
if wants step; then
  sb=$(cap 180)
  if [ "$nogpu" = 0 ]; then STEP_BUDGET_S=$sb JAVA="$JAVA" CP="$CP" OUT="$OUT" bash gpu/step.sh > "$OUT/step-log.txt" 2>&1
  else STEP_BUDGET_S=$sb JAVA="$JAVA" CP="$CP" OUT="$OUT" bash gpu/step.sh --no-gpu > "$OUT/step-log.txt" 2>&1; fi
  log "step timing exit code $? (budget ${sb}s)"
fi
[ -f "$OUT/step-table.txt" ] || echo "(no step-table.txt; see step-log.txt)" > "$OUT/step-table.txt"

# ---- cuSPARSELt layout probe (gpu/splt_probe.sh: which operand orders / algorithms make 2:4 beat cuBLAS dense at
# ResNet-18's shapes; a C++ program built here against the wheels' headers), within what is left (at most 120 s) ----
if wants probe && [ "$nogpu" = 0 ]; then
  timeout "$(cap 120)" bash gpu/splt_probe.sh "$OUT/probe.txt" > "$OUT/probe-log.txt" 2>&1
  log "cuSPARSELt probe exit code $?"
fi

# ---- warp-level tensor-core ceilings (gpu/mma_peak.sh: mma.sync vs mma.sp from registers, a few seconds; mma.txt) ----
if wants mma && [ "$nogpu" = 0 ]; then
  timeout "$(cap 60)" bash gpu/mma_peak.sh "$OUT/mma.txt" > /dev/null 2>&1
  log "tensor-core ceilings: $(grep -h '^MMA best' "$OUT/mma.txt" 2>/dev/null || echo 'no result, see mma.txt')"
fi

# ---- our GEMM on the warpgroup tensor cores, wgmma and wgmma.sp, against cuBLAS bf16 (CudaWgGemmBench, wgg.txt;
# ResNet-18's conv-as-GEMM shapes at batch 256, each product compared with cuBLAS first), at most 90 s ----
if wants wgg && [ "$nogpu" = 0 ]; then
  FST4J_CUDA_SYNC=0 timeout "$(cap 90)" "$JAVA" "${JOPTS[@]}" -Xmx4g -cp "$CP" fst4j.shim.CudaWgGemmBench "$OUT/wgg.txt" > "$OUT/wgg-log.txt" 2>&1
  log "warpgroup GEMM benchmark exit code $?"
fi

# ---- memcheck (gpu/sanitize.sh; last of the parts, since session 35: the timings come first and the sanitizers take what is left): the tests of our own kernels and of the cuSPARSELt path under compute-sanitizer, which
# names any out-of-bounds access (the emulator checks ranges per call, not per access; cuSPARSELt 0.8.0 over-read its
# operands before Cuda.LIBRARY_TAIL), at most 90 s; memcheck.txt in all.tgz, its verdict in the summary ----
mrc=skipped
if wants memcheck && [ "$nogpu" = 0 ]; then
  PLAIN=0 TAG= CHECK_S=$(cap 90) OUT="$OUT" bash gpu/sanitize.sh fst4j.tensor.CudaTensorOpsTest fst4j.tensor.CudaSpmmTest \
    fst4j.nn.CudaSparseMethodsTest fst4j.shim.CudaBlockKernelsTest > "$OUT/memcheck-log.txt" 2>&1
  mrc=$?
  # the block kernels' shared memory: races between threads and barrier misuse (racecheck.txt)
  # (the sort's block kernel is left out: with CudaSortTest's long lines, run 37's racecheck ran past its 60 s, no hazard
  # reported by then, and took the block kernels' verdict with it)
  PLAIN=0 TAG= TOOL=racecheck CHECK_S=$(cap 60) OUT="$OUT" bash gpu/sanitize.sh fst4j.shim.CudaBlockKernelsTest >> "$OUT/memcheck-log.txt" 2>&1
  rrc=$?
  log "racecheck exit code $rrc ($(grep -hoE 'RACECHECK SUMMARY: [0-9]* hazards.*' "$OUT/racecheck.txt" 2>/dev/null | head -1 || echo 'no summary'))"
  # the everyday ops of sessions 27-35 (flat-index gathers and scatters, lanes, max with indices, convolution geometry, the sorts,
  # the mask and upsample caches; since session 41 the kept pruned weights of eval-mode forwards and a module shared by threads)
  PLAIN=0 TAG=ops- CHECK_S=$(cap 75) OUT="$OUT" bash gpu/sanitize.sh fst4j.nn.CudaVarEverydayOpsTest fst4j.tensor.CudaLanesTest \
    fst4j.nn.CudaMaxWithIndicesTest fst4j.nn.CudaConvGeometryTest fst4j.nn.CudaSortTest fst4j.tensor.CudaLineSortTest \
    fst4j.nn.CudaMaskCheckCacheTest fst4j.nn.CudaUpsampleCacheTest fst4j.nn.CudaKeptPrunedWeightsTest fst4j.nn.CudaSharedModuleThreadsTest >> "$OUT/memcheck-log.txt" 2>&1
  orc=$?
  log "memcheck of the everyday ops exit code $orc ($(grep -ho 'ERROR SUMMARY: [0-9]* errors' "$OUT/ops-memcheck.txt" 2>/dev/null | head -1 || echo 'no summary'))"
  log "memcheck exit code $mrc ($(grep -ho 'ERROR SUMMARY: [0-9]* errors' "$OUT/memcheck.txt" 2>/dev/null | head -1 || echo 'no summary'))"
fi

# ---- table, last ----
python3 - "$OUT/junit" "$OUT/junit-block" <<'PY' > "$OUT/table.txt" 2>&1 || echo "(no JUnit XML report)" > "$OUT/table.txt"
import glob, sys, xml.etree.ElementTree as ET
rows = []
for f in [f for d in sys.argv[1:] for f in glob.glob(d + "/*.xml")]:
    for tc in ET.parse(f).getroot().iter("testcase"):
        cls = tc.get("classname", "").split(".")[-1]
        res = "pass"
        for k in ("failure", "error", "skipped"):
            e = tc.find(k)
            if e is not None:
                msg = (e.get("message") or (e.text or "")).replace("org.opentest4j.TestAbortedException: ", "").strip().splitlines()
                res = {"failure": "FAIL", "error": "ERROR", "skipped": "skip"}[k] + (": " + msg[0][:110] if msg else "")
                break
        rows.append((cls, tc.get("name", "")[:60], tc.get("time", ""), res))
w = max([len(r[0]) + len(r[1]) for r in rows] + [10]) + 2
print(f"{'test':<{w}} {'s':>7}  result")
for cls, name, t, res in sorted(rows):
    print(f"{cls + '.' + name:<{w}} {t:>7}  {res}")
PY
{
  echo
  echo "==== fst4j CUDA device run ($(date -u +%FT%TZ)) ===="
  echo "GPU:          $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  echo "CUDA status:  $STATUS"
  grep -ho 'CUSPARSELT .*' "$OUT/tests.txt" 2>/dev/null | head -2 | sed 's/^/              /'
  echo "declarations: $DECL;  shims rebuilt here: $rebuilt;  JUnit exit code: $trc;  parts: $only;  ${SECONDS}s of the ${BUDGET}s budget"
  echo "memcheck:     exit code $mrc; $(grep -ho 'ERROR SUMMARY: [0-9]* errors' "$OUT/memcheck.txt" 2>/dev/null | head -1); everyday ops: exit code ${orc:-skipped}; $(grep -ho 'ERROR SUMMARY: [0-9]* errors' "$OUT/ops-memcheck.txt" 2>/dev/null | head -1)"
  echo "racecheck:    exit code ${rrc:-skipped}; $(grep -hoE 'RACECHECK SUMMARY: [0-9]* hazards.*' "$OUT/racecheck.txt" 2>/dev/null | head -1)"
  echo "GEMM benchmark (gemm.txt, exit code $grc):"; { grep -E '^(device:|GEMM|LAYER|2:4)' "$OUT/gemm.txt"; grep -q '^GEMM' "$OUT/gemm.txt" || tail -4 "$OUT/gemm-log.txt"; } | sed 's/^/  /'
  echo "convolution benchmark (conv.txt, exit code $crc):"; grep -E '^(device:|CONV)' "$OUT/conv.txt" 2>/dev/null | sed 's/^/  /'
  echo "step timing (step.txt):"; sed 's/^/  /' "$OUT/step-table.txt"
  echo "roofline bound of DENSE / FST3_IR (gpu/roofline.py at run 9's H100 rates; native-cuda/CUDA.md):"
  python3 "$here/gpu/roofline.py" 2>/dev/null | grep -E '^(lowered|implicit)' | sed 's/^/  /'
  [ -f "$OUT/mma.txt" ] && { echo "tensor-core ceilings (mma.txt):"; grep -E '^MMA (device|best|FAILED|skipped)' "$OUT/mma.txt" | sed 's/^/  /'; }
  [ -f "$OUT/wgg.txt" ] && { echo "warpgroup GEMM, ours against cuBLAS (wgg.txt):"; grep -E '^WGG' "$OUT/wgg.txt" | sed 's/^/  /'; tail -3 "$OUT/wgg-log.txt" 2>/dev/null | sed 's/^/  /'; }
  grep -q 'WGMMA TRANS-B' "$OUT/tests-block.txt" 2>/dev/null && { echo "wgmma with B MN-major (tests-block.txt):"; grep -h 'WGMMA TRANS-B' "$OUT/tests-block.txt" | sed 's/^.*WGMMA TRANS-B/  /; s/ (order .*//' | sort -u; }
  grep -q 'SPLT LAYOUT' "$OUT/tests.txt" 2>/dev/null && { echo "cuSPARSELt's compressed layout (tests.txt, dumps in splt-layout/):"; grep -hE 'SPLT LAYOUT .*(values in slots|row by row)' "$OUT/tests.txt" | sed 's/^.*SPLT LAYOUT/  /'; }
  [ -f "$OUT/probe.txt" ] && { echo "cuSPARSELt probe (probe.txt):"; grep -E '^(SUMMARY|BEST|best|summary)' "$OUT/probe.txt" | head -20 | sed 's/^/  /'; }
  echo "JUnit (every test in table.txt; here the ones that did not pass):"; grep -v ' pass$' "$OUT/table.txt" | sed 's/^/  /'
  grep -hE 'tests (successful|failed|skipped|aborted)' "$OUT/tests-block.txt" "$OUT/tests.txt" 2>/dev/null | tr -s ' ' | tr '\n' ';'; echo
} | tee "$OUT/summary.txt"
if [ "$nogpu" = 1 ] || [ "$trc" = skipped ]; then exit 0; fi
exit $trc
