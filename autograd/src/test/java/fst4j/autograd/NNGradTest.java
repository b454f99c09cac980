package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

class NNGradTest {
    static void ok(GradCheck.Fn f, Tensor... in) {
        GradCheck.Result r = GradCheck.check(f, in);
        assertTrue(r.passed(), r.toString());
    }

    @Test
    void conv2dWithAndWithoutBias() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.conv2d(v[0], v[1], v[2], 1, 1), rand(1, 2, 3, 5, 4), rand(2, 4, 3, 3, 3), rand(3, 4));
            ok(v -> NN.conv2d(v[0], v[1], null, 2, 0), rand(4, 1, 2, 7, 7), rand(5, 3, 2, 3, 3));
        }
    }

    @Test
    void pooling() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.maxPool2d(v[0], 2, 2, 0), rand(6, 2, 3, 6, 5));
            ok(v -> NN.avgPool2d(v[0], 3, 2, 1), rand(7, 2, 3, 7, 7));
            ok(v -> NN.adaptiveAvgPool2d(v[0], 1, 1), rand(8, 2, 3, 5, 3));
        }
    }

    @Test
    void batchNormTrainAndEval() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.batchNorm2d(v[0], v[1], v[2], null, null, true, 0.1, 1e-5), rand(9, 3, 2, 3, 3), rand(10, 2), rand(11, 2));
            Tensor rm = rand(12, 2), rv = rand(13, 0.5, 2, 2);
            ok(v -> NN.batchNorm2d(v[0], v[1], v[2], rm, rv, false, 0.1, 1e-5), rand(14, 3, 2, 3, 3), rand(15, 2), rand(16, 2));
        }
    }

    @Test
    void fusedBatchNormReluAndAddRelu() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.batchNorm2dRelu(v[0], v[1], v[2], null, null, true, 0.1, 1e-5), rand(31, 3, 2, 3, 3), rand(32, 2), rand(33, 2));
            Tensor rm = rand(34, 2), rv = rand(35, 0.5, 2, 2);
            ok(v -> NN.batchNorm2dRelu(v[0], v[1], v[2], rm, rv, false, 0.1, 1e-5), rand(36, 3, 2, 3, 3), rand(37, 2), rand(38, 2));
            ok(v -> NN.addRelu(v[0], v[1]), rand(39, 2, 3, 4), rand(40, 2, 3, 4));
        }
    }

    /** The fused functions give the same values and gradients as batch norm / add followed by a separate ReLU (float32, C paths). */
    @Test
    void fusedEqualsUnfusedInFloat32() {
        for (boolean training : new boolean[]{true, false}) {
            float[][] fused = bnRelu(true, training), plain = bnRelu(false, training);
            for (int i = 0; i < fused.length; i++) {
                assertEquals(plain[i].length, fused[i].length);
                for (int j = 0; j < plain[i].length; j++)
                    assertEquals(plain[i][j], fused[i][j], 1e-5f * Math.max(1, Math.abs(plain[i][j])), "tensor " + i + " at " + j + " training " + training);
            }
        }
        try (Scope s = Scope.open()) {
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(5);
            Var a = Var.param(r.normal(0, 1, 4, 8, 9, 9)), b = Var.param(r.normal(0, 1, 4, 8, 9, 9));
            Tensor up = r.normal(0, 1, 4, 8, 9, 9);
            Var f = NN.addRelu(a, b);
            f.backward(up);
            float[] fv = f.value().toFloatArray(), ga = a.grad().toFloatArray(), gb = b.grad().toFloatArray();
            a.zeroGrad(); b.zeroGrad();
            Var u = a.add(b).relu();
            u.backward(up);
            assertArrayEquals(u.value().toFloatArray(), fv);
            assertArrayEquals(a.grad().toFloatArray(), ga);
            assertArrayEquals(b.grad().toFloatArray(), gb);
        }
    }

    /** relu(batchNorm2d + add) as one function: gradchecked in float64 (the reference path), training and eval. */
    @Test
    void batchNormAddReluGradcheck() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.batchNorm2dAddRelu(v[0], v[1], v[2], v[3], null, null, true, 0.1, 1e-5), rand(41, 3, 2, 3, 3), rand(42, 2), rand(43, 2),
                    rand(44, 3, 2, 3, 3));
            Tensor rm = rand(45, 2), rv = rand(46, 0.5, 2, 2);
            ok(v -> NN.batchNorm2dAddRelu(v[0], v[1], v[2], v[3], rm, rv, false, 0.1, 1e-5), rand(47, 3, 2, 3, 3), rand(48, 2), rand(49, 2),
                    rand(50, 3, 2, 3, 3));
        }
    }

    /**
     * In float32 (the native path in training) the one function gives the bits of batch norm then NN.addRelu: the
     * output, all four gradients and the running statistics, with and without a vector tail in the planes, and with
     * the add's gradient not wanted (a constant shortcut).
     */
    @Test
    void batchNormAddReluEqualsUnfusedBitForBit() {
        assertTrue(fst4j.shim.Native.isLoaded(), "the native batch norm is what this compares");
        // (eval mode runs the composition itself: nothing to compare there.) 16 x 37 x 8 x 8: several pool tasks, so
        // the masked dy is written by both threads
        for (int[] sh : new int[][]{{6, 5, 7, 7}, {4, 16, 8, 8}, {3, 3, 5, 2}, {16, 37, 8, 8}})
            for (boolean addGrad : new boolean[]{true, false}) {
                float[][] fused = bnAddRelu(true, true, sh, addGrad), plain = bnAddRelu(false, true, sh, addGrad);
                for (int i = 0; i < fused.length; i++)
                    assertArrayEquals(plain[i], fused[i], "tensor " + i + " shape " + java.util.Arrays.toString(sh) + " add's gradient " + addGrad);
            }
    }

    /** A float64 shortcut on a float32 batch norm, as addRelu takes it (promoted): the composition, not a refusal. */
    @Test
    void batchNormAddReluWithAnotherDtypeComposes() {
        try (Scope s = Scope.open()) {
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(8);
            Var x = Var.param(r.normal(0, 1, 2, 3, 4, 4)), gamma = Var.param(r.normal(1, 0.3, 3)), beta = Var.param(r.normal(0, 0.5, 3));
            Var add = Var.param(r.normal(DType.F64, 0, 1, 2, 3, 4, 4));
            Var y = NN.batchNorm2dAddRelu(x, gamma, beta, add, null, null, true, 0.1, 1e-5);
            assertEquals("AddRelu", y.gradFn().name());
            y.sum().backward();
            assertNotNull(add.grad());
            assertNotNull(x.grad());
        }
    }

    private static float[][] bnAddRelu(boolean fused, boolean training, int[] sh, boolean addGrad) {
        try (Scope s = Scope.open()) {
            int c = sh[1];
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(7);
            Var x = Var.param(r.normal(0.2, 1, sh)), gamma = Var.param(r.normal(1, 0.3, c)), beta = Var.param(r.normal(0, 0.5, c));
            Tensor a = r.normal(0, 1, sh);
            Var add = addGrad ? Var.param(a) : Var.of(a);
            Tensor rm = r.normal(0, 0.2, c), rv = r.uniform(0.5, 2, c), up = r.normal(0, 1, sh);
            Var y = fused ? NN.batchNorm2dAddRelu(x, gamma, beta, add, rm, rv, training, 0.1, 1e-5)
                    : NN.addRelu(NN.batchNorm2d(x, gamma, beta, rm, rv, training, 0.1, 1e-5), add);
            if (fused) assertEquals("BatchNorm2dAddRelu", y.gradFn().name(), "the one function ran");
            y.backward(up);
            float[] zero = new float[0];
            int kept = 0;
            for (float v : y.value().toFloatArray()) if (v > 0) kept++;
            assertTrue(kept > 0 && kept < y.value().numel(), "the ReLU must cut some values and keep others");
            return new float[][]{y.value().toFloatArray(), x.grad().toFloatArray(), gamma.grad().toFloatArray(), beta.grad().toFloatArray(),
                    addGrad ? add.grad().toFloatArray() : zero, rm.toFloatArray(), rv.toFloatArray()};
        }
    }

    /**
     * Batch norm + ReLU + 2x2 max pool as one function against batch norm + ReLU then maxPool2d, in float32 (native,
     * training): output, the three gradients and the running statistics bit for bit; even and odd planes (the last row
     * and column outside every window), the smallest plane, a constant channel with beta 0 (its outputs exactly 0: every
     * window a tie), a NaN (its channel's statistics NaN), and a size that splits over both threads.
     */
    @Test
    void batchNormReluMaxPoolEqualsUnfusedBitForBit() {
        assertTrue(fst4j.shim.Native.isLoaded(), "the native batch norm is what this compares");
        for (int[] sh : new int[][]{{6, 5, 8, 8}, {4, 16, 28, 28}, {3, 3, 7, 9}, {2, 3, 2, 2}, {16, 37, 8, 8}})
            for (boolean nan : new boolean[]{false, true}) {
                float[][] fused = bnReluPool(true, sh, nan), plain = bnReluPool(false, sh, nan);
                for (int i = 0; i < fused.length; i++)
                    assertArrayEquals(plain[i], fused[i], "tensor " + i + " shape " + java.util.Arrays.toString(sh) + " nan " + nan);
            }
    }

    /** In float64 (as gradcheck runs) the function composes batch norm + ReLU and the pool; the fused float32 path is held to it bit for bit above. */
    @Test
    void batchNormReluMaxPoolGradcheck() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.batchNorm2dReluMaxPool2(v[0], v[1], v[2], null, null, true, 0.1, 1e-5), rand(51, 3, 2, 4, 5), rand(52, 2), rand(53, 2));
        }
    }

    private static float[][] bnReluPool(boolean fused, int[] sh, boolean nan) {
        try (Scope s = Scope.open()) {
            int c = sh[1], hw = sh[2] * sh[3];
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(9);
            float[] xa = r.normal(0.2, 1, sh).toFloatArray(), ba = r.normal(0, 0.5, c).toFloatArray();
            for (int i = 0; i < sh[0]; i++) for (int q = 0; q < hw; q++) xa[i * c * hw + q] = 0.5f;   // channel 0 constant
            if (nan && c > 1) xa[((sh[0] - 1) * c + 1) * hw + hw - 1] = Float.NaN;                   // a NaN in channel 1
            ba[0] = 0f;
            Var x = Var.param(Tensor.of(xa, sh)), gamma = Var.param(r.normal(1, 0.3, c)), beta = Var.param(Tensor.of(ba, c));
            Tensor rm = r.normal(0, 0.2, c), rv = r.uniform(0.5, 2, c);
            Var y = fused ? NN.batchNorm2dReluMaxPool2(x, gamma, beta, rm, rv, true, 0.1, 1e-5)
                    : NN.maxPool2d(NN.batchNorm2dRelu(x, gamma, beta, rm, rv, true, 0.1, 1e-5), 2, 2, 0);
            if (fused) assertEquals("BatchNorm2dReluMaxPool", y.gradFn().name(), "the one function ran");
            Tensor up = r.normal(0, 1, y.shape());
            y.backward(up);
            return new float[][]{y.value().toFloatArray(), x.grad().toFloatArray(), gamma.grad().toFloatArray(), beta.grad().toFloatArray(),
                    rm.toFloatArray(), rv.toFloatArray()};
        }
    }

    private static float[][] bnRelu(boolean fused, boolean training) {
        try (Scope s = Scope.open()) {
            fst4j.tensor.Rng r = new fst4j.tensor.Rng(3);
            Var x = Var.param(r.normal(0.2, 1, 6, 5, 7, 7)), gamma = Var.param(r.normal(1, 0.3, 5)), beta = Var.param(r.normal(0, 0.5, 5));
            Tensor rm = r.normal(0, 0.2, 5), rv = r.uniform(0.5, 2, 5), up = r.normal(0, 1, 6, 5, 7, 7);
            Var y = fused ? NN.batchNorm2dRelu(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
                    : NN.batchNorm2d(x, gamma, beta, rm, rv, training, 0.1, 1e-5).relu();
            y.backward(up);
            return new float[][]{y.value().toFloatArray(), x.grad().toFloatArray(), gamma.grad().toFloatArray(), beta.grad().toFloatArray(),
                    rm.toFloatArray(), rv.toFloatArray()};
        }
    }

    @Test
    void crossEntropyAndSoftmax() {
        try (Scope s = Scope.open()) {
            ok(v -> NN.crossEntropy(v[0], new int[]{0, 2, 1, 2}, 0.1), rand(17, 4, 3));
            ok(v -> NN.logSoftmax(v[0], 1), rand(18, 4, 3));
            ok(v -> NN.softmax(v[0], 0), rand(19, 4, 3));
        }
    }

    @Test
    void dropoutScalesKeptAndIsIdentityInEval() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.ones(1000));
            Var y = NN.dropout(x, 0.25, true, new fst4j.tensor.Rng(1));
            float[] v = y.value().toFloatArray();
            int kept = 0;
            for (float f : v) { if (f != 0) { assertEquals(1 / 0.75f, f, 1e-6); kept++; } }
            assertTrue(kept > 680 && kept < 820, "kept " + kept);
            // eval: the identity as a Var of its own over x's memory (closing it leaves x open), values and gradient x's
            Var e = NN.dropout(x, 0.25, false, new fst4j.tensor.Rng(1));
            assertNotSame(x, e);
            assertArrayEquals(x.value().toFloatArray(), e.value().toFloatArray());
            y.sum().backward();
            assertArrayEquals(v, x.grad().toFloatArray());
        }
    }

    @Test
    void smallCnnTrainsOnATinyProblem() {
        try (Scope outer = Scope.open()) {
            fst4j.tensor.Rng rng = new fst4j.tensor.Rng(3);
            Var w = Var.param(rng.kaimingNormal(4, 1, 3, 3)), fc = Var.param(rng.kaimingNormal(2, 4));
            Tensor x = rng.normal(0, 1, 8, 1, 6, 6);
            int[] labels = {0, 1, 0, 1, 0, 1, 0, 1};
            for (int i = 0; i < 8; i++) if (labels[i] == 1) x.slice(0, i, i + 1).copyFrom(x.slice(0, i, i + 1).add(1.5));
            double first = 0, last = 0;
            for (int step = 0; step < 60; step++) {
                try (Scope st = Scope.open()) {
                    Var h = NN.adaptiveAvgPool2d(NN.conv2d(Var.of(x.alias()), w, null, 1, 1).relu(), 1, 1).reshape(8, 4);
                    Var loss = NN.crossEntropy(h.matmul(fc.transpose(0, 1)), labels, 0);
                    if (step == 0) first = loss.item();
                    last = loss.item();
                    loss.backward();
                    for (Var p : new Var[]{w, fc}) { p.value().copyFrom(p.value().sub(p.grad().mul(0.5))); p.zeroGrad(); }
                }
            }
            assertTrue(last < first * 0.5, "loss " + first + " -> " + last);
        }
    }
}
