package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A frozen leaf (Var.requiresGrad(false), PyTorch's requires_grad_(False)) gets no gradient and the functions it enters
 * skip computing one: the Eq. 1-3 node runs no Eq. 3 for a frozen W (seen in the profile), batch norm hands a frozen
 * gamma nothing, and the other inputs' gradients are the same bits as with nothing frozen.
 */
class FrozenParameterTest {

    /** x's, w's (or null) and beta's gradients of one conv + batch norm step, W and gamma frozen or not. */
    private static float[][] step(boolean freeze, Map<Profile.Part, Long> eq) {
        Rng rng = new Rng(7);
        try (Scope s = Scope.open()) {
            Var x = Var.param(rng.normal(0, 1, 4, 3, 8, 8));
            Var w = Var.param(rng.normal(0, 0.3, 8, 3, 3, 3));
            Var gamma = Var.param(rng.normal(1, 0.2, 8)), beta = Var.param(Tensor.zeros(8));
            if (freeze) { w.requiresGrad(false); gamma.requiresGrad(false); }
            Profile.setByOperation(true);
            Profile.reset();
            Var y = Layers.conv2d(new Gemm3(SparseConfig.Method.FST3_IR.config(1)), x, w, null, 1, 1);
            Var h = NN.batchNorm2dRelu(y, gamma, beta, Tensor.zeros(8), Tensor.ones(8), true, 0.1, 1e-5);
            try (Tensor g = rng.normal(0, 1, h.shape())) { h.backward(g); }
            eq.putAll(Profile.byLabel().get("Conv2d 3->8 k3 s1 @8x8"));
            assertEquals(freeze, gamma.grad() == null, "a frozen gamma gets no gradient");
            assertEquals(freeze, w.grad() == null, "a frozen W gets no gradient");
            return new float[][]{x.grad().toFloatArray(), freeze ? null : w.grad().toFloatArray(), beta.grad().toFloatArray()};
        } finally {
            Profile.setByOperation(false);
        }
    }

    @Test
    void aFrozenWeightSkipsEq3AndTheOtherGradientsStayTheSame() {
        Map<Profile.Part, Long> trained = new java.util.EnumMap<>(Profile.Part.class), frozen = new java.util.EnumMap<>(Profile.Part.class);
        float[][] all = step(false, trained), some = step(true, frozen);
        assertTrue(trained.getOrDefault(Profile.Part.EQ3, 0L) > 0, "Eq. 3 runs for a weight that trains: " + trained);
        assertFalse(frozen.containsKey(Profile.Part.EQ3), "no Eq. 3 for a frozen weight: " + frozen);
        assertTrue(frozen.getOrDefault(Profile.Part.EQ2, 0L) > 0, "Eq. 2 still runs (x needs its gradient): " + frozen);
        assertArrayEquals(all[0], some[0], "x's gradient, bit for bit");
        assertArrayEquals(all[2], some[2], "beta's gradient, bit for bit");
    }

    /** A graph keeps what it decided at its forward: unfreezing W before backward does not make Eq. 3 run for it. */
    @Test
    void aGraphKeepsTheFlagsOfItsForward() {
        Rng rng = new Rng(3);
        try (Scope s = Scope.open()) {
            Var x = Var.param(rng.normal(0, 1, 2, 6));
            Var w = Var.param(rng.normal(0, 0.3, 4, 6)).requiresGrad(false), b = Var.param(Tensor.zeros(4));
            Var y = Layers.linear(new Gemm3(SparseConfig.Method.DENSE.config()), x, w, b);
            w.requiresGrad(true);
            b.requiresGrad(false);
            y.sum().backward();
            assertNull(w.grad(), "w was frozen when the graph was recorded");
            assertNull(b.grad(), "b is frozen now: it receives nothing");
            assertNotNull(x.grad());
        }
    }

    @Test
    void onlyALeafCanBeFrozenAndANetworkOfFrozenLeavesHasNothingToDifferentiate() {
        try (Scope s = Scope.open()) {
            Var w = Var.param(Tensor.ones(3));
            Var y = w.mul(2);
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> y.requiresGrad(false));
            assertTrue(e.getMessage().contains("only on a leaf") && e.getMessage().contains("MulScalar"), e.getMessage());
            w.requiresGrad(false);
            Var z = w.mul(2).sum();
            assertFalse(z.requiresGrad());
            e = assertThrows(IllegalStateException.class, z::backward);
            assertTrue(e.getMessage().contains("(all frozen, or constants)"), e.getMessage());
            Var c = Var.of(Tensor.ones(2)).requiresGrad(true);   // a constant made a leaf to differentiate, as in PyTorch
            c.mul(3).sum().backward();
            assertArrayEquals(new float[]{3, 3}, c.grad().toFloatArray());
        }
    }
}
