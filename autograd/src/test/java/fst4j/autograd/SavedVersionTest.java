package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * A tensor a graph node saved for backward and then changed in place makes backward refuse, as PyTorch's version
 * counter does: before, backward used the new values and returned a wrong gradient with no error (x * x with x filled
 * with 10 after forward gave 20 where 2x was due).
 */
class SavedVersionTest {

    private static void assertRefused(Runnable backward, String what) {
        IllegalStateException e = assertThrows(IllegalStateException.class, backward::run, what);
        assertTrue(e.getMessage().contains("was changed in place after forward"), what + ": " + e.getMessage());
    }

    @Test
    void aSavedValueChangedInPlaceIsRefused() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var loss = x.mul(x).sum();
            x.value().fill(10);
            assertRefused(loss::backward, "fill");

            Var x2 = Var.param(Tensor.of(new float[]{1, 2, 3, 4}, 4));
            Var loss2 = x2.mul(x2).sum();
            try (Tensor part = x2.value().slice(0, 1, 3)) { part.copyFrom(Tensor.of(new float[]{7, 7}, 2)); }   // through a view
            assertRefused(loss2::backward, "copyFrom into a view");

            Var x4 = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var loss4 = x4.mul(x4).sum();
            x4.value().set(10, 0);
            assertRefused(loss4::backward, "set");
            Var x5 = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var loss5 = x5.mul(x5).sum();
            x5.value().setFlat(2, 10);
            assertRefused(loss5::backward, "setFlat");

            Var x3 = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var loss3 = x3.mul(x3).sum();
            x3.value().segment().setAtIndex(java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, 5f);
            x3.value().markModified();   // a write fst4j cannot see, declared
            assertRefused(loss3::backward, "a raw write marked as a change");
        }
    }

    @Test
    void unchangedValuesAndOutOfPlaceOpsPass() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var loss = x.mul(x).sum();
            try (Tensor y = x.value().add(1); Tensor z = x.value().mul(x.value())) { assertEquals(3, y.numel() + z.numel() - 3); }   // reads only
            loss.backward();
            assertArrayEquals(new float[]{2, 4, 6}, x.grad().toFloatArray());
        }
    }

    /** A graph kept for a second backward refuses it once a value it saved was stepped (here an in-place add, as SGD's). */
    @Test
    void aRetainedGraphRefusesASecondBackwardAfterAStep() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 2, 3}, 3));
            Var loss = x.mul(x).sum();
            loss.backward(Tensor.of(new float[]{1}), true);
            assertArrayEquals(new float[]{2, 4, 6}, x.grad().toFloatArray());
            loss.backward(Tensor.of(new float[]{1}), true);   // nothing changed: fine, and accumulates
            assertArrayEquals(new float[]{4, 8, 12}, x.grad().toFloatArray());
            x.value().addInPlace(Tensor.of(new float[]{1, 1, 1}, 3));
            assertRefused(() -> loss.backward(Tensor.of(new float[]{1}), true), "after a step");
        }
    }

    /** Eval-mode batch norm's backward reads the running statistics: a training forward moving them first is refused. */
    @Test
    void evalBatchNormRefusesRunningStatisticsMovedBeforeBackward() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(9);
            Tensor rm = Tensor.zeros(3), rv = Tensor.ones(3);
            Var x = Var.param(r.normal(0, 1, 2, 3, 4, 4)), g = Var.param(Tensor.ones(3)), b = Var.param(Tensor.zeros(3));
            Var y = NN.batchNorm2d(x, g, b, rm, rv, false, 0.1, 1e-5);
            NN.batchNorm2d(Var.of(r.normal(0, 1, 2, 3, 4, 4)), g, b, rm, rv, true, 0.1, 1e-5);   // a training step's forward
            assertRefused(() -> y.backward(r.normal(0, 1, 2, 3, 4, 4)), "running statistics");
            Var y2 = NN.batchNorm2d(x, g, b, rm, rv, false, 0.1, 1e-5);
            y2.backward(r.normal(0, 1, 2, 3, 4, 4));   // unchanged since: fine
        }
    }

    /** The Eq. 1-3 convolution saves its input: a batch overwritten before backward (a reused buffer) is refused. */
    @Test
    void aConvolutionsInputOverwrittenBeforeBackwardIsRefused() {
        try (Scope s = Scope.open()) {
            Rng r = new Rng(3);
            Var x = Var.of(r.normal(0, 1, 2, 4, 6, 6));
            Var w = Var.param(r.normal(0, 0.5, 8, 4, 3, 3));
            Var y = Layers.conv2d(new Gemm3(SparseConfig.Method.FST3_IR.config()), x, w, null, 1, 1);
            x.value().copyFrom(r.normal(0, 1, 2, 4, 6, 6));   // the next batch into the same buffer
            assertRefused(() -> y.backward(r.normal(0, 1, y.shape())), "conv input");
        }
    }
}
