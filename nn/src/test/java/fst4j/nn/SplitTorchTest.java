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

/** Var.split against torch 1.13's torch.split(x, [2, 3, 1], dim): the parts, and the gradient with the middle part unused. */
class SplitTorchTest {

    private static double[] d(float[] f) { double[] r = new double[f.length]; for (int i = 0; i < f.length; i++) r[i] = f[i]; return r; }

    @Test
    void agreesWithTorchSplit(@TempDir Path dir) throws Exception {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(8);
            Tensor x0 = rng.normal(0, 1, 2, 6, 3), r0 = rng.normal(0, 1, 2, 2, 3), r2 = rng.normal(0, 1, 2, 1, 3);
            Var x = Var.param(x0.copy());
            Var[] p = x.split(new int[]{2, 3, 1}, -2);
            p[0].mul(Var.of(r0)).sum().add(p[2].mul(Var.of(r2)).sum()).backward();
            String script = String.format("""
                    import torch
                    def out(key, t):
                        print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
                    x = torch.tensor(%s, dtype=torch.float32).reshape(2, 6, 3).requires_grad_()
                    r0 = torch.tensor(%s, dtype=torch.float32).reshape(2, 2, 3)
                    r2 = torch.tensor(%s, dtype=torch.float32).reshape(2, 1, 3)
                    p = torch.split(x, [2, 3, 1], -2)
                    ((p[0] * r0).sum() + (p[2] * r2).sum()).backward()
                    out("p0", p[0]); out("p1", p[1]); out("p2", p[2]); out("g", x.grad)
                    """, TorchPeer.list(d(x0.toFloatArray())), TorchPeer.list(d(r0.toFloatArray())), TorchPeer.list(d(r2.toFloatArray())));
            Map<String, double[]> t = TorchPeer.run(dir, script);
            float[][] got = {p[0].value().toFloatArray(), p[1].value().toFloatArray(), p[2].value().toFloatArray(), x.grad().toFloatArray()};
            String[] keys = {"p0", "p1", "p2", "g"};
            for (int k = 0; k < keys.length; k++) {
                double[] want = t.get(keys[k]);
                assertNotNull(want, keys[k] + ": torch printed nothing");
                assertArrayEquals(want, d(got[k]), 1e-6, keys[k]);
            }
        }
    }
}
