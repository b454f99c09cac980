package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** A linear layer given an empty batch: an empty output and zero gradients, under every preset (as dense PyTorch). */
class EmptyBatchTest {
    @Test
    void anEmptyBatchThroughALinearNode() {
        for (SparseConfig.Method m : SparseConfig.Method.values()) {
            try (Scope s = Scope.open()) {
                Var x = Var.param(Tensor.zeros(0, 8)), w = Var.param(new Rng(1).normal(0, 1, 4, 8));
                Var y = Layers.linear(new Gemm3(m.config()), x, w, null);
                assertArrayEquals(new int[]{0, 4}, y.shape(), m.name());
                y.sum().backward();
                assertArrayEquals(new float[32], w.grad().toFloatArray(), m.name());
                assertArrayEquals(new int[]{0, 8}, x.grad().shape(), m.name());
            }
        }
    }
}
