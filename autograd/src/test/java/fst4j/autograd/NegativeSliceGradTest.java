package fst4j.autograd;

import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Var.slice with Python's negative indices: the value is the Tensor's slice, the gradient lands on the same elements. */
class NegativeSliceGradTest {
    @Test
    void theGradientGoesWhereTheNegativeSliceTookItsValues() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.arange(8).reshape(2, 4));
            Var y = x.slice(1, -3, 4, 2);   // x[:, -3::2]: columns 1 and 3
            assertArrayEquals(new float[]{1, 3, 5, 7}, y.value().contiguous().toFloatArray());
            y.sum().backward();
            assertArrayEquals(new float[]{0, 1, 0, 1, 0, 1, 0, 1}, x.grad().toFloatArray());
            x.zeroGrad();
            x.slice(0, -1, 2).mul(2).sum().backward();   // x[-1:]
            assertArrayEquals(new float[]{0, 0, 0, 0, 2, 2, 2, 2}, x.grad().toFloatArray());
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> x.slice(1, 0, -5));
            assertTrue(e.getMessage().contains("axis 1 of size 4"), e.getMessage());
        }
    }
}
