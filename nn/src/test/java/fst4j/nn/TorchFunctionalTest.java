package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.NN.Reduction;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * NN's losses and layer norm against torch.nn.functional's on the same data, float64 and float32: the losses under every
 * reduction, values and the gradients of input and target (of sum(loss * W) for reduction none); layer_norm's values and
 * the gradients of x, weight and bias. Skipped, with the reason, where no Python imports
 * torch (TorchPeer).
 */
class TorchFunctionalTest {
    static double[] uniform(SplittableRandom r, int n, double lo, double hi) {
        double[] v = new double[n];
        for (int i = 0; i < n; i++) v[i] = r.nextDouble(lo, hi);
        return v;
    }

    static void close(String what, double[] want, double[] got, double rtol) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++)
            assertEquals(want[i], got[i], rtol * Math.max(1, Math.abs(want[i])), what + " at " + i);
    }

    interface Loss { Var apply(Var x, Var y, Reduction r); }

    /**
     * Per element bounds {value, dx, dy} on |ours - torch's| for a loss of [n, c] inputs: each value is at most N
     * (= the elements reduced, 1 for NONE) element formulas summed, each formula a few roundings of terms, so each side is
     * within (N + 8) u of the sum of its terms' magnitudes T and the two differ by at most 2 (N + 8) u T (u = 2^-24 in
     * float32, 2^-53 in float64). T per element, with d = |x| + |y| and, for binary cross-entropy, p the pos_weight (1
     * without) and s = |x| + log1p(exp(-|x|)): mse d^2 (dx, dy: 2 d), l1 d (1), smooth L1 d^2 / beta + d + beta (d / beta
     * + 1), bce |x y| + (1 + |p - 1| y) s (dx: 1 + |p - 1| y + p y, dy: (1 + p) s + |x|), nll |x| at the label (1 there,
     * 0 elsewhere: both exact); times |w| for NONE's weighted sum, over N for MEAN; a reduced value's T is the sum of its
     * elements'. (It was rtol max(1, |want|) with rtol 3e-6 and 1e-13: thousands of float32 ulps and 1e5 float64 ulps of
     * the gradients of MEAN, which are about 0.005.)
     */
    static double[][] lossBounds(String name, Reduction red, DType dt, double[] x, double[] y, double[] pw, int c, double beta, int[] labels, double[] w) {
        int len = x.length;
        double[] lv = new double[len], gx = new double[len], gy = new double[len];
        int count = 0;
        for (int i = 0; i < len; i++) {
            double d = Math.abs(x[i]) + Math.abs(y[i]), ax = Math.abs(x[i]), s = ax + Math.log1p(Math.exp(-ax));
            double p = name.equals("bcepw") ? pw[i % c] : 1;
            switch (name) {
                case "mse" -> { lv[i] = d * d; gx[i] = gy[i] = 2 * d; }
                case "l1" -> { lv[i] = d; gx[i] = gy[i] = 1; }
                case "smoothl1" -> { lv[i] = d * d / beta + d + beta; gx[i] = gy[i] = d / beta + 1; }
                case "bce", "bcepw" -> {
                    lv[i] = Math.abs(x[i] * y[i]) + (1 + Math.abs(p - 1) * Math.abs(y[i])) * s;
                    gx[i] = 1 + Math.abs(p - 1) * Math.abs(y[i]) + p * Math.abs(y[i]);
                    gy[i] = (1 + p) * s + ax;
                }
                case "nll" -> { int row = i / c; boolean at = labels[row] != -100 && labels[row] == i % c; lv[i] = at ? ax : 0; gx[i] = at ? 1 : 0; }
                default -> throw new IllegalArgumentException(name);
            }
        }
        if (name.equals("nll")) { for (int l : labels) if (l != -100) count++; } else count = len;
        double u = dt == DType.F32 ? 0x1p-24 : 0x1p-53;
        if (red == Reduction.NONE) {
            int rows = name.equals("nll") ? len / c : len;   // nll's NONE is one value per row
            double[] v = new double[rows], bx = new double[len], by = new double[len];
            for (int i = 0; i < len; i++) {
                int o = name.equals("nll") ? i / c : i;
                v[o] += 2 * 9 * u * lv[i];
                bx[i] = 2 * 9 * u * gx[i] * Math.abs(w[o]);
                by[i] = 2 * 9 * u * gy[i] * Math.abs(w[o]);
            }
            return new double[][]{v, bx, by};
        }
        double k = 2 * (count + 8) * u, scale = red == Reduction.MEAN ? 1.0 / Math.max(1, count) : 1, sum = 0;
        double[] bx = new double[len], by = new double[len];
        for (int i = 0; i < len; i++) { sum += lv[i]; bx[i] = k * gx[i] * scale; by[i] = k * gy[i] * scale; }
        return new double[][]{{k * sum * scale}, bx, by};
    }

    static void within(String what, double[] want, double[] got, double[] bound) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++)
            if (!(Math.abs(got[i] - want[i]) <= bound[i])) fail(what + " at " + i + ": " + got[i] + " vs torch's " + want[i] + " (allowed " + bound[i] + ")");
    }

    @Test
    void lossesAgreeWithTorchNnFunctional(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(77);
        int n = 5, c = 3;
        double[] x = uniform(r, n * c, -3, 3), y = uniform(r, n * c, -3, 3), yb = uniform(r, n * c, 0, 1), w = uniform(r, n * c, 0.5, 1.5);
        double[] pw = {0.5, 1, 4};
        x[0] = 40; x[1] = -40;   // the stable form's regime
        int[] labels = {2, 0, -100, 1, 2};
        double[] lp;
        try (Scope s = Scope.open()) { lp = NN.logSoftmax(Var.of(Tensor.of(x, n, c)), 1).value().toDoubleArray(); }
        String script = String.format(Locale.ROOT, """
                import torch
                import torch.nn.functional as F
                X, Y, YB, W, PW, LP, L = %s, %s, %s, %s, %s, %s, %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    pw = torch.tensor(PW, dtype=dt)
                    cases = {
                        'mse': lambda x, y, red: F.mse_loss(x, y, reduction=red),
                        'l1': lambda x, y, red: F.l1_loss(x, y, reduction=red),
                        'smoothl1': lambda x, y, red: F.smooth_l1_loss(x, y, reduction=red, beta=0.7),
                        'bce': lambda x, y, red: F.binary_cross_entropy_with_logits(x, y, reduction=red),
                        'bcepw': lambda x, y, red: F.binary_cross_entropy_with_logits(x, y, reduction=red, pos_weight=pw),
                        'nll': lambda x, y, red: F.nll_loss(x, torch.tensor(L), reduction=red, ignore_index=-100),
                    }
                    for red in ('none', 'mean', 'sum'):
                        for name, f in cases.items():
                            x = torch.tensor(LP if name == 'nll' else X, dtype=dt).reshape(%d, %d).requires_grad_()
                            y = torch.tensor(YB if name.startswith('bce') else Y, dtype=dt).reshape(%d, %d).requires_grad_()
                            l = f(x, y, red)
                            key = name + '.' + red + '.' + dn
                            out(key, l)
                            (l * torch.tensor(W, dtype=dt)[:l.numel()].reshape(l.shape) if red == 'none' else l).sum().backward()
                            out(key + '.dx', x.grad)
                            if name != 'nll':
                                out(key + '.dy', y.grad)
                """, TorchPeer.list(x), TorchPeer.list(y), TorchPeer.list(yb), TorchPeer.list(w), TorchPeer.list(pw), TorchPeer.list(lp),
                java.util.Arrays.toString(labels), n, c, n, c);
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        Map<String, Loss> ours = new java.util.LinkedHashMap<>();
        ours.put("mse", NN::mseLoss);
        ours.put("l1", NN::l1Loss);
        ours.put("smoothl1", (a, b, red) -> NN.smoothL1Loss(a, b, red, 0.7));
        ours.put("bce", (a, b, red) -> NN.binaryCrossEntropyWithLogits(a, b, null, red));
        int checked = 0;
        for (DType dt : new DType[]{DType.F64, DType.F32}) {
            try (Scope s = Scope.open()) {
                Tensor pwt = Tensor.of(pw, c).to(dt);
                ours.put("bcepw", (a, b, red) -> NN.binaryCrossEntropyWithLogits(a, b, pwt, red));
                ours.put("nll", (a, b, red) -> NN.nllLoss(a, labels, red, -100));
                for (Reduction red : Reduction.values())
                    for (Map.Entry<String, Loss> e : ours.entrySet()) {
                        String name = e.getKey(), key = name + "." + red.name().toLowerCase(Locale.ROOT) + "." + dt;
                        Var xv = Var.param(Tensor.of(name.equals("nll") ? lp : x, n, c).to(dt));
                        Var yv = Var.param(Tensor.of(name.startsWith("bce") ? yb : y, n, c).to(dt));
                        Var l = e.getValue().apply(xv, yv, red);
                        assertEquals(dt, l.value().dtype(), key);
                        double[][] b = lossBounds(name, red, dt, Tensor.of(name.equals("nll") ? lp : x, n * c).to(dt).toDoubleArray(),
                                Tensor.of(name.startsWith("bce") ? yb : y, n * c).to(dt).toDoubleArray(), pw, c, 0.7, labels, w);
                        within(key, torch.get(key), l.value().toDoubleArray(), b[0]);
                        int[] ls = l.shape();
                        (red == Reduction.NONE ? l.mul(Var.of(Tensor.of(java.util.Arrays.copyOf(w, (int) l.value().numel()), ls).to(dt))) : l).sum().backward();
                        within(key + ".dx", torch.get(key + ".dx"), xv.grad().toDoubleArray(), b[1]);
                        if (!name.equals("nll")) within(key + ".dy", torch.get(key + ".dy"), yv.grad().toDoubleArray(), b[2]);
                        checked++;
                    }
            }
        }
        assertEquals(36, checked);
    }

    /** F.layer_norm over the last two axes with weight and bias, and over the last axis without: values and the three gradients. */
    @Test
    void layerNormAgreesWithTorch(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(78);
        int[] xs = {2, 3, 4, 5};
        double[] x = uniform(r, 120, -3, 4), w = uniform(r, 120, 0.5, 1.5), gamma = uniform(r, 20, 0.5, 2), beta = uniform(r, 20, -1, 1);
        String script = String.format(Locale.ROOT, """
                import torch
                import torch.nn.functional as F
                X, W, G, B = %s, %s, %s, %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    for affine in (True, False):
                        x = torch.tensor(X, dtype=dt).reshape(2, 3, 4, 5).requires_grad_()
                        g = torch.tensor(G, dtype=dt).reshape(4, 5).requires_grad_()
                        b = torch.tensor(B, dtype=dt).reshape(4, 5).requires_grad_()
                        y = F.layer_norm(x, (4, 5), g, b, 1e-5) if affine else F.layer_norm(x, (5,), eps=1e-3)
                        key = 'ln.' + str(affine) + '.' + dn
                        out(key, y)
                        (y * torch.tensor(W, dtype=dt).reshape(2, 3, 4, 5)).sum().backward()
                        out(key + '.dx', x.grad)
                        if affine:
                            out(key + '.dg', g.grad)
                            out(key + '.db', b.grad)
                """, TorchPeer.list(x), TorchPeer.list(w), TorchPeer.list(gamma), TorchPeer.list(beta));
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (DType dt : new DType[]{DType.F64, DType.F32})
            for (boolean affine : new boolean[]{true, false})
                try (Scope s = Scope.open()) {
                    double rtol = dt == DType.F64 ? 1e-12 : 2e-5;
                    String key = "ln." + (affine ? "True" : "False") + "." + dt;
                    Var xv = Var.param(Tensor.of(x, xs).to(dt)), g = Var.param(Tensor.of(gamma, 4, 5).to(dt)), b = Var.param(Tensor.of(beta, 4, 5).to(dt));
                    Var y = affine ? NN.layerNorm(xv, new int[]{4, 5}, g, b, 1e-5) : NN.layerNorm(xv, new int[]{5}, null, null, 1e-3);
                    close(key, torch.get(key), y.value().toDoubleArray(), rtol);
                    y.mul(Var.of(Tensor.of(w, xs).to(dt))).sum().backward();
                    close(key + ".dx", torch.get(key + ".dx"), xv.grad().toDoubleArray(), rtol);
                    if (affine) {
                        close(key + ".dg", torch.get(key + ".dg"), g.grad().toDoubleArray(), rtol);
                        close(key + ".db", torch.get(key + ".db"), b.grad().toDoubleArray(), rtol);
                    }
                }
    }
}
