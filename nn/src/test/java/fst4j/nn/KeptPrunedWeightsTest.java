package fst4j.nn;

import fst4j.autograd.ConvParams;
import fst4j.autograd.Gemm3;
import fst4j.autograd.Grad;
import fst4j.autograd.Layers;
import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.nn.train.Checkpoint;
import fst4j.sparse.NM;
import fst4j.sparse.Sparsifier;
import fst4j.sparse.Transposable24;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The S(W) an Eq. 1-3 layer keeps for forwards that need no gradient of W (Gemm3's kept operand, what torch's
 * to_sparse_semi_structured gives a deployed 2:4 model): an eval-mode forward prunes and compresses each layer's W once
 * and then reuses it, with the bits of a forward that prunes every time; an optimizer step or any in-place write through
 * the public API (copyFrom, a state dict or checkpoint load, set, fill, markModified) rebuilds it; a forward that takes
 * W's gradient keeps nothing; stateful rules (TSM), ASP's frozen mask and rules of one's own are never kept; four
 * threads sharing one eval-mode model build each layer's once and get the single thread's bits, with no off-heap growth.
 */
class KeptPrunedWeightsTest {
    private boolean cacheWas;

    @BeforeEach void on() { cacheWas = Gemm3.setEvalCache(true); }
    @AfterEach void restore() { Gemm3.setEvalCache(cacheWas); }

    /** The nodes of m's layers whose S(W) can be kept (a W rule that reads only W's values), in model order. */
    static List<Gemm3> keptNodes(Module m) {
        List<Gemm3> out = new ArrayList<>();
        for (Sparse l : Models.sparseLayers(m).values()) {
            Gemm3 n = ((NodeLayer) l).node();
            if (n.keepsPrunedW()) out.add(n);
        }
        return out;
    }

    static long[] preparations(List<Gemm3> nodes) { return nodes.stream().mapToLong(Gemm3::weightPreparations).toArray(); }

    static long[] plus(long[] a, long d) {
        long[] r = a.clone();
        for (int i = 0; i < r.length; i++) r[i] += d;
        return r;
    }

    /** One forward without a graph, its output copied out and everything it made freed. */
    static float[] noGrad(Module m, Tensor x) {
        try (Grad.Restore g = Grad.noGrad(); Scope s = Scope.open()) { return m.forward(Var.of(x.alias())).value().toFloatArray(); }
    }

    /** f with the kept S(W) switched off (every forward prunes), the switch put back after. */
    static <T> T uncached(Supplier<T> f) {
        boolean was = Gemm3.setEvalCache(false);
        try { return f.get(); } finally { Gemm3.setEvalCache(was); }
    }

    /** The models each case runs: a ResNet (blocked convolutions, the dense product of S(W) at stride 2), an MLP, grouped and whole-batch convolutions. */
    private static List<Supplier<Sequential>> models(SparseConfig.Method method, NM nm) {
        Supplier<SparseConfig> cfg = () -> method.config(7, nm);
        return List.of(
                () -> Models.resnetSmall(1, 10, method, 3),
                () -> new Sequential(new Flatten(), new Linear(16, 32, true, cfg.get(), new Rng(1)), new ReLU(), new Linear(32, 16, false, cfg.get(), new Rng(2))),
                () -> new Sequential(new Conv2d(4, 8, new int[]{3, 3}, ConvParams.of(1, 1, 1, 2), false, cfg.get(), new Rng(4)), new ReLU(),
                        new Conv2d(8, 8, new int[]{3, 1}, ConvParams.of(new int[]{1, 2}, new int[]{1, 0}, new int[]{1, 1}, 1), true, cfg.get(), new Rng(5))));
    }

    private static Tensor inputFor(int model) {
        Rng r = new Rng(20 + model);
        return switch (model) {
            case 0 -> r.normal(0, 1, 2, 1, 8, 8);
            case 1 -> r.normal(0, 1, 3, 16);
            default -> r.normal(0, 1, 2, 4, 6, 6);
        };
    }

    // ---------------------------------------------------------------- (a) one prune per layer, the same bits

    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"SR_STE", "WG", "FST2", "FST3_IR", "FST_CODE"})
    void anEvalForwardPrunesEachLayerOnceWithTheBitsOfAForwardThatPrunesEveryTime(Method method) {
        for (boolean blocked : new boolean[]{true, false}) {
            boolean blockedWas = Layers.blocked;
            Layers.blocked = blocked;   // false: the whole-batch convolution (Eq. 1 through Gemm3.forward)
            try {
                onePrunePerLayer(method, new NM(2, 4));
            } finally {
                Layers.blocked = blockedWas;
            }
        }
    }

    @Test
    void nMWeightsAreKeptToo() { onePrunePerLayer(Method.FST2, new NM(1, 4)); }

    private static void onePrunePerLayer(Method method, NM nm) {
        List<Supplier<Sequential>> ms = models(method, nm);
        for (int i = 0; i < ms.size(); i++) {
            try (Scope s = Scope.open(); Sequential every = ms.get(i).get(); Sequential kept = ms.get(i).get()) {
                every.eval();
                kept.eval();
                Tensor x = inputFor(i);
                String what = method + " " + nm + " model " + i;
                float[] want = uncached(() -> noGrad(every, x));
                assertArrayEquals(want, uncached(() -> noGrad(every, x)), what + ": pruning every time is deterministic");
                List<Gemm3> pruned = keptNodes(every), nodes = keptNodes(kept);
                assertFalse(nodes.isEmpty(), what + " has layers that keep S(W)");
                for (Gemm3 n : pruned) {
                    assertEquals(2, n.weightPreparations(), what + ": switched off, each forward prunes");
                    assertFalse(n.evalCacheHolds(), what + ": switched off, nothing is kept");
                }
                for (int call = 0; call < 3; call++) assertArrayEquals(want, noGrad(kept, x), what + ", call " + call + ": the uncached bits");
                for (Gemm3 n : nodes) {
                    assertEquals(1, n.weightPreparations(), what + ": W pruned once for three forwards");
                    assertEquals(2, n.evalCacheHits(), what + ": the later two reused it");
                    assertTrue(n.evalCacheHolds());
                }
            }
        }
    }

    // ---------------------------------------------------------------- which forwards keep it

    @Test
    void onlyForwardsThatNeedNoGradientOfWKeepItAndOneThatDoesLetsItGo() {
        for (Method method : new Method[]{Method.FST2, Method.FST_CODE}) {   // FST_CODE: Eq. 2 takes W^T from the kept S(W)
            try (Scope s = Scope.open(); Sequential m = Models.resnetSmall(1, 10, method, 3); Sequential ref = Models.resnetSmall(1, 10, method, 3)) {
                Tensor x = inputFor(0);
                List<Gemm3> nodes = keptNodes(m);
                // train mode under no_grad: kept
                long none = Memory.bytesInUse();
                noGrad(m, x);
                noGrad(m, x);
                assertArrayEquals(plus(new long[nodes.size()], 1), preparations(nodes), method + ": train mode without grad keeps S(W)");
                assertTrue(Memory.bytesInUse() > none, method + ": what is kept is off-heap memory");

                // eval mode recording a graph, W requiring its gradient: nothing kept, and what was kept let go
                m.eval();
                try (Scope step = Scope.open()) { m.forward(Var.of(x.alias())).sum().backward(); }
                for (Gemm3 n : nodes) assertFalse(n.evalCacheHolds(), method + ": a forward that takes W's gradient keeps nothing");
                m.parameters().forEach(Var::zeroGrad);
                assertEquals(none, Memory.bytesInUse(), method + ": and frees what was kept (no memory kept in training)");
                assertArrayEquals(plus(new long[nodes.size()], 2), preparations(nodes));

                // W frozen, the input's gradient wanted: kept, and the input gradient (Eq. 2, W^T from the kept S(W) in
                // FST_CODE) the bits of the layer that prunes every time
                m.requiresGrad(false);
                ref.loadStateDict(m.stateDict());   // batch norm's statistics, which the train-mode forwards moved
                ref.eval().requiresGrad(false);
                for (int call = 0; call < 2; call++) {
                    float[] got = inputGradient(m, x), want = uncached(() -> inputGradient(ref, x));
                    assertArrayEquals(want, got, method + ", call " + call + ": dX with W frozen");
                }
                assertArrayEquals(plus(new long[nodes.size()], 3), preparations(nodes), method + ": a frozen W is pruned once");
            }
        }
    }

    private static float[] inputGradient(Module m, Tensor x) {
        try (Scope s = Scope.open()) {
            Var xv = Var.param(x.copy());
            m.forward(xv).square().sum().backward();
            return xv.grad().toFloatArray();
        }
    }

    // ---------------------------------------------------------------- (b) an optimizer step rebuilds it

    @Test
    void afterAnOptimizerStepEvalRebuildsItWithAFreshModelsBits() {
        for (String opt : List.of("sgd", "sgd+sr-ste", "adamw")) {
            List<Supplier<Sequential>> ms = models(Method.FST3_IR, new NM(2, 4));
            for (int i = 0; i < 2; i++) {   // the ResNet (native updates) and the MLP (512-float weights: SGD's Java loop)
                for (boolean evalBeforeStep : new boolean[]{false, true}) {
                    try (Scope s = Scope.open(); Sequential m = ms.get(i).get(); Sequential fresh = ms.get(i).get()) {
                        String what = opt + " model " + i + (evalBeforeStep ? ", an eval forward between backward and the step" : "");
                        Tensor x = inputFor(i);
                        List<Gemm3> nodes = keptNodes(m);
                        m.eval();
                        noGrad(m, x);
                        long[] before = preparations(nodes);
                        int[] versions = nodes.stream().mapToInt(n -> weightOf(m, n).version()).toArray();
                        m.train();
                        try (Scope step = Scope.open(); Optimizer o = optimizer(opt, m)) {
                            Var y = m.forward(Var.of(x.alias()));
                            for (Gemm3 n : nodes) assertFalse(n.evalCacheHolds(), what + ": nothing kept in training");
                            NN.crossEntropy(y, i == 0 ? new int[]{3, 1} : new int[]{3, 1, 4}, 0).backward();
                            if (evalBeforeStep) {
                                // a validation forward after backward keeps S(W) of the W the step is about to change: only
                                // the version tells the next forward that it no longer holds
                                m.eval();
                                noGrad(m, x);
                                for (Gemm3 n : nodes) assertTrue(n.evalCacheHolds());
                                m.train();
                            }
                            if (opt.equals("sgd+sr-ste")) SrSte.stepWithDecay(m, o, 2e-4);
                            else o.step();
                        }
                        for (int k = 0; k < nodes.size(); k++)
                            assertNotEquals(versions[k], weightOf(m, nodes.get(k)).version(), what + ": the step moved W's version");
                        m.eval();
                        float[] got = noGrad(m, x);
                        int rebuilt = evalBeforeStep ? 3 : 2;
                        assertArrayEquals(plus(before, rebuilt), preparations(nodes), what + ": the training forward, " + (evalBeforeStep ? "the validation, " : "")
                                + "and one rebuild");
                        assertArrayEquals(got, noGrad(m, x));
                        assertArrayEquals(plus(before, rebuilt), preparations(nodes), what + ": then reused");
                        fresh.loadStateDict(m.stateDict());
                        fresh.eval();
                        assertArrayEquals(uncached(() -> noGrad(fresh, x)), got, what + ": a fresh model with the stepped weights");
                    }
                }
            }
        }
    }

    private static Optimizer optimizer(String name, Module m) {
        return name.equals("adamw") ? new AdamW(m.parameters(), 1e-2, 0.9, 0.999, 1e-8, 1e-2, false) : new SGD(m.parameters(), 0.1, 0.9, 5e-4, false);
    }

    /** The weight of the layer whose node is n. */
    private static Tensor weightOf(Module m, Gemm3 n) {
        for (Sparse l : Models.sparseLayers(m).values()) if (((NodeLayer) l).node() == n) return l.weight().value();
        throw new AssertionError("no layer has that node");
    }

    // ---------------------------------------------------------------- (c) an in-place write through the public API rebuilds it

    @Test
    void anInPlaceChangeOfWThroughThePublicApiRebuildsIt(@TempDir Path dir) throws Exception {
        Map<String, Consumer<Sequential>> changes = new java.util.LinkedHashMap<>();
        changes.put("copyFrom", m -> { Tensor w = firstKeptWeight(m); try (Tensor n = new Rng(40).normal(0, 1, w.shape())) { w.copyFrom(n); } });
        changes.put("set", m -> { Tensor w = firstKeptWeight(m); w.set(3.0, 0, 0, 0, 0); });
        changes.put("fill", m -> firstKeptWeight(m).fill(0.25));
        changes.put("data() + markModified", m -> {
            Tensor w = firstKeptWeight(m);
            w.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 1, -7f);
            w.markModified();
        });
        changes.put("loadStateDict", m -> { try (Sequential other = Models.resnetSmall(1, 10, Method.FST3_IR, 41)) { m.loadStateDict(other.stateDict()); } });
        changes.put("checkpoint load", m -> {
            Path file = dir.resolve("other.safetensors");
            try (Sequential other = Models.resnetSmall(1, 10, Method.FST3_IR, 42)) {
                Checkpoint.of(other).save(file, 0);
                Checkpoint.of(m).load(file);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        for (var c : changes.entrySet()) {
            try (Scope s = Scope.open(); Sequential m = Models.resnetSmall(1, 10, Method.FST3_IR, 3); Sequential fresh = Models.resnetSmall(1, 10, Method.FST3_IR, 3)) {
                m.eval();
                fresh.eval();
                Tensor x = inputFor(0);
                float[] old = noGrad(m, x);
                List<Gemm3> nodes = keptNodes(m);
                long first = nodes.get(0).weightPreparations();
                c.getValue().accept(m);
                float[] got = noGrad(m, x);
                assertEquals(first + 1, nodes.get(0).weightPreparations(), c.getKey() + ": the changed W is pruned again");
                fresh.loadStateDict(m.stateDict());
                assertArrayEquals(uncached(() -> noGrad(fresh, x)), got, c.getKey() + ": the output of a fresh model with the changed weights");
                assertFalse(java.util.Arrays.equals(old, got), c.getKey() + ": the change shows (the test can tell)");
            }
        }
    }

    private static Tensor firstKeptWeight(Sequential m) { return weightOf(m, keptNodes(m).get(0)); }

    // ---------------------------------------------------------------- (d) what is never kept

    @Test
    void statefulRulesAspsFrozenMaskAndRulesOfOnesOwnAreNeverKept() {
        try (Scope s = Scope.open(); Sequential tsm = Models.resnetSmall(1, 10, Method.TSM, 3); Sequential asp = Models.resnetSmall(1, 10, Method.ASP, 3);
             Sequential custom = Models.resnetSmall(1, 10, Method.DENSE, 3)) {
            Asp.prune(asp);
            Sparsifier odd = Sparsifier.Custom.of("odd 2:4", 1, true, (v, shape) -> {
                boolean[] keep = new boolean[v.length];
                for (int i = 0; i < v.length; i++) keep[i] = i % shape[shape.length - 1] % 2 == 1;
                return keep;
            });
            for (String layer : Models.sparseLayers(custom).keySet()) Models.override(custom, layer, Method.FST2.config().withW(odd));
            Tensor x = inputFor(0);
            for (Sequential m : List.of(tsm, asp, custom)) {
                m.eval();
                List<Gemm3> nodes = Models.sparseLayers(m).values().stream().map(l -> ((NodeLayer) l).node()).toList();
                long[] before = preparations(nodes);
                float[] first = noGrad(m, x);
                for (int call = 0; call < 2; call++) assertArrayEquals(first, noGrad(m, x));
                for (int k = 0; k < nodes.size(); k++) {
                    Gemm3 n = nodes.get(k);
                    assertFalse(n.keepsPrunedW(), n.config().name() + " (" + n.config().w() + ") is not kept");
                    assertFalse(n.evalCacheHolds());
                    assertEquals(before[k] + 3, n.weightPreparations(), n.config().w() + ": pruned on every forward");
                }
            }
            for (Sparse l : Models.sparseLayers(tsm).values())
                if (l.sparsity().w() instanceof Transposable24 t)
                    assertEquals(0, t.steps(), "TSM counts training steps only: forwards that do not train W count none (TsmEvalTest)");
        }
    }

    // ---------------------------------------------------------------- (e) four threads on one eval-mode model

    /** 150 rounds of four threads asking at once for a W just let go: built once per round, under the layer's lock. */
    @Test
    void fourThreadsAskingAtOnceForAWNotKeptBuildItOnce() throws InterruptedException {
        try (Scope s = Scope.open(); Sequential m = new Sequential(new Linear(256, 256, false, Method.FST2.config(), new Rng(8))).eval()) {
            Tensor x = new Rng(9).normal(0, 1, 2, 256);
            Gemm3 node = keptNodes(m).get(0);
            float[] want = uncached(() -> noGrad(m, x));
            for (int round = 0; round < 150; round++) {
                node.dropEvalCache();
                long before = node.weightPreparations();
                int r = round;
                SharedModuleThreadsTest.onThreads(t -> assertArrayEquals(want, noGrad(m, x), "round " + r + ", thread " + t));
                assertEquals(before + 1, node.weightPreparations(), "round " + round + ": four threads, one build");
            }
        }
    }

    @Test
    void fourThreadsShareOneKeptWPerLayerWithTheSingleThreadBitsAndNoGrowth() throws InterruptedException {
        long baseline = Memory.bytesInUse();
        Sequential m = Models.resnetSmall(1, 10, Method.FST3_IR, 3).eval();
        Sequential mlp = new Sequential(new Flatten(), new Linear(16, 32, true, Method.FST3_IR.config(1), new Rng(1)), new ReLU(),
                new Linear(32, 16, false, Method.FST2.config(2), new Rng(2))).eval();
        int n = 3;
        Tensor[] images = new Tensor[n], rows = new Tensor[n];
        for (int k = 0; k < n; k++) {
            Rng r = new Rng(60 + k);
            images[k] = Scope.within(null, () -> r.normal(0, 1, 2, 1, 8, 8));
            rows[k] = Scope.within(null, () -> r.normal(0, 1, 3, 16));
        }
        float[][][] want = new float[2][n][];
        // the single thread's bits, from twins (same seeds) that prune every time: the shared models' kept S(W) are
        // then built by the four threads asking at once
        try (Sequential twin = Models.resnetSmall(1, 10, Method.FST3_IR, 3).eval();
             Sequential mlpTwin = new Sequential(new Flatten(), new Linear(16, 32, true, Method.FST3_IR.config(1), new Rng(1)), new ReLU(),
                     new Linear(32, 16, false, Method.FST2.config(2), new Rng(2))).eval()) {
            for (int k = 0; k < n; k++) {
                int kk = k;
                want[0][k] = uncached(() -> noGrad(twin, images[kk]));
                want[1][k] = uncached(() -> noGrad(mlpTwin, rows[kk]));
            }
        }
        List<Gemm3> nodes = new ArrayList<>(keptNodes(m));
        nodes.addAll(keptNodes(mlp));
        int iterations = 150;
        for (int round = 0; round < 2; round++) {
            long before = Memory.bytesInUse();
            int r = round;
            SharedModuleThreadsTest.onThreads(t -> {
                for (int i = 0; i < iterations; i++) {
                    int kind = (i + t) % 2, k = (i / 2 + t) % n;
                    float[] got = kind == 0 ? noGrad(m, images[k]) : noGrad(mlp, rows[k]);
                    assertArrayEquals(want[kind][k], got, "round " + r + ", thread " + t + ", call " + i + ": model " + kind + ", input " + k);
                }
            });
            for (Gemm3 g : nodes) {
                assertEquals(1, g.weightPreparations(), "round " + round + ": one prune per layer for " + (round + 1) * 4 * iterations + " forwards");
                assertTrue(g.evalCacheHolds());
            }
            if (round == 1) assertEquals(before, Memory.bytesInUse(), "a second round of " + 4 * iterations + " forwards grows nothing off-heap");
        }
        m.close();
        mlp.close();
        for (Gemm3 g : nodes) assertFalse(g.evalCacheHolds(), "the module's close lets its kept S(W) go");
        for (Tensor t : images) t.close();
        for (Tensor t : rows) t.close();
        assertEquals(baseline, Memory.bytesInUse(), "everything freed: the kept S(W) with the modules");
    }
}
