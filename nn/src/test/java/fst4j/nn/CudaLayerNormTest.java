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
 * normalized sizes 1, 17 and 1031 (past 256 values per row the device's mean is a sum of partial sums: within 1e-5 of
 * the largest value then, else bit for bit), on a permuted input, with NaN and infinity propagating as on the CPU; the
 * module moved with to(Device.CUDA). Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaLayerNormTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** Bit for bit (NaN-ness for NaN) where tol is 0, else within tol times the largest finite |value| of want. */
    static void near(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length, what);
        double scale = 0;
        for (float w : want) if (Float.isFinite(w)) scale = Math.max(scale, Math.abs(w));
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(want[i]) || Float.isNaN(got[i])) { assertTrue(Float.isNaN(want[i]) && Float.isNaN(got[i]), what + " at " + i + ": " + got[i] + " vs " + want[i]); continue; }
            if (tol == 0 || Float.isInfinite(want[i])) assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), what + " at " + i + ": " + got[i] + " vs " + want[i]);
            else assertEquals(want[i], got[i], tol * Math.max(scale, 1e-30), what + " at " + i);
        }
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
                    long per = fst4j.tensor.Shape.numel(c[1]);
                    double tol = per > 256 ? 1e-5 : 0;   // the mean's partial sums past 256 values
                    String what = fst4j.tensor.Shape.str(c[0]) + " over " + fst4j.tensor.Shape.str(c[1]) + " affine " + affine;
                    String[] names = {"y", "dx", "dgamma", "dbeta"};
                    for (int k = 0; k < 4; k++)
                        // dgamma and dbeta are summed over the rows by the engine (sums of more than 256 terms where rows * ... exceed it)
                        near(cpu[k], gpu[k], k >= 2 ? Math.max(tol, 1e-6) : tol, what + " " + names[k]);
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
            for (int k = 0; k < 4; k++) near(cpu[k], gpu[k], k >= 2 ? 1e-6 : 0, "permuted " + k);
            // a NaN in one row and an infinity in another: those rows become NaN on both, the others are untouched
            float[] v = rng.normal(0, 1, 4, 9).toFloatArray();
            v[3] = Float.NaN;
            v[9 + 5] = Float.POSITIVE_INFINITY;
            Tensor xn = Tensor.of(v, 4, 9), wn = rng.normal(0, 1, 4, 9);
            cpu = run(xn, new int[]{9}, null, null, wn, Device.CPU);
            gpu = run(xn, new int[]{9}, null, null, wn, Device.CUDA);
            assertTrue(Float.isNaN(cpu[0][0]) && Float.isNaN(cpu[0][9]), "the CPU's rows with NaN and inf");
            near(cpu[0], gpu[0], 0, "y with NaN and inf");
            near(cpu[1], gpu[1], 0, "dx with NaN and inf");
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
            near(yc.value().toFloatArray(), yg.value().toFloatArray(), 0, "module y");
            for (String p : new String[]{"weight", "bias"}) {
                Var pc = cpu.namedParameters().get(p), pg = gpu.namedParameters().get(p);
                assertEquals(Device.CUDA, pg.grad().device());
                near(pc.grad().toFloatArray(), pg.grad().toFloatArray(), 0, "module d" + p);
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
