package fst4j.tensor;

/**
 * im2col(x) described rather than materialised: a contiguous float32 batch x [N, C, H, W] and a convolution geometry.
 * On the CPU the native GEMM and 2:4 kernels take it as their B operand ({@link Conv#gemmLowered},
 * {@code SparseGemm.spmmLowered}) and lower the pieces they pack, so the [C*kh*kw, N*Ho*Wo] matrix never exists; on
 * CUDA the bf16 GEMMs lower it straight into their bf16 operand ({@link CudaSpmm#timesLowered},
 * {@link CudaOps#gemmLoweredBf16}).
 * <p>
 * {@code tapMajor} orders the rows (i, j, c) instead of im2col's (c, i, j): a transposed convolution's weight is 2:4
 * along Cout within each tap, so Eq. 2 of a stride-1 convolution, computed as a convolution of dY, needs its K in that
 * order (CPU only).
 */
public record Lowering(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw, boolean tapMajor) {
    /** im2col's row order (c, i, j). */
    public Lowering(Tensor x, int kh, int kw, int sh, int sw, int ph, int pw) { this(x, kh, kw, sh, sw, ph, pw, false); }

    public Lowering {
        x.check();
        if (tapMajor && x.device() != Device.CPU) throw new IllegalArgumentException("a tap-major lowering is CPU only, x is on " + x.device());
        if (x.dim() != 4 || !x.isContiguous() || x.dtype() != DType.F32)
            throw new IllegalArgumentException("lowering needs a contiguous float32 [N, C, H, W] tensor, got " + x.dtype() + " "
                    + Shape.str(x.shape()) + (x.isContiguous() ? "" : " (not contiguous)") + " on " + x.device());
        Conv.Geom g = Conv.Geom.of("lowering", x.shape(), kh, kw, sh, sw, ph, pw);   // validates the geometry, names the problem
        g.k(); g.nl();   // and that im2col's [C*kh*kw, N*Ho*Wo] has int sizes, before a kernel sizes anything by them
    }

    Conv.Geom geom() { return Conv.Geom.of("lowering", x.shape(), kh, kw, sh, sw, ph, pw); }

    /** {n, c, h, w, kh, kw, sh, sw, ph, pw, ho, wo, order}, as the native entry points take them (order 1: tap-major). */
    public long[] geometry() {
        Conv.Geom g = geom();
        return new long[]{g.n(), g.c(), g.h(), g.w(), kh, kw, sh, sw, ph, pw, g.ho(), g.wo(), tapMajor ? 1 : 0};
    }

    /** Rows of im2col(x): C * kh * kw. */
    public int rows() { return geom().k(); }

    /** Columns of im2col(x): N * Ho * Wo. */
    public int cols() { return geom().nl(); }
}
