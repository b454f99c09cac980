#!/usr/bin/env python3
"""Roofline bounds for issue #6's GPU targets: ResNet-18 (ImageNet stem), batch 256, 224x224, bf16 GEMMs.

For every convolution's three GEMMs (Eq. 1 Y = W X, Eq. 2 dX = W^T dY, Eq. 3 dW = dY X^T, fst-method.md) this
computes the multiply-adds and the bytes the GEMM kernel itself must move, and from them the roofline time
max(FLOPs / peak, bytes / bandwidth), dense and sparse (2:4 on W for Eq. 1 and 2: half the multiply-adds and half of
W's bytes plus 1/8 of them in metadata; Eq. 3 half-K: half the reduction, half of dY's and X's bytes), in two
formulations:
  * lowered: B is a materialised bf16 im2col matrix (what fst4j does on the GPU: im2col_bf16 + cuBLAS / cuSPARSELt);
  * implicit: the GEMM reads the activation itself (an implicit-GEMM convolution: cuDNN, CUTLASS), once.
It then bounds the step ratio DENSE / FST3_IR = (G_dense + E) / (G_sparse + E) for the time E the step spends outside
the GEMMs, and prints the largest E that still allows the issue's 1.4x.

Defaults are this project's H100 measurements (gpu/results/2026-11-26-h100-run9/gemm.txt): 660 TFLOP/s is the best
dense bf16 GEMM it timed (layer4 Eq. 3: 664), 2.9 TB/s the rate of its memory-bound GEMMs (layer1 Eq. 1 bf16 -> bf16:
1.03 GB in 0.368 ms = 2.8 TB/s); the device's data-sheet peaks are 989 TFLOP/s dense bf16 and 3.35 TB/s.
--check prints the model's per-GEMM times beside run 9's measured ones.

    python3 gpu/roofline.py [--tflops 660] [--tbps 2.9] [--sparse-gain 2.0] [--check]
"""
import argparse

BATCH = 256
BF16, FP32 = 2, 4

# (name, Cin, Cout, kernel, stride, input size, count): ResNet-18 with the ImageNet stem, 224x224
CONVS = [
    ("stem", 3, 64, 7, 2, 224, 1),
    ("layer1 3x3", 64, 64, 3, 1, 56, 4),
    ("layer2 3x3 s2", 64, 128, 3, 2, 56, 1),
    ("layer2 3x3", 128, 128, 3, 1, 28, 3),
    ("layer2 1x1 s2", 64, 128, 1, 2, 56, 1),
    ("layer3 3x3 s2", 128, 256, 3, 2, 28, 1),
    ("layer3 3x3", 256, 256, 3, 1, 14, 3),
    ("layer3 1x1 s2", 128, 256, 1, 2, 28, 1),
    ("layer4 3x3 s2", 256, 512, 3, 2, 14, 1),
    ("layer4 3x3", 512, 512, 3, 1, 7, 3),
    ("layer4 1x1 s2", 256, 512, 1, 2, 14, 1),
]


def out_size(h, k, s):
    pad = k // 2
    return (h + 2 * pad - k) // s + 1


def gemms(cin, cout, k, s, h, implicit):
    """The three GEMMs of one convolution: (eq, M, N, K, bytes dense, bytes sparse, dense-equivalent FLOPs, sparse FLOPs)."""
    ho = out_size(h, k, s)
    cols = BATCH * ho * ho                       # GEMM columns: output positions of the batch
    kk = cin * k * k                             # the reduction of Eq. 1 / rows of Eq. 2
    x_bytes = BATCH * cin * h * h * BF16         # the activation X (bf16)
    b_bytes = x_bytes if implicit else kk * cols * BF16   # what the GEMM reads as its lowered operand
    w = cout * kk * BF16
    w_sparse = w / 2 + w / 16                    # kept values + 2-bit indices (4 bits per kept pair of 16-bit values)
    y = cout * cols * BF16                       # Y, dY (bf16)
    out = []
    # Eq. 1: [Cout, kk] x [kk, cols]
    f = 2.0 * cout * kk * cols
    out.append(("Eq1", cout, cols, kk, w + b_bytes + y, w_sparse + b_bytes + y, f, f / 2))
    # Eq. 2: [kk, Cout] x [Cout, cols] -> dX columns (implicit: straight into dX, the size of X)
    dx = x_bytes if implicit else kk * cols * BF16
    out.append(("Eq2", kk, cols, cout, w + y + dx, w_sparse + y + dx, f, f / 2))
    # Eq. 3: [Cout, cols] x [cols, kk], half-K over the kept half of the positions; dW in fp32
    dw = cout * kk * FP32
    out.append(("Eq3", cout, kk, cols, y + b_bytes + dw, (y + b_bytes) / 2 + dw, f, f / 2))
    return out


def roofline(flops, nbytes, peak, bw):
    return max(flops / peak, nbytes / bw)


def gemm_times(eq, fd, bd, fs, bs, peak, bw, sparse_gain):
    """Dense and FST3_IR roofline times of one GEMM: 2:4 runs Eq. 1 / 2 at sparse_gain x the dense rate; half-K (Eq. 3)
    is a dense GEMM over half the reduction."""
    return roofline(fd, bd, peak, bw), roofline(fs, bs, peak * (sparse_gain if eq != "Eq3" else 1.0), bw)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tflops", type=float, default=660.0, help="dense bf16 GEMM rate, TFLOP/s")
    ap.add_argument("--tbps", type=float, default=2.9, help="memory bandwidth, TB/s")
    ap.add_argument("--sparse-gain", type=float, default=2.0,
                    help="2:4 compute speed-up over dense at equal FLOPs (2 = the sparse tensor cores' limit)")
    ap.add_argument("--target", type=float, default=1.4, help="the step ratio DENSE / FST3_IR asked for")
    ap.add_argument("--check", action="store_true", help="per-GEMM model against run 9's measured times (lowered)")
    a = ap.parse_args()
    peak, bw = a.tflops * 1e12, a.tbps * 1e12

    print(f"ResNet-18 (ImageNet stem), batch {BATCH}, 224x224, bf16 operands; {a.tflops:.0f} TFLOP/s dense, "
          f"2:4 compute {a.sparse_gain:.2f}x of that, {a.tbps:.2f} TB/s")
    totals = {}
    for implicit in (False, True):
        label = "implicit" if implicit else "lowered"
        gd = gs = fl = 0.0
        bound = {"Eq1": [0, 0], "Eq2": [0, 0], "Eq3": [0, 0]}
        for name, cin, cout, k, s, h, count in CONVS:
            for eq, m, n, kk, bd, bs, fd, fs in gemms(cin, cout, k, s, h, implicit):
                if name == "stem" and eq == "Eq2":
                    continue                     # no dX for the network's input
                td, ts = gemm_times(eq, fd, bd, fs, bs, peak, bw, a.sparse_gain)
                gd += count * td
                gs += count * ts
                fl += count * fd
                bound[eq][0 if fd / peak >= bd / bw else 1] += count
        totals[label] = (gd, gs)
        mem = ", ".join(f"{eq} {v[1]} of {v[0] + v[1]}" for eq, v in bound.items())
        print(f"\n{label:8s}: {fl / 1e12:.2f} TFLOP of GEMMs per step; GEMM time dense {gd * 1e3:.2f} ms, FST3_IR "
              f"{gs * 1e3:.2f} ms ({gd / gs:.2f}x); memory-bound GEMMs (dense): {mem}")
        # largest non-GEMM time E with (gd + E) / (gs + E) >= target
        e_max = (gd - a.target * gs) / (a.target - 1)
        print(f"          step DENSE / FST3_IR >= {a.target}x needs everything outside the GEMMs within "
              f"{max(e_max, 0) * 1e3:.2f} ms" + ("" if e_max > 0 else " (impossible: the GEMMs alone fall short)"))
        for e in (2.0, 5.0, 10.0, 20.0, 40.0):
            print(f"          with E = {e:4.1f} ms outside the GEMMs: DENSE / FST3_IR <= {(gd + e / 1e3) / (gs + e / 1e3):.2f}x")

    # activations: the smallest traffic a fused step could have outside the GEMMs
    act = 0
    for name, cin, cout, k, s, h, count in CONVS:
        act += count * BATCH * cout * out_size(h, k, s) ** 2 * BF16
    print(f"\nconvolution outputs of one step: {act / 1e9:.2f} GB in bf16; six passes over them (write, read in the "
          f"forward; dY read, X read, dX write, one batch-norm reduction in the backward) take "
          f"{6 * act / bw * 1e3:.2f} ms at {a.tbps} TB/s: a floor for E that only full fusion approaches")

    if a.check:
        # run 9 (H100): bf16 -> bf16 dense and 2:4 (Eq. 1, 2), bf16 -> fp32 dense and half-K (Eq. 3), ms
        measured = {
            ("layer1 3x3", "Eq1"): (0.3678, 0.3662), ("layer1 3x3", "Eq2"): (0.4406, 0.4132),
            ("layer1 3x3", "Eq3"): (0.3914, 0.2020), ("layer2 3x3", "Eq1"): (0.1911, 0.1941),
            ("layer2 3x3", "Eq2"): (0.2122, 0.2145), ("layer2 3x3", "Eq3"): (0.2000, 0.1088),
            ("layer3 3x3", "Eq1"): (0.1082, 0.1120), ("layer3 3x3", "Eq2"): (0.1432, 0.1283),
            ("layer3 3x3", "Eq3"): (0.1132, 0.0674), ("layer4 3x3", "Eq1"): (0.0886, 0.0840),
            ("layer4 3x3", "Eq2"): (0.1116, 0.1008), ("layer4 3x3", "Eq3"): (0.0891, 0.0510),
        }
        print("\nmodel vs run 9 (lowered; ms per GEMM; the model's Eq. 3 dense output is fp32 as measured):")
        print(f"  {'layer':12s} eq    model dense  measured   model sparse  measured   bound")
        for name, cin, cout, k, s, h, count in CONVS:
            for eq, m, n, kk, bd, bs, fd, fs in gemms(cin, cout, k, s, h, False):
                if (name, eq) not in measured:
                    continue
                md, ms = measured[(name, eq)]
                td, ts = gemm_times(eq, fd, bd, fs, bs, peak, bw, a.sparse_gain)
                kind = "compute" if fd / peak >= bd / bw else "memory"
                print(f"  {name:12s} {eq}  {td * 1e3:9.3f}  {md:9.3f}   {ts * 1e3:11.3f}  {ms:9.3f}   {kind}")


if __name__ == "__main__":
    main()
