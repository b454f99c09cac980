#!/usr/bin/env python3
"""PyTorch peer of fst4j's GPU training step (nn/src/test/.../CudaStepTiming, run by gpu/step.sh).

Model: ResNet-18 with the ImageNet stem, defined here layer by layer as fst4j's Models.resnet18(3, 1000, true, ...):
conv 7x7/2 pad 3 (no bias) - BN - ReLU - max-pool 3/2 pad 1; four stages of two basic blocks (64, 128, 256, 512
channels; the first block of stages 2-4 has stride 2), each conv 3x3 (no bias) - BN - ReLU - conv 3x3 (no bias) - BN,
plus a 1x1 conv (stride, no bias) + BN shortcut where the shape changes, add, ReLU; adaptive average pool to 1x1,
flatten, linear 512 -> 1000 with bias. BN: eps 1e-5, momentum 0.1 (fst4j's defaults).
The same architecture as torchvision's resnet18 (checked against it when torchvision is importable).

Step (the same as CudaStepTiming's): forward, cross-entropy with label smoothing 0.1, loss.item() (fst4j reads the
loss every step too), backward, SGD (lr 0.05, momentum 0.9, weight decay 5e-4, Nesterov), zero_grad, all on one
random batch already on the device. Timed per step with torch.cuda.Event (ended by synchronising on the end
event), warm-up steps first, then the median / min / max of the timed steps.

Modes: bf16_cl  = torch.autocast(bfloat16) + channels_last (the comparison of issue #6);
       fp32     = float32, TF32 off for matmul and cuDNN (the reference at fst4j's precision).
cuDNN autotuning (torch.backends.cudnn.benchmark) is on unless --no-cudnn-benchmark.

Optional (--spgemm): torch's own 2:4 semi-structured sparse GEMM (to_sparse_semi_structured, cuSPARSELt backend)
at the Eq. 1 shapes W[Cout, Cin*k*k] x X[Cin*k*k, N*H*W] of ResNet-18's sparse convolutions at this batch, against
the dense bf16 matmul of the same (pruned) operands: an external peer for fst4j's sparse GEMMs.

Optional (--convs): cuDNN's convolutions at the layers of fst4j.shim.CudaConvBench (ResNet-18's distinct convolutions,
ImageNet stem, this batch): Eq. 1 (forward), Eq. 2 (input gradient) and Eq. 3 (weight gradient) through
torch.ops.aten.convolution_backward, bf16 operands, channels_last and NCHW: the per-layer peer of conv.txt's CONV tables.

Output lines (same shape as CudaStepTiming's STEP lines):
  TORCH resnet18in <mode> batch=.. size=.. warmup=.. steps=.. median_ms=.. min_ms=.. max_ms=.. img_per_s=.. loss=.. params=..
  SPGEMM M=.. K=.. N=.. layers=.. dense_bf16_ms=.. sparse24_ms=.. speedup=.. rel_err=..
  CONVREF <layer> <eq1|eq2|eq3> <bf16_cl|bf16_nchw> median_ms=.. p10_ms=.. p90_ms=.. tflops=..
Smoke check without a GPU:  python3 jmh/peers/torch_step_gpu.py --device cpu --batch 2 --size 64 --steps 2
"""
import argparse
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("TORCH skipped: PyTorch is not installed (python3 cannot import torch)")
    sys.exit(0)

LR, MOMENTUM, WEIGHT_DECAY, NESTEROV, LABEL_SMOOTHING = 0.05, 0.9, 5e-4, True, 0.1
WIDTHS, BLOCKS = (64, 128, 256, 512), (2, 2, 2, 2)


class BasicBlock(nn.Module):
    """fst4j.nn.BasicBlock: conv3x3(stride)-BN-ReLU-conv3x3-BN + (identity | conv1x1(stride)+BN), ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


def resnet18_imagenet(channels=3, classes=1000):
    """fst4j.nn.Models.resnet(channels, {64,128,256,512}, {2,2,2,2}, classes, imagenetStem=true, ...)."""
    layers = [nn.Conv2d(channels, WIDTHS[0], 7, 2, 3, bias=False), nn.BatchNorm2d(WIDTHS[0], eps=1e-5, momentum=0.1),
              nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = WIDTHS[0]
    for st, (w, b) in enumerate(zip(WIDTHS, BLOCKS)):
        for i in range(b):
            layers.append(BasicBlock(cin, w, 2 if i == 0 and st > 0 else 1))
            cin = w
    layers += [nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(cin, classes, bias=True)]
    return nn.Sequential(*layers)


def check_against_torchvision(model):
    """The parameter shapes in order, and the count, against torchvision's resnet18 (when importable)."""
    ours = [tuple(p.shape) for p in model.parameters()]
    n = sum(p.numel() for p in model.parameters())
    try:
        import torchvision
        tv = torchvision.models.resnet18(num_classes=1000)
    except Exception as e:  # not installed, or an incompatible build
        print(f"PARAMS ours={n} torchvision=unavailable ({type(e).__name__}: {str(e)[:80]})")
        return n
    theirs = [tuple(p.shape) for p in tv.parameters()]
    nt = sum(p.numel() for p in tv.parameters())
    same = ours == theirs
    print(f"PARAMS ours={n} torchvision={nt} shapes_in_order={'match' if same else 'DIFFER'}")
    return n


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def time_step(mode, a, dev):
    torch.manual_seed(0)
    model = resnet18_imagenet(3, a.classes).to(dev)
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    y = torch.arange(a.batch, device=dev) % a.classes
    bf16 = mode == "bf16_cl"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False   # fp32 means fp32; bf16 autocast does not use TF32 either
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY, nesterov=NESTEROV)
    model.train()

    def step():
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            loss = F.cross_entropy(model(x), y, label_smoothing=LABEL_SMOOTHING)
        value = loss.item()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return value

    times, loss = [], float("nan")
    for i in range(a.warmup + a.steps):
        if dev.type == "cuda":
            t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            t0.record()
            loss = step()
            t1.record()
            t1.synchronize()
            ms = t0.elapsed_time(t1)
        else:
            s = time.perf_counter()
            loss = step()
            ms = (time.perf_counter() - s) * 1e3
        if i >= a.warmup:
            times.append(ms)
        print(f"  torch {mode} step {i + 1}{' (warm-up)' if i < a.warmup else ''}: {ms:.2f} ms, loss {loss:.4f}", flush=True)
    med = statistics.median(times)
    print(f"TORCH resnet18in {mode} batch={a.batch} size={a.size} warmup={a.warmup} steps={len(times)} median_ms={med:.2f} "
          f"min_ms={min(times):.2f} max_ms={max(times):.2f} img_per_s={a.batch * 1000.0 / med:.1f} loss={loss:.4f} params={params}", flush=True)
    del model, opt, x, y
    if dev.type == "cuda":
        torch.cuda.empty_cache()


def conv_shapes(batch, size):
    """(M=Cout, K=Cin*k*k, N=batch*Hout*Wout, count) of ResNet-18's convolutions that fst4j's sparse methods prune
    (every conv but the stem; the classifier is dense too), ImageNet stem."""
    hw = size
    hw = (hw + 2 * 3 - 7) // 2 + 1          # stem conv 7x7/2
    hw = (hw + 2 * 1 - 3) // 2 + 1          # max-pool 3/2
    shapes = {}
    cin = WIDTHS[0]
    for st, (w, b) in enumerate(zip(WIDTHS, BLOCKS)):
        for i in range(b):
            stride = 2 if i == 0 and st > 0 else 1
            out = (hw + 2 - 3) // stride + 1
            for key in [(w, cin * 9, batch * out * out), (w, w * 9, batch * out * out)] + \
                       ([(w, cin, batch * out * out)] if stride != 1 or cin != w else []):
                shapes[key] = shapes.get(key, 0) + 1
            hw, cin = out, w
    return [(m, k, n, c) for (m, k, n), c in shapes.items()]


def prune24(w):
    """Magnitude 2:4 along K (rows of W[M, K]): the 2 largest |w| of each group of 4 kept."""
    m, k = w.shape
    g = w.reshape(m, k // 4, 4)
    idx = g.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(g, dtype=torch.bool).scatter_(-1, idx, True)
    return (g * mask).reshape(m, k)


def time_gemm(fn, reps, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        fn()
        t1.record()
        t1.synchronize()
        ts.append(t0.elapsed_time(t1))
    return statistics.median(ts)


def spgemm(a, dev):
    if dev.type != "cuda":
        print("SPGEMM skipped: needs a CUDA device (torch's 2:4 semi-structured GEMM runs on cuSPARSELt / CUTLASS only)")
        return
    try:
        from torch.sparse import to_sparse_semi_structured, SparseSemiStructuredTensor
    except Exception as e:
        print(f"SPGEMM skipped: torch.sparse.to_sparse_semi_structured unavailable ({type(e).__name__}: {e})")
        return
    cslt = getattr(getattr(torch.backends, "cusparselt", None), "is_available", lambda: False)()
    if not cslt:
        print("SPGEMM skipped: torch.backends.cusparselt.is_available() is False (no cuSPARSELt in this torch build)")
        return
    SparseSemiStructuredTensor._FORCE_CUTLASS = False   # the cuSPARSELt backend
    ver = getattr(torch.backends.cusparselt, "version", lambda: "?")()
    print(f"SPGEMM torch 2:4 semi-structured (cuSPARSELt {ver}) vs dense bf16 matmul, Eq. 1 shapes W[M,K] x X[K,N], "
          f"batch {a.batch}, {a.size}x{a.size}; median of {a.gemm_reps} after {a.gemm_warmup}")
    tot_d = tot_s = 0.0
    torch.manual_seed(0)
    for m, k, n, count in conv_shapes(a.batch, a.size):
        line = f"SPGEMM M={m} K={k} N={n} layers={count}"
        try:
            w = prune24(torch.randn(m, k, device=dev, dtype=torch.bfloat16))
            x = torch.randn(k, n, device=dev, dtype=torch.bfloat16)
            ws = to_sparse_semi_structured(w)
            ref = torch.matmul(w, x)
            got = torch.matmul(ws, x)
            err = ((got.float() - ref.float()).abs().max() / ref.float().abs().max().clamp_min(1e-30)).item()
            del ref, got
            d = time_gemm(lambda: torch.matmul(w, x), a.gemm_reps, a.gemm_warmup)
            s = time_gemm(lambda: torch.matmul(ws, x), a.gemm_reps, a.gemm_warmup)
            tot_d += d * count
            tot_s += s * count
            print(f"{line} dense_bf16_ms={d:.3f} sparse24_ms={s:.3f} speedup={d / s:.2f} rel_err={err:.1e}", flush=True)
            del w, x, ws
        except Exception as e:
            print(f"{line} FAILED {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}", flush=True)
        torch.cuda.empty_cache()
    if tot_s > 0:
        print(f"SPGEMM total (each shape times its layer count) dense_bf16_ms={tot_d:.2f} sparse24_ms={tot_s:.2f} speedup={tot_d / tot_s:.2f}")


# fst4j.shim.CudaConvBench.RESNET18: name, cin, cout, k, stride, pad, input height = width
CONV_LAYERS = [("stem", 3, 64, 7, 2, 3, 224), ("layer1", 64, 64, 3, 1, 1, 56), ("layer2a", 64, 128, 3, 2, 1, 56),
               ("layer2", 128, 128, 3, 1, 1, 28), ("layer3a", 128, 256, 3, 2, 1, 28), ("layer3", 256, 256, 3, 1, 1, 14),
               ("layer4a", 256, 512, 3, 2, 1, 14), ("layer4", 512, 512, 3, 1, 1, 7)]


def convs(a, dev):
    if dev.type != "cuda":
        print("CONVREF skipped: needs a CUDA device")
        return
    torch.backends.cudnn.benchmark = not a.no_cudnn_benchmark
    print(f"CONVREF cuDNN {torch.backends.cudnn.version()} convolutions, batch {a.batch}, bf16 operands and output, "
          f"median of {a.gemm_reps} after {a.gemm_warmup} (cudnn.benchmark={not a.no_cudnn_benchmark})")
    torch.manual_seed(0)
    for name, cin, cout, k, stride, pad, hw in CONV_LAYERS:
        ho = (hw + 2 * pad - k) // stride + 1
        flop = 2.0 * a.batch * ho * ho * cout * cin * k * k
        for layout in ("bf16_cl", "bf16_nchw"):
            fmt = torch.channels_last if layout == "bf16_cl" else torch.contiguous_format
            try:
                x = torch.randn(a.batch, cin, hw, hw, device=dev, dtype=torch.bfloat16).contiguous(memory_format=fmt)
                w = torch.randn(cout, cin, k, k, device=dev, dtype=torch.bfloat16).contiguous(memory_format=fmt)
                gy = torch.randn(a.batch, cout, ho, ho, device=dev, dtype=torch.bfloat16).contiguous(memory_format=fmt)
                args = (gy, x, w, None, [stride, stride], [pad, pad], [1, 1], False, [0, 0], 1)
                bwd = torch.ops.aten.convolution_backward
                fns = {"eq1": lambda: F.conv2d(x, w, None, stride, pad),
                       "eq2": lambda: bwd(*args, [True, False, False]),
                       "eq3": lambda: bwd(*args, [False, True, False])}
                for eq, fn in fns.items():
                    ts = []
                    for i in range(a.gemm_warmup + a.gemm_reps):
                        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        t0.record()
                        fn()
                        t1.record()
                        t1.synchronize()
                        if i >= a.gemm_warmup:
                            ts.append(t0.elapsed_time(t1))
                    ts.sort()
                    med = statistics.median(ts)
                    print(f"CONVREF {name} {eq} {layout} median_ms={med:.4f} p10_ms={ts[len(ts) // 10]:.4f} "
                          f"p90_ms={ts[(len(ts) * 9) // 10]:.4f} tflops={flop / med / 1e9:.1f}", flush=True)
                del x, w, gy
            except Exception as e:
                print(f"CONVREF {name} {layout} FAILED {type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}", flush=True)
            torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--modes", default="bf16_cl,fp32", help="comma-separated: bf16_cl, fp32; none: no training step (with --spgemm)")
    ap.add_argument("--no-cudnn-benchmark", action="store_true")
    ap.add_argument("--spgemm", action="store_true", help="also time torch's 2:4 semi-structured GEMM at ResNet-18's shapes")
    ap.add_argument("--convs", action="store_true", help="also time cuDNN's Eq. 1-3 convolutions at CudaConvBench's layers")
    ap.add_argument("--gemm-reps", type=int, default=10)
    ap.add_argument("--gemm-warmup", type=int, default=3)
    a = ap.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.batch < 1 or a.size < 32:
        ap.error("need --steps >= 1, --warmup >= 0, --batch >= 1, --size >= 32")
    modes = [m.strip() for m in a.modes.split(",") if m.strip() and m.strip() != "none"]
    for m in modes:
        if m not in ("bf16_cl", "fp32"):
            ap.error(f"unknown mode {m} (bf16_cl, fp32)")

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"TORCH skipped: torch {torch.__version__} sees no CUDA device (torch.cuda.is_available() is False)")
        return
    dev = torch.device(a.device)
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, {p.name} "
              f"({p.total_memory / 2**30:.0f} GiB), cudnn.benchmark={not a.no_cudnn_benchmark}")
    else:
        print(f"torch {torch.__version__} on {dev.type} ({torch.get_num_threads()} threads)")
        print(f"TORCH SMOKE RUN on {dev.type}: checks that the script works; the times below are not a GPU measurement")
    if modes:
        check_against_torchvision(resnet18_imagenet(3, a.classes))
        print(f"step: forward, cross-entropy (label smoothing {LABEL_SMOOTHING}), loss.item(), backward, SGD lr {LR} momentum {MOMENTUM} "
              f"weight decay {WEIGHT_DECAY} nesterov {NESTEROV}; one random batch on the device")
    for m in modes:
        try:
            time_step(m, a, dev)
        except Exception as e:
            print(f"TORCH resnet18in {m} batch={a.batch} size={a.size} FAILED {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}", flush=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    if a.spgemm:
        spgemm(a, dev)
    if a.convs:
        convs(a, dev)


if __name__ == "__main__":
    main()
