package fst4j.nn;

import fst4j.autograd.SparseConfig;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.sparse.NM;
import fst4j.sparse.Sparsifier;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.Comparator;

import static org.junit.jupiter.api.Assertions.*;

/**
 * SR-STE's decay for N:M weights: grad += lambda * (W - S(W)) with S the N:M rule, against the formula in float64 with S
 * selected independently here (each group sorted by |w| descending, then index); through a model (the presets that prune
 * W at N:M decay exactly their weights, by addDecay and by stepWithDecay with SGD and AdamW alike).
 */
class SrSteNMTest {

    /** The kept flags of n:m along each row of w [rows, k], by sorting each group (a selection independent of Masks'). */
    static boolean[] keptBySort(float[] w, int rows, int k, int n, int m) {
        boolean[] keep = new boolean[w.length];
        for (int r = 0; r < rows; r++)
            for (int g0 = 0; g0 < k; g0 += m) {
                int cnt = Math.min(m, k - g0), base = r * k + g0;
                Integer[] idx = new Integer[cnt];
                for (int j = 0; j < cnt; j++) idx[j] = j;
                Arrays.sort(idx, Comparator.<Integer>comparingDouble(j -> -Math.abs((double) w[base + j])).thenComparingInt(j -> j));
                // Comparator on -|w| puts NaN last; NaN counts as the largest: move NaNs first, keeping index order
                Integer[] ordered = Arrays.stream(idx).sorted(Comparator.comparing((Integer j) -> !Float.isNaN(w[base + j]))).toArray(Integer[]::new);
                for (int j = 0; j < Math.min(n, cnt); j++) keep[base + ordered[j]] = true;
            }
        return keep;
    }

    static float[] weights(int n, long seed) {
        java.util.Random r = new java.util.Random(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = r.nextInt(4) == 0 ? r.nextInt(5) - 2 : (float) r.nextGaussian();   // ties and zeros
        if (n > 12) { v[3] = Float.NaN; v[5] = -0.0f; v[11] = Float.POSITIVE_INFINITY; }
        return v;
    }

    @Test
    void theDecayIsTheFormulaInFloat64() {
        int[][] shapes = {{1, 1}, {3, 7}, {10, 13}, {17, 36}, {6, 27}, {4, 33}};
        NM[] patterns = {new NM(1, 4), new NM(2, 8), new NM(4, 8), new NM(1, 16), new NM(3, 5), new NM(2, 4)};
        float lambda = 0.37f;
        long seed = 3;
        for (int[] sh : shapes)
            for (NM nm : patterns)
                try (Scope s = Scope.open()) {
                    int rows = sh[0], k = sh[1], n = rows * k;
                    float[] w = weights(n, seed++), g = new float[n];
                    java.util.Random gr = new java.util.Random(seed);
                    for (int i = 0; i < n; i++) g[i] = (float) gr.nextGaussian();
                    Tensor wt = Tensor.of(w, rows, k), gt = Tensor.of(g, rows, k);
                    SrSte.decayPrunedNM(wt.data(), gt.data(), rows, k, nm.n(), nm.m(), lambda);
                    float[] got = gt.toFloatArray();
                    boolean[] keep = keptBySort(w, rows, k, nm.n(), nm.m());
                    String what = nm + " " + Arrays.toString(sh);
                    int decayed = 0;
                    for (int i = 0; i < n; i++) {
                        if (keep[i]) {
                            assertEquals(Float.floatToRawIntBits(g[i]), Float.floatToRawIntBits(got[i]), what + ": a kept weight's gradient is untouched, " + i);
                            continue;
                        }
                        decayed++;
                        double want = (double) g[i] + (double) lambda * ((double) w[i] - 0.0);   // lambda (W - S(W)) at a pruned weight
                        // float32 rounds lambda * w and then the sum: at most half an ulp of each
                        double tol = Math.ulp((float) ((double) lambda * w[i])) / 2 + Math.ulp((float) want) / 2;
                        if (Double.isNaN(want) || Double.isInfinite(want)) assertEquals(want, (double) got[i], what + ": element " + i);
                        else assertEquals(want, got[i], tol, what + ": element " + i);
                    }
                    int groups = rows * ((k + nm.m() - 1) / nm.m());
                    assertTrue(decayed >= n - groups * nm.n(), what + ": every weight beyond N per group decays");
                }
    }

    @Test
    void aModelAtNMDecaysItsNMWeightsByEveryPath() {
        for (Method method : new Method[]{Method.SR_STE, Method.FST2, Method.FST3_IR})
            for (boolean adamw : new boolean[]{false, true})
                try (Scope s = Scope.open()) {
                    NM nm = new NM(1, 4);
                    Rng r = new Rng(9);
                    Sequential model = new Sequential(new Linear(13, 10, true, SparseConfig.of(method, nm), r), new Linear(10, 3, false, SparseConfig.of(method, nm), r));
                    Sequential copy = new Sequential(new Linear(13, 10, true, SparseConfig.of(method, nm), r), new Linear(10, 3, false, SparseConfig.of(method, nm), r));
                    copy.loadStateDict(model.stateDict());
                    Tensor x = r.normal(0, 1, 5, 13);
                    for (Sequential m : new Sequential[]{model, copy}) m.forward(Var.of(x)).sum().backward();
                    var lin = (Linear) model.children().get("0");
                    float[] w = lin.weight().value().toFloatArray(), g0 = lin.weight().grad().toFloatArray();
                    assertEquals(2, SrSte.addDecay(model, 0.5), "both weights decay, not the bias");
                    float[] g1 = lin.weight().grad().toFloatArray();
                    boolean[] keep = keptBySort(w, 10, 13, 1, 4);
                    for (int i = 0; i < w.length; i++)
                        assertEquals(keep[i] ? g0[i] : g0[i] + 0.5f * w[i], g1[i], method + " element " + i);
                    // stepWithDecay gives the decayed gradient to the optimizer's step: the same weights as addDecay then step
                    try (Optimizer a = adamw ? new AdamW(model.parameters(), 1e-2, 0.9, 0.999, 1e-8, 0, false) : new SGD(model.parameters(), 0.1, 0.9, 5e-4, false);
                         Optimizer b = adamw ? new AdamW(copy.parameters(), 1e-2, 0.9, 0.999, 1e-8, 0, false) : new SGD(copy.parameters(), 0.1, 0.9, 5e-4, false)) {
                        a.step();
                        assertEquals(2, SrSte.stepWithDecay(copy, b, 0.5));
                        model.stateDict().forEach((k, v) -> assertArrayEquals(v.toFloatArray(), copy.stateDict().get(k).toFloatArray(), method + " " + k));
                    }
                }
    }
}
