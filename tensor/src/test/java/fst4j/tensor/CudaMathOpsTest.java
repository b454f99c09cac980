package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.function.BinaryOperator;
import java.util.function.UnaryOperator;

import static org.junit.jupiter.api.Assertions.*;

/**
 * The math, comparison, select and loss-element ops on CUDA tensors (fst_k_unary / fst_k_binary's ops from exp and pow on,
 * fst_k_where) against the same ops on the CPU, on fresh random data with NaN, infinities, zeros of both signs and the
 * branch points of each formula, at sizes 1, 17 and 1031, on a permuted (non-contiguous) view and broadcast. Bit for bit
 * where the formula is arithmetic (the kernel computes the Java lambda's expression in double and rounds once); within
 * one float ulp where exp, log, log1p, tanh or pow come from another library (libdevice or glibc against
 * java.lang.Math), with NaN-ness and infinities exact. Against the device or the host emulator, skipped otherwise.
 */
class CudaMathOpsTest extends CudaTensorTestBase {

    private static final float[] SPECIALS = { Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 0f, -0f, 1f, -1f, 0.5f, -0.5f,
            2f, 100f, -100f, 1e-30f, Float.MIN_VALUE, 89f, -89f, 0.25f, -0.25f };

    /** Normal values of several scales with one in six a special value. */
    private Tensor data(Random r, int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        for (int i = 0; i < v.length; i++)
            v[i] = r.nextInt(6) == 0 ? SPECIALS[r.nextInt(SPECIALS.length)] : (float) (r.nextGaussian() * (r.nextBoolean() ? 1 : 8));
        return keep(Tensor.of(v, shape));
    }

    /** A condition: 0, -0, NaN and non-zero values. */
    private Tensor cond(Random r, int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        float[] c = { 0f, -0f, Float.NaN, 1f, -3f, 0.5f };
        for (int i = 0; i < v.length; i++) v[i] = c[r.nextInt(c.length)];
        return keep(Tensor.of(v, shape));
    }

    /**
     * The CUDA result against the CPU's: same shape, on CUDA, NaN where NaN, infinities and zeros (with their sign) exact,
     * else within ulps float ulps (0: bit for bit).
     */
    private static void assertNear(Tensor cpu, Tensor cuda, int ulps, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray();
        for (int i = 0; i < want.length; i++) {
            float w = want[i], g = got[i];
            if (Float.isNaN(w) || Float.isNaN(g)) {
                assertTrue(Float.isNaN(w) && Float.isNaN(g), what + ": element " + i + " is " + g + " on CUDA, " + w + " on the CPU");
                continue;
            }
            if (Float.floatToRawIntBits(w) == Float.floatToRawIntBits(g)) continue;
            if (ulps == 0 || Float.isInfinite(w) || Float.isInfinite(g) || w == 0 || g == 0)
                fail(what + ": element " + i + " is " + g + " on CUDA, " + w + " on the CPU (bit for bit)");
            assertTrue(Math.abs(g - w) <= ulps * Math.ulp(w), what + ": element " + i + " is " + g + " on CUDA, " + w + " on the CPU (" + ulps + " ulp)");
        }
    }

    /** The shapes every op runs at: x's shape (and a second operand's), contiguous or through a permuted view. */
    private record Case(String name, int[] a, int[] b, int[] perm) {}

    private static final Case[] CASES = {
            new Case("[1]", new int[]{1}, new int[]{1}, null),
            new Case("[17]", new int[]{17}, new int[]{17}, null),
            new Case("[1031]", new int[]{1031}, new int[]{1031}, null),
            new Case("permuted [7, 3, 5]", new int[]{3, 5, 7}, new int[]{3, 5, 7}, new int[]{2, 0, 1}),
            new Case("broadcast [17, 1] x [1, 13]", new int[]{17, 1}, new int[]{1, 13}, null),
    };

    private Tensor view(Tensor t, int[] perm) { return perm == null ? t : keep(t.permute(perm)); }

    private void unary(String what, int ulps, UnaryOperator<Tensor> op) {
        Random r = new Random(what.hashCode());
        for (Case c : CASES) {
            Tensor x = data(r, c.a()), dx = gpu(x);
            Tensor xv = view(x, c.perm()), dxv = view(dx, c.perm());
            if (c.perm() != null) assertFalse(dxv.isContiguous());
            assertNear(keep(op.apply(xv)), keep(op.apply(dxv)), ulps, what + " " + c.name());
        }
    }

    private void binary(String what, int ulps, BinaryOperator<Tensor> op) {
        Random r = new Random(what.hashCode());
        for (Case c : CASES) {
            Tensor a = data(r, c.a()), b = data(r, c.b());
            Tensor av = view(a, c.perm()), bv = view(b, c.perm()), dav = view(gpu(a), c.perm()), dbv = view(gpu(b), c.perm());
            assertNear(keep(op.apply(av, bv)), keep(op.apply(dav, dbv)), ulps, what + " " + c.name());
            // mixed: a contiguous first operand with the other one's view (different strides per operand)
            assertNear(keep(op.apply(keep(av.contiguous()), bv)), keep(op.apply(keep(dav.contiguous()), dbv)), ulps, what + " mixed " + c.name());
            // equal operands (the comparisons' ties)
            assertNear(keep(op.apply(av, av)), keep(op.apply(dav, dav)), ulps, what + " of equal operands " + c.name());
        }
    }

    // ---------------------------------------------------------------- unary

    @Test
    void transcendentalUnaryOpsAsOnTheCpu() {
        unary("exp", 1, Tensor::exp);
        unary("log", 1, Tensor::log);
        unary("sigmoid", 1, Tensor::sigmoid);
        unary("tanh", 1, Tensor::tanh);
        unary("softplusNeg", 1, Loss::softplusNeg);
        unary("sigmoidNeg", 1, Loss::sigmoidNeg);
        for (double p : new double[]{2, 3, 0.5, -0.5, -1, 1.5, 0, 1, Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY})
            unary("pow " + p, 1, x -> x.pow(p));
    }

    @Test
    void arithmeticUnaryOpsBitForBit() {
        unary("sqrt", 0, Tensor::sqrt);
        unary("rsub 1", 0, x -> Elementwise.rsubScalar(1, x));
        unary("rsub -2.5", 0, x -> Elementwise.rsubScalar(-2.5, x));
        for (double beta : new double[]{1, 0.25, 0, 3})
            unary("smoothL1 " + beta, 0, x -> Loss.smoothL1(x, beta));
    }

    @Test
    void javasPowSpecialCasesWhereCsDiffer() {
        // Math.pow(1, NaN) and Math.pow(+-1, +-inf) are NaN (C: 1)
        Tensor x = keep(Tensor.of(new float[]{1, -1, 1, -1, 1, 2, Float.NaN, 0, -0f}, 9));
        Tensor y = keep(Tensor.of(new float[]{Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY, 0, Float.NaN, 0, -1, -3}, 9));
        Tensor got = keep(Elementwise.pow(gpu(x), gpu(y)));
        assertNear(keep(Elementwise.pow(x, y)), got, 0, "pow special cases");
        float[] g = got.toFloatArray();
        for (int i = 0; i < 4; i++) assertTrue(Float.isNaN(g[i]), "pow special case " + i + ": " + g[i]);
        assertEquals(1f, g[4]);
        assertEquals(1f, g[6], "NaN^0");
        assertEquals(Float.NEGATIVE_INFINITY, g[8], "-0^-3");
        for (double p : new double[]{Double.NaN, Double.POSITIVE_INFINITY})
            assertTrue(Float.isNaN(keep(keep(Tensor.of(new float[]{1}, 1).to(Device.CUDA)).pow(p)).toFloatArray()[0]), "1^" + p);
    }

    // ---------------------------------------------------------------- binary

    @Test
    void binaryMathAndComparisonsAsOnTheCpu() {
        binary("pow", 1, Elementwise::pow);
        binary("maximum", 0, Elementwise::maximum);
        binary("minimum", 0, Elementwise::minimum);
        binary("gt", 0, Elementwise::gt);
        binary("ge", 0, Elementwise::ge);
        binary("lt", 0, Elementwise::lt);
        binary("le", 0, Elementwise::le);
        binary("eq", 0, Elementwise::eq);
    }

    @Test
    void maximumAndMinimumOrderSignedZerosAndNanAsJava() {
        Tensor a = keep(Tensor.of(new float[]{0f, -0f, Float.NaN, 1, -0f}, 5)), b = keep(Tensor.of(new float[]{-0f, 0f, 1, Float.NaN, -0f}, 5));
        float[] mx = keep(Elementwise.maximum(gpu(a), gpu(b))).toFloatArray(), mn = keep(Elementwise.minimum(gpu(a), gpu(b))).toFloatArray();
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(mx[0]));
        assertEquals(Float.floatToRawIntBits(0f), Float.floatToRawIntBits(mx[1]));
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(mn[0]));
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(mn[1]));
        assertTrue(Float.isNaN(mx[2]) && Float.isNaN(mx[3]) && Float.isNaN(mn[2]) && Float.isNaN(mn[3]));
    }

    @Test
    void backwardFormulasAndMasksBitForBit() {
        binary("sigmoidBackward", 0, Elementwise::sigmoidBackward);
        binary("tanhBackward", 0, Elementwise::tanhBackward);
        binary("maskNonZero", 0, Elementwise::maskNonZero);
        binary("maskZero", 0, Elementwise::maskZero);
        binary("bceLinear", 0, Loss::bceLinear);
        for (double beta : new double[]{1, 0.25, 0})
            binary("smoothL1Backward " + beta, 0, (g, d) -> Loss.smoothL1Backward(g, d, beta));
        // a condition of zeros, -0 and NaN (NaN counts as true)
        Random r = new Random(3);
        Tensor g = data(r, 1031), c = cond(r, 1031);
        assertNear(keep(Elementwise.maskNonZero(g, c)), keep(Elementwise.maskNonZero(gpu(g), gpu(c))), 0, "maskNonZero with zeros and NaN");
        assertNear(keep(Elementwise.maskZero(g, c)), keep(Elementwise.maskZero(gpu(g), gpu(c))), 0, "maskZero with zeros and NaN");
    }

    // ---------------------------------------------------------------- where

    @Test
    void whereAsOnTheCpu() {
        Random r = new Random(4);
        int[][][] shapes = {   // cond, a, b
                {{1}, {1}, {1}}, {{17}, {17}, {17}}, {{1031}, {1031}, {1031}},
                {{17, 1}, {1, 13}, {17, 13}}, {{1, 13}, {17, 13}, {1}}, {{3, 5, 7}, {5, 1}, {7}},
        };
        for (int[][] s : shapes) {
            Tensor c = cond(r, s[0]), a = data(r, s[1]), b = data(r, s[2]);
            String what = "where " + Shape.str(s[0]) + " " + Shape.str(s[1]) + " " + Shape.str(s[2]);
            assertNear(keep(Elementwise.where(c, a, b)), keep(Elementwise.where(gpu(c), gpu(a), gpu(b))), 0, what);
        }
        // non-contiguous views of all three
        Tensor c = cond(r, 3, 5, 7), a = data(r, 3, 5, 7), b = data(r, 7, 5, 3);
        Tensor cp = keep(c.permute(2, 0, 1)), ap = keep(a.permute(2, 0, 1)), bp = keep(b.permute(0, 2, 1));
        Tensor dcp = keep(gpu(c).permute(2, 0, 1)), dap = keep(gpu(a).permute(2, 0, 1)), dbp = keep(gpu(b).permute(0, 2, 1));
        assertNear(keep(Elementwise.where(cp, ap, bp)), keep(Elementwise.where(dcp, dap, dbp)), 0, "where of permuted views");
        Tensor sl = keep(a.slice(2, 1, 7, 2)), dsl = keep(gpu(a).slice(2, 1, 7, 2));
        Tensor cs = cond(r, 3, 5, 3);
        Tensor seven = keep(Tensor.scalar(-7));
        assertNear(keep(Elementwise.where(cs, sl, seven)), keep(Elementwise.where(gpu(cs), dsl, gpu(seven))), 0, "where of a strided slice and a scalar");
    }

    // ---------------------------------------------------------------- refusals

    @Test
    void refusalsNameTheOpAndTheProblem() {
        Tensor d = gpu(data(new Random(5), 4, 3));
        Tensor h = keep(Tensor.ones(4, 3));
        IllegalArgumentException m = assertThrows(IllegalArgumentException.class, () -> Elementwise.pow(d, h));
        assertTrue(m.getMessage().startsWith("device mismatch: pow"), m.getMessage());
        m = assertThrows(IllegalArgumentException.class, () -> Elementwise.where(h, d, d));
        assertTrue(m.getMessage().startsWith("device mismatch: where"), m.getMessage());
        m = assertThrows(IllegalArgumentException.class, () -> Loss.smoothL1Backward(d, h, 1));
        assertTrue(m.getMessage().startsWith("device mismatch: smoothL1Backward"), m.getMessage());
        m = assertThrows(IllegalArgumentException.class, () -> Loss.smoothL1(d, -1));
        assertTrue(m.getMessage().contains("beta must be finite and >= 0"), m.getMessage());
        Tensor d64 = keep(Tensor.zeros(Device.CUDA, DType.F64, 3));
        UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class, d64::exp);
        assertTrue(u.getMessage().contains("exp on CUDA supports float32 only"), u.getMessage());
        u = assertThrows(UnsupportedOperationException.class, () -> Elementwise.where(d64, d64, d64));
        assertTrue(u.getMessage().contains("where on CUDA supports float32 only"), u.getMessage());
        // lambdas stay host-only, with the reason
        u = assertThrows(UnsupportedOperationException.class, () -> Elementwise.map(d, Math::cbrt));
        assertTrue(u.getMessage().contains("cannot run on CUDA"), u.getMessage());
    }

    @Test
    void theLaunchersRefuseBadArgumentsNamingTheCall() {
        Tensor d = gpu(data(new Random(6), 64));
        MemorySegment p = CudaOps.ptr(d), p4 = MemorySegment.ofAddress(p.address() + 16);
        long[] n = {32}, one = {1};
        // an output overlapping its input (the new ops write fresh outputs)
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.cudaUnary(CudaOps.EXP, 0, n, p, one, p4));
        assertTrue(e.getMessage().startsWith("fst_cuda_unary") && e.getMessage().contains("overlap"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaBinary(CudaOps.POW, 0, n, p, one, p4, one, p4));
        assertTrue(e.getMessage().startsWith("fst_cuda_binary_s") && e.getMessage().contains("overlap"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaWhere(n, p, one, p, one, p, one, p4));
        assertTrue(e.getMessage().startsWith("fst_cuda_where") && e.getMessage().contains("overlap"), e.getMessage());
        // op codes, smooth L1's beta, ranks, negative strides
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaUnary(99, 0, n, p, one, p4));
        assertTrue(e.getMessage().contains("op >= FST_UN_N"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaBinary(99, n, p, one, p, one, p4));
        assertTrue(e.getMessage().contains("op >= FST_BIN_N"), e.getMessage());
        try (Tensor out = Tensor.empty(Device.CUDA, DType.F32, 32)) {
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaUnary(CudaOps.SMOOTH_L1, -1, n, p, one, CudaOps.ptr(out)));
            assertTrue(e.getMessage().contains("FST_UN_SMOOTH_L1"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaBinary(CudaOps.SMOOTH_L1_BWD, Double.POSITIVE_INFINITY, n, p, one, p, one, CudaOps.ptr(out)));
            assertTrue(e.getMessage().contains("FST_BIN_SMOOTH_L1_BWD"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaWhere(n, p, new long[]{-1}, p, one, p, one, CudaOps.ptr(out)));
            assertTrue(e.getMessage().startsWith("fst_cuda_where") && e.getMessage().contains("st[d] < 0"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaWhere(new long[9], p, new long[9], p, new long[9], p, new long[9], CudaOps.ptr(out)));
            assertTrue(e.getMessage().contains("rank > FST_MAXRANK"), e.getMessage());
            // an input reaching past its device block (a span of 280 floats from a 64-float tensor in a 512-byte block; the emulator keeps a
            // registry of blocks, a device does not)
            if (Cuda.isEmulated()) {
                e = assertThrows(IllegalArgumentException.class, () -> Native.cudaUnary(CudaOps.LOG, 0, new long[]{32}, p, new long[]{9}, CudaOps.ptr(out)));
                assertTrue(e.getMessage().contains("not inside one device allocation"), e.getMessage());
            }
        }
    }
}
