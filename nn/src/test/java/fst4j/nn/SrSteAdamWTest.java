package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * SR-STE's decay with AdamW: SrSte.stepWithDecay(model, adamw, lambda) is AdamW's step on the gradient plus
 * lambda (W - S(W)) (SrSte.decayPruned, the Java reference of the decay), bit for bit, and not the step without it.
 */
class SrSteAdamWTest {
    private static Module model() { return Models.byName("mlp", 1, 8, 8, 4, SparseConfig.Method.FST3_IR, 3); }

    private static void backward(Module m, Tensor x, int[] labels) {
        NN.crossEntropy(m.forward(Var.of(x)), labels, 0.1).backward();
    }

    @Test
    void theDecayIsAddedToTheGradientAdamWSteps() {
        try (Scope s = Scope.open(); Module fused = model(); Module manual = model(); Module none = model();
             AdamW of = new AdamW(fused.parameters(), 1e-2, 0.05); AdamW om = new AdamW(manual.parameters(), 1e-2, 0.05);
             AdamW on = new AdamW(none.parameters(), 1e-2, 0.05)) {
            Rng r = new Rng(8);
            double lambda = 2e-2;   // large, so that the decay shows within two steps
            for (int step = 0; step < 2; step++) {
                Tensor x = r.normal(0, 1, 16, 1, 8, 8);
                int[] labels = new int[16];
                for (int i = 0; i < 16; i++) labels[i] = i % 4;
                backward(fused, x, labels);
                backward(manual, x, labels);
                backward(none, x, labels);
                int decayed = SrSte.stepWithDecay(fused, of, lambda);
                Map<Var, Integer> rows = SrSte.decayed(manual);
                assertEquals(rows.size(), decayed);
                assertTrue(decayed > 0, "the MLP's inner layers prune W by magnitude");
                rows.forEach((w, k) -> SrSte.decayPruned(w.value().data(), w.grad().data(), (int) (w.value().numel() / k), k, (float) lambda));
                om.step();
                on.step();
                of.zeroGrad(); om.zeroGrad(); on.zeroGrad();
            }
            List<Var> pf = fused.parameters(), pm = manual.parameters(), pn = none.parameters();
            boolean differs = false;
            for (int i = 0; i < pf.size(); i++) {
                assertArrayEquals(pm.get(i).value().toFloatArray(), pf.get(i).value().toFloatArray(), "parameter " + i);
                differs |= !java.util.Arrays.equals(pn.get(i).value().toFloatArray(), pf.get(i).value().toFloatArray());
            }
            assertTrue(differs, "the decay changed the update");
        }
    }

    /**
     * The decay walks W [Cout, K] by rows of K, so a layer whose W rule prunes along Cout is refused (it decayed the
     * weights its S(W) keeps, silently), and the sort-based rule, the same kept set as Magnitude24, is decayed as it is.
     */
    @Test
    void theDecayFollowsOnlyRulesAlongK() {
        try (Scope s = Scope.open(); Module m = model()) {
            Rng r = new Rng(9);
            Tensor x = r.normal(0, 1, 8, 1, 8, 8);
            backward(m, x, new int[]{0, 1, 2, 3, 0, 1, 2, 3});
            var layers = Models.sparseLayers(m);
            int before = SrSte.decayed(m).size();
            assertTrue(before > 0);
            var first = layers.entrySet().stream().filter(e -> e.getValue().sparsity().w() instanceof fst4j.sparse.Sparsifier.Magnitude24)
                    .findFirst().orElseThrow();
            SparseConfig cfg = first.getValue().sparsity();
            first.getValue().setSparsity(cfg.withW(new fst4j.sparse.Sparsifier.SortMagnitude24(1)));
            assertEquals(before, SrSte.decayed(m).size(), "the sort-based rule along K is decayed too");
            first.getValue().setSparsity(cfg.withW(new fst4j.sparse.Sparsifier.Magnitude24(0)));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> SrSte.decayed(m));
            assertTrue(e.getMessage().contains(first.getKey()) && e.getMessage().contains("along K"), e.getMessage());
        }
    }
}
