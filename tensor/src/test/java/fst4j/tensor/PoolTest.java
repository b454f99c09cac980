package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static fst4j.tensor.FiniteDiff.*;
import static org.junit.jupiter.api.Assertions.*;

class PoolTest {
    /** n, c, h, w, kh, kw, sh, sw, ph, pw */
    private static final int[][] CASES = {
            {2, 3, 7, 7, 3, 3, 2, 2, 1, 1},
            {1, 2, 6, 5, 2, 2, 2, 2, 0, 0},
            {2, 1, 5, 8, 3, 2, 1, 2, 1, 0},
            {1, 1, 1, 1, 1, 1, 1, 1, 0, 0},
            {1, 2, 4, 4, 4, 4, 1, 1, 2, 2},
    };

    @Test
    void maxPoolMatchesLoopsAndGradient() {
        long before = Memory.bytesInUse();
        Rng rng = new Rng(11);
        for (int[] c : CASES) {
            try (Scope s = Scope.open()) {
                String what = java.util.Arrays.toString(c);
                int ho = Conv.outSize(c[2], c[4], c[6], c[8]), wo = Conv.outSize(c[3], c[5], c[7], c[9]);
                Tensor x = rng.normal(DType.F64, 0, 1, c[0], c[1], c[2], c[3]);
                double[] xd = x.toDoubleArray();
                double[] ref = new double[c[0] * c[1] * ho * wo];
                int[] arg = new int[ref.length];
                int o = 0;
                for (int p = 0; p < c[0] * c[1]; p++)
                    for (int oh = 0; oh < ho; oh++)
                        for (int ow = 0; ow < wo; ow++, o++) {
                            double best = Double.NEGATIVE_INFINITY;
                            for (int i = 0; i < c[4]; i++)
                                for (int j = 0; j < c[5]; j++) {
                                    int ih = oh * c[6] - c[8] + i, iw = ow * c[7] - c[9] + j;
                                    if (ih < 0 || ih >= c[2] || iw < 0 || iw >= c[3]) continue;
                                    double v = xd[p * c[2] * c[3] + ih * c[3] + iw];
                                    if (v > best) { best = v; arg[o] = ih * c[3] + iw; }
                                }
                            ref[o] = best;
                        }
                Pool.MaxPool2d mp = Pool.maxPool2d(x, c[4], c[5], c[6], c[7], c[8], c[9]);
                assertClose(ref, mp.output(), 0, what);
                assertArrayEquals(arg, mp.indices().toArray(), what);
                // float32 path gives the same values
                assertClose(ref, Pool.maxPool2d(x.to(DType.F32), c[4], c[5], c[6], c[7], c[8], c[9]).output(), 1e-6, what + " f32");

                Tensor dy = rng.normal(DType.F64, 0, 1, c[0], c[1], ho, wo);
                Tensor dx = Pool.maxPool2dBackward(dy, mp.indices(), x.shape());
                double[] fd = gradient(x, t -> dot(Pool.maxPool2d(t, c[4], c[5], c[6], c[7], c[8], c[9]).output(), dy), 1e-6);
                assertClose(fd, dx, 1e-6, what + " dx");
            }
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void avgPoolMatchesLoopsAndGradient() {
        Rng rng = new Rng(12);
        for (boolean include : new boolean[]{true, false})
            for (int[] c : CASES) {
                try (Scope s = Scope.open()) {
                    String what = java.util.Arrays.toString(c) + " includePad=" + include;
                    int ho = Conv.outSize(c[2], c[4], c[6], c[8]), wo = Conv.outSize(c[3], c[5], c[7], c[9]);
                    Tensor x = rng.normal(DType.F64, 0, 1, c[0], c[1], c[2], c[3]);
                    double[] xd = x.toDoubleArray();
                    double[] ref = new double[c[0] * c[1] * ho * wo];
                    int o = 0;
                    for (int p = 0; p < c[0] * c[1]; p++)
                        for (int oh = 0; oh < ho; oh++)
                            for (int ow = 0; ow < wo; ow++, o++) {
                                double sum = 0;
                                int cnt = 0;
                                for (int i = 0; i < c[4]; i++)
                                    for (int j = 0; j < c[5]; j++) {
                                        int ih = oh * c[6] - c[8] + i, iw = ow * c[7] - c[9] + j;
                                        if (ih < 0 || ih >= c[2] || iw < 0 || iw >= c[3]) continue;
                                        sum += xd[p * c[2] * c[3] + ih * c[3] + iw];
                                        cnt++;
                                    }
                                ref[o] = sum / (include ? c[4] * c[5] : cnt);
                            }
                    assertClose(ref, Pool.avgPool2d(x, c[4], c[5], c[6], c[7], c[8], c[9], include), 1e-12, what);
                    Tensor dy = rng.normal(DType.F64, 0, 1, c[0], c[1], ho, wo);
                    Tensor dx = Pool.avgPool2dBackward(dy, x.shape(), c[4], c[5], c[6], c[7], c[8], c[9], include);
                    double[] fd = gradient(x, t -> dot(Pool.avgPool2d(t, c[4], c[5], c[6], c[7], c[8], c[9], include), dy), 1e-6);
                    assertClose(fd, dx, 1e-6, what + " dx");
                }
            }
    }

    @Test
    void adaptiveAvgPoolMatchesLoopsAndGradient() {
        Rng rng = new Rng(13);
        int[][] cases = {{2, 3, 7, 5, 1, 1}, {1, 2, 7, 5, 3, 2}, {1, 1, 4, 4, 4, 4}, {1, 1, 3, 3, 5, 4}};
        for (int[] c : cases) {
            try (Scope s = Scope.open()) {
                String what = java.util.Arrays.toString(c);
                Tensor x = rng.normal(DType.F64, 0, 1, c[0], c[1], c[2], c[3]);
                double[] xd = x.toDoubleArray();
                double[] ref = new double[c[0] * c[1] * c[4] * c[5]];
                int o = 0;
                for (int p = 0; p < c[0] * c[1]; p++)
                    for (int oh = 0; oh < c[4]; oh++)
                        for (int ow = 0; ow < c[5]; ow++, o++) {
                            int h0 = (int) Math.floor((double) oh * c[2] / c[4]), h1 = (int) Math.ceil((double) (oh + 1) * c[2] / c[4]);
                            int w0 = (int) Math.floor((double) ow * c[3] / c[5]), w1 = (int) Math.ceil((double) (ow + 1) * c[3] / c[5]);
                            double sum = 0;
                            for (int ih = h0; ih < h1; ih++) for (int iw = w0; iw < w1; iw++) sum += xd[p * c[2] * c[3] + ih * c[3] + iw];
                            ref[o] = sum / ((h1 - h0) * (w1 - w0));
                        }
                assertClose(ref, x.adaptiveAvgPool2d(c[4], c[5]), 1e-12, what);
                Tensor dy = rng.normal(DType.F64, 0, 1, c[0], c[1], c[4], c[5]);
                Tensor dx = Pool.adaptiveAvgPool2dBackward(dy, x.shape());
                double[] fd = gradient(x, t -> dot(Pool.adaptiveAvgPool2d(t, c[4], c[5]), dy), 1e-6);
                assertClose(fd, dx, 1e-6, what + " dx");
            }
        }
    }

    @Test
    void errors() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.ones(1, 2, 4, 4);
            ConvTest.assertMsg(() -> Pool.maxPool2d(Tensor.ones(2, 4, 4), 2, 2, 0), "wrong rank", "[2, 4, 4]");
            ConvTest.assertMsg(() -> Pool.maxPool2d(x, 2, 0, 0), "stride must be positive");
            ConvTest.assertMsg(() -> Pool.maxPool2d(x, 7, 1, 1), "larger than padded input", "[1, 2, 4, 4]");
            ConvTest.assertMsg(() -> Pool.maxPool2d(x, 2, 1, 2), "padding");
            ConvTest.assertMsg(() -> Pool.avgPool2dBackward(Tensor.ones(1, 2, 3, 3), x.shape(), 2, 2, 0), "dy", "[1, 2, 2, 2]");
        }
    }
}
