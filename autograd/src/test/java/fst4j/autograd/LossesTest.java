package fst4j.autograd;

import fst4j.autograd.NN.Reduction;
import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.function.DoubleBinaryOperator;

import static fst4j.autograd.OpsGradTest.rand;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The regression and binary losses and nll_loss of NN: gradchecked in float64 under every reduction (input and target),
 * their values and gradients against the formulas written out element by element (float32 and float64), and the bad
 * inputs each refuses. PyTorch's own values: nn's TorchFunctionalTest.
 */
class LossesTest {
    static void ok(GradCheck.Fn f, Tensor... in) {
        GradCheck.Result r = GradCheck.check(f, in);
        assertTrue(r.passed(), r.toString());
    }

    interface Loss2 { Var apply(Var x, Var y, Reduction r); }

    static final double BETA = 0.7;
    static final Tensor POS_WEIGHT = Tensor.of(new double[]{0.5, 1, 3}, 3);

    /** name, the loss, its element formula and d/dx of the element formula. */
    record Case(String name, Loss2 loss, DoubleBinaryOperator f, DoubleBinaryOperator dfdx) {}

    static double sigmoid(double v) { return 1 / (1 + Math.exp(-v)); }

    static final Case[] CASES = {
            new Case("mse", NN::mseLoss, (x, y) -> (x - y) * (x - y), (x, y) -> 2 * (x - y)),
            new Case("l1", NN::l1Loss, (x, y) -> Math.abs(x - y), (x, y) -> Math.signum(x - y)),
            new Case("smoothL1", (x, y, r) -> NN.smoothL1Loss(x, y, r, BETA),
                    (x, y) -> Math.abs(x - y) < BETA ? 0.5 * (x - y) * (x - y) / BETA : Math.abs(x - y) - 0.5 * BETA,
                    (x, y) -> Math.abs(x - y) < BETA ? (x - y) / BETA : Math.signum(x - y)),
            new Case("bceWithLogits", (x, y, r) -> NN.binaryCrossEntropyWithLogits(x, y, null, r),
                    (x, y) -> -(y * Math.log(sigmoid(x)) + (1 - y) * Math.log(1 - sigmoid(x))), (x, y) -> sigmoid(x) - y),
    };

    @Test
    void gradcheckEveryLossAndReductionInFloat64() {
        try (Scope s = Scope.open()) {
            for (Case c : CASES)
                for (Reduction r : Reduction.values()) {
                    Tensor x = rand(1, 4, 3), y = c.name.startsWith("bce") ? rand(2, 0.0, 1.0, 4, 3) : rand(2, 4, 3);
                    GradCheck.Result res = GradCheck.check(v -> c.loss.apply(v[0], v[1], r), x, y);
                    assertTrue(res.passed(), c.name + " " + r + ": " + res);
                }
            for (Reduction r : Reduction.values()) {
                ok(v -> NN.binaryCrossEntropyWithLogits(v[0], v[1], POS_WEIGHT, r), rand(3, 4, 3), rand(4, 0.0, 1.0, 4, 3));
                ok(v -> NN.nllLoss(v[0], new int[]{2, 0, -100, 1}, r, -100), rand(5, 4, 3));
                ok(v -> NN.nllLoss(NN.logSoftmax(v[0], 1), new int[]{2, 0, 2, 1}, r, 7), rand(6, 4, 3));
            }
            ok(v -> NN.smoothL1Loss(v[0], v[1], Reduction.SUM, 0), rand(7, 5), rand(8, 5));   // beta 0: L1
        }
    }

    /** Values and d/dx of MEAN (and the per-element values) against the element formula, in float32 and float64. */
    @Test
    void valuesAndGradientsMatchTheFormulas() {
        for (DType dt : new DType[]{DType.F32, DType.F64})
            for (Case c : CASES)
                try (Scope s = Scope.open()) {
                    Tensor xt = rand(11, 3, 5).to(dt), yt = (c.name.startsWith("bce") ? rand(12, 0.0, 1.0, 3, 5) : rand(12, 3, 5)).to(dt);
                    double[] x = xt.toDoubleArray(), y = yt.toDoubleArray();
                    double tol = dt == DType.F32 ? 2e-6 : 1e-12;
                    Var none = c.loss.apply(Var.of(xt), Var.of(yt), Reduction.NONE);
                    assertArrayEquals(new int[]{3, 5}, none.shape());
                    assertEquals(dt, none.value().dtype());
                    double[] got = none.value().toDoubleArray();
                    double sum = 0;
                    for (int i = 0; i < x.length; i++) {
                        double want = c.f.applyAsDouble(x[i], y[i]);
                        sum += want;
                        assertEquals(want, got[i], tol * Math.max(1, Math.abs(want)), c.name + " " + dt + " element " + i);
                    }
                    assertEquals(sum, c.loss.apply(Var.of(xt), Var.of(yt), Reduction.SUM).item(), tol * x.length * Math.max(1, Math.abs(sum)), c.name + " sum");
                    Var xp = Var.param(xt.copy());
                    Var mean = c.loss.apply(xp, Var.of(yt), Reduction.MEAN);
                    assertEquals(sum / x.length, mean.item(), tol * Math.max(1, Math.abs(sum)), c.name + " " + dt + " mean");
                    mean.backward();
                    double[] g = xp.grad().toDoubleArray();
                    for (int i = 0; i < x.length; i++)
                        assertEquals(c.dfdx.applyAsDouble(x[i], y[i]) / x.length, g[i], tol, c.name + " " + dt + " d/dx at " + i);
                }
    }

    @Test
    void targetsGetTheirGradients() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new double[]{1, -2, 0.3}, 3)), y = Var.param(Tensor.of(new double[]{0.5, 0.5, 0.3}, 3));
            NN.mseLoss(x, y, Reduction.SUM).backward();
            assertArrayEquals(new double[]{-1, 5, 0}, y.grad().toDoubleArray(), 1e-15);
            assertArrayEquals(new double[]{1, -5, 0}, x.grad().toDoubleArray(), 1e-15);
            x.zeroGrad(); y.zeroGrad();
            NN.l1Loss(x, y, Reduction.SUM).backward();
            assertArrayEquals(new double[]{1, -1, 0}, x.grad().toDoubleArray(), 0, "sign, 0 where equal (torch's sign(0))");
            assertArrayEquals(new double[]{-1, 1, 0}, y.grad().toDoubleArray(), 0);
            x.zeroGrad(); y.zeroGrad();
            NN.binaryCrossEntropyWithLogits(x, y, null, Reduction.SUM).backward();
            assertArrayEquals(new double[]{-1, 2, -0.3}, y.grad().toDoubleArray(), 1e-15, "d/dy = -x without pos_weight");
        }
    }

    /** Large logits: the stable form stays finite and exact where log(sigmoid) would give -inf. */
    @Test
    void bceWithLogitsIsStableForLargeLogits() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{1000, -1000, 100, -100, 30}, 5));
            Var y = Var.of(Tensor.of(new float[]{0, 1, 1, 0, 1}, 5));
            Var l = NN.binaryCrossEntropyWithLogits(x, y, null, Reduction.NONE);
            assertArrayEquals(new float[]{1000, 1000, 0, 0, (float) Math.log1p(Math.exp(-30))}, l.value().toFloatArray(), 1e-6f);
            l.sum().backward();
            assertArrayEquals(new float[]{1, -1, 0, 0, (float) -sigmoid(-30)}, x.grad().toFloatArray(), 1e-12f);
        }
    }

    /** pos_weight p: -[p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], broadcast along the last axis. */
    @Test
    void bceWithLogitsPosWeightMatchesItsFormula() {
        try (Scope s = Scope.open()) {
            Tensor xt = rand(21, 4, 3), yt = rand(22, 0.0, 1.0, 4, 3);
            double[] x = xt.toDoubleArray(), y = yt.toDoubleArray(), p = POS_WEIGHT.toDoubleArray();
            Var xp = Var.param(xt.copy()), yp = Var.param(yt.copy());
            Var l = NN.binaryCrossEntropyWithLogits(xp, yp, POS_WEIGHT, Reduction.NONE);
            double[] got = l.value().toDoubleArray();
            l.sum().backward();
            double[] gx = xp.grad().toDoubleArray(), gy = yp.grad().toDoubleArray();
            for (int i = 0; i < x.length; i++) {
                double pw = p[i % 3], sg = sigmoid(x[i]);
                assertEquals(-(pw * y[i] * Math.log(sg) + (1 - y[i]) * Math.log(1 - sg)), got[i], 1e-12, "loss at " + i);
                assertEquals(pw * y[i] * (sg - 1) + (1 - y[i]) * sg, gx[i], 1e-12, "d/dx at " + i);
                assertEquals(-pw * Math.log(sg) + Math.log(1 - sg), gy[i], 1e-12, "d/dy at " + i);
            }
        }
    }

    @Test
    void nllPicksTheLabelsLogProbabilityAndIgnoresIgnoreIndex() {
        for (DType dt : new DType[]{DType.F32, DType.F64})
            try (Scope s = Scope.open()) {
                Tensor lp = Tensor.of(new double[]{-1, -2, -3, Double.NEGATIVE_INFINITY, -0.5, Double.NaN, -7, -8, -9}, 3, 3).to(dt);
                int[] labels = {2, 1, -100};
                Var x = Var.param(lp.copy());
                Var none = NN.nllLoss(x, labels, Reduction.NONE, -100);
                assertArrayEquals(new double[]{3, 0.5, 0}, none.value().toDoubleArray(), 0, "-inf and NaN at other classes add nothing");
                assertEquals(3.5, NN.nllLoss(x, labels, Reduction.SUM, -100).item(), 0);
                Var mean = NN.nllLoss(x, labels);
                assertEquals(1.75, mean.item(), 0, "MEAN over the 2 labels not ignored");
                mean.backward();
                assertArrayEquals(new double[]{0, 0, -0.5, 0, -0.5, 0, 0, 0, 0}, x.grad().toDoubleArray(), 0);
                assertTrue(Double.isNaN(NN.nllLoss(Var.of(lp), new int[]{5, 5, 5}, Reduction.MEAN, 5).item()), "all ignored: NaN as torch");
            }
    }

    @Test
    void badInputIsRefusedWithTheProblemNamed() {
        try (Scope s = Scope.open()) {
            Var a = Var.of(Tensor.zeros(2, 3)), b = Var.of(Tensor.zeros(3, 2)), c = Var.of(Tensor.zeros(2, 3));
            for (Case k : CASES) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> k.loss.apply(a, b, Reduction.MEAN));
                assertTrue(e.getMessage().contains("shape mismatch") && e.getMessage().contains("[2, 3]") && e.getMessage().contains("[3, 2]"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> k.loss.apply(a, c, null));
                assertTrue(e.getMessage().contains("reduction is null"), e.getMessage());
            }
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NN.smoothL1Loss(a, c, Reduction.MEAN, -1));
            assertTrue(e.getMessage().contains("beta"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.binaryCrossEntropyWithLogits(a, c, Tensor.ones(2), Reduction.MEAN));
            assertTrue(e.getMessage().contains("posWeight [2] does not broadcast to input [2, 3]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.nllLoss(a, new int[]{0, 3}));
            assertTrue(e.getMessage().contains("label 3 at index 1 out of range [0, 3)"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.nllLoss(a, new int[]{0}));
            assertTrue(e.getMessage().contains("1 labels for log-probabilities [2, 3]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> NN.nllLoss(Var.of(Tensor.zeros(3)), new int[]{0}));
            assertTrue(e.getMessage().contains("wrong rank"), e.getMessage());
        }
    }
}
