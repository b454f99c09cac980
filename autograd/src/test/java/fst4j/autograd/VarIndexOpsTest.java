package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static fst4j.autograd.OpsGradTest.ok;
import static fst4j.autograd.OpsGradTest.rand;
import static fst4j.autograd.VarShapeOpsTest.vals;
import static fst4j.autograd.VarShapeOpsTest.wsum;
import static org.junit.jupiter.api.Assertions.*;

/**
 * indexSelect, gather, maskedFill, argmax / argmin and min: values, float64 gradient checks (repeated indices add,
 * ties share), and refusals of bad axes, out-of-range indices and wrong index shapes by name.
 */
class VarIndexOpsTest {
    @Test
    void indexSelectValuesAndRepeatedIndicesAccumulate() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{0, 1, 2, 3, 4, 5}, 2, 3));
            Var y = x.indexSelect(1, new int[]{2, 0, 2});
            assertArrayEquals(new double[]{2, 0, 2, 5, 3, 5}, vals(y));
            y.sum().backward();
            assertArrayEquals(new double[]{1, 0, 2, 1, 0, 2}, x.grad().toDoubleArray());
            assertArrayEquals(new int[]{2, 0}, x.indexSelect(-1, new int[0]).shape());
            Tensor a = rand(1, 3, 1, 4);
            ok(v -> wsum(v[0].indexSelect(-1, new int[]{3, 3, 0, 1, 3})), a);
            ok(v -> wsum(v[0].indexSelect(1, new int[]{0, 0})), a);
            IndexOutOfBoundsException e = assertThrows(IndexOutOfBoundsException.class, () -> x.indexSelect(1, new int[]{0, 3}));
            assertTrue(e.getMessage().contains("index 3") && e.getMessage().contains("size 3"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> x.indexSelect(0, new int[]{-1}));
            assertThrows(IllegalArgumentException.class, () -> x.indexSelect(2, new int[]{0}));
        }
    }

    @Test
    void gatherValuesGradientsAndRefusals() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.of(new double[]{0, 1, 2, 3, 4, 5}, 2, 3));
            assertArrayEquals(new double[]{2, 2, 0}, vals(x.gather(1, new int[]{2, 2, 0}, new int[]{1, 3})));
            assertArrayEquals(new double[]{3, 1, 0, 4}, vals(x.gather(0, new int[]{1, 0, 0, 1}, new int[]{2, 2})));
            Tensor a = rand(2, 3, 1, 4);
            ok(v -> wsum(v[0].gather(2, new int[]{3, 3, 1, 0, 0, 2}, new int[]{2, 1, 3})), a);
            ok(v -> wsum(v[0].gather(-3, new int[]{2, 0, 2, 2, 1, 1, 0, 0}, new int[]{4, 1, 2})), a);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.gather(1, new int[]{0, 1}, new int[]{2}));
            assertTrue(e.getMessage().contains("rank"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.gather(1, new int[]{0, 1, 2}, new int[]{1, 2}));
            assertTrue(e.getMessage().contains("3 indices for index shape [1, 2]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> x.gather(1, new int[]{0, 0, 0}, new int[]{3, 1}));
            assertTrue(e.getMessage().contains("larger than input"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class, () -> x.gather(0, new int[]{2}, new int[]{1, 1}));
            assertThrows(IllegalArgumentException.class, () -> x.gather(-3, new int[]{0}, new int[]{1, 1}));
        }
    }

    @Test
    void maskedFill() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{0, 1, 2, 3, 4, 5}, 2, 3));
            Tensor mask = Tensor.of(new double[]{1, 0, 1}, 3);
            Var y = x.maskedFill(mask, -7);
            assertArrayEquals(new double[]{-7, 1, -7, -7, 4, -7}, vals(y));
            y.sum().backward();
            assertArrayEquals(new double[]{0, 1, 0, 0, 1, 0}, x.grad().toDoubleArray());
            ok(v -> wsum(v[0].maskedFill(Tensor.of(new float[]{0, 1}, 2, 1, 1), Double.NEGATIVE_INFINITY).exp()), rand(3, 2, 1, 3));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.maskedFill(Tensor.ones(2, 2, 3), 0));
            assertTrue(e.getMessage().contains("does not broadcast to the input's shape [2, 3]"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> x.maskedFill(Tensor.ones(2), 0));
        }
    }

    @Test
    void argmaxArgminAndMin() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{3, 1, 3, 1, 0, 2, Double.NaN, 5}, 2, 4));
            assertArrayEquals(new int[]{0, 2}, x.argmax(1, false), "first of tied maxima; NaN counts as largest");
            assertArrayEquals(new int[]{1, 2}, x.argmin(-1, false), "first of tied minima; NaN counts as smallest");
            assertArrayEquals(new int[]{1, 0, 1, 0}, x.argmin(0, true));
            assertThrows(IllegalArgumentException.class, () -> x.argmax(2, false));
            Var m = Var.param(Tensor.of(new double[]{1, 0, 0, 2, 5, 4}, 2, 3));
            Var y = m.min(false, 1);
            assertArrayEquals(new double[]{0, 2}, vals(y));
            y.sum().backward();
            assertArrayEquals(new double[]{0, 0.5, 0.5, 1, 0, 0}, m.grad().toDoubleArray(), "ties share, as torch.amin");
            assertEquals(0, m.min(false).item());
            Tensor a = rand(4, 3, 1, 5);
            ok(v -> wsum(v[0].min(true, -1, 0)), a);
            ok(v -> wsum(v[0].min(false, 1)), a);
            assertThrows(IllegalArgumentException.class, () -> m.min(false, 2));
            assertThrows(IllegalArgumentException.class, () -> Var.of(Tensor.zeros(DType.F64, 0, 2)).argmax(0, false));
        }
    }
}
