package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.AdamW;
import fst4j.nn.SGD;
import fst4j.tensor.Blas;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

/**
 * CheckpointTest's exact resume with AdamW (its moments and per-parameter step counts in the checkpoint), with AMSGrad,
 * with the decay / no-decay parameter groups, and under SR-STE's decay (FST3_IR prunes W by magnitude); and a checkpoint
 * of one optimizer refused by a trainer of the other, or missing a moment, changing nothing.
 */
class AdamWCheckpointTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

    static TrainConfig adamw(Method m, String model) {
        return CheckpointTest.cfg(m, model).withNesterov(false).withAdamWDefaults().withLr(3e-3).withWarmupSteps(2);
    }

    @Test
    void resumeIsBitIdentical(@TempDir Path dir) throws Exception {
        TrainConfig[] cfgs = {
                adamw(Method.FST3_IR, "cnn"),                                    // SR-STE's decay before each AdamW step
                adamw(Method.DENSE, "mlp").withAdamW(new TrainConfig.AdamWSettings(0.8, 0.99, 1e-6, true)),
                adamw(Method.FST3_IR, "cnn").withWdOnNormAndBias(false),         // two groups: weights decay, BN and biases not
                CheckpointTest.cfg(Method.FST3_IR, "cnn").withWdOnNormAndBias(false)};   // SGD over the same two groups
        for (int i = 0; i < cfgs.length; i++) {
            TrainConfig c = cfgs[i];
            TrainData data = CheckpointTest.tiny();
            Path ckpt = dir.resolve(i + "/ckpt.safetensors");
            try (Trainer straight = new Trainer(c, data); Trainer first = new Trainer(c, data);
                 Trainer sgd = new Trainer(c.withOptimizer(TrainConfig.OptimizerKind.SGD).withLr(0.05), data)) {
                Class<?> want = c.optimizer() == TrainConfig.OptimizerKind.ADAMW ? AdamW.class : SGD.class;
                assertEquals(want, straight.optimizer().getClass());
                assertEquals(c.wdOnNormAndBias() ? 1 : 2, straight.optimizer().groups().size());
                assertEquals(c.method() == Method.FST3_IR, straight.decaysPruned());
                CheckpointTest.run(straight, 10);   // 4 steps an epoch: across two epoch ends
                CheckpointTest.run(first, 5);
                CheckpointTest.run(sgd, 10);
                first.save(ckpt);
                try (Trainer resumed = new Trainer(Trainer.readConfig(ckpt), data)) {
                    assertEquals(c, resumed.config(), "the checkpoint's config");
                    resumed.load(ckpt);
                    assertEquals(5, resumed.stepsDone());
                    CheckpointTest.run(resumed, 5);
                    CheckpointTest.assertSameState(straight, resumed);
                }
                if (c.optimizer() == TrainConfig.OptimizerKind.ADAMW) {
                    assertTrue(straight.optimizer().stateDict().tensors().containsKey("exp_avg_sq.0"));
                    String key = straight.model().stateDict().keySet().iterator().next();
                    assertFalse(java.util.Arrays.equals(straight.model().stateDict().get(key).toFloatArray(), sgd.model().stateDict().get(key).toFloatArray()),
                            "AdamW's run is not SGD's");
                }
            }
        }
    }

    @Test
    void aCheckpointOfTheOtherOptimizerOrMissingAMomentIsRefusedAndChangesNothing(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        Path adamwCkpt = dir.resolve("adamw.safetensors"), sgdCkpt = dir.resolve("sgd.safetensors");
        TrainConfig a = adamw(Method.FST3_IR, "cnn"), s = CheckpointTest.cfg(Method.FST3_IR, "cnn");
        try (Trainer ta = new Trainer(a, data); Trainer ts = new Trainer(s, data)) {
            CheckpointTest.run(ta, 2);
            CheckpointTest.run(ts, 2);
            ta.save(adamwCkpt);
            ts.save(sgdCkpt);
            CheckpointTest.run(ta, 1);
            CheckpointTest.run(ts, 1);
            CheckpointTest.Snapshot before = CheckpointTest.Snapshot.of(ta), sBefore = CheckpointTest.Snapshot.of(ts);
            CheckpointException e = assertThrows(CheckpointException.class, () -> ta.load(sgdCkpt));
            assertTrue(e.getMessage().matches("(?s).*written for \\{[^}]*optimizer=sgd[^}]*\\}, not \\{[^}]*optimizer=adamw.*"), e.getMessage());
            before.assertUnchanged(ta, "an SGD checkpoint into an AdamW trainer");
            e = assertThrows(CheckpointException.class, () -> ts.load(adamwCkpt));
            assertTrue(e.getMessage().matches("(?s).*written for \\{[^}]*optimizer=adamw[^}]*\\}, not \\{[^}]*optimizer=sgd.*"), e.getMessage());
            sBefore.assertUnchanged(ts, "an AdamW checkpoint into an SGD trainer");

            Path noMoment = CheckpointTest.edited(adamwCkpt, dir.resolve("no-moment.safetensors"), (t, l) -> t.remove("optim.exp_avg_sq.3"));
            e = assertThrows(CheckpointException.class, () -> ta.load(noMoment));
            assertTrue(e.getMessage().contains("no exp_avg_sq.3 beside the other moments of parameter 3"), e.getMessage());
            before.assertUnchanged(ta, "a checkpoint missing a moment");
            Path noSteps = CheckpointTest.edited(adamwCkpt, dir.resolve("no-steps.safetensors"), (t, l) -> l.remove("optim.step"));
            e = assertThrows(CheckpointException.class, () -> ta.load(noSteps));
            assertTrue(e.getMessage().contains("no count 'step'"), e.getMessage());
            before.assertUnchanged(ta, "a checkpoint without the per-parameter steps");
            Path wrong = CheckpointTest.edited(adamwCkpt, dir.resolve("wrong.safetensors"), (t, l) -> t.put("optim.exp_avg.0", Tensor.zeros(3)));
            e = assertThrows(CheckpointException.class, () -> ta.load(wrong));
            assertTrue(e.getMessage().contains("exp_avg.0 has shape [3], its parameter"), e.getMessage());
            before.assertUnchanged(ta, "a moment of another shape");

            ta.load(adamwCkpt);   // as saved: loads
            assertEquals(2, ta.stepsDone());
        }
    }
}
