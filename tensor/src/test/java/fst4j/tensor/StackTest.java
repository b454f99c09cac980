package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Tensor.stack as torch.stack: a new axis anywhere (negative from the result's end), of views too; mismatches named. */
class StackTest {
    @Test
    void stacksAlongEveryAxisIncludingNegativeOnes() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Tensor[] ts = new Tensor[3];
            for (int i = 0; i < 3; i++) ts[i] = new Rng(i).normal(0, 1, 2, 4);
            ts[2] = ts[2].t().contiguous().t();   // a transposed view among them
            for (int axis = -3; axis <= 2; axis++) {
                Tensor out = Tensor.stack(axis, ts);
                int a = axis < 0 ? axis + 3 : axis;
                int[] want = a == 0 ? new int[]{3, 2, 4} : a == 1 ? new int[]{2, 3, 4} : new int[]{2, 4, 3};
                assertArrayEquals(want, out.shape(), "axis " + axis);
                assertTrue(out.isContiguous());
                for (int k = 0; k < 3; k++)
                    for (int i = 0; i < 2; i++)
                        for (int j = 0; j < 4; j++) {
                            int[] idx = a == 0 ? new int[]{k, i, j} : a == 1 ? new int[]{i, k, j} : new int[]{i, j, k};
                            assertEquals(ts[k].get(i, j), out.get(idx), "axis " + axis + " tensor " + k + " at " + i + "," + j);
                        }
            }
            assertArrayEquals(new float[]{1, 2, 3}, Tensor.stack(0, Tensor.scalar(1), Tensor.scalar(2), Tensor.scalar(3)).toFloatArray());
            assertArrayEquals(new int[]{3}, Tensor.stack(-1, Tensor.scalar(1), Tensor.scalar(2), Tensor.scalar(3)).shape());
            Tensor mixed = Tensor.stack(1, Tensor.ones(2), Tensor.of(new double[]{5, 6}, 2));
            assertEquals(DType.F64, mixed.dtype());
            assertArrayEquals(new double[]{1, 5, 1, 6}, mixed.toDoubleArray());
            assertArrayEquals(new int[]{1, 2, 4}, Tensor.stack(0, ts[0]).shape());
        }
        assertEquals(before, Memory.bytesInUse(), "the unsqueezed views are freed");
    }

    @Test
    void mismatchesAreNamed() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(2, 3);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Tensor.stack(0, a, a, Tensor.ones(3, 2)));
            assertEquals("shape mismatch: stack needs tensors of one shape, got [2, 3] (tensor 0) and [3, 2] (tensor 2)", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.stack(3, a, a));
            assertEquals("axis 3 out of range for stack of rank-2 tensors (from -3 to 2)", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.stack(-4, a, a));
            assertTrue(e.getMessage().contains("axis -4 out of range"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Tensor.stack(0));
            assertEquals("stack of no tensors", e.getMessage());
        }
    }
}
