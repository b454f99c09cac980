package fst4j.nn;

import fst4j.tensor.Tensor;

/**
 * torch.nn.MultiheadAttention's attn_mask, [L, S] or [B * heads, L, S], in either of torch's two kinds. Tensors here are
 * float32 / float64 only, with no bool dtype, so the kind is said here rather than read off a dtype: {@link #bool} is a
 * tensor of 0 and 1 (1 = the query may not attend to that key, torch's True; any other value is refused), {@link
 * #additive} a float mask added to the scores (-inf to exclude). The tensor is the caller's: it is read, never closed.
 */
public record AttnMask(Tensor values, boolean bool) {
    public AttnMask {
        if (values == null) throw new IllegalArgumentException("AttnMask needs a tensor, got null");
    }

    /** torch's boolean attn_mask: 1 where attention is not allowed, 0 where it is. */
    public static AttnMask bool(Tensor zeroOne) { return new AttnMask(zeroOne, true); }

    /** torch's float attn_mask, added to the scores q k^T / sqrt(E). */
    public static AttnMask additive(Tensor mask) { return new AttnMask(mask, false); }
}
