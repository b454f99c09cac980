package fst4j.nn;

import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** Edges a PyTorch user meets first (found by a usability trial of the library): each as torch behaves, or refused by name. */
class UsabilityEdgesTest {
    @Test
    void tensorIndexingAndShapesAsTorch() {
        try (Scope s = Scope.open()) {
            Tensor t = Tensor.arange(6).reshape(2, 3);
            assertEquals(5f, t.get(-1, -1));          // t[-1, -1]
            assertEquals(3f, t.get(-1, 0));
            assertEquals(2f, t.get(0, -1));
            assertThrows(IndexOutOfBoundsException.class, () -> t.get(-3, 0));
            assertThrows(IndexOutOfBoundsException.class, () -> t.get(2, 0));
            t.set(9, -1, -2);
            assertEquals(9f, t.get(1, 1));
            // squeeze(dim) of an axis whose size is not 1 keeps the shape, as torch's (Var.squeeze already did)
            assertArrayEquals(new int[]{2, 3}, t.squeeze(0).shape());
            assertArrayEquals(new int[]{3}, t.slice(0, 0, 1).squeeze(0).shape());
            assertArrayEquals(t.squeeze(0).shape(), Var.of(t).squeeze(0).shape());
            // expand with -1 keeps an axis's size
            Tensor col = Tensor.arange(2).reshape(2, 1);
            Tensor e = col.expand(-1, 4);
            assertArrayEquals(new int[]{2, 4}, e.shape());
            assertEquals(1f, e.get(1, 3));
            assertArrayEquals(new int[]{3, 2, 4}, col.expand(3, -1, 4).shape());
            assertArrayEquals(new int[]{2, 4}, Var.of(col).expand(-1, 4).shape());
            assertThrows(IllegalArgumentException.class, () -> col.expand(-1, -1, 4), "-1 for a new leading axis");
        }
    }

    @Test
    void aStateDictOfAnotherArchitectureIsRefusedWithEveryDifference() {
        Rng rng = new Rng(3);
        try (Sequential a = new Sequential(new Linear(4, 3, true, Method.DENSE.config(), rng), new ReLU(), new Linear(3, 2, true, Method.DENSE.config(), rng));
             Sequential b = new Sequential(new Linear(5, 3, false, Method.DENSE.config(), rng), new ReLU(), new Linear(3, 2, true, Method.DENSE.config(), rng),
                     new ReLU(), new Linear(2, 2, true, Method.DENSE.config(), rng))) {
            Map<String, Tensor> state = b.stateDict();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> a.loadStateDict(state));
            assertEquals("state dict is missing 0.bias; unexpected key(s) in state dict: 4.weight, 4.bias; shape mismatch for 0.weight: [3, 5] vs [3, 4]",
                    e.getMessage());
        }
    }

    @Test
    void anOptimizerOverAClosedModelRefusesToStep() {
        Rng rng = new Rng(4);
        Linear l = new Linear(4, 2, true, Method.DENSE.config(), rng);
        try (SGD sgd = new SGD(l.parameters(), 0.1, 0.9, 0, false); AdamW adam = new AdamW(l.parameters(), 1e-3, 0.01)) {
            l.close();
            try (Scope s = Scope.open()) {
                IllegalStateException f = assertThrows(IllegalStateException.class, () -> l.forward(Var.of(Tensor.ones(1, 4))));
                assertEquals("Linear(in_features=4, out_features=2, bias=true, sparsity=" + Method.DENSE.config().name()
                        + ") is closed: its parameters were freed by close()", f.getMessage());
            }
            IllegalStateException e = assertThrows(IllegalStateException.class, sgd::step);
            assertEquals("SGD: parameter 0 is closed (was its module closed?); an optimizer steps open parameters only", e.getMessage());
            e = assertThrows(IllegalStateException.class, adam::step);
            assertTrue(e.getMessage().startsWith("AdamW: parameter 0 is closed"), e.getMessage());
        }
    }

    @Test
    void batchNorm1dNamesTheShapeItWasGiven() {
        try (Scope s = Scope.open(); BatchNorm1d bn = new BatchNorm1d(3)) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bn.forward(Var.of(Tensor.ones(1, 3))));
            assertTrue(e.getMessage().startsWith("batchNorm1d: expected more than 1 value per channel when training, got input [1, 3]"), e.getMessage());
            assertArrayEquals(new int[]{1, 3}, bn.eval().forward(Var.of(Tensor.ones(1, 3))).shape(), "eval mode normalises one value");
        }
    }

    @Test
    void modulesPrintTheirArchitectureAsTorchDoes() {
        Rng rng = new Rng(5);
        try (Sequential m = new Sequential(new Conv2d(1, 8, 3, 1, 1, false, Method.FST3_IR.config(), rng), new BatchNorm2d(8), new ReLU(),
                new MaxPool2d(2), new Flatten(), new Linear(8 * 4 * 4, 3, true, Method.DENSE.config(), rng))) {
            assertEquals("""
                    Sequential(
                      (0): Conv2d(1, 8, kernel_size=3x3, stride=1, padding=1, bias=false, sparsity=%s)
                      (1): BatchNorm2d(8, eps=1.0E-5, momentum=0.1)
                      (2): ReLU()
                      (3): MaxPool2d(kernel_size=2, stride=2, padding=0)
                      (4): Flatten()
                      (5): Linear(in_features=128, out_features=3, bias=true, sparsity=%s)
                    )""".formatted(Method.FST3_IR.config().name(), Method.DENSE.config().name()), m.toString());
            String g = new ParamGroup("all", m.parameters(), 1.0, 5e-4).toString();
            assertEquals("ParamGroup[name=all, 5 parameters (" + m.parameterCount() + " values), lrScale=1.0, weightDecay=5.0E-4]", g);
        }
    }

    @Test
    void aModuleUsedTwiceIsOneParameterToTheOptimizer() {
        Rng rng = new Rng(6);
        Linear shared = new Linear(4, 4, false, Method.DENSE.config(), rng);
        try (Scope s = Scope.open(); Sequential m = new Sequential(shared, new ReLU(), shared);
             SGD sgd = new SGD(m.parameters(), 0.1, 0, 0, false)) {
            assertEquals(1, m.parameters().size(), "torch's parameters() removes the duplicate");
            assertEquals(java.util.List.of("0.weight"), java.util.List.copyOf(m.namedParameters().keySet()));
            assertEquals(16, m.parameterCount());
            assertEquals(java.util.Set.of("0.weight", "2.weight"), m.stateDict().keySet(), "the state dict keeps both names");
            float[] before = shared.weight().value().toFloatArray();
            m.forward(Var.of(rng.normal(0, 1, 3, 4))).sum().backward();
            sgd.step();
            assertFalse(java.util.Arrays.equals(before, shared.weight().value().toFloatArray()), "one step over both uses");
        }
    }

    /** The chained schedules keep their last product: reads in any order give the products from baseLr, bit for bit. */
    @Test
    void chainedSchedulesGiveTheSameBitsInAnyReadOrder() {
        LrSchedule exp = LrSchedule.exponentialLR(0.1, 0.999, 1), step = LrSchedule.stepLR(0.3, 2, 0.5, 3);
        java.util.SplittableRandom r = new java.util.SplittableRandom(7);
        long[] reads = new long[300];
        for (int i = 0; i < reads.length; i++) reads[i] = i < 150 ? i : r.nextLong(0, 5000);   // in order, then jumps both ways
        for (long sIdx : reads) {
            double e = 0.1, st = 0.3;
            for (long k = 0; k < sIdx; k++) e *= 0.999;
            for (long k = 0; k < sIdx / 3 / 2; k++) st *= 0.5;
            assertEquals(Double.doubleToRawLongBits(e), Double.doubleToRawLongBits(exp.lr(sIdx)), "exponential at " + sIdx);
            assertEquals(Double.doubleToRawLongBits(st), Double.doubleToRawLongBits(step.lr(sIdx)), "step at " + sIdx);
        }
        assertThrows(IllegalArgumentException.class, () -> LrSchedule.step(0.1, -1, 2));
        assertThrows(IllegalArgumentException.class, () -> new SGD(java.util.List.of(), Double.POSITIVE_INFINITY, 0, 0, false));
    }

    @Test
    void dropoutInEvalIsANewVarAndPOneZeroes() {
        try (Scope s = Scope.open()) {
            Var x = Var.of(Tensor.ones(2, 3));
            Dropout d = new Dropout(0.5, new Rng(1)).eval();
            Var y = d.forward(x);
            assertNotSame(x, y);
            y.close();
            assertFalse(x.isClosed(), "closing the eval output leaves the input open");
            assertArrayEquals(new float[6], new Dropout(1.0, new Rng(1)).forward(x).value().toFloatArray(), "p = 1 zeroes, as torch's");
            assertThrows(IllegalArgumentException.class, () -> new Dropout(0.5, null));
        }
    }

    /** A for loop over a DataLoader runs one epoch, the next one when the last was run to its end, as a torch DataLoader. */
    @Test
    void aForLoopOverTheLoaderRunsOneEpochEachTime() {
        byte[] px = new byte[10];
        for (int i = 0; i < 10; i++) px[i] = (byte) (i * 20);
        int[] labels = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
        var ds = fst4j.nn.data.ImageDataset.ofBytes("ten", px, 10, 1, 1, 1, labels, 10);
        var loader = fst4j.nn.data.DataLoader.builder(ds).batchSize(4).shuffle(true).seed(3).build();
        var reference = fst4j.nn.data.DataLoader.builder(ds).batchSize(4).shuffle(true).seed(3).build();
        for (int e = 0; e < 3; e++) {
            reference.startEpoch(e);
            java.util.List<Integer> want = new java.util.ArrayList<>(), got = new java.util.ArrayList<>();
            try (Scope s = Scope.open()) {
                while (reference.hasNext()) for (int l : reference.next().labels()) want.add(l);
                for (var b : loader) for (int l : b.labels()) got.add(l);
            }
            assertEquals(want, got, "epoch " + e);
            assertEquals(e, loader.epoch());
        }
        // a loop left early: the next loop runs the rest of that epoch
        try (Scope s = Scope.open()) {
            for (var b : loader) break;
            int n = 0;
            for (var b : loader) n += b.size();
            assertEquals(6, n, "10 samples of epoch 3, 4 taken by the loop that broke off");
            assertEquals(3, loader.epoch());
        }
    }

    /** Edges a fuzzing trial found: empty views off a zero-byte storage, overflowing repeats, argmin's name, an empty IR shift. */
    @Test
    void emptyViewsAndOverflowsAreHandledByName() {
        try (Scope s = Scope.open()) {
            Tensor v = Tensor.zeros(6, 0).slice(0, 2, 4);   // an empty view whose offset lay past its 0-byte storage
            assertEquals(0, v.toFloatArray().length);
            Var[] parts = Var.param(Tensor.zeros(6, 0)).split(2, 0);
            Var y = parts[1].matmul(Var.param(Tensor.zeros(0, 3)));   // K = 0: zeros [2, 3], as torch
            assertArrayEquals(new int[]{2, 3}, y.shape());
            assertArrayEquals(new float[6], y.value().toFloatArray());
            y.sum().backward();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Var.param(Tensor.ones(2, 3)).repeat(Integer.MAX_VALUE, 2));
            assertTrue(e.getMessage().startsWith("repeat: axis 0 would have 4294967294 elements"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Var.param(Tensor.zeros(0, 5)).argmin(0, false));
            assertTrue(e.getMessage().startsWith("argmin over an empty axis"), e.getMessage());
            assertArrayEquals(new int[]{0, 1, 0, 4}, fst4j.sparse.Restoration.shiftAddNCHW(Tensor.zeros(0, 1, 0, 4), 1f, 1, false).shape());
            // running statistics as an expanded view: training would update one element per channel in turn, mixing them
            Tensor rm = Tensor.zeros(1).expand(2), rv = Tensor.ones(1).expand(2);
            Var x = Var.param(new Rng(2).normal(0, 1, 2, 2, 2, 2));
            e = assertThrows(IllegalArgumentException.class,
                    () -> fst4j.autograd.NN.batchNorm2d(x, Var.param(Tensor.ones(2)), Var.param(Tensor.zeros(2)), rm, rv, true, 0.1, 1e-5));
            assertTrue(e.getMessage().contains("are an expanded view (stride 0)"), e.getMessage());
            assertEquals(0f, rm.get(0), "nothing updated");
        }
    }
}
