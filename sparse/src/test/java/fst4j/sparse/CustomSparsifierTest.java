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

    @Test
    void aRuleThatBreaksItsWordIsReportedByName() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1, 2, 3, 4, 5, 6, 7, 8}, 2, 4);
            Sparsifier short1 = Sparsifier.Custom.of("short", 1, false, (v, shape) -> new boolean[v.length - 1]);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> short1.apply(x));
            assertTrue(e.getMessage().contains("custom sparsifier short returned 7 flags for a tensor of 8 elements"), e.getMessage());
            assertThrows(IllegalStateException.class, () -> Sparsifier.Custom.of("null", 1, false, (v, shape) -> null).apply(x));
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
