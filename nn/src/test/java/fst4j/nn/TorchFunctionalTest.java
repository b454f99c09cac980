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
            double rtol = dt == DType.F64 ? 1e-13 : 3e-6;
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
                        close(key, torch.get(key), l.value().toDoubleArray(), rtol);
                        int[] ls = l.shape();
                        (red == Reduction.NONE ? l.mul(Var.of(Tensor.of(java.util.Arrays.copyOf(w, (int) l.value().numel()), ls).to(dt))) : l).sum().backward();
                        close(key + ".dx", torch.get(key + ".dx"), xv.grad().toDoubleArray(), rtol);
                        if (!name.equals("nll")) close(key + ".dy", torch.get(key + ".dy"), yv.grad().toDoubleArray(), rtol);
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
