#!/usr/bin/env bash
# Builds and runs gpu/splt_probe.cu (cuSPARSELt 2:4 bf16 vs cuBLAS dense bf16 at ResNet-18 conv-as-GEMM shapes) on a
# lent GPU machine: no Java, no network, the CUDA libraries only as NVIDIA pip wheels. Everything (machine, build log,
# the probe's output) goes into OUTFILE, and the script exits 0 whatever happened, so the caller always gets a report.
# Usage: bash gpu/splt_probe.sh OUTFILE [probe arguments: --no-search --reps=N --budget=S M,K,N ...]
set -uo pipefail
if [ $# -lt 1 ]; then echo "usage: $0 OUTFILE [probe args...]" >&2; exit 0; fi
outfile="$1"; shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$here/gpu/splt_probe.cu"
mkdir -p "$(dirname "$outfile")" 2>/dev/null
: > "$outfile" || { echo "splt_probe: cannot write $outfile" >&2; exit 0; }
say() { echo "$*" >> "$outfile"; }
work="$(mktemp -d "${TMPDIR:-/tmp}/splt_probe.XXXXXX")"
trap 'rm -rf "$work"' EXIT

source "$here/gpu/wheel_dirs.sh"   # wheel_dirs lib|include

# The wheels often ship only versioned sonames (libcusparseLt.so.0, libcublas.so.13) without the unversioned link
# that -lNAME needs: use -lNAME where libNAME.so exists, else -l:<the shortest versioned name>.
link_flag() {   # $1 = library base name, rest = folders to look in
  local base="$1" d f best=""; shift
  for d in "$@"; do [ -e "$d/lib$base.so" ] && { echo "-l$base"; return; }; done
  for d in "$@"; do
    for f in "$d"/lib"$base".so.*; do
      [ -e "$f" ] || continue; f="$(basename "$f")"
      if [ -z "$best" ] || [ "${#f}" -lt "${#best}" ]; then best="$f"; fi
    done
  done
  if [ -n "$best" ]; then echo "-l:$best"; else echo "-l$base"; fi
}

{
  echo "== splt_probe $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname 2>/dev/null)"
  echo "== nvidia-smi"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -4
  echo "== nvcc"; nvcc --version 2>&1 | tail -2
} >> "$outfile" 2>&1

INCDIRS="$(wheel_dirs include)"; LIBDIRS="$(wheel_dirs lib)"
IFS=':' read -r -a incs <<< "$INCDIRS"; IFS=':' read -r -a libs <<< "$LIBDIRS"
cudahome="$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /usr/local/cuda/bin/nvcc)")")"
syslibs=("$cudahome/lib64" "$cudahome/targets/x86_64-linux/lib")
say "== wheel include folders: ${INCDIRS:-none}"
say "== wheel lib folders: ${LIBDIRS:-none}"
for d in "${libs[@]}"; do ls "$d" 2>/dev/null | grep -E 'cusparseLt|cublas|cudart' | sed "s|^|   $d/|" >> "$outfile"; done

flags=(-std=c++17 -O2 -gencode=arch=compute_90a,code=sm_90a)
for d in "${incs[@]}"; do [ -n "$d" ] && flags+=("-I$d"); done
for d in "${libs[@]}"; do [ -n "$d" ] && flags+=("-L$d" -Xlinker -rpath -Xlinker "$d" -Xlinker -rpath-link -Xlinker "$d"); done
flags+=("$(link_flag cusparseLt "${libs[@]}" "${syslibs[@]}")" "$(link_flag cublas "${libs[@]}" "${syslibs[@]}")")

bin="$work/splt_probe"
say "== build: nvcc ${flags[*]} -o $bin $src"
if ! command -v nvcc > /dev/null 2>&1; then
  say "BUILD FAILED: no nvcc on PATH"; exit 0
fi
t0=$SECONDS
nvcc "${flags[@]}" -o "$bin" "$src" >> "$outfile" 2>&1; brc=$?
say "== build exit code $brc ($((SECONDS - t0)) s)"
if [ "$brc" != 0 ] || [ ! -x "$bin" ]; then say "BUILD FAILED"; exit 0; fi
ldd "$bin" 2>&1 | grep -E 'cusparseLt|cublas|cudart|not found' | sed 's/^/   /' >> "$outfile"

# LD_LIBRARY_PATH as well as the rpath: libcublas finds libcublasLt beside it either way
export LD_LIBRARY_PATH="${LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "== run: timeout 120 $bin $*"
t0=$SECONDS
timeout 120 "$bin" "$@" >> "$outfile" 2>&1; rrc=$?
case "$rrc" in
  0) say "== probe exit code 0 ($((SECONDS - t0)) s)" ;;
  124|137) say "== PROBE TIMED OUT after $((SECONDS - t0)) s (exit $rrc); the lines above are what it printed" ;;
  *) say "== PROBE FAILED: exit code $rrc ($((SECONDS - t0)) s)" ;;
esac
exit 0
