package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Functions of several outputs (torch.autograd.Function returning a tuple): a two-output (exp x, x * y) gradchecked in
 * float64 with both outputs used, one unused, one used twice and feeding each other's consumers; its backward runs once,
 * after both gradients; retained graphs, saved-tensor versions, closing and freeing. (Tensor has no sin: exp stands in
 * for torch's usual sin example.)
 */
class MultiFunctionTest {

    /** (exp x, x * y); counts its backward calls and, given a log, records what it received (copies left to the scope). */
    static final class ExpAndProduct extends MultiFunction {
        final List<String> log;
        int backwards;
        Tensor[] received;
        private Tensor x, y, e;

        ExpAndProduct() { this(null); }
        ExpAndProduct(List<String> log) { this.log = log; }

        @Override
        protected Tensor[] forwardMulti(Tensor... in) {
            Tensor ex = in[0].exp();
            x = save(in[0]); y = save(in[1]); e = save(ex);
            return outputs(ex, in[0].mul(in[1]));
        }

        @Override
        protected Tensor[] backwardMulti(Tensor[] g) {
            backwards++;
            if (log != null) {
                log.add("multi");
                received = new Tensor[g.length];
                for (int k = 0; k < g.length; k++) received[k] = g[k] == null ? null : g[k].copy();
            }
            try (Tensor a = g[0].mul(e); Tensor b = g[1].mul(y)) { return grads(a.add(b), g[1].mul(x)); }
        }
    }

    /** Identity that logs when its backward runs (to see the order). */
    static Var logged(Var v, List<String> log, String name) {
        return new Function() {
            @Override protected Tensor forward(Tensor... in) { return in[0].copy(); }
            @Override protected Tensor[] backward(Tensor g) { log.add(name); return grads(g.copy()); }
        }.apply(v);
    }

    private static Tensor[] inputs() {
        Rng r = new Rng(11);
        return new Tensor[]{r.normal(0, 1, 3, 4).to(DType.F64), r.normal(0, 1, 3, 4).to(DType.F64)};
    }

    private static void assertPasses(GradCheck.Result r) { assertTrue(r.passed(), r.toString()); }

    @Test
    void gradcheckBothOutputsEachAloneAndTogether() {
        try (Scope s = Scope.open()) {
            assertPasses(GradCheck.checkMulti(in -> new ExpAndProduct().applyMulti(in[0], in[1]), inputs()));
        }
    }

    @Test
    void gradcheckOutputsUsedTwiceAndInADiamond() {
        try (Scope s = Scope.open()) {
            // one output used twice, the other feeding a consumer of the first
            assertPasses(GradCheck.check(in -> {
                Var[] o = new ExpAndProduct().applyMulti(in[0], in[1]);
                return o[0].mul(o[0]).add(o[1].mul(o[0])).add(o[1]);
            }, inputs()));
            // a diamond: a second two-output node takes both outputs crosswise, and the first node's outputs also reach
            // the loss by shorter paths
            assertPasses(GradCheck.checkMulti(in -> {
                Var[] o = new ExpAndProduct().applyMulti(in[0], in[1]);
                Var[] p = new ExpAndProduct().applyMulti(o[1].mul(0.5), o[0]);
                return new Var[]{p[0].add(o[0]), p[1].mul(o[1]), o[0].tanh()};
            }, inputs()));
        }
    }

    @Test
    void anUnusedOutputGetsZerosAndTheOtherItsGradient() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{0.5, -1, 2}, 3)), y = Var.param(Tensor.of(new double[]{3, 4, 5}, 3));
            ExpAndProduct f = new ExpAndProduct(new ArrayList<>());
            Var[] o = f.applyMulti(x, y);
            o[1].sum().backward();
            assertEquals(1, f.backwards);
            assertArrayEquals(new double[]{0, 0, 0}, f.received[0].toDoubleArray(), "zeros for exp x, which the loss does not use");
            assertArrayEquals(new double[]{1, 1, 1}, f.received[1].toDoubleArray());
            assertArrayEquals(new double[]{3, 4, 5}, x.grad().toDoubleArray());
            assertArrayEquals(new double[]{0.5, -1, 2}, y.grad().toDoubleArray());
        }
    }

    @Test
    void withoutMaterializedGradsAnUnusedOutputGetsNull() {
        try (Scope s = Scope.open()) {
            Tensor[] seen = new Tensor[2];
            boolean[] ran = new boolean[1];
            Var x = Var.param(Tensor.of(new double[]{1, 2}, 2));
            Var[] o = new MultiFunction() {
                @Override protected boolean materializeGrads() { return false; }
                @Override protected Tensor[] forwardMulti(Tensor... in) { return outputs(in[0].mul(2), in[0].mul(3)); }
                @Override protected Tensor[] backwardMulti(Tensor[] g) {
                    ran[0] = true; seen[0] = g[0]; seen[1] = g[1];
                    return grads(g[1].mul(3));
                }
            }.applyMulti(x);
            o[1].sum().backward();
            assertTrue(ran[0]);
            assertNull(seen[0]);
            assertArrayEquals(new double[]{3, 3}, x.grad().toDoubleArray());
        }
    }

    /** The node runs once, after the users of both outputs, however long the path to each. */
    @Test
    void backwardRunsOnceAfterEveryOutputsUsers() {
        try (Scope s = Scope.open()) {
            List<String> log = new ArrayList<>();
            Var x = Var.param(Tensor.of(new double[]{0.5, -1, 2}, 3)), y = Var.param(Tensor.of(new double[]{3, 4, 5}, 3));
            ExpAndProduct f = new ExpAndProduct(log);
            Var[] o = f.applyMulti(x, y);
            Var longPath = o[0];
            for (int i = 0; i < 4; i++) longPath = logged(longPath, log, "a" + i);
            Var loss = longPath.add(logged(o[1], log, "b")).add(logged(o[0], log, "c")).sum();
            loss.backward();
            assertEquals(1, f.backwards, "one backward call per pass");
            assertEquals("multi", log.get(log.size() - 1), "after every user of either output: " + log);
            assertEquals(7, log.size(), "each once: " + log);
            double[] xv = {0.5, -1, 2};
            double[] gx = x.grad().toDoubleArray();
            for (int i = 0; i < 3; i++) assertEquals(2 * Math.exp(xv[i]) + new double[]{3, 4, 5}[i], gx[i], 1e-12);
            assertArrayEquals(new double[]{2, 2, 2}, f.received[0].toDoubleArray(), "both paths of exp x summed");
        }
    }

    @Test
    void retainedGraphGivesTheSameGradientsTwice() {
        try (Scope s = Scope.open()) {
            Tensor[] in = inputs();
            Var x = Var.param(in[0]), y = Var.param(in[1]);
            ExpAndProduct f = new ExpAndProduct();
            Var[] o = f.applyMulti(x, y);
            Var loss = o[0].mul(o[1]).sum();
            loss.backward(Tensor.of(new double[]{1}), true);
            double[] gx = x.grad().toDoubleArray(), gy = y.grad().toDoubleArray();
            x.zeroGrad(); y.zeroGrad();
            loss.backward(Tensor.of(new double[]{1}), true);
            assertArrayEquals(gx, x.grad().toDoubleArray());
            assertArrayEquals(gy, y.grad().toDoubleArray());
            assertEquals(2, f.backwards);
            loss.backward(Tensor.of(new double[]{1}), false);   // frees it
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> o[1].sum().backward());
            assertTrue(e.getMessage().contains("already freed"), e.getMessage());
        }
    }

    @Test
    void aSavedTensorChangedInPlaceIsRefusedFromEitherOutput() {
        try (Scope s = Scope.open()) {
            for (int k = 0; k < 2; k++) {
                Var x = Var.param(Tensor.of(new double[]{1, 2}, 2)), y = Var.param(Tensor.of(new double[]{3, 4}, 2));
                Var[] o = new ExpAndProduct().applyMulti(x, y);
                y.value().fill(7);
                Var out = o[k];
                IllegalStateException e = assertThrows(IllegalStateException.class, () -> out.sum().backward());
                assertTrue(e.getMessage().contains("ExpAndProduct saved for backward") && e.getMessage().contains("changed in place"), e.getMessage());
            }
        }
    }

    @Test
    void noGradRecordsNothing() {
        try (Scope s = Scope.open(); Grad.Restore ng = Grad.noGrad()) {
            Var x = Var.param(Tensor.of(new double[]{1, 2}, 2)), y = Var.param(Tensor.of(new double[]{3, 4}, 2));
            Var[] o = new ExpAndProduct().applyMulti(x, y);
            for (Var v : o) { assertFalse(v.requiresGrad()); assertTrue(v.isLeaf()); }
            assertArrayEquals(new double[]{3, 8}, o[1].value().toDoubleArray());
        }
    }

    /** Closing one output keeps what the other's backward needs; the node's memory goes with the last one. */
    @Test
    void closingOneOutputKeepsTheNodeForTheOther() {
        long before = Memory.bytesInUse();
        try (Var x = Var.param(Tensor.of(new double[]{0.5, -1}, 2)); Var y = Var.param(Tensor.of(new double[]{3, 4}, 2))) {
            ExpAndProduct f = new ExpAndProduct();
            Var[] o = f.applyMulti(x, y);
            o[0].close();
            assertFalse(f.isReleased(), "o[1] still needs x, y and exp x");
            try (Tensor g = Tensor.of(new double[]{1, 1}, 2)) { o[1].backward(g, true); }
            assertArrayEquals(new double[]{3, 4}, x.grad().toDoubleArray());
            assertArrayEquals(new double[]{0.5, -1}, y.grad().toDoubleArray());
            o[1].close();
            assertTrue(f.isReleased(), "freed with its last output");
        }
        assertEquals(before, Memory.bytesInUse(), "no off-heap memory left behind");
    }

    @Test
    void noOffHeapLeakAfterBackwardOrFreeGraph() {
        long before = Memory.bytesInUse();
        for (int round = 0; round < 3; round++) {
            try (Var x = Var.param(Tensor.of(new double[]{0.5, -1, 2}, 3)); Var y = Var.param(Tensor.of(new double[]{3, 4, 5}, 3))) {
                Var[] o = new ExpAndProduct().applyMulti(x, y);
                Var[] p = new ExpAndProduct().applyMulti(o[1], o[0]);
                Var t = p[0].mul(o[0]), loss = t.sum();
                if (round == 0) loss.backward();
                else if (round == 1) loss.freeGraph();
                else { try (Tensor one = Tensor.of(new double[]{1})) { loss.backward(one, true); } loss.freeGraph(); }
                for (Var v : new Var[]{loss, t, p[0], p[1], o[0], o[1]}) v.close();
            }
            assertEquals(before, Memory.bytesInUse(), "round " + round);
        }
    }

    /**
     * A multi-output node whose input gradients fail half way through passOn (input 0's does not fit its input) frees
     * the ones passOn had not yet taken (input 1's), as a one-output node's failure does; they were left behind.
     */
    @Test
    void aFailingPassOnFreesTheInputGradientsNotYetTaken() {
        long before = Memory.bytesInUse();
        try (Var x = Var.param(Tensor.of(new double[]{1, 2}, 2)); Var y = Var.param(Tensor.of(new double[]{3, 4}, 2))) {
            Var[] o = new MultiFunction() {
                @Override protected Tensor[] forwardMulti(Tensor... in) { return outputs(in[0].mul(in[1]), in[0].add(in[1])); }
                @Override protected Tensor[] backwardMulti(Tensor[] g) { return grads(Tensor.zeros(DType.F64, 3), g[0].copy()); }
            }.applyMulti(x, y);
            try (Var s = o[0].sum()) {
                IllegalStateException e = assertThrows(IllegalStateException.class, s::backward);
                assertTrue(e.getMessage().contains("input 0") && e.getMessage().contains("[3]"), e.getMessage());
            }
            assertNull(y.grad(), "the failure came before input 1's gradient was passed on");
            o[0].close();
            o[1].close();
        }
        assertEquals(before, Memory.bytesInUse(), "input 1's gradient freed");
    }

    /**
     * A failure at any profiled section boundary (Profile's barrier: on CUDA the synchronisation that reports a failed
     * kernel) of a pass through multi-output nodes (ExpAndProduct, Split, MaxWithIndices) leaves no tensor behind: the
     * stop after forwardMulti dropped the outputs it had made, and the stops after backwardMulti its input gradients.
     */
    @Test
    void aFailureAtAnyProfiledBoundaryLeavesNothingBehind() {
        for (int kind = 0; kind < 3; kind++) {
            Var x = Var.param(Tensor.of(new double[]{0.5, -1, 2, 0.25}, 4)), y = Var.param(Tensor.of(new double[]{3, 4, 5, 6}, 4));
            try {
                int[] count = {0};
                Profile.setBarrier(() -> count[0]++);
                try { multiPass(kind, x, y); } finally { Profile.setBarrier(null); }
                x.zeroGrad(); y.zeroGrad();
                assertTrue(count[0] >= 6, "only " + count[0] + " boundaries");
                for (int k = 1; k <= count[0]; k++) {
                    int at = k;
                    int[] calls = {0};
                    long before = Memory.bytesInUse();
                    Profile.setBarrier(() -> { if (++calls[0] == at) throw new IllegalStateException("injected"); });
                    try {
                        multiPass(kind, x, y);
                        fail("no failure at boundary " + k);
                    } catch (IllegalStateException e) {
                        assertEquals("injected", e.getMessage());
                    } finally {
                        Profile.setBarrier(null);
                    }
                    x.zeroGrad(); y.zeroGrad();
                    assertEquals(before, Memory.bytesInUse(), "kind " + kind + ", boundary " + k + " of " + count[0]);
                }
            } finally {
                x.close();
                y.close();
            }
        }
    }

    /** o = f(x, y); loss = sum(o[0] * o[1]) and backward, every Var closed and the graph freed whatever happens. */
    private static void multiPass(int kind, Var x, Var y) {
        Var[] o = null;
        Var t = null, s = null;
        try {
            o = switch (kind) {
                case 0 -> new ExpAndProduct().applyMulti(x, y);
                case 1 -> new Split(0, new int[]{2, 2}).applyMulti(x);
                default -> new MaxWithIndices(0, true).applyMulti(x);
            };
            t = o[0].mul(o[1]);
            s = t.sum();
            s.backward();
        } finally {
            if (s != null) { s.freeGraph(); s.close(); }
            if (t != null) t.close();
            if (o != null) for (Var v : o) { v.freeGraph(); v.close(); }
        }
    }

    /** A step's scope frees the outputs and the node's saved tensors together, a retained graph included. */
    @Test
    void aScopeFreesEveryOutputAndWhatTheNodeSaved() {
        long before = Memory.bytesInUse();
        try (Scope step = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{0.5, -1, 2}, 3)), y = Var.param(Tensor.of(new double[]{3, 4, 5}, 3));
            Var[] o = new ExpAndProduct().applyMulti(x, y);
            o[0].add(o[1]).sum().backward(Tensor.of(new double[]{1}), true);
            assertTrue(Memory.bytesInUse() > before);
        }
        assertEquals(before, Memory.bytesInUse());
    }

    /** freeGraph from one output frees the node both share: a backward from the other is refused, as for shared nodes. */
    @Test
    void freeGraphFromOneOutputFreesTheSharedNode() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{1, 2}, 2)), y = Var.param(Tensor.of(new double[]{3, 4}, 2));
            ExpAndProduct f = new ExpAndProduct();
            Var[] o = f.applyMulti(x, y);
            o[0].freeGraph();
            assertTrue(f.isReleased());
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> o[1].sum().backward());
            assertTrue(e.getMessage().contains("already freed"), e.getMessage());
        }
    }

    @Test
    void nonDifferentiableOutputsAndMisuse() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{1, 2}, 2));
            Var[] o = new MultiFunction() {
                @Override protected Tensor[] forwardMulti(Tensor... in) { return outputs(in[0].mul(2), markNonDifferentiable(in[0].add(1))); }
                @Override protected Tensor[] backwardMulti(Tensor[] g) { assertNull(g[1]); return grads(g[0].mul(2)); }
            }.applyMulti(x);
            assertTrue(o[0].requiresGrad());
            assertFalse(o[1].requiresGrad());
            assertThrows(IllegalStateException.class, () -> o[1].sum().backward(), "no gradient through a non-differentiable output");
            o[0].add(o[1]).sum().backward();
            assertArrayEquals(new double[]{2, 2}, x.grad().toDoubleArray());

            MultiFunction f = new ExpAndProduct();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> f.apply(x, x));
            assertTrue(e.getMessage().contains("applyMulti"), e.getMessage());

            e = assertThrows(IllegalStateException.class, () -> new MultiFunction() {
                @Override protected Tensor[] forwardMulti(Tensor... in) { markNonDifferentiable(in[0]); return outputs(in[0].mul(2)); }
                @Override protected Tensor[] backwardMulti(Tensor[] g) { return grads(g[0]); }
            }.applyMulti(x));
            assertTrue(e.getMessage().contains("not one of the outputs"), e.getMessage());

            Var[] bad = new MultiFunction() {
                @Override protected Tensor[] forwardMulti(Tensor... in) { return outputs(in[0].mul(2), in[0].mul(3)); }
                @Override protected Tensor[] backwardMulti(Tensor[] g) { return grads(); }
            }.applyMulti(x);
            e = assertThrows(IllegalStateException.class, () -> bad[0].sum().backward());
            assertTrue(e.getMessage().contains("returned 0 gradients for 1 inputs"), e.getMessage());
        }
    }

    /** An output that is an input's tensor gets its own reference: closing it leaves the input open. */
    @Test
    void anOutputThatIsAnInputHasItsOwnReference() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{1, 2}, 2));
            Var[] o = new MultiFunction() {
                @Override protected Tensor[] forwardMulti(Tensor... in) { return outputs(in[0], in[0]); }
                @Override protected Tensor[] backwardMulti(Tensor[] g) { return grads(g[0].add(g[1])); }
            }.applyMulti(x);
            o[0].mul(o[1]).sum().backward();
            assertArrayEquals(new double[]{2, 4}, x.grad().toDoubleArray());
            o[0].close();
            o[1].close();
            assertArrayEquals(new double[]{1, 2}, x.value().toDoubleArray());
        }
    }
}
