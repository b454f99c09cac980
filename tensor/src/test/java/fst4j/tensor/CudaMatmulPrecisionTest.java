package fst4j.tensor;

import fst4j.shim.Cuda;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The dense CUDA GEMM at each {@link CudaOps.MatmulPrecision}: BF16 equals the float64 product of the bf16-rounded
 * operands (within float accumulation), TF32 stays within TF32's rounding of the float32 product, for plain and
 * transposed operands at sizes that are not multiples of anything. Runs on the device or the host emulator.
 */
class CudaMatmulPrecisionTest {
    @BeforeEach
    void needsCuda() { assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status()); }

    private static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
        return v;
    }

    private static float round(float f, boolean bf16) { return bf16 ? CudaSpmmTest.fromBf16(CudaSpmmTest.bf16(f)) : f; }

    /** C = op(A) op(B) at the given precision, checked element by element against float64. */
    private static void check(CudaOps.MatmulPrecision p, boolean ta, boolean tb, int m, int n, int k, Random r) {
        float[] a = gaussian(r, m * k), b = gaussian(r, k * n);
        CudaOps.MatmulPrecision was = CudaOps.setMatmulPrecision(p);
        try (Tensor ah = ta ? Tensor.of(a, k, m) : Tensor.of(a, m, k); Tensor bh = tb ? Tensor.of(b, n, k) : Tensor.of(b, k, n);
             Tensor ad = ah.to(Device.CUDA); Tensor bd = bh.to(Device.CUDA); Tensor av = ta ? ad.t() : ad.alias(); Tensor bv = tb ? bd.t() : bd.alias();
             Tensor c = Tensor.zeros(Device.CUDA, DType.F32, m, n)) {
            Blas.gemm(1f, av, bv, 0f, c);
            assumeTrue(CudaOps.usesCublas(), () -> p + ": cuBLAS GemmEx not available: " + Cuda.blasStatus());
            float[] got = c.toFloatArray();
            boolean bf = p == CudaOps.MatmulPrecision.BF16;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double want = 0, mag = 0;
                    for (int q = 0; q < k; q++) {
                        float x = a[ta ? q * m + i : i * k + q], y = b[tb ? j * k + q : q * n + j];
                        double t = (double) round(x, bf) * round(y, bf);
                        want += t; mag += Math.abs(t);
                    }
                    // BF16: exact products of the rounded operands, float accumulation; TF32: 10-bit mantissas (2^-11 each)
                    double tol = (bf ? 1e-4 : 2e-3) * mag + 1e-30;
                    assertEquals(want, got[i * n + j], tol, p + (ta ? " A^T" : "") + (tb ? " B^T" : "") + " " + m + "x" + n + "x" + k + " at " + i + "," + j);
                }
        } finally {
            CudaOps.setMatmulPrecision(was);
        }
    }

    @Test
    void bf16ProductIsTheProductOfTheRoundedOperands() {
        Random r = new Random(31);
        check(CudaOps.MatmulPrecision.BF16, false, false, 19, 23, 37, r);
        check(CudaOps.MatmulPrecision.BF16, true, false, 8, 5, 130, r);
        check(CudaOps.MatmulPrecision.BF16, false, true, 33, 17, 9, r);
        check(CudaOps.MatmulPrecision.BF16, true, true, 3, 40, 21, r);
    }

    @Test
    void bf16DiffersFromFloat32WhereRoundingShows() {
        // guards the test above: with operands that bf16 cannot hold, the BF16 and FP32 products must differ
        float[] a = { 1.00390625f * 1.001f, 3.3333333f }, b = { 1.2345678f, -0.7777777f };
        CudaOps.MatmulPrecision was = CudaOps.setMatmulPrecision(CudaOps.MatmulPrecision.BF16);
        try (Tensor ah = Tensor.of(a, 1, 2); Tensor bh = Tensor.of(b, 2, 1); Tensor ad = ah.to(Device.CUDA); Tensor bd = bh.to(Device.CUDA); Tensor c = Tensor.zeros(Device.CUDA, DType.F32, 1, 1)) {
            Blas.gemm(1f, ad, bd, 0f, c);
            assumeTrue(CudaOps.usesCublas(), () -> "cuBLAS GemmEx not available: " + Cuda.blasStatus());
            double fp32 = (double) a[0] * b[0] + (double) a[1] * b[1];
            assertNotEquals(fp32, c.item(), 1e-4, "BF16 result equals the float32 product: the operands were not rounded");
        } finally {
            CudaOps.setMatmulPrecision(was);
        }
    }

    /** Eq. 1 at BF16 with the columns lowered straight into bf16 equals BF16 on the float32 im2col matrix. */
    @Test
    void loweredBf16EqualsBf16OnTheIm2colMatrix() {
        Random r = new Random(33);
        CudaOps.MatmulPrecision was = CudaOps.setMatmulPrecision(CudaOps.MatmulPrecision.BF16);
        try (Tensor xh = Tensor.of(gaussian(r, 3 * 4 * 7 * 6), 3, 4, 7, 6); Tensor x = xh.to(Device.CUDA);
             Tensor cols = Conv.im2col(x, 3, 3, 1, 1, 1, 1); Tensor wh = Tensor.of(gaussian(r, 13 * 36), 36, 13); Tensor wd = wh.to(Device.CUDA);
             Tensor w = wd.t(); Tensor c1 = Tensor.empty(Device.CUDA, DType.F32, 13, cols.size(1)); Tensor c2 = Tensor.empty(Device.CUDA, DType.F32, 13, cols.size(1))) {
            Blas.gemm(1f, w, cols, 0f, c1);   // a transposed view as the weight, like S(W^T)
            assumeTrue(CudaOps.usesCublas(), () -> "cuBLAS GemmEx not available: " + Cuda.blasStatus());
            CudaOps.gemmLoweredBf16(w, new Lowering(x, 3, 3, 1, 1, 1, 1), c2);
            float[] a = c1.toFloatArray(), b = c2.toFloatArray();
            for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-5f * Math.max(1f, Math.abs(a[i])), "element " + i);
        } finally {
            CudaOps.setMatmulPrecision(was);
        }
    }

    /**
     * Eq. 1 at BF16 written image by image into NCHW (one batched cuBLAS call) equals the [M, N*Ho*Wo] product permuted:
     * bit for bit on the emulator (the same k-order sums), within cuBLAS's summation order on a device. K = 36 and 27
     * (padded to 40 and 32), planes of 8 (2x4) and 48 (8x6: Ho*Wo a multiple of 8, Wo not) positions, a transposed
     * weight view; a plane of 25 positions is refused.
     */
    @Test
    void loweredBf16IntoNchwEqualsTheProductPermuted() {
        Random r = new Random(35);
        CudaOps.MatmulPrecision was = CudaOps.setMatmulPrecision(CudaOps.MatmulPrecision.BF16);
        int[][] geoms = { { 3, 4, 2, 4, 3, 1, 1 }, { 2, 3, 8, 6, 3, 1, 1 }, { 2, 3, 9, 9, 3, 2, 1 } };   // n, c, h, w, k, stride, pad
        try {
            for (int[] g : geoms) {
                int m = 13, kk = g[1] * g[4] * g[4];
                try (Tensor xh = Tensor.of(gaussian(r, g[0] * g[1] * g[2] * g[3]), g[0], g[1], g[2], g[3]); Tensor x = xh.to(Device.CUDA);
                     Tensor wh = Tensor.of(gaussian(r, kk * m), kk, m); Tensor wd = wh.to(Device.CUDA); Tensor w = wd.t()) {
                    Lowering low = new Lowering(x, g[4], g[4], g[5], g[5], g[6], g[6]);
                    long[] geo = low.geometry();
                    int ho = (int) geo[10], wo = (int) geo[11], l = ho * wo;
                    assertEquals(l % 8 == 0, CudaOps.loweredNchwBf16(low), "planes of " + l);
                    try (Tensor c = Tensor.empty(Device.CUDA, DType.F32, m, g[0] * l); Tensor out = Tensor.empty(Device.CUDA, DType.F32, g[0], m, ho, wo)) {
                        CudaOps.gemmLoweredBf16(w, low, c);
                        assumeTrue(CudaOps.usesCublas(), () -> "cuBLAS GemmEx not available: " + Cuda.blasStatus());
                        if (l % 8 != 0) {
                            assertThrows(IllegalStateException.class, () -> CudaOps.gemmLoweredBf16Nchw(w, low, out), "planes of " + l);
                            continue;
                        }
                        CudaOps.gemmLoweredBf16Nchw(w, low, out);
                        float[] a, b = out.toFloatArray();
                        try (Tensor c3 = c.reshape(m, g[0], l); Tensor p = c3.permute(1, 0, 2); Tensor pc = p.contiguous()) { a = pc.toFloatArray(); }
                        for (int i = 0; i < a.length; i++) {
                            if (Cuda.isEmulated()) assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), java.util.Arrays.toString(g) + " element " + i);
                            else assertEquals(a[i], b[i], 1e-5f * Math.max(1f, Math.abs(a[i])), java.util.Arrays.toString(g) + " element " + i);
                        }
                        try (Tensor bad = Tensor.empty(Device.CUDA, DType.F32, g[0], m + 1, ho, wo)) {
                            assertThrows(IllegalArgumentException.class, () -> CudaOps.gemmLoweredBf16Nchw(w, low, bad), "wrong channel count");
                        }
                        boolean on = CudaOps.setBatchedNchw(false);
                        try { assertFalse(CudaOps.loweredNchwBf16(low), "switched off"); } finally { CudaOps.setBatchedNchw(on); }
                    }
                }
            }
        } finally {
            CudaOps.setMatmulPrecision(was);
        }
    }

    /** Eq. 3 at BF16 (g im2col^T + beta dw) with the columns lowered straight into bf16, against BF16 on the matrix. */
    @Test
    void loweredBf16TransposedEqualsBf16OnTheIm2colMatrix() {
        Random r = new Random(34);
        CudaOps.MatmulPrecision was = CudaOps.setMatmulPrecision(CudaOps.MatmulPrecision.BF16);
        int[][] geoms = { { 3, 4, 7, 6, 3, 1, 1, 1 }, { 2, 5, 6, 8, 3, 1, 2, 1 } };   // n, c, h, w, k, sh, sw, pad: stride (1,2) is the half-K lowering
        try {
            for (int[] g : geoms) {
                try (Tensor xh = Tensor.of(gaussian(r, g[0] * g[1] * g[2] * g[3]), g[0], g[1], g[2], g[3]); Tensor x = xh.to(Device.CUDA);
                     Tensor cols = Conv.im2col(x, g[4], g[4], g[5], g[6], g[7], g[7]); Tensor ct = cols.t();
                     Tensor gh = Tensor.of(gaussian(r, 11 * cols.size(1)), 11, cols.size(1)); Tensor gd = gh.to(Device.CUDA);
                     Tensor dh = Tensor.of(gaussian(r, 11 * cols.size(0)), 11, cols.size(0));
                     Tensor d1 = dh.to(Device.CUDA); Tensor d2 = dh.to(Device.CUDA)) {
                    Blas.gemm(1f, gd, ct, 0.5f, d1);
                    assumeTrue(CudaOps.usesCublas(), () -> "cuBLAS GemmEx not available: " + Cuda.blasStatus());
                    CudaOps.gemmLoweredBf16(gd, new Lowering(x, g[4], g[4], g[5], g[6], g[7], g[7]), true, 0.5f, d2);
                    float[] a = d1.toFloatArray(), b = d2.toFloatArray();
                    for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-5f * Math.max(1f, Math.abs(a[i])), java.util.Arrays.toString(g) + " element " + i);
                }
            }
        } finally {
            CudaOps.setMatmulPrecision(was);
        }
    }

    @Test
    void tf32StaysCloseToFloat32() {
        Random r = new Random(32);
        check(CudaOps.MatmulPrecision.TF32, false, false, 21, 18, 45, r);
        check(CudaOps.MatmulPrecision.TF32, true, true, 6, 11, 70, r);
    }

    @Test
    void precisionSettingIsValidated() {
        assertEquals(CudaOps.MatmulPrecision.BF16, CudaOps.MatmulPrecision.parse(" bf16"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaOps.MatmulPrecision.parse("fp16"));
        assertTrue(e.getMessage().contains("fst4j.cuda.matmul"), e.getMessage());
    }
}
