package fst4j.autograd;

import fst4j.sparse.Sparsifier;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A Sparsifier.Custom in the Eq. 1-3 node's slots: the node computes the paper's formulas with the rule's selection,
 * checked against float64 sums of the masked operands; a 2:4 rule takes the 2:4 product, and one that breaks its claim
 * fails with the offending group named.
 */
class CustomSlotTest {

    /** Keeps positions 1 and 3 of every group of 4 along the axis, whatever the values: a fixed 2:4 rule of one's own. */
    static Sparsifier odd24(int axis) {
        return Sparsifier.Custom.of("odd positions", axis, true, (v, shape) -> {
            int a = axis < 0 ? axis + shape.length : axis, len = shape[a], inner = 1;
            for (int d = a + 1; d < shape.length; d++) inner *= shape[d];
            boolean[] keep = new boolean[v.length];
            for (int i = 0; i < v.length; i++) keep[i] = ((i / inner) % len) % 4 % 2 == 1;
            return keep;
        });
    }

    @Test
    void customW24AndWt24InALinearMatchTheFormulas() {
        int n = 5, in = 12, out = 8;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(3);
            Tensor xt = r.normal(0, 1, n, in), wt = r.normal(0, 1, out, in), gt = r.normal(0, 1, n, out);
            SparseConfig cfg = SparseConfig.Method.DENSE.config().withW(odd24(1)).withWt(odd24(0)).withName("custom");
            Var x = Var.param(xt.copy()), w = Var.param(wt.copy());
            Var y = Layers.linear(new Gemm3(cfg), x, w, null);
            y.backward(gt);
            double[] X = xt.toDoubleArray(), W = wt.toDoubleArray(), G = gt.toDoubleArray();
            double[] yv = y.value().toDoubleArray(), dx = x.grad().toDoubleArray(), dw = w.grad().toDoubleArray();
            for (int i = 0; i < n; i++)
                for (int o = 0; o < out; o++) {
                    double want = 0;   // Eq. 1: S(W) keeps the odd columns of W (along K = in)
                    for (int k = 0; k < in; k++) if (k % 2 == 1) want += X[i * in + k] * W[o * in + k];
                    assertEquals(want, yv[i * out + o], 1e-5 * (1 + Math.abs(want)), "y " + i + "," + o);
                }
            for (int i = 0; i < n; i++)
                for (int k = 0; k < in; k++) {
                    double want = 0;   // Eq. 2: S(W^T) keeps the odd rows of W (along Cout = out)
                    for (int o = 0; o < out; o++) if (o % 2 == 1) want += G[i * out + o] * W[o * in + k];
                    assertEquals(want, dx[i * in + k], 1e-5 * (1 + Math.abs(want)), "dx " + i + "," + k);
                }
            for (int o = 0; o < out; o++)
                for (int k = 0; k < in; k++) {
                    double want = 0;   // Eq. 3 dense, the straight-through gradient of W
                    for (int i = 0; i < n; i++) want += G[i * out + o] * X[i * in + k];
                    assertEquals(want, dw[o * in + k], 1e-5 * (1 + Math.abs(want)), "dw " + o + "," + k);
                }
        }
    }

    @Test
    void aCustomRuleThatClaims24AndIsNotFailsNamingTheGroup() {
        Sparsifier liar = Sparsifier.Custom.of("keeps three", 1, true, (v, shape) -> {
            boolean[] k = new boolean[v.length];
            for (int i = 0; i < k.length; i++) k[i] = i % 4 != 0;
            return k;
        });
        try (Scope s = Scope.open()) {
            Rng r = new Rng(4);
            Var x = Var.param(r.normal(0, 1, 3, 8)), w = Var.param(r.normal(0, 1, 4, 8));
            Gemm3 node = new Gemm3(SparseConfig.Method.DENSE.config().withW(liar));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Layers.linear(node, x, w, null));
            assertTrue(e.getMessage().contains("not 2:4") && e.getMessage().contains("row 0, group 0"), e.getMessage());
            assertTrue(e.getMessage().startsWith("S(W) (Eq. 1) by the rule keeps three, which says it is 2:4"), e.getMessage());
            // in Eq. 2's slot (along Cout), the same
            Gemm3 wt = new Gemm3(SparseConfig.Method.DENSE.config().withWt(Sparsifier.Custom.of("keeps three of Cout", 0, true, (v, shape) -> {
                boolean[] k = new boolean[v.length];
                for (int i = 0; i < k.length; i++) k[i] = i / shape[1] % 4 != 0;
                return k;
            })));
            Var y = Layers.linear(wt, x, w, null);
            e = assertThrows(IllegalArgumentException.class, () -> y.sum().backward());
            assertTrue(e.getMessage().startsWith("S(W^T) (Eq. 2) by the rule keeps three of Cout") && e.getMessage().contains("not 2:4"), e.getMessage());
        }
    }

    /** A custom rule for X^T in Eq. 3 of a convolution: the whole-batch masked path, equal to the masked formula. */
    @Test
    void customXtInAConvolutionEqualsTheMaskedGemm() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            Tensor xt = r.normal(0, 1, 2, 3, 6, 6), wt = r.normal(0, 0.5, 4, 3, 3, 3);
            SparseConfig dense = SparseConfig.Method.DENSE.config(), custom = dense.withXt(odd24(1));
            Var x1 = Var.param(xt.copy()), w1 = Var.param(wt.copy());
            Var y1 = Layers.conv2d(new Gemm3(custom), x1, w1, null, 1, 1);
            Tensor g = r.normal(0, 1, y1.shape());
            y1.backward(g);
            // the same dW from the dense node on x with the im2col columns masked: odd columns of N*H*W are kept
            Tensor cols = fst4j.tensor.Conv.im2col(xt, 3, 1, 1);
            double[] c = cols.toDoubleArray(), G = g.toDoubleArray(), dw = w1.grad().toDoubleArray();
            int kRows = cols.size(0), ncol = cols.size(1), l = 36;
            for (int o = 0; o < 4; o++)
                for (int k = 0; k < kRows; k++) {
                    double want = 0;
                    for (int j = 0; j < ncol; j++) {
                        if (j % 2 == 0) continue;
                        int img = j / l, p = j % l;
                        want += G[(img * 4 + o) * l + p] * c[k * ncol + j];
                    }
                    assertEquals(want, dw[o * kRows + k], 1e-5 * (1 + Math.abs(want)), "dw " + o + "," + k);
                }
        }
    }
}
