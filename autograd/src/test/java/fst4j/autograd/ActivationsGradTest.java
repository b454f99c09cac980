package fst4j.autograd;

import fst4j.tensor.Activation;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The activations of NN (gelu in both forms, silu, mish, leakyRelu, elu, softplus, hardtanh, relu6), Var's abs, clamp,
 * maximum and minimum, and NN.batchNorm1d, gradient-checked in float64; the gradients at the points where they are
 * defined by convention (bounds, ties, 0, NaN) pinned to torch 1.13's; bad parameters refused by name.
 */
class ActivationsGradTest {
    /** Uniform float64 values in [lo, hi) of shape (OpsGradTest.rand, whose overloads literal ints would confuse). */
    static Tensor rand(long seed, double lo, double hi, int... shape) { return OpsGradTest.rand(seed, lo, hi, shape); }

    static Tensor rand2(long seed, int... shape) { return OpsGradTest.rand(seed, -2.0, 2.0, shape); }

    static void ok(GradCheck.Fn f, Tensor... in) {
        GradCheck.Result r = GradCheck.check(f, in);
        assertTrue(r.passed(), r.toString());
    }

    @Test
    void smoothActivations() {
        try (Scope s = Scope.open()) {
            Tensor a = rand(11, -4, 4, 5, 7), wide = rand(12, -12, 12, 41);
            for (Tensor x : new Tensor[]{a, wide}) {
                ok(v -> NN.gelu(v[0]), x);
                ok(v -> NN.gelu(v[0], NN.GeluApproximate.TANH), x);
                ok(v -> NN.silu(v[0]), x);
                ok(v -> NN.mish(v[0]), x);
                ok(v -> NN.elu(v[0], 1.0), x);
                ok(v -> NN.elu(v[0], 0.3), x);
                ok(v -> NN.softplus(v[0]), x);
            }
            // both sides of softplus's threshold (beta x > threshold: x itself), a beta other than 1, and a negative one
            ok(v -> NN.softplus(v[0], 2, 3), rand(13, -3, 3, 40));
            ok(v -> NN.softplus(v[0], -1.5, 4), rand(14, -5, 5, 40));
        }
    }

    @Test
    void piecewiseLinearActivations() {
        try (Scope s = Scope.open()) {
            Tensor x = rand(21, -3, 3, 6, 9);   // random: none within the differences' step of a kink
            ok(v -> NN.leakyRelu(v[0], 0.01), x);
            ok(v -> NN.leakyRelu(v[0], -0.7), x);
            ok(v -> NN.hardtanh(v[0], -1, 1), x);
            ok(v -> NN.hardtanh(v[0], -0.5, 2), x);
            ok(v -> NN.relu6(v[0].mul(3)), x);
            ok(v -> v[0].clamp(-1, 0.5), x);
            ok(v -> v[0].clamp(0, Double.POSITIVE_INFINITY), x);
            ok(v -> v[0].clamp(Double.NEGATIVE_INFINITY, 0.25), x);
            ok(v -> v[0].abs(), x);
        }
    }

    @Test
    void maximumAndMinimumWithBroadcasting() {
        try (Scope s = Scope.open()) {
            int[][][] shapes = {{{4, 5}, {4, 5}}, {{3, 1, 5}, {1, 4, 1}}, {{5}, {3, 5}}, {{1}, {6}}};
            int seed = 30;
            for (int[][] sh : shapes) {
                Tensor a = rand2(seed++, sh[0]), b = rand2(seed++, sh[1]);
                ok(v -> v[0].maximum(v[1]), a, b);
                ok(v -> v[0].minimum(v[1]), a, b);
                ok(v -> v[0].maximum(v[1]).mul(v[0].minimum(v[1])), a, b);
            }
        }
    }

    private static double[] grad(java.util.function.Function<Var, Var> f, double... x) {
        try (Scope s = Scope.open()) {
            Var v = Var.param(Tensor.of(x, x.length).to(DType.F64));
            f.apply(v).sum().backward();
            return v.grad().toDoubleArray();
        }
    }

    /** The conventions at the kinks and at NaN, as torch 1.13 prints them (TorchActivationsTest compares the rest). */
    @Test
    void gradientsAtBoundsTiesZeroAndNaN() {
        double nan = Double.NaN;
        // hardtanh's gradient is 0 at the bounds and passes through NaN; clamp's passes at the bounds and is 0 for NaN
        assertArrayEquals(new double[]{0, 1, 0, 1, 0}, grad(v -> NN.hardtanh(v, -1, 1), -1, 0.5, 1, nan, 3));
        assertArrayEquals(new double[]{1, 1, 1, 0, 0}, grad(v -> v.clamp(-1, 1), -1, 0.5, 1, nan, 3));
        // min > max: torch's clamp gives max everywhere and no gradient
        assertArrayEquals(new double[]{0, 0, 0}, grad(v -> v.clamp(2, 1), 0, 1.5, 3));
        // a tie keeps x, so a zero keeps its sign at a bound of zero, as torch 1.13 prints (clamp(-0.0, 0, 1) is -0.0,
        // clamp(0.0, -1, -0.0) is 0.0; Math.max / Math.min gave the bound's zero); assertArrayEquals compares the bits
        for (DType dt : new DType[]{DType.F64, DType.F32})
            try (Scope s = Scope.open()) {
                Tensor z = Tensor.of(new double[]{-0.0, 0.0, -0.0, 0.0}, 4).to(dt);
                assertArrayEquals(new double[]{-0.0, 0.0, -0.0, 0.0}, Activation.clamp(z, 0, 1).toDoubleArray(), dt + " clamp [0, 1]");
                assertArrayEquals(new double[]{-0.0, 0.0, -0.0, 0.0}, Activation.clamp(z, -0.0, 1).toDoubleArray(), dt + " clamp [-0, 1]");
                assertArrayEquals(new double[]{-0.0, 0.0, -0.0, 0.0}, Activation.clamp(z, -1, -0.0).toDoubleArray(), dt + " clamp [-1, -0]");
                assertArrayEquals(new double[]{-0.0, 0.0, -0.0, 0.0}, Activation.clamp(z, -1, 0).toDoubleArray(), dt + " clamp [-1, 0]");
                assertArrayEquals(new double[]{-0.0, 0.0, -0.0, 0.0}, NN.relu6(Var.of(z)).value().toDoubleArray(), dt + " relu6");
                assertArrayEquals(new double[]{-0.0, 0.0, -0.0, 0.0}, Var.of(z).clamp(0, Double.POSITIVE_INFINITY).value().toDoubleArray(), dt + " clamp_min 0");
                assertArrayEquals(new double[]{0.5, 0.5, 0.5}, Activation.clamp(Tensor.of(new double[]{-0.0, 0.0, 7}, 3).to(dt), 0.5, -1 + 1.5).toDoubleArray());
            }
        // abs: sgn, 0 at +-0 and at NaN; leaky ReLU: the slope at 0 and for NaN
        assertArrayEquals(new double[]{-1, 0, 0, 1, 0}, grad(Var::abs, -2, -0.0, 0, 2, nan));
        assertArrayEquals(new double[]{0.1, 0.1, 1, 0.1}, grad(v -> NN.leakyRelu(v, 0.1), -2, 0, 2, nan));
        // elu at 0 takes the negative side's alpha exp(0), and passes a NaN's gradient as the positive side does
        assertArrayEquals(new double[]{1.5, 1, 1}, grad(v -> NN.elu(v, 1.5), 0, 2, nan));
        // maximum / minimum: ties share the gradient in half; where either is NaN both get it all
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.of(new double[]{1, 2, 3, nan, 1, nan}, 6).to(DType.F64));
            Var b = Var.param(Tensor.of(new double[]{1, 1, 4, 1, nan, nan}, 6).to(DType.F64));
            Var y = a.maximum(b);
            assertArrayEquals(new double[]{1, 2, 4, nan, nan, nan}, y.value().toDoubleArray());
            y.sum().backward();
            assertArrayEquals(new double[]{0.5, 1, 0, 1, 1, 1}, a.grad().toDoubleArray());
            assertArrayEquals(new double[]{0.5, 0, 1, 1, 1, 1}, b.grad().toDoubleArray());
            a.zeroGrad(); b.zeroGrad();
            a.minimum(b).sum().backward();
            assertArrayEquals(new double[]{0.5, 0, 1, 1, 1, 1}, a.grad().toDoubleArray());
            assertArrayEquals(new double[]{0.5, 1, 0, 1, 1, 1}, b.grad().toDoubleArray());
        }
        // an infinite gradient reaches a tie as inf / 2 and the smaller input as an exact 0 (torch's masked_fill), not inf * 0
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.of(new double[]{1, 0}, 2).to(DType.F64)), b = Var.param(Tensor.of(new double[]{1, 5}, 2).to(DType.F64));
            a.maximum(b).backward(Tensor.of(new double[]{Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY}, 2).to(DType.F64));
            assertArrayEquals(new double[]{Double.POSITIVE_INFINITY, 0}, a.grad().toDoubleArray());
        }
    }

    @Test
    void batchNorm1dOnBothLayouts() {
        try (Scope s = Scope.open()) {
            Tensor g = rand(41, 0.5, 1.5, 3), b = rand(42, -0.5, 0.5, 3);
            for (int[] shape : new int[][]{{5, 3}, {4, 3, 6}}) {
                Tensor x = rand(43, -2, 2, shape);
                ok(v -> NN.batchNorm1d(v[0], v[1], v[2], null, null, true, 0.1, 1e-5), x, g, b);
                ok(v -> NN.batchNorm1d(v[0], null, null, null, null, true, 0.1, 1e-3), x);
                Tensor rm = rand(44, -1, 1, 3), rv = rand(45, 0.5, 2, 3);
                ok(v -> NN.batchNorm1d(v[0], v[1], v[2], rm, rv, false, 0.1, 1e-5), x, g, b);
            }
        }
    }

    /** [N, C] and [N, C, L] normalise exactly as batchNorm2d over [N, C, L, 1] does: values, running statistics, gradients. */
    @Test
    void batchNorm1dIsBatchNorm2dOnAReshapedView() {
        try (Scope s = Scope.open()) {
            Tensor x = rand(51, -2, 2, 4, 3, 5);
            Var x1 = Var.param(x.copy()), x2 = Var.param(x.reshape(4, 3, 5, 1).copy());
            Var g1 = Var.param(rand(52, 0.5, 1.5, 3)), b1 = Var.param(rand(53, -1, 1, 3));
            Var g2 = Var.param(g1.value().copy()), b2 = Var.param(b1.value().copy());
            Tensor rm1 = Tensor.zeros(DType.F64, 3), rv1 = Tensor.ones(DType.F64, 3), rm2 = rm1.copy(), rv2 = rv1.copy();
            Var y1 = NN.batchNorm1d(x1, g1, b1, rm1, rv1, true, 0.3, 1e-4);
            Var y2 = NN.batchNorm2d(x2, g2, b2, rm2, rv2, true, 0.3, 1e-4);
            assertArrayEquals(new int[]{4, 3, 5}, y1.shape());
            assertArrayEquals(y2.value().toDoubleArray(), y1.value().toDoubleArray());
            assertArrayEquals(rm2.toDoubleArray(), rm1.toDoubleArray());
            assertArrayEquals(rv2.toDoubleArray(), rv1.toDoubleArray());
            Tensor w = rand(54, -1, 1, 4, 3, 5);
            y1.mul(Var.of(w)).sum().backward();
            y2.mul(Var.of(w.reshape(4, 3, 5, 1))).sum().backward();
            assertArrayEquals(x2.grad().toDoubleArray(), x1.grad().toDoubleArray());
            assertArrayEquals(g2.grad().toDoubleArray(), g1.grad().toDoubleArray());
            assertArrayEquals(b2.grad().toDoubleArray(), b1.grad().toDoubleArray());
        }
    }

    @Test
    void badParametersAndShapesAreRefusedByName() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(rand2(61, 2, 3));
            assertMessage("leakyRelu: negative slope must be finite", () -> NN.leakyRelu(x, Double.NaN));
            assertMessage("elu: alpha must be finite", () -> NN.elu(x, Double.POSITIVE_INFINITY));
            assertMessage("softplus: beta must be finite and non-zero", () -> NN.softplus(x, 0, 20));
            assertMessage("softplus: threshold must not be NaN", () -> NN.softplus(x, 1, Double.NaN));
            assertMessage("hardtanh: min must be <= max", () -> NN.hardtanh(x, 1, -1));
            assertMessage("clamp: bounds must not be NaN", () -> x.clamp(Double.NaN, 1));
            assertMessage("shape mismatch", () -> x.maximum(Var.of(rand2(62, 4))));
            assertMessage("wrong rank: batchNorm1d needs input [N, C] or [N, C, L], got [2, 3, 4, 5]",
                    () -> NN.batchNorm1d(Var.of(rand2(63, 2, 3, 4, 5)), null, null, null, null, true, 0.1, 1e-5));
            assertMessage("channel mismatch", () -> NN.batchNorm1d(Var.of(rand2(64, 4, 2)), Var.of(rand2(65, 3)), Var.of(rand2(66, 3)), null, null, true, 0.1, 1e-5));
            assertMessage("batchNorm1d: gamma and beta are given together",
                    () -> NN.batchNorm1d(Var.of(rand2(67, 4, 3)), Var.of(rand2(68, 3)), null, null, null, true, 0.1, 1e-5));
            assertMessage("batchNorm1d: expected more than 1 value per channel when training, got input [1, 3]:",
                    () -> NN.batchNorm1d(Var.of(rand2(69, 1, 3)), null, null, null, null, true, 0.1, 1e-5));
            assertMessage("batchNorm1d: expected more than 1 value per channel when training, got input [1, 3, 1]:",
                    () -> NN.batchNorm1d(Var.of(rand2(70, 1, 3, 1)), Var.of(rand2(71, 3)), Var.of(rand2(72, 3)), null, null, true, 0.1, 1e-5));
        }
    }

    static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), e.getMessage());
    }
}
