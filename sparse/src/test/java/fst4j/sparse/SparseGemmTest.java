package fst4j.sparse;

import fst4j.tensor.Blas;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class SparseGemmTest {
    private static final int[] SIZES = {1, 3, 4, 17, 36, 255, 1020};

    /** spmm against Blas.gemm on the decompressed operand. */
    private static void check(int m, int n, int k, int threads, long seed) {
        try (Scope s = Scope.open()) {
            Tensor a = new Sparsifier.Magnitude24(1).apply(Tensor.of(TestData.values(m * k, seed), m, k));
            Tensor b = Tensor.of(TestData.values(k * n, seed + 1), k, n);
            try (Compressed24 c = Compressed24.compress(a)) {
                Tensor dense = Tensor.empty(m, n);
                Blas.gemm(1f, c.decompress(), b, 0f, dense);
                Tensor out = Tensor.full(Float.NaN, m, n);
                SparseGemm.spmm(1f, c, b, 0f, out, threads);
                // relative to the size of the terms (|A| |B|), not of the result: a 1 x 1 output summing 1020 terms can
                // cancel to almost nothing, and then any change in the order of float additions is a large share of it
                Tensor scale = Blas.matmul(c.decompress().abs(), b.abs());
                double err = TestData.diffNorm(out.toFloatArray(), dense.toFloatArray()) / Math.max(TestData.norm(scale.toFloatArray()), 1e-30);
                assertTrue(err < 1e-5, "M=" + m + " N=" + n + " K=" + k + " threads=" + threads + ": error relative to |A||B| " + err);
            }
        }
    }

    @Property(tries = 60)
    void spmmMatchesDenseGemm(@ForAll @IntRange(min = 0, max = 6) int mi, @ForAll @IntRange(min = 0, max = 6) int ni,
                              @ForAll @IntRange(min = 0, max = 6) int ki, @ForAll @IntRange(min = 1, max = 2) int threads, @ForAll long seed) {
        check(SIZES[mi], SIZES[ni], SIZES[ki], threads, seed);
    }

    /**
     * C in the same memory as B (C = S B into B itself, square S) reads B from a copy: the kernel writes C while it still
     * reads B, which gave wrong values with no error. C in S's own memory is refused.
     */
    @Test
    void anOutputThatSharesMemoryWithItsInputs() {
        try (Scope s = Scope.open(); Compressed24 c = Compressed24.compress(new Sparsifier.Magnitude24(1).apply(
                Tensor.of(TestData.values(4096 * 4096, 21), 4096, 4096)))) {
            Tensor b = Tensor.of(TestData.values(4096 * 300, 22), 4096, 300);   // K past one K block of the kernel
            Tensor want = Tensor.empty(4096, 300);
            SparseGemm.spmm(1f, c, b, 0f, want, 2);
            Tensor inPlace = b.copy();
            SparseGemm.spmm(1f, c, inPlace, 0f, inPlace, 2);
            assertArrayEquals(want.toFloatArray(), inPlace.toFloatArray(), "C = S B into B");
            Tensor wide = Tensor.of(TestData.values(4096 * 600, 23), 4096, 600), shifted = wide.slice(1, 0, 300), out = wide.slice(1, 300, 600);
            Tensor w2 = Tensor.empty(4096, 300);
            SparseGemm.spmm(1f, c, shifted.contiguous(), 0f, w2, 2);
            SparseGemm.spmm(1f, c, shifted, 0f, out, 2);   // disjoint columns of one storage: rows interleave in memory
            assertArrayEquals(w2.toFloatArray(), out.toFloatArray(), "B and C interleaved in one storage");
            Tensor vals = c.values();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> SparseGemm.spmm(1f, c, Tensor.ones(4096, 1), 0f, vals.asStrided(new int[]{4096, 1}, new long[]{vals.strides()[0], 1}, vals.offset())));
            assertTrue(e.getMessage().contains("shares memory with the compressed S"), e.getMessage());
        }
    }

    @Test
    void awkwardSizesBothThreadCounts() {
        int[][] shapes = {{1, 1, 1}, {3, 17, 5}, {255, 36, 1020}, {17, 1020, 36}, {4, 255, 3}, {1020, 3, 17}, {36, 255, 1019}, {5, 130, 260}};
        for (int[] sh : shapes) for (int t = 1; t <= 2; t++) check(sh[0], sh[1], sh[2], t, 7L * sh[0] + sh[2]);
    }

    /**
     * A weight whose compressed values outgrow L2 (over 1 MB): the kernel then runs several column blocks per K block
     * and the threads take one column chunk each; uneven column counts give blocks of unequal width and a group cut
     * short at the end.
     */
    @Test
    void largeWeightsGroupColumnBlocks() {
        // the last two: S taller than B is wide (the threads then take row ranges), and 392 columns in 5 blocks of 80,
        // one group just over the slab budget
        int[][] shapes = {{255, 700, 4100}, {130, 333, 8196}, {61, 1500, 9000}, {2304, 300, 520}, {512, 392, 2600}};
        for (int[] sh : shapes) for (int t = 1; t <= 2; t++) check(sh[0], sh[1], sh[2], t, 11L * sh[0] + sh[1]);
        // one thread or two, column ranges or row ranges: every element sums its products in the same order
        for (int[] sh : new int[][] {{512, 392, 2600}, {255, 700, 4100}})
            try (Scope s = Scope.open(); Compressed24 c = Compressed24.compress(new Sparsifier.Magnitude24(1).apply(
                    Tensor.of(TestData.values(sh[0] * sh[2], 3), sh[0], sh[2])))) {
                Tensor b = Tensor.of(TestData.values(sh[2] * sh[1], 4), sh[2], sh[1]);
                Tensor one = Tensor.empty(sh[0], sh[1]), two = Tensor.empty(sh[0], sh[1]);
                SparseGemm.spmm(1f, c, b, 0f, one, 1);
                SparseGemm.spmm(1f, c, b, 0f, two, 2);
                assertArrayEquals(one.toFloatArray(), two.toFloatArray(), "threads change the bits at " + java.util.Arrays.toString(sh));
            }
        // the earlier blocking (one column block at a time) gives the same bits: each column's sums run in one order
        try (Scope s = Scope.open(); Compressed24 c = Compressed24.compress(new Sparsifier.Magnitude24(1).apply(
                Tensor.of(TestData.values(255 * 4100, 5), 255, 4100)))) {
            Tensor b = Tensor.of(TestData.values(4100 * 700, 6), 4100, 700);
            Tensor grouped = Tensor.empty(255, 700), plain = Tensor.empty(255, 700);
            SparseGemm.spmm(1f, c, b, 0f, grouped, 2);
            withSwitchOff(fst4j.shim.Native::spmm24Grouping, "grouping", () -> SparseGemm.spmm(1f, c, b, 0f, plain, 2));
            assertArrayEquals(plain.toFloatArray(), grouped.toFloatArray());
            // the software prefetch of this 2.1 MB S (on by default; it runs with the short K blocks of kblocks mode 0)
            // only moves data: the same bits without it
            Tensor prefetched = Tensor.empty(255, 700), noPrefetch = Tensor.empty(255, 700);
            withSwitchOff(fst4j.shim.Native::spmm24KBlocks, "L2-sized K blocks", () -> {
                SparseGemm.spmm(1f, c, b, 0f, prefetched, 2);
                withSwitchOff(fst4j.shim.Native::spmm24Prefetch, "S prefetch", () -> SparseGemm.spmm(1f, c, b, 0f, noPrefetch, 2));
            });
            assertArrayEquals(noPrefetch.toFloatArray(), prefetched.toFloatArray());
        }
        // the L1-sized K blocks (mode 0) and the L2-sized ones (default; S of at least 32 rows) both equal the dense
        // product on the decompressed S, at K over one block of either size and not a multiple of it, 1 and 2 threads
        Runnable kShapes = () -> {
            for (int t = 1; t <= 2; t++) {
                check(70, 300, 1030, t, 21); check(9, 97, 2310, t, 22); check(40, 97, 2310, t, 24); check(130, 40, 260, t, 23);
            }
        };
        withSwitchOff(fst4j.shim.Native::spmm24KBlocks, "L2-sized K blocks", kShapes);
        kShapes.run();
    }

    /**
     * The product compiled per call (sparse_jit.c; on by default, Native.spmm24Jit) against the dense product, where it
     * runs: B at least 2048 columns wide, S small. Awkward sizes: rows not a multiple of the 12-row register block, K not
     * a multiple of 4 (padded groups) nor of the 64-row K block, columns not a multiple of 32 or of the 256-column block;
     * beta 0, 1 and other values. Its bits do not depend on the thread count, and on an AVX-512 CPU they differ from the
     * register kernel's (other K blocks): the compiled code did run.
     */
    @Test
    void compiledProductMatchesDense() {
        assertEquals(1, fst4j.shim.Native.spmm24Jit(-1), "the compiled product is on by default");
        try {
            int[][] shapes = {{29, 2049, 37}, {64, 2100, 576}, {25, 2600, 130}, {24, 2048, 3}, {30, 2300, 1021}, {37, 4111, 260}};
            for (int[] sh : shapes) for (int t = 1; t <= 2; t++) check(sh[0], sh[1], sh[2], t, 31L * sh[0] + sh[2]);
            // Gaussian values (not TestData's small integers, whose sums are exact in any order)
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(41);
            try (Scope s = Scope.open(); Compressed24 c = Compressed24.compress(new Sparsifier.Magnitude24(1).apply(r.normal(0, 1, 64, 577)))) {
                Tensor b = r.normal(0, 1, 577, 2333), c0 = r.normal(0, 1, 64, 2333);
                for (float beta : new float[] {0f, 1f, -0.75f}) {
                    Tensor want = c0.copy(), one = c0.copy(), two = c0.copy();
                    Blas.gemm(0.5f, c.decompress(), b, beta, want);
                    SparseGemm.spmm(0.5f, c, b, beta, one, 1);
                    SparseGemm.spmm(0.5f, c, b, beta, two, 2);
                    assertArrayEquals(one.toFloatArray(), two.toFloatArray(), "threads change the compiled product's bits, beta " + beta);
                    float[] w = want.toFloatArray(), g = one.toFloatArray();
                    for (int i = 0; i < w.length; i++) assertEquals(w[i], g[i], 1e-4f * Math.max(1f, Math.abs(w[i])), "beta " + beta + " at " + i);
                }
                if (SparseGemm.isa().equals("avx512")) {
                    // 64 rows on a materialised B: compiled only where it fits (mode 2), not by default (mode 1)
                    Tensor jit = Tensor.empty(64, 2333), reg = Tensor.empty(64, 2333), def = Tensor.empty(64, 2333);
                    SparseGemm.spmm(1f, c, b, 0f, def, 2);
                    fst4j.shim.Native.spmm24Jit(2);
                    SparseGemm.spmm(1f, c, b, 0f, jit, 2);
                    fst4j.shim.Native.spmm24Jit(0);
                    SparseGemm.spmm(1f, c, b, 0f, reg, 2);
                    assertFalse(java.util.Arrays.equals(jit.toFloatArray(), reg.toFloatArray()), "the compiled product did not run");
                    assertArrayEquals(reg.toFloatArray(), def.toFloatArray(), "64 rows on a materialised B take the register kernel by default");
                }
            }
        } finally {
            fst4j.shim.Native.spmm24Jit(1);
        }
    }

    /** Runs body with one of the 2:4 product's A/B switches (on, 1, by default) set to 0, then sets it back to 1. */
    private static void withSwitchOff(java.util.function.IntUnaryOperator sw, String what, Runnable body) {
        assertEquals(1, sw.applyAsInt(-1), what + " is on by default");
        try {
            assertEquals(0, sw.applyAsInt(0));
            body.run();
        } finally {
            sw.applyAsInt(1);
        }
    }

    @Test
    void alphaBetaViewsAndNaN() {
        try (Scope s = Scope.open()) {
            int m = 9, n = 70, k = 22;
            Tensor a = new Sparsifier.Magnitude24(1).apply(Tensor.of(TestData.values(m * k, 1), m, k));
            Tensor bT = Tensor.of(TestData.values(k * n, 2), n, k);
            Tensor b = bT.t();                                   // non-contiguous view: copied
            Tensor wide = Tensor.of(TestData.values(m * (n + 5), 3), m, n + 5);
            Tensor c = wide.slice(1, 2, 2 + n);                  // ldc = n + 5
            Tensor expect = c.contiguous();
            try (Compressed24 sc = Compressed24.compress(a)) {
                Blas.gemm(2f, sc.decompress(), b, 0.5f, expect);
                SparseGemm.spmm(2f, sc, b, 0.5f, c, 2);
                assertTrue(TestData.relErr(c.contiguous().toFloatArray(), expect.toFloatArray()) < 1e-5);
                assertEquals(wide.get(0, 0), Tensor.of(TestData.values(m * (n + 5), 3), m, n + 5).get(0, 0), "outside columns untouched");
                Tensor out = SparseGemm.spmm(sc, b);
                Tensor ref = Blas.matmul(sc.decompress(), b);
                assertTrue(TestData.relErr(out.toFloatArray(), ref.toFloatArray()) < 1e-5);
                for (float v : out.toFloatArray()) assertFalse(Float.isNaN(v));
                assertThrows(IllegalArgumentException.class, () -> SparseGemm.spmm(sc, Tensor.ones(k + 1, 3)));
                assertThrows(IllegalArgumentException.class, () -> SparseGemm.spmm(1f, sc, Tensor.ones(k, 3), 0f, Tensor.empty(m, 4)));
                assertThrows(IllegalArgumentException.class, () -> SparseGemm.spmm(1f, sc, Tensor.ones(k, 3), 0f, Tensor.empty(3, m).t()));
            }
            assertTrue(java.util.Set.of("avx512", "avx2", "generic").contains(SparseGemm.isa()));
        }
    }

    @Test
    void closedOperandThrows() {
        try (Scope s = Scope.open()) {
            Compressed24 c = Compressed24.compress(Tensor.zeros(4, 8));
            c.close();
            assertThrows(IllegalStateException.class, () -> SparseGemm.spmm(c, Tensor.ones(8, 2)));
        }
    }

    /** A refused call writes nothing into its output, so it leaves the output's version (autograd's counter) where it was. */
    @Test
    void refusedCallsLeaveTheOutputsVersion() {
        try (Scope s = Scope.open(); Compressed24 c = Compressed24.pruneCompress(Tensor.of(TestData.values(2 * 8, 3), 2, 8))) {
            Tensor b = Tensor.of(TestData.values(8 * 3, 4), 8, 3), out = Tensor.zeros(2, 4);
            int v = out.version();
            assertThrows(IllegalArgumentException.class, () -> SparseGemm.spmm(1f, c, b, 0f, out));
            assertEquals(v, out.version(), "spmm into a [2, 4] for a [2, 3] product");
            fst4j.tensor.Lowering low = new fst4j.tensor.Lowering(Tensor.of(TestData.values(2 * 2 * 3 * 3, 5), 2, 2, 3, 3), 2, 2, 1, 1, 0, 0);   // K = 8
            assertThrows(IllegalArgumentException.class, () -> SparseGemm.spmmLowered(c, low, 0f, out));
            assertEquals(v, out.version(), "spmmLowered into a [2, 4] for a [2, 8] product");
            Tensor dense = Tensor.zeros(2, 4);
            int dv = dense.version();
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompress(Tensor.of(TestData.values(2 * 8, 6), 2, 8), dense, 1));
            assertEquals(dv, dense.version(), "pruneCompress with a dense output of another shape");
        }
    }
}
