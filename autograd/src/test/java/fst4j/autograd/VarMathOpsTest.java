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
 * Var's math ops (sin ... cumsum): float64 gradient checks at awkward shapes, torch's gradient rules where they are a
 * choice (prod with zeros, the norms at 0 and at ties, pow's exponent at a zero base), logsumexp's stability, and the
 * refusals of bad parameters. TorchVarOpsTest (nn) compares values and gradients with torch 1.13.
 */
class VarMathOpsTest {
    @Test
    void elementwise() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(1, 3, 1, 4), p = rand(2, 0.3, 3, 3, 1, 4);
            ok(v -> wsum(v[0].sin()), a);
            ok(v -> wsum(v[0].cos()), a);
            ok(v -> wsum(v[0].log1p()), p);
            ok(v -> wsum(v[0].expm1()), a);
            ok(v -> wsum(v[0].reciprocal()), p);
            ok(v -> wsum(v[0].rsqrt()), p);
            ok(v -> wsum(v[0].square()), a);
            ok(v -> wsum(v[0].sub(1.5)), a);
            ok(v -> wsum(v[0].rsub(1.5)), a);
            ok(v -> wsum(v[0].div(-3)), a);
            Var x = Var.of(Tensor.of(new double[]{1e-20, -0.0, 4}, 3));
            assertArrayEquals(new double[]{1e-20, -0.0, Math.log1p(4)}, vals(x.log1p()), "log1p keeps tiny values (log(1 + x) would give 0)");
            assertArrayEquals(new double[]{1e-20, -0.0, Math.expm1(4)}, vals(x.expm1()));
            assertArrayEquals(new double[]{1e20, Double.NEGATIVE_INFINITY, 0.25}, vals(x.reciprocal()));
            assertArrayEquals(new double[]{2, 2, -2}, vals(x.rsub(2)));
            assertArrayEquals(new double[]{-2, -2, 2}, vals(x.sub(2)));
            assertArrayEquals(new double[]{1e-20 / 3, -0.0, 4.0 / 3}, vals(x.div(3)));
        }
    }

    @Test
    void powWithATensorExponent() {
        try (Scope s = Scope.open()) {
            Tensor base = rand(3, 0.3, 2, 2, 1, 3), e = rand(4, -2.0, 2.0, 3);
            ok(v -> wsum(v[0].pow(v[1])), base, e);
            ok(v -> wsum(v[0].pow(v[1])), rand(5, 0.5, 2, 4), rand(6, 1));   // an exponent of shape [1], broadcast
            Var b = Var.param(Tensor.of(new double[]{0, 0, 0, 2}, 4)), x = Var.param(Tensor.of(new double[]{0, 2, -1, 0}, 4));
            Var y = b.pow(x);
            assertArrayEquals(new double[]{1, 0, Double.POSITIVE_INFINITY, 1}, vals(y));
            y.sum().backward();
            // torch 1.13: to the base 0 where the exponent is 0 (not 0 * inf), to the exponent 0 where base == 0 and e >= 0
            assertArrayEquals(new double[]{0, 0, Double.NEGATIVE_INFINITY, 0}, b.grad().toDoubleArray());
            double[] ge = x.grad().toDoubleArray();
            assertEquals(0, ge[0]);
            assertEquals(0, ge[1]);
            assertTrue(Double.isNaN(ge[2]) || Double.isInfinite(ge[2]), "inf * log(0) at e < 0: " + ge[2]);
            assertEquals(Math.log(2), ge[3], 1e-15);
        }
    }

    @Test
    void stdAndLogsumexp() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(7, 3, 1, 5);
            ok(v -> wsum(v[0].std(1, false, -1)), a);
            ok(v -> wsum(v[0].std(0, true, 0, 2)), a);
            ok(v -> wsum(v[0].std(2, false)), a);
            assertEquals(Math.sqrt(2.0), Var.of(Tensor.of(new double[]{1, 3}, 2)).std(1, false).item(), 1e-15);
            assertEquals(1.0, Var.of(Tensor.of(new double[]{1, 3}, 2)).std(0, false).item(), 1e-15);
            assertThrows(IllegalArgumentException.class, () -> Var.of(a).std(-1, false));
            ok(v -> wsum(v[0].logsumexp(false, -1)), a);
            ok(v -> wsum(v[0].logsumexp(true, 0, 1)), a);
            ok(v -> v[0].logsumexp(false), a);
            Var big = Var.of(Tensor.of(new double[]{1000, 1000, -1000, Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY, 1}, 3, 2));
            double[] l = vals(big.logsumexp(false, 1));
            assertEquals(1000 + Math.log(2), l[0], 1e-12, "stable: exp(1000) overflows");
            assertEquals(1, l[2], 1e-12);
            assertEquals(-1000, vals(Var.of(Tensor.of(new double[]{-1000, Double.NEGATIVE_INFINITY}, 2)).logsumexp(false))[0]);
            assertEquals(Double.NEGATIVE_INFINITY, vals(Var.of(Tensor.of(new double[]{Double.NEGATIVE_INFINITY, Double.NEGATIVE_INFINITY}, 2)).logsumexp(false))[0]);
            assertThrows(IllegalArgumentException.class, () -> Var.of(a).logsumexp(false, 3));
        }
    }

    @Test
    void prodAndItsZeros() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(8, 0.5, 1.5, 3, 1, 4);
            ok(v -> wsum(v[0].prod(-1, false)), a);
            ok(v -> wsum(v[0].prod(0, true)), a);
            ok(v -> v[0].prod(), a);
            // zeros: a lane with one zero, one with two, one with none (exact gradients: prod is linear in each element)
            Tensor z = Tensor.of(new double[]{2, 0, 3, 0, 5, 0, 2, 4, 0.5}, 3, 3);
            ok(v -> wsum(v[0].prod(1, false)), z);
            Var x = Var.param(z.copy());
            x.prod(1, false).sum().backward();
            assertArrayEquals(new double[]{0, 6, 0, 0, 0, 0, 2, 1, 8}, x.grad().toDoubleArray());
            Var y = Var.param(Tensor.of(new double[]{0, 2, 0}, 3));
            y.prod().backward();
            assertArrayEquals(new double[]{0, 0, 0}, y.grad().toDoubleArray(), "two zeros: torch gives 0 everywhere");
            assertThrows(IllegalArgumentException.class, () -> Var.of(a).prod(3, false));
            // a rank-0 input: torch 1.13's prod_backward returns g itself (not g x / x, NaN at an infinity or NaN);
            // a one-element rank-1 input keeps the lane rule (torch gives NaN there too)
            for (double v : new double[]{Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY, Double.NaN, 0, -3}) {
                Var sc = Var.param(Tensor.scalar(v, DType.F64));
                sc.prod().mul(2.5).backward();
                assertEquals(2.5, sc.grad().item(), "prod of the scalar " + v);
            }
            Var one = Var.param(Tensor.of(new double[]{Double.POSITIVE_INFINITY}, 1));
            one.prod().backward();
            assertTrue(Double.isNaN(one.grad().toDoubleArray()[0]), "a one-element lane: g inf / inf, as torch");
        }
    }

    @Test
    void norms() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(9, 3, 1, 4);
            for (double p : new double[]{1, 2, 3, 0.5, 1.5, 2.5, Double.POSITIVE_INFINITY}) {
                ok(v -> wsum(v[0].norm(p, false, -1)), a);
                ok(v -> wsum(v[0].norm(p, true, 0, 1)), a);
                ok(v -> v[0].norm(p, false), a);
            }
            assertEquals(5, Var.of(Tensor.of(new double[]{3, -4}, 2)).norm(2, false).item(), 1e-15);
            assertEquals(7, Var.of(Tensor.of(new double[]{3, -4}, 2)).norm(1, false).item(), 1e-15);
            assertEquals(4, Var.of(Tensor.of(new double[]{3, -4}, 2)).norm(Double.POSITIVE_INFINITY, false).item());
            // at 0: torch's subgradient 0 for p = 2 (and the masked formulas for the others), not NaN
            for (double p : new double[]{2, 1.5, 3}) {
                Var z = Var.param(Tensor.zeros(DType.F64, 2, 2));
                z.norm(p, false, 1).sum().backward();
                assertArrayEquals(new double[]{0, 0, 0, 0}, z.grad().toDoubleArray(), "p = " + p);
            }
            Var t = Var.param(Tensor.of(new double[]{3, -3, 1}, 3));
            t.norm(Double.POSITIVE_INFINITY, false).backward();
            assertArrayEquals(new double[]{0.5, -0.5, 0}, t.grad().toDoubleArray(), "tied maxima of |x| share, as torch 1.13");
            for (double p : new double[]{0, -1, Double.NaN})
                assertThrows(IllegalArgumentException.class, () -> Var.of(a).norm(p, false));
        }
    }

    @Test
    void cumsum() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{1, 2, 3, 4, 5, 6}, 2, 3));
            assertArrayEquals(new double[]{1, 3, 6, 4, 9, 15}, vals(x.cumsum(1)));
            assertArrayEquals(new double[]{1, 2, 3, 5, 7, 9}, vals(x.cumsum(-2)));
            x.cumsum(1).sum().backward();
            assertArrayEquals(new double[]{3, 2, 1, 3, 2, 1}, x.grad().toDoubleArray());
            Tensor a = rand(10, 3, 1, 4);
            ok(v -> wsum(v[0].cumsum(-1)), a);
            ok(v -> wsum(v[0].cumsum(0)), a);
            ok(v -> wsum(v[0].cumsum(1)), a);
            assertThrows(IllegalArgumentException.class, () -> x.cumsum(2));
        }
    }
}
