package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Every tensor op with a CUDA path, run on CUDA tensors and compared with the same op on the CPU, on fresh random
 * data of awkward sizes. Bit-for-bit wherever the kernel does the CPU's arithmetic in the CPU's order (elementwise,
 * sums, pooling, batch norm against the C shim); within 1e-6 relative where exp/log come from different libraries
 * (cross-entropy).
 *
 * <p>Runs twice in the build: in the default surefire execution, against a real device when there is one (skipped
 * with the reason otherwise), and in the "cuda-emulator" execution with -Dfst4j.cuda.emulate=true, where the same
 * kernel bodies run on the host (libfst4j_cuda_emu.so; skipped with the reason only where nvcc was missing at build
 * time). gpu/run.sh runs it on a lent GPU machine.
 */
class CudaTensorOpsTest extends CudaTensorTestBase {

    @BeforeAll
    static void report() {
        System.out.println("CUDA back end: " + Cuda.status());
    }

    private Tensor randn(Random r, int... shape) {
        float[] v = new float[Math.toIntExact(Shape.numel(shape))];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        return keep(Tensor.of(v, shape));
    }

    /** The CUDA result, copied back, is bit-identical to the CPU one (same shape). */
    private static void assertSame(Tensor cpu, Tensor cuda, String what) {
        assertEquals(Device.CUDA, cuda.device(), what + ": result device");
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray();
        for (int i = 0; i < want.length; i++)
            if (Float.floatToRawIntBits(want[i]) != Float.floatToRawIntBits(got[i]) && !(Float.isNaN(want[i]) && Float.isNaN(got[i])))
                fail(what + ": element " + i + " is " + got[i] + " on CUDA, " + want[i] + " on the CPU");
    }

    /**
     * A sum of k terms per element on each side, in another order (with or without FMA): each is within (k + 2) u of the
     * sum of the terms' magnitudes from the exact value (Higham's bound for any order; u = 2^-24, the 2 for alpha,
     * beta and the float sum of magnitudes itself), so the two differ by at most 2 (k + 2) u absSum[i] at element i.
     * absSum is the same operation on |operands| on the CPU. (It was 1e-5 times max(floor, |want|), the floor the
     * typical size of a sum: thousands of ulps for the elements that cancel, and any of them could be off by that.)
     */
    private static void assertWithinSumBound(Tensor cpu, Tensor cuda, Tensor absSum, long k, String what) {
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray(), mag = absSum.toFloatArray();
        for (int i = 0; i < want.length; i++) {
            double bound = 2 * (k + 2) * 0x1p-24 * mag[i];
            if (!(Math.abs((double) got[i] - want[i]) <= bound))
                fail(what + ": element " + i + " is " + got[i] + " on CUDA, " + want[i] + " on the CPU (allowed " + bound + ", the terms' magnitudes " + mag[i] + ")");
        }
    }

    /**
     * Within ulps of the CPU's element plus abs: for results that both sides compute in double and round once. Batch
     * norm and the long sums: the two doubles differ only by the order of at most 2^14 terms, n 2^-53 of the sum of
     * their magnitudes, so 1 ulp, plus that where the result cancels to far below its terms. Softmax, log-softmax and
     * cross-entropy: one formula per row in double, where libm's exp / log may differ from Java's in the last double
     * bit, which moves a float by at most one ulp: 2 ulps. (They were 1e-6 to 1e-4 times max(floor, |want|), floors
     * of 0.1 to 10: hundreds of ulps and more for the small elements.)
     */
    private static void assertUlps(Tensor cpu, Tensor cuda, double ulps, double abs, String what) {
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray();
        for (int i = 0; i < want.length; i++) {
            if (Float.isNaN(want[i]) && Float.isNaN(got[i])) continue;
            double bound = ulps * Math.ulp(want[i]) + abs;
            if (!(Math.abs((double) got[i] - want[i]) <= bound))
                fail(what + ": element " + i + " is " + got[i] + " on CUDA, " + want[i] + " on the CPU ("
                        + (float) (Math.abs((double) got[i] - want[i]) / Math.ulp(want[i])) + " ulps, allowed " + ulps + " + " + abs + ")");
        }
    }

    /** As above with an absolute term per element. */
    private static void assertUlps(Tensor cpu, Tensor cuda, double ulps, double[] abs, String what) {
        assertArrayEquals(cpu.shape(), cuda.shape(), what + ": shape");
        float[] want = cpu.toFloatArray(), got = cuda.toFloatArray();
        for (int i = 0; i < want.length; i++) {
            double bound = ulps * Math.ulp(want[i]) + abs[i];
            if (!(Math.abs((double) got[i] - want[i]) <= bound))
                fail(what + ": element " + i + " is " + got[i] + " on CUDA, " + want[i] + " on the CPU (allowed " + ulps + " ulps + " + abs[i] + ")");
        }
    }

    /**
     * The absolute terms of batch norm's dgamma = sum dy xhat and dbeta = sum dy per channel of [N, C, H, W]: two double
     * sums of n terms in other orders differ by at most 2 n 2^-53 of the sum of the terms' magnitudes.
     */
    private static double[][] bnSumTerms(Tensor x, Tensor dy, Tensor mean, Tensor invStd) {
        int[] sh = x.shape();
        int n = sh[0], c = sh[1], hw = sh[2] * sh[3];
        float[] xv = x.toFloatArray(), dv = dy.toFloatArray(), mv = mean.toFloatArray(), iv = invStd.toFloatArray();
        double[] g = new double[c], b = new double[c];
        for (int i = 0; i < n; i++)
            for (int ch = 0; ch < c; ch++)
                for (int j = 0; j < hw; j++) {
                    int e = (i * c + ch) * hw + j;
                    g[ch] += Math.abs(dv[e] * (xv[e] - (double) mv[ch]) * iv[ch]);
                    b[ch] += Math.abs(dv[e]);
                }
        double k = 2.0 * n * hw * 0x1p-53;
        for (int ch = 0; ch < c; ch++) { g[ch] *= k; b[ch] *= k; }
        return new double[][]{g, b};
    }

    /** Each element of t times k. */
    private static double[] scaled(Tensor t, double k) {
        float[] v = t.toFloatArray();
        double[] a = new double[v.length];
        for (int i = 0; i < v.length; i++) a[i] = k * Math.abs(v[i]);
        return a;
    }

    /** 2^-30 of the mean |value| of t: the absolute term for results of double sums of up to 2^14 terms that cancel. */
    private static double cancelTerm(Tensor t) {
        double s = 0;
        float[] v = t.toFloatArray();
        for (float f : v) if (Float.isFinite(f)) s += Math.abs(f);
        return 0x1p-30 * s / Math.max(1, v.length);
    }

    // ---------------------------------------------------------------- memory and copies

    @Test
    void copiesToTheDeviceAndBackKeepEveryBitAndLayout() {
        Random r = new Random(1);
        Tensor x = randn(r, 3, 5, 7);
        Tensor d = gpu(x);
        assertEquals(Device.CUDA, d.device());
        assertSame(x, d, "round trip");
        assertArrayEquals(x.toFloatArray(), keep(d.to(Device.CPU)).toFloatArray());
        // a strided host view goes up as its logical values; a strided device view comes down the same way
        Tensor xt = keep(x.permute(2, 0, 1));
        assertSame(xt, gpu(xt), "permuted host view uploaded");
        Tensor dt = keep(d.permute(2, 0, 1));
        assertFalse(dt.isContiguous());
        assertSame(xt, keep(dt.contiguous()), "permuted device view made contiguous on the device");
        Tensor sl = keep(x.slice(1, 1, 5, 2)), dsl = keep(d.slice(1, 1, 5, 2));
        assertSame(sl, keep(dsl.copy()), "sliced device view copied");
        assertEquals(x.getDouble(2, 4, 6), keep(d.slice(0, 2, 3).slice(1, 4, 5).slice(2, 6, 7)).item());
        // the layout permute of a convolution step, [N, C, L] -> [C, N, L] with L a multiple of 4 (the 4-wide copy),
        // and the same from a view starting one element in (not 16-byte aligned: the element-wise copy)
        Tensor nch = randn(r, 3, 5, 12), dnch = gpu(nch);
        assertSame(keep(nch.permute(1, 0, 2).contiguous()), keep(keep(dnch.permute(1, 0, 2)).contiguous()), "[N, C, L] -> [C, N, L]");
        Tensor off = keep(nch.reshape(180).slice(0, 1, 169).reshape(2, 7, 12)), doff = keep(keep(dnch.reshape(180)).slice(0, 1, 169).reshape(2, 7, 12));
        assertSame(keep(off.permute(1, 0, 2).contiguous()), keep(keep(doff.permute(1, 0, 2)).contiguous()), "misaligned view permuted");
        assertTrue(d.toString().contains("device=cuda"), d.toString());
        // copyFrom across devices, with a broadcast source
        Tensor row = randn(r, 7);
        Tensor dst = keep(Tensor.empty(Device.CUDA, DType.F32, 3, 5, 7)).copyFrom(row);
        assertSame(keep(row.expand(3, 5, 7).copy()), dst, "broadcast host row copied into a device tensor");
        Tensor back = keep(Tensor.zeros(3, 5, 7)).copyFrom(d);
        assertSame(x, gpu(back), "device tensor copied into a host tensor");
    }

    @Test
    void aDeviceCopyFromAnOverlappingViewCopiesTheSourceAsItWasBeforeTheCall() {
        // rows 1..3 of a [4, 4] from its transposed first three rows: the copy kernel read rows it had already written
        Tensor x = randn(new Random(5), 4, 4), d = gpu(x);
        Tensor dst = keep(d.slice(0, 1, 4)), src = keep(keep(d.t()).slice(0, 0, 3));
        float[] want = keep(keep(x.t()).slice(0, 0, 3)).copy().toFloatArray();
        dst.copyFrom(src);
        assertArrayEquals(want, dst.toFloatArray());
        assertArrayEquals(keep(x.slice(0, 0, 1)).toFloatArray(), keep(d.slice(0, 0, 1)).toFloatArray(), "row 0 untouched");
    }

    @Test
    void fillAndZerosOnTheDevice() {
        Tensor z = keep(Tensor.zeros(Device.CUDA, DType.F32, 4, 9));
        for (float v : z.toFloatArray()) assertEquals(0f, v);
        Tensor f = keep(Tensor.empty(Device.CUDA, DType.F32, 37)).fill(0.1);
        for (float v : f.toFloatArray()) assertEquals(0.1f, v);
    }

    @Test
    void elementAccessOnADeviceTensorFailsClearlyAndMixingDevicesIsAnError() {
        Random r = new Random(2);
        Tensor x = randn(r, 4, 3);
        Tensor d = gpu(x);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> d.get(1, 2));
        assertTrue(e.getMessage().contains("CUDA device") && e.getMessage().contains("to(Device.CPU)"), e.getMessage());
        assertThrows(IllegalStateException.class, d::data);
        IllegalArgumentException m = assertThrows(IllegalArgumentException.class, () -> x.add(d));
        assertTrue(m.getMessage().startsWith("device mismatch: "), m.getMessage());
        m = assertThrows(IllegalArgumentException.class, () -> d.mul(x));
        assertTrue(m.getMessage().startsWith("device mismatch: "), m.getMessage());
        UnsupportedOperationException u = assertThrows(UnsupportedOperationException.class, () -> Elementwise.zip(d, d, Math::max));
        assertTrue(u.getMessage().contains("cannot run on CUDA"), u.getMessage());
        Tensor d64 = keep(Tensor.zeros(Device.CUDA, DType.F64, 3));
        assertThrows(UnsupportedOperationException.class, () -> d64.relu());
    }

    // ---------------------------------------------------------------- elementwise

    @Test
    void binaryOpsWithBroadcastingMatchTheCpuBitForBit() {
        Random r = new Random(3);
        int[][][] pairs = {
                { { 2, 3, 5, 7 }, { 2, 3, 5, 7 } },     // plain
                { { 2, 3, 5, 7 }, { 1, 3, 1, 1 } },     // per-channel bias / scale of an NCHW tensor
                { { 6, 11 }, { 11 } },                  // row vector (Linear bias)
                { { 5, 1, 4 }, { 3, 1 } },              // both sides broadcast
                { {}, { 3, 2 } },                       // scalar
        };
        for (int[][] p : pairs) {
            Tensor a = randn(r, p[0]), b = randn(r, p[1]);
            Tensor da = gpu(a), db = gpu(b);
            String s = Arrays.toString(p[0]) + " op " + Arrays.toString(p[1]);
            assertSame(keep(a.add(b)), keep(da.add(db)), "add " + s);
            assertSame(keep(a.sub(b)), keep(da.sub(db)), "sub " + s);
            assertSame(keep(a.mul(b)), keep(da.mul(db)), "mul " + s);
            assertSame(keep(a.div(b)), keep(da.div(db)), "div " + s);
            assertSame(keep(b.sub(a)), keep(db.sub(da)), "sub reversed " + s);
            assertSame(keep(Elementwise.addRelu(a, b)), keep(Elementwise.addRelu(da, db)), "add + relu " + s);
        }
        // add + relu where the sum is -0 or NaN: -0 becomes +0 and NaN stays NaN, as on the CPU
        Tensor za = keep(Tensor.of(new float[] { -0f, Float.NaN, 1f, -2f }, 4)), zb = keep(Tensor.of(new float[] { -0f, 1f, Float.NaN, 1f }, 4));
        assertSame(keep(Elementwise.addRelu(za, zb)), keep(Elementwise.addRelu(gpu(za), gpu(zb))), "add + relu of -0 and NaN");
        // strided operands: a transposed matrix and a sliced one
        Tensor m = randn(r, 9, 13), n = randn(r, 13, 9);
        Tensor mt = keep(m.t()), dmt = keep(gpu(m).t());
        assertSame(keep(mt.mul(n)), keep(dmt.mul(gpu(n))), "transposed operand");
        Tensor ms = keep(n.slice(0, 1, 13, 3)), dms = keep(gpu(n).slice(0, 1, 13, 3));
        assertSame(keep(ms.add(ms)), keep(dms.add(dms)), "sliced operands");
    }

    @Test
    void contiguousBinaryOpsTakeFourElementsPerThreadWithTheCpusBits() {
        // the 4-wide kernel (fst_k_binary4) where both operands are one contiguous run of a multiple of 4 elements:
        // every op of a ResNet step and more, with -0, NaN and infinities among the values, against the CPU bit for bit
        Random r = new Random(41);
        float[] va = new float[2 * 3 * 4 * 8], vb = new float[va.length];
        for (int i = 0; i < va.length; i++) { va[i] = (float) r.nextGaussian(); vb[i] = (float) r.nextGaussian(); }
        va[1] = -0f; vb[1] = -0f; va[6] = Float.NaN; vb[11] = Float.NaN; va[20] = Float.POSITIVE_INFINITY; vb[21] = 0f; va[33] = -va[34];
        Tensor a = keep(Tensor.of(va, 2, 3, 4, 8)), b = keep(Tensor.of(vb, 2, 3, 4, 8));
        Tensor da = gpu(a), db = gpu(b);
        boolean was = Cuda.setKernelProfile(true);
        try {
            Cuda.kernelProfile(true);
            assertSame(keep(a.add(b)), keep(da.add(db)), "add");
            assertSame(keep(a.sub(b)), keep(da.sub(db)), "sub");
            assertSame(keep(a.mul(b)), keep(da.mul(db)), "mul");
            assertSame(keep(a.div(b)), keep(da.div(db)), "div");
            assertSame(keep(Elementwise.addRelu(a, b)), keep(Elementwise.addRelu(da, db)), "add + relu");
            assertSame(keep(Elementwise.reluBackward(a, b)), keep(Elementwise.reluBackward(da, db)), "relu backward");
            String table = Cuda.kernelProfile(true);
            for (String op : new String[] { "add", "sub", "mul", "div", "add_relu", "relu_bwd" })
                assertTrue(table.lines().anyMatch(l -> l.startsWith("fst_k_binary4:" + op + " ")), op + " in\n" + table);
            assertTrue(table.lines().noneMatch(l -> l.startsWith("fst_k_binary:")), "no one-element kernel in\n" + table);
            // in place (out is a, and out is a and b at once): the same bits, still four at a time
            Tensor want = keep(a.add(b)), dc = keep(da.contiguous().mul(1.0));
            assertSame(want, dc.addInPlace(db), "a += b");
            Tensor dd = keep(db.contiguous().mul(1.0));
            assertSame(keep(a.add(a)), dd.copyFrom(da).addInPlace(dd), "a += a");
            table = Cuda.kernelProfile(true);
            assertTrue(table.lines().anyMatch(l -> l.startsWith("fst_k_binary4:add ")), "in place in\n" + table);
            // a run that does not start on 16 bytes takes the one-element kernel, with the same bits
            Tensor hs = keep(a.reshape(192).slice(0, 1, 189)), ds = keep(da.reshape(192).slice(0, 1, 189));
            Tensor hb = keep(b.reshape(192).slice(0, 3, 191)), dbs = keep(db.reshape(192).slice(0, 3, 191));
            assertSame(keep(hs.add(hb)), keep(ds.add(dbs)), "unaligned runs");
            table = Cuda.kernelProfile(true);
            assertTrue(table.lines().anyMatch(l -> l.startsWith("fst_k_binary:add ")), "unaligned in\n" + table);
        } finally {
            Cuda.setKernelProfile(was);
        }
    }

    /**
     * Every binary op (codes 0-23) through the 4-wide kernel gives the one-element kernel's bits: the same values once
     * in an aligned run (binary4, named in the kernel profile) and once starting one float past it (the one-element
     * kernel), with -0, NaN, infinities, zeros and values near smooth L1's beta among them.
     */
    @Test
    void everyBinaryOpGivesTheSameBitsFourAtATime() {
        Random r = new Random(43);
        int n = 96;
        float[] va = new float[n + 1], vb = new float[n + 1];
        for (int i = 1; i <= n; i++) { va[i] = (float) r.nextGaussian() * 2; vb[i] = (float) r.nextGaussian() * 2; }
        va[2] = -0f; vb[3] = -0f; va[4] = Float.NaN; vb[5] = Float.NaN; va[6] = Float.POSITIVE_INFINITY; vb[7] = Float.NEGATIVE_INFINITY;
        vb[8] = 0f; va[9] = 0f; vb[10] = 0.5f; vb[11] = -0.49999997f; va[12] = 1f; vb[12] = Float.POSITIVE_INFINITY; va[13] = vb[13];
        Tensor ha = keep(Tensor.of(va, n + 1)), hb = keep(Tensor.of(vb, n + 1));
        Tensor da = gpu(ha), db = gpu(hb);
        Tensor a4 = keep(gpu(keep(Tensor.of(java.util.Arrays.copyOfRange(va, 1, n + 1), n)))), b4 = keep(gpu(keep(Tensor.of(java.util.Arrays.copyOfRange(vb, 1, n + 1), n))));
        Tensor a1 = keep(da.slice(0, 1, n + 1)), b1 = keep(db.slice(0, 1, n + 1));   // one float past a 16-byte boundary
        boolean was = Cuda.setKernelProfile(true);
        try {
            for (int code = 0; code <= CudaOps.EXPM1_BWD; code++) {
                double beta = code == CudaOps.SMOOTH_L1_BWD ? 0.5 : 0;
                Cuda.kernelProfile(true);
                Tensor four = keep(CudaOps.binary("op" + code, code, beta, a4, b4));
                String t4 = Cuda.kernelProfile(true);
                Tensor one = keep(CudaOps.binary("op" + code, code, beta, a1, b1));
                String t1 = Cuda.kernelProfile(true);
                assertTrue(t4.lines().anyMatch(l -> l.startsWith("fst_k_binary4:")), "op " + code + " aligned\n" + t4);
                assertTrue(t1.lines().anyMatch(l -> l.startsWith("fst_k_binary:")), "op " + code + " one float past\n" + t1);
                int[] x = ints(four), y = ints(one);
                for (int i = 0; i < n; i++) assertEquals(y[i], x[i], "op " + code + " element " + i);
            }
        } finally {
            Cuda.setKernelProfile(was);
        }
    }

    private static int[] ints(Tensor t) {
        float[] f = t.toFloatArray();
        int[] o = new int[f.length];
        for (int i = 0; i < f.length; i++) o[i] = Float.floatToRawIntBits(f[i]);
        return o;
    }

    @Test
    void addInPlaceWritesTheSumIntoTheFirstOperandWithoutABuffer() {
        Random r = new Random(31);
        for (int[] bs : new int[][]{ { 2, 3, 5, 7 }, { 1, 3, 1, 1 }, { 7 } }) {
            Tensor a = randn(r, 2, 3, 5, 7), b = randn(r, bs);
            Tensor da = gpu(a), db = gpu(b);
            CudaMemory.Stats before = CudaMemory.stats();
            assertTrue(da == da.addInPlace(db), "returns its first operand");
            CudaMemory.Stats after = CudaMemory.stats();
            assertEquals(before.deviceAllocations() + before.cacheHits(), after.deviceAllocations() + after.cacheHits(),
                    "no device block taken for the sum, b " + Arrays.toString(bs));
            assertSame(keep(a.add(b)), da, "a += b, b " + Arrays.toString(bs));
        }
        // b in a's own storage: the out-of-place sum copied back (same bits)
        Tensor a = randn(r, 4, 9), da = gpu(a);
        assertSame(keep(a.add(a)), da.addInPlace(da), "a += a");
        Tensor rows = keep(da.slice(0, 0, 1));
        Tensor host = keep(da.to(Device.CPU)), want = keep(host.add(keep(host.slice(0, 0, 1))));
        assertSame(want, da.addInPlace(rows), "a += its own first row, broadcast");
    }

    @Test
    void byChannelIsThePermuteAndSharesItsBf16RoundingWhileOpen() {
        Random r = new Random(37);
        CudaOps.MatmulPrecision was = CudaOps.setMatmulPrecision(CudaOps.MatmulPrecision.BF16);
        try {
            // planes of a multiple of 4 (four per thread) and not (9, 35: one per thread)
            for (int[] s : new int[][]{ { 3, 5, 4, 4 }, { 2, 7, 3, 3 }, { 4, 3, 5, 7 }, { 1, 2, 2, 2 } }) {
                int n = s[0], c = s[1], plane = s[2] * s[3];
                Tensor dy = randn(r, s);
                dy.data().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 1, Float.NaN);   // bits kept by the copy
                Tensor want = keep(keep(keep(dy.reshape(n, c, plane)).permute(1, 0, 2)).contiguous().reshape(c, n * plane));
                String at = Arrays.toString(s);
                try (SharedOperand bc = Conv.byChannel(gpu(dy), n, c, plane)) {
                    Tensor got = bc.tensor();
                    assertSame(want, got, "byChannel " + at);
                    try (CudaOps.Block b = CudaOps.bf16Padded(got, c, (long) n * plane)) {
                        assertFalse(b.owned(), "the GEMM operand of the open handle is borrowed " + at);
                        short[] h = download16(b, (long) c * n * plane);
                        float[] v = want.toFloatArray();
                        for (int i = 0; i < v.length; i++)
                            assertEquals(CudaSpmmTest.bf16(v[i]), h[i], "bf16 copy " + at + " element " + i);
                    }
                    try (CudaOps.Block b = CudaOps.bf16Padded(got, c + 1, (long) n * plane)) {
                        assertTrue(b.owned(), "a padded operand is rounded afresh " + at);
                    }
                    try (Tensor other = got.contiguous().mul(1.0); CudaOps.Block b = CudaOps.bf16Padded(other, c, (long) n * plane)) {
                        assertTrue(b.owned(), "another tensor with the same values is rounded afresh " + at);
                    }
                    Tensor after = got;
                    bc.close();
                    assertThrows(IllegalStateException.class, after::check, "closed with the handle");
                }
            }
            // after close, and with the switch off, nothing is shared
            Tensor dy = randn(r, 2, 4, 2, 2);
            Tensor kept;
            try (SharedOperand bc = Conv.byChannel(gpu(dy), 2, 4, 4)) { kept = keep(bc.tensor().contiguous().mul(1.0)); }
            try (CudaOps.Block b = CudaOps.bf16Padded(kept, 4, 8)) { assertTrue(b.owned()); }
            boolean share = CudaOps.shareBf16;
            CudaOps.shareBf16 = false;
            try (SharedOperand bc = Conv.byChannel(gpu(dy), 2, 4, 4); CudaOps.Block b = CudaOps.bf16Padded(bc.tensor(), 4, 8)) {
                assertTrue(b.owned(), "-Dfst4j.cuda.shareBf16=false");
            } finally {
                CudaOps.shareBf16 = share;
            }
        } finally {
            CudaOps.setMatmulPrecision(was);
        }
    }

    private static short[] download16(CudaOps.Block b, long n) {
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment h = a.allocate(2 * n);
            fst4j.shim.Cuda.copyToHost(h, b.ptr(), 2 * n);
            return h.toArray(java.lang.foreign.ValueLayout.JAVA_SHORT);
        }
    }

    @Test
    void unaryOpsMatchTheCpuBitForBit() {
        Random r = new Random(4);
        Tensor x = randn(r, 3, 7, 11);
        Tensor d = gpu(x);
        assertSame(keep(x.relu()), keep(d.relu()), "relu");
        assertSame(keep(x.neg()), keep(d.neg()), "neg");
        assertSame(keep(x.abs()), keep(d.abs()), "abs");
        assertSame(keep(x.mul(0.1)), keep(d.mul(0.1)), "mul scalar (0.1 is not a float)");
        assertSame(keep(x.add(-1.0 / 3)), keep(d.add(-1.0 / 3)), "add scalar");
        Tensor xt = keep(x.transpose(0, 2)), dt = keep(d.transpose(0, 2));
        assertSame(keep(xt.relu()), keep(dt.relu()), "relu of a strided view");
        Tensor g = randn(r, 3, 7, 11);
        assertSame(keep(Elementwise.reluBackward(g, x)), keep(Elementwise.reluBackward(gpu(g), d)), "relu backward");
    }

    // ---------------------------------------------------------------- reductions

    @Test
    void sumAndMeanOverAxesMatchTheCpuBitForBit() {
        Random r = new Random(5);
        Tensor x = randn(r, 5, 6, 7, 3);
        Tensor d = gpu(x);
        int[][] axesSets = { { 0, 2, 3 }, { 1 }, { 0 }, { -1, 1 }, {} };
        for (int[] axes : axesSets)
            for (boolean keepDim : new boolean[] { false, true }) {
                String s = Arrays.toString(axes) + " keepDim " + keepDim;
                assertSame(keep(x.sum(keepDim, axes)), keep(d.sum(keepDim, axes)), "sum " + s);
                assertSame(keep(x.mean(keepDim, axes)), keep(d.mean(keepDim, axes)), "mean " + s);
            }
        Tensor xt = keep(x.permute(3, 1, 0, 2)), dt = keep(d.permute(3, 1, 0, 2));
        assertSame(keep(xt.sum(false, 0, 2)), keep(dt.sum(false, 0, 2)), "sum of a permuted view");
    }

    /**
     * Past 256 terms per output, sums and batch-norm statistics are 256 strided partial sums added in order (parallel
     * and deterministic, no longer the CPU's order): equal to the CPU within double rounding, i.e. almost always to
     * the float bit, and the same bits on every run.
     */
    @Test
    void longReductionsMatchTheCpuAndRepeatExactly() {
        Random r = new Random(16);
        Tensor x = randn(r, 6, 5, 9, 11), m = randn(r, 7, 300);
        Tensor dx = gpu(x), dm = gpu(m);
        // sums in double of n <= 2100 terms, rounded once: 1 ulp, plus 2 n 2^-53 of the magnitudes where the sum cancels
        assertUlps(keep(x.sum(false, 0, 2, 3)), keep(dx.sum(false, 0, 2, 3)), 1, scaled(keep(keep(x.abs()).sum(false, 0, 2, 3)), 2 * 594 * 0x1p-53), "sum of 594 terms per channel");
        assertUlps(keep(m.mean(false, 1)), keep(dm.mean(false, 1)), 1, scaled(keep(keep(m.abs()).mean(false, 1)), 2 * 300 * 0x1p-53), "mean of 300 terms");
        assertUlps(keep(m.sum()), keep(dm.sum()), 1, scaled(keep(keep(m.abs()).sum()), 2 * 2100 * 0x1p-53), "sum of 2100 terms");
        assertSame(keep(dx.sum(false, 0, 2, 3)), keep(dx.sum(false, 0, 2, 3)), "the same partial sums again");
        Tensor gamma = randn(r, 5), beta = randn(r, 5), dy = randn(r, 6, 5, 9, 11);
        Tensor gg = gpu(gamma), bg = gpu(beta), ddy = gpu(dy);
        try (Norm.BatchNorm c = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5);
             Norm.BatchNorm k = Norm.batchNorm2dTrain(dx, gg, bg, null, null, 0.1, 1e-5);
             Norm.BatchNorm k2 = Norm.batchNorm2dTrain(dx, gg, bg, null, null, 0.1, 1e-5)) {
            assertUlps(c.output(), k.output(), 1, cancelTerm(c.output()), "bn output, 594 values per channel");
            assertUlps(c.mean(), k.mean(), 1, cancelTerm(x), "bn mean");
            assertUlps(c.invStd(), k.invStd(), 1, 0, "bn invStd");
            assertSame(k.output(), k2.output(), "bn output again");
            try (Norm.BatchNormGrads gc = Norm.batchNorm2dBackward(dy, x, gamma, c.mean(), c.invStd());
                 Norm.BatchNormGrads gk = Norm.batchNorm2dBackward(ddy, dx, gg, k.mean(), k.invStd())) {
                assertUlps(gc.dx(), gk.dx(), 1, cancelTerm(gc.dx()), "bn dx");
                double[][] t = bnSumTerms(x, dy, c.mean(), c.invStd());
                assertUlps(gc.dgamma(), gk.dgamma(), 1, t[0], "bn dgamma");
                assertUlps(gc.dbeta(), gk.dbeta(), 1, t[1], "bn dbeta");
            }
        }
    }

    /** equal and allclose of CUDA tensors (compared on the host); a CPU tensor against a CUDA one is a device mismatch. */
    @Test
    void equalAndAllcloseOfCudaTensors() {
        Random r = new Random(23);
        Tensor x = randn(r, 3, 5), dx = gpu(x), dy = gpu(keep(x.mul(1 + 1e-6)));
        assertTrue(dx.equal(gpu(x)));
        assertFalse(dx.equal(dy));
        assertTrue(dx.allclose(dy, 1e-5, 0) && !dx.allclose(dy, 1e-8, 0));
        Tensor dt = keep(dx.t());
        assertFalse(dt.equal(dx), "another shape");
        assertTrue(dt.equal(gpu(keep(x.t().contiguous()))), "a transposed view against its contiguous copy");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> dx.equal(x));
        assertTrue(e.getMessage().startsWith("device mismatch: equal of a CUDA tensor with a CPU one"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> x.allclose(dx));
    }

    /** One value per channel in training mode is refused on CUDA as on the CPU (it gave zeros); eval mode still goes. */
    @Test
    void batchNormTrainingWithOneValuePerChannelIsRefused() {
        Tensor x = gpu(keep(Tensor.of(new float[]{1, 2, 3}, 1, 3, 1, 1))), rm = gpu(keep(Tensor.zeros(3))), rv = gpu(keep(Tensor.ones(3)));
        int version = rm.version();
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Norm.batchNorm2dTrain(x, null, null, rm, rv, 0.1, 1e-5, true));
        assertTrue(e.getMessage().contains("expected more than 1 value per channel when training, got input [1, 3, 1, 1]"), e.getMessage());
        assertEquals(version, rm.version());
        assertArrayEquals(new float[3], rm.toFloatArray());
        Tensor y = keep(Norm.batchNorm2dEval(x, null, null, rm, rv, 0));
        assertEquals(Device.CUDA, y.device());
        assertArrayEquals(new float[]{1, 2, 3}, y.toFloatArray(), 1e-6f, "eval mode still works");
    }

    /**
     * Few channels of many elements: the batch norm's sums take more partial sums per channel (fst_cuda_bn_parts), so
     * that the device has enough threads; equal to the CPU within double rounding, fused ReLU included, and the same
     * bits on every run.
     */
    @Test
    void batchNormOverManyElementsPerChannelMatchesTheCpu() {
        assertEquals(512, Native.cudaBnParts(3, 2 * 9216), "partial sums per channel for 3 channels of 18432 elements");
        assertEquals(Native.CUDA_PARTS, Native.cudaBnParts(3, 300), "few elements keep the CPU's bits");
        assertEquals(2048, Native.cudaBnParts(64, 256L * 112 * 112), "the ResNet stem: 64 channels of 3.2M elements");
        assertEquals(3 * 3 + 2 * 3 * (512 + 32), Native.cudaBnWork(3, 2 * 9216, true), "backward scratch: header, partials, folded sums");
        Random r = new Random(19);
        Tensor x = randn(r, 2, 3, 96, 96), gamma = randn(r, 3), beta = randn(r, 3), dy = randn(r, 2, 3, 96, 96);
        Tensor dx = gpu(x), gg = gpu(gamma), bg = gpu(beta), ddy = gpu(dy);
        for (boolean relu : new boolean[] {false, true})
            try (Norm.BatchNorm c = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, relu);
                 Norm.BatchNorm k = Norm.batchNorm2dTrain(dx, gg, bg, null, null, 0.1, 1e-5, relu);
                 Norm.BatchNorm k2 = Norm.batchNorm2dTrain(dx, gg, bg, null, null, 0.1, 1e-5, relu)) {
                String s = relu ? " (+ relu)" : "";
                assertUlps(c.output(), k.output(), 1, cancelTerm(c.output()), "bn output, 18432 values per channel" + s);
                assertUlps(c.mean(), k.mean(), 1, cancelTerm(x), "bn mean" + s);
                assertUlps(c.invStd(), k.invStd(), 1, 0, "bn invStd" + s);
                assertSame(k.output(), k2.output(), "bn output again" + s);
                try (Norm.BatchNormGrads gc = Norm.batchNorm2dBackward(dy, x, gamma, c.mean(), c.invStd(), relu ? c.output() : null);
                     Norm.BatchNormGrads gk = Norm.batchNorm2dBackward(ddy, dx, gg, k.mean(), k.invStd(), relu ? k.output() : null);
                     Norm.BatchNormGrads gk2 = Norm.batchNorm2dBackward(ddy, dx, gg, k.mean(), k.invStd(), relu ? k.output() : null)) {
                    assertUlps(gc.dx(), gk.dx(), 1, cancelTerm(gc.dx()), "bn dx" + s);
                    double[][] t = bnSumTerms(x, dy, c.mean(), c.invStd());   // (with ReLU dy is masked: these bound it the more)
                    assertUlps(gc.dgamma(), gk.dgamma(), 1, t[0], "bn dgamma" + s);
                    assertUlps(gc.dbeta(), gk.dbeta(), 1, t[1], "bn dbeta" + s);
                    assertSame(gk.dx(), gk2.dx(), "bn dx again" + s);
                }
            }
    }

    // ---------------------------------------------------------------- pooling

    @Test
    void maxPoolForwardAndBackwardMatchTheCpu() {
        Random r = new Random(6);
        // values on a coarse grid so that windows hold ties: the first maximum must win on both devices; rows of 11 (a
        // thread per dx element in the backward) and of 12 (four elements per thread)
        for (int width : new int[] {11, 12}) {
            float[] v = new float[3 * 4 * 13 * width];
            for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextInt(9) - 4) / 4 + (r.nextInt(5) == 0 ? 0.5f : 0);
            v[17] = Float.NaN;   // a NaN wins its windows
            maxPoolMatchesTheCpu(r, keep(Tensor.of(v, 3, 4, 13, width)));
        }
        // the 3x3 / stride 2 / padding 1 backward kernel (rows of a multiple of 4): even and odd heights, the last window
        // row and column clipped, ties and a NaN
        boolean was = Cuda.setKernelProfile(true);
        try {
            for (int[] hw : new int[][] { { 14, 16 }, { 9, 8 } }) {
                float[] v = new float[2 * 3 * hw[0] * hw[1]];
                for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextInt(9) - 4) / 4 + (r.nextInt(5) == 0 ? 0.5f : 0);
                v[29] = Float.NaN;
                Cuda.kernelProfile(true);
                maxPoolMatchesTheCpu(r, keep(Tensor.of(v, 2, 3, hw[0], hw[1])));
                String table = Cuda.kernelProfile(true);
                assertTrue(table.lines().anyMatch(l -> l.startsWith("fst_k_maxpool_bwd_k3s2 ")), table);
            }
        } finally {
            Cuda.setKernelProfile(was);
        }
        Tensor x = keep(Tensor.of(new float[3 * 4 * 13 * 11], 3, 4, 13, 11));
        Tensor d = gpu(x);
        Pool.MaxPool2d closed = Pool.maxPool2d(d, 2, 2, 2, 2, 0, 0);
        closed.close();
        Tensor dyc = keep(Tensor.zeros(Device.CUDA, DType.F32, 3, 4, 6, 5));
        assertThrows(IllegalStateException.class, () -> Pool.maxPool2dBackward(dyc, closed.indices(), x.shape()), "indices used after close");
        int[] bad = new int[3 * 4 * 7 * 6];
        bad[5] = 13 * 11;
        Tensor dy = keep(Tensor.zeros(Device.CUDA, DType.F32, 3, 4, 7, 6));
        assertThrows(IllegalArgumentException.class, () -> Pool.maxPool2dBackward(dy, bad, x.shape()));
    }

    private void maxPoolMatchesTheCpu(Random r, Tensor x) {
        Tensor d = gpu(x);
        int[][] geoms = { { 3, 3, 2, 2, 1, 1 }, { 2, 2, 2, 2, 0, 0 }, { 3, 2, 1, 2, 1, 0 } };
        for (int[] g : geoms) {
            String s = Arrays.toString(g) + " on " + Arrays.toString(x.shape());
            try (Pool.MaxPool2d c = Pool.maxPool2d(x, g[0], g[1], g[2], g[3], g[4], g[5]);
                 Pool.MaxPool2d k = Pool.maxPool2d(d, g[0], g[1], g[2], g[3], g[4], g[5])) {
                assertSame(c.output(), k.output(), "max pool " + s);
                assertArrayEquals(c.indices().toArray(), k.indices().toArray(), "max pool indices " + s);
                Tensor dy = randn(r, c.output().shape());
                assertSame(keep(Pool.maxPool2dBackward(dy, c.indices(), x.shape())), keep(Pool.maxPool2dBackward(gpu(dy), k.indices(), x.shape())),
                        "max pool backward " + s);
                assertInstanceOf(Pool.DeviceIndices.class, k.indices(), "the CUDA max pool keeps its indices on the device");
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Pool.maxPool2dBackward(dy, k.indices(), x.shape()));
                assertTrue(e.getMessage().contains("device mismatch"), e.getMessage());
            }
        }
    }

    @Test
    void adaptiveAvgPoolForwardAndBackwardMatchTheCpuBitForBit() {
        Random r = new Random(7);
        Tensor x = randn(r, 2, 3, 7, 5);
        Tensor d = gpu(x);
        int[][] outs = { { 1, 1 }, { 3, 2 }, { 7, 5 }, { 4, 4 } };
        for (int[] o : outs) {
            String s = Arrays.toString(o);
            Tensor c = keep(x.adaptiveAvgPool2d(o[0], o[1])), k = keep(d.adaptiveAvgPool2d(o[0], o[1]));
            assertSame(c, k, "adaptive avg pool " + s);
            Tensor dy = randn(r, c.shape());
            assertSame(keep(Pool.adaptiveAvgPool2dBackward(dy, x.shape())), keep(Pool.adaptiveAvgPool2dBackward(gpu(dy), x.shape())),
                    "adaptive avg pool backward " + s);
        }
    }

    // ---------------------------------------------------------------- batch norm

    /** Planes of 18 elements (a thread per element in the per-element passes) and of 32 (four per thread). */
    @Test
    void batchNormTrainingForwardAndBackwardMatchTheCpuBitForBit() {
        Random r = new Random(8);
        batchNormMatchesTheCpuBitForBit(r, 5, 7, 6, 3);
        batchNormMatchesTheCpuBitForBit(r, 3, 7, 4, 8);
    }

    private void batchNormMatchesTheCpuBitForBit(Random r, int... shape) {
        Tensor x = randn(r, shape);
        Tensor gamma = randn(r, 7), beta = randn(r, 7), rm = randn(r, 7), rv = keep(randn(r, 7).abs());
        Tensor dgpu = gpu(x), gg = gpu(gamma), bg = gpu(beta), rmg = gpu(rm), rvg = gpu(rv);
        try (Norm.BatchNorm c = Norm.batchNorm2dTrain(x, gamma, beta, rm, rv, 0.1, 1e-5);
             Norm.BatchNorm k = Norm.batchNorm2dTrain(dgpu, gg, bg, rmg, rvg, 0.1, 1e-5)) {
            assertSame(c.output(), k.output(), "bn output");
            assertSame(c.mean(), k.mean(), "bn mean");
            assertSame(c.invStd(), k.invStd(), "bn invStd");
            assertSame(rm, rmg, "bn running mean");
            assertSame(rv, rvg, "bn running var");
            Tensor dy = randn(r, shape);
            try (Norm.BatchNormGrads gc = Norm.batchNorm2dBackward(dy, x, gamma, c.mean(), c.invStd());
                 Norm.BatchNormGrads gk = Norm.batchNorm2dBackward(gpu(dy), dgpu, gg, k.mean(), k.invStd())) {
                assertSame(gc.dx(), gk.dx(), "bn dx");
                assertSame(gc.dgamma(), gk.dgamma(), "bn dgamma");
                assertSame(gc.dbeta(), gk.dbeta(), "bn dbeta");
            }
        }
        // without the affine parameters and running statistics
        try (Norm.BatchNorm c = Norm.batchNorm2dTrain(x, null, null, null, null, 0.1, 1e-3);
             Norm.BatchNorm k = Norm.batchNorm2dTrain(dgpu, null, null, null, null, 0.1, 1e-3)) {
            assertSame(c.output(), k.output(), "bn output without gamma/beta");
            Tensor dy = randn(r, shape);
            try (Norm.BatchNormGrads gc = Norm.batchNorm2dBackward(dy, x, null, c.mean(), c.invStd());
                 Norm.BatchNormGrads gk = Norm.batchNorm2dBackward(gpu(dy), dgpu, null, k.mean(), k.invStd())) {
                assertSame(gc.dx(), gk.dx(), "bn dx without gamma");
            }
        }
        // fused with a ReLU (a NaN and a -0 among the inputs: the ReLU of the stored value keeps the NaN and maps -0 to +0)
        float[] xv = x.toFloatArray();
        xv[3] = Float.NaN; xv[40] = -0f;
        Tensor xr = keep(Tensor.of(xv, shape)), xrg = gpu(xr);
        try (Norm.BatchNorm c = Norm.batchNorm2dTrain(xr, gamma, beta, null, null, 0.1, 1e-5, true);
             Norm.BatchNorm k = Norm.batchNorm2dTrain(xrg, gg, bg, null, null, 0.1, 1e-5, true)) {
            assertSame(c.output(), k.output(), "bn + relu output");
            Tensor dy = randn(r, shape);
            try (Norm.BatchNormGrads gc = Norm.batchNorm2dBackward(dy, xr, gamma, c.mean(), c.invStd(), c.output());
                 Norm.BatchNormGrads gk = Norm.batchNorm2dBackward(gpu(dy), xrg, gg, k.mean(), k.invStd(), k.output())) {
                assertSame(gc.dx(), gk.dx(), "bn + relu dx");
                assertSame(gc.dgamma(), gk.dgamma(), "bn + relu dgamma");
                assertSame(gc.dbeta(), gk.dbeta(), "bn + relu dbeta");
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Norm.batchNorm2dTrain(dgpu, gamma, null, null, null, 0.1, 1e-5));
        // eval mode, with the running statistics
        assertSame(keep(Norm.batchNorm2dEval(x, gamma, beta, rm, rv, 1e-5)), keep(Norm.batchNorm2dEval(dgpu, gg, bg, rmg, rvg, 1e-5)), "bn eval");
        assertSame(keep(Norm.batchNorm2dEval(x, null, null, rm, rv, 1e-3)), keep(Norm.batchNorm2dEval(dgpu, null, null, rmg, rvg, 1e-3)),
                "bn eval without gamma/beta");
    }

    // ---------------------------------------------------------------- loss

    @Test
    void crossEntropyWithLabelSmoothingMatchesTheCpu() {
        Random r = new Random(9);
        int n = 9, c = 10;
        Tensor logits = keep(randn(r, n, c).mul(3));
        int[] labels = new int[n];
        for (int i = 0; i < n; i++) labels[i] = r.nextInt(c);
        Tensor dl = gpu(logits);
        for (double eps : new double[] { 0, 0.1 }) {
            try (Loss.CrossEntropy ce = Loss.crossEntropy(logits, labels, eps); Loss.CrossEntropy ke = Loss.crossEntropy(dl, labels, eps)) {
                assertEquals(Device.CUDA, ke.loss().device());
                assertUlps(ce.loss(), ke.loss(), 2, 0, "loss, smoothing " + eps);
                assertUlps(ce.grad(), ke.grad(), 2, 0, "grad, smoothing " + eps);
            }
            assertUlps(keep(Loss.crossEntropyLoss(logits, labels, eps)), keep(Loss.crossEntropyLoss(dl, labels, eps)), 2, 0, "loss tensor, smoothing " + eps);
            assertUlps(keep(Loss.crossEntropyBackward(logits, labels, eps, 0.25)), keep(Loss.crossEntropyBackward(dl, labels, eps, 0.25)), 2, 0,
                    "grad times 0.25, smoothing " + eps);
        }
        int[] bad = labels.clone();
        bad[3] = c;
        assertThrows(IllegalArgumentException.class, () -> Loss.crossEntropy(dl, bad, 0.1));
    }

    /**
     * Past 2^22 logits the cross-entropy runs one thread per row instead of its four passes (no n * c doubles of
     * scratch): the same values. 128 copies of 16 rows of 4096 logits (2^23) against the 16 rows alone (2^16), the
     * gradient scaled so that grad_scale / n is the same double: the copies' gradients equal the rows' bit for bit.
     */
    @Test
    void crossEntropyPastTheParallelLimitGivesTheSameBits() {
        Random r = new Random(19);
        int n = 16, c = 4096, copies = 128;
        float[] v = new float[n * c], big = new float[copies * n * c];
        for (int i = 0; i < v.length; i++) v[i] = (float) (r.nextGaussian() * 3);
        v[5] = Float.NEGATIVE_INFINITY;
        int[] labels = new int[n], bigLabels = new int[copies * n];
        for (int i = 0; i < n; i++) labels[i] = r.nextInt(c);
        for (int k = 0; k < copies; k++) {
            System.arraycopy(v, 0, big, k * n * c, v.length);
            System.arraycopy(labels, 0, bigLabels, k * n, n);
        }
        Tensor small = gpu(keep(Tensor.of(v, n, c))), large = gpu(keep(Tensor.of(big, copies * n, c)));
        assertEquals((long) n * (c + 3), Native.cudaCrossEntropyWork(n, c), "four passes: n (c + 3) doubles");
        assertEquals((long) copies * n, Native.cudaCrossEntropyWork(copies * n, c), "a thread per row: n doubles");
        boolean was = Cuda.setKernelProfile(true);
        try {
            Cuda.kernelProfile(true);
            float[] want = keep(Loss.crossEntropyBackward(small, labels, 0.1, 1.0)).toFloatArray();
            String t1 = Cuda.kernelProfile(true);
            float[] got = keep(Loss.crossEntropyBackward(large, bigLabels, 0.1, copies)).toFloatArray();
            String t2 = Cuda.kernelProfile(true);
            assertTrue(t1.lines().anyMatch(l -> l.startsWith("fst_k_xent_exp ")), t1);
            assertTrue(t2.lines().anyMatch(l -> l.startsWith("fst_k_xent_rows ")) && t2.lines().noneMatch(l -> l.startsWith("fst_k_xent_exp ")), t2);
            for (int k = 0; k < copies; k += 31)
                for (int i = 0; i < want.length; i++)
                    assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[k * n * c + i]), "copy " + k + " element " + i);
        } finally {
            Cuda.setKernelProfile(was);
        }
    }

    @Test
    void softmaxAndLogSoftmaxForwardAndBackwardMatchTheCpu() {
        Random r = new Random(13);
        Tensor x = keep(randn(r, 3, 6, 5).mul(4));
        Tensor d = gpu(x);
        for (int axis : new int[] { 0, 1, -1 })
            for (boolean log : new boolean[] { false, true }) {
                String s = (log ? "logSoftmax" : "softmax") + " axis " + axis;
                Tensor yc = keep(log ? x.logSoftmax(axis) : x.softmax(axis)), yk = keep(log ? d.logSoftmax(axis) : d.softmax(axis));
                assertUlps(yc, yk, 2, 0, s);
                Tensor dy = randn(r, 3, 6, 5);
                Tensor gc = keep(log ? Loss.logSoftmaxBackward(yc, dy, axis) : Loss.softmaxBackward(yc, dy, axis));
                Tensor gk = keep(log ? Loss.logSoftmaxBackward(yk, gpu(dy), axis) : Loss.softmaxBackward(yk, gpu(dy), axis));
                assertUlps(gc, gk, 2, 0, s + " backward");
            }
    }

    @Test
    void matmulOnCudaTensorsMatchesTheCpu() {
        Random r = new Random(14);
        Tensor a = randn(r, 33, 17), b = randn(r, 17, 29), bt = randn(r, 29, 17), at = randn(r, 17, 33);
        Tensor da = gpu(a), db = gpu(b), dbt = gpu(bt), dat = gpu(at);
        // transposed views go to the GEMM as transposes (cuBLAS on a device, fst_k_gemm where cuBLAS is missing)
        // sums of 17 products: each element within the bound of its own terms' magnitudes, |A| |B| on the CPU
        Tensor aa = keep(a.abs()), ab = keep(b.abs()), abt = keep(bt.abs()), aat = keep(at.abs());
        assertWithinSumBound(keep(a.matmul(b)), keep(da.matmul(db)), keep(aa.matmul(ab)), 17, "matmul");
        assertWithinSumBound(keep(a.matmul(keep(bt.t()))), keep(da.matmul(keep(dbt.t()))), keep(aa.matmul(keep(abt.t()))), 17, "matmul A B^T");
        assertWithinSumBound(keep(keep(at.t()).matmul(b)), keep(keep(dat.t()).matmul(db)), keep(keep(aat.t()).matmul(ab)), 17, "matmul A^T B");
        Tensor c = randn(r, 33, 29), dc = gpu(c);
        Tensor mag = keep(keep(keep(aa.matmul(ab)).mul(0.5)).add(keep(keep(c.abs()).mul(2.0))));   // |alpha| |A| |B| + |beta| |C0|
        Blas.gemm(0.5f, a, b, -2f, c);
        Blas.gemm(0.5f, da, db, -2f, dc);
        assertWithinSumBound(c, dc, mag, 17, "gemm with alpha and beta");
        System.out.println("CUDA GEMM: " + (CudaOps.usesCublas() ? "cuBLAS (" + Cuda.blasStatus() + ")" : "fst_k_gemm (cuBLAS: " + Cuda.blasStatus() + ")"));
    }

    @Test
    void convolutionForwardAndBackwardMatchTheCpu() {
        Random r = new Random(15);
        // x shape, w shape, stride, padding: a 3x3 / stride 2 layer, a 1x1 shortcut, a 7x7 / stride 2 / pad 3 stem
        int[][][] cases = { { { 3, 5, 11, 9 }, { 7, 5, 3, 3 }, { 2, 1 } }, { { 2, 6, 7, 7 }, { 4, 6, 1, 1 }, { 1, 0 } },
                { { 2, 3, 15, 13 }, { 5, 3, 7, 7 }, { 2, 3 } } };
        for (int[][] cs : cases) {
            String s = Arrays.toString(cs[0]) + " * " + Arrays.toString(cs[1]) + " stride " + cs[2][0] + " pad " + cs[2][1];
            int stride = cs[2][0], pad = cs[2][1];
            Tensor x = randn(r, cs[0]), w = randn(r, cs[1]), b = randn(r, cs[1][0]);
            Tensor dx = gpu(x), dw = gpu(w), db = gpu(b);
            // each output a sum of K products (plus the bias): bounded by the same convolution of |x|, |w|, |b| on the CPU
            long kIn = (long) cs[1][1] * cs[1][2] * cs[1][3], kOut = (long) cs[1][0] * cs[1][2] * cs[1][3];
            Tensor ax = keep(x.abs()), aw = keep(w.abs()), abias = keep(b.abs());
            Tensor y = keep(Conv.conv2d(x, w, b, stride, pad)), yk = keep(Conv.conv2d(dx, dw, db, stride, pad));
            assertWithinSumBound(y, yk, keep(Conv.conv2d(ax, aw, abias, stride, pad)), kIn + 1, "conv2d " + s);
            assertWithinSumBound(keep(Conv.conv2d(x, w, null, stride, pad)), keep(Conv.conv2d(dx, dw, null, stride, pad)),
                    keep(Conv.conv2d(ax, aw, null, stride, pad)), kIn, "conv2d without bias " + s);
            Tensor dy = randn(r, y.shape());
            Tensor ddy = gpu(dy), ady = keep(dy.abs());
            long kW = y.numel() / cs[1][0];   // N Hout Wout products per weight
            assertWithinSumBound(keep(Conv.conv2dBackwardInput(dy, w, x.shape(), stride, pad)), keep(Conv.conv2dBackwardInput(ddy, dw, x.shape(), stride, pad)),
                    keep(Conv.conv2dBackwardInput(ady, aw, x.shape(), stride, pad)), kOut, "conv2d dx " + s);
            assertWithinSumBound(keep(Conv.conv2dBackwardWeight(dy, x, w.shape(), stride, pad)), keep(Conv.conv2dBackwardWeight(ddy, dx, w.shape(), stride, pad)),
                    keep(Conv.conv2dBackwardWeight(ady, ax, w.shape(), stride, pad)), kW, "conv2d dw " + s);
            assertWithinSumBound(keep(Conv.conv2dBackwardBias(dy)), keep(Conv.conv2dBackwardBias(ddy)), keep(Conv.conv2dBackwardBias(ady)), kW, "conv2d dbias " + s);
            // the lowering alone is exact
            assertSame(keep(Conv.im2col(x, cs[1][2], cs[1][3], stride, stride, pad, pad)), keep(Conv.im2col(dx, cs[1][2], cs[1][3], stride, stride, pad, pad)),
                    "im2col " + s);
            int[] pos = { 0, y.shape()[2] * y.shape()[3] - 1, 1 };
            assertSame(keep(Conv.im2colAt(x, pos, cs[1][2], cs[1][3], stride, stride, pad, pad)),
                    keep(Conv.im2colAt(dx, pos, cs[1][2], cs[1][3], stride, stride, pad, pad)), "im2colAt " + s);
        }
    }

    @Test
    void emptyTensorsWithAZeroPastTheFirstDimensionGoToTheDeviceAndBack() {
        Random r = new Random(11);
        // a fresh [3, 0, 2] was "not contiguous" (its strides, from Shape.contiguousStrides, count the 0 as 1) and every
        // copy into the device refused it; so did a CUDA matmul with K = 0, whose operands are such tensors
        Tensor e = keep(Tensor.empty(DType.F32, 3, 0, 2)), de = gpu(e);
        assertArrayEquals(new int[] { 3, 0, 2 }, de.shape());
        assertArrayEquals(new int[] { 3, 0, 2 }, keep(de.to(Device.CPU)).shape());
        assertSame(keep(e.sum(false, 1)), keep(de.sum(false, 1)), "sum over an empty axis");
        Tensor a = randn(r, 3, 0), b = randn(r, 0, 4);
        assertSame(keep(a.matmul(b)), keep(gpu(a).matmul(gpu(b))), "matmul with K = 0");
        assertSame(keep(b.t().matmul(a.t())), keep(keep(gpu(b).t()).matmul(keep(gpu(a).t()))), "transposed matmul with K = 0");
    }

    @Test
    void maxPoolBackwardFromDeviceIndicesIntoASmallerPlaneIsRefusedAsOnTheCpu() {
        Random r = new Random(12);
        Tensor x = randn(r, 1, 2, 8, 8), d = gpu(x);
        try (Pool.MaxPool2d c = Pool.maxPool2d(x, 2, 2, 2, 2, 0, 0); Pool.MaxPool2d k = Pool.maxPool2d(d, 2, 2, 2, 2, 0, 0)) {
            Tensor dy = randn(r, 1, 2, 4, 4);
            // the forward's indices reach 63, past a 4x4 plane: the CPU refuses them; the device's scatter skipped them silently
            int[] small = { 1, 2, 4, 4 };
            IllegalArgumentException cpu = assertThrows(IllegalArgumentException.class, () -> Pool.maxPool2dBackward(dy, c.indices(), small));
            IllegalArgumentException dev = assertThrows(IllegalArgumentException.class, () -> Pool.maxPool2dBackward(gpu(dy), k.indices(), small));
            assertEquals(cpu.getMessage(), dev.getMessage());
            // into a larger plane every index fits: the same scatter on both
            int[] large = { 1, 2, 9, 9 };
            assertSame(keep(Pool.maxPool2dBackward(dy, c.indices(), large)), keep(Pool.maxPool2dBackward(gpu(dy), k.indices(), large)), "larger plane");
        }
    }

    @Test
    void aFloat64MatmulOnTheDeviceSaysFloat32Only() {
        // it fell through to the host loop and failed on its first element read ("tensor data is on the CUDA device")
        Tensor a = gpu(keep(Tensor.of(new double[] { 1, 2, 3, 4 }, 2, 2)));
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> a.matmul(a));
        assertTrue(e.getMessage().contains("float32 only"), e.getMessage());
    }

    @Test
    void aTransposedConvolutionOperandOfNoWeightsOrAnOddCoutIsRefusedInJava() {
        // Cout = 0 passed the "multiple of 32" check and reached the kernel's "invalid argument (cout <= 0 ...)"
        for (int[] shape : new int[][] { { 0, 4, 3, 3 }, { 32, 0, 3, 3 }, { 48, 4, 3, 3 } }) {
            Tensor w = gpu(keep(Tensor.zeros(shape)));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaConv24.transposedConv(w), Arrays.toString(shape));
            assertTrue(e.getMessage().contains("Cout a positive multiple of 32"), e.getMessage());
        }
    }

    @Test
    void convolutionPoolingAndBatchNormOfImagesWithoutValuesMatchTheCpu() {
        Random r = new Random(13);
        // C = 0, or H = 0 with padding (every window only padding): the kernels refuse such geometries, the CPU computes them
        Tensor x0 = randn(r, 1, 0, 5, 7), w0 = randn(r, 5, 0, 3, 3), b = randn(r, 5);
        assertSame(keep(x0.conv2d(w0, b, 1, 1)), keep(gpu(x0).conv2d(gpu(w0), gpu(b), 1, 1)), "conv2d, C = 0");
        Tensor dy0 = randn(r, 1, 5, 5, 7);
        assertSame(keep(Conv.conv2dBackwardInput(dy0, w0, x0.shape(), 1, 1)), keep(Conv.conv2dBackwardInput(gpu(dy0), gpu(w0), x0.shape(), 1, 1)), "dx, C = 0");
        assertSame(keep(Conv.conv2dBackwardWeight(dy0, x0, w0.shape(), 1, 1)), keep(Conv.conv2dBackwardWeight(gpu(dy0), gpu(x0), w0.shape(), 1, 1)), "dw, C = 0");
        Tensor xh = randn(r, 1, 3, 0, 5), wh = randn(r, 4, 3, 1, 1), bh = randn(r, 4), dyh = randn(r, 1, 4, 2, 7);
        assertSame(keep(xh.conv2d(wh, bh, 1, 1)), keep(gpu(xh).conv2d(gpu(wh), gpu(bh), 1, 1)), "conv2d, H = 0 padded");
        assertSame(keep(Conv.conv2dBackwardInput(dyh, wh, xh.shape(), 1, 1)), keep(Conv.conv2dBackwardInput(gpu(dyh), gpu(wh), xh.shape(), 1, 1)), "dx, H = 0");
        assertSame(keep(Conv.conv2dBackwardWeight(dyh, xh, wh.shape(), 1, 1)), keep(Conv.conv2dBackwardWeight(gpu(dyh), gpu(xh), wh.shape(), 1, 1)), "dw, H = 0");
        Tensor xm = randn(r, 2, 0, 5, 5), dym = randn(r, 2, 0, 2, 2);
        try (Pool.MaxPool2d c = Pool.maxPool2d(xm, 2, 2, 2, 2, 0, 0); Pool.MaxPool2d k = Pool.maxPool2d(gpu(xm), 2, 2, 2, 2, 0, 0)) {
            assertSame(keep(Pool.maxPool2dBackward(dym, c.indices(), xm.shape())), keep(Pool.maxPool2dBackward(gpu(dym), k.indices(), xm.shape())), "max pool backward, C = 0");
        }
        try (Norm.BatchNorm c = Norm.batchNorm2dTrain(xm, null, null, null, null, 0.1, 1e-5);
             Norm.BatchNorm k = Norm.batchNorm2dTrain(gpu(xm), null, null, null, null, 0.1, 1e-5)) {
            assertSame(c.output(), k.output(), "batch norm, C = 0");
        }
    }

    // ---------------------------------------------------------------- optimizer kernels (used by fst4j.nn)

    @Test
    void srsteDecayMatchesTheCShimBitForBit() {
        Random r = new Random(10);
        int rows = 7, k = 30;   // a last partial group of 2
        float[] w = new float[rows * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) (r.nextInt(7) - 3) / 2;   // ties
        Tensor wt = keep(Tensor.of(w, rows, k)), g = randn(r, rows, k);
        Tensor dw = gpu(wt), dg = gpu(g);
        fst4j.shim.Native.srsteDecay(wt.data(), g.data(), rows, k, 0.25f, 1);
        CudaOps.srsteDecay(dw, dg, rows, k, 0.25f);
        assertSame(g, dg, "srste decay");
    }
}
