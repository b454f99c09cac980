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
 * The losses on CUDA tensors: mseLoss, l1Loss and nllLoss run there (named ops) with the CPU's values and gradients, on
 * CUDA; smoothL1Loss and binaryCrossEntropyWithLogits are refused as not supported on CUDA yet. Against the device or the
 * host emulator (skipped with the reason otherwise).
 */
class CudaLossesTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    interface Loss { Var apply(Var x, Var y, Reduction r); }

    static void near(float[] want, float[] got, String what) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-6f * Math.max(1, Math.abs(want[i])), what + " at " + i);
    }

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

    @Test
    void smoothL1AndBceWithLogitsAreRefusedOnCuda() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(2, 3).to(Device.CUDA)), y = Var.of(Tensor.zeros(2, 3).to(Device.CUDA));
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> NN.smoothL1Loss(x, y));
            assertTrue(e.getMessage().contains("smoothL1Loss is not supported on CUDA yet"), e.getMessage());
            e = assertThrows(UnsupportedOperationException.class, () -> NN.binaryCrossEntropyWithLogits(x, y));
            assertTrue(e.getMessage().contains("binaryCrossEntropyWithLogits is not supported on CUDA yet"), e.getMessage());
        }
    }
}
