package fst4j.nn;

import fst4j.autograd.Grad;
import fst4j.autograd.NN.InterpolateMode;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * {@link SharedModuleThreadsTest} on CUDA: one eval-mode cnn, one Upsample (its index tables and weights on the device,
 * more geometries than it keeps) and one causal MultiheadAttention (its kept mask on the device) used from four threads
 * at once, each thread's outputs bit for bit those of a single thread, and device and host memory back where they were
 * once the modules are closed. The threads share the caching allocator's bins and the one stream. Against the device or
 * the host emulator (skipped with the reason otherwise).
 */
class CudaSharedModuleThreadsTest {
    @Test
    void modulesOnTheDeviceServeFourThreadsWithTheSingleThreadBits() throws InterruptedException {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        long host = Memory.bytesInUse(), dev = CudaMemory.stats().bytesInUse();
        Module cnn = Models.smallCnn(1, 8, 8, 10, Method.DENSE, 1).eval().to(Device.CUDA);
        Upsample up = Upsample.scale(2, 1.5, InterpolateMode.BILINEAR, false);
        MultiheadAttention mha = new MultiheadAttention(8, 2, 0, true, Method.DENSE.config(), Method.DENSE.config(), new Rng(3)).eval();
        mha.to(Device.CUDA);
        Rng rng = new Rng(4);
        int n = 6;   // inputs per module: six image sizes for the Upsample (11 axes, it keeps 8), six lengths for the attention
        Tensor[] images = new Tensor[n], small = new Tensor[n], tokens = new Tensor[n];
        for (int k = 0; k < n; k++) {
            int h = 2 + k, w = 3 + (k * 2) % 5, len = 2 + k;
            images[k] = Scope.within(null, () -> { try (Tensor c = rng.normal(0, 1, 2, 1, 8, 8)) { return c.to(Device.CUDA); } });
            small[k] = Scope.within(null, () -> { try (Tensor c = rng.normal(0, 1, 1, 2, h, w)) { return c.to(Device.CUDA); } });
            tokens[k] = Scope.within(null, () -> { try (Tensor c = rng.normal(0, 1, 2, len, 8)) { return c.to(Device.CUDA); } });
        }
        float[][][] want = new float[3][n][];
        try (Scope s = Scope.open()) {
            for (int kind = 0; kind < 3; kind++)
                for (int k = 0; k < n; k++) want[kind][k] = run(kind, cnn, up, mha, images[k], small[k], tokens[k]);
        }
        int iterations = 48;
        SharedModuleThreadsTest.onThreads(t -> {
            for (int i = 0; i < iterations; i++) {
                int kind = (i + t) % 3, k = (i / 3 + 2 * t) % n;
                try (Scope s = Scope.open()) {
                    assertArrayEquals(want[kind][k], run(kind, cnn, up, mha, images[k], small[k], tokens[k]),
                            "thread " + t + ", call " + i + ": kind " + kind + ", input " + k);
                }
            }
        });
        cnn.close();
        up.close();
        mha.close();
        for (Tensor[] ts : new Tensor[][]{images, small, tokens}) for (Tensor x : ts) x.close();
        assertEquals(dev, CudaMemory.stats().bytesInUse(), "device memory back: tables, weights, masks and every view freed");
        assertEquals(host, Memory.bytesInUse(), "host memory back");
    }

    /** One forward without a graph of a kind (0: the cnn, 1: the Upsample, 2: causal self-attention), copied to the host. */
    private static float[] run(int kind, Module cnn, Upsample up, MultiheadAttention mha, Tensor image, Tensor small, Tensor tokens) {
        try (Grad.Restore g = Grad.noGrad()) {
            Var y = switch (kind) {
                case 0 -> cnn.forward(Var.of(image.alias()));
                case 1 -> up.forward(Var.of(small.alias()));
                default -> mha.forward(Var.of(tokens.alias()), null, true);
            };
            assertEquals(Device.CUDA, y.value().device());
            return y.value().toFloatArray();
        }
    }
}
