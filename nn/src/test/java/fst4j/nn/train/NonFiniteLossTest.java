package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.tensor.Blas;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A step whose loss is NaN or infinite stops before its update, so the trainer keeps the weights of the step before
 * (training on spread the NaN into every weight, and a later checkpoint kept them); the experiments can ask to train on.
 */
class NonFiniteLossTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

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
