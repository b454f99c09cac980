package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** argmax agrees with max on NaN: NaN is the largest, the first NaN wins (PyTorch's rule). */
class ArgmaxNanTest {
    @Test
    void theFirstNaNIsTheArgmax() {
        try (Scope s = Scope.open()) {
            float nan = Float.NaN;
            Tensor a = Tensor.of(new float[]{1, nan, 3, nan, 5, 4, 2, 0, nan, 9, 1, 1}, 3, 4);
            assertArrayEquals(new float[]{1, 0, 0}, a.argmax(1).toFloatArray());
            assertArrayEquals(new float[]{2, 0, 0, 0}, a.argmax(0).toFloatArray());
            assertTrue(Double.isNaN(a.max(false, 1).getFlat(0)), "max says NaN where argmax points at one");
            assertArrayEquals(new float[]{2, 1, 0, 0}, Tensor.of(new float[]{3, 1, 7, 2, 5, 5, 9, 0, 1, 9, 2, 4}, 4, 3).argmax(1).toFloatArray());
        }
    }
}
