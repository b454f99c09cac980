package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/** clipGradNorm against a direct computation, its partial sums against their definition, and its NaN / infinity rule. */
class GradClipTest {
    private static Var withGrad(float[] g) {
        Var p = Var.param(Tensor.zeros(g.length));
        p.backward(Tensor.of(g, g.length));
        return p;
    }

    private static float[] gaussian(SplittableRandom r, int n, double scale) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (scale * r.nextGaussian());
        return v;
    }

    @Property(tries = 15)
    void theNormIsTheL2NormOfAllGradientsAndEachIsScaledByTheCoefficient(@ForAll @IntRange(min = 0, max = 1_000_000) int seed,
                                                                          @ForAll @IntRange(min = 0, max = 2) int scale) {
        SplittableRandom r = new SplittableRandom(seed);
        try (Scope s = Scope.open()) {
            List<Var> ps = new ArrayList<>();
            List<double[]> given = new ArrayList<>();
            double direct = 0;
            for (int n : new int[]{1, 7, 256, 300, 1 + r.nextInt(100_000)}) {
                float[] g = gaussian(r, n, new double[]{1e-3, 0.1, 10}[scale]);
                ps.add(withGrad(g));
                double[] d = new double[n];
                for (int i = 0; i < n; i++) { d[i] = g[i]; direct += d[i] * d[i]; }
                given.add(d);
            }
            ps.add(Var.param(Tensor.ones(3)));   // no gradient: left out
            double[] g64 = {3, -4};                  // a float64 gradient counts too
            Var wide = Var.param(Tensor.zeros(DType.F64, 2));
            wide.backward(Tensor.of(g64, 2));
            ps.add(wide);
            given.add(g64);
            direct = Math.sqrt(direct + 25);
            double maxNorm = 5.0;
            double norm = GradClip.clipGradNorm(ps, maxNorm);
            assertEquals(direct, norm, 1e-12 * direct, "the total norm before clipping");
            double coef = maxNorm / (norm + 1e-6);
            float c = (float) Math.min(coef, 1.0);
            int k = 0;
            for (Var p : ps) {
                if (p.grad() == null) continue;
                double[] before = given.get(k++);
                for (int i = 0; i < before.length; i++) {
                    double want = p.grad().dtype() == DType.F32 ? (float) before[i] * c : before[i] * (double) c;
                    assertEquals(want, p.grad().getFlat(i), 0.0, "gradient " + k + " element " + i);
                }
            }
            if (coef < 1) assertEquals(maxNorm, GradClip.gradNorm(ps), 1e-5 * maxNorm, "the clipped norm");
        }
    }

    @Test
    void gradientsUnderTheMaximumAreLeftAsTheyWere() {
        try (Scope s = Scope.open()) {
            Var a = withGrad(new float[]{3, -0f, 4});
            assertEquals(5.0, GradClip.clipGradNorm(List.of(a), 5.0 + 1e-6), 0.0);
            assertArrayEquals(new float[]{3, -0f, 4}, a.grad().toFloatArray());
            assertEquals(5.0, GradClip.clipGradNorm(List.of(a), Double.POSITIVE_INFINITY), 0.0, "an infinite maximum only measures");
            assertEquals(0.0, GradClip.clipGradNorm(List.of(Var.param(Tensor.ones(2))), 1.0), "no gradient at all: 0, as torch");
            assertEquals(5.0, GradClip.clipGradNorm(List.of(a), 1.0), 0.0);
            assertArrayEquals(new float[]{3 * (float) (1 / (5 + 1e-6)), -0f, 4 * (float) (1 / (5 + 1e-6))}, a.grad().toFloatArray());
        }
    }

    /** torch's default (error_if_nonfinite=False): the norm comes back NaN / infinite and the gradients are scaled all the same. */
    @Test
    void aNaNOrInfiniteNormClipsAsTorchOrIsRefusedWithNothingChanged() {
        try (Scope s = Scope.open()) {
            Var a = withGrad(new float[]{1, Float.NaN}), b = withGrad(new float[]{2, -3});
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> GradClip.clipGradNorm(List.of(a, b), 1.0, true));
            assertTrue(e.getMessage().contains("is NaN, so they cannot be clipped"), e.getMessage());
            assertArrayEquals(new float[]{2, -3}, b.grad().toFloatArray(), "refused: nothing changed");
            assertTrue(Double.isNaN(GradClip.clipGradNorm(List.of(a, b), 1.0)));
            for (float v : b.grad().toFloatArray()) assertTrue(Float.isNaN(v), "torch multiplies by the NaN coefficient");

            Var c = withGrad(new float[]{Float.POSITIVE_INFINITY, 2}), d = withGrad(new float[]{-3, 0});
            assertThrows(IllegalStateException.class, () -> GradClip.clipGradNorm(List.of(c, d), 1.0, true));
            assertArrayEquals(new float[]{-3, 0}, d.grad().toFloatArray());
            assertEquals(Double.POSITIVE_INFINITY, GradClip.clipGradNorm(List.of(c, d), 1.0));
            float[] cg = c.grad().toFloatArray();
            assertTrue(Float.isNaN(cg[0]), "inf * 0");
            assertEquals(0f, cg[1]);
            assertArrayEquals(new float[]{-0f, 0f}, d.grad().toFloatArray(), "finite gradients times 0");
        }
    }

    @Test
    void aNaNOrNegativeMaximumAndAParameterListedTwiceAreRefused() {
        try (Scope s = Scope.open()) {
            Var a = withGrad(new float[]{3, 4});
            for (double bad : new double[]{Double.NaN, -1})
                assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(List.of(a), bad));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GradClip.clipGradNorm(List.of(a, a), 1));
            assertTrue(e.getMessage().contains("twice"), e.getMessage());
            assertArrayEquals(new float[]{3, 4}, a.grad().toFloatArray());
        }
    }

    /** fst_sumsq_parts: part p is the sum of the squares at p, p + 256, ... in order, in double, on any thread count. */
    @Test
    void thePartialSumsAreTheirDefinitionOnAnyThreadCount() {
        SplittableRandom r = new SplittableRandom(4);
        int threads = Blas.threads();
        try (Scope s = Scope.open(); Arena arena = Arena.ofConfined()) {
            for (int n : new int[]{0, 1, 255, 256, 257, 100_003, 400_000}) {
                float[] x = gaussian(r, n, 1);
                double[] want = new double[Native.NORM_PARTS];
                for (int i = 0; i < n; i++) want[i % Native.NORM_PARTS] += (double) x[i] * x[i];
                Tensor t = Tensor.of(x, n);
                MemorySegment buf = arena.allocate(8L * Native.NORM_PARTS, 8);
                for (int th : new int[]{1, 2, 3}) {
                    Blas.setThreads(th);
                    try {
                        assertArrayEquals(want, GradClip.hostParts(t, buf), "n " + n + ", " + th + " threads");
                    } finally {
                        Blas.setThreads(threads);
                    }
                }
            }
        }
    }
}
