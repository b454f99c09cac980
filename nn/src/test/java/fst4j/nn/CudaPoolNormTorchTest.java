package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Pool;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

import static fst4j.nn.TorchFunctionalTest.close;
import static fst4j.nn.TorchFunctionalTest.uniform;

/**
 * The two ops brought to CUDA on branch cuda-gaps against torch 1.13: F.avg_pool2d (count_include_pad True and False,
 * square and rectangular windows, padding up to half the kernel as torch allows) and its input gradient, and eval-mode
 * F.batch_norm (running statistics, training=False) with the gradients of x, weight and bias; on the CPU in float64
 * and float32 and, where a CUDA back end is usable (the device, or the host emulator in the cuda-emulator execution),
 * on CUDA in float32. Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class CudaPoolNormTorchTest {
    /** {kh, kw, sh, sw, ph, pw} on x [2, 3, 9, 8] */
    private static final int[][] POOLS = {{3, 3, 2, 2, 1, 1}, {3, 2, 1, 3, 1, 1}, {2, 2, 2, 2, 0, 0}};

    private static List<Device> devices(DType dt) {
        List<Device> d = new ArrayList<>(List.of(Device.CPU));
        if (dt == DType.F32 && Cuda.isAvailable()) d.add(Device.CUDA);
        return d;
    }

    @Test
    void avgPoolAgreesWithTorch(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(101);
        int[] xs = {2, 3, 9, 8};
        double[] x = uniform(r, 432, -3, 4), w = uniform(r, 432, 0.5, 1.5);
        StringBuilder geoms = new StringBuilder("[");
        for (int[] p : POOLS) geoms.append(java.util.Arrays.toString(p)).append(",");
        String script = String.format(Locale.ROOT, """
                import torch
                import torch.nn.functional as F
                X, W, P = %s, %s, %s]
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    for i, (kh, kw, sh, sw, ph, pw) in enumerate(P):
                        for cip in (True, False):
                            x = torch.tensor(X, dtype=dt).reshape(2, 3, 9, 8).requires_grad_()
                            y = F.avg_pool2d(x, (kh, kw), (sh, sw), (ph, pw), count_include_pad=cip)
                            key = 'ap.%%d.%%s.%%s' %% (i, cip, dn)
                            out(key, y)
                            (y * torch.tensor(W[:y.numel()], dtype=dt).reshape(y.shape)).sum().backward()
                            out(key + '.dx', x.grad)
                """, TorchPeer.list(x), TorchPeer.list(w), geoms);
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (DType dt : new DType[]{DType.F64, DType.F32})
            for (Device dev : devices(dt))
                for (int i = 0; i < POOLS.length; i++)
                    for (boolean cip : new boolean[]{true, false})
                        try (Scope s = Scope.open()) {
                            int[] p = POOLS[i];
                            double rtol = dt == DType.F64 ? 1e-12 : 2e-6;
                            String key = "ap." + i + "." + (cip ? "True" : "False") + "." + dt;
                            Tensor xt = Tensor.of(x, xs).to(dt).to(dev);
                            Tensor y = Pool.avgPool2d(xt, p[0], p[1], p[2], p[3], p[4], p[5], cip);
                            close(key + " on " + dev, torch.get(key), y.toDoubleArray(), rtol);
                            Tensor g = Tensor.of(java.util.Arrays.copyOf(w, (int) y.numel()), y.shape()).to(dt).to(dev);
                            Tensor dx = Pool.avgPool2dBackward(g, xs, p[0], p[1], p[2], p[3], p[4], p[5], cip);
                            close(key + ".dx on " + dev, torch.get(key + ".dx"), dx.toDoubleArray(), rtol);
                        }
    }

    /**
     * Per element bounds {y, dx, dgamma, dbeta} on |ours - torch's| for eval-mode batch norm of x [n, c, h, w] with the
     * running statistics rm, rv: y = (x - rm) r gamma + beta with r = 1 / sqrt(rv + eps), dx = g gamma r, dgamma = sum of
     * g (x - rm) r, dbeta = sum of g, over m = n h w values per channel. Each side is within (terms + 8) u of the sum of
     * the magnitudes T of its terms (at most 8 other roundings, r's own included), so the two differ by at most twice
     * that: 2 (m + 8) u T for the sums, 2 * 9 u T for the formulas; T is |gamma| r (|x| + |rm|) + |beta|, |g gamma| r,
     * the sum of |g| r (|x| + |rm|), the sum of |g|. (It was rtol max(1, |want|), rtol 1e-5 and 1e-12: for the values
     * below 1, up to 1e-5 absolute, about 100 float32 ulps at 0.5 and a thousand at 0.05.)
     */
    static double[][] evalBnBounds(double[] x, double[] g, double[] gamma, double[] beta, double[] rm, double[] rv, double eps, int[] shape, double u) {
        int n = shape[0], c = shape[1], hw = shape[2] * shape[3], m = n * hw;
        double[] by = new double[x.length], bdx = new double[x.length], bg = new double[c], bb = new double[c];
        for (int e = 0; e < x.length; e++) {
            int ch = (e / hw) % c;
            double r = 1 / Math.sqrt(rv[ch] + eps), t = r * (Math.abs(x[e]) + Math.abs(rm[ch]));
            by[e] = 2 * 9 * u * (Math.abs(gamma[ch]) * t + Math.abs(beta[ch]));
            bdx[e] = 2 * 9 * u * Math.abs(g[e] * gamma[ch]) * r;
            bg[ch] += 2 * (m + 8) * u * Math.abs(g[e]) * t;
            bb[ch] += 2 * (m + 8) * u * Math.abs(g[e]);
        }
        return new double[][]{by, bdx, bg, bb};
    }

    static void within(String what, double[] want, double[] got, double[] bound) { TorchFunctionalTest.within(what, want, got, bound); }

    @Test
    void evalBatchNormAgreesWithTorch(@TempDir Path dir) throws Exception {
        SplittableRandom r = new SplittableRandom(102);
        int[] xs = {3, 4, 5, 6};
        double[] x = uniform(r, 360, -3, 4), w = uniform(r, 360, 0.5, 1.5), gamma = uniform(r, 4, 0.5, 2), beta = uniform(r, 4, -1, 1);
        double[] rm = uniform(r, 4, -1, 1), rv = uniform(r, 4, 0.3, 2);
        String script = String.format(Locale.ROOT, """
                import torch
                import torch.nn.functional as F
                X, W, G, B, RM, RV = %s, %s, %s, %s, %s, %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for dt, dn in ((torch.float64, 'F64'), (torch.float32, 'F32')):
                    x = torch.tensor(X, dtype=dt).reshape(3, 4, 5, 6).requires_grad_()
                    g = torch.tensor(G, dtype=dt).requires_grad_()
                    b = torch.tensor(B, dtype=dt).requires_grad_()
                    y = F.batch_norm(x, torch.tensor(RM, dtype=dt), torch.tensor(RV, dtype=dt), g, b, training=False, eps=1e-3)
                    out('bn.' + dn, y)
                    (y * torch.tensor(W, dtype=dt).reshape(3, 4, 5, 6)).sum().backward()
                    out('bn.' + dn + '.dx', x.grad)
                    out('bn.' + dn + '.dg', g.grad)
                    out('bn.' + dn + '.db', b.grad)
                """, TorchPeer.list(x), TorchPeer.list(w), TorchPeer.list(gamma), TorchPeer.list(beta), TorchPeer.list(rm), TorchPeer.list(rv));
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (DType dt : new DType[]{DType.F64, DType.F32})
            for (Device dev : devices(dt))
                try (Scope s = Scope.open()) {
                    double[][] bound = evalBnBounds(x, w, gamma, beta, rm, rv, 1e-3, xs, dt == DType.F64 ? 0x1p-53 : 0x1p-24);
                    String key = "bn." + dt;
                    Var xv = Var.param(Tensor.of(x, xs).to(dt).to(dev)), g = Var.param(Tensor.of(gamma, 4).to(dt).to(dev)),
                            b = Var.param(Tensor.of(beta, 4).to(dt).to(dev));
                    Var y = NN.batchNorm2d(xv, g, b, Tensor.of(rm, 4).to(dt).to(dev), Tensor.of(rv, 4).to(dt).to(dev), false, 0.1, 1e-3);
                    within(key + " on " + dev, torch.get(key), y.value().toDoubleArray(), bound[0]);
                    y.mul(Var.of(Tensor.of(w, xs).to(dt).to(dev))).sum().backward();
                    within(key + ".dx on " + dev, torch.get(key + ".dx"), xv.grad().toDoubleArray(), bound[1]);
                    within(key + ".dg on " + dev, torch.get(key + ".dg"), g.grad().toDoubleArray(), bound[2]);
                    within(key + ".db on " + dev, torch.get(key + ".db"), b.grad().toDoubleArray(), bound[3]);
                }
    }
}
