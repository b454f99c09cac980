package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * nn.Conv2d with torch.nn.Conv2d's geometry (per-axis kernel, stride, padding, dilation; groups, depthwise) against
 * torch 1.13's F.conv2d in float32: the output and the gradients of input, weight and bias of sum(y * G). Skipped, with
 * the reason, where no Python imports torch (TorchPeer). Also: the module's weight is torch's [Cout, Cin/groups, kh, kw]
 * with torch's fan_in, and a sparse preset trains a step on grouped and dilated layers.
 */
class Conv2dGeometryTorchTest {
    /** n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups */
    static final int[][] CASES = {
            {2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2},
            {2, 6, 9, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6},      // depthwise
            {2, 3, 9, 10, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1},     // dilated "same"
            {1, 4, 11, 9, 8, 3, 2, 2, 1, 2, 0, 2, 3, 4},
            {2, 2, 8, 8, 4, 5, 3, 2, 2, 2, 1, 1, 1, 2},
            {3, 8, 5, 7, 16, 1, 1, 2, 2, 0, 0, 1, 1, 8},     // grouped pointwise at stride 2
            {2, 4, 12, 12, 8, 3, 3, 2, 2, 1, 1, 1, 1, 1},    // plain: the fast path, for reference
    };

    @Test
    void agreesWithTorchConv2d(@TempDir Path dir) throws Exception {
        StringBuilder data = new StringBuilder();
        float[][][] ours = new float[CASES.length][][], mags = new float[CASES.length][][];
        long[][] terms = new long[CASES.length][];
        try (Scope s = Scope.open()) {
            for (int c = 0; c < CASES.length; c++) {
                int[] g = CASES[c];
                Rng r = new Rng(100 + c);
                Conv2d conv = new Conv2d(g[1], g[4], new int[]{g[5], g[6]}, new ConvParams(g[7], g[8], g[9], g[10], g[11], g[12], g[13]), true,
                        SparseConfig.Method.DENSE.config(), r);
                Tensor x = r.normal(0, 1, g[0], g[1], g[2], g[3]);
                Var bias = conv.namedParameters().get("bias");
                bias.value().copyFrom(r.normal(0, 1, g[4]));
                Var xv = Var.of(x).requiresGrad(true);
                Var y = conv.forward(xv);
                Tensor gy = r.normal(0, 1, y.shape());
                y.mul(Var.of(gy)).sum().backward();
                ours[c] = new float[][]{y.value().toFloatArray(), xv.grad().toFloatArray(), conv.weight().grad().toFloatArray(), bias.grad().toFloatArray()};
                // the same products of |x|, |w|, |b| and |G|: every element's sum of its terms' magnitudes
                try (Conv2d abs = new Conv2d(g[1], g[4], new int[]{g[5], g[6]}, new ConvParams(g[7], g[8], g[9], g[10], g[11], g[12], g[13]), true,
                        SparseConfig.Method.DENSE.config(), new Rng(0))) {
                    mags[c] = magnitudes(abs, conv.weight().value(), bias.value(), x, gy);
                    int[] ys = y.shape();
                    terms[c] = new long[]{(long) g[1] / g[13] * g[5] * g[6] + 1, (long) g[4] / g[13] * g[5] * g[6], (long) ys[0] * ys[2] * ys[3], (long) ys[0] * ys[2] * ys[3]};
                }
                data.append(String.format(Locale.ROOT, "CASES.append((%s, %s, %s, %s, %s, %s))%n", java.util.Arrays.toString(g).replace('[', '(').replace(']', ')'),
                        list(x), list(conv.weight().value()), list(bias.value()), list(gy), java.util.Arrays.toString(y.shape()).replace('[', '(').replace(']', ')')));
                conv.close();
            }
        }
        String script = """
                import torch
                import torch.nn.functional as F
                CASES = []
                %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for i, (g, X, W, B, G, ys) in enumerate(CASES):
                    n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups = g
                    x = torch.tensor(X, dtype=torch.float32).reshape(n, cin, h, w).requires_grad_()
                    wt = torch.tensor(W, dtype=torch.float32).reshape(cout, cin // groups, kh, kw).requires_grad_()
                    b = torch.tensor(B, dtype=torch.float32).requires_grad_()
                    y = F.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=groups)
                    assert tuple(y.shape) == ys, (y.shape, ys)
                    (y * torch.tensor(G, dtype=torch.float32).reshape(y.shape)).sum().backward()
                    out('y%%d' %% i, y); out('dx%%d' %% i, x.grad); out('dw%%d' %% i, wt.grad); out('db%%d' %% i, b.grad)
                """.formatted(data.toString());
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        String[] names = {"y", "dx", "dw", "db"};
        for (int c = 0; c < CASES.length; c++)
            for (int k = 0; k < names.length; k++) within(names[k] + c + " " + java.util.Arrays.toString(CASES[c]), torch.get(names[k] + c), ours[c][k], mags[c][k], terms[c][k]);
    }

    /**
     * The layer abs (of the tested layer's geometry) run on |x| with |W|, |b| copied in and backpropagated from |gy|: its
     * output and three gradients are each element's sum of its terms' magnitudes, the scale of the per-element bounds.
     */
    static float[][] magnitudes(Module abs, Tensor w, Tensor b, Tensor x, Tensor gy) {
        Map<String, Var> p = abs.namedParameters();
        p.get("weight").value().copyFrom(w.abs());
        p.get("bias").value().copyFrom(b.abs());
        Var ax = Var.of(x.abs()).requiresGrad(true);
        Var ay = abs.forward(ax);
        ay.mul(Var.of(gy.abs())).sum().backward();
        return new float[][]{ay.value().toFloatArray(), ax.grad().toFloatArray(), p.get("weight").grad().toFloatArray(), p.get("bias").grad().toFloatArray()};
    }

    static String list(Tensor t) {
        float[] v = t.toFloatArray();
        double[] d = new double[v.length];
        for (int i = 0; i < v.length; i++) d[i] = v[i];
        return TorchPeer.list(d);
    }

    /**
     * float32 against float32, element by element: each element is a sum of at most k products (and the bias), which
     * each side adds in its own order (with or without FMA), so each is within (k + 2) u of the sum of the terms'
     * magnitudes mag[i] from the exact value (Higham's bound for any order, u = 2^-24) and the two differ by at most
     * twice that. (It was 1e-5 (1 + the tensor's largest magnitude): hundreds of ulps of a typical element, and
     * more of the small ones.)
     */
    static void within(String what, double[] want, float[] got, float[] mag, long k) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++) {
            double bound = 2 * (k + 2) * 0x1p-24 * mag[i];
            if (!(Math.abs(got[i] - want[i]) <= bound)) fail(what + " at " + i + ": " + got[i] + " vs torch's " + want[i] + " (allowed " + bound + ")");
        }
    }

    /** torch's weight layout and init scale: [Cout, Cin/groups, kh, kw], Kaiming normal with fan_in = Cin/groups * kh * kw. */
    @Test
    void weightHasTorchsLayoutAndFanIn() {
        try (Scope s = Scope.open(); Conv2d conv = new Conv2d(32, 64, new int[]{3, 5}, ConvParams.of(1, 1, 2, 8), false,
                SparseConfig.Method.DENSE.config(), new Rng(0))) {
            assertArrayEquals(new int[]{64, 4, 3, 5}, conv.weight().shape());
            double sq = 0;
            for (float v : conv.weight().value().toFloatArray()) sq += v * v;
            double std = Math.sqrt(sq / conv.weight().value().numel()), want = Math.sqrt(2.0 / (4 * 3 * 5));
            assertEquals(want, std, 0.1 * want);
            assertEquals(8, conv.groups());
            assertEquals(new Conv2d.Pair(2, 2), conv.dilation());
            assertEquals(new Conv2d.Pair(3, 5), conv.kernelSize());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Conv2d(6, 4, new int[]{3, 3}, ConvParams.of(1, 1, 1, 3), false,
                    SparseConfig.Method.DENSE.config(), new Rng(0)));
            assertTrue(e.getMessage().contains("divisible by groups 3"), e.getMessage());
        }
    }

    /** FST3_IR and SR_STE train an SGD step on a grouped layer and a dilated one: finite gradients, the weights move. */
    @Test
    void sparsePresetsTrainAStepOnGroupedAndDilatedLayers() {
        for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.FST3_IR, SparseConfig.Method.SR_STE}) {
            for (ConvParams p : new ConvParams[]{ConvParams.of(1, 1, 1, 4), ConvParams.of(1, 2, 2, 1), ConvParams.of(2, 1, 1, 16)}) {
                try (Scope s = Scope.open(); Conv2d conv = new Conv2d(16, 16, new int[]{3, 3}, p, true, m.config(), new Rng(3));
                     SGD opt = new SGD(conv.parameters(), 0.1, 0.9, 5e-4, false)) {
                    float[] before = conv.weight().value().toFloatArray();
                    Var x = Var.of(new Rng(4).normal(0, 1, 4, 16, 10, 10));
                    Var y = conv.forward(x);
                    y.mul(y).mean().backward();
                    for (float v : conv.weight().grad().toFloatArray()) assertTrue(Float.isFinite(v), m + " " + p);
                    SrSte.addDecay(conv, 2e-4);
                    opt.step();
                    opt.zeroGrad();
                    assertFalse(java.util.Arrays.equals(before, conv.weight().value().toFloatArray()), m + " " + p + ": the step moved nothing");
                }
            }
        }
    }
}
