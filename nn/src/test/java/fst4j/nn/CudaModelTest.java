package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
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
 * An nn model (Models.resnetSmall, dense) moved to CUDA with Module.to and trained for two steps (SGD with Nesterov
 * momentum and weight decay) next to an identical model on the CPU: losses, every gradient, the running statistics
 * and the weights agree, a checkpoint written from the device loads into a CPU model, and the eval-mode logits
 * agree afterwards. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaModelTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static void assertNear(Tensor want, Tensor got, double tol, String what) {
        assertEquals(Device.CUDA, got.device(), what + ": device");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        double scale = 0, err = 0;
        for (int i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(a[i])); err = Math.max(err, Math.abs(a[i] - b[i])); }
        assertTrue(err <= tol * Math.max(scale, 1e-6), what + ": max error " + err + " against max " + scale);
    }

    @Test
    void aResNetMovedToCudaTrainsLikeTheCpuOne() throws java.io.IOException {
        Random r = new Random(31);
        try (Sequential cpu = Models.resnetSmall(3, 10, SparseConfig.Method.DENSE, 7);
             Sequential gpu = Models.resnetSmall(3, 10, SparseConfig.Method.DENSE, 7)) {
            gpu.to(Device.CUDA);
            for (Map.Entry<String, Tensor> e : gpu.stateDict().entrySet()) assertEquals(Device.CUDA, e.getValue().device(), e.getKey());
            try (SGD oc = new SGD(cpu.parameters(), 0.05, 0.9, 5e-4, true); SGD og = new SGD(gpu.parameters(), 0.05, 0.9, 5e-4, true)) {
                for (int it = 0; it < 2; it++) {
                    float[] xv = new float[4 * 3 * 12 * 12];
                    for (int i = 0; i < xv.length; i++) xv[i] = (float) r.nextGaussian();
                    int[] labels = { r.nextInt(10), r.nextInt(10), r.nextInt(10), r.nextInt(10) };
                    double lc, lg;
                    try (Scope s = Scope.open()) {
                        Tensor x = Tensor.of(xv, 4, 3, 12, 12);
                        Var loss = NN.crossEntropy(cpu.forward(Var.of(x)), labels, 0.1);
                        lc = loss.item();
                        loss.backward();
                        Var lossG = NN.crossEntropy(gpu.forward(Var.of(x.to(Device.CUDA))), labels, 0.1);
                        assertEquals(Device.CUDA, lossG.value().device());
                        lg = lossG.item();
                        lossG.backward();
                    }
                    assertEquals(lc, lg, 1e-5 * Math.abs(lc), "loss, step " + it);
                    List<Var> pc = cpu.parameters(), pg = gpu.parameters();
                    for (int i = 0; i < pc.size(); i++) assertNear(pc.get(i).grad(), pg.get(i).grad(), 2e-4, "gradient " + i + ", step " + it);
                    oc.step();
                    og.step();
                    Map<String, Tensor> sc = cpu.stateDict(), sg = gpu.stateDict();
                    for (String k : sc.keySet()) assertNear(sc.get(k), sg.get(k), 1e-5, k + " after step " + it);
                    oc.zeroGrad();
                    og.zeroGrad();
                }
            }
            // a checkpoint of the CUDA model (written from the device) loads into a fresh CPU model: the same state
            java.nio.file.Path file = java.nio.file.Files.createTempFile("fst4j-cuda-model", ".safetensors");
            try (Sequential fresh = Models.resnetSmall(3, 10, SparseConfig.Method.DENSE, 99)) {
                fst4j.nn.io.SafeTensors.write(file, gpu.stateDict());
                try (fst4j.nn.io.SafeTensors.Contents c = fst4j.nn.io.SafeTensors.read(file)) { fresh.loadStateDict(c.tensors()); }
                Map<String, Tensor> want = gpu.stateDict(), got = fresh.stateDict();
                for (String k : want.keySet()) assertArrayEquals(want.get(k).toFloatArray(), got.get(k).toFloatArray(), k + " through a checkpoint");
            } finally {
                java.nio.file.Files.deleteIfExists(file);
            }
            // eval mode (running statistics): the same logits
            cpu.eval();
            gpu.eval();
            try (Scope s = Scope.open()) {
                float[] xv = new float[5 * 3 * 12 * 12];
                for (int i = 0; i < xv.length; i++) xv[i] = (float) r.nextGaussian();
                Tensor x = Tensor.of(xv, 5, 3, 12, 12);
                assertNear(cpu.forward(Var.of(x)).value(), gpu.forward(Var.of(x.to(Device.CUDA))).value(), 1e-5, "eval-mode logits");
            }
        }
    }
}
