package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** The transformer modules' parameters, names, init and refusals (values against torch: TorchTransformerTest). */
class TransformerModulesTest {
    @Test
    void embeddingModuleAsTorchs() {
        try (Scope s = Scope.open(); Embedding e = new Embedding(5, 3, -1, new Rng(1))) {
            assertEquals(4, e.paddingIdx());
            assertArrayEquals(new float[3], e.weight().value().slice(0, 4, 5).contiguous().toFloatArray(), "padding row zeroed at init");
            Var y = e.forward(Var.of(Tensor.of(new float[]{4, 0, 2, 2}, 2, 2)));
            assertArrayEquals(new int[]{2, 2, 3}, y.shape());
            assertEquals(e.weight().value().get(2, 1), y.value().get(1, 0, 1));
            String m = assertThrows(IllegalArgumentException.class, () -> e.forward(Var.of(Tensor.of(new float[]{1, 2.5f}, 2)))).getMessage();
            assertTrue(m.contains("value 2.5 at flat position 1"), m);
            m = assertThrows(IllegalArgumentException.class, () -> e.forward(Var.of(Tensor.of(new float[]{5}, 1)))).getMessage();
            assertTrue(m.contains("index 5 at position 0 out of range [0, 5)"), m);
            m = assertThrows(IllegalArgumentException.class, () -> new Embedding(5, 3, 5, new Rng(1))).getMessage();
            assertTrue(m.contains("padding_idx 5 out of range"), m);
        }
    }

    @Test
    void blockNamesAndSparsity() {
        try (Scope s = Scope.open(); TransformerBlock b = new TransformerBlock(8, 2, 16, 0, false, Method.DENSE, Method.FST2, 1, new Rng(2))) {
            assertEquals(List.of("self_attn.in_proj.weight", "self_attn.in_proj.bias", "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                    "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"),
                    List.copyOf(b.namedParameters().keySet()));
            assertEquals("fst2", b.linear1().sparsity().name());
            assertEquals("fst2", b.linear2().sparsity().name());
            assertEquals("dense", b.selfAttn().inProj().sparsity().name());
            assertEquals(0, b.selfAttn().inProj().namedParameters().get("bias").value().abs().sum().item(), "torch's zero in_proj bias");
            String m = assertThrows(IllegalArgumentException.class, () -> b.forward(Var.of(Tensor.zeros(2, 3, 6)))).getMessage();
            assertTrue(m.contains("shape mismatch"), m);
            m = assertThrows(IllegalArgumentException.class, () -> new MultiheadAttention(6, 4, 0, true, Method.DENSE.config(), Method.DENSE.config(), new Rng(1))).getMessage();
            assertTrue(m.contains("embed divisible by heads"), m);
        }
    }

    @Test
    void tinyTransformerRefusesBadSequences() {
        try (Scope s = Scope.open(); TinyTransformer t = Models.tinyTransformer(4, 3, 8, 2, 8, 1, true, Method.DENSE, 1)) {
            assertArrayEquals(new int[]{1, 3, 4}, t.forward(Var.of(Tensor.of(new float[]{0, 3, 1}, 1, 3))).shape());
            String m = assertThrows(IllegalArgumentException.class, () -> t.forward(new int[]{0, 1, 2, 3}, 1, 4)).getMessage();
            assertTrue(m.contains("exceeds the model's maxLen 3"), m);
            m = assertThrows(IllegalArgumentException.class, () -> t.forward(new int[]{0, 1, 4}, 1, 3)).getMessage();
            assertTrue(m.contains("index 4 at position 2 out of range [0, 4)"), m);
            m = assertThrows(IllegalArgumentException.class, () -> t.forward(Var.of(Tensor.zeros(3)))).getMessage();
            assertTrue(m.contains("wrong rank"), m);
        }
    }
}
