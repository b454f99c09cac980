package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** slice takes Python's negative indices (-1 is the last element) with any step; a bound past the axis names it and its size. */
class NegativeSliceTest {
    @Test
    void negativeStartAndEndCountFromTheEnd() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.arange(10);
            assertArrayEquals(new float[]{7, 8, 9}, t.slice(0, -3, 10).toFloatArray(), "t[-3:]");
            assertArrayEquals(new float[]{9}, t.slice(-1, -1, 10).toFloatArray(), "t[-1:]");
            assertArrayEquals(new float[]{0, 1, 2, 3, 4, 5, 6, 7, 8}, t.slice(0, 0, -1).toFloatArray(), "t[:-1]");
            assertArrayEquals(new float[]{2, 3}, t.slice(0, -8, -6).toFloatArray(), "t[-8:-6]");
            assertArrayEquals(new float[]{1, 4, 7}, t.slice(0, -9, 10, 3).toFloatArray(), "t[-9::3]");
            assertArrayEquals(new float[]{0, 4}, t.slice(0, -10, -2, 4).toFloatArray(), "t[-10:-2:4]");
            assertEquals(0, t.slice(0, -4, 6).numel(), "t[-4:6] is empty");

            Tensor m = Tensor.arange(6).reshape(2, 3);
            assertArrayEquals(new float[]{1, 2, 4, 5}, m.slice(-1, -2, 3).contiguous().toFloatArray(), "m[:, -2:]");
            assertArrayEquals(new float[]{3, 4, 5}, m.slice(0, -1, 2).contiguous().toFloatArray(), "m[-1:]");
        }
    }

    @Test
    void boundsPastTheAxisNameItAndItsSize() {
        try (Scope s = Scope.open()) {
            Tensor m = Tensor.zeros(2, 10);
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> m.slice(1, -11, 5));
            assertEquals("slice [-11, 5) (that is [-1, 5)) out of bounds for axis 1 of size 10 (shape [2, 10])", e.getMessage());
            e = assertThrows(IndexOutOfBoundsException.class, () -> m.slice(0, 0, 3));
            assertEquals("slice [0, 3) out of bounds for axis 0 of size 2 (shape [2, 10])", e.getMessage());
            e = assertThrows(IndexOutOfBoundsException.class, () -> m.slice(-1, -2, -5, 2));
            assertEquals("slice [-2, -5) (that is [8, 5)) out of bounds for axis 1 of size 10 (shape [2, 10]): start after end", e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> m.slice(1, -3, 10, 0), "step 0");
        }
    }
}
