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
 * BasicBlock's second batch norm, shortcut add and ReLU as one function (NN.batchNorm2dAddRelu) against batch norm then
 * NN.addRelu: a training step of resnet-small (identity and projection shortcuts) gives the same loss, every parameter's
 * gradient, the input's gradient and the running statistics bit for bit, whichever order the block now computes its
 * shortcut in.
 */
class BasicBlockFusionTest {
    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"DENSE", "FST3_IR"})
    void fusedBlockEndEqualsTheTwoFunctions(Method method) {
        Map<String, float[]> fused = step(method, true), plain = step(method, false);
        assertEquals(plain.keySet(), fused.keySet());
        for (String k : plain.keySet()) assertArrayEquals(plain.get(k), fused.get(k), k);
    }

    private static Map<String, float[]> step(Method method, boolean fuse) {
        boolean before = BasicBlock.fuseBnAddRelu;
        BasicBlock.fuseBnAddRelu = fuse;
        Map<String, float[]> out = new LinkedHashMap<>();
        try (Scope s = Scope.open(); Module m = Models.resnetSmall(1, 10, method, 11)) {
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
            BasicBlock.fuseBnAddRelu = before;
        }
        return out;
    }
}
