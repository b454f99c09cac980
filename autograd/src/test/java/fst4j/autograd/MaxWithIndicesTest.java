package fst4j.autograd;

import fst4j.tensor.DType;
import fst4j.tensor.Memory;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/** Var.maxWithIndices (torch.max(x, dim, keepdim)): one two-output node, values differentiable, indices not. */
class MaxWithIndicesTest {

    @Test
    void valuesGradcheckOnEveryAxisWithAndWithoutKeptAxis() {
        try (Scope s = Scope.open()) {
            Tensor x = new Rng(5).normal(0, 1, 3, 4, 5).to(DType.F64);   // continuous values: no ties within eps
            for (int axis : new int[]{0, 1, 2, -1})
                for (boolean keep : new boolean[]{false, true}) {
                    GradCheck.Result r = GradCheck.checkMulti(in -> in[0].maxWithIndices(axis, keep), x);
                    assertTrue(r.passed(), "axis " + axis + " keep " + keep + ": " + r);
                }
        }
    }

    @Test
    void indicesAreANonDifferentiableOutputAndTheGradientGoesToTheFirstTie() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1, 3, 3, 0, /**/ 2, Float.NaN, 5, Float.NaN}, 2, 4));
            Var[] o = x.maxWithIndices(1, false);
            assertArrayEquals(new int[]{2}, o[0].shape());
            assertArrayEquals(new float[]{3, Float.NaN}, o[0].value().toFloatArray());
            assertArrayEquals(new float[]{1, 1}, o[1].value().toFloatArray(), "the first of tied maxima, the first NaN");
            assertTrue(o[0].requiresGrad());
            assertFalse(o[1].requiresGrad());
            assertTrue(o[1].isLeaf());
            o[0].backward(Tensor.of(new float[]{10, 20}, 2));
            assertArrayEquals(new float[]{0, 10, 0, 0, 0, 20, 0, 0}, x.grad().toFloatArray(), "to the selected element only");

            Var[] k = Var.param(Tensor.of(new float[]{1, 4, 2, 3}, 2, 2)).maxWithIndices(0, true);
            assertArrayEquals(new int[]{1, 2}, k[1].shape());
            assertArrayEquals(new float[]{1, 0}, k[1].value().toFloatArray());
        }
    }

    @Test
    void underNoGradNothingIsRecorded() {
        try (Scope s = Scope.open(); Grad.Restore ng = Grad.noGrad()) {
            Var[] o = Var.param(Tensor.of(new float[]{1, 3, 2}, 3)).maxWithIndices(0, false);
            assertFalse(o[0].requiresGrad());
            assertEquals(1, o[1].item());
        }
    }

    @Test
    void anAxisPastFloatIndicesIsRefused() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.zeros(1)).expand((1 << 24) + 1);   // a view: nothing allocated
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> x.maxWithIndices(0, false));
            assertTrue(e.getMessage().contains("16777217 elements"), e.getMessage());
        }
    }

    /**
     * Outside a Scope, closing both outputs (and the input) frees everything: without the kept axis the indices are a
     * reshape of the argmax tensor, which the node made and must close itself (it was left open: 4 bytes per index).
     */
    @Test
    void closingTheOutputsFreesEverythingWithoutAScope() {
        for (boolean keep : new boolean[]{false, true})
            for (boolean grad : new boolean[]{false, true}) {
                long before = Memory.bytesInUse();
                Tensor t = Tensor.of(new double[]{1, 5, 3, 2, 0, 7}, 2, 3);
                try (Var x = grad ? Var.param(t) : Var.of(t)) {
                    Var[] o = x.maxWithIndices(-1, keep);
                    assertArrayEquals(new float[]{1, 2}, o[1].value().toFloatArray());
                    if (grad) try (Var sum = o[0].sum()) { sum.backward(); }
                    o[0].close();
                    o[1].close();
                }
                assertEquals(before, Memory.bytesInUse(), "keepDim " + keep + ", requiring a gradient " + grad);
            }
    }
}
