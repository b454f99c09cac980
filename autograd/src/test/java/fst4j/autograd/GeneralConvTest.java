package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The general convolution (per-axis kernel, stride, padding, dilation; groups): float64 values against a direct
 * summation of torch's definition, float64 gradcheck of input, weight and bias, a grouped convolution equal to its
 * groups' convolutions side by side, and bad geometry refused by name.
 */
class GeneralConvTest {
    /** y[n, co, oh, ow] = b[co] + sum over the group's ci, i, j of x[n, ci, oh*sh - ph + i*dh, ow*sw - pw + j*dw] w[co, ci', i, j]. */
    static double[] direct(double[] x, int[] xs, double[] w, int[] ws, double[] b, ConvParams p) {
        int n = xs[0], cin = xs[1], h = xs[2], wd = xs[3], cout = ws[0], cinG = ws[1], kh = ws[2], kw = ws[3], coutG = cout / p.groups();
        int ho = (h + 2 * p.ph() - p.dh() * (kh - 1) - 1) / p.sh() + 1, wo = (wd + 2 * p.pw() - p.dw() * (kw - 1) - 1) / p.sw() + 1;
        double[] y = new double[n * cout * ho * wo];
        for (int in = 0; in < n; in++)
            for (int co = 0; co < cout; co++) {
                int g = co / coutG;
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++) {
                        double s = b == null ? 0 : b[co];
                        for (int c = 0; c < cinG; c++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++) {
                                    int ih = oh * p.sh() - p.ph() + i * p.dh(), iw = ow * p.sw() - p.pw() + j * p.dw();
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    s += x[((in * cin + g * cinG + c) * h + ih) * wd + iw] * w[((co * cinG + c) * kh + i) * kw + j];
                                }
                        y[((in * cout + co) * ho + oh) * wo + ow] = s;
                    }
            }
        return y;
    }

    /** n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups */
    static final String GEOMETRIES = """
            2,4,7,6,6,3,3,1,1,1,1,1,1,2
            1,3,9,8,3,3,3,1,1,1,1,2,2,3
            2,2,7,9,4,3,2,2,1,0,2,1,2,1
            1,4,8,7,4,3,3,2,2,2,2,2,1,4
            2,6,5,5,3,1,1,1,1,0,0,1,1,3
            1,3,11,6,2,2,3,2,3,1,0,3,1,1
            2,4,6,6,8,3,3,2,2,1,1,1,1,4
            1,2,5,7,4,5,3,1,2,2,1,1,1,2
            """;

    static ConvParams params(int sh, int sw, int ph, int pw, int dh, int dw, int groups) { return new ConvParams(sh, sw, ph, pw, dh, dw, groups); }

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void valuesEqualTheDefinitionInFloat64(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
        ConvParams p = params(sh, sw, ph, pw, dh, dw, groups);
        try (Scope s = Scope.open()) {
            Tensor x = rand(1, n, cin, h, wd), w = rand(2, cout, cin / groups, kh, kw), b = rand(3, cout);
            double[] want = direct(x.toDoubleArray(), x.shape(), w.toDoubleArray(), w.shape(), b.toDoubleArray(), p);
            Var y = NN.conv2d(Var.of(x), Var.of(w), Var.of(b), p);
            double[] got = y.value().toDoubleArray();
            assertEquals(want.length, got.length);
            for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-12 * Math.max(1, Math.abs(want[i])), "at " + i);
        }
    }

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void gradcheckInputWeightBias(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups) {
        ConvParams p = params(sh, sw, ph, pw, dh, dw, groups);
        try (Scope s = Scope.open()) {
            NNGradTest.ok(v -> NN.conv2d(v[0], v[1], v[2], p), rand(4, n, cin, h, wd), rand(5, cout, cin / groups, kh, kw), rand(6, cout));
            NNGradTest.ok(v -> NN.conv2d(v[0], v[1], null, p), rand(7, n, cin, h, wd), rand(8, cout, cin / groups, kh, kw));
        }
    }

    /** A plain geometry through the ConvParams entry is the old call, bit for bit (the fast paths stay as they are). */
    @Test
    void plainGeometryTakesTheFastPath() {
        try (Scope s = Scope.open()) {
            Tensor x = new fst4j.tensor.Rng(3).normal(0, 1, 4, 8, 9, 9), w = new fst4j.tensor.Rng(4).normal(0, 1, 16, 8, 3, 3);
            Gemm3 node = new Gemm3(SparseConfig.Method.FST3_IR.config());
            float[] a = Layers.conv2d(node, Var.of(x), Var.of(w), null, 2, 1).value().toFloatArray();
            float[] b = Layers.conv2d(node, Var.of(x), Var.of(w), null, ConvParams.of(2, 1)).value().toFloatArray();
            assertArrayEquals(a, b);
        }
    }

    /**
     * A grouped convolution equals its groups' convolutions (group g's input channels with group g's weight rows) side by
     * side along the channels: values and the gradients of x and w, float64.
     */
    @Property(tries = 25)
    void groupedEqualsConcatenatedGroups(@ForAll @IntRange(min = 1, max = 4) int groups, @ForAll @IntRange(min = 1, max = 3) int cinG,
                                         @ForAll @IntRange(min = 1, max = 3) int coutG, @ForAll @IntRange(min = 1, max = 3) int k,
                                         @ForAll @IntRange(min = 1, max = 2) int stride, @ForAll @IntRange(min = 0, max = 2) int pad,
                                         @ForAll @IntRange(min = 1, max = 2) int dil, @ForAll @IntRange(min = 1, max = 2) int n) {
        int cin = groups * cinG, cout = groups * coutG, h = 2 * pad >= dil * (k - 1) ? 5 : dil * (k - 1) + 2, wd = h + 1;
        ConvParams p = params(stride, stride, pad, pad, dil, dil, groups);
        try (Scope s = Scope.open()) {
            Tensor xt = rand(11, n, cin, h, wd), wt = rand(12, cout, cinG, k, k);
            Var x = Var.of(xt.copy()).requiresGrad(true), w = Var.of(wt.copy()).requiresGrad(true);
            Var y = NN.conv2d(x, w, null, p);
            Tensor gy = rand(13, y.shape());
            y.backward(gy);
            Var[] parts = new Var[groups];
            Var xs = Var.of(xt.copy()).requiresGrad(true), ws = Var.of(wt.copy()).requiresGrad(true);
            for (int g = 0; g < groups; g++)
                parts[g] = NN.conv2d(xs.slice(1, g * cinG, (g + 1) * cinG), ws.slice(0, g * coutG, (g + 1) * coutG), null, params(stride, stride, pad, pad, dil, dil, 1));
            Var cat = Var.cat(1, parts);
            cat.backward(gy);
            close("y", cat.value(), y.value());
            close("dx", xs.grad(), x.grad());
            close("dw", ws.grad(), w.grad());
        }
    }

    static void close(String what, Tensor want, Tensor got) {
        assertArrayEquals(want.shape(), got.shape(), what + " shape");
        double[] a = want.toDoubleArray(), b = got.toDoubleArray();
        for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-12 * Math.max(1, Math.abs(a[i])), what + " at " + i);
    }

    /** An empty batch gives an empty output and zero weight and bias gradients, as torch's. */
    @Test
    void emptyBatch() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.zeros(0, 4, 6, 6)).requiresGrad(true), w = Var.of(Tensor.ones(6, 2, 3, 2)).requiresGrad(true),
                    b = Var.of(Tensor.ones(6)).requiresGrad(true);
            Var y = NN.conv2d(x, w, b, new ConvParams(1, 2, 1, 0, 2, 1, 2));
            assertArrayEquals(new int[]{0, 6, 4, 3}, y.shape());
            y.sum().backward();
            assertArrayEquals(new int[]{0, 4, 6, 6}, x.grad().shape());
            for (float v : w.grad().toFloatArray()) assertEquals(0f, v);
            for (float v : b.grad().toFloatArray()) assertEquals(0f, v);
        }
    }

    @Test
    void badGeometryIsRefusedByName() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.zeros(DType.F64, 1, 6, 5, 5));
            assertMessage(() -> NN.conv2d(x, Var.of(Tensor.zeros(DType.F64, 4, 2, 3, 3)), null, ConvParams.of(1, 1, 1, 4)), "input channels 6", "groups 4");
            assertMessage(() -> NN.conv2d(x, Var.of(Tensor.zeros(DType.F64, 4, 2, 3, 3)), null, ConvParams.of(1, 1, 1, 3)), "output channels 4", "groups 3");
            assertMessage(() -> NN.conv2d(x, Var.of(Tensor.zeros(DType.F64, 6, 3, 3, 3)), null, ConvParams.of(1, 1, 1, 3)), "channel mismatch", "expects 9");
            // dilation 3 spreads a 3x3 kernel over 7x7: more than the 5x5 input unpadded; padded by 1 it is 7x7 and fits
            assertMessage(() -> NN.conv2d(x, Var.of(Tensor.zeros(DType.F64, 6, 6, 3, 3)), null, ConvParams.of(1, 0, 3, 1)), "spans 7x7", "padded input 5x5");
            NN.conv2d(x, Var.of(Tensor.zeros(DType.F64, 6, 6, 3, 3)), null, ConvParams.of(1, 1, 3, 1));   // 7x7 in 7x7: fits
            assertMessage(() -> NN.conv2d(x, Var.of(Tensor.zeros(DType.F64, 6, 3, 1, 7)), null, new ConvParams(1, 1, 0, 0, 1, 1, 2)), "kernel 1x7", "padded input 5x5");
            // the weight's shape alone (no tensor of 2^30 channels): 4 groups x (2^30 + 1) channels wraps int to 4 = Cin
            assertMessage(() -> ConvParams.of(1, 0, 1, 4).check(new int[]{1, 4, 3, 3}, new int[]{4, (1 << 30) + 1, 1, 1}), "channel mismatch", "expects 4294967300");
            assertMessage(() -> ConvParams.of(1, 1, 0, 1), "dilation must be positive");
            assertMessage(() -> ConvParams.of(0, 1, 1, 1), "stride must be positive");
            assertMessage(() -> ConvParams.of(1, -1, 1, 1), "padding must be >= 0");
            assertMessage(() -> ConvParams.of(1, 1, 1, 0), "groups must be positive");
            assertMessage(() -> ConvParams.of(new int[]{1}, new int[]{0, 0}, new int[]{1, 1}, 1), "stride needs two values");
            assertMessage(() -> NN.conv2d(x, Var.of(Tensor.zeros(DType.F32, 6, 3, 3, 3)), null, ConvParams.of(1, 1, 1, 2)), "dtype mismatch");
            assertMessage(() -> NN.conv2d(Var.of(Tensor.zeros(DType.F64, 6, 5, 5)), Var.of(Tensor.zeros(DType.F64, 6, 3, 3, 3)), null, ConvParams.of(1, 1, 1, 2)), "wrong rank");
        }
    }

    static void assertMessage(org.junit.jupiter.api.function.Executable f, String... parts) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, f);
        for (String part : parts) assertTrue(e.getMessage().contains(part), "'" + e.getMessage() + "' should name " + part);
    }
}
