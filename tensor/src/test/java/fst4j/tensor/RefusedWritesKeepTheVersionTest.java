package fst4j.tensor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A call that writes into a tensor given to it and is refused for its arguments writes nothing, so it leaves that
 * tensor's version (the autograd counter a saved value is checked against) where it was: the GEMMs, lowerings and
 * in-place ops counted the write before they checked their arguments, so a refused call still made a graph that had
 * saved the tensor refuse its backward.
 */
class RefusedWritesKeepTheVersionTest {

    /** call is refused with an IllegalArgumentException (or what) and out's version does not move. */
    static void assertRefusedUnchanged(Tensor out, Class<? extends Throwable> what, Executable call, String name) {
        int v = out.version();
        assertThrows(what, call, name);
        assertEquals(v, out.version(), name + ": a refused call moved the version of its output");
    }

    static void assertRefusedUnchanged(Tensor out, Executable call, String name) {
        assertRefusedUnchanged(out, IllegalArgumentException.class, call, name);
    }

    @Test
    void refusedCpuCallsLeaveTheVersion() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(1);
            Tensor a = r.normal(0, 1, 2, 3), b = r.normal(0, 1, 3, 4), c = Tensor.zeros(2, 5);
            assertRefusedUnchanged(c, () -> Blas.gemm(1f, a, b, 0f, c), "Blas.gemm into a [2, 5] for a [2, 4] product");
            Tensor good = Tensor.zeros(2, 4);
            int v = good.version();
            Blas.gemm(1f, a, b, 0f, good);
            assertTrue(good.version() > v, "a call that writes still counts it");

            // x [1, 1, 4, 4], 3x3 kernel, stride 1, no padding: K = 9 rows, L = 4 columns
            Tensor x = r.normal(0, 1, 1, 1, 4, 4), cols9x5 = Tensor.zeros(9, 5), dx = Tensor.zeros(1, 1, 4, 4);
            assertRefusedUnchanged(cols9x5, () -> Conv.im2colInto(x, 3, 3, 1, 1, 0, 0, cols9x5), "Conv.im2colInto");
            assertRefusedUnchanged(cols9x5, () -> Conv.im2col(x, 0, 3, 3, 1, 1, 0, 0, cols9x5), "Conv.im2col of one image");
            Tensor cols9x2 = Tensor.zeros(9, 2);
            assertRefusedUnchanged(cols9x2, () -> Conv.im2colAt(x, 0, new int[]{0, 9}, 3, 3, 1, 1, 0, 0, cols9x2), "Conv.im2colAt, position 9 of 4");
            Tensor cols9x3 = Tensor.zeros(9, 3);
            assertRefusedUnchanged(cols9x3, () -> Conv.im2colAtInto(x, new long[]{0, 2}, new int[]{0, 1}, 0, 1, 9, 3, 3, 1, 1, 0, 0, cols9x3),
                    "Conv.im2colAtInto into 3 columns for 2 positions");
            assertRefusedUnchanged(dx, () -> Conv.col2imInto(cols9x5, dx, 3, 3, 1, 1, 0, 0), "Conv.col2imInto");
            assertRefusedUnchanged(dx, () -> Conv.col2imAdd(cols9x5, dx, 0, 3, 3, 1, 1, 0, 0), "Conv.col2imAdd");
            Lowering low = new Lowering(x, 3, 3, 1, 1, 0, 0);
            Tensor w = r.normal(0, 1, 2, 9), c2x5 = Tensor.zeros(2, 5);
            assertRefusedUnchanged(c2x5, () -> Conv.gemmLowered(1f, w, low, false, 0f, c2x5), "Conv.gemmLowered");
            Tensor g = r.normal(0, 1, 2, 2), c2x8 = Tensor.zeros(2, 8);
            assertRefusedUnchanged(c2x8, () -> Conv.gemmLoweredAt(1f, g, low, new int[]{0, 1}, 0, 1, 9, 0f, c2x8), "Conv.gemmLoweredAt");
            Tensor block = r.normal(0, 1, 2, 8), out3 = Tensor.zeros(1, 2, 4);
            assertRefusedUnchanged(out3, () -> Conv.scatterImages(block, out3, 0, 2), "Conv.scatterImages of 2 images into 1");
            assertRefusedUnchanged(block, () -> Conv.gatherImages(out3, block, 0, 2), "Conv.gatherImages of 2 images from 1");

            Tensor wide = Tensor.zeros(4, 3), strided = wide.t(), a23 = r.normal(0, 1, 2, 3);
            assertRefusedUnchanged(wide, () -> Elementwise.zipInto(strided, a23.t(), a23.t(), Double::sum), "Elementwise.zipInto a non-contiguous out");
            Tensor out23 = Tensor.zeros(2, 3);
            assertRefusedUnchanged(out23, () -> Elementwise.zipInto(out23, r.normal(0, 1, 4), a23, Double::sum), "Elementwise.zipInto of a [4]");
            assertRefusedUnchanged(out23, () -> out23.addInPlace(r.normal(0, 1, 4)), "addInPlace of a [4] into a [2, 3]");
            assertRefusedUnchanged(out23, () -> out23.addInPlace(r.normal(0, 1, 4, 2, 3)), "addInPlace that would grow a");
            assertRefusedUnchanged(out23, () -> out23.copyFrom(r.normal(0, 1, 4)), "copyFrom of a [4] into a [2, 3]");

            Tensor bx = r.normal(0, 1, 2, 3, 2, 2), mean = Tensor.zeros(3), var = Tensor.ones(3);
            assertRefusedUnchanged(mean, () -> Norm.batchNorm2dTrain(bx, null, null, mean, var, 0.1, -1), "batchNorm2dTrain with eps -1: mean");
            assertRefusedUnchanged(var, () -> Norm.batchNorm2dTrain(bx, null, null, mean, var, 0.1, -1), "batchNorm2dTrain with eps -1: var");
        }
    }
}
