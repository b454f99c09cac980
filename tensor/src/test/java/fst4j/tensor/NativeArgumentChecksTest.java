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
        }
    }
}
