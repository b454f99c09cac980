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
