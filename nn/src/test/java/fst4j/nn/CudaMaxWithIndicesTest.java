package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Var.maxWithIndices on CUDA tensors (the two-output node, its indices from the argmax kernel, its one-hot gradient
 * from arange, eq and a broadcast multiply there): the CPU's values, indices and input gradient bit for bit, ties and a
 * NaN included. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaMaxWithIndicesTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static float[][] run(Tensor x0, Tensor r, int axis, boolean keep) {
        Var x = Var.param(x0);
        Var[] o = x.maxWithIndices(axis, keep);
        assertEquals(x0.device(), o[0].value().device());
        o[0].backward(r);
        return new float[][]{o[0].value().to(Device.CPU).toFloatArray(), o[1].value().to(Device.CPU).toFloatArray(),
                x.grad().to(Device.CPU).toFloatArray()};
    }

    @Test
    void valuesIndicesAndGradientAsOnTheHost() {
        for (int axis : new int[]{0, 1, -1})
            for (boolean keep : new boolean[]{false, true})
                try (Scope s = Scope.open()) {
                    Rng rng = new Rng(3);
                    float[] xs = rng.normal(0, 1, 3, 5, 4).toFloatArray();
                    xs[3] = xs[7] = 9f;
                    xs[21] = Float.NaN;
                    Tensor x = Tensor.of(xs, 3, 5, 4);
                    int[] vs;
                    try (Var probe = Var.of(x.alias()); Var v = probe.maxWithIndices(axis, keep)[0]) { vs = v.shape(); }
                    Tensor r = rng.normal(0, 1, vs);
                    float[][] cpu = run(x.copy(), r, axis, keep), gpu = run(x.to(Device.CUDA), r.to(Device.CUDA), axis, keep);
                    String[] what = {"values", "indices", "gradient"};
                    for (int k = 0; k < 3; k++)
                        assertArrayEquals(cpu[k], gpu[k], what[k] + " axis " + axis + " keep " + keep);
                }
    }
}
