package fst4j.tests.prototypes;

import fst4j.autograd.Function;
import fst4j.autograd.GradCheck;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Prototype 1: a researcher's own differentiable op (as torch.autograd.Function), gradchecked in float64. */
class CustomFunctionPrototypeTest {

    /** y = x * sigmoid(beta * x), beta one value per channel (last axis), broadcast over the rows. */
    static final class ScaledSwish extends Function {
        private Tensor x, beta, s;
        @Override protected Tensor forward(Tensor... in) {
            x = save(in[0]);
            beta = save(in[1]);
            try (Tensor bx = in[0].mul(in[1]); Tensor sig = bx.sigmoid()) {
                s = save(sig);
                return in[0].mul(sig);
            }
        }
        @Override protected Tensor[] backward(Tensor g) {
            // d/dx = s + x * beta * s(1-s); d/dbeta = x^2 * s(1-s); the engine sums dbeta down to beta's shape
            try (Tensor oneMinus = s.neg().add(1); Tensor ds = s.mul(oneMinus); Tensor xds = x.mul(ds)) {
                Tensor dx = null, db = null;
                if (needsGrad(0)) try (Tensor t = xds.mul(beta); Tensor u = t.add(s)) { dx = u.mul(g); }
                if (needsGrad(1)) try (Tensor t = xds.mul(x)) { db = t.mul(g); }
                return grads(dx, db);
            }
        }
    }

    @Test
    void customOpPassesGradcheckInFloat64() {
        long before = Memory.bytesInUse();
        Rng rng = new Rng(1);
        try (Tensor x = rng.normal(DType.F64, 0, 1, 4, 3); Tensor beta = rng.uniform(DType.F64, 0.5, 2, 3)) {
            GradCheck.Result r = GradCheck.check(in -> new ScaledSwish().apply(in), x, beta);
            assertTrue(r.passed(), r.toString());
            assertTrue(r.maxAbsError() < 1e-7, r.toString());
        }
        assertEquals(before, Memory.bytesInUse(), "gradcheck and the op free what they allocate");
    }

    /** The same op with a wrong backward must fail gradcheck: the check can fail. */
    @Test
    void gradcheckCatchesAWrongBackward() {
        Rng rng = new Rng(2);
        try (Scope s = Scope.open()) {
            Tensor x = rng.normal(DType.F64, 0, 1, 5);
            GradCheck.Result r = GradCheck.check(in -> new Function() {
                protected Tensor forward(Tensor... t) { save(t[0]); return t[0].mul(t[0]); }
                protected Tensor[] backward(Tensor g) { return grads(g.mul(2)); }   // forgot the factor x
            }.apply(in), x);
            assertFalse(r.passed(), r.toString());
        }
    }

    /** Used in a graph with built-in ops, the gradients reach the leaves and the memory of the step is freed. */
    @Test
    void customOpComposesWithBuiltins() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{-1, 0, 2, 3}, 2, 2));
            Var beta = Var.param(Tensor.of(new float[]{1, 1}, 2));
            Var y = new ScaledSwish().apply(x, beta).sum();
            y.backward();
            assertArrayEquals(new int[]{2}, beta.grad().shape(), "the broadcast gradient is summed to beta's shape");
            double sig = 1 / (1 + Math.exp(-2.0));
            assertEquals(sig + 2 * sig * (1 - sig), x.grad().get(1, 0), 1e-6);
        }
        assertEquals(before, Memory.bytesInUse());
    }
}
