package fst4j.nn.analysis;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class EntropyTest {
    static final double EPS = 1e-12;

    static double log2(double x) { return Math.log(x) / Math.log(2); }

    @Test
    void quantisationIsUniformOverMinMaxWithMaxInTheLastBin() {
        assertArrayEquals(new int[]{0, 2, 3, 3}, Entropy.quantize(new float[]{-1, 0, 0.5f, 1}, 4));
        assertArrayEquals(new int[]{0, 127, 128, 255}, Entropy.quantize(new float[]{0, 0.499f, 0.501f, 1}, 256));
        assertArrayEquals(new int[]{0, 0, 0}, Entropy.quantize(new float[]{3, 3, 3}, 256));   // constant tensor
        assertEquals(0, Entropy.bin(Float.NaN, 0, 1, 4));
    }

    @Test
    void entropyOfHandCountsInBits() {
        assertEquals(1.0, Entropy.entropy(new long[]{5, 5}), EPS);
        assertEquals(2.0, Entropy.entropy(new long[]{1, 1, 1, 1, 0, 0}), EPS);
        assertEquals(0.0, Entropy.entropy(new long[]{0, 7, 0}), EPS);
        assertEquals(-(0.25 * log2(0.25) + 0.75 * log2(0.75)), Entropy.entropy(new long[]{1, 3}), EPS);   // 0.811278
        assertEquals(0.0, Entropy.entropy(new long[]{0, 0}), EPS);
    }

    /**
     * Tiny hand example, 2 bins, one 2x3 image: rows [0 0 1] and [1 1 1]. Pairs (X, X') = (0,0) (0,1) (1,1) (1,1).
     * H(X) = 1; H(X') = H(1/4, 3/4) = 0.811278; H(X, X') = H(1/4, 1/4, 1/2) = 1.5; H(X|X') = 0.688722;
     * similarity = 0.311278.
     */
    @Test
    void tinyHandExample() {
        float[] img = {0, 0, 1, 1, 1, 1};
        Entropy.Similarity s = Entropy.horizontalSimilarity(img, new int[]{1, 1, 2, 3}, 2);
        double hxp = -(0.25 * log2(0.25) + 0.75 * log2(0.75));
        assertEquals(4, s.pairs());
        assertEquals(1.0, s.hX(), EPS);
        assertEquals(hxp, s.hXp(), EPS);
        assertEquals(1.5, s.hJoint(), EPS);
        assertEquals(1.5 - hxp, s.conditional(), EPS);
        assertEquals(1 - (1.5 - hxp), s.similarity(), EPS);
        assertEquals(0.311278, s.similarity(), 1e-6);
        // the same from codes
        Entropy.Similarity c = Entropy.similarity(new int[]{0, 0, 1, 1}, new int[]{0, 1, 1, 1}, 2);
        assertEquals(s.similarity(), c.similarity(), EPS);
    }

    @Test
    void rowsDoNotWrapAndChannelsAndImagesArePooled() {
        // 2 images x 2 channels x 1 row x 2 columns: one pair per row, (0,1) (1,0) (0,1) (1,0); no pair across rows
        float[] x = {0, 1, 1, 0, 0, 1, 1, 0};
        Entropy.Similarity s = Entropy.horizontalSimilarity(x, new int[]{2, 2, 1, 2}, 2);
        assertEquals(4, s.pairs());
        assertEquals(1.0, s.hX(), EPS);          // X = 0, 1, 0, 1
        assertEquals(1.0, s.hXp(), EPS);         // X' = 1, 0, 1, 0
        assertEquals(1.0, s.hJoint(), EPS);      // two equally likely pairs
        assertEquals(0.0, s.conditional(), EPS); // X = 1 - X'
        assertEquals(1.0, s.similarity(), EPS);
    }

    @Test
    void equalAdjacentColumnsGiveZeroConditionalEntropy() {
        SplittableRandom r = new SplittableRandom(1);
        int n = 4, c = 3, h = 16, w = 16;
        float[] x = new float[n * c * h * w];
        for (int row = 0; row < n * c * h; row++) {
            float v = (float) r.nextDouble();
            for (int j = 0; j < w; j++) x[row * w + j] = v;   // every column equals its neighbour
        }
        Entropy.Similarity s = Entropy.horizontalSimilarity(x, new int[]{n, c, h, w}, 256);
        assertEquals(0.0, s.conditional(), 1e-9);
        assertEquals(s.hX(), s.similarity(), 1e-9);
        assertTrue(s.hX() > 5, "random row values spread over many bins: H(X) = " + s.hX());
    }

    @Test
    void independentNoiseHasSimilarityNearZero() {
        SplittableRandom r = new SplittableRandom(7);
        int rows = 2000, w = 1001;   // 2,000,000 pairs
        float[] x = new float[rows * w];
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextDouble();
        Entropy.Similarity s = Entropy.horizontalSimilarity(x, new int[]{1, 1, rows, w}, 256);
        assertEquals(8.0, s.hX(), 0.01);
        // the plug-in bias for independent variables is ~ 255^2 / (2 n ln 2) = 0.023 bits here
        assertEquals(s.noiseFloor(), s.similarity(), 0.01);
        assertTrue(s.similarity() < 0.05, "similarity of independent noise " + s.similarity());
        assertTrue(s.similarity() >= 0);
    }

    @Test
    void streamingHistogramEqualsOneShot() {
        SplittableRandom r = new SplittableRandom(3);
        float[] a = new float[2 * 3 * 5 * 7], b = new float[a.length];
        for (int i = 0; i < a.length; i++) { a[i] = (float) r.nextGaussian(); b[i] = (float) r.nextGaussian(); }
        float[] both = new float[2 * a.length];
        System.arraycopy(a, 0, both, 0, a.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        Entropy.Similarity whole = Entropy.horizontalSimilarity(both, new int[]{4, 3, 5, 7}, 16);
        float[] ra = Entropy.range(both);
        Entropy.PairHistogram h = new Entropy.PairHistogram(16, ra[0], ra[1]);
        h.addHorizontalPairs(a, new int[]{2, 3, 5, 7});
        h.addHorizontalPairs(b, new int[]{2, 3, 5, 7});
        assertEquals(whole, h.result());
    }

    @Test
    void badInputs() {
        assertThrows(IllegalArgumentException.class, () -> Entropy.horizontalSimilarity(new float[5], new int[]{1, 1, 2, 3}, 256));
        assertThrows(IllegalArgumentException.class, () -> Entropy.horizontalSimilarity(new float[6], new int[]{2, 3}, 256));
        assertThrows(IllegalArgumentException.class, () -> Entropy.quantize(new float[1], 0));
        assertThrows(IllegalArgumentException.class, () -> Entropy.similarity(new int[]{0}, new int[]{0, 1}, 2));
    }
}
