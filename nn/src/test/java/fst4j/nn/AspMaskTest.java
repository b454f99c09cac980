package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** ASP's frozen mask: one 0/1 tensor built on W's device and reused by every forward, freed with its layer. */
class AspMaskTest {

    static boolean[] twoOfFour(int n, long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        boolean[] k = new boolean[n];
        for (int g = 0; g < n; g += 4) {
            int a = r.nextInt(4), b = (a + 1 + r.nextInt(3)) % 4;
            k[g + a] = true;
            k[g + b] = true;
        }
        return k;
    }

    static void assertAppliedBits(boolean[] keep, float[] w, float[] got) {
        for (int i = 0; i < w.length; i++)
            assertEquals(Float.floatToRawIntBits(keep[i] ? w[i] : 0f), Float.floatToRawIntBits(got[i]), "element " + i);
    }

    @Test
    void theMaskTensorIsBuiltOnceReusedAndRebuiltWhenTheMasksChange() {
        try (Scope s = Scope.open()) {
            boolean[] keep = twoOfFour(32 * 72, 1);
            Asp.FrozenMask m = new Asp.FrozenMask(keep, new int[]{32, 72});
            Tensor w = new Rng(2).normal(0, 1, 32, 72);
            float[] wv = w.toFloatArray();
            assertAppliedBits(keep, wv, m.apply(w).toFloatArray());
            assertEquals(1, m.builds, "apply built the mask tensor");
            assertAppliedBits(keep, wv, m.apply(w).toFloatArray());
            assertEquals(1, m.builds, "and reused it");
            Tensor first = m.keptMask(w);
            assertAppliedBits(keep, wv, m.apply(w).toFloatArray());
            assertSame(first, m.keptMask(w), "reused, not rebuilt");
            assertFalse(first.isClosed(), "outlives the scope of the step that built it");

            boolean[] other = twoOfFour(32 * 72, 3);
            Asp.FrozenMask donor = new Asp.FrozenMask(other, new int[]{32, 72});
            m.importState(donor.exportState());
            assertTrue(first.isClosed(), "the old masks' tensor is freed");
            assertAppliedBits(other, wv, m.apply(w).toFloatArray());
            assertThrows(IllegalArgumentException.class, () -> m.apply(new Rng(4).normal(0, 1, 72, 32)));
            m.close();
            assertAppliedBits(other, wv, m.apply(w).toFloatArray());   // built again after close
            m.keptMask(w).close();   // closed from outside: rebuilt, not refused
            assertAppliedBits(other, wv, m.apply(w).toFloatArray());
            m.close();
        }
    }

    @Test
    void aLayerFreesItsMaskWhenItClosesOrChangesConfiguration() {
        long before = Memory.bytesInUse();
        Conv2d conv = new Conv2d(8, 16, 3, 1, 1, false, Method.ASP.config(), new Rng(5));
        Asp.FrozenMask m = new Asp.FrozenMask(twoOfFour(16 * 72, 6), new int[]{16, 72});
        conv.setSparsity(Method.ASP.config().withW(m).withWtFromSparse(true));
        Tensor mask;
        try (Scope s = Scope.open()) {
            conv.forward(fst4j.autograd.Var.of(new Rng(7).normal(0, 1, 2, 8, 5, 5)));
            mask = m.keptMask(conv.weight().value().reshape(16, 72));
        }
        assertFalse(mask.isClosed(), "kept across steps");
        conv.setSparsity(Method.ASP.config().withW(m).withWtFromSparse(true).withName("asp"));
        assertFalse(mask.isClosed(), "a configuration that keeps the mask keeps its tensor");
        conv.setSparsity(Method.DENSE.config());
        assertTrue(mask.isClosed(), "replaced: freed");

        conv.setSparsity(Method.ASP.config().withW(m).withWtFromSparse(true));
        Tensor again;
        try (Scope s = Scope.open()) {
            conv.forward(fst4j.autograd.Var.of(new Rng(7).normal(0, 1, 2, 8, 5, 5)));
            again = m.keptMask(conv.weight().value().reshape(16, 72));
        }
        conv.close();
        assertTrue(again.isClosed(), "closed with its layer");
        assertEquals(before, Memory.bytesInUse(), "nothing left behind");
    }

    /**
     * Four threads running the layer's forward at once (an eval-mode model serving them) ask for the mask tensor
     * together, right after it was freed: it is built once and shared, and nothing is left behind. Without the rule's
     * lock two threads built it in the same round and one tensor was never freed.
     */
    @Test
    void fourThreadsAskingAtOnceBuildTheMaskTensorOnce() throws InterruptedException {
        long before = Memory.bytesInUse();
        boolean[] keep = twoOfFour(32 * 72, 11);
        Asp.FrozenMask m = new Asp.FrozenMask(keep, new int[]{32, 72});
        Tensor w = Scope.within(null, () -> new Rng(12).normal(0, 1, 32, 72));
        float[] wv = w.toFloatArray();
        int rounds = 150;
        Tensor[] got = new Tensor[SharedModuleThreadsTest.THREADS];
        for (int r = 0; r < rounds; r++) {
            m.close();   // freed: the next forward builds it again
            SharedModuleThreadsTest.onThreads(t -> {
                got[t] = m.keptMask(w);
                try (Tensor y = m.apply(w)) { assertAppliedBits(keep, wv, y.toFloatArray()); }
            });
            for (Tensor g : got) assertSame(got[0], g, "round " + r + ": one tensor for every thread");
            assertEquals(r + 1, m.builds, "round " + r + ": built once");
        }
        m.close();
        w.close();
        assertEquals(before, Memory.bytesInUse(), "no mask tensor left behind");
    }

    /** A pruned model trains the same with the mask tensor as with the mask built every call (the Java selection). */
    @Test
    void aPrunedModelsStepsAreTheSameBitsAsTheSelectionBuiltEachCall() {
        try (Scope s = Scope.open()) {
            Sparsifier.Custom plain = Sparsifier.Custom.of("built each call", 1, true, (v, shape) -> twoOfFour(v.length, 8));
            Asp.FrozenMask cached = new Asp.FrozenMask(twoOfFour(16 * 72, 8), new int[]{16, 72});
            Tensor w = new Rng(9).normal(0, 1, 16, 72);
            for (int i = 0; i < 3; i++) assertArrayEquals(plain.apply(w).toFloatArray(), cached.apply(w).toFloatArray());
        }
    }
}
