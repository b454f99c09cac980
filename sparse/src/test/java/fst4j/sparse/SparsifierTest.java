package fst4j.sparse;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

class SparsifierTest {

    @Provide
    Arbitrary<int[]> shapes() {
        return Arbitraries.integers().between(1, 11).array(int[].class).ofMinSize(1).ofMaxSize(3);
    }

    @Provide
    Arbitrary<int[]> matrices() {
        return Arbitraries.integers().between(1, 13).array(int[].class).ofSize(2);
    }

    private static int axisOf(int[] shape, int pick) { return pick % 2 == 0 ? pick % shape.length : -1 - pick % shape.length; }

    @Property(tries = 150)
    void twoFourSparsifiersKeepAtMostTwoPerGroup(@ForAll("shapes") int[] shape, @ForAll @IntRange(min = 0, max = 5) int pick, @ForAll long seed) {
        int axis = axisOf(shape, pick);
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(TestData.values(TestData.numel(shape), seed), shape);
            AuthorsFixed24 authors = new AuthorsFixed24(axis, seed);
            List<Sparsifier> all = List.of(new Sparsifier.Magnitude24(axis), new Sparsifier.SortMagnitude24(axis),
                    new Sparsifier.Fixed24(axis), authors, authors, authors);
            for (Sparsifier sp : all) {
                assertTrue(sp.accelerable(), sp.toString());
                Tensor y = sp.apply(x), m = sp.mask(x);
                assertArrayEquals(shape, y.shape());
                float[] yv = y.toFloatArray(), mv = m.toFloatArray(), xv = x.toFloatArray();
                assertTrue(TestData.maxNonZerosPerGroup(yv, shape, axis) <= 2, sp + " on " + java.util.Arrays.toString(shape));
                assertTrue(TestData.maxNonZerosPerGroup(mv, shape, axis) <= 2, sp + " mask");
                for (int i = 0; i < xv.length; i++) {
                    assertTrue(mv[i] == 0 || mv[i] == 1);
                    if (!(sp instanceof AuthorsFixed24)) assertEquals(mv[i] == 1 ? xv[i] : 0f, yv[i], sp.toString());
                }
            }
        }
    }

    @Property(tries = 150)
    void magnitudeKeepsTheLargestPairAndIsIdempotent(@ForAll("shapes") int[] shape, @ForAll @IntRange(min = 0, max = 5) int pick, @ForAll long seed) {
        int axis = axisOf(shape, pick);
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(TestData.values(TestData.numel(shape), seed), shape);
            Sparsifier sp = new Sparsifier.Magnitude24(axis);
            Tensor m = sp.mask(x), y = sp.apply(x), yy = sp.apply(y);
            assertArrayEquals(y.toFloatArray(), yy.toFloatArray(), "idempotent");
            float[] xv = x.toFloatArray(), mv = m.toFloatArray();
            int[] l = TestData.lines(shape, axis);
            for (int o = 0; o < l[0]; o++)
                for (int r = 0; r < l[2]; r++)
                    for (int g = 0; g < l[1]; g += 4) {
                        double[] a = new double[4];   // zero-padded group
                        int kept = 0;
                        double keptSum = 0;
                        for (int j = 0; j < 4 && g + j < l[1]; j++) {
                            int idx = (o * l[1] + g + j) * l[2] + r;
                            a[j] = Math.abs(xv[idx]);
                            if (mv[idx] == 1) { kept++; keptSum += a[j]; }
                        }
                        assertEquals(Math.min(2, l[1] - g), kept);
                        for (int p = 0; p < 4; p++)
                            for (int q = p + 1; q < 4; q++) assertTrue(keptSum >= a[p] + a[q], "group sum not maximal");
                    }
        }
    }

    @Test
    void magnitudeTieBreakLowerIndexWinsAndPaddedAxis() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1, -1, 1, 1, 0, 5, -5, 2, 3}, 9);
            assertArrayEquals(new float[]{1, -1, 0, 0, 0, 5, -5, 0, 3}, new Sparsifier.Magnitude24(0).apply(x).toFloatArray());
            Tensor z = Tensor.of(new float[]{0, 0, 0, 0, 0, 0, 0}, 7);
            assertArrayEquals(new float[]{1, 1, 0, 0, 1, 1, 0}, new Sparsifier.Magnitude24(0).mask(z).toFloatArray());
            // along axis 0 of a 4 x 2 matrix
            Tensor w = Tensor.of(new float[]{1, 9, 4, 8, 3, 7, 2, 6}, 4, 2);
            assertArrayEquals(new float[]{0, 9, 4, 8, 3, 0, 0, 0}, new Sparsifier.Magnitude24(0).apply(w).toFloatArray());
            assertArrayEquals(new float[]{0, 9, 4, 8, 3, 0, 0, 0}, new Sparsifier.SortMagnitude24(-2).apply(w).toFloatArray());
            // float64 input keeps its dtype
            Tensor d = Tensor.of(new double[]{1, 2, 3, 4}, 4);
            Tensor dm = new Sparsifier.Magnitude24(0).apply(d);
            assertEquals(DType.F64, dm.dtype());
            assertArrayEquals(new double[]{0, 0, 3, 4}, dm.toDoubleArray());
        }
    }

    @Test
    void prunedNaNDoesNotLeak() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{Float.POSITIVE_INFINITY, 1, 2, 3, 5, 6, 7, 8}, 8);
            float[] y = new Sparsifier.Fixed24(0).apply(Tensor.of(new float[]{1, Float.NaN, 2, Float.NaN}, 4)).toFloatArray();
            assertArrayEquals(new float[]{1, 0, 2, 0}, y);
            assertArrayEquals(new float[]{Float.POSITIVE_INFINITY, 0, 0, 3, 0, 0, 7, 8}, new Sparsifier.Magnitude24(0).apply(x).toFloatArray());
        }
    }

    @Test
    void fixedKeepsEvenPositionsAndDenseIsIdentity() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 2, 5);
            assertArrayEquals(new float[]{1, 0, 3, 0, 5, 6, 0, 8, 0, 10}, new Sparsifier.Fixed24(1).apply(x).toFloatArray());
            assertArrayEquals(new float[]{1, 2, 3, 4, 5, 0, 0, 0, 0, 0}, new Sparsifier.Fixed24(0).apply(x).toFloatArray());
            Sparsifier dense = new Sparsifier.Dense();
            assertFalse(dense.accelerable());
            assertArrayEquals(x.toFloatArray(), dense.apply(x).toFloatArray());
            assertArrayEquals(new float[]{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, dense.mask(x).toFloatArray());
        }
    }

    @Property(tries = 100)
    void topKKeepsTheLargestPerLine(@ForAll("shapes") int[] shape, @ForAll @IntRange(min = 0, max = 5) int pick,
                                    @ForAll @IntRange(min = 0, max = 10) int tenths, @ForAll long seed) {
        int axis = axisOf(shape, pick);
        double ratio = tenths / 10.0;
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(TestData.values(TestData.numel(shape), seed), shape);
            Sparsifier sp = new Sparsifier.TopK(axis, ratio);
            assertFalse(sp.accelerable());
            float[] xv = x.toFloatArray(), mv = sp.mask(x).toFloatArray();
            int[] l = TestData.lines(shape, axis);
            int k = (int) Math.ceil(ratio * l[1]);
            for (int o = 0; o < l[0]; o++)
                for (int r = 0; r < l[2]; r++) {
                    int kept = 0;
                    double minKept = Double.POSITIVE_INFINITY, maxDropped = -1;
                    for (int i = 0; i < l[1]; i++) {
                        int idx = (o * l[1] + i) * l[2] + r;
                        if (mv[idx] == 1) { kept++; minKept = Math.min(minKept, Math.abs(xv[idx])); }
                        else maxDropped = Math.max(maxDropped, Math.abs(xv[idx]));
                    }
                    assertEquals(k, kept);
                    assertTrue(minKept >= maxDropped);
                }
        }
    }

    /** All 4x4 0/1 masks with exactly 2 per row and column, by brute force over 2^16. */
    static List<Integer> transposablePatterns() {
        List<Integer> out = new ArrayList<>();
        for (int m = 0; m < 1 << 16; m++) {
            boolean ok = true;
            for (int i = 0; i < 4 && ok; i++) {
                int row = 0, col = 0;
                for (int j = 0; j < 4; j++) { row += (m >> (i * 4 + j)) & 1; col += (m >> (j * 4 + i)) & 1; }
                ok = row == 2 && col == 2;
            }
            if (ok) out.add(m);
        }
        return out;
    }

    @Property(tries = 80)
    void transposableIsTwoFourBothWaysAndOptimal(@ForAll("matrices") int[] shape, @ForAll long seed) {
        List<Integer> patterns = transposablePatterns();
        assertEquals(90, patterns.size());
        int rows = shape[0], cols = shape[1];
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(TestData.values(rows * cols, seed), rows, cols);
            Transposable24 sp = new Transposable24(40);
            float[] xv = x.toFloatArray(), mv = sp.mask(x).toFloatArray(), yv = sp.apply(x).toFloatArray();
            assertTrue(TestData.maxNonZerosPerGroup(mv, shape, 0) <= 2);
            assertTrue(TestData.maxNonZerosPerGroup(mv, shape, 1) <= 2);
            assertTrue(TestData.maxNonZerosPerGroup(yv, shape, 0) <= 2);
            assertTrue(TestData.maxNonZerosPerGroup(yv, shape, 1) <= 2);
            for (int r0 = 0; r0 < rows; r0 += 4)
                for (int c0 = 0; c0 < cols; c0 += 4) {
                    double kept = 0;
                    int keptBits = 0;
                    for (int i = 0; i < 4 && r0 + i < rows; i++)
                        for (int j = 0; j < 4 && c0 + j < cols; j++)
                            if (mv[(r0 + i) * cols + c0 + j] == 1) { kept += Math.abs(xv[(r0 + i) * cols + c0 + j]); keptBits |= 1 << (i * 4 + j); }
                    if (r0 + 4 <= rows && c0 + 4 <= cols) assertTrue(patterns.contains(keptBits), "full block mask is not transposable");
                    for (int p : patterns) {
                        double other = 0;
                        for (int i = 0; i < 4 && r0 + i < rows; i++)
                            for (int j = 0; j < 4 && c0 + j < cols; j++)
                                if ((p >> (i * 4 + j) & 1) != 0) other += Math.abs(xv[(r0 + i) * cols + c0 + j]);
                        assertTrue(kept >= other - 1e-9 * (1 + other), "pattern " + p + " keeps more: " + other + " > " + kept);
                    }
                }
        }
    }

    @Test
    void transposableRefreshesEveryIntervalAndReusesInBetween() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(TestData.values(64, 1), 8, 8), b = Tensor.of(TestData.values(64, 2), 8, 8);
            Transposable24 sp = new Transposable24(3);
            float[] ma = sp.mask(a).toFloatArray();
            float[] ma2 = new Transposable24(1).mask(b).toFloatArray();
            assertFalse(java.util.Arrays.equals(ma, ma2), "test data should give different masks");
            assertArrayEquals(ma, sp.mask(b).toFloatArray(), "step 1 reuses");
            assertArrayEquals(ma, sp.mask(b).toFloatArray(), "step 2 reuses");
            assertArrayEquals(ma2, sp.mask(b).toFloatArray(), "step 3 refreshes");
            assertEquals(4, sp.steps());
            sp.reset();
            assertArrayEquals(ma, sp.mask(a).toFloatArray());
            // conv weight view: [Cout, Cin, k, k] as Cout x Cin*k*k
            Tensor w = Tensor.of(TestData.values(8 * 2 * 3 * 3, 3), 8, 2, 3, 3);
            float[] mw = new Transposable24(1).mask(w).toFloatArray();
            assertTrue(TestData.maxNonZerosPerGroup(mw, new int[]{8, 18}, 0) <= 2);
            assertTrue(TestData.maxNonZerosPerGroup(mw, new int[]{8, 18}, 1) <= 2);
        }
    }

    @Test
    void authorsPatternsAreSeededAndCoverAllFour() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.ones(6, 16);
            AuthorsFixed24 a = new AuthorsFixed24(1, 42), b = new AuthorsFixed24(1, 42);
            Set<Integer> seen = new HashSet<>();
            for (int step = 0; step < 40; step++) {
                float[] ma = a.mask(x).toFloatArray();
                assertArrayEquals(ma, b.mask(x).toFloatArray());
                assertEquals(a.lastPattern(), b.lastPattern());
                seen.add(a.lastPattern());
                int p = a.lastPattern();
                for (int r = 0; r < 6; r++)
                    for (int g = 0; g < 4; g++) {
                        int kept = 0;
                        for (int j = 0; j < 4; j++) kept += (int) ma[r * 16 + 4 * g + j];
                        assertEquals(2, kept, "pattern " + p);
                    }
            }
            assertEquals(Set.of(0, 1, 2, 3), seen);
            // the definitions
            assertArrayEquals(new boolean[]{false, true, false, true, true, false, true, false}, row(0, 0));
            assertArrayEquals(new boolean[]{false, true, false, true, false, true, false, true}, row(1, 0));
            assertArrayEquals(new boolean[]{true, false, true, false, true, false, true, false}, row(2, 0));
            assertArrayEquals(new boolean[]{false, true, false, true, false, true, false, true}, row(2, 1));
            assertArrayEquals(new boolean[]{true, false, true, false, true, false, true, false}, row(3, 1));
        }
    }

    /**
     * AuthorsFixed24.kept (the per-image kept positions Eq. 3 computes with) is exactly the mask apply draws, for every
     * row parity, at planes that are and are not multiples of the patterns' period; and a block of images starting at
     * firstImage gets its part of the whole batch's lists.
     */
    @Property(tries = 60)
    void authorsKeptListsAreTheMask(@ForAll @IntRange(min = 1, max = 5) int images, @ForAll @IntRange(min = 1, max = 21) int plane,
                                    @ForAll @IntRange(min = 0, max = 1000) int seed) {
        try (Scope s = Scope.open()) {
            int rows = 3;
            AuthorsFixed24 a = new AuthorsFixed24(1, seed);
            float[] m = a.mask(Tensor.ones(rows, images * plane)).toFloatArray();
            int p = a.lastPattern();
            for (int r = 0; r < rows; r++) {
                AuthorsFixed24.Kept k = AuthorsFixed24.kept(p, r % 2, 0, images, plane);
                for (int img = 0; img < images; img++) {
                    List<Integer> want = new ArrayList<>(), got = new ArrayList<>();
                    for (int j = 0; j < plane; j++) if (m[r * images * plane + img * plane + j] == 1f) want.add(j);
                    for (long q = k.off()[img]; q < k.off()[img + 1]; q++) got.add(k.pos()[(int) q]);
                    assertEquals(want, got, "pattern " + p + " row " + r + " image " + img);
                }
                int[] flat = k.flat(plane);
                for (int q = 0; q < flat.length; q++) assertEquals(1f, m[r * images * plane + flat[q]], "flat index " + flat[q]);
                int ones = 0;
                for (int i = 0; i < images * plane; i++) ones += (int) m[r * images * plane + i];
                assertEquals(ones, flat.length, "every kept position of the row is listed");
                for (int first = 0; first < images; first++) {
                    AuthorsFixed24.Kept b = AuthorsFixed24.kept(p, r % 2, first, images - first, plane);
                    AuthorsFixed24.Kept b8 = AuthorsFixed24.kept(p, r % 2, first + 8 * (seed % 5 + 1), images - first, plane);
                    assertArrayEquals(b.pos(), b8.pos(), "first image + a multiple of 8 keeps the same positions");
                    assertArrayEquals(b.off(), b8.off());
                    for (int img = 0; img < images - first; img++)
                        assertArrayEquals(java.util.Arrays.copyOfRange(k.pos(), (int) k.off()[first + img], (int) k.off()[first + img + 1]),
                                java.util.Arrays.copyOfRange(b.pos(), (int) b.off()[img], (int) b.off()[img + 1]), "block from image " + first);
                }
            }
        }
    }

    private static boolean[] row(int p, int r) {
        boolean[] b = new boolean[8];
        for (int i = 0; i < 8; i++) b[i] = AuthorsFixed24.keeps(p, i, r);
        return b;
    }

    @Test
    void rejectsBadArguments() {
        try (Scope s = Scope.open()) {
            assertThrows(IllegalArgumentException.class, () -> new Sparsifier.Magnitude24(2).apply(Tensor.ones(4, 4)));
            assertThrows(IllegalArgumentException.class, () -> new Sparsifier.TopK(0, 1.5));
            assertThrows(IllegalArgumentException.class, () -> new Transposable24(0));
            assertThrows(IllegalArgumentException.class, () -> new Transposable24(1).apply(Tensor.ones(8)));
        }
    }
}
