package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static fst4j.tensor.BadInputTest.fails;
import static org.junit.jupiter.api.Assertions.*;

/**
 * Sizes, strides and geometries whose int or long arithmetic wraps: each is rejected with a message before a native
 * kernel sees the wrapped size (before, they allocated a few bytes for a huge tensor, built views past their storage,
 * or sized an im2col buffer 2^32 rows too small, and the shim then read or wrote outside them).
 */
class OverflowingSizesTest {
    @Test
    void tensorsWhoseByteSizeOverflowsAreRejected() {
        // numel fits a long, numel * 4 (or 8) is 2^64: it wrapped to a 0-byte storage that relu() then ran 2^62 floats over
        fails(IllegalArgumentException.class, "too large", () -> Tensor.empty(DType.F32, 1 << 30, 1 << 30, 4));
        fails(IllegalArgumentException.class, "too large", () -> Tensor.zeros(DType.F32, 1 << 30, 1 << 30, 4));
        fails(IllegalArgumentException.class, "too large", () -> Tensor.empty(DType.F64, 1 << 30, 1 << 30, 2));
        fails(IllegalArgumentException.class, "too large", () -> Tensor.empty(Device.CUDA, DType.F32, 1 << 30, 1 << 30, 4));
    }

    @Test
    void asStridedWithWrappingStridesIsRejected() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.zeros(40000);
            // (2 - 1) * 2^62 elements * 4 bytes wraps to 0: the view passed, and the native copy read outside the storage
            fails(IndexOutOfBoundsException.class, "past the storage", () -> a.asStrided(new int[]{2, 40000}, new long[]{1L << 62, 0}, 0));
            fails(IndexOutOfBoundsException.class, "past the storage", () -> a.asStrided(new int[]{3}, new long[]{Long.MAX_VALUE / 2 + 1}, 0));
            fails(IndexOutOfBoundsException.class, "past the storage", () -> a.asStrided(new int[]{2}, new long[]{1}, Long.MAX_VALUE - 1));
            // the largest valid view still passes
            assertEquals(40000, a.asStrided(new int[]{2, 20000}, new long[]{20000, 1}, 0).numel());
            var seg = a.storage.segment();
            fails(IndexOutOfBoundsException.class, "outside a storage", () -> StridedCopy.copy(seg, 0, new int[]{2, 40000}, new long[]{1L << 62, 0},
                    seg, 0, new long[]{0, 1}));
        }
    }

    @Test
    void sliceWithAStepBeyondItsRangeKeepsTheFirstElement() {
        try (Scope s = Scope.open()) {
            // (10 + (2^31 - 1) - 1) wrapped negative: an empty slice instead of element 0
            assertArrayEquals(new float[]{3}, Tensor.arange(10).slice(0, 3, 10, Integer.MAX_VALUE).toFloatArray());
        }
    }

    @Test
    void convolutionGeometriesWhoseSizesOverflowAreRejected() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.ones(1, 1, 1, 1);
            // Ho*Wo = 65536^2 wrapped to 0: an empty im2col instead of an error
            fails(IllegalArgumentException.class, "Ho*Wo", () -> Conv.im2col(x, 2, 2, 1, 1, 32768, 32768));
            // C*kh*kw = 65536 * 65537 wrapped to 65536: the shim wrote 2^32 rows into a 65536-row buffer (JVM crash)
            fails(IllegalArgumentException.class, "C*kh*kw", () -> Conv.im2col(x, 65536, 65537, 1, 1, 32768, 32768));
            // 1 + 2 * 2^30 wrapped negative
            fails(IllegalArgumentException.class, "exceeds", () -> Conv.im2col(x, 1, 1, 1, 1, 1 << 30, 0));
            fails(IllegalArgumentException.class, "C*kh*kw", () -> new Lowering(x, 65536, 65537, 1, 1, 32768, 32768));
            fails(IllegalArgumentException.class, "Ho*Wo", () -> new Lowering(x, 2, 2, 1, 1, 32768, 32768));
        }
    }
}
