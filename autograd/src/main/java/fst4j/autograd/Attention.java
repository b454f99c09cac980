package fst4j.autograd;

import fst4j.tensor.Rng;
import fst4j.tensor.Shape;
import fst4j.tensor.Tensor;

/**
 * Scaled dot-product attention as a composite of differentiable ops (torch 2.x's F.scaled_dot_product_attention; torch
 * 1.13 has only the private form): softmax(q k^T / sqrt(E) + mask) v, batch axes broadcast as in matmul. Its two
 * products are activation x activation, so they are dense {@link Var#matmul}s: the Eq. 1-3 node's sparsity applies to a
 * layer's weights, and there is none here. Gradients come from the parts (matmul, softmax, the mask's add, dropout).
 */
final class Attention {
    private Attention() {}

    static Var sdpa(Var q, Var k, Var v, Tensor attnMask, boolean isCausal, double dropoutP, Rng rng) {
        return sdpaWithWeights(q, k, v, attnMask, isCausal, dropoutP, rng).output();
    }

    /** The same ops, also handing back the attention weights as they multiply v (after dropout, as torch 1.13's MHA returns them). */
    static NN.Attended sdpaWithWeights(Var q, Var k, Var v, Tensor attnMask, boolean isCausal, double dropoutP, Rng rng) {
        int[] qs = q.shape(), ks = k.shape(), vs = v.shape();
        if (qs.length < 2 || ks.length < 2 || vs.length < 2)
            throw new IllegalArgumentException("wrong rank: scaledDotProductAttention needs q [..., L, E], k [..., S, E], v [..., S, Ev], got "
                    + Shape.str(qs) + ", " + Shape.str(ks) + ", " + Shape.str(vs));
        int l = qs[qs.length - 2], e = qs[qs.length - 1], s = ks[ks.length - 2];
        if (ks[ks.length - 1] != e || vs[vs.length - 2] != s)
            throw new IllegalArgumentException("shape mismatch: scaledDotProductAttention needs q [..., L, E], k [..., S, E], v [..., S, Ev], got q "
                    + Shape.str(qs) + ", k " + Shape.str(ks) + ", v " + Shape.str(vs));
        if (q.value().dtype() != k.value().dtype() || q.value().dtype() != v.value().dtype())
            throw new IllegalArgumentException("dtype mismatch: scaledDotProductAttention's q, k, v are " + q.value().dtype() + ", " + k.value().dtype() + ", " + v.value().dtype());
        if (q.value().device() != k.value().device() || q.value().device() != v.value().device())
            throw new IllegalArgumentException("device mismatch: scaledDotProductAttention's q, k, v are on " + q.value().device() + ", " + k.value().device() + ", " + v.value().device());
        if (isCausal && attnMask != null)
            throw new IllegalArgumentException("scaledDotProductAttention: give either attnMask or isCausal, not both (torch refuses both too)");
        if (!(dropoutP >= 0 && dropoutP < 1)) throw new IllegalArgumentException("scaledDotProductAttention: dropout probability must be in [0, 1), got " + dropoutP);
        if (dropoutP > 0 && rng == null) throw new IllegalArgumentException("scaledDotProductAttention: dropout " + dropoutP + " needs an Rng for its masks, got null");
        if (attnMask != null) {
            int[] ms = attnMask.shape();
            // the mask broadcasts against the scores [..., L, S]: its last two axes 1 or equal
            if (ms.length < 1 || ms.length > Math.max(qs.length, ks.length)
                    || (ms[ms.length - 1] != s && ms[ms.length - 1] != 1) || (ms.length >= 2 && ms[ms.length - 2] != l && ms[ms.length - 2] != 1))
                throw new IllegalArgumentException("shape mismatch: scaledDotProductAttention's attnMask " + Shape.str(ms) + " does not broadcast to the scores [..., "
                        + l + ", " + s + "] of q " + Shape.str(qs) + " and k " + Shape.str(ks));
        }
        // intermediate Vars are not closed: closing one frees its graph node (they belong to the caller's scope, as any op's)
        Var scores = q.matmul(k.transpose(-2, -1)).mul(1 / Math.sqrt(e));
        Tensor add = attnMask != null ? attnMask : isCausal ? causalMask(l, s) : null;
        if (add != null) {
            // an additive float mask (-inf where a position takes no part), on the scores' device and dtype
            try (Tensor onDevice = add.to(q.value().device())) { scores = scores.add(Var.of(onDevice.to(q.value().dtype()))); }
            finally { if (add != attnMask) add.close(); }
        }
        Var weights = NN.softmax(scores, -1);
        if (dropoutP > 0) weights = NN.dropout(weights, dropoutP, true, rng);
        return new NN.Attended(weights.matmul(v), weights);
    }

    /** torch's is_causal: position i attends to j <= i (the top-left aligned tril(ones(L, S))), -inf elsewhere. */
    static Tensor causalMask(int l, int s) {
        double[] m = new double[Math.multiplyExact(l, s)];
        for (int i = 0; i < l; i++) for (int j = i + 1; j < s; j++) m[i * s + j] = Double.NEGATIVE_INFINITY;
        return Tensor.of(m, l, s);
    }
}
