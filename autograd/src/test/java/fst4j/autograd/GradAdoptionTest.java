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

    /**
     * An inner node reached along several paths sums its gradients in place when nothing else holds the first one: the
     * same bits as allocating the sum (large float32 operands take the C add), one allocation fewer per extra path, and
     * a first gradient that is handed out twice (Add's backward gives both inputs one tensor) is never written into.
     */
    @Test
    void innerGradientsSumInPlaceWithTheSameBits() {
        try (Scope s = Scope.open()) {
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(3);
            Tensor xv = r.normal(0, 1, 4, 1000), up = r.normal(0, 1, 4, 1000);
            float[][] got = new float[2][];
            long[] allocs = new long[2];
            for (int mode = 0; mode < 2; mode++) {
                Var.accumulateInPlace = mode == 1;
                try {
                    Var x = Var.param(xv.copy());
                    Var h = x.mul(1.5);                                  // inner node used three times below
                    Var y = h.relu().add(h.mul(h)).add(h.add(h));         // h.add(h): one gradient tensor for both inputs
                    long before = Memory.allocationCount();
                    y.backward(up);
                    allocs[mode] = Memory.allocationCount() - before;
                    got[mode] = f(x.grad());
                } finally {
                    Var.accumulateInPlace = true;
                }
            }
            // Add hands two inner nodes one gradient tensor; h1 then gets a second one: h2's must stay untouched
            Var x2 = Var.param(xv.copy());
            Var h1 = x2.mul(1.5), h2 = x2.mul(2.5);
            h1.add(h2).add(h1.relu()).backward(up);
            float[] g2 = f(x2.grad()), xs0 = xv.toFloatArray(), u0 = up.toFloatArray();
            for (int i = 0; i < xs0.length; i++) {
                double want = u0[i] * (1.5 * (1 + (1.5 * xs0[i] > 0 ? 1 : 0)) + 2.5);
                assertEquals(want, g2[i], 1e-4 * Math.max(1, Math.abs(want)), "shared gradient at " + i);
            }
            assertArrayEquals(got[0], got[1], "in place and allocated sums must give the same bits");
            assertTrue(allocs[1] < allocs[0], "summing in place allocates less: " + allocs[1] + " against " + allocs[0]);
            // against the formula: dy/dx = 1.5 * (relu'(h) + 2h + 2)
            float[] xs = xv.toFloatArray(), u = up.toFloatArray();
            for (int i = 0; i < xs.length; i++) {
                double h = 1.5 * xs[i], want = 1.5 * u[i] * ((h > 0 ? 1 : 0) + 2 * h + 2);
                assertEquals(want, got[1][i], 1e-4 * Math.max(1, Math.abs(want)), "at " + i);
            }
        }
    }
}
