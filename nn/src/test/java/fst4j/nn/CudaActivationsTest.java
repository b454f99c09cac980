package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The activations (TorchActivationsTest's list: gelu in both forms, silu, mish, leaky ReLU, ELU, softplus, hardtanh,
 * relu6, clamp, abs) and Var.maximum / minimum on a CUDA graph against the same graph on the CPU: values and gradients,
 * at sizes 1, 17 and 1031 and on a permuted input, with NaN, infinities, zeros, the bounds and values past float's exp
 * range among the inputs; BatchNorm1d moved to CUDA against the CPU module. Against the device or the host emulator
 * (skipped otherwise).
 */
class CudaActivationsTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** {y, dx} of sum(f(x) * w) with x (any layout) on device d. */
    private static float[][] run(UnaryOperator<Var> f, Tensor x, Device d) {
        Var xv = Var.param(x.to(d));
        Var y = f.apply(xv);
        assertEquals(d, y.value().device());
        try (Tensor w = new Rng(99).normal(0, 1, y.shape())) {
            y.mul(Var.of(w.to(d))).sum().backward();
        }
        assertEquals(d, xv.grad().device());
        return new float[][]{y.value().toFloatArray(), xv.grad().toFloatArray()};
    }

    /** Normal data (sd 4) with TorchActivationsTest's awkward values in its first places when it is long enough. */
    private static Tensor data(Rng rng, int... shape) {
        float[] v = rng.normal(0, 4, shape).toFloatArray();
        if (v.length > 100) for (int i = 0; i < TorchActivationsTest.SPECIAL.length; i++) v[3 * i] = (float) TorchActivationsTest.SPECIAL[i];
        return Tensor.of(v, shape);
    }

    private static void compare(String name, UnaryOperator<Var> f) {
        int[][] shapes = {{1}, {17}, {1031}, {3, 5, 7}};
        for (int[] shape : shapes)
            try (Scope s = Scope.open()) {
                Tensor x = data(new Rng(name.hashCode() + shape.length * 31 + shape[0]), shape);
                if (shape.length == 3) x = x.permute(2, 0, 1);   // a non-contiguous [7, 3, 5]
                float[][] cpu = run(f, x, Device.CPU), gpu = run(f, x, Device.CUDA);
                ulps(cpu[0], gpu[0], name + " " + Shape.str(x.shape()) + " value");
                ulps(cpu[1], gpu[1], name + " " + Shape.str(x.shape()) + " gradient");
            }
    }

    /**
     * Element for element within 2 ulps (of the larger of the two, for a float subnormal in one): both devices
     * compute the same formula in double and round once, and the gradient of sum(y * w) reaches them as w itself, so
     * only a last-bit difference of libm and Java (exp, tanh, erfc) may show. (CudaVarMathTest's former tolerance was
     * relative to the largest value, 1e-3 with the awkward inputs' 1000 among them, which let a wrong formula pass.)
     */
    static void ulps(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            float w = want[i], g = got[i];
            if (Float.isNaN(w) || Float.isNaN(g)) { assertTrue(Float.isNaN(w) && Float.isNaN(g), what + " at " + i + ": " + g + " vs " + w); continue; }
            if (Float.isInfinite(w) || Float.isInfinite(g)) { assertEquals(w, g, what + " at " + i); continue; }
            assertEquals(w, g, 2 * Math.max(Math.ulp(w), Math.ulp(g)), what + " at " + i);
        }
    }

    @Test
    void activationsForwardAndBackward() {
        for (var e : TorchActivationsTest.ops().entrySet()) {
            @SuppressWarnings("unchecked") UnaryOperator<Var> f = (UnaryOperator<Var>) e.getValue()[1];
            compare(e.getKey(), f);
        }
        compare("softplus past exp's float range", x -> NN.softplus(x, 1, 1000));
    }

    @Test
    void maximumAndMinimumWithTiesNaNAndBroadcasting() {
        for (boolean max : new boolean[]{true, false})
            try (Scope s = Scope.open()) {
                float[] av = new Rng(3).normal(0, 1, 4, 6).toFloatArray(), bv = new Rng(4).normal(0, 1, 6).toFloatArray();
                av[0] = bv[0]; av[7] = bv[1]; av[2] = Float.NaN; bv[3] = Float.NaN; av[9] = Float.NaN; bv[3] = Float.NaN; av[4] = Float.POSITIVE_INFINITY;
                float[][][] out = new float[2][][];
                for (int k = 0; k < 2; k++) {
                    Device d = k == 0 ? Device.CPU : Device.CUDA;
                    Var a = Var.param(Tensor.of(av, 4, 6).to(d)), b = Var.param(Tensor.of(bv, 6).to(d));
                    Var y = max ? a.maximum(b) : a.minimum(b);
                    try (Tensor w = new Rng(5).normal(0, 1, 4, 6)) { y.mul(Var.of(w.to(d))).sum().backward(); }
                    out[k] = new float[][]{y.value().toFloatArray(), a.grad().toFloatArray(), b.grad().toFloatArray()};
                }
                for (int j = 0; j < 3; j++) ulps(out[0][j], out[1][j], (max ? "maximum" : "minimum") + " output " + j);
            }
    }

    /**
     * BatchNorm1d moved to CUDA: outputs, gradients and running statistics as the CPU module's, [N, C] and [N, C, L], then
     * eval, bit for bit: with 8 and 20 values per channel (at most 256) the batch norm kernels add in the CPU's order, in
     * double, with the same 1 / sqrt(var + eps) (correctly rounded on both), so nothing may differ. (It was
     * CudaVarMathTest's old tolerance, 1e-6 of the tensor's largest value, which left its small elements unchecked.)
     */
    @Test
    void batchNorm1dOnCuda() {
        for (int[] shape : new int[][]{{8, 3}, {4, 3, 5}})
            try (Scope s = Scope.open(); BatchNorm1d cpu = new BatchNorm1d(3, 0.2, 1e-4); BatchNorm1d gpu = new BatchNorm1d(3, 0.2, 1e-4).to(Device.CUDA)) {
                cpu.gamma().value().copyFrom(Tensor.of(new float[]{0.5f, 1.5f, -1}, 3));
                gpu.gamma().value().copyFrom(Tensor.of(new float[]{0.5f, 1.5f, -1}, 3));
                for (int step = 0; step < 3; step++) {
                    Tensor x = new Rng(10 + step).normal(1, 2, shape);
                    float[][] c = bnStep(cpu, x, Device.CPU), g = bnStep(gpu, x, Device.CUDA);
                    for (int j = 0; j < c.length; j++) Ulps.assertNear(c[j], g[j], 0, "BatchNorm1d " + Shape.str(shape) + " step " + step + " part " + j);
                }
                cpu.eval(); gpu.eval();
                Tensor x = new Rng(20).normal(0, 1, shape);
                Ulps.assertNear(cpu.forward(Var.of(x)).value().toFloatArray(), gpu.forward(Var.of(x.to(Device.CUDA))).value().toFloatArray(), 0, "eval");
            }
    }

    private static float[][] bnStep(BatchNorm1d m, Tensor x, Device d) {
        Var xv = Var.param(x.to(d));
        Var y = m.forward(xv);
        try (Tensor w = new Rng(7).normal(0, 1, y.shape())) { y.mul(Var.of(w.to(d))).sum().backward(); }
        float[][] r = {y.value().toFloatArray(), xv.grad().toFloatArray(), m.gamma().grad().toFloatArray(),
                m.stateDict().get("running_mean").toFloatArray(), m.stateDict().get("running_var").toFloatArray()};
        m.gamma().zeroGrad();
        m.namedParameters().get("bias").zeroGrad();
        return r;
    }

    @Test
    void refusals() {
        try (Scope s = Scope.open()) {
            Var d64 = Var.param(Tensor.zeros(Device.CUDA, DType.F64, 3));
            UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class, () -> NN.gelu(d64));
            assertTrue(u.getMessage().contains("gelu on CUDA supports float32 only"), u.getMessage());
            Var c = Var.param(Tensor.zeros(Device.CUDA, DType.F32, 3)), h = Var.param(Tensor.zeros(3));
            IllegalArgumentException m = assertThrows(IllegalArgumentException.class, () -> c.maximum(h));
            assertTrue(m.getMessage().startsWith("device mismatch"), m.getMessage());
            m = assertThrows(IllegalArgumentException.class, () -> NN.leakyRelu(c, Double.NaN));
            assertTrue(m.getMessage().contains("negative slope must be finite"), m.getMessage());
        }
    }
}
