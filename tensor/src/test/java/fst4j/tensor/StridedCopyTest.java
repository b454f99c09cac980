package fst4j.tensor;

import fst4j.shim.Native;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Float32 layout copies on the shim's threads (StridedCopy, fst_copy_f32) equal the element-by-element Java reads
 * bit for bit: any permutation and stepped slice of fresh random data, above and below the size where the copy goes
 * native, broadcasts, and the blocked convolution's image gathers and scatters.
 */
class StridedCopyTest {

    private static float[] randoms(int n, Random r) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    private static void assertBits(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++)
            assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), what + " at " + i);
    }

    @Property(tries = 80)
    void copyOfAPermutedSlicedViewEqualsItsElements(@ForAll @IntRange(min = 1, max = 5) int rank, @ForAll @IntRange(min = 1, max = 3) int step,
                                                    @ForAll boolean big, @ForAll long seed) {
        Random r = new Random(seed);
        int[] shape = new int[rank];
        long others = 1;
        for (int d = 0; d < rank; d++) { shape[d] = 1 + r.nextInt(7); others *= shape[d]; }
        int grow = r.nextInt(rank);
        others /= shape[grow];
        long target = big ? 3 * StridedCopy.MIN_NATIVE + r.nextInt(50_000) : 1 + r.nextInt(2_000);
        shape[grow] = (int) Math.max(1, target / others);
        int[] perm = new int[rank];
        for (int d = 0; d < rank; d++) perm[d] = d;
        for (int d = rank - 1; d > 0; d--) { int e = r.nextInt(d + 1), t = perm[d]; perm[d] = perm[e]; perm[e] = t; }
        try (Scope sc = Scope.open()) {
            Tensor x = Tensor.of(randoms(Math.toIntExact(others * shape[grow]), r), shape);
            Tensor v = x.permute(perm);
            int axis = r.nextInt(rank), size = v.size(axis);
            Tensor view = v.slice(axis, Math.min(1, size - 1), size, step);
            float[] want = view.toFloatArray();                  // storageIndex, element by element
            assertBits(want, view.copy().toFloatArray(), "copy of " + java.util.Arrays.toString(view.shape()));
            // a non-contiguous destination as well: the same shape over storage laid out with the axes reversed
            int[] vs = view.shape(), rev = new int[rank], revShape = new int[rank];
            for (int d = 0; d < rank; d++) { rev[d] = rank - 1 - d; revShape[d] = vs[rank - 1 - d]; }
            Tensor into = Tensor.empty(revShape).permute(rev);
            into.copyFrom(view);
            assertBits(want, into.toFloatArray(), "copy into a reversed-axes view");
        }
    }

    /**
     * Rank-2 copies that transpose (a linear layer's input gradient made contiguous) go by tiles: every element lands, at
     * sizes around and between the tiles, from a transposed view of a sliced matrix and into a transposed destination (the
     * small and thin ones take the row path, the others the tiles: at least 32 x 32 and StridedCopy.MIN_NATIVE elements).
     */
    @Test
    void transposingCopiesMoveEveryElement() {
        Random r = new Random(11);
        int[][] sizes = {{32, 32}, {33, 47}, {128, 6272}, {1000, 35}, {37, 2049}, {31, 5000}, {33, 1000}, {32, 1025}, {63, 1000}};
        try (Scope sc = Scope.open()) {
            for (int[] rc : sizes) {
                int rows = rc[0], cols = rc[1];
                Tensor big = Tensor.of(randoms(cols * (rows + 5), r), cols, rows + 5);
                Tensor v = big.slice(1, 2, rows + 2).t();   // [rows, cols], strides [1, rows + 5]
                float[] want = v.toFloatArray();
                assertBits(want, v.copy().toFloatArray(), "transposed view " + rows + "x" + cols);
                Tensor into = Tensor.empty(cols, rows).t();   // [rows, cols], strides [1, rows]
                try (Tensor c = v.copy()) { into.copyFrom(c); }
                assertBits(want, into.toFloatArray(), "into a transposed destination " + rows + "x" + cols);
            }
        }
    }

    @Test
    void broadcastRowsAreCopiedToEveryRow() {
        Random r = new Random(7);
        try (Scope sc = Scope.open()) {
            Tensor row = Tensor.of(randoms(4099, r), 1, 4099);
            Tensor dst = Tensor.empty(37, 4099);   // 151,663 elements: native
            dst.copyFrom(row);
            float[] got = dst.toFloatArray(), want = row.toFloatArray();
            for (int i = 0; i < 37; i++)
                for (int j = 0; j < 4099; j++) assertEquals(Float.floatToIntBits(want[j]), Float.floatToIntBits(got[i * 4099 + j]), "row " + i + " col " + j);
        }
    }

    /** buf[co, i*L + q] <-> images[n0 + i, co, q], with a block buffer wider than the block (ld > nb * L). */
    @Test
    void imageGathersAndScattersMoveEveryElement() {
        Random r = new Random(11);
        int n = 7, cout = 16, l = 1030, n0 = 2, nb = 3, ld = nb * l + 21;   // 49,440 elements per block: native
        try (Scope sc = Scope.open()) {
            float[] img = randoms(n * cout * l, r);
            Tensor dy3 = Tensor.of(img, n, cout, l);
            Tensor wide = Tensor.zeros(cout, ld), buf = wide.slice(1, 0, nb * l);
            Conv.gatherImages(dy3, buf, n0, nb);
            float[] b = wide.toFloatArray();
            for (int co = 0; co < cout; co++)
                for (int i = 0; i < nb; i++)
                    for (int q = 0; q < l; q++)
                        assertEquals(Float.floatToIntBits(img[((n0 + i) * cout + co) * l + q]), Float.floatToIntBits(b[co * ld + i * l + q]), "gather");
            for (int co = 0; co < cout; co++) assertEquals(0f, b[co * ld + nb * l], "past the block");
            Tensor out3 = Tensor.zeros(n, cout, l);
            Conv.scatterImages(buf, out3, n0, nb);
            float[] o = out3.toFloatArray();
            for (int i = 0; i < n; i++)
                for (int co = 0; co < cout; co++)
                    for (int q = 0; q < l; q++) {
                        float want = i >= n0 && i < n0 + nb ? img[(i * cout + co) * l + q] : 0f;
                        assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(o[(i * cout + co) * l + q]), "scatter image " + i);
                    }
        }
    }

    @Test
    void viewsOutsideTheirStorageAndBadRanksAreRejected() {
        try (Scope sc = Scope.open()) {
            Tensor a = Tensor.zeros(100), b = Tensor.of(randoms(100, new Random(3)), 100);
            var seg = a.storage.segment();
            var e = assertThrows(IndexOutOfBoundsException.class,
                    () -> StridedCopy.copy(seg, 50, new int[]{51}, new long[]{1}, b.storage.segment(), 0, new long[]{1}));
            assertTrue(e.getMessage().contains("destination"), e.getMessage());
            assertThrows(IndexOutOfBoundsException.class,
                    () -> StridedCopy.copy(seg, 0, new int[]{10, 10}, new long[]{10, 1}, b.storage.segment(), 5, new long[]{-10, 1}));
            for (float f : a.toFloatArray()) assertEquals(0f, f, "nothing written");
            long[] nine = new long[9];
            java.util.Arrays.fill(nine, 1);
            assertThrows(RuntimeException.class, () -> Native.copyF32(seg, 0, b.storage.segment(), 0, nine, nine, nine, 1));
        }
    }
}
