package fst4j.nn;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * SR-STE's N:M decay by the shim (fst_srste_decay_nm, which SrSte.decayNM calls for float32 CPU weights) equals the Java
 * loop SrSte.decayPrunedNM bit for bit: g += lambda w in float at every weight the N:M rule prunes along the rows, any
 * pattern up to 31:32, rows whose length leaves a short last group, ties, NaN, +-0.0 and infinities among the weights, on
 * one thread and split.
 */
class SrSteNMNativeTest {

    static float[] weights(int n, long seed) {
        Random r = new Random(seed);
        float[] odd = {Float.NaN, -0.0f, 0.0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 1f, -1f, 0.5f};
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            int k = r.nextInt(8);
            v[i] = k == 0 ? odd[r.nextInt(odd.length)] : k == 1 ? r.nextInt(3) - 1 : (float) r.nextGaussian();
        }
        return v;
    }

    @Property(tries = 300)
    void theShimDecaysWhatJavaDecays(@ForAll @IntRange(min = 1, max = 40) int rows, @ForAll @IntRange(min = 1, max = 300) int k,
                                     @ForAll @IntRange(min = 2, max = 32) int m, @ForAll @IntRange(min = 1, max = 31) int nPick,
                                     @ForAll @IntRange(min = 1, max = 2000) int lambdaMilli, @ForAll @IntRange(min = 1, max = 3) int threads,
                                     @ForAll long seed) {
        assertTrue(Native.isLoaded(), "the shim is part of the build");
        int n = 1 + (nPick - 1) % (m - 1);
        float lambda = lambdaMilli * 1e-3f;
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.of(weights(rows * k, seed), rows, k);
            Tensor g1 = Tensor.of(weights(rows * k, ~seed), rows, k), g2 = g1.copy();
            SrSte.decayPrunedNM(w.data(), g1.data(), rows, k, n, m, lambda);
            Native.srsteDecayNM(w.data(), g2.data(), rows, k, n, m, lambda, threads);
            float[] a = g1.toFloatArray(), b = g2.toFloatArray();
            for (int i = 0; i < a.length; i++)
                assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]),
                        n + ":" + m + " [" + rows + ", " + k + "] at " + i + ": java " + a[i] + ", shim " + b[i]);
        }
    }

    /** SrSte.decayNM takes the shim's pass on a float32 CPU weight: a large one split over threads gives Java's bits. */
    @Property(tries = 5)
    void decayNMThroughTheLayerPathEqualsJava(@ForAll @IntRange(min = 1, max = 7) int n, @ForAll long seed) {
        int saved = Blas.threads();
        Blas.setThreads(2);
        try (Scope s = Scope.open()) {
            int rows = 64, k = 577;
            Tensor w = Tensor.of(weights(rows * k, seed), rows, k);
            fst4j.autograd.Var wv = fst4j.autograd.Var.param(w);
            Tensor g0 = Tensor.of(weights(rows * k, ~seed), rows, k);
            wv.mul(fst4j.autograd.Var.of(g0)).sum().backward();   // grad(w) = g0, exactly
            assertArrayEquals(g0.toFloatArray(), wv.grad().toFloatArray());
            Tensor want = g0.copy();
            SrSte.decayPrunedNM(w.data(), want.data(), rows, k, n, 8, 0.25f);
            SrSte.decayNM(wv, new fst4j.sparse.Sparsifier.MagnitudeNM(n, 8, 1), 0.25f);
            assertArrayEquals(want.toFloatArray(), wv.grad().toFloatArray());
        } finally {
            Blas.setThreads(saved);
        }
    }
}
