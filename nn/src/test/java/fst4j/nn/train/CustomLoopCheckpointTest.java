package fst4j.nn.train;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.AdamW;
import fst4j.nn.Asp;
import fst4j.nn.BatchNorm2d;
import fst4j.nn.Conv2d;
import fst4j.nn.Flatten;
import fst4j.nn.Linear;
import fst4j.nn.MaxPool2d;
import fst4j.nn.Models;
import fst4j.nn.Module;
import fst4j.nn.Optimizer;
import fst4j.nn.ReLU;
import fst4j.nn.SGD;
import fst4j.nn.Sequential;
import fst4j.nn.SrSte;
import fst4j.nn.data.DataLoader;
import fst4j.tensor.Blas;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Function;

import static org.junit.jupiter.api.Assertions.*;

/**
 * {@link Checkpoint} in a training loop of one's own, over a model of one's own whose layers prune with state (the
 * authors' random X^T patterns in a convolution, TSM's cached transposable mask in the classifier): saved in the middle
 * of an epoch and resumed in a fresh model, optimizer and loader, the run ends with the weights, running statistics,
 * optimizer state and rule states of the run that never stopped, bit for bit, with SGD and with AdamW.
 */
class CustomLoopCheckpointTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

    /** For 1x8x8 images and 4 classes; the same weights for the same seed. */
    static Sequential model(long seed) {
        Rng rng = new Rng(seed);
        return new Sequential(
                new Conv2d(1, 8, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(8), new ReLU(),
                new Conv2d(8, 16, 3, 1, 1, false, Method.FST3_IR_PATTERNS.config(11), rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Flatten(), new Linear(16 * 4 * 4, 4, true, Method.TSM.config(), rng));
    }

    /** 64 images, 16 a batch: 4 steps an epoch. */
    static DataLoader loader() {
        return DataLoader.builder(CheckpointTest.blobs("train", 64, 1)).batchSize(16).shuffle(true).seed(9).dropLast(true)
                .randomCrop(1).horizontalFlip(true).build();
    }

    static final Function<Module, Optimizer> SGD_NESTEROV = m -> new SGD(m.parameters(), 0.05, 0.9, 5e-4, true);
    static final Function<Module, Optimizer> ADAMW = m -> new AdamW(m.parameters(), 3e-3, 0.9, 0.999, 1e-8, 1e-2, true);

    /** One step of the loop, as the README's: the loader moves on to the next epoch at the end of one. */
    static void step(Module model, Optimizer opt, DataLoader loader) {
        if (!loader.hasNext()) loader.nextEpoch();
        try (Scope s = Scope.open()) {
            var b = loader.next();
            Var loss = NN.crossEntropy(model.forward(Var.of(b.images())), b.labels(), 0.1);
            loss.backward(); SrSte.addDecay(model, 2e-4); opt.step(); opt.zeroGrad();
        }
    }

    /** Everything a resumed run depends on, copied out. */
    static Map<String, Object> everything(Module m, Optimizer o, DataLoader l) {
        Map<String, Object> out = new TreeMap<>();
        m.stateDict().forEach((k, v) -> out.put("model " + k, v.toFloatArray()));
        Optimizer.State os = o.stateDict();
        os.tensors().forEach((k, v) -> out.put("optim " + k, v.toFloatArray()));
        os.counts().forEach((k, v) -> out.put("optim count " + k, v.clone()));
        Models.statefulSparsifiers(m).forEach((k, st) -> out.put("rule " + k, st.exportState()));
        out.put("loader", l.state());
        return out;
    }

    static void assertSame(Map<String, Object> want, Map<String, Object> got, String what) {
        assertEquals(want.keySet(), got.keySet(), what);
        want.forEach((k, v) -> {
            Object g = got.get(k);
            if (v instanceof float[] f) assertArrayEquals(f, (float[]) g, what + ": " + k);
            else if (v instanceof long[] a) assertArrayEquals(a, (long[]) g, what + ": " + k);
            else assertEquals(v, g, what + ": " + k);
        });
    }

    @Test
    void aLoopOfOnesOwnResumesBitIdenticallyWithSgdAndAdamW(@TempDir Path dir) throws Exception {
        long bytes = Memory.bytesInUse();
        for (var make : Map.of("sgd", SGD_NESTEROV, "adamw", ADAMW).entrySet()) {
            Path file = dir.resolve(make.getKey() + "/ckpt.safetensors");
            Map<String, Object> straight;
            float[] init;
            try (Sequential m = model(0); Optimizer o = make.getValue().apply(m)) {
                DataLoader l = loader();
                init = m.stateDict().get("3.weight").toFloatArray();
                for (int i = 0; i < 10; i++) step(m, o, l);   // across two epoch ends
                straight = everything(m, o, l);
            }
            try (Sequential m = model(0); Optimizer o = make.getValue().apply(m)) {
                DataLoader l = loader();
                for (int i = 0; i < 5; i++) step(m, o, l);    // stops after the first step of epoch 1
                Checkpoint.of(m).optimizer(o).loader(l).save(file,
                        new Checkpoint.Info(5, Map.of("note", "five steps in"), Map.of("epoch", new long[]{l.epoch()}, "rng", new long[]{1, -2, 3})));
            }
            try (Sequential m = model(1); Optimizer o = make.getValue().apply(m)) {   // other weights: all are loaded
                DataLoader l = loader();
                Checkpoint.Info info = Checkpoint.of(m).optimizer(o).loader(l).load(file);
                assertEquals(5, info.step());
                assertEquals(Map.of("note", "five steps in"), info.metadata());
                assertArrayEquals(new long[]{1}, info.counter("epoch"));
                assertArrayEquals(new long[]{1, -2, 3}, info.counter("rng"));
                assertEquals(new DataLoader.State(9, 1, 16), l.state());
                for (int i = 0; i < 5; i++) step(m, o, l);
                assertSame(straight, everything(m, o, l), make.getKey() + ", resumed");
            }
            assertFalse(Arrays.equals(init, (float[]) straight.get("model 3.weight")), "the run trained");
            assertTrue(straight.keySet().containsAll(java.util.List.of("rule 3.xt", "rule 8.w")), straight.keySet().toString());
        }
        assertEquals(bytes, Memory.bytesInUse(), "the load's tensors are freed");
    }

    /** Checkpoint.read gives the step, metadata and counters without a model. */
    @Test
    void readGivesTheInfoAlone(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("c.safetensors");
        try (Sequential m = model(0); Optimizer o = SGD_NESTEROV.apply(m)) {
            DataLoader l = loader();
            step(m, o, l);
            Checkpoint.of(m).optimizer(o).loader(l).save(file, new Checkpoint.Info(1, Map.of("k", "v"), Map.of("c", new long[]{7})));
        }
        Checkpoint.Info info = Checkpoint.read(file);
        assertEquals(1, info.step());
        assertEquals(Map.of("k", "v"), info.metadata());
        assertEquals(java.util.Set.of("c"), info.counters().keySet(), "the parts' own int64 entries are not counters");
    }

    /** A model whose inner convolution is on the ASP preset: dense, then pruned by Asp.prune in the loop. */
    static Sequential aspModel() {
        Rng rng = new Rng(3);
        return new Sequential(
                new Conv2d(1, 8, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(8), new ReLU(),
                new Conv2d(8, 16, 3, 1, 1, false, Method.ASP.config(), rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Flatten(), new Linear(16 * 4 * 4, 4, true, Method.ASP.config(), rng));
    }

    /**
     * ASP in a loop of one's own: the masks Asp.prune fixed are saved with the model, and a fresh model (its layers still
     * dense) takes them on load; a malformed mask puts every layer back dense.
     */
    @Test
    void aspMasksFixedInTheLoopComeBackOnLoad(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("asp.safetensors");
        Map<String, Object> straight;
        try (Sequential m = aspModel(); Optimizer o = SGD_NESTEROV.apply(m)) {
            DataLoader l = loader();
            for (int i = 0; i < 3; i++) step(m, o, l);
            assertEquals(2, Asp.prune(m));
            for (int i = 0; i < 2; i++) step(m, o, l);
            Checkpoint.of(m).optimizer(o).loader(l).save(file, 5);
            for (int i = 0; i < 3; i++) step(m, o, l);
            straight = everything(m, o, l);
        }
        try (Sequential m = aspModel(); Optimizer o = SGD_NESTEROV.apply(m)) {
            DataLoader l = loader();
            assertTrue(Asp.pending(m));
            Path bad = CheckpointTest.edited(file, dir.resolve("bad.safetensors"), (ts, ls) -> ls.put("sparsity.8.w", new long[]{2, 4, 256}));
            CheckpointException e = assertThrows(CheckpointException.class, () -> Checkpoint.of(m).optimizer(o).loader(l).load(bad));
            assertTrue(e.getMessage().contains("ASP mask state of 3 words"), e.getMessage());
            assertTrue(Models.sparseLayers(m).values().stream().allMatch(x -> x.sparsity().w() instanceof fst4j.sparse.Sparsifier.Dense),
                    "every layer dense again after the refusal");
            assertEquals(5, Checkpoint.of(m).optimizer(o).loader(l).load(file).step());
            assertFalse(Asp.pending(m));
            for (int i = 0; i < 3; i++) step(m, o, l);
            assertSame(straight, everything(m, o, l), "ASP resumed");
        }
    }

    // ------------------------------------------------------------------ refusals

    /** A checkpoint of model 0 after 3 steps of SGD, and a second model trained 2 steps to load it into. */
    static Path saved(Path dir) throws Exception {
        Path file = dir.resolve("good.safetensors");
        try (Sequential m = model(0); Optimizer o = SGD_NESTEROV.apply(m)) {
            DataLoader l = loader();
            for (int i = 0; i < 3; i++) step(m, o, l);
            Checkpoint.of(m).optimizer(o).loader(l).save(file, new Checkpoint.Info(3, Map.of("width", "8"), Map.of()));
        }
        return file;
    }

    /** load refused with a CheckpointException naming the file and containing want, everything as before. */
    static void assertRefused(Checkpoint ckpt, Path file, String want, Module m, Optimizer o, DataLoader l) {
        Map<String, Object> before = everything(m, o, l);
        CheckpointException e = assertThrows(CheckpointException.class, () -> ckpt.load(file));
        assertTrue(e.getMessage().startsWith("checkpoint " + file + " is unusable: "), e.getMessage());
        assertTrue(e.getMessage().contains(want), "'" + want + "' in: " + e.getMessage());
        assertSame(before, everything(m, o, l), "after refusing " + file.getFileName());
    }

    @Test
    void aRefusedCheckpointChangesNothingAndNamesTheProblem(@TempDir Path dir) throws Exception {
        long bytes = Memory.bytesInUse();
        Path good = saved(dir);
        try (Scope edits = Scope.open(); Sequential m = model(1); Optimizer o = SGD_NESTEROV.apply(m)) {   // the scope frees the edits' tensors
            DataLoader l = loader();
            for (int i = 0; i < 2; i++) step(m, o, l);
            Checkpoint ckpt = Checkpoint.of(m).optimizer(o).loader(l);

            // a weight of another shape
            Path shape = CheckpointTest.edited(good, dir.resolve("shape.safetensors"), (ts, ls) -> ts.put("model.8.weight", Tensor.zeros(4, 128)));
            assertRefused(ckpt, shape, "shape mismatch for 8.weight: [4, 128] vs [4, 256]", m, o, l);
            // a rule's state missing; a state whose rule is not in the model
            Path noRule = CheckpointTest.edited(good, dir.resolve("no-rule.safetensors"), (ts, ls) -> ls.remove("sparsity.3.xt"));
            assertRefused(ckpt, noRule, "missing sparsifier state sparsity.3.xt", m, o, l);
            Path extraRule = CheckpointTest.edited(good, dir.resolve("extra-rule.safetensors"), (ts, ls) -> ls.put("sparsity.0.xt", new long[]{1}));
            assertRefused(ckpt, extraRule, "holds the state of sparsifier 0.xt, a slot with no stateful rule", m, o, l);
            // the last rule's words malformed, after the first rule took its own: that import is undone
            Path badWords = CheckpointTest.edited(good, dir.resolve("bad-words.safetensors"), (ts, ls) -> ls.put("sparsity.8.w", new long[]{1}));
            assertRefused(ckpt, badWords, "too short or negative step count", m, o, l);
            // the optimizer's state and the loader's: another momentum shape, a position beyond the epoch, none at all
            Path momentum = CheckpointTest.edited(good, dir.resolve("momentum.safetensors"), (ts, ls) -> ts.put("optim.momentum.0", Tensor.zeros(3)));
            assertRefused(ckpt, momentum, "momentum.0", m, o, l);
            Path position = CheckpointTest.edited(good, dir.resolve("position.safetensors"), (ts, ls) -> ls.put("loader", new long[]{9, 0, 1000}));
            assertRefused(ckpt, position, "state position 1000 is beyond the 64 samples of an epoch", m, o, l);
            Path noOptim = dir.resolve("no-optim.safetensors");
            Checkpoint.of(m).loader(l).save(noOptim, 2);
            assertRefused(ckpt, noOptim, "it holds no optimizer state", m, o, l);
            Path noLoader = dir.resolve("no-loader.safetensors");
            Checkpoint.of(m).optimizer(o).save(noLoader, 2);
            assertRefused(ckpt, noLoader, "it holds no data loader state", m, o, l);
            // a model built otherwise: named by the model's own check
            try (Sequential other = new Sequential(new Flatten(), new Linear(64, 4, true, Method.DENSE.config(), new Rng(0)))) {
                assertRefused(Checkpoint.of(other), good, "unexpected key(s) in state dict: ", other, o, l);
            }
            // a corrupt file, a truncated one, a missing one, a foreign one
            byte[] ok = java.nio.file.Files.readAllBytes(good);
            byte[] mangled = ok.clone();
            for (int i = 8; i < 40; i++) mangled[i] = '#';
            Path corrupt = java.nio.file.Files.write(dir.resolve("corrupt.safetensors"), mangled);
            assertRefused(ckpt, corrupt, "header is not valid JSON", m, o, l);
            Path truncated = java.nio.file.Files.write(dir.resolve("truncated.safetensors"), Arrays.copyOf(ok, ok.length / 2));
            assertRefused(ckpt, truncated, "(truncated?)", m, o, l);
            assertRefused(ckpt, dir.resolve("nope.safetensors"), "is unusable: no such file or directory", m, o, l);
            Path foreign = dir.resolve("foreign.safetensors");
            fst4j.nn.io.SafeTensors.write(foreign, m.stateDict());
            assertRefused(ckpt, foreign, "not an fst4j training checkpoint", m, o, l);
            // one's own check of the metadata refuses before anything is read
            Map<String, Object> before = everything(m, o, l);
            CheckpointException e = assertThrows(CheckpointException.class, () -> ckpt.load(good, info -> {
                if (!info.metadata().get("width").equals("16")) throw new IllegalArgumentException("it is of width " + info.metadata().get("width") + ", not 16");
            }));
            assertTrue(e.getMessage().endsWith("is unusable: it is of width 8, not 16"), e.getMessage());
            assertSame(before, everything(m, o, l), "refused by one's own check");

            assertEquals(3, ckpt.load(good).step());   // as saved: loads
        }
        assertEquals(bytes, Memory.bytesInUse(), "refused loads free what they read");
    }

    /** Names the parts use are not one's own metadata or counters: refused when the Info is made. */
    @Test
    void infoRefusesTheNamesOfTheParts() {
        for (String k : new String[]{"step", "loader", "model.x", "optim.steps", "sparsity.3.xt"}) {
            var e = assertThrows(IllegalArgumentException.class, () -> new Checkpoint.Info(0, Map.of(), Map.of(k, new long[]{1})));
            assertTrue(e.getMessage().contains("'" + k + "'"), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> new Checkpoint.Info(0, Map.of("format", "x"), Map.of()));
        assertThrows(IllegalArgumentException.class, () -> new Checkpoint.Info(0, Map.of("crc32c:w", "00000000"), Map.of()), "the checksums' prefix");
        assertThrows(IllegalArgumentException.class, () -> Checkpoint.Info.of(-1));
        Map<String, long[]> counters = new LinkedHashMap<>();
        long[] words = {1, 2};
        counters.put("rng", words);
        Checkpoint.Info info = new Checkpoint.Info(0, Map.of(), counters);
        words[0] = 9;
        assertArrayEquals(new long[]{1, 2}, info.counter("rng"), "a copy");
    }
}
