package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Layers.linear on x [*, in] as torch.nn.Linear: gradchecked, against y = x W^T + b row by row, and under every method
 * the same bits, values and gradients, as the 2-D call on x flattened to [rows, in] (the node sees the rows as its batch).
 */
class LinearLeadingAxesTest {
    @Test
    void gradcheckForRanks1Through4() {
        try (Scope s = Scope.open()) {
            Gemm3 dense = new Gemm3(SparseConfig.Method.DENSE.config());
            for (int[] xs : new int[][]{{5}, {2, 3, 5}, {2, 1, 2, 5}}) {
                GradCheck.Result r = GradCheck.check(v -> Layers.linear(dense, v[0], v[1], v[2]),
                        OpsGradTest.rand(1, xs), OpsGradTest.rand(2, 4, 5), OpsGradTest.rand(3, 4));
                assertTrue(r.passed(), java.util.Arrays.toString(xs) + ": " + r);
            }
            GradCheck.Result r = GradCheck.check(v -> Layers.linear(dense, v[0].permute(1, 0, 2), v[1], null),   // a non-contiguous x
                    OpsGradTest.rand(4, 3, 2, 5), OpsGradTest.rand(5, 4, 5));
            assertTrue(r.passed(), r.toString());
        }
    }

    @Test
    void valuesAreXWtPlusBRowByRow() {
        try (Scope s = Scope.open()) {
            Tensor x = OpsGradTest.rand(6, 2, 3, 5), w = OpsGradTest.rand(7, 4, 5), b = OpsGradTest.rand(8, 4);
            Var y = Layers.linear(new Gemm3(SparseConfig.Method.DENSE.config()), Var.of(x), Var.of(w), Var.of(b));
            assertArrayEquals(new int[]{2, 3, 4}, y.shape());
            assertEquals(DType.F64, y.value().dtype());
            for (int i = 0; i < 2; i++)
                for (int t = 0; t < 3; t++)
                    for (int o = 0; o < 4; o++) {
                        double want = b.getDouble(o);
                        for (int k = 0; k < 5; k++) want += x.getDouble(i, t, k) * w.getDouble(o, k);
                        assertEquals(want, y.value().getDouble(i, t, o), 1e-12, i + "," + t + "," + o);
                    }
            Var one = Layers.linear(new Gemm3(SparseConfig.Method.DENSE.config()), Var.of(x.slice(0, 0, 1).reshape(15).slice(0, 0, 5)), Var.of(w), null);
            assertArrayEquals(new int[]{4}, one.shape(), "x [in] gives [out]");
            Var empty = Layers.linear(new Gemm3(SparseConfig.Method.DENSE.config()), Var.of(Tensor.zeros(DType.F64, 2, 0, 5)), Var.of(w), Var.of(b));
            assertArrayEquals(new int[]{2, 0, 4}, empty.shape());
        }
    }

    /** The 3-D call and the 2-D call on the flattened x give the same bits: forward, dX, dW, db, under each method. */
    @ParameterizedTest
    @EnumSource(SparseConfig.Method.class)
    void everyMethodSeesTheFlattenedBatch(SparseConfig.Method m) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(30 + m.ordinal());
            Tensor x = r.normal(0, 1, 2, 4, 16), w = r.normal(0, 1, 8, 16), b = r.normal(0, 1, 8), g = r.normal(0, 1, 2, 4, 8);
            Var x3 = Var.param(x.copy()), w3 = Var.param(w.copy()), b3 = Var.param(b.copy());
            Var x2 = Var.param(x.reshape(8, 16)), w2 = Var.param(w.copy()), b2 = Var.param(b.copy());
            Var y3 = Layers.linear(new Gemm3(m.config(3)), x3, w3, b3);
            Var y2 = Layers.linear(new Gemm3(m.config(3)), x2, w2, b2);
            assertArrayEquals(new int[]{2, 4, 8}, y3.shape());
            assertArrayEquals(y2.value().toFloatArray(), y3.value().toFloatArray(), 0f, m + " y");
            y3.backward(g);
            y2.backward(g.reshape(8, 8));
            assertArrayEquals(new int[]{2, 4, 16}, x3.grad().shape());
            assertArrayEquals(x2.grad().toFloatArray(), x3.grad().toFloatArray(), 0f, m + " dX");
            assertArrayEquals(w2.grad().toFloatArray(), w3.grad().toFloatArray(), 0f, m + " dW");
            assertArrayEquals(b2.grad().toFloatArray(), b3.grad().toFloatArray(), 0f, m + " db");
        }
    }

    @Test
    void aWrongLastAxisIsNamed() {
        try (Scope s = Scope.open()) {
            Gemm3 dense = new Gemm3(SparseConfig.Method.DENSE.config());
            Var w = Var.of(Tensor.zeros(5, 6));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Layers.linear(dense, Var.of(Tensor.zeros(2, 3, 4)), w, null));
            assertEquals("shape mismatch: linear input [2, 3, 4] needs [*, 6] (its last axis the 6 input features)", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Layers.linear(dense, Var.of(Tensor.scalar(1)), w, null));
            assertTrue(e.getMessage().contains("linear input []"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Layers.linear(dense, Var.of(Tensor.zeros(3, 4)), w, null));
            assertTrue(e.getMessage().contains("shape mismatch: linear input [3, 4] with weight [5, 6]"), e.getMessage());
        }
    }
}
