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

    /** NaN where NaN, infinities exact, else within 2 float ulps or 1e-6 of the largest finite |value| (sums past 256 terms). */
    static void near(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        double scale = 0;
        for (float w : want) if (Float.isFinite(w)) scale = Math.max(scale, Math.abs(w));
        for (int i = 0; i < want.length; i++) {
            float w = want[i], g = got[i];
            if (Float.isNaN(w) || Float.isNaN(g)) { assertTrue(Float.isNaN(w) && Float.isNaN(g), what + " at " + i + ": " + g + " vs " + w); continue; }
            if (Float.isInfinite(w) || Float.isInfinite(g)) { assertEquals(w, g, what + " at " + i); continue; }
            assertEquals(w, g, Math.max(2 * Math.ulp(w), 1e-6 * scale), what + " at " + i);
        }
    }

    /** {y, dx} of sum(f(x) * w) with x (any layout) on device d. */
    private static float[][] run(BiFunction<Var, Device, Var> f, Tensor x, Device d) {
        Var xv = Var.param(x.to(d));
        Var y = f.apply(xv, d);
        assertEquals(d, y.value().device());
        try (Tensor w = new Rng(99).normal(0, 1, y.shape())) {
            y.mul(Var.of(w.to(d))).sum().backward();
        }
        assertEquals(d, xv.grad().device());
        return new float[][]{y.value().toFloatArray(), xv.grad().toFloatArray()};
    }

    /** Normal data, positive where positive says (log, sqrt), with a NaN, an infinity and a zero among 1031 values. */
    private static Tensor data(Rng rng, boolean positive, int... shape) {
        float[] v = rng.normal(0, 2, shape).toFloatArray();
        for (int i = 0; i < v.length; i++) if (positive) v[i] = Math.abs(v[i]) + 0.01f;
        if (v.length > 100) { v[7] = Float.NaN; v[50] = positive ? Float.POSITIVE_INFINITY : Float.NEGATIVE_INFINITY; v[90] = 0f; }
        return Tensor.of(v, shape);
    }

    private static void compare(String name, boolean positive, BiFunction<Var, Device, Var> f) {
        int[][] shapes = {{1}, {17}, {1031}, {3, 5, 7}};
        for (int[] shape : shapes)
            try (Scope s = Scope.open()) {
                Tensor x = data(new Rng(name.hashCode() + shape.length * 31 + shape[0]), positive, shape);
                if (shape.length == 3) x = x.permute(2, 0, 1);   // a non-contiguous [7, 3, 5]
                float[][] cpu = run(f, x, Device.CPU), gpu = run(f, x, Device.CUDA);
                near(cpu[0], gpu[0], name + " " + Shape.str(x.shape()) + " value");
                near(cpu[1], gpu[1], name + " " + Shape.str(x.shape()) + " gradient");
            }
    }

    @Test
    void elementwiseMathForwardAndBackward() {
        compare("exp", false, (x, d) -> x.exp());
        compare("log", true, (x, d) -> x.log());
        compare("sqrt", true, (x, d) -> x.sqrt());
        compare("pow 3", false, (x, d) -> x.pow(3));
        compare("pow -0.5", true, (x, d) -> x.pow(-0.5));
        compare("sigmoid", false, (x, d) -> x.sigmoid());
        compare("tanh", false, (x, d) -> x.tanh());
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
        compare("max all", false, (x, d) -> x.max(false));
        compare("max axis 0", false, (x, d) -> x.max(true, 0));
        compare("max last axis", false, (x, d) -> x.max(false, -1));
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
