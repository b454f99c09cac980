#!/usr/bin/env bash
# Nsight Systems over fst4j's ResNet-18 GPU step (a lent GPU machine, .gpu/ from gpu/prepare.sh carried): how much of
# a step the GPU spends in kernels and copies, i.e. whether the step waits on the host's launches. Runs CudaStepTiming
# (resnet18in, batch 256, 2 warm-up + 4 timed steps, METHOD, default DENSE) under nsys, then prints the kernel and copy
# summaries and the timed steps. Writes OUTFILE; exits 0 whatever happened.
# Usage: bash gpu/nsys_step.sh OUTFILE [METHOD]
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 OUTFILE [METHOD]" >&2; exit 0; }
out="$1"; method="${2:-DENSE}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; cd "$here"
nsys="$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys /usr/local/cuda*/nsight-systems*/bin/nsys 2>/dev/null | head -1)"
[ -n "$nsys" ] || { echo "NSYS skipped: no nsys on this machine" > "$out"; exit 0; }
source "$here/gpu/wheel_dirs.sh"
export FST4J_CUDA_LIB_DIR="${FST4J_CUDA_LIB_DIR:-$(wheel_dirs lib)}"
CP="$here/.gpu/lib/fst4j-native-cuda.jar"
for m in tensor sparse autograd nn; do CP="$CP:$here/.gpu/lib/fst4j-$m.jar"; done
CP="$CP:$here/.gpu/lib/fst4j-nn-tests.jar"
rep="${TMPDIR:-/tmp}/fst4j-step-$method"
echo "NSYS $nsys; resnet18in $method" > "$out"
FST4J_CUDA_SYNC=0 timeout 150 "$nsys" profile --force-overwrite true --trace cuda --sample none --cpuctxsw none -o "$rep" \
  "$here/.gpu/jre/bin/java" --enable-native-access=ALL-UNNAMED -Xmx16g -Dfst4j.cuda.matmul=bf16 -cp "$CP" \
  fst4j.nn.CudaStepTiming resnet18in:256:2:4:"$method" >> "$out" 2>&1 || echo "NSYS profile exit code $?" >> "$out"
timeout 90 "$nsys" stats --report cuda_gpu_trace --format csv --output "$rep" "$rep.nsys-rep" >> "$out" 2>&1
# the GPU's busy time over the last 3 timed steps' span (from the end of the trace back): kernels and copies as intervals
python3 - "$rep"_cuda_gpu_trace.csv "$out" >> "$out" 2>&1 <<'PY'
import csv, sys, collections, re
rows = list(csv.DictReader(open(sys.argv[1])))
ev = sorted((int(r["Start (ns)"]), int(r["Start (ns)"]) + int(r["Duration (ns)"]), r["Name"]) for r in rows)
m = re.search(r"^STEP .* median_ms=([0-9.]+)", open(sys.argv[2]).read(), re.M)
if not m or not ev: print("NSYS: no STEP line or no GPU events"); sys.exit(0)
step = float(m.group(1)) * 1e6
t1 = max(e for _, e, _ in ev); t0 = t1 - 3 * step   # the last three timed steps (nothing runs on the GPU after them)
busy, cur_s, cur_e = 0, None, None
per = collections.Counter()
for s, e, n in ev:
    if e <= t0 or s >= t1: continue
    s, e = max(s, t0), min(e, t1)
    per[n[:60]] += e - s
    if cur_e is None or s > cur_e:
        if cur_e is not None: busy += cur_e - cur_s
        cur_s, cur_e = s, e
    else: cur_e = max(cur_e, e)
if cur_e is not None: busy += cur_e - cur_s
print(f"NSYS last 3 steps ({step/1e6:.2f} ms each, the STEP median): GPU busy {busy/3e6:.2f} ms per step ({100*busy/(3*step):.1f} %), idle {(3*step-busy)/3e6:.2f} ms per step")
for n, t in per.most_common(15): print(f"  {t/3e6:8.3f} ms/step  {n}")
PY
exit 0
