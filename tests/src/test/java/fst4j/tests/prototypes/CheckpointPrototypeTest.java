package fst4j.tests.prototypes;

import fst4j.autograd.Grad;
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
import fst4j.nn.io.SafeTensors;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Prototype 4: a model of one's own saved to safetensors and loaded into a fresh one (outputs bit-identical), and
 * training resumed from the checkpoint with the optimizer's momentum and the loader's position: the same weights,
 * bit for bit, as training on without a stop.
 */
class CheckpointPrototypeTest {

    static Sequential model(long seed) {
        Rng rng = new Rng(seed);
        return new Sequential(
                new Conv2d(1, 8, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(8), new ReLU(),
                new Conv2d(8, 16, 3, 1, 1, false, Method.FST3_IR.config(), rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Flatten(), new Linear(16 * 6 * 6, 4, true, Method.FST2.config(), rng));
    }

    static void step(Module model, SGD opt, DataLoader loader) {
        try (Scope s = Scope.open()) {
            var b = loader.next();
            NN.crossEntropy(model.forward(Var.of(b.images())), b.labels(), 0.1).backward();
            SrSte.stepWithDecay(model, opt, SrSte.DEFAULT_LAMBDA);
            opt.zeroGrad();
        }
    }

    static DataLoader loader() {
        return DataLoader.builder(CustomModelTrainingPrototypeTest.quadrants(3)).batchSize(32).shuffle(true).seed(9).build();
    }

    static float[] evalOutput(Module m, Tensor x) {
        m.eval();
        try (Grad.Restore g = Grad.noGrad(); Scope s = Scope.open()) {
            return m.forward(Var.of(x.alias())).value().toFloatArray();
        } finally {
            m.train(true);
        }
    }

    @Test
    void saveLoadIsBitIdenticalAndResumeContinuesExactly(@TempDir Path dir) throws Exception {
        long before = Memory.bytesInUse();
        Path file = dir.resolve("ckpt.safetensors");
        DataLoader la = loader(), lb = loader();
        try (Scope outer = Scope.open(); Sequential a = model(0); Sequential b = model(1);
             SGD oa = new SGD(a.parameters(), 0.05, 0.9, 5e-4, false)) {
            Tensor probe = new Rng(4).normal(0, 1, 3, 1, 12, 12);
            for (int i = 0; i < 3; i++) step(a, oa, la);

            // ---- save: the model's state dict, SGD's momentum buffers and step count, the loader's position
            Map<String, Tensor> tensors = new LinkedHashMap<>();
            a.stateDict().forEach((k, v) -> tensors.put("model." + k, v));
            for (int i = 0; i < oa.params().size(); i++)
                if (oa.momentumBuffer(i) != null) tensors.put("momentum." + i, oa.momentumBuffer(i));
            SafeTensors.write(file, tensors, Map.of("opt_steps", new long[]{oa.steps()}, "loader", la.state().toLongs()), Map.of());

            // ---- load into a fresh model: the same outputs, bit for bit
            try (SGD ob = new SGD(b.parameters(), 0.05, 0.9, 5e-4, false)) {
                try (SafeTensors.Contents c = SafeTensors.read(file)) {
                    Map<String, Tensor> state = new LinkedHashMap<>();
                    Map<Integer, Tensor> momentum = new HashMap<>();
                    c.tensors().forEach((k, v) -> {
                        if (k.startsWith("model.")) state.put(k.substring(6), v);
                        else momentum.put(Integer.parseInt(k.substring("momentum.".length())), v);
                    });
                    b.loadStateDict(state);
                    ob.restore(c.int64("opt_steps")[0], momentum);
                    lb.restore(DataLoader.State.fromLongs(c.int64("loader")));
                }
                assertArrayEquals(evalOutput(a, probe), evalOutput(b, probe), "eval outputs after load");

                // ---- resume: three more steps each, the same weights and running statistics bit for bit
                for (int i = 0; i < 3; i++) { step(a, oa, la); step(b, ob, lb); }
                Map<String, Tensor> sa = a.stateDict(), sb = b.stateDict();
                for (String k : sa.keySet())
                    assertArrayEquals(sa.get(k).toFloatArray(), sb.get(k).toFloatArray(), k + " after resuming");
                assertArrayEquals(evalOutput(a, probe), evalOutput(b, probe));
            }
        }
        assertEquals(before, Memory.bytesInUse());
    }

    /** A model whose layers prune with state: the authors' random X^T patterns in a conv, TSM's cached mask in the classifier. */
    static Sequential statefulModel() {
        Rng rng = new Rng(5);
        return new Sequential(
                new Conv2d(1, 8, 3, 1, 1, false, Method.DENSE.config(), rng), new BatchNorm2d(8), new ReLU(),
                new Conv2d(8, 16, 3, 1, 1, false, Method.FST3_IR_PATTERNS.config(11), rng), new BatchNorm2d(16), new ReLU(), new MaxPool2d(2),
                new Flatten(), new Linear(16 * 6 * 6, 4, true, Method.TSM.config(), rng));
    }

    /** Weights after 3 steps, a checkpoint, and 3 more: straight on, or resumed in a fresh model with or without the rules' states. */
    static Map<String, float[]> resumed(Path file, boolean straight, boolean withRuleStates) throws Exception {
        DataLoader l = loader();
        try (Sequential m = statefulModel(); SGD o = new SGD(m.parameters(), 0.05, 0.9, 5e-4, false)) {
            if (straight) {
                for (int i = 0; i < 6; i++) step(m, o, l);
            } else {
                for (int i = 0; i < 3; i++) step(m, o, l);
                Map<String, long[]> longs = new LinkedHashMap<>();
                fst4j.nn.Models.statefulSparsifiers(m).forEach((k, st) -> longs.put("sparsity." + k, st.exportState()));
                Map<String, Tensor> tensors = new LinkedHashMap<>(m.stateDict());
                for (int i = 0; i < o.params().size(); i++) tensors.put("momentum." + i, o.momentumBuffer(i));
                SafeTensors.write(file, tensors, longs, Map.of());
                try (Sequential fresh = statefulModel(); SGD of = new SGD(fresh.parameters(), 0.05, 0.9, 5e-4, false);
                     SafeTensors.Contents c = SafeTensors.read(file)) {
                    Map<String, Tensor> state = new LinkedHashMap<>();
                    Map<Integer, Tensor> momentum = new HashMap<>();
                    c.tensors().forEach((k, v) -> {
                        if (k.startsWith("momentum.")) momentum.put(Integer.parseInt(k.substring(9)), v);
                        else state.put(k, v);
                    });
                    fresh.loadStateDict(state);
                    of.restore(3, momentum);
                    if (withRuleStates) fst4j.nn.Models.statefulSparsifiers(fresh).forEach((k, st) -> st.importState(c.int64("sparsity." + k)));
                    for (int i = 0; i < 3; i++) step(fresh, of, l);
                    return floats(fresh);
                }
            }
            return floats(m);
        }
    }

    static Map<String, float[]> floats(Module m) {
        Map<String, float[]> out = new LinkedHashMap<>();
        m.stateDict().forEach((k, v) -> out.put(k, v.toFloatArray()));
        return out;
    }

    @Test
    void resumingLayersThatPruneWithStateNeedsTheirStates(@TempDir Path dir) throws Exception {
        long before = Memory.bytesInUse();
        try (Sequential m = statefulModel()) {
            assertEquals(java.util.List.of("3.xt", "8.w"), java.util.List.copyOf(fst4j.nn.Models.statefulSparsifiers(m).keySet()));
        }
        Map<String, float[]> straight = resumed(dir.resolve("a"), true, false);
        Map<String, float[]> exact = resumed(dir.resolve("b"), false, true);
        for (String k : straight.keySet()) assertArrayEquals(straight.get(k), exact.get(k), k);
        Map<String, float[]> without = resumed(dir.resolve("c"), false, false);
        assertFalse(straight.keySet().stream().allMatch(k -> java.util.Arrays.equals(straight.get(k), without.get(k))),
                "without the rules' states the resumed run prunes otherwise");
        assertEquals(before, Memory.bytesInUse());
    }
}
