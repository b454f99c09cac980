package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A step whose loss is NaN or infinite stops before its update, so the trainer keeps the weights of the step before
 * (training on spread the NaN into every weight, and a later checkpoint kept them); the experiments can ask to train on.
 */
class NonFiniteLossTest {
    @org.junit.jupiter.api.extension.RegisterExtension
    final fst4j.nn.cli.BlasThreads threads = fst4j.nn.cli.BlasThreads.one();

    private static Map<String, float[]> weights(Trainer t) {
        Map<String, float[]> w = new TreeMap<>();
        t.model().stateDict().forEach((k, v) -> w.put(k, v.toFloatArray()));
        return w;
    }

    /** An absurd learning rate: the loss leaves the floats within a few steps. */
    private static TrainConfig diverging(Method m) { return CheckpointTest.cfg(m, "cnn").withLr(1e12).withWarmupSteps(0); }

    @Test
    void aNonFiniteLossStopsTheStepBeforeItsUpdate() {
        for (Method m : new Method[]{Method.DENSE, Method.FST3_IR}) {
            try (Trainer t = new Trainer(diverging(m), CheckpointTest.tiny())) {
                Trainer.NonFiniteLossException stop = null;
                Map<String, float[]> before = null;
                for (int i = 0; i < 12 && stop == null; i++) {
                    if (!t.epochHasNext()) t.endEpoch();
                    before = weights(t);
                    try { t.trainStep(); } catch (Trainer.NonFiniteLossException e) { stop = e; }
                }
                assertNotNull(stop, m + ": the loss stayed finite at lr 1e12");
                assertFalse(Double.isFinite(stop.loss()), stop.getMessage());
                assertEquals(stop.step(), t.stepsDone(), "the step count stays at the stopped step");
                assertTrue(stop.getMessage().contains("at step " + (stop.step() + 1)) && stop.getMessage().contains("stopped before its update"),
                        stop.getMessage());
                Map<String, float[]> after = weights(t);
                for (String k : before.keySet()) assertArrayEquals(before.get(k), after.get(k), m + ": " + k + " changed by the stopped step");
            }
        }
    }

    /** ASP fixes its masks at the start of its step: a stop at that step takes them back out, so the state is the step before's. */
    @Test
    void aStopAtAspsPruningStepLeavesTheLayersDense() {
        TrainData data = TrainData.of("blobs", new fst4j.nn.data.Datasets.Split(CheckpointTest.blobs("train", 16, 1), CheckpointTest.blobs("test", 16, 2)));
        try (Trainer t = new Trainer(CheckpointTest.cfg(Method.ASP, "cnn").withEpochs(1), data)) {
            assertEquals(0, t.aspStep(), "one step in all: ASP prunes at step 0");
            // a NaN classifier weight: NaN logits from the first forward (the layers before it are ASP's)
            String last = t.model().namedParameters().keySet().stream().filter(k -> k.endsWith("weight")).reduce((a, b) -> b).orElseThrow();
            t.model().namedParameters().get(last).value().fill(Double.NaN);
            Map<String, Object> before = new TreeMap<>();
            fst4j.nn.Models.sparseLayers(t.model()).forEach((k, l) -> before.put(k, l.sparsity()));
            assertThrows(Trainer.NonFiniteLossException.class, t::trainStep);
            assertTrue(fst4j.nn.Asp.pending(t.model()), "the masks the stopped step fixed are taken out again");
            fst4j.nn.Models.sparseLayers(t.model()).forEach((k, l) -> assertSame(before.get(k), l.sparsity(), k));
            assertEquals(0, t.stepsDone());
        }
    }

    @Test
    void theExperimentsCanTrainOn() {
        try (Trainer t = new Trainer(diverging(Method.DENSE), CheckpointTest.tiny())) {
            t.stopOnNonFiniteLoss(false);
            boolean sawNonFinite = false;
            for (int i = 0; i < 12; i++) {
                if (!t.epochHasNext()) t.endEpoch();
                sawNonFinite |= !Double.isFinite(t.trainStep().loss());
            }
            assertTrue(sawNonFinite, "the loss went non-finite and training went on");
            assertEquals(12, t.stepsDone());
        }
    }
}
