package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Var.maxWithIndices against torch 1.13's torch.max(x, dim, keepdim): values, indices and the input gradient of
 * sum(values * r), on float32 with ties (the selected element alone gets the gradient) and a NaN.
 */
class MaxWithIndicesTorchTest {

    private static double[] d(float[] f) { double[] r = new double[f.length]; for (int i = 0; i < f.length; i++) r[i] = f[i]; return r; }

    @Test
    void agreesWithTorchMaxWithADim(@TempDir Path dir) throws Exception {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(21);
            float[] xs = rng.normal(0, 1, 3, 5, 4).toFloatArray();
            xs[7] = xs[3] = 9f;            // a tie along the last axis ([0, 0, 3] and [0, 1, 3]: along axis 1)
            xs[21] = Float.NaN;
            StringBuilder script = new StringBuilder(String.format("""
                    import torch
                    NaN = float("nan")
                    def out(key, t):
                        print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                    x0 = torch.tensor(%s, dtype=torch.float32).reshape(3, 5, 4)
                    """, TorchPeer.list(d(xs))));
            int[][] cases = {{1, 0}, {-1, 1}, {0, 0}};
            Tensor[] rs = new Tensor[cases.length];
            for (int c = 0; c < cases.length; c++) {
                int axis = cases[c][0];
                boolean keep = cases[c][1] == 1;
                Var x = Var.param(Tensor.of(xs, 3, 5, 4));
                Var[] o = x.maxWithIndices(axis, keep);
                rs[c] = rng.normal(0, 1, o[0].shape());
                o[0].mul(Var.of(rs[c])).sum().backward();
                script.append(String.format("""
                        x = x0.clone().requires_grad_()
                        v, i = torch.max(x, %d, keepdim=%s)
                        r = torch.tensor(%s, dtype=torch.float32).reshape(v.shape)
                        (v * r).sum().backward()
                        out("v%d", v); out("i%d", i); out("g%d", x.grad)
                        """, axis, keep ? "True" : "False", TorchPeer.list(d(rs[c].toFloatArray())), c, c, c));
                results[c] = new float[][]{o[0].value().toFloatArray(), o[1].value().toFloatArray(), x.grad().toFloatArray()};
            }
            Map<String, double[]> t = TorchPeer.run(dir, script.toString());
            for (int c = 0; c < rs.length; c++) {
                String[] keys = {"v" + c, "i" + c, "g" + c};
                for (int k = 0; k < 3; k++) {
                    double[] want = t.get(keys[k]);
                    assertNotNull(want, keys[k] + ": torch printed nothing");
                    float[] got = results[c][k];
                    assertEquals(want.length, got.length, keys[k]);
                    for (int i = 0; i < got.length; i++)
                        if (Double.isNaN(want[i])) assertTrue(Float.isNaN(got[i]), keys[k] + " [" + i + "]: NaN in torch, " + got[i] + " here");
                        else assertEquals(want[i], got[i], 1e-6 * (1 + Math.abs(want[i])), keys[k] + " [" + i + "]");
                }
            }
        }
    }

    private final float[][][] results = new float[3][][];
}
