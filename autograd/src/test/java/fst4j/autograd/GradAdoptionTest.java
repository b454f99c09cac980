package fst4j.autograd;

import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A leaf's first gradient is taken over instead of copied when nothing else holds its memory. Whatever the graph
 * hands out (the same gradient to two leaves, to one leaf twice, a caller's own output gradient, a retained
 * non-leaf gradient), every .grad stays its own memory: writing into one changes no other, and later accumulation
 * into it stays correct.
 */
class GradAdoptionTest {

    private static float[] f(Tensor t) { return t.toFloatArray(); }

    @Test
    void aFreshLeafGradientIsTakenOverNotCopied() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.of(new float[]{1, 2, 3, 4}, 4));
            Var loss = a.mul(3).sum();
            long before = Memory.allocationCount();
            loss.backward();
            long taken = Memory.allocationCount() - before;
            a.zeroGrad();
            Var.adoptGradients = false;
            try {
                Var loss2 = a.mul(3).sum();
                before = Memory.allocationCount();
                loss2.backward();
                assertEquals(taken + 1, Memory.allocationCount() - before, "copying costs one allocation more than taking over");
            } finally {
                Var.adoptGradients = true;
            }
            assertArrayEquals(new float[]{3, 3, 3, 3}, f(a.grad()));
            a.zeroGrad();
        }
    }

    @Test
    void oneGradientHandedToTwoLeavesGivesEachItsOwnMemory() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.of(new float[]{1, 2, 3}, 3)), b = Var.param(Tensor.of(new float[]{4, 5, 6}, 3));
            a.add(b).mul(2).sum().backward();   // Add's backward hands out two aliases of one gradient
            assertArrayEquals(new float[]{2, 2, 2}, f(a.grad()));
            assertArrayEquals(new float[]{2, 2, 2}, f(b.grad()));
            a.grad().fill(7);
            assertArrayEquals(new float[]{2, 2, 2}, f(b.grad()), "b's gradient must not share a's memory");
            a.add(b).mul(2).sum().backward();   // accumulates in place into both
            assertArrayEquals(new float[]{9, 9, 9}, f(a.grad()));
            assertArrayEquals(new float[]{4, 4, 4}, f(b.grad()));
        }
    }

    @Test
    void oneLeafUsedTwiceSumsBothContributions() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.of(new float[]{1, -2}, 2));
            a.add(a).mul(a).sum().backward();   // d/da (2a * a) = 4a
            assertArrayEquals(new float[]{4, -8}, f(a.grad()));
        }
    }

    @Test
    void theCallersOutputGradientAndRetainedGradientsAreCopied() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.of(new float[]{1, 2}, 2));
            Tensor g = Tensor.of(new float[]{5, 6}, 2);
            a.backward(g);
            g.fill(0);
            assertArrayEquals(new float[]{5, 6}, f(a.grad()), "a leaf's gradient must not alias the caller's tensor");

            Var x = Var.param(Tensor.of(new float[]{1, 2}, 2));
            Var h = x.mul(2).retainGrad();
            h.mul(3).sum().backward();
            h.grad().fill(-1);
            assertArrayEquals(new float[]{6, 6}, f(x.grad()), "x's gradient must not change with h's");
            assertArrayEquals(new float[]{-1, -1}, f(h.grad()));
        }
    }
}
