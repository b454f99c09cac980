package fst4j.tensor;

import fst4j.shim.Native;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The shim trusts the lengths it is given, so its Java wrappers check every segment against the sizes they pass, and the
 * C side refuses geometries and aliasing it cannot handle: an exception naming the problem, never a read past a buffer.
 * (Found by a read-only audit in session 44; before, each of these read or wrote out of bounds or returned garbage.)
 */
class NativeArgumentChecksTest {
    private static Tensor t(int... shape) {
        long n = 1;
        for (int d : shape) n *= d;
        float[] v = new float[(int) n];
        for (int i = 0; i < v.length; i++) v[i] = (float) Math.sin(i + 1.0);
        return Tensor.of(v, shape);
    }

    private static void refused(Runnable r, String... fragments) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        for (String f : fragments) assertTrue(e.getMessage().contains(f), "'" + f + "' not in: " + e.getMessage());
    }

    @Test
    void maxPoolWindowLargerThanThePlaneIsRefused() {
        try (Scope _ = Scope.open()) {
            // [1, 1, 1, 2], a 2x2 window at stride 2: (1 - 2) / 2 + 1 == 1 in C's truncating division, so only the window
            // check stops the 2x2 kernel reading a second row that does not exist
            Tensor x = t(1, 1, 1, 2), y = t(1, 1, 1, 1);
            refused(() -> Native.maxPool2d(x.data(), 1, 1, 2, 2, 2, 2, 2, 0, 0, 1, 1, y.data(), new int[1], 1), "fst_maxpool2d", "code -1");
            Tensor x2 = t(1, 1, 2, 1);
            refused(() -> Native.maxPool2d(x2.data(), 1, 2, 1, 2, 2, 2, 2, 0, 0, 1, 1, y.data(), new int[1], 1), "fst_maxpool2d", "code -1");
        }
    }

    @Test
    void shortSegmentsAreRefusedBeforeTheCall() {
        try (Scope _ = Scope.open()) {
            Tensor x = t(2, 3, 4, 4), small = t(2, 3, 4, 3), y = t(2, 3, 2, 2);
            refused(() -> Native.maxPool2d(small.data(), 6, 4, 4, 2, 2, 2, 2, 0, 0, 2, 2, y.data(), new int[24], 1), "maxPool2d", "x holds");
            refused(() -> Native.maxPool2dBackward(y.data(), new int[24], 6, 4, 4, 2, 2, small.data(), 1), "maxPool2dBackward", "dx holds");
            Tensor c3 = t(3), c2 = t(2), aff = Tensor.empty(DType.F64, 3, 2), out = t(2, 3, 4, 4);
            MemorySegment nul = MemorySegment.NULL;
            refused(() -> Native.bnTrain(small.data(), c3.data(), c3.data(), nul, nul, 2, 3, 16, 0.1, 1e-5, nul, out.data(), c3.data(),
                    c3.data(), nul, true, 1), "fst_bn_train", "x holds");
            refused(() -> Native.bnTrain(x.data(), c3.data(), c3.data(), nul, nul, 2, 3, 16, 0.1, 1e-5, nul, out.data(), c2.data(),
                    c3.data(), nul, true, 1), "fst_bn_train", "mean holds");
            refused(() -> Native.bnBackward(small.data(), x.data(), c3.data(), c3.data(), c3.data(), nul, nul, 2, 3, 16, out.data(),
                    c3.data(), c3.data(), nul, 1), "fst_bn_backward", "dy holds");
            refused(() -> Native.bnReluMaxPool2Backward(y.data(), new int[24], small.data(), c3.data(), c3.data(), c3.data(), aff.data(),
                    2, 3, 4, 4, out.data(), c3.data(), c3.data(), 1), "fst_bn_relu_maxpool2_backward", "x holds");
            refused(() -> Native.bnReluMaxPool2Train(x.data(), c3.data(), c3.data(), nul, nul, 2, 3, 4, 4, 0.1, 1e-5, y.data(), new int[24],
                    c3.data(), c2.data(), aff.data(), 1), "fst_bn_relu_maxpool2_train", "invStd holds");
        }
    }

    @Test
    void batchNormBackwardRefusesAMaskThatIsItsOwnOutput() {
        try (Scope _ = Scope.open()) {
            Tensor x = t(2, 3, 4, 4), dy = t(2, 3, 4, 4), dx = t(2, 3, 4, 4), c3 = t(3);
            MemorySegment nul = MemorySegment.NULL;
            // pass 1 writes the mask where pass 2 then writes dx: the caller would get dx back as the masked gradient
            refused(() -> Native.bnBackward(dy.data(), x.data(), c3.data(), c3.data(), c3.data(), nul, nul, 2, 3, 16, dx.data(),
                    c3.data(), c3.data(), dx.data(), 1), "fst_bn_backward", "code -1");
            // an overlap that is not the same start, with x
            refused(() -> Native.bnBackward(dy.data(), x.data(), c3.data(), c3.data(), c3.data(), nul, nul, 2, 3, 16, dx.data(),
                    c3.data(), c3.data(), x.data().asSlice(4), 1), "fst_bn_backward");
            // dy itself stays allowed (masked twice, the same values)
            Native.bnBackward(dy.data(), x.data(), c3.data(), c3.data(), c3.data(), nul, nul, 2, 3, 16, dx.data(), c3.data(), c3.data(),
                    dy.data(), 1);
        }
    }

    @Test
    void batchNormRefusesPlanesPastTwoToTheThirtyOne() {
        try (Scope _ = Scope.open()) {
            // a broadcast view: 2^32 + ... values that take no memory; H * W wrapped an int before
            Tensor x = Tensor.of(new float[]{1f}, 1, 1, 1, 1).expand(2, 1, 65537, 65537);
            Tensor g = t(1), b = t(1), rm = t(1), rv = t(1);
            refused(() -> Norm.batchNorm2dTrain(x, g, b, rm, rv, 0.1, 1e-5), "batch norm", "exceeds 2^31 - 1");
            refused(() -> Norm.batchNorm2dEval(x, g, b, rm, rv, 1e-5), "batch norm", "exceeds 2^31 - 1");   // CUDA's path took it unchecked
            // Eq. 2 / 3's operand of n * plane columns a row: the int product wrapped (CUDA then wrote past its block)
            Tensor dy = Tensor.of(new float[]{1f}, 1, 1, 1, 1).expand(5, 1, 32768, 32768);
            refused(() -> Conv.byChannel(dy, 5, 1, 32768 * 32768), "byChannel", "past 2^31 - 1");
        }
    }

    /** Eq. 3 of an empty batch on the lowered paths is the sum over no columns, as Blas.gemm's with K = 0; it was refused. */
    @Test
    void loweredWeightGradientOfAnEmptyBatchIsBetaTimesC() {
        try (Scope _ = Scope.open()) {
            Tensor x = Tensor.zeros(DType.F32, 0, 3, 5, 5);
            Lowering low = new Lowering(x, 3, 3, 1, 1, 1, 1);
            Tensor a = Tensor.zeros(DType.F32, 4, 0), c = t(4, 27), c0 = c.mul(1f);
            Conv.gemmLowered(1f, a, low, true, 0.5f, c);
            assertArrayEquals(c0.mul(0.5f).toFloatArray(), c.toFloatArray());
            Conv.gemmLoweredImages(1f, Tensor.zeros(DType.F32, 0, 4, 5, 5), low, 0f, c);
            assertArrayEquals(new float[4 * 27], c.toFloatArray());
            // and over a selection of rows (the authors' patterns' path), every other one of the 27
            Tensor c2 = t(4, 14), c2h = c2.mul(2f);
            Conv.gemmLoweredAt(1f, a, low, new int[0], 0, 2, 14, 2f, c2);
            assertArrayEquals(c2h.toFloatArray(), c2.toFloatArray());
        }
    }

    /** Found by the second audit of session 44: each of these divided by zero or read far outside x in C. */
    @Test
    void loweredSelectionsWithNothingOrWrappingRowsAreSafe() {
        try (Scope _ = Scope.open()) {
            Tensor x = t(1, 2, 4, 4), a = t(3, 4), c = t(3, 6);
            long[] g = {1, 2, 4, 4, 3, 3, 1, 1, 1, 1, 4, 4, 0};
            MemorySegment cols = Tensor.zeros(DType.F32, 4).data();   // some memory, never read with ncols = 0
            // no columns and no rows: nothing to do (it divided by zero: SIGFPE, the JVM gone)
            Native.sgemmLoweredAt(3, 1f, a.data(), 4, x.data(), g, cols, 0, 0, 1, 0, 0f, c.data(), 6, 1);
            // rows 0, 2^62, 2^63 of an 18-row im2col: the check's product wrapped negative and let them through
            refused(() -> Native.sgemmLoweredAt(3, 1f, a.data(), 4, x.data(), g, cols, 0, 0, 1L << 62, 3, 0f, c.data(), 6, 1),
                    "code -1");
        }
    }

    /** A NULL dense output leaves ldd unread (the C side ignores it): not refused for it. */
    @Test
    void pruneWithoutDenseOutputIgnoresItsLeadingDimension() {
        try (Scope _ = Scope.open()) {
            Tensor w = t(2, 8), v = Tensor.zeros(DType.F32, 2, 4), m = Tensor.zeros(DType.F32, 2, 1);
            Native.prune24Compress(2, 8, w.data(), 8, v.data(), m.data(), MemorySegment.NULL, 0, 1);
            refused(() -> Native.prune24Compress(2, 8, w.data(), 8, v.data(), m.data(), t(2, 7).data(), 8, 1), "dense holds");
        }
    }

    @Test
    void shiftAddRefusesPartlyOverlappingOutput() {
        try (Scope _ = Scope.open()) {
            Tensor dy = t(2, 16);
            // out one element past dy's start: out[j] would read dy[j + 1] after writing it
            refused(() -> Native.shiftAdd(dy.data(), dy.data().asSlice(4), 1, 16, 16, 1, 0.5f, false, 1), "code -1");
        }
    }
}
