#!/usr/bin/env bash
# Training-step timing on a lent GPU machine (issue #6): a ResNet-18 step, batch 256, 224x224 synthetic data,
# fst4j DENSE vs FST3_IR (fst4j.nn.CudaStepTiming, resnet18in) and PyTorch from the machine's image
# (jmh/peers/torch_step_gpu.py: the same model, bf16 autocast + channels_last, and fp32 without TF32), all in one call;
# then fst4j's CIFAR ResNet-18 at batch 128 (DENSE and FST3_IR) and, if time is left, torch's 2:4 semi-structured GEMM at
# ResNet-18's shapes and cuDNN's Eq. 1-3 convolutions at CudaConvBench's layers (--convs). DENSE-rerun repeats the DENSE row in a fresh JVM (the spread between runs, 1 % in runs 20-22); A/B rows
# time a switch against the default in the same call: DENSE-igemm (-Dfst4j.cuda.igemm=true: Eq. 1 as one implicit-GEMM
# kernel per convolution), FST3_IR-igemm (also -Dfst4j.cuda.igemmSparse=true: the 2:4 Eq. 1 and 2 on mma.sp), DENSE-igemm64
# (FST4J_CUDA_IGEMM_TILE=64: every implicit GEMM on the 64 x 128 tile), DENSE-noalign (-Dfst4j.cuda.alignLowered=false:
# the stem's lowered GEMMs unaligned, as before session 24), DENSE-igemm3 / FST3_IR-igemm3 (also
# -Dfst4j.cuda.igemmEq3=true: Eq. 3 as an implicit GEMM, no im2col left) and DENSE-igemm2 (also -Dfst4j.cuda.igemmEq2=true: Eq. 2 of the stride-1 convolutions as the
# implicit-GEMM convolution of dY with the tap-reversed weight), DENSE-wg / FST3_IR-wg (also -Dfst4j.cuda.wgmma=true: those
# implicit-GEMM convolutions on the warpgroup tensor cores, wgmma / wgmma.sp on bf16 NHWC, where the channels fit; DENSE-wga
# with FST4J_CUDA_WG_ASYNC=1: the 128-channel tile's slices through cp.async), and since session 41 DENSE-nobatched
# (-Dfst4j.cuda.batchedNchw=false: Eq. 1 as one product and a permute instead of the batched NCHW product),
# DENSE-im2col4 / FST3_IR-im2col4 (FST4J_CUDA_IM2COL_VEC=1: four-column span im2col only) and FST3_IR-nosplt
# (-Dfst4j.cuda.sparseLt=false: Eq. 1 and 2 as dense bf16 GEMMs of the pruned operands). Runs 17-22 timed FST4J_CUDA_IM2COL_VEC=0,
# -Dfst4j.cuda.nchwProduct=false, -Dfst4j.cuda.fusedPrune=false, -Dfst4j.cuda.shareBf16=false and -Dfst4j.cuda.sparseLt=false. Writes $OUT/step.txt (every part's output and exit status) and prints a short table last
# (also $OUT/step-table.txt): ms per step and the ratios FST3_IR / DENSE and fst4j / PyTorch bf16.
#
# Called by gpu/run.sh after its tests, with its settings:  JAVA="$JAVA" CP="$CP" OUT="$OUT" bash gpu/step.sh
# (FST4J_CUDA_LIB_DIR and, after a rebuild, FST4J_NATIVE_LIB / FST4J_CUDA_LIB are inherited from run.sh's
# environment). Alone, it takes JAVA and CP from .gpu/ (gpu/prepare.sh) as run.sh does, and the NVIDIA wheel
# folders from python3.
#   --no-gpu   on a machine without a GPU: checks the paths and every step of the script on the host emulator
#              (tiny sizes, -Dfst4j.cuda.emulate=true) and PyTorch on the CPU; the numbers mean nothing.
# STEP_ONLY=REGEX runs only the parts whose name matches (grep -E), e.g. STEP_ONLY='resnet18in (DENSE|FST3_IR)( igemm2?| wga?)?$'
# for the warpgroup rows and their baselines (run.sh passes it through).
# Time: every part has its own timeout, and all parts together stay within STEP_BUDGET_S (default 180 s); a part that
# times out or fails is written down as such and the next part runs. The script always exits 0 when its inputs exist.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
nogpu=0; [ "${1:-}" = "--no-gpu" ] && nogpu=1
OUT="${OUT:-$here/.gpu/out}"; mkdir -p "$OUT"
G="$here/.gpu"
JAVA="${JAVA:-$G/jre/bin/java}"
if [ -z "${CP:-}" ]; then
  CP="$G/lib/fst4j-native-cuda.jar"
  for m in tensor sparse autograd nn; do CP="$CP:$G/lib/fst4j-$m.jar"; done
  CP="$CP:$G/lib/fst4j-nn-tests.jar"
fi
PEER="$here/jmh/peers/torch_step_gpu.py"
BUDGET="${STEP_BUDGET_S:-180}"
LOG="$OUT/step.txt"; TABLE="$OUT/step-table.txt"
: > "$LOG"
note() { echo "step: $*" | tee -a "$LOG"; }

# ---- inputs ----
missing=""
[ -x "$JAVA" ] || missing="$missing java($JAVA)"
for j in ${CP//:/ }; do [ -f "$j" ] || missing="$missing $j"; done
if [ -n "$missing" ]; then note "missing:$missing (run gpu/prepare.sh here and carry .gpu)"; exit 2; fi
if [ -z "${FST4J_CUDA_LIB_DIR:-}" ]; then   # run.sh sets it; alone, ask python3 for NVIDIA's wheel folders
  source "$here/gpu/wheel_dirs.sh"
  d="$(wheel_dirs lib)"
  [ -n "$d" ] && export FST4J_CUDA_LIB_DIR="$d"
fi
note "$(date -u +%FT%TZ) java $JAVA; FST4J_CUDA_LIB_DIR=${FST4J_CUDA_LIB_DIR:-unset}; budget ${BUDGET}s$( [ $nogpu = 1 ] && echo '; NO-GPU CHECK (emulator / CPU, numbers mean nothing)')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 | sed 's/^/step: GPU /' | tee -a "$LOG"

start=$SECONDS
# part NAME WANT_S MIN_S CMD...: runs CMD with timeout min(WANT_S, what is left of the budget); skipped under MIN_S
part() {
  local name="$1" want="$2" min="$3"; shift 3
  if [ -n "${STEP_ONLY:-}" ] && ! echo "$name" | grep -qE "$STEP_ONLY"; then echo "== $name: not in STEP_ONLY" >> "$LOG"; return; fi
  local left=$((BUDGET - (SECONDS - start))); local t=$want; [ "$left" -lt "$t" ] && t=$left
  echo "== $name" >> "$LOG"
  if [ "$t" -lt "$min" ]; then note "$name: SKIPPED (${left}s of the ${BUDGET}s budget left, needs ${min}s)"; return; fi
  local t0=$SECONDS
  timeout -k 5 "$t" "$@" >> "$LOG" 2>&1; local rc=$?
  case $rc in
    0) note "$name: done in $((SECONDS - t0))s" ;;
    124|137) note "$name: TIMED OUT after ${t}s (exit $rc); lines above are what it printed" ;;
    *) note "$name: exit $rc after $((SECONDS - t0))s" ;;
  esac
}

# GEMM precision of the fst4j steps (CudaOps.MatmulPrecision): bf16 by default, the precision of the 2:4 products
# (cuSPARSELt takes 16-bit operands only) and of PyTorch's bf16 autocast, so DENSE, FST3_IR and torch compare alike
MATMUL="${FST4J_MATMUL:-bf16}"
note "fst4j GEMM precision: $MATMUL (-Dfst4j.cuda.matmul; FST3_IR's Eq. 1/2 use cuSPARSELt only at bf16)"
J=("$JAVA" --enable-native-access=ALL-UNNAMED -Xmx16g -Dfst4j.cuda.matmul="$MATMUL" -cp "$CP")
export FST4J_CUDA_SYNC=0   # timing: launches are not synchronised one by one
if [ "$nogpu" = 0 ]; then
  # ResNet-18 ImageNet stem, batch 256, 224x224: 2 warm-up + up to 8 timed steps (at most 20 s of them), 2 profiled steps
  part "fst4j resnet18in DENSE" 75 20 "${J[@]}" fst4j.nn.CudaStepTiming --max-seconds 20 --profile 2 resnet18in:256:2:8:DENSE
  part "fst4j resnet18in FST3_IR" 75 20 "${J[@]}" fst4j.nn.CudaStepTiming --max-seconds 20 --profile 2 resnet18in:256:2:8:FST3_IR
  # the two fst4j rows again in fresh JVMs: the spread between runs of the same code, beside the A/B row below
  part "fst4j resnet18in DENSE rerun" 45 15 "${J[@]}" -Dfst4j.step.label=rerun \
    fst4j.nn.CudaStepTiming --max-seconds 10 resnet18in:256:2:8:DENSE
  # A/B: DENSE's Eq. 1 as one implicit-GEMM kernel per convolution (no im2col matrix, no cuBLAS, no permute), profiled
  part "fst4j resnet18in DENSE igemm" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.step.label=igemm \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  # A/B: FST3_IR's Eq. 1 as 2:4 implicit-GEMM convolutions on the sparse tensor cores (mma.sp: no cuSPARSELt, no compression,
  # no lowered matrix; a dense layer's Eq. 1 through the dense implicit GEMM)
  part "fst4j resnet18in FST3_IR igemm" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmSparse=true -Dfst4j.step.label=igemm \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:FST3_IR
  # A/B (session 26): the implicit-GEMM convolutions on the warpgroup tensor cores (-Dfst4j.cuda.wgmma=true: x or dY to bf16
  # NHWC, then wgmma / wgmma.sp) where the channels fit its tiles: DENSE's Eq. 1 and stride-1 Eq. 2 (against DENSE-igemm2, the
  # same switches on the mma kernels), FST3_IR's 2:4 Eq. 2 (against FST3_IR-igemm; its Eq. 1 stays on mma.sp: S(W)'s groups
  # run along (c, kh, kw), which NHWC tiles do not hold)
  part "fst4j resnet18in DENSE wg" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true -Dfst4j.cuda.wgmma=true \
    -Dfst4j.step.label=wg fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  # ... and with the 128-channel tile's K slices copied by cp.async into three stages (FST4J_CUDA_WG_ASYNC=1, wggemm3)
  part "fst4j resnet18in DENSE wga" 45 15 env FST4J_CUDA_WG_ASYNC=1 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true \
    -Dfst4j.cuda.wgmma=true -Dfst4j.step.label=wga fst4j.nn.CudaStepTiming --max-seconds 10 resnet18in:256:2:8:DENSE
  part "fst4j resnet18in FST3_IR wg" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmSparse=true -Dfst4j.cuda.wgmma=true \
    -Dfst4j.step.label=wg fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:FST3_IR
  # ... and Eq. 3 as implicit GEMMs too (the weight gradients over split ranges of positions, no im2col at all)
  part "fst4j resnet18in FST3_IR igemm3" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmSparse=true -Dfst4j.cuda.igemmEq3=true \
    -Dfst4j.step.label=igemm3 fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:FST3_IR
  part "fst4j resnet18in DENSE igemm3" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true -Dfst4j.cuda.igemmEq3=true \
    -Dfst4j.step.label=igemm3 fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  # A/B (session 41): DENSE's Eq. 1 as a [Cout, N*Ho*Wo] product and a permute into NCHW, as before the batched cuBLAS call
  # that writes each image's product in place (planes of a multiple of 8 positions: 112x112, 56x56, 28x28)
  part "fst4j resnet18in DENSE nobatched" 45 15 "${J[@]}" -Dfst4j.cuda.batchedNchw=false -Dfst4j.step.label=nobatched \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  # A/B (session 41): the span im2col with four columns per thread only, as before the eight-column kernels (16-byte stores
  # at rows of a multiple of 8 positions) became the default after run 41
  part "fst4j resnet18in DENSE im2col4" 45 15 env FST4J_CUDA_IM2COL_VEC=1 "${J[@]}" -Dfst4j.step.label=im2col4 \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  part "fst4j resnet18in FST3_IR im2col4" 45 15 env FST4J_CUDA_IM2COL_VEC=1 "${J[@]}" -Dfst4j.step.label=im2col4 \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:FST3_IR
  # A/B: FST3_IR's Eq. 1 and 2 as dense bf16 GEMMs of the pruned operands (no cuSPARSELt, no compression; Eq. 1 then takes
  # the batched NCHW product where DENSE does)
  part "fst4j resnet18in FST3_IR nosplt" 45 15 "${J[@]}" -Dfst4j.cuda.sparseLt=false -Dfst4j.step.label=nosplt \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:FST3_IR
  # A/B: the stem's lowered GEMMs handed to cuBLAS unaligned (K = 147 and dW rows of 147 floats), as before session 24
  # (with the batched NCHW product off: that path pads K itself, so the stem's Eq. 1 would stay aligned)
  part "fst4j resnet18in DENSE noalign" 45 15 "${J[@]}" -Dfst4j.cuda.alignLowered=false -Dfst4j.cuda.batchedNchw=false -Dfst4j.step.label=noalign \
    fst4j.nn.CudaStepTiming --max-seconds 10 resnet18in:256:2:8:DENSE
  # A/B: SR-STE's decay as its own kernel before the SGD step (the default fuses it into the step since session 22)
  part "fst4j resnet18in FST3_IR srste2" 45 15 "${J[@]}" -Dfst4j.cuda.fusedSrste=false -Dfst4j.step.label=srste2 \
    fst4j.nn.CudaStepTiming --max-seconds 10 resnet18in:256:2:8:FST3_IR
  # A/B: Eq. 2 of the stride-1 convolutions as implicit-GEMM convolutions of dY too (no W^T dY matrix, no col2im there)
  part "fst4j resnet18in DENSE igemm2" 45 15 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true -Dfst4j.step.label=igemm2 \
    fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  part "torch resnet18in" 60 20 python3 "$PEER" --device cuda --batch 256 --size 224 --warmup 5 --steps 15 --modes bf16_cl,fp32
  # A/B: every implicit GEMM on the 64 x 128 tile (the default takes 128 x 64 from 128 output channels on)
  part "fst4j resnet18in DENSE igemm64" 45 15 env FST4J_CUDA_IGEMM_TILE=64 "${J[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true \
    -Dfst4j.step.label=igemm64 fst4j.nn.CudaStepTiming --max-seconds 10 --profile 1 resnet18in:256:2:8:DENSE
  part "fst4j resnet18 (CIFAR) DENSE" 35 15 "${J[@]}" fst4j.nn.CudaStepTiming --max-seconds 10 resnet18:128:2:8:DENSE
  part "fst4j resnet18 (CIFAR) FST3_IR" 35 15 "${J[@]}" fst4j.nn.CudaStepTiming --max-seconds 10 resnet18:128:2:8:FST3_IR
  part "torch 2:4 semi-structured GEMM" 30 15 python3 "$PEER" --device cuda --batch 256 --size 224 --modes none --spgemm
  # cuDNN's Eq. 1-3 at CudaConvBench's layers (bf16, channels_last and NCHW): the per-layer peer of conv.txt
  part "torch cuDNN convolutions" 45 15 python3 "$PEER" --device cuda --batch 256 --size 224 --modes none --convs
else
  E=("${J[@]/-Xmx16g/-Dfst4j.cuda.emulate=true}")
  part "fst4j resnet18in DENSE" 60 5 "${E[@]}" fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:DENSE:32
  part "fst4j resnet18in FST3_IR" 60 5 "${E[@]}" fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:FST3_IR:32
  part "fst4j resnet18in DENSE rerun" 60 5 "${E[@]}" -Dfst4j.step.label=rerun \
    fst4j.nn.CudaStepTiming --max-seconds 5 resnet18in:2:1:2:DENSE:32
  # (keepColumns=false: at these tiny sizes DENSE would keep its float32 columns and never lower again, as it does at 224 px)
  part "fst4j resnet18in DENSE igemm" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=igemm \
    fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:DENSE:32
  part "fst4j resnet18in FST3_IR igemm" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmSparse=true -Dfst4j.conv.keepColumns=false \
    -Dfst4j.step.label=igemm fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:FST3_IR:32
  part "fst4j resnet18in DENSE wg" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true -Dfst4j.cuda.wgmma=true \
    -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=wg fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:DENSE:32
  part "fst4j resnet18in DENSE wga" 60 5 env FST4J_CUDA_WG_ASYNC=1 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true \
    -Dfst4j.cuda.wgmma=true -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=wga fst4j.nn.CudaStepTiming --max-seconds 5 resnet18in:2:1:2:DENSE:32
  part "fst4j resnet18in FST3_IR wg" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmSparse=true -Dfst4j.cuda.wgmma=true \
    -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=wg fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:FST3_IR:32
  part "fst4j resnet18in FST3_IR igemm3" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmSparse=true -Dfst4j.cuda.igemmEq3=true \
    -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=igemm3 fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:FST3_IR:32
  part "fst4j resnet18in DENSE igemm3" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true -Dfst4j.cuda.igemmEq3=true \
    -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=igemm3 fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:DENSE:32
  part "fst4j resnet18in FST3_IR srste2" 60 5 "${E[@]}" -Dfst4j.cuda.fusedSrste=false -Dfst4j.step.label=srste2 \
    fst4j.nn.CudaStepTiming --max-seconds 5 resnet18in:2:1:2:FST3_IR:32
  part "fst4j resnet18in DENSE igemm2" 60 5 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true -Dfst4j.conv.keepColumns=false \
    -Dfst4j.step.label=igemm2 fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:DENSE:32
  part "torch resnet18in" 60 5 python3 "$PEER" --device cpu --batch 2 --size 64 --warmup 1 --steps 2 --modes bf16_cl,fp32
  part "fst4j resnet18in DENSE igemm64" 60 5 env FST4J_CUDA_IGEMM_TILE=64 "${E[@]}" -Dfst4j.cuda.igemm=true -Dfst4j.cuda.igemmEq2=true \
    -Dfst4j.conv.keepColumns=false -Dfst4j.step.label=igemm64 fst4j.nn.CudaStepTiming --max-seconds 5 --profile 1 resnet18in:2:1:2:DENSE:32
  part "fst4j resnet18 (CIFAR) DENSE" 60 5 "${E[@]}" fst4j.nn.CudaStepTiming --max-seconds 5 resnet18:2:0:1:DENSE
  part "fst4j resnet18 (CIFAR) FST3_IR" 60 5 "${E[@]}" fst4j.nn.CudaStepTiming --max-seconds 5 resnet18:2:0:1:FST3_IR
  part "torch 2:4 semi-structured GEMM" 30 5 python3 "$PEER" --device cpu --batch 2 --size 64 --modes none --spgemm
  part "torch cuDNN convolutions" 30 5 python3 "$PEER" --device cpu --batch 2 --size 64 --modes none --convs
fi
note "all parts: $((SECONDS - start))s"

# ---- table, last ----
summarize() {
python3 - "$LOG" <<'PY'
import re, sys
text = open(sys.argv[1]).read().splitlines()
def kv(line): return dict(re.findall(r"(\w+)=(\S+)", line))
rows, fails, notes = {}, [], []
for l in text:
    if re.match(r"TORCH (skipped|SMOKE)|CUDA: |no timing: ", l): notes.append(l); continue
    m = re.match(r"(STEP|TORCH) (\S+) (\S+) (batch=.*)", l)
    if not m: continue
    key = (m.group(1), m.group(2), m.group(3))
    if " FAILED " in l or l.endswith(" FAILED"): fails.append(l); continue
    rows[key] = kv(l)
print("== training step, ms (median, min-max over the timed steps) ==")
order = [("STEP", "resnet18in", "DENSE"), ("STEP", "resnet18in", "FST3_IR"), ("TORCH", "resnet18in", "bf16_cl"),
         ("TORCH", "resnet18in", "fp32"), ("STEP", "resnet18", "DENSE"), ("STEP", "resnet18", "FST3_IR")]
for k in order + [k for k in rows if k not in order]:
    who = "fst4j" if k[0] == "STEP" else "torch"
    r = rows.get(k)
    if r is None:
        print(f"{who:5s} {k[1]:10s} {k[2]:8s}  n/a (no result: see step.txt)"); continue
    cut = f" of {r['of']}" if "of" in r else ""
    print(f"{who:5s} {k[1]:10s} {k[2]:8s}  b{r.get('batch')} {r.get('size')}px  {float(r['median_ms']):9.1f} ms "
          f"({float(r['min_ms']):.1f}-{float(r['max_ms']):.1f}, {r.get('steps')}{cut} steps)  {r.get('img_per_s')} img/s  params {r.get('params', '?')}")
for l in fails: print("FAILED: " + l[:200])
for l in dict.fromkeys(notes): print(l[:200])
def med(k):
    r = rows.get(k); return float(r["median_ms"]) if r else None
def ratio(name, ka, kb):
    a, b = med(ka), med(kb)
    if not a or not b:
        print(f"{name:34s}    n/a ({ka[2] if not a else kb[0].lower() + ' ' + kb[2]} missing)"); return
    ra, rb = rows[ka], rows[kb]
    if (ra.get("batch"), ra.get("size")) != (rb.get("batch"), rb.get("size")):
        print(f"{name:34s}    n/a (batch/size differ: {ra.get('batch')}/{ra.get('size')} vs {rb.get('batch')}/{rb.get('size')})"); return
    print(f"{name:34s} {a / b:6.2f}")
print("== ratios of step times (< 1: the first is faster) ==")
ratio("fst4j FST3_IR / fst4j DENSE", order[1], order[0])
ratio("fst4j FST3_IR / torch bf16_cl", order[1], order[2])
ratio("fst4j DENSE / torch bf16_cl", order[0], order[2])
ratio("fst4j DENSE / torch fp32", order[0], order[3])
ratio("fst4j CIFAR FST3_IR / DENSE", order[5], order[4])
ratio("fst4j DENSE-rerun / DENSE", ("STEP", "resnet18in", "DENSE-rerun"), order[0])
ratio("fst4j FST3_IR-igemm / FST3_IR", ("STEP", "resnet18in", "FST3_IR-igemm"), order[1])
ratio("fst4j FST3_IR-igemm / DENSE-igemm", ("STEP", "resnet18in", "FST3_IR-igemm"), ("STEP", "resnet18in", "DENSE-igemm"))
ratio("fst4j DENSE-igemm / DENSE", ("STEP", "resnet18in", "DENSE-igemm"), order[0])
ratio("fst4j DENSE-wg / DENSE-igemm2", ("STEP", "resnet18in", "DENSE-wg"), ("STEP", "resnet18in", "DENSE-igemm2"))
ratio("fst4j DENSE-wg / DENSE", ("STEP", "resnet18in", "DENSE-wg"), order[0])
ratio("fst4j DENSE-wga / DENSE-wg", ("STEP", "resnet18in", "DENSE-wga"), ("STEP", "resnet18in", "DENSE-wg"))
ratio("fst4j FST3_IR-wg / FST3_IR-igemm", ("STEP", "resnet18in", "FST3_IR-wg"), ("STEP", "resnet18in", "FST3_IR-igemm"))
ratio("fst4j FST3_IR-wg / DENSE-wg", ("STEP", "resnet18in", "FST3_IR-wg"), ("STEP", "resnet18in", "DENSE-wg"))
ratio("fst4j DENSE-igemm2 / DENSE", ("STEP", "resnet18in", "DENSE-igemm2"), order[0])
ratio("fst4j DENSE-igemm2 / DENSE-igemm", ("STEP", "resnet18in", "DENSE-igemm2"), ("STEP", "resnet18in", "DENSE-igemm"))
ratio("fst4j DENSE-igemm64 / DENSE-igemm2", ("STEP", "resnet18in", "DENSE-igemm64"), ("STEP", "resnet18in", "DENSE-igemm2"))
ratio("fst4j FST3_IR / FST3_IR-srste2", order[1], ("STEP", "resnet18in", "FST3_IR-srste2"))
ratio("fst4j DENSE / DENSE-noalign", order[0], ("STEP", "resnet18in", "DENSE-noalign"))
ratio("fst4j DENSE / DENSE-nobatched", order[0], ("STEP", "resnet18in", "DENSE-nobatched"))
ratio("fst4j DENSE-im2col4 / DENSE", ("STEP", "resnet18in", "DENSE-im2col4"), order[0])
ratio("fst4j FST3_IR-im2col4 / FST3_IR", ("STEP", "resnet18in", "FST3_IR-im2col4"), order[1])
ratio("fst4j FST3_IR-nosplt / FST3_IR", ("STEP", "resnet18in", "FST3_IR-nosplt"), order[1])
ratio("fst4j FST3_IR-nosplt / DENSE", ("STEP", "resnet18in", "FST3_IR-nosplt"), order[0])
ratio("fst4j DENSE-igemm3 / DENSE", ("STEP", "resnet18in", "DENSE-igemm3"), order[0])
ratio("fst4j FST3_IR-igemm3 / FST3_IR", ("STEP", "resnet18in", "FST3_IR-igemm3"), order[1])
ratio("fst4j FST3_IR-igemm3 / DENSE-igemm3", ("STEP", "resnet18in", "FST3_IR-igemm3"), ("STEP", "resnet18in", "DENSE-igemm3"))
pf = [kv(l) | {"who": l.split()[1] + " " + l.split()[2]} for l in text if l.startswith("PROFILE ")]
if pf:
    print("== fst4j per-part breakdown (ms per step, device synchronised per part: slower than the step above) ==")
    for p in pf:
        print(f"{p['who']:20s} " + " ".join(f"{k[:-3]}={float(v):.1f}" for k, v in p.items() if k.endswith("_ms")))
cr = [l for l in text if l.startswith("CONVREF ") and "median_ms=" in l]
if cr:
    print("== cuDNN convolutions, bf16 (torch; compare conv.txt), median ms (TFLOP/s) ==")
    for l in cr:
        f = l.split(); v = kv(l)
        print(f"{f[1]:8s} {f[2]} {f[3]:9s} {float(v['median_ms']):8.4f} ({float(v['tflops']):6.1f})")
sp = [l for l in text if l.startswith("SPGEMM")]
if sp:
    print("== torch 2:4 semi-structured GEMM vs dense bf16 (Eq. 1 shapes) ==")
    for l in sp: print(l[:160])
PY
}
{ echo; echo "==== step timing ($(date -u +%FT%TZ))$( [ $nogpu = 1 ] && echo ': NO-GPU CHECK, the numbers mean nothing') ===="
  summarize 2>&1 || { echo "(python3 failed: the raw lines)"; grep -E '^(STEP|TORCH|PROFILE|SPGEMM) ' "$LOG"; }
  grep -E '^step: .*(TIMED OUT|SKIPPED|exit [1-9])' "$LOG"
} > "$TABLE"
cat "$TABLE" >> "$LOG"
cat "$TABLE"
exit 0
