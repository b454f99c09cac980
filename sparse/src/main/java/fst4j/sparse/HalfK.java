package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.SharedOperand;
import fst4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Eq. 3 with the fixed Eq. 7 activation mask as a dense GEMM over the kept half of K (fst-method.md,
 * "Consequence worth exploiting"): with X^T zero at every odd position of H*W, identically for every
 * column, dL/dW = (G * mask) X^T = G[:, kept] X^T[kept, :]. Half the FLOPs, no sparse hardware.
 * Kept positions are the even 0-based positions within each segment of {@code segment} elements along K
 * (segment = H*W when K = N*H*W flattens a batch; segment = K for one image). When segment is even this
 * is the same as even positions of the whole K axis ({@link Sparsifier.Fixed24} along K).
 */
public final class HalfK {
    private HalfK() {}

    /** The kept positions 0 <= j < k: (j % segment) even. */
    public static int[] keptPositions(int k, int segment) {
        if (segment <= 0 || k % segment != 0) throw new IllegalArgumentException("segment " + segment + " does not divide K = " + k);
        int per = (segment + 1) / 2;
        int[] kept = new int[k / segment * per];
        int n = 0;
        for (int s = 0; s < k; s += segment) for (int j = 0; j < segment; j += 2) kept[n++] = s + j;
        return kept;
    }

    /** The columns of matrix t [R, K] at the kept positions, as a new contiguous [R, |kept|] tensor of t's dtype. */
    public static Tensor gatherKept(Tensor t, int segment) {
        t.check();
        if (t.dim() != 2) throw new IllegalArgumentException("wrong rank: gatherKept needs a matrix, got " + Arrays.toString(t.shape()));
        int r = t.size(0), k = t.size(1);
        int[] kept = keptPositions(k, segment);
        if (t.device() != Device.CPU) return fst4j.tensor.CudaOps.shiftGather(t, segment, 0f, 1, false);   // coeff 0: the plain gather
        if (t.dtype() == fst4j.tensor.DType.F64) {   // float64 stays float64: Eq. 3's gradient was rounded to float32 here
            double[] x = t.toDoubleArray(), out = new double[Math.multiplyExact(r, kept.length)];
            for (int i = 0; i < r; i++) for (int j = 0; j < kept.length; j++) out[i * kept.length + j] = x[i * k + kept[j]];
            return Tensor.of(out, r, kept.length);
        }
        float[] x = t.toFloatArray(), out = new float[Math.multiplyExact(r, kept.length)];
        for (int i = 0; i < r; i++) for (int j = 0; j < kept.length; j++) out[i * kept.length + j] = x[i * k + kept[j]];
        return Tensor.of(out, r, kept.length);
    }

    /**
     * Information Restoration fused with the half-K gather, in one native pass over the float32 matrix
     * dY [R, K]: {@code gatherKept(Restoration.shiftAdd(dY, segment, coeff, shift, circular), segment)}, i.e.
     * Gk[:, kept j] = dY[:, j] + coeff * dY[:, j + shift] per segment (wrapping or dropping the neighbour at a
     * segment's end as {@link Restoration#shiftAdd} does). coeff == 0 means no IR: exactly
     * {@code gatherKept(dY, segment)} (neighbours are not read, so NaN there does not leak). Uses
     * {@link Blas#threads()} threads.
     */
    public static Tensor shiftGather(Tensor dy, int segment, float coeff, int shift, boolean circular) {
        return shiftGather(dy, segment, coeff, shift, circular, Blas.threads());
    }

    /**
     * {@link #shiftGather(Tensor, int, float, int, boolean, int)} as a {@link SharedOperand}: on CUDA at BF16 the kernel
     * also writes the result's bf16 rounding, which Eq. 3's half-K GEMM borrows while the handle is open.
     */
    public static SharedOperand shiftGatherShared(Tensor dy, int segment, float coeff, int shift, boolean circular, int threads) {
        if (dy.device() == Device.CPU) return SharedOperand.of(shiftGather(dy, segment, coeff, shift, circular, threads));
        dy.check();
        if (dy.dim() != 2) throw new IllegalArgumentException("wrong rank: shiftGather needs a matrix, got " + Arrays.toString(dy.shape()));
        if (dy.dtype() != DType.F32) throw new IllegalArgumentException("shiftGather needs float32, got " + dy.dtype());
        if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
        int k = dy.size(1);
        if (segment <= 0 || k % segment != 0) throw new IllegalArgumentException("segment " + segment + " does not divide K = " + k);
        return fst4j.tensor.CudaOps.shiftGatherShared(dy, segment, coeff, shift, circular);
    }

    /** {@link #shiftGather(Tensor, int, float, int, boolean)} with the given thread count. */
    public static Tensor shiftGather(Tensor dy, int segment, float coeff, int shift, boolean circular, int threads) {
        dy.check();
        if (dy.dim() != 2) throw new IllegalArgumentException("wrong rank: shiftGather needs a matrix, got " + Arrays.toString(dy.shape()));
        if (dy.dtype() != DType.F32) throw new IllegalArgumentException("shiftGather needs float32, got " + dy.dtype());
        if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
        if (threads < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        int r = dy.size(0), k = dy.size(1);
        if (segment <= 0 || k % segment != 0) throw new IllegalArgumentException("segment " + segment + " does not divide K = " + k);
        if (dy.device() != Device.CPU) return fst4j.tensor.CudaOps.shiftGather(dy, segment, coeff, shift, circular);
        int kept = Math.multiplyExact(k / segment, (segment + 1) / 2);
        Tensor src = dy.contiguous();
        Tensor out = Tensor.empty(r, kept);
        try {
            if ((long) r * k > 0) Native.shiftGather(src.data(), out.data(), r, k, segment, shift, coeff, circular, threads);
        } catch (RuntimeException e) {
            out.close();
            throw e;
        } finally {
            src.close();
        }
        return out;
    }

    /**
     * {@link #shiftGather(Tensor, int, float, int, boolean, int)} of the matrix [C, N*L] whose columns are the images of the
     * float32 CPU block dY [N, C, L] (NCHW with the plane flattened, unit stride along L), read in place: the same values
     * as gathering the images into that matrix first, without the copy. segment = L.
     */
    public static Tensor shiftGatherImages(Tensor dy, float coeff, int shift, boolean circular, int threads) {
        dy.check();
        if (dy.dim() != 3) throw new IllegalArgumentException("wrong rank: shiftGatherImages needs [N, C, L], got " + Arrays.toString(dy.shape()));
        if (dy.dtype() != DType.F32 || dy.device() != Device.CPU)
            throw new IllegalArgumentException("shiftGatherImages needs a float32 CPU tensor, got " + dy.dtype() + " on " + dy.device());
        if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
        if (threads < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
        int n = dy.size(0), c = dy.size(1), l = dy.size(2);
        if (l == 0) throw new IllegalArgumentException("shiftGatherImages: empty planes in " + Arrays.toString(dy.shape()));
        Tensor out = Tensor.empty(c, Math.multiplyExact(n, (l + 1) / 2));
        if (out.numel() == 0) return out;
        long[] st = dy.strides();
        try (Tensor src = (l > 1 && st[2] != 1) || (c > 1 && st[1] < l) || (n > 1 && st[0] < l) ? dy.contiguous() : dy.alias()) {
            long[] ss = src.strides();
            long ldRow = c > 1 ? ss[1] : l, ldImage = n > 1 ? ss[0] : l;
            MemorySegment seg = src.segment();
            if ((src.offset() + (n - 1) * ldImage + (c - 1) * ldRow + l) * 4 > seg.byteSize())
                throw new IndexOutOfBoundsException("shiftGatherImages: dY " + Arrays.toString(dy.shape()) + " exceeds its storage");
            Native.shiftGatherImages(seg.asSlice(src.byteOffset()), out.data(), c, n, l, ldRow, ldImage, shift, coeff, circular, threads);
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /**
     * The IR shift read only at the given columns of the float32 CPU matrix dY [R, K] (unit column stride, any row stride:
     * a block of a larger buffer is read in place): {@code Restoration.shiftAdd(dY, segment, coeff, shift, circular)}'s
     * columns at positions, as a new [R, positions.length] matrix. coeff == 0 means no IR (a plain gather; neighbours are
     * not read). For the authors' random patterns, whose kept columns no fixed stride describes.
     */
    public static Tensor shiftGatherAt(Tensor dy, int segment, int[] positions, float coeff, int shift, boolean circular) {
        dy.check();
        if (dy.dim() != 2) throw new IllegalArgumentException("wrong rank: shiftGatherAt needs a matrix, got " + Arrays.toString(dy.shape()));
        if (dy.dtype() != DType.F32 || dy.device() != Device.CPU)
            throw new IllegalArgumentException("shiftGatherAt needs a float32 CPU matrix, got " + dy.dtype() + " on " + dy.device());
        if (shift != 1 && shift != -1) throw new IllegalArgumentException("shift must be +1 or -1, got " + shift);
        int r = dy.size(0), k = dy.size(1);
        if (segment <= 0 || k % segment != 0) throw new IllegalArgumentException("segment " + segment + " does not divide K = " + k);
        for (int p : positions)
            if (p < 0 || p >= k) throw new IllegalArgumentException("shiftGatherAt: position " + p + " out of range [0, " + k + ")");
        long[] st = dy.strides();
        Tensor out = Tensor.empty(r, positions.length);
        if (out.numel() == 0) return out;
        try (Tensor src = k > 1 && st[1] != 1 || r > 1 && st[0] < k ? dy.contiguous() : dy.alias();
             java.lang.foreign.Arena arena = java.lang.foreign.Arena.ofConfined()) {
            long ld = r > 1 ? src.strides()[0] : k;
            MemorySegment seg = src.segment();
            if ((src.offset() + (r - 1) * ld + k) * 4 > seg.byteSize())
                throw new IndexOutOfBoundsException("shiftGatherAt: dY " + r + "x" + k + " (row stride " + ld + ") exceeds its storage");
            Native.shiftGatherAt(seg.asSlice(src.byteOffset()), ld, out.data(), positions.length, r, k, segment,
                    arena.allocateFrom(java.lang.foreign.ValueLayout.JAVA_INT, positions), positions.length, shift, coeff, circular, Blas.threads());
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /** dW [Cout, D] = G[:, kept] X[:, kept]^T for G [Cout, K] and X [D, K] (X^T = x.t()), segment = K. */
    public static Tensor weightGrad(Tensor g, Tensor x) { return weightGrad(g, x, g.size(1)); }

    /** dW [Cout, D] = G[:, kept] X[:, kept]^T for G [Cout, K] and X [D, K], kept per segment. */
    public static Tensor weightGrad(Tensor g, Tensor x, int segment) {
        g.check(); x.check();
        if (g.dim() != 2 || x.dim() != 2 || g.size(1) != x.size(1))
            throw new IllegalArgumentException("shape mismatch: weightGrad G " + Arrays.toString(g.shape()) + " and X " + Arrays.toString(x.shape()) + " need [Cout, K] and [D, K]");
        try (Tensor gk = gatherKept(g, segment); Tensor xk = gatherKept(x, segment); Tensor xkt = xk.t()) {
            Tensor dw = Tensor.empty(g.size(0), x.size(0));
            Blas.gemm(1f, gk, xkt, 0f, dw);
            return dw;
        }
    }
}
