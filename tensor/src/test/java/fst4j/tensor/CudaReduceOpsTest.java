package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Reduce.max, Reduce.argmax and Reduce.var on CUDA tensors (fst_k_argmax / argmax_part, fst_k_var / var_part / var_mean)
 * against the CPU on fresh random data with ties, zeros of both signs, NaN and infinities: sizes 1, 17 and 1031 (past the
 * 256 values per output where the kernels switch to partial scans), several axes, keepDim, permuted and sliced views.
 * max and argmax choose the CPU's element bit for bit at every length (the partial scans are combined by value and
 * index); var is bit for bit up to 256 values per output (one thread per output, the CPU's two passes in its order) and
 * within 1e-6 relative past that (partial sums reorder the additions). Against the device or the host emulator.
 */
class CudaReduceOpsTest extends CudaTensorTestBase {

    /** Values with many ties (small integers, +0 and -0) and, where nan, a NaN or an infinity in one value of 40. */
    private Tensor data(Random r, boolean ties, boolean nan, int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        float[] sp = { Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN };
        for (int i = 0; i < v.length; i++) {
            if (nan && r.nextInt(40) == 0) v[i] = sp[r.nextInt(sp.length)];
            else if (ties) v[i] = r.nextInt(4) == 0 ? (r.nextBoolean() ? 0f : -0f) : (float) (r.nextInt(7) - 5);
            else v[i] = (float) (r.nextGaussian() * 3 + 1);
        }
        return keep(Tensor.of(v, shape));
    }

    private static void assertBits(Tensor cpu, Tensor cuda, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray();
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]) && !(Float.isNaN(want[i]) && Float.isNaN(got[i])))
                fail(what + ": element " + i + " is " + got[i] + " on CUDA, " + want[i] + " on the CPU");
    }

    private static void assertRel(Tensor cpu, Tensor cuda, double rel, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray();
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(want[i]) || Float.isInfinite(want[i])) { assertEquals(want[i], got[i], what + ": element " + i); continue; }
            assertEquals(want[i], got[i], rel * Math.abs(want[i]), what + ": element " + i);
        }
    }

    /** A shape and the axes to reduce; view: permute (or slice) before reducing. */
    private record Case(int[] shape, int[][] axes, int[] perm) {}

    private static final Case[] CASES = {
            new Case(new int[]{1}, new int[][]{{}, {0}}, null),
            new Case(new int[]{17}, new int[][]{{}, {0}, {-1}}, null),
            new Case(new int[]{1031}, new int[][]{{}, {0}}, null),
            new Case(new int[]{3, 1031}, new int[][]{{1}, {0}, {}}, null),
            new Case(new int[]{1031, 2}, new int[][]{{0}, {1}}, null),
            new Case(new int[]{3, 5, 7}, new int[][]{{0, 2}, {1}, {-1}, {}}, null),
            new Case(new int[]{4, 6, 300}, new int[][]{{2}, {0, 2}, {1}}, new int[]{2, 0, 1}),   // permuted: [300, 4, 6]
    };

    private Tensor view(Tensor t, int[] perm) { return perm == null ? t : keep(t.permute(perm)); }

    @Test
    void maxChoosesTheCpusElement() {
        Random r = new Random(11);
        for (Case c : CASES)
            for (boolean ties : new boolean[]{true, false})
                for (boolean nan : new boolean[]{false, true}) {
                    Tensor x = data(r, ties, nan, c.shape()), xv = view(x, c.perm()), dv = view(gpu(x), c.perm());
                    for (int[] axes : c.axes())
                        for (boolean keepDim : new boolean[]{false, true}) {
                            String what = "max " + Shape.str(xv.shape()) + " over " + java.util.Arrays.toString(axes) + (keepDim ? " keepDim" : "")
                                    + (ties ? " ties" : "") + (nan ? " NaN" : "");
                            assertBits(keep(xv.max(keepDim, axes)), keep(dv.max(keepDim, axes)), what);
                        }
                }
    }

    @Test
    void argmaxChoosesTheCpusIndex() {
        Random r = new Random(12);
        for (Case c : CASES)
            for (boolean ties : new boolean[]{true, false})
                for (boolean nan : new boolean[]{false, true}) {
                    Tensor x = data(r, ties, nan, c.shape()), xv = view(x, c.perm()), dv = view(gpu(x), c.perm());
                    for (int axis = -1; axis < xv.dim(); axis++)
                        for (boolean keepDim : new boolean[]{false, true}) {
                            int ax = axis;
                            String what = "argmax " + Shape.str(xv.shape()) + " along " + ax + (keepDim ? " keepDim" : "") + (ties ? " ties" : "") + (nan ? " NaN" : "");
                            assertBits(keep(Reduce.argmax(xv, ax, keepDim)), keep(Reduce.argmax(dv, ax, keepDim)), what);
                        }
                }
    }

    /**
     * Past 256 values a partial scan takes values p, p + 256, ...: a first maximum at index 2 (partial 2) must win over an
     * equal one at 257 (partial 1), which a combination in partial order alone would choose; the same for -0 before +0,
     * and for the first (argmax) and last (max) NaN.
     */
    @Test
    void thePartialScansAreCombinedByIndex() {
        float[] v = new float[600];
        java.util.Arrays.fill(v, -1f);
        v[2] = -0f;
        v[257] = 0f;
        Tensor x = keep(Tensor.of(v, 600)), d = gpu(x);
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(keep(d.max(false)).toFloatArray()[0]), "max: the first of -0 and +0");
        assertEquals(2f, keep(d.argmax(0)).toFloatArray()[0], "argmax: the first of -0 and +0");
        assertBits(keep(x.max(false)), keep(d.max(false)), "max -0 before +0");
        v[2] = 5f;
        v[257] = 5f;
        x = keep(Tensor.of(v, 600));
        d = gpu(x);
        assertEquals(2f, keep(d.argmax(0)).toFloatArray()[0], "argmax: the first of two maxima");
        v[300] = Float.NaN;
        v[3] = Float.NaN;
        v[599] = Float.intBitsToFloat(0x7fc00001);   // another NaN payload: the host keeps it, so max's last NaN shows
        x = keep(Tensor.of(v, 600));
        d = gpu(x);
        assertEquals(3f, keep(d.argmax(0)).toFloatArray()[0], "argmax: the first NaN");
        assertEquals(3f, keep(Reduce.argmax(x, 0, false)).toFloatArray()[0], "the CPU's argmax: the first NaN");
        float mx = keep(d.max(false)).toFloatArray()[0];
        assertTrue(Float.isNaN(mx));
        // max keeps the last NaN, as the CPU: its payload shows where the conversions keep it (x86: the emulator; a GPU
        // returns its canonical NaN from arithmetic on a NaN, so only NaN-ness is compared there)
        if (Cuda.isEmulated()) assertEquals(0x7fc00001, Float.floatToRawIntBits(mx), "max: the last NaN");
    }

    /** Row i of [600, 600] has its single largest value at column i: every position of a long row, every partial scan. */
    @Test
    void everyPositionOfALongRowCanHoldTheMaximum() {
        int n = 600;
        float[] v = new float[n * n];
        Random r = new Random(17);
        for (int i = 0; i < v.length; i++) v[i] = (float) -Math.abs(r.nextGaussian()) - 1;
        for (int i = 0; i < n; i++) v[i * n + i] = 10 + i;
        Tensor x = keep(Tensor.of(v, n, n)), d = gpu(x);
        float[] arg = keep(d.argmax(1)).toFloatArray(), mx = keep(d.max(false, 1)).toFloatArray();
        for (int i = 0; i < n; i++) {
            assertEquals(i, arg[i], "argmax of row " + i);
            assertEquals(10 + i, mx[i], "max of row " + i);
        }
        assertBits(keep(x.argmax(1)), keep(d.argmax(1)), "argmax [600, 600] along 1");
    }

    @Test
    void varMatchesTheCpu() {
        Random r = new Random(13);
        for (Case c : CASES)
            for (boolean nan : new boolean[]{false, true}) {
                Tensor x = data(r, false, nan, c.shape()), xv = view(x, c.perm()), dv = view(gpu(x), c.perm());
                for (int[] axes : c.axes())
                    for (int correction : new int[]{1, 0, 2})
                        for (boolean keepDim : new boolean[]{false, true}) {
                            Tensor want = keep(Reduce.var(xv, keepDim, correction, axes)), got = keep(Reduce.var(dv, keepDim, correction, axes));
                            long nred = want.numel() == 0 ? 0 : xv.numel() / want.numel();
                            String what = "var " + Shape.str(xv.shape()) + " over " + java.util.Arrays.toString(axes) + " correction " + correction
                                    + (keepDim ? " keepDim" : "") + (nan ? " NaN" : "") + " (" + nred + " values per output)";
                            if (nred <= Native.CUDA_PARTS) assertBits(want, got, what);
                            else assertRel(want, got, 1e-6, what);
                        }
            }
    }

    /**
     * Values far from 0 (1e5 + N(0, 2)): the two passes must subtract the mean in double before squaring, and a mean that
     * is off by a float rounding or a wrong count moves the variance visibly.
     */
    @Test
    void varOfValuesFarFromZero() {
        Random r = new Random(16);
        for (int[] shape : new int[][]{{17}, {1031}, {5, 300}, {300, 5}}) {
            float[] v = new float[Math.toIntExact(Shape.numel(shape))];
            for (int i = 0; i < v.length; i++) v[i] = (float) (1e5 + 2 * r.nextGaussian());
            Tensor x = keep(Tensor.of(v, shape)), d = gpu(x);
            for (int axis = 0; axis < shape.length; axis++) {
                Tensor want = keep(Reduce.var(x, false, 1, axis)), got = keep(Reduce.var(d, false, 1, axis));
                String what = "var far from 0 " + Shape.str(shape) + " along " + axis;
                if (shape[axis] <= Native.CUDA_PARTS) assertBits(want, got, what);
                else assertRel(want, got, 1e-6, what);
            }
        }
    }

    @Test
    void varOfTooFewValuesAndOfSlicesAsOnTheCpu() {
        Random r = new Random(14);
        Tensor x = data(r, false, false, 3, 4);
        Tensor d = gpu(x);
        // correction >= count: 0 / 0 or a positive sum / 0, as the CPU divides
        for (int correction : new int[]{3, 4, 7, -2})
            assertBits(keep(Reduce.var(x, false, correction, 0)), keep(Reduce.var(d, false, correction, 0)), "var correction " + correction);
        Tensor s = keep(x.slice(1, 1, 4, 2)), ds = keep(d.slice(1, 1, 4, 2));
        assertBits(keep(s.var(false, 0)), keep(ds.var(false, 0)), "var of a strided slice");
        assertBits(keep(s.var(true)), keep(ds.var(true)), "var of a strided slice, all axes");
        // an empty reduction (a zero-size axis) gives NaN on both, an empty output nothing
        Tensor e = keep(Tensor.zeros(3, 0)), de = gpu(e);
        assertBits(keep(Reduce.var(e, false, 1, 1)), keep(Reduce.var(de, false, 1, 1)), "var over an empty axis");
        assertBits(keep(Reduce.var(e, false, 1, 0)), keep(Reduce.var(de, false, 1, 0)), "var into an empty output");
        // the CPU's refusals come first
        assertThrows(IllegalArgumentException.class, () -> de.max(false));
        assertThrows(IllegalArgumentException.class, () -> Reduce.argmax(de, 1, false));
        assertThrows(IllegalArgumentException.class, () -> d.var(false, 0, 0));
    }

    @Test
    void theLaunchersRefuseBadArgumentsNamingTheCall() {
        Tensor d = gpu(data(new Random(15), false, false, 64));
        MemorySegment p = CudaOps.ptr(d), p4 = MemorySegment.ofAddress(p.address() + 16);
        long[] none = {}, n = {32}, one = {1};
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Native.cudaArgmax(p, none, none, n, one, true, p4, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL));
        assertTrue(e.getMessage().startsWith("fst_cuda_argmax") && e.getMessage().contains("overlap"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> Native.cudaArgmax(p, n, one, new long[]{0}, one, true, p4, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL));
        assertTrue(e.getMessage().contains("nred == 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> Native.cudaVar(p, none, none, n, one, 1, p4, MemorySegment.NULL));
        assertTrue(e.getMessage().startsWith("fst_cuda_var") && e.getMessage().contains("overlap"), e.getMessage());
        try (Tensor out = Tensor.empty(Device.CUDA, DType.F32, 2)) {
            e = assertThrows(IllegalArgumentException.class,
                    () -> Native.cudaArgmax(p, none, none, n, one, true, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL, MemorySegment.NULL));
            assertTrue(e.getMessage().contains("null pointer"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaVar(p, none, none, n, new long[]{-2}, 1, CudaOps.ptr(out), MemorySegment.NULL));
            assertTrue(e.getMessage().contains("st[d] < 0"), e.getMessage());
            // long reductions need both scratch blocks
            try (Tensor big = Tensor.zeros(Device.CUDA, DType.F32, 600); CudaOps.Block w = CudaOps.Block.of(8L * Native.CUDA_PARTS)) {
                e = assertThrows(IllegalArgumentException.class, () -> Native.cudaArgmax(CudaOps.ptr(big), none, none, new long[]{600}, one, false,
                        MemorySegment.NULL, CudaOps.ptr(out), w.ptr(), MemorySegment.NULL));
                assertTrue(e.getMessage().contains("!iwork"), e.getMessage());
            }
        }
    }
}
