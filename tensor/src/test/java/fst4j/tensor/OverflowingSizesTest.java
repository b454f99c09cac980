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
}
