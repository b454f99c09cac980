package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/** The native overhead kernels (prune.c) against their Java references, bit for bit. */
class NativePruneTest {

    private static final int[] AWKWARD = {1, 2, 3, 4, 5, 7, 17, 33, 64, 65, 70, 129};

    /** TestData values (ties and zeros half the time) with NaN, +-Inf and -0.0 sprinkled in. */
    static float[] nasty(int n, long seed) {
        float[] v = TestData.values(n, seed);
        if (n == 0) return v;
        Random r = new Random(seed ^ 0x5DEECE66DL);
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f, Float.intBitsToFloat(0x7fc00123)};
        int count = r.nextInt(4) == 0 ? 0 : r.nextInt(Math.max(1, n / 5) + 1);
        for (int i = 0; i < count; i++) v[r.nextInt(n)] = specials[r.nextInt(specials.length)];
        return v;
    }

    private static void assertSame24(Compressed24 want, Compressed24 got) {
        assertEquals(want.rows(), got.rows());
        assertEquals(want.k(), got.k());
        assertArrayEquals(want.values().toFloatArray(), got.values().toFloatArray(), "values");
        for (int r = 0; r < want.rows(); r++)
            for (int w = 0; w < want.metaWordsPerRow(); w++)
                assertEquals(want.metaWord(r, w), got.metaWord(r, w), "metadata word " + w + " of row " + r);
    }

    private static void checkPrune(int rows, int k, long seed, int threads) {
        try (Scope s = Scope.open()) {
            checkPrune(Tensor.of(nasty(rows * k, seed), rows, k), threads);
            checkPruneT(Tensor.of(nasty(rows * k, seed + 1), k, rows), threads);
            checkApply(Tensor.of(nasty(rows * k, seed + 2), rows, k));
            try (Tensor w = Tensor.of(nasty(rows * k, seed + 3), k, rows); Tensor wt = w.t()) { checkApply(wt); }   // a strided view
        }
    }

    private static void checkPrune(Tensor w, int threads) {
        int rows = w.size(0), k = w.size(1);
        try (Scope s = Scope.open()) {
            Tensor ref = Masks.applyOnHost(new Sparsifier.Magnitude24(1), w);
            Tensor dense = Tensor.empty(rows, k);
            try (Compressed24 want = Compressed24.compress(ref);
                 Compressed24 got = Compressed24.pruneCompress(w, dense, threads);
                 Compressed24 got2 = Compressed24.pruneCompress(w)) {
                assertSame24(want, got);
                assertSame24(want, got2);
                assertArrayEquals(ref.toFloatArray(), dense.toFloatArray(), "dense S(W)");
            }
        }
    }

    /** The sparsifiers' CPU fast path (the native prune, Masks.magnitude24Kernel) against the host selection, both axes. */
    private static void checkApply(Tensor w) {
        try (Scope s = Scope.open()) {
            for (Sparsifier sp : new Sparsifier[] { new Sparsifier.Magnitude24(1), new Sparsifier.Magnitude24(0),
                    new Sparsifier.SortMagnitude24(-1), new Sparsifier.SortMagnitude24(-2) })
                assertBits(Masks.applyOnHost(sp, w), sp.apply(w), sp.toString());
        }
    }

    private static void checkPruneT(int cout, int k, long seed, int threads) {
        try (Scope s = Scope.open()) {
            checkPruneT(Tensor.of(nasty(cout * k, seed), cout, k), threads);
        }
    }

    private static void checkPruneT(Tensor w, int threads) {
        try (Scope s = Scope.open()) {
            Tensor ref = Masks.applyOnHost(new Sparsifier.Magnitude24(0), w).t().contiguous();
            try (Compressed24 want = Compressed24.compress(ref);
                 Compressed24 got = Compressed24.pruneCompressTransposed(w, threads)) {
                assertSame24(want, got);
            }
        }
    }

    @Property(tries = 200)
    void pruneCompressEqualsJavaReference(@ForAll @IntRange(min = 0, max = 11) int ri, @ForAll @IntRange(min = 0, max = 75) int k,
                                          @ForAll @IntRange(min = 1, max = 2) int threads, @ForAll long seed) {
        checkPrune(AWKWARD[ri], k, seed, threads);
    }

    @Property(tries = 200)
    void pruneCompressTransposedEqualsJavaReference(@ForAll @IntRange(min = 0, max = 11) int ci, @ForAll @IntRange(min = 0, max = 140) int k,
                                                    @ForAll @IntRange(min = 1, max = 2) int threads, @ForAll long seed) {
        checkPruneT(AWKWARD[ci], k, seed, threads);
    }

    /** S(W^T) over several of the kernel's 256-column blocks (and a last partial one), Cout awkward, 1 and 2 threads. */
    @Test
    void pruneCompressTransposedOverSeveralBlocks() {
        long seed = 5;
        for (int cout : new int[]{1, 5, 33, 70, 129})
            for (int k : new int[]{257, 600, 1000})
                for (int threads = 1; threads <= 2; threads++) checkPruneT(cout, k, seed++, threads);
    }

    /**
     * The fixed patterns' native apply (fst_pattern24) against the host selection, bit for bit: Eq. 7's, and the
     * authors' four (two instances of one seed stepped alike, so each call draws the same pattern), along every axis of
     * tensors of rank 1-3 with awkward sizes, NaN and signed zeros (a pruned -0.0 or NaN must come out +0.0).
     */
    @Property(tries = 150)
    void fixedPatternsNativeEqualHostSelection(@ForAll @IntRange(min = 1, max = 3) int rank, @ForAll @IntRange(min = 0, max = 11) int a,
                                               @ForAll @IntRange(min = 0, max = 11) int b, @ForAll @IntRange(min = 0, max = 5) int c,
                                               @ForAll long seed) {
        int[] dims = { AWKWARD[a], AWKWARD[b], 1 + c };
        int[] shape = java.util.Arrays.copyOf(dims, rank);
        int n = 1;
        for (int d : shape) n *= d;
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(nasty(n, seed), shape);
            for (int axis = -rank; axis < rank; axis++) {
                Sparsifier f = new Sparsifier.Fixed24(axis);
                assertBits(Masks.applyOnHost(f, x), f.apply(x), f + " on " + java.util.Arrays.toString(shape));
                AuthorsFixed24 native_ = new AuthorsFixed24(axis, seed), host = new AuthorsFixed24(axis, seed);
                for (int call = 0; call < 6; call++) {
                    Tensor got = native_.apply(x), want = Masks.applyOnHost(host, x);
                    assertEquals(host.lastPattern(), native_.lastPattern());
                    assertBits(want, got, "authors' pattern " + native_.lastPattern() + " axis " + axis + " on " + java.util.Arrays.toString(shape));
                }
            }
        }
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what);
        float[] w = want.toFloatArray(), g = got.toFloatArray();
        for (int i = 0; i < w.length; i++)
            assertEquals(Float.floatToRawIntBits(w[i]), Float.floatToRawIntBits(g[i]), what + ": element " + i + " " + g[i] + " vs " + w[i]);
    }

    @Test
    void bigEnoughForThreadsAndEmpty() {
        checkPrune(131, 301, 1, 2);
        checkPrune(3, 12001, 2, 2);
        checkPruneT(130, 301, 3, 2);
        checkPruneT(17, 4099, 4, 2);
        checkPrune(0, 5, 5, 1);
        checkPrune(4, 0, 6, 1);
        checkPruneT(0, 9, 7, 2);
        checkPruneT(9, 0, 8, 2);
        // the fixed patterns over enough elements for both threads, and empty
        try (Scope s = Scope.open()) {
            for (int[] shape : new int[][] { { 129, 1031 }, { 7, 3001, 9 }, { 0, 5 }, { 5, 0, 3 } })
                for (int axis = 0; axis < shape.length; axis++) {
                    Tensor x = Tensor.of(nasty(java.util.Arrays.stream(shape).reduce(1, (p, q) -> p * q), axis + 11), shape);
                    Sparsifier f = new Sparsifier.Fixed24(axis);
                    assertBits(Masks.applyOnHost(f, x), f.apply(x), f + " on " + java.util.Arrays.toString(shape));
                    AuthorsFixed24 g = new AuthorsFixed24(axis, 3), h = new AuthorsFixed24(axis, 3);
                    for (int call = 0; call < 4; call++)
                        assertBits(Masks.applyOnHost(h, x), g.apply(x), "authors' on " + java.util.Arrays.toString(shape) + " call " + call);
                }
        }
    }

    @Test
    void aDenseOutputSharingMemoryWithWGetsSOfWAsItWasBeforeTheCall() {
        try (Scope s = Scope.open()) {
            // dense 8 elements ahead of w in one buffer: the kernel wrote elements of dense that it then read as w
            Tensor buf = Tensor.of(nasty(64 * 64 + 8, 21), 64 * 64 + 8), w = buf.slice(0, 0, 64 * 64).reshape(64, 64), dense = buf.slice(0, 8, 64 * 64 + 8).reshape(64, 64);
            Tensor wc = w.copy(), want = new Sparsifier.Magnitude24(1).apply(wc);
            try (Compressed24 c = Compressed24.pruneCompress(w, dense, 2); Compressed24 ref = Compressed24.compress(want)) {
                assertArrayEquals(want.toFloatArray(), dense.toFloatArray(), "S(W)");
                assertSame24(ref, c);
            }
            w = Tensor.of(nasty(64 * 64, 22), 64, 64);   // dense = w: pruned in place
            want = new Sparsifier.Magnitude24(1).apply(w);
            Compressed24.pruneCompress(w, w, 2).close();
            assertArrayEquals(want.toFloatArray(), w.toFloatArray(), "in place");
        }
    }

    @Test
    void tiesAndNaNFollowTheJavaRule() {
        try (Scope s = Scope.open()) {
            float nan = Float.NaN;
            Tensor w = Tensor.of(new float[]{1, -1, 1, 1, 0, 5, -5, 2, 3, nan, 0, nan, 7, -0f, 0, 0, -0f, 0, 4}, 1, 19);
            try (Compressed24 c = Compressed24.pruneCompress(w)) {
                // groups: {1,-1} kept at (0,1); {5,-5} at (1,2); {nan, nan} at (1,3); {7, -0} at (0,1); {-0, 0, 4, pad}
                // (decompress adds into +0, so the kept -0 entries come back as +0)
                assertArrayEquals(new float[]{1, -1, 0, 0, 0, 5, -5, 0, 0, nan, 0, nan, 7, 0, 0, 0, 0, 0, 4},
                        c.decompress().toFloatArray());
                assertEquals(-0f, c.values().toFloatArray()[7]);   // the kept -0 of group 3 is stored as is
                assertEquals(0 | 1 << 2, c.nibble(0, 0));
                assertEquals(1 | 2 << 2, c.nibble(0, 1));
                assertEquals(1 | 3 << 2, c.nibble(0, 2));
                assertEquals(0 | 1 << 2, c.nibble(0, 3));
                assertEquals(0 | 2 << 2, c.nibble(0, 4));   // kept -0 (index 0) is not a non-zero: fill rule gives (0, 2)
            }
            checkPrune(w, 1);
            checkPruneT(w, 1);
            checkPruneT(w.t().contiguous(), 2);
        }
    }

    @Property(tries = 200)
    void shiftGatherEqualsShiftAddThenGather(@ForAll @IntRange(min = 0, max = 11) int ri, @ForAll @IntRange(min = 1, max = 4) int images,
                                             @ForAll @IntRange(min = 1, max = 60) int seg, @ForAll boolean back, @ForAll boolean circular,
                                             @ForAll @IntRange(min = 0, max = 2) int coeffPick, @ForAll @IntRange(min = 1, max = 2) int threads,
                                             @ForAll long seed) {
        int rows = AWKWARD[ri], k = images * seg, shift = back ? -1 : 1;
        float coeff = new float[]{0f, 1f, 0.03f}[coeffPick];
        try (Scope s = Scope.open()) {
            Tensor dy = Tensor.of(nasty(rows * k, seed), rows, k);
            Tensor want = coeff == 0f ? HalfK.gatherKept(dy, seg)
                    : HalfK.gatherKept(Restoration.shiftAdd(dy, seg, coeff, shift, circular), seg);
            Tensor got = HalfK.shiftGather(dy, seg, coeff, shift, circular, threads);
            assertArrayEquals(want.shape(), got.shape());
            assertArrayEquals(want.toFloatArray(), got.toFloatArray());
        }
    }

    /** The shift read at arbitrary positions (the authors' kept columns) equals shiftAdd then those columns, exactly. */
    @Property(tries = 400)
    void shiftGatherAtEqualsShiftAddThenColumns(@ForAll @IntRange(min = 0, max = 11) int ri, @ForAll @IntRange(min = 1, max = 4) int images,
                                                @ForAll @IntRange(min = 1, max = 60) int seg, @ForAll boolean back, @ForAll boolean circular,
                                                @ForAll @IntRange(min = 0, max = 2) int coeffPick, @ForAll boolean strided, @ForAll boolean runs,
                                                @ForAll long seed) {
        int rows = AWKWARD[ri], k = images * seg, shift = back ? -1 : 1;
        float coeff = new float[]{0f, 1f, 0.03f}[coeffPick];
        try (Scope s = Scope.open()) {
            Tensor big = Tensor.of(nasty(rows * (k + 3), seed), rows, k + 3);
            Tensor dy = strided ? big.slice(1, 2, k + 2) : big.slice(1, 0, k).contiguous();   // in place, or a plain matrix
            java.util.Random rnd = new java.util.Random(seed);
            // random positions, or the whole-position patterns' every other position (by the global index, so the phase
            // flips per segment when seg is odd), a few dropped: runs of regular positions, broken at segment ends and gaps
            int phase = rnd.nextInt(2);
            int[] pos = runs ? java.util.stream.IntStream.range(0, k).filter(i -> i % 2 == phase && rnd.nextInt(20) > 0).toArray()
                    : java.util.stream.IntStream.range(0, k).filter(i -> rnd.nextInt(3) > 0).toArray();
            float[] full = (coeff == 0f ? dy.contiguous() : Restoration.shiftAdd(dy, seg, coeff, shift, circular)).toFloatArray();
            float[] got = HalfK.shiftGatherAt(dy, seg, pos, coeff, shift, circular).toFloatArray();
            assertEquals(rows * pos.length, got.length);
            for (int r = 0; r < rows; r++)
                for (int q = 0; q < pos.length; q++) assertEquals(full[r * k + pos[q]], got[r * pos.length + q], "row " + r + " position " + pos[q]);
            if (k > 0) {
                assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGatherAt(dy, seg, new int[]{k}, coeff, shift, circular));
                assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGatherAt(dy, seg, new int[]{-1}, coeff, shift, circular));
            }
        }
    }

    /**
     * The native top-k (meProp's unstructured rule) keeps exactly the host selection, bit for bit: ties, zeros, NaN
     * (several payloads), +-Inf and -0.0, every axis of a rank-3 tensor, ratios 0 to 1, one and two threads.
     */
    @Property(tries = 150)
    void topKNativeEqualsHostSelection(@ForAll @IntRange(min = 1, max = 7) int a, @ForAll @IntRange(min = 1, max = 40) int b,
                                       @ForAll @IntRange(min = 1, max = 6) int c, @ForAll @IntRange(min = 0, max = 2) int axis,
                                       @ForAll @IntRange(min = 0, max = 10) int tenths, @ForAll boolean big, @ForAll long seed) {
        // big: 70,000 elements or more, so that the kernel splits its lines over two threads
        int a2 = big ? a * 10 : a, b2 = big ? b * 50 + 200 : b;
        float[] v = nasty(a2 * b2 * c, seed);
        Random r = new Random(seed);
        for (int i = 0; i < v.length / 50; i++) v[r.nextInt(v.length)] = Float.intBitsToFloat(0xffc00000 | r.nextInt(1 << 22));   // negative NaNs
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(v, a2, b2, c);
            Sparsifier.TopK rule = new Sparsifier.TopK(axis, tenths / 10.0);
            float[] host = Masks.applyOnHost(rule, x).toFloatArray();
            Masks.Lines l = Masks.Lines.of(x.shape(), axis);
            int k = (int) Math.min(l.len(), Math.ceil(rule.ratio() * l.len()));
            Tensor nat = Tensor.empty(x.shape());
            Native.topK(x.data(), nat.data(), l.outer(), l.len(), l.inner(), k, 2);   // the kernel itself, not whatever apply picks
            float[] got = nat.toFloatArray(), viaApply = rule.apply(x).toFloatArray();
            for (int i = 0; i < host.length; i++) {
                // a kept quiet NaN keeps its bits on both paths (nasty() and the negative NaNs above are quiet)
                assertEquals(Float.floatToRawIntBits(host[i]), Float.floatToRawIntBits(got[i]), "element " + i + " of " + java.util.Arrays.toString(x.shape()));
                assertEquals(Float.floatToRawIntBits(host[i]), Float.floatToRawIntBits(viaApply[i]), "apply, element " + i);
            }
        }
    }

    @Test
    void topKLargeAndValidated() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(nasty(300 * 257, 9), 300, 257);   // big enough for both threads, lines of 300 along axis 0
            Sparsifier.TopK rule = new Sparsifier.TopK(0, 0.3);
            assertArrayEquals(Masks.applyOnHost(rule, x).toFloatArray(), rule.apply(x).toFloatArray());
            Tensor out = Tensor.empty(2, 3);
            Tensor m = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            assertThrows(IllegalArgumentException.class, () -> Native.topK(m.data(), out.data(), 2, 3, 1, 4, 1));    // k > len
            assertThrows(IllegalArgumentException.class, () -> Native.topK(m.data(), out.data(), 2, 3, 1, -1, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.topK(m.data(), m.data(), 2, 3, 1, 1, 1));    // in place
            Native.topK(m.data(), out.data(), 2, 3, 1, 1, 1);
            assertArrayEquals(new float[]{0, 0, 3, 0, 0, 6}, out.toFloatArray());
        }
    }

    @Test
    void shiftGatherLargeAndStrided() {
        try (Scope s = Scope.open()) {
            int rows = 70, seg = 49, k = 8 * seg;
            Tensor big = Tensor.of(nasty(rows * 2 * k, 11), rows, 2 * k);
            Tensor dy = big.slice(1, k, 2 * k);   // a non-contiguous view
            Tensor want = HalfK.gatherKept(Restoration.shiftAdd(dy, seg, 1f, 1, false), seg);
            assertArrayEquals(want.toFloatArray(), HalfK.shiftGather(dy, seg, 1f, 1, false, 2).toFloatArray());
            assertArrayEquals(HalfK.gatherKept(dy, seg).toFloatArray(), HalfK.shiftGather(dy, seg, 0f, -1, true).toFloatArray());
        }
    }

    @Test
    void argumentsAreValidated() {
        try (Scope s = Scope.open()) {
            Tensor v = Tensor.of(new float[]{1, 2, 3, 4}, 4);
            Tensor m = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor d = Tensor.of(new double[]{1, 2, 3, 4}, 2, 2);
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompress(v));
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompress(d));
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompressTransposed(d));
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompress(m, Tensor.empty(3, 2), 1));
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompress(m, null, 0));
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompressTransposed(m, 0));
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGather(m, 2, 1f, 1, false));
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGather(m, 3, 1f, 2, false));
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGather(v, 4, 1f, 1, false));
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGather(d, 2, 1f, 1, false));
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGather(m, 3, 1f, 1, false, 0));
            // the C side rejects what the Java side would never pass
            MemorySegment a = m.data();
            Tensor out = Tensor.empty(8);
            assertThrows(IllegalArgumentException.class, () -> Native.prune24Compress(2, 3, a, 2, out.data(), out.data(), MemorySegment.NULL, 0, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.prune24Compress(2, 3, MemorySegment.NULL, 3, out.data(), out.data(), MemorySegment.NULL, 0, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.prune24Compress(2, 3, a, 3, out.data(), out.data(), out.data(), 2, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.prune24CompressTransposed(2, 3, a, 3, out.data(), out.data(), 0));
            assertThrows(IllegalArgumentException.class, () -> Native.prune24CompressTransposed(-1, 3, a, 3, out.data(), out.data(), 1));
            assertThrows(IllegalArgumentException.class, () -> Native.shiftGather(a, out.data(), 2, 3, 2, 1, 1f, false, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.shiftGather(a, a, 2, 3, 3, 1, 1f, false, 1));
            assertThrows(IllegalArgumentException.class, () -> Native.shiftGather(a, out.data(), 2, 3, 3, 0, 1f, false, 1));
            // the authors' kept columns: positions out of range, a decreasing per-image list, rows past K, columns past N*Ho*Wo
            try (java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
                MemorySegment far = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 0, 3);
                assertThrows(IllegalArgumentException.class, () -> Native.shiftGatherAt(a, 3, out.data(), 2, 2, 3, 3, far, 2, 1, 1f, false, 1));
                assertThrows(IllegalArgumentException.class, () -> Native.shiftGatherAt(a, 2, out.data(), 2, 2, 3, 3, arena.allocateFrom(
                        java.lang.foreign.ValueLayout.JAVA_INT, 0, 1), 2, 1, 1f, false, 1));   // row stride < len
                Tensor x = Tensor.of(new float[]{1, 2, 3, 4, 5, 6, 7, 8}, 2, 1, 2, 2);   // 2 images, 1 channel, 2x2, 1x1 conv
                MemorySegment pos = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 0, 1, 2);
                MemorySegment down = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, 0, 2, 1);
                MemorySegment ok = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_LONG, 0, 2, 3);
                assertThrows(IllegalArgumentException.class, () -> Native.im2colAtCsr(x.data(), 2, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2, 2, down, pos, 0, 1, 1, out.data(), 3, 1));
                assertThrows(IllegalArgumentException.class, () -> Native.im2colAtCsr(x.data(), 2, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2, 2, ok, pos, 1, 1, 1, out.data(), 3, 1));
                assertThrows(IllegalArgumentException.class, () -> Native.im2colAtCsr(x.data(), 2, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2, 2, ok, pos, 0, 1, 1, out.data(), 2, 1));
                Native.im2colAtCsr(x.data(), 2, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2, 2, ok, pos, 0, 1, 1, out.data(), 3, 1);
                assertArrayEquals(new float[]{1, 2, 7}, java.util.Arrays.copyOf(out.toFloatArray(), 3));   // image 0: 0, 1; image 1: 2
                long[] g = {2, 1, 2, 2, 1, 1, 1, 1, 0, 0, 2, 2, 0};
                Tensor gk = Tensor.ones(1, 3), c = Tensor.zeros(1, 1);
                MemorySegment cols8 = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 0, 5, 8);
                assertThrows(IllegalArgumentException.class, () -> Native.sgemmLoweredAt(1, 1f, gk.data(), 3, x.data(), g, cols8, 3, 0, 1, 1, 0f, c.data(), 1, 1));
                MemorySegment cols = arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, 0, 5, 7);
                assertThrows(IllegalArgumentException.class, () -> Native.sgemmLoweredAt(1, 1f, gk.data(), 3, x.data(), g, cols, 3, 1, 1, 1, 0f, c.data(), 1, 1));
                assertThrows(IllegalArgumentException.class, () -> Native.sgemmLoweredAt(1, 1f, gk.data(), 3, x.data(), g, cols, 3, 0, 0, 1, 0f, c.data(), 1, 1));
                Native.sgemmLoweredAt(1, 1f, gk.data(), 3, x.data(), g, cols, 3, 0, 1, 1, 0f, c.data(), 1, 1);
                assertEquals(1 + 6 + 8, c.toFloatArray()[0]);   // columns 0, 5, 7 of im2col's one row: x[0], x[5], x[7]
            }
        }
    }

    /**
     * Eq. 2 as a convolution of dY: the transposed-convolution layout of W (taps reversed, tap-major) and S(W^T) in it
     * equal the Java reference built from Sparsifier.Magnitude24 along Cout, bit for bit (NaN, ties, zeros included).
     */
    @Property(tries = 60)
    void tconvLayoutsEqualTheReference(@ForAll @IntRange(min = 1, max = 24) int coutGroups, @ForAll @IntRange(min = 1, max = 9) int cin,
                                       @ForAll @IntRange(min = 1, max = 9) int kk, @ForAll @IntRange(min = 1, max = 2) int threads,
                                       @ForAll long seed) {
        checkTconvLayouts(4 * coutGroups, cin, kk, threads, seed);
    }

    /**
     * Cout a multiple of 32 (whole metadata words per tap): S(W^T) is written straight into A' rather than staged and
     * re-packed; K = Cin*kk within one 256-row block, and over several with a last partial one, on 1 and 2 threads.
     */
    @Test
    void tconvLayoutsWithWordAlignedTapsEqualTheReference() {
        long seed = 11;
        for (int cout : new int[]{32, 64, 96, 20, 36, 52})
            for (int[] ck : new int[][]{{1, 9}, {15, 9}, {8, 1}, {70, 1}, {40, 9}, {64, 9}, {300, 1}})
                for (int threads = 1; threads <= 2; threads++) checkTconvLayouts(cout, ck[0], ck[1], threads, seed++);
    }

    /**
     * A' on 2 threads: fst_tconv_weight splits its 64-channel blocks between threads only from 32768 elements and more
     * than one block, which the cases above never reach (and Conv.tconvWeight takes Blas.threads(), not their threads
     * argument). Here 3 blocks on 2 threads, the AVX-512 16 x 16 tiles with and without 16-channel tails.
     */
    @Test
    void tconvLayoutsOnTwoThreadsEqualTheReference() {
        int before = Blas.threads();
        Blas.setThreads(2);
        try {
            for (int cout : new int[]{48, 52}) checkTconvLayouts(cout, 150, 9, 2, 700 + cout);
        } finally {
            Blas.setThreads(before);
        }
    }

    /**
     * A' of a weight over 8 MB (ResNet-18's 512-channel layers: 512 x 512 x 3 x 3, and one with a 16-channel tail):
     * there the AVX-512 tiles go out by non-temporal stores, which no smaller case reaches; 1 and 2 threads, and the
     * pruned transposed layout of the same weight (whose prune prefetches rows ahead).
     */
    @Test
    void tconvLayoutsOfLargeWeightsEqualTheReference() {
        int before = Blas.threads();
        try {
            for (int threads = 1; threads <= 2; threads++) {
                Blas.setThreads(threads);
                checkTconvLayouts(512, 512, 9, threads, 900 + threads);
            }
            checkTconvLayouts(528, 500, 9, 2, 950);
        } finally {
            Blas.setThreads(before);
        }
    }

    private static void checkTconvLayouts(int cout, int cin, int kk, int threads, long seed) {
        int k = cin * kk;
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.of(nasty(cout * k, seed), cout, k);
            float[] wv = w.toFloatArray(), pruned = Masks.applyOnHost(new Sparsifier.Magnitude24(0), w).toFloatArray();   // S(W^T) as [Cout, K]
            float[] dense = new float[cin * kk * cout], sparse = new float[cin * kk * cout];
            for (int ci = 0; ci < cin; ci++)
                for (int t = 0; t < kk; t++)
                    for (int co = 0; co < cout; co++) {
                        dense[(ci * kk + t) * cout + co] = wv[co * k + ci * kk + kk - 1 - t];
                        sparse[(ci * kk + t) * cout + co] = pruned[co * k + ci * kk + kk - 1 - t];
                    }
            Tensor got = fst4j.tensor.Conv.tconvWeight(w, kk);
            assertArrayEquals(new int[]{cin, kk * cout}, got.shape());
            assertArrayEquals(dense, got.toFloatArray(), "A'");
            try (Compressed24 want = Compressed24.compress(Tensor.of(sparse, cin, kk * cout));
                 Compressed24 c = Compressed24.pruneCompressTconv(w, kk, threads)) {
                assertSame24(want, c);
            }
        }
    }

    @Test
    void tconvRejectsCoutNotAMultipleOf4AndTapMismatch() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.zeros(6, 18);
            var e = assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompressTconv(w, 9, 1));
            assertTrue(e.getMessage().contains("Cout % 4"), e.getMessage());
            Tensor w8 = Tensor.zeros(8, 20);
            assertThrows(IllegalArgumentException.class, () -> Compressed24.pruneCompressTconv(w8, 9, 1));
            assertThrows(IllegalArgumentException.class, () -> fst4j.tensor.Conv.tconvWeight(w8, 9));
        }
    }
}
