package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** torch's F.cross_entropy of logits [N, C, d1, ...]: one label per position, the mean over all of them; by the formula in double. */
class CrossEntropyNdTest {
    @Test
    void logitsWithPositionsTakeOneLabelPerPosition() {
        int n = 2, c = 3, h = 2, w = 3;
        try (Scope s = Scope.open()) {
            Tensor x = new Rng(4).normal(DType.F64, 0, 1, n, c, h, w);
            int[] labels = new int[n * h * w];
            for (int i = 0; i < labels.length; i++) labels[i] = (i * 7) % c;
            double eps = 0.1;
            Var v = Var.param(x);
            Var loss = NN.crossEntropy(v, labels, eps);
            loss.backward();
            // the formula: for position (b, i, j) the logits x[b, :, i, j]; smoothing as torch's (1 - eps) on the label, eps / C on each class
            double want = 0;
            double[] grad = new double[n * c * h * w];
            int positions = n * h * w;
            for (int b = 0; b < n; b++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++) {
                        int pos = (b * h + i) * w + j;
                        double max = Double.NEGATIVE_INFINITY;
                        for (int k = 0; k < c; k++) max = Math.max(max, x.getDouble(b, k, i, j));
                        double sum = 0;
                        for (int k = 0; k < c; k++) sum += Math.exp(x.getDouble(b, k, i, j) - max);
                        for (int k = 0; k < c; k++) {
                            double logp = x.getDouble(b, k, i, j) - max - Math.log(sum);
                            double target = (k == labels[pos] ? 1 - eps : 0) + eps / c;
                            want -= target * logp / positions;
                            grad[((b * c + k) * h + i) * w + j] = (Math.exp(logp) - target) / positions;
                        }
                    }
            assertEquals(want, loss.value().item(), 1e-12);
            assertArrayEquals(grad, v.grad().toDoubleArray(), 1e-12);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.crossEntropy(Var.of(x), new int[5], 0));
            assertEquals("shape mismatch: crossEntropy of logits [2, 3, 2, 3] needs 12 labels (one per position of [N, d1, ...]), got 5", e.getMessage());
        }
    }
}
