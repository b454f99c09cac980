package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Optimizer.stateDict / loadStateDict: a fresh optimizer given another's state continues exactly as it would have, and a
 * state that does not fit (another kind, an index without a parameter, a shape, a dtype, missing or contradictory counts)
 * is refused with the reason and changes nothing.
 */
class OptimizerStateTest {
    /** Shapes on the Java loop and on the C update (>= 1024 floats), with one parameter that gets no gradient at step 1. */
    private static List<Var> params(long seed) {
        Rng r = new Rng(seed);
        return List.of(Var.param(r.normal(0, 1, 3, 5)), Var.param(r.normal(0, 1, 2, 1100)), Var.param(r.normal(0, 1, 7)));
    }

    private static void step(Optimizer o, Rng r, int step) {
        o.zeroGrad();
        for (int i = 0; i < o.params().size(); i++) {
            if (i == 2 && step == 1) continue;   // its own step count lags (AdamW's bias correction is per parameter)
            Var p = o.params().get(i);
            p.backward(r.normal(0, 1, p.shape()));
        }
        o.step();
    }

    private static Map<String, float[]> snapshot(Optimizer o) {
        Map<String, float[]> m = new LinkedHashMap<>();
        for (int i = 0; i < o.params().size(); i++) m.put("param " + i, o.params().get(i).value().toFloatArray());
        Optimizer.State st = o.stateDict();
        st.tensors().forEach((k, v) -> m.put(k, v.toFloatArray()));
        st.counts().forEach((k, v) -> {
            float[] f = new float[v.length];
            for (int i = 0; i < v.length; i++) f[i] = v[i];
            m.put("count " + k, f);
        });
        return m;
    }

    private static void assertSame(Map<String, float[]> want, Map<String, float[]> got, String what) {
        assertEquals(want.keySet(), got.keySet(), what);
        want.forEach((k, v) -> assertArrayEquals(v, got.get(k), what + ": " + k));
    }

    private static final List<Function<List<Var>, Optimizer>> MAKERS = List.of(
            ps -> new SGD(ps, 0.05, 0.9, 5e-4, true),
            ps -> new AdamW(ps, 0.01, 0.9, 0.99, 1e-8, 0.05, false),
            ps -> new AdamW(ps, 0.01, 0.8, 0.999, 1e-6, 0.0, true));

    @Test
    void aFreshOptimizerGivenTheStateContinuesExactly() {
        for (Function<List<Var>, Optimizer> make : MAKERS) {
            try (Scope s = Scope.open()) {
                List<Var> pa = params(1), pb = params(1);
                Rng ra = new Rng(9);
                try (Optimizer a = make.apply(pa)) {
                    for (int k = 0; k < 3; k++) step(a, ra, k);
                    Optimizer.State saved;
                    // copies, as a checkpoint holds (the live tensors move on with a)
                    Map<String, Tensor> copies = new LinkedHashMap<>();
                    a.stateDict().tensors().forEach((k, v) -> copies.put(k, v.copy()));
                    saved = new Optimizer.State(copies, a.stateDict().counts());
                    for (int i = 0; i < pa.size(); i++) pb.get(i).value().copyFrom(pa.get(i).value());
                    try (Optimizer b = make.apply(pb)) {
                        b.loadStateDict(saved);
                        assertEquals(a.steps(), b.steps());
                        assertSame(snapshot(a), snapshot(b), a + " restored");
                        Rng rb = new Rng(77);
                        ra = new Rng(77);
                        for (int k = 3; k < 6; k++) { step(a, ra, k); step(b, rb, k); }
                        assertSame(snapshot(a), snapshot(b), a + " three steps on");
                    }
                }
            }
        }
    }

    @Test
    void theKeysAreKindDotIndexAndTheCountsInt64() {
        try (Scope s = Scope.open()) {
            List<Var> ps = params(2);
            Rng r = new Rng(3);
            try (SGD sgd = new SGD(ps, 0.1, 0.9, 0, false)) {
                assertEquals(List.of(), new ArrayList<>(sgd.stateDict().tensors().keySet()));
                step(sgd, r, 0);
                step(sgd, r, 1);
                assertEquals(List.of("momentum.0", "momentum.1", "momentum.2"), new ArrayList<>(sgd.stateDict().tensors().keySet()));
                assertArrayEquals(new long[]{2}, sgd.stateDict().counts().get("steps"));
                org.junit.jupiter.api.Assertions.assertSame(sgd.momentumBuffer(1), sgd.stateDict().tensors().get("momentum.1"), "live, as Module.stateDict");
            }
            try (AdamW adamw = new AdamW(ps, 0.1, 0.9, 0.999, 1e-8, 0, true)) {
                step(adamw, r, 0);
                step(adamw, r, 1);
                assertEquals(List.of("exp_avg.0", "exp_avg_sq.0", "max_exp_avg_sq.0", "exp_avg.1", "exp_avg_sq.1", "max_exp_avg_sq.1",
                        "exp_avg.2", "exp_avg_sq.2", "max_exp_avg_sq.2"), new ArrayList<>(adamw.stateDict().tensors().keySet()));
                assertArrayEquals(new long[]{2}, adamw.stateDict().counts().get("steps"));
                assertArrayEquals(new long[]{2, 2, 1}, adamw.stateDict().counts().get("step"), "parameter 2 had no gradient at step 1");
            }
        }
    }

    /** Each edit of a valid state must be refused with a message containing want, leaving the optimizer as it was. */
    private static void refused(Optimizer o, Optimizer.State valid, Consumer<Map<String, Tensor>> tensors,
                                Consumer<Map<String, long[]>> counts, String want) {
        Map<String, Tensor> t = new LinkedHashMap<>(valid.tensors());
        Map<String, long[]> c = new LinkedHashMap<>(valid.counts());
        tensors.accept(t);
        counts.accept(c);
        Map<String, float[]> before = snapshot(o);
        Optimizer.State bad = new Optimizer.State(t, c);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> o.checkStateDict(bad), want);
        assertTrue(e.getMessage().contains(want), "'" + e.getMessage() + "' should say " + want);
        e = assertThrows(IllegalArgumentException.class, () -> o.loadStateDict(bad), want);
        assertTrue(e.getMessage().contains(want), "'" + e.getMessage() + "' should say " + want);
        assertSame(before, snapshot(o), "after refusing (" + want + ")");
    }

    @Test
    void sgdRefusesAStateThatDoesNotFitAndChangesNothing() {
        try (Scope s = Scope.open()) {
            List<Var> ps = params(4);
            Rng r = new Rng(5);
            try (SGD o = new SGD(ps, 0.1, 0.9, 0, false); SGD plain = new SGD(params(4), 0.1, 0, 0, false)) {
                step(o, r, 0);
                Optimizer.State valid = new Optimizer.State(Map.of("momentum.0", Tensor.full(2, 3, 5)), Map.of("steps", new long[]{4}));
                o.checkStateDict(valid);
                refused(o, valid, t -> t.put("momentum.1", Tensor.zeros(2, 1099)), c -> {}, "momentum.1 has shape [2, 1099], its parameter [2, 1100]");
                refused(o, valid, t -> t.put("momentum.3", Tensor.zeros(7)), c -> {}, "momentum.3 has no parameter: this SGD has 3");
                refused(o, valid, t -> t.put("momentum.-1", Tensor.zeros(7)), c -> {}, "momentum.-1 has no parameter");
                refused(o, valid, t -> t.put("momentum.x", Tensor.zeros(7)), c -> {}, "'momentum.x', whose index is not a number");
                refused(o, valid, t -> t.put("exp_avg.0", Tensor.zeros(3, 5)), c -> {}, "'exp_avg.0', a kind of state SGD does not keep (its kinds: momentum");
                refused(o, valid, t -> t.put("momentum.2", Tensor.zeros(DType.F64, 7)), c -> {}, "momentum.2 is F64, expected float32");
                refused(o, valid, t -> {}, c -> c.remove("steps"), "SGD state has no count 'steps'");
                refused(o, valid, t -> {}, c -> c.put("steps", new long[]{1, 2}), "'steps' has 2 values");
                refused(o, valid, t -> {}, c -> c.put("steps", new long[]{-1}), "step count must be >= 0, got -1");
                refused(o, valid, t -> {}, c -> c.put("step", new long[]{1, 1, 1}), "a count 'step' that SGD does not keep");
                Tensor closed = Tensor.zeros(7);
                closed.close();
                refused(o, valid, t -> t.put("momentum.2", closed), c -> {}, "closed");
                refused(plain, valid, t -> {}, c -> {}, "this SGD has no momentum");
            }
        }
    }

    @Test
    void adamwRefusesAStateThatDoesNotFitAndChangesNothing() {
        try (Scope s = Scope.open()) {
            List<Var> ps = params(6);
            Rng r = new Rng(7);
            try (AdamW o = new AdamW(ps, 0.1, 0.9, 0.999, 1e-8, 0.01, false); AdamW ams = new AdamW(params(6), 0.1, 0.9, 0.999, 1e-8, 0.01, true)) {
                step(o, r, 0);
                step(ams, r, 0);
                Map<String, Tensor> t0 = new LinkedHashMap<>();
                t0.put("exp_avg.0", Tensor.full(0.5, 3, 5));
                t0.put("exp_avg_sq.0", Tensor.full(0.25, 3, 5));
                Optimizer.State valid = new Optimizer.State(t0, Map.of("steps", new long[]{9}, "step", new long[]{9, 0, 0}));
                o.checkStateDict(valid);
                refused(o, valid, t -> t.remove("exp_avg_sq.0"), c -> {}, "no exp_avg_sq.0 beside the other moments of parameter 0");
                refused(o, valid, t -> t.put("exp_avg.1", Tensor.zeros(2, 1100)), c -> {}, "parameter 1 has step count 0 but moments");
                refused(o, valid, t -> {}, c -> c.put("step", new long[]{9, 3, 0}), "parameter 1 has step count 3 but no moments");
                refused(o, valid, t -> {}, c -> c.put("step", new long[]{9, 0}), "step counts for 2 parameters, this AdamW has 3");
                refused(o, valid, t -> {}, c -> c.remove("step"), "no count 'step'");
                refused(o, valid, t -> {}, c -> c.put("step", new long[]{-9, 0, 0}), "parameter 0's step count is -9");
                refused(o, valid, t -> t.put("exp_avg.0", Tensor.zeros(5, 3)), c -> {}, "exp_avg.0 has shape [5, 3], its parameter [3, 5]");
                refused(o, valid, t -> t.put("exp_avg.0", Tensor.zeros(DType.F64, 3, 5)), c -> {}, "exp_avg.0 is F64");
                refused(o, valid, t -> t.put("exp_avg.5", Tensor.zeros(3, 5)), c -> {}, "exp_avg.5 has no parameter: this AdamW has 3");
                refused(o, valid, t -> t.put("momentum.0", Tensor.zeros(3, 5)), c -> {}, "'momentum.0', a kind of state AdamW does not keep");
                refused(o, valid, t -> t.put("max_exp_avg_sq.0", Tensor.zeros(3, 5)), c -> {}, "this AdamW has no amsgrad");
                refused(ams, valid, t -> {}, c -> {}, "no max_exp_avg_sq.0 beside the other moments of parameter 0");
                refused(o, valid, t -> {}, c -> c.put("momentum", new long[]{1}), "a count 'momentum' that AdamW does not keep");
            }
        }
    }
}
