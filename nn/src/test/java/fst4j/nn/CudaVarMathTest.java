package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.function.BiFunction;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The differentiable math and reduction ops (Var.exp, log, sqrt, pow, sigmoid, tanh, where, max, var) on a CUDA graph
 * against the same graph on the CPU: values and gradients, on CUDA, at sizes 1, 17 and 1031 and on a permuted input,
 * with NaN and infinities propagating as on the CPU. Against the device or the host emulator (skipped otherwise).
 */
class CudaVarMathTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** {y, dx, w} of sum(f(x) * w) with x (any layout) on device d. */
    private static float[][] run(BiFunction<Var, Device, Var> f, Tensor x, Device d) {
        Var xv = Var.param(x.to(d));
        Var y = f.apply(xv, d);
        assertEquals(d, y.value().device());
        float[] wv;
        try (Tensor w = new Rng(99).normal(0, 1, y.shape())) {
            y.mul(Var.of(w.to(d))).sum().backward();
            wv = w.toFloatArray();
        }
        assertEquals(d, xv.grad().device());
        return new float[][]{y.value().toFloatArray(), xv.grad().toFloatArray(), wv};
    }

    /** Normal data, positive where positive says (log, sqrt), with a NaN, an infinity and a zero among 1031 values. */
    private static Tensor data(Rng rng, boolean positive, int... shape) {
        float[] v = rng.normal(0, 2, shape).toFloatArray();
        for (int i = 0; i < v.length; i++) if (positive) v[i] = Math.abs(v[i]) + 0.01f;
        if (v.length > 100) { v[7] = Float.NaN; v[50] = positive ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY; v[90] = 0f; }
        return Tensor.of(v, shape);
    }

    /**
     * Each element as on the CPU, NaN where NaN and infinities exact. Values within 2 ulps: both devices compute one
     * formula per element in double and round once (exp / log may differ in the last double bit between libm, Java and
     * CUDA, which moves the float by at most one), and the reductions here (max; var of at most 105 values) add in the
     * CPU's order below 256 values per output (fst4j_bodies.cuh). Gradients within 4 ulps: a one-ulp difference in y
     * passes through at most three correctly rounded float operations (g * y, g / y * 0.5, g * p * x^(p-1)), each
     * adding half an ulp. Where the backward forms 1 - y (sigmoid's y (1 - y)) or 1 - y^2 (tanh's), one ulp of y near 1
     * is 2^-24 absolute there: cancel = 2^-23 times |w| (the upstream gradient) per element covers both. (It was 1e-6 of
     * the largest value: 6.6e-4 absolute where exp of the 1031 values reaches 660, so small elements went unchecked.)
     */
    private static void compare(String name, boolean positive, double valueUlps, double gradUlps, double cancel, BiFunction<Var, Device, Var> f) {
        int[][] shapes = {{1}, {17}, {1031}, {3, 5, 7}};
        for (int[] shape : shapes)
            try (Scope s = Scope.open()) {
                Tensor x = data(new Rng(name.hashCode() + shape.length * 31 + shape[0]), positive, shape);
                if (shape.length == 3) x = x.permute(2, 0, 1);   // a non-contiguous [7, 3, 5]
                float[][] cpu = run(f, x, Device.CPU), gpu = run(f, x, Device.CUDA);
                Ulps.assertNear(cpu[0], gpu[0], valueUlps, name + " " + Shape.str(x.shape()) + " value");
                Ulps.assertNear(cpu[1], gpu[1], gradUlps, cpu[1].length == cpu[2].length ? Ulps.scaled(cpu[2], cancel) : null,
                        name + " " + Shape.str(x.shape()) + " gradient");
            }
    }

    private static void compare(String name, boolean positive, BiFunction<Var, Device, Var> f) { compare(name, positive, 2, 4, 0, f); }

    @Test
    void elementwiseMathForwardAndBackward() {
        compare("exp", false, (x, d) -> x.exp());
        compare("log", true, (x, d) -> x.log());
        compare("sqrt", true, (x, d) -> x.sqrt());
        compare("pow 3", false, (x, d) -> x.pow(3));
        compare("pow -0.5", true, (x, d) -> x.pow(-0.5));
        compare("sigmoid", false, 2, 4, 0x1p-23, (x, d) -> x.sigmoid());
        compare("tanh", false, 2, 4, 0x1p-23, (x, d) -> x.tanh());
    }

    @Test
    void whereForwardAndBackward() {
        compare("where", false, (x, d) -> {
            int[] s = x.shape();
            try (Tensor c0 = new Rng(5).uniform(-1, 1, s); Tensor c = fst4j.tensor.Elementwise.gt(c0, Tensor.scalar(0)); Tensor cd = c.to(d)) {
                Var y = x.mul(-2.0);
                return Var.where(cd, x.exp(), y);   // both branches need their gradients
            }
        });
    }

    @Test
    void maxAndVarForwardAndBackward() {
        compare("max all", false, 0, 0, 0, (x, d) -> x.max(false));
        compare("max axis 0", false, 0, 0, 0, (x, d) -> x.max(true, 0));
        compare("max last axis", false, 0, 0, 0, (x, d) -> x.max(false, -1));
        compare("var all", false, (x, d) -> x.var(false));
        compare("var axis 0", false, (x, d) -> x.var(true, 0));
        compare("var last axis", false, (x, d) -> x.var(false, -1));
        // ties: every maximum shares the gradient (Max's backward: eq, sum, div on the device)
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1, 3, 3, -0f, 0f, 3, 2, 0f}, 2, 4);
            float[][] cpu = run((v, d) -> v.max(false, 1), x, Device.CPU), gpu = run((v, d) -> v.max(false, 1), x, Device.CUDA);
            assertArrayEquals(cpu[0], gpu[0]);
            assertArrayEquals(cpu[1], gpu[1]);
        }
    }
}
