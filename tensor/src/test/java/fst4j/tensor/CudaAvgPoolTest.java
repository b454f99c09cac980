package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static fst4j.tensor.CudaCompare.assertSameBits;
import static fst4j.tensor.CudaCompare.randn;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Pool.avgPool2d and its backward on CUDA (kernels avg_pool, avg_pool_bwd) against the CPU loops, bit for bit: the same
 * double sums in the same order and the same divisors, and the backward's gather adds each window's share in the order
 * the CPU's scatter does. Fresh random data at awkward sizes, both divisor rules, windows in the padding, strided inputs,
 * NaN and infinities.
 */
class CudaAvgPoolTest extends CudaTensorTestBase {

    /** {n, c, h, w, kh, kw, sh, sw, ph, pw} */
    private static final int[][] CASES = {
            {3, 5, 17, 13, 3, 3, 2, 2, 1, 1},
            {2, 3, 11, 7, 2, 2, 2, 2, 0, 0},
            {1, 7, 9, 10, 3, 2, 1, 3, 1, 0},
            {2, 2, 5, 6, 5, 4, 3, 1, 2, 2},    // windows cut by the padding on every side, overlapping
            {1, 3, 1, 4, 2, 3, 3, 2, 2, 1},    // stride past the input: windows wholly in the padding (divisor 1 without count_pad)
            {1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
            {2, 1, 31, 29, 7, 5, 4, 3, 3, 2},
    };

    private Tensor pool(Tensor x, int[] c, boolean countPad) {
        return keep(Pool.avgPool2d(x, c[4], c[5], c[6], c[7], c[8], c[9], countPad));
    }

    private Tensor poolBackward(Tensor dy, int[] c, boolean countPad) {
        return keep(Pool.avgPool2dBackward(dy, new int[]{c[0], c[1], c[2], c[3]}, c[4], c[5], c[6], c[7], c[8], c[9], countPad));
    }

    @Test
    void forwardAndBackwardMatchTheCpuBitForBit() {
        Random r = new Random(61);
        for (int[] c : CASES)
            for (boolean countPad : new boolean[]{true, false}) {
                String what = java.util.Arrays.toString(c) + (countPad ? " count_include_pad" : " without padding in the divisor");
                Tensor x = keep(randn(r, c[0], c[1], c[2], c[3]));
                Tensor y = pool(x, c, countPad);
                assertSameBits(y, pool(gpu(x), c, countPad), "avg pool " + what);
                Tensor dy = keep(randn(r, y.shape()));
                assertSameBits(poolBackward(dy, c, countPad), poolBackward(gpu(dy), c, countPad), "avg pool backward " + what);
            }
    }

    @Test
    void stridedInputsAndNonFiniteValuesAsOnTheCpu() {
        Random r = new Random(62);
        int[] c = {3, 4, 13, 11, 3, 3, 2, 2, 1, 1};
        // x as a permuted view of an NHWC tensor: the CUDA path makes it contiguous first, as the CPU loop reads it strided
        Tensor nhwc = keep(randn(r, c[0], c[2], c[3], c[1]));
        float[] v = nhwc.toFloatArray();
        v[5] = Float.NaN; v[77] = Float.POSITIVE_INFINITY; v[300] = Float.NEGATIVE_INFINITY; v[301] = Float.POSITIVE_INFINITY;
        Tensor xh = keep(Tensor.of(v, nhwc.shape())), x = keep(xh.permute(0, 3, 1, 2));
        Tensor xd = keep(gpu(xh).permute(0, 3, 1, 2));
        assertFalse(xd.isContiguous());
        for (boolean countPad : new boolean[]{true, false}) {
            Tensor y = pool(x, c, countPad);
            assertSameBits(y, pool(xd, c, countPad), "avg pool of a permuted view with NaN / inf, countPad " + countPad);
            // dy a transposed view, with a NaN and an infinity
            Tensor dyt = keep(randn(r, c[0], c[1], y.shape()[3], y.shape()[2]));
            float[] g = dyt.toFloatArray();
            g[3] = Float.NaN; g[40] = Float.NEGATIVE_INFINITY;
            Tensor dyh = keep(Tensor.of(g, dyt.shape())), dy = keep(dyh.transpose(2, 3)), dyd = keep(gpu(dyh).transpose(2, 3));
            assertSameBits(poolBackward(dy, c, countPad), poolBackward(dyd, c, countPad), "avg pool backward of a strided dy, countPad " + countPad);
        }
    }

    @Test
    void emptyInputsAsOnTheCpu() {
        // no rows but padding: every window sums nothing, zeros of [1, 2, 1, 2]
        Tensor x = keep(Tensor.zeros(1, 2, 0, 3));
        Tensor y = keep(Pool.avgPool2d(x, 2, 2, 1, 1, 1, 0, false));
        assertArrayEquals(new int[]{1, 2, 1, 2}, y.shape());
        assertSameBits(y, keep(Pool.avgPool2d(gpu(x), 2, 2, 1, 1, 1, 0, false)), "avg pool of an empty plane");
        Tensor dy = keep(Tensor.ones(1, 2, 1, 2));
        Tensor dx = keep(Pool.avgPool2dBackward(gpu(dy), new int[]{1, 2, 0, 3}, 2, 2, 1, 1, 1, 0, false));
        assertArrayEquals(new int[]{1, 2, 0, 3}, dx.shape());
        // no images, no channels
        assertArrayEquals(new int[]{0, 3, 2, 2}, keep(Pool.avgPool2d(gpu(keep(Tensor.zeros(0, 3, 4, 4))), 2, 2, 0)).shape());
        assertArrayEquals(new int[]{2, 0, 2, 2}, keep(Pool.avgPool2d(gpu(keep(Tensor.zeros(2, 0, 4, 4))), 2, 2, 0)).shape());
    }

    @Test
    void badInputIsRefusedNamingTheProblem() {
        Tensor x = gpu(keep(randn(new Random(63), 2, 3, 8, 8)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Pool.avgPool2dBackward(gpu(keep(Tensor.zeros(2, 3, 4, 5))),
                new int[]{2, 3, 8, 8}, 2, 2, 0));
        assertTrue(e.getMessage().contains("avgPool2dBackward") && e.getMessage().contains("[2, 3, 4, 4]"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Pool.avgPool2d(x, 9, 1, 0));
        assertTrue(e.getMessage().contains("larger than padded input"), e.getMessage());
        Tensor d64 = keep(x.to(DType.F64));
        UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class, () -> Pool.avgPool2d(d64, 2, 2, 0));
        assertTrue(u.getMessage().contains("avgPool2d on CUDA supports float32 only"), u.getMessage());
    }
}
