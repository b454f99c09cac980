package fst4j.nn;

import fst4j.autograd.ConvParams;
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
 * nn.ConvTranspose2d against torch 1.13's F.conv_transpose2d in float32 (per-axis kernel, stride, padding, output
 * padding, dilation; groups): the output and the gradients of input, weight and bias of sum(y * G), element by element
 * within the bound of Conv2dGeometryTorchTest. Skipped, with the reason, where no Python imports torch (TorchPeer).
 * Also: the weight's layout and torch's default init bound.
 */
class ConvTranspose2dTorchTest {
    /** n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, oph, opw, dh, dw, groups */
    static final int[][] CASES = {
            {1, 3, 4, 3, 5, 3, 2, 2, 3, 1, 0, 1, 2, 1, 1, 1},
            {3, 4, 3, 4, 6, 3, 3, 2, 2, 1, 1, 1, 0, 1, 1, 2},
            {2, 5, 3, 3, 7, 2, 3, 1, 1, 0, 1, 1, 0, 2, 2, 1},    // output padding 1 at stride 1, allowed by dilation 2
            {1, 2, 5, 4, 2, 3, 3, 3, 2, 2, 1, 2, 1, 1, 2, 2},
            {3, 6, 2, 3, 9, 1, 3, 3, 1, 0, 2, 0, 0, 1, 3, 3},
            {2, 8, 6, 6, 4, 4, 4, 2, 2, 1, 1, 0, 0, 1, 1, 1},    // a DCGAN generator's 4x4 stride-2 upsampling
    };

    @Test
    void agreesWithTorchConvTranspose2d(@TempDir Path dir) throws Exception {
        StringBuilder data = new StringBuilder();
        float[][][] ours = new float[CASES.length][][], mags = new float[CASES.length][][];
        long[][] terms = new long[CASES.length][];
        try (Scope s = Scope.open()) {
            for (int c = 0; c < CASES.length; c++) {
                int[] g = CASES[c];
                Rng r = new Rng(200 + c);
                ConvParams p = new ConvParams(g[7], g[8], g[9], g[10], g[13], g[14], g[15]);
                int[] k = {g[5], g[6]}, op = {g[11], g[12]};
                ConvTranspose2d conv = new ConvTranspose2d(g[1], g[4], k, p, op, true, r);
                Tensor x = r.normal(0, 1, g[0], g[1], g[2], g[3]);
                Var bias = conv.namedParameters().get("bias");
                Var xv = Var.of(x).requiresGrad(true);
                Var y = conv.forward(xv);
                Tensor gy = r.normal(0, 1, y.shape());
                y.mul(Var.of(gy)).sum().backward();
                ours[c] = new float[][]{y.value().toFloatArray(), xv.grad().toFloatArray(), conv.weight().grad().toFloatArray(), bias.grad().toFloatArray()};
                try (ConvTranspose2d abs = new ConvTranspose2d(g[1], g[4], k, p, op, true, new Rng(0))) {
                    mags[c] = Conv2dGeometryTorchTest.magnitudes(abs, conv.weight().value(), bias.value(), x, gy);
                }
                int[] ys = y.shape();
                // y: Cin/G kh kw products and the bias; dx: Cout/G kh kw; dw: N H W; db: N Ho Wo
                terms[c] = new long[]{(long) g[1] / g[15] * g[5] * g[6] + 1, (long) g[4] / g[15] * g[5] * g[6], (long) g[0] * g[2] * g[3], (long) ys[0] * ys[2] * ys[3]};
                data.append(String.format(Locale.ROOT, "CASES.append((%s, %s, %s, %s, %s, %s))%n", java.util.Arrays.toString(g).replace('[', '(').replace(']', ')'),
                        Conv2dGeometryTorchTest.list(x), Conv2dGeometryTorchTest.list(conv.weight().value()), Conv2dGeometryTorchTest.list(bias.value()),
                        Conv2dGeometryTorchTest.list(gy), java.util.Arrays.toString(ys).replace('[', '(').replace(']', ')')));
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
                    n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, oph, opw, dh, dw, groups = g
                    x = torch.tensor(X, dtype=torch.float32).reshape(n, cin, h, w).requires_grad_()
                    wt = torch.tensor(W, dtype=torch.float32).reshape(cin, cout // groups, kh, kw).requires_grad_()
                    b = torch.tensor(B, dtype=torch.float32).requires_grad_()
                    y = F.conv_transpose2d(x, wt, b, stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw), groups=groups, dilation=(dh, dw))
                    assert tuple(y.shape) == ys, (y.shape, ys)
                    (y * torch.tensor(G, dtype=torch.float32).reshape(y.shape)).sum().backward()
                    out('y%%d' %% i, y); out('dx%%d' %% i, x.grad); out('dw%%d' %% i, wt.grad); out('db%%d' %% i, b.grad)
                """.formatted(data.toString());
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        String[] names = {"y", "dx", "dw", "db"};
        for (int c = 0; c < CASES.length; c++)
            for (int k = 0; k < names.length; k++)
                Conv2dGeometryTorchTest.within(names[k] + c + " " + java.util.Arrays.toString(CASES[c]), torch.get(names[k] + c), ours[c][k], mags[c][k], terms[c][k]);
    }

    /**
     * torch's layout [Cin, Cout/groups, kh, kw] and init: kaiming_uniform(a = sqrt(5)) is uniform in +-1/sqrt(fan_in),
     * fan_in = Cout/groups * kh * kw (the weight's second axis, as torch's _calculate_fan_in_and_fan_out reads it), not
     * Conv2d's Cin/groups * kh * kw; the bias in the same bound.
     */
    @Test
    void weightHasTorchsLayoutAndInit() {
        try (Scope s = Scope.open(); ConvTranspose2d conv = new ConvTranspose2d(64, 8, new int[]{3, 5}, ConvParams.of(2, 1, 1, 2), new int[]{1, 1}, true, new Rng(0))) {
            assertArrayEquals(new int[]{64, 4, 3, 5}, conv.weight().shape());
            double bound = 1 / Math.sqrt(4 * 3 * 5), sq = 0, max = 0;
            float[] w = conv.weight().value().toFloatArray();
            for (float v : w) { sq += v * v; max = Math.max(max, Math.abs(v)); }
            assertTrue(max <= bound && max > 0.95 * bound, "largest |w| " + max + " for bound " + bound);
            double std = Math.sqrt(sq / w.length);
            assertEquals(bound / Math.sqrt(3), std, 0.05 * bound);
            for (float v : conv.namedParameters().get("bias").value().toFloatArray()) assertTrue(Math.abs(v) <= bound, "bias " + v);
            assertArrayEquals(new int[]{2, 8, 8, 12}, conv.forward(Var.of(new Rng(1).normal(0, 1, 2, 64, 4, 5))).shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> new ConvTranspose2d(6, 4, new int[]{3, 3}, ConvParams.of(1, 1, 1, 3), new int[]{0, 0}, false, new Rng(0)));
            assertTrue(e.getMessage().contains("divisible by groups 3"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> new ConvTranspose2d(4, 4, 3, 2, 1, 2, false, new Rng(0)));
            assertTrue(e.getMessage().contains("output padding 2x2 must be smaller than either the stride 2x2 or the dilation 1x1"), e.getMessage());
        }
    }
}
