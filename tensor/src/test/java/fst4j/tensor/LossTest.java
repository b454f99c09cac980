package fst4j.tensor;

import org.junit.jupiter.api.Test;

import static fst4j.tensor.FiniteDiff.*;
import static org.junit.jupiter.api.Assertions.*;

class LossTest {
    @Test
    void softmaxRowsSumToOneAndStayFiniteForLargeLogits() {
        long before = Memory.bytesInUse();
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(new float[]{1000, 999, 0, -1000, 1, 2, 3, 4}, 2, 4);
            float[] p = x.softmax(1).toFloatArray();
            assertEquals(1.0, p[0] + p[1] + p[2] + p[3], 1e-6);
            assertEquals(1.0, p[4] + p[5] + p[6] + p[7], 1e-6);
            assertEquals(1 / (1 + Math.exp(-1)), p[0], 1e-6);
            float[] lp = x.logSoftmax(1).toFloatArray();
            for (float v : lp) assertTrue(Float.isFinite(v));
            assertEquals(-2000 - Math.log1p(Math.exp(-1)), lp[3], 1e-3);
            assertEquals(1 - Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3) + Math.exp(4)), lp[4], 1e-5);
            // along axis 0 of a 3-D tensor
            Rng rng = new Rng(31);
            Tensor z = rng.normal(0, 5, 3, 2, 4);
            Tensor sm = Loss.softmax(z, 0).sum(false, 0);
            for (float v : sm.toFloatArray()) assertEquals(1.0, v, 1e-6);
            for (float v : Loss.softmax(z, -1).sum(false, 2).toFloatArray()) assertEquals(1.0, v, 1e-6);
            Tensor lsm = Loss.logSoftmax(z, 1), ref = Loss.softmax(z, 1).log();
            assertArrayEquals(ref.toFloatArray(), lsm.toFloatArray(), 1e-5f);
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void softmaxBackwardsMatchFiniteDifferences() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(32);
            Tensor x = rng.normal(DType.F64, 0, 2, 2, 3, 4);
            Tensor dy = rng.normal(DType.F64, 0, 1, 2, 3, 4);
            for (int axis : new int[]{0, 1, 2}) {
                assertClose(gradient(x, t -> dot(Loss.softmax(t, axis), dy), 1e-6), Loss.softmaxBackward(Loss.softmax(x, axis), dy, axis), 1e-7, "softmax " + axis);
                assertClose(gradient(x, t -> dot(Loss.logSoftmax(t, axis), dy), 1e-6), Loss.logSoftmaxBackward(Loss.logSoftmax(x, axis), dy, axis), 1e-7, "logSoftmax " + axis);
            }
        }
    }

    @Test
    void crossEntropyWithLabelSmoothingMatchesHandFormulaAndGradient() {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(33);
            int n = 5, c = 7;
            int[] labels = {0, 6, 3, 3, 1};
            for (double eps : new double[]{0, 0.1, 0.3}) {
                Tensor x = rng.normal(DType.F64, 0, 3, n, c);
                double[] xd = x.toDoubleArray();
                double ref = 0;
                for (int i = 0; i < n; i++) {
                    double z = 0;
                    for (int k = 0; k < c; k++) z += Math.exp(xd[i * c + k]);
                    for (int k = 0; k < c; k++) {
                        double target = (k == labels[i] ? 1 - eps : 0) + eps / c;
                        ref -= target * Math.log(Math.exp(xd[i * c + k]) / z);
                    }
                }
                ref /= n;
                Loss.CrossEntropy ce = Loss.crossEntropy(x, labels, eps);
                assertEquals(ref, ce.loss().item(), 1e-12, "eps " + eps);
                assertEquals(0, ce.loss().dim());
                assertEquals(ref, Loss.crossEntropyLoss(x, labels, eps).item(), 1e-12);
                double[] fd = gradient(x, t -> Loss.crossEntropyLoss(t, labels, eps).item(), 1e-6);
                assertClose(fd, ce.grad(), 1e-7, "grad eps " + eps);
                Tensor g2 = Loss.crossEntropyBackward(x, Tensor.of(new double[]{0, 6, 3, 3, 1}, 5), eps, 2.5);
                double[] gd = ce.grad().toDoubleArray(), g2d = g2.toDoubleArray();
                for (int i = 0; i < gd.length; i++) assertEquals(2.5 * gd[i], g2d[i], 1e-12);
                // float32 logits and Tensor labels agree with the float64 result
                Loss.CrossEntropy ce32 = Loss.crossEntropy(x.to(DType.F32), Tensor.of(new float[]{0, 6, 3, 3, 1}, 5), eps);
                assertEquals(DType.F32, ce32.loss().dtype());
                assertEquals(ref, ce32.loss().item(), 1e-5);
            }
            // large logits stay finite
            Tensor big = Tensor.of(new float[]{1000, 0, -1000, 0, 1000, 0}, 2, 3);
            Loss.CrossEntropy ce = Loss.crossEntropy(big, new int[]{0, 0}, 0);
            assertEquals(500.0, ce.loss().item(), 1e-3);
            assertFalse(Elementwise.hasNonFinite(ce.grad()));
        }
    }

    @Test
    void errors() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.ones(2, 3);
            ConvTest.assertMsg(() -> Loss.crossEntropy(x, new int[]{0, 3}, 0), "label 3", "out of range", "[2, 3]");
            ConvTest.assertMsg(() -> Loss.crossEntropy(x, new int[]{0}, 0), "1 labels", "[2, 3]");
            ConvTest.assertMsg(() -> Loss.crossEntropy(Tensor.ones(2, 3, 1), new int[]{0, 1}, 0), "wrong rank", "[2, 3, 1]");
            ConvTest.assertMsg(() -> Loss.crossEntropy(x, Tensor.of(new float[]{0.5f, 1}, 2), 0), "not an integer");
        }
    }
}
