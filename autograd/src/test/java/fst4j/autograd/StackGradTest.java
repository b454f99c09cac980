package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Var.stack's gradients (each input's slice of the output's), by finite differences along every axis, and only where needed. */
class StackGradTest {
    @Test
    void gradcheckAlongEveryAxis() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(9);
            Tensor a = r.normal(0, 1, 2, 3), b = r.normal(0, 1, 2, 3);
            for (int axis = -3; axis <= 2; axis++) {
                int ax = axis;
                GradCheck.Result res = GradCheck.check(v -> Var.stack(ax, v[0], v[1].exp(), v[0]).tanh(), a, b);
                assertTrue(res.passed(), "axis " + axis + ": " + res);
            }
        }
    }

    @Test
    void eachInputGetsItsSliceAndAConstantNone() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.ones(2)), y = Var.param(Tensor.ones(2)), c = Var.of(Tensor.ones(2));
            Var.stack(-1, x, c, y).mul(Var.of(Tensor.arange(6).reshape(2, 3))).sum().backward();
            assertArrayEquals(new float[]{0, 3}, x.grad().toFloatArray());
            assertArrayEquals(new float[]{2, 5}, y.grad().toFloatArray());
            assertNull(c.grad());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Var.stack(0, x, Var.of(Tensor.ones(3))));
            assertTrue(e.getMessage().contains("shape mismatch: stack needs tensors of one shape"), e.getMessage());
        }
    }
}
