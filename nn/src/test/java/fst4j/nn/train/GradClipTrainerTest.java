package fst4j.nn.train;

import fst4j.autograd.Function;
import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.BatchNorm2d;
import fst4j.nn.Conv2d;
import fst4j.nn.Flatten;
import fst4j.nn.GradClip;
import fst4j.nn.Linear;
import fst4j.nn.LrSchedule;
import fst4j.nn.MaxPool2d;
import fst4j.nn.Module;
import fst4j.nn.Models;
import fst4j.nn.Optimizer;
import fst4j.nn.ReLU;
import fst4j.nn.Sequential;
import fst4j.nn.SrSte;
import fst4j.nn.cli.BlasThreads;
import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.cli.Outcome;
import fst4j.nn.data.DataLoader;
import fst4j.nn.io.SafeTensors;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Gradient-norm clipping in the trainer and the CLI ({@link TrainConfig#clipGradNorm}, {@code --clip-grad-norm}): the
 * trainer's step is GradClip.clipGradNorm over the optimizer's parameters between the backward pass and SR-STE's decay,
 * bit for bit as a loop of one's own; off, nothing changes; the setting is part of a checkpoint and resumes exactly; a
 * finite loss with a non-finite gradient norm stops the step with the trainer as it was.
 */
class GradClipTrainerTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    private static final double MAX = 0.25;   // below the tiny CNN's gradient norms (about 0.5-2): most steps clip

    /** The training step by hand, as a loop of one's own writes it: backward, clip, decay, step. Returns the norm. */
    static double stepByHand(Module model, Optimizer opt, DataLoader loader, double lr, TrainConfig cfg, double maxNorm, boolean decays) {
        model.train(true);
        try (Scope s = Scope.open()) {
            DataLoader.Batch b = loader.next();
            opt.setLr(lr);
            Var loss = NN.crossEntropy(model.forward(Var.of(b.images().to(model.parameters().get(0).value().device()))), b.labels(),
                    cfg.labelSmoothing());
            loss.backward();
            double norm = GradClip.clipGradNorm(opt.params(), maxNorm);
            if (decays) SrSte.addDecay(model, cfg.srSteLambda());   // after the clipping: the decay is not clipped
            opt.step();
            opt.zeroGrad();
            return norm;
        }
    }

    static Map<String, float[]> weights(Module m) {
        Map<String, float[]> w = new TreeMap<>();
        m.stateDict().forEach((k, v) -> w.put(k, v.toFloatArray()));
        return w;
    }

    static void assertSameWeights(Map<String, float[]> a, Map<String, float[]> b, String what) {
        assertEquals(a.keySet(), b.keySet(), what);
        a.forEach((k, v) -> assertArrayEquals(v, b.get(k), what + ": " + k));
    }

    /**
     * The trainer's clipping is GradClip.clipGradNorm(opt.params(), max) after backward and before the decay, bit for
     * bit: against the same steps by hand on a clip-off twin's model, optimizer and loader (SGD with SR-STE's decay fused,
     * AdamW with it added to the gradient, and a method without decay); and it clips (the weights are not the unclipped run's).
     */
    @Test
    void clippingIsGradClipByHandBeforeTheDecay() {
        TrainData data = CheckpointTest.tiny();
        TrainConfig[] cfgs = {CheckpointTest.cfg(Method.FST3_IR), CheckpointTest.cfg(Method.DENSE),
                AdamWCheckpointTest.adamw(Method.FST3_IR, "cnn").withLr(0.01)};
        for (TrainConfig base : cfgs) {
            String what = base.methodName() + " " + base.optimizer().key();
            TrainConfig clipped = base.withClipGradNorm(MAX);
            try (Trainer t = new Trainer(clipped, data); Trainer hand = new Trainer(base, data); Trainer plain = new Trainer(base, data)) {
                assertEquals(base.method() == Method.FST3_IR, t.decaysPruned(), what);
                LrSchedule sched = LrSchedule.cosine(base.lr(), base.warmupFor(hand.totalSteps()), hand.totalSteps(), base.minLr());
                int clippedSteps = 0;
                for (int i = 0; i < 10; i++) {   // 4 steps an epoch: across two epoch ends
                    if (!t.epochHasNext()) { t.endEpoch(); hand.endEpoch(); plain.endEpoch(); }
                    Trainer.StepResult r = t.trainStep();
                    plain.trainStep();
                    double norm = stepByHand(hand.model(), hand.optimizer(), hand.loader(), sched.lr(i), base, MAX, hand.decaysPruned());
                    assertEquals(sched.lr(i), r.lr(), 0.0);
                    assertEquals(norm, r.gradNorm(), 0.0, what + ": the norm before clipping of step " + i);
                    if (r.gradNorm() > MAX) clippedSteps++;
                }
                assertTrue(clippedSteps >= 5, what + ": only " + clippedSteps + " of 10 steps clipped");
                assertSameWeights(weights(hand.model()), weights(t.model()), what);
                var oh = hand.optimizer().stateDict();
                var ot = t.optimizer().stateDict();
                assertEquals(oh.tensors().keySet(), ot.tensors().keySet());
                oh.tensors().forEach((k, v) -> assertArrayEquals(v.toFloatArray(), ot.tensors().get(k).toFloatArray(), what + ": optimizer " + k));
                oh.counts().forEach((k, v) -> assertArrayEquals(v, ot.counts().get(k), what + ": optimizer count " + k));
                Map<String, float[]> unclipped = weights(plain.model());
                assertTrue(unclipped.keySet().stream().anyMatch(k -> !java.util.Arrays.equals(unclipped.get(k), weights(t.model()).get(k))),
                        what + ": clipping changed nothing");
            }
        }
    }

    /**
     * Off (0, the default), the trainer measures no norm and takes the step it took before: the same bits as the same
     * steps by hand without clipping (and as a clip too large to bite, which scales nothing); the config, metadata and
     * metrics columns are those of a run before the setting existed.
     */
    @Test
    void offIsTheRunItWas() {
        TrainData data = CheckpointTest.tiny();
        TrainConfig base = CheckpointTest.cfg(Method.FST3_IR);
        assertEquals(0.0, base.clipGradNorm());
        assertFalse(base.clipsGradients());
        assertFalse(base.toMetadata().containsKey("clip_grad_norm"), base.toMetadata().toString());
        try (Trainer t = new Trainer(base, data); Trainer hand = new Trainer(base, data); Trainer huge = new Trainer(base.withClipGradNorm(1e30), data)) {
            LrSchedule sched = LrSchedule.cosine(base.lr(), base.warmupFor(hand.totalSteps()), hand.totalSteps(), base.minLr());
            for (int i = 0; i < 6; i++) {
                if (!t.epochHasNext()) { t.endEpoch(); hand.endEpoch(); huge.endEpoch(); }
                Trainer.StepResult r = t.trainStep();
                assertTrue(Double.isNaN(r.gradNorm()), "not measured when off: " + r.gradNorm());
                assertTrue(Double.isFinite(huge.trainStep().gradNorm()));
                stepByHand(hand.model(), hand.optimizer(), hand.loader(), sched.lr(i), base, Double.POSITIVE_INFINITY, hand.decaysPruned());
            }
            assertSameWeights(weights(hand.model()), weights(t.model()), "off against the loop by hand");
            assertSameWeights(weights(huge.model()), weights(t.model()), "a clip that never bites against off");
        }
    }

    // ------------------------------------------------------------------ the setting, the flag, the metadata

    private static TrainConfig config(String... args) throws UsageException {
        return Main.apply(Main.parse(args), TrainConfig.defaults(Method.DENSE));
    }

    @Test
    void theFlagSetsTheConfigAndTheMetadataKeepsIt() throws Exception {
        assertEquals(TrainConfig.defaults(Method.DENSE), config(), "no flag: the default run");
        assertEquals(TrainConfig.defaults(Method.DENSE), config("--clip-grad-norm", "0"), "0 is off");
        assertEquals(TrainConfig.defaults(Method.DENSE), config("--clip-grad-norm", "-0"), "-0 is off too, the same config");
        TrainConfig c = config("--clip-grad-norm", "1.5");
        assertEquals(1.5, c.clipGradNorm());
        assertTrue(c.clipsGradients());
        assertEquals(c, config("--clip-grad-norm=1.5"));
        assertEquals(TrainConfig.defaults(Method.DENSE).withClipGradNorm(1.5), c);
        Map<String, String> meta = c.toMetadata();
        assertEquals("1.5", meta.get("clip_grad_norm"));
        assertEquals(c, TrainConfig.fromMetadata(meta), "the checkpoint's metadata gives the config back");
        // a checkpoint written before the setting existed (no key) is a run without clipping
        Map<String, String> old = new LinkedHashMap<>(meta);
        old.remove("clip_grad_norm");
        assertEquals(TrainConfig.defaults(Method.DENSE), TrainConfig.fromMetadata(old));
        assertEquals(TrainConfig.defaults(Method.DENSE).toMetadata(), TrainConfig.defaults(Method.DENSE).withClipGradNorm(0).toMetadata());
        for (double bad : new double[]{-1, -1e-300, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> TrainConfig.defaults(Method.DENSE).withClipGradNorm(bad));
            assertTrue(e.getMessage().contains("gradient norm to clip to must be finite and >= 0"), e.getMessage());
        }
    }

    @Test
    void badValuesOfTheFlagAreUsageErrors() {
        String[][] bad = {{"--clip-grad-norm", "-1"}, {"--clip-grad-norm", "NaN"}, {"--clip-grad-norm", "Infinity"}, {"--clip-grad-norm", "x"},
                {"--clip-grad-norm", ""}, {"--clip-grad-norm="}, {"--clip-grad-norm"}, {"--clip-grad-norm", "--augment"},
                {"--clip-grad-norm", "1", "--clip-grad-norm", "2"}};
        String[] want = {"--clip-grad-norm needs a non-negative number, got '-1'", "--clip-grad-norm needs a non-negative number, got 'NaN'",
                "--clip-grad-norm needs a non-negative number, got 'Infinity'", "--clip-grad-norm needs a non-negative number, got 'x'",
                "--clip-grad-norm needs a value", "--clip-grad-norm needs a value", "--clip-grad-norm needs a value", "--clip-grad-norm needs a value",
                "--clip-grad-norm given twice"};
        for (int i = 0; i < bad.length; i++) {
            String[] args = bad[i];
            UsageException e = assertThrows(UsageException.class, () -> config(args), String.join(" ", args));
            assertTrue(e.getMessage().contains(want[i]), String.join(" ", args) + ": " + e.getMessage());
            Outcome r = MainTest.main(MainTest.NO_DATA, args);
            assertEquals(2, r.rc(), String.join(" ", args));
            assertTrue(r.err().startsWith("fst4j train: ") && r.err().contains("; usage: fst4j train [") && r.err().lines().count() == 1, r.err());
        }
        Outcome h = MainTest.main(MainTest.NO_DATA, "--help");
        assertTrue(h.out().contains("--clip-grad-norm X"), h.out());
    }

    // ------------------------------------------------------------------ checkpoints

    /** A clipping run saved mid-epoch and resumed ends as the run that never stopped; another clip (or none) is refused. */
    @Test
    void aClippingRunResumesBitIdentically(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        for (Method m : new Method[]{Method.FST3_IR, Method.RESPROP}) {
            TrainConfig cfg = CheckpointTest.cfg(m).withClipGradNorm(MAX);
            Path ckpt = dir.resolve(m + ".safetensors");
            try (Trainer straight = new Trainer(cfg, data); Trainer first = new Trainer(cfg, data)) {
                CheckpointTest.run(straight, 10);
                CheckpointTest.run(first, 5);
                first.save(ckpt);
                assertEquals(Double.toString(MAX), Trainer.readMetadata(ckpt).get("clip_grad_norm"));
                TrainConfig saved = Trainer.readConfig(ckpt);
                assertEquals(cfg, saved);
                try (Trainer resumed = new Trainer(saved, data)) {
                    resumed.load(ckpt);
                    CheckpointTest.run(resumed, 5);
                    CheckpointTest.assertSameState(straight, resumed);
                }
                for (TrainConfig other : new TrainConfig[]{CheckpointTest.cfg(m), CheckpointTest.cfg(m).withClipGradNorm(2 * MAX)})
                    try (Trainer t = new Trainer(other, data)) {
                        CheckpointTest.Snapshot before = CheckpointTest.Snapshot.of(t);
                        CheckpointException e = assertThrows(CheckpointException.class, () -> t.load(ckpt));
                        assertTrue(e.getMessage().contains("clip_grad_norm=" + MAX), e.getMessage());
                        before.assertUnchanged(t, "a refused checkpoint");
                    }
            }
        }
    }

    /**
     * Through the CLI: metrics.csv gets a grad_norm column (the norm before clipping); a run resumed into its own folder
     * from its --save-every checkpoint writes the same rows, norms included, and the same final weights; the flag may be
     * given again on --resume with the checkpoint's value, not another.
     */
    @Test
    void theCliClipsAndResumesExactly(@TempDir Path tmp) throws Exception {
        Path data = MainTest.idxData(tmp, 64, 16), out = tmp.resolve("run");
        Outcome r = MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense,fst3_ir", "--batch", "16",
                "--epochs", "2", "--clip-grad-norm", "0.5", "--save-every", "3", "--threads", "1", "--no-progress", "--out", out.toString());
        assertEquals(0, r.rc(), r.err());
        assertTrue(r.out().contains(", gradient norm clipped to 0.5, seed 0"), r.out());
        List<String> rows = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals("method,epoch,step,loss,train_acc,lr,step_ms,grad_norm", rows.get(0));
        assertEquals(1 + 2 * 8, rows.size());
        for (String row : rows.subList(1, rows.size())) {
            String[] f = row.split(",");
            assertEquals(8, f.length, row);
            assertTrue(Double.parseDouble(f[7]) > 0, row);
        }
        List<String> before = MainTest.rowsWithoutTimes(out.resolve("metrics.csv"));
        Path ckpt = out.resolve("fst3_ir/checkpoint.safetensors"), fin = tmp.resolve("final.safetensors");
        Files.copy(out.resolve("fst3_ir/final.safetensors"), fin);
        try (SafeTensors.Contents c = SafeTensors.read(ckpt)) {
            assertArrayEquals(new long[]{6}, c.int64("step"));
        }
        for (String[] flags : new String[][]{{"--clip-grad-norm", "1"}, {"--clip-grad-norm", "0"}}) {
            List<String> args = new ArrayList<>(List.of("--resume", ckpt.toString()));
            args.addAll(List.of(flags));
            Outcome refused = MainTest.main(MainTest.NO_DATA, args.toArray(String[]::new));
            assertEquals(2, refused.rc(), String.join(" ", flags) + ": " + refused.err());
            assertTrue(refused.err().contains("these flags differ from them: clip_grad_norm: " + (flags[1].equals("0") ? "default" : "1.0") + " against the checkpoint's 0.5;"), refused.err());
        }
        Outcome resumed = MainTest.main(TrainData::load, "--resume", ckpt.toString(), "--clip-grad-norm", "0.5", "--threads", "1", "--no-progress",
                "--out", out.toString());
        assertEquals(0, resumed.rc(), resumed.err());
        assertEquals(before, MainTest.rowsWithoutTimes(out.resolve("metrics.csv")), "rows 7 and 8 trained again, with the same norms");
        try (SafeTensors.Contents a = SafeTensors.read(fin); SafeTensors.Contents b = SafeTensors.read(out.resolve("fst3_ir/final.safetensors"))) {
            assertEquals(a.tensors().keySet(), b.tensors().keySet());
            for (String k : a.tensors().keySet()) assertArrayEquals(a.tensor(k).toFloatArray(), b.tensor(k).toFloatArray(), k);
        }
        // without the flag: the columns a run had before the setting existed
        Path plain = tmp.resolve("plain");
        Outcome p = MainTest.main(TrainData::load, "--model", "mlp", "--data", "mnist:" + data, "--method", "dense", "--batch", "16",
                "--threads", "1", "--no-progress", "--out", plain.toString());
        assertEquals(0, p.rc(), p.err());
        assertEquals("method,epoch,step,loss,train_acc,lr,step_ms", Files.readAllLines(plain.resolve("metrics.csv")).get(0));
        assertEquals(7, Files.readAllLines(plain.resolve("metrics.csv")).get(1).split(",").length);
        assertFalse(p.out().contains("clipped"), p.out());
    }

    // ------------------------------------------------------------------ a finite loss with a non-finite gradient norm

    /** Identity forward; backward, while armed, a NaN gradient (a finite loss whose gradients are not). */
    static final class NanGradient extends Module {
        boolean armed;

        @Override public Var forward(Var x) {
            if (!armed) return x;
            return new Function() {
                @Override protected Tensor forward(Tensor... in) { return in[0].alias(); }
                @Override protected Tensor[] backward(Tensor g) { return grads(g.mul(Double.NaN)); }
            }.apply(x);
        }
    }

    /** A ReSprop convolution (whose rule moves its state in the backward pass), batch norm, the NaN switch, a classifier. */
    static Sequential nanModel(NanGradient nan) {
        Rng rng = new Rng(3);
        return new Sequential(new Conv2d(1, 8, 3, 1, 1, false, Method.RESPROP.config(), rng), new BatchNorm2d(8), new ReLU(), nan,
                new MaxPool2d(2), new Flatten(), new Linear(8 * 16, 4, true, Method.FST3_IR.config(), rng));
    }

    /** Every number a trainer steps from: the state dict (weights, batch norm's statistics), the optimizer's state, every rule's state, the step. */
    static Map<String, long[]> state(Trainer t) {
        Map<String, long[]> s = new TreeMap<>();
        t.model().stateDict().forEach((k, v) -> s.put("model " + k, bits(v)));
        var os = t.optimizer().stateDict();
        os.tensors().forEach((k, v) -> s.put("optim " + k, bits(v)));
        os.counts().forEach((k, v) -> s.put("optim count " + k, v.clone()));
        Models.statefulSparsifiers(t.model()).forEach((k, r) -> s.put("rule " + k, r.exportState()));
        s.put("step", new long[]{t.stepsDone()});
        return s;
    }

    private static long[] bits(Tensor v) {
        float[] f = v.toFloatArray();
        long[] b = new long[f.length];
        for (int i = 0; i < f.length; i++) b[i] = Float.floatToRawIntBits(f[i]);
        return b;
    }

    /**
     * A step whose loss is finite but whose gradients are NaN stops with NonFiniteGradNormException naming the step,
     * before clipping and update: weights, batch norm's statistics, momentum, the step count and ReSprop's state (which
     * its backward had moved) are those of the step before, and the gradients are gone: a twin that skips the same batch
     * by hand trains on to the same bits.
     */
    @Test
    void aNonFiniteGradientNormStopsTheStepWithTheTrainerAsItWas() {
        TrainData data = CheckpointTest.tiny();
        TrainConfig cfg = CheckpointTest.cfg(Method.RESPROP).withClipGradNorm(1.0);
        NanGradient nan = new NanGradient(), twinNan = new NanGradient();
        try (Sequential m = nanModel(nan); Sequential tm = nanModel(twinNan); Trainer t = new Trainer(m, cfg, data); Trainer twin = new Trainer(tm, cfg, data)) {
            assertTrue(t.decaysPruned(), "the classifier's W is pruned: the decay runs too");
            CheckpointTest.run(t, 2);
            CheckpointTest.run(twin, 2);
            Map<String, long[]> before = state(t);
            assertTrue(before.keySet().stream().anyMatch(k -> k.startsWith("rule ") && k.endsWith(".resprop")), before.keySet().toString());
            assertTrue(before.keySet().stream().anyMatch(k -> k.contains("running_mean")), before.keySet().toString());
            nan.armed = true;
            Trainer.NonFiniteGradNormException e = assertThrows(Trainer.NonFiniteGradNormException.class, t::trainStep);
            nan.armed = false;
            assertEquals(2, e.step());
            assertTrue(Double.isNaN(e.norm()) && Double.isFinite(e.loss()), e.getMessage());
            assertEquals("the gradient norm", e.what());
            assertTrue(e.getMessage().startsWith("the gradients' total L2 norm is NaN at step 3 (epoch 1, loss ")
                    && e.getMessage().contains("stopped before clipping it to 1.0 and the update, so the weights are those after step 2"), e.getMessage());
            Map<String, long[]> after = state(t);
            assertEquals(before.keySet(), after.keySet());
            before.forEach((k, v) -> assertArrayEquals(v, after.get(k), k + " changed by the stopped step"));
            for (Var p : t.model().parameters()) assertNull(p.grad(), "the stopped step's gradients are dropped");
            try (Scope s = Scope.open()) {
                twin.loader().next();   // the batch the stopped step took
            }
            CheckpointTest.run(t, 4);
            CheckpointTest.run(twin, 4);
            assertEquals(state(twin).keySet(), state(t).keySet());
            state(twin).forEach((k, v) -> assertArrayEquals(v, state(t).get(k), k + ": the trainer went on as the twin"));
        }
    }

    /** Without the stop (the experiments), the gradients are clipped as torch does: NaN, reported, and into the weights. */
    @Test
    void withoutTheStopTheNormIsReportedAndTrainingGoesOn() {
        NanGradient nan = new NanGradient();
        try (Sequential m = nanModel(nan); Trainer t = new Trainer(m, CheckpointTest.cfg(Method.RESPROP).withClipGradNorm(1.0), CheckpointTest.tiny())) {
            t.stopOnNonFiniteLoss(false);
            assertTrue(Double.isFinite(t.trainStep().gradNorm()));
            nan.armed = true;
            Trainer.StepResult r = t.trainStep();
            assertTrue(Double.isNaN(r.gradNorm()) && Double.isFinite(r.loss()), r.toString());
            assertEquals(2, t.stepsDone());
            assertTrue(Double.isNaN(m.parameters().get(0).value().toFloatArray()[0]), "torch's clip_grad_norm_: NaN gradients, NaN weights");
        }
    }
}
