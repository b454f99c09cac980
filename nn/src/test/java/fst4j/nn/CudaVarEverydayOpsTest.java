package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
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
 * and gradients (float32, on the device); the CPU loops (flip, indexSelect, gather, sin, cos, log1p, expm1, prod,
 * cumsum) refuse a CUDA tensor with an UnsupportedOperationException naming the op and CUDA. Against the device or the
 * host emulator (skipped with the reason otherwise).
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

    @Test
    void cpuLoopsRefuseCudaTensorsByName() {
        Map<String, UnaryOperator<Var>> m = new LinkedHashMap<>();
        m.put("Flip", x -> x.flip(0));
        m.put("IndexSelect", x -> x.indexSelect(1, new int[]{0}));
        m.put("Gather", x -> x.gather(0, new int[]{0}, new int[]{1, 1, 1}));
        m.put("Sin", Var::sin);
        m.put("Cos", Var::cos);
        m.put("Log1p", Var::log1p);
        m.put("Expm1", Var::expm1);
        m.put("Prod", x -> x.prod(1, false));
        m.put("Cumsum", x -> x.cumsum(0));
        for (Map.Entry<String, UnaryOperator<Var>> e : m.entrySet())
            try (Scope s = Scope.open()) {
                Var x = Var.param(input().to(Device.CUDA));
                UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class, () -> e.getValue().apply(x), e.getKey());
                assertTrue(u.getMessage().startsWith(e.getKey() + " ") && u.getMessage().contains("CUDA"), u.getMessage());
            }
    }
}
