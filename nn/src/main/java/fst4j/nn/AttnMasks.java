package fst4j.nn;

import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * MultiheadAttention's masks made one additive mask, as torch 1.13's F.multi_head_attention_forward: a boolean
 * attn_mask becomes -inf where 1, key_padding_mask [B, S] fills -inf into every query's row at its padded keys
 * (masked_fill over a float mask, logical or over a boolean one: the same -inf), a 3-D attn_mask [B * heads, L, S] is
 * read as [B, heads, L, S]. Tensor ops only (where, reshape), so CUDA masks stay on the device; the result broadcasts
 * to the scores [B, heads, L, S].
 */
final class AttnMasks {
    private AttnMasks() {}

    /** The additive mask for query [B, L, *] and keys [B, S, *], or null where there is none. */
    static Tensor combine(MultiheadAttention mha, int b, int l, int s, Tensor keyPadding, AttnMask attnMask, boolean causal, Tensor query) {
        DType dt = query.dtype();
        Device dev = query.device();
        // the key padding mask is checked before any mask is built: a refusal then leaves nothing allocated (a bad
        // key_padding_mask used to leak the boolean attn_mask's where() result, or an alias of the cached causal mask
        // that kept its memory past the module's close, wherever no Scope was open)
        if (keyPadding != null) {
            sameDevice("key_padding_mask", keyPadding, dev);
            int[] ks = keyPadding.shape();
            if (ks.length != 2 || ks[0] != b || ks[1] != s)
                throw new IllegalArgumentException("shape mismatch: key_padding_mask is " + Shape.str(ks) + ", but should be [" + b + ", " + s + "] (torch's [B, S])");
            checkBoolean("key_padding_mask", keyPadding);
        }
        Tensor base = null;
        if (attnMask != null) {
            Tensor m = attnMask.values();
            sameDevice("attn_mask", m, dev);
            int[] ms = m.shape();
            if (ms.length == 2) {
                if (ms[0] != l || ms[1] != s)
                    throw new IllegalArgumentException("shape mismatch: the 2D attn_mask is " + Shape.str(ms) + ", but should be [" + l + ", " + s + "] (torch's [L, S])");
            } else if (ms.length == 3) {
                if (ms[0] != b * mha.heads || ms[1] != l || ms[2] != s)
                    throw new IllegalArgumentException("shape mismatch: the 3D attn_mask is " + Shape.str(ms) + ", but should be [" + b * mha.heads + ", " + l + ", " + s
                            + "] (torch's [B * heads, L, S])");
            } else {
                throw new IllegalArgumentException("wrong rank: attn_mask " + Shape.str(ms) + " must be 2D [L, S] or 3D [B * heads, L, S]");
            }
            if (attnMask.bool()) checkBoolean("attn_mask", m);
            else if (m.dtype() != dt)
                throw new IllegalArgumentException("dtype mismatch: the additive attn_mask is " + m.dtype() + ", the query " + dt + " (torch refuses it too)");
            try (Tensor m4 = ms.length == 3 ? m.reshape(b, mha.heads, l, s) : m.alias()) {
                base = attnMask.bool() ? minusInfWhere(m4, null, dt, dev) : m4.alias();
            }
        } else if (causal) {
            base = mha.causalMask(l, s, dt, dev);   // a reference of its own, closed with base
        }
        if (keyPadding != null) {
            try (Tensor k4 = keyPadding.reshape(b, 1, 1, s); Tensor old = base) {
                base = minusInfWhere(k4, old, dt, dev);
            }
        }
        return base;
    }

    /** -inf where cond is 1, else other's value (0 where other is null). */
    private static Tensor minusInfWhere(Tensor cond, Tensor other, DType dt, Device dev) {
        try (Tensor inf = MultiheadAttention.constant(Double.NEGATIVE_INFINITY, dt, dev);
             Tensor zero = other == null ? MultiheadAttention.constant(0, dt, dev) : other.alias()) {
            return MultiheadAttention.where(cond, inf, zero);
        }
    }

    private static void sameDevice(String name, Tensor m, Device dev) {
        if (m.device() != dev) throw new IllegalArgumentException("device mismatch: " + name + " is on " + m.device() + ", the query on " + dev);
    }

    /**
     * Tensors have no bool dtype here: a boolean mask is a float tensor of 0 and 1. Anything else (0.5, 2, NaN) is
     * refused, since where() would read it as true and silently mask. One pass over the values on the host (a CUDA mask
     * is copied there once: the one synchronisation the four-op device reduction this replaces also paid, through its
     * item()), and a mask found boolean is remembered at its version ({@link CheckedMasks}), so the same mask passed
     * every step is scanned again only after a write to it.
     */
    static void checkBoolean(String name, Tensor m) {
        m.check();
        if (CheckedMasks.known(m)) return;
        int version = m.version();   // read before the values: a write while scanning leaves the entry stale, never wrong
        CheckedMasks.counted();
        boolean ok = true;
        if (m.dtype() == DType.F32) {
            for (float v : m.toFloatArray()) if (v != 0 && v != 1) { ok = false; break; }   // NaN too: it equals neither
        } else {
            for (double v : m.toDoubleArray()) if (v != 0 && v != 1) { ok = false; break; }
        }
        if (!ok)
            throw new IllegalArgumentException("dtype: " + name + " " + Shape.str(m.shape()) + " must be boolean, 0 or 1 per element (1 = masked, torch's True; "
                    + "tensors have no bool dtype here), and holds other values");
        CheckedMasks.remember(m, version);
    }
}
