package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * Var.sort / topk / kthvalue / median / argsort against torch 1.13: on distinct float32 values, the values, indices and
 * input gradient of sum(values * r) against torch.sort / topk / kthvalue / median; with ties, NaN, -0 and infinities,
 * the order against torch.sort(stable=True) (the order documented: torch's default sort and topk promise none among
 * ties), and median's NaN rule against torch.median.
 */
class SortTorchTest {

    private static double[] d(float[] f) { double[] r = new double[f.length]; for (int i = 0; i < f.length; i++) r[i] = f[i]; return r; }

    private static final String HEADER = """
            import torch
            NaN = float("nan")
            Infinity = float("inf")  # TorchPeer.list writes Java's spelling
            def out(key, t):
                print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
            """;

    private static void compare(Map<String, double[]> torch, String key, float[] got) {
        double[] want = torch.get(key);
        assertNotNull(want, key + ": torch printed nothing");
        assertEquals(want.length, got.length, key);
        for (int i = 0; i < got.length; i++)
            if (Double.isNaN(want[i])) assertTrue(Float.isNaN(got[i]), key + " [" + i + "]: NaN in torch, " + got[i] + " here");
            else assertEquals(want[i], got[i], 1e-6 * (1 + Math.abs(want[i])), key + " [" + i + "]");
    }

    @Test
    void distinctValuesAgreeWithTorch(@TempDir Path dir) throws Exception {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(33);
            float[] xs = rng.normal(0, 1, 3, 5, 4).toFloatArray();   // continuous: distinct
            StringBuilder script = new StringBuilder(HEADER).append(String.format(
                    "x0 = torch.tensor(%s, dtype=torch.float32).reshape(3, 5, 4)\n", TorchPeer.list(d(xs))));
            // {java call, torch call} on x (a fresh leaf); the torch side may see the transposed x0 through xt
            String[][] cases = {
                    {"sort 1 asc", "torch.sort(x, 1, descending=False)"},
                    {"sort -1 desc", "torch.sort(x, -1, descending=True)"},
                    {"sort -3 asc", "torch.sort(x, -3)"},
                    {"topk 2 1 largest", "torch.topk(x, 2, 1, largest=True)"},
                    {"topk 3 -1 smallest", "torch.topk(x, 3, -1, largest=False)"},
                    {"topk 4 -1 all", "torch.topk(x, 4, -1)"},
                    {"kth 2 1", "torch.kthvalue(x, 2, 1)"},
                    {"kth 3 0 keep", "torch.kthvalue(x, 3, 0, keepdim=True)"},
                    {"median -1", "torch.median(x, -1)"},
                    {"median 1 keep", "torch.median(x, 1, keepdim=True)"},
                    {"sort transposed", "torch.sort(x.transpose(0, 2), 1, descending=True)"},
            };
            List<float[][]> results = new ArrayList<>();
            for (int c = 0; c < cases.length; c++) {
                Var x = Var.param(Tensor.of(xs, 3, 5, 4));
                Var[] o = switch (c) {
                    case 0 -> x.sort(1, false);
                    case 1 -> x.sort(-1, true);
                    case 2 -> x.sort(-3, false);
                    case 3 -> x.topk(2, 1, true, true);
                    case 4 -> x.topk(3, -1, false, true);
                    case 5 -> x.topk(4, -1, true, true);
                    case 6 -> x.kthvalue(2, 1, false);
                    case 7 -> x.kthvalue(3, 0, true);
                    case 8 -> x.median(-1, false);
                    case 9 -> x.median(1, true);
                    default -> x.transpose(0, 2).sort(1, true);   // a non-contiguous input
                };
                Tensor r = rng.normal(0, 1, o[0].shape());
                o[0].mul(Var.of(r)).sum().backward();
                script.append(String.format("""
                        x = x0.clone().requires_grad_()
                        v, i = %s
                        r = torch.tensor(%s, dtype=torch.float32).reshape(v.shape)
                        (v * r).sum().backward()
                        out("v%d", v); out("i%d", i); out("g%d", x.grad)
                        """, cases[c][1], TorchPeer.list(d(r.toFloatArray())), c, c, c));
                results.add(new float[][]{o[0].value().toFloatArray(), o[1].value().toFloatArray(), x.grad().toFloatArray()});
            }
            Map<String, double[]> t = TorchPeer.run(dir, script.toString());
            for (int c = 0; c < cases.length; c++) {
                compare(t, "v" + c, results.get(c)[0]);
                compare(t, "i" + c, results.get(c)[1]);
                compare(t, "g" + c, results.get(c)[2]);
            }
        }
    }

    @Test
    void tiesNaNAndSignedZerosInTorchsStableOrder(@TempDir Path dir) throws Exception {
        try (Scope s = Scope.open()) {
            float nan = Float.NaN, inf = Float.POSITIVE_INFINITY;
            float[] xs = {3, nan, 1, 3, nan, -1, 1, inf, -inf, -0f, 0f, 1,
                          2, 2, 0f, -0f, 2, nan, -2, -2, 5, 5, nan, 2};
            StringBuilder script = new StringBuilder(HEADER).append(String.format(
                    "x = torch.tensor(%s, dtype=torch.float32).reshape(2, 12)\n", TorchPeer.list(d(xs))));
            Var x = Var.param(Tensor.of(xs, 2, 12));
            Var xt = Var.param(Tensor.of(xs, 2, 12).transpose(0, 1));   // [12, 2], sorted along axis 0: the same lines, strided
            List<float[]> got = new ArrayList<>();
            List<String> keys = new ArrayList<>();
            int c = 0;
            for (boolean desc : new boolean[]{false, true}) {
                String py = desc ? "True" : "False";
                Var[] o = x.sort(-1, desc);
                Var[] ot = xt.sort(0, desc);
                script.append(String.format("""
                        v, i = torch.sort(x, dim=-1, descending=%1$s, stable=True)
                        out("sv%2$d", v); out("si%2$d", i)
                        v, i = torch.sort(x.t(), dim=0, descending=%1$s, stable=True)
                        out("tv%2$d", v); out("ti%2$d", i)
                        out("a%2$d", torch.sort(x, dim=-1, descending=%1$s, stable=True)[1].float())
                        out("kv%2$d", torch.topk(x, 5, -1, largest=%1$s)[0])
                        out("ki%2$d", torch.sort(x, dim=-1, descending=%1$s, stable=True)[1][:, :5])
                        """, py, c));
                Var[] k = x.topk(5, -1, desc, true);
                int[] a = x.argsort(-1, desc);
                float[] af = new float[a.length];
                for (int i = 0; i < a.length; i++) af[i] = a[i];
                for (Object[] p : new Object[][]{{"sv", o[0]}, {"si", o[1]}, {"tv", ot[0]}, {"ti", ot[1]}, {"kv", k[0]}, {"ki", k[1]}}) {
                    keys.add(p[0] + "" + c);
                    got.add(((Var) p[1]).value().toFloatArray());
                }
                keys.add("a" + c);
                got.add(af);
                c++;
            }
            // median: the first NaN of a line holding one (both lines here), and of a line without (a lower median, a tie)
            float[] ys = {2, 1, 1, 2, 7, 0};
            script.append(String.format("""
                    v, i = torch.median(x, -1)
                    out("mv", v); out("mi", i)
                    y = torch.tensor(%s, dtype=torch.float32)
                    out("yv", torch.median(y, 0)[0]); out("kv", torch.kthvalue(x, 3, -1)[0])
                    """, TorchPeer.list(d(ys))));
            Var[] m = x.median(-1, false);
            keys.add("mv"); got.add(m[0].value().toFloatArray());
            keys.add("mi"); got.add(m[1].value().toFloatArray());
            keys.add("yv"); got.add(Var.of(Tensor.of(ys, 6)).median(0, false)[0].value().toFloatArray());
            keys.add("kv"); got.add(x.kthvalue(3, -1, false)[0].value().toFloatArray());
            Map<String, double[]> t = TorchPeer.run(dir, script.toString());
            for (int i = 0; i < keys.size(); i++) compare(t, keys.get(i), got.get(i));
        }
    }
}
