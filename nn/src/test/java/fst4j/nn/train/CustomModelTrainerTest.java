package fst4j.nn.train;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.Asp;
import fst4j.nn.BatchNorm2d;
import fst4j.nn.Conv2d;
import fst4j.nn.Flatten;
import fst4j.nn.Linear;
import fst4j.nn.MaxPool2d;
import fst4j.nn.Module;
import fst4j.nn.ReLU;
import fst4j.nn.Sequential;
import fst4j.tensor.Blas;
import fst4j.tensor.Rng;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The trainer over a model of one's own (new Trainer(model, cfg, data)): it trains, evaluates, stops at a NaN loss and
 * resumes exactly as with a built-in model; its checkpoints say model "custom" and are refused where another model (a
 * built-in one, one of other shapes) would take them.
 */
class CustomModelTrainerTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

    /** CustomLoopCheckpointTest's model (the authors' patterns in a conv, TSM in the classifier), or a narrower one. */
    static Sequential model(int width) {
        if (width == 16) return CustomLoopCheckpointTest.model(0);
        Rng rng = new Rng(0);
        return new Sequential(new Conv2d(1, width, 3, 1, 1, false, Method.FST3_IR_PATTERNS.config(11), rng), new BatchNorm2d(width), new ReLU(),
                new MaxPool2d(2), new Flatten(), new Linear(width * 16, 4, true, Method.TSM.config(), rng));
    }

    @Test
    void aModelOfOnesOwnResumesExactly(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        for (TrainConfig cfg : new TrainConfig[]{CheckpointTest.cfg(Method.FST3_IR), AdamWCheckpointTest.adamw(Method.FST3_IR, "cnn")}) {
            Path ckpt = dir.resolve(cfg.optimizer().key() + ".safetensors");
            try (Sequential ms = model(16); Sequential mf = model(16); Sequential mr = model(16);
                 Trainer straight = new Trainer(ms, cfg, data); Trainer first = new Trainer(mf, cfg, data)) {
                assertEquals(Trainer.CUSTOM, straight.config().model(), "the config's model name");
                assertSame(ms, straight.model());
                CheckpointTest.run(straight, 10);   // across two epoch ends
                CheckpointTest.run(first, 5);
                first.save(ckpt);
                Map<String, String> meta = Trainer.readMetadata(ckpt);
                assertEquals("custom", meta.get("model"));
                assertEquals("fst3_ir", meta.get("method"));
                TrainConfig saved = Trainer.readConfig(ckpt);
                assertEquals(first.config(), saved);
                try (Trainer resumed = new Trainer(mr, saved, data)) {
                    resumed.load(ckpt);
                    assertEquals(5, resumed.stepsDone());
                    CheckpointTest.run(resumed, 5);
                    CheckpointTest.assertSameState(straight, resumed);
                    assertEquals(straight.evaluate(), resumed.evaluate());
                }
                assertFalse(mr.parameters().get(0).value().isClosed(), "the trainer leaves the caller's model open");
                var rules = fst4j.nn.Models.statefulSparsifiers(ms);
                assertEquals(java.util.List.of("3.xt", "8.w"), java.util.List.copyOf(rules.keySet()));
                var rr = fst4j.nn.Models.statefulSparsifiers(mr);
                rules.forEach((k, st) -> assertArrayEquals(st.exportState(), rr.get(k).exportState(), k));
                Trainer.Eval e = straight.evaluate();
                assertEquals(32, e.samples());
                assertTrue(e.accuracy() >= 0 && e.accuracy() <= 1 && Double.isFinite(e.loss()), e.toString());
            }
        }
    }

    @Test
    void itsCheckpointsAreRefusedWhereAnotherModelWouldTakeThem(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        TrainConfig cfg = CheckpointTest.cfg(Method.FST3_IR);
        Path ckpt = dir.resolve("custom.safetensors"), builtIn = dir.resolve("cnn.safetensors"), own = dir.resolve("own.safetensors");
        try (Sequential m = model(16); Trainer t = new Trainer(m, cfg, data)) {
            CheckpointTest.run(t, 2);
            t.save(ckpt);
            Checkpoint.of(m).save(own, 2);   // a loop of one's own: no trainer config
        }
        try (Trainer t = new Trainer(cfg, data)) {
            CheckpointTest.run(t, 2);
            t.save(builtIn);
        }
        // a built-in trainer (what fst4j eval builds from the metadata) refuses the name
        var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(Trainer.readConfig(ckpt), data));
        assertTrue(e.getMessage().contains("model 'custom' is a model of one's own: build it and pass it to new Trainer(model, cfg, data)"), e.getMessage());
        try (Sequential narrow = model(8); Trainer t = new Trainer(narrow, cfg, data); Sequential wide = model(16); Trainer w = new Trainer(wide, cfg, data)) {
            CheckpointTest.run(t, 1);
            CheckpointTest.run(w, 1);
            CheckpointTest.Snapshot before = CheckpointTest.Snapshot.of(t), wBefore = CheckpointTest.Snapshot.of(w);
            // a model of other names and shapes
            CheckpointException c = assertThrows(CheckpointException.class, () -> t.load(ckpt));
            assertTrue(c.getMessage().contains("state dict") && c.getMessage().contains("(is the model given to this trainer the one the checkpoint was written with?)"),
                    c.getMessage());
            before.assertUnchanged(t, "a checkpoint of another model of one's own");
            // a built-in model's checkpoint, and one a loop of one's own wrote
            c = assertThrows(CheckpointException.class, () -> w.load(builtIn));
            assertTrue(c.getMessage().matches("(?s).*written for \\{model=cnn, .*\\}, not \\{model=custom, .*"), c.getMessage());
            wBefore.assertUnchanged(w, "a built-in model's checkpoint");
            c = assertThrows(CheckpointException.class, () -> w.load(own));
            assertTrue(c.getMessage().contains("it holds no trainer config"), c.getMessage());
            wBefore.assertUnchanged(w, "a checkpoint of a loop of one's own");
            c = assertThrows(CheckpointException.class, () -> Trainer.readConfig(own));
            assertTrue(c.getMessage().contains("wrote it with Checkpoint.save; load it with Checkpoint.load"), c.getMessage());
            w.load(ckpt);   // its own: loads
            assertEquals(2, w.stepsDone());
        }
        // a built-in trainer does not take a custom checkpoint either
        try (Trainer t = new Trainer(cfg, data)) {
            CheckpointException c = assertThrows(CheckpointException.class, () -> t.load(ckpt));
            assertTrue(c.getMessage().contains("not {model=cnn"), c.getMessage());
        }
    }

    @Test
    void variantsAreRefusedAndAspLayersPruneAtHalf() {
        TrainData data = CheckpointTest.tiny();
        try (Sequential m = model(16)) {
            TrainConfig withVariant = CheckpointTest.cfg(Method.FST3_IR).withRecipe(SparseConfig.Recipe.parse("fst3_ir+patterns"));
            var e = assertThrows(IllegalArgumentException.class, () -> new Trainer(m, withVariant, data));
            assertTrue(e.getMessage().contains("the variants fst3_ir+patterns apply to the built-in models' layers"), e.getMessage());
        }
        Rng rng = new Rng(1);
        try (Module m = new Sequential(new Conv2d(1, 8, 3, 1, 1, false, Method.ASP.config(), rng), new ReLU(), new Flatten(),
                new Linear(8 * 64, 4, true, Method.ASP.config(), rng));
             Trainer t = new Trainer(m, CheckpointTest.cfg(Method.DENSE), data)) {   // the method names the run: the layers are ASP's
            assertEquals(6, t.aspStep());
            CheckpointTest.run(t, 6);
            assertTrue(Asp.pending(m));
            CheckpointTest.run(t, 1);
            assertFalse(Asp.pending(m), "pruned at half of the run");
        }
    }

    @Test
    void aNonFiniteLossStopsTheStepBeforeItsUpdate() {
        try (Sequential m = model(16); Trainer t = new Trainer(m, CheckpointTest.cfg(Method.FST3_IR).withLr(1e12).withWarmupSteps(0), CheckpointTest.tiny())) {
            Trainer.NonFiniteLossException stop = null;
            CheckpointTest.Snapshot before = null;
            for (int i = 0; i < 12 && stop == null; i++) {
                if (!t.epochHasNext()) t.endEpoch();
                before = CheckpointTest.Snapshot.of(t);
                try { t.trainStep(); } catch (Trainer.NonFiniteLossException x) { stop = x; }
            }
            assertNotNull(stop, "the loss stayed finite at lr 1e12");
            assertEquals(stop.step(), t.stepsDone());
            Map<String, float[]> w = new java.util.TreeMap<>();
            m.stateDict().forEach((k, v) -> w.put(k, v.toFloatArray()));
            before.weights().forEach((k, v) -> assertArrayEquals(v, w.get(k), k + " changed by the stopped step"));
        }
    }
}
