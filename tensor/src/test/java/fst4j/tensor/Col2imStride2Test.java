package fst4j.tensor;

import fst4j.shim.Native;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * col2im at stride 2 as a gather (col2im_avx512.c: each plane row written once) gives the scatter's bits: the same
 * contributions, in the same order, at every geometry; -0.0, NaN and infinities included. Both against a Java loop in
 * the scatter's order too, so that the runs without AVX-512 (the isa-avx2 / isa-generic executions) test the scatter.
 */
class Col2imStride2Test {
    @Property(tries = 150)
    void gatherEqualsScatterBitForBit(@ForAll @IntRange(min = 1, max = 3) int n, @ForAll @IntRange(min = 1, max = 4) int c,
                                      @ForAll @IntRange(min = 1, max = 41) int h, @ForAll @IntRange(min = 1, max = 41) int w,
                                      @ForAll @IntRange(min = 1, max = 7) int kh, @ForAll @IntRange(min = 1, max = 7) int kw,
                                      @ForAll @IntRange(min = 0, max = 3) int ph, @ForAll @IntRange(min = 0, max = 3) int pw,
                                      @ForAll boolean specials, @ForAll long seed) {
        compare(n, c, h, w, kh, kw, ph, pw, specials, seed);
    }

    /**
     * The models' geometries (3x3 pad 1 and 1x1 pad 0) at every plane width from 1 to 35, so each vector edge is crossed,
     * on 1 and on 2 threads (the larger ones split their planes over the threads).
     */
    @Test
    void modelGeometriesAtEveryWidth() {
        int threads = Blas.threads();
        try {
            for (int t = 1; t <= 2; t++) {
                Blas.setThreads(t);
                for (int w = 1; w <= 35; w++) {
                    compare(2, 3, w, w, 3, 3, 1, 1, false, w);
                    compare(2, 3, w + 1, w, 1, 1, 0, 0, true, 100 + w);
                }
                compare(4, 16, 28, 28, 3, 3, 1, 1, true, 7);   // 16 planes' worth of work per thread and more
            }
        } finally {
            Blas.setThreads(threads);
        }
    }

    /** A matrix with a row stride wider than its columns (a block of a larger buffer, as the blocked backward passes). */
    @Test
    void matrixRowsWiderThanTheBatch() {
        int n = 3, c = 2, h = 13, w = 18, k = 3, ho = Conv.outSize(h, k, 2, 1), wo = Conv.outSize(w, k, 2, 1), nl = n * ho * wo;
        try (Scope s = Scope.open()) {
            Tensor wide = Tensor.of(values(c * k * k * (nl + 37), 7, false), c * k * k, nl + 37);
            Tensor cols = wide.slice(1, 5, 5 + nl);
            boolean before = Native.col2imStride2(-1);
            try {
                assumeGather();
                Native.col2imStride2(0);
                Tensor want = Conv.col2imInto(cols, Tensor.empty(n, c, h, w), k, k, 2, 2, 1, 1);
                Native.col2imStride2(1);
                Tensor got = Conv.col2imInto(cols, Tensor.empty(n, c, h, w), k, k, 2, 2, 1, 1);
                assertBits(want, got, "strided matrix");
            } finally {
                Native.col2imStride2(before ? 1 : 0);
            }
        }
    }

    /** On where the CPU has AVX-512 or AVX2 (FST4J_ISA included), off on the baseline family. */
    @Test
    void onWhereTheCpuHasAvx512OrAvx2() {
        boolean before = Native.col2imStride2(-1);
        try {
            assertFalse(Native.col2imStride2(0));
            assertEquals(!Native.isa().equals("generic") && !"0".equals(System.getenv("FST4J_COL2IM_S2")), Native.col2imStride2(1));
        } finally {
            Native.col2imStride2(before ? 1 : 0);
        }
    }

    /**
     * The scatter against a Java loop in its order (NaN as NaN: the JIT may order an add's operands either way), and,
     * where the CPU has the gather, the gather against the scatter bit for bit, NaN payloads included.
     */
    private static void compare(int n, int c, int h, int w, int kh, int kw, int ph, int pw, boolean specials, long seed) {
        if (h + 2 * ph < kh || w + 2 * pw < kw) return;   // no output position
        int ho = Conv.outSize(h, kh, 2, ph), wo = Conv.outSize(w, kw, 2, pw);
        String at = n + "x" + c + "x" + h + "x" + w + " k" + kh + "x" + kw + " p" + ph + "," + pw;
        boolean before = Native.col2imStride2(-1);
        try (Scope s = Scope.open()) {
            float[] v = values(c * kh * kw * n * ho * wo, seed, specials);
            Tensor cols = Tensor.of(v, c * kh * kw, n * ho * wo);
            Native.col2imStride2(0);
            Tensor scatter = Conv.col2im(cols, new int[]{n, c, h, w}, kh, kw, 2, 2, ph, pw);
            float[] ref = scatterOrder(v, n, c, h, w, kh, kw, ph, pw, ho, wo), got = scatter.toFloatArray();
            for (int i = 0; i < ref.length; i++)
                if (!(Float.isNaN(ref[i]) && Float.isNaN(got[i])))
                    assertEquals(Float.floatToRawIntBits(ref[i]), Float.floatToRawIntBits(got[i]), at + ": scatter at " + i + ": " + ref[i] + " vs " + got[i]);
            if (Native.col2imStride2(1))
                assertBits(scatter, Conv.col2im(cols, new int[]{n, c, h, w}, kh, kw, 2, 2, ph, pw), at);
        } finally {
            Native.col2imStride2(before ? 1 : 0);
        }
    }

    /** col2im at stride 2 in the scatter's order: per plane from +0.0, tap rows, then tap columns, then positions. */
    private static float[] scatterOrder(float[] cols, int n, int c, int h, int w, int kh, int kw, int ph, int pw, int ho, int wo) {
        float[] dx = new float[n * c * h * w];
        int l = ho * wo, ld = n * l;
        for (int img = 0; img < n; img++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < kh; i++)
                    for (int jj = 0; jj < kw; jj++)
                        for (int oh = 0; oh < ho; oh++) {
                            int y = 2 * oh - ph + i;
                            if (y < 0 || y >= h) continue;
                            for (int ow = 0; ow < wo; ow++) {
                                int x = 2 * ow - pw + jj;
                                if (x >= 0 && x < w)
                                    dx[((img * c + ch) * h + y) * w + x] += cols[((ch * kh + i) * kw + jj) * ld + img * l + oh * wo + ow];
                            }
                        }
        return dx;
    }

    /** Where the CPU has neither AVX-512 nor AVX2 (or FST4J_ISA=generic) there is no gather to compare: skipped. */
    private static void assumeGather() {
        org.junit.jupiter.api.Assumptions.assumeTrue(Native.col2imStride2(1), "no stride-2 col2im gather on this CPU (" + Native.isa() + ")");
    }

    /**
     * Gaussian values with some zeros of either sign; with specials, NaN (Java's and x86's default NaN, whose payloads
     * differ: an add returns its first operand's, so the order of the operands shows) and infinities too.
     */
    private static float[] values(int n, long seed, boolean specials) {
        Random r = new Random(seed);
        float[] v = new float[n];
        float[] sp = specials ? new float[]{Float.NaN, Float.intBitsToFloat(0xffc00000), Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f}
                              : new float[]{-0f, 0f};
        for (int i = 0; i < n; i++) v[i] = r.nextInt(30) == 0 ? sp[r.nextInt(sp.length)] : (float) r.nextGaussian();
        return v;
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what);
        for (int i = 0; i < a.length; i++)
            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), what + " at " + i + ": " + a[i] + " vs " + b[i]);
    }
}
