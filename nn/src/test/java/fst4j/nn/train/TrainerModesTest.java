package fst4j.nn.train;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.BasicBlock;
import fst4j.nn.BatchNorm2d;
import fst4j.nn.Conv2d;
import fst4j.nn.Dropout;
import fst4j.nn.Flatten;
import fst4j.nn.Linear;
import fst4j.nn.MaxPool2d;
import fst4j.nn.Module;
import fst4j.nn.ReLU;
import fst4j.nn.Sequential;
import fst4j.nn.cli.BlasThreads;
import fst4j.tensor.Rng;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Train and eval modes are the user's, as in PyTorch: the trainer's steps do not put a module in training mode, and
 * evaluate() puts each module back in its own mode, so a batch norm frozen for fine-tuning ({@code freeze} and
 * {@code eval()}) keeps its running statistics and normalises with them through steps, evaluations and a resume.
 */
class TrainerModesTest {
    @RegisterExtension
    final BlasThreads threads = BlasThreads.one();

    /** Passes its input on, keeping a copy of it and its shape at every forward (what the layer before it gave). */
    static final class Probe extends Module {
        final List<float[]> seen = new ArrayList<>();
        int[] shape;
        @Override public Var forward(Var x) {
            seen.add(x.value().toFloatArray());
            shape = x.value().shape();
            return x;
        }
    }

    static final int BN1 = 2;   // the frozen batch norm's index in model()

    /** conv, probe, BN (index 2), probe, ReLU, conv, BN, ReLU, pool, linear: the 8x8 one-channel images of CheckpointTest.tiny. */
    static Sequential model(Probe before, Probe after) {
        Rng rng = new Rng(3);
        return new Sequential(new Conv2d(1, 4, 3, 1, 1, false, Method.DENSE.config(), rng), before, new BatchNorm2d(4), after, new ReLU(),
                new Conv2d(4, 8, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(8), new ReLU(), new MaxPool2d(2), new Flatten(),
                new Linear(8 * 16, 4, true, Method.DENSE.config(), rng));
    }

    /** The fine-tuning recipe: bn1's statistics and affine parameters set far from a batch's (so the two modes differ), frozen, in eval mode. */
    static BatchNorm2d freezeBn1(Sequential m) {
        var s = m.stateDict();
        s.get(BN1 + ".running_mean").copyFrom(Tensor.of(new float[]{0.5f, -0.25f, 1f, 0f}, 4));
        s.get(BN1 + ".running_var").copyFrom(Tensor.of(new float[]{4f, 0.25f, 2f, 9f}, 4));
        s.get(BN1 + ".weight").copyFrom(Tensor.of(new float[]{1.5f, 0.5f, 2f, 1f}, 4));
        s.get(BN1 + ".bias").copyFrom(Tensor.of(new float[]{0.1f, -0.2f, 0.3f, 0f}, 4));
        assertEquals(List.of(BN1 + ".weight", BN1 + ".bias"), m.freeze(Integer.toString(BN1)));
        return ((BatchNorm2d) m.layers().get(BN1)).eval();
    }

    static Map<String, float[]> bn(Sequential m, int index) {
        Map<String, float[]> out = new LinkedHashMap<>();
        m.stateDict().forEach((k, v) -> { if (k.startsWith(index + ".")) out.put(k, v.toFloatArray()); });
        return out;
    }

    /** Every module's mode by dotted path ("" the model). */
    static Map<String, Boolean> modes(Module m) {
        Map<String, Boolean> out = new LinkedHashMap<>();
        walk("", m, out);
        return out;
    }

    private static void walk(String path, Module m, Map<String, Boolean> out) {
        out.put(path, m.isTraining());
        m.children().forEach((k, c) -> walk(path.isEmpty() ? k : path + "." + k, c, out));
    }

    /** in [B, C, H, W] through eval-mode batch norm with the frozen layer's statistics and parameters (freezeBn1's numbers). */
    static float[] evalBn(float[] in, int[] shape) {
        double[] mean = {0.5, -0.25, 1, 0}, var = {4, 0.25, 2, 9}, g = {1.5, 0.5, 2, 1}, b = {0.1, -0.2, 0.3, 0};
        int plane = shape[2] * shape[3];
        float[] y = new float[in.length];
        for (int i = 0; i < in.length; i++) {
            int c = i / plane % shape[1];
            y[i] = (float) ((in[i] - mean[c]) / Math.sqrt(var[c] + 1e-5) * g[c] + b[c]);
        }
        return y;
    }

    static void assertNormalisedWithRunningStats(Probe before, Probe after, String when) {
        assertEquals(before.seen.size(), after.seen.size());
        assertFalse(before.seen.isEmpty(), when);
        for (int f = 0; f < before.seen.size(); f++) {
            float[] want = evalBn(before.seen.get(f), before.shape), got = after.seen.get(f);
            for (int i = 0; i < want.length; i++)
                assertEquals(want[i], got[i], 1e-5 * (1 + Math.abs(want[i])), when + ", forward " + f + ", element " + i);
        }
        before.seen.clear();
        after.seen.clear();
    }

    @Test
    void aFrozenBatchNormInEvalModeKeepsItsStatisticsThroughStepsAndEvaluations() {
        TrainData data = CheckpointTest.tiny();   // 64 images, batch 16: 4 steps an epoch
        Probe before = new Probe(), after = new Probe();
        try (Sequential m = model(before, after); Trainer t = new Trainer(m, CheckpointTest.cfg(Method.DENSE), data)) {
            BatchNorm2d bn1 = freezeBn1(m);
            Map<String, float[]> frozen = bn(m, BN1), other = bn(m, 6);
            Map<String, Boolean> set = modes(m);
            assertFalse(set.get(Integer.toString(BN1)));
            assertEquals(1, set.values().stream().filter(x -> !x).count(), set.toString());
            int evaluations = 0;
            for (int i = 0; i < 10; i++) {   // across two epoch ends, each evaluated
                if (!t.epochHasNext()) {
                    Trainer.Eval e = t.evaluate();
                    evaluations++;
                    assertTrue(e.samples() > 0);
                    assertNormalisedWithRunningStats(before, after, "evaluate " + evaluations);
                    assertEquals(set, modes(m), "after evaluate " + evaluations);
                    t.endEpoch();
                }
                t.trainStep();
                assertFalse(bn1.isTraining(), "step " + i);
                assertEquals(set, modes(m), "after step " + i);
                assertNormalisedWithRunningStats(before, after, "step " + i);
                Map<String, float[]> now = bn(m, BN1);
                String when = " after step " + i;
                frozen.forEach((k, v) -> assertArrayEquals(v, now.get(k), k + when));
            }
            assertEquals(2, evaluations);
            // the trainer did train: the other batch norm's statistics and the first conv moved
            Map<String, float[]> trained = bn(m, 6);
            assertFalse(java.util.Arrays.equals(other.get("6.running_mean"), trained.get("6.running_mean")), "the unfrozen batch norm trains");
        }
    }

    /**
     * evaluate() runs every module in eval mode and hands each back in its own mode: a mix of nested modes (an eval block
     * with a training child, a training block with an eval child, a dropout off) comes back exactly, also when a forward
     * throws half way. The built-in models are built in training mode and stay so.
     */
    @Test
    void evaluateRestoresMixedModesExactly() {
        TrainData data = CheckpointTest.tiny();
        Rng rng = new Rng(5);
        List<Boolean> seenTraining = new ArrayList<>();
        boolean[] fail = {false};
        Module[] root = {null};
        Module check = new Module() {   // records whether every module is in eval mode during the forward, or throws
            @Override public Var forward(Var x) {
                if (fail[0] && !isTraining()) throw new IllegalStateException("a forward that fails");
                seenTraining.add(modes(root[0]).containsValue(true));
                return x;
            }
        };
        try (Sequential m = new Sequential(new Conv2d(1, 4, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(4), new ReLU(),
                new BasicBlock(4, 4, 1, Method.DENSE, rng, 1), new BasicBlock(4, 8, 2, Method.DENSE, rng, 2), check, new Dropout(0.5, rng),
                new MaxPool2d(2), new Flatten(), new Linear(8 * 4, 4, true, Method.DENSE.config(), rng));
             Trainer t = new Trainer(m, CheckpointTest.cfg(Method.DENSE), data)) {
            root[0] = m;
            m.submodule("3").eval();
            m.submodule("3.conv2").train();    // an eval block with a training child
            m.submodule("4.bn1").eval();       // a training block with an eval child
            m.submodule("4.downsample").eval();
            m.submodule("6").eval();           // dropout off
            Map<String, Boolean> set = modes(m);
            assertTrue(set.containsValue(true) && set.containsValue(false) && set.get("3.conv2") && !set.get("3"), set.toString());
            t.trainStep();
            assertEquals(set, modes(m), "a step changes no mode");
            seenTraining.clear();
            t.evaluate();
            assertFalse(seenTraining.isEmpty());
            assertFalse(seenTraining.contains(true), "every module in eval mode during evaluate");
            assertEquals(set, modes(m), "each module back in its own mode");
            fail[0] = true;
            assertThrows(IllegalStateException.class, t::evaluate);
            assertEquals(set, modes(m), "also after a forward that threw");
        }
        try (Trainer t = new Trainer(CheckpointTest.cfg(Method.DENSE), data)) {
            assertFalse(modes(t.model()).containsValue(false), "a built-in model is built in training mode");
            t.trainStep();
            t.evaluate();
            assertFalse(modes(t.model()).containsValue(false), "and trains in it");
        }
    }

    /**
     * Checkpoints hold no modes (as torch's state_dict): a run with a frozen batch norm, resumed into a model set up the
     * same way, continues bit for bit; nothing on the way (Trainer.load, Checkpoint.load) puts the layer in training mode.
     */
    @Test
    void aRunWithAFrozenBatchNormResumesExactly(@TempDir Path dir) throws Exception {
        TrainData data = CheckpointTest.tiny();
        TrainConfig cfg = CheckpointTest.cfg(Method.DENSE);
        Path ckpt = dir.resolve("frozen.safetensors");
        try (Sequential ms = model(new Probe(), new Probe()); Sequential mf = model(new Probe(), new Probe());
             Trainer straight = new Trainer(ms, cfg, data); Trainer first = new Trainer(mf, cfg, data)) {
            freezeBn1(ms);
            freezeBn1(mf);
            Map<String, float[]> frozen = bn(ms, BN1);
            CheckpointTest.run(straight, 10);
            CheckpointTest.run(first, 5);
            first.save(ckpt);
            Probe before = new Probe(), after = new Probe();
            try (Sequential mr = model(before, after); Trainer resumed = new Trainer(mr, Trainer.readConfig(ckpt), data)) {
                freezeBn1(mr);
                Map<String, Boolean> set = modes(mr);
                resumed.load(ckpt);
                assertEquals(set, modes(mr), "load changes no mode");
                CheckpointTest.run(resumed, 5);
                assertNormalisedWithRunningStats(before, after, "the resumed steps");
                CheckpointTest.assertSameState(straight, resumed);
                assertEquals(straight.evaluate(), resumed.evaluate());
                Map<String, float[]> now = bn(mr, BN1);
                frozen.forEach((k, v) -> assertArrayEquals(v, now.get(k), k));
            }
        }
    }
}
