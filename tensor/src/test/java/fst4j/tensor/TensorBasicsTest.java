package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class TensorBasicsTest {
    @Test
    void viewsShareStorageAndContiguousCopies() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor t = a.t();
            assertFalse(t.isContiguous());
            assertArrayEquals(new float[]{1, 4, 2, 5, 3, 6}, t.contiguous().toFloatArray());
            a.set(9, 0, 1);
            assertEquals(9f, t.get(1, 0));
            assertArrayEquals(new float[]{9, 5}, a.slice(1, 1, 2).reshape(2).toFloatArray());
            assertArrayEquals(new float[]{1, 3, 4, 6}, Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3).slice(1, 0, 3, 2).contiguous().toFloatArray());
            assertArrayEquals(new int[]{3, 2}, a.reshape(-1, 2).shape());
            // a fresh tensor is contiguous whatever its sizes, a zero among them included; an empty slice of a wider one is not
            assertTrue(Tensor.empty(DType.F32, 3, 0, 2).isContiguous());
            assertFalse(Tensor.zeros(DType.F32, 3, 4).slice(1, 0, 0).isContiguous());
        }
    }

    @Test
    void broadcastingAddAndReductions() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor b = Tensor.of(new float[]{10, 20, 30}, 3);
            assertArrayEquals(new float[]{11, 22, 33, 14, 25, 36}, a.add(b).toFloatArray());
            assertArrayEquals(new float[]{5, 7, 9}, a.sum(false, 0).toFloatArray());
            assertArrayEquals(new float[]{2, 5}, a.mean(false, 1).toFloatArray());
            assertEquals(21.0, a.sum().item());
            assertArrayEquals(new float[]{2, 2}, a.argmax(1).toFloatArray());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> a.add(Tensor.zeros(2)));
            assertTrue(e.getMessage().contains("shape mismatch"), e.getMessage());
        }
    }

    @Test
    void scopeFreesEverythingAndClosedTensorThrows() {
        long before = Memory.bytesInUse();
        Tensor kept;
        Tensor leaked;
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(100, 100);
            leaked = a.mul(a).t();
            kept = s.keep(a.sum());
        }
        assertEquals(before + 4, Memory.bytesInUse());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> leaked.get(0, 0));
        assertTrue(e.getMessage().contains("closed"), e.getMessage());
        assertEquals(10000.0, kept.item());
        kept.close();
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void matmulMatchesLoops() {
        try (Scope s = Scope.open()) {
            java.util.Random r = new java.util.Random(1);
            float[] x = new float[17 * 9], y = new float[9 * 5];
            for (int i = 0; i < x.length; i++) x[i] = r.nextFloat() - 0.5f;
            for (int i = 0; i < y.length; i++) y[i] = r.nextFloat() - 0.5f;
            Tensor a = Tensor.of(x, 17, 9), b = Tensor.of(y, 9, 5);
            float[] c = a.matmul(b).toFloatArray();
            float[] ct = a.t().contiguous().t().matmul(b.t().contiguous().t()).toFloatArray();
            for (int i = 0; i < 17; i++)
                for (int j = 0; j < 5; j++) {
                    double ref = 0;
                    for (int p = 0; p < 9; p++) ref += (double) x[i * 9 + p] * y[p * 5 + j];
                    assertEquals(ref, c[i * 5 + j], 1e-5);
                    assertEquals(ref, ct[i * 5 + j], 1e-5);
                }
        }
    }

    /** asStrided views any in-bounds layout (overlapping ones too) and names the problem when a layout reaches past the storage. */
    @Test
    void asStridedViewsAndBoundsChecks() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[]{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 10);
            assertArrayEquals(new float[]{1, 2, 3, 4, 3, 4, 5, 6}, a.asStrided(new int[]{2, 4}, new long[]{2, 1}, 1).contiguous().toFloatArray());
            assertArrayEquals(new float[]{0, 3, 6, 9}, a.asStrided(new int[]{4}, new long[]{3}, 0).contiguous().toFloatArray());
            assertEquals(0, a.asStrided(new int[]{0, 5}, new long[]{100, 1}, 9).numel());
            var e = assertThrows(IndexOutOfBoundsException.class, () -> a.asStrided(new int[]{4}, new long[]{3}, 1));
            assertTrue(e.getMessage().contains("past the storage"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> a.asStrided(new int[]{2}, new long[]{-1}, 5));
            assertThrows(IllegalArgumentException.class, () -> a.asStrided(new int[]{2, 2}, new long[]{1}, 0));
            assertThrows(IndexOutOfBoundsException.class, () -> a.asStrided(new int[]{1}, new long[]{1}, -1));
        }
    }
}
