#!/usr/bin/env bash
# In-process A/B of a 2:4-product switch on a lowered Eq. 1 block, 2 threads (jmh/probes/lowered_ab.c), e.g.
#   jmh/probes/lowered_ab.sh kblocks 3 64 32 64        # ResNet-18's 64-channel block of 3 images
#   jmh/probes/lowered_ab.sh prefetch 16 512 4 512 1   # its 512-channel block, tap-major rows (Eq. 2)
# Needs the shim built (./fst4j test or ./fst4j probe-cpu builds it).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
[ $# -ge 5 ] || { echo "usage: lowered_ab.sh kblocks|prefetch|grouping n c hw M [order] [pairs]" >&2; exit 2; }
src="$here/native-cuda/src/main/c"; lib="$here/native-cuda/target/classes/native/linux-x86_64"
[ -f "$lib/libfst4j.so" ] || { echo "lowered_ab: $lib/libfst4j.so missing: run ./fst4j probe-cpu (or ./fst4j test) first." >&2; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
gcc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -I"$src" "$here/jmh/probes/lowered_ab.c" -o "$tmp/lowered_ab" -L"$lib" -lfst4j -Wl,-rpath,"$lib"
"$tmp/lowered_ab" "$@"
