#!/usr/bin/env bash
# Prepares what gpu/run.sh needs on a lent GPU machine (no Java, no network there), under .gpu/ (ignored):
#   .gpu/jre/  a jlinked JDK 25 runtime (about 45 MB)
#   .gpu/lib/  fst4j-native-cuda.jar (with libfst4j.so and, where nvcc was found, libfst4j_cuda.so), the tensor,
#              sparse, autograd and nn jars, the test classes of native-cuda, tensor, sparse and nn as jars (the CUDA tests
#              run on the device; CudaStepTiming for gpu/step.sh), junit-platform-console-standalone and jqwik's API and engine
# Then carry ".gpu" with the run tool and call: bash gpu/run.sh   (64 MiB limit in all; this script checks it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
# --train-data N_TRAIN N_TEST: only write .gpu/data, the first images of Fashion-MNIST's two splits for gpu/train.sh (the
# main job on the device; about 0.44 MB per 1000 images gzipped), beside an existing .gpu
if [ "${1:-}" = "--train-data" ]; then
  [ $# -eq 3 ] || { echo "prepare: --train-data N_TRAIN N_TEST" >&2; exit 2; }
  src="${FST4J_DATA:-/usr/share/datasets/fashion-mnist}"
  [ -f "$src/train-images-idx3-ubyte.gz" ] || [ -f "$src/train-images-idx3-ubyte" ] \
    || { echo "prepare: no Fashion-MNIST in $src (sudo apt-get install dataset-fashion-mnist, or FST4J_DATA=DIR)" >&2; exit 1; }
  rm -rf "$here/.gpu/data"
  python3 "$here/gpu/subset_idx.py" "$src" "$here/.gpu/data" "$2" "$3"
  echo "prepare: .gpu/data holds $2 training and $3 test images ($(du -sh "$here/.gpu/data" | cut -f1)); see gpu/train.sh for the carry list"
  exit 0
fi
JUNIT_PLATFORM="${JUNIT_PLATFORM:-1.11.4}"   # the platform release of the project's JUnit 5.11.4
out="$here/.gpu"
rm -rf "$out"
mkdir -p "$out/lib"

# the JDK the launcher would pick
jdk=""
for c in "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25*; do
  if [ -n "$c" ] && [ -x "$c/bin/jlink" ] && "$c/bin/java" -version 2>&1 | head -1 | grep -q '"25'; then jdk="$c"; break; fi
done
[ -n "$jdk" ] || { echo "prepare: needs a JDK 25 (JAVA_HOME or /usr/lib/jvm/temurin-25*)" >&2; exit 1; }
JAVA_HOME="$jdk"
echo "prepare: JDK $JAVA_HOME"

echo "prepare: building native-cuda .. nn (C shim, CUDA shim where nvcc is found, test classes)"
JAVA_HOME="$JAVA_HOME" ./fst4j mvn -B -q -Dstyle.color=never -pl nn -am -DskipTests package
for m in native-cuda tensor sparse autograd nn; do cp "$m/target/fst4j-$m-0.1.0-SNAPSHOT.jar" "$out/lib/fst4j-$m.jar"; done
for m in native-cuda tensor sparse nn; do "$JAVA_HOME/bin/jar" cf "$out/lib/fst4j-$m-tests.jar" -C "$m/target/test-classes" .; done
if ! "$JAVA_HOME/bin/jar" tf "$out/lib/fst4j-native-cuda.jar" | grep libfst4j_cuda.so >/dev/null; then
  echo "prepare: note: libfst4j_cuda.so is not in the jar (no nvcc here); run.sh will build it on the device"
fi

# gpu/step.sh (the training-step timing, called by run.sh) needs CudaStepTiming in the nn test jar and the PyTorch peer,
# which travels with the work tree (tracked files are copied to the device)
"$JAVA_HOME/bin/jar" tf "$out/lib/fst4j-nn-tests.jar" | grep -qx 'fst4j/nn/CudaStepTiming.class' \
  || { echo "prepare: fst4j/nn/CudaStepTiming.class is not in fst4j-nn-tests.jar" >&2; exit 1; }
for f in gpu/step.sh gpu/wheel_dirs.sh gpu/splt_probe.sh gpu/splt_probe.cu gpu/sanitize.sh gpu/mma_peak.sh gpu/mma_peak.cu gpu/ncu_conv.sh gpu/ncu_wg.sh gpu/ncu_env.sh gpu/train.sh gpu/subset_idx.py jmh/peers/torch_step_gpu.py; do
  git ls-files --error-unmatch "$f" > /dev/null 2>&1 || echo "prepare: WARNING: $f is not tracked by git: it will not be copied to the device"
done

# every CUDA test class must be one that gpu/run.sh selects (three written in sessions 36-39 had never run on a device
# because the list missed them); the smoke tests of the two benchmarks are left out: run.sh runs the benchmarks themselves
missing=""
for c in $(git ls-files '*/src/test/java/*/Cuda*Test.java' | sed 's:.*/src/test/java/::; s:\.java$::; s:/:.:g'); do
  case "$c" in *.CudaConvBenchTest|*.CudaWgGemmBenchTest) continue ;; esac
  grep -q -- "--select-class $c\b" gpu/run.sh || missing="$missing $c"
done
[ -z "$missing" ] || { echo "prepare: gpu/run.sh's test list misses:$missing (add each as --select-class)" >&2; exit 1; }

cs="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$JUNIT_PLATFORM/junit-platform-console-standalone-$JUNIT_PLATFORM.jar"
if [ ! -f "$cs" ]; then
  JAVA_HOME="$JAVA_HOME" ./fst4j mvn -B -q dependency:get -Dartifact="org.junit.platform:junit-platform-console-standalone:$JUNIT_PLATFORM"
fi
cp "$cs" "$out/lib/junit-platform-console-standalone.jar"
# jqwik (its API and engine): some CUDA tests draw their inputs from jqwik's generators (CudaMagnitudeNMTest failed
# with NoClassDefFoundError net/jqwik/api/Arbitrary on device run 32 without them)
JQWIK="$(sed -n 's:.*<jqwik.version>\(.*\)</jqwik.version>.*:\1:p' pom.xml)"
for a in jqwik-api jqwik-engine; do
  j="$HOME/.m2/repository/net/jqwik/$a/$JQWIK/$a-$JQWIK.jar"
  [ -f "$j" ] || { echo "prepare: $j missing (the build above should have fetched it)" >&2; exit 1; }
  cp "$j" "$out/lib/$a.jar"
done

echo "prepare: jlink"
"$JAVA_HOME/bin/jlink" --add-modules java.base,java.logging,java.xml,java.sql,java.management,jdk.unsupported \
  --strip-debug --no-header-files --no-man-pages --compress=zip-9 --output "$out/jre"
# libjvm.so comes with its symbol table (30 MB); without it 25 MB: the room that the results committed under gpu/results
# take in the work tree, which travels in the same 64 MiB (session 35's last call was refused over it)
if command -v strip > /dev/null; then strip --strip-unneeded "$out/jre/lib/server/libjvm.so"; fi
"$out/jre/bin/java" -version 2>&1 | head -1

size=$(du -sb "$out" | cut -f1)
echo "prepare: .gpu is $((size / 1024 / 1024)) MiB ($size bytes)"
[ "$size" -lt $((60 * 1024 * 1024)) ] || { echo "prepare: .gpu is too big to carry (limit 64 MiB with the work tree)" >&2; exit 1; }
echo "prepare: done; on the GPU machine: bash gpu/run.sh   (carry: .gpu)"
