package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * F.interpolate (nearest; bilinear with align_corners true and false; by size and by scale factor) and nn.Upsample
 * against torch 1.13 in float32 and float64: the output and the input's gradient of sum(y * G), element by element.
 * Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class InterpolateTorchTest {
    /** n, c, h, w, then outH, outW (size) or, where scale is set, the scale factors of {@link #SCALES} at that index */
    static final int[][] SIZES = {{2, 3, 5, 4, 10, 8}, {1, 2, 4, 6, 7, 5}, {1, 1, 7, 3, 3, 11}, {2, 1, 3, 3, 3, 3}, {1, 2, 5, 5, 1, 1}, {1, 1, 6, 9, 13, 4}};
    static final int[][] SCALED = {{1, 2, 5, 4}, {1, 1, 6, 7}, {1, 1, 3, 3}, {2, 1, 4, 5}};
    static final double[][] SCALES = {{1.7, 2.5}, {0.4, 3.0}, {1.25, 1.0}, {2.0, 0.75}};

    record Case(String key, int[] shape, int oh, int ow, double sh, double sw, InterpolateMode mode, boolean align, DType dt) {
        @Override public String toString() {
            return key + " " + java.util.Arrays.toString(shape) + (Double.isNaN(sh) ? " to " + oh + "x" + ow : " by " + sh + "x" + sw) + " " + mode
                    + (align ? " align_corners" : "") + " " + dt;
        }
    }

    @Test
    void agreesWithTorchInterpolate(@TempDir Path dir) throws Exception {
        List<Case> cases = new ArrayList<>();
        for (DType dt : new DType[]{DType.F32, DType.F64})
            for (InterpolateMode m : InterpolateMode.values())
                for (boolean align : m == InterpolateMode.NEAREST ? new boolean[]{false} : new boolean[]{false, true}) {
                    for (int[] c : SIZES)
                        cases.add(new Case("c" + cases.size(), java.util.Arrays.copyOf(c, 4), c[4], c[5], Double.NaN, Double.NaN, m, align, dt));
                    for (int i = 0; i < SCALED.length; i++)
                        cases.add(new Case("c" + cases.size(), SCALED[i], 0, 0, SCALES[i][0], SCALES[i][1], m, align, dt));
                }
        StringBuilder data = new StringBuilder();
        List<double[][]> ours = new ArrayList<>(), mags = new ArrayList<>();
        List<double[]> maxAbs = new ArrayList<>();
        try (Scope s = Scope.open()) {
            Rng r = new Rng(7);
            for (Case c : cases) {
                Tensor x = r.normal(c.dt, 0, 1, c.shape);
                Var xv = Var.of(x).requiresGrad(true), ax = Var.of(x.abs()).requiresGrad(true);
                Module up = Double.isNaN(c.sh) ? Upsample.size(c.oh, c.ow, c.mode, c.align) : Upsample.scale(c.sh, c.sw, c.mode, c.align);
                Var y = up.forward(xv), ay = up.forward(ax);
                Tensor g = r.normal(c.dt, 0, 1, y.shape());
                y.backward(g);
                ay.backward(g.abs());
                ours.add(new double[][]{y.value().toDoubleArray(), xv.grad().toDoubleArray()});
                mags.add(new double[][]{ay.value().toDoubleArray(), ax.grad().toDoubleArray()});
                maxAbs.add(new double[]{max(x.abs().toDoubleArray()), max(g.abs().toDoubleArray())});
                String how = Double.isNaN(c.sh) ? String.format(Locale.ROOT, "size=(%d, %d)", c.oh, c.ow)
                        : String.format(Locale.ROOT, "scale_factor=(%s, %s)", c.sh, c.sw);
                String mode = c.mode == InterpolateMode.NEAREST ? "mode='nearest'" : "mode='bilinear', align_corners=" + (c.align ? "True" : "False");
                data.append(String.format(Locale.ROOT, "CASES.append(('%s', %s, %s, %s, %s, dict(%s, %s)))%n", c.key, java.util.Arrays.toString(c.shape)
                        .replace('[', '(').replace(']', ')'), c.dt == DType.F32 ? "torch.float32" : "torch.float64", TorchPeer.list(x.toDoubleArray()),
                        TorchPeer.list(g.toDoubleArray()), how, mode));
            }
        }
        String script = """
                import torch
                import torch.nn.functional as F
                CASES = []
                %s
                def out(key, t):
                    print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                for key, shape, dt, X, G, kw in CASES:
                    x = torch.tensor(X, dtype=dt).reshape(shape).requires_grad_()
                    y = F.interpolate(x, **kw)
                    y.backward(torch.tensor(G, dtype=dt).reshape(y.shape))
                    out('y' + key, y); out('dx' + key, x.grad)
                """.formatted(data.toString());
        Map<String, double[]> torch = TorchPeer.run(dir, script);
        for (int i = 0; i < cases.size(); i++) {
            Case c = cases.get(i);
            double u = c.dt == DType.F32 ? 0x1p-24 : 0x1p-53;
            int[] ys = {c.shape[0], c.shape[1], 0, 0};
            // y: at most four products in two sums; dx: every output element that reads the input element (at most 4 oh ow / (n c))
            long kdx = 4L * ours.get(i)[0].length / Math.max(1, c.shape[0] * c.shape[1]);
            // bilinear's source index (i + 0.5) scale - 0.5 is one rounding off torch's wherever either side fuses the
            // multiply-add, up to about u * in, which can move a weight up to that much onto the neighbour below: a slack
            // of that weight on the largest |x| (and |G| times kdx for dx). Nearest's indices are torch's exactly: none.
            double slack = c.mode == InterpolateMode.NEAREST ? 0 : 8 * u * Math.max(c.shape[2], c.shape[3]);
            within(c + " y", torch.get("y" + c.key), ours.get(i)[0], mags.get(i)[0], 6, u, slack * maxAbs.get(i)[0]);
            within(c + " dx", torch.get("dx" + c.key), ours.get(i)[1], mags.get(i)[1], kdx, u, slack * maxAbs.get(i)[1] * kdx);
        }
    }

    /**
     * float32 bilinear's source index and weights are torch 1.13's own (the index rounded to float, opmath_t, before the
     * weights are taken from it): on a column holding its row numbers, x[h] = h, the output l0 h0 + l1 h1 has torch's bits
     * at every one of thousands of rows, up and with align_corners. Kept in double, as it was, the index gave about a
     * quarter of the rows one ulp off.
     */
    @Test
    void float32BilinearWeightsAreTorchsBitForBit(@TempDir Path dir) throws Exception {
        int[][] geo = {{1000, 3001}, {4000, 4999}};
        StringBuilder script = new StringBuilder("import torch\nimport torch.nn.functional as F\n");
        List<float[]> ours = new ArrayList<>();
        try (Scope s = Scope.open()) {
            for (int[] g : geo)
                for (boolean align : new boolean[]{false, true}) {
                    float[] v = new float[g[0]];
                    for (int i = 0; i < v.length; i++) v[i] = i;
                    ours.add(NN.interpolate(Var.of(Tensor.of(v, 1, 1, g[0], 1)), g[1], 1, InterpolateMode.BILINEAR, align).value().toFloatArray());
                    script.append(String.format(Locale.ROOT, "y = F.interpolate(torch.arange(%d, dtype=torch.float32).reshape(1, 1, %d, 1), size=(%d, 1), "
                            + "mode='bilinear', align_corners=%s)%nprint('y%d', *[repr(v) for v in y.flatten().tolist()])%n", g[0], g[0], g[1], align ? "True" : "False", ours.size() - 1));
                }
        }
        Map<String, double[]> torch = TorchPeer.run(dir, script.toString());
        for (int c = 0; c < ours.size(); c++) {
            double[] want = torch.get("y" + c);
            float[] got = ours.get(c);
            assertNotNull(want, "torch printed no y" + c);
            assertEquals(want.length, got.length);
            int off = 0, first = -1;
            for (int i = 0; i < got.length; i++) if (got[i] != want[i]) { off++; if (first < 0) first = i; }
            if (off > 0)
                fail("case " + c + " " + java.util.Arrays.toString(geo[c / 2]) + (c % 2 == 1 ? " align_corners" : "") + ": " + off + " rows off torch's, first "
                        + first + ": " + got[first] + " vs " + want[first]);
        }
    }

    static double max(double[] v) {
        double m = 0;
        for (double d : v) m = Math.max(m, d);
        return m;
    }

    /** |ours - torch's| <= 2 (k + 2) u mag + slack per element (Higham's bound on each side for sums of k terms in any order). */
    static void within(String what, double[] want, double[] got, double[] mag, long k, double u, double slack) {
        assertNotNull(want, "torch printed no " + what);
        assertEquals(want.length, got.length, what + ": sizes");
        for (int i = 0; i < want.length; i++) {
            double bound = 2 * (k + 2) * u * mag[i] + slack;
            if (!(Math.abs(got[i] - want[i]) <= bound)) fail(what + " at " + i + ": " + got[i] + " vs torch's " + want[i] + " (allowed " + bound + ")");
        }
    }
}
