package fst4j.bench;

import fst4j.shim.Native;
import fst4j.sparse.Compressed24;
import fst4j.sparse.HalfK;
import fst4j.sparse.SparseGemm;
import fst4j.tensor.Tensor;

import java.lang.invoke.MethodHandle;

/**
 * The Eq. 1-3 products of one conv layer as {@link Eq123Bench} (JMH, one variant per benchmark) and
 * {@link Eq123Interleaved} (variants taking turns) time them: one body per variant, so the two harnesses time the same
 * calls. Operands: W [cout, k], X [k, cols], dY [cout, cols] and the outputs Y, dX, dW (fields a harness does not use may
 * be null); seg = H*W columns per image; blas is OpenBLAS's cblas_sgemm ({@link OpenBlas#sgemm}). beta = 0 throughout.
 */
record Eq123Products(int cout, int cols, int k, int seg, int threads, Tensor w, Tensor x, Tensor dy, Tensor y, Tensor dx, Tensor dw) {
    private static final int ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

    // ---- Eq. 1: Y = S(W) X ----
    void eq1OpenBlas(MethodHandle blas) throws Throwable {
        blas.invokeExact(ROW_MAJOR, NO_TRANS, NO_TRANS, cout, cols, k, 1f, w.data(), k, x.data(), cols, 0f, y.data(), cols);
    }
    void eq1Dense() { Native.sgemm(false, false, cout, cols, k, 1f, w.data(), k, x.data(), cols, 0f, y.data(), cols, threads); }
    void eq1Sparse(Compressed24 cw) { SparseGemm.spmm(1f, cw, x, 0f, y, threads); }
    /** The fused prune + compress of W inside the timing, then the 2:4 product. */
    void eq1SparsePrune() {
        try (Compressed24 c = Compressed24.pruneCompress(w, null, threads)) { eq1Sparse(c); }
    }

    // ---- Eq. 2: dX = S(W^T) dY (the dense ones read W transposed, as Gemm3 does) ----
    void eq2OpenBlas(MethodHandle blas) throws Throwable {
        blas.invokeExact(ROW_MAJOR, TRANS, NO_TRANS, k, cols, cout, 1f, w.data(), k, dy.data(), cols, 0f, dx.data(), cols);
    }
    void eq2Dense() { Native.sgemm(true, false, k, cols, cout, 1f, w.data(), k, dy.data(), cols, 0f, dx.data(), cols, threads); }
    void eq2Sparse(Compressed24 cwt) { SparseGemm.spmm(1f, cwt, dy, 0f, dx, threads); }
    void eq2SparsePrune() {
        try (Compressed24 c = Compressed24.pruneCompressTransposed(w, threads)) { eq2Sparse(c); }
    }

    // ---- Eq. 3: dW = dY X^T ----
    void eq3OpenBlas(MethodHandle blas) throws Throwable {
        blas.invokeExact(ROW_MAJOR, NO_TRANS, TRANS, cout, k, cols, 1f, dy.data(), cols, x.data(), cols, 0f, dw.data(), k);
    }
    void eq3Dense() { Native.sgemm(false, true, cout, k, cols, 1f, dy.data(), cols, x.data(), cols, 0f, dw.data(), k, threads); }
    /** Eq. 7's half-K: the IR shift + gather of dY and the gather of X inside the timing, then the GEMM over cols / 2. */
    void eq3HalfK() {
        try (Tensor g = HalfK.shiftGather(dy, seg, 1f, 1, false, threads); Tensor xh = HalfK.shiftGather(x, seg, 0f, 1, false, threads)) {
            eq3HalfKGemm(g, xh);
        }
    }
    /** The half-K GEMM alone, on gathered gk [cout, cols / 2] and xk [k, cols / 2]. */
    void eq3HalfKGemm(Tensor gk, Tensor xk) {
        int kh = gk.size(1);
        Native.sgemm(false, true, cout, k, kh, 1f, gk.data(), kh, xk.data(), kh, 0f, dw.data(), k, threads);
    }
}
