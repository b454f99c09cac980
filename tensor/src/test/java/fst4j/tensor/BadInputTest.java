package fst4j.tensor;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.*;

/** Bad input gets an exception whose message names the problem. */
class BadInputTest {
    static void fails(Class<? extends Throwable> type, String fragment, Executable e) {
        Throwable t = assertThrows(type, e);
        assertTrue(t.getMessage().contains(fragment), "message '" + t.getMessage() + "' should contain '" + fragment + "'");
    }

    @Test
    void messages() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.ones(2, 3), b = Tensor.ones(4, 5);
            fails(IllegalArgumentException.class, "shape mismatch", () -> a.add(b));
            fails(IllegalArgumentException.class, "shape mismatch", () -> a.matmul(b));
            fails(IllegalArgumentException.class, "shape mismatch", () -> a.reshape(4, 2));
            fails(IllegalArgumentException.class, "shape mismatch", () -> Tensor.of(new float[5], 2, 3));
            fails(IllegalArgumentException.class, "give the shape after the data, e.g. Tensor.of(data, 3)", () -> Tensor.of(new float[]{1, 2, 3}));
            fails(IllegalArgumentException.class, "give the shape after the data", () -> Tensor.of(new double[]{1, 2}));
            fails(IllegalArgumentException.class, "wrong rank", () -> Tensor.ones(3).t());
            fails(IllegalArgumentException.class, "wrong rank", () -> Conv.conv2d(Tensor.ones(3, 4), Tensor.ones(1, 1, 1, 1), null, 1, 0));
            fails(IllegalArgumentException.class, "wrong rank", () -> a.get(1));
            fails(IllegalArgumentException.class, "negative dimension", () -> Tensor.zeros(2, -1));
            fails(IllegalArgumentException.class, "negative dimension", () -> a.reshape(-2, 3));
            fails(IndexOutOfBoundsException.class, "out of bounds", () -> a.get(2, 0));
            fails(IllegalArgumentException.class, "channel mismatch", () -> Conv.conv2d(Tensor.ones(1, 3, 4, 4), Tensor.ones(2, 2, 3, 3), null, 1, 1));
            Tensor c = Tensor.ones(2);
            c.close();
            fails(IllegalStateException.class, "closed", () -> c.add(a));
            fails(IllegalStateException.class, "closed", c::toFloatArray);
            fails(IllegalStateException.class, "closed", () -> Blas.gemm(1f, c.reshape(1, 2), Tensor.ones(2, 1), 0f, Tensor.ones(1, 1)));
            assertEquals("Tensor(closed, shape=[2])", c.toString());
            assertTrue(Elementwise.hasNonFinite(Tensor.of(new float[]{1, Float.NaN}, 2)));
            assertFalse(Elementwise.hasNonFinite(a));
        }
    }

    @Test
    void readableToString() {
        try (Scope s = Scope.open()) {
            assertEquals("tensor([[1.0, 2.0],\n        [3.0, 4.5000]], shape=[2, 2], dtype=f32, device=cpu)",
                    Tensor.of(new float[]{1, 2, 3, 4.5f}, 2, 2).toString());
        }
    }
}
