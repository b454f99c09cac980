package fst4j.sparse;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Magnitude N:M ({@link Sparsifier.MagnitudeNM}): at most N non-zeros per group of M along the axis (a group cut short by
 * the axis end included), the kept set of largest |x| sum among all C(M, N) choices, idempotent, and at 2:4 the bits of
 * {@link Sparsifier.Magnitude24} (through its native kernels where they run) with NaN, -0.0 and ties.
 */
class MagnitudeNMTest {

    @Provide
    Arbitrary<NM> patterns() {
        return Arbitraries.integers().between(2, 9).flatMap(m -> Arbitraries.integers().between(1, m - 1).map(n -> new NM(n, m)));
    }

    @Provide
    Arbitrary<int[]> shapes() {
        // axis lengths up to 23: most are not multiples of M, some shorter than one group
        return Arbitraries.integers().between(1, 23).array(int[].class).ofMinSize(1).ofMaxSize(3);
    }

    private static int axisOf(int[] shape, int pick) { return pick % 2 == 0 ? pick % shape.length : -1 - pick % shape.length; }

    /** Random values with ties and zeros, and, where special, NaN, -0.0 and infinities among them. */
    static float[] values(int n, long seed, boolean special) {
        float[] v = TestData.values(n, seed);
        if (!special) return v;
        Random r = new Random(~seed);
        float[] odd = {Float.NaN, -0.0f, 0.0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.intBitsToFloat(0x7fc00123), 1f, -1f};
        for (int i = 0; i < n; i++) if (r.nextInt(5) == 0) v[i] = odd[r.nextInt(odd.length)];
        return v;
    }

    /** The largest |x| sum over every choice of min(n, cnt) of the cnt elements a[0..cnt) (brute force over subsets). */
    private static double bestSum(double[] a, int cnt, int n) {
        double best = -1;
        for (int s = 0; s < 1 << cnt; s++) {
            if (Integer.bitCount(s) != Math.min(n, cnt)) continue;
            double sum = 0;
            for (int j = 0; j < cnt; j++) if ((s >> j & 1) != 0) sum += a[j];
            best = Math.max(best, sum);
        }
        return best;
    }

    @Property(tries = 200)
    void keepsAtMostNPerGroupWithTheLargestSumAndIsIdempotent(@ForAll("shapes") int[] shape, @ForAll("patterns") NM nm,
                                                             @ForAll @IntRange(min = 0, max = 5) int pick, @ForAll long seed) {
        int axis = axisOf(shape, pick);
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(values(TestData.numel(shape), seed, false), shape);
            Sparsifier sp = new Sparsifier.MagnitudeNM(nm, axis);
            assertFalse(sp.accelerable(), "N:M runs on the dense-masked path");
            Tensor m = sp.mask(x), y = sp.apply(x), yy = sp.apply(y);
            assertArrayEquals(shape, y.shape());
            assertArrayEquals(y.toFloatArray(), yy.toFloatArray(), "idempotent");
            float[] xv = x.toFloatArray(), mv = m.toFloatArray(), yv = y.toFloatArray();
            int[] l = TestData.lines(shape, axis);
            double[] a = new double[nm.m()];
            for (int o = 0; o < l[0]; o++)
                for (int r = 0; r < l[2]; r++)
                    for (int g = 0; g < l[1]; g += nm.m()) {
                        int cnt = Math.min(nm.m(), l[1] - g), kept = 0, nonZero = 0;
                        double keptSum = 0;
                        for (int j = 0; j < cnt; j++) {
                            int idx = (o * l[1] + g + j) * l[2] + r;
                            a[j] = Math.abs(xv[idx]);
                            assertTrue(mv[idx] == 0 || mv[idx] == 1);
                            assertEquals(mv[idx] == 1 ? xv[idx] : 0f, yv[idx], "apply is x where the mask keeps, else 0");
                            if (mv[idx] == 1) { kept++; keptSum += a[j]; }
                            if (yv[idx] != 0) nonZero++;
                        }
                        assertTrue(nonZero <= nm.n(), nm + ": " + nonZero + " non-zeros in a group");
                        assertEquals(Math.min(nm.n(), cnt), kept, nm + " keeps min(N, group length)");
                        assertEquals(bestSum(a, cnt, nm.n()), keptSum, 1e-9, nm + ": a kept set of the largest |x| sum");
                    }
        }
    }

    /** N:M at 2:4 keeps what Magnitude24 keeps, bit for bit: mask and apply, float32 (its native kernels) and float64. */
    @Property(tries = 200)
    void twoFourIsMagnitude24BitForBit(@ForAll("shapes") int[] shape, @ForAll @IntRange(min = 0, max = 5) int pick, @ForAll long seed) {
        int axis = axisOf(shape, pick);
        try (Scope s = Scope.open()) {
            float[] v = values(TestData.numel(shape), seed, true);
            Sparsifier nm = new Sparsifier.MagnitudeNM(2, 4, axis), m24 = new Sparsifier.Magnitude24(axis);
            for (Tensor x : new Tensor[]{Tensor.of(v, shape), Tensor.of(v, shape).to(DType.F64)}) {
                assertBits(m24.apply(x), nm.apply(x), "apply " + x.dtype());
                assertBits(m24.mask(x), nm.mask(x), "mask " + x.dtype());
            }
        }
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what);
        assertEquals(want.dtype(), got.dtype(), what);
        double[] a = want.toDoubleArray(), b = got.toDoubleArray();
        for (int i = 0; i < a.length; i++)
            assertEquals(Double.doubleToRawLongBits(a[i]), Double.doubleToRawLongBits(b[i]), what + ": element " + i + " " + b[i] + " vs " + a[i]);
    }

    @Test
    void tiesNanAndNegativeZeroFollowMagnitude24sRule() {
        try (Scope s = Scope.open()) {
            // 1:4 on one group each: NaN beats +Inf; equal magnitudes go to the lower index; -0.0 ties +0.0
            float[][] in = {{1, Float.NaN, Float.POSITIVE_INFINITY, 2}, {-3, 3, 3, -3}, {-0.0f, 0.0f, -0.0f, 0.0f}, {0, 0, 0, 5}};
            float[][] out = {{0, Float.NaN, 0, 0}, {-3, 0, 0, 0}, {-0.0f, 0, 0, 0}, {0, 0, 0, 5}};
            Sparsifier sp = new Sparsifier.MagnitudeNM(1, 4, -1);
            for (int i = 0; i < in.length; i++) {
                float[] got = sp.apply(Tensor.of(in[i], 4)).toFloatArray();
                for (int j = 0; j < 4; j++)
                    assertEquals(Float.floatToRawIntBits(out[i][j]), Float.floatToRawIntBits(got[j]), "case " + i + " element " + j);
            }
            // a group cut short: 2:8 over 3 elements keeps 2 of them, 3:8 over 2 keeps both (zero padding never wins)
            assertArrayEquals(new float[]{0, 0, 0, 0, 0, 0, 7, 8, 9, 0, 5}, new Sparsifier.MagnitudeNM(2, 8, 0)
                    .apply(Tensor.of(new float[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 5}, 11)).toFloatArray());
            assertArrayEquals(new float[]{0, 0}, new Sparsifier.MagnitudeNM(3, 8, 0).apply(Tensor.of(new float[]{0, 0}, 2)).toFloatArray());
            assertArrayEquals(new float[]{1, 1}, new Sparsifier.MagnitudeNM(3, 8, 0).mask(Tensor.of(new float[]{0, 0}, 2)).toFloatArray());
        }
    }

    @Test
    void theFactoryKeepsMagnitude24For24AndBadPatternsAreRefused() {
        assertEquals(new Sparsifier.Magnitude24(1), Sparsifier.magnitude(NM.TWO_FOUR, 1), "2:4 keeps its record and kernels");
        assertEquals(new Sparsifier.MagnitudeNM(1, 4, 0), Sparsifier.magnitude(new NM(1, 4), 0));
        assertEquals(new NM(1, 16), NM.parse(" 1:16 "));
        assertEquals("2:8", new NM(2, 8).toString());
        String[][] bad = {{"4:4", "N must be < M"}, {"5:4", "N must be < M"}, {"1:1", "M must be >= 2"}, {"0:4", "N must be >= 1"},
                {"-1:4", "N must be >= 1"}, {"1:64", "M must be at most 32"}, {"a:4", "N is not a whole number ('a')"},
                {"1:x", "M is not a whole number ('x')"}, {"1.5:4", "N is not a whole number"}, {"14", "written N:M"}, {"1:4:8", "written N:M"},
                {"", "written N:M"}};
        for (String[] b : bad) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NM.parse(b[0]), b[0]);
            assertTrue(e.getMessage().contains(b[1]), b[0] + ": " + e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Sparsifier.MagnitudeNM(4, 4, 1));
        assertTrue(e.getMessage().contains("N must be < M"), e.getMessage());
        try (Scope s = Scope.open()) {
            e = assertThrows(IllegalArgumentException.class, () -> new Sparsifier.MagnitudeNM(1, 4, 2).apply(Tensor.of(new float[]{1, 2, 3, 4}, 2, 2)));
            assertTrue(e.getMessage().contains("axis 2 out of range for rank 2"), e.getMessage());
        }
    }
}
