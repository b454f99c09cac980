package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.Models;
import fst4j.nn.Optimizer;
import fst4j.nn.io.SafeTensors;
import fst4j.tensor.Blas;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The trainer's checkpoints kept their format when Trainer.save and load moved onto {@link Checkpoint}: a save writes
 * the bytes that the trainer's own code wrote before (kept below as {@link #savedAsBefore}), and such a file loads and
 * resumes bit-identically. (When the move was made, files written by the code before it were also loaded and re-saved,
 * byte for byte.)
 */
class CheckpointFormatTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

    /** Trainer.save as it was up to commit d6aa401, through the trainer's public accessors. */
    static void savedAsBefore(Trainer t, Path file) throws IOException {
        Map<String, Tensor> tensors = new LinkedHashMap<>();
        t.model().stateDict().forEach((k, v) -> tensors.put("model." + k, v));
        Optimizer.State os = t.optimizer().stateDict();
        os.tensors().forEach((k, v) -> tensors.put("optim." + k, v));
        Map<String, long[]> longs = new LinkedHashMap<>();
        longs.put("step", new long[]{t.stepsDone()});
        longs.put("epoch", new long[]{t.loader().epoch()});
        os.counts().forEach((k, v) -> longs.put("optim." + k, v));
        longs.put("loader", t.loader().state().toLongs());
        Models.statefulSparsifiers(t.model()).forEach((k, sp) -> longs.put("sparsity." + k, sp.exportState()));
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", "fst4j-checkpoint-1");
        meta.putAll(t.config().toMetadata());
        meta.put("data", t.data().spec());
        meta.put("train_size", Integer.toString(t.data().train().size()));
        meta.put("total_steps", Long.toString(t.totalSteps()));
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) Files.createDirectories(parent);
        SafeTensors.write(file, tensors, longs, meta);
    }

    @Test
    void theTrainersCheckpointsAreWrittenAndReadAsBefore(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        // rules with state (the authors' patterns, TSM, ASP's masks after its pruning, ReSprop's samples), SGD and AdamW
        TrainConfig[] cfgs = {CheckpointTest.cfg(Method.FST3_IR_PATTERNS, "cnn"), CheckpointTest.cfg(Method.TSM, "mlp"),
                AdamWCheckpointTest.adamw(Method.FST3_IR, "cnn").withWdOnNormAndBias(false), CheckpointTest.cfg(Method.ASP, "cnn"),
                CheckpointTest.cfg(Method.RESPROP, "cnn")};
        int[] steps = {5, 3, 5, 10, 3};
        for (int i = 0; i < cfgs.length; i++) {
            Path now = dir.resolve(i + "-now.safetensors"), before = dir.resolve(i + "-before.safetensors");
            try (Trainer t = new Trainer(cfgs[i], data); Trainer straight = new Trainer(cfgs[i], data)) {
                CheckpointTest.run(t, steps[i]);
                t.save(now);
                savedAsBefore(t, before);
                assertArrayEquals(Files.readAllBytes(before), Files.readAllBytes(now), cfgs[i].methodName() + ": the same bytes");
                CheckpointTest.run(straight, steps[i] + 2);   // ASP's run has 12 steps
                try (Trainer resumed = new Trainer(Trainer.readConfig(before), data)) {
                    resumed.load(before);
                    assertEquals(steps[i], resumed.stepsDone());
                    CheckpointTest.run(resumed, 2);
                    CheckpointTest.assertSameState(straight, resumed);
                }
            }
        }
    }
}
