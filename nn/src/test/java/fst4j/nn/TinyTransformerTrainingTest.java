package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Scope;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Models.tinyTransformer learns to reverse short random sequences (a task no position-wise model can do: each output
 * needs the token at the mirrored position, through attention) under DENSE and with 2:4 FFN Linear layers (FST2, SR_STE
 * with its decay, FST3_IR), AdamW, a few hundred steps on the CPU. FST3_IR on a Linear: the Linear flattens [B, T] into
 * the node's rows, so Eq. 7's fixed mask on X^T keeps the even rows of the flattened batch (even positions t when T is
 * even) and Information Restoration adds the next row's dY to each kept one: token t+1 stands in for a conv's
 * neighbouring position. It trains here; whether that is a sound choice for sequences is not what this test says.
 */
class TinyTransformerTrainingTest {
    static final int VOCAB = 8, LEN = 6, BATCH = 32, STEPS = 300;

    @ParameterizedTest
    @EnumSource(value = Method.class, names = {"DENSE", "FST2", "SR_STE", "FST3_IR"})
    void learnsToReverseSequences(Method method) {
        try (TinyTransformer model = Models.tinyTransformer(VOCAB, LEN, 32, 4, 64, 2, false, method, 5)) {
            assertEquals(method.config().name(), model.submodule("block0.linear1") instanceof Linear l ? l.sparsity().name() : null,
                    "the FFN layers take the method");
            assertEquals("dense", ((Linear) model.submodule("block0.self_attn.in_proj")).sparsity().name(), "attention projections stay dense");
            AdamW opt = new AdamW(model.parameters(), 3e-3, 0);
            SplittableRandom rnd = new SplittableRandom(9);
            double first = 0, last = 0;
            int correct = 0, total = 0;
            for (int step = 0; step < STEPS; step++) {
                int[] x = new int[BATCH * LEN], y = new int[BATCH * LEN];
                for (int b = 0; b < BATCH; b++) for (int t = 0; t < LEN; t++) x[b * LEN + t] = rnd.nextInt(VOCAB);
                for (int b = 0; b < BATCH; b++) for (int t = 0; t < LEN; t++) y[b * LEN + t] = x[b * LEN + LEN - 1 - t];
                try (Scope s = Scope.open()) {
                    Var logits = model.forward(x, BATCH, LEN).reshape(BATCH * LEN, VOCAB);
                    Var loss = NN.crossEntropy(logits, y, 0);
                    double l = loss.item();
                    if (step < 10) first += l / 10;
                    if (step >= STEPS - 10) {
                        last += l / 10;
                        float[] z = logits.value().toFloatArray();
                        for (int i = 0; i < y.length; i++) {
                            int arg = 0;
                            for (int c = 1; c < VOCAB; c++) if (z[i * VOCAB + c] > z[i * VOCAB + arg]) arg = c;
                            correct += arg == y[i] ? 1 : 0;
                            total++;
                        }
                    }
                    loss.backward();
                    if (method == Method.SR_STE) SrSte.stepWithDecay(model, opt, SrSte.DEFAULT_LAMBDA); else opt.step();
                    opt.zeroGrad();
                }
            }
            double acc = (double) correct / total;
            System.out.printf("tinyTransformer %s: loss %.3f -> %.3f, accuracy %.3f%n", method, first, last, acc);
            assertTrue(first > 1.9, "starts near ln 8 = 2.08: " + first);
            assertTrue(last < 0.5 * first, method + ": loss " + first + " -> " + last);
            assertTrue(acc > 0.6, method + ": accuracy " + acc + " over the last 10 batches (chance 0.125)");
        }
    }
}
