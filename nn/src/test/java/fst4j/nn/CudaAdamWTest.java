package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * AdamW on CUDA parameters (k_adamw, the moments on the device) against AdamW on the CPU (its Java loop and fst_adamw),
 * and gradient clipping of CUDA gradients (k_sumsq_part, k_scale) against the CPU's, bit for bit. Against the device, or
 * the host emulator in the "cuda-emulator" surefire execution; skipped with the reason where neither is usable.
 */
class CudaAdamWTest {
    @BeforeEach
    void needsCuda() {
        System.out.println("CUDA back end: " + Cuda.status());
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static float[] gaussian(Random r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (scale * r.nextGaussian());
        return v;
    }

    /** Bit for bit, a NaN matching any NaN (x86 and the GPU write different NaN payloads; CudaOptimizerTest says why). */
    private static void assertBits(Tensor want, Tensor got, String what) {
        assertEquals(Device.CUDA, got.device(), what);
        float[] a = want.toFloatArray(), b = got.toFloatArray();
        assertEquals(a.length, b.length, what);
        for (int i = 0; i < a.length; i++)
            assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]), what + ": element " + i + " " + b[i] + " vs " + a[i]);
    }

    private static Map<String, Tensor> state(Optimizer o) { return new LinkedHashMap<>(o.stateDict().tensors()); }

    /** Four steps of each configuration; one shape on the CPU's Java loop, one on its C update, with zeros, a NaN and an infinity. */
    @Test
    void adamwOnCudaParametersMatchesTheCpuStepForStep() {
        Random r = new Random(31);
        int[][] shapes = {{37, 5}, {2051}};
        for (boolean amsgrad : new boolean[]{false, true})
            for (double wd : new double[]{0, 0.05}) {
                try (Scope s = Scope.open()) {
                    List<Var> cpu = new ArrayList<>(), gpu = new ArrayList<>();
                    for (int[] shape : shapes) {
                        int n = 1;
                        for (int d : shape) n *= d;
                        float[] w0 = gaussian(r, n, 1);
                        w0[0] = 0f; w0[1] = -0f; w0[2] = Float.NaN;
                        cpu.add(Var.param(Tensor.of(w0, shape)));
                        gpu.add(Var.param(Tensor.of(w0, shape).to(Device.CUDA)));
                    }
                    try (AdamW oc = new AdamW(cpu, 0.01, 0.9, 0.999, 1e-8, wd, amsgrad); AdamW og = new AdamW(gpu, 0.01, 0.9, 0.999, 1e-8, wd, amsgrad)) {
                        for (int step = 0; step < 4; step++) {
                            oc.zeroGrad();
                            og.zeroGrad();
                            for (int p = 0; p < cpu.size(); p++) {
                                if (p == 0 && step == 2) continue;   // its own step count lags on both
                                float[] g = gaussian(r, (int) cpu.get(p).value().numel(), step % 2 == 0 ? 1 : 1e-3);
                                g[3] = 0f; g[4] = -0f; g[5] = Float.NaN; g[6] = step == 1 ? Float.POSITIVE_INFINITY : 2f;
                                Tensor gt = Tensor.of(g, cpu.get(p).shape());
                                cpu.get(p).backward(gt);
                                gpu.get(p).backward(gt.to(Device.CUDA));
                            }
                            oc.step();
                            og.step();
                            String at = "amsgrad " + amsgrad + ", wd " + wd + ", step " + step;
                            for (int p = 0; p < cpu.size(); p++)
                                try (Tensor want = cpu.get(p).value().to(Device.CUDA)) { assertBits(want, gpu.get(p).value(), "weight " + p + ", " + at); }
                            Map<String, Tensor> sc = state(oc), sg = state(og);
                            assertEquals(sc.keySet(), sg.keySet(), at);
                            for (String k : sc.keySet()) try (Tensor want = sc.get(k).to(Device.CUDA)) { assertBits(want, sg.get(k), k + ", " + at); }
                            assertArrayEquals(oc.stateDict().counts().get("step"), og.stateDict().counts().get("step"), at);
                        }
                    } finally {
                        cpu.forEach(Var::close);
                        gpu.forEach(Var::close);
                    }
                }
            }
    }

    /** A CUDA AdamW given a state saved on the CPU takes it onto the device and continues as the CPU one does. */
    @Test
    void aCpuStateLoadsIntoACudaAdamW() {
        Random r = new Random(32);
        try (Scope s = Scope.open()) {
            float[] w0 = gaussian(r, 3000, 1);
            Var pc = Var.param(Tensor.of(w0, 3000)), pg = Var.param(Tensor.of(w0, 3000).to(Device.CUDA));
            try (AdamW oc = new AdamW(List.of(pc), 0.01, 0.02); AdamW og = new AdamW(List.of(pg), 0.01, 0.02)) {
                for (int step = 0; step < 2; step++) {
                    oc.zeroGrad();
                    pc.backward(Tensor.of(gaussian(r, 3000, 1), 3000));
                    oc.step();
                }
                pg.value().copyFrom(pc.value());
                og.loadStateDict(oc.stateDict());
                assertEquals(Device.CUDA, og.stateDict().tensors().get("exp_avg.0").device());
                float[] g = gaussian(r, 3000, 1);
                oc.zeroGrad();
                pc.backward(Tensor.of(g, 3000));
                pg.backward(Tensor.of(g, 3000).to(Device.CUDA));
                oc.step();
                og.step();
                try (Tensor want = pc.value().to(Device.CUDA)) { assertBits(want, pg.value(), "weight after the restored step"); }
            } finally {
                pc.close();
                pg.close();
            }
        }
    }

    /** A step that meets a closed parameter updates no CUDA parameter before it (everything is checked first). */
    @Test
    void aRefusedStepLeavesTheCudaParametersAsTheyWere() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.ones(5).to(Device.CUDA)), b = Var.param(Tensor.ones(5).to(Device.CUDA));
            try (AdamW o = new AdamW(List.of(a, b), 0.1, 0.01)) {
                a.backward(Tensor.ones(5).to(Device.CUDA));
                b.backward(Tensor.ones(5).to(Device.CUDA));
                b.value().close();
                assertThrows(IllegalStateException.class, o::step);
                assertArrayEquals(Tensor.ones(5).toFloatArray(), a.value().toFloatArray(), "a was stepped");
                assertEquals(0, o.steps());
                assertEquals(List.of(), List.copyOf(o.stateDict().tensors().keySet()));
            } finally {
                a.close();
                b.close();
            }
        }
    }

    /** The norm of CUDA gradients is the CPU's to the bit (the same partial sums), and so are the clipped gradients. */
    @Test
    void clippingCudaGradientsGivesTheCpusNormAndBits() {
        Random r = new Random(33);
        int[] sizes = {1, 255, 257, 5000, 70001};
        try (Scope s = Scope.open()) {
            List<Var> cpu = new ArrayList<>(), gpu = new ArrayList<>(), mixed = new ArrayList<>();
            for (int n : sizes) {
                float[] g = gaussian(r, n, 0.3);
                Var c = Var.param(Tensor.zeros(n)), d = Var.param(Tensor.zeros(n).to(Device.CUDA)), m = Var.param(Tensor.zeros(n));
                c.backward(Tensor.of(g, n));
                d.backward(Tensor.of(g, n).to(Device.CUDA));
                m.backward(Tensor.of(g, n));
                cpu.add(c);
                gpu.add(d);
                mixed.add(n % 2 == 1 ? m : d);
            }
            assertEquals(GradClip.gradNorm(cpu), GradClip.gradNorm(gpu), 0.0, "norm on CUDA");
            assertEquals(GradClip.gradNorm(cpu), GradClip.gradNorm(mixed), 0.0, "norm of a model split across the devices");
            double nc = GradClip.clipGradNorm(cpu, 1.0), ng = GradClip.clipGradNorm(gpu, 1.0);
            assertEquals(nc, ng, 0.0);
            assertTrue(nc > 1.0, "clipped: " + nc);
            for (int i = 0; i < sizes.length; i++)
                try (Tensor want = cpu.get(i).grad().to(Device.CUDA)) { assertBits(want, gpu.get(i).grad(), "clipped gradient " + i); }
            assertEquals(1.0, GradClip.gradNorm(gpu), 1e-6, "the clipped norm");
            cpu.forEach(Var::close);
            gpu.forEach(Var::close);
            mixed.forEach(Var::close);
        }
    }
}
