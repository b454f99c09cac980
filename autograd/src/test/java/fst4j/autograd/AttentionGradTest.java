package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static fst4j.autograd.OpsGradTest.ok;
import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/** float64 gradchecks of the transformer's ops: embedding, batched matmul with broadcasting, scaled dot-product attention. */
class AttentionGradTest {
    @Test
    void embeddingWithRepeatedIndicesAndPadding() {
        try (Scope s = Scope.open()) {
            Tensor w = rand(1, 5, 3);
            int[] idx = {0, 3, 3, 1, 4, 3};
            ok(v -> NN.embedding(v[0], idx, 2, 3), w);
            ok(v -> NN.embedding(v[0], idx, 3, 2).pow(2).mul(v[0].sum()), w);
            // (no gradcheck with padding_idx: its row's zero gradient is torch's rule, not the derivative; checked below)
            // the padding row: looked up, no gradient (and a negative padding_idx counts from the end)
            Var wv = Var.param(w.copy());
            Var y = NN.embedding(wv, idx, new int[]{6}, -2);
            assertArrayEquals(new int[]{6, 3}, y.shape());
            assertEquals(w.getDouble(3, 1), y.value().getDouble(2, 1), 0);
            y.sum().backward();
            for (int j = 0; j < 3; j++) {
                assertEquals(0, wv.grad().getDouble(3, j), 0, "padding row 3 gets no gradient");
                assertEquals(1, wv.grad().getDouble(0, j), 0);
                assertEquals(0, wv.grad().getDouble(2, j), 0, "row 2 is not looked up");
            }
            Var wn = Var.param(w.copy());
            NN.embedding(wn, idx, 6).sum().backward();
            assertEquals(3, wn.grad().getDouble(3, 0), 0, "index 3 three times adds three rows");
        }
    }

    @Test
    void embeddingRefusesBadIndicesAndShapes() {
        try (Scope s = Scope.open()) {
            Var w = Var.param(Tensor.zeros(4, 2));
            String m = assertThrows(IllegalArgumentException.class, () -> NN.embedding(w, new int[]{0, 4}, 2)).getMessage();
            assertTrue(m.contains("index 4 at position 1 out of range [0, 4)"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.embedding(w, new int[]{-1}, 1)).getMessage();
            assertTrue(m.contains("index -1"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.embedding(w, new int[]{0, 1, 2}, 2, 2)).getMessage();
            assertTrue(m.contains("shape mismatch") && m.contains("3 embedding indices"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.embedding(w, new int[]{0}, new int[]{1}, 4)).getMessage();
            assertTrue(m.contains("padding_idx 4 out of range"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.embedding(Var.param(Tensor.zeros(4)), new int[]{0}, 1)).getMessage();
            assertTrue(m.contains("wrong rank"), m);
        }
    }

    @Test
    void batchedMatmulBroadcastsItsBatchAxes() {
        try (Scope s = Scope.open()) {
            ok(v -> v[0].matmul(v[1]), rand(2, 2, 3, 4, 5), rand(3, 5, 2));          // [2,3,4,5] x [5,2]
            ok(v -> v[0].matmul(v[1]), rand(4, 3, 1, 4, 5), rand(5, 2, 5, 3));       // [3,1,4,5] x [2,5,3] -> [3,2,4,3]
            ok(v -> v[0].matmul(v[1]), rand(6, 4, 5), rand(7, 2, 1, 5, 3));          // [4,5] x [2,1,5,3]
            Var a = Var.param(rand(8, 3, 1, 4, 5)), b = Var.param(rand(9, 2, 5, 3));
            Var y = a.matmul(b);
            assertArrayEquals(new int[]{3, 2, 4, 3}, y.shape());
            y.sum().backward();
            assertArrayEquals(new int[]{3, 1, 4, 5}, a.grad().shape(), "the broadcast batch axis summed back");
            assertArrayEquals(new int[]{2, 5, 3}, b.grad().shape());
            String m = assertThrows(IllegalArgumentException.class, () -> Var.of(rand(1, 2, 3, 4)).matmul(Var.of(rand(1, 5, 2)))).getMessage();
            assertTrue(m.contains("shape mismatch"), m);
            m = assertThrows(IllegalArgumentException.class, () -> Var.of(rand(1, 2, 3, 4)).matmul(Var.of(rand(1, 3, 4, 2)))).getMessage();
            assertTrue(m.contains("broadcast") || m.contains("shape mismatch"), m);
        }
    }

    @Test
    void scaledDotProductAttentionGradients() {
        try (Scope s = Scope.open()) {
            Tensor q = rand(1, 2, 3, 4, 6), k = rand(2, 2, 3, 5, 6), v = rand(3, 2, 3, 5, 7);
            ok(x -> NN.scaledDotProductAttention(x[0], x[1], x[2], null, false), q, k, v);
            Tensor qs = rand(4, 2, 5, 4), ks = rand(5, 2, 5, 4), vs = rand(6, 2, 5, 3);
            ok(x -> NN.scaledDotProductAttention(x[0], x[1], x[2], null, true), qs, ks, vs);
            // an additive mask broadcast over batch and heads; -inf entries take no part
            Tensor mask = Tensor.zeros(fst4j.tensor.DType.F64, 4, 5);
            mask.set(Double.NEGATIVE_INFINITY, 0, 4); mask.set(Double.NEGATIVE_INFINITY, 2, 1); mask.set(-1.5, 3, 3);
            ok(x -> NN.scaledDotProductAttention(x[0], x[1], x[2], mask, false), q, k, v);
            // k and v shared over the batch axis (broadcast)
            ok(x -> NN.scaledDotProductAttention(x[0], x[1], x[2], null, false), rand(7, 3, 2, 4), rand(8, 5, 4), rand(9, 5, 2));
        }
    }

    /** The composite against the formula written out, and causal against an explicit mask. */
    @Test
    void scaledDotProductAttentionValues() {
        try (Scope s = Scope.open()) {
            Tensor q = rand(1, 2, 4, 3), k = rand(2, 2, 4, 3), v = rand(3, 2, 4, 2);
            Var y = NN.scaledDotProductAttention(Var.of(q), Var.of(k), Var.of(v), null, true);
            for (int b = 0; b < 2; b++) for (int i = 0; i < 4; i++) for (int c = 0; c < 2; c++) {
                double[] e = new double[4];
                double z = 0, acc = 0;
                for (int j = 0; j <= i; j++) {
                    double dot = 0;
                    for (int t = 0; t < 3; t++) dot += q.getDouble(b, i, t) * k.getDouble(b, j, t);
                    e[j] = Math.exp(dot / Math.sqrt(3));
                    z += e[j];
                }
                for (int j = 0; j <= i; j++) acc += e[j] / z * v.getDouble(b, j, c);
                assertEquals(acc, y.value().getDouble(b, i, c), 1e-12);
            }
            Tensor causal = Attention.causalMask(4, 4);
            Var y2 = NN.scaledDotProductAttention(Var.of(q), Var.of(k), Var.of(v), causal, false);
            assertTrue(y.value().allclose(y2.value(), 0, 0));
        }
    }

    @Test
    void scaledDotProductAttentionRefusesBadInput() {
        try (Scope s = Scope.open()) {
            Var q = Var.of(rand(1, 2, 4, 3)), k = Var.of(rand(2, 2, 5, 3)), v = Var.of(rand(3, 2, 5, 2));
            String m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(q, Var.of(rand(1, 2, 5, 4)), v, null, false)).getMessage();
            assertTrue(m.contains("shape mismatch"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(q, k, Var.of(rand(1, 2, 4, 2)), null, false)).getMessage();
            assertTrue(m.contains("shape mismatch"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(Var.of(rand(1, 3)), k, v, null, false)).getMessage();
            assertTrue(m.contains("wrong rank"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(q, k, v, Tensor.zeros(4, 4), false)).getMessage();
            assertTrue(m.contains("attnMask [4, 4] does not broadcast"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(q, k, v, Tensor.zeros(4, 5), true)).getMessage();
            assertTrue(m.contains("not both"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(q, k, v, null, false, 0.1, null)).getMessage();
            assertTrue(m.contains("needs an Rng"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(q, k, v, null, false, 1, new Rng(1))).getMessage();
            assertTrue(m.contains("[0, 1)"), m);
            m = assertThrows(IllegalArgumentException.class, () -> NN.scaledDotProductAttention(Var.of(Tensor.zeros(2, 4, 3)), k, v, null, false)).getMessage();
            assertTrue(m.contains("dtype mismatch"), m);
        }
    }
}
