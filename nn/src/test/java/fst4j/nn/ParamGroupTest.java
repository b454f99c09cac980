package fst4j.nn;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.*;

/** Parameter groups: the usual decay / no-decay split of a model, and each group's lr scale and weight decay in SGD and AdamW. */
class ParamGroupTest {
    @Test
    void splitDecayPutsConvAndLinearWeightsInOneGroupAndBiasesAndBatchNormInTheOther() {
        try (Module m = Models.resnetSmall(1, 10, SparseConfig.Method.FST3_IR, 0)) {
            List<ParamGroup> g = ParamGroup.splitDecay(m, 0.05);
            assertEquals(List.of("decay", "no_decay"), g.stream().map(ParamGroup::name).toList());
            assertEquals(0.05, g.get(0).weightDecay());
            assertEquals(0.0, g.get(1).weightDecay());
            Set<Var> norm = Collections.newSetFromMap(new IdentityHashMap<>());
            collectBatchNorm(m, norm);
            assertFalse(norm.isEmpty());
            int weights = 0, others = 0;
            for (Map.Entry<String, Var> e : m.namedParameters().entrySet()) {
                Var p = e.getValue();
                boolean decays = g.get(0).params().contains(p), not = g.get(1).params().contains(p);
                assertTrue(decays ^ not, e.getKey() + " is in exactly one group");
                boolean weight = e.getKey().endsWith(".weight") && p.shape().length >= 2 && !norm.contains(p);
                assertEquals(weight, decays, e.getKey());
                if (weight) weights++; else others++;
            }
            assertTrue(weights > 0 && others > 0);
            // in the model's order within each group
            List<Var> all = m.parameters(), order = new ArrayList<>();
            for (Var p : all) if (g.get(0).params().contains(p)) order.add(p);
            assertEquals(order, g.get(0).params());
        }
    }

    private static void collectBatchNorm(Module m, Set<Var> out) {
        if (m instanceof BatchNorm2d) out.addAll(m.parameters());
        m.children().values().forEach(c -> collectBatchNorm(c, out));
    }

    @Test
    void aGroupRefusesANaNNegativeOrInfiniteSetting() {
        try (Scope s = Scope.open()) {
            List<Var> ps = List.of(Var.param(Tensor.ones(3)));
            for (double bad : new double[]{Double.NaN, -1, Double.POSITIVE_INFINITY}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new ParamGroup("g", ps, bad, 0));
                assertTrue(e.getMessage().contains("group g: lr scale"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> new ParamGroup("g", ps, 1, bad));
                assertTrue(e.getMessage().contains("group g: weight decay"), e.getMessage());
            }
            Var p = ps.get(0);
            var twice = List.of(ParamGroup.of(List.of(p), 0), new ParamGroup("other", List.of(p), 1, 0));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SGD.withGroups(twice, 0.1, 0, false));
            assertTrue(e.getMessage().contains("twice (group other)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> AdamW.withGroups(twice, 0.1, 0.9, 0.999, 1e-8, false));
            assertTrue(e.getMessage().contains("twice (group other)"), e.getMessage());
        }
    }

    /** Two groups in one optimizer step exactly as two optimizers, each with the group's lr and weight decay, would. */
    @Test
    void eachGroupStepsWithItsOwnLrScaleAndWeightDecay() {
        for (String kind : new String[]{"sgd", "adamw"}) {
            try (Scope s = Scope.open()) {
                Rng r = new Rng(5);
                Tensor a0 = r.normal(0, 1, 7, 300), b0 = r.normal(0, 1, 40);
                Var a = Var.param(a0.copy()), b = Var.param(b0.copy()), a2 = Var.param(a0.copy()), b2 = Var.param(b0.copy());
                List<ParamGroup> groups = List.of(new ParamGroup("w", List.of(a), 0.5, 0.01), new ParamGroup("b", List.of(b), 1.0, 0.0));
                try (Optimizer both = kind.equals("sgd") ? SGD.withGroups(groups, 0.1, 0.9, false) : AdamW.withGroups(groups, 0.1, 0.9, 0.999, 1e-8, false);
                     Optimizer oa = kind.equals("sgd") ? new SGD(List.of(a2), 0.05, 0.9, 0.01, false) : new AdamW(List.of(a2), 0.05, 0.9, 0.999, 1e-8, 0.01, false);
                     Optimizer ob = kind.equals("sgd") ? new SGD(List.of(b2), 0.1, 0.9, 0.0, false) : new AdamW(List.of(b2), 0.1, 0.9, 0.999, 1e-8, 0.0, false)) {
                    assertEquals(groups, both.groups());
                    assertEquals(List.of(a, b), both.params());
                    for (int step = 0; step < 3; step++) {
                        Tensor ga = r.normal(0, 1, 7, 300), gb = r.normal(0, 1, 40);
                        a.backward(ga); a2.backward(ga); b.backward(gb); b2.backward(gb);
                        both.step(); oa.step(); ob.step();
                        both.zeroGrad(); oa.zeroGrad(); ob.zeroGrad();
                    }
                    assertArrayEquals(a2.value().toFloatArray(), a.value().toFloatArray(), kind + ": group w");
                    assertArrayEquals(b2.value().toFloatArray(), b.value().toFloatArray(), kind + ": group b");
                    assertFalse(java.util.Arrays.equals(a0.toFloatArray(), a.value().toFloatArray()));
                }
            }
        }
    }
}
