package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Blas;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * AdamW against the textbook formula in float64 (torch.optim.AdamW's), its C update against its Java loop bit for bit,
 * and the hyper-parameters and steps it refuses without changing anything.
 */
class AdamWTest {
    /**
     * torch.optim.AdamW's update of one element in double (the reference: no float rounding anywhere), with bounds on the
     * size of what the float version rounds: mAbs (m's terms without their signs, as m may cancel to near 0) and wAbs
     * (|w| plus each update at the size of mAbs).
     */
    static final class Ref {
        double w, m, v, vmax, mAbs, wAbs;
        long t;

        Ref(double w) { this.w = w; this.wAbs = Math.abs(w); }

        void step(double g, double lr, double b1, double b2, double eps, double wd, boolean amsgrad) {
            t++;
            w *= 1 - lr * wd;
            m = b1 * m + (1 - b1) * g;
            mAbs = b1 * mAbs + (1 - b1) * Math.abs(g);
            v = b2 * v + (1 - b2) * g * g;
            vmax = Math.max(vmax, v);
            double bc1 = 1 - Math.pow(b1, t), denom = Math.sqrt((amsgrad ? vmax : v) / (1 - Math.pow(b2, t))) + eps;
            w -= lr * (m / bc1) / denom;
            wAbs = wAbs * Math.abs(1 - lr * wd) + lr * (mAbs / bc1) / denom;
        }
    }

    private static float[] gaussian(SplittableRandom r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (scale * r.nextGaussian());
        return v;
    }

    /**
     * Fresh random weights and gradients of awkward sizes (1, a prime, just below, at and above the C update's 1024, several
     * thread chunks), several steps, one parameter skipping a step (its own t lags); every weight and moment within a few
     * float roundings of the double formula.
     */
    @Property(tries = 12)
    void matchesTheFloat64FormulaOverSeveralSteps(@ForAll @IntRange(min = 0, max = 1_000_000) int seed, @ForAll boolean amsgrad,
                                                  @ForAll @IntRange(min = 0, max = 2) int hyper) {
        double[][] hs = {{1e-3, 0.9, 0.999, 1e-8, 1e-2}, {0.05, 0.8, 0.99, 1e-6, 0.1}, {0.3, 0.0, 0.5, 1e-3, 0.0}};   // lr, b1, b2, eps, wd
        double lr = hs[hyper][0], b1 = hs[hyper][1], b2 = hs[hyper][2], eps = hs[hyper][3], wd = hs[hyper][4];
        int[] sizes = {1, 13, 1023, 1024, 1031, 70001};
        SplittableRandom r = new SplittableRandom(seed);
        try (Scope s = Scope.open()) {
            List<Var> ps = new ArrayList<>();
            List<Ref[]> refs = new ArrayList<>();
            for (int n : sizes) {
                float[] w0 = gaussian(r, n, 1);
                ps.add(Var.param(Tensor.of(w0, n)));
                Ref[] rs = new Ref[n];
                for (int i = 0; i < n; i++) rs[i] = new Ref(w0[i]);
                refs.add(rs);
            }
            try (AdamW opt = new AdamW(ps, lr, b1, b2, eps, wd, amsgrad)) {
                for (int step = 0; step < 5; step++) {
                    opt.zeroGrad();
                    for (int p = 0; p < ps.size(); p++) {
                        if (p == 1 && step == 2) continue;   // no gradient: skipped, and its t does not count the step
                        // gradients of varying scale, so that v and v_hat also shrink (amsgrad keeps the max)
                        float[] g = gaussian(r, sizes[p], step % 2 == 0 ? 1 : 0.01);
                        ps.get(p).backward(Tensor.of(g, sizes[p]));
                        for (int i = 0; i < sizes[p]; i++) refs.get(p)[i].step(g[i], lr, b1, b2, eps, wd, amsgrad);
                    }
                    opt.step();
                }
                for (int p = 0; p < ps.size(); p++) {
                    float[] w = ps.get(p).value().toFloatArray();
                    float[] m = opt.stateDict().tensors().get("exp_avg." + p).toFloatArray();
                    float[] v = opt.stateDict().tensors().get("exp_avg_sq." + p).toFloatArray();
                    for (int i = 0; i < sizes[p]; i++) {
                        Ref ref = refs.get(p)[i];
                        String at = "parameter " + p + " [" + sizes[p] + "] element " + i + " (seed " + seed + ")";
                        // a few float roundings (2^-24 each) of what was added up, over five steps
                        assertEquals(ref.w, w[i], 1e-6 * ref.wAbs + 1e-30, "weight of " + at);
                        assertEquals(ref.m, m[i], 1e-6 * ref.mAbs + 1e-30, "exp_avg of " + at);
                        assertEquals(ref.v, v[i], 1e-6 * ref.v + 1e-30, "exp_avg_sq of " + at);
                    }
                    assertEquals(p == 1 ? 4 : 5, opt.stateDict().counts().get("step")[p]);
                }
                assertEquals(5, opt.steps());
            }
        }
    }

    private static List<float[]> train(boolean nativeStep, boolean amsgrad, double wd, int threads) {
        boolean before = AdamW.nativeStep;
        int t0 = Blas.threads();
        AdamW.nativeStep = nativeStep;
        Blas.setThreads(threads);
        try (Scope s = Scope.open()) {
            SplittableRandom r = new SplittableRandom(21);
            int[] sizes = {1024, 4099, 150_001};
            List<Var> ps = new ArrayList<>();
            for (int n : sizes) {
                float[] w = gaussian(r, n, 1);
                // the edges of the arithmetic: zeros of both signs, a tiny and a huge weight, a NaN, a subnormal
                w[0] = 0f; w[1] = -0f; w[2] = 1e-30f; w[3] = 3e38f; w[5] = Float.NaN; w[6] = Float.MIN_VALUE;
                ps.add(Var.param(Tensor.of(w, n)));
            }
            try (AdamW opt = new AdamW(ps, 0.01, 0.9, 0.999, 1e-8, wd, amsgrad)) {
                for (int step = 0; step < 4; step++) {
                    opt.zeroGrad();
                    for (int p = 0; p < ps.size(); p++) {
                        float[] g = gaussian(r, sizes[p], step == 1 ? 1e-3 : 1);
                        g[0] = 0f; g[1] = -0f; g[7] = Float.NaN; g[8] = 1e20f; g[9] = -1e-40f; g[10] = step == 2 ? Float.POSITIVE_INFINITY : 1f;
                        ps.get(p).backward(Tensor.of(g, sizes[p]));
                    }
                    opt.step();
                }
                List<float[]> out = new ArrayList<>();
                for (Var p : ps) out.add(p.value().toFloatArray());
                opt.stateDict().tensors().values().forEach(t -> out.add(t.toFloatArray()));
                return out;
            }
        } finally {
            AdamW.nativeStep = before;
            Blas.setThreads(t0);
        }
    }

    /** fst_adamw (C, vectorised, threaded) and the Java loop: the same bits (a NaN matches a NaN). */
    @ParameterizedTest
    @CsvSource({"false,0,1", "false,0.01,2", "true,0.01,2", "true,0,1"})
    void theCUpdateGivesTheJavaLoopsBits(boolean amsgrad, double wd, int threads) {
        List<float[]> j = train(false, amsgrad, wd, threads), n = train(true, amsgrad, wd, threads);
        assertEquals(j.size(), n.size());
        for (int t = 0; t < j.size(); t++)
            for (int i = 0; i < j.get(t).length; i++)
                assertEquals(Float.floatToIntBits(j.get(t)[i]), Float.floatToIntBits(n.get(t)[i]),
                        "tensor " + t + " element " + i + ": C " + n.get(t)[i] + ", Java " + j.get(t)[i]);
        assertTrue(Float.isNaN(j.get(0)[7]), "a NaN gradient makes its weight NaN, as in torch");
        assertTrue(Float.isFinite(j.get(0)[20]));
    }

    @Test
    void nanNegativeOrInfiniteHyperParametersAreRefused() {
        try (Scope s = Scope.open()) {
            List<Var> ps = List.of(Var.param(Tensor.ones(4)));
            double nan = Double.NaN, inf = Double.POSITIVE_INFINITY;
            double[][] bad = {{nan, 0.9, 0.999, 1e-8, 0}, {-1e-3, 0.9, 0.999, 1e-8, 0}, {inf, 0.9, 0.999, 1e-8, 0},
                    {1e-3, nan, 0.999, 1e-8, 0}, {1e-3, 1.0, 0.999, 1e-8, 0}, {1e-3, -0.1, 0.999, 1e-8, 0}, {1e-3, 0.9, 1.0, 1e-8, 0},
                    {1e-3, 0.9, nan, 1e-8, 0}, {1e-3, 0.9, 0.999, nan, 0}, {1e-3, 0.9, 0.999, -1e-8, 0}, {1e-3, 0.9, 0.999, inf, 0},
                    {1e-3, 0.9, 0.999, 1e-8, nan}, {1e-3, 0.9, 0.999, 1e-8, -0.01}, {1e-3, 0.9, 0.999, 1e-8, inf}};
            for (double[] h : bad) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new AdamW(ps, h[0], h[1], h[2], h[3], h[4], false),
                        java.util.Arrays.toString(h));
                assertTrue(e.getMessage().startsWith("AdamW"), e.getMessage());
            }
            try (AdamW opt = new AdamW(ps, 1e-3, 0.01)) {
                for (double lr : new double[]{nan, -1, inf}) assertThrows(IllegalArgumentException.class, () -> opt.setLr(lr));
                assertEquals(1e-3, opt.lr());
                opt.setLr(0);
                assertEquals(0, opt.lr());
            }
            Var computed = Var.param(Tensor.ones(2)).mul(2.0);   // a non-leaf: frozen leaves are taken, computed values are not
            assertThrows(IllegalArgumentException.class, () -> new AdamW(List.of(computed), 1e-3, 0));
            Var wide = Var.param(Tensor.ones(fst4j.tensor.DType.F64, 2));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new AdamW(List.of(wide), 1e-3, 0));
            assertTrue(e.getMessage().contains("contiguous float32"), e.getMessage());
        }
    }

    /** A step that meets a closed parameter, a malformed gradient or a float overflow changes no weight, moment or count. */
    @Test
    void aRefusedStepChangesNothing() {
        try (Scope s = Scope.open()) {
            Var a = Var.param(Tensor.ones(2000)), b = Var.param(Tensor.ones(4)), c = Var.param(Tensor.ones(3));   // C path, Java loop
            try (AdamW opt = new AdamW(List.of(a, b, c), 0.1, 0.01)) {
                a.backward(Tensor.ones(2000));
                b.backward(Tensor.ones(4));
                c.backward(Tensor.ones(3));
                opt.step();
                float[] a1 = a.value().toFloatArray(), m1 = opt.stateDict().tensors().get("exp_avg.0").toFloatArray();
                opt.setLr(1e39);   // finite in double, its step size is not a float
                IllegalStateException e = assertThrows(IllegalStateException.class, opt::step);
                assertTrue(e.getMessage().contains("is not a finite float"), e.getMessage());
                assertArrayEquals(a1, a.value().toFloatArray(), "a was stepped");
                opt.setLr(0.1);
                b.value().close();
                assertThrows(IllegalStateException.class, opt::step);
                assertArrayEquals(a1, a.value().toFloatArray(), "a was stepped");
                assertArrayEquals(new long[]{1, 1, 1}, opt.stateDict().counts().get("step"));
            }
        }
    }

    /** The C update refuses scalars that no AdamW derives (its own check, for callers of the shim). */
    @Test
    void theShimRefusesScalarsNoAdamWDerives() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.ones(8), g = Tensor.ones(8), m = Tensor.zeros(8), v = Tensor.zeros(8);
            var nul = java.lang.foreign.MemorySegment.NULL;
            float[][] bad = {{1, 1.5f, 0.1f, 0.999f, 0.001f, 0.1f, 1, 1e-8f}, {1, 0.9f, 0.1f, 0.999f, 0.001f, Float.NaN, 1, 1e-8f},
                    {1, 0.9f, 0.1f, 0.999f, 0.001f, 0.1f, 0, 1e-8f}, {1, 0.9f, 0.1f, 0.999f, 0.001f, 0.1f, 1, -1e-8f},
                    {Float.POSITIVE_INFINITY, 0.9f, 0.1f, 0.999f, 0.001f, 0.1f, 1, 1e-8f}, {1, 0.9f, 0f, 0.999f, 0.001f, 0.1f, 1, 1e-8f}};
            for (float[] b : bad) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.adamw(w.data(), g.data(), m.data(), v.data(),
                        nul, 8, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], 1), java.util.Arrays.toString(b));
                assertTrue(e.getMessage().contains("fst_adamw rejected"), e.getMessage());
            }
            assertArrayEquals(Tensor.ones(8).toFloatArray(), w.toFloatArray());
            assertThrows(IndexOutOfBoundsException.class, () -> fst4j.shim.Native.adamw(w.data(), g.data(), m.data(), v.data(), nul, 9,
                    1, 0.9f, 0.1f, 0.999f, 0.001f, 0.1f, 1, 1e-8f, 1));
        }
    }
}
