package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.Conv;
import fst4j.tensor.Lowering;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Implicit im2col: the dense GEMM (both orientations) and the 2:4 kernel with B lowered while packing equal the
 * same products on the materialised im2col matrix, at generated conv geometries (padding, strides, kernel sizes,
 * output column ranges that cut through rows and images) on fresh random data, with the planned lowering (AVX-512
 * masked loads, where the CPU has them) and the row-by-row lowering.
 */
class LoweredGemmTest {

    private static void close(Tensor want, Tensor got, String what) {
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what);
        for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-5f * Math.max(1, Math.abs(a[i])), what + " at " + i);
    }

    /** Runs body in a scope with the given thread count and lowering path (planned or row by row), then restores both. */
    private static void withSettings(int threads, boolean planned, Runnable body) { withSettings(threads, planned, -1, 0, body); }

    /**
     * wgradMax >= 0: Eq. 3 without packing for up to that many output rows (Native.wgradDirectMax); -1 leaves it.
     * chunk: that kernel's chunk of positions in vectors of 16 (Native.wgradChunk; 0 = its own sizing).
     */
    private static void withSettings(int threads, boolean planned, int wgradMax, int chunk, Runnable body) {
        int before = Blas.threads();
        boolean plan = Native.loweringPlan(-1);
        int wgrad = Native.wgradDirectMax(-1), chunkBefore = Native.wgradChunk(-1);
        Native.loweringPlan(planned ? 1 : 0);
        if (wgradMax >= 0) Native.wgradDirectMax(wgradMax);
        Native.wgradChunk(chunk);
        Blas.setThreads(threads);
        try (Scope sc = Scope.open()) {
            body.run();
        } finally {
            Blas.setThreads(before);
            Native.loweringPlan(plan ? 1 : 0);
            Native.wgradDirectMax(wgrad);
            Native.wgradChunk(chunkBefore);
        }
    }

    /** got == want = S cols up to rounding in another order: relative to |S| |cols| (K up to 540 terms), not to |want|. */
    private static void closeSparse(Compressed24 cw, Tensor cols, Tensor want, Tensor got, String what) {
        try (Tensor d = cw.decompress(); Tensor da = d.abs(); Tensor ca = cols.abs(); Tensor scale = Blas.matmul(da, ca)) {
            double diff = TestData.diffNorm(got.toFloatArray(), want.toFloatArray()), norm = TestData.norm(scale.toFloatArray());
            // |S||B| = 0 (every lowered element padding, as in a 1x1 lowering that only meets the border): the product is exactly 0
            double err = norm == 0 ? diff : diff / norm;
            assertTrue(err < 1e-6, what + ": error relative to |S||B| " + err);
        }
    }

    /** The 2:4 kernel with B lowered from low equals it on the materialised cols, for S(a) pruned and compressed. */
    private static void close24(Tensor a, Tensor cols, Lowering low, int threads, String what) {
        try (Compressed24 cw = Compressed24.pruneCompress(a, null, threads)) {
            Tensor s1 = Tensor.empty(a.size(0), cols.size(1)), s2 = Tensor.empty(a.size(0), cols.size(1));
            SparseGemm.spmm(1f, cw, cols, 0f, s1, threads);
            SparseGemm.spmmLowered(cw, low, 0f, s2);
            close(s1, s2, what);
        }
    }

    /**
     * Eq. 3 reduces over all positions (up to thousands), and the direct kernel for few output rows (wgrad_avx512.c) sums
     * in a different order than the GEMM: the error is bounded by the sum of |products| (Higham), not by |result|,
     * which cancellation can make small. Bound: 2e-6 * (|G| |im2col|^T) + 1e-6, far below what a wrong index gives.
     */
    private static void closeEq3(Tensor g, Tensor cols, Tensor want, Tensor got, String what) {
        float[] ga = g.toFloatArray(), ca = cols.toFloatArray();
        for (int i = 0; i < ga.length; i++) ga[i] = Math.abs(ga[i]);
        for (int i = 0; i < ca.length; i++) ca[i] = Math.abs(ca[i]);
        Tensor bound = Tensor.empty(g.size(0), cols.size(0));
        try (Tensor ct = Tensor.of(ca, cols.size(0), cols.size(1)).t()) { Blas.gemm(1f, Tensor.of(ga, g.size(0), g.size(1)), ct, 0f, bound); }
        float[] a = want.toFloatArray(), b = got.toFloatArray(), e = bound.toFloatArray();
        assertEquals(a.length, b.length, what);
        for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 2e-6f * e[i] + 1e-6f, what + " at " + i);
    }

    @Property(tries = 80)
    void loweredEqualsMaterialised(@ForAll @IntRange(min = 1, max = 4) int n, @ForAll @IntRange(min = 1, max = 9) int c,
                                   @ForAll @IntRange(min = 1, max = 23) int h, @ForAll @IntRange(min = 1, max = 23) int w,
                                   @ForAll @IntRange(min = 1, max = 5) int k, @ForAll @IntRange(min = 1, max = 3) int s,
                                   @ForAll @IntRange(min = 0, max = 2) int p, @ForAll @IntRange(min = 1, max = 70) int m,
                                   @ForAll @IntRange(min = 1, max = 2) int threads, @ForAll boolean planned,
                                   @ForAll boolean wideDirect, @ForAll @IntRange(min = 0, max = 3) int chunk, @ForAll long seed) {
        if (h + 2 * p < k || w + 2 * p < k) return;   // no output position
        // wideDirect: Eq. 3 without packing for every m drawn here (up to 70 rows), not only 32 (above 32 rows the packing GEMM then runs); chunk 1-3:
        // that kernel's positions in chunks of 16-48, so that most draws cross chunk boundaries (0: its own sizing)
        withSettings(threads, planned, wideDirect ? 70 : 32, chunk, () -> {
            Rng r = new Rng(seed);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Lowering low = new Lowering(x, k, k, s, s, p, p);
            Tensor cols = Conv.im2col(x, k, k, s, s, p, p);
            int rows = low.rows(), ncols = low.cols();
            assertArrayEquals(new int[]{rows, ncols}, cols.shape());

            // Eq. 1: A [m, rows] x im2col, beta = 0 and beta = 0.5 into a strided view
            Tensor a = r.normal(0, 1, m, rows);
            Tensor want = Tensor.empty(m, ncols), got = Tensor.empty(m, ncols);
            Blas.gemm(1f, a, cols, 0f, want);
            Conv.gemmLowered(1f, a, low, false, 0f, got);
            close(want, got, "Eq. 1");
            Tensor wide = r.normal(0, 1, m, ncols + 5), wide2 = wide.copy();
            try (Tensor v1 = wide.slice(1, 2, 2 + ncols); Tensor v2 = wide2.slice(1, 2, 2 + ncols)) {
                Blas.gemm(1f, a, cols, 0.5f, v1);
                Conv.gemmLowered(1f, a, low, false, 0.5f, v2);
            }
            close(wide, wide2, "Eq. 1 with beta into a view");

            // Eq. 3: G [m, ncols] x im2col^T, accumulating (beta 1)
            Tensor g = r.normal(0, 1, m, ncols);
            Tensor dw1 = r.normal(0, 1, m, rows), dw2 = dw1.copy();
            try (Tensor ct = cols.t()) { Blas.gemm(1f, g, ct, 1f, dw1); }
            Conv.gemmLowered(1f, g, low, true, 1f, dw2);
            closeEq3(g, cols, dw1, dw2, "Eq. 3");

            // 2:4 Eq. 1
            close24(a, cols, low, threads, "2:4 Eq. 1");

            // tap-major rows (i, j, c): the same products with im2col's rows reordered
            Lowering tap = new Lowering(x, k, k, s, s, p, p, true);
            float[] cv = cols.toFloatArray(), tv = new float[cv.length];
            int kk = k * k;
            for (int ch = 0; ch < c; ch++)
                for (int t = 0; t < kk; t++) System.arraycopy(cv, (ch * kk + t) * ncols, tv, (t * c + ch) * ncols, ncols);
            Tensor colsTap = Tensor.of(tv, rows, ncols);
            Tensor want2 = Tensor.empty(m, ncols), got2 = Tensor.empty(m, ncols);
            Blas.gemm(1f, a, colsTap, 0f, want2);
            Conv.gemmLowered(1f, a, tap, false, 0f, got2);
            close(want2, got2, "Eq. 1, tap-major");
            close24(a, colsTap, tap, threads, "2:4 Eq. 1, tap-major");
        });
    }

    /**
     * Eq. 3 over a selection of im2col (the authors' random patterns: columns in no fixed stride, every other row for the
     * checkerboards) lowered while packing equals the GEMM on the selected columns of the materialised im2col: the
     * direct kernel and the packing GEMM (many output rows), planned (a gather plan) and row by row, accumulating into a
     * view, with columns in any order and an empty selection.
     */
    @Property(tries = 240)
    void selectedColumnsLowerLikeTheMaterialisedOnes(@ForAll @IntRange(min = 1, max = 4) int n, @ForAll @IntRange(min = 1, max = 7) int c,
                                                     @ForAll @IntRange(min = 1, max = 19) int h, @ForAll @IntRange(min = 1, max = 19) int w,
                                                     @ForAll @IntRange(min = 1, max = 3) int k, @ForAll @IntRange(min = 1, max = 2) int s,
                                                     @ForAll @IntRange(min = 0, max = 1) int p, @ForAll @IntRange(min = 1, max = 70) int m,
                                                     @ForAll @IntRange(min = 0, max = 2) int rowPick, @ForAll @IntRange(min = 0, max = 5) int keep,
                                                     @ForAll @IntRange(min = 1, max = 2) int threads, @ForAll boolean planned,
                                                     @ForAll @IntRange(min = 0, max = 2) int planPick, @ForAll boolean wideDirect,
                                                     @ForAll long seed) {
        if (h + 2 * p < k || w + 2 * p < k) return;
        int segBefore = Native.loweringSeg(-1), winBefore = Native.loweringWin(-1);
        // 0: window plans where each vector fits two 32-float windows; 1: segment plans for evenly stepping selections;
        // 2: gather plans only
        Native.loweringWin(planPick == 0 ? 1 : 0);
        Native.loweringSeg(planPick <= 1 ? 1 : 0);
        try {
        withSettings(threads, planned, wideDirect ? 70 : 32, 0, () -> {
            Rng r = new Rng(seed);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Lowering low = new Lowering(x, k, k, s, s, p, p);
            float[] cols = Conv.im2col(x, k, k, s, s, p, p).toFloatArray();
            int rows = low.rows(), all = low.cols();
            java.util.Random rnd = new java.util.Random(seed);
            // keep 0: none; 1: about half, ascending; 2: about half, shuffled; 3: all, shuffled; 4: odd columns; 5: the
            // authors' pattern 0 (columns 1, 3, 4, 6 of every 8): evenly stepping runs and runs of two
            java.util.List<Integer> sel = new java.util.ArrayList<>();
            for (int q = 0; q < all; q++)
                if (keep == 3 || (keep == 4 && q % 2 == 1) || (keep == 5 && AuthorsFixed24.keeps(0, q, 0))
                        || ((keep == 1 || keep == 2) && rnd.nextBoolean())) sel.add(q);
            if (keep == 2 || keep == 3) java.util.Collections.shuffle(sel, rnd);
            int[] pick = sel.stream().mapToInt(Integer::intValue).toArray();
            int row0 = rowPick == 2 ? 1 : 0, rstep = rowPick == 0 ? 1 : 2, nrows = rowPick == 0 ? rows : (rows - row0 + 1) / 2;
            if (nrows == 0) return;
            float[] b = new float[nrows * pick.length];
            for (int rr = 0; rr < nrows; rr++)
                for (int q = 0; q < pick.length; q++) b[rr * pick.length + q] = cols[(row0 + rr * rstep) * all + pick[q]];
            Tensor bm = Tensor.of(b, nrows, pick.length);
            Tensor g = r.normal(0, 1, m, pick.length);
            Tensor wide = r.normal(0, 1, m, nrows + 3), wide2 = wide.copy();
            float[] before = wide.toFloatArray();
            try (Tensor v1 = wide.slice(1, 1, 1 + nrows); Tensor v2 = wide2.slice(1, 1, 1 + nrows); Tensor bt = bm.t()) {
                Blas.gemm(1f, g, bt, 1f, v1);
                Conv.gemmLoweredAt(1f, g, low, pick, row0, rstep, nrows, 1f, v2);
                closeEq3(g, bm, v1.contiguous(), v2.contiguous(), "Eq. 3 over " + pick.length + " of " + all + " columns, rows " + row0 + " + " + rstep + "r");
            }
            float[] after = wide2.toFloatArray();
            for (int i = 0; i < m; i++)
                for (int j : new int[]{0, nrows + 1, nrows + 2})
                    assertEquals(before[i * (nrows + 3) + j], after[i * (nrows + 3) + j], "wrote outside the view");
            if (pick.length > 0) {
                int[] bad = pick.clone();
                bad[0] = all;
                assertThrows(IllegalArgumentException.class, () -> Conv.gemmLoweredAt(1f, g, low, bad, row0, rstep, nrows, 0f, Tensor.empty(m, nrows)));
            }
            assertThrows(IllegalArgumentException.class, () -> Conv.gemmLoweredAt(1f, g, low, pick, row0, rstep, nrows + 1, 0f, Tensor.empty(m, nrows + 1)));
        });
        } finally {
            Native.loweringSeg(segBefore);
            Native.loweringWin(winBefore);
        }
    }

    /**
     * Vertical stride 1 with "same" width (k odd, pad (k-1)/2, and the 1x1 case) or every other column: the lowering
     * copies whole runs of output rows of an image at once. Reference: the float64 im2col (Java loops, no native code), so a fault shared by the native
     * im2col and the lowering cannot hide; small planes (rows of 1-9 floats), h < k, many images per block.
     */
    @Property(tries = 160)
    void sameWidthGeometriesLowerLikeTheJavaIm2col(@ForAll @IntRange(min = 1, max = 6) int n, @ForAll @IntRange(min = 1, max = 5) int c,
                                                   @ForAll @IntRange(min = 1, max = 9) int h, @ForAll @IntRange(min = 1, max = 12) int w,
                                                   @ForAll @IntRange(min = 0, max = 2) int half, @ForAll @IntRange(min = 1, max = 3) int sw,
                                                   @ForAll @IntRange(min = 1, max = 40) int m,
                                                   @ForAll @IntRange(min = 1, max = 2) int threads, @ForAll boolean planned,
                                                   @ForAll long seed) {
        // vertical stride 1, horizontal stride sw: sw = 2 over an even-width plane is the half-K lowering (every other
        // column), which also copies whole runs of rows; other combinations take the row-by-row path
        int k = 2 * half + 1, p = half;
        withSettings(threads, planned, () -> {
            Rng r = new Rng(seed);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Lowering low = new Lowering(x, k, k, 1, sw, p, p);
            Tensor cols = Conv.im2col(x.to(fst4j.tensor.DType.F64), k, k, 1, sw, p, p).to(fst4j.tensor.DType.F32);
            Tensor a = r.normal(0, 1, m, low.rows());
            Tensor want = Tensor.empty(m, low.cols()), got = Tensor.empty(m, low.cols());
            Blas.gemm(1f, a, cols, 0f, want);
            Conv.gemmLowered(1f, a, low, false, 0f, got);
            close(want, got, "Eq. 1, " + n + "x" + c + "x" + h + "x" + w + " k" + k + " sw" + sw);
            Tensor g = r.normal(0, 1, m, low.cols());
            Tensor dw1 = Tensor.zeros(m, low.rows()), dw2 = Tensor.zeros(m, low.rows());
            try (Tensor ct = cols.t()) { Blas.gemm(1f, g, ct, 0f, dw1); }
            Conv.gemmLowered(1f, g, low, true, 0f, dw2);
            closeEq3(g, cols, dw1, dw2, "Eq. 3");
            close24(a, cols, low, threads, "2:4 Eq. 1");
        });
    }

    /**
     * Strided lowerings (vertical stride 1-3, horizontal 1-4: the stride-2 convolutions, their half-K lowering (4), narrow
     * output rows) through the planned lowering's segment plan and through its gather plan: the same bits (only the
     * staging differs), and equal to the float64 Java im2col's products. Output rows of 1-70 columns, so that a 16-column
     * vector spans up to five output rows (under 5 columns the gather plan takes over) and images, and at horizontal stride 4
     * a run reaches past the first 32 floats of its window.
     */
    @Property(tries = 120)
    void segmentPlanEqualsGatherPlan(@ForAll @IntRange(min = 1, max = 5) int n, @ForAll @IntRange(min = 1, max = 6) int c,
                                     @ForAll @IntRange(min = 3, max = 25) int h, @ForAll @IntRange(min = 3, max = 70) int w,
                                     @ForAll @IntRange(min = 1, max = 3) int k, @ForAll @IntRange(min = 1, max = 3) int sh,
                                     @ForAll @IntRange(min = 1, max = 4) int sw, @ForAll @IntRange(min = 0, max = 1) int p,
                                     @ForAll @IntRange(min = 1, max = 40) int m, @ForAll @IntRange(min = 1, max = 2) int threads,
                                     @ForAll long seed) {
        if (h + 2 * p < k || w + 2 * p < k) return;
        int seg = Native.loweringSeg(-1);
        withSettings(threads, true, () -> {
            try {
                Rng r = new Rng(seed);
                Tensor x = r.normal(0, 1, n, c, h, w);
                Lowering low = new Lowering(x, k, k, sh, sw, p, p);
                Tensor cols = Conv.im2col(x.to(fst4j.tensor.DType.F64), k, k, sh, sw, p, p).to(fst4j.tensor.DType.F32);
                Tensor a = r.normal(0, 1, m, low.rows()), g = r.normal(0, 1, m, low.cols());
                String what = n + "x" + c + "x" + h + "x" + w + " k" + k + " s" + sh + "/" + sw + " p" + p;
                float[][] eq1 = new float[2][], eq3 = new float[2][], sp = new float[2][];
                try (Compressed24 cw = Compressed24.pruneCompress(a, null, threads)) {
                    for (int mode = 0; mode <= 1; mode++) {
                        Native.loweringSeg(mode);
                        Tensor y = Tensor.empty(m, low.cols()), dw = Tensor.zeros(m, low.rows()), ys = Tensor.empty(m, low.cols());
                        Conv.gemmLowered(1f, a, low, false, 0f, y);
                        Conv.gemmLowered(1f, g, low, true, 0f, dw);
                        SparseGemm.spmmLowered(cw, low, 0f, ys);
                        eq1[mode] = y.toFloatArray(); eq3[mode] = dw.toFloatArray(); sp[mode] = ys.toFloatArray();
                        if (mode == 1) {
                            Tensor want = Tensor.empty(m, low.cols());
                            Blas.gemm(1f, a, cols, 0f, want);
                            close(want, y, "Eq. 1, " + what);
                            Tensor dwWant = Tensor.zeros(m, low.rows());
                            try (Tensor ct = cols.t()) { Blas.gemm(1f, g, ct, 0f, dwWant); }
                            closeEq3(g, cols, dwWant, dw, "Eq. 3, " + what);
                            Tensor spWant = Tensor.empty(m, low.cols());
                            try (Tensor d = cw.decompress()) { Blas.gemm(1f, d, cols, 0f, spWant); }
                            closeSparse(cw, cols, spWant, ys, "2:4 Eq. 1, " + what);
                        }
                    }
                }
                assertArrayEquals(eq1[0], eq1[1], "Eq. 1 bits, segments against gathers, " + what);
                assertArrayEquals(eq3[0], eq3[1], "Eq. 3 bits, segments against gathers, " + what);
                assertArrayEquals(sp[0], sp[1], "2:4 Eq. 1 bits, segments against gathers, " + what);
            } finally {
                Native.loweringSeg(seg);
            }
        });
    }

    /** What a check of a 3x3, pad-1 convolution is given: weight a, materialised im2col, its lowering, threads, setting. */
    private interface Conv3x3Check { void run(Tensor a, Tensor cols, Lowering low, int threads, String setting); }

    /**
     * Runs check on x [xShape] (c = xShape[1]) and a [m, c * 9], both drawn from Rng(seed), under every thread count (1, 2)
     * and lowering path (planned, row by row).
     */
    private static void everySetting(long seed, int m, int[] xShape, Conv3x3Check check) {
        for (int threads = 1; threads <= 2; threads++)
            for (boolean planned : new boolean[]{true, false}) {
                int t = threads;
                withSettings(threads, planned, () -> {
                    Rng r = new Rng(seed);
                    Tensor x = r.normal(0, 1, xShape), a = r.normal(0, 1, m, xShape[1] * 9);
                    check.run(a, Conv.im2col(x, 3, 1, 1), new Lowering(x, 3, 3, 1, 1, 1, 1), t, t + " threads, planned " + planned);
                });
            }
    }

    /** A layer whose compressed weight outgrows L2 (516 x 2340: 2.4 MB of values): column blocks grouped per K block. */
    @Test
    void largeWeightLoweredEqualsMaterialised() {
        everySetting(9, 516, new int[] {6, 260, 5, 5}, (a, cols, low, t, s) -> close24(a, cols, low, t, "516 x 2340 lowered, " + s));
    }

    /**
     * The compiled 2:4 product (Native.spmm24Jit, on by default) on a lowered B, planned and row by row, 1 and 2 threads,
     * against the materialised one (also compiled: SparseGemmTest checks it against the dense product); then against the
     * register kernel on both.
     */
    @Test
    void compiledProductLoweredEqualsMaterialised() {
        try {
            assertEquals(1, Native.spmm24Jit(-1));
            everySetting(13, 37, new int[] {3, 21, 27, 27}, (a, cols, low, t, s) -> {
                close24(a, cols, low, t, "compiled where it measured faster, 37 x 189 x 2187, " + s);
                Native.spmm24Jit(2);
                close24(a, cols, low, t, "compiled wherever it fits (staged lowerings too), 37 x 189 x 2187, " + s);
                Native.spmm24Jit(0);
                close24(a, cols, low, t, "register kernel 37 x 189 x 2187, " + s);
                Native.spmm24Jit(1);
            });
            // a staged lowering (9-column rows: not read from x) is compiled only in mode 2; K = 540 > any K block, so
            // the compiled code's bits differ from the register kernel's where it runs
            everySetting(15, 37, new int[] {26, 60, 9, 9}, (a, cols, low, t, s) -> {
                try (Compressed24 cw = Compressed24.pruneCompress(a, null, t)) {
                    Tensor want = Tensor.empty(37, cols.size(1)), def = Tensor.empty(37, cols.size(1));
                    Tensor all = Tensor.empty(37, cols.size(1)), reg = Tensor.empty(37, cols.size(1));
                    try (Tensor d = cw.decompress()) { Blas.gemm(1f, d, cols, 0f, want); }
                    SparseGemm.spmmLowered(cw, low, 0f, def);
                    Native.spmm24Jit(2);
                    SparseGemm.spmmLowered(cw, low, 0f, all);
                    Native.spmm24Jit(0);
                    SparseGemm.spmmLowered(cw, low, 0f, reg);
                    Native.spmm24Jit(1);
                    closeSparse(cw, cols, want, all, "compiled, staged 37 x 540 x 2106, " + s);
                    closeSparse(cw, cols, want, def, "default, staged 37 x 540 x 2106, " + s);
                    assertArrayEquals(reg.toFloatArray(), def.toFloatArray(), "a staged lowering takes the register kernel by default, " + s);
                    if (SparseGemm.isa().equals("avx512"))
                        assertFalse(java.util.Arrays.equals(reg.toFloatArray(), all.toFloatArray()), "mode 2 did not compile the staged product, " + s);
                }
            });
        } finally {
            Native.spmm24Jit(1);
        }
    }

    /**
     * The compiled product's convolution flavour (stride 1, "same" padding, output rows of 14-32 columns: x read from a
     * zero-padded copy, no lowering) against the dense product on the materialised im2col: one and two output rows per
     * 32-column piece (an odd number of rows), a 1x1 kernel with K = 7 (a padded group), a 5x5 kernel, both row orders,
     * 1 and 2 threads with the same bits; on an AVX-512 CPU its bits differ from the register kernel's where K > 512, so it
     * did run.
     */
    @Test
    void compiledConvolutionEqualsDense() {
        // n c h w k M (n h w: at least 2048 columns, where the default mode compiles); tap-major groups run channel group by
        // channel group where c % 4 == 0 (60, 64), in K order else;
        // 128 rows are compiled by default off AMD only (sparse.c's jit_conv_max)
        int[][] geo = {{3, 60, 27, 27, 3, 37}, {9, 5, 15, 16, 3, 13}, {8, 7, 9, 32, 1, 20}, {8, 21, 20, 14, 5, 64},
                {8, 64, 16, 16, 3, 64}, {11, 64, 14, 14, 3, 128}};
        boolean amd = fst4j.shim.Host.current().vendor().equals("AuthenticAMD");
        for (int[] gm : geo)
            for (boolean tapMajor : new boolean[] {false, true})
                withSettings(1, true, () -> {
                    int n = gm[0], c = gm[1], h = gm[2], w = gm[3], k = gm[4], m = gm[5], p = k / 2, kk = k * k, rows = c * kk, ncols = n * h * w;
                    String what = java.util.Arrays.toString(gm) + (tapMajor ? " tap-major" : "");
                    Rng r = new Rng(17L * c + h);
                    Tensor x = r.normal(0, 1, n, c, h, w), a = r.normal(0, 1, m, rows);
                    Tensor cols = Conv.im2col(x, k, 1, p);
                    if (tapMajor) {
                        float[] cv = cols.toFloatArray(), tv = new float[cv.length];
                        for (int ch = 0; ch < c; ch++)
                            for (int t = 0; t < kk; t++) System.arraycopy(cv, (ch * kk + t) * ncols, tv, (t * c + ch) * ncols, ncols);
                        cols = Tensor.of(tv, rows, ncols);
                    }
                    Lowering low = new Lowering(x, k, k, 1, 1, p, p, tapMajor);
                    try (Compressed24 cw = Compressed24.pruneCompress(a, null, 1)) {
                        Tensor want = Tensor.empty(m, ncols), one = Tensor.empty(m, ncols), two = Tensor.empty(m, ncols);
                        Blas.gemm(1f, cw.decompress(), cols, 0f, want);
                        Native.spmm24Jit(2);   // the most it compiles (128 rows only off AMD)
                        SparseGemm.spmmLowered(cw, low, 0f, one);
                        // relative to |S| |im2col| (K up to 540 terms: rounding in another order, not a wrong tap)
                        closeSparse(cw, cols, want, one, "compiled convolution " + what);
                        Blas.setThreads(2);
                        SparseGemm.spmmLowered(cw, low, 0f, two);
                        assertArrayEquals(one.toFloatArray(), two.toFloatArray(), "threads change the bits of " + what);
                        // (where the register kernel takes K in one block, up to 512 rows here, both sum in one order: same bits)
                        if (Native.isa().equals("avx512") && rows > 512) {
                            Tensor reg = Tensor.empty(m, ncols), def = Tensor.empty(m, ncols);
                            Native.spmm24Jit(0);
                            SparseGemm.spmmLowered(cw, low, 0f, reg);
                            Native.spmm24Jit(1);
                            SparseGemm.spmmLowered(cw, low, 0f, def);
                            long mk = (long) m * ((rows + 3) / 4 * 4);
                            boolean compiledByDefault = amd ? m <= 64 && mk <= 40960 : m <= 128 && mk <= 73728;
                            // mode 2: that, and v15's rule (at most 64 rows and 40960 entries)
                            if (compiledByDefault || (m <= 64 && mk <= 40960))
                                assertFalse(java.util.Arrays.equals(one.toFloatArray(), reg.toFloatArray()), "the compiled convolution did not run: " + what);
                            else assertArrayEquals(reg.toFloatArray(), one.toFloatArray(), "mode 2 should leave " + what + " to the register kernel");
                            assertArrayEquals(compiledByDefault ? one.toFloatArray() : reg.toFloatArray(), def.toFloatArray(),
                                    "default mode of " + what + " should " + (compiledByDefault ? "" : "not ") + "compile it");
                        }
                    } finally {
                        Native.spmm24Jit(1);
                    }
                });
    }

    /** On an AVX-512 CPU with the compiled product on, the shape of nchwOutputEqualsScatteredMatrix is written as NCHW. */
    @Test
    void nchwOutputIsWrittenWhereTheCompiledProductRuns() {
        org.junit.jupiter.api.Assumptions.assumeTrue(Native.isa().equals("avx512") && Native.spmm24Jit(-1) == 1, "no compiled 2:4 product on this CPU");
        withSettings(2, true, () -> {
            Rng r = new Rng(9);
            Tensor x = r.normal(0, 1, 3, 8, 28, 28), a = r.normal(0, 1, 12, 72);
            try (Compressed24 cw = Compressed24.pruneCompress(a, null, 1)) {
                assertTrue(SparseGemm.spmmLoweredNchw(cw, new Lowering(x, 3, 3, 1, 1, 1, 1), Tensor.empty(3, 12, 28, 28)),
                        "the compiled convolution should write NCHW here");
            }
        });
    }

    /**
     * SparseGemm.spmmLoweredNchw writes the NCHW output, equal to spmmLowered's [rows, n*L] matrix scattered, bit for bit,
     * in both row orders and on 1 and 2 threads: by the compiled convolution where it runs (AVX-512, at least 2048
     * columns), else, and with it switched off, by the register kernel storing each vector in its image (one image: 784
     * columns; and over several K blocks, 1152 deep, at 8x8); at 7x7 planes without the compiled product it returns false
     * and writes nothing; a wrong output shape is refused by name.
     */
    @Test
    void nchwOutputEqualsScatteredMatrix() {
        int jitBefore = Native.spmm24Jit(-1);
        try {
            for (int jit : new int[]{jitBefore, 0})
                for (boolean tapMajor : new boolean[]{false, true})
                    for (int threads : new int[]{1, 2})
                        withSettings(threads, true, () -> {
                            Native.spmm24Jit(jit);
                            for (int n : new int[]{3, 1}) {   // 2352 columns, and 784
                                int c = 8, h = 28, w = 28, m = 12, l = h * w;
                                Rng r = new Rng(5L + threads + n);
                                Tensor x = r.normal(0, 1, n, c, h, w), a = r.normal(0, 1, m, c * 9);
                                Lowering low = new Lowering(x, 3, 3, 1, 1, 1, 1, tapMajor);
                                String what = "jit mode " + jit + ", " + n + " images, tap-major " + tapMajor + ", threads " + threads;
                                try (Compressed24 cw = Compressed24.pruneCompress(a, null, 1)) {
                                    Tensor mat = Tensor.empty(m, n * l);
                                    SparseGemm.spmmLowered(cw, low, 0f, mat);
                                    float[] mv = mat.toFloatArray(), want = new float[n * m * l];
                                    for (int i = 0; i < n; i++) for (int row = 0; row < m; row++) System.arraycopy(mv, row * n * l + i * l, want, (i * m + row) * l, l);
                                    Tensor y = Tensor.full(Float.NaN, n, m, h, w);
                                    assertTrue(SparseGemm.spmmLoweredNchw(cw, low, y), what);
                                    assertArrayEquals(want, y.toFloatArray(), 0f, "NCHW output, " + what);
                                    assertThrows(IllegalArgumentException.class, () -> SparseGemm.spmmLoweredNchw(cw, low, Tensor.empty(n, m + 1, h, w)));
                                }
                            }
                            // the register kernel over several K blocks (K = 1152: each block adds to the stored vectors) at 8x8
                            if (jit == 0) {
                                Rng r = new Rng(13L + threads);
                                int n = 8, c = 128, m = 64;
                                Tensor x = r.normal(0, 1, n, c, 8, 8), a = r.normal(0, 1, m, c * 9);
                                Lowering low = new Lowering(x, 3, 3, 1, 1, 1, 1, tapMajor);
                                try (Compressed24 cw = Compressed24.pruneCompress(a, null, 1)) {
                                    Tensor mat = Tensor.empty(m, n * 64);
                                    SparseGemm.spmmLowered(cw, low, 0f, mat);
                                    float[] mv = mat.toFloatArray(), want = new float[n * m * 64];
                                    for (int i = 0; i < n; i++) for (int row = 0; row < m; row++) System.arraycopy(mv, row * n * 64 + i * 64, want, (i * m + row) * 64, 64);
                                    Tensor y = Tensor.full(Float.NaN, n, m, 8, 8);
                                    assertTrue(SparseGemm.spmmLoweredNchw(cw, low, y));
                                    assertArrayEquals(want, y.toFloatArray(), 0f, "NCHW output at K = 1152, tap-major " + tapMajor + ", threads " + threads);
                                }
                            }
                            // 7x7 planes (49 positions, vectors across images) without the compiled product: nothing written
                            if (jit == 0) {
                                Rng r = new Rng(11);
                                Tensor x = r.normal(0, 1, 4, 8, 7, 7), a = r.normal(0, 1, 12, 72), y = Tensor.full(Float.NaN, 4, 12, 7, 7);
                                try (Compressed24 cw = Compressed24.pruneCompress(a, null, 1)) {
                                    assertFalse(SparseGemm.spmmLoweredNchw(cw, new Lowering(x, 3, 3, 1, 1, 1, 1, tapMajor), y));
                                    for (float v : y.toFloatArray()) assertTrue(Float.isNaN(v), "nothing written at 7x7");
                                }
                            }
                        });
        } finally {
            Native.spmm24Jit(jitBefore);
        }
    }

    @Test
    void planIsUsedWhereTheCpuHasAvx512AndCanBeSwitched() {
        boolean plan = Native.loweringPlan(-1);
        try {
            assertFalse(Native.loweringPlan(0));
            assertEquals(Native.isa().equals("avx512"), Native.loweringPlan(1), "plan on an " + Native.isa() + " CPU");
        } finally {
            Native.loweringPlan(plan ? 1 : 0);
        }
    }

    @Test
    void rejectsMismatchAndNonContiguousInput() {
        try (Scope sc = Scope.open()) {
            Tensor x = new Rng(1).normal(0, 1, 2, 3, 5, 5);
            Lowering low = new Lowering(x, 3, 3, 1, 1, 1, 1);
            Tensor a = Tensor.empty(4, 26), c = Tensor.empty(4, 50);
            var e = assertThrows(IllegalArgumentException.class, () -> Conv.gemmLowered(1f, a, low, false, 0f, c));
            assertTrue(e.getMessage().contains("shape mismatch"), e.getMessage());
            try (Tensor xt = x.permute(0, 1, 3, 2)) {
                var e2 = assertThrows(IllegalArgumentException.class, () -> new Lowering(xt, 3, 3, 1, 1, 1, 1));
                assertTrue(e2.getMessage().contains("not contiguous"), e2.getMessage());
            }
            assertThrows(IllegalArgumentException.class, () -> new Lowering(x, 7, 7, 1, 1, 0, 0));
        }
    }
}
