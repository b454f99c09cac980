package fst4j.sparse;

import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A rule of one's own (Sparsifier.Custom): applied like the built-in rules, its mistakes reported, not hidden. */
class CustomSparsifierTest {

    /** Keeps the 2 smallest |x| of every group of 4 along the last axis (the opposite of magnitude 2:4): a 2:4 rule. */
    static final Sparsifier SMALLEST24 = Sparsifier.Custom.of("smallest 2:4", -1, true, (v, shape) -> {
        int len = shape[shape.length - 1];
        boolean[] keep = new boolean[v.length];
        for (int row = 0; row < v.length / Math.max(len, 1); row++)
            for (int g = 0; g < len; g += 4) {
                int n = Math.min(4, len - g), b = row * len + g;
                Integer[] idx = new Integer[n];
                for (int i = 0; i < n; i++) idx[i] = i;
                java.util.Arrays.sort(idx, (p, q) -> Double.compare(Math.abs(v[b + p]), Math.abs(v[b + q])));
                for (int i = 0; i < Math.min(2, n); i++) keep[b + idx[i]] = true;
            }
        return keep;
    });

    @Property(tries = 60)
    void appliedAsTheRuleSaysAtAnySize(@ForAll @IntRange(min = 1, max = 9) int rows, @ForAll @IntRange(min = 1, max = 23) int cols,
                                       @ForAll long seed) {
        try (Scope s = Scope.open()) {
            float[] v = TestData.values(rows * cols, seed);
            Tensor x = Tensor.of(v, rows, cols);
            float[] out = SMALLEST24.apply(x).toFloatArray(), mask = SMALLEST24.mask(x).toFloatArray();
            assertTrue(TestData.maxNonZerosPerGroup(out, new int[]{rows, cols}, 1) <= 2);
            for (int r = 0; r < rows; r++)
                for (int g = 0; g < cols; g += 4) {
                    double keptMax = 0, prunedMin = Double.POSITIVE_INFINITY;
                    for (int i = g; i < Math.min(g + 4, cols); i++) {
                        int k = r * cols + i;
                        assertEquals(mask[k] == 1 ? v[k] : 0f, out[k], "element " + k);
                        if (mask[k] == 1) keptMax = Math.max(keptMax, Math.abs(v[k]));
                        else prunedMin = Math.min(prunedMin, Math.abs(v[k]));
                    }
                    assertTrue(keptMax <= prunedMin, "the kept ones are the smallest");
                }
            if (cols % 4 == 0) try (Compressed24 c = Compressed24.compress(SMALLEST24.apply(x))) {
                assertArrayEquals(out, c.decompress().toFloatArray());
            }
        }
    }

    /**
     * A rule that reads no values is never given any, and prunes to the same bits as the same kept set chosen by a rule
     * that reads them (the Java path): float32 by the shim's select, float64 on the host; kept NaN and -0.0 stay, pruned
     * ones become +0.0.
     */
    @Property(tries = 40)
    void aRuleThatReadsNoValuesGetsNoneAndPrunesTheSame(@ForAll @IntRange(min = 1, max = 9) int rows,
                                                        @ForAll @IntRange(min = 1, max = 23) int cols, @ForAll long seed) {
        blindRuleAgainstTheReadingOne(rows, cols, seed);
    }

    /** The same at sizes where the float32 select runs in the shim (from 1024 elements), not in Java. */
    @Test
    void aRuleThatReadsNoValuesPrunesTheSameThroughTheShim() {
        for (int[] rc : new int[][]{{5, 230}, {9, 211}, {64, 36}}) blindRuleAgainstTheReadingOne(rc[0], rc[1], rc[0] * 1000L + rc[1]);
    }

    private static void blindRuleAgainstTheReadingOne(int rows, int cols, long seed) {
        var calls = new java.util.concurrent.atomic.AtomicInteger();
        Sparsifier blind = TestData.positional(calls);
        Sparsifier reading = Sparsifier.Custom.of("positional, reading", -1, true, (v, shape) -> {
            assertNotNull(v);
            return TestData.positionalKeep(shape);
        });
        try (Scope s = Scope.open()) {
            float[] v = TestData.values(rows * cols, seed);
            v[0] = Float.NaN;
            v[v.length - 1] = -0.0f;
            if (v.length > 2) v[v.length / 2] = Float.NaN;
            Tensor x = Tensor.of(v, rows, cols);
            assertBits(reading.apply(x).toFloatArray(), blind.apply(x).toFloatArray(), "apply, float32");
            assertBits(reading.mask(x).toFloatArray(), blind.mask(x).toFloatArray(), "mask, float32");
            double[] d = new double[v.length];
            for (int i = 0; i < d.length; i++) d[i] = v[i];
            Tensor xd = Tensor.of(d, rows, cols);
            assertArrayEquals(reading.apply(xd).toDoubleArray(), blind.apply(xd).toDoubleArray(), "apply, float64");
            float[] out = blind.apply(x).toFloatArray();
            boolean[] keep = TestData.positionalKeep(new int[]{rows, cols});
            for (int i = 0; i < v.length; i++)
                assertEquals(Float.floatToRawIntBits(keep[i] ? v[i] : 0f), Float.floatToRawIntBits(out[i]), "element " + i);
            assertEquals(4, calls.get(), "one selection per apply and mask");
        }
    }

    private static void assertBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), what + ": element " + i);
    }

    @Test
    void aRuleThatBreaksItsWordIsReportedByName() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1, 2, 3, 4, 5, 6, 7, 8}, 2, 4);
            Sparsifier short1 = Sparsifier.Custom.of("short", 1, false, (v, shape) -> new boolean[v.length - 1]);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> short1.apply(x));
            assertTrue(e.getMessage().contains("custom sparsifier short returned 7 flags for a tensor of 8 elements"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> Sparsifier.Custom.of("null", 1, false, (v, shape) -> null).apply(x));
            Sparsifier blindShort = new Sparsifier.Custom() {   // the same check where the rule reads no values
                @Override public boolean[] keep(double[] values, int[] shape) { return new boolean[3]; }
                @Override public boolean readsValues() { return false; }
                @Override public int axis() { return 1; }
                @Override public boolean accelerable() { return false; }
                @Override public String toString() { return "blind short"; }
            };
            IllegalStateException b = assertThrows(IllegalStateException.class, () -> blindShort.apply(x));
            assertTrue(b.getMessage().contains("custom sparsifier blind short returned 3 flags for a tensor of 8 elements"), b.getMessage());
            // claims 2:4 but keeps 3 of a group: the compression names the group
            Sparsifier liar = Sparsifier.Custom.of("three of four", 1, true, (v, shape) -> {
                boolean[] k = new boolean[v.length];
                for (int i = 0; i < k.length; i++) k[i] = i % 4 != 3;
                return k;
            });
            IllegalArgumentException c = assertThrows(IllegalArgumentException.class, () -> Compressed24.compress(liar.apply(x)));
            assertTrue(c.getMessage().contains("row 0") && c.getMessage().contains("group 0"), c.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Sparsifier.Custom.of("axis", 3, false, (v, shape) -> new boolean[v.length]).apply(x));
            assertEquals("smallest 2:4", SMALLEST24.toString());
        }
    }
}
