package fst4j.nn;

import fst4j.autograd.Grad;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Memory;
import fst4j.tensor.OnThreads;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;


import static org.junit.jupiter.api.Assertions.*;

/**
 * One module instance used from four threads at once, as a PyTorch user shares a model in eval mode between inference
 * threads or one Upsample between data-loading threads: every thread gets, call after call, the bits a single thread
 * got, and nothing stays allocated once the modules are closed. What the threads share: the modules' weights (aliased
 * by every forward that records a graph), Upsample's cache of index tables and weights (more geometries than it holds,
 * so the threads evict each other's), the static cache of interpolation axes, MultiheadAttention's kept causal mask
 * (lengths that differ from thread to thread, so it is replaced while others use it), TSM's transposable masks (a
 * stateful sparsifier in every pruned layer) and the profile's counters.
 */
class SharedModuleThreadsTest {
    static final int THREADS = 4;

    /** Runs work on THREADS threads released together (fst4j.tensor.OnThreads, shared through tensor's test jar). */
    static void onThreads(OnThreads.Work work) throws InterruptedException { OnThreads.run(THREADS, "shared-module", work); }

    /** y's value and x's gradient, as one array: forward, and with grad a backward of y's sum (an Upsample has no parameters). */
    private static float[] upsample(Upsample up, Tensor x, boolean grad) {
        if (!grad) {
            try (Grad.Restore g = Grad.noGrad()) { return up.forward(Var.of(x.alias())).value().toFloatArray(); }
        }
        Var xp = Var.param(x.alias());
        Var y = up.forward(xp);
        y.sum().backward();
        float[] a = y.value().toFloatArray(), b = xp.grad().toFloatArray(), out = new float[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        xp.close();
        return out;
    }

    @Test
    void oneUpsamplePerModeServesFourThreadsWithTheSingleThreadBits() throws InterruptedException {
        long bytes = Memory.bytesInUse();
        // six input sizes scaled by (2, 1.5): 11 axes per module, more than the 8 an Upsample keeps
        int[][] hw = {{3, 4}, {5, 4}, {4, 6}, {6, 3}, {2, 5}, {7, 7}};
        Upsample[] ups = {Upsample.scale(2, 1.5, InterpolateMode.BILINEAR, false), Upsample.scale(2, 1.5, InterpolateMode.BICUBIC, true),
                Upsample.scale(2, 1.5, InterpolateMode.NEAREST, false)};
        Tensor[] xs = new Tensor[hw.length];
        Rng rng = new Rng(7);
        for (int k = 0; k < hw.length; k++) { int[] size = hw[k]; xs[k] = Scope.within(null, () -> rng.normal(0, 1, 2, 3, size[0], size[1])); }
        float[][][][] want = new float[ups.length][hw.length][2][];   // [module][input][no grad, grad]
        try (Scope s = Scope.open()) {
            for (int m = 0; m < ups.length; m++)
                for (int k = 0; k < hw.length; k++)
                    for (int g = 0; g < 2; g++) want[m][k][g] = upsample(ups[m], xs[k], g == 1);
        }
        int iterations = 2000;
        onThreads(t -> {
            for (int i = 0; i < iterations; i++) {
                int m = i % ups.length, k = (i * 5 + t) % hw.length, g = (i / ups.length + t) % 2;
                try (Scope s = Scope.open()) {
                    assertArrayEquals(want[m][k][g], upsample(ups[m], xs[k], g == 1),
                            "thread " + t + ", call " + i + ": module " + m + ", input " + k + (g == 1 ? " with backward" : ""));
                }
            }
        });
        for (Upsample up : ups) {
            assertTrue(up.cache().size() <= Upsample.CACHED_AXES, "the cache stays within its capacity");
            up.close();
        }
        for (Tensor x : xs) x.close();
        assertEquals(bytes, Memory.bytesInUse(), "every table, weight and graph freed: nothing grew off-heap");
    }

    @Test
    void oneEvalModeModelPerKindServesFourThreadsWithTheSingleThreadBits() throws InterruptedException {
        long bytes = Memory.bytesInUse();
        Module dense = Models.smallCnn(1, 8, 8, 10, Method.FST3_IR, 1).eval();   // 2:4 W by magnitude (stateless)
        Module tsm = Models.smallCnn(1, 8, 8, 10, Method.TSM, 2).eval();         // transposable masks: stateful, refreshed every 40 calls
        MultiheadAttention mha = new MultiheadAttention(8, 2, 0.1, true, Method.DENSE.config(), Method.DENSE.config(), new Rng(3)).eval();
        Rng rng = new Rng(4);
        int[] lengths = {3, 5, 7};
        Tensor[] images = new Tensor[3], tokens = new Tensor[lengths.length];
        for (int k = 0; k < images.length; k++) images[k] = Scope.within(null, () -> rng.normal(0, 1, 2, 1, 8, 8));
        for (int k = 0; k < tokens.length; k++) { int len = lengths[k]; tokens[k] = Scope.within(null, () -> rng.normal(0, 1, 2, len, 8)); }
        // [kind][input][no grad, grad]: kinds dense, tsm, causal attention
        float[][][][] want = new float[3][3][2][];
        try (Scope s = Scope.open()) {
            for (int k = 0; k < 3; k++)
                for (int g = 0; g < 2; g++)
                    for (int kind = 0; kind < 3; kind++) want[kind][k][g] = run(kind, dense, tsm, mha, images[k], tokens[k], g == 1);
        }
        int iterations = 150;
        onThreads(t -> {
            for (int i = 0; i < iterations; i++) {
                int kind = (i + t) % 3, k = (i / 3 + t) % 3, g = (i / 9 + t) % 2;
                try (Scope s = Scope.open()) {
                    assertArrayEquals(want[kind][k][g], run(kind, dense, tsm, mha, images[k], tokens[k], g == 1),
                            "thread " + t + ", call " + i + ": kind " + kind + ", input " + k + (g == 1 ? " recording a graph" : " without grad"));
                }
            }
        });
        dense.close();
        tsm.close();
        mha.close();
        for (Tensor x : images) x.close();
        for (Tensor x : tokens) x.close();
        assertEquals(bytes, Memory.bytesInUse(), "nothing grew off-heap: every view, graph and kept mask freed");
    }

    /** One forward of a kind (0: the 2:4 cnn, 1: the TSM cnn, 2: causal self-attention), with or without a graph, closed after. */
    private static float[] run(int kind, Module dense, Module tsm, MultiheadAttention mha, Tensor image, Tensor tokens, boolean grad) {
        try (Grad.Restore g = grad ? Grad.enableGrad() : Grad.noGrad()) {
            try (Var y = kind == 2 ? mha.forward(Var.of(tokens.alias()), null, true) : (kind == 0 ? dense : tsm).forward(Var.of(image.alias()))) {
                return y.value().toFloatArray();
            }
        }
    }
}
