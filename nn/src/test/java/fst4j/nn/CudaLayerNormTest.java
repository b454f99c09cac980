package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Layer norm on CUDA tensors (NN.layerNorm composed of device ops: mean, sub, mul, add, pow) against the same on the CPU:
 * values and the gradients of x, gamma and beta, over one and two axes, with and without the affine parameters, at
 * normalized sizes 1, 17 and 1031 (bit for bit up to 256 values per row; past that the device's mean is a sum of partial
 * sums, and each element is held to the bound {@link #bounds} derives from one float ulp of the row's mean), on a permuted input, with NaN and infinity propagating as on the CPU; the
 * module moved with to(Device.CUDA). Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaLayerNormTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** Bit for bit (NaN-ness for NaN). */
    static void near(float[] want, float[] got, String what) { Ulps.assertNear(want, got, 0, what); }

    static final double U = 0x1p-24;   // a float's unit roundoff

    /**
     * Per element bounds {y, dx, dgamma, dbeta} on the difference of CUDA from the CPU for rows of per > 256 values
     * (x, w [rows, per] row-major; gamma, beta [per] or null): the device's row mean (256 partial sums in double, then
     * their sum) and the CPU's (one serial double sum) are the same real number to 1e-13 relative, so their floats
     * differ by at most one ulp, ulp(mu); everything else rounds as on the CPU. With r = 1 / sqrt(var + eps) and
     * xh = (x - mu) r, that ulp moves xh by d = r ulp(mu) in every element of the row, and the result then rounds
     * again: each bound is d times what multiplies xh, plus 8 roundings (the longest chain of float ops of
     * NN.layerNorm's graph) of the sum of the magnitudes of the terms the element is made of.
     *   y = gamma xh + beta: |gamma| d + 8u (|gamma xh| + |beta|);
     *   dx = r (g - m1 - xh m2), g = w gamma, m1 = mean(g), m2 = mean(g xh): r (|m2| + mean|g|) d + 8u r (|g| + |m1| + |xh m2|);
     *   dgamma = sum over rows of w xh: sum |w| d + 8u sum |w xh|;  dbeta = sum over rows of w: no mean in it, bit for bit.
     * (It was 1e-5 of the tensor's largest value, about 3.5e-5 absolute here, 1000 times these for the small elements.)
     */
    static double[][] bounds(float[] x, float[] w, float[] gamma, float[] beta, int per, double eps) {
        int rows = x.length / per;
        double[] by = new double[x.length], bdx = new double[x.length], bg = new double[per], bb = new double[per];
        for (int r = 0; r < rows; r++) {
            double mu = 0, var = 0;
            for (int j = 0; j < per; j++) mu += x[r * per + j];
            mu /= per;
            for (int j = 0; j < per; j++) var += (x[r * per + j] - mu) * (x[r * per + j] - mu);
            double rs = 1 / Math.sqrt(var / per + eps), d = rs * Math.ulp((float) mu);
            double m1 = 0, m2 = 0, ag = 0;
            for (int j = 0; j < per; j++) {
                double g = w[r * per + j] * (gamma == null ? 1 : gamma[j]), xh = (x[r * per + j] - mu) * rs;
                m1 += g / per; m2 += g * xh / per; ag += Math.abs(g) / per;
            }
            for (int j = 0; j < per; j++) {
                int i = r * per + j;
                double gm = gamma == null ? 1 : gamma[j], bt = beta == null ? 0 : beta[j], g = w[i] * gm, xh = (x[i] - mu) * rs;
                by[i] = Math.abs(gm) * d + 8 * U * (Math.abs(gm * xh) + Math.abs(bt));
                bdx[i] = rs * (Math.abs(m2) + ag) * d + 8 * U * rs * (Math.abs(g) + Math.abs(m1) + Math.abs(xh * m2));
                bg[j] += Math.abs(w[i]) * d + 8 * U * Math.abs(w[i] * xh);
            }
        }
        return new double[][]{by, bdx, bg, bb};
    }

    /** {y, dx, dgamma, dbeta} of sum(layerNorm(x) * w) for x given (any layout) on its device. */
    private static float[][] run(Tensor x, int[] shape, Tensor gamma, Tensor beta, Tensor w, Device d) {
        Var xv = Var.param(x.to(d)), g = gamma == null ? null : Var.param(gamma.to(d)), b = beta == null ? null : Var.param(beta.to(d));
        Var y = NN.layerNorm(xv, shape, g, b, 1e-5);
        assertEquals(d, y.value().device());
        y.mul(Var.of(w.to(d))).sum().backward();
        assertEquals(d, xv.grad().device());
        return new float[][]{y.value().toFloatArray(), xv.grad().toFloatArray(), g == null ? new float[0] : g.grad().toFloatArray(),
                b == null ? new float[0] : b.grad().toFloatArray()};
    }

    @Test
    void valuesAndGradientsAsOnTheCpu() {
        int[][][] cases = {   // x's shape, normalizedShape
                {{4, 1}, {1}}, {{3, 17}, {17}}, {{2, 1031}, {1031}}, {{2, 3, 5, 7}, {5, 7}}, {{5, 17}, {5, 17}},
        };
        int seed = 0;
        for (int[][] c : cases)
            for (int affine = 0; affine < 4; affine++)
                try (Scope s = Scope.open()) {
                    Rng rng = new Rng(100 + seed++);
                    Tensor x = rng.normal(0.5, 2, c[0]), w = rng.normal(0, 1, c[0]);
                    Tensor gamma = (affine & 1) != 0 ? rng.normal(1, 0.5, c[1]) : null, beta = (affine & 2) != 0 ? rng.normal(0, 1, c[1]) : null;
                    float[][] cpu = run(x, c[1], gamma, beta, w, Device.CPU), gpu = run(x, c[1], gamma, beta, w, Device.CUDA);
                    int per = (int) fst4j.tensor.Shape.numel(c[1]);
                    // the mean's partial sums past 256 values per row; dgamma and dbeta are sums over at most 6 rows (in the CPU's order)
                    double[][] b = per > 256 ? bounds(x.toFloatArray(), w.toFloatArray(), gamma == null ? null : gamma.toFloatArray(),
                            beta == null ? null : beta.toFloatArray(), per, 1e-5) : new double[4][];
                    String what = fst4j.tensor.Shape.str(c[0]) + " over " + fst4j.tensor.Shape.str(c[1]) + " affine " + affine;
                    String[] names = {"y", "dx", "dgamma", "dbeta"};
                    for (int k = 0; k < 4; k++) Ulps.assertNear(cpu[k], gpu[k], 0, cpu[k].length == 0 ? null : b[k], what + " " + names[k]);
                }
    }

    @Test
    void aPermutedInputAndNonFiniteValues() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(7);
            Tensor base = rng.normal(0, 1, 9, 4, 6);
            Tensor x = base.permute(1, 2, 0);   // [4, 6, 9], not contiguous
            assertFalse(x.isContiguous());
            Tensor w = rng.normal(0, 1, 4, 6, 9), gamma = rng.normal(1, 0.5, 9), beta = rng.normal(0, 1, 9);
            float[][] cpu = run(x, new int[]{9}, gamma, beta, w, Device.CPU), gpu = run(x, new int[]{9}, gamma, beta, w, Device.CUDA);
            for (int k = 0; k < 4; k++) near(cpu[k], gpu[k], "permuted " + k);   // 9 values per row, 24 rows: bit for bit
            // a NaN in one row and an infinity in another: those rows become NaN on both, the others are untouched
            float[] v = rng.normal(0, 1, 4, 9).toFloatArray();
            v[3] = Float.NaN;
            v[9 + 5] = Float.POSITIVE_INFINITY;
            Tensor xn = Tensor.of(v, 4, 9), wn = rng.normal(0, 1, 4, 9);
            cpu = run(xn, new int[]{9}, null, null, wn, Device.CPU);
            gpu = run(xn, new int[]{9}, null, null, wn, Device.CUDA);
            assertTrue(Float.isNaN(cpu[0][0]) && Float.isNaN(cpu[0][9]), "the CPU's rows with NaN and inf");
            near(cpu[0], gpu[0], "y with NaN and inf");
            near(cpu[1], gpu[1], "dx with NaN and inf");
        }
    }

    @Test
    void theModuleMovedToCudaTrainsAsOnTheCpu() {
        try (Scope s = Scope.open(); LayerNorm cpu = new LayerNorm(17); LayerNorm gpu = new LayerNorm(17).to(Device.CUDA)) {
            Rng rng = new Rng(3);
            Tensor x = rng.normal(0, 3, 2, 5, 17), w = rng.normal(0, 1, 2, 5, 17);
            Var yc = cpu.forward(Var.of(x)), yg = gpu.forward(Var.of(x.to(Device.CUDA)));
            assertEquals(Device.CUDA, yg.value().device());
            yc.mul(Var.of(w)).sum().backward();
            yg.mul(Var.of(w.to(Device.CUDA))).sum().backward();
            near(yc.value().toFloatArray(), yg.value().toFloatArray(), "module y");
            for (String p : new String[]{"weight", "bias"}) {
                Var pc = cpu.namedParameters().get(p), pg = gpu.namedParameters().get(p);
                assertEquals(Device.CUDA, pg.grad().device());
                near(pc.grad().toFloatArray(), pg.grad().toFloatArray(), "module d" + p);
            }
        }
    }

    @Test
    void mixedDevicesAreRefused() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.ones(2, 3).to(Device.CUDA)), g = Var.param(Tensor.ones(3));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[]{3}, g, null, 1e-5));
            assertTrue(e.getMessage().startsWith("device mismatch"), e.getMessage());
        }
    }
}
