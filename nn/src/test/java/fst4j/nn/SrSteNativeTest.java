package fst4j.nn;

import fst4j.shim.Native;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import fst4j.autograd.Var;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The native SR-STE decay equals the Java loop (and so S(W) of Sparsifier.Magnitude24), ties and NaN included. */
class SrSteNativeTest {
    @Test
    void nativeEqualsJava() {
        int[][] shapes = {{1, 1}, {3, 7}, {17, 36}, {64, 577}, {5, 4}};
        try (Scope s = Scope.open()) {
            Rng r = new Rng(5);
            for (int[] sh : shapes) {
                Tensor w = r.normal(0, 1, sh);
                int n = (int) w.numel();
                for (int i = 0; i < n; i += 7) w.setFlat(i, w.getFlat(Math.max(0, i - 1)));   // ties
                if (n > 10) { w.setFlat(3, Float.NaN); w.setFlat(9, -0.0); w.setFlat(10, 0.0); }
                Tensor g1 = r.normal(0, 1, sh), g2 = g1.copy();
                SrSte.decayPruned(w.data(), g1.data(), sh[0], sh[1], 0.5f);
                Native.srsteDecay(w.data(), g2.data(), sh[0], sh[1], 0.5f, 2);
                assertArrayEquals(g1.toFloatArray(), g2.toFloatArray(), java.util.Arrays.toString(sh));
            }
        }
    }

    /**
     * SGD's step with the decay fused in (fst_sgd_srste: rows a multiple of 4, vector tails and thread chunks that end
     * inside a vector) gives the bits of the decay applied to the gradient and then the plain step, over several steps
     * and for every momentum mix; ties, -0.0 and a NaN weight included. Weights whose rows are not a multiple of 4, or
     * too small for the native step, get the decay on their gradient first, as before.
     */
    @ParameterizedTest
    @CsvSource({"0,0,false", "0.9,5e-4,false", "0.9,5e-4,true"})
    void fusedStepEqualsDecayThenStep(double momentum, double wd, boolean nesterov) {
        int[][] shapes = {{39, 76}, {64, 36}, {17, 30}, {3, 4}};
        try (Scope s = Scope.open()) {
            List<Var> a = new ArrayList<>(), b = new ArrayList<>();
            Rng r = new Rng(21);
            for (int[] sh : shapes) {
                Tensor w = r.normal(0, 1, sh);
                int n = (int) w.numel();
                for (int i = 5; i < n; i += 9) w.setFlat(i, -w.getFlat(i - 1));   // equal magnitudes: ties
                w.setFlat(2, -0.0);
                if (n > 100) w.setFlat(101, Float.NaN);
                a.add(Var.param(w.copy()));
                b.add(Var.param(w.copy()));
            }
            float lambda = 0.25f;
            try (SGD sa = new SGD(a, 0.05, momentum, wd, nesterov); SGD sb = new SGD(b, 0.05, momentum, wd, nesterov)) {
                for (int step = 0; step < 3; step++) {
                    Map<Var, Integer> rows = new IdentityHashMap<>();
                    for (int i = 0; i < shapes.length; i++) {
                        Tensor g = r.normal(0, 1, shapes[i]);
                        a.get(i).zeroGrad(); b.get(i).zeroGrad();
                        a.get(i).mul(Var.of(g)).sum().backward();
                        b.get(i).mul(Var.of(g)).sum().backward();
                        rows.put(b.get(i), shapes[i][1]);
                    }
                    float[] g0 = b.get(0).grad().toFloatArray(), g2 = b.get(2).grad().toFloatArray();
                    for (int i = 0; i < shapes.length; i++) SrSte.decay(a.get(i), shapes[i][1], lambda);
                    sa.step();
                    sb.step(rows, lambda);
                    for (int i = 0; i < shapes.length; i++) {
                        assertArrayEquals(a.get(i).value().toFloatArray(), b.get(i).value().toFloatArray(), "weight " + i + ", step " + step);
                        if (sa.momentumBuffer(i) != null)
                            assertArrayEquals(sa.momentumBuffer(i).toFloatArray(), sb.momentumBuffer(i).toFloatArray(), "buffer " + i);
                    }
                    assertArrayEquals(g0, b.get(0).grad().toFloatArray(), "a fused weight's gradient is left as it was");
                    assertFalse(java.util.Arrays.equals(g2, b.get(2).grad().toFloatArray()), "rows of 30: decay applied to the gradient");
                }
            }
        }
    }
}
