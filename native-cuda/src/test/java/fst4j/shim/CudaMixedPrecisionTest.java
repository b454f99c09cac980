package fst4j.shim;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The vendor-library entry points added for mixed precision and timing: cublasGemmEx ({@link Cuda#gemmEx}), cuSPARSELt
 * 2:4 matmul ({@link Cuda#sparseLtPlan}) and CUDA events ({@link Cuda.Timer}), each against a float64 reference of the
 * same (bf16-rounded, masked) operands on fresh random data (never zeros) at awkward but legal sizes, plus the argument
 * checks. Runs on a device (gpu/run.sh) and on the host emulator (surefire execution cuda-emulator), where gemmEx and
 * cuSPARSELt are host reference loops that are stricter than the libraries (2:4 check, sizes of the library buffers);
 * the tests that only the emulator can check say so and are skipped on a device.
 */
class CudaMixedPrecisionTest {
    private static final int F32 = Cuda.R_32F, BF16 = Cuda.R_16BF, F16 = Cuda.R_16F;
    private final DeviceBuffers mem = new DeviceBuffers(0xff, 16);   // NaN in every type: an element nobody wrote shows

    @BeforeAll
    static void reportDevice() {
        System.out.println("CUDA " + Cuda.status());
    }

    @BeforeEach
    void needsDevice() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
    }

    @AfterEach
    void freeAll() { mem.close(); }

    // ---- helpers ----

    /** Normal values bounded away from zero (|v| >= 0.05), so no product term is trivially zero. */
    static float[] nonZeroGaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            double g = r.nextGaussian();
            v[i] = (float) (Math.abs(g) < 0.05 ? Math.copySign(0.05 + Math.abs(g), g) : g);
        }
        return v;
    }

    static short[] toType(float[] v, int type) {
        short[] s = new short[v.length];
        for (int i = 0; i < v.length; i++) s[i] = type == BF16 ? Bf16.of(v[i]) : Float.floatToFloat16(v[i]);
        return s;
    }

    static float fromType(short h, int type) { return type == BF16 ? Bf16.value(h) : Float.float16ToFloat(h); }

    /** Host 2:4 magnitude mask along rows of a [rows, k] (keeps the two largest |v| of each group of 4, ties to the lower index). */
    static float[] mask24(float[] a, int rows, int k) {
        float[] m = new float[a.length];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < k; g += 4) {
                int i0 = -1, i1 = -1;
                for (int j = 0; j < 4; j++) {
                    float v = Math.abs(a[r * k + g + j]);
                    if (i0 < 0 || v > Math.abs(a[r * k + g + i0])) { i1 = i0; i0 = j; }
                    else if (i1 < 0 || v > Math.abs(a[r * k + g + i1])) i1 = j;
                }
                m[r * k + g + i0] = a[r * k + g + i0];
                m[r * k + g + i1] = a[r * k + g + i1];
            }
        return m;
    }

    /**
     * Elementwise check against a float64 reference: |got - ref| <= fp32 accumulation bound (K * 2^-23 * the sum of
     * |terms|) plus outRel * |ref| for a rounded output type. Returns the reference's Frobenius norm (asserted > 0).
     */
    static double assertNear(double[] ref, double[] absTerms, float[] got, int k, double outRel, double inRel, String what) {
        double norm = 0;
        for (int i = 0; i < ref.length; i++) {
            double tol = (k * 0x1p-23 + inRel) * absTerms[i] + outRel * Math.abs(ref[i]) + 1e-30;
            if (!(Math.abs(got[i] - ref[i]) <= tol))
                fail(what + ": element " + i + " is " + got[i] + ", reference " + ref[i] + " (tolerance " + tol + ")");
            norm += ref[i] * ref[i];
        }
        assertTrue(norm > 0, what + ": the reference is all zeros, the check would be empty");
        return Math.sqrt(norm);
    }

    // ---- cublasGemmEx ----

    /** gemmEx on random data against float64 on the same (rounded) inputs, for one case. */
    private void gemmExCase(Random r, int m, int n, int k, boolean ta, boolean tb, int inType, int outType, boolean tf32,
                            float alpha, float beta) {
        int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
        int aRows = ta ? k : m, bRows = tb ? n : k;
        float[] a = nonZeroGaussian(r, aRows * lda), b = nonZeroGaussian(r, bRows * ldb), c = nonZeroGaussian(r, m * ldc);
        // the values the device sees: rounded to the input / output types
        if (inType == BF16) { for (int i = 0; i < a.length; i++) a[i] = Bf16.value(Bf16.of(a[i])); for (int i = 0; i < b.length; i++) b[i] = Bf16.value(Bf16.of(b[i])); }
        if (outType == BF16) for (int i = 0; i < c.length; i++) c[i] = Bf16.value(Bf16.of(c[i]));
        MemorySegment da = inType == F32 ? mem.upload(a) : mem.upload(toType(a, BF16)), db = inType == F32 ? mem.upload(b) : mem.upload(toType(b, BF16));
        MemorySegment dc = outType == F32 ? mem.upload(c) : mem.upload(toType(c, BF16));
        try {
            Cuda.gemmEx(ta, tb, m, n, k, alpha, da, inType, lda, db, inType, ldb, beta, dc, outType, ldc, tf32);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuBLAS unavailable: " + e.getMessage());
        }
        float[] got = new float[m * ldc];
        if (outType == F32) got = mem.downloadFloats(dc, m * ldc);
        else { short[] s = mem.downloadShorts(dc, m * ldc); for (int i = 0; i < got.length; i++) got[i] = Bf16.value(s[i]); }
        double[] ref = new double[m * n], abs = new double[m * n];
        float[] gotC = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double s = 0, sa = 0;
                for (int p = 0; p < k; p++) {
                    double t = (double) a[ta ? p * lda + i : i * lda + p] * b[tb ? j * ldb + p : p * ldb + j];
                    s += t;
                    sa += Math.abs(t);
                }
                ref[i * n + j] = alpha * s + (beta == 0 ? 0 : (double) beta * c[i * ldc + j]);
                abs[i * n + j] = Math.abs(alpha) * sa + Math.abs((double) beta * c[i * ldc + j]);
                gotC[i * n + j] = got[i * ldc + j];
            }
        // TF32 rounds each input to 10 mantissa bits on the device: 2^-10 per product
        String what = "gemmEx " + m + "x" + n + "x" + k + (ta ? " A^T" : "") + (tb ? " B^T" : "") + " in " + inType + " out " + outType
                + (tf32 ? " tf32" : "") + " (" + Cuda.blasStatus() + ")";
        assertNear(ref, abs, gotC, k + 2, outType == BF16 ? 0x1p-8 : 0, tf32 ? 0x1p-10 : 0, what);
        // the padding between rows of C (ldc > n) is untouched
        for (int i = 0; i < m; i++)
            for (int j = n; j < ldc; j++)
                assertEquals(Float.floatToRawIntBits(c[i * ldc + j]), Float.floatToRawIntBits(got[i * ldc + j]), what + ": C padding written at " + i + "," + j);
    }

    @Test
    void gemmExBf16MatchesAFloat64Reference() {
        Random r = new Random(21);
        int[][] cases = { { 33, 17, 29, 0, 0 }, { 64, 48, 80, 1, 0 }, { 7, 65, 31, 0, 1 }, { 19, 5, 130, 1, 1 }, { 1, 1, 1, 0, 0 } };
        for (int[] cs : cases) gemmExCase(r, cs[0], cs[1], cs[2], cs[3] == 1, cs[4] == 1, BF16, F32, false, 1.25f, -0.75f);
        for (int[] cs : cases) gemmExCase(r, cs[0], cs[1], cs[2], cs[3] == 1, cs[4] == 1, BF16, BF16, false, 0.5f, 2f);
    }

    @Test
    void gemmExFp32AndTf32MatchAFloat64Reference() {
        Random r = new Random(22);
        int[][] cases = { { 31, 23, 47, 0, 0 }, { 50, 9, 66, 1, 0 }, { 3, 70, 17, 0, 1 }, { 16, 16, 100, 1, 1 } };
        for (int[] cs : cases) gemmExCase(r, cs[0], cs[1], cs[2], cs[3] == 1, cs[4] == 1, F32, F32, false, -1.5f, 0.25f);
        for (int[] cs : cases) gemmExCase(r, cs[0], cs[1], cs[2], cs[3] == 1, cs[4] == 1, F32, F32, true, 1f, 0f);
    }

    @Test
    void gemmExDoesNotReadCWhenBetaIsZero() {
        Random r = new Random(23);
        int m = 9, n = 11, k = 13;
        float[] a = nonZeroGaussian(r, m * k), b = nonZeroGaussian(r, k * n);
        MemorySegment da = mem.upload(toType(a, BF16)), db = mem.upload(toType(b, BF16)), dc = mem.dev(4L * m * n);   // C is NaN
        try {
            Cuda.gemmEx(false, false, m, n, k, 1f, da, BF16, k, db, BF16, n, 0f, dc, F32, n, false);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuBLAS unavailable: " + e.getMessage());
        }
        for (float v : mem.downloadFloats(dc, m * n)) assertTrue(Float.isFinite(v), "C read although beta == 0: " + v);
    }

    @Test
    void gemmExRejectsBadArgumentsNamingTheRule() {
        MemorySegment d = mem.dev(4096), a0 = mem.dev(64), b0 = mem.dev(64), c0 = mem.dev(64);
        try {
            Cuda.gemmEx(false, false, 4, 4, 4, 1f, a0, BF16, 4, b0, BF16, 4, 0f, c0, F32, 4, false);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuBLAS unavailable: " + e.getMessage());
        }
        var e1 = assertThrows(IllegalArgumentException.class, () -> Cuda.gemmEx(false, false, 4, 4, 4, 1f, d, BF16, 4, d, BF16, 4, 0f, d, F32, 4, true));
        assertTrue(e1.getMessage().contains("tf32 compute needs fp32 inputs"), e1.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class, () -> Cuda.gemmEx(false, false, 4, 4, 4, 1f, d, F32, 4, d, F32, 4, 0f, d, BF16, 4, false));
        assertTrue(e2.getMessage().contains("C must be CUDA_R_32F"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class, () -> Cuda.gemmEx(false, false, 4, 4, 4, 1f, d, F32, 4, d, BF16, 4, 0f, d, F32, 4, false));
        assertTrue(e3.getMessage().contains("A and B must both be"), e3.getMessage());
        var e4 = assertThrows(IllegalArgumentException.class, () -> Cuda.gemmEx(false, false, 4, 4, 8, 1f, d, F32, 4, d, F32, 4, 0f, d, F32, 4, false));
        assertTrue(e4.getMessage().contains("lda"), e4.getMessage());
        var e5 = assertThrows(IllegalArgumentException.class, () -> Cuda.gemmEx(false, false, 4, 4, 4, 1f, d, 2, 4, d, 2, 4, 0f, d, F32, 4, false));
        assertTrue(e5.getMessage().contains("atype 2"), e5.getMessage());
    }

    @Test
    void gemmExChecksEveryOperandLiesInADeviceBlockOnTheEmulator() {
        assumeTrue(Cuda.isEmulated(), "device pointers cannot be range-checked on a device; the emulator checks them");
        MemorySegment a = mem.dev(2L * 16 * 16), c = mem.dev(4L * 16 * 16);
        var e = assertThrows(IllegalArgumentException.class, () -> Cuda.gemmEx(false, false, 16, 17, 16, 1f, a, BF16, 16, a, BF16, 17, 0f, c, F32, 17, false));
        assertTrue(e.getMessage().contains("not inside one device allocation"), e.getMessage());
    }

    /**
     * The batched GemmEx (one call, several products at strides): the products of each operand slice, refusals of
     * overlapping outputs, negative strides and an extent past the block (the emulator checks every product's range).
     */
    @Test
    void batchedGemmExComputesEachProductAndRefusesOverlapsByName() {
        int m = 3, n = 8, k = 5, batch = 4;
        Random r = new Random(61);
        float[] a = new float[m * k], b = new float[k * n * batch];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        for (int i = 0; i < b.length; i++) b[i] = (float) r.nextGaussian();
        MemorySegment da = mem.upload(a), db = mem.upload(b), dc = mem.dev(4L * m * n * batch);   // C is NaN until written
        // product i: A (repeated, stride 0) times B's i-th [k, n] block, into C's i-th [m, n] block
        Native.cudaGemmExBatched(false, false, m, n, k, 1f, da, F32, k, 0, db, F32, n, (long) k * n, 0f, dc, F32, n, (long) m * n, batch, false);
        float[] c = mem.downloadFloats(dc, m * n * batch);
        for (int i = 0; i < batch; i++)
            for (int row = 0; row < m; row++)
                for (int col = 0; col < n; col++) {
                    double want = 0, mag = 0;
                    for (int q = 0; q < k; q++) { double t = (double) a[row * k + q] * b[i * k * n + q * n + col]; want += t; mag += Math.abs(t); }
                    assertEquals(want, c[i * m * n + row * n + col], 1e-6 * mag + 1e-30, "product " + i + " at " + row + "," + col);
                }
        var overlap = assertThrows(IllegalArgumentException.class, () -> Native.cudaGemmExBatched(false, false, m, n, k, 1f, da, F32, k, 0, db, F32, n,
                (long) k * n, 0f, dc, F32, n, (long) m * n - 1, batch, false));
        assertTrue(overlap.getMessage().contains("strideC"), overlap.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Native.cudaGemmExBatched(false, false, m, n, k, 1f, da, F32, k, -1, db, F32, n,
                (long) k * n, 0f, dc, F32, n, (long) m * n, batch, false), "negative stride");
        if (Cuda.isEmulated()) {
            var past = assertThrows(IllegalArgumentException.class, () -> Native.cudaGemmExBatched(false, false, m, n, k, 1f, da, F32, k, 0, db, F32, n,
                    (long) k * n, 0f, dc, F32, n, (long) m * n, batch + 1, false));
            assertTrue(past.getMessage().contains("not inside one device allocation"), past.getMessage());
        }
    }

    // ---- cuSPARSELt ----

    /** One plan / compress / matmul against the float64 product of the masked, rounded operands. Returns the output type used. */
    private int sparseLtCase(Random r, int m, int n, int k, int abType, int cdWanted, float alpha, float beta) {
        float[] w = nonZeroGaussian(r, m * k);
        float[] a = mask24(w, m, k);
        for (int i = 0; i < a.length; i++) a[i] = fromType(toType(new float[] { a[i] }, abType)[0], abType);
        float[] b = nonZeroGaussian(r, k * n);
        for (int i = 0; i < b.length; i++) b[i] = fromType(toType(new float[] { b[i] }, abType)[0], abType);
        int cd = cdWanted;
        Cuda.SparseLtPlan plan;
        try {
            plan = Cuda.sparseLtPlan(m, n, k, abType, cd);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuSPARSELt unavailable: " + e.getMessage());
            return -1;
        } catch (CudaException e) {
            assumeTrue(cd == F32, "cuSPARSELt refused " + abType + " -> " + cd + ": " + e.getMessage());
            System.out.println("CUSPARSELT " + abType + " -> fp32 output refused (" + e.getMessage() + "), using " + abType + " output");
            cd = abType;
            plan = Cuda.sparseLtPlan(m, n, k, abType, cd);
        }
        float[] c = nonZeroGaussian(r, m * n);
        if (cd != F32) for (int i = 0; i < c.length; i++) c[i] = fromType(toType(new float[] { c[i] }, cd)[0], cd);
        String what = "cuSPARSELt " + m + "x" + n + "x" + k + " ab " + abType + " cd " + cd + " (" + Cuda.sparseLtStatus() + ")";
        try (Cuda.SparseLtPlan p = plan) {
            assertTrue(p.compressedBytes() > 0 && p.workspaceBytes() >= 0 && p.bufferBytes() >= 0, what + ": sizes " + p);
            MemorySegment da = mem.upload(toType(a, abType)), db = mem.upload(toType(b, abType));
            MemorySegment dc = cd == F32 ? mem.upload(c) : mem.upload(toType(c, cd));
            MemorySegment comp = mem.dev(p.compressedBytes()), buf = mem.dev(p.bufferBytes()), ws = mem.dev(p.workspaceBytes());
            p.compress(da, comp, buf);
            p.matmul(alpha, comp, db, beta, dc, ws);
            float[] got;
            if (cd == F32) got = mem.downloadFloats(dc, m * n);
            else {
                short[] s = mem.downloadShorts(dc, m * n);
                got = new float[m * n];
                for (int i = 0; i < got.length; i++) got[i] = fromType(s[i], cd);
            }
            double[] ref = new double[m * n], abs = new double[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0, sa = 0;
                    for (int q = 0; q < k; q++) {
                        double t = (double) a[i * k + q] * b[q * n + j];
                        s += t;
                        sa += Math.abs(t);
                    }
                    ref[i * n + j] = alpha * s + (beta == 0 ? 0 : (double) beta * c[i * n + j]);
                    abs[i * n + j] = Math.abs(alpha) * sa + Math.abs((double) beta * c[i * n + j]);
                }
            assertNear(ref, abs, got, k / 2 + 2, cd == BF16 ? 0x1p-8 : cd == F16 ? 0x1p-11 : 0, 0, what);
            // the masked operand really dropped half of A: the product of the unmasked one is far from it
            double diff = 0, norm = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double s = 0;
                    for (int q = 0; q < k; q++) s += (double) w[i * k + q] * b[q * n + j];
                    diff += Math.pow(alpha * s + (beta == 0 ? 0 : (double) beta * c[i * n + j]) - ref[i * n + j], 2);
                    norm += ref[i * n + j] * ref[i * n + j];
                }
            assertTrue(Math.sqrt(diff / norm) > 0.05, what + ": the pruned entries made no difference");
        }
        return cd;
    }

    @Test
    void sparseLtMatchesAFloat64ReferenceOfTheMaskedBf16Product() {
        Random r = new Random(31);
        int[][] shapes = { { 16, 16, 16 }, { 48, 80, 32 }, { 112, 48, 160 }, { 32, 144, 304 }, { 80, 16, 48 } };
        for (int[] s : shapes) {
            int cd = sparseLtCase(r, s[0], s[1], s[2], BF16, F32, 1.25f, -0.5f);
            System.out.println("CUSPARSELT " + Arrays.toString(s) + " bf16 -> " + (cd == F32 ? "fp32" : "bf16") + " ok");
        }
        sparseLtCase(r, 64, 32, 96, BF16, BF16, 0.75f, 0f);
    }

    @Test
    void sparseLtFp16MatchesAFloat64Reference() {
        Random r = new Random(32);
        sparseLtCase(r, 48, 32, 64, F16, F16, 1f, 0.5f);
        sparseLtCase(r, 32, 48, 80, F16, F32, -1f, 0f);
    }

    /** A masked bf16 operand [m, k] on the device, as bits, and its plan's buffers. */
    private record Compressed(Cuda.SparseLtPlan plan, short[] a, MemorySegment comp, MemorySegment buf) {}

    private Compressed planFor(int m, int n, int k) {
        Random r = new Random(33);
        short[] a = toType(mask24(nonZeroGaussian(r, m * k), m, k), BF16);
        Cuda.SparseLtPlan p;
        try {
            p = Cuda.sparseLtPlan(m, n, k, BF16, BF16);
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuSPARSELt unavailable: " + e.getMessage());
            return null;
        }
        return new Compressed(p, a, mem.dev(p.compressedBytes()), mem.dev(p.bufferBytes()));
    }

    @Test
    void compressRejectsAnOperandThatIsNot24NamingTheGroup() {
        assumeTrue(Cuda.isEmulated(), "cuSPARSELt does not check the 2:4 pattern; the emulator does, so that callers' bugs show in CI");
        Compressed c = planFor(32, 16, 48);
        try (Cuda.SparseLtPlan p = c.plan()) {
            // -0.0 counts as zero: setting a pruned entry to -0 keeps A 2:4
            short[] a = c.a().clone();
            int row = 17, group = 9;
            int zero = -1;
            for (int j = 0; j < 4; j++) if (a[row * 48 + 4 * group + j] == 0) { zero = j; break; }
            assertTrue(zero >= 0);
            a[row * 48 + 4 * group + zero] = (short) 0x8000;
            p.compress(mem.upload(a), c.comp(), c.buf());
            // a third non-zero value in row 17, group 9
            a[row * 48 + 4 * group + zero] = Bf16.of(0.375f);
            MemorySegment bad = mem.upload(a);
            var e = assertThrows(IllegalArgumentException.class, () -> p.compress(bad, c.comp(), c.buf()));
            assertTrue(e.getMessage().contains("row 17, group 9 (columns 36..39) has 3 non-zero"), e.getMessage());
        }
    }

    @Test
    void sparseLtRejectsIllegalSizesAndTypesUpFront() {
        try {
            Cuda.sparseLtPlan(16, 16, 16, BF16, F32).close();
        } catch (CudaUnavailableException e) {
            assumeTrue(false, "cuSPARSELt unavailable: " + e.getMessage());
        } catch (CudaException e) {
            // the library may refuse fp32 output; the checks below come before the library either way
        }
        String[][] cases = {
                { "24", "16", "16", "14", "0", "M (rows of A, C) = 24 must be a positive multiple of 16" },
                { "16", "8", "16", "14", "0", "N (columns of B, C) = 8 must be a positive multiple of 16" },
                { "16", "16", "20", "14", "0", "K (columns of A, rows of B) = 20 must be a positive multiple of 16" },
                { "0", "16", "16", "14", "0", "M (rows of A, C) = 0 must be a positive multiple of 16" },
                { "16", "16", "16", "0", "0", "ab_type 0" },
                { "16", "16", "16", "14", "2", "cd_type 2" },
        };
        for (String[] cs : cases) {
            var e = assertThrows(IllegalArgumentException.class, () -> Cuda.sparseLtPlan(Long.parseLong(cs[0]), Long.parseLong(cs[1]),
                    Long.parseLong(cs[2]), Integer.parseInt(cs[3]), Integer.parseInt(cs[4])), Arrays.toString(cs));
            assertTrue(e.getMessage().contains(cs[5]), e.getMessage());
        }
    }

    @Test
    void sparseLtRejectsMisalignedPointers() {
        Compressed c = planFor(16, 16, 32);
        try (Cuda.SparseLtPlan p = c.plan()) {
            MemorySegment a = mem.dev(2L * 16 * 32 + 64);
            MemorySegment off = MemorySegment.ofAddress(a.address() + 2);
            var e = assertThrows(IllegalArgumentException.class, () -> p.compress(off, c.comp(), c.buf()));
            assertTrue(e.getMessage().contains("dense_a") && e.getMessage().contains("not 16-byte aligned"), e.getMessage());
        }
    }

    @Test
    void emulatedSparseLtChecksTheLibraryBuffersAndThePlan() {
        assumeTrue(Cuda.isEmulated(), "the emulator's own strictness (buffer sizes, plan and compressed-operand identity)");
        Compressed c = planFor(32, 16, 64);
        Cuda.SparseLtPlan p = c.plan();
        assertTrue(p.compressedBytes() > 0 && p.bufferBytes() > 0 && p.workspaceBytes() > 0, "emulated sizes must be non-zero: " + p);
        MemorySegment a = mem.upload(c.a()), b = mem.upload(toType(nonZeroGaussian(new Random(5), 64 * 16), BF16)), out = mem.dev(2L * 32 * 16);
        // a compression buffer smaller than the plan says
        MemorySegment small = mem.dev(p.bufferBytes() - 16);
        var e1 = assertThrows(IllegalArgumentException.class, () -> p.compress(a, c.comp(), small));
        assertTrue(e1.getMessage().contains("buffer") && e1.getMessage().contains("not inside one device allocation"), e1.getMessage());
        // matmul on a compressed buffer nobody wrote
        MemorySegment ws = mem.dev(p.workspaceBytes());
        var e2 = assertThrows(IllegalArgumentException.class, () -> p.matmul(1f, c.comp(), b, 0f, out, ws));
        assertTrue(e2.getMessage().contains("compressed_a does not hold"), e2.getMessage());
        p.compress(a, c.comp(), c.buf());
        // a workspace smaller than the plan says
        MemorySegment smallWs = mem.dev(p.workspaceBytes() - 16);
        var e3 = assertThrows(IllegalArgumentException.class, () -> p.matmul(1f, c.comp(), b, 0f, out, smallWs));
        assertTrue(e3.getMessage().contains("workspace"), e3.getMessage());
        // the compressed operand of another shape
        try (Cuda.SparseLtPlan other = Cuda.sparseLtPlan(32, 16, 48, BF16, BF16)) {
            MemorySegment comp2 = mem.dev(other.compressedBytes());
            other.compress(mem.upload(toType(mask24(nonZeroGaussian(new Random(6), 32 * 48), 32, 48), BF16)), comp2, mem.dev(other.bufferBytes()));
            MemorySegment big = mem.dev(p.compressedBytes());
            Cuda.copyOnDevice(big, comp2, other.compressedBytes());
            var e4 = assertThrows(IllegalArgumentException.class, () -> p.matmul(1f, big, b, 0f, out, ws));
            assertTrue(e4.getMessage().contains("compressed_a does not hold an A of 32 x 64"), e4.getMessage());
        }
        p.matmul(1f, c.comp(), b, 0f, out, ws);
        p.close();
        // a freed plan: refused on the Java side before the C side sees it (the emulator's own check, "not a live plan",
        // stays behind it), and a second close frees nothing (on a device it freed the plan twice and aborted the JVM)
        var e5 = assertThrows(IllegalStateException.class, () -> p.matmul(1f, c.comp(), b, 0f, out, ws));
        assertTrue(e5.getMessage().contains("closed"), e5.getMessage());
        p.close();
    }

    // ---- events ----

    @Test
    void timerGivesNonNegativeElapsedTimes() throws Exception {
        Random r = new Random(41);
        int m = 64, n = 48, k = 96;
        MemorySegment a = mem.upload(toType(nonZeroGaussian(r, m * k), BF16)), b = mem.upload(toType(nonZeroGaussian(r, k * n), BF16)), c = mem.dev(4L * m * n);
        try (Cuda.Timer t = new Cuda.Timer()) {
            for (int i = 0; i < 3; i++) {
                t.start();
                try {
                    Cuda.gemmEx(false, false, m, n, k, 1f, a, BF16, k, b, BF16, n, 0f, c, F32, n, false);
                } catch (CudaUnavailableException e) {
                    Cuda.memset(c, 0, 4L * m * n);   // no cuBLAS: time a memset instead
                }
                float ms = t.stopMs();
                assertTrue(ms >= 0 && Float.isFinite(ms), "elapsed " + ms);
            }
            t.start();
            Thread.sleep(30);
            float slept = t.stopMs();
            assertTrue(slept >= 0 && Float.isFinite(slept), "elapsed " + slept);
            // the emulator's events read the host clock; a device's idle stream also sees the host's 30 ms
            if (Cuda.isEmulated()) assertTrue(slept >= 25, "30 ms of sleep measured as " + slept + " ms");
            System.out.println("CUDA TIMER 30 ms sleep between records: " + slept + " ms");
            assertThrows(IllegalStateException.class, t::stopMs);
        }
        Cuda.Timer closed = new Cuda.Timer();
        closed.close();
        closed.close();
        assertThrows(IllegalStateException.class, closed::start);
    }

    @Test
    void elapsedTimeOfAnUnrecordedEventFails() {
        MemorySegment e1 = Native.cudaEventCreate(), e2 = Native.cudaEventCreate();
        try {
            Native.cudaEventRecord(e1);
            // the device answers cudaErrorInvalidResourceHandle (CudaException), the emulator an IllegalArgumentException
            RuntimeException e = assertThrows(RuntimeException.class, () -> Native.cudaEventElapsedMs(e1, e2));
            assertTrue(e instanceof CudaException || e instanceof IllegalArgumentException, e.toString());
        } finally {
            Native.cudaEventDestroy(e1);
            Native.cudaEventDestroy(e2);
        }
    }
}
