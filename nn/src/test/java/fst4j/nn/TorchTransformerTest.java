package fst4j.nn;

import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/**
 * float32 values and gradients against torch 1.13: F.embedding with repeated indices and padding_idx, scaled dot-product
 * attention (torch 1.13 has no public F.scaled_dot_product_attention: its formula written out in torch), and a
 * TransformerBlock against nn.TransformerEncoderLayer(norm_first=True, activation="gelu", batch_first=True) with copied
 * weights, causal and not.
 */
class TorchTransformerTest {
    private static final String PRINT = """
            def out(key, t):
                print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
            """;

    private static void close(String what, float[] want, double[] got, double tol) {
        assertNotNull(got, what + ": torch printed nothing");
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++)
            assertEquals(got[i], want[i], tol * (1 + Math.abs(got[i])), what + " [" + i + "]");
    }

    private static double[] d(float[] f) { double[] r = new double[f.length]; for (int i = 0; i < f.length; i++) r[i] = f[i]; return r; }

    @Test
    void embeddingAgreesWithTorch(@TempDir Path dir) throws Exception {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(7);
            Tensor w = rng.normal(0, 1, 6, 4), r = rng.normal(0, 1, 2, 4, 4);
            int[] idx = {1, 5, 1, 0, 2, 1, 5, 3};
            Var wv = Var.param(w.copy()), wp = Var.param(w.copy());
            Var y = NN.embedding(wv, idx, 2, 4);
            y.backward(r);
            Var yp = NN.embedding(wp, idx, new int[]{2, 4}, 5);
            yp.backward(r);
            String script = PRINT + String.format("""
                    import torch, torch.nn.functional as F
                    w = torch.tensor(%s, dtype=torch.float32).reshape(6, 4).requires_grad_()
                    wp = w.detach().clone().requires_grad_()
                    r = torch.tensor(%s, dtype=torch.float32).reshape(2, 4, 4)
                    idx = torch.tensor(%s).reshape(2, 4)
                    y = F.embedding(idx, w); (y * r).sum().backward()
                    yp = F.embedding(idx, wp, padding_idx=5); (yp * r).sum().backward()
                    out("y", y); out("gw", w.grad); out("yp", yp); out("gwp", wp.grad)
                    """, TorchPeer.list(d(w.toFloatArray())), TorchPeer.list(d(r.toFloatArray())), Arrays.toString(idx));
            Map<String, double[]> t = TorchPeer.run(dir, script);
            close("y", y.value().toFloatArray(), t.get("y"), 0);
            close("grad w (repeated indices add)", wv.grad().toFloatArray(), t.get("gw"), 1e-6);
            close("y with padding_idx", yp.value().toFloatArray(), t.get("yp"), 0);
            close("grad w with padding_idx", wp.grad().toFloatArray(), t.get("gwp"), 1e-6);
        }
    }

    @Test
    void attentionAgreesWithTorch(@TempDir Path dir) throws Exception {
        try (Scope s = Scope.open()) {
            Rng rng = new Rng(8);
            Tensor q = rng.normal(0, 1, 2, 3, 5, 4), k = rng.normal(0, 1, 2, 3, 5, 4), v = rng.normal(0, 1, 2, 3, 5, 6), r = rng.normal(0, 1, 2, 3, 5, 6);
            Tensor mask = rng.normal(0, 1, 5, 5);
            mask.set(Double.NEGATIVE_INFINITY, 1, 3);
            StringBuilder script = new StringBuilder(PRINT + String.format("""
                    import torch, math
                    def T(v, *s): return torch.tensor(v, dtype=torch.float32).reshape(*s)
                    Q, K, V, R, M = T(%s, 2, 3, 5, 4), T(%s, 2, 3, 5, 4), T(%s, 2, 3, 5, 6), T(%s, 2, 3, 5, 6), T(%s, 5, 5)
                    causal = torch.zeros(5, 5).masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf"))
                    for name, m in (("plain", None), ("causal", causal), ("mask", M)):
                        q, k, v = (t.clone().requires_grad_() for t in (Q, K, V))
                        sc = q @ k.transpose(-2, -1) / math.sqrt(4)
                        if m is not None: sc = sc + m
                        y = torch.softmax(sc, -1) @ v
                        (y * R).sum().backward()
                        out(name + ".y", y); out(name + ".q", q.grad); out(name + ".k", k.grad); out(name + ".v", v.grad)
                    """, TorchPeer.list(d(q.toFloatArray())), TorchPeer.list(d(k.toFloatArray())), TorchPeer.list(d(v.toFloatArray())),
                    TorchPeer.list(d(r.toFloatArray())), TorchPeer.list(d(mask.toFloatArray())).replace("-Infinity", "float('-inf')")));
            Map<String, double[]> t = TorchPeer.run(dir, script.toString());
            for (String name : new String[]{"plain", "causal", "mask"}) {
                Var qv = Var.param(q.copy()), kv = Var.param(k.copy()), vv = Var.param(v.copy());
                Var y = NN.scaledDotProductAttention(qv, kv, vv, name.equals("mask") ? mask : null, name.equals("causal"));
                y.backward(r);
                close(name + " y", y.value().toFloatArray(), t.get(name + ".y"), 2e-6);
                close(name + " dq", qv.grad().toFloatArray(), t.get(name + ".q"), 1e-5);
                close(name + " dk", kv.grad().toFloatArray(), t.get(name + ".k"), 1e-5);
                close(name + " dv", vv.grad().toFloatArray(), t.get(name + ".v"), 1e-5);
            }
        }
    }

    @Test
    void transformerBlockAgreesWithTorchEncoderLayer(@TempDir Path dir) throws Exception {
        for (boolean causal : new boolean[]{false, true}) {
            try (Scope s = Scope.open();
                 TransformerBlock block = new TransformerBlock(8, 2, 16, 0, causal, Method.DENSE, Method.DENSE, 3, new Rng(11))) {
                Rng rng = new Rng(12);
                // LayerNorm's ones / zeros would hide a swapped weight and bias: random affine parameters
                for (Map.Entry<String, Var> p : block.namedParameters().entrySet())
                    if (p.getKey().startsWith("norm")) try (Tensor n = rng.normal(0.5, 0.5, p.getValue().shape())) { p.getValue().value().copyFrom(n); }
                Tensor x = rng.normal(0, 1, 2, 5, 8), r = rng.normal(0, 1, 2, 5, 8);
                Var xv = Var.param(x.copy());
                Var y = block.train().forward(xv);
                y.backward(r);
                StringBuilder sd = new StringBuilder("{");
                for (Map.Entry<String, Var> p : block.namedParameters().entrySet())
                    sd.append('"').append(torchName(p.getKey())).append("\": T(").append(TorchPeer.list(d(p.getValue().value().toFloatArray())))
                            .append(", ").append(Arrays.toString(p.getValue().shape()).replace("[", "").replace("]", "")).append("),\n");
                String script = PRINT + String.format("""
                        import torch
                        def T(v, *s): return torch.tensor(v, dtype=torch.float32).reshape(*s)
                        layer = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
                        layer.load_state_dict(%s}, strict=True)
                        layer.train()
                        x = T(%s, 2, 5, 8).requires_grad_()
                        mask = torch.zeros(5, 5).masked_fill(torch.ones(5, 5, dtype=torch.bool).triu(1), float("-inf")) if %s else None
                        y = layer(x, src_mask=mask)
                        (y * T(%s, 2, 5, 8)).sum().backward()
                        out("y", y); out("x", x.grad)
                        for n, p in layer.named_parameters(): out(n, p.grad)
                        """, sd, TorchPeer.list(d(x.toFloatArray())), causal ? "True" : "False", TorchPeer.list(d(r.toFloatArray())));
                Map<String, double[]> t = TorchPeer.run(dir, script);
                String c = causal ? "causal " : "";
                close(c + "y", y.value().toFloatArray(), t.get("y"), 1e-5);
                close(c + "dx", xv.grad().toFloatArray(), t.get("x"), 2e-5);
                for (Map.Entry<String, Var> p : block.namedParameters().entrySet())
                    close(c + "grad " + p.getKey(), p.getValue().grad().toFloatArray(), t.get(torchName(p.getKey())), 2e-5);
            }
        }
    }

    /** Our dotted names as torch's state_dict keys: the packed projection is a child Linear here, two tensors there. */
    private static String torchName(String ours) {
        return ours.replace("self_attn.in_proj.weight", "self_attn.in_proj_weight").replace("self_attn.in_proj.bias", "self_attn.in_proj_bias");
    }
}
