package fst4j.tests.prototypes;

import fst4j.autograd.Grad;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.Linear;
import fst4j.sparse.Compressed24;
import fst4j.sparse.SparseGemm;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Elementwise;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.*;

/** Prototype 5: everyday tensor work, and the error cases a first week runs into, whose messages must name the problem. */
class TensorWorkPrototypeTest {

    static void failsNaming(Class<? extends Throwable> type, String fragment, Executable e) {
        Throwable t = assertThrows(type, e);
        assertTrue(t.getMessage() != null && t.getMessage().contains(fragment), "message '" + t.getMessage() + "' should name '" + fragment + "'");
    }

    @Test
    void createViewReduceMultiplyConvert() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.arange(12).reshape(3, 4);                        // [[0..3], [4..7], [8..11]]
            assertEquals(6f, a.get(1, 2));
            Tensor col = a.slice(1, 1, 4, 2);                                  // columns 1 and 3, a view
            assertArrayEquals(new float[]{1, 3, 5, 7, 9, 11}, col.toFloatArray());
            col.fill(-1);                                                      // writes through to a
            assertEquals(-1f, a.get(2, 3));
            assertArrayEquals(new int[]{4, 3}, a.t().shape());
            assertFalse(a.t().isContiguous());
            assertArrayEquals(new int[]{1, 3, 1, 4}, a.unsqueeze(0).unsqueeze(2).shape());
            assertArrayEquals(new int[]{4, 1, 3}, a.unsqueeze(0).permute(2, 0, 1).shape());

            Tensor m = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            assertArrayEquals(new float[]{6, 15}, m.sum(false, 1).toFloatArray());
            assertArrayEquals(new int[]{1, 3}, m.mean(true, 0).shape());
            assertArrayEquals(new float[]{2.5f, 3.5f, 4.5f}, m.mean(true, 0).toFloatArray());
            assertArrayEquals(new float[]{3, 6}, m.max(false, -1).toFloatArray());
            assertArrayEquals(new float[]{2, 2}, m.argmax(1).toFloatArray());
            assertArrayEquals(new float[]{1, 1}, m.var(false, 1).toFloatArray());
            assertArrayEquals(new float[]{14, 32, 32, 77}, m.matmul(m.t()).toFloatArray());
            Tensor batch = Tensor.arange(24).reshape(2, 3, 4).matmul(Tensor.ones(4, 1));  // batched, broadcast
            assertArrayEquals(new float[]{6, 22, 38, 54, 70, 86}, batch.toFloatArray());

            assertArrayEquals(new double[]{1, 1}, Tensor.ones(DType.F64, 2).toDoubleArray());
            assertArrayEquals(new float[]{1, 2, 3, 9, 4, 5, 6, 9}, Tensor.cat(1, m, Tensor.full(9, 2, 1)).toFloatArray());
            Tensor d = m.to(DType.F64);
            assertEquals(DType.F64, d.dtype());
            assertEquals(DType.F64, d.add(m).dtype(), "float64 wins in mixed arithmetic");
            assertEquals(Device.CPU, m.to(Device.CPU).device());
            assertEquals(21.0, d.sum().item());
        }
        assertEquals(before, Memory.bytesInUse(), "the scope frees every tensor and view it owns");
    }

    @Test
    void scopeKeepAndNoGradInference() {
        long before = Memory.bytesInUse();
        Tensor kept;
        try (Scope s = Scope.open()) {
            Tensor.zeros(1000);
            kept = s.keep(Tensor.ones(10).mul(3));
        }
        assertEquals(40, Memory.bytesInUse() - before, "only the kept tensor survives its scope");
        assertFalse(kept.isClosed());
        kept.close();
        assertEquals(before, Memory.bytesInUse());

        try (Linear lin = new Linear(8, 3, true, SparseConfig.Method.FST2.config(), new Rng(0))) {
            lin.eval();
            try (Grad.Restore g = Grad.noGrad(); Scope s = Scope.open()) {
                Var y = lin.forward(Var.of(new Rng(1).normal(0, 1, 4, 8)));
                assertFalse(y.requiresGrad(), "no graph under noGrad");
                assertNull(y.gradFn());
            }
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void errorsNameTheProblem() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(2, 3);
            failsNaming(IllegalArgumentException.class, "cannot broadcast [2, 3] with [4]", () -> a.add(Tensor.ones(4)));
            failsNaming(IllegalArgumentException.class, "matmul [2, 3] x [2, 3]", () -> a.matmul(a));
            failsNaming(IllegalArgumentException.class, "cannot reshape [2, 3]", () -> a.reshape(4, 2));
            failsNaming(IndexOutOfBoundsException.class, "out of bounds for axis 1", () -> a.slice(1, 0, 4));

            Tensor closed = Tensor.ones(2);
            closed.close();
            failsNaming(IllegalStateException.class, "is closed", () -> closed.add(a));
            failsNaming(IllegalStateException.class, "is closed", () -> Var.of(closed).value());

            try (Linear lin = new Linear(10, 4, false, SparseConfig.Method.FST2.config(), new Rng(0))) {
                failsNaming(IllegalArgumentException.class, "linear input [2, 9] with weight [4, 10]", () -> lin.forward(Var.of(Tensor.ones(2, 9))));
            }

            // 2:4 along a K that is not a multiple of 4: the last group counts as zero-padded, no error, same product
            Tensor w = new Rng(2).normal(0, 1, 4, 6), b = new Rng(3).normal(0, 1, 6, 5);
            try (Compressed24 c = Compressed24.pruneCompress(w)) {
                assertEquals(6, c.k());
                assertEquals(8, c.paddedK());
                Tensor sw = new Sparsifier.Magnitude24(1).apply(w);
                assertArrayEquals(sw.matmul(b).toFloatArray(), SparseGemm.spmm(c, b).toFloatArray(), 1e-5f);
                failsNaming(IllegalArgumentException.class, "spmm S 4x6 x B [5, 5]", () -> SparseGemm.spmm(c, Tensor.ones(5, 5)));
            }
            failsNaming(IllegalArgumentException.class, "row 0, group 0 (columns 0..3) has 3 non-zeros",
                    () -> Compressed24.compress(Tensor.of(new float[]{1, 1, 1, 0, 1, 0}, 1, 6)));

            // NaN: found by hasNonFinite, propagated by sums and max, kept by magnitude pruning as the largest value
            Tensor n = Tensor.of(new float[]{1, Float.NaN, 3, 0.5f}, 1, 4);
            assertTrue(Elementwise.hasNonFinite(n));
            assertTrue(Double.isNaN(n.sum().item()));
            assertTrue(Double.isNaN(n.max(false).item()));
            assertArrayEquals(new float[]{0, Float.NaN, 3, 0}, new Sparsifier.Magnitude24(1).apply(n).toFloatArray());
        }
    }
}
