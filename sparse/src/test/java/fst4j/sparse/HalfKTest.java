package fst4j.sparse;

import fst4j.tensor.Blas;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class HalfKTest {

    @Property(tries = 80)
    void halfKEqualsMaskedDenseEq3(@ForAll @IntRange(min = 1, max = 20) int cout, @ForAll @IntRange(min = 1, max = 20) int d,
                                   @ForAll @IntRange(min = 1, max = 4) int images, @ForAll @IntRange(min = 1, max = 50) int hw,
                                   @ForAll boolean perImage, @ForAll long seed) {
        int k = images * hw, seg = perImage ? hw : k;
        try (Scope s = Scope.open()) {
            Tensor g = Tensor.of(TestData.values(cout * k, seed), cout, k);
            Tensor x = Tensor.of(TestData.values(d * k, seed + 1), d, k);
            float[] mask = new float[cout * k];
            for (int i = 0; i < cout; i++) for (int j = 0; j < k; j++) mask[i * k + j] = (j % seg) % 2 == 0 ? 1 : 0;
            Tensor gm = g.mul(Tensor.of(mask, cout, k));
            if (seg == k) assertArrayEquals(gm.toFloatArray(), new Sparsifier.Fixed24(1).apply(g).toFloatArray(), 0f);
            Tensor ref = Blas.matmul(gm, x.t());
            Tensor got = HalfK.weightGrad(g, x, seg);
            assertArrayEquals(new int[]{cout, d}, got.shape());
            double err = TestData.relErr(got.toFloatArray(), ref.toFloatArray());
            assertTrue(err < 1e-5, "rel err " + err);
        }
    }

    @Test
    void keptPositions() {
        assertArrayEquals(new int[]{0, 2, 4}, HalfK.keptPositions(6, 6));
        assertArrayEquals(new int[]{0, 2, 3, 5}, HalfK.keptPositions(6, 3));
        assertThrows(IllegalArgumentException.class, () -> HalfK.keptPositions(7, 3));
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.of(new float[]{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 2, 5);
            assertArrayEquals(new float[]{1, 3, 5, 6, 8, 10}, HalfK.gatherKept(t, 5).toFloatArray());
            // G = ones [1, 5]: dW[0, i] = sum of X row i over kept positions 0, 2, 4
            assertArrayEquals(new float[]{9, 24}, HalfK.weightGrad(Tensor.of(new float[]{1, 1, 1, 1, 1}, 1, 5), t).toFloatArray());
        }
    }
}
