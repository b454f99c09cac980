package fst4j.tensor;

import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Blas.gemm whose output shares memory with an input: the native kernels write C while they still pack later K
 * blocks of A and B, so c = a * b into a gave wrong values with no error. The result must equal the product of
 * separate copies, bit for bit.
 */
class OverlappingGemmOperandsTest {
    private static Tensor random(Random r, int rows, int cols) {
        float[] v = new float[rows * cols];
        for (int i = 0; i < v.length; i++) v[i] = r.nextFloat() - 0.5f;
        return Tensor.of(v, rows, cols);
    }

    private static float[] product(Tensor a, Tensor b) {
        try (Tensor ac = a.copy(); Tensor bc = b.copy(); Tensor c = Tensor.zeros(a.size(0), b.size(1))) {
            Blas.gemm(1f, ac, bc, 0f, c);
            return c.toFloatArray();
        }
    }

    @Test
    void outputAliasingAnInputGetsTheProductOfTheInputsBeforeTheCall() {
        try (Scope s = Scope.open()) {
            Random r = new Random(7);
            int m = 96, k = 700;   // K past one packed block of the shim's kernels
            Tensor a = random(r, m, k), b = random(r, k, k);
            float[] want = product(a, b);
            Blas.gemm(1f, a, b, 0f, a);
            assertArrayEquals(want, a.toFloatArray(), "C = A");

            Tensor a2 = random(r, k, k), b2 = random(r, k, m);
            want = product(a2, b2);
            Blas.gemm(1f, a2, b2, 0f, b2);
            assertArrayEquals(want, b2.toFloatArray(), "C = B");

            // C a block of A's storage, A read transposed
            Tensor buf = random(r, k, 2 * k);
            Tensor at = buf.slice(1, 0, k).t(), c = buf.slice(1, k / 2, k / 2 + k);
            Tensor b3 = random(r, k, k);
            want = product(at, b3);
            Blas.gemm(1f, at, b3, 0f, c);
            assertArrayEquals(want, c.toFloatArray(), "C overlapping A^T");
        }
    }

    /** The float64 loop (gradcheck's precision) wrote C[i, j] before it read A[i, j] for the next column: [[1,2],[3,4]] x ones gave row 0 = [3, 5]. */
    @Test
    void theFloat64LoopReadsAnAliasedInputAsItWas() {
        try (Scope s = Scope.open()) {
            Tensor a = Tensor.of(new double[]{1, 2, 3, 4}, 2, 2), b = Tensor.of(new double[]{1, 1, 1, 1}, 2, 2);
            Blas.gemm(1f, a, b, 0f, a);
            assertArrayEquals(new double[]{3, 3, 7, 7}, a.toDoubleArray());
            Tensor c = Tensor.of(new double[]{1, 2, 3, 4}, 2, 2), e = Tensor.of(new double[]{1, 0, 0, 1}, 2, 2);
            Blas.gemm(2f, e, c, 0f, c);   // C = B
            assertArrayEquals(new double[]{2, 4, 6, 8}, c.toDoubleArray());
        }
    }
}
