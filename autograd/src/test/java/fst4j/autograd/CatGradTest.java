package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Var.cat's gradients, checked by finite differences, and only for the inputs that need one. */
class CatGradTest {
    @Test
    void gradcheck() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(8);
            GradCheck.Result res = GradCheck.check(v -> Var.cat(1, v[0], v[1].exp(), v[0]).tanh(), r.normal(0, 1, 2, 3, 2), r.normal(0, 1, 2, 1, 2));
            assertTrue(res.passed(), res.toString());
            res = GradCheck.check(v -> Var.cat(-1, v[0], v[1]).mul(Var.cat(0, v[1], v[0].transpose(0, 1)).transpose(0, 1)), r.normal(0, 1, 2, 1), r.normal(0, 1, 2, 2));
            assertTrue(res.passed(), res.toString());
        }
    }

    @Test
    void aConstantInputGetsNoGradient() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(fst4j.tensor.Tensor.ones(2)), c = Var.of(fst4j.tensor.Tensor.ones(3));
            Var.cat(0, c, x).mul(Var.of(fst4j.tensor.Tensor.arange(5))).sum().backward();
            assertArrayEquals(new float[]{3, 4}, x.grad().toFloatArray());
            assertNull(c.grad());
        }
    }
}
