#!/usr/bin/env bash
# Runs the named JUnit test classes on a lent GPU machine (needs .gpu/ from gpu/prepare.sh, carried), each kernel launch
# synchronised (FST4J_CUDA_SYNC=1), first plainly, then, where NVIDIA's compute-sanitizer is installed, under its
# memcheck tool, which names the kernel and address of an out-of-bounds access that a plain run only sees later as a
# sticky "illegal memory access". Usage: bash gpu/sanitize.sh fst4j.nn.CudaSparseMethodsTest [more classes]
# Output under $OUT (the run tool's) or .gpu/out: ${TAG}plain.txt, ${TAG}memcheck.txt; MEMCHECK=0: the plain run only;
# PLAIN=0: memcheck only (gpu/run.sh's memcheck part); TOOL=racecheck (or synccheck): that tool instead of memcheck, into
# ${TAG}racecheck.txt (shared-memory races and barrier misuse of the block kernels). Exit code 1 where the tool reports errors.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
[ $# -gt 0 ] || { echo "sanitize: name at least one test class" >&2; exit 2; }
O="${OUT:-$here/.gpu/out}"; mkdir -p "$O"
G="$here/.gpu"; JAVA="$G/jre/bin/java"; LIB="$G/lib"; CP="$LIB/junit-platform-console-standalone.jar"
for m in native-cuda tensor sparse autograd nn; do CP="$CP:$LIB/fst4j-$m.jar"; done
for m in native-cuda tensor sparse nn; do CP="$CP:$LIB/fst4j-$m-tests.jar"; done
CP="$CP:$LIB/jqwik-api.jar:$LIB/jqwik-engine.jar"
source "$here/gpu/wheel_dirs.sh"
export FST4J_CUDA_LIB_DIR="$(wheel_dirs lib)" FST4J_CUDA_SYNC=1
sel=(); for c in "$@"; do sel+=(--select-class "$c"); done
run() { "$@" "$JAVA" --enable-native-access=ALL-UNNAMED -Xmx4g -cp "$CP" org.junit.platform.console.ConsoleLauncher execute --config jqwik.database="$G/jqwik-database" \
          --disable-banner --disable-ansi-colors --details=tree "${sel[@]}"; }
if [ "${PLAIN:-1}" = 1 ]; then
  timeout "${PLAIN_S:-120}" bash -c "$(declare -f run); $(declare -p G JAVA CP sel); run" > "$O/${TAG:-}plain.txt" 2>&1
  echo "sanitize: plain run exit code $? (${TAG:-}plain.txt)"; grep -E 'tests (successful|failed)|✘' "$O/${TAG:-}plain.txt" | head -20
fi
[ "${MEMCHECK:-1}" = 1 ] || exit 0
cs="$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)"
if [ -z "$cs" ]; then echo "sanitize: no compute-sanitizer on this machine"; exit 0; fi
echo "sanitize: $cs"
tool="${TOOL:-memcheck}"
timeout "${CHECK_S:-240}" bash -c "$(declare -f run); $(declare -p G JAVA CP sel); run '$cs' --tool $tool --print-limit 20 --target-processes all" > "$O/${TAG:-}$tool.txt" 2>&1
echo "sanitize: $tool exit code $? (${TAG:-}$tool.txt)"
grep -E '========= (Invalid|Program hit|Address|at |ERROR SUMMARY|Error|Race)|by thread' "$O/${TAG:-}$tool.txt" | head -40
# memcheck ends with "ERROR SUMMARY: 0 errors", racecheck with "RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"
grep -qE 'ERROR SUMMARY: 0 errors|RACECHECK SUMMARY: 0 hazards' "$O/${TAG:-}$tool.txt"
