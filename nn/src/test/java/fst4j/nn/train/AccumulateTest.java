package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Gradient accumulation ({@link TrainConfig#accumulate}, {@code train --accumulate N}): N micro-batches of B, each
 * loss scaled by 1/N, then one clip / SR-STE decay / optimizer step, equal to one batch of N*B where nothing sees the
 * micro-batches apart (no batch norm); N = 1 is the run it was; checkpoints resume bit-identically.
 */
class AccumulateTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    /**
     * The largest difference the float32 sums' other order may make after 6 SGD steps of the MLP (weights of order 0.1;
     * measured ~1e-7): 2e-6 absolute. Without the 1/N scaling the steps are N times larger and the weights differ by ~1e-2.
     */
    private static final double TOL = 2e-6;

    private static double maxDiff(Map<String, float[]> a, Map<String, float[]> b) {
        double m = 0;
        for (String k : a.keySet()) {
            float[] x = a.get(k), y = b.get(k);
            for (int i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
        }
        return m;
    }

    /** accumulate 4 x batch 8 = batch 32, step by step (loss, lr, weights), for dense, SR-STE (decay once a step) and with clipping. */
    @Test
    void accumulatingNBatchesOfBIsOneBatchOfNB() {
        TrainData data = CheckpointTest.tiny();   // 64 images: 2 steps an epoch either way
        TrainConfig base = CheckpointTest.cfg(Method.DENSE, "mlp").withAugment(false);
        for (TrainConfig c : new TrainConfig[]{base, base.withMethod(Method.SR_STE), base.withMethod(Method.SR_STE).withClipGradNorm(0.5)}) {
            String what = c.methodName() + (c.clipsGradients() ? " clipped" : "");
            try (Trainer acc = new Trainer(c.withBatchSize(8).withAccumulate(4), data); Trainer big = new Trainer(c.withBatchSize(32), data);
                 Trainer small = new Trainer(c.withBatchSize(8), data)) {
                assertEquals(big.totalSteps(), acc.totalSteps());
                assertEquals(c.method() == Method.SR_STE, acc.decaysPruned());
                for (int i = 0; i < 6; i++) {
                    if (!acc.epochHasNext()) { assertFalse(big.epochHasNext()); acc.endEpoch(); big.endEpoch(); }
                    Trainer.StepResult a = acc.trainStep(), b = big.trainStep();
                    small.trainStep();
                    assertEquals(32, a.size());
                    assertEquals(b.correct(), a.correct(), what);
                    assertEquals(b.lr(), a.lr(), 0.0);
                    assertEquals(b.loss(), a.loss(), 1e-5, what + " step " + i);
                    if (c.clipsGradients()) assertEquals(b.gradNorm(), a.gradNorm(), 1e-5 * b.gradNorm(), what + " step " + i);
                }
                double d = maxDiff(GradClipTrainerTest.weights(big.model()), GradClipTrainerTest.weights(acc.model()));
                assertTrue(d <= TOL, what + ": accumulated against the big batch differ by " + d);
                // not vacuous: 6 steps of batch 8 alone are another run
                double apart = maxDiff(GradClipTrainerTest.weights(small.model()), GradClipTrainerTest.weights(acc.model()));
                assertTrue(apart > 1e3 * TOL, what + ": batch-8 steps differ by only " + apart);
            }
        }
    }

    /** accumulate 1 is the default config, metadata and run: the same bits as a trainer built before the setting existed. */
    @Test
    void oneIsTheRunItWas() throws UsageException {
        TrainConfig d = TrainConfig.defaults(Method.FST3_IR);
        assertEquals(1, d.accumulate());
        assertEquals(d, d.withAccumulate(1));
        assertFalse(d.toMetadata().containsKey("accumulate"));
        assertEquals(d.withAccumulate(3), TrainConfig.fromMetadata(d.withAccumulate(3).toMetadata()));
        assertEquals("3", d.withAccumulate(3).toMetadata().get("accumulate"));
        assertEquals(TrainConfig.defaults(Method.DENSE), Main.apply(Main.parse(new String[]{"--accumulate", "1"}), TrainConfig.defaults(Method.DENSE)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.withAccumulate(0));
        assertTrue(e.getMessage().contains("accumulate) must be >= 1, got 0"), e.getMessage());
    }

    /** A run with accumulate 3 (2 steps an epoch of 8 batches: 2 batches skipped at each epoch's end) saved mid-run resumes bit-identically. */
    @Test
    void anAccumulatingRunResumesBitIdentically(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        for (Method m : new Method[]{Method.FST3_IR, Method.RESPROP}) {
            TrainConfig cfg = CheckpointTest.cfg(m).withBatchSize(8).withAccumulate(3);
            Path ckpt = dir.resolve(m + ".safetensors");
            try (Trainer straight = new Trainer(cfg, data); Trainer first = new Trainer(cfg, data)) {
                assertEquals(2, straight.stepsPerEpoch());
                assertEquals(6, straight.totalSteps());
                CheckpointTest.run(straight, 5);
                CheckpointTest.run(first, 3);
                first.save(ckpt);
                assertEquals("3", Trainer.readMetadata(ckpt).get("accumulate"));
                try (Trainer resumed = new Trainer(Trainer.readConfig(ckpt), data)) {
                    resumed.load(ckpt);
                    CheckpointTest.run(resumed, 2);
                    CheckpointTest.assertSameState(straight, resumed);
                }
                try (Trainer other = new Trainer(cfg.withAccumulate(2), data)) {
                    CheckpointException e = assertThrows(CheckpointException.class, () -> other.load(ckpt));
                    assertTrue(e.getMessage().contains("accumulate=3"), e.getMessage());
                }
            }
        }
    }

    @Test
    void tooFewBatchesAndBadValuesAreRefused(@TempDir Path tmp) throws Exception {
        TrainData data = CheckpointTest.tiny();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Trainer(CheckpointTest.cfg(Method.DENSE, "mlp").withAccumulate(5), data));
        assertTrue(e.getMessage().contains("one optimizer step takes 5 batches of 16 (accumulate 5), but the training set of 64 images gives 4 an epoch"),
                e.getMessage());
        for (String[] args : new String[][]{{"--accumulate", "0"}, {"--accumulate", "-2"}, {"--accumulate", "x"}}) {
            Outcome r = MainTest.main(MainTest.NO_DATA, args);
            assertEquals(2, r.rc(), String.join(" ", args));
            assertTrue(r.err().contains("--accumulate needs a positive integer"), r.err());
        }
        Path d = MainTest.idxData(tmp, 64, 16);
        Outcome r = MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + d, "--batch", "16", "--accumulate", "5",
                "--no-progress", "--out", tmp.resolve("none").toString());
        assertEquals(2, r.rc(), r.err());
        assertTrue(r.err().contains("--accumulate 5 takes 5 batches of 16 per optimizer step; the training set of 64 images gives 4 an epoch"), r.err());
        assertFalse(Files.exists(tmp.resolve("none")), "nothing written");
    }

    /** Through the CLI: one metrics.csv row per optimizer step (the size of N batches), and --resume continues exactly. */
    @Test
    void theCliAccumulatesAndResumesExactly(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense,fst3_ir", "--batch", "8",
                "--accumulate", "2", "--epochs", "2", "--save-every", "3", "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains("batch 8 x 2 accumulated (16 per optimizer step)"), r.out());
        List<String> rows = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals(1 + 2 * 8, rows.size(), "4 optimizer steps an epoch, 2 epochs, 2 methods");
        assertEquals("fst3_ir,2,8", String.join(",", List.of(rows.get(16).split(",")).subList(0, 3)));
        List<String> before = MainTest.rowsWithoutTimes(out.resolve("metrics.csv"));
        Path ckpt = out.resolve("fst3_ir/checkpoint.safetensors"), fin = tmp.resolve("final.safetensors");
        Files.copy(out.resolve("fst3_ir/final.safetensors"), fin);
        Outcome refused = MainTest.main(MainTest.NO_DATA, "--resume", ckpt.toString(), "--accumulate", "1");
        assertEquals(2, refused.rc(), refused.err());
        assertTrue(refused.err().contains("these flags differ from them: accumulate: default against the checkpoint's 2;"), refused.err());
        Outcome resumed = MainTest.main(TrainData::load, "--resume", ckpt.toString(), "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(0, resumed.rc(), resumed.err());
        assertEquals(before, MainTest.rowsWithoutTimes(out.resolve("metrics.csv")));
        try (var a = fst4j.nn.io.SafeTensors.read(fin); var b = fst4j.nn.io.SafeTensors.read(out.resolve("fst3_ir/final.safetensors"))) {
            for (String k : a.tensors().keySet()) assertArrayEquals(a.tensor(k).toFloatArray(), b.tensor(k).toFloatArray(), k);
        }
    }
}
