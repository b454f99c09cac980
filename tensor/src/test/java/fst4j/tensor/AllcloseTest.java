package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Tensor.equal and allclose as torch.equal and torch.allclose (equal_nan=False by default). */
class AllcloseTest {
    private static final float NAN = Float.NaN, INF = Float.POSITIVE_INFINITY;

    @Test
    void equalComparesShapeAndEveryValueExactly() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            assertTrue(a.equal(Tensor.arange(6).add(1).reshape(2, 3)));
            assertTrue(a.equal(a.to(DType.F64)), "the values, whatever the dtype");
            assertTrue(a.t().equal(Tensor.of(new float[]{1, 4, 2, 5, 3, 6}, 3, 2)), "any layout");
            assertFalse(a.equal(Tensor.of(new float[]{1, 2, 3, 4, 5, 6.000001f}, 2, 3)));
            assertFalse(a.equal(a.reshape(3, 2)), "another shape is not equal, as in torch");
            assertFalse(a.equal(a.reshape(6)));
            assertTrue(Tensor.of(new float[]{0f}, 1).equal(Tensor.of(new float[]{-0f}, 1)));
            Tensor nan = Tensor.of(new float[]{1, NAN}, 2);
            assertFalse(nan.equal(nan), "NaN equals nothing, itself included");
            assertTrue(Tensor.zeros(0, 3).equal(Tensor.zeros(0, 3)));
        }
    }

    @Test
    void allcloseIsTorchsTolerance() {
        try (Scope s = Scope.open()) {
            Tensor b = Tensor.of(new float[]{100, -1, 0, INF}, 4);
            assertTrue(Tensor.of(new float[]{100.0009f, -1, 0, INF}, 4).allclose(b), "within rtol * |other| (1e-3 of 100 within 1e-5 * 100)");
            assertFalse(Tensor.of(new float[]{100.002f, -1, 0, INF}, 4).allclose(b));
            assertTrue(Tensor.of(new float[]{100, -1, 1e-9f, INF}, 4).allclose(b), "atol near 0");
            assertFalse(Tensor.of(new float[]{100, -1, 1e-7f, INF}, 4).allclose(b));
            assertTrue(Tensor.of(new float[]{101, -1.5f, 0.4f, INF}, 4).allclose(b, 0.01, 0.5));
            assertFalse(Tensor.of(new float[]{100, -1, 0, -INF}, 4).allclose(b, 1, 1), "an infinity is close only to itself");
            assertFalse(Tensor.of(new float[]{100, -1, 0, 1e30f}, 4).allclose(b, 1, 1));
            Tensor nan = Tensor.of(new float[]{1, NAN}, 2);
            assertFalse(nan.allclose(nan), "equal_nan=False");
            assertFalse(nan.allclose(Tensor.of(new float[]{1, 2}, 2), 1, 1e9));
            assertFalse(Tensor.of(new float[]{1, 2}, 2).allclose(nan, 1, 1e9));
            assertTrue(nan.allclose(nan, 1e-5, 1e-8, true), "equal_nan=True");
            assertTrue(nan.allclose(nan.to(DType.F64), 0, 0, true));

            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.allclose(Tensor.zeros(1, 4)));
            assertEquals("shape mismatch: allclose of [4] with [1, 4]", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> b.allclose(b, -1e-5, 0));
            assertTrue(e.getMessage().contains("must be >= 0"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> b.allclose(b, 0, Double.NaN));
        }
    }
}
