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

    /** float64 stays float64: the gather rounded to float32, so FST3's float64 Eq. 3 carried ~1e-7 relative error. */
    @Test
    void gatherKeptKeepsFloat64() {
        try (Scope s = Scope.open()) {
            double[] v = new double[3 * 8];
            for (int i = 0; i < v.length; i++) v[i] = 0.1 * i + 1e-12 * (i + 1);   // not float32 values
            Tensor t = Tensor.of(v, 3, 8);
            Tensor k = HalfK.gatherKept(t, 4);
            assertEquals(fst4j.tensor.DType.F64, k.dtype());
            assertArrayEquals(new int[]{3, 4}, k.shape());
            double[] got = k.toDoubleArray();
            for (int r = 0; r < 3; r++)
                for (int j = 0; j < 4; j++) assertEquals(v[r * 8 + (j / 2) * 4 + (j % 2) * 2], got[r * 4 + j], 0.0, "row " + r + ", kept " + j);
        }
    }

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

    /**
     * The IR shift + half-K gather read from NCHW images in place equals the same op on the images gathered into
     * [C, N*L] first, bit for bit: even and odd planes, both shift directions, circular or not, coeff 0 (a plain
     * gather), fresh random values; and on a view whose channels are not contiguous (a channel slice).
     */
    @Property(tries = 80)
    void shiftGatherImagesEqualsGatheredMatrix(@ForAll @IntRange(min = 1, max = 5) int n, @ForAll @IntRange(min = 1, max = 9) int c,
                                               @ForAll @IntRange(min = 1, max = 40) int l, @ForAll boolean backwards,
                                               @ForAll boolean circular, @ForAll boolean noShift, @ForAll boolean slice, @ForAll long seed) {
        int shift = backwards ? -1 : 1, cAll = slice ? c + 3 : c;
        float coeff = noShift ? 0f : 0.3f;
        try (Scope s = Scope.open()) {
            Tensor all = Tensor.of(TestData.values(n * cAll * l, seed), n, cAll, l);
            Tensor dy = slice ? all.slice(1, 1, 1 + c) : all;
            // [C, N*L]: image i's plane of channel r at columns i*L ..
            float[] v = dy.contiguous().toFloatArray(), m = new float[c * n * l];
            for (int i = 0; i < n; i++) for (int r = 0; r < c; r++) System.arraycopy(v, (i * c + r) * l, m, r * n * l + i * l, l);
            Tensor want = HalfK.shiftGather(Tensor.of(m, c, n * l), l, coeff, shift, circular, 1);
            for (int threads : new int[]{1, 2}) {
                Tensor got = HalfK.shiftGatherImages(dy, coeff, shift, circular, threads);
                assertArrayEquals(want.shape(), got.shape());
                assertArrayEquals(want.toFloatArray(), got.toFloatArray(), 0f, "threads " + threads);
            }
        }
    }

    /** The same at a size the native pass splits over threads, and on a view with strided planes (copied first). */
    @Test
    void shiftGatherImagesLargeAndStrided() {
        try (Scope s = Scope.open()) {
            int n = 4, c = 32, l = 1024;
            Tensor dy = Tensor.of(TestData.values(n * c * l, 17), n, c, l);
            float[] v = dy.toFloatArray(), m = new float[c * n * l];
            for (int i = 0; i < n; i++) for (int r = 0; r < c; r++) System.arraycopy(v, (i * c + r) * l, m, r * n * l + i * l, l);
            Tensor want = HalfK.shiftGather(Tensor.of(m, c, n * l), l, 0.03f, 1, true, 1);
            assertArrayEquals(want.toFloatArray(), HalfK.shiftGatherImages(dy, 0.03f, 1, true, 2).toFloatArray(), 0f, "2 threads");
            // [N, L, C] permuted to [N, C, L]: unit stride along C, not along L
            Tensor nlc = Tensor.of(TestData.values(2 * 6 * 10, 3), 2, 10, 6), ncl = nlc.permute(0, 2, 1);
            float[] pv = ncl.contiguous().toFloatArray(), pm = new float[6 * 2 * 10];
            for (int i = 0; i < 2; i++) for (int r = 0; r < 6; r++) System.arraycopy(pv, (i * 6 + r) * 10, pm, r * 20 + i * 10, 10);
            assertArrayEquals(HalfK.shiftGather(Tensor.of(pm, 6, 20), 10, 0.5f, -1, false, 1).toFloatArray(),
                    HalfK.shiftGatherImages(ncl, 0.5f, -1, false, 1).toFloatArray(), 0f, "a permuted view");
        }
    }

    @Test
    void shiftGatherImagesRejectsBadInput() {
        try (Scope s = Scope.open()) {
            Tensor m = Tensor.of(new float[]{1, 2, 3, 4}, 2, 2);
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGatherImages(m, 0.5f, 1, false, 1), "a matrix is not [N, C, L]");
            Tensor t = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 1, 2, 3);
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGatherImages(t, 0.5f, 2, false, 1), "shift 2");
            assertThrows(IllegalArgumentException.class, () -> HalfK.shiftGatherImages(t, 0.5f, 1, false, 0), "0 threads");
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
