package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Var.quantile / nanquantile / nanmedian on CUDA float32 give the CPU's bits (values, nanmedian's indices and the input
 * gradient): they are Sort (LineSort on the device), gathers and elementwise ops, each the CPU's bits there. Random
 * lines with ties, -0 / 0, NaN and infinities, along first, middle and last axes and over all elements, every
 * interpolation, q a scalar and an array; float64 on CUDA refused by name with no memory left. Against the device or
 * the host emulator (skipped with the reason otherwise).
 */
class CudaQuantileTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    static Map<String, Function<Var, Var>> ops() {
        Map<String, Function<Var, Var>> m = new LinkedHashMap<>();
        double[] qs = {0, 0.125, 0.3, 0.5, 0.71, 1};
        for (String mode : new String[]{"linear", "lower", "higher", "midpoint", "nearest"}) {
            m.put("quantile_ax1_" + mode, x -> x.quantile(0.3, 1, false, mode));
            m.put("quantile_arr_ax0_keep_" + mode, x -> x.quantile(qs, 0, true, mode));
            m.put("quantile_all_" + mode, x -> x.quantile(qs, null, false, mode));
            m.put("nanquantile_arr_ax-1_" + mode, x -> x.nanquantile(qs, -1, false, mode));
            m.put("nanquantile_all_keep_" + mode, x -> x.nanquantile(0.875, null, true, mode));
        }
        m.put("nanmedian_ax1", x -> x.nanmedian(1, false)[0]);
        m.put("nanmedian_ax-1_keep", x -> x.nanmedian(-1, true)[0]);
        m.put("nanmedian_all", Var::nanmedian);
        return m;
    }

    @Test
    void cudaGivesTheCpusBits() {
        SplittableRandom r = new SplittableRandom(35);
        for (int[] shape : new int[][]{{3, 7, 5}, {2, 40, 3}, {4, 1, 6}})
            for (boolean ties : new boolean[]{true, false}) {
                Tensor x = CudaSortTest.random(r, ties, shape);
                try (Scope s = Scope.open()) {
                    // an all-NaN line along axis 1 of the first batch
                    if (shape[1] > 1) for (int i = 0; i < shape[1]; i++) x.set(Float.NaN, 0, i, 0);
                    for (Map.Entry<String, Function<Var, Var>> e : ops().entrySet()) {
                        String name = java.util.Arrays.toString(shape) + (ties ? " ties " : " spread ") + e.getKey();
                        Var cpu = Var.param(x.copy()), gpu = Var.param(x.to(Device.CUDA));
                        Var yc = e.getValue().apply(cpu), yg = e.getValue().apply(gpu);
                        assertEquals(Device.CUDA, yg.value().device(), name);
                        assertArrayEquals(yc.shape(), yg.shape(), name);
                        CudaSortTest.bits(name + " values", yc.value().toFloatArray(), yg.value().toFloatArray());
                        Tensor w = TorchVarOpsTest.weights(yc);
                        yc.mul(Var.of(w.copy())).sum().backward();
                        yg.mul(Var.of(w.to(Device.CUDA))).sum().backward();
                        assertEquals(Device.CUDA, gpu.grad().device(), name);
                        CudaSortTest.bits(name + " gradient", cpu.grad().toFloatArray(), gpu.grad().toFloatArray());
                    }
                    Var[] mc = Var.of(x.copy()).nanmedian(1, true), mg = Var.of(x.to(Device.CUDA)).nanmedian(1, true);
                    CudaSortTest.bits("nanmedian indices", mc[1].value().toFloatArray(), mg[1].value().toFloatArray());
                } finally {
                    x.close();
                }
            }
    }

    @Test
    void float64OnCudaIsRefusedByName() {
        try (Scope s = Scope.open(); Tensor h = Tensor.zeros(DType.F64, 2, 3)) {
            Var x = Var.param(h.to(Device.CUDA));
            long before = Memory.bytesInUse();
            assertEquals("quantile on CUDA supports float32 only, got f64",
                    assertThrows(UnsupportedOperationException.class, () -> x.quantile(0.5, 1, false, "linear")).getMessage());
            assertEquals("nanquantile on CUDA supports float32 only, got f64",
                    assertThrows(UnsupportedOperationException.class, () -> x.nanquantile(new double[]{0.5}, null, false, "lower")).getMessage());
            assertEquals("nanmedian on CUDA supports float32 only, got f64",
                    assertThrows(UnsupportedOperationException.class, () -> x.nanmedian(1, false)).getMessage());
            assertEquals(before, Memory.bytesInUse());
        }
    }
}
