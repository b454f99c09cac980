package fst4j.tensor;

import fst4j.shim.Native;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Random;
import java.util.function.BinaryOperator;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Activation's C paths on float32 CPU tensors (NativeActivations: act.c over fst4j_act.h, the CUDA kernels' formulas)
 * against its Java functions: bit for bit where the formula is piecewise linear (leaky ReLU, clamp, hardtanh's, clamp's
 * and abs's gradients, maximum's and minimum's shares), within 2 ulp where libm's erfc, exp, log1p, expm1 or tanh stand
 * in for Java's (the bound the CUDA tests use); NaN where Java gives NaN, infinities and signed zeros as Java's, at sizes
 * on one thread and split over several, on permuted, sliced and broadcast operands (copied to contiguous first: the same
 * bits as the contiguous operand), and the entry points' refusals.
 */
class NativeActivationsTest {

    /** Gaussian values of scale 4 with the awkward ones sprinkled in: NaN, +-inf, +-0, far tails, parameter bounds. */
    static float[] values(int n, long seed) {
        Random r = new Random(seed);
        float[] specials = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, -0f, 0f, -1000f, -89f, -40f, -20f, 1000f, 30f,
                -0.5f, 0.5f, -1f, 1f, 1e-30f, -1e-30f, Float.MIN_VALUE, -Float.MIN_VALUE, 6f, 10f};
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            int k = r.nextInt(20);
            v[i] = k == 0 ? specials[r.nextInt(specials.length)] : (float) (4 * r.nextGaussian());
        }
        return v;
    }

    private record Fwd(String name, boolean exact, UnaryOperator<Tensor> f) {}
    private record Bwd(String name, boolean exact, BinaryOperator<Tensor> f) {}

    private static final List<Fwd> FORWARD = List.of(
            new Fwd("gelu", false, Activation::gelu), new Fwd("geluTanh", false, Activation::geluTanh),
            new Fwd("silu", false, Activation::silu), new Fwd("mish", false, Activation::mish),
            new Fwd("leakyRelu", true, x -> Activation.leakyRelu(x, 0.01)), new Fwd("leakyRelu(-2)", true, x -> Activation.leakyRelu(x, -2)),
            new Fwd("elu", false, x -> Activation.elu(x, 0.7)), new Fwd("softplus", false, x -> Activation.softplus(x, 1, 20)),
            new Fwd("softplus(2, 3)", false, x -> Activation.softplus(x, 2, 3)), new Fwd("softplus(-1.5, 100)", false, x -> Activation.softplus(x, -1.5, 100)),
            new Fwd("clamp", true, x -> Activation.clamp(x, -0.5, 0.5)), new Fwd("clamp(0, inf)", true, x -> Activation.clamp(x, 0, Double.POSITIVE_INFINITY)),
            new Fwd("clamp(2, -1)", true, x -> Activation.clamp(x, 2, -1)), new Fwd("hardtanh", true, x -> Activation.hardtanh(x, -1, 1)));

    private static final List<Bwd> BACKWARD = List.of(
            new Bwd("geluBackward", false, Activation::geluBackward), new Bwd("geluTanhBackward", false, Activation::geluTanhBackward),
            new Bwd("siluBackward", false, Activation::siluBackward), new Bwd("mishBackward", false, Activation::mishBackward),
            new Bwd("leakyReluBackward", true, (g, x) -> Activation.leakyReluBackward(g, x, 0.2)),
            new Bwd("eluBackward", false, (g, x) -> Activation.eluBackward(g, x, 1.3)),
            new Bwd("softplusBackward", false, (g, x) -> Activation.softplusBackward(g, x, 1, 20)),
            new Bwd("softplusBackward(0.5, 2)", false, (g, x) -> Activation.softplusBackward(g, x, 0.5, 2)),
            new Bwd("hardtanhBackward", true, (g, x) -> Activation.hardtanhBackward(g, x, -0.5, 0.5)),
            new Bwd("clampBackward", true, (g, x) -> Activation.clampBackward(g, x, -1, 1)),
            new Bwd("absBackward", true, Activation::absBackward),
            new Bwd("maximumBackward", true, (g, x) -> { try (Tensor b = x.neg()) { return Activation.maximumBackward(g, x, b); } }),
            new Bwd("minimumBackward", true, (g, x) -> { try (Tensor b = x.neg()) { return Activation.minimumBackward(g, x, b); } }),
            new Bwd("maximumBackward(ties)", true, (g, x) -> Activation.maximumBackward(g, x, g)));

    /** f's Java result (NativeActivations off), the reference. */
    private static <T> T java(java.util.function.Supplier<T> f) {
        NativeActivations.enabled = false;
        try { return f.get(); } finally { NativeActivations.enabled = true; }
    }

    static void assertClose(Tensor want, Tensor got, boolean exact, String what) {
        assertArrayEquals(want.shape(), got.shape(), what + " shape");
        assertEquals(DType.F32, got.dtype(), what + " dtype");
        float[] w = want.toFloatArray(), g = got.toFloatArray();
        for (int i = 0; i < w.length; i++) {
            String at = what + " at " + i + ": java " + w[i] + ", C " + g[i];
            if (exact || Float.isNaN(w[i]) || Float.isInfinite(w[i]) || w[i] == 0) {
                assertEquals(Float.floatToIntBits(w[i]), Float.floatToIntBits(g[i]), at);   // NaN as NaN, -0.0 as -0.0
            } else {
                assertEquals(w[i], g[i], 2 * Math.ulp(w[i]), at);
            }
        }
    }

    @Test
    void everyOpEqualsJavaOnOneThreadAndSplit() {
        assertTrue(Native.isLoaded(), "the shim is part of the build");
        int saved = Blas.threads();
        try {
            for (int threads : new int[]{1, 3})
                for (int n : new int[]{1, 17, 1031, 70_001}) {
                    Blas.setThreads(threads);
                    try (Scope sc = Scope.open()) {
                        Tensor x = Tensor.of(values(n, n + 7L * threads), n), g = Tensor.of(values(n, 3L * n + threads), n);
                        for (Fwd f : FORWARD)
                            assertClose(java(() -> f.f().apply(x)), f.f().apply(x), f.exact(), f.name() + " n=" + n + " threads=" + threads);
                        for (Bwd b : BACKWARD)
                            assertClose(java(() -> b.f().apply(g, x)), b.f().apply(g, x), b.exact(), b.name() + " n=" + n + " threads=" + threads);
                    }
                }
        } finally {
            Blas.setThreads(saved);
        }
    }

    /** GELU's tails, where erfc's continued fraction and the exp-of-square split matter: every float in [-30, 10] at a stride. */
    @Test
    void geluAcrossItsRange() {
        int n = 400_001;
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = -30f + 40f * i / (n - 1);
        try (Scope sc = Scope.open()) {
            Tensor x = Tensor.of(v, n), g = Tensor.of(values(n, 5), n);
            assertClose(java(() -> Activation.gelu(x)), Activation.gelu(x), false, "gelu");
            assertClose(java(() -> Activation.geluBackward(g, x)), Activation.geluBackward(g, x), false, "geluBackward");
        }
    }

    /** A permuted, sliced or broadcast operand is copied to contiguous first: the same bits as the contiguous one. */
    @Test
    void stridedAndBroadcastOperandsGiveTheContiguousBits() {
        try (Scope sc = Scope.open()) {
            Tensor base = Tensor.of(values(6 * 7 * 5, 11), 6, 7, 5), gb = Tensor.of(values(7 * 5, 12), 1, 7, 5);
            Tensor perm = base.permute(2, 0, 1), permC = perm.contiguous();
            Tensor slice = base.slice(1, 2, 6), sliceC = slice.contiguous();
            Tensor gFull = gb.expand(6, 7, 5).contiguous();
            for (Fwd f : FORWARD) {
                assertClose(f.f().apply(permC), f.f().apply(perm), true, f.name() + " permuted");
                assertClose(f.f().apply(sliceC), f.f().apply(slice), true, f.name() + " sliced");
                assertClose(java(() -> f.f().apply(perm)), f.f().apply(perm), f.exact(), f.name() + " permuted vs java");
            }
            for (Bwd b : BACKWARD) {
                assertClose(b.f().apply(gFull, base), b.f().apply(gb, base), true, b.name() + " g broadcast");
                assertClose(java(() -> b.f().apply(gb, base)), b.f().apply(gb, base), b.exact(), b.name() + " g broadcast vs java");
                Tensor gp = gFull.permute(2, 0, 1);
                assertClose(b.f().apply(gp.contiguous(), permC), b.f().apply(gp, perm), true, b.name() + " both permuted");
            }
        }
    }

    @Test
    void emptyTensorsAndFloat64() {
        try (Scope sc = Scope.open()) {
            Tensor e = Tensor.empty(DType.F32, 3, 0);
            assertArrayEquals(new int[]{3, 0}, Activation.gelu(e).shape());
            assertArrayEquals(new int[]{3, 0}, Activation.siluBackward(e, e).shape());
            // float64 keeps the Java functions (the C loops are float32): the very values of the Java path
            Tensor d = Tensor.of(new double[]{-3, -0.0, 0.5, Double.NaN, 40}, 5);
            assertEquals(DType.F64, Activation.gelu(d).dtype());
            assertArrayEquals(java(() -> Activation.gelu(d)).toDoubleArray(), Activation.gelu(d).toDoubleArray());
        }
    }

    @Test
    void theEntryPointsRefuseBadArgumentsNamingTheCall() {
        try (Scope sc = Scope.open()) {
            Tensor x = Tensor.of(values(64, 1), 64), y = Tensor.empty(DType.F32, 64);
            MemorySegment xs = x.data(), ys = y.data(), shifted = xs.asSlice(4 * 8), shortSeg = ys.asSlice(0, 4 * 10);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.act(99, 0, 0, xs, ys, 64, 1));
            assertTrue(e.getMessage().startsWith("fst_act_f32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.actBackward(-1, 0, 0, xs, xs, ys, 64, 1));
            assertTrue(e.getMessage().startsWith("fst_act_bwd_f32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.act(CudaActivations.LEAKY_RELU, Double.NaN, 0, xs, ys, 64, 1));
            assertTrue(e.getMessage().startsWith("fst_act_f32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.act(CudaActivations.SOFTPLUS, 0, 20, xs, ys, 64, 1));
            assertTrue(e.getMessage().startsWith("fst_act_f32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.actBackward(CudaActivations.HARDTANH_BWD, 1, -1, xs, xs, ys, 64, 1));
            assertTrue(e.getMessage().startsWith("fst_act_bwd_f32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.act(CudaActivations.GELU, 0, 0, xs, ys, 64, 0));
            assertTrue(e.getMessage().startsWith("fst_act_f32"), e.getMessage());
            // an output shifted against an input (in place, the same address, is allowed)
            e = assertThrows(IllegalArgumentException.class, () -> Native.act(CudaActivations.GELU, 0, 0, xs, shifted, 32, 1));
            assertTrue(e.getMessage().startsWith("fst_act_f32"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.actBackward(CudaActivations.GELU_BWD, 0, 0, xs, ys, shifted, 32, 1));
            assertTrue(e.getMessage().startsWith("fst_act_bwd_f32"), e.getMessage());
            IndexOutOfBoundsException o = assertThrows(IndexOutOfBoundsException.class, () -> Native.act(CudaActivations.GELU, 0, 0, xs, shortSeg, 64, 1));
            assertTrue(o.getMessage().startsWith("fst_act_f32") && o.getMessage().contains("40 bytes"), o.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.act(CudaActivations.GELU, 0, 0, xs, ys, -1, 1));
            assertTrue(e.getMessage().contains("negative"), e.getMessage());
            // in place: y = gelu(y)
            Tensor z = x.copy();
            Native.act(CudaActivations.GELU, 0, 0, z.data(), z.data(), 64, 1);
            assertClose(java(() -> Activation.gelu(x)), z, false, "gelu in place");
            // the Java checks come first, naming the op and the parameter
            IllegalArgumentException p = assertThrows(IllegalArgumentException.class, () -> Activation.softplus(x, 0, 20));
            assertTrue(p.getMessage().startsWith("softplus: beta"), p.getMessage());
        }
    }
}
