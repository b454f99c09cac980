package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class ConvTest {
    /** n, cin, h, w, cout, kh, kw, sh, sw, ph, pw */
    private static final int[][] CASES = {
            {2, 3, 7, 7, 4, 3, 3, 1, 1, 1, 1},
            {1, 1, 1, 1, 2, 1, 1, 1, 1, 0, 0},
            {3, 2, 7, 5, 3, 3, 1, 2, 1, 0, 2},   // non-square everything
            {2, 3, 8, 6, 5, 3, 3, 2, 2, 1, 1},
            {1, 2, 3, 3, 2, 7, 7, 1, 1, 2, 2},   // kernel larger than the unpadded input
            {5, 4, 3, 3, 6, 3, 3, 1, 1, 1, 1},   // several images per GEMM
            {2, 2, 9, 7, 3, 5, 3, 2, 2, 2, 0},
            {2, 1, 33, 33, 2, 1, 1, 1, 1, 0, 0}, // L > 1024: one image per GEMM
            {3, 2, 5, 5, 2, 2, 2, 2, 2, 0, 0},
            // output width >= 16: row-copy im2col/col2im path (the cases above use the gather table)
            {1, 2, 17, 35, 2, 3, 3, 2, 2, 1, 1},
            {2, 2, 9, 20, 3, 3, 5, 1, 1, 2, 2},
            {1, 1, 4, 60, 2, 7, 7, 1, 3, 2, 1},
    };

    private static double[] ref(double[] x, double[] w, double[] b, int[] c, int ho, int wo) {
        int n = c[0], ci = c[1], h = c[2], wd = c[3], co = c[4], kh = c[5], kw = c[6], sh = c[7], sw = c[8], ph = c[9], pw = c[10];
        double[] y = new double[n * co * ho * wo];
        for (int a = 0; a < n; a++)
            for (int o = 0; o < co; o++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++) {
                        double s = b == null ? 0 : b[o];
                        for (int q = 0; q < ci; q++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++) {
                                    int ih = oh * sh - ph + i, iw = ow * sw - pw + j;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    s += x[((a * ci + q) * h + ih) * wd + iw] * w[((o * ci + q) * kh + i) * kw + j];
                                }
                        y[((a * co + o) * ho + oh) * wo + ow] = s;
                    }
        return y;
    }

    private static double[][] refBackward(double[] x, double[] w, double[] dy, int[] c, int ho, int wo) {
        int n = c[0], ci = c[1], h = c[2], wd = c[3], co = c[4], kh = c[5], kw = c[6], sh = c[7], sw = c[8], ph = c[9], pw = c[10];
        double[] dx = new double[x.length], dw = new double[w.length], db = new double[co];
        for (int a = 0; a < n; a++)
            for (int o = 0; o < co; o++)
                for (int oh = 0; oh < ho; oh++)
                    for (int ow = 0; ow < wo; ow++) {
                        double g = dy[((a * co + o) * ho + oh) * wo + ow];
                        db[o] += g;
                        for (int q = 0; q < ci; q++)
                            for (int i = 0; i < kh; i++)
                                for (int j = 0; j < kw; j++) {
                                    int ih = oh * sh - ph + i, iw = ow * sw - pw + j;
                                    if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                                    int xi = ((a * ci + q) * h + ih) * wd + iw, wi = ((o * ci + q) * kh + i) * kw + j;
                                    dx[xi] += g * w[wi];
                                    dw[wi] += g * x[xi];
                                }
                    }
        return new double[][]{dx, dw, db};
    }

    private static void close(double[] expect, Tensor actual, double tol, String what) {
        double[] a = actual.toDoubleArray();
        assertEquals(expect.length, a.length, what + " length");
        for (int i = 0; i < a.length; i++)
            assertEquals(expect[i], a[i], tol * (1 + Math.abs(expect[i])), what + " at " + i);
    }

    @Test
    void forwardAndBackwardMatchLoops() {
        long before = Memory.bytesInUse();
        Rng rng = new Rng(42);
        for (DType dt : DType.values()) {
            double tol = dt == DType.F32 ? 2e-5 : 1e-12;
            for (int[] c : CASES) {
                try (Scope s = Scope.open()) {
                    String what = dt + " case " + java.util.Arrays.toString(c);
                    int ho = Conv.outSize(c[2], c[5], c[7], c[9]), wo = Conv.outSize(c[3], c[6], c[8], c[10]);
                    Tensor x = rng.normal(dt, 0, 1, c[0], c[1], c[2], c[3]);
                    Tensor w = rng.normal(dt, 0, 1, c[4], c[1], c[5], c[6]);
                    Tensor b = rng.normal(dt, 0, 1, c[4]);
                    Tensor dy = rng.normal(dt, 0, 1, c[0], c[4], ho, wo);
                    double[] xd = x.toDoubleArray(), wd = w.toDoubleArray(), bd = b.toDoubleArray(), dyd = dy.toDoubleArray();

                    Tensor y = Conv.conv2d(x, w, b, c[7], c[8], c[9], c[10]);
                    assertArrayEquals(new int[]{c[0], c[4], ho, wo}, y.shape(), what);
                    close(ref(xd, wd, bd, c, ho, wo), y, tol, what + " y");
                    close(ref(xd, wd, null, c, ho, wo), Conv.conv2d(x, w, null, c[7], c[8], c[9], c[10]), tol, what + " y (no bias)");

                    double[][] g = refBackward(xd, wd, dyd, c, ho, wo);
                    close(g[0], Conv.conv2dBackwardInput(dy, w, x.shape(), c[7], c[8], c[9], c[10]), tol, what + " dx");
                    close(g[1], Conv.conv2dBackwardWeight(dy, x, w.shape(), c[7], c[8], c[9], c[10]), tol, what + " dw");
                    close(g[2], Conv.conv2dBackwardBias(dy), tol, what + " db");
                }
            }
        }
        assertEquals(before, Memory.bytesInUse());
    }

    /** Without a scope every temporary must be closed by the ops themselves: only the results stay. */
    @Test
    void opsFreeTheirTemporariesOutsideAnyScope() {
        long before = Memory.bytesInUse();
        Rng rng = new Rng(9);
        for (int[] g : new int[][]{{3, 2, 5, 5}, {2, 2, 64, 64}}) {   // several images per GEMM, and one (L = 1024)
            Tensor x = rng.normal(0, 1, g);
            Tensor w = rng.normal(0, 1, 3, 2, 3, 3);
            Tensor b = rng.normal(0, 1, 3);
            Tensor y = Conv.conv2d(x, w, b, 2, 1);
            Tensor dx = Conv.conv2dBackwardInput(y, w, x.shape(), 2, 1);
            Tensor dw = Conv.conv2dBackwardWeight(y, x, w.shape(), 2, 1);
            Tensor db = Conv.conv2dBackwardBias(y);
            Tensor cols = Conv.im2col(x, 3, 2, 1);
            Tensor back = Conv.col2im(cols, x.shape(), 3, 2, 1);
            Pool.MaxPool2d mp = Pool.maxPool2d(x, 2, 2, 0);
            Tensor mdx = Pool.maxPool2dBackward(mp.output(), mp.indices(), x.shape());
            Norm.BatchNorm bn = Norm.batchNorm2dTrain(y, null, null, null, null, 0.1, 1e-5);
            Norm.BatchNormGrads bg = Norm.batchNorm2dBackward(y, y, null, bn.mean(), bn.invStd());
            Tensor flat = y.reshape(y.size(0), -1);
            Loss.CrossEntropy ce = Loss.crossEntropy(flat, new int[y.size(0)], 0.1);
            for (AutoCloseable t : new AutoCloseable[]{x, w, b, y, dx, dw, db, cols, back, mp, mdx, bn, bg, flat, ce}) {
                try { t.close(); } catch (Exception e) { throw new AssertionError(e); }
            }
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void nonContiguousOperandsAndTensorShorthand() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(7);
            Tensor xt = rng.normal(0, 1, 2, 3, 6, 5);
            Tensor x = xt.transpose(2, 3);            // [2, 3, 5, 6], not contiguous
            Tensor w = rng.normal(0, 1, 3, 4, 3, 3).transpose(0, 1); // [4, 3, 3, 3]
            assertFalse(x.isContiguous());
            int[] c = {2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1};
            Tensor y = x.conv2d(w, null, 1, 1);
            close(ref(x.toDoubleArray(), w.toDoubleArray(), null, c, 5, 6), y, 2e-5, "y");
            Tensor dy = rng.normal(0, 1, 2, 4, 6, 5).transpose(2, 3);
            double[][] g = refBackward(x.toDoubleArray(), w.toDoubleArray(), dy.toDoubleArray(), c, 5, 6);
            close(g[0], Conv.conv2dBackwardInput(dy, w, x.shape(), 1, 1), 2e-5, "dx");
            close(g[1], Conv.conv2dBackwardWeight(dy, x, w.shape(), 1, 1), 2e-5, "dw");
        }
    }

    @Test
    void col2imIsTheAdjointOfIm2col() {
        Rng rng = new Rng(3);
        int[][] geoms = {{2, 3, 7, 5, 3, 3, 1, 1, 1, 1}, {1, 2, 8, 9, 3, 2, 2, 2, 1, 0}, {2, 1, 5, 5, 5, 5, 2, 2, 2, 2}, {3, 2, 4, 6, 1, 3, 1, 2, 0, 1}, {2, 2, 6, 37, 3, 3, 1, 2, 1, 2}};
        for (int[] q : geoms) {
            try (Scope s = Scope.open()) {
                int[] xs = {q[0], q[1], q[2], q[3]};
                Tensor x = rng.normal(DType.F64, 0, 1, xs);
                Tensor cols = Conv.im2col(x, q[4], q[5], q[6], q[7], q[8], q[9]);
                int l = Conv.outSize(q[2], q[4], q[6], q[8]) * Conv.outSize(q[3], q[5], q[7], q[9]);
                assertArrayEquals(new int[]{q[1] * q[4] * q[5], q[0] * l}, cols.shape());
                Tensor yy = rng.normal(DType.F64, 0, 1, cols.shape());
                Tensor back = Conv.col2im(yy, xs, q[4], q[5], q[6], q[7], q[8], q[9]);
                double lhs = back.mul(x).sum().item(), rhs = yy.mul(cols).sum().item();
                assertEquals(rhs, lhs, 1e-10 * (1 + Math.abs(rhs)), java.util.Arrays.toString(q));
            }
        }
    }

    @Test
    void im2colIntoSliceAndAtPositions() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(5);
            Tensor x = rng.normal(0, 1, 3, 2, 6, 5);
            Tensor all = Conv.im2col(x, 3, 1, 1);          // [18, 3*30]
            int l = 30, k = 18;
            Tensor buf = Tensor.zeros(k, 2 * l + 4);
            Conv.im2col(x, 1, 3, 3, 1, 1, 1, 1, buf.slice(1, 2, 2 + l));
            assertArrayEquals(all.slice(1, l, 2 * l).contiguous().toFloatArray(), buf.slice(1, 2, 2 + l).contiguous().toFloatArray());
            int[] pos = {0, 3, 4, 17, 29};
            Tensor at = Conv.im2colAt(x, 2, pos, 3, 3, 1, 1, 1, 1, Tensor.zeros(k, pos.length));
            for (int j = 0; j < pos.length; j++)
                for (int r = 0; r < k; r++)
                    assertEquals(all.get(r, 2 * l + pos[j]), at.get(r, j));
            // col2imAdd of one image's columns equals col2im of the whole batch restricted to that image
            Tensor cols = rng.normal(0, 1, k, 3 * l);
            Tensor whole = Conv.col2im(cols, x.shape(), 3, 1, 1);
            Tensor dx = Tensor.zeros(x.shape());
            Conv.col2imAdd(cols.slice(1, l, 2 * l), dx, 1, 3, 3, 1, 1, 1, 1);
            float[] e = whole.slice(0, 1, 2).contiguous().toFloatArray(), a = dx.slice(0, 1, 2).contiguous().toFloatArray();
            for (int i = 0; i < e.length; i++) assertEquals(e[i], a[i], 1e-5);
        }
    }

    @Test
    void errorsNameTheProblemAndShapes() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.ones(2, 3, 5, 5), w = Tensor.ones(4, 3, 3, 3);
            assertMsg(() -> Conv.conv2d(Tensor.ones(3, 5, 5), w, null, 1, 0), "wrong rank", "[3, 5, 5]");
            assertMsg(() -> Conv.conv2d(x, Tensor.ones(4, 2, 3, 3), null, 1, 0), "channel mismatch", "[2, 3, 5, 5]", "[4, 2, 3, 3]");
            assertMsg(() -> Conv.conv2d(x, Tensor.ones(4, 3, 8, 8), null, 1, 1), "larger than padded input", "7x7");
            assertMsg(() -> Conv.conv2d(x, w, null, 0, 0), "stride must be positive");
            assertMsg(() -> Conv.conv2d(x, w, Tensor.ones(3), 1, 0), "bias", "[3]");
            assertMsg(() -> Conv.conv2dBackwardInput(Tensor.ones(2, 4, 4, 4), w, x.shape(), 1, 0), "dy", "[2, 4, 3, 3]");
        }
    }

    static void assertMsg(org.junit.jupiter.api.function.Executable e, String... parts) {
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, e);
        for (String p : parts) assertTrue(ex.getMessage().contains(p), ex.getMessage());
    }
}
