package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Var's shape, indexing and math ops on CUDA tensors: those that are composites of device ops give the CPU's values
 * and gradients (float32, on the device, to 1e-5); those with kernels of their own (flip, indexSelect, gather through
 * the index map, sin, cos, log1p, expm1, prod, cumsum) give the CPU's bits, value and gradient; float64 and bad indices
 * are refused by name. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaVarEverydayOpsTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    static Map<String, UnaryOperator<Var>> composites() {
        Map<String, UnaryOperator<Var>> m = new LinkedHashMap<>();
        m.put("squeeze", x -> x.unsqueeze(0).squeeze().flatten(0, 1).unflatten(0, 2, 3));
        m.put("split", x -> Var.cat(-1, x.split(new int[]{3, 2}, -1)[1], x.chunk(2, -1)[0].mul(2)));
        m.put("unbind", x -> Var.stack(0, x.unbind(2)[1], x.unbind(2)[3]));
        m.put("roll", x -> x.roll(new int[]{1, -3}, new int[]{0, 2}));
        m.put("repeat", x -> x.repeat(2, 1, 1, 2));
        m.put("pad_const", x -> NN.pad(x, new int[]{1, -1, 2, 0}, 0.5));
        m.put("pad_reflect", x -> NN.pad(x, new int[]{2, 1, 1, 1}, NN.PadMode.REFLECT, 0));
        m.put("pad_replicate", x -> NN.pad(x, new int[]{2, 1, 1, 1}, NN.PadMode.REPLICATE, 0));
        m.put("pad_circular", x -> NN.pad(x, new int[]{2, 1, 1, 1}, NN.PadMode.CIRCULAR, 0));
        m.put("masked_fill", x -> x.maskedFill(Tensor.of(new float[]{1, 0, 0, 1, 0}, 5).to(x.value().device()), -2));
        m.put("min", x -> x.min(false, 1));
        m.put("reciprocal", x -> x.add(3).reciprocal());
        m.put("rsqrt", x -> x.add(3).rsqrt());
        m.put("square", Var::square);
        m.put("scalars", x -> x.sub(1).rsub(2).div(4));
        m.put("pow", x -> x.add(3).pow(x.slice(0, 0, 1)));
        m.put("std", x -> x.std(1, false, -1));
        m.put("logsumexp", x -> x.logsumexp(true, 0, 2));
        for (double p : new double[]{1, 2, 3, 0.5, 1.5, Double.POSITIVE_INFINITY}) m.put("norm_" + p, x -> x.norm(p, false, -1));
        return m;
    }

    static Tensor input() {
        SplittableRandom r = new SplittableRandom(5);
        float[] v = new float[2 * 3 * 5];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-2, 2);
        v[5] = v[6] = v[7] = v[8] = v[9] = 0;   // a zero row for the norms' gradients at 0
        return Tensor.of(v, 2, 3, 5);
    }

    @Test
    void compositesGiveTheCpusValuesAndGradients() {
        for (Map.Entry<String, UnaryOperator<Var>> e : composites().entrySet())
            try (Scope s = Scope.open()) {
                Tensor x = input();
                Var cpu = Var.param(x.copy()), gpu = Var.param(x.to(Device.CUDA));
                Var yc = e.getValue().apply(cpu), yg = e.getValue().apply(gpu);
                assertEquals(Device.CUDA, yg.value().device(), e.getKey());
                assertArrayEquals(yc.shape(), yg.shape(), e.getKey());
                Tensor w = Tensor.empty(yc.shape());
                for (long i = 0; i < w.numel(); i++) w.setFlat(i, 1 + (i % 5) * 0.5);
                yc.mul(Var.of(w)).sum().backward();
                yg.mul(Var.of(w.to(Device.CUDA))).sum().backward();
                assertEquals(Device.CUDA, gpu.grad().device(), e.getKey());
                close(e.getKey(), yc.value().toFloatArray(), yg.value().toFloatArray());
                close(e.getKey() + " gradient", cpu.grad().toFloatArray(), gpu.grad().toFloatArray());
            }
    }

    static void close(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(want[i])) { assertTrue(Float.isNaN(got[i]), what + " at " + i); continue; }
            assertEquals(want[i], got[i], 1e-5 * Math.max(1, Math.abs(want[i])), what + " at " + i);
        }
    }

    @Test
    void argmaxAndArgminOfACudaTensor() {
        try (Scope s = Scope.open()) {
            Var cpu = Var.of(input()), gpu = Var.of(input().to(Device.CUDA));
            assertArrayEquals(cpu.argmax(-1, false), gpu.argmax(-1, false));
            assertArrayEquals(cpu.argmin(1, true), gpu.argmin(1, true));
        }
    }

    /**
     * The ops with kernels of their own (index map, sin ... expm1, prod, cumsum), at awkward shapes: size-1 axes,
     * negative axes, repeated indices, zeros in prod's lanes (none, one, several).
     */
    static Map<String, UnaryOperator<Var>> kernelOps() {
        Map<String, UnaryOperator<Var>> m = new LinkedHashMap<>();
        m.put("flip_0", x -> x.flip(0));
        m.put("flip_-1_1", x -> x.flip(-1, 1));
        m.put("flip_size1", x -> x.unsqueeze(1).flip(1, 0));
        m.put("index_select_repeated", x -> x.indexSelect(1, new int[]{2, 0, 2, 2}));
        m.put("index_select_-1", x -> x.indexSelect(-1, new int[]{4, 4, 0}));
        m.put("index_select_size1", x -> x.unsqueeze(0).indexSelect(0, new int[]{0, 0}));
        m.put("gather_0", x -> x.gather(0, new int[]{1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 1, 1}, new int[]{3, 2, 2}));
        m.put("gather_-1_repeated", x -> x.gather(-1, new int[]{0, 0, 0, 4, 3, 3, 0, 1, 2, 2, 2, 2}, new int[]{2, 2, 3}));
        m.put("sin", Var::sin);
        m.put("cos", Var::cos);
        m.put("log1p", x -> x.mul(0.45).log1p());
        m.put("expm1", Var::expm1);
        m.put("prod_1", x -> x.prod(1, false));
        m.put("prod_-1_keep", x -> x.prod(-1, true));
        m.put("prod_0", x -> x.prod(0, false));
        m.put("prod_all", x -> x.slice(2, 1, 3).prod());
        m.put("prod_size1", x -> x.unsqueeze(2).prod(2, false));
        m.put("cumsum_0", x -> x.cumsum(0));
        m.put("cumsum_-1", x -> x.cumsum(-1));
        m.put("cumsum_1", x -> x.cumsum(1));
        m.put("cumsum_size1", x -> x.unsqueeze(-1).cumsum(-1));
        return m;
    }

    /** [2, 3, 5], non-contiguous (a permuted [5, 3, 2]); lanes along -1 with no zero, one zero and all zeros. */
    static Tensor awkwardInput() {
        SplittableRandom r = new SplittableRandom(9);
        float[] v = new float[30];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-2, 2);
        Tensor base = Tensor.of(v, 2, 3, 5);
        for (int k = 0; k < 5; k++) base.set(0, 0, 1, k);   // row [0, 1, :] all zeros
        base.set(0, 1, 2, 3);                                // row [1, 2, :] one zero
        base.set(0, 1, 0, 1);                                // row [1, 0, :] one zero
        Tensor p = base.permute(2, 1, 0).contiguous();       // [5, 3, 2], then viewed back as [2, 3, 5]
        base.close();
        return p.permute(2, 1, 0);
    }

    static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToIntBits(v[i]);
        return b;
    }

    @Test
    void kernelOpsGiveTheCpusBitsAndGradients() {
        for (Map.Entry<String, UnaryOperator<Var>> e : kernelOps().entrySet())
            try (Scope s = Scope.open()) {
                Tensor x = awkwardInput();
                assertFalse(x.isContiguous());
                Var cpu = Var.param(x.copy()), gpu = Var.param(x.to(Device.CUDA));
                Var yc = e.getValue().apply(cpu), yg = e.getValue().apply(gpu);
                assertEquals(Device.CUDA, yg.value().device(), e.getKey());
                assertArrayEquals(yc.shape(), yg.shape(), e.getKey());
                Tensor w = Tensor.empty(yc.shape());
                for (long i = 0; i < w.numel(); i++) w.setFlat(i, 1 + (i % 7) * 0.37);
                yc.mul(Var.of(w)).sum().backward();
                yg.mul(Var.of(w.to(Device.CUDA))).sum().backward();
                assertEquals(Device.CUDA, gpu.grad().device(), e.getKey());
                assertArrayEquals(bits(yc.value().toFloatArray()), bits(yg.value().toFloatArray()), e.getKey());
                assertArrayEquals(bits(cpu.grad().toFloatArray()), bits(gpu.grad().toFloatArray()), e.getKey() + " gradient");
            }
    }

    /** Values where float32 rounding of the double results is delicate: large arguments, tiny ones, -0, infinities. */
    @Test
    void elementwiseMathGivesTheCpusBitsAtEdgeValues() {
        float[] v = {0f, -0f, 1e-30f, -1e-8f, 3.1415927f, 1e4f, -1e6f, 88.7f, 89f, -0.999999f, Float.MAX_VALUE,
                Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 7.5e-39f, 0.5f, -20f};
        SplittableRandom r = new SplittableRandom(3);
        float[] many = new float[4096];
        for (int i = 0; i < many.length; i++) many[i] = i < v.length ? v[i] : (float) (r.nextDouble(-50, 50) * Math.pow(10, r.nextInt(-6, 3)));
        Map<String, UnaryOperator<Var>> m = new LinkedHashMap<>();
        m.put("sin", Var::sin);
        m.put("cos", Var::cos);
        m.put("log1p", Var::log1p);
        m.put("expm1", Var::expm1);
        for (Map.Entry<String, UnaryOperator<Var>> e : m.entrySet())
            try (Scope s = Scope.open()) {
                Var cpu = Var.param(Tensor.of(many, many.length)), gpu = Var.param(Tensor.of(many, many.length).to(Device.CUDA));
                Var yc = e.getValue().apply(cpu), yg = e.getValue().apply(gpu);
                assertArrayEquals(bits(yc.value().toFloatArray()), bits(yg.value().toFloatArray()), e.getKey());
                yc.sum().backward();
                yg.sum().backward();
                assertArrayEquals(bits(cpu.grad().toFloatArray()), bits(gpu.grad().toFloatArray()), e.getKey() + " gradient");
            }
    }

    @Test
    void refusalsOnCudaNameTheProblem() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(input().to(Device.CUDA));
            IndexOutOfBoundsException i = assertThrows(IndexOutOfBoundsException.class, () -> x.indexSelect(1, new int[]{0, 3}));
            assertTrue(i.getMessage().startsWith("indexSelect: index 3 (at 1) out of range for axis 1 of size 3"), i.getMessage());
            i = assertThrows(IndexOutOfBoundsException.class, () -> x.gather(-1, new int[]{0, -1}, new int[]{1, 1, 2}));
            assertTrue(i.getMessage().startsWith("gather: index -1 (at 1) out of range for axis 2 of size 5"), i.getMessage());
            Tensor d64 = Tensor.zeros(Device.CUDA, DType.F64, 2, 3);
            Map<String, UnaryOperator<Var>> m = new LinkedHashMap<>();
            m.put("Flip", v -> v.flip(0));
            m.put("IndexSelect", v -> v.indexSelect(0, new int[]{1}));
            m.put("Gather", v -> v.gather(0, new int[]{1}, new int[]{1, 1}));
            m.put("sin", Var::sin);
            m.put("cos", Var::cos);
            m.put("log1p", Var::log1p);
            m.put("expm1", Var::expm1);
            m.put("prod", v -> v.prod(1, false));
            m.put("cumsum", v -> v.cumsum(0));
            for (Map.Entry<String, UnaryOperator<Var>> e : m.entrySet()) {
                UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class, () -> e.getValue().apply(Var.param(d64)), e.getKey());
                assertEquals(e.getKey() + " on CUDA supports float32 only, got f64", u.getMessage());
            }
            // a gradient on the host for a CUDA input (and the other way round) is a device mismatch, not a silent copy
            Tensor gh = Tensor.ones(2, 5);
            IllegalArgumentException d = assertThrows(IllegalArgumentException.class,
                    () -> fst4j.tensor.Lanes.prodBackward(x.value(), gh, 2, 3, 5));
            assertTrue(d.getMessage().startsWith("device mismatch: prodBackward"), d.getMessage());
            d = assertThrows(IllegalArgumentException.class, () -> fst4j.tensor.Elementwise.sinBackward(gh, x.value().slice(1, 0, 1).reshape(2, 5)));
            assertTrue(d.getMessage().startsWith("device mismatch: sinBackward"), d.getMessage());
        }
    }
}
