package fst4j.tests;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.BatchNorm2d;
import fst4j.nn.Conv2d;
import fst4j.nn.Flatten;
import fst4j.nn.Linear;
import fst4j.nn.MaxPool2d;
import fst4j.nn.Module;
import fst4j.nn.ReLU;
import fst4j.nn.SGD;
import fst4j.nn.Sequential;
import fst4j.nn.SrSte;
import fst4j.nn.data.DataLoader;
import fst4j.nn.data.ImageDataset;
import fst4j.nn.train.Checkpoint;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The README's Checkpoint example, its lines as written there, in the lead example's loop over a model with stateful
 * rules: a run saved after 3 steps and resumed in fresh objects ends with the weights of a run that never stopped.
 */
class ReadmeCheckpointExampleTest {
    static Sequential model() {
        Rng rng = new Rng(5);
        return new Sequential(
                new Conv2d(1, 8, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(8), new ReLU(),
                new Conv2d(8, 16, 3, 1, 1, false, Method.FST3_IR_PATTERNS.config(11), rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Flatten(), new Linear(16 * 6 * 6, 4, true, Method.TSM.config(), rng));
    }

    /** 128 images 1x12x12 whose class is the quadrant of a bright blob, plus noise. */
    static DataLoader newLoader() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(3);
        int n = 128;
        byte[] px = new byte[n * 144];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            int c = labels[i] = r.nextInt(4);
            for (int k = 0; k < 144; k++) px[i * 144 + k] = (byte) r.nextInt(60);
            for (int y = 0; y < 4; y++) for (int x = 0; x < 4; x++) px[i * 144 + ((c / 2) * 6 + 1 + y) * 12 + (c % 2) * 6 + 1 + x] = (byte) (150 + r.nextInt(100));
        }
        return DataLoader.builder(ImageDataset.ofBytes("blobs", px, n, 1, 12, 12, labels, 4)).batchSize(32).shuffle(true).seed(9).build();
    }

    static void train(Module model, SGD opt, DataLoader loader, int steps) {
        for (int i = 0; i < steps; i++) try (Scope step = Scope.open()) {
            if (!loader.hasNext()) loader.nextEpoch();   // 4 batches an epoch: the resumed half crosses an epoch's end
            var batch = loader.next();
            Var loss = NN.crossEntropy(model.forward(Var.of(batch.images())), batch.labels(), 0.1);
            loss.backward(); SrSte.addDecay(model, 2e-4); opt.step(); opt.zeroGrad();
        }
    }

    @Test
    void checkpointExampleResumesExactly(@TempDir Path dir) throws Exception {
        float[] initial, straight;
        try (Module model = model(); SGD opt = new SGD(model.parameters(), 0.1, 0.9, 5e-4, false)) {
            initial = model.stateDict().get("8.weight").toFloatArray();
            train(model, opt, newLoader(), 6);
            straight = model.stateDict().get("8.weight").toFloatArray();
        }
        Path file = dir.resolve("runs/mine/ckpt.safetensors");
        try (Module model = model(); SGD opt = new SGD(model.parameters(), 0.1, 0.9, 5e-4, false)) {
            var loader = newLoader();
            train(model, opt, loader, 3);
            long step = 3;
            // ---- README example, from here (but its first line) ----
            var ckpt = Checkpoint.of(model).optimizer(opt).loader(loader);       // the same parts to save and to load
            ckpt.save(file, new Checkpoint.Info(step, Map.of("lr", "0.1"), Map.of()));
            // ---- to here ----
        }
        try (Module model = model(); SGD opt = new SGD(model.parameters(), 0.1, 0.9, 5e-4, false)) {
            var loader = newLoader();
            var ckpt = Checkpoint.of(model).optimizer(opt).loader(loader);
            // ---- README example, from here ----
            long resumeAt = ckpt.load(file).step();
            // ---- to here ----
            assertEquals(3, resumeAt);
            train(model, opt, loader, 3);
            assertArrayEquals(straight, model.stateDict().get("8.weight").toFloatArray(), "resumed as if never stopped");
        }
        assertFalse(Arrays.equals(initial, straight), "the run trained");
    }
}
