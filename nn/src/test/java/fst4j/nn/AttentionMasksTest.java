package fst4j.nn;

import fst4j.autograd.Gemm3;
import fst4j.autograd.GradCheck;
import fst4j.autograd.Layers;
import fst4j.autograd.NN;
import fst4j.autograd.SparseConfig.Method;
import fst4j.autograd.Var;
import fst4j.tensor.DType;
import fst4j.tensor.Rng;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

/**
 * MultiheadAttention's cross-attention and masks without torch: a float64 gradcheck through the projections, the
 * combined masks and the returned weights; the refusals of bad masks by name; the causal mask built once per geometry;
 * the self-attention call unchanged bit for bit (against the functional composition it replaced).
 */
class AttentionMasksTest {
    private static MultiheadAttention mha(int e, int h, int kdim, int vdim) {
        boolean packed = kdim == e && vdim == e;
        return new MultiheadAttention(e, h, 0, true, kdim, vdim, Method.DENSE.config(), packed ? null : Method.DENSE.config(),
                packed ? null : Method.DENSE.config(), Method.DENSE.config(), new Rng(1));
    }

    /**
     * float64: query, key, value and every projection weight and bias are inputs; the masks (key padding, a boolean 3-D
     * attn_mask; an additive 2-D one with -inf) are built by the module's own combination; the checked output is the
     * attention output and the weights (per head, then averaged) side by side, so both paths carry gradient.
     */
    @Test
    void gradcheckThroughCrossAttentionWithMasks() {
        int b = 2, l = 3, s = 4, e = 4, h = 2, kd = 3, vd = 5;
        try (Scope sc = Scope.open(); MultiheadAttention m = mha(e, h, kd, vd)) {
            Rng rng = new Rng(2);
            Tensor kpm = Tensor.of(new float[]{0, 0, 0, 1, 1, 0, 0, 0}, b, s);
            Tensor bool3 = Tensor.zeros(b * h, l, s);
            bool3.set(1, 0, 0, 1); bool3.set(1, 3, 2, 2); bool3.set(1, 1, 1, 0);
            Tensor add2 = rng.normal(DType.F64, 0, 1, l, s);
            add2.set(Double.NEGATIVE_INFINITY, 1, 2);
            Gemm3 dense = new Gemm3(Method.DENSE.config());
            for (AttnMask am : new AttnMask[]{AttnMask.bool(bool3), AttnMask.additive(add2)}) {
                for (boolean average : new boolean[]{true, false}) {
                    Tensor mask = AttnMasks.combine(m, b, l, s, kpm, am, false, Tensor.zeros(DType.F64, 1));
                    GradCheck.Result r = GradCheck.check(v -> {
                                Var q = Layers.linear(dense, v[0], v[3], v[4]), k = Layers.linear(dense, v[1], v[5], v[6]), val = Layers.linear(dense, v[2], v[7], v[8]);
                                NN.Attended a = MultiheadAttention.core(q, k, val, h, mask, 0, null, true, average);
                                Var y = Layers.linear(dense, a.output(), v[9], v[10]);
                                return Var.cat(0, y.reshape(b * l * e), a.weights().reshape((int) a.weights().value().numel()));
                            },
                            rng.normal(DType.F64, 0, 1, b, l, e), rng.normal(DType.F64, 0, 1, b, s, kd), rng.normal(DType.F64, 0, 1, b, s, vd),
                            rng.normal(DType.F64, 0, 0.5, e, e), rng.normal(DType.F64, 0, 0.5, e), rng.normal(DType.F64, 0, 0.5, e, kd), rng.normal(DType.F64, 0, 0.5, e),
                            rng.normal(DType.F64, 0, 0.5, e, vd), rng.normal(DType.F64, 0, 0.5, e), rng.normal(DType.F64, 0, 0.5, e, e), rng.normal(DType.F64, 0, 0.5, e));
                    assertTrue(r.passed(), (am.bool() ? "boolean" : "additive") + " mask, average " + average + ": " + r);
                }
            }
        }
    }

    @Test
    void badMasksAreRefusedByName() {
        int b = 2, l = 3, s = 4, e = 4, h = 2;
        try (Scope sc = Scope.open(); MultiheadAttention m = mha(e, h, e, e)) {
            Var q = Var.of(Tensor.zeros(b, l, e)), kv = Var.of(Tensor.zeros(b, s, e));
            String msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, Tensor.zeros(b, l), false, null, true)).getMessage();
            assertTrue(msg.contains("key_padding_mask is [2, 3], but should be [2, 4]"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, Tensor.full(0.5, b, s), false, null, true)).getMessage();
            assertTrue(msg.contains("key_padding_mask [2, 4] must be boolean"), msg);
            Tensor nan = Tensor.zeros(b, s);
            nan.set(Double.NaN, 1, 1);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, nan, false, null, true)).getMessage();
            assertTrue(msg.contains("key_padding_mask [2, 4] must be boolean"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, null, false, AttnMask.bool(Tensor.full(2, l, s)), true)).getMessage();
            assertTrue(msg.contains("attn_mask [3, 4] must be boolean"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, null, false, AttnMask.bool(Tensor.zeros(s, l)), true)).getMessage();
            assertTrue(msg.contains("the 2D attn_mask is [4, 3], but should be [3, 4]"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, null, false, AttnMask.additive(Tensor.zeros(b, l, s)), true)).getMessage();
            assertTrue(msg.contains("the 3D attn_mask is [2, 3, 4], but should be [4, 3, 4]"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, null, false, AttnMask.additive(Tensor.zeros(1, b * h, l, s)), true)).getMessage();
            assertTrue(msg.contains("wrong rank: attn_mask [1, 4, 3, 4]"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, null, false, AttnMask.additive(Tensor.zeros(DType.F64, l, s)), true)).getMessage();
            assertTrue(msg.contains("dtype mismatch: the additive attn_mask is F64"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, null, false, AttnMask.bool(Tensor.zeros(l, s)), true, true)).getMessage();
            assertTrue(msg.contains("not both"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, Var.of(Tensor.zeros(b, s, 3)), kv, null, false, null, true)).getMessage();
            assertTrue(msg.contains("shape mismatch") && msg.contains("key [B, S, 4]"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, Var.of(Tensor.zeros(b, s + 1, e)), null, false, null, true)).getMessage();
            assertTrue(msg.contains("shape mismatch"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> mha(e, h, 3, 3).forward(q)).getMessage();
            assertTrue(msg.contains("kdim == vdim == embed"), msg);
            msg = assertThrows(IllegalArgumentException.class, () -> new MultiheadAttention(e, h, 0, true, e, e, Method.DENSE.config(),
                    Method.DENSE.config(), null, Method.DENSE.config(), new Rng(1))).getMessage();
            assertTrue(msg.contains("kCfg and vCfg must be null"), msg);
            try (TransformerDecoderBlock d = new TransformerDecoderBlock(e, h, 8, 0, Method.DENSE, Method.DENSE, 1, new Rng(1))) {
                msg = assertThrows(UnsupportedOperationException.class, () -> d.forward(q)).getMessage();
                assertTrue(msg.contains("needs a memory"), msg);
            }
        }
    }

    /**
     * Outside any Scope, a forward refused for its key_padding_mask (wrong shape, a non-boolean value) leaves no memory
     * behind: neither the boolean attn_mask's additive form nor an alias of the cached causal mask (which would keep
     * that mask's memory past the module's close). Memory.bytesInUse is back where it was once the module is closed.
     */
    @Test
    void refusedKeyPaddingMaskLeavesNoMemory() {
        int b = 2, l = 3, s = 5, e = 4;
        long start = fst4j.tensor.Memory.bytesInUse();
        try (Tensor q0 = Tensor.zeros(b, l, e); Tensor kv0 = Tensor.zeros(b, s, e); Tensor bool = Tensor.zeros(l, s);
             Tensor shortPad = Tensor.zeros(b, s - 1); Tensor halfPad = Tensor.full(0.5, b, s); Tensor selfPad = Tensor.full(0.5, b, l)) {
            MultiheadAttention m = mha(e, 2, e, e);
            Var q = Var.of(q0), kv = Var.of(kv0);
            try (Scope step = Scope.open()) { m.forward(q, q, q, null, false, null, true, true); }   // builds and caches the causal mask
            long before = fst4j.tensor.Memory.bytesInUse();
            for (Tensor pad : new Tensor[]{shortPad, halfPad}) {
                String msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, kv, kv, pad, false, AttnMask.bool(bool), true)).getMessage();
                assertTrue(msg.contains("key_padding_mask"), msg);
                assertEquals(before, fst4j.tensor.Memory.bytesInUse(), "boolean attn_mask, refused key_padding_mask " + msg);
            }
            for (Tensor pad : new Tensor[]{shortPad, selfPad}) {
                String msg = assertThrows(IllegalArgumentException.class, () -> m.forward(q, q, q, pad, false, null, true, true)).getMessage();
                assertTrue(msg.contains("key_padding_mask"), msg);
            }
            m.close();
        }
        assertEquals(start, fst4j.tensor.Memory.bytesInUse(), "the causal mask freed on close, with no alias left holding it");
    }

    @Test
    void causalMaskBuiltOncePerGeometry() {
        try (Scope sc = Scope.open(); MultiheadAttention m = mha(4, 2, 4, 4)) {
            Rng rng = new Rng(3);
            for (int i = 0; i < 3; i++) m.forward(Var.of(rng.normal(0, 1, 2, 5, 4)), null, true);
            assertEquals(1, m.causalBuilds(), "one build for three forwards at T = 5");
            m.forward(Var.of(rng.normal(0, 1, 2, 3, 4)), null, true);
            assertEquals(2, m.causalBuilds(), "a new length builds anew");
            Var q = Var.of(rng.normal(0, 1, 2, 3, 4));
            m.forward(q, q, q, null, false, null, true, true);
            m.forward(q, q, q, Tensor.zeros(2, 3), false, null, true, true);
            assertEquals(2, m.causalBuilds(), "the torch-style call with causal reuses it too");
        }
        try (Scope sc = Scope.open(); TinyTransformer t = Models.tinyTransformer(6, 5, 8, 2, 8, 2, true, Method.DENSE, 1)) {
            for (int i = 0; i < 3; i++) t.forward(new int[]{0, 1, 2, 3, 4}, 1, 5);
            for (int i = 0; i < 2; i++)
                assertEquals(1, ((TransformerBlock) t.submodule("block" + i)).selfAttn().causalBuilds(), "block" + i + ": once over three steps");
        }
    }

    /**
     * The cache outlives the step scopes it is used in, as a training loop runs them: built once over three steps each in
     * its own Scope (a mask owned by the first step's scope would be closed with it and rebuilt every step), the same
     * output every step, and nothing left in use once the module is closed.
     */
    @Test
    void causalMaskSurvivesStepScopes() {
        long start = fst4j.tensor.Memory.bytesInUse();
        try (Tensor x = new Rng(3).normal(0, 1, 2, 5, 4)) {
            MultiheadAttention m = mha(4, 2, 4, 4);
            float[] first = null;
            for (int step = 0; step < 3; step++)
                try (Scope sc = Scope.open()) {
                    float[] y = m.forward(Var.of(x), null, true).value().toFloatArray();
                    if (first == null) first = y;
                    else assertArrayEquals(first, y, "step " + step);
                }
            assertEquals(1, m.causalBuilds(), "one build over three step scopes");
            m.close();
        }
        assertEquals(start, fst4j.tensor.Memory.bytesInUse());
    }

    /** The self-attention path as the functional composition it was before masks and caching: the same bits. */
    @Test
    void selfAttentionUnchangedBitForBit() {
        try (Scope sc = Scope.open(); MultiheadAttention m = mha(8, 2, 8, 8)) {
            Rng rng = new Rng(4);
            Tensor x = rng.normal(0, 1, 2, 5, 8), mask = rng.normal(0, 1, 5, 5);
            for (int variant = 0; variant < 3; variant++) {
                Var got = m.forward(Var.of(x), variant == 1 ? mask : null, variant == 2);
                Var qkv = m.inProj().forward(Var.of(x));
                Var[] p = new Var[3];
                for (int i = 0; i < 3; i++) p[i] = qkv.slice(2, 8 * i, 8 * (i + 1)).reshape(2, 5, 2, 4).permute(0, 2, 1, 3);
                Var o = NN.scaledDotProductAttention(p[0], p[1], p[2], variant == 1 ? mask : null, variant == 2, 0, null);
                Var want = m.outProj().forward(o.permute(0, 2, 1, 3).reshape(2, 5, 8));
                assertArrayEquals(want.value().toFloatArray(), got.value().toFloatArray(), "variant " + variant);
            }
        }
    }
}
