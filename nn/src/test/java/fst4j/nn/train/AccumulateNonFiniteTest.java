package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.Module;
import fst4j.nn.Sequential;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Gradient accumulation and the non-finite stop: a NaN loss in a later micro-batch comes after earlier micro-batches'
 * forward and backward passes. The stopped step must still leave everything as the step before left it (weights, batch
 * norm's running statistics, the optimizer's state, the stateful rules' states) and no gradient behind for the next
 * step to add to.
 */
class AccumulateNonFiniteTest {
    @org.junit.jupiter.api.extension.RegisterExtension
    final fst4j.nn.cli.BlasThreads threads = fst4j.nn.cli.BlasThreads.one();

    /** The model of CustomModelTrainerTest with a switch that makes its logits NaN on chosen forward calls. */
    static final class Poisoned extends Module {
        final Sequential inner;
        int calls;
        java.util.Set<Integer> nanAt = java.util.Set.of();

        Poisoned(Sequential inner) { this.inner = child("inner", inner); }

        @Override public Var forward(Var x) {
            Var y = inner.forward(x);
            return nanAt.contains(calls++) ? y.mul(Double.NaN) : y;
        }
    }

    private static Map<String, float[]> grads(Module m) {
        Map<String, float[]> g = new TreeMap<>();
        m.namedParameters().forEach((k, v) -> { if (v.grad() != null) g.put(k, v.grad().toFloatArray()); });
        return g;
    }

    @Test
    void aNanInTheSecondMicroBatchStopsTheStepAndLeavesNothingBehind() {
        TrainConfig cfg = CheckpointTest.cfg(Method.FST3_IR).withAccumulate(3).withAugment(false);
        try (Poisoned m = new Poisoned(CustomModelTrainerTest.model(8)); Trainer t = new Trainer(m, cfg, CheckpointTest.tiny())) {
            CheckpointTest.run(t, 1);                 // a first optimizer step: momentum and the rules' states are not their initial ones
            if (!t.epochHasNext()) t.endEpoch();      // 4 batches an epoch: one optimizer step of 3
            int callsBefore = m.calls;
            m.nanAt = java.util.Set.of(callsBefore + 1);   // the second micro-batch of the next step
            CheckpointTest.Snapshot before = CheckpointTest.Snapshot.of(t);
            Trainer.NonFiniteLossException stop = assertThrows(Trainer.NonFiniteLossException.class, t::trainStep);
            assertEquals(1, stop.step());
            assertEquals(callsBefore + 2, m.calls, "the first micro-batch ran forward (and backward) before the stop");
            // weights, running statistics, optimizer state, rule states and the step count as the step before left them
            CheckpointTest.Snapshot after = CheckpointTest.Snapshot.of(t);
            before.weights().forEach((k, v) -> assertArrayEquals(v, after.weights().get(k), k + " changed by the stopped step"));
            before.momentum().forEach((k, v) -> assertArrayEquals(v, after.momentum().get(k), "optimizer " + k + " changed"));
            before.rules().forEach((k, v) -> assertArrayEquals(v, after.rules().get(k), "rule " + k + " changed"));
            assertEquals(before.step(), after.step());
            // no gradient left from the first micro-batch's backward
            grads(m).forEach((k, g) -> { for (float v : g) assertEquals(0f, v, k + "'s gradient kept the stopped step's first micro-batch"); });
        }
    }
}
