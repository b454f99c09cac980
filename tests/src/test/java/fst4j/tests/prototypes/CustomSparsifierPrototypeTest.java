package fst4j.tests.prototypes;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig;
import fst4j.autograd.Var;
import fst4j.nn.Conv2d;
import fst4j.nn.Linear;
import fst4j.sparse.Compressed24;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Prototype 3: rules of one's own in an operand slot of the Eq. 1-3 node: a random 2:4 rule in Eq. 1's S(W) of a
 * convolution whose K (1*3*3 = 9) is not a multiple of 4, and an unstructured top-k per row in a linear layer; each
 * checked for the 2:4 invariant and against the dense product of the masked operand.
 */
class CustomSparsifierPrototypeTest {

    /** Keeps 2 random positions of every group of 4 along the last axis (a short last group keeps min(2, its length)). */
    static final class Random24 implements Sparsifier.Custom {
        private final SplittableRandom rnd;
        boolean[] last;
        Random24(long seed) { rnd = new SplittableRandom(seed); }
        @Override public int axis() { return 1; }
        @Override public boolean accelerable() { return true; }
        @Override public boolean[] keep(double[] v, int[] shape) {
            int k = shape[1];
            boolean[] keep = new boolean[v.length];
            for (int r = 0; r < shape[0]; r++)
                for (int g = 0; g < k; g += 4) {
                    int len = Math.min(4, k - g), a = rnd.nextInt(len), b = len == 1 ? a : (a + 1 + rnd.nextInt(len - 1)) % len;
                    keep[r * k + g + a] = true;
                    keep[r * k + g + b] = true;
                }
            return last = keep;
        }
    }

    @Test
    void random24InAConvolutionsWeightSlotEqualsTheDenseMaskedConvolution() {
        long before = Memory.bytesInUse();
        Random24 rule = new Random24(5);
        try (Scope s = Scope.open(); Conv2d conv = new Conv2d(1, 8, 3, 1, 1, false, SparseConfig.Method.DENSE.config().withW(rule), new Rng(1))) {
            Rng rng = new Rng(2);
            Tensor x = rng.normal(0, 1, 2, 1, 6, 6), g = rng.normal(0, 1, 2, 8, 6, 6);
            Var y = conv.forward(Var.of(x));
            y.backward(g);

            Tensor w = conv.weight().value();
            Tensor mask = Tensor.empty(w.shape());
            for (int i = 0; i < rule.last.length; i++) mask.setFlat(i, rule.last[i] ? 1 : 0);
            Tensor sw = w.mul(mask);
            assertTrue(Compressed24.isValid24(sw.reshape(8, 9)), "S(W) is 2:4 along K");
            assertEquals(8 * 5, (long) mask.sum().item(), "2 of each full group, 1 of the padded group of 1");

            Tensor want = NN.conv2d(Var.of(x), Var.of(sw), null, 1, 1).value();
            assertArrayEquals(want.toFloatArray(), y.value().toFloatArray(), 1e-5f, "Eq. 1 is the convolution with S(W)");
            // straight-through: W's gradient is the dense convolution's weight gradient at S(W)
            Var swv = Var.param(sw.copy());
            NN.conv2d(Var.of(x), swv, null, 1, 1).backward(g);
            assertArrayEquals(swv.grad().toFloatArray(), conv.weight().grad().toFloatArray(), 1e-4f);
        }
        assertEquals(before, Memory.bytesInUse());
    }

    @Test
    void unstructuredTopKPerRowInALinearLayerEqualsTheMaskedProduct() {
        // keep the 3 largest |w| of each row of W [out, in]: not 2:4, so the node takes the dense GEMM of the masked W
        Sparsifier top3 = Sparsifier.Custom.of("top-3 per row", 1, false, (v, shape) -> {
            int cols = shape[1];
            boolean[] keep = new boolean[v.length];
            for (int r = 0; r < shape[0]; r++)
                for (int t = 0; t < 3; t++) {
                    int best = -1;
                    for (int c = 0; c < cols; c++)
                        if (!keep[r * cols + c] && (best < 0 || Math.abs(v[r * cols + c]) > Math.abs(v[r * cols + best]))) best = c;
                    keep[r * cols + best] = true;
                }
            return keep;
        });
        try (Scope s = Scope.open(); Linear lin = new Linear(10, 4, false, SparseConfig.Method.DENSE.config().withW(top3), new Rng(3))) {
            Tensor x = new Rng(4).normal(DType.F32, 0, 1, 5, 10);
            Tensor y = lin.forward(Var.of(x)).value();
            Tensor mask = top3.mask(lin.weight().value());
            for (int r = 0; r < 4; r++) assertEquals(3.0, mask.slice(0, r, r + 1).sum().item());
            Tensor want = x.matmul(lin.weight().value().mul(mask).t());
            assertArrayEquals(want.toFloatArray(), y.toFloatArray(), 1e-5f);
        }
    }
}
