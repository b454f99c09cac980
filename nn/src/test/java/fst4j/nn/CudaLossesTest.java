package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.NN.Reduction;
import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The losses on CUDA tensors: mseLoss, l1Loss, nllLoss, smoothL1Loss and binaryCrossEntropyWithLogits run there with the
 * CPU's values and gradients (for input and target), on CUDA, at sizes 1, 17 and 1031 and every reduction, smooth L1 at
 * several betas (0: the L1 loss), binary cross-entropy with and without posWeight, NaN and infinities propagating as on
 * the CPU. Against the device or the host emulator (skipped with the reason otherwise).
 */
class CudaLossesTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    interface Loss { Var apply(Var x, Var y, Reduction r); }

    /**
     * Each element within 2 ulps of the CPU's, NaN where NaN, infinities exact: each loss and its gradient is one formula
     * per element in double rounded once (libm's exp / log1p may differ in the last double bit, which moves the float by
     * at most one), log-softmax's row sums and the MEAN / SUM reductions add in double and round once, so another order
     * of their at most 1031 terms moves the float by at most one more. (It was 1e-6 absolute below 1: with MEAN over
     * 1031 values the gradients are about 1e-3, so thousands of ulps went unchecked.)
     */
    static void near(float[] want, float[] got, String what) { Ulps.assertNear(want, got, 2, what); }

    @Test
    void mseL1AndNllRunOnCudaAsOnTheHost() {
        int[] labels = {3, 0, -100, 1, 3, 2};
        Loss[] losses = {NN::mseLoss, NN::l1Loss, (x, y, r) -> NN.nllLoss(NN.logSoftmax(x, 1), labels, r, -100)};
        String[] names = {"mse", "l1", "nll"};
        for (int k = 0; k < losses.length; k++)
            for (Reduction r : Reduction.values())
                try (Scope s = Scope.open()) {
                    Rng rng = new Rng(40 + k);
                    Tensor x = rng.normal(0, 1, 6, 4), y = rng.normal(0, 1, 6, 4);
                    float[][] cpu = run(losses[k], r, x, y), gpu = run(losses[k], r, x.to(Device.CUDA), y.to(Device.CUDA));
                    String what = names[k] + " " + r;
                    near(cpu[0], gpu[0], what + " value");
                    near(cpu[1], gpu[1], what + " dx");
                    near(cpu[2], gpu[2], what + " dy");
                }
    }

    /** {value, d/dx, d/dy} of sum(loss * 1..n); the gradients must be on the inputs' device. */
    private static float[][] run(Loss loss, Reduction r, Tensor x, Tensor y) {
        Var xv = Var.param(x.copy()), yv = Var.param(y.copy());
        Var l = loss.apply(xv, yv, r);
        assertEquals(x.device(), l.value().device());
        try (Tensor w = Tensor.arange((int) l.value().numel()).reshape(l.shape())) {
            l.mul(Var.of(w.to(x.device()))).sum().backward();
        }
        assertEquals(x.device(), xv.grad().device());
        float[] dy = yv.grad() == null ? new float[0] : yv.grad().toFloatArray();
        return new float[][]{l.value().toFloatArray(), xv.grad().toFloatArray(), dy};
    }

    /** Normal values of two scales, a few of them the formulas' branch points (0, +-beta, +-1), some exactly equal to the target. */
    private static Tensor[] pair(Rng rng, int n, boolean probabilities) {
        float[] x = rng.normal(0, 1, n).toFloatArray(), s = rng.normal(0, 4, n).toFloatArray(), y = rng.uniform(0, 1, n).toFloatArray();
        float[] t = rng.normal(0, 1, n).toFloatArray();
        float[] branch = {0f, -0f, 1f, -1f, 0.5f, -0.5f, 30f, -30f};
        for (int i = 0; i < n; i++) {
            if (i % 3 == 1) x[i] = s[i];
            if (i % 11 == 5) x[i] = branch[i % branch.length];
            if (!probabilities && i % 13 == 7) t[i] = x[i];          // d = 0
            if (!probabilities && i % 17 == 3) t[i] = x[i] - 0.5f;   // d = +-beta for beta 0.5
        }
        return new Tensor[]{Tensor.of(x, n), probabilities ? Tensor.of(y, n) : Tensor.of(t, n)};
    }

    @Test
    void smoothL1RunsOnCudaAsOnTheHost() {
        for (int n : new int[]{1, 17, 1031})
            for (double beta : new double[]{1, 0.5, 0})
                for (Reduction r : Reduction.values())
                    try (Scope s = Scope.open()) {
                        Tensor[] xy = pair(new Rng(n * 7 + (int) (beta * 10)), n, false);
                        Loss loss = (x, y, red) -> NN.smoothL1Loss(x, y, red, beta);
                        float[][] cpu = run(loss, r, xy[0], xy[1]), gpu = run(loss, r, xy[0].to(Device.CUDA), xy[1].to(Device.CUDA));
                        String what = "smoothL1 n " + n + " beta " + beta + " " + r;
                        near(cpu[0], gpu[0], what + " value");
                        near(cpu[1], gpu[1], what + " dx");
                        near(cpu[2], gpu[2], what + " dy");
                    }
    }

    @Test
    void bceWithLogitsRunsOnCudaAsOnTheHost() {
        for (int n : new int[]{1, 17, 1031})
            for (boolean pos : new boolean[]{false, true})
                for (Reduction r : Reduction.values())
                    try (Scope s = Scope.open()) {
                        Rng rng = new Rng(n * 3 + (pos ? 1 : 0));
                        Tensor[] xy = pair(rng, n, true);
                        Tensor x2 = xy[0].reshape(1, n), y2 = xy[1].reshape(1, n);   // [1, n] with posWeight [n] broadcast over the rows
                        Tensor p = pos ? rng.uniform(0.2, 3, n) : null;
                        float[][] cpu = run((x, y, red) -> NN.binaryCrossEntropyWithLogits(x, y, p, red), r, x2, y2);
                        Tensor pd = p == null ? null : p.to(Device.CUDA);
                        float[][] gpu = run((x, y, red) -> NN.binaryCrossEntropyWithLogits(x, y, pd, red), r, x2.to(Device.CUDA), y2.to(Device.CUDA));
                        String what = "bce n " + n + (pos ? " posWeight " : " ") + r;
                        near(cpu[0], gpu[0], what + " value");
                        near(cpu[1], gpu[1], what + " dx");
                        near(cpu[2], gpu[2], what + " dy");
                    }
    }

    @Test
    void nonFiniteValuesPropagateAsOnTheHost() {
        float[] x = {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, 2f, -0f, 1e30f, -1e30f};
        float[] t = {0.5f, 0.25f, 0.75f, Float.NaN, Float.POSITIVE_INFINITY, 1f, 0f};
        try (Scope s = Scope.open()) {
            Tensor xh = Tensor.of(x, 7), th = Tensor.of(t, 7);
            Loss[] losses = {(a, b, r) -> NN.smoothL1Loss(a, b, r, 1.0), (a, b, r) -> NN.binaryCrossEntropyWithLogits(a, b, null, r)};
            for (int k = 0; k < losses.length; k++) {
                float[][] cpu = run(losses[k], Reduction.NONE, xh, th), gpu = run(losses[k], Reduction.NONE, xh.to(Device.CUDA), th.to(Device.CUDA));
                for (int i = 0; i < 3; i++) near(cpu[i], gpu[i], (k == 0 ? "smoothL1" : "bce") + " non-finite " + i);   // NaN and inf where the CPU has them
                assertTrue(Float.isNaN(gpu[0][0]), "a NaN input gives a NaN loss on CUDA");
            }
        }
    }

    @Test
    void posWeightOnAnotherDeviceIsRefused() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(2, 3).to(Device.CUDA)), y = Var.of(Tensor.zeros(2, 3).to(Device.CUDA));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.binaryCrossEntropyWithLogits(x, y, Tensor.ones(3), Reduction.MEAN));
            assertTrue(e.getMessage().startsWith("device mismatch: binaryCrossEntropyWithLogits got input on CUDA and posWeight on CPU"), e.getMessage());
            Var xh = Var.param(Tensor.zeros(2, 3)), yh = Var.of(Tensor.zeros(2, 3));
            Tensor pd = Tensor.ones(3).to(Device.CUDA);
            e = assertThrows(IllegalArgumentException.class, () -> NN.binaryCrossEntropyWithLogits(xh, yh, pd, Reduction.MEAN));
            assertTrue(e.getMessage().startsWith("device mismatch"), e.getMessage());
            // input and target on different devices: the ops' own device mismatch
            Var yh2 = Var.of(Tensor.zeros(2, 3));
            e = assertThrows(IllegalArgumentException.class, () -> NN.smoothL1Loss(x, yh2));
            assertTrue(e.getMessage().startsWith("device mismatch"), e.getMessage());
        }
    }
}
