package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

import static java.lang.foreign.ValueLayout.JAVA_SHORT;
import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The 2:4 product on CUDA ({@link CudaSpmm}: bf16 operands, cuSPARSELt, float32 result) and its padded bf16 operand
 * kernel, against float64 references of the bf16-rounded operands, at shapes that need padding in every dimension.
 * Runs on the device, or on the host emulator (which emulates cuSPARSELt and rejects what the library forbids).
 */
class CudaSpmmTest {
    @BeforeEach
    void needsCuda() { assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status()); }

    /** Round to nearest even, the kernels' rule (NaN stays NaN). */
    static short bf16(float f) {
        int b = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((b >>> 16) | 0x40);
        return (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
    }

    static float fromBf16(short s) { return Float.intBitsToFloat((s & 0xffff) << 16); }

    /**
     * c [rows, n] equals the float64 product of the bf16-rounded a [rows, k] and b ([k, n], or [n, k] when bTransposed)
     * within float accumulation: 1e-4 of the sum of the terms' magnitudes; where the library writes its product in
     * bf16 ({@link CudaSpmm#outputType()}), plus that rounding: 2^-8 of the value (a rounding is at most 2^-9).
     */
    static void assertBf16Product(float[] a, float[] b, boolean bTransposed, int rows, int k, int n, float[] c, String what) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < n; j++) {
                double want = 0, mag = 0;
                for (int q = 0; q < k; q++) {
                    double t = (double) fromBf16(bf16(a[i * k + q])) * fromBf16(bf16(b[bTransposed ? j * k + q : q * n + j]));
                    want += t; mag += Math.abs(t);
                }
                double out = CudaSpmm.outputType() == Cuda.R_16BF ? 0x1p-8 * Math.abs(want) : 0;
                assertEquals(want, c[i * n + j], 1e-4 * mag + out + 1e-30, what + " at " + i + "," + j);
            }
    }

    private static float[] gaussian(Random r, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) (r.nextGaussian() * (1 + r.nextInt(3)));
        return v;
    }

    /** Magnitude 2:4 along rows (the two largest |x| of each group of 4 kept, ties to the lower index). */
    private static float[] prune24Rows(float[] a, int rows, int k) {
        float[] out = a.clone();
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < k; g += 4) {
                int n = Math.min(4, k - g), base = r * k + g;
                Integer[] idx = new Integer[n];
                for (int j = 0; j < n; j++) idx[j] = j;
                java.util.Arrays.sort(idx, (x, y) -> Math.abs(a[base + x]) != Math.abs(a[base + y])
                        ? Float.compare(Math.abs(a[base + y]), Math.abs(a[base + x])) : Integer.compare(x, y));
                for (int j = 2; j < n; j++) out[base + idx[j]] = 0f;
            }
        return out;
    }

    @Test
    void paddedBf16OperandIsTheRoundedMatrixWithZerosAround() {
        Random r = new Random(17);
        int rows = 13, cols = 37, rowsP = 16;
        float[] v = gaussian(r, rows * cols);   // h [cols, rows]; the source is its transpose, a [rows, cols] view
        v[5] = Float.NaN; v[6] = -0f; v[7] = 1.00390625f;   // a NaN, a negative zero, an exact tie (1 + 2^-8)
        // a padded width that is a multiple of 4 (four elements and one 8-byte store per thread) and an odd one
        for (int colsP : new int[] { 48, 47 })
        try (Tensor h = Tensor.of(v, cols, rows); Tensor d = h.to(Device.CUDA); Tensor src = d.t();
             CudaOps.Block out = CudaOps.Block.of(2L * rowsP * colsP); Arena arena = Arena.ofConfined()) {
            assertArrayEquals(new int[] { rows, cols }, src.shape());
            Native.cudaBf16Pad(CudaOps.ptr(src), rows, cols, src.strides()[0], src.strides()[1], out.ptr(), rowsP, colsP);
            MemorySegment host = arena.allocate(2L * rowsP * colsP);
            Cuda.copyToHost(host, out.ptr(), 2L * rowsP * colsP);
            for (int i = 0; i < rowsP; i++)
                for (int j = 0; j < colsP; j++) {
                    short got = host.getAtIndex(JAVA_SHORT, (long) i * colsP + j);
                    short want = (i < rows && j < cols) ? bf16(v[j * rows + i]) : 0;
                    assertEquals(want, got, "width " + colsP + ", element " + i + "," + j);
                }
            assertThrows(IllegalArgumentException.class, () -> Native.cudaBf16Pad(CudaOps.ptr(src), rows, cols, src.strides()[0],
                    src.strides()[1], out.ptr(), rows - 1, colsP), "a padded size below the source's");
        }
    }

    @Test
    void sparseProductEqualsTheDenseProductOfTheRoundedOperands() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
        Random r = new Random(5);
        int[][] shapes = { { 27, 147, 50 }, { 64, 576, 98 }, { 16, 16, 16 }, { 5, 9, 3 } };
        for (int[] s : shapes) {
            int rows = s[0], k = s[1], n = s[2];
            float[] a = prune24Rows(gaussian(r, rows * k), rows, k);
            float[] b = gaussian(r, k * n);
            assertBf16Product(a, b, false, rows, k, n, sparseTimes(a, b, rows, k, n), rows + "x" + k + "x" + n);
        }
    }

    /** a [rows, k] (2:4 along k) times b [k, n] through CudaSpmm.times on the device; checks it was one library product. */
    private static float[] sparseTimes(float[] a, float[] b, int rows, int k, int n) {
        long before = CudaSpmm.matmuls();
        try (Tensor ah = Tensor.of(a, rows, k); Tensor ad = ah.to(Device.CUDA); Tensor bh = Tensor.of(b, k, n); Tensor bd = bh.to(Device.CUDA);
             Tensor cd = Tensor.empty(Device.CUDA, DType.F32, rows, n); CudaSpmm sp = CudaSpmm.of(ad)) {
            sp.times(bd, cd);
            assertEquals(before + 1, CudaSpmm.matmuls(), "one cuSPARSELt product");
            return cd.toFloatArray();
        }
    }

    /**
     * The bf16-output path (what cuSPARSELt 0.8.0 offers on Hopper: the float32 product refused) on any back end: the
     * library's bf16 [rowsP, nP] read back into the float32 result, at shapes padded in every dimension.
     */
    @Test
    void aBf16ProductIsReadBackIntoTheFloat32Result() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
        int was = CudaSpmm.setOutputTypeForTest(Cuda.R_16BF);
        try {
            Random r = new Random(6);
            for (int[] s : new int[][] { { 27, 147, 50 }, { 32, 64, 48 } }) {
                int rows = s[0], k = s[1], n = s[2];
                float[] a = prune24Rows(gaussian(r, rows * k), rows, k);
                float[] b = gaussian(r, k * n);
                float[] got = sparseTimes(a, b, rows, k, n);
                assertBf16Product(a, b, false, rows, k, n, got, "bf16 output " + rows + "x" + k + "x" + n);
                for (int i = 0; i < got.length; i++)   // every element is a bf16 value: the library's rounding, read back exactly
                    assertEquals(0, Float.floatToRawIntBits(got[i]) & 0xffff, "element " + i + " has float32 bits below bf16's");
            }
        } finally {
            CudaSpmm.setOutputTypeForTest(was);
        }
    }

    /** col2im in float64 on the host: cols [c*k*k, n*ho*wo] folded into [n, c, h, w]. */
    private static double[] col2imHost(double[] cols, int n, int c, int h, int w, int k, int stride, int pad, int ho, int wo) {
        double[] dx = new double[n * c * h * w];
        int ncols = n * ho * wo;
        for (int img = 0; img < n; img++)
            for (int ch = 0; ch < c; ch++)
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++)
                        for (int oh = 0; oh < ho; oh++)
                            for (int ow = 0; ow < wo; ow++) {
                                int ih = oh * stride - pad + ki, iw = ow * stride - pad + kj;
                                if (ih < 0 || ih >= h || iw < 0 || iw >= w) continue;
                                dx[((img * c + ch) * h + ih) * w + iw] += cols[((ch * k + ki) * k + kj) * ncols + (img * ho + oh) * wo + ow];
                            }
        return dx;
    }

    /**
     * A convolution's Eq. 2 folded back from a bf16 product, never widened (the 2:4 path where cuSPARSELt writes bf16,
     * and its dense twin CudaOps.gemmCol2imBf16): against the float64 col2im of the float64 product of the rounded
     * operands, within the product's bf16 rounding (2^-8 of each column value) and float accumulation, summed by col2im.
     */
    @Test
    void aConvolutionsEq2FoldsBackFromTheBf16Product() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
        int was = CudaSpmm.setOutputTypeForTest(Cuda.R_16BF);
        CudaOps.MatmulPrecision precisionWas = CudaOps.setMatmulPrecision(CudaOps.MatmulPrecision.BF16);   // usesCublas() asks about GemmEx
        try {
            assumeTrue(CudaOps.usesCublas(), () -> "cuBLAS GemmEx not available: " + Cuda.blasStatus());
            Random r = new Random(12);
            int cout = 8;
            for (int[] s : new int[][] { { 2, 3, 6, 6, 3, 1, 1 }, { 2, 5, 7, 7, 3, 2, 1 }, { 3, 4, 5, 5, 1, 1, 0 } }) {
                int n = s[0], c = s[1], h = s[2], w = s[3], k = s[4], stride = s[5], pad = s[6];
                int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1, kk = c * k * k, ncols = n * ho * wo;
                float[] wt = prune24Rows(gaussian(r, kk * cout), kk, cout);   // S(W^T) [C*k*k, Cout], 2:4 along Cout
                float[] dy = gaussian(r, cout * ncols);
                double[] prod = new double[kk * ncols], bound = new double[kk * ncols];
                for (int i = 0; i < kk; i++)
                    for (int j = 0; j < ncols; j++) {
                        double sum = 0, mag = 0;
                        for (int q = 0; q < cout; q++) {
                            double t = (double) fromBf16(bf16(wt[i * cout + q])) * fromBf16(bf16(dy[q * ncols + j]));
                            sum += t; mag += Math.abs(t);
                        }
                        prod[i * ncols + j] = sum;
                        bound[i * ncols + j] = 0x1p-8 * Math.abs(sum) + 1e-4 * mag;
                    }
                double[] want = col2imHost(prod, n, c, h, w, k, stride, pad, ho, wo), tol = col2imHost(bound, n, c, h, w, k, stride, pad, ho, wo);
                int[] shape = { n, c, h, w };
                String at = java.util.Arrays.toString(s);
                try (Tensor wh = Tensor.of(wt, kk, cout); Tensor wd = wh.to(Device.CUDA); Tensor dh = Tensor.of(dy, cout, ncols); Tensor dd = dh.to(Device.CUDA);
                     CudaSpmm sp = CudaSpmm.of(wd); Tensor sparse = sp.timesCol2im(dd, shape, k, stride, pad);
                     Tensor dense = CudaOps.gemmCol2imBf16(wd, dd, shape, k, stride, pad)) {
                    assertArrayEquals(shape, sparse.shape(), at);
                    float[] gs = sparse.toFloatArray(), gd = dense.toFloatArray();
                    for (int i = 0; i < want.length; i++) {
                        assertEquals(want[i], gs[i], tol[i] + 1e-30, "2:4 " + at + " element " + i);
                        assertEquals(want[i], gd[i], tol[i] + 1e-30, "dense " + at + " element " + i);
                    }
                }
            }
        } finally {
            CudaSpmm.setOutputTypeForTest(was);
            CudaOps.setMatmulPrecision(precisionWas);
        }
    }

    /** pruned / prunedTransposed: the operand of of(the sparsifier's masked copy), bit for bit, padding included. */
    @Test
    void pruningStraightIntoTheOperandGivesTheSameProducts() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
        Random r = new Random(23);
        for (int[] s : new int[][]{ { 5, 27 }, { 32, 48 }, { 19, 64 } }) {   // rows and K padded, neither, rows only
            int rows = s[0], k = s[1], n = 9;
            float[] wv = gaussian(r, rows * k), b = gaussian(r, k * n), bt = gaussian(r, rows * n);
            try (Tensor wh = Tensor.of(wv, rows, k); Tensor w = wh.to(Device.CUDA);
                 Tensor bh = Tensor.of(b, k, n); Tensor bd = bh.to(Device.CUDA); Tensor bth = Tensor.of(bt, rows, n); Tensor btd = bth.to(Device.CUDA);
                 Tensor masked = CudaOps.prune24Masked(w); Tensor maskedT = CudaOps.prune24TransposedMasked(w); Tensor maskedTt = maskedT.t();
                 CudaSpmm want = CudaSpmm.of(masked); CudaSpmm got = CudaSpmm.pruned(w);
                 CudaSpmm wantT = CudaSpmm.of(maskedTt); CudaSpmm gotT = CudaSpmm.prunedTransposed(w);
                 Tensor c1 = Tensor.empty(Device.CUDA, DType.F32, rows, n); Tensor c2 = Tensor.empty(Device.CUDA, DType.F32, rows, n);
                 Tensor t1 = Tensor.empty(Device.CUDA, DType.F32, k, n); Tensor t2 = Tensor.empty(Device.CUDA, DType.F32, k, n)) {
                String at = rows + "x" + k;
                assertEquals(rows, got.rows(), at);
                assertEquals(k, gotT.rows(), at + " transposed: the operand is [K, Cout]");
                want.times(bd, c1);
                got.times(bd, c2);
                assertArrayEquals(c1.toFloatArray(), c2.toFloatArray(), "S(W) x B " + at);
                wantT.times(btd, t1);
                gotT.times(btd, t2);
                assertArrayEquals(t1.toFloatArray(), t2.toFloatArray(), "S(W^T) x dY " + at);
                assertBf16Product(prune24Rows(wv, rows, k), b, false, rows, k, n, c2.toFloatArray(), "against float64 " + at);
            }
        }
    }

    @Test
    void transposedViewsAndReuseAcrossRightHandSides() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
        Random r = new Random(9);
        int rows = 40, k = 24;   // A given as the transpose of a [k, rows] matrix pruned along its columns
        float[] at = new float[k * rows];
        float[] a = prune24Rows(gaussian(r, rows * k), rows, k);
        for (int i = 0; i < rows; i++) for (int q = 0; q < k; q++) at[q * rows + i] = a[i * k + q];
        try (Tensor ath = Tensor.of(at, k, rows); Tensor atd = ath.to(Device.CUDA); Tensor view = atd.t(); CudaSpmm sp = CudaSpmm.of(view)) {
            assertEquals(rows, sp.rows());
            for (int n : new int[] { 7, 33, 7 }) {
                float[] b = gaussian(r, k * n);
                try (Tensor bh = Tensor.of(b, n, k); Tensor bd = bh.to(Device.CUDA); Tensor bt = bd.t();   // B as a view too
                     Tensor cd = Tensor.empty(Device.CUDA, DType.F32, rows, n)) {
                    sp.times(bt, cd);
                    assertBf16Product(a, b, true, rows, k, n, cd.toFloatArray(), "n=" + n);
                }
            }
        }
    }

    @Test
    void aShapeTheLibraryRefusesRunsAsTheDenseBf16ProductAndIsReported() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + CudaSpmm.status());
        Random r = new Random(12);
        int rows = 20, k = 36, n = 10;
        float[] a = prune24Rows(gaussian(r, rows * k), rows, k), b = gaussian(r, k * n);
        CudaSpmm.refuseForTest(CudaSpmm.pad(rows), CudaSpmm.pad(n), CudaSpmm.pad(k), "test: N too large for this library");
        try (Tensor ah = Tensor.of(a, rows, k); Tensor ad = ah.to(Device.CUDA); Tensor bh = Tensor.of(b, k, n); Tensor bd = bh.to(Device.CUDA);
             Tensor cd = Tensor.empty(Device.CUDA, DType.F32, rows, n); CudaSpmm sp = CudaSpmm.of(ad)) {
            long products = CudaSpmm.matmuls(), fallbacks = CudaSpmm.fallbacks();
            sp.times(bd, cd);
            assertEquals(products, CudaSpmm.matmuls(), "no cuSPARSELt product for a refused shape");
            assertEquals(fallbacks + 1, CudaSpmm.fallbacks());
            assertTrue(CudaSpmm.status().contains("test: N too large"), CudaSpmm.status());
            assertBf16Product(a, b, false, rows, k, n, cd.toFloatArray(), "");
        } finally {
            CudaSpmm.clearRefusalsForTest();
        }
    }

    /** The product with the columns lowered straight into bf16 equals the product with the float32 im2col matrix, bit for bit. */
    @Test
    void loweredColumnsGiveTheSameProductAsTheIm2colMatrix() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + CudaSpmm.status());
        Random r = new Random(21);
        int[][] geoms = { { 3, 5, 7, 6, 3, 1, 1, 20 }, { 2, 4, 9, 9, 3, 2, 1, 16 }, { 4, 3, 5, 5, 1, 1, 0, 9 } };   // n, c, h, w, k, s, p, rows
        for (int[] g : geoms) {
            int k = g[1] * g[4] * g[4], rows = g[7];
            float[] a = prune24Rows(gaussian(r, rows * k), rows, k);
            try (Tensor xh = Tensor.of(gaussian(r, g[0] * g[1] * g[2] * g[3]), g[0], g[1], g[2], g[3]); Tensor x = xh.to(Device.CUDA);
                 Tensor cols = Conv.im2col(x, g[4], g[4], g[5], g[5], g[6], g[6]); Tensor ah = Tensor.of(a, rows, k); Tensor ad = ah.to(Device.CUDA);
                 CudaSpmm sp = CudaSpmm.of(ad); Tensor c1 = Tensor.empty(Device.CUDA, DType.F32, rows, cols.size(1));
                 Tensor c2 = Tensor.empty(Device.CUDA, DType.F32, rows, cols.size(1))) {
                sp.times(cols, c1);
                sp.timesLowered(new Lowering(x, g[4], g[4], g[5], g[5], g[6], g[6]), c2);
                assertArrayEquals(c1.toFloatArray(), c2.toFloatArray(), java.util.Arrays.toString(g));
            }
        }
    }

    /**
     * The product written straight as NCHW equals the [rows, N*Ho*Wo] product permuted, bit for bit: with the library's
     * bf16 output (one kernel reads it back into NCHW; planes of 16 take four elements per thread, of 35 and 9 one) and
     * with float32 output (the product, then the permute).
     */
    @Test
    void loweredProductWrittenAsNchwIsThePermutedProduct() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + CudaSpmm.status());
        Random r = new Random(22);
        int[][] geoms = { { 3, 5, 7, 5, 3, 1, 1, 20 }, { 2, 4, 8, 8, 3, 2, 1, 16 }, { 4, 3, 3, 3, 1, 1, 0, 9 } };   // n, c, h, w, k, s, p, rows
        for (int type : new int[] { Cuda.R_16BF, Cuda.R_32F }) {
            int was = CudaSpmm.setOutputTypeForTest(type);
            try {
                for (int[] g : geoms) {
                    int n = g[0], k = g[1] * g[4] * g[4], rows = g[7], ho = (g[2] + 2 * g[6] - g[4]) / g[5] + 1, wo = (g[3] + 2 * g[6] - g[4]) / g[5] + 1;
                    String at = java.util.Arrays.toString(g) + (type == Cuda.R_16BF ? " bf16 out" : " f32 out");
                    float[] a = prune24Rows(gaussian(r, rows * k), rows, k);
                    try (Tensor xh = Tensor.of(gaussian(r, n * g[1] * g[2] * g[3]), n, g[1], g[2], g[3]); Tensor x = xh.to(Device.CUDA);
                         Tensor ah = Tensor.of(a, rows, k); Tensor ad = ah.to(Device.CUDA); CudaSpmm sp = CudaSpmm.of(ad);
                         Tensor c = Tensor.empty(Device.CUDA, DType.F32, rows, n * ho * wo);
                         Tensor out = Tensor.empty(Device.CUDA, DType.F32, n, rows, ho, wo)) {
                        Lowering low = new Lowering(x, g[4], g[4], g[5], g[5], g[6], g[6]);
                        sp.timesLowered(low, c);
                        sp.timesLoweredNchw(low, out);
                        float[] want = c.toFloatArray(), got = out.toFloatArray();
                        int plane = ho * wo;
                        for (int img = 0; img < n; img++)
                            for (int row = 0; row < rows; row++)
                                for (int q = 0; q < plane; q++)
                                    assertEquals(Float.floatToRawIntBits(want[row * n * plane + img * plane + q]),
                                            Float.floatToRawIntBits(got[(img * rows + row) * plane + q]), at + " image " + img + " row " + row + " at " + q);
                        try (Tensor bad = Tensor.empty(Device.CUDA, DType.F32, n, rows + 1, ho, wo)) {
                            assertThrows(IllegalArgumentException.class, () -> sp.timesLoweredNchw(low, bad), "wrong channel count");
                        }
                    }
                }
            } finally {
                CudaSpmm.setOutputTypeForTest(was);
            }
        }
    }

    /** Two threads multiplying at once, each with its own plans (and, on the device, its own cuSPARSELt handle). */
    @Test
    void productsFromTwoThreadsAtOnce() throws Exception {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + CudaSpmm.status());
        java.util.concurrent.Callable<Void> work = () -> {
            Random r = new Random(Thread.currentThread().threadId());
            int rows = 24 + r.nextInt(9), k = 40 + r.nextInt(9), n = 17 + r.nextInt(9);
            float[] a = prune24Rows(gaussian(r, rows * k), rows, k), b = gaussian(r, k * n);
            try (Tensor ah = Tensor.of(a, rows, k); Tensor ad = ah.to(Device.CUDA); Tensor bh = Tensor.of(b, k, n); Tensor bd = bh.to(Device.CUDA);
                 Tensor cd = Tensor.empty(Device.CUDA, DType.F32, rows, n); CudaSpmm sp = CudaSpmm.of(ad)) {
                for (int rep = 0; rep < 4; rep++) {
                    sp.times(bd, cd);
                    assertBf16Product(a, b, false, rows, k, n, cd.toFloatArray(), "thread " + Thread.currentThread().getName());
                }
            } finally {
                CudaSpmm.clearPlans();
            }
            return null;
        };
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(2)) {
            var f1 = pool.submit(work);
            var f2 = pool.submit(work);
            f1.get();
            f2.get();
        }
    }

    /**
     * One operand multiplied from four threads at once (an eval-mode layer's kept S(W), which Gemm3 hands to every thread
     * that runs the layer): each thread gets the bits of a single thread, and A is compressed once per plan, so once per
     * thread here (each thread has its own plans), not again whenever another thread's product came in between.
     */
    @Test
    void oneOperandSharedByFourThreadsCompressesOncePerThreadsPlanWithTheSingleThreadBits() throws Exception {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + CudaSpmm.status());
        Random r = new Random(12);
        int rows = 40, k = 24, n = 17, threads = 4;
        float[] a = prune24Rows(gaussian(r, rows * k), rows, k), b = gaussian(r, k * n);
        try (Tensor ah = Tensor.of(a, rows, k); Tensor ad = ah.to(Device.CUDA); Tensor bh = Tensor.of(b, k, n); Tensor bd = bh.to(Device.CUDA);
             CudaSpmm sp = CudaSpmm.of(ad)) {
            float[] want;
            try (Tensor cd = Tensor.empty(Device.CUDA, DType.F32, rows, n)) {
                sp.times(bd, cd);
                want = cd.toFloatArray();
            }
            assertBf16Product(a, b, false, rows, k, n, want, "one thread");
            long before = CudaSpmm.compressions();
            java.util.concurrent.CountDownLatch go = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.Callable<Void> work = () -> {
                go.await();
                try (Tensor cd = Tensor.empty(Device.CUDA, DType.F32, rows, n)) {
                    for (int rep = 0; rep < 40; rep++) {
                        sp.times(bd, cd);
                        assertArrayEquals(want, cd.toFloatArray(), Thread.currentThread().getName() + ", product " + rep);
                    }
                } finally {
                    CudaSpmm.clearPlans();
                }
                return null;
            };
            try (var pool = java.util.concurrent.Executors.newFixedThreadPool(threads)) {
                java.util.List<java.util.concurrent.Future<Void>> fs = new java.util.ArrayList<>();
                for (int t = 0; t < threads; t++) fs.add(pool.submit(work));
                go.countDown();
                for (var f : fs) f.get();
            }
            assertEquals(threads, CudaSpmm.compressions() - before, "compressed once per thread's plan, for 160 products");
        } finally {
            CudaSpmm.clearPlans();
        }
    }

    @Test
    void badShapesAndClosedOperandsAreRejected() {
        assumeTrue(CudaSpmm.available(), () -> "cuSPARSELt not available: " + Cuda.sparseLtStatus());
        try (Tensor a = Tensor.zeros(Device.CUDA, DType.F32, 8, 12); Tensor b = Tensor.zeros(Device.CUDA, DType.F32, 11, 4);
             Tensor c = Tensor.zeros(Device.CUDA, DType.F32, 8, 4); Tensor hb = Tensor.zeros(12, 4)) {
            CudaSpmm sp = CudaSpmm.of(a);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> sp.times(b, c));
            assertTrue(e.getMessage().contains("shape mismatch"), e.getMessage());
            IllegalArgumentException dev = assertThrows(IllegalArgumentException.class, () -> sp.times(hb, c));
            assertTrue(dev.getMessage().contains("device mismatch"), dev.getMessage());
            sp.close();
            try (Tensor b12 = Tensor.zeros(Device.CUDA, DType.F32, 12, 4)) {
                assertThrows(IllegalStateException.class, () -> sp.times(b12, c));
            }
        }
    }
}
