package fst4j.sparse;

import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

class Compressed24Test {

    /** A random matrix with 0, 1 or 2 non-zeros in each group of 4 along K (padding respected). */
    static float[] random24(int rows, int k, long seed) {
        Random r = new Random(seed);
        float[] x = new float[rows * k];
        for (int i = 0; i < rows; i++)
            for (int g = 0; g < k; g += 4) {
                int n = Math.min(4, k - g), nz = r.nextInt(3);
                for (int t = 0; t < nz; t++) x[i * k + g + r.nextInt(n)] = (float) r.nextGaussian();
            }
        return x;
    }

    @Property(tries = 150)
    void decompressInvertsCompress(@ForAll @IntRange(min = 0, max = 9) int rows, @ForAll @IntRange(min = 0, max = 70) int k, @ForAll long seed) {
        try (Scope s = Scope.open()) {
            float[] x = random24(rows, k, seed);
            Tensor t = Tensor.of(x, rows, k);
            assertTrue(Compressed24.isValid24(t));
            try (Compressed24 c = Compressed24.compress(t)) {
                assertEquals((k + 3) / 4 * 4, c.paddedK());
                assertArrayEquals(new int[]{rows, c.paddedK() / 2}, c.values().shape());
                assertArrayEquals(new int[]{rows, (c.paddedK() + 31) / 32}, c.metadata().shape());
                assertArrayEquals(x, c.decompress().toFloatArray());
                for (int r = 0; r < rows; r++)
                    for (int g = 0; g < c.paddedK() / 4; g++) {
                        int nib = c.nibble(r, g), i0 = nib & 3, i1 = nib >> 2;
                        assertTrue(i0 < i1, "indices distinct and increasing");
                        for (int j = 0; j < 4; j++) {   // every non-zero is indexed
                            int col = 4 * g + j;
                            if (col < k && x[r * k + col] != 0) assertTrue(j == i0 || j == i1);
                        }
                    }
            }
        }
    }

    @Test
    void layoutIsAsDocumented() {
        try (Scope s = Scope.open()) {
            // groups: {0,5,0,7} -> (1,3); {0,0,2,0} -> (0,2); {0,0,0,0} -> (0,1); {4,0,0,0} -> (0,1); {0,3,0,0} -> (0,1);
            // then a padded group of K = 22: {6, 0 | pad pad} -> (0,1)
            float[] row = {0, 5, 0, 7, 0, 0, 2, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 3, 0, 0, 6, 0};
            Tensor t = Tensor.of(row, 1, 22);
            try (Compressed24 c = Compressed24.compress(t)) {
                assertEquals(24, c.paddedK());
                assertArrayEquals(new float[]{5, 7, 0, 2, 0, 0, 4, 0, 0, 3, 6, 0}, c.values().toFloatArray());
                int expect = (1 | 3 << 2) | (0 | 2 << 2) << 4 | (0 | 1 << 2) << 8 | (0 | 1 << 2) << 12 | (0 | 1 << 2) << 16 | (0 | 1 << 2) << 20;
                assertEquals(expect, c.metaWord(0, 0));
                assertEquals(0xD, c.nibble(0, 0));
            }
            // 9 groups: the ninth goes to the low nibble of the second word
            float[] wide = new float[36];
            wide[34] = 1; wide[35] = 2;
            try (Compressed24 c = Compressed24.compress(Tensor.of(wide, 1, 36))) {
                assertEquals(2, c.metaWordsPerRow());
                assertEquals(2 | 3 << 2, c.metaWord(0, 1));
            }
        }
    }

    @Test
    void compressRejectsNonTwoFourNamingTheGroup() {
        try (Scope s = Scope.open()) {
            float[] x = new float[3 * 13];
            x[13 + 8] = 1; x[13 + 9] = 2; x[13 + 11] = 3;   // row 1, group 2 has 3 non-zeros
            x[2 * 13 + 12] = 1;                            // padded last group is fine
            Tensor t = Tensor.of(x, 3, 13);
            assertFalse(Compressed24.isValid24(t));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Compressed24.compress(t));
            assertTrue(e.getMessage().contains("row 1, group 2"), e.getMessage());
            assertTrue(e.getMessage().contains("3 non-zeros"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Compressed24.compress(Tensor.ones(2, 2, 2)));
        }
    }

    @Test
    void magnitudeOutputAlwaysCompresses() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(TestData.values(7 * 19, 5), 7, 19);
            Tensor y = new Sparsifier.Magnitude24(1).apply(x);
            try (Compressed24 c = Compressed24.compress(y)) {
                assertArrayEquals(y.toFloatArray(), c.decompress().toFloatArray());
            }
            // a transposed view compresses like its copy
            Tensor w = new Sparsifier.Magnitude24(0).apply(Tensor.of(TestData.values(12 * 5, 6), 12, 5));
            try (Compressed24 c = Compressed24.compress(w.t())) {
                assertArrayEquals(w.t().contiguous().toFloatArray(), c.decompress().toFloatArray());
            }
        }
    }
}
