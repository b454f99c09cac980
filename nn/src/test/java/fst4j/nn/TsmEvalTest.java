package fst4j.nn;

import fst4j.autograd.Grad;
import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.sparse.Transposable24;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * TSM's transposable mask is refreshed every N training steps: forwards that do not train W (eval under no-grad) must
 * neither count as steps nor rebuild the mask. They did: a refresh falling due in an evaluation changed the eval output
 * of the same input from one call to the next, and evaluating between steps moved the refresh schedule and so training
 * (found by a usability trial).
 */
class TsmEvalTest {
    private static float[] train(boolean evalBetween, float[][] evals) {
        Rng rng = new Rng(0);
        try (Scope s = Scope.open();
             Linear lin = new Linear(16, 8, false, Method.TSM.config(5), new Rng(1));
             SGD sgd = new SGD(lin.parameters(), 0.5, 0.9, 0, false)) {
            Tensor x = rng.normal(0, 1, 6, 16);
            int[] y = {0, 1, 2, 3, 4, 5};
            for (int step = 0; step < 23; step++) {
                lin.train();
                NN.crossEntropy(lin.forward(Var.of(x)), y, 0).backward();
                sgd.step();
                sgd.zeroGrad();
                if (evalBetween) {
                    lin.eval();
                    float[] first = null;
                    for (int k = 0; k < 7; k++)
                        try (var ng = Grad.noGrad()) {
                            float[] out = lin.forward(Var.of(x)).value().toFloatArray();
                            if (first == null) first = out;
                            else assertArrayEquals(first, out, "eval forward " + k + " after step " + step + " gave another output");
                        }
                    evals[step] = first;
                }
            }
            Transposable24 t = (Transposable24) lin.sparsity().w();
            assertEquals(23, t.steps(), "the mask counted training steps only");
            return lin.weight().value().toFloatArray();
        }
    }

    @Test
    void evaluationMovesNoRefreshAndGivesOneOutputPerWeight() {
        float[][] evals = new float[23][];
        float[] plain = train(false, null), withEvals = train(true, evals);
        assertArrayEquals(plain, withEvals, "training is the same with evaluations between its steps");
        // an eval output is the one the next training forward's mask gives: a step that changed W changes it
        assertFalse(java.util.Arrays.equals(evals[3], evals[4]));
    }
}
