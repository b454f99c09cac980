#!/usr/bin/env python3
"""Eq123Bench's JMH JSON (./fst4j bench Eq123Bench -rf json -rff FILE) as the Markdown tables of
jmh/results-eq123-cpu*.md: median ms per op and the ratios #3 asks for. Usage: eq123_table.py FILE.json [title]"""
import json
import sys


def main():
    runs = json.load(open(sys.argv[1]))
    title = sys.argv[2] if len(sys.argv) > 2 else sys.argv[1]
    med = {}   # (benchmark, shape, threads) -> median of the iterations, ms
    for r in runs:
        name = r["benchmark"].rsplit(".", 1)[1]
        p = r["params"]
        med[(name, p["shape"], int(p["threads"]))] = r["primaryMetric"]["scorePercentiles"]["50.0"]
    keys = sorted({(s, t) for (_, s, t) in med}, key=lambda k: (int(k[0].split("x")[0]), k[1]))
    g = lambda n, s, t: med.get((n, s, t), float("nan"))
    print(f"# {title}")
    print("# Every sparse variant allocates its outputs inside the timing; 'incl. prune' also prunes+compresses W from "
          "dense inside the timing.\n")
    for eq in ("eq1", "eq2"):
        print(f"{eq}: median ms/op; ratios = other / 2:4 (precompressed, and incl. prune+compress)")
        print("| shape | thr | OpenBLAS | ours dense | 2:4 precompressed | 2:4 incl. prune+compress | OB/2:4 | dense/2:4 "
              "| OB/2:4+prune | dense/2:4+prune |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for s, t in keys:
            ob, de, sp, pr = (g(f"{eq}_{n}", s, t) for n in ("openblas", "dense", "sparse", "sparsePrune"))
            print(f"| {s} | {t} | {ob:.2f} | {de:.2f} | {sp:.2f} | {pr:.2f} | {ob / sp:.2f} | {de / sp:.2f} | {ob / pr:.2f} "
                  f"| {de / pr:.2f} |")
        print()
    print("eq3: median ms/op")
    print("| shape | thr | OpenBLAS | ours dense | half-K incl. gathers | half-K GEMM only | dense/halfK | dense/halfK GEMM |")
    print("|---|---|---|---|---|---|---|---|")
    for s, t in keys:
        ob, de, hk, hg = (g(f"eq3_{n}", s, t) for n in ("openblas", "dense", "halfK", "halfKGemm"))
        print(f"| {s} | {t} | {ob:.2f} | {de:.2f} | {hk:.2f} | {hg:.2f} | {de / hk:.2f} | {de / hg:.2f} |")
    print()
    print("overhead kernels: median ms/op, and % of the three dense GEMMs (ours) of the layer")
    print("| shape | thr | S(W) prune+compress | S(W^T) | shift+gather | sum % of Eq1+Eq2+Eq3 dense |")
    print("|---|---|---|---|---|---|")
    for s, t in keys:
        w, wt, sg = (g(f"ovh_{n}", s, t) for n in ("pruneW", "pruneWt", "shiftGather"))
        dense = sum(g(f"eq{e}_dense", s, t) for e in (1, 2, 3))
        print(f"| {s} | {t} | {w:.3f} | {wt:.3f} | {sg:.3f} | {100 * (w + wt + sg) / dense:.2f} % |")


if __name__ == "__main__":
    main()
