package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class OpsGradTest {
    static Tensor rand(long seed, double lo, double hi, int... shape) {
        SplittableRandom r = new SplittableRandom(seed);
        Tensor t = Tensor.empty(DType.F64, shape);
        for (long i = 0; i < t.numel(); i++) t.setFlat(i, r.nextDouble(lo, hi));
        return t;
    }

    static Tensor rand(long seed, int... shape) { return rand(seed, -2, 2, shape); }

    static void ok(GradCheck.Fn f, Tensor... in) {
        GradCheck.Result r = GradCheck.check(f, in);
        assertTrue(r.passed(), r.toString());
    }

    @Test
    void binaryOpsWithBroadcasting() {
        try (Scope s = Scope.open()) {
            int[][][] shapes = {{{3, 1, 7}, {1, 17, 1}}, {{7}, {3, 7}}, {{1}, {3}}, {{17, 3}, {17, 3}}};
            int seed = 0;
            for (int[][] sh : shapes) {
                Tensor a = rand(seed++, sh[0]), b = rand(seed++, 0.5, 2, sh[1]);
                ok(v -> v[0].add(v[1]), a, b);
                ok(v -> v[0].sub(v[1]), a, b);
                ok(v -> v[0].mul(v[1]), a, b);
                ok(v -> v[0].div(v[1]), a, b);
            }
        }
    }

    @Test
    void unaryOps() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(1, 3, 7), p = rand(2, 0.2, 3, 7, 3);
            ok(v -> v[0].exp(), a);
            ok(v -> v[0].log(), p);
            ok(v -> v[0].sqrt(), p);
            ok(v -> v[0].pow(3), a);
            ok(v -> v[0].pow(0.5), p);
            ok(v -> v[0].relu(), a);
            ok(v -> v[0].sigmoid(), a);
            ok(v -> v[0].tanh(), a);
            ok(v -> v[0].neg().add(3).mul(2), a);
            ok(v -> Var.where(Tensor.of(new float[]{1, 0, 1}, 3, 1), v[0], v[0].exp()), a);
        }
    }

    @Test
    void reductionsAndViews() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(3, 3, 7, 17);
            ok(v -> v[0].sum(), a);
            ok(v -> v[0].sum(false, 1), a);
            ok(v -> v[0].sum(true, 0, 2), a);
            ok(v -> v[0].mean(false, -1), a);
            ok(v -> v[0].max(false, 1), a);
            ok(v -> v[0].var(false, 2), a);
            ok(v -> v[0].reshape(7, -1).mul(v[0].reshape(7, 51)), a);
            ok(v -> v[0].permute(2, 0, 1).mul(v[0].permute(2, 0, 1)), a);
            ok(v -> v[0].transpose(0, 2).exp(), a);
            ok(v -> v[0].slice(2, 1, 17, 3).tanh(), a);
            ok(v -> v[0].slice(0, 1, 3, 1).expand(5, 2, 7, 17).sigmoid(), a);
        }
    }

    @Test
    void matmulIncludingBatchedBroadcast() {
        try (Scope s = Scope.open()) {
            ok(v -> v[0].matmul(v[1]), rand(4, 3, 7), rand(5, 7, 17));
            ok(v -> v[0].matmul(v[1]), rand(6, 2, 3, 7), rand(7, 7, 1));
            ok(v -> v[0].matmul(v[1]).relu(), rand(8, 1, 17), rand(9, 3, 17, 3));
        }
    }

    @Property(tries = 15)
    void broadcastAddMulOnRandomShapes(@ForAll @IntRange(min = 1, max = 5) int a, @ForAll @IntRange(min = 1, max = 5) int b,
                                       @ForAll boolean squeezeA, @ForAll boolean squeezeB) {
        try (Scope s = Scope.open()) {
            Tensor x = rand(a * 31L + b, squeezeA ? 1 : a, b), y = rand(a * 17L + b, a, squeezeB ? 1 : b);
            ok(v -> v[0].mul(v[1]).add(v[0]), x, y);
        }
    }

    @Test
    void accumulationDetachNoGradAndRetainGraph() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var y = x.mul(x).sum();
            y.backward(Tensor.scalar(1), true);
            y.backward(Tensor.scalar(1), false);
            assertArrayEquals(new float[]{4, 8, 12}, x.grad().toFloatArray());
            IllegalStateException e = assertThrows(IllegalStateException.class, y::backward);
            assertTrue(e.getMessage().contains("already freed"), e.getMessage());
            x.zeroGrad();
            Var z = x.detach().mul(x).sum();
            z.backward();
            assertArrayEquals(new float[]{1, 2, 3}, x.grad().toFloatArray());
            try (Grad.Restore ng = Grad.noGrad()) {
                assertFalse(x.mul(x).requiresGrad());
            }
            assertTrue(x.mul(x).requiresGrad());
            Var h = x.mul(2).retainGrad();
            h.sum().backward();
            assertArrayEquals(new float[]{1, 1, 1}, h.grad().toFloatArray());
        }
    }

    /** A user-defined Function, as in torch.autograd.Function. */
    static final class Cube extends Function {
        private Tensor x;
        protected Tensor forward(Tensor... in) { x = save(in[0]); return in[0].pow(3); }
        protected Tensor[] backward(Tensor g) { try (Tensor sq = x.mul(x); Tensor t = sq.mul(3)) { return grads(g.mul(t)); } }
    }

    @Test
    void userFunctionAndGradcheckCatchesWrongGradient() {
        try (Scope s = Scope.open()) {
            ok(v -> new Cube().apply(v[0]), rand(10, 7));
            final class Wrong extends Function {
                protected Tensor forward(Tensor... in) { return in[0].pow(3); }
                protected Tensor[] backward(Tensor g) { return grads(g.mul(3)); }
            }
            GradCheck.Result r = GradCheck.check(v -> new Wrong().apply(v[0]), rand(11, 7));
            assertFalse(r.passed(), r.toString());
        }
    }

    /**
     * A NaN anywhere in the comparison is a failure: a backward that returns NaN for one element, and a function whose
     * finite differences are NaN (log of negative inputs) while its backward gives numbers. Every NaN comparison is
     * false, so a worst-score search that only keeps a larger score skipped them and reported "passed".
     */
    @Test
    void gradcheckFailsOnNaN() {
        try (Scope s = Scope.open()) {
            final class NaNGrad extends Function {
                protected Tensor forward(Tensor... in) { return in[0].mul(2.0); }
                protected Tensor[] backward(Tensor g) {
                    Tensor d = g.mul(2.0);
                    d.setFlat(3, Double.NaN);
                    return grads(d);
                }
            }
            GradCheck.Result r = GradCheck.check(v -> new NaNGrad().apply(v[0]), rand(12, 7));
            assertFalse(r.passed(), "a NaN gradient passed: " + r);
            assertEquals(3, r.worstIndex(), r.toString());

            final class NaNEverywhere extends Function {
                protected Tensor forward(Tensor... in) { return in[0].mul(Double.NaN); }
                protected Tensor[] backward(Tensor g) { return grads(g.mul(Double.NaN)); }
            }
            GradCheck.Result all = GradCheck.check(v -> new NaNEverywhere().apply(v[0]), rand(13, 5));
            assertFalse(all.passed(), "an all-NaN function passed: " + all);

            GradCheck.Result numericNaN = GradCheck.check(v -> v[0].log(), rand(14, -2.0, -1.0, 4));   // log of negatives: NaN differences
            assertFalse(numericNaN.passed(), "NaN finite differences passed: " + numericNaN);
        }
    }

    @Test
    void scalarBackwardNeedsGradientForNonScalar() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.ones(2, 2));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.mul(x).backward());
            assertTrue(e.getMessage().contains("one-element"), e.getMessage());
        }
    }

    @Test
    void tenThousandStepsReturnOffHeapBytesToStart() {
        Var w = Var.param(OpsGradTest.rand(12, 8, 4).to(DType.F32));
        Tensor x = Tensor.ones(5, 8);
        long before = Memory.bytesInUse();
        for (int i = 0; i < 10_000; i++) {
            try (Scope step = Scope.open()) {
                Var loss = Var.of(x.alias()).matmul(w).relu().sum();
                loss.backward();
                w.value().copyFrom(w.value().sub(w.grad().mul(1e-4)));
                w.zeroGrad();
            }
        }
        assertEquals(before, Memory.bytesInUse());
        // Without a scope every Var is closed by its user; the engine's own temporaries must not leak.
        for (int i = 0; i < 1000; i++) {
            Var xv = Var.of(x.alias());
            Var h = xv.matmul(w);
            Var r = h.relu();
            Var loss = r.sum();
            loss.backward();
            for (Var v : new Var[]{loss, r, h, xv}) v.close();
            w.zeroGrad();
        }
        assertEquals(before, Memory.bytesInUse());
        w.close();
        x.close();
    }
}
