package fst4j.autograd;

import fst4j.sparse.Sparsifier;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The sparse presets on the general convolution (groups, dilation, non-square kernels), float32: Eq. 1 is the dense
 * product on the magnitude-2:4 W (each row of [Cout, Cin/groups * kh * kw], K zero-padded to a multiple of 4), and
 * under FST3_IR a grouped layer's output and gradients are those of its groups as layers of their own, side by side:
 * each group is its own Eq. 1-3 product (S(W^T) along the group's output channels, Eq. 7's mask and the IR shift over
 * the group's dY).
 */
class GeneralConvSparseTest {
    /** n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups */
    static final String GEOMETRIES = """
            4,8,9,9,16,3,3,1,1,1,1,1,1,2
            4,8,8,7,8,3,3,1,1,1,1,1,1,8
            3,4,10,9,8,3,3,1,1,2,2,2,2,1
            4,6,9,8,12,3,2,2,1,2,1,2,1,3
            2,12,7,7,8,1,1,2,2,0,0,1,1,4
            """;

    static ConvParams params(int sh, int sw, int ph, int pw, int dh, int dw, int groups) { return new ConvParams(sh, sw, ph, pw, dh, dw, groups); }

    /** max |a - b| <= tol * (1 + max |a|) */
    static void near(String what, Tensor want, Tensor got, double tol) {
        assertArrayEquals(want.shape(), got.shape(), what + " shape");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        double max = 0;
        for (float v : a) max = Math.max(max, Math.abs(v));
        for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], tol * (1 + max), what + " at " + i);
    }

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void eq1IsTheDenseProductOnTheMaskedWeight(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
        ConvParams p = params(sh, sw, ph, pw, dh, dw, groups);
        for (SparseConfig.Method m : new SparseConfig.Method[]{SparseConfig.Method.FST3_IR, SparseConfig.Method.SR_STE}) {
            try (Scope s = Scope.open()) {
                Rng r = new Rng(n * 131L + cin + groups);
                Tensor x = r.normal(0, 1, n, cin, h, wd), w = r.normal(0, 1, cout, cin / groups, kh, kw);
                int k = cin / groups * kh * kw;
                Tensor sw4;
                try (Tensor wm = w.reshape(cout, k); Tensor swm = new Sparsifier.Magnitude24(1).apply(wm)) { sw4 = swm.reshape(w.shape()); }
                // 2:4 along K zero-padded: 2 of every 4, and of a last partial group of q < 4 weights min(q, 2)
                float[] sv = sw4.toFloatArray();
                int kept = 0;
                for (float v : sv) if (v != 0) kept++;
                assertEquals(cout * (k / 4 * 2 + Math.min(k % 4, 2)), kept, m + ": weights kept by S(W)");
                Var y = Layers.conv2d(new Gemm3(m.config()), Var.of(x), Var.of(w), null, p);
                Var want = NN.conv2d(Var.of(x), Var.of(sw4), null, p);
                near(m + " Eq. 1", want.value(), y.value(), 1e-5);
            }
        }
    }

    /**
     * A grouped FST3_IR layer against its groups as FST3_IR layers of their own (group g's input channels and weight
     * rows): output, dX and dW agree up to float32 summation order (a one-group layer with a plain geometry even takes the
     * fast paths there, a different order of the same sums).
     */
    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void groupedFst3IrIsItsGroupsSideBySide(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
        ConvParams p = params(sh, sw, ph, pw, dh, dw, groups), one = params(sh, sw, ph, pw, dh, dw, 1);
        int cinG = cin / groups, coutG = cout / groups;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 977L + cout);
            Tensor x = r.normal(0, 1, n, cin, h, wd), w = r.normal(0, 1, cout, cinG, kh, kw);
            Var xv = Var.of(x.copy()).requiresGrad(true), wv = Var.of(w.copy()).requiresGrad(true);
            Var y = Layers.conv2d(new Gemm3(SparseConfig.Method.FST3_IR.config()), xv, wv, null, p);
            Tensor gy = r.normal(0, 1, y.shape());
            y.backward(gy);
            Var xs = Var.of(x.copy()).requiresGrad(true), ws = Var.of(w.copy()).requiresGrad(true);
            Var[] parts = new Var[groups];
            for (int g = 0; g < groups; g++)
                parts[g] = Layers.conv2d(new Gemm3(SparseConfig.Method.FST3_IR.config()), xs.slice(1, g * cinG, (g + 1) * cinG),
                        ws.slice(0, g * coutG, (g + 1) * coutG), null, one);
            Var cat = Var.cat(1, parts);
            cat.backward(gy);
            near("y", cat.value(), y.value(), 1e-5);
            near("dX", xs.grad(), xv.grad(), 1e-5);
            near("dW", ws.grad(), wv.grad(), 1e-5);
        }
    }

    /**
     * FST3_IR's Eq. 3 on the general path is fst-method.md's formula, group by group: dW_g = G_g[:, kept] X_g[:, kept]^T
     * with G = dY + shift(dY) (the paper's shift: the next position of each image's Ho*Wo, not circular), X_g the
     * (dilated) im2col of group g's input channels and kept the even positions of each image. Independent of the fast
     * paths (which the side-by-side test above leans on for plain geometries).
     */
    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void fst3IrWeightGradientIsTheFormula(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
        ConvParams p = params(sh, sw, ph, pw, dh, dw, groups);
        int cinG = cin / groups, coutG = cout / groups, k = cinG * kh * kw;
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 31L + h * 7 + groups);
            Tensor x = r.normal(0, 1, n, cin, h, wd);
            Var wv = Var.of(r.normal(0, 1, cout, cinG, kh, kw)).requiresGrad(true);
            Var y = Layers.conv2d(new Gemm3(SparseConfig.Method.FST3_IR.config()), Var.of(x), wv, null, p);
            Tensor gy = r.normal(0, 1, y.shape());
            y.backward(gy);
            SparseConfig.Shift ir = SparseConfig.Shift.PAPER;
            int l = y.shape()[2] * y.shape()[3];
            float[] g = fst4j.sparse.Restoration.shiftAddNCHW(gy, ir.coeff(), ir.direction(), ir.circular()).toFloatArray();
            double[] want = new double[cout * k];
            for (int gr = 0; gr < groups; gr++) {
                float[] xc;
                try (Tensor xg = x.slice(1, gr * cinG, (gr + 1) * cinG)) { xc = fst4j.tensor.Conv.im2col(xg, kh, kw, sh, sw, ph, pw, dh, dw).toFloatArray(); }
                for (int co = gr * coutG; co < (gr + 1) * coutG; co++)
                    for (int row = 0; row < k; row++) {
                        double acc = 0;
                        for (int img = 0; img < n; img++)
                            for (int q = 0; q < l; q += 2) acc += (double) g[(img * cout + co) * l + q] * xc[row * n * l + img * l + q];
                        want[co * k + row] = acc;
                    }
            }
            near("dW", Tensor.of(want, cout, cinG, kh, kw).to(fst4j.tensor.DType.F32), wv.grad(), 1e-5);
        }
    }

    /** Every sparse preset runs a forward and backward pass on a grouped, dilated, non-square layer, with finite gradients. */
    @Test
    void everyPresetRunsOnAGroupedDilatedLayer() {
        ConvParams p = params(1, 2, 2, 1, 2, 1, 2);
        for (SparseConfig.Method m : SparseConfig.Method.values()) {
            try (Scope s = Scope.open()) {
                Rng r = new Rng(m.ordinal());
                Var x = Var.of(r.normal(0, 1, 4, 8, 9, 8)).requiresGrad(true), w = Var.of(r.normal(0, 1, 16, 4, 3, 2)).requiresGrad(true);
                Gemm3 node = new Gemm3(m.config());
                for (int step = 0; step < 2; step++) {
                    x.zeroGrad(); w.zeroGrad();
                    Var y = Layers.conv2d(node, x, w, null, p);
                    assertArrayEquals(new int[]{4, 16, 9, 5}, y.shape(), m.toString());
                    y.mul(y).sum().backward();
                    for (float v : x.grad().toFloatArray()) assertTrue(Float.isFinite(v), m + " dX");
                    for (float v : w.grad().toFloatArray()) assertTrue(Float.isFinite(v), m + " dW");
                }
            }
        }
    }

    /** TSM's transposable mask needs whole blocks of 4 output channels per group; otherwise the layer is refused by name. */
    @Test
    void tsmNeedsGroupsOfFourOutputChannels() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            Var x = Var.of(r.normal(0, 1, 2, 4, 6, 6));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () ->
                    Layers.conv2d(new Gemm3(SparseConfig.Method.TSM.config()), x, Var.of(r.normal(0, 1, 12, 2, 3, 3)), null, ConvParams.of(1, 1, 1, 2)));
            assertTrue(e.getMessage().contains("groups of 6 output channels"), e.getMessage());
            Layers.conv2d(new Gemm3(SparseConfig.Method.TSM.config()), x, Var.of(r.normal(0, 1, 16, 2, 2, 2)), null, ConvParams.of(1, 1, 1, 2));
        }
    }
}
