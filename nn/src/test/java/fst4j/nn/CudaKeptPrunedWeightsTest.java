package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.SparseConfig.Method;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaConv24;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.CudaOps;
import fst4j.tensor.CudaSpmm;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicLongArray;

import static fst4j.nn.KeptPrunedWeightsTest.keptNodes;
import static fst4j.nn.KeptPrunedWeightsTest.noGrad;
import static fst4j.nn.KeptPrunedWeightsTest.uncached;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link KeptPrunedWeightsTest}'s (a) and (e) on CUDA, for each form Gemm3 keeps there: at FP32 the pruned float32 S(W)
 * of the masked dense GEMM; at BF16 cuSPARSELt's operand (pruned by one kernel straight into bf16, and compressed once
 * per plan: the plans are per thread); at BF16 with the 2:4 implicit GEMM switched on, its convolutions' bf16 values
 * and metadata (CudaConv24). An eval-mode model on the device prunes each layer once, with the bits of a forward that
 * prunes every time; four threads share it with those bits, and device and host memory do not grow call after call and
 * come back once the model is closed. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaKeptPrunedWeightsTest {
    private boolean cacheWas;
    private CudaOps.MatmulPrecision precisionWas;
    private boolean conv24Was;

    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        cacheWas = Gemm3.setEvalCache(true);
        precisionWas = CudaOps.matmulPrecision();
        conv24Was = CudaConv24.setEnabled(false);
    }

    @AfterEach
    void restore() {
        if (!Cuda.isAvailable()) return;
        Gemm3.setEvalCache(cacheWas);
        CudaOps.setMatmulPrecision(precisionWas);
        CudaConv24.setEnabled(conv24Was);
    }

    enum Form { FP32_MASKED, BF16_SPARSELT, BF16_IMPLICIT_GEMM }

    /** Sets the switches for form; false (test skipped by the caller) where the back end lacks it. */
    private static boolean use(Form f) {
        CudaOps.setMatmulPrecision(f == Form.FP32_MASKED ? CudaOps.MatmulPrecision.FP32 : CudaOps.MatmulPrecision.BF16);
        CudaConv24.setEnabled(f == Form.BF16_IMPLICIT_GEMM);
        return f != Form.BF16_SPARSELT || CudaSpmm.enabled();
    }

    /** Two sparse convolutions (stride 1 and 2) and a sparse linear layer, FST3_IR, on the device in eval mode. */
    private static Sequential model() {
        Rng rng = new Rng(5);
        Sequential m = new Sequential(
                new Conv2d(4, 16, 3, 1, 1, false, Method.FST3_IR.config(1), rng), new ReLU(),
                new Conv2d(16, 32, 3, 2, 1, true, Method.FST3_IR.config(2), rng), new ReLU(),
                new Flatten(), new Linear(32 * 4 * 4, 16, true, Method.FST3_IR.config(3), rng));
        m.eval().to(Device.CUDA);
        return m;
    }

    private static Tensor input(int k) {
        return Scope.within(null, () -> { try (Tensor c = new Rng(30 + k).normal(0, 1, 2, 4, 8, 8)) { return c.to(Device.CUDA); } });
    }

    @Test
    void anEvalForwardOnTheDevicePrunesEachLayerOnceWithTheUncachedBits() {
        for (Form f : Form.values()) {
            if (!use(f)) { System.out.println("skipped " + f + ": cuSPARSELt not available: " + Cuda.sparseLtStatus()); continue; }
            long dev = CudaMemory.stats().bytesInUse(), host = Memory.bytesInUse();
            Sequential every = model(), kept = model();
            Tensor x = input(0);
            long pruned0 = CudaSpmm.prunedOperands(), compressed0 = CudaSpmm.compressions(), conv0 = CudaConv24.uses();
            float[] want = uncached(() -> noGrad(every, x));
            long prunedOnce = CudaSpmm.prunedOperands() - pruned0, compressedOnce = CudaSpmm.compressions() - compressed0;
            if (f == Form.BF16_SPARSELT) assertEquals(3, prunedOnce, f + ": every layer's S(W) pruned into cuSPARSELt's operand");
            if (f == Form.BF16_IMPLICIT_GEMM) assertEquals(2, CudaConv24.uses() - conv0, f + ": both convolutions on the 2:4 implicit GEMM");
            long pruned1 = CudaSpmm.prunedOperands(), compressed1 = CudaSpmm.compressions();
            for (int call = 0; call < 3; call++) assertArrayEquals(want, noGrad(kept, x), f + ", call " + call + ": the uncached bits");
            for (Gemm3 n : keptNodes(kept)) {
                assertEquals(1, n.weightPreparations(), f + ": pruned once for three forwards");
                assertEquals(2, n.evalCacheHits(), f + ": reused twice");
            }
            assertEquals(prunedOnce, CudaSpmm.prunedOperands() - pruned1, f + ": three forwards pruned into cuSPARSELt's operand as often as one did");
            assertEquals(compressedOnce, CudaSpmm.compressions() - compressed1, f + ": and compressed as often (one thread: one plan per layer)");
            every.close();
            kept.close();
            x.close();
            assertEquals(dev, CudaMemory.stats().bytesInUse(), f + ": device memory back, the kept operands freed with the model");
            assertEquals(host, Memory.bytesInUse(), f + ": host memory back");
        }
    }

    /** SGD's and AdamW's kernels on the device move W's version, so the next eval forward rebuilds S(W) from the new W. */
    @Test
    void anOptimizerStepOnTheDeviceRebuildsItWithAFreshModelsBits() {
        use(Form.FP32_MASKED);
        for (String opt : List.of("sgd", "adamw")) {
            try (Scope s = Scope.open(); Sequential m = model(); Sequential fresh = model()) {
                Tensor x = input(0);
                List<Gemm3> nodes = keptNodes(m);
                noGrad(m, x);
                int[] versions = nodes.stream().mapToInt(n -> weightOf(m, n).version()).toArray();
                try (Scope step = Scope.open(); Optimizer o = opt.equals("sgd") ? new SGD(m.parameters(), 0.1, 0.9, 5e-4, false)
                        : new AdamW(m.parameters(), 1e-2, 0.9, 0.999, 1e-8, 1e-2, false)) {
                    fst4j.autograd.NN.crossEntropy(m.forward(fst4j.autograd.Var.of(x.alias())), new int[]{3, 1}, 0).backward();
                    noGrad(m, x);   // kept for the W the step is about to change
                    o.step();
                }
                for (int k = 0; k < nodes.size(); k++) assertNotEquals(versions[k], weightOf(m, nodes.get(k)).version(), opt + ": the step moved W's version");
                float[] got = noGrad(m, x);
                for (Gemm3 n : nodes) assertEquals(4, n.weightPreparations(), opt + ": eval, training forward, eval, and the rebuild after the step");
                fresh.loadStateDict(m.stateDict());
                assertArrayEquals(uncached(() -> noGrad(fresh, x)), got, opt + ": a fresh model with the stepped weights");
                x.close();
            }
        }
    }

    /**
     * A weight scaled in place on the device by CudaOps' kernel (a loop of one's own, not an optimizer: nothing else marks
     * W) moves W's version, so the next eval forward rebuilds S(W) and gives a fresh model's bits for the scaled weights.
     */
    @Test
    void aWeightScaledInPlaceByAKernelIsPrunedAgain() {
        use(Form.FP32_MASKED);
        try (Scope s = Scope.open(); Sequential m = model(); Sequential fresh = model()) {
            Tensor x = input(0);
            List<Gemm3> nodes = keptNodes(m);
            float[] old = noGrad(m, x);
            for (Gemm3 n : nodes) CudaOps.scaleInPlace(weightOf(m, n), 0.5f);
            float[] got = noGrad(m, x);
            for (Gemm3 n : nodes) assertEquals(2, n.weightPreparations(), "the scaled W is pruned again");
            fresh.loadStateDict(m.stateDict());
            assertArrayEquals(uncached(() -> noGrad(fresh, x)), got, "a fresh model with the scaled weights");
            assertFalse(java.util.Arrays.equals(old, got), "the scale shows in the output (the test can tell)");
            x.close();
        }
    }

    private static Tensor weightOf(Module m, Gemm3 n) {
        for (Sparse l : Models.sparseLayers(m).values()) if (((NodeLayer) l).node() == n) return l.weight().value();
        throw new AssertionError("no layer has that node");
    }

    @Test
    void fourThreadsShareOneKeptWPerLayerOnTheDeviceWithTheSingleThreadBitsAndNoGrowth() throws Exception {
        for (Form f : Form.values()) {
            if (!use(f)) { System.out.println("skipped " + f + ": cuSPARSELt not available: " + Cuda.sparseLtStatus()); continue; }
            long dev = CudaMemory.stats().bytesInUse(), host = Memory.bytesInUse();
            int n = 3, iterations = 12;
            Tensor[] xs = new Tensor[n];
            for (int k = 0; k < n; k++) xs[k] = input(k);
            float[][] want = new float[n][];
            try (Sequential twin = model()) { for (int k = 0; k < n; k++) { int kk = k; want[k] = uncached(() -> noGrad(twin, xs[kk])); } }
            Sequential m = model();
            long compressed = CudaSpmm.compressions();
            List<Gemm3> nodes = keptNodes(m);
            assertEquals(3, nodes.size());
            // two rounds on the same four threads (cuSPARSELt's plans, and so the compressed forms, are per thread); the
            // barrier's action reads the memory in use between them and after
            AtomicLongArray bytes = new AtomicLongArray(4);
            int[] round = {0};
            CyclicBarrier between = new CyclicBarrier(SharedModuleThreadsTest.THREADS, () -> {
                bytes.set(2 * round[0], CudaMemory.stats().bytesInUse());
                bytes.set(2 * round[0] + 1, Memory.bytesInUse());
                round[0]++;
            });
            SharedModuleThreadsTest.onThreads(t -> {
                for (int r = 0; r < 2; r++) {
                    for (int i = 0; i < iterations; i++) {
                        int k = (i + t) % n;
                        assertArrayEquals(want[k], noGrad(m, xs[k]), f + ", round " + r + ", thread " + t + ", call " + i + ": input " + k);
                    }
                    between.await();
                }
            });
            for (Gemm3 g : nodes) assertEquals(1, g.weightPreparations(), f + ": one prune per layer for " + 8 * iterations + " forwards on four threads");
            // cuSPARSELt's layers (all three, or the linear one beside the implicit GEMM's convolutions) compress their
            // kept operand once per thread's plan, not again whenever another thread's product came in between
            int sparseLt = !CudaSpmm.enabled() ? 0 : f == Form.BF16_IMPLICIT_GEMM ? 1 : 3;
            assertEquals(sparseLt * SharedModuleThreadsTest.THREADS, CudaSpmm.compressions() - compressed, f + ": compressions");
            assertEquals(bytes.get(0), bytes.get(2), f + ": the second round grew no device memory");
            assertEquals(bytes.get(1), bytes.get(3), f + ": nor host memory");
            m.close();
            for (Tensor x : xs) x.close();
            assertEquals(dev, CudaMemory.stats().bytesInUse(), f + ": device memory back: the kept operands and their compressed forms freed");
            assertEquals(host, Memory.bytesInUse(), f + ": host memory back");
        }
    }
}
