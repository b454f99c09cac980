package fst4j.tensor;

/**
 * im2col(x) described rather than materialised: a contiguous float32 batch x [N, C, H, W] and a convolution geometry.
 * On the CPU the native GEMM and 2:4 kernels take it as their B operand ({@link Conv#gemmLowered},
 * {@code SparseGemm.spmmLowered}) and lower the pieces they pack, so the [C*kh*kw, N*Ho*Wo] matrix never exists; on
 * CUDA the bf16 GEMMs lower it straight into their bf16 operand ({@link CudaSpmm#timesLowered},
 * {@link CudaOps#gemmLoweredBf16}).
 */
public record Lowering(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw) {
    public Lowering {
        x.check();
        if (x.dim() != 4 || !x.isContiguous() || x.dtype() != DType.F32)
            throw new IllegalArgumentException("lowering needs a contiguous float32 [N, C, H, W] tensor, got " + x.dtype() + " "
                    + Shape.str(x.shape()) + (x.isContiguous() ? "" : " (not contiguous)") + " on " + x.device());
        Conv.Geom.of("lowering", x.shape(), kh, kw, sh, sw, ph, pw);   // validates the geometry, names the problem
    }

    Conv.Geom geom() { return Conv.Geom.of("lowering", x.shape(), kh, kw, sh, sw, ph, pw); }

    /** {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo}, as the native entry points take them. */
    public long[] geometry() {
        Conv.Geom g = geom();
        return new long[]{g.n(), g.c(), g.h(), g.w(), kh, kw, sh, sw, ph, pw, g.ho(), g.wo()};
    }

    /** Rows of im2col(x): C * kh * kw. */
    public int rows() { return x.size(1) * kh * kw; }

    /** Columns of im2col(x): N * Ho * Wo. */
    public int cols() { Conv.Geom g = geom(); return g.n() * g.ho() * g.wo(); }
}
