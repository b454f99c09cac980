package fst4j.autograd;

import fst4j.sparse.Compressed24;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The Eq. 1-3 node's kept S(W) ({@link EvalCache}) at the node: what the key holds (W's memory and view, its version,
 * the right-hand side's dtype, the product), that each caller holds a lease of its own which outlives a new key and the
 * node's drop (so a forward on one thread never loses its operand to another thread's rebuild), that a lease closed
 * twice releases once, and that a forward needing W's gradient, or the switch turned off, keeps nothing.
 */
class EvalCacheTest {
    private boolean was;

    @BeforeEach void on() { was = Gemm3.setEvalCache(true); }
    @AfterEach void restore() { Gemm3.setEvalCache(was); }

    /** l x as a new [rows, cols] tensor. */
    private static float[] times(Gemm3.Left l, Tensor x) {
        try (Tensor y = Tensor.empty(x.device(), x.dtype(), l.rows(), x.size(1))) {
            l.times(x, y);
            return y.toFloatArray();
        }
    }

    /** S(W) x by the uncached path: the rule applied now, the same product. */
    private static float[] pruneNow(Gemm3 node, Tensor w, Tensor x) {
        try (Gemm3.Prepared p = node.prepareForward(w, x.dtype(), false, false)) { return times(p.left(), x); }
    }

    @Test
    void aLeaseOutlivesANewKeyAndTheNodesDropAndIsReleasedOnce() {
        long baseline = Memory.bytesInUse();
        Gemm3 node = new Gemm3(SparseConfig.Method.FST2.config(), true);
        Rng rng = new Rng(1);
        try (Tensor w = rng.normal(0, 1, 8, 16); Tensor x = rng.normal(0, 1, 16, 5); Tensor other = rng.normal(0, 1, 8, 16)) {
            Gemm3 ref = new Gemm3(SparseConfig.Method.FST2.config());
            float[] old = pruneNow(ref, w, x);
            long operand;   // the kept 2:4 operand's bytes: values [8, 8] and metadata [8, 1]
            try (Compressed24 c = Compressed24.pruneCompress(w, null, Blas.threads())) { operand = (c.values().numel() + c.metadata().numel()) * 4; }
            long before = Memory.bytesInUse();
            Gemm3.Prepared p1 = node.prepareForward(w, DType.F32, false, true);
            assertEquals(before + operand, Memory.bytesInUse(), "one operand kept, the lease holds no memory of its own");
            assertEquals(2, node.evalCacheRefs(), "the cache's reference and the lease");
            assertArrayEquals(old, times(p1.left(), x));

            w.copyFrom(other);   // a new version: the next forward builds a new operand
            Gemm3.Prepared p2 = node.prepareForward(w, DType.F32, false, true);
            assertEquals(2, node.weightPreparations());
            assertEquals(2, node.evalCacheRefs(), "the new operand: the cache's and p2's");
            assertArrayEquals(old, times(p1.left(), x), "the first lease still multiplies by the S(W) it was given");
            assertArrayEquals(pruneNow(ref, w, x), times(p2.left(), x));
            assertEquals(before + 2 * operand, Memory.bytesInUse(), "the old operand lives while its lease does");
            p1.close();
            assertEquals(before + operand, Memory.bytesInUse(), "the last lease of the old operand freed it");

            node.dropEvalCache();
            assertFalse(node.evalCacheHolds());
            assertEquals(before + operand, Memory.bytesInUse(), "dropped by the node, still leased");
            assertArrayEquals(pruneNow(ref, w, x), times(p2.left(), x));
            p2.close();
            p2.close();   // a second close releases nothing more
            assertEquals(before, Memory.bytesInUse(), "freed once, by the last lease");
        }
        assertEquals(baseline, Memory.bytesInUse());
    }

    @Test
    void theKeyIsWsMemoryViewVersionTheRightHandDtypeAndTheProduct() {
        Gemm3 node = new Gemm3(SparseConfig.Method.FST3_IR.config(), true), ref = new Gemm3(SparseConfig.Method.FST3_IR.config());
        Rng rng = new Rng(2);
        try (Scope s = Scope.open()) {
            Tensor big = rng.normal(0, 1, 8, 32), x = rng.normal(0, 1, 16, 3);
            Tensor left = big.slice(1, 0, 16), right = big.slice(1, 16, 32);   // one storage, two views
            long n = 0;
            Object[][] calls = {
                    {left, DType.F32, false, true}, {left, DType.F32, false, false},   // built, then reused
                    {right, DType.F32, false, true},                                  // another view of the same memory
                    {left, DType.F32, false, true},                                   // one operand kept per layer: built again
                    {left.copy(), DType.F32, false, true},                            // equal values, other memory
                    {left, DType.F64, false, true},                                   // a float64 right-hand side (no 2:4 product)
                    {left, DType.F32, true, true},                                    // the dense product of S(W)
                    {left, DType.F32, true, false}};
            for (Object[] c : calls) {
                Tensor w = (Tensor) c[0];
                DType xt = (DType) c[1];
                boolean dense = (Boolean) c[2], built = (Boolean) c[3];
                try (Gemm3.Prepared p = node.prepareForward(w, xt, dense, true); Gemm3.Prepared q = ref.prepareForward(w, xt, dense, false)) {
                    if (built) n++;
                    assertEquals(n, node.weightPreparations(), java.util.Arrays.toString(c) + (built ? " builds" : " reuses"));
                    // (a float64 right-hand side meets the float32 S(W) in Gemm3.forward's mixed product, not Left.times)
                    if (xt == DType.F32) assertArrayEquals(times(q.left(), x), times(p.left(), x), "the uncached product");
                }
            }
            assertEquals(1, node.evalCacheRefs(), "every lease closed");
        }
        node.dropEvalCache();
        assertEquals(0, node.evalCacheRefs());
    }

    @Test
    void aForwardNeedingWsGradientOrTheSwitchOffKeepsNothingAndLetsGo() {
        Gemm3 node = new Gemm3(SparseConfig.Method.SR_STE.config(), true);
        Rng rng = new Rng(3);
        long baseline = Memory.bytesInUse();
        try (Tensor w = rng.normal(0, 1, 8, 16)) {
            long before = Memory.bytesInUse();
            node.prepareForward(w, DType.F32, false, true).close();
            assertTrue(node.evalCacheHolds() && Memory.bytesInUse() > before);
            node.prepareForward(w, DType.F32, false, false).close();
            assertFalse(node.evalCacheHolds(), "a forward that needs W's gradient keeps nothing");
            assertEquals(before, Memory.bytesInUse(), "and frees what was kept");

            node.prepareForward(w, DType.F32, false, true).close();
            Gemm3.setEvalCache(false);
            long n = node.weightPreparations();
            for (int i = 0; i < 2; i++) node.prepareForward(w, DType.F32, false, true).close();
            assertEquals(n + 2, node.weightPreparations(), "switched off, every forward prunes");
            assertFalse(node.evalCacheHolds(), "and what was kept is let go");
            assertEquals(before, Memory.bytesInUse());
        }
        assertEquals(baseline, Memory.bytesInUse());
    }

    @Test
    void aGroupedConvolutionLeasesEachGroupsOperand() {
        Gemm3 node = new Gemm3(SparseConfig.Method.FST2.config(), true), ref = new Gemm3(SparseConfig.Method.FST2.config());
        Rng rng = new Rng(4);
        long baseline = Memory.bytesInUse();
        try (Tensor w = rng.normal(0, 1, 8, 12); Tensor x = rng.normal(0, 1, 12, 4)) {
            for (int call = 0; call < 3; call++) {
                try (Gemm3.PreparedGroups p = node.prepareForwardGroups(w, DType.F32, 2, true); Tensor psw = p.sw();
                     Gemm3.PreparedGroups q = ref.prepareForwardGroups(w, DType.F32, 2, false); Tensor qsw = q.sw()) {
                    assertEquals(3, node.evalCacheRefs(), "the cache's and one per group");
                    for (int g = 0; g < 2; g++) assertArrayEquals(times(q.lefts()[g], x), times(p.lefts()[g], x), "group " + g);
                }
            }
            assertEquals(1, node.weightPreparations());
            assertEquals(1, node.evalCacheRefs());
            node.dropEvalCache();
        }
        assertEquals(baseline, Memory.bytesInUse());
    }

    /**
     * A node made for one call ({@code Layers.linear(new Gemm3(cfg), ...)}, as NN.conv2d and user code do) has no owner to
     * let a kept S(W) go, and Gemm3 is not closeable: its forwards without W's gradient (no-grad, a frozen W) keep nothing,
     * so the call's off-heap memory is all back when its scope closes, as before the kept S(W) existed. Linear, a
     * convolution (W frozen, with backward through Eq. 2) and a grouped convolution.
     */
    @Test
    void aNodeWithoutAnOwnerKeepsNothingAfterTheCall() {
        Rng rng = new Rng(5);
        long baseline = Memory.bytesInUse();
        java.util.List<Gemm3> nodes = new java.util.ArrayList<>();
        try (Scope s = Scope.open(); Grad.Restore g = Grad.noGrad()) {
            Gemm3 n = new Gemm3(SparseConfig.Method.SR_STE.config());
            nodes.add(n);
            Layers.linear(n, Var.of(rng.normal(0, 1, 2, 16)), Var.of(rng.normal(0, 1, 8, 16)), null);
        }
        assertEquals(baseline, Memory.bytesInUse(), "a linear layer's call under no-grad");
        try (Scope s = Scope.open()) {
            Gemm3 n = new Gemm3(SparseConfig.Method.FST_CODE.config(1));   // Eq. 2 takes W^T from S(W)
            nodes.add(n);
            Var x = Var.param(rng.normal(0, 1, 2, 3, 8, 8)), w = Var.param(rng.normal(0, 0.3, 8, 3, 3, 3)).requiresGrad(false);
            Layers.conv2d(n, x, w, null, 1, 1).sum().backward();
            assertNotNull(x.grad());
        }
        assertEquals(baseline, Memory.bytesInUse(), "a convolution's call and backward with W frozen");
        try (Scope s = Scope.open(); Grad.Restore g = Grad.noGrad()) {
            Gemm3 n = new Gemm3(SparseConfig.Method.FST2.config());
            nodes.add(n);
            Layers.conv2d(n, Var.of(rng.normal(0, 1, 2, 4, 6, 6)), Var.of(rng.normal(0, 1, 8, 2, 3, 3)), null, ConvParams.of(1, 1, 1, 2));
        }
        assertEquals(baseline, Memory.bytesInUse(), "a grouped convolution's call under no-grad");
        for (Gemm3 n : nodes) {
            assertFalse(n.evalCacheHolds(), n.config().name() + ": nothing kept");
            assertEquals(1, n.weightPreparations(), n.config().name() + ": S(W) was prepared (the test reached the W slot)");
        }
    }

    @Test
    void onlyRulesThatReadWsValuesAndKeepNoStateAreKept() {
        for (SparseConfig.Method m : SparseConfig.Method.values()) {
            Sparsifier w = m.config().w();
            boolean pure = w instanceof Sparsifier.Magnitude24 || w instanceof Sparsifier.MagnitudeNM;
            assertEquals(pure, new Gemm3(m.config(), true).keepsPrunedW(), m + " (" + w + ")");
            assertFalse(new Gemm3(m.config()).keepsPrunedW(), m + ": a node without an owner keeps nothing");
        }
        assertTrue(new Gemm3(SparseConfig.Method.FST2.config(0, new fst4j.sparse.NM(1, 4)), true).keepsPrunedW(), "N:M");
        assertFalse(new Gemm3(SparseConfig.Method.FST2.config().withW(Sparsifier.Custom.of("all", 1, false, (v, s) -> new boolean[v.length])), true).keepsPrunedW(),
                "a rule of one's own");
    }
}
