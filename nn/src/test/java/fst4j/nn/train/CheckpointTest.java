package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.nn.data.Datasets;
import fst4j.nn.data.ImageDataset;
import fst4j.nn.io.SafeTensors;
import fst4j.tensor.Tensor;
import fst4j.tensor.Blas;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class CheckpointTest {
    private int threads;

    @BeforeEach
    void oneThread() { threads = Blas.threads(); Blas.setThreads(1); }   // quick and steady on a busy 2-core machine

    @AfterEach
    void restoreThreads() { Blas.setThreads(threads); }

    /** n images 1x8x8 whose class is where a bright blob is, plus noise. */
    static ImageDataset blobs(String name, int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        byte[] px = new byte[n * 64];
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) {
            int c = r.nextInt(4);
            labels[i] = c;
            for (int k = 0; k < 64; k++) px[i * 64 + k] = (byte) r.nextInt(60);
            int y0 = (c / 2) * 4, x0 = (c % 2) * 4;
            for (int y = 0; y < 3; y++) for (int x = 0; x < 3; x++) px[i * 64 + (y0 + y) * 8 + x0 + x] = (byte) (150 + r.nextInt(100));
        }
        return ImageDataset.ofBytes(name, px, n, 1, 8, 8, labels, 4);
    }

    static TrainData tiny() { return TrainData.of("blobs", new Datasets.Split(blobs("train", 64, 1), blobs("test", 32, 2))); }

    static TrainConfig cfg(Method m) { return cfg(m, "cnn"); }

    static TrainConfig cfg(Method m, String model) {
        return TrainConfig.defaults(m).withModel(model).withBatchSize(16).withEpochs(3).withLr(0.05).withWarmupSteps(2)
                .withNesterov(true).withSeed(7).withAugment(true);
    }

    static void run(Trainer t, int n) {
        for (int i = 0; i < n; i++) {
            if (!t.epochHasNext()) { t.evaluate(); t.endEpoch(); }
            t.trainStep();
        }
    }

    static void assertSameState(Trainer a, Trainer b) {
        Map<String, Tensor> sa = a.model().stateDict(), sb = b.model().stateDict();
        assertEquals(sa.keySet(), sb.keySet());
        for (String k : sa.keySet()) assertArrayEquals(sa.get(k).toFloatArray(), sb.get(k).toFloatArray(), k);
        // the optimizer's whole state: SGD's momentum buffers and step count, AdamW's moments and per-parameter steps
        var oa = a.optimizer().stateDict();
        var ob = b.optimizer().stateDict();
        assertEquals(oa.tensors().keySet(), ob.tensors().keySet());
        for (String k : oa.tensors().keySet()) assertArrayEquals(oa.tensors().get(k).toFloatArray(), ob.tensors().get(k).toFloatArray(), "optimizer " + k);
        assertEquals(oa.counts().keySet(), ob.counts().keySet());
        for (String k : oa.counts().keySet()) assertArrayEquals(oa.counts().get(k), ob.counts().get(k), "optimizer count " + k);
        assertEquals(a.stepsDone(), b.stepsDone());
        assertEquals(a.loader().state(), b.loader().state());
    }

    @Test
    void resumeIsBitIdentical(@TempDir Path dir) throws Exception {
        // TSM and FST_CODE carry sparsifier state (cached transposable mask, pattern draws) that must round-trip too
        // ReSprop's per-layer samples and thresholds too, on convolutions and (the MLP, the method's second entry) linear layers
        Method[] methods = {Method.FST3_IR, Method.DENSE, Method.TSM, Method.FST_CODE, Method.FST3_IR_PATTERNS, Method.ASP, Method.RESPROP,
                Method.RESPROP};
        for (int i = 0; i < methods.length; i++) {
            Method m = methods[i];
            TrainData data = tiny();
            // the CNN has BN buffers and sparse convs; the MLP is quick
            String model = m == Method.DENSE || i == methods.length - 1 ? "mlp" : "cnn";
            Path ckpt = dir.resolve(m + "-" + model + "/ckpt.safetensors");
            try (Trainer straight = new Trainer(cfg(m, model), data); Trainer first = new Trainer(cfg(m, model), data);
                 Trainer untouched = new Trainer(cfg(m, model), data)) {
                run(straight, 10);      // 4 steps per epoch: crosses two epoch ends
                run(first, 5);          // stops inside epoch 1
                first.save(ckpt);
                try (Trainer resumed = new Trainer(Trainer.readConfig(ckpt), data)) {
                    resumed.load(ckpt);
                    assertEquals(5, resumed.stepsDone());
                    run(resumed, 5);
                    assertSameState(straight, resumed);
                    // and the model is not trivially unchanged
                    String key = straight.model().stateDict().keySet().iterator().next();
                    assertFalse(java.util.Arrays.equals(straight.model().stateDict().get(key).toFloatArray(),
                            untouched.model().stateDict().get(key).toFloatArray()));
                }
            }
        }
    }

    /** The trainer gives its ReSprop layers the authors' warm-up over its run (12 steps here: 90 / 12 epochs a step). */
    @Test
    void reSpropLayersWarmUpOverTheTrainersRun() {
        try (Trainer t = new Trainer(cfg(Method.RESPROP, "cnn"), tiny())) {
            assertEquals(12, t.totalSteps());
            var states = new java.util.ArrayList<fst4j.nn.ReSprop>();
            fst4j.nn.Models.sparseLayers(t.model()).values().forEach(l -> {
                if (l instanceof fst4j.nn.Conv2d c && c.resprop() != null) states.add(c.resprop());
            });
            assertFalse(states.isEmpty());
            double[] want = {100, 30, 15};   // epochs 0, 7 and 15 of the authors' 90
            for (double w : want) {
                for (fst4j.nn.ReSprop r : states) assertEquals(w, r.targetPercent(), "after " + r.steps() + " steps");
                run(t, 1);
            }
        }
    }

    @Test
    void resumeAtAnEpochBoundary(@TempDir Path dir) throws Exception {
        TrainData data = tiny();
        Path ckpt = dir.resolve("c.safetensors");
        try (Trainer straight = new Trainer(cfg(Method.FST3_IR, "mlp"), data); Trainer first = new Trainer(cfg(Method.FST3_IR, "mlp"), data)) {
            run(straight, 12);
            run(first, 8);       // exactly the end of epoch 1, before endEpoch()
            first.save(ckpt);
            try (Trainer resumed = new Trainer(cfg(Method.FST3_IR, "mlp"), data)) {
                resumed.load(ckpt);
                run(resumed, 4);
                assertSameState(straight, resumed);
                assertTrue(resumed.finished() || !resumed.epochHasNext());
            }
        }
    }

    /**
     * ASP: dense until half of the steps, then each inner layer's mask is fixed from |W| at that step and stays fixed while
     * W moves on; a checkpoint taken after the pruning carries the masks and resumes bit-identically.
     */
    @Test
    void aspPrunesOnceAtHalfAndResumesWithItsMasks(@TempDir Path dir) throws Exception {
        TrainData data = tiny();
        Path ckpt = dir.resolve("asp.safetensors");
        try (Trainer straight = new Trainer(cfg(Method.ASP, "cnn"), data); Trainer first = new Trainer(cfg(Method.ASP, "cnn"), data)) {
            assertEquals(6, straight.aspStep());   // 3 epochs of 4 steps
            run(straight, 6);
            var layers = fst4j.nn.Models.sparseLayers(straight.model());
            assertTrue(layers.values().stream().allMatch(l -> l.sparsity().w() instanceof fst4j.sparse.Sparsifier.Dense), "dense before");
            Map<String, float[]> atPrune = new java.util.HashMap<>();
            layers.forEach((k, l) -> atPrune.put(k, l.weight().value().toFloatArray()));
            run(straight, 1);   // step 6 prunes, then trains
            int pruned = 0;
            for (var e : layers.entrySet()) {
                var c = e.getValue().sparsity();
                if (!(c.w() instanceof fst4j.nn.Asp.FrozenMask m)) continue;
                pruned++;
                assertTrue(c.wtFromSparse());
                float[] w0 = atPrune.get(e.getKey());
                int rows = e.getValue().weight().value().size(0), k = w0.length / rows;
                try (Tensor wm = Tensor.of(w0, rows, k); Tensor want = new fst4j.sparse.Sparsifier.Magnitude24(1).mask(wm)) {
                    float[] mw = want.toFloatArray();
                    boolean[] keep = m.keep(new double[w0.length], new int[]{rows, k});
                    for (int i = 0; i < keep.length; i++) assertEquals(mw[i] != 0, keep[i], e.getKey() + " element " + i);
                }
            }
            assertEquals(2, pruned, "the small CNN's two inner convolutions; the ends stay dense");
            run(straight, 5);
            // a checkpoint taken exactly at the pruning step holds no masks: the resumed run prunes from the same W
            try (Trainer at = new Trainer(cfg(Method.ASP, "cnn"), data)) {
                run(at, 6);
                Path atCkpt = dir.resolve("asp-at.safetensors");
                at.save(atCkpt);
                try (Trainer resumed = new Trainer(Trainer.readConfig(atCkpt), data)) {
                    resumed.load(atCkpt);
                    assertTrue(fst4j.nn.Asp.pending(resumed.model()));
                    run(resumed, 6);
                    assertSameState(straight, resumed);
                }
                // the analysis's own loader puts the masks of a later checkpoint back
                run(at, 2);
                Path later = dir.resolve("asp-later.safetensors");
                at.save(later);
                try (fst4j.nn.Module m = fst4j.nn.Models.byName("cnn", 1, 8, 8, 4, Method.ASP, 7);
                     SafeTensors.Contents c = SafeTensors.read(later)) {
                    assertEquals(2, fst4j.nn.Asp.restore(m, c.int64s()));
                    assertFalse(fst4j.nn.Asp.pending(m));
                }
            }
            run(first, 8);
            first.save(ckpt);
            try (Trainer resumed = new Trainer(Trainer.readConfig(ckpt), data)) {
                resumed.load(ckpt);
                run(resumed, 4);
                assertSameState(straight, resumed);
                for (var e : fst4j.nn.Models.sparseLayers(resumed.model()).entrySet()) {
                    var want = layers.get(e.getKey()).sparsity().w();
                    if (want instanceof fst4j.nn.Asp.FrozenMask wm)
                        assertArrayEquals(wm.exportState(), ((fst4j.nn.Asp.FrozenMask) e.getValue().sparsity().w()).exportState(), e.getKey());
                }
            }
        }
    }

    /**
     * A checkpoint whose layers carried stateful rules (the authors' random patterns) does not load into a model where a
     * layer no longer takes that state (overridden after the trainer was built): an error naming the slot, not a run that
     * silently drops it.
     */
    @Test
    void sparsifierStateWithoutItsLayerIsRefused(@TempDir Path dir) throws Exception {
        TrainData data = tiny();
        Path ckpt = dir.resolve("p.safetensors");
        try (Trainer t = new Trainer(cfg(Method.FST3_IR_PATTERNS, "cnn"), data)) {
            run(t, 2);
            t.save(ckpt);
        }
        try (Trainer t = new Trainer(cfg(Method.FST3_IR_PATTERNS, "cnn"), data)) {
            String layer = fst4j.nn.Models.sparseLayers(t.model()).entrySet().stream()
                    .filter(e -> e.getValue().sparsity().xt() instanceof fst4j.sparse.AuthorsFixed24).findFirst().orElseThrow().getKey();
            fst4j.nn.Models.override(t.model(), layer, Method.FST3_IR.config());
            CheckpointException e = assertThrows(CheckpointException.class, () -> t.load(ckpt));
            assertTrue(e.getMessage().contains("sparsifier " + layer + ".xt"), e.getMessage());
        }
        try (Trainer t = new Trainer(cfg(Method.FST3_IR_PATTERNS, "cnn"), data)) {
            t.load(ckpt);   // as saved: loads
            assertEquals(2, t.stepsDone());
        }
    }

    /** Everything a trainer would resume from, copied out: weights, momentum, step, loader and every rule's state. */
    record Snapshot(Map<String, float[]> weights, Map<String, float[]> momentum, long step, Object loader, Map<String, long[]> rules,
                    Map<String, Object> configs) {
        static Snapshot of(Trainer t) {
            Map<String, float[]> w = new java.util.TreeMap<>();
            t.model().stateDict().forEach((k, v) -> w.put(k, v.toFloatArray()));
            Map<String, float[]> m = new java.util.TreeMap<>();   // the optimizer's state (counts as floats: small here)
            var os = t.optimizer().stateDict();
            os.tensors().forEach((k, v) -> m.put(k, v.toFloatArray()));
            os.counts().forEach((k, v) -> {
                float[] f = new float[v.length];
                for (int i = 0; i < v.length; i++) f[i] = v[i];
                m.put("count " + k, f);
            });
            Map<String, long[]> r = new java.util.TreeMap<>();
            Map<String, Object> c = new java.util.TreeMap<>();
            fst4j.nn.Models.sparseLayers(t.model()).forEach((name, layer) -> {
                c.put(name, layer.sparsity());
                var cfg = layer.sparsity();
                fst4j.sparse.Sparsifier[] slots = {cfg.w(), cfg.wt(), cfg.dyEq2(), cfg.dyEq3(), cfg.xt()};
                for (int i = 0; i < slots.length; i++)
                    if (slots[i] instanceof fst4j.sparse.StatefulSparsifier sp) r.put(name + "." + i, sp.exportState());
            });
            return new Snapshot(w, m, t.stepsDone(), t.loader().state(), r, c);
        }

        void assertUnchanged(Trainer t, String what) {
            Snapshot now = of(t);
            assertEquals(weights.keySet(), now.weights.keySet(), what);
            weights.forEach((k, v) -> assertArrayEquals(v, now.weights.get(k), what + ": weight " + k));
            assertEquals(momentum.keySet(), now.momentum.keySet(), what);
            momentum.forEach((k, v) -> assertArrayEquals(v, now.momentum.get(k), what + ": momentum " + k));
            assertEquals(step, now.step, what);
            assertEquals(loader, now.loader, what);
            assertEquals(rules.keySet(), now.rules.keySet(), what);
            rules.forEach((k, v) -> assertArrayEquals(v, now.rules.get(k), what + ": rule state " + k));
            configs.forEach((k, v) -> assertSame(v, now.configs.get(k), what + ": sparsity of " + k));
        }
    }

    /** A copy of checkpoint src with its maps changed by edit, written to dst. */
    static Path edited(Path src, Path dst, java.util.function.BiConsumer<Map<String, Tensor>, Map<String, long[]>> edit) throws Exception {
        try (SafeTensors.Contents c = SafeTensors.read(src)) {
            Map<String, Tensor> tensors = new java.util.LinkedHashMap<>(c.tensors());
            Map<String, long[]> int64s = new java.util.LinkedHashMap<>(c.int64s());
            edit.accept(tensors, int64s);
            SafeTensors.write(dst, tensors, int64s, c.metadata());
        }
        return dst;
    }

    /**
     * A checkpoint refused part of the way through leaves the trainer as it was: the rules whose state was already taken
     * are put back, ASP's placeholder masks taken out, and no weight, momentum or loader position changes.
     */
    @Test
    void aRefusedCheckpointChangesNothing(@TempDir Path dir) throws Exception {
        TrainData data = tiny();
        for (Method m : new Method[]{Method.FST3_IR_PATTERNS, Method.ASP}) {
            Path ckpt = dir.resolve(m + ".safetensors");
            try (Trainer t = new Trainer(cfg(m, "cnn"), data)) {
                run(t, m == Method.ASP ? 10 : 2);   // ASP: past the half of the run, its masks fixed
                t.save(ckpt);
            }
            try (Trainer t = new Trainer(cfg(m, "cnn"), data)) {
                run(t, 1);
                Snapshot before = Snapshot.of(t);
                if (m == Method.ASP) assertTrue(fst4j.nn.Asp.pending(t.model()), "ASP not yet pruned in the trainer that loads");
                String lastRule;
                try (SafeTensors.Contents c = SafeTensors.read(ckpt)) {
                    List<String> rules = c.int64s().keySet().stream().filter(k -> k.startsWith("sparsity.")).toList();
                    assertTrue(rules.size() >= 2, "several rules with state: " + rules);
                    lastRule = rules.get(rules.size() - 1);
                }
                // the last rule's state malformed: the ones before it were already imported when it fails
                Path badRule = edited(ckpt, dir.resolve("bad-rule.safetensors"), (ts, ls) -> ls.put(lastRule, new long[]{1}));
                assertThrows(CheckpointException.class, () -> t.load(badRule));
                before.assertUnchanged(t, m + ", a malformed rule state");
                // a weight of the wrong shape, the loader beyond its epoch: refused before anything changes
                Path badWeight = edited(ckpt, dir.resolve("bad-weight.safetensors"), (ts, ls) -> {
                    String last = ts.keySet().stream().filter(k -> k.startsWith("model.")).reduce((a, b) -> b).orElseThrow();
                    ts.put(last, Tensor.zeros(3));
                });
                assertThrows(CheckpointException.class, () -> t.load(badWeight));
                before.assertUnchanged(t, m + ", a weight of the wrong shape");
                Path badLoader = edited(ckpt, dir.resolve("bad-loader.safetensors"), (ts, ls) -> {
                    long[] l = ls.get("loader").clone();
                    l[2] = 100_000;   // {seed, epoch, position}
                    ls.put("loader", l);
                });
                assertThrows(CheckpointException.class, () -> t.load(badLoader));
                before.assertUnchanged(t, m + ", a loader position beyond the epoch");
                t.load(ckpt);   // the good one still loads
                assertEquals(m == Method.ASP ? 10 : 2, t.stepsDone());
            }
        }
    }

    /**
     * A refused checkpoint puts ReSprop's layers back as they were, the last step's kept percentage included: the undo
     * re-imported their words, which set it to NaN (and marked the sample as loaded from the checkpoint).
     */
    @Test
    void aRefusedCheckpointKeepsReSpropsLastPercentage(@TempDir Path dir) throws Exception {
        TrainData data = tiny();
        Path ckpt = dir.resolve("resprop.safetensors");
        try (Trainer t = new Trainer(cfg(Method.RESPROP, "cnn"), data)) {
            run(t, 3);
            t.save(ckpt);
        }
        try (Trainer t = new Trainer(cfg(Method.RESPROP, "cnn"), data)) {
            run(t, 2);   // the second step used the first one's sample: a percentage
            Map<String, fst4j.nn.ReSprop> layers = new java.util.LinkedHashMap<>();
            fst4j.nn.Models.sparseLayers(t.model()).forEach((name, l) -> { if (l.resprop() != null) layers.put(name, l.resprop()); });
            assertTrue(layers.size() >= 2, "one layer imported before the one that fails: " + layers.keySet());
            Map<String, Double> before = new java.util.LinkedHashMap<>();
            layers.forEach((name, r) -> before.put(name, r.lastPercent()));
            before.forEach((name, p) -> assertFalse(Double.isNaN(p), name));
            String last = "sparsity." + List.copyOf(layers.keySet()).get(layers.size() - 1) + ".resprop";
            Path bad = edited(ckpt, dir.resolve("bad.safetensors"), (ts, ls) -> ls.put(last, new long[]{1}));
            assertThrows(CheckpointException.class, () -> t.load(bad));
            layers.forEach((name, r) -> assertEquals(before.get(name), r.lastPercent(), name));
            assertEquals(2, t.stepsDone());
        }
    }

    @Test
    void corruptOrForeignCheckpointsGiveClearErrors(@TempDir Path dir) throws Exception {
        TrainData data = tiny();
        Path ckpt = dir.resolve("c.safetensors");
        try (Trainer t = new Trainer(cfg(Method.FST3_IR, "mlp"), data)) {
            run(t, 2);
            t.save(ckpt);
            byte[] ok = Files.readAllBytes(ckpt);

            byte[] bad = ok.clone();
            for (int i = 8; i < 40; i++) bad[i] = '#';           // mangle the JSON header
            Path corrupt = dir.resolve("corrupt.safetensors");
            Files.write(corrupt, bad);
            CheckpointException e = assertThrows(CheckpointException.class, () -> t.load(corrupt));
            assertTrue(e.getMessage().startsWith("checkpoint " + corrupt + " is unusable: "), e.getMessage());

            // one flipped bit in the data (the lowest byte of the file's last float, a momentum buffer's): the structure is
            // intact, the checksum is not
            byte[] flipped = ok.clone();
            flipped[flipped.length - 4] ^= 1;
            Path rot = dir.resolve("bitrot.safetensors");
            Files.write(rot, flipped);
            e = assertThrows(CheckpointException.class, () -> t.load(rot));
            assertTrue(e.getMessage().startsWith("checkpoint " + rot + " is unusable: ") && e.getMessage().contains("CRC-32C"), e.getMessage());
            // and one in a metadata value (the learning rate the run was written with)
            String text = new String(ok, java.nio.charset.StandardCharsets.ISO_8859_1);
            int lr = text.indexOf("\"lr\":\"") + 6;
            assertTrue(lr > 6, "no lr in the checkpoint's metadata");
            byte[] meta = ok.clone();
            meta[lr] ^= 1;
            Files.write(rot, meta);
            e = assertThrows(CheckpointException.class, () -> Trainer.readConfig(rot));
            assertTrue(e.getMessage().contains("metadata fail their CRC-32C check"), e.getMessage());

            Path truncated = dir.resolve("truncated.safetensors");
            Files.write(truncated, java.util.Arrays.copyOf(ok, ok.length / 2));
            e = assertThrows(CheckpointException.class, () -> t.load(truncated));
            assertTrue(e.getMessage().contains(truncated.toString()), e.getMessage());

            Path missing = dir.resolve("nope.safetensors");
            e = assertThrows(CheckpointException.class, () -> t.load(missing));
            assertEquals("checkpoint " + missing + " is unusable: no such file or directory", e.getMessage());
            e = assertThrows(CheckpointException.class, () -> t.load(dir));
            assertTrue(e.getMessage().endsWith("is unusable: it is a directory (a run's checkpoints are <out>/<method>/final.safetensors"
                    + " and checkpoint.safetensors)"), e.getMessage());

            Path foreign = dir.resolve("foreign.safetensors");
            SafeTensors.write(foreign, t.model().stateDict());
            e = assertThrows(CheckpointException.class, () -> t.load(foreign));
            assertTrue(e.getMessage().contains("not an fst4j training checkpoint"), e.getMessage());

            try (Trainer other = new Trainer(cfg(Method.DENSE, "mlp"), data)) {
                e = assertThrows(CheckpointException.class, () -> other.load(ckpt));
                assertTrue(e.getMessage().contains("written for"), e.getMessage());
            }
            assertThrows(CheckpointException.class, () -> Trainer.readConfig(corrupt));
        }
    }
}
