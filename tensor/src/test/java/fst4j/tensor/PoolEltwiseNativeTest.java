package fst4j.tensor;

import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The C max pooling and whole-activation elementwise ops (pool.c) equal the Java loops bit for bit, on fresh
 * random data with NaN, infinities, -0.0 and ties sprinkled in, at generated (often awkward) shapes.
 */
class PoolEltwiseNativeTest {

    static float[] values(int n, long seed) {
        Random r = new Random(seed);
        float[] v = new float[n];
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f};
        for (int i = 0; i < n; i++) {
            int k = r.nextInt(40);
            v[i] = k == 0 ? specials[r.nextInt(specials.length)] : k < 6 ? (float) r.nextInt(3) : (float) r.nextGaussian();
        }
        return v;
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what + " shape");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        for (int i = 0; i < a.length; i++)
            assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]), what + " at " + i + ": " + a[i] + " vs " + b[i]);
    }

    @Property(tries = 60)
    void maxPoolEqualsJava(@ForAll @IntRange(min = 1, max = 3) int n, @ForAll @IntRange(min = 1, max = 5) int c,
                           @ForAll @IntRange(min = 1, max = 19) int h, @ForAll @IntRange(min = 1, max = 19) int w,
                           @ForAll @IntRange(min = 1, max = 4) int k, @ForAll @IntRange(min = 1, max = 3) int s,
                           @ForAll @IntRange(min = 0, max = 2) int p, @ForAll long seed) {
        compareMaxPool(n, c, h, w, k, s, Math.min(p, k / 2), seed);
    }

    /**
     * The 2x2 / stride 2 window has its own C loops (scalar, and 16 windows at a time on AVX-512, forward and backward):
     * every parity of H and W, widths past two vectors of windows, with NaN and infinities, both paths where there are two.
     */
    @Test
    void maxPool2x2Stride2EqualsJava() {
        boolean before = fst4j.shim.Native.maxPoolVector(-1);
        try {
            for (int vec = 0; vec <= 1; vec++) {
                fst4j.shim.Native.maxPoolVector(vec);
                for (int h = 2; h <= 7; h++)
                    for (int w = 2; w <= 7; w++) compareMaxPool(2, 3, h, w, 2, 2, 0, 100L * h + w);
                for (int w : new int[]{31, 32, 33, 34, 63, 65, 66}) compareMaxPool(2, 2, w % 5 + 4, w, 2, 2, 0, 7L * w);
            }
        } finally {
            fst4j.shim.Native.maxPoolVector(before ? 1 : 0);
        }
    }

    private static void compareMaxPool(int n, int c, int h, int w, int k, int s, int pad, long seed) {
        if (h + 2 * pad < k || w + 2 * pad < k) return;   // no output position
        try (Scope sc = Scope.open()) {
            Tensor x = Tensor.of(values(n * c * h * w, seed), n, c, h, w);
            Pool.nativePool = false;
            Pool.MaxPool2d j = Pool.maxPool2d(x, k, s, pad);
            Tensor dy = Tensor.of(values((int) j.output().numel(), seed + 1), j.output().shape());
            Tensor jdx = Pool.maxPool2dBackward(dy, j.indices(), x.shape());
            Pool.nativePool = true;
            Pool.MaxPool2d nat = Pool.maxPool2d(x, k, s, pad);
            Tensor ndx = Pool.maxPool2dBackward(dy, nat.indices(), x.shape());
            assertBits(j.output(), nat.output(), "max pool output");
            assertArrayEquals(j.indices().toArray(), nat.indices().toArray(), "argmax indices");
            assertBits(jdx, ndx, "max pool dx");
        } finally {
            Pool.nativePool = true;
        }
    }

    @Property(tries = 60)
    void adaptiveAvgPoolEqualsJava(@ForAll @IntRange(min = 1, max = 3) int n, @ForAll @IntRange(min = 1, max = 5) int c,
                                   @ForAll @IntRange(min = 1, max = 13) int h, @ForAll @IntRange(min = 1, max = 13) int w,
                                   @ForAll @IntRange(min = 1, max = 15) int oh, @ForAll @IntRange(min = 1, max = 15) int ow,
                                   @ForAll long seed) {
        compareAdaptiveAvgPool(n, c, h, w, oh, ow, seed);
    }

    /** The global pool of a ResNet head, large enough to be split over the shim's threads; and a 2x2 output of 7x7 (overlapping windows). */
    @Test
    void adaptiveAvgPoolAtModelShapesEqualsJava() {
        compareAdaptiveAvgPool(64, 64, 7, 7, 1, 1, 11);
        compareAdaptiveAvgPool(32, 48, 7, 7, 2, 2, 12);
    }

    private static void compareAdaptiveAvgPool(int n, int c, int h, int w, int oh, int ow, long seed) {
        try (Scope sc = Scope.open()) {
            // the input as a permuted view: both paths must read it through contiguous()
            Tensor x = Tensor.of(values(n * c * h * w, seed), c, n, h, w).permute(1, 0, 2, 3);
            Tensor dy = Tensor.of(values(n * c * oh * ow, seed + 1), n, c, oh, ow);
            Pool.nativePool = false;
            Tensor jy = Pool.adaptiveAvgPool2d(x, oh, ow), jdx = Pool.adaptiveAvgPool2dBackward(dy, x.shape());
            Pool.nativePool = true;
            Tensor ny = Pool.adaptiveAvgPool2d(x, oh, ow), ndx = Pool.adaptiveAvgPool2dBackward(dy, x.shape());
            assertBits(jy, ny, "adaptive average pool output");
            assertBits(jdx, ndx, "adaptive average pool dx");
        } finally {
            Pool.nativePool = true;
        }
    }

    @Test
    void maxPoolBackwardRejectsBadIndexInBothPaths() {
        try (Scope sc = Scope.open()) {
            Tensor dy = Tensor.of(values(2 * 3 * 4 * 4, 7), 2, 3, 4, 4);
            int[] idx = new int[2 * 3 * 4 * 4];
            idx[17] = 64;   // plane is 8x8: 64 is one past its end
            var e = assertThrows(IllegalArgumentException.class, () -> Pool.maxPool2dBackward(dy, idx, new int[]{2, 3, 8, 8}));
            assertTrue(e.getMessage().contains("index 64 out of range"), e.getMessage());
        }
    }

    @Property(tries = 40)
    void eltwiseEqualsJava(@ForAll @IntRange(min = 1, max = 5000) int len, @ForAll long seed) {
        try (Scope sc = Scope.open()) {
            Tensor a = Tensor.of(values(len, seed), len), b = Tensor.of(values(len, seed + 1), len);
            Elementwise.nativeOps = false;
            Tensor ja = Elementwise.add(a, b), jr = Elementwise.relu(a), jb = Elementwise.reluBackward(b, a);
            Elementwise.nativeOps = true;
            Tensor na = Elementwise.add(a, b), nr = Elementwise.relu(a), nb = Elementwise.reluBackward(b, a);
            assertBits(ja, na, "add");
            assertBits(jr, nr, "relu");
            assertBits(jb, nb, "relu backward");
        } finally {
            Elementwise.nativeOps = true;
        }
    }

    @Test
    void eltwiseNativePathIsTakenForLargeContiguousAndNotForViews() {
        try (Scope sc = Scope.open()) {
            Tensor a = Tensor.of(values(4096, 3), 64, 64);
            Tensor at = a.t();   // strided view: the Java loop must handle it and give the transposed relu
            Tensor r = Elementwise.relu(at);
            float[] src = a.toFloatArray(), got = r.toFloatArray();
            for (int i = 0; i < 64; i++)
                for (int j = 0; j < 64; j++) {
                    float v = src[j * 64 + i];
                    assertEquals(v > 0 || Float.isNaN(v) ? v : 0f, got[i * 64 + j]);   // NaN stays NaN, as PyTorch's
                }
        }
    }
}
