package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * NN.layerNorm: gradchecked in float64 (x, gamma, beta; one and two normalized axes; either affine part alone), values and
 * gradients against the formula written out per row in float32 and float64, bad input named. PyTorch's values: nn's
 * TorchFunctionalTest.
 */
class LayerNormTest {
    static void ok(String what, GradCheck.Fn f, Tensor... in) {
        GradCheck.Result r = GradCheck.check(f, in);
        assertTrue(r.passed(), what + ": " + r);
    }

    @Test
    void gradcheckInFloat64() {
        try (Scope s = Scope.open()) {
            int[] one = {5}, two = {3, 4};
            ok("last axis, affine", v -> NN.layerNorm(v[0], one, v[1], v[2], 1e-5), rand(1, 2, 3, 5), rand(2, 5), rand(3, 5));
            ok("last two axes, affine", v -> NN.layerNorm(v[0], two, v[1], v[2], 1e-5), rand(4, 2, 3, 4), rand(5, 3, 4), rand(6, 3, 4));
            ok("no affine", v -> NN.layerNorm(v[0], one, null, null, 1e-3), rand(7, 4, 5));
            ok("gamma only", v -> NN.layerNorm(v[0], one, v[1], null, 1e-5), rand(8, 4, 5), rand(9, 5));
            ok("beta only", v -> NN.layerNorm(v[0], one, null, v[1], 1e-5), rand(10, 4, 5), rand(11, 5));
            ok("whole tensor", v -> NN.layerNorm(v[0], new int[]{2, 5}, v[1], v[2], 0.1), rand(12, 2, 5), rand(13, 2, 5), rand(14, 2, 5));
        }
    }

    /** y and the gradients of sum(y * w) by the formula, row by row in double. */
    @Test
    void valuesAndGradientsMatchTheFormula() {
        int rows = 6, d = 7;
        double eps = 1e-5;
        for (DType dt : new DType[]{DType.F32, DType.F64})
            try (Scope s = Scope.open()) {
                Tensor xt = rand(20, -3.0, 5.0, 2, 3, d).to(dt), gt = rand(21, d).to(dt), bt = rand(22, d).to(dt), wt = rand(23, 2, 3, d).to(dt);
                double[] x = xt.toDoubleArray(), ga = gt.toDoubleArray(), be = bt.toDoubleArray(), w = wt.toDoubleArray();
                Var xv = Var.param(xt.copy()), gv = Var.param(gt.copy()), bv = Var.param(bt.copy());
                Var y = NN.layerNorm(xv, new int[]{d}, gv, bv, eps);
                assertEquals(dt, y.value().dtype());
                y.mul(Var.of(wt)).sum().backward();
                double[] yo = y.value().toDoubleArray(), dx = xv.grad().toDoubleArray(), dg = gv.grad().toDoubleArray(), db = bv.grad().toDoubleArray();
                double[] wantDg = new double[d], wantDb = new double[d];
                double tol = dt == DType.F32 ? 1e-5 : 1e-12;
                for (int r = 0; r < rows; r++) {
                    double mu = 0, var = 0;
                    for (int j = 0; j < d; j++) mu += x[r * d + j] / d;
                    for (int j = 0; j < d; j++) var += (x[r * d + j] - mu) * (x[r * d + j] - mu) / d;
                    double rs = 1 / Math.sqrt(var + eps);
                    double[] xh = new double[d], dh = new double[d];
                    double mdh = 0, mdhx = 0;
                    for (int j = 0; j < d; j++) {
                        int i = r * d + j;
                        xh[j] = (x[i] - mu) * rs;
                        assertEquals(xh[j] * ga[j] + be[j], yo[i], tol * 10, dt + " y at " + i);
                        dh[j] = w[i] * ga[j];
                        mdh += dh[j] / d;
                        mdhx += dh[j] * xh[j] / d;
                        wantDg[j] += w[i] * xh[j];
                        wantDb[j] += w[i];
                    }
                    for (int j = 0; j < d; j++)
                        assertEquals(rs * (dh[j] - mdh - xh[j] * mdhx), dx[r * d + j], tol * 10, dt + " dx at " + (r * d + j));
                }
                assertArrayEquals(wantDg, dg, tol * 10, dt + " dgamma");
                assertArrayEquals(wantDb, db, tol * 10, dt + " dbeta");
            }
    }

    @Test
    void badInputIsNamed() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.zeros(2, 3, 5));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[]{4, 5}, null, null, 1e-5));
            assertEquals("shape mismatch: layerNorm over normalizedShape [4, 5] needs input [*, 4, 5], got [2, 3, 5]", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[]{1, 2, 3, 5}, null, null, 1e-5));
            assertTrue(e.getMessage().startsWith("shape mismatch"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[0], null, null, 1e-5));
            assertTrue(e.getMessage().contains("at least one axis"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[]{5}, Var.of(Tensor.ones(3)), null, 1e-5));
            assertEquals("shape mismatch: layerNorm's gamma [3] must be normalizedShape [5]", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[]{5}, null, Var.of(Tensor.ones(1, 5)), 1e-5));
            assertEquals("shape mismatch: layerNorm's beta [1, 5] must be normalizedShape [5]", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.layerNorm(x, new int[]{5}, null, null, -1));
            assertTrue(e.getMessage().contains("eps"), e.getMessage());
        }
    }
}
