# Sourced by gpu/ncu_conv.sh and gpu/ncu_wg.sh after they set `out` (their OUTFILE): the repository root as `here` (and
# the working directory), Nsight Compute as `ncu` (or, where the machine has none, one line in $out and exit 0), the
# NVIDIA wheels' library folders for the CUDA shim, and CP, the native-cuda jars of .gpu that both benchmarks run from.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"; cd "$here"
ncu="$(command -v ncu || ls /usr/local/cuda*/bin/ncu /usr/local/cuda*/nsight-compute*/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)"
[ -n "$ncu" ] || { echo "NCU skipped: no ncu on this machine" > "$out"; exit 0; }
source "$here/gpu/wheel_dirs.sh"
export FST4J_CUDA_LIB_DIR="${FST4J_CUDA_LIB_DIR:-$(wheel_dirs lib)}"
CP="$here/.gpu/lib/fst4j-native-cuda.jar:$here/.gpu/lib/fst4j-native-cuda-tests.jar"
