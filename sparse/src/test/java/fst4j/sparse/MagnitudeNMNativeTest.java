package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Magnitude N:M on float32 CPU tensors by the shim (fst_prune_nm, nm.c) against the host rule (Masks.magnitudeNM through
 * applyOnHost), bit for bit: at any pattern up to 31:32, any axis of ranks 1-4 (the presets' axis 1 of W [Cout, K] and
 * axis 0 of W^T among them), lengths that leave a short last group, values with ties, NaN (two payloads), +-0.0 and
 * infinities, on contiguous and permuted tensors, on one thread and split; and the entry point's refusals.
 */
class MagnitudeNMNativeTest {

    @Provide
    Arbitrary<NM> patterns() {
        return Arbitraries.integers().between(2, 32).flatMap(m -> Arbitraries.integers().between(1, m - 1).map(n -> new NM(n, m)));
    }

    @Provide
    Arbitrary<int[]> shapes() {
        return Arbitraries.integers().between(1, 41).array(int[].class).ofMinSize(1).ofMaxSize(4)
                .filter(s -> { long n = 1; for (int d : s) n *= d; return n <= 60_000; });
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        assertArrayEquals(want.shape(), got.shape(), what + " shape");
        assertEquals(DType.F32, got.dtype(), what);
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        for (int i = 0; i < a.length; i++)
            assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]), what + " at " + i + ": host " + a[i] + ", shim " + b[i]);
    }

    @Property(tries = 300)
    void theShimKeepsWhatTheHostRuleKeeps(@ForAll("shapes") int[] shape, @ForAll("patterns") NM nm, @ForAll @IntRange(min = 0, max = 7) int pick,
                                          @ForAll @IntRange(min = 1, max = 3) int threads, @ForAll boolean special, @ForAll long seed) {
        assertTrue(Native.isLoaded(), "the shim is part of the build");
        int axis = pick % 2 == 0 ? pick / 2 % shape.length : -1 - pick / 2 % shape.length;
        int saved = Blas.threads();
        Blas.setThreads(threads);
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(MagnitudeNMTest.values(TestData.numel(shape), seed, special), shape);
            Sparsifier sp = new Sparsifier.MagnitudeNM(nm, axis);
            assertBits(Masks.applyOnHost(sp, x), sp.apply(x), nm + " axis " + axis);
            if (shape.length >= 2) {   // a permuted view: copied to contiguous, then the same selection as the host's
                Tensor xt = x.transpose(0, shape.length - 1);
                assertBits(Masks.applyOnHost(sp, xt), sp.apply(xt), nm + " axis " + axis + " transposed");
            }
        } finally {
            Blas.setThreads(saved);
        }
    }

    /** Ties broken to the lower index, every NaN equal and largest, -0.0 equal to +0.0, the short last group among its own. */
    @Test
    void theRuleAtItsEdges() {
        try (Scope s = Scope.open()) {
            float nan2 = Float.intBitsToFloat(0x7fc00123);
            Tensor x = Tensor.of(new float[]{1, -1, 1, 2, /**/ -0f, 0f, 0f, -0f, /**/ Float.NaN, nan2, Float.POSITIVE_INFINITY, Float.NaN, /**/ 3, -3}, 14);
            Tensor y = new Sparsifier.MagnitudeNM(2, 4, 0).apply(x);
            float[] want = {1, 0, 0, 2, /**/ -0f, 0f, 0, 0, /**/ Float.NaN, nan2, 0, 0, /**/ 3, -3};
            float[] got = y.toFloatArray();
            for (int i = 0; i < want.length; i++)
                assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(got[i]), "at " + i + ": " + got[i]);
            assertBits(Masks.applyOnHost(new Sparsifier.MagnitudeNM(2, 4, 0), x), y, "2:4 edges");
            assertBits(Masks.applyOnHost(new Sparsifier.MagnitudeNM(1, 3, 0), x), new Sparsifier.MagnitudeNM(1, 3, 0).apply(x), "1:3 edges");
            Tensor e = Tensor.empty(DType.F32, 3, 0);
            assertArrayEquals(new int[]{3, 0}, new Sparsifier.MagnitudeNM(1, 4, 1).apply(e).shape());
            IllegalArgumentException a = assertThrows(IllegalArgumentException.class, () -> new Sparsifier.MagnitudeNM(1, 4, 2).apply(x));
            assertTrue(a.getMessage().contains("axis 2 out of range"), a.getMessage());
        }
    }

    @Test
    void theEntryPointRefusesBadArgumentsNamingTheCall() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(MagnitudeNMTest.values(64, 3, true), 64), out = Tensor.empty(DType.F32, 64);
            MemorySegment xs = x.data(), os = out.data();
            for (int[] bad : new int[][]{{4, 4}, {0, 4}, {1, 1}, {1, 33}, {5, 4}}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.pruneNM(xs, os, 1, 64, 1, bad[0], bad[1], 1));
                assertTrue(e.getMessage().startsWith("fst_prune_nm"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> Native.srsteDecayNM(xs, os, 4, 16, bad[0], bad[1], 1e-3f, 1));
                assertTrue(e.getMessage().startsWith("fst_srste_decay_nm"), e.getMessage());
            }
            IndexOutOfBoundsException o = assertThrows(IndexOutOfBoundsException.class, () -> Native.pruneNM(xs, os, 2, 64, 1, 1, 4, 1));
            assertTrue(o.getMessage().startsWith("fst_prune_nm") && o.getMessage().contains("128 floats"), o.getMessage());
            o = assertThrows(IndexOutOfBoundsException.class, () -> Native.srsteDecayNM(xs, os, 5, 16, 1, 4, 1e-3f, 1));
            assertTrue(o.getMessage().startsWith("fst_srste_decay_nm"), o.getMessage());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.pruneNM(xs, os, -1, 64, 1, 1, 4, 1));
            assertTrue(e.getMessage().contains("negative"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.pruneNM(xs, xs.asSlice(16), 1, 32, 1, 1, 4, 1));   // shifted output
            assertTrue(e.getMessage().startsWith("fst_prune_nm"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.pruneNM(xs, os, 1, 64, 1, 1, 4, 0));
            assertTrue(e.getMessage().startsWith("fst_prune_nm"), e.getMessage());
        }
    }
}
