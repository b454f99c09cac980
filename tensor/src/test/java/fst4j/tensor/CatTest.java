package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Tensor.cat as torch.cat: along any axis, of views too, float64 where any input is; mismatches named. */
class CatTest {
    @Test
    void joinsAlongAnyAxis() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3), b = Tensor.of(new float[]{7, 8}, 2, 1);
            assertArrayEquals(new float[]{1, 2, 3, 7, 4, 5, 6, 8}, Tensor.cat(1, a, b).toFloatArray());
            assertArrayEquals(new int[]{2, 4}, Tensor.cat(-1, a, b).shape());
            Tensor c = Tensor.cat(0, a, a.slice(0, 1, 2), Tensor.of(new float[]{7}, 1, 1).expand(1, 3));   // views, a broadcast one included
            assertArrayEquals(new int[]{4, 3}, c.shape());
            assertArrayEquals(new float[]{1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 7, 7}, c.toFloatArray());
            assertTrue(c.isContiguous());
            Tensor d = Tensor.cat(0, a.t(), Tensor.of(new double[]{9, 9}, 1, 2));
            assertEquals(DType.F64, d.dtype());
            assertArrayEquals(new double[]{1, 4, 2, 5, 3, 6, 9, 9}, d.toDoubleArray());
            assertArrayEquals(a.toFloatArray(), Tensor.cat(0, a).toFloatArray());
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void mismatchesAreNamed() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(2, 3);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.cat(0, a, Tensor.ones(2, 4)));
            assertEquals("shape mismatch: cat along axis 0 of [2, 3] and [2, 4]", e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> Tensor.cat(1, a, Tensor.ones(2, 3, 1)));
            assertThrows(IllegalArgumentException.class, () -> Tensor.cat(0));
            assertThrows(IllegalArgumentException.class, () -> Tensor.cat(0, Tensor.scalar(1), Tensor.scalar(2)));
            assertThrows(IllegalArgumentException.class, () -> Tensor.cat(2, a, a));
        }
    }
}
