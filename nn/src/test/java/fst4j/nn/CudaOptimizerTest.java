package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * SGD on CUDA parameters (one kernel per parameter, the buffer on the device) step for step against SGD on the
 * CPU, bit for bit; and a small autograd graph (mul, add with broadcast, relu, sum) whose forward and backward run
 * entirely on CUDA tensors. Against the device, or the host emulator in the "cuda-emulator" surefire execution;
 * skipped with the reason where neither is usable.
 */
class CudaOptimizerTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    private static void assertBits(Tensor want, Tensor got, String what) {
        assertBits(want, got, what, false);
    }

    /**
     * Bit for bit; with anyNaN a NaN matches any NaN. Across devices a NaN's payload is not part of the result: x86
     * keeps the operand's quiet NaN (0x7fc00000 here), while the GPU's arithmetic writes its canonical 0x7fffffff (run 23,
     * H200), so the CPU comparisons take anyNaN and the two CUDA paths stay bit for bit.
     */
    private static void assertBits(Tensor want, Tensor got, String what, boolean anyNaN) {
        assertEquals(Device.CUDA, got.device(), what);
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what);
        for (int i = 0; i < a.length; i++) {
            if (anyNaN && Float.isNaN(a[i]) && Float.isNaN(b[i])) continue;
            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), what + ": element " + i + " " + b[i] + " vs " + a[i]);
        }
    }

    /**
     * SR-STE's decay fused into the CUDA SGD kernel (fst_cuda_sgd_srste) against the two kernels it replaces (the decay, then
     * the step) on CUDA and against the CPU's fused loop, four steps of each SGD configuration, through SGD.step's decay
     * rows: weights and momentum buffers bit for bit, and the fused path leaves the gradient as it was (as the CPU's does).
     * Rows of 4k weights with ties, zeros and a NaN, so the selection's edge cases are in.
     */
    @Test
    void sgdWithTheSrSteDecayFusedMatchesTheTwoKernelsAndTheCpu() {
        double[][] configs = { { 0, 0, 0 }, { 0, 5e-4, 0 }, { 0.9, 5e-4, 0 }, { 0.9, 1e-4, 1 } };   // momentum, weight decay, nesterov
        Random r = new Random(12);
        int rows = 7, k = 44;
        boolean was = SGD.fusedOnDevice;
        try {
            for (double[] c : configs) {
                float[] w0 = gaussian(r, rows * k);
                w0[3] = w0[1]; w0[8] = 0f; w0[9] = -0f; w0[21] = Float.NaN;   // a tie, zeros of both signs, a NaN
                Var pc = Var.param(Tensor.of(w0, rows, k));
                Var pf, pu;
                try (Tensor t = Tensor.of(w0, rows, k)) { pf = Var.param(t.to(Device.CUDA)); pu = Var.param(t.to(Device.CUDA)); }
                try (SGD oc = new SGD(List.of(pc), 0.05, c[0], c[1], c[2] == 1); SGD of = new SGD(List.of(pf), 0.05, c[0], c[1], c[2] == 1);
                     SGD ou = new SGD(List.of(pu), 0.05, c[0], c[1], c[2] == 1)) {
                    for (int step = 0; step < 4; step++) {
                        float[] gv = gaussian(r, rows * k);
                        try (Tensor g = Tensor.of(gv, rows, k); Tensor g1 = g.to(Device.CUDA); Tensor g2 = g.to(Device.CUDA)) {
                            pc.backward(g);
                            pf.backward(g1);
                            pu.backward(g2);
                        }
                        oc.step(java.util.Map.of(pc, k), 2e-4f);
                        SGD.fusedOnDevice = true;
                        of.step(java.util.Map.of(pf, k), 2e-4f);
                        SGD.fusedOnDevice = false;
                        ou.step(java.util.Map.of(pu, k), 2e-4f);
                        String at = java.util.Arrays.toString(c) + " step " + step;
                        try (Tensor want = pc.value().to(Device.CUDA)) { assertBits(want, pf.value(), "fused vs CPU weights " + at, true); }
                        assertBits(pu.value(), pf.value(), "fused vs two kernels, weights " + at);
                        if (c[0] != 0) {
                            try (Tensor want = oc.momentumBuffer(0).to(Device.CUDA)) { assertBits(want, of.momentumBuffer(0), "fused vs CPU buffer " + at, true); }
                            assertBits(ou.momentumBuffer(0), of.momentumBuffer(0), "fused vs two kernels, buffer " + at);
                        }
                        try (Tensor g = Tensor.of(gv, rows, k); Tensor gd = g.to(Device.CUDA)) { assertBits(gd, pf.grad(), "the fused step left the gradient " + at); }
                        pc.zeroGrad(); pf.zeroGrad(); pu.zeroGrad();
                    }
                }
            }
        } finally {
            SGD.fusedOnDevice = was;
        }
    }

    @Test
    void sgdOnCudaParametersMatchesTheCpuStepForStep() {
        double[][] configs = { { 0, 0, 0 }, { 0, 5e-4, 0 }, { 0.9, 5e-4, 0 }, { 0.9, 1e-4, 1 } };   // momentum, weight decay, nesterov
        Random r = new Random(11);
        for (double[] c : configs) {
            float[] w0 = gaussian(r, 37 * 5);
            Var pc = Var.param(Tensor.of(w0, 37, 5));
            Var pd;
            try (Tensor t = Tensor.of(w0, 37, 5)) { pd = Var.param(t.to(Device.CUDA)); }
            try (SGD oc = new SGD(List.of(pc), 0.05, c[0], c[1], c[2] == 1); SGD od = new SGD(List.of(pd), 0.05, c[0], c[1], c[2] == 1)) {
                for (int step = 0; step < 4; step++) {
                    try (Tensor g = Tensor.of(gaussian(r, 37 * 5), 37, 5); Tensor gd = g.to(Device.CUDA)) {
                        pc.backward(g);
                        pd.backward(gd);
                    }
                    assertEquals(Device.CUDA, pd.grad().device());
                    oc.step();
                    od.step();
                    assertBits(pc.value(), pd.value(), "SGD " + java.util.Arrays.toString(c) + " step " + step);
                    if (c[0] > 0) assertBits(oc.momentumBuffer(0), od.momentumBuffer(0), "momentum buffer, step " + step);
                    oc.zeroGrad();
                    od.zeroGrad();
                }
            } finally {
                pc.close();
                pd.close();
            }
        }
    }

    @Test
    void anAutogradGraphRunsOnCudaTensorsAndMatchesTheCpu() {
        Random r = new Random(12);
        float[] x0 = gaussian(r, 6 * 3 * 5 * 4), w0 = gaussian(r, 3), b0 = gaussian(r, 3);
        Var[] cpu = { Var.param(Tensor.of(x0, 6, 3, 5, 4)), Var.param(Tensor.of(w0, 1, 3, 1, 1)), Var.param(Tensor.of(b0, 1, 3, 1, 1)) };
        Var[] gpu = new Var[3];
        for (int i = 0; i < 3; i++) try (Tensor t = cpu[i].value().to(Device.CUDA)) { gpu[i] = Var.param(t.copy()); }
        try (Var yc = cpu[0].mul(cpu[1]).add(cpu[2]).relu().sum(); Var yg = gpu[0].mul(gpu[1]).add(gpu[2]).relu().sum()) {
            assertEquals(Device.CUDA, yg.value().device());
            assertEquals(yc.item(), yg.item(), 0.0, "forward");
            yc.backward();
            yg.backward();
            for (int i = 0; i < 3; i++) assertBits(cpu[i].grad(), gpu[i].grad(), "gradient of input " + i);
        } finally {
            for (int i = 0; i < 3; i++) { cpu[i].close(); gpu[i].close(); }
        }
    }
}
