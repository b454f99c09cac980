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
 * F.interpolate (nearest, nearest-exact and area; bilinear and bicubic with align_corners true and false; by size and by
 * scale factor, up, down, at non-integer factors and from 1-pixel inputs) and nn.Upsample against torch 1.13 in float32
 * and float64: the output and the input's gradient of sum(y * G), element by element.
 * Skipped, with the reason, where no Python imports torch (TorchPeer).
 */
class InterpolateTorchTest {
    /** n, c, h, w, then outH, outW (size) or, where scale is set, the scale factors of {@link #SCALES} at that index */
    static final int[][] SIZES = {{2, 3, 5, 4, 10, 8}, {1, 2, 4, 6, 7, 5}, {1, 1, 7, 3, 3, 11}, {2, 1, 3, 3, 3, 3}, {1, 2, 5, 5, 1, 1}, {1, 1, 6, 9, 13, 4},
            {1, 2, 1, 1, 4, 3}, {1, 1, 1, 5, 3, 2}, {1, 1, 11, 8, 4, 3}};
    static final int[][] SCALED = {{1, 2, 5, 4}, {1, 1, 6, 7}, {1, 1, 3, 3}, {2, 1, 4, 5}, {1, 1, 1, 1}, {1, 1, 9, 10}};
    static final double[][] SCALES = {{1.7, 2.5}, {0.4, 3.0}, {1.25, 1.0}, {2.0, 0.75}, {3.5, 2.0}, {0.45, 0.3}};

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
                for (boolean align : m.takesAlignCorners() ? new boolean[]{false, true} : new boolean[]{false}) {
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
                String mode = "mode='" + c.mode.torchName() + "'" + (c.mode.takesAlignCorners() ? ", align_corners=" + (c.align ? "True" : "False") : "");
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
            int planes = Math.max(1, c.shape[0] * c.shape[1]);
            int oh = Double.isNaN(c.sh) ? c.oh : (int) Math.floor(c.shape[2] * c.sh), ow = Double.isNaN(c.sh) ? c.ow : (int) Math.floor(c.shape[3] * c.sw);
            // y: at most four products in two sums (sixteen in bicubic, a window's elements in area); dx: every output
            // element that reads the input element (at most 4 oh ow / (n c); bicubic's sixteen taps per output)
            long ky = switch (c.mode) {
                case BICUBIC -> 18;
                case AREA -> (long) (c.shape[2] / oh + 2) * (c.shape[3] / ow + 2);
                default -> 6;
            };
            long kdx = (c.mode == InterpolateMode.BICUBIC ? 16L : 4L) * ours.get(i)[0].length / planes;
            // bilinear's and bicubic's source index (i + 0.5) scale - 0.5 is one rounding off torch's wherever either side
            // fuses the multiply-add, up to about u * in, which can move a weight up to that much (bicubic's four weights
            // up to 1.5 times that each) onto a neighbour: a slack of that on the largest |x| (and |G| times kdx for dx).
            // Nearest's and nearest-exact's indices are torch's exactly, and area has no weights: none.
            double slack = switch (c.mode) {
                case BILINEAR -> 8 * u * Math.max(c.shape[2], c.shape[3]);
                case BICUBIC -> 48 * u * Math.max(c.shape[2], c.shape[3]);
                default -> 0;
            };
            double[] magY = mags.get(i)[0], magDx = mags.get(i)[1];
            if (c.mode == InterpolateMode.BICUBIC) {
                // bicubic's weights go negative, so the output on |x| bounds nothing: per axis sum |w| <= 1.375 (at
                // t = 1/2), and an input element is read by at most readers(in, out) outputs along each axis
                long rh = readers(c, c.shape[2], oh, c.sh), rw = readers(c, c.shape[3], ow, c.sw);
                magY = filled(magY.length, 1.375 * 1.375 * maxAbs.get(i)[0]);
                magDx = filled(magDx.length, 1.375 * 1.375 * rh * rw * maxAbs.get(i)[1]);
                kdx = 16 * rh * rw;
            }
            // torch 1.13's nearest has two index rules where a given scale floors to the input's size or twice it: its NCHW
            // forward reads floor(i / scale), its backward and its channels-last forward (which [1, 1, H, W] takes) copy
            // or halve (nearest_idx). Ours is the NCHW forward's and that map's gradient (nearestIndicesAreTorchsForwardKernels)
            if (c.mode == InterpolateMode.NEAREST && (nearestIdxShortcut(c.sh, c.shape[2], oh) || nearestIdxShortcut(c.sw, c.shape[3], ow))) continue;
            within(c + " y", torch.get("y" + c.key), ours.get(i)[0], magY, ky, u, slack * maxAbs.get(i)[0]);
            // torch 1.13's bicubic backward (upsample_bicubic2d_backward_out_frame) copies the gradient where both sizes
            // are equal, though its forward weighs the taps there when a scale factor is given (1.25 on 3 rows floors
            // to 3): not the gradient of its own output. Ours is (float64 GradCheck), so that case's dx is not compared.
            if (c.mode == InterpolateMode.BICUBIC && !Double.isNaN(c.sh) && oh == c.shape[2] && ow == c.shape[3]) continue;
            within(c + " dx", torch.get("dx" + c.key), ours.get(i)[1], magDx, kdx, u, slack * maxAbs.get(i)[1] * kdx);
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

    /** Whether torch's nearest_idx copies or halves where its NCHW forward reads floor(i / scale): a given scale other than 1 or 2. */
    static boolean nearestIdxShortcut(double scale, int in, int out) {
        return !Double.isNaN(scale) && (out == in && scale != 1 || out == 2 * in && scale != 2);
    }

    /**
     * The nearest modes' source indices are torch 1.13's NCHW forward kernel's exactly (three channels, so torch does not
     * take its channels-last kernel, which [N, 1, H, W] can be): by a scale that floors to the input's size or twice it
     * (nearest reads floor(i / scale) there, no copy, no i / 2), and in float64 with the scale in double (2 rows to 218
     * or 209 moves one index against a float scale). Each row holds its index, so the output is the index map.
     */
    @Test
    void nearestIndicesAreTorchsForwardKernels(@TempDir Path dir) throws Exception {
        // h, then outH (size) or a scale factor
        double[][] geo = {{5, 0, 1.001}, {2, 0, 1.25}, {3, 0, 2.2}, {7, 0, 1.1}, {2, 218, 0}, {2, 209, 0}, {3, 0, 72.7}, {997, 2489, 0}, {2047, 0, 0.7331}};
        StringBuilder script = new StringBuilder("import torch\nimport torch.nn.functional as F\n");
        List<double[]> ours = new ArrayList<>();
        try (Scope s = Scope.open()) {
            for (DType dt : new DType[]{DType.F32, DType.F64})
                for (InterpolateMode m : new InterpolateMode[]{InterpolateMode.NEAREST, InterpolateMode.NEAREST_EXACT})
                    for (double[] g : geo) {
                        int h = (int) g[0];
                        double[] v = new double[3 * h];
                        for (int i = 0; i < v.length; i++) v[i] = i % h;
                        Var x = Var.of(Tensor.of(v, 1, 3, h, 1).to(dt));
                        Var y = g[2] > 0 ? NN.interpolateScale(x, g[2], 1, m, false) : NN.interpolate(x, (int) g[1], 1, m, false);
                        ours.add(y.value().toDoubleArray());
                        script.append(String.format(Locale.ROOT, "x = (torch.arange(%d, dtype=torch.float64) %% %d).to(%s).reshape(1, 3, %d, 1)%n", 3 * h, h,
                                dt == DType.F32 ? "torch.float32" : "torch.float64", h));
                        script.append(String.format(Locale.ROOT, "y = F.interpolate(x, %s, mode='%s')%nprint('y%d', *[repr(float(v)) for v in y.flatten().tolist()])%n",
                                g[2] > 0 ? "scale_factor=(" + g[2] + ", 1.0)" : "size=(" + (int) g[1] + ", 1)", m.torchName(), ours.size() - 1));
                    }
        }
        Map<String, double[]> torch = TorchPeer.run(dir, script.toString());
        int c = 0;
        for (DType dt : new DType[]{DType.F32, DType.F64})
            for (InterpolateMode m : new InterpolateMode[]{InterpolateMode.NEAREST, InterpolateMode.NEAREST_EXACT})
                for (double[] g : geo) {
                    double[] want = torch.get("y" + c), got = ours.get(c);
                    String what = dt + " " + m + " h " + (int) g[0] + (g[2] > 0 ? " by " + g[2] : " to " + (int) g[1]);
                    assertNotNull(want, "torch printed no y" + c);
                    assertEquals(want.length, got.length, what + ": sizes");
                    for (int i = 0; i < got.length; i++) if (got[i] != want[i]) fail(what + ": row " + i + " reads " + got[i] + ", torch's " + want[i]);
                    c++;
                }
    }

    /**
     * Bicubic: the most outputs along an axis whose four taps floor(src) - 1 .. floor(src) + 2 (clamped) reach one input
     * element, the source taken in double (one off at a boundary is covered: counted with a margin of one tap either side).
     */
    static long readers(Case c, int in, int out, double scale) {
        long[] n = new long[in];
        double s = c.align ? (out > 1 ? (double) (in - 1) / (out - 1) : 0) : Double.isNaN(scale) ? (double) in / out : 1 / scale;
        for (int i = 0; i < out; i++) {
            long f = (long) Math.floor(c.align ? s * i : s * (i + 0.5) - 0.5);
            boolean[] hit = new boolean[in];
            for (long j = f - 2; j <= f + 3; j++) hit[(int) Math.max(0, Math.min(j, in - 1))] = true;
            for (int r = 0; r < in; r++) if (hit[r]) n[r]++;
        }
        long m = 0;
        for (long v : n) m = Math.max(m, v);
        return m;
    }

    static double[] filled(int n, double v) {
        double[] a = new double[n];
        java.util.Arrays.fill(a, v);
        return a;
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
