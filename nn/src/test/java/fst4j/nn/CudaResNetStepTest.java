package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.CudaOps;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Two training steps of a small ResNet (conv stem, batch norm, ReLU, max pool, one basic block with its residual,
 * global average pool, linear head, cross-entropy with label smoothing; SGD with Nesterov momentum and weight decay,
 * SR-STE decay on the block's first conv) built from autograd nodes on CUDA tensors, against the same steps on the
 * CPU: every op of a dense ResNet training step runs on the device (or the emulator), and loss, gradients, running
 * statistics and updated weights agree within float32 rounding of differently ordered GEMM sums.
 */
class CudaResNetStepTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    /** Parameters and buffers of the model on one device. */
    private record Model(List<Var> params, List<Tensor> buffers) {
        Var p(int i) { return params.get(i); }
        Tensor b(int i) { return buffers.get(i); }
    }

    private static Tensor randn(Random r, double scale, int... shape) {
        int n = 1;
        for (int s : shape) n *= s;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * scale);
        return Tensor.of(v, shape);
    }

    private static Model model(Random r, Device d) {
        int c = 8, classes = 5;
        List<Tensor> init = List.of(randn(r, 0.5, c, 3, 3, 3), randn(r, 1, c), randn(r, 0.1, c),          // stem conv, bn1
                randn(r, 0.2, c, c, 3, 3), randn(r, 1, c), randn(r, 0.1, c),                               // block conv a, bn a
                randn(r, 0.2, c, c, 3, 3), randn(r, 1, c), randn(r, 0.1, c),                               // block conv b, bn b
                randn(r, 0.3, classes, c), randn(r, 0.1, classes));                                          // head
        List<Var> params = new ArrayList<>();
        for (Tensor t : init) {
            Tensor v = t.to(d);
            t.close();
            params.add(Var.param(v));
        }
        List<Tensor> buffers = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            try (Tensor z = Tensor.zeros(c); Tensor o = Tensor.ones(c)) { buffers.add(z.to(d)); buffers.add(o.to(d)); }
        }
        return new Model(params, buffers);
    }

    private static Var bn(Var x, Model m, int pi, int bi) {
        return NN.batchNorm2d(x, m.p(pi), m.p(pi + 1), m.b(bi), m.b(bi + 1), true, 0.1, 1e-5);
    }

    /** Forward and backward of one batch; returns the loss. */
    private static double step(Model m, Tensor x, int[] labels) {
        try (Scope s = Scope.open()) {
            Var in = Var.of(x.alias());
            Var h = bn(NN.conv2d(in, m.p(0), null, 1, 1), m, 1, 0).relu();
            h = NN.maxPool2d(h, 3, 2, 1);
            Var a = bn(NN.conv2d(h, m.p(3), null, 1, 1), m, 4, 2).relu();
            Var b = bn(NN.conv2d(a, m.p(6), null, 1, 1), m, 7, 4);
            Var y = b.add(h).relu();
            Var pooled = NN.adaptiveAvgPool2d(y, 1, 1).reshape(x.shape()[0], 8);
            Var logits = pooled.matmul(m.p(9).transpose(0, 1)).add(m.p(10));
            Var loss = NN.crossEntropy(logits, labels, 0.1);
            double value = loss.item();
            loss.backward();
            return value;
        }
    }

    /** max |got - want| <= tol * max |want| over the tensor (GEMM sums differ in order between the devices). */
    private static void assertNear(Tensor want, Tensor got, double tol, String what) {
        assertEquals(Device.CUDA, got.device(), what + ": device");
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        double scale = 0, err = 0;
        for (int i = 0; i < a.length; i++) { scale = Math.max(scale, Math.abs(a[i])); err = Math.max(err, Math.abs(a[i] - b[i])); }
        assertTrue(scale > 0, what + " is all zeros");
        assertTrue(err <= tol * scale, what + ": max error " + err + " against max " + scale);
    }

    @Test
    void twoTrainingStepsOnCudaMatchTheCpu() {
        Random r = new Random(21);
        Model cpu = model(new Random(5), Device.CPU), gpu = model(new Random(5), Device.CUDA);
        try (SGD oc = new SGD(cpu.params(), 0.05, 0.9, 5e-4, true); SGD og = new SGD(gpu.params(), 0.05, 0.9, 5e-4, true)) {
            for (int it = 0; it < 2; it++) {
                int[] labels = new int[6];
                for (int i = 0; i < labels.length; i++) labels[i] = r.nextInt(5);
                try (Tensor x = randn(r, 1, 6, 3, 11, 11); Tensor xg = x.to(Device.CUDA)) {
                    double lc = step(cpu, x, labels), lg = step(gpu, xg, labels);
                    assertEquals(lc, lg, 1e-5 * Math.abs(lc), "loss, step " + it);
                }
                for (int i = 0; i < cpu.params().size(); i++)
                    assertNear(cpu.p(i).grad(), gpu.p(i).grad(), 1e-4, "gradient of parameter " + i + ", step " + it);
                for (int i = 0; i < cpu.buffers().size(); i++)
                    assertNear(cpu.b(i), gpu.b(i), 1e-5, "running statistic " + i + ", step " + it);
                // SR-STE's decay on the block's first conv ([8, 72] rows), then the optimizer
                Tensor wc = cpu.p(3).value(), wg = gpu.p(3).value();
                fst4j.shim.Native.srsteDecay(wc.data(), cpu.p(3).grad().data(), 8, 72, 2e-4f, 1);
                CudaOps.srsteDecay(wg, gpu.p(3).grad(), 8, 72, 2e-4f);
                oc.step();
                og.step();
                for (int i = 0; i < cpu.params().size(); i++)
                    assertNear(cpu.p(i).value(), gpu.p(i).value(), 1e-5, "parameter " + i + " after step " + it);
                oc.zeroGrad();
                og.zeroGrad();
            }
        } finally {
            for (Model m : List.of(cpu, gpu)) {
                m.params().forEach(Var::close);
                m.buffers().forEach(Tensor::close);
            }
        }
    }
}
