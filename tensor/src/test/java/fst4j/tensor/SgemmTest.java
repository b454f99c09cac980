package fst4j.tensor;

import fst4j.shim.Native;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The native SGEMM (raw {@link Native#sgemm} and {@link Blas#gemm}) against a float64 reference: every transpose
 * combination, leading dimensions wider than the matrices, odd sizes that leave partial micro-tiles, 1 and 2 threads.
 * Padding of A and B holds NaN (reading it would poison the result), padding of C holds a sentinel (writing it is
 * caught), and C is NaN before a beta = 0 call (an element the kernel forgets stays NaN).
 */
class SgemmTest {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final float SENTINEL = 12345.5f;

    /** (M, N, K): each of 1, 3, 17, 255, 1023 appears in every position; products kept small enough for a fast reference. */
    private static final int[][] SHAPES = {
            {1, 1, 1}, {3, 1, 17}, {1, 3, 255}, {17, 17, 3}, {3, 255, 1}, {255, 3, 17},
            {17, 255, 255}, {255, 17, 255}, {255, 255, 17}, {64, 96, 300},
            {1023, 17, 3}, {3, 1023, 17}, {17, 3, 1023}, {1023, 33, 255}, {40, 1023, 255}, {130, 100, 1023},
            {1700, 20, 40},  // more rows than one packed block of A (1536 in gemm.c)
    };

    /** A column-major-or-row-major operand stored as rows x ld (ld > cols), padding filled with pad. */
    private record Mat(float[] data, int rows, int cols, int ld) {
        static Mat random(SplittableRandom r, int rows, int cols, int extra, float pad) {
            int ld = cols + extra;
            float[] d = new float[rows * ld];
            for (int i = 0; i < rows; i++)
                for (int j = 0; j < ld; j++) d[i * ld + j] = j < cols ? (float) (r.nextDouble() * 2 - 1) : pad;
            return new Mat(d, rows, cols, ld);
        }
        MemorySegment copyTo(Arena arena) {
            MemorySegment s = arena.allocate((long) data.length * 4, 64);
            MemorySegment.copy(MemorySegment.ofArray(data), 0, s, 0, (long) data.length * 4);
            return s;
        }
        double maxAbs() {
            double m = 0;
            for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) m = Math.max(m, Math.abs(data[i * ld + j]));
            return m;
        }
    }

    /** op(A) (M x K) times op(B) (K x N) in float64. */
    private static double[] reference(boolean tA, boolean tB, int m, int n, int k, Mat a, Mat b) {
        double[] bn = new double[k * n];  // op(B) row-major, so the inner loop is contiguous
        for (int p = 0; p < k; p++) for (int j = 0; j < n; j++) bn[p * n + j] = tB ? b.data[j * b.ld + p] : b.data[p * b.ld + j];
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++) {
                double av = tA ? a.data[p * a.ld + i] : a.data[i * a.ld + p];
                int row = i * n, brow = p * n;
                for (int j = 0; j < n; j++) c[row + j] += av * bn[brow + j];
            }
        return c;
    }

    /** Runs one raw sgemm and compares every element (and the untouched C padding) with the reference. */
    private static void runRaw(SplittableRandom r, boolean tA, boolean tB, int m, int n, int k,
                               float alpha, float beta, int[] threadCounts) {
        Mat a = tA ? Mat.random(r, k, m, 3, Float.NaN) : Mat.random(r, m, k, 5, Float.NaN);
        Mat b = tB ? Mat.random(r, n, k, 7, Float.NaN) : Mat.random(r, k, n, 2, Float.NaN);
        Mat c0 = Mat.random(r, m, n, 4, SENTINEL);
        if (beta == 0f) for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) c0.data[i * c0.ld + j] = Float.NaN;
        double[] ref = reference(tA, tB, m, n, k, a, b);
        double scale = Math.abs(alpha) * a.maxAbs() * b.maxAbs();
        for (int threads : threadCounts) {
            String what = "sgemm tA=" + tA + " tB=" + tB + " M=" + m + " N=" + n + " K=" + k + " alpha=" + alpha + " beta=" + beta + " threads=" + threads;
            float[] got = new float[c0.data.length];
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment sa = a.copyTo(arena), sb = b.copyTo(arena), sc = c0.copyTo(arena);
                Native.sgemm(tA, tB, m, n, k, alpha, sa, a.ld, sb, b.ld, beta, sc, c0.ld, threads);
                MemorySegment.copy(sc, F, 0, got, 0, got.length);
            }
            compare(what, ref, got, c0, m, n, k, alpha, beta, scale);
        }
    }

    private static void compare(String what, double[] ref, float[] got, Mat c0, int m, int n, int k,
                                float alpha, float beta, double scale) {
        double tol = 2e-6 * (Math.sqrt(k) + 1) * scale;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < c0.ld; j++) {
                int idx = i * c0.ld + j;
                if (j >= n) {
                    assertEquals(SENTINEL, got[idx], what + ": wrote C padding at (" + i + ", " + j + ")");
                    continue;
                }
                double c = beta == 0f ? 0 : beta * (double) c0.data[idx];
                double want = alpha * ref[i * n + j] + c;
                double err = Math.abs(got[idx] - want);
                if (!(err <= tol + 1e-6 * Math.abs(c)))
                    fail(what + ": C[" + i + ", " + j + "] = " + got[idx] + ", want " + want + " (|err| " + err + " > tol " + tol + ")");
            }
    }

    @Test
    void allTransposesAndShapesOneAndTwoThreads() {
        SplittableRandom r = new SplittableRandom(20240501);
        for (int[] s : SHAPES)
            for (int t = 0; t < 4; t++)
                runRaw(r, (t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2], 1f, 0f, new int[]{1, 2});
    }

    @Test
    void alphaAndBetaScaleAndAccumulate() {
        SplittableRandom r = new SplittableRandom(7);
        int[][] shapes = {{17, 33, 255}, {255, 130, 64}, {3, 1023, 17}};
        float[][] ab = {{-0.75f, 0.5f}, {2f, 1f}, {1f, -1f}};
        for (int[] s : shapes)
            for (float[] x : ab)
                for (int t = 0; t < 4; t++)
                    runRaw(r, (t & 1) != 0, (t & 2) != 0, s[0], s[1], s[2], x[0], x[1], new int[]{1, 2});
    }

    @Test
    void largeSquareProduct() {
        // One big square product so the multi-block paths (several KC, MC and NC blocks) are covered for sure.
        SplittableRandom r = new SplittableRandom(99);
        runRaw(r, false, false, 1023, 1023, 1023, 1f, 0f, new int[]{2});
    }

    @Test
    void concurrentCallersGetCorrectResults() throws Exception {
        // Several Java threads share the native helper pool (one job at a time, the others run alone).
        int callers = 4;
        java.util.List<Throwable> errors = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
        Thread[] ts = new Thread[callers];
        for (int t = 0; t < callers; t++) {
            final int id = t;
            ts[t] = new Thread(() -> {
                try {
                    SplittableRandom r = new SplittableRandom(1000 + id);
                    for (int rep = 0; rep < 6; rep++)
                        runRaw(r, (rep & 1) != 0, id % 2 != 0, 96 + 17 * id, 130 + rep, 200, 1f, 0f, new int[]{2});
                } catch (Throwable e) {
                    errors.add(e);
                }
            });
            ts[t].start();
        }
        for (Thread t : ts) t.join();
        if (!errors.isEmpty()) throw new AssertionError(errors.size() + " caller(s) failed, first: " + errors.get(0).getMessage(), errors.get(0));
    }

    @Test
    void zeroKScalesByBetaOnly() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment c = arena.allocate(6 * 4, 64);
            for (int i = 0; i < 6; i++) c.setAtIndex(F, i, i + 1);
            Native.sgemm(false, false, 2, 3, 0, 1f, MemorySegment.NULL, 1, MemorySegment.NULL, 3, 2f, c, 3, 2);
            for (int i = 0; i < 6; i++) assertEquals(2f * (i + 1), c.getAtIndex(F, i));
            for (int i = 0; i < 6; i++) c.setAtIndex(F, i, Float.NaN);
            Native.sgemm(false, false, 2, 3, 0, 1f, MemorySegment.NULL, 1, MemorySegment.NULL, 3, 0f, c, 3, 1);
            for (int i = 0; i < 6; i++) assertEquals(0f, c.getAtIndex(F, i));
        }
    }

    @Test
    void nativeRejectsBadLeadingDimensionsAndThreads() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(64 * 4, 64), b = arena.allocate(64 * 4, 64), c = arena.allocate(64 * 4, 64);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Native.sgemm(false, false, 4, 4, 4, 1f, a, 3, b, 4, 0f, c, 4, 1));
            assertTrue(e.getMessage().contains("fst_sgemm") && e.getMessage().contains("leading dimension 3"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Native.sgemm(false, true, 4, 4, 4, 1f, a, 4, b, 3, 0f, c, 4, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.sgemm(false, false, 4, 4, 4, 1f, a, 4, b, 4, 0f, c, 3, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.sgemm(false, false, 4, 4, 4, 1f, a, 4, b, 4, 0f, c, 4, 0));
            assertThrows(IllegalArgumentException.class, () -> Native.sgemm(false, false, -1, 4, 4, 1f, a, 4, b, 4, 0f, c, 4, 1));
            e = assertThrows(IllegalArgumentException.class,
                    () -> Native.sgemm(false, false, 4, 4, 4, 1f, MemorySegment.NULL, 4, b, 4, 0f, c, 4, 1));
            assertTrue(e.getMessage().contains("a is NULL"), e.getMessage());
            // a segment shorter than the sizes say: refused before the call (the shim trusts lengths)
            MemorySegment shortA = arena.allocate(15 * 4, 64);
            e = assertThrows(IllegalArgumentException.class, () -> Native.sgemm(false, false, 4, 4, 4, 1f, shortA, 4, b, 4, 0f, c, 4, 1));
            assertTrue(e.getMessage().contains("a holds 60 bytes, needs 64"), e.getMessage());
        }
    }

    /** Blas.gemm on strided views: transposed operands (t() of a wider matrix) and an output slice narrower than its rows. */
    @Test
    void blasGemmOnViewsMatchesReference() {
        SplittableRandom r = new SplittableRandom(3);
        int[][] shapes = {{17, 255, 33}, {255, 17, 130}, {1, 3, 1023}};
        int saved = Blas.threads();
        try {
            for (int threads : new int[]{1, 2}) {
                Blas.setThreads(threads);
                for (int[] s : shapes)
                    for (int t = 0; t < 4; t++) {
                        boolean tA = (t & 1) != 0, tB = (t & 2) != 0;
                        int m = s[0], n = s[1], k = s[2];
                        Mat a = tA ? Mat.random(r, k, m, 3, Float.NaN) : Mat.random(r, m, k, 5, Float.NaN);
                        Mat b = tB ? Mat.random(r, n, k, 7, Float.NaN) : Mat.random(r, k, n, 2, Float.NaN);
                        Mat c0 = Mat.random(r, m, n, 4, SENTINEL);
                        for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) c0.data[i * c0.ld + j] = Float.NaN;
                        double[] ref = reference(tA, tB, m, n, k, a, b);
                        float[] got;
                        try (Scope sc = Scope.open()) {
                            Tensor ta = Tensor.of(a.data, a.rows, a.ld).slice(1, 0, a.cols);
                            Tensor tb = Tensor.of(b.data, b.rows, b.ld).slice(1, 0, b.cols);
                            Tensor cFull = Tensor.of(c0.data.clone(), m, c0.ld);
                            Blas.gemm(1f, tA ? ta.t() : ta, tB ? tb.t() : tb, 0f, cFull.slice(1, 0, n));
                            got = cFull.toFloatArray();
                        }
                        compare("Blas.gemm tA=" + tA + " tB=" + tB + " " + m + "x" + n + "x" + k + " threads=" + threads,
                                ref, got, c0, m, n, k, 1f, 0f, a.maxAbs() * b.maxAbs());
                    }
            }
        } finally {
            Blas.setThreads(saved);
        }
    }

    @Test
    void blasGemmRejectsShapeMismatchAndWrongRank() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(3, 4), b = Tensor.ones(5, 2), c = Tensor.zeros(3, 2);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Blas.gemm(1f, a, b, 0f, c));
            assertEquals("shape mismatch: gemm [3, 4] x [5, 2] into [3, 2]", e.getMessage());
            Tensor b2 = Tensor.ones(4, 2), cBad = Tensor.zeros(3, 3);
            e = assertThrows(IllegalArgumentException.class, () -> Blas.gemm(1f, a, b2, 0f, cBad));
            assertTrue(e.getMessage().startsWith("shape mismatch: gemm"), e.getMessage());
            Tensor v = Tensor.ones(4);
            e = assertThrows(IllegalArgumentException.class, () -> Blas.gemm(1f, a, v, 0f, c));
            assertTrue(e.getMessage().startsWith("wrong rank: gemm needs matrices"), e.getMessage());
        }
    }
}
