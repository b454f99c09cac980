package fst4j.tensor;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.*;

/** The C im2col / col2im / im2colAt equal the Java reference exactly, at awkward geometries. */
class ConvNativeTest {
    @ParameterizedTest
    @CsvSource({"1,1,1,1,1,1,0", "2,3,7,5,3,1,1", "3,2,6,9,3,2,1", "2,4,5,5,5,2,2", "1,3,8,7,1,2,0", "2,5,17,13,3,1,0", "64,3,4,4,3,1,1", "2,3,1,1,3,1,1", "2,2,3,2,5,1,2", "3,4,2,3,5,1,2", "2,3,9,1,3,1,1", "2,3,1,9,3,1,1", "1,2,6,6,7,1,3", "200,3,4,4,3,1,1", "90,5,6,7,3,2,1", "33,7,9,9,3,1,1", "4,7,1,13,5,1,2", "3,2,2,1,5,1,2", "2,3,1,1,5,1,2"})
    void nativeEqualsJava(int n, int c, int h, int w, int k, int stride, int pad) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 1000L + c * 100 + h);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Conv.nativeLowering = false;
            Tensor colsJ = Conv.im2col(x, k, k, stride, stride, pad, pad);
            int ho = Conv.outSize(h, k, stride, pad), wo = Conv.outSize(w, k, stride, pad);
            int[] pos = java.util.stream.IntStream.range(0, ho * wo).filter(p -> p % 2 == 0).toArray();
            Tensor atJ = Conv.im2colAt(x, pos, k, k, stride, stride, pad, pad);
            Tensor g = r.normal(0, 1, colsJ.shape());
            Tensor dxJ = Conv.col2im(g, x.shape(), k, k, stride, stride, pad, pad);
            Conv.nativeLowering = true;
            assertArrayEquals(colsJ.toFloatArray(), Conv.im2col(x, k, k, stride, stride, pad, pad).toFloatArray());
            assertArrayEquals(atJ.toFloatArray(), Conv.im2colAt(x, pos, k, k, stride, stride, pad, pad).toFloatArray());
            float[] a = dxJ.toFloatArray(), b = Conv.col2im(g, x.shape(), k, k, stride, stride, pad, pad).toFloatArray();
            for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-5f * Math.max(1, Math.abs(a[i])));
        } finally {
            Conv.nativeLowering = true;
        }
    }

    /**
     * Dilated im2col / col2im (fst_im2col_dil, fst_col2im_dil): the C equals the Java reference exactly (col2im within
     * rounding of the sum's order), non-square kernels, strides and paddings included; at dilation 1 the dilated call is
     * the undilated one.
     */
    @ParameterizedTest
    @CsvSource({"2,3,7,6,3,3,1,1,1,1,2,2", "1,2,9,8,3,2,2,1,2,0,2,3", "3,4,5,5,1,1,1,1,0,0,3,1", "2,2,11,6,2,3,2,3,1,0,3,1",
            "1,3,6,9,5,3,1,2,2,1,1,2", "2,1,4,4,3,3,1,1,2,2,3,3", "33,2,5,5,3,3,1,1,2,2,2,2", "2,3,8,8,3,3,2,2,1,1,1,1"})
    void dilatedNativeEqualsJava(int n, int c, int h, int w, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 1000L + c * 100 + h * 7 + dh);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Conv.nativeLowering = false;
            Tensor colsJ = Conv.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw);
            Tensor g = r.normal(0, 1, colsJ.shape());
            Tensor dxJ = Conv.col2im(g, x.shape(), kh, kw, sh, sw, ph, pw, dh, dw);
            Conv.nativeLowering = true;
            assertArrayEquals(new int[]{c * kh * kw, n * Conv.outSize(h, kh, sh, ph, dh) * Conv.outSize(w, kw, sw, pw, dw)}, colsJ.shape());
            assertArrayEquals(colsJ.toFloatArray(), Conv.im2col(x, kh, kw, sh, sw, ph, pw, dh, dw).toFloatArray());
            float[] a = dxJ.toFloatArray(), b = Conv.col2im(g, x.shape(), kh, kw, sh, sw, ph, pw, dh, dw).toFloatArray();
            for (int i = 0; i < a.length; i++) assertEquals(a[i], b[i], 1e-5f * Math.max(1, Math.abs(a[i])));
            if (dh == 1 && dw == 1) assertArrayEquals(colsJ.toFloatArray(), Conv.im2col(x, kh, kw, sh, sw, ph, pw).toFloatArray());
            // the lowering's adjoint: <im2col(x), g> = <x, col2im(g)>
            double lhs = 0, rhs = 0;
            float[] cj = colsJ.toFloatArray(), gv = g.toFloatArray(), xv = x.toFloatArray();
            for (int i = 0; i < cj.length; i++) lhs += (double) cj[i] * gv[i];
            for (int i = 0; i < xv.length; i++) rhs += (double) xv[i] * a[i];
            assertEquals(lhs, rhs, 1e-4 * Math.max(1, Math.abs(lhs)));
        } finally {
            Conv.nativeLowering = true;
        }
    }

    /** A dilated kernel wider than the padded input is refused in Java by name; the C refuses sizes that do not match. */
    @org.junit.jupiter.api.Test
    void dilatedGeometryRefused() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(1, 2, 5, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Conv.im2col(x, 3, 3, 1, 1, 0, 0, 3, 1));
            assertTrue(e.getMessage().contains("dilated 3x1 (extent 7x3) larger than padded input 5x5"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Conv.im2col(x, 3, 3, 1, 1, 0, 0, 0, 1));
            assertTrue(e.getMessage().contains("dilation must be positive"), e.getMessage());
            Tensor out = Tensor.empty(18, 9);
            // ho, wo of the undilated kernel (3x3) given with dilation 2 (which gives 1x1): the C says no, writes nothing
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.im2colDilated(x.data(), 1, 2, 5, 5, 3, 3, 1, 1, 0, 0, 2, 2, 3, 3,
                    out.data(), 9, 1));
            assertTrue(e.getMessage().contains("fst_im2col_dil rejected its arguments"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.col2imDilated(out.data(), 9, 1, 2, 5, 5, 3, 3, 1, 1, 0, 0, 2, 2, 3, 3,
                    x.data(), 1));
            assertTrue(e.getMessage().contains("fst_col2im_dil rejected its arguments"), e.getMessage());
        }
    }

    /**
     * Sizes whose products overflow int64 are refused by the dilated lowerings' own check, not wrapped: dilation 2^62 of a
     * 5-tap kernel spans 4 * 2^62 + 1 rows, which wrapped to 1 (a 1-row kernel, so ho 5 was accepted and the call
     * returned OK, sampling rows 0 and 4 * 2^62 mod 2^64 = 0 as taps 0 and 4); an image count whose n * ho * wo wraps
     * past ldo; and any size beyond 2^31 - 1 (fst4j's tensors' int sizes), which the Java side never passes.
     */
    @org.junit.jupiter.api.Test
    void dilatedSizesThatOverflowAreRefused() {   // by the wrapper's size checks (session 44) or by conv.c's
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(1, 1, 5, 5), out = Tensor.empty(5, 25);
            long big = 1L << 62;
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.im2colDilated(x.data(), 1, 1, 5, 5, 5, 1,
                    1, 1, 0, 0, big, 1, 5, 5, out.data(), 25, 1));
            assertTrue(e.getMessage().contains("fst_im2col_dil"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.col2imDilated(out.data(), 25, 1, 1, 5, 5, 5, 1, 1, 1, 0, 0,
                    big, 1, 5, 5, x.data(), 1));
            assertTrue(e.getMessage().contains("fst_col2im_dil"), e.getMessage());
            // n * ho * wo = 2^62 * 4 wraps to 0 <= ldo
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.im2colDilated(x.data(), big, 1, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 2, 2,
                    out.data(), 4, 1));
            assertTrue(e.getMessage().contains("fst_im2col_dil"), e.getMessage());
            // a size past int32 (the Java side's) with a geometry that is otherwise consistent
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.col2imDilated(out.data(), 1L << 33, 1, 1, 1L << 32, 1, 1, 1, 1, 1,
                    0, 0, 1, 1, 1L << 32, 1, x.data(), 1));
            assertTrue(e.getMessage().contains("fst_col2im_dil"), e.getMessage());
        }
    }

    /**
     * conv.c's own geometry check, as the dilated one's: sizes past the Java side's int limits (whose products wrap int64)
     * and a kernel wider than the padded input (the truncated division gives ho = 1) are refused, not read past.
     */
    @org.junit.jupiter.api.Test
    void undilatedSizesThatOverflowOrOutgrowTheInputAreRefused() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(1, 1, 5, 5), out = Tensor.empty(9, 25);
            // n * ho * wo = 2^62 * 4 wraps to 0 <= ldo
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.im2col(x.data(), 1L << 62, 1, 3, 3, 2, 2,
                    1, 1, 0, 0, 2, 2, out.data(), 4, 1));
            assertTrue(e.getMessage().contains("fst_im2col") && e.getMessage().contains("overflow"), e.getMessage());   // the wrapper's check
            // a size past int32 with an otherwise consistent geometry
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.col2im(out.data(), 1L << 33, 1, 1, 1L << 32, 1, 1, 1, 1, 1,
                    0, 0, 1L << 32, 1, x.data(), 1));
            assertTrue(e.getMessage().contains("fst_col2im"), e.getMessage());   // the wrapper's extent check, else C's
            // kernel 7x7 on a 5x5 input without padding: at stride 1 the division gives -1 (refused by ho's own check), but at
            // stride 3 C's truncation of (5 - 7) / 3 gives 0, so ho = wo = 1 fits the formula and only the extent check refuses it
            e = assertThrows(IllegalArgumentException.class, () -> fst4j.shim.Native.im2col(x.data(), 1, 1, 5, 5, 7, 7, 3, 3, 0, 0, 1, 1,
                    out.data(), 1, 1));
            assertTrue(e.getMessage().contains("fst_im2col rejected its arguments"), e.getMessage());
        }
    }

    /** Vertical stride 1 with horizontal stride 2 (the half-K lowering's geometry): native im2col equals Java exactly. */
    @ParameterizedTest
    @CsvSource({"2,3,8,8,3,1", "3,2,7,6,3,1", "2,4,1,4,3,1", "2,2,5,10,5,2", "4,3,6,2,3,1", "2,2,3,12,1,0", "2,3,9,18,3,1", "1,2,4,32,3,1"})
    void halfWidthStrideEqualsJava(int n, int c, int h, int w, int k, int pad) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 31L + w);
            Tensor x = r.normal(0, 1, n, c, h, w);
            Conv.nativeLowering = false;
            Tensor colsJ = Conv.im2col(x, k, k, 1, 2, pad, pad);
            Conv.nativeLowering = true;
            assertArrayEquals(colsJ.toFloatArray(), Conv.im2col(x, k, k, 1, 2, pad, pad).toFloatArray());
        } finally {
            Conv.nativeLowering = true;
        }
    }

    /**
     * im2col at one list of positions per image over a subset of rows (the authors' random patterns, Gemm3): native and
     * Java both equal the full im2col's entries exactly, written into a wider buffer (row stride > columns), with lists
     * of different lengths (one empty), rows of either parity and all rows.
     */
    @ParameterizedTest
    @CsvSource({"3,2,7,7,3,1,1", "4,3,8,6,3,1,1", "2,5,9,9,1,2,0", "3,2,6,5,5,1,2", "1,4,4,4,3,1,1", "5,3,14,14,3,2,1"})
    void perImagePositionsEqualFullIm2col(int n, int c, int h, int w, int k, int stride, int pad) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 7919L + h * 31L + k);
            Tensor x = r.normal(0, 1, n, c, h, w);
            int ho = Conv.outSize(h, k, stride, pad), wo = Conv.outSize(w, k, stride, pad), l = ho * wo, kRows = c * k * k;
            float[] full = Conv.im2col(x, k, k, stride, stride, pad, pad).toFloatArray();
            java.util.Random rnd = new java.util.Random(n + 10L * h);
            long[] off = new long[n + 1];
            java.util.List<Integer> pos = new java.util.ArrayList<>();
            for (int m = 0; m < n; m++) {
                if (m != 1) for (int j = 0; j < l; j++) if (rnd.nextBoolean()) pos.add(j);   // image 1 keeps nothing
                off[m + 1] = pos.size();
            }
            int[] p = pos.stream().mapToInt(Integer::intValue).toArray();
            for (int[] rows : new int[][]{{0, 1, kRows}, {0, 2, (kRows + 1) / 2}, {1, 2, kRows / 2}}) {
                float[][] got = new float[2][];
                for (int nat = 0; nat < 2; nat++) {
                    Conv.nativeLowering = nat == 1;
                    Tensor buf = Tensor.full(Float.NaN, rows[2], p.length + 3);
                    try (Tensor out = buf.slice(1, 0, p.length)) {
                        Conv.im2colAtInto(x, off, p, rows[0], rows[1], rows[2], k, k, stride, stride, pad, pad, out);
                        got[nat] = out.toFloatArray();
                    }
                    float[] b = buf.toFloatArray();
                    for (int rr = 0; rr < rows[2]; rr++)
                        for (int q = p.length; q < p.length + 3; q++) assertTrue(Float.isNaN(b[rr * (p.length + 3) + q]), "wrote past the columns");
                }
                assertArrayEquals(got[0], got[1], "native against Java, rows " + java.util.Arrays.toString(rows));
                for (int rr = 0; rr < rows[2]; rr++)
                    for (int m = 0; m < n; m++)
                        for (long q = off[m]; q < off[m + 1]; q++)
                            assertEquals(full[(rows[0] + rr * rows[1]) * n * l + m * l + p[(int) q]], got[1][rr * p.length + (int) q],
                                    "row " + (rows[0] + rr * rows[1]) + " image " + m + " position " + p[(int) q]);
            }
            Tensor out = Tensor.zeros(kRows, p.length);
            long[] bad = off.clone();
            bad[n - 1] = bad[n] + 1;   // decreasing (n == 1: not starting at 0)
            assertThrows(IllegalArgumentException.class, () -> Conv.im2colAtInto(x, bad, p, 0, 1, kRows, k, k, stride, stride, pad, pad, out));
            int[] far = p.clone();
            if (far.length > 0) {
                far[0] = l;
                assertThrows(IllegalArgumentException.class, () -> Conv.im2colAtInto(x, off, far, 0, 1, kRows, k, k, stride, stride, pad, pad, out));
            }
            assertThrows(IllegalArgumentException.class, () -> Conv.im2colAtInto(x, off, p, 1, 1, kRows, k, k, stride, stride, pad, pad, out));
        } finally {
            Conv.nativeLowering = true;
        }
    }
}
