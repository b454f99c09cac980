package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Edges of the transformer pieces: off-heap memory steady over training steps (dropout, causal, a caller's additive mask
 * that stays the caller's), eval mode without dropout's randomness, causal attention at T = 1 and batch 1, and a fully
 * masked query row (NaN, as torch's math path).
 */
class TransformerAuditTest {
    @Test
    void trainingStepsDoNotGrowOffHeapMemory() {
        try (TinyTransformer m = new TinyTransformer(8, 5, 8, 2, 16, 2, 0.1, true, Method.DENSE, Method.FST2, 3)) {
            AdamW opt = new AdamW(m.parameters(), 1e-3, 0.01);
            int[] x = {1, 2, 3, 4, 5, 0, 7, 7, 6, 1}, y = {2, 3, 4, 5, 6, 1, 0, 0, 7, 2};
            long start = 0;
            for (int step = 0; step < 6; step++) {
                if (step == 2) start = Memory.bytesInUse();
                try (Scope s = Scope.open()) {
                    Var loss = NN.crossEntropy(m.forward(x, 2, 5).reshape(10, 8), y, 0);
                    loss.backward();
                    opt.step();
                    opt.zeroGrad();
                }
            }
            assertEquals(start, Memory.bytesInUse());
            opt.close();
        }
    }

    @Test
    void maskedAttentionStepsDoNotGrowOffHeapMemory() {
        try (MultiheadAttention a = new MultiheadAttention(8, 2, 0.2, true, Method.DENSE.config(), Method.DENSE.config(), new Rng(1));
             Tensor x = new Rng(2).normal(0, 1, 2, 3, 8); Tensor mask = Tensor.of(new double[]{0, Double.NEGATIVE_INFINITY, 0}, 1, 3)) {
            long start = 0;
            for (int step = 0; step < 6; step++) {
                if (step == 2) start = Memory.bytesInUse();
                try (Scope s = Scope.open()) {
                    Var out = a.forward(Var.of(x.alias()), mask, false);
                    out.sum().backward();
                    a.parameters().forEach(p -> { if (p.grad() != null) p.zeroGrad(); });
                }
            }
            assertEquals(start, Memory.bytesInUse());
            assertFalse(mask.isClosed(), "the caller's mask stays open");
        }
    }

    @Test
    void evalModeIsDeterministicWithDropout() {
        try (TinyTransformer m = new TinyTransformer(8, 4, 8, 2, 16, 1, 0.5, false, Method.DENSE, Method.DENSE, 3); Scope s = Scope.open()) {
            m.eval();
            int[] x = {1, 2, 3, 4};
            float[] a = m.forward(x, 1, 4).value().toFloatArray(), b = m.forward(x, 1, 4).value().toFloatArray();
            assertArrayEquals(a, b);
            m.train();
            float[] c = m.forward(x, 1, 4).value().toFloatArray();
            assertFalse(Arrays.equals(a, c), "training mode drops");
        }
    }

    @Test
    void causalWithOnePositionAndBatchOne() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            Var q = Var.param(r.normal(0, 1, 1, 1, 4)), k = Var.param(r.normal(0, 1, 1, 1, 4)), v = Var.param(r.normal(0, 1, 1, 1, 3));
            Var o = NN.scaledDotProductAttention(q, k, v, null, true);
            assertArrayEquals(v.value().toFloatArray(), o.value().toFloatArray());
            o.sum().backward();
            for (float g : q.grad().toFloatArray()) assertEquals(0f, g);
        }
    }

    /** Sequences of length 0, as torch's: an empty output [B, 0, ...], not an exception from an empty batch's GEMM. */
    @Test
    void emptySequences() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            Var q = Var.param(r.normal(0, 1, 2, 0, 4)), k = Var.param(r.normal(0, 1, 2, 0, 4)), v = Var.param(r.normal(0, 1, 2, 0, 3));
            assertArrayEquals(new int[]{2, 0, 3}, NN.scaledDotProductAttention(q, k, v, null, true).shape());
        }
        try (TinyTransformer m = new TinyTransformer(8, 4, 8, 2, 16, 1, 0, true, Method.DENSE, Method.DENSE, 3); Scope s = Scope.open()) {
            assertArrayEquals(new int[]{2, 0, 8}, m.forward(new int[0], 2, 0).shape());
            String msg = assertThrows(IllegalArgumentException.class, () -> m.forward(new int[0], 1, -1)).getMessage();
            assertTrue(msg.contains("batch 1, length -1"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(new int[0], -1, 2)).getMessage();
            assertTrue(msg.contains("batch -1, length 2"), msg);
        }
    }

    @Test
    void fullyMaskedRow() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            Var q = Var.param(r.normal(0, 1, 2, 4)), k = Var.param(r.normal(0, 1, 3, 4)), v = Var.param(r.normal(0, 1, 3, 3));
            double inf = Double.NEGATIVE_INFINITY;
            Tensor mask = Tensor.of(new double[]{inf, inf, inf, 0, 0, 0}, 2, 3);
            Var o = NN.scaledDotProductAttention(q, k, v, mask, false);
            float[] y = o.value().toFloatArray();
            // torch's math path: softmax of a row of -inf is 0/0, NaN; the other query's row is untouched by it
            for (int j = 0; j < 3; j++) assertTrue(Float.isNaN(y[j]), "fully masked row " + Arrays.toString(y));
            for (int j = 3; j < 6; j++) assertTrue(Float.isFinite(y[j]), "unmasked row " + Arrays.toString(y));
        }
    }
}
