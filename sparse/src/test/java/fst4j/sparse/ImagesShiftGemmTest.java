package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.Conv;
import fst4j.tensor.Lowering;
import fst4j.tensor.Rng;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Conv.gemmLoweredImagesShift (Eq. 7's half-K Eq. 3 with the IR shift computed while packing dY's images) against
 * HalfK.shiftGatherImages then Conv.gemmLowered, bit for bit: both shift directions, circular or not, coefficient 0 and
 * 0.3, alpha 0.7 and beta 0.3 on a random dW, K over one packed block (48 channels: 432 rows), 1 and 2 threads, the
 * packing GEMM and the direct kernel, 8x8, 12x12 and 16x16 planes.
 */
class ImagesShiftGemmTest {

    @Test
    void fusedShiftEqualsTheShiftedGather() {
        int threadsBefore = Blas.threads(), direct = Native.wgradDirectMax(-1);
        try {
            for (int side : new int[]{8, 12, 16})   // 12x12: 72 kept a plane, chunks of 1024 start mid-image
                for (int rows : new int[]{0, 1 << 20})
                    for (int threads : new int[]{1, 2})
                        for (int shift : new int[]{1, -1})
                            for (boolean circular : new boolean[]{false, true})
                                for (float coeff : new float[]{0f, 0.3f}) {
                                    Native.wgradDirectMax(rows);
                                    Blas.setThreads(threads);
                                    int n = side == 12 ? 16 : 5, c = 48, m = 24, l = side * side;   // 16 x 72 = 1152 kept: two chunks
                                    Rng r = new Rng(side * 31L + threads + shift);
                                    Tensor x = r.normal(0, 1, n, c, side, side), dy = r.normal(0, 1, n, m, l), dw0 = r.normal(0, 1, m, c * 9);
                                    Lowering kept = new Lowering(x, 3, 3, 1, 2, 1, 1);   // the kept (even) positions of an even-width plane
                                    Tensor want = dw0.copy(), got = dw0.copy();
                                    try (Tensor gk = HalfK.shiftGatherImages(dy, coeff, shift, circular, threads)) {
                                        Conv.gemmLowered(0.7f, gk, kept, true, 0.3f, want);
                                    }
                                    Conv.gemmLoweredImagesShift(0.7f, dy, coeff, shift, circular, kept, 0.3f, got);
                                    assertArrayEquals(want.toFloatArray(), got.toFloatArray(), 0f, side + "x" + side + ", direct rows " + rows
                                            + ", threads " + threads + ", shift " + shift + ", circular " + circular + ", coeff " + coeff);
                                }
        } finally {
            Blas.setThreads(threadsBefore);
            Native.wgradDirectMax(direct);
        }
    }

    @Test
    void refusesMismatchedShapesByName() {
        Rng r = new Rng(3);
        Tensor x = r.normal(0, 1, 2, 4, 8, 8), dy = r.normal(0, 1, 2, 6, 64), dw = Tensor.empty(6, 36);
        Lowering kept = new Lowering(x, 3, 3, 1, 2, 1, 1);
        // planes of 62 positions: 31 kept, not the lowering's 32
        assertThrows(IllegalArgumentException.class, () -> Conv.gemmLoweredImagesShift(1f, r.normal(0, 1, 2, 6, 62), 0.3f, 1, false, kept, 0f, dw));
        assertThrows(IllegalArgumentException.class, () -> Conv.gemmLoweredImagesShift(1f, dy, 0.3f, 2, false, kept, 0f, dw));
        assertThrows(IllegalArgumentException.class, () -> Conv.gemmLoweredImagesShift(1f, dy, Float.NaN, 1, false, kept, 0f, dw));
        assertThrows(IllegalArgumentException.class, () -> Conv.gemmLoweredImagesShift(1f, dy, 0.3f, 1, false, kept, 0f, Tensor.empty(7, 36)));
    }
}
