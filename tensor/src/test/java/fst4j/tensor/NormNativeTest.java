package fst4j.tensor;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import static org.junit.jupiter.api.Assertions.*;

/** The C batch norm (float32) equals the Java reference: outputs, saved statistics, running stats, gradients. */
class NormNativeTest {
    static void close(Tensor a, Tensor b, String what) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        assertEquals(x.length, y.length, what);
        for (int i = 0; i < x.length; i++) assertEquals(x[i], y[i], 2e-5f * Math.max(1, Math.abs(x[i])), what + " at " + i);
    }

    /** {@link #close}, where a NaN in either must be a NaN in both. */
    static void closeOrBothNaN(Tensor a, Tensor b, String what) {
        float[] x = a.toFloatArray(), y = b.toFloatArray();
        assertEquals(x.length, y.length, what);
        for (int i = 0; i < x.length; i++) {
            if (Float.isNaN(x[i]) || Float.isNaN(y[i])) assertTrue(Float.isNaN(x[i]) && Float.isNaN(y[i]), what + ": NaN at " + i);
            else assertEquals(x[i], y[i], 2e-5f * Math.max(1, Math.abs(x[i])), what + " at " + i);
        }
    }

    @ParameterizedTest
    // 2,1,1,1: the fewest values per channel training takes (one is refused: NormTest.trainingWithOneValuePerChannelIsRefused)
    @CsvSource({"2,1,1,1,true", "2,3,5,7,true", "4,16,6,6,false", "64,8,3,3,true", "3,1,17,2,false",
            // channel blocks (planes of whole vectors), split over threads at channel counts that are not whole blocks
            "16,37,8,8,true", "40,70,4,4,false", "9,13,32,32,true"})
    void nativeEqualsJava(int n, int c, int h, int w, boolean affine) {
        compare(n, c, h, w, affine, 0.5, 2);
    }

    /** Batch norm with the fused ReLU (forward max(BN(x), 0), backward masked by that output): C equals Java. */
    @ParameterizedTest
    @CsvSource({"2,3,5,7", "4,16,6,6", "3,1,17,2", "16,37,8,8", "40,70,4,4"})
    void fusedReluNativeEqualsJava(int n, int c, int h, int w) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 7L + c);
            Tensor x = r.normal(0.1, 1, n, c, h, w), dy = r.normal(0, 1, n, c, h, w), gamma = r.normal(1, 0.3, c), beta = r.normal(0, 0.3, c);
            Norm.nativeNorm = false;
            Norm.BatchNorm j = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, true);
            Norm.BatchNormGrads jg = Norm.batchNorm2dBackward(dy, x, gamma, j.mean(), j.invStd(), j.output());
            Norm.nativeNorm = true;
            Norm.BatchNorm nb = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, true);
            Norm.BatchNormGrads ng = Norm.batchNorm2dBackward(dy, x, gamma, nb.mean(), nb.invStd(), nb.output());
            float[] out = nb.output().toFloatArray();
            int zeros = 0;
            for (float v : out) { assertTrue(v >= 0, "relu output " + v); if (v == 0) zeros++; }
            assertTrue(zeros > 0 && zeros < out.length, "the ReLU must cut some values and keep others");
            close(j.output(), nb.output(), "y");
            close(jg.dx(), ng.dx(), "dx");
            close(jg.dgamma(), ng.dgamma(), "dgamma");
            close(jg.dbeta(), ng.dbeta(), "dbeta");
        } finally {
            Norm.nativeNorm = true;
        }
    }

    /**
     * The fused ReLU's mask recomputed from x (the forward's float64 scale and shift) gives the bits of the mask read
     * from the output: random channels, a constant channel with beta 0 (every output exactly +0 before the ReLU, so
     * the mask is empty only if the comparison is strict), a channel holding a NaN (its outputs NaN: no gradient
     * passes), planes with and without a vector tail, on 1 and 2 threads.
     */
    @ParameterizedTest
    @CsvSource({"2,3,5,7,1", "4,16,6,6,2", "3,4,17,2,2", "16,37,8,8,2", "8,6,4,4,1", "5,9,3,3,2"})
    void reluMaskFromXEqualsMaskFromOutput(int n, int c, int h, int w, int threads) {
        int before = Blas.threads();
        try (Scope s = Scope.open()) {
            Blas.setThreads(threads);
            Rng r = new Rng(n * 31L + c * 7L + h);
            Tensor x = r.normal(0.1, 1, n, c, h, w), dy = r.normal(0, 1, n, c, h, w), gamma = r.normal(1, 0.3, c), beta = r.normal(0, 0.3, c);
            int hw = h * w;
            for (int i = 0; i < n; i++) for (int q = 0; q < hw; q++) x.setAt(((long) i * c) * hw + q, 0.75);   // channel 0 constant
            beta.setAt(0, 0.0);
            x.setAt(((long) (n - 1) * c + c - 1) * hw + hw / 2, Double.NaN);                                    // a NaN in the last channel
            Norm.BatchNorm f = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, true);
            assertNotNull(f.reluAffine(), "the native forward keeps its scale and shift");
            assertArrayEquals(new int[]{c, 2}, f.reluAffine().shape());
            float[] y = f.output().toFloatArray();
            for (int i = 0; i < n; i++) for (int q = 0; q < hw; q++) assertEquals(0.0f, y[i * c * hw + q], "constant channel");
            Norm.BatchNormGrads fromOut = Norm.batchNorm2dBackward(dy, x, gamma, f.mean(), f.invStd(), f.output(), null);
            Norm.BatchNormGrads fromX = Norm.batchNorm2dBackward(dy, x, gamma, f.mean(), f.invStd(), null, f.reluAffine());
            Norm.BatchNormGrads both = Norm.batchNorm2dBackward(dy, x, gamma, f.mean(), f.invStd(), f.output(), f.reluAffine());
            float[] a = fromOut.dx().toFloatArray();
            for (Norm.BatchNormGrads g : new Norm.BatchNormGrads[]{fromX, both}) {
                assertArrayEquals(a, g.dx().toFloatArray(), "dx");
                assertArrayEquals(fromOut.dgamma().toFloatArray(), g.dgamma().toFloatArray(), "dgamma");
                assertArrayEquals(fromOut.dbeta().toFloatArray(), g.dbeta().toFloatArray(), "dbeta");
            }
            assertEquals(0.0f, fromX.dbeta().toFloatArray()[0], "the constant channel's outputs are +0: the ReLU passes no gradient");
            float[] db = fromX.dbeta().toFloatArray();
            assertTrue(Float.isNaN(db[c - 1]) || db[c - 1] == 0.0f, "the NaN channel: " + db[c - 1]);
            int kept = 0;
            for (float v : y) if (v > 0) kept++;
            assertTrue(kept > 0, "some outputs pass the ReLU");
        } finally {
            Blas.setThreads(before);
        }
    }

    /** reluAffine is the native path's: refused by name where it is malformed, or alone where the native path does not run. */
    @org.junit.jupiter.api.Test
    void reluAffineIsCheckedByName() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            Tensor x = r.normal(0, 1, 2, 3, 4, 4), dy = r.normal(0, 1, 2, 3, 4, 4);
            Norm.BatchNorm f = Norm.batchNorm2dTrain(x, null, null, null, null, 0.1, 1e-5, true);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Norm.batchNorm2dBackward(dy, x, null, f.mean(), f.invStd(), null, Tensor.zeros(DType.F64, 3)));
            assertTrue(e.getMessage().contains("reluAffine must be a contiguous float64 [3, 2]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Norm.batchNorm2dBackward(dy, x, null, f.mean(), f.invStd(), null, Tensor.zeros(DType.F32, 3, 2)));
            assertTrue(e.getMessage().contains("float64"), e.getMessage());
            Norm.nativeNorm = false;
            // off the native path the mask comes from the affine in Java: the bits of the reference path's mask from the output
            try (Norm.BatchNormGrads a = Norm.batchNorm2dBackward(dy, x, null, f.mean(), f.invStd(), null, f.reluAffine());
                 Norm.BatchNormGrads o = Norm.batchNorm2dBackward(dy, x, null, f.mean(), f.invStd(), f.output(), null)) {
                assertArrayEquals(o.dx().toFloatArray(), a.dx().toFloatArray(), "dx");
                assertArrayEquals(o.dgamma().toFloatArray(), a.dgamma().toFloatArray(), "dgamma");
            }
            // with the output as well, the reference path takes the output
            try (Norm.BatchNormGrads g = Norm.batchNorm2dBackward(dy, x, null, f.mean(), f.invStd(), f.output(), f.reluAffine())) {
                assertEquals(x.numel(), g.dx().numel());
            }
        } finally {
            Norm.nativeNorm = true;
        }
    }

    /**
     * Batch norm with a tensor added before the ReLU (or with no ReLU): the native pass gives the bits of the batch norm
     * followed by the separate add (Elementwise.addRelu / add), and the backward's masked dy those of
     * Elementwise.reluBackward; the Java reference path (nativeNorm off) gives the same values within rounding.
     */
    @ParameterizedTest
    // 16 x 37 x 8 x 8: several pool tasks (both threads write the masked dy)
    @CsvSource({"2,3,5,7,true", "4,16,6,6,true", "3,4,17,2,false", "8,6,4,4,false", "16,37,8,8,true"})
    void addBeforeReluEqualsTheSeparateOps(int n, int c, int h, int w, boolean relu) {
        assertTrue(fst4j.shim.Native.isLoaded(), "the native batch norm is what this compares");
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 13L + c);
            Tensor x = r.normal(0.1, 1, n, c, h, w), add = r.normal(0, 1, n, c, h, w), dy = r.normal(0, 1, n, c, h, w);
            Tensor gamma = r.normal(1, 0.3, c), beta = r.normal(0, 0.3, c);
            Norm.BatchNorm f = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, relu, add);
            assertNull(f.reluAffine(), "with an add the mask is not x's alone");
            Norm.BatchNorm b = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, false);
            Tensor want = relu ? Elementwise.addRelu(b.output(), add) : b.output().add(add);
            assertArrayEquals(want.toFloatArray(), f.output().toFloatArray(), "output");
            if (!relu) return;
            Norm.BatchNormGrads fused = Norm.batchNorm2dBackward(dy, x, gamma, f.mean(), f.invStd(), f.output(), null, true);
            Tensor masked = Elementwise.reluBackward(dy, f.output());
            Norm.BatchNormGrads plain = Norm.batchNorm2dBackward(masked, x, gamma, f.mean(), f.invStd());
            assertArrayEquals(masked.toFloatArray(), fused.dyMasked().toFloatArray(), "dy masked");
            assertArrayEquals(plain.dx().toFloatArray(), fused.dx().toFloatArray(), "dx");
            assertArrayEquals(plain.dgamma().toFloatArray(), fused.dgamma().toFloatArray(), "dgamma");
            assertArrayEquals(plain.dbeta().toFloatArray(), fused.dbeta().toFloatArray(), "dbeta");
            Norm.nativeNorm = false;
            Norm.BatchNorm jf = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, true, add);
            close(f.output(), jf.output(), "java y");
            Norm.BatchNormGrads jb = Norm.batchNorm2dBackward(dy, x, gamma, jf.mean(), jf.invStd(), jf.output(), null, true);
            close(fused.dx(), jb.dx(), "java dx");
            close(fused.dyMasked(), jb.dyMasked(), "java dy masked");
        } finally {
            Norm.nativeNorm = true;
        }
    }

    /** The add must match x; the masked dy needs a mask; each refused by name. */
    @org.junit.jupiter.api.Test
    void addAndMaskedDyAreCheckedByName() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(9);
            Tensor x = r.normal(0, 1, 2, 3, 4, 4), dy = r.normal(0, 1, 2, 3, 4, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Norm.batchNorm2dTrain(x, null, null, null, null, 0.1, 1e-5, true, Tensor.zeros(2, 3, 4, 5)));
            assertTrue(e.getMessage().contains("shape mismatch: batchNorm2dTrain add [2, 3, 4, 5] vs x [2, 3, 4, 4]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Norm.batchNorm2dTrain(x, null, null, null, null, 0.1, 1e-5, true, Tensor.zeros(DType.F64, 2, 3, 4, 4)));
            assertTrue(e.getMessage().contains("dtype mismatch"), e.getMessage());
            Norm.BatchNorm f = Norm.batchNorm2dTrain(x, null, null, null, null, 0.1, 1e-5, false);
            e = assertThrows(IllegalArgumentException.class,
                    () -> Norm.batchNorm2dBackward(dy, x, null, f.mean(), f.invStd(), null, null, true));
            assertTrue(e.getMessage().contains("without the ReLU's output"), e.getMessage());
        }
    }

    /**
     * The fused batch norm + ReLU + max pool's indices and outputs are those of Pool.maxPool2d on the batch norm + ReLU's
     * output, bit for bit (raw bits: NaN payloads too), on data with many equal positive values in a window (ties go to
     * the first in window order) and a NaN; and its backward off the native path (nativeNorm turned off after the
     * forward) gives the native backward's values within rounding.
     */
    @ParameterizedTest
    @CsvSource({"4,5,8,8", "3,3,7,9", "16,37,8,8", "2,2,2,2"})
    void reluMaxPoolIndicesAreMaxPoolsOwn(int n, int c, int h, int w) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 5L + w);
            float[] xa = r.normal(0, 1, n, c, h, w).toFloatArray();
            for (int i = 0; i < xa.length; i++) xa[i] = Math.round(xa[i] * 2) / 2f;   // few distinct values: ties everywhere
            xa[xa.length / 3] = Float.NaN;
            Tensor x = Tensor.of(xa, n, c, h, w), gamma = r.normal(1, 0.3, c), beta = r.normal(0.3, 0.3, c);
            Norm.BatchNormPool f = Norm.batchNorm2dReluMaxPool2Train(x, gamma, beta, null, null, 0.1, 1e-5);
            Norm.BatchNorm b = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, 1e-5, true);
            Pool.MaxPool2d p = Pool.maxPool2d(b.output(), 2, 2, 0);
            assertArrayEquals(p.indices().toArray(), f.indices().toArray(), "indices");
            float[] want = p.output().toFloatArray(), got = f.output().toFloatArray();
            for (int i = 0; i < want.length; i++)
                assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]), "pooled value " + i);
            Tensor dy = r.normal(0, 1, f.output().shape());
            Norm.BatchNormGrads nat = Norm.batchNorm2dReluMaxPool2Backward(dy, f.indices(), x, gamma, f.mean(), f.invStd(), f.reluAffine());
            Norm.nativeNorm = false;
            Norm.BatchNormGrads java = Norm.batchNorm2dReluMaxPool2Backward(dy, f.indices(), x, gamma, f.mean(), f.invStd(), f.reluAffine());
            closeOrBothNaN(nat.dx(), java.dx(), "dx off the native path");
            closeOrBothNaN(nat.dgamma(), java.dgamma(), "dgamma off the native path");
        } finally {
            Norm.nativeNorm = true;
        }
    }

    /** The fused batch norm + ReLU + max pool refuses by name: a pooled gradient of the wrong shape, corrupt indices, float64. */
    @org.junit.jupiter.api.Test
    void reluMaxPoolIsCheckedByName() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(12);
            Tensor x = r.normal(0, 1, 2, 3, 6, 6);
            Norm.BatchNormPool f = Norm.batchNorm2dReluMaxPool2Train(x, null, null, null, null, 0.1, 1e-5);
            assertArrayEquals(new int[]{2, 3, 3, 3}, f.output().shape());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Norm.batchNorm2dReluMaxPool2Backward(
                    Tensor.zeros(2, 3, 3, 2), f.indices(), x, null, f.mean(), f.invStd(), f.reluAffine()));
            assertTrue(e.getMessage().contains("shape mismatch"), e.getMessage());
            int[] bad = f.indices().toArray().clone();
            bad[5] = 36;   // outside its 6 x 6 plane
            RuntimeException b = assertThrows(RuntimeException.class, () -> Norm.batchNorm2dReluMaxPool2Backward(
                    r.normal(0, 1, 2, 3, 3, 3), new Pool.HostIndices(bad), x, null, f.mean(), f.invStd(), f.reluAffine()));
            assertTrue(b.getMessage().contains("a max-pool index lies outside its 6 x 6 plane"), b.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> Norm.batchNorm2dReluMaxPool2Train(Tensor.zeros(DType.F64, 2, 3, 4, 4), null, null, null, null, 0.1, 1e-5));
            assertTrue(e.getMessage().contains("float32 CPU tensors"), e.getMessage());
            assertFalse(Norm.reluMaxPool2Fusable(Tensor.zeros(2, 3, 1, 4), null, null, null, null), "planes under 2 x 2");
            assertFalse(Norm.reluMaxPool2Fusable(Tensor.zeros(1, 1, 129, 128), null, null, null, null), "planes over 16384 values");
        }
    }

    /** The C forward takes both moments in one pass: a mean far above the spread must not cancel. */
    @ParameterizedTest
    @CsvSource({"8,3,5,5,1000,0.05", "4,2,7,3,-300,0.001", "16,4,4,4,1e4,1"})
    void largeMeanSmallSpread(int n, int c, int h, int w, double mean, double std) {
        compare(n, c, h, w, true, mean, std);
    }

    private static void compare(int n, int c, int h, int w, boolean affine, double mean, double std) {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(n * 100L + c);
            Tensor x = r.normal(mean, std, n, c, h, w), dy = r.normal(0, 1, n, c, h, w);
            Tensor gamma = affine ? r.normal(1, 0.3, c) : null, beta = affine ? r.normal(0, 0.3, c) : null;
            Tensor rm1 = r.normal(0, 1, c), rv1 = r.uniform(0.5, 2, c), rm2 = rm1.copy(), rv2 = rv1.copy();
            Norm.nativeNorm = false;
            Norm.BatchNorm j = Norm.batchNorm2dTrain(x, gamma, beta, rm1, rv1, 0.1, 1e-5);
            Norm.BatchNormGrads jg = Norm.batchNorm2dBackward(dy, x, gamma, j.mean(), j.invStd());
            Norm.nativeNorm = true;
            Norm.BatchNorm nb = Norm.batchNorm2dTrain(x, gamma, beta, rm2, rv2, 0.1, 1e-5);
            Norm.BatchNormGrads ng = Norm.batchNorm2dBackward(dy, x, gamma, nb.mean(), nb.invStd());
            close(j.output(), nb.output(), "y");
            close(j.mean(), nb.mean(), "mean");
            close(j.invStd(), nb.invStd(), "invStd");
            close(rm1, rm2, "running mean");
            close(rv1, rv2, "running var");
            close(jg.dx(), ng.dx(), "dx");
            close(jg.dgamma(), ng.dgamma(), "dgamma");
            close(jg.dbeta(), ng.dbeta(), "dbeta");
        } finally {
            Norm.nativeNorm = true;
        }
    }
}
