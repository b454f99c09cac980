package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Norm;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The models' fused functions against the functions they replace, over a whole training step (DENSE and FST3_IR): the
 * same loss, input and parameter gradients and running statistics bit for bit.
 * <ul>
 * <li>BasicBlock's second batch norm, shortcut add and ReLU (NN.batchNorm2dAddRelu) against batch norm then NN.addRelu,
 * in resnet-small (identity and projection shortcuts), whichever order the block now computes its shortcut in;</li>
 * <li>Sequential's batch norm + ReLU + 2x2 max pool (NN.batchNorm2dReluMaxPool2) against batch norm + ReLU then the pool,
 * in the small CNN.</li>
 * </ul>
 */
class FusedStepTest {
    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"DENSE", "FST3_IR"})
    void fusedBlockEndEqualsTheTwoFunctions(Method method) {
        assertSameStep(on -> BasicBlock.fuseBnAddRelu = on, BasicBlock.fuseBnAddRelu, m -> Models.resnetSmall(1, 10, m, 11), method);
    }

    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"DENSE", "FST3_IR"})
    void fusedPoolEqualsTheTwoFunctions(Method method) {
        assertTrue(fst4j.shim.Native.isLoaded(), "the native batch norm is what this compares");
        // the cnn's pooled layers are float32 CPU planes of 28 x 28 and 14 x 14: the fused function runs there
        assertTrue(Norm.reluMaxPool2Fusable(Tensor.zeros(6, 64, 28, 28), null, null, null, null));
        assertSameStep(on -> Sequential.fuseBnReluPool = on, Sequential.fuseBnReluPool, m -> Models.byName("cnn", 1, 28, 28, 10, m, 11), method);
    }

    /** One step with the switch on and one with it off (restored to its setting after): every tensor equal. */
    private static void assertSameStep(Consumer<Boolean> fuse, boolean setting, Function<Method, Module> model, Method method) {
        Map<String, float[]> fused, plain;
        try {
            fuse.accept(true);
            fused = step(model, method);
            fuse.accept(false);
            plain = step(model, method);
        } finally {
            fuse.accept(setting);
        }
        assertEquals(plain.keySet(), fused.keySet());
        for (String k : plain.keySet()) assertArrayEquals(plain.get(k), fused.get(k), k);
    }

    private static Map<String, float[]> step(Function<Method, Module> model, Method method) {
        Map<String, float[]> out = new LinkedHashMap<>();
        try (Scope s = Scope.open(); Module m = model.apply(method)) {
            Rng r = new Rng(5);
            Var x = Var.param(r.normal(0, 1, 6, 1, 28, 28));
            int[] labels = {0, 3, 9, 1, 1, 7};
            Var loss = NN.crossEntropy(m.forward(x), labels, 0.1);
            loss.backward();
            out.put("loss", new float[]{(float) loss.item()});
            out.put("input grad", x.grad().toFloatArray());
            m.namedParameters().forEach((k, v) -> out.put("grad " + k, v.grad().toFloatArray()));
            for (Map.Entry<String, Tensor> e : m.stateDict().entrySet()) out.put("state " + e.getKey(), e.getValue().toFloatArray());
        }
        return out;
    }
}
