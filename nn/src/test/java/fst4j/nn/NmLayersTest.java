package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.Layers;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.cli.BlasThreads;
import fst4j.sparse.NM;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A Linear and a Conv2d layer under FST2 at 1:4 (SparseConfig.of(FST2, 1:4)): Eq. 1 is the dense product of S(W) (1:4
 * along K), Eq. 2 the dense product of S(W^T) (1:4 along Cout, pruned from W separately) and Eq. 3 the dense weight
 * gradient, on fresh random data at sizes that are no multiple of 4. Where both sides run the same dense kernel (the
 * linear layer's products, the convolution's Eq. 1 and 3) the bits are equal, which also says that the N:M operand did
 * not go through a 2:4 kernel (whose order of summation differs); the convolution's Eq. 2, which the dense reference
 * computes as a transposed convolution, is compared in float64 too.
 */
class NmLayersTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    private static final NM ONE_FOUR = new NM(1, 4);

    /** rule applied to w seen as the paper's [Cout, K] matrix, back in w's shape. */
    private static Tensor masked(Sparsifier rule, Tensor w) {
        int cout = w.size(0);
        try (Tensor m = w.contiguous().reshape(cout, (int) (w.numel() / cout)); Tensor s = rule.apply(m)) {
            return s.reshape(w.shape()).contiguous();
        }
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what);
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        for (int i = 0; i < a.length; i++)
            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), what + ": element " + i + " " + b[i] + " vs " + a[i]);
    }

    private static void assertClose(Tensor want, Tensor got, double tol, String what) {
        double[] a = want.toDoubleArray(), b = got.toDoubleArray();
        assertEquals(a.length, b.length, what);
        double scale = 0;
        for (double v : a) scale = Math.max(scale, Math.abs(v));
        assertTrue(scale > 0, what + ": a reference of zeros tests nothing");
        for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], tol * scale, what + ": element " + i);
    }

    @Test
    void linearAtOneFourIsTheDenseProductsOfTheMaskedWeights() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(7);
            SparseConfig cfg = SparseConfig.of(Method.FST2, ONE_FOUR);
            assertEquals(new Sparsifier.MagnitudeNM(1, 4, 1), cfg.w());
            assertEquals(new Sparsifier.MagnitudeNM(1, 4, 0), cfg.wt());
            Linear layer = new Linear(13, 10, false, cfg, r);
            Tensor w = layer.weight().value(), xv = r.normal(0, 1, 6, 13), dy = r.normal(0, 1, 6, 10);
            Var x = Var.param(xv.copy());
            Var y = layer.forward(x);
            y.backward(dy);
            Tensor sw = masked(new Sparsifier.MagnitudeNM(1, 4, 1), w), swt = masked(new Sparsifier.MagnitudeNM(1, 4, 0), w);

            Gemm3 dense = new Gemm3(Method.DENSE.config());
            Var x1 = Var.param(xv.copy()), w1 = Var.param(sw);
            Var y1 = Layers.linear(dense, x1, w1, null);
            assertBits(y1.value(), y.value(), "Eq. 1: x S(W)^T");
            y1.backward(dy);
            assertBits(w1.grad(), layer.weight().grad(), "Eq. 3: dY^T x (dense)");

            Var x2 = Var.param(xv.copy()), w2 = Var.param(swt);
            Layers.linear(new Gemm3(Method.DENSE.config()), x2, w2, null).backward(dy);
            assertBits(x2.grad(), x.grad(), "Eq. 2: dY S(W^T)");
            // and the float64 products by the definition
            try (Tensor yd = xv.to(DType.F64).matmul(sw.to(DType.F64).t()); Tensor dxd = dy.to(DType.F64).matmul(swt.to(DType.F64))) {
                assertClose(yd, y.value(), 1e-6, "Eq. 1 against float64");
                assertClose(dxd, x.grad(), 1e-6, "Eq. 2 against float64");
            }
        }
    }

    @Test
    void conv2dAtOneFourIsTheDenseProductsOfTheMaskedWeights() {
        for (int[] g : new int[][]{{3, 6, 3, 1, 1, 7, 5}, {5, 7, 3, 2, 1, 9, 6}, {2, 9, 1, 1, 0, 5, 5}})   // cin, cout, k, stride, pad, h, w
            try (Scope s = Scope.open()) {
                String what = java.util.Arrays.toString(g);
                Rng r = new Rng(g[0] * 31 + g[1]);
                SparseConfig cfg = SparseConfig.of(Method.FST2, ONE_FOUR);
                Conv2d layer = new Conv2d(g[0], g[1], g[2], g[3], g[4], false, cfg, r);
                Tensor w = layer.weight().value(), xv = r.normal(0, 1, 2, g[0], g[5], g[6]);
                Var x = Var.param(xv.copy());
                Var y = layer.forward(x);
                Tensor dy = r.normal(0, 1, y.shape());
                y.backward(dy);
                Tensor sw = masked(new Sparsifier.MagnitudeNM(1, 4, 1), w), swt = masked(new Sparsifier.MagnitudeNM(1, 4, 0), w);

                Var x1 = Var.param(xv.copy()), w1 = Var.param(sw);
                Var y1 = Layers.conv2d(new Gemm3(Method.DENSE.config()), x1, w1, null, g[3], g[4]);
                assertBits(y1.value(), y.value(), what + " Eq. 1: S(W) X");
                y1.backward(dy);
                assertBits(w1.grad(), layer.weight().grad(), what + " Eq. 3 (dense)");

                // Eq. 2 in float64: the dense convolution's input gradient with S(W^T) as its weight
                Var x2 = Var.param(xv.to(DType.F64)), w2 = Var.param(swt.to(DType.F64));
                Layers.conv2d(new Gemm3(Method.DENSE.config()), x2, w2, null, g[3], g[4]).backward(dy.to(DType.F64));
                assertClose(x2.grad(), x.grad(), 1e-6, what + " Eq. 2: S(W^T)^T dY");
                // the layer's own float64 pass: the same products up to float64 rounding
                Var x3 = Var.param(xv.to(DType.F64)), w3 = Var.param(w.to(DType.F64));
                Var y3 = Layers.conv2d(new Gemm3(cfg), x3, w3, null, g[3], g[4]);
                Var y4 = Layers.conv2d(new Gemm3(Method.DENSE.config()), Var.param(xv.to(DType.F64)), Var.param(sw.to(DType.F64)), null, g[3], g[4]);
                assertClose(y4.value(), y3.value(), 1e-12, what + " Eq. 1 in float64");
                y3.backward(dy.to(DType.F64));
                assertClose(x2.grad(), x3.grad(), 1e-12, what + " Eq. 2 in float64");
            }
    }

    @Test
    void presetsThatPruneNoWeightByMagnitudeRefuseAPattern() {
        for (Method m : Method.values()) {
            if (m.whyNoPattern() == null) {
                SparseConfig c = SparseConfig.of(m, new NM(2, 8));
                assertInstanceOf(Sparsifier.MagnitudeNM.class, c.w(), m.toString());
                assertTrue(c.wt() instanceof Sparsifier.Dense || c.wt() instanceof Sparsifier.MagnitudeNM, m.toString());
                assertEquals(m.config().xt().getClass(), c.xt().getClass(), m + ": the X^T slot keeps its 2:4 rule");
                assertEquals(m.config().dyEq3().getClass(), c.dyEq3().getClass(), m + ": the dY slot keeps its 2:4 rule");
            } else {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SparseConfig.of(m, new NM(1, 4)));
                assertTrue(e.getMessage().startsWith("N:M 1:4 has no meaning for " + m.name().toLowerCase(java.util.Locale.ROOT) + ": "), e.getMessage());
            }
            if (m != Method.FST_CODE && m != Method.FST3_IR_PATTERNS && m != Method.TSM)   // (their stateful rules compare by identity)
                assertEquals(m.config(), SparseConfig.of(m, NM.TWO_FOUR), m + " at 2:4 is the preset");
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SparseConfig.of(Method.TSM, new NM(2, 8)));
        assertTrue(e.getMessage().contains("transposable mask is 2:4 along both axes"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Method.DENSE.config().withW(Sparsifier.Custom.of("mine", 1, false, (v, sh) -> new boolean[v.length]))
                .withPattern(new NM(1, 4)));
        assertTrue(e.getMessage().contains("pruned by mine, not by magnitude"), e.getMessage());
        assertSame(Method.FST2.config().withPattern(NM.TWO_FOUR).getClass(), SparseConfig.class);
        assertEquals(new Sparsifier.Magnitude24(1), SparseConfig.of(Method.FST3_IR, NM.TWO_FOUR).w(), "2:4 keeps Magnitude24 and its kernels");
    }
}
