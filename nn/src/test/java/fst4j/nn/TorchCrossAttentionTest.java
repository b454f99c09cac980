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
 * float32 values and gradients against torch 1.13's nn.MultiheadAttention(batch_first=True) with copied weights:
 * cross-attention (L != S) packed and with kdim / vdim, key_padding_mask, boolean and additive attn_mask (2-D and 3-D),
 * need_weights averaged and per head; a query whose every key is masked (NaN as torch's); and TransformerDecoderBlock
 * against nn.TransformerDecoderLayer(norm_first=True, activation="gelu", batch_first=True, dropout=0).
 */
class TorchCrossAttentionTest {
    private static final String PRELUDE = """
            import torch
            def out(key, t):
                print(key, *[repr(float(v)) for v in t.detach().flatten().tolist()])
            def T(v, *s): return torch.tensor(v, dtype=torch.float32).reshape(*s)
            """;

    static void close(String what, float[] want, double[] got, double tol) {
        assertNotNull(got, what + ": torch printed nothing");
        assertEquals(want.length, got.length, what + ": length");
        for (int i = 0; i < want.length; i++) {
            if (Double.isNaN(got[i])) { assertTrue(Float.isNaN(want[i]), what + " [" + i + "]: torch NaN, ours " + want[i]); continue; }
            assertEquals(got[i], want[i], tol * (1 + Math.abs(got[i])), what + " [" + i + "]");
        }
    }

    static String lit(Tensor t) {
        float[] f = t.toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return "T(" + TorchPeer.list(d).replace("-Infinity", "float('-inf')") + ", " + Arrays.toString(t.shape()).replace("[", "").replace("]", "") + ")";
    }

    /** Random values for every parameter: torch's zero biases and unit LayerNorms would hide a swapped or dropped one. */
    static void randomize(Module m, Rng rng) {
        for (Var p : m.parameters()) try (Tensor n = rng.normal(0.1, 0.5, p.shape())) { p.value().copyFrom(n); }
    }

    /** A state dict literal in torch's names (prefix the module's), the separate biases joined as in_proj_bias. */
    static String stateDict(MultiheadAttention m, String prefix) {
        StringBuilder sd = new StringBuilder();
        if (m.inProj() != null) {
            sd.append('"').append(prefix).append("in_proj_weight\": ").append(lit(m.inProj().weight().value())).append(",\n");
            sd.append('"').append(prefix).append("in_proj_bias\": ").append(lit(m.inProj().namedParameters().get("bias").value())).append(",\n");
        } else {
            for (String n : new String[]{"q", "k", "v"})
                sd.append('"').append(prefix).append(n).append("_proj_weight\": ").append(lit(((Linear) m.submodule(n + "_proj")).weight().value())).append(",\n");
            sd.append('"').append(prefix).append("in_proj_bias\": torch.cat([");
            for (String n : new String[]{"q", "k", "v"}) sd.append(lit(m.submodule(n + "_proj").namedParameters().get("bias").value())).append(", ");
            sd.append("]),\n");
        }
        sd.append('"').append(prefix).append("out_proj.weight\": ").append(lit(m.outProj().weight().value())).append(",\n");
        sd.append('"').append(prefix).append("out_proj.bias\": ").append(lit(m.outProj().namedParameters().get("bias").value())).append(",\n");
        return sd.toString();
    }

    /** Our parameter gradients against torch's printed ones (keys "g." + torch's name; in_proj_bias split where separate). */
    static void compareGrads(String what, MultiheadAttention m, String prefix, Map<String, double[]> t, double tol) {
        if (m.inProj() != null) {
            close(what + " grad in_proj_weight", m.inProj().weight().grad().toFloatArray(), t.get("g." + prefix + "in_proj_weight"), tol);
            close(what + " grad in_proj_bias", m.inProj().namedParameters().get("bias").grad().toFloatArray(), t.get("g." + prefix + "in_proj_bias"), tol);
        } else {
            double[] bias = t.get("g." + prefix + "in_proj_bias");
            assertNotNull(bias, what + ": no in_proj_bias grad");
            int e = m.embed;
            String[] n = {"q", "k", "v"};
            for (int i = 0; i < 3; i++) {
                close(what + " grad " + n[i] + "_proj_weight", ((Linear) m.submodule(n[i] + "_proj")).weight().grad().toFloatArray(), t.get("g." + prefix + n[i] + "_proj_weight"), tol);
                close(what + " grad in_proj_bias (" + n[i] + ")", m.submodule(n[i] + "_proj").namedParameters().get("bias").grad().toFloatArray(),
                        Arrays.copyOfRange(bias, i * e, (i + 1) * e), tol);
            }
        }
        close(what + " grad out_proj.weight", m.outProj().weight().grad().toFloatArray(), t.get("g." + prefix + "out_proj.weight"), tol);
        close(what + " grad out_proj.bias", m.outProj().namedParameters().get("bias").grad().toFloatArray(), t.get("g." + prefix + "out_proj.bias"), tol);
    }

    record Case(String name, int kdim, int vdim, boolean sameKv, boolean kpm, String mask, boolean needWeights, boolean average) {}

    @Test
    void crossAttentionAgreesWithTorch(@TempDir Path dir) throws Exception {
        int b = 2, l = 3, s = 5, e = 8, h = 2;
        Case[] cases = {
                new Case("packed kpm bool2d avg", e, e, false, true, "bool2", true, true),
                new Case("kdim/vdim kpm float3d heads", 6, 4, false, true, "float3", true, false),
                new Case("kdim/vdim bool3d", 6, 4, false, false, "bool3", true, true),
                new Case("packed memory float2d no weights", e, e, true, false, "float2", false, true),
                new Case("packed kpm only", e, e, false, true, null, true, false),
        };
        for (Case c : cases) {
            try (Scope sc = Scope.open();
                 MultiheadAttention m = new MultiheadAttention(e, h, 0, true, c.kdim, c.vdim, Method.DENSE.config(),
                         c.kdim == e ? null : Method.DENSE.config(), c.kdim == e ? null : Method.DENSE.config(), Method.DENSE.config(), new Rng(5))) {
                Rng rng = new Rng(6);
                randomize(m, rng);
                Tensor query = rng.normal(0, 1, b, l, e), key = rng.normal(0, 1, b, s, c.kdim), value = c.sameKv ? key : rng.normal(0, 1, b, s, c.vdim);
                Tensor r = rng.normal(0, 1, b, l, e), rw = rng.normal(0, 1, c.average ? new int[]{b, l, s} : new int[]{b, h, l, s});
                // padding: the last key of batch 0 and the last two of batch 1; no query loses every key
                Tensor kpm = c.kpm ? Tensor.of(new float[]{0, 0, 0, 0, 1, 0, 0, 0, 1, 1}, b, s) : null;
                AttnMask am = null;
                if (c.mask != null) {
                    int[] shape = c.mask.endsWith("2") ? new int[]{l, s} : new int[]{b * h, l, s};
                    Tensor t;
                    if (c.mask.startsWith("bool")) {
                        t = Tensor.zeros(shape);
                        // key 1 hidden from query 0 and key 0 from query 2 (in every head, or in head 1 of batch 0 for 3-D)
                        if (shape.length == 2) { t.set(1, 0, 1); t.set(1, 2, 0); } else { t.set(1, 1, 0, 1); t.set(1, 1, 2, 0); t.set(1, 2, 1, 2); }
                        am = AttnMask.bool(t);
                    } else {
                        t = rng.normal(0, 1, shape);
                        if (shape.length == 2) t.set(Double.NEGATIVE_INFINITY, 1, 2); else t.set(Double.NEGATIVE_INFINITY, 3, 1, 0);
                        am = AttnMask.additive(t);
                    }
                }
                Var qv = Var.param(query.copy()), kv = Var.param(key.copy()), vv = c.sameKv ? kv : Var.param(value.copy());
                NN.Attended a = m.train().forward(qv, kv, vv, kpm, c.needWeights, am, c.average);
                assertArrayEquals(new int[]{b, l, e}, a.output().shape());
                Var loss = a.output().mul(Var.of(r)).sum();
                if (c.needWeights) {
                    assertArrayEquals(rw.shape(), a.weights().shape(), c.name + " weights' shape");
                    loss = loss.add(a.weights().mul(Var.of(rw)).sum());
                } else {
                    assertNull(a.weights());
                }
                loss.backward();
                String script = PRELUDE + String.format("""
                        m = torch.nn.MultiheadAttention(%d, %d, dropout=0.0, bias=True, kdim=%d, vdim=%d, batch_first=True)
                        m.load_state_dict({%s}, strict=True)
                        m.train()
                        q = %s.requires_grad_(); k = %s.requires_grad_()
                        v = k if %s else %s.requires_grad_()
                        kpm = %s
                        am = %s
                        y, w = m(q, k, v, key_padding_mask=kpm, need_weights=%s, attn_mask=am, average_attn_weights=%s)
                        loss = (y * %s).sum()
                        if w is not None: loss = loss + (w * %s).sum()
                        loss.backward()
                        out("y", y); out("dq", q.grad); out("dk", k.grad); out("dv", v.grad)
                        if w is not None: out("w", w)
                        for n, p in m.named_parameters(): out("g." + n, p.grad)
                        """, e, h, c.kdim, c.vdim, stateDict(m, ""), lit(query), lit(key), c.sameKv ? "True" : "False", lit(value),
                        kpm == null ? "None" : lit(kpm) + " > 0.5",
                        am == null ? "None" : am.bool() ? lit(am.values()) + " > 0.5" : lit(am.values()),
                        c.needWeights ? "True" : "False", c.average ? "True" : "False", lit(r), lit(rw));
                Map<String, double[]> t = TorchPeer.run(dir, script);
                close(c.name + " y", a.output().value().toFloatArray(), t.get("y"), 1e-5);
                if (c.needWeights) close(c.name + " weights", a.weights().value().toFloatArray(), t.get("w"), 1e-5);
                close(c.name + " dquery", qv.grad().toFloatArray(), t.get("dq"), 2e-5);
                close(c.name + " dkey", kv.grad().toFloatArray(), t.get("dk"), 2e-5);
                if (!c.sameKv) close(c.name + " dvalue", vv.grad().toFloatArray(), t.get("dv"), 2e-5);
                compareGrads(c.name, m, "", t, 2e-5);
            }
        }
    }

    /**
     * A query whose every key is masked: torch 1.13's MultiheadAttention (the path with autograd) takes the softmax of a
     * row of -inf, which is NaN, and NaN flows into that query's output row and weights; other rows are untouched.
     */
    @Test
    void fullyMaskedRowIsNaNAsTorch(@TempDir Path dir) throws Exception {
        int b = 2, l = 2, s = 3, e = 4, h = 2;
        try (Scope sc = Scope.open(); MultiheadAttention m = new MultiheadAttention(e, h, 0, true, Method.DENSE.config(), Method.DENSE.config(), new Rng(7))) {
            Rng rng = new Rng(8);
            randomize(m, rng);
            Tensor query = rng.normal(0, 1, b, l, e), mem = rng.normal(0, 1, b, s, e);
            Tensor kpm = Tensor.of(new float[]{0, 0, 1, 0, 0, 0}, b, s);
            Tensor am = Tensor.zeros(l, s);
            am.set(1, 1, 0); am.set(1, 1, 1);   // query 1 sees only key 2, which batch 0 pads: query 1 of batch 0 sees nothing
            NN.Attended a = m.forward(Var.of(query), Var.of(mem), Var.of(mem), kpm, true, AttnMask.bool(am), false);
            float[] y = a.output().value().toFloatArray();
            for (int i = 0; i < y.length; i++) {
                boolean dead = i / (l * e) == 0 && (i / e) % l == 1;
                assertEquals(dead, Float.isNaN(y[i]), "output element " + i + (dead ? " should be NaN" : " should be finite"));
            }
            String script = PRELUDE + String.format("""
                    m = torch.nn.MultiheadAttention(%d, %d, dropout=0.0, batch_first=True)
                    m.load_state_dict({%s}, strict=True)
                    mem = %s
                    y, w = m(%s, mem, mem, key_padding_mask=%s > 0.5, attn_mask=%s > 0.5, average_attn_weights=False)
                    out("y", y); out("w", w)
                    """, e, h, stateDict(m, ""), lit(mem), lit(query), lit(kpm), lit(am));
            Map<String, double[]> t = TorchPeer.run(dir, script);
            close("y with a fully masked query", y, t.get("y"), 1e-5);
            close("weights with a fully masked query", a.weights().value().toFloatArray(), t.get("w"), 1e-5);
        }
    }

    @Test
    void decoderBlockAgreesWithTorchDecoderLayer(@TempDir Path dir) throws Exception {
        int b = 2, tl = 4, sl = 5, d = 8, h = 2, ff = 16;
        for (boolean masks : new boolean[]{false, true}) {
            try (Scope sc = Scope.open(); TransformerDecoderBlock block = new TransformerDecoderBlock(d, h, ff, 0, Method.DENSE, Method.DENSE, 3, new Rng(11))) {
                Rng rng = new Rng(12);
                randomize(block, rng);
                Tensor x = rng.normal(0, 1, b, tl, d), mem = rng.normal(0, 1, b, sl, d), r = rng.normal(0, 1, b, tl, d);
                Tensor tgtKpm = masks ? Tensor.of(new float[]{0, 0, 0, 1, 0, 0, 0, 0}, b, tl) : null;
                Tensor memKpm = masks ? Tensor.of(new float[]{0, 0, 0, 1, 1, 0, 0, 0, 0, 1}, b, sl) : null;
                AttnMask memMask = null;
                if (masks) { Tensor mm = rng.normal(0, 1, tl, sl); mm.set(Double.NEGATIVE_INFINITY, 2, 0); memMask = AttnMask.additive(mm); }
                Var xv = Var.param(x.copy()), mv = Var.param(mem.copy());
                Var y = block.train().forward(xv, mv, tgtKpm, memMask, memKpm);
                y.backward(r);
                StringBuilder sd = new StringBuilder(stateDict(block.selfAttn(), "self_attn.")).append(stateDict(block.crossAttn(), "multihead_attn."));
                for (Map.Entry<String, Var> p : block.namedParameters().entrySet())
                    if (!p.getKey().contains("attn.")) sd.append('"').append(p.getKey()).append("\": ").append(lit(p.getValue().value())).append(",\n");
                String script = PRELUDE + String.format("""
                        layer = torch.nn.TransformerDecoderLayer(%d, %d, %d, dropout=0.0, activation="gelu", batch_first=True, norm_first=True)
                        layer.load_state_dict({%s}, strict=True)
                        layer.train()
                        x = %s.requires_grad_(); mem = %s.requires_grad_()
                        causal = torch.zeros(%d, %d).masked_fill(torch.ones(%d, %d, dtype=torch.bool).triu(1), float("-inf"))
                        masks = %s
                        y = layer(x, mem, tgt_mask=causal, memory_mask=%s if masks else None,
                                  tgt_key_padding_mask=%s if masks else None, memory_key_padding_mask=%s if masks else None)
                        (y * %s).sum().backward()
                        out("y", y); out("dx", x.grad); out("dmem", mem.grad)
                        for n, p in layer.named_parameters(): out("g." + n, p.grad)
                        """, d, h, ff, sd, lit(x), lit(mem), tl, tl, tl, tl, masks ? "True" : "False",
                        masks ? lit(memMask.values()) : "None", masks ? lit(tgtKpm) + " > 0.5" : "None", masks ? lit(memKpm) + " > 0.5" : "None", lit(r));
                Map<String, double[]> t = TorchPeer.run(dir, script);
                String c = masks ? "masked " : "";
                close(c + "y", y.value().toFloatArray(), t.get("y"), 1e-5);
                close(c + "dtgt", xv.grad().toFloatArray(), t.get("dx"), 2e-5);
                close(c + "dmemory", mv.grad().toFloatArray(), t.get("dmem"), 2e-5);
                compareGrads(c + "self_attn", block.selfAttn(), "self_attn.", t, 2e-5);
                compareGrads(c + "multihead_attn", block.crossAttn(), "multihead_attn.", t, 2e-5);
                for (Map.Entry<String, Var> p : block.namedParameters().entrySet())
                    if (!p.getKey().contains("attn.")) close(c + "grad " + p.getKey(), p.getValue().grad().toFloatArray(), t.get("g." + p.getKey()), 2e-5);
            }
        }
    }
}
