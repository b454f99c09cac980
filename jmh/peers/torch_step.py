#!/usr/bin/env python3
"""PyTorch CPU training step for the models of fst4j's StepBench (same shapes, same thread count).
Prints one line per model: median and interquartile range of the step time in ms.
Usage: python3 jmh/peers/torch_step.py [--threads 2] [--steps 30] [--warmup 5]
       python3 jmh/peers/torch_step.py --serve MODEL [--threads 2]
  (serve: builds MODEL, prints "ready", then for each line "step" on stdin runs one step and prints "ms <time>";
   fst4j's interleaved step benchmark, StepInterleaved, drives it between its own steps)"""
import argparse, statistics, sys, time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch_step: PyTorch is not installed for " + sys.executable + " (pip install torch, or apt-get install python3-torch, or FST4J_PYTHON=a python3 with torch); skipped")
    sys.exit(0)


def small_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1, bias=False), nn.BatchNorm2d(128), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(128 * 7 * 7, 10))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.b1(self.c1(x)))
        h = self.b2(self.c2(h))
        return F.relu(h + (x if self.sc is None else self.sc(x)))


def resnet(cin, widths, blocks, classes=10):
    layers = [nn.Conv2d(cin, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    c = widths[0]
    for s, (w, b) in enumerate(zip(widths, blocks)):
        for i in range(b):
            layers.append(Block(c, w, 2 if i == 0 and s > 0 else 1)); c = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


CASES = {"cnn": (small_cnn, 128, (1, 28, 28)),
         "resnet-small": (lambda: resnet(1, [16, 32, 64], [1, 1, 1]), 128, (1, 28, 28)),
         "resnet18": (lambda: resnet(3, [64, 128, 256, 512], [2, 2, 2, 2]), 32, (3, 32, 32))}


def stepper(name):
    """The model, its optimizer and one timed training step (ms), as fst4j's StepBench runs it."""
    build, batch, shape = CASES[name]
    model = build()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, *shape); y = torch.arange(batch) % 10

    def step():
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return (time.perf_counter() - t) * 1e3
    return batch, step


def serve(name):
    _, step = stepper(name)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            break
        print(f"ms {step():.4f}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--serve", choices=sorted(CASES))
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.serve:
        serve(a.serve)
        return
    print(f"torch {torch.__version__}, {a.threads} threads")
    for name in CASES:
        batch, step = stepper(name)
        times = []
        for i in range(a.warmup + a.steps):
            ms = step()
            if i >= a.warmup: times.append(ms)
        q = statistics.quantiles(times, n=4)
        print(f"torch {name:13s} batch {batch:3d}: median {statistics.median(times):8.1f} ms  IQR {q[0]:.1f}-{q[2]:.1f} ms  ({a.steps} steps)")


if __name__ == "__main__":
    main()
