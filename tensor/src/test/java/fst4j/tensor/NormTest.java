package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static fst4j.tensor.FiniteDiff.*;
import static org.junit.jupiter.api.Assertions.*;

class NormTest {
    @Test
    void trainForwardNormalisesAndUpdatesRunningStats() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(21);
            int n = 3, c = 4, h = 5, w = 3;
            Tensor x = rng.normal(2.0, 3.0, n, c, h, w);
            Tensor gamma = rng.uniform(0.5, 1.5, c), beta = rng.normal(0, 1, c);
            Tensor rm = rng.normal(0, 1, c), rv = rng.uniform(0.5, 2, c);
            double[] rm0 = rm.toDoubleArray(), rv0 = rv.toDoubleArray();
            double mom = 0.1, eps = 1e-5;
            Norm.BatchNorm bn = Norm.batchNorm2dTrain(x, gamma, beta, rm, rv, mom, eps);
            double[] xd = x.toDoubleArray(), y = bn.output().toDoubleArray();
            int m = n * h * w;
            for (int ch = 0; ch < c; ch++) {
                double mu = 0, sq = 0;
                for (int i = 0; i < n; i++) for (int q = 0; q < h * w; q++) mu += xd[(i * c + ch) * h * w + q];
                mu /= m;
                for (int i = 0; i < n; i++) for (int q = 0; q < h * w; q++) { double d = xd[(i * c + ch) * h * w + q] - mu; sq += d * d; }
                double var = sq / m;
                assertEquals(mu, bn.mean().getDouble(ch), 1e-5);
                assertEquals(1 / Math.sqrt(var + eps), bn.invStd().getDouble(ch), 1e-5);
                assertEquals((1 - mom) * rm0[ch] + mom * mu, rm.getDouble(ch), 1e-5, "running mean");
                assertEquals((1 - mom) * rv0[ch] + mom * sq / (m - 1), rv.getDouble(ch), 1e-5, "running var (unbiased)");
                for (int i = 0; i < n; i++)
                    for (int q = 0; q < h * w; q++) {
                        int k = (i * c + ch) * h * w + q;
                        assertEquals(gamma.getDouble(ch) * (xd[k] - mu) / Math.sqrt(var + eps) + beta.getDouble(ch), y[k], 1e-4);
                    }
            }
            // eval mode uses the running statistics, not the batch ones
            Tensor ye = Norm.batchNorm2dEval(x, gamma, beta, rm, rv, eps);
            double[] yed = ye.toDoubleArray();
            for (int i = 0; i < n; i++)
                for (int ch = 0; ch < c; ch++)
                    for (int q = 0; q < h * w; q++) {
                        int k = (i * c + ch) * h * w + q;
                        double e = gamma.getDouble(ch) * (xd[k] - rm.getDouble(ch)) / Math.sqrt(rv.getDouble(ch) + eps) + beta.getDouble(ch);
                        assertEquals(e, yed[k], 1e-4);
                    }
            // null running stats and null affine are allowed
            Norm.BatchNorm plain = Norm.batchNorm2dTrain(x, null, null, null, null, mom, eps);
            assertEquals(0.0, plain.output().mean(false, 0, 2, 3).abs().max(false).item(), 1e-5);
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void backwardMatchesFiniteDifferences() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(22);
            int n = 2, c = 3, h = 3, w = 2;
            double eps = 1e-5;
            Tensor x = rng.normal(DType.F64, 1.0, 2.0, n, c, h, w);
            Tensor gamma = rng.uniform(DType.F64, 0.5, 1.5, c), beta = rng.normal(DType.F64, 0, 1, c);
            Tensor dy = rng.normal(DType.F64, 0, 1, n, c, h, w);
            Norm.BatchNorm bn = Norm.batchNorm2dTrain(x, gamma, beta, null, null, 0.1, eps);
            Norm.BatchNormGrads g = Norm.batchNorm2dBackward(dy, x, gamma, bn.mean(), bn.invStd());
            assertClose(gradient(x, t -> dot(Norm.batchNorm2dTrain(t, gamma, beta, null, null, 0.1, eps).output(), dy), 1e-6), g.dx(), 1e-6, "dx");
            assertClose(gradient(gamma, t -> dot(Norm.batchNorm2dTrain(x, t, beta, null, null, 0.1, eps).output(), dy), 1e-6), g.dgamma(), 1e-6, "dgamma");
            assertClose(gradient(beta, t -> dot(Norm.batchNorm2dTrain(x, gamma, t, null, null, 0.1, eps).output(), dy), 1e-6), g.dbeta(), 1e-6, "dbeta");

            Tensor rm = rng.normal(DType.F64, 0, 1, c), rv = rng.uniform(DType.F64, 0.5, 2, c);
            Norm.BatchNormGrads ge = Norm.batchNorm2dEvalBackward(dy, x, gamma, rm, rv, eps);
            assertClose(gradient(x, t -> dot(Norm.batchNorm2dEval(t, gamma, beta, rm, rv, eps), dy), 1e-6), ge.dx(), 1e-6, "eval dx");
            assertClose(gradient(gamma, t -> dot(Norm.batchNorm2dEval(x, t, beta, rm, rv, eps), dy), 1e-6), ge.dgamma(), 1e-6, "eval dgamma");
            assertClose(gradient(beta, t -> dot(Norm.batchNorm2dEval(x, gamma, t, rm, rv, eps), dy), 1e-6), ge.dbeta(), 1e-6, "eval dbeta");
        }
    }

    @Test
    void errors() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.ones(2, 3, 2, 2);
            ConvTest.assertMsg(() -> Norm.batchNorm2dTrain(Tensor.ones(2, 3), null, null, null, null, 0.1, 1e-5), "wrong rank", "[2, 3]");
            ConvTest.assertMsg(() -> Norm.batchNorm2dTrain(x, Tensor.ones(4), null, null, null, 0.1, 1e-5), "channel mismatch", "gamma", "[4]", "[2, 3, 2, 2]");
            ConvTest.assertMsg(() -> Norm.batchNorm2dEval(x, null, null, Tensor.ones(3), Tensor.ones(2), 1e-5), "channel mismatch", "runningVar");
        }
    }
    /**
     * One value per channel in training mode (N*H*W = 1) is refused, as PyTorch does: it normalised to zeros, silently,
     * and the running statistics moved; eval mode, and two values per channel, still go.
     */
    @Test
    void trainingWithOneValuePerChannelIsRefused() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1, 2, 3}, 1, 3, 1, 1), gamma = Tensor.ones(3), beta = Tensor.zeros(3);
            Tensor rm = Tensor.zeros(3), rv = Tensor.ones(3);
            int version = rm.version();
            for (boolean relu : new boolean[]{false, true}) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                        () -> Norm.batchNorm2dTrain(x, gamma, beta, rm, rv, 0.1, 1e-5, relu));
                assertEquals("batchNorm2dTrain: expected more than 1 value per channel when training, got input [1, 3, 1, 1]"
                        + " (N*H*W = 1): use a batch of at least 2, or eval mode", e.getMessage());
            }
            assertEquals(version, rm.version(), "the running statistics are left alone");
            assertArrayEquals(new float[3], rm.toFloatArray());
            assertArrayEquals(new float[]{1, 2, 3}, Norm.batchNorm2dEval(x, null, null, rm, rv, 0).toFloatArray(), 1e-6f, "eval mode still works");
            try (Norm.BatchNorm two = Norm.batchNorm2dTrain(Tensor.of(new float[]{1, 3}, 2, 1, 1, 1), null, null, null, null, 0.1, 0)) {
                assertArrayEquals(new float[]{-1, 1}, two.output().toFloatArray(), 1e-6f, "two values per channel normalise");
            }
        }
    }
}
