package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Sequential's batch norm + ReLU + 2x2 max pool as one function (NN.batchNorm2dReluMaxPool2) against batch norm + ReLU
 * then the pool: a training step of the small CNN gives the same loss, input and parameter gradients and running
 * statistics bit for bit.
 */
class PoolFusionTest {
    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"DENSE", "FST3_IR"})
    void fusedPoolEqualsTheTwoFunctions(Method method) {
        assertTrue(fst4j.shim.Native.isLoaded(), "the native batch norm is what this compares");
        // the cnn's pooled layers are float32 CPU planes of 28 x 28 and 14 x 14: the fused function runs there
        assertTrue(fst4j.tensor.Norm.reluMaxPool2Fusable(Tensor.zeros(6, 64, 28, 28), null, null, null, null));
        Map<String, float[]> fused = step(method, true), plain = step(method, false);
        assertEquals(plain.keySet(), fused.keySet());
        for (String k : plain.keySet()) assertArrayEquals(plain.get(k), fused.get(k), k);
    }

    private static Map<String, float[]> step(Method method, boolean fuse) {
        boolean before = Sequential.fuseBnReluPool;
        Sequential.fuseBnReluPool = fuse;
        Map<String, float[]> out = new LinkedHashMap<>();
        try (Scope s = Scope.open(); Module m = Models.byName("cnn", 1, 28, 28, 10, method, 11)) {
            Rng r = new Rng(5);
            Var x = Var.param(r.normal(0, 1, 6, 1, 28, 28));
            int[] labels = {0, 3, 9, 1, 1, 7};
            Var loss = NN.crossEntropy(m.forward(x), labels, 0.1);
            loss.backward();
            out.put("loss", new float[]{(float) loss.item()});
            out.put("input grad", x.grad().toFloatArray());
            m.namedParameters().forEach((k, v) -> out.put("grad " + k, v.grad().toFloatArray()));
            for (Map.Entry<String, Tensor> e : m.stateDict().entrySet()) out.put("state " + e.getKey(), e.getValue().toFloatArray());
        } finally {
            Sequential.fuseBnReluPool = before;
        }
        return out;
    }
}
