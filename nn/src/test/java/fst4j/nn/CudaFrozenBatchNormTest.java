package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Elementwise;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A fine-tune with frozen batch norm on CUDA: Models.resnetSmall moved to the device, every BatchNorm2d in eval mode (the
 * running statistics used and left alone, gamma and beta still trained, as torchvision's FrozenBatchNorm2d fine-tunes
 * but with trainable affine parameters), the stem's output also average-pooled into the loss (NN.avgPool2d), trained for
 * two SGD steps next to the same model on the CPU. Eval-mode batch norm backward (plain and fused with ReLU) and the
 * average pool's backward ran only on the CPU before; the gradients, the weights after each step and the untouched
 * running statistics now agree with the CPU's, and Elementwise.hasNonFinite checks the device gradients where they are.
 */
class CudaFrozenBatchNormTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static void assertNear(Tensor want, Tensor got, double tol, String what) {
        assertEquals(Device.CUDA, got.device(), what + ": device");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        double scale = 0, err = 0;
        for (int i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(a[i])); err = Math.max(err, Math.abs(a[i] - b[i])); }
        assertTrue(err <= tol * Math.max(scale, 1e-6), what + ": max error " + err + " against max " + scale);
    }

    /** Every BatchNorm2d of m (at any depth) in eval mode; how many there are. */
    private static int freezeBatchNorm(Module m) {
        int k = m instanceof BatchNorm2d b ? 1 : 0;
        if (m instanceof BatchNorm2d b) b.eval();
        for (Module c : m.children().values()) k += freezeBatchNorm(c);
        return k;
    }

    /** The loss: cross-entropy of the logits plus the mean of the 3x3 average pool (stride 2, padding 1) of the stem's output. */
    private static Var loss(Sequential model, Tensor x, int[] labels) {
        Module stem = model.children().values().iterator().next();
        Var pooled = NN.avgPool2d(stem.forward(Var.of(x)), 3, 2, 1);
        return NN.crossEntropy(model.forward(Var.of(x)), labels, 0.1).add(pooled.mean().mul(0.5));
    }

    @Test
    void aFrozenBatchNormFineTuneOnCudaFollowsTheCpu() {
        Random r = new Random(41);
        try (Sequential cpu = Models.resnetSmall(3, 10, SparseConfig.Method.DENSE, 5);
             Sequential gpu = Models.resnetSmall(3, 10, SparseConfig.Method.DENSE, 5)) {
            // running statistics that are not the defaults 0 and 1, the same in both models
            for (Map.Entry<String, Tensor> e : cpu.namedBuffers().entrySet()) {
                float[] v = e.getValue().toFloatArray();
                for (int i = 0; i < v.length; i++) v[i] = e.getKey().endsWith("running_var") ? (float) (0.3 + r.nextDouble()) : (float) r.nextGaussian();
                try (Tensor t = Tensor.of(v, e.getValue().shape())) { e.getValue().copyFrom(t); gpu.namedBuffers().get(e.getKey()).copyFrom(t); }
            }
            gpu.to(Device.CUDA);
            int frozen = freezeBatchNorm(cpu);
            assertEquals(frozen, freezeBatchNorm(gpu));
            assertTrue(frozen >= 3, "the model has batch norms to freeze: " + frozen);
            Map<String, float[]> statsBefore = new java.util.HashMap<>();
            for (Map.Entry<String, Tensor> e : cpu.namedBuffers().entrySet()) statsBefore.put(e.getKey(), e.getValue().toFloatArray());
            try (SGD oc = new SGD(cpu.parameters(), 0.05, 0.9, 5e-4, false); SGD og = new SGD(gpu.parameters(), 0.05, 0.9, 5e-4, false)) {
                for (int it = 0; it < 2; it++) {
                    float[] xv = new float[3 * 3 * 13 * 11];
                    for (int i = 0; i < xv.length; i++) xv[i] = (float) r.nextGaussian();
                    int[] labels = {r.nextInt(10), r.nextInt(10), r.nextInt(10)};
                    double lc, lg;
                    try (Scope s = Scope.open()) {
                        Tensor x = Tensor.of(xv, 3, 3, 13, 11);
                        Var l = loss(cpu, x, labels);
                        lc = l.item();
                        l.backward();
                        Var lG = loss(gpu, x.to(Device.CUDA), labels);
                        assertEquals(Device.CUDA, lG.value().device());
                        lg = lG.item();
                        lG.backward();
                    }
                    assertEquals(lc, lg, 1e-5 * Math.abs(lc), "loss, step " + it);
                    List<Var> pc = cpu.parameters(), pg = gpu.parameters();
                    for (int i = 0; i < pc.size(); i++) {
                        assertNear(pc.get(i).grad(), pg.get(i).grad(), 2e-4, "gradient " + i + ", step " + it);
                        assertFalse(Elementwise.hasNonFinite(pg.get(i).grad()), "finite gradient " + i);
                    }
                    oc.step();
                    og.step();
                    for (Map.Entry<String, Tensor> e : cpu.stateDict().entrySet())
                        assertNear(e.getValue(), gpu.stateDict().get(e.getKey()), 1e-5, e.getKey() + " after step " + it);
                    oc.zeroGrad();
                    og.zeroGrad();
                }
            }
            for (Map.Entry<String, Tensor> e : gpu.namedBuffers().entrySet())
                assertArrayEquals(statsBefore.get(e.getKey()), e.getValue().toFloatArray(), e.getKey() + ": frozen, unchanged");
        }
    }
}
