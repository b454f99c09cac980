package fst4j.autograd;

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
 * NN.convTranspose2d (torch's F.conv_transpose2d): float64 values against a direct scatter of torch's definition,
 * float64 gradcheck of input, weight and bias at awkward geometries, the adjoint identity with conv2d, and bad geometry
 * refused by name. (Against torch itself: nn's ConvTranspose2dTorchTest.)
 */
class ConvTransposeTest {
    /**
     * y[n, g Cout/G + co, ih sh - ph + i dh, iw sw - pw + j dw] += x[n, g Cin/G + ci, ih, iw] w[g Cin/G + ci, co, i, j],
     * plus b[co]: each input element scatters the kernel.
     */
    static double[] direct(double[] x, int[] xs, double[] w, int[] ws, double[] b, ConvParams p, int ho, int wo) {
        int n = xs[0], cin = xs[1], h = xs[2], wd = xs[3], coutG = ws[1], kh = ws[2], kw = ws[3], cinG = cin / p.groups(), cout = coutG * p.groups();
        double[] y = new double[n * cout * ho * wo];
        for (int in = 0; in < n; in++)
            for (int co = 0; co < cout; co++)
                for (int q = 0; q < ho * wo; q++) y[(in * cout + co) * ho * wo + q] = b == null ? 0 : b[co];
        for (int in = 0; in < n; in++)
            for (int c = 0; c < cin; c++) {
                int g = c / cinG;
                for (int ih = 0; ih < h; ih++)
                    for (int iw = 0; iw < wd; iw++)
                        for (int co = 0; co < coutG; co++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++) {
                                    int oh = ih * p.sh() - p.ph() + i * p.dh(), ow = iw * p.sw() - p.pw() + j * p.dw();
                                    if (oh < 0 || oh >= ho || ow < 0 || ow >= wo) continue;
                                    y[((in * cout + g * coutG + co) * ho + oh) * wo + ow] += x[((in * cin + c) * h + ih) * wd + iw] * w[((c * coutG + co) * kh + i) * kw + j];
                                }
            }
        return y;
    }

    /** n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, oph, opw, dh, dw, groups */
    static final String GEOMETRIES = """
            1,3,4,3,5,3,2,2,3,1,0,1,2,1,1,1
            3,4,3,4,6,3,3,2,2,1,1,1,0,1,1,2
            2,5,3,3,7,2,3,1,1,0,1,1,0,2,2,1
            1,2,5,4,2,3,3,3,2,2,1,2,1,1,2,2
            3,6,2,3,9,1,3,3,1,0,2,0,0,1,3,3
            1,1,1,1,1,1,1,1,1,0,0,0,0,1,1,1
            2,3,3,2,2,2,2,2,2,0,0,0,0,1,1,1
            """;

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void valuesEqualTheDefinitionInFloat64(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int oph, int opw,
                                           int dh, int dw, int groups) {
        ConvParams p = new ConvParams(sh, sw, ph, pw, dh, dw, groups);
        int ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1, wo = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1;
        try (Scope s = Scope.open()) {
            Tensor x = rand(1, n, cin, h, wd), w = rand(2, cin, cout / groups, kh, kw), b = rand(3, cout);
            double[] want = direct(x.toDoubleArray(), x.shape(), w.toDoubleArray(), w.shape(), b.toDoubleArray(), p, ho, wo);
            Var y = NN.convTranspose2d(Var.of(x), Var.of(w), Var.of(b), p, oph, opw);
            assertArrayEquals(new int[]{n, cout, ho, wo}, y.shape());
            double[] got = y.value().toDoubleArray();
            for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-12 * Math.max(1, Math.abs(want[i])), "at " + i);
        }
    }

    @ParameterizedTest
    @CsvSource(textBlock = GEOMETRIES)
    void gradcheckInputWeightBias(int n, int cin, int h, int wd, int cout, int kh, int kw, int sh, int sw, int ph, int pw, int oph, int opw,
                                  int dh, int dw, int groups) {
        ConvParams p = new ConvParams(sh, sw, ph, pw, dh, dw, groups);
        try (Scope s = Scope.open()) {
            NNGradTest.ok(v -> NN.convTranspose2d(v[0], v[1], v[2], p, oph, opw), rand(4, n, cin, h, wd), rand(5, cin, cout / groups, kh, kw), rand(6, cout));
            NNGradTest.ok(v -> NN.convTranspose2d(v[0], v[1], null, p, oph, opw), rand(7, n, cin, h, wd), rand(8, cin, cout / groups, kh, kw));
        }
    }

    /**
     * The adjoint: for x [N, C, H, W], a convolution's weight w [K, C / G, kh, kw] and y of the convolution's output
     * shape, sum(conv2d(x, w) * y) equals sum(x * convTranspose2d(y, w)), the output padding chosen to give back H x W.
     */
    @Property(tries = 30)
    void convTransposeIsTheAdjointOfConv(@ForAll @IntRange(min = 1, max = 3) int n, @ForAll @IntRange(min = 1, max = 3) int cPerGroup,
                                         @ForAll @IntRange(min = 1, max = 3) int kPerGroup, @ForAll @IntRange(min = 1, max = 2) int groups,
                                         @ForAll @IntRange(min = 3, max = 8) int h, @ForAll @IntRange(min = 3, max = 8) int wd,
                                         @ForAll @IntRange(min = 1, max = 3) int kh, @ForAll @IntRange(min = 1, max = 3) int kw,
                                         @ForAll @IntRange(min = 1, max = 3) int sh, @ForAll @IntRange(min = 1, max = 3) int sw,
                                         @ForAll @IntRange(min = 0, max = 2) int ph, @ForAll @IntRange(min = 0, max = 2) int pw,
                                         @ForAll @IntRange(min = 1, max = 2) int dh, @ForAll @IntRange(min = 1, max = 2) int dw,
                                         @ForAll @IntRange(min = 0, max = 1000) int seed) {
        int c = cPerGroup * groups, k = kPerGroup * groups;
        if (dh * (kh - 1) + 1 > h + 2 * ph || dw * (kw - 1) + 1 > wd + 2 * pw) return;   // the kernel must fit the padded input
        ConvParams p = new ConvParams(sh, sw, ph, pw, dh, dw, groups);
        int oph = (h + 2 * ph - dh * (kh - 1) - 1) % sh, opw = (wd + 2 * pw - dw * (kw - 1) - 1) % sw;
        try (Scope s = Scope.open()) {
            Tensor x = rand(seed, n, c, h, wd), w = rand(seed + 1, k, cPerGroup, kh, kw);
            Var cx = NN.conv2d(Var.of(x), Var.of(w), null, p);
            Tensor y = rand(seed + 2, cx.shape());
            Var ty = NN.convTranspose2d(Var.of(y), Var.of(w), null, p, oph, opw);
            assertArrayEquals(x.shape(), ty.shape(), "the transposed convolution gives back x's shape");
            double lhs = cx.value().mul(y).sum().item(), rhs = ty.value().mul(x).sum().item();
            assertEquals(lhs, rhs, 1e-10 * Math.max(1, Math.abs(lhs)), "<conv2d(x, w), y> vs <x, convTranspose2d(y, w)> at " + p);
        }
    }

    @Test
    void badGeometryIsRefusedByName() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand(1, 2, 4, 5, 5)), w = Var.of(rand(2, 4, 3, 3, 3));
            assertRefused("output padding 2x2 must be smaller than either the stride 2x2 or the dilation 1x1",
                    () -> NN.convTranspose2d(x, w, null, 2, 1, 2, 1, 1));
            assertRefused("output padding 1x1 must be smaller than either the stride 1x1 or the dilation 1x1",
                    () -> NN.convTranspose2d(x, w, null, 1, 0, 1, 1, 1));
            assertRefused("output padding 0x1 must be smaller", () -> NN.convTranspose2d(x, w, null, new ConvParams(2, 1, 0, 0, 1, 1, 1), 0, 1));
            assertRefused("input channels 4 (input [2, 4, 5, 5]) not divisible by groups 3", () -> NN.convTranspose2d(x, w, null, 1, 0, 0, 3, 1));
            assertRefused("channel mismatch: convTranspose2d input [2, 4, 5, 5] has 4 channels but weight [3, 3, 3, 3] has 3",
                    () -> NN.convTranspose2d(x, Var.of(rand(3, 3, 3, 3, 3)), null, 1, 0, 0, 1, 1));
            assertRefused("wrong rank: convTranspose2d", () -> NN.convTranspose2d(x, Var.of(rand(3, 4, 3, 9)), null, 1, 0, 0, 1, 1));
            assertRefused("output size -3x-3 is not positive", () -> NN.convTranspose2d(x, w, null, 1, 5, 0, 1, 1));
            assertRefused("output size -1x-1 is not positive",
                    () -> NN.convTranspose2d(Var.of(rand(4, 1, 4, 1, 1)), w, null, 1, 2, 0, 1, 1));
            assertRefused("bias [4] for weight [4, 3, 3, 3] with groups 1 needs [3]", () -> NN.convTranspose2d(x, w, Var.of(rand(5, 4)), 1, 0, 0, 1, 1));
            assertRefused("bias [3] for weight [4, 3, 3, 3] with groups 2 needs [6]", () -> NN.convTranspose2d(x, w, Var.of(rand(5, 3)), 1, 0, 0, 2, 1));
            assertRefused("dtype mismatch in convTranspose2d", () -> NN.convTranspose2d(x, Var.of(rand(6, 4, 3, 3, 3).to(fst4j.tensor.DType.F32)), null, 1, 0, 0, 1, 1));
            assertRefused("output padding must be >= 0, got -1x0", () -> NN.convTranspose2d(x, w, null, new ConvParams(2, 2, 0, 0, 1, 1, 1), -1, 0));
        }
    }

    private static void assertRefused(String want, org.junit.jupiter.api.function.Executable f) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, f);
        assertTrue(e.getMessage().contains(want), e.getMessage());
    }

    /** An empty batch gives an empty output of the right shape and zero gradients, as torch. */
    @Test
    void emptyBatch() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(fst4j.tensor.DType.F64, 0, 2, 3, 3)), w = Var.param(rand(1, 2, 3, 2, 2)), b = Var.param(rand(2, 3));
            Var y = NN.convTranspose2d(x, w, b, 2, 0, 1, 1, 1);
            assertArrayEquals(new int[]{0, 3, 7, 7}, y.shape());
            y.sum().backward();
            assertArrayEquals(new double[2 * 3 * 2 * 2], w.grad().toDoubleArray());
            assertArrayEquals(new double[3], b.grad().toDoubleArray());
        }
    }
}
