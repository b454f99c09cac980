package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.lang.ref.WeakReference;

import static org.junit.jupiter.api.Assertions.*;

/**
 * MultiheadAttention's boolean masks are scanned once per mask and version (CheckedMasks), not every forward: the same
 * masks over several forwards are scanned once; a mask written in place after a good forward (set, fill, copyFrom,
 * through another view of its storage, markModified after a raw write) is scanned again and refused; a new tensor in a
 * closed one's memory is not taken for it; the cache keeps no tensor alive, forgets closed ones and stays bounded.
 * CudaMaskCheckCacheTest does the memory reuse on the device, where the caching allocator hands the block back.
 */
class MaskCheckCacheTest {
    static final int B = 2, L = 3, S = 4, E = 4, H = 2;

    static MultiheadAttention mha() {
        return new MultiheadAttention(E, H, 0, true, E, E, Method.DENSE.config(), null, null, Method.DENSE.config(), new Rng(1));
    }

    static Tensor kpm() { return Tensor.of(new float[]{0, 0, 0, 1, 1, 0, 0, 0}, B, S); }

    static Tensor boolMask() {
        Tensor m = Tensor.zeros(L, S);
        m.set(1, 0, 1); m.set(1, 2, 3);
        return m;
    }

    static NN.Attended run(MultiheadAttention m, Var q, Var kv, Tensor kpm, Tensor bool) {
        return m.forward(q, kv, kv, kpm, false, bool == null ? null : AttnMask.bool(bool), true);
    }

    static void refused(MultiheadAttention m, Var q, Var kv, Tensor kpm, Tensor bool, String name) {
        String msg = assertThrows(IllegalArgumentException.class, () -> run(m, q, kv, kpm, bool)).getMessage();
        assertTrue(msg.startsWith("dtype: " + name), msg);
    }

    @Test
    void theSameMasksAreScannedOnce() {
        try (Scope s = Scope.open(); MultiheadAttention m = mha()) {
            Rng rng = new Rng(2);
            Var q = Var.of(rng.normal(0, 1, B, L, E)), kv = Var.of(rng.normal(0, 1, B, S, E));
            Tensor kpm = kpm(), bool = boolMask();
            int before = CheckedMasks.scans();
            float[] first = null;
            for (int step = 0; step < 3; step++) {
                try (Scope st = Scope.open()) {
                    float[] y = run(m, q, kv, kpm, bool).output().value().toFloatArray();
                    if (first == null) first = y; else assertArrayEquals(first, y, "step " + step);
                }
            }
            assertEquals(2, CheckedMasks.scans() - before, "two masks, each scanned at its first forward only");
        }
    }

    @Test
    void aMaskWrittenInPlaceIsCheckedAgain() {
        try (Scope s = Scope.open(); MultiheadAttention m = mha()) {
            Rng rng = new Rng(3);
            Var q = Var.of(rng.normal(0, 1, B, L, E)), kv = Var.of(rng.normal(0, 1, B, S, E));
            Tensor kpm = kpm(), bool = boolMask();
            run(m, q, kv, kpm, bool);
            bool.set(0.5, 1, 1);
            refused(m, q, kv, kpm, bool, "attn_mask");
            bool.set(0, 1, 1);
            run(m, q, kv, kpm, bool);   // back to 0/1: accepted again
            kpm.fill(0.5);
            refused(m, q, kv, kpm, bool, "key_padding_mask");
            kpm.copyFrom(kpm());
            run(m, q, kv, kpm, bool);
            try (Tensor row = kpm.slice(0, 1, 2)) { row.fill(Float.NaN); }   // another view of the mask's storage
            refused(m, q, kv, kpm, bool, "key_padding_mask");
            kpm.copyFrom(kpm());
            run(m, q, kv, kpm, bool);
            // a write past fst4j's API is seen once it is declared (Tensor.markModified), as autograd's saved tensors see it
            kpm.segment().set(java.lang.foreign.ValueLayout.JAVA_FLOAT_UNALIGNED, 0, 2f);
            kpm.markModified();
            refused(m, q, kv, kpm, bool, "key_padding_mask");
        }
    }

    @Test
    void aNewTensorInAClosedOnesMemoryIsScanned() {
        try (Scope s = Scope.open(); MultiheadAttention m = mha()) {
            Rng rng = new Rng(4);
            Var q = Var.of(rng.normal(0, 1, B, L, E)), kv = Var.of(rng.normal(0, 1, B, S, E));
            Tensor good = boolMask();
            run(m, q, kv, null, good);
            good.close();
            assertThrows(IllegalStateException.class, () -> run(m, q, kv, null, good), "a closed mask is refused, not taken from the cache");
            for (int i = 0; i < 4; i++) {   // same size: the allocator may well hand back the closed one's memory
                Tensor bad = Tensor.full(0.5, DType.F32, L, S);
                refused(m, q, kv, null, bad, "attn_mask");
                bad.close();
            }
        }
    }

    @Test
    void theCacheKeepsNoTensorAliveAndStaysBounded() throws InterruptedException {
        try (Scope s = Scope.open(); MultiheadAttention m = mha()) {
            Rng rng = new Rng(5);
            Var q = Var.of(rng.normal(0, 1, B, L, E)), kv = Var.of(rng.normal(0, 1, B, S, E));
            WeakReference<Tensor> gone = validatedThenClosed(m, q, kv);
            for (int i = 0; i < 50 && gone.get() != null; i++) { System.gc(); Thread.sleep(10); }
            assertNull(gone.get(), "a validated mask, closed and unreferenced, is collected: the cache holds it weakly");
            for (int i = 0; i < CheckedMasks.CAPACITY + 5; i++) {
                try (Tensor b = boolMask()) { run(m, q, kv, null, b); }
            }
            assertTrue(CheckedMasks.size() <= CheckedMasks.CAPACITY, "bounded: " + CheckedMasks.size());
            try (Tensor b = boolMask()) { run(m, q, kv, null, b); }
            assertTrue(CheckedMasks.size() <= 1, "closed masks are forgotten: " + CheckedMasks.size());
        }
    }

    private static WeakReference<Tensor> validatedThenClosed(MultiheadAttention m, Var q, Var kv) {
        Tensor t = Scope.within(null, MaskCheckCacheTest::boolMask);   // unowned: no scope keeps a reference
        run(m, q, kv, null, t);
        t.close();
        return new WeakReference<>(t);
    }
}
