#!/usr/bin/env bash
# In-process A/B of two builds of the CPU 2:4 kernel (jmh/probes/spmm_ab.c), e.g.
#   jmh/probes/spmm_ab.sh "-DSPK_BUF=24576" "-DSPK_BUF=28672"            # the issue's four Eq. 1 shapes
#   jmh/probes/spmm_ab.sh "" "-DNV=8 -DMR=3" "512 392 4608" "64 96 576"  # or given shapes (M N K [pairs])
# Needs the shim built (./fst4j test or ./fst4j probe-cpu builds it) and an AVX-512 CPU.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ $# -ge 2 ] || { echo "usage: spmm_ab.sh \"<-D flags of a>\" \"<-D flags of b>\" [\"M N K [pairs]\" ...]" >&2; exit 2; }
grep -qw avx512f /proc/cpuinfo || { echo "spmm_ab: the kernel under test is the AVX-512 one and this CPU has no AVX-512." >&2; exit 1; }
src="$here/native-cuda/src/main/c"; lib="$here/native-cuda/target/classes/native/linux-x86_64"
[ -f "$lib/libfst4j.so" ] || { echo "spmm_ab: $lib/libfst4j.so missing: run ./fst4j probe-cpu (or ./fst4j test) first." >&2; exit 1; }
a="$1"; b="$2"; shift 2
[ $# -gt 0 ] || set -- "64 25088 576" "128 6272 1152" "256 1568 2304" "512 392 4608"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
cf=(-std=c11 -O3 -D_GNU_SOURCE -ffp-contract=fast -DFST_ISA_AVX512 -mavx512f -mavx512vl -mfma -I"$src")
# shellcheck disable=SC2086
gcc "${cf[@]}" $a -DFN=fn_a -c "$src/sparse_kernel.c" -o "$tmp/a.o"
# shellcheck disable=SC2086
gcc "${cf[@]}" $b -DFN=fn_b -c "$src/sparse_kernel.c" -o "$tmp/b.o"
gcc -std=c11 -D_GNU_SOURCE -O2 -I"$src" "$here/jmh/probes/spmm_ab.c" "$tmp/a.o" "$tmp/b.o" -o "$tmp/spmm_ab" -L"$lib" -lfst4j -Wl,-rpath,"$lib"
echo "a: ${a:-(defaults)}   b: ${b:-(defaults)}   (1 thread; a / b > 1: b is faster)"
for s in "$@"; do
  # shellcheck disable=SC2086
  "$tmp/spmm_ab" $s
done
