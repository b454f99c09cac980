package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Ops that write a tensor given to them while they read another one that shares its memory: the result must be what
 * the op gives on separate copies of its inputs, bit for bit (before, several read elements they had already
 * overwritten and returned wrong values with no error).
 */
class OverlappingOutputsTest {
    private static Tensor random(Random r, int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        for (int i = 0; i < v.length; i++) v[i] = r.nextFloat() - 0.5f;
        return Tensor.of(v, shape);
    }

    private static Tensor arange(int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        for (int i = 0; i < v.length; i++) v[i] = i;
        return Tensor.of(v, shape);
    }

    @Test
    void copyFromAnOverlappingViewCopiesTheSourceAsItWasBeforeTheCall() {
        try (Scope s = Scope.open()) {
            // the shifted diagonal of a matrix: the strided loop read rows it had already written
            Tensor t = arange(4, 4), dst = t.slice(0, 1, 4).slice(1, 1, 4), src = t.slice(0, 0, 3).slice(1, 0, 3);
            float[] want = src.copy().toFloatArray();
            dst.copyFrom(src);
            assertArrayEquals(want, dst.toFloatArray(), "shifted diagonal");
            assertArrayEquals(new float[]{0, 1, 2, 3, 4, 0, 1, 2, 8, 4, 5, 6, 12, 8, 9, 10}, t.toFloatArray(), "the rest untouched");

            // one column shifted down, float32 and float64
            for (DType dt : DType.values()) {
                Tensor c = arange(6, 2).to(dt), down = c.slice(0, 1, 6).slice(1, 0, 1), up = c.slice(0, 0, 5).slice(1, 0, 1);
                down.copyFrom(up);
                assertArrayEquals(new double[]{0, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11}, c.toDoubleArray(), dt + " column");
            }

            // t = t^T, and a matrix big enough for the native copy (which declines shared storage)
            Tensor sq = arange(3, 3);
            sq.copyFrom(sq.t());
            assertArrayEquals(new float[]{0, 3, 6, 1, 4, 7, 2, 5, 8}, sq.toFloatArray(), "transpose into itself");
            Tensor big = random(new Random(3), 300, 300), bd = big.slice(0, 1, 300).slice(1, 1, 300), bs = big.slice(0, 0, 299).slice(1, 0, 299);
            want = bs.copy().toFloatArray();
            bd.copyFrom(bs);
            assertArrayEquals(want, bd.toFloatArray(), "large shifted diagonal");

            // contiguous views and a view onto itself were already right; they stay so
            Tensor v = arange(10);
            v.slice(0, 1, 10).copyFrom(v.slice(0, 0, 9));
            assertArrayEquals(new float[]{0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, v.toFloatArray(), "contiguous shift");
            v.copyFrom(v);
            assertArrayEquals(new float[]{0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, v.toFloatArray(), "onto itself");
        }
    }

    @Test
    void addInPlaceOfAnOverlappingViewAddsTheValuesBeforeTheCall() {
        try (Scope s = Scope.open()) {
            // large enough for the C loop, which wrote a on two threads while they read b one element ahead
            for (int n : new int[]{17, 4097, 1 << 16}) {
                Tensor t = random(new Random(n), n + 1), a = t.slice(0, 1, n + 1), b = t.slice(0, 0, n);
                float[] want = a.add(b).toFloatArray();
                a.addInPlace(b);
                assertArrayEquals(want, a.toFloatArray(), "a = t[1:], b = t[:-1], n = " + n);
                t = random(new Random(n), n + 1);
                a = t.slice(0, 0, n); b = t.slice(0, 1, n + 1);
                want = a.add(b).toFloatArray();
                a.addInPlace(b);
                assertArrayEquals(want, a.toFloatArray(), "a = t[:-1], b = t[1:], n = " + n);
            }
            Tensor a = random(new Random(2), 4096);
            float[] want = a.add(a).toFloatArray();
            a.addInPlace(a);
            assertArrayEquals(want, a.toFloatArray(), "a += a");
        }
    }

    @Test
    void zipIntoAnOutputThatOverlapsAnInputReadsTheInputBeforeTheCall() {
        try (Scope s = Scope.open()) {
            Tensor t = random(new Random(4), 101), out = t.slice(0, 1, 101), a = t.slice(0, 0, 100), b = random(new Random(5), 100);
            float[] want = a.sub(b).toFloatArray();
            Elementwise.zipInto(out, a, b, (x, y) -> x - y);
            assertArrayEquals(want, out.toFloatArray(), "contiguous");
            // broadcast and strided: a column of t read while its rows are written
            Tensor m = random(new Random(6), 5, 5), col = m.slice(1, 0, 1).slice(0, 0, 4), dst = m.slice(0, 1, 5);
            want = col.mul(b.slice(0, 0, 5)).toFloatArray();
            Elementwise.zipInto(dst, col, b.slice(0, 0, 5), (x, y) -> x * y);
            assertArrayEquals(want, dst.toFloatArray(), "broadcast column");
        }
    }

    /** The convolution lowerings into an output that shares one buffer with their input: x is [1, 2, 10, 10], 3x3 pad 1. */
    @Test
    void loweringsIntoAnOutputThatOverlapsTheirInputReadTheInputBeforeTheCall() {
        int[] xs = {1, 2, 10, 10};
        int[] all = new int[100];
        for (int i = 0; i < all.length; i++) all[i] = i;
        for (boolean javaLoops : new boolean[]{false, true}) {
            boolean before = Conv.nativeLowering;
            Conv.nativeLowering = !javaLoops;
            String how = javaLoops ? " (Java loops)" : "";
            try (Scope s = Scope.open()) {
                Tensor buf = random(new Random(8), 4000), x = buf.slice(0, 0, 200).reshape(xs), out = buf.slice(0, 100, 1900).reshape(18, 100);
                Tensor want = Conv.im2col(x.copy(), 3, 3, 1, 1, 1, 1);
                Conv.im2colInto(x, 3, 3, 1, 1, 1, 1, out);
                assertArrayEquals(want.toFloatArray(), out.toFloatArray(), "im2colInto" + how);

                buf = random(new Random(9), 4000); x = buf.slice(0, 0, 200).reshape(xs); out = buf.slice(0, 100, 1900).reshape(18, 100);
                want = Conv.im2col(x.copy(), 3, 3, 1, 1, 1, 1);
                Conv.im2col(x, 0, 3, 3, 1, 1, 1, 1, out);
                assertArrayEquals(want.toFloatArray(), out.toFloatArray(), "im2col of one image" + how);

                buf = random(new Random(10), 4000); x = buf.slice(0, 0, 200).reshape(xs); out = buf.slice(0, 100, 1900).reshape(18, 100);
                want = Conv.im2col(x.copy(), 3, 3, 1, 1, 1, 1);
                Conv.im2colAt(x, 0, all, 3, 3, 1, 1, 1, 1, out);
                assertArrayEquals(want.toFloatArray(), out.toFloatArray(), "im2colAt of one image" + how);

                buf = random(new Random(11), 4000); x = buf.slice(0, 0, 200).reshape(xs); out = buf.slice(0, 100, 1900).reshape(18, 100);
                want = Conv.im2col(x.copy(), 3, 3, 1, 1, 1, 1);
                Conv.im2colAtInto(x, new long[]{0, 100}, all, 0, 1, 18, 3, 3, 1, 1, 1, 1, out);
                assertArrayEquals(want.toFloatArray(), out.toFloatArray(), "im2colAtInto" + how);

                buf = random(new Random(12), 4000);
                Tensor cols = buf.slice(0, 0, 1800).reshape(18, 100), dx = buf.slice(0, 50, 250).reshape(xs);
                want = Conv.col2im(cols.copy(), xs, 3, 3, 1, 1, 1, 1);
                Conv.col2imInto(cols, dx, 3, 3, 1, 1, 1, 1);
                assertArrayEquals(want.toFloatArray(), dx.toFloatArray(), "col2imInto" + how);

                buf = random(new Random(13), 4000);
                cols = buf.slice(0, 0, 1800).reshape(18, 100); dx = buf.slice(0, 50, 250).reshape(xs);
                want = dx.copy();
                Conv.col2imAdd(cols.copy(), want, 0, 3, 3, 1, 1, 1, 1);
                Conv.col2imAdd(cols, dx, 0, 3, 3, 1, 1, 1, 1);
                assertArrayEquals(want.toFloatArray(), dx.toFloatArray(), "col2imAdd" + how);
            } finally {
                Conv.nativeLowering = before;
            }
        }
    }

    @Test
    void loweredGemmsIntoAnOutputThatOverlapsAnOperandReadTheOperandBeforeTheCall() {
        try (Scope s = Scope.open()) {
            Random r = new Random(14);
            int[] cols = new int[256];
            for (int i = 0; i < cols.length; i++) cols[i] = i;
            // c is x's memory: Eq. 1 of a 64-channel 3x3 convolution written over its own input
            Tensor x = random(r, 1, 64, 16, 16), a = random(r, 64, 576), want = Tensor.zeros(64, 256);
            Conv.gemmLowered(1f, a, new Lowering(x.copy(), 3, 3, 1, 1, 1, 1), false, 0f, want);
            Tensor c = x.reshape(64, 256);
            Conv.gemmLowered(1f, a, new Lowering(x, 3, 3, 1, 1, 1, 1), false, 0f, c);
            assertArrayEquals(want.toFloatArray(), c.toFloatArray(), "gemmLowered, c = x");

            // c holds a in its first rows (a 1x1 convolution)
            Tensor buf = random(r, 64 * 256), a2 = buf.slice(0, 0, 64 * 64).reshape(64, 64), x2 = random(r, 1, 64, 16, 16);
            want = Tensor.zeros(64, 256);
            Conv.gemmLowered(1f, a2.copy(), new Lowering(x2, 1, 1, 1, 1, 0, 0), false, 0f, want);
            c = buf.reshape(64, 256);
            Conv.gemmLowered(1f, a2, new Lowering(x2, 1, 1, 1, 1, 0, 0), false, 0f, c);
            assertArrayEquals(want.toFloatArray(), c.toFloatArray(), "gemmLowered, c over a");

            x = random(r, 1, 64, 16, 16);
            Tensor a3 = random(r, 64, 256);
            want = Tensor.zeros(64, 256);
            Conv.gemmLoweredAt(1f, a3, new Lowering(x.copy(), 3, 3, 1, 1, 1, 1), cols, 0, 2, 256, 0f, want);
            c = x.reshape(64, 256);
            Conv.gemmLoweredAt(1f, a3, new Lowering(x, 3, 3, 1, 1, 1, 1), cols, 0, 2, 256, 0f, c);
            assertArrayEquals(want.toFloatArray(), c.toFloatArray(), "gemmLoweredAt, c = x");
        }
    }

    @Test
    void imageScatterAndGatherBetweenOverlappingBuffersCopyTheSourceAsItWasBeforeTheCall() {
        try (Scope s = Scope.open()) {
            // Cout 4, L 100, two images at 1 of a [3, 4, 100] that starts 7 elements into the block's buffer
            Tensor buf = random(new Random(15), 4000), block = buf.slice(0, 0, 800).reshape(4, 200), out3 = buf.slice(0, 7, 1207).reshape(3, 4, 100);
            Tensor want = out3.copy();
            Conv.scatterImages(block.copy(), want, 1, 2);
            Conv.scatterImages(block, out3, 1, 2);
            assertArrayEquals(want.toFloatArray(), out3.toFloatArray(), "scatterImages");

            buf = random(new Random(16), 4000);
            Tensor dy3 = buf.slice(0, 0, 1200).reshape(3, 4, 100), into = buf.slice(0, 407, 1207).reshape(4, 200);
            want = into.copy();
            Conv.gatherImages(dy3.copy(), want, 1, 2);
            Conv.gatherImages(dy3, into, 1, 2);
            assertArrayEquals(want.toFloatArray(), into.toFloatArray(), "gatherImages");
        }
    }

    @Test
    void overlapsComparesTheMemoryTheViewsSpan() {
        try (Scope s = Scope.open()) {
            Tensor t = arange(4, 4);
            assertTrue(t.slice(0, 0, 2).overlaps(t.slice(0, 1, 3)));
            assertFalse(t.slice(0, 0, 2).overlaps(t.slice(0, 2, 4)), "disjoint rows");
            assertTrue(t.slice(1, 0, 1).overlaps(t.slice(1, 1, 2)), "interleaved columns count");
            assertFalse(t.slice(0, 1, 1).overlaps(t), "an empty view");
            assertFalse(t.overlaps(arange(4, 4)), "other storage");
        }
    }
}
