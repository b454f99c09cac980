#!/usr/bin/env bash
# The main job on a lent GPU machine: `fst4j train --device cuda` on a Fashion-MNIST subset carried along (no network
# there, and the whole set does not fit beside the JDK in the run tool's 64 MiB). Prepare here with
#   bash gpu/prepare.sh && bash gpu/prepare.sh --train-data 8000 2000
# and call the run tool with carry [".gpu/jre", ".gpu/lib/fst4j-native-cuda.jar", ".gpu/lib/fst4j-tensor.jar",
# ".gpu/lib/fst4j-sparse.jar", ".gpu/lib/fst4j-autograd.jar", ".gpu/lib/fst4j-nn.jar", ".gpu/data"] and the command
#   bash gpu/train.sh [train flags, default: --model resnet-small --method dense,fst3_ir --epochs 5]
# The run directory (metrics.csv, summary.json, plots, checkpoints left out) goes to $OUT/train; the console output to
# $OUT/train.txt. GEMM precision: bf16 (-Dfst4j.cuda.matmul, the precision at which FST3_IR's 2:4 products use
# cuSPARSELt), MATMUL=fp32|tf32 to change it; TRAIN_JAVA_OPTS adds JVM flags (-Dfst4j.cuda.emulate=true checks the script
# on a machine without a GPU). `./fst4j train` with the same flags and --device cpu gives the CPU side of the comparison.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
G="$here/.gpu"; JAVA="$G/jre/bin/java"
CP=""; for m in native-cuda tensor sparse autograd nn; do CP="$CP${CP:+:}$G/lib/fst4j-$m.jar"; done
for f in "$JAVA" ${CP//:/ } "$G/data/train-images-idx3-ubyte.gz"; do
  [ -e "$f" ] || { echo "train: $f missing: run gpu/prepare.sh and gpu/prepare.sh --train-data here, and carry the paths above" >&2; exit 2; }
done
source "$here/gpu/wheel_dirs.sh"
export FST4J_CUDA_LIB_DIR="${FST4J_CUDA_LIB_DIR:-$(wheel_dirs lib)}"
O="${OUT:-$G/out}"; mkdir -p "$O"
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--model resnet-small --method dense,fst3_ir --epochs 5)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 | sed 's/^/train: GPU /' | tee "$O/train.txt"
echo "train: $(zcat "$G/data/train-images-idx3-ubyte.gz" | head -c 8 | od -An -tu1 | awk '{print $5*16777216+$6*65536+$7*256+$8}') training images carried; ${args[*]}" | tee -a "$O/train.txt"
FST4J_DATA="$G/data" timeout "${TRAIN_S:-400}" "$JAVA" --enable-native-access=ALL-UNNAMED -Xmx8g ${TRAIN_JAVA_OPTS:-} -Dfst4j.cuda.matmul="${MATMUL:-bf16}" -cp "$CP" \
  fst4j.nn.train.Main --device cuda --data fashion-mnist --no-progress --out "$O/train" "${args[@]}" 2>&1 | tee -a "$O/train.txt"
rc=${PIPESTATUS[0]}
find "$O/train" -name '*.safetensors' -delete 2>/dev/null   # checkpoints stay on the machine (size); metrics and summaries come back
echo "train: exit code $rc" | tee -a "$O/train.txt"
exit "$rc"
