#!/usr/bin/env python3
"""Writes the first N images and labels of MNIST-style IDX files (gzipped or not) as gzipped IDX files, so that a
subset of Fashion-MNIST fits beside .gpu in the run tool's 64 MiB carry (gpu/prepare.sh --train-data).
Usage: subset_idx.py SRC_DIR DST_DIR N_TRAIN N_TEST"""
import gzip, os, struct, sys

def read(path):
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
                return f.read()
    sys.exit(f"subset_idx: no {path}[.gz]")

def subset(src, dst, name, n):
    data = read(os.path.join(src, name))
    # the whole source is checked, not only the part kept: a short or foreign file must stop prepare here, not the
    # device job that reads the subset later
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] == 0:
        sys.exit(f"subset_idx: {name} is not an unsigned-byte IDX file (magic {data[:4].hex()}, expected 000008dd)")
    magic, count = struct.unpack(">II", data[:8])
    dims = magic & 0xff
    if len(data) < 4 + 4 * dims:
        sys.exit(f"subset_idx: {name} is truncated: it ends inside its {dims} dimension sizes")
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    if n < 0 or n > count:
        sys.exit(f"subset_idx: {name} holds {count} items, {n} asked")
    per = 1
    for d in shape[1:]:
        per *= d
    if len(data) != 4 + 4 * dims + count * per:
        sys.exit(f"subset_idx: {name} is truncated or has trailing bytes: {len(data) - 4 - 4 * dims} bytes of data for "
                 f"{count} items of {per} bytes")
    head = struct.pack(">I", magic) + struct.pack(">I", n) + data[8:4 + 4 * dims]
    body = data[4 + 4 * dims:4 + 4 * dims + n * per]
    with gzip.open(os.path.join(dst, name + ".gz"), "wb", compresslevel=9) as f:
        f.write(head + body)

src, dst, ntrain, ntest = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(dst, exist_ok=True)
for kind, n in (("train", ntrain), ("t10k", ntest)):
    subset(src, dst, f"{kind}-images-idx3-ubyte", n)
    subset(src, dst, f"{kind}-labels-idx1-ubyte", n)
