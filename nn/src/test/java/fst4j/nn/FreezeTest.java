package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Profile;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Fine-tuning with frozen layers (Module.freeze, PyTorch's requires_grad_(False)): a frozen stem gets no gradient, stays
 * bit-identical through SGD steps while the rest trains, and the gradients of the rest are the bits they are with nothing
 * frozen; a frozen layer skips Eq. 3; checkpoints hold frozen parameters as any other.
 */
class FreezeTest {
    private static final int[] LABELS = {3, 1, 4, 1, 5, 9, 2, 6};

    private static Tensor images() { return new Rng(11).normal(0, 1, 8, 1, 28, 28); }

    private static Var loss(Module m, Tensor x) { return NN.crossEntropy(m.forward(Var.of(x.alias())), LABELS, 0); }

    /** An optimizer built after freezing takes the frozen parameters and skips them, as torch.optim does; a computed value is refused. */
    @Test
    void optimizersBuiltAfterFreezingTakeFrozenParametersAndSkipThem() {
        try (Scope s = Scope.open(); Sequential m = Models.resnetSmall(1, 10, Method.FST3_IR, 3)) {
            m.freeze("0");
            float[] stem = m.namedParameters().get("0.weight").value().toFloatArray();
            Tensor x = images();
            try (SGD sgd = new SGD(m.parameters(), 0.1, 0.9, 5e-4, false);
                 AdamW adam = new AdamW(m.parameters(), 1e-3, 0.9, 0.999, 1e-8, 1e-2, false)) {
                for (Optimizer opt : List.<Optimizer>of(sgd, adam)) {
                    loss(m, x).backward();
                    opt.step();
                    opt.zeroGrad();
                }
            }
            assertArrayEquals(stem, m.namedParameters().get("0.weight").value().toFloatArray(), "the frozen stem stays bit-identical");
            Var w = Var.param(new Rng(1).normal(0, 1, 4)), computed = w.mul(w);
            assertThrows(IllegalArgumentException.class, () -> new SGD(List.of(computed), 0.1, 0, 0, false));
        }
    }

    @Test
    void aFrozenStemStaysAsItIsWhileTheRestTrainsOnTheSameGradients() {
        try (Scope s = Scope.open(); Sequential all = Models.resnetSmall(1, 10, Method.FST3_IR, 3);
             Sequential tuned = Models.resnetSmall(1, 10, Method.FST3_IR, 3);
             SGD opt = new SGD(tuned.parameters(), 0.1, 0.9, 5e-4, false)) {   // built before freezing: it skips what has no gradient
            assertEquals(List.of("0.weight", "1.weight", "1.bias"), tuned.freeze("0", "1"));
            Tensor x = images();
            loss(all, x).backward();
            loss(tuned, x).backward();
            Map<String, Var> a = all.namedParameters(), t = tuned.namedParameters();
            for (String k : a.keySet()) {
                if (k.startsWith("0.") || k.startsWith("1.")) { assertNull(t.get(k).grad(), k + " is frozen"); continue; }
                assertArrayEquals(a.get(k).grad().toFloatArray(), t.get(k).grad().toFloatArray(), k + ": the same gradient bits as with nothing frozen");
            }

            Map<String, float[]> before = new java.util.LinkedHashMap<>();
            t.forEach((k, v) -> before.put(k, v.value().toFloatArray()));
            float[] runningMean = tuned.stateDict().get("1.running_mean").toFloatArray();
            opt.step();
            opt.zeroGrad();
            for (int i = 0; i < 2; i++) {
                Var l = loss(tuned, x);
                assertTrue(Double.isFinite(l.item()));
                l.backward();
                opt.step();
                opt.zeroGrad();
            }
            for (String k : t.keySet()) {
                float[] now = t.get(k).value().toFloatArray();
                if (k.startsWith("0.") || k.startsWith("1.")) assertArrayEquals(before.get(k), now, k + " stays bit-identical");
                else assertFalse(java.util.Arrays.equals(before.get(k), now), k + " trains");
            }
            // as in PyTorch, freezing leaves buffers alone: batch norm in training mode still tracks its statistics
            assertFalse(java.util.Arrays.equals(runningMean, tuned.stateDict().get("1.running_mean").toFloatArray()));

            tuned.unfreeze("0");
            assertTrue(t.get("0.weight").requiresGrad());
            assertFalse(t.get("1.weight").requiresGrad());
        }
    }

    /** A frozen convolution in the middle of the model runs Eq. 1 and Eq. 2 (its input needs a gradient) but no Eq. 3. */
    @Test
    void aFrozenLayerSkipsEq3() {
        String label = "Conv2d 16->32 k3 s2 @28x28";   // 4.conv1: the only layer of that geometry
        for (boolean freeze : new boolean[]{false, true})
            try (Scope s = Scope.open(); Sequential m = Models.resnetSmall(1, 10, Method.FST3_IR, 3)) {
                if (freeze) assertEquals(List.of("4.conv1.weight"), m.freeze("4.conv1"));
                Tensor x = images();
                Profile.setByOperation(true);
                Map<Profile.Part, Long> parts;
                try {
                    Profile.reset();
                    loss(m, x).backward();
                    parts = Profile.byLabel().get(label);
                } finally {
                    Profile.setByOperation(false);
                }
                assertNotNull(parts, Profile.byLabel().keySet().toString());
                assertTrue(parts.getOrDefault(Profile.Part.EQ2, 0L) > 0, parts.toString());
                assertEquals(!freeze, parts.containsKey(Profile.Part.EQ3), (freeze ? "frozen: " : "trained: ") + parts);
                assertEquals(freeze, m.namedParameters().get("4.conv1.weight").grad() == null);
            }
    }

    @Test
    void checkpointsHoldFrozenParametersAndNamesAreChecked() {
        try (Scope s = Scope.open(); Sequential trained = Models.resnetSmall(1, 10, Method.DENSE, 1);
             Sequential frozen = Models.resnetSmall(1, 10, Method.DENSE, 2)) {
            frozen.freeze("0", "8.weight");
            assertTrue(frozen.stateDict().containsKey("0.weight"), "a frozen parameter is saved");
            frozen.loadStateDict(trained.stateDict());
            assertArrayEquals(trained.stateDict().get("0.weight").toFloatArray(), frozen.stateDict().get("0.weight").toFloatArray(), "and loaded");
            assertFalse(frozen.namedParameters().get("0.weight").requiresGrad(), "loading does not unfreeze");
            assertTrue(frozen.namedParameters().get("8.bias").requiresGrad(), "a parameter's own name freezes only that one");

            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> frozen.freeze("3.conv3"));
            assertTrue(e.getMessage().contains("'3.conv3'") && e.getMessage().contains("3.conv1.weight"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> frozen.freeze("0.w"), "a prefix matches whole names only");
            assertSame(frozen.layers().get(4), frozen.submodule("4"));
            assertEquals(List.of("weight"), List.copyOf(frozen.submodule("4.conv1").namedParameters().keySet()));
            frozen.submodule("4.conv1").requiresGrad(false);
            assertFalse(frozen.namedParameters().get("4.conv1.weight").requiresGrad());
            e = assertThrows(IllegalArgumentException.class, () -> frozen.submodule("4.conv9"));
            assertTrue(e.getMessage().contains("'4' has no child 'conv9'") && e.getMessage().contains("conv1"), e.getMessage());
        }
    }
}
