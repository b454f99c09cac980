package fst4j.sparse;

import fst4j.shim.Native;
import fst4j.tensor.Blas;
import fst4j.tensor.DType;
import fst4j.tensor.Device;
import fst4j.tensor.Tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A float32 matrix S [rows, K] that is 2:4 along K, compressed (layout: sparse/FORMAT.md):
 * <ul>
 *   <li>K is zero-padded to {@code Kp} = K rounded up to a multiple of 4; group g covers columns 4g..4g+3;</li>
 *   <li>{@link #values()}: [rows, Kp/2] float32, the two entries of each group at its two indices, in
 *       index order (lower index first);</li>
 *   <li>{@link #metadata()}: [rows, ceil(Kp/32)] 32-bit words, 8 groups per word: group g of a row is the
 *       nibble at bits 4*(g%8) .. 4*(g%8)+3 of word g/8; inside the nibble the first (lower) 2-bit index
 *       is in bits 0-1 and the second in bits 2-3; unused nibbles of a row's last word are 0. fst4j has
 *       no integer dtype, so this tensor is typed F32 but holds raw uint32 bit patterns: read it with
 *       {@link #metaWord(int, int)} or as bytes, never as floats.</li>
 * </ul>
 * A group with fewer than 2 non-zeros fills its indices with the lowest unused indices (value 0), so the
 * two indices of a group are always distinct and increasing. Owns two tensors; close it (or its scope).
 */
public final class Compressed24 implements AutoCloseable {
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED;
    private final Tensor values, meta;
    private final int rows, k;

    private Compressed24(Tensor values, Tensor meta, int rows, int k) {
        this.values = values;
        this.meta = meta;
        this.rows = rows;
        this.k = k;
    }

    /** Rows of S (M of the GEMM). */
    public int rows() { return rows; }
    /** Logical K (columns of S). */
    public int k() { return k; }
    /** K rounded up to a multiple of 4. */
    public int paddedK() { return paddedK(k); }
    /** 32-bit metadata words per row: ceil(Kp / 32). */
    public int metaWordsPerRow() { return metaWords(k); }
    /** [rows, Kp/2] float32 kept values (the tensor itself, owned by this object). */
    public Tensor values() { return values; }
    /** [rows, ceil(Kp/32)] raw uint32 metadata words in an F32-typed tensor (owned by this object). */
    public Tensor metadata() { return meta; }

    static int paddedK(int k) { return (k + 3) & ~3; }
    static int metaWords(int k) { return (paddedK(k) + 31) / 32; }

    /** Metadata word w of row r, as stored. */
    public int metaWord(int r, int w) {
        java.util.Objects.checkIndex(r, rows);
        java.util.Objects.checkIndex(w, metaWordsPerRow());
        return meta.segment().get(I32, meta.byteOffset() + 4L * ((long) r * metaWordsPerRow() + w));
    }

    /** The nibble of group g of row r: first index in bits 0-1, second in bits 2-3. */
    public int nibble(int r, int g) {
        java.util.Objects.checkIndex(g, paddedK() / 4);
        return (metaWord(r, g >> 3) >>> ((g & 7) * 4)) & 15;
    }

    /** True when every group of 4 along the last axis of the matrix m (K zero-padded) has at most 2 non-zeros. */
    public static boolean isValid24(Tensor m) {
        checkMatrix(m);
        return firstViolation(m.toFloatArray(), m.size(0), m.size(1)) == null;
    }

    /** Compresses m [rows, K]; throws IllegalArgumentException naming the first group with more than 2 non-zeros. */
    public static Compressed24 compress(Tensor m) {
        checkMatrix(m);
        int rows = m.size(0), k = m.size(1);
        float[] x = m.toFloatArray();
        String bad = firstViolation(x, rows, k);
        if (bad != null) throw new IllegalArgumentException("matrix " + rows + "x" + k + " is not 2:4 along K: " + bad);
        int kp = paddedK(k), half = kp / 2, mw = metaWords(k);
        float[] vals = new float[Math.multiplyExact(rows, half)];
        int[] words = new int[Math.multiplyExact(rows, mw)];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < kp / 4; g++) {
                int i0 = -1, i1 = -1;
                for (int j = 0; j < 4; j++) {
                    int c = 4 * g + j;
                    if (c < k && x[r * k + c] != 0) { if (i0 < 0) i0 = j; else i1 = j; }
                }
                // fill with the lowest unused indices (value 0): indices stay distinct and increasing
                if (i0 < 0) { i0 = 0; i1 = 1; }
                else if (i1 < 0) { if (i0 == 0) i1 = 1; else { i1 = i0; i0 = 0; } }
                int c0 = 4 * g + i0, c1 = 4 * g + i1;
                vals[r * half + 2 * g] = c0 < k ? x[r * k + c0] : 0;
                vals[r * half + 2 * g + 1] = c1 < k ? x[r * k + c1] : 0;
                words[r * mw + (g >> 3)] |= (i0 | (i1 << 2)) << ((g & 7) * 4);
            }
        Tensor v = Tensor.of(vals, rows, half);
        Tensor t = Tensor.zeros(rows, mw);
        MemorySegment.copy(words, 0, t.segment(), I32, t.byteOffset(), words.length);
        return new Compressed24(v, t, rows, k);
    }

    /**
     * S(W) compressed in one native pass (fused {@link Sparsifier.Magnitude24} along K and {@link #compress}):
     * equal to {@code compress(new Sparsifier.Magnitude24(1).apply(w))} for a float32 matrix w [rows, K], with
     * {@link Blas#threads()} threads.
     */
    public static Compressed24 pruneCompress(Tensor w) { return pruneCompress(w, null, Blas.threads()); }

    /**
     * {@link #pruneCompress(Tensor)}; when {@code dense} is not null it must be a contiguous float32 CPU tensor
     * of w's shape, and receives the masked copy S(W) (what {@code new Sparsifier.Magnitude24(1).apply(w)} returns);
     * a dense that shares memory with w gets S of w as it was before the call.
     */
    public static Compressed24 pruneCompress(Tensor w, Tensor dense, int threads) {
        checkNative(w, "pruneCompress", threads);
        int rows = w.size(0), k = w.size(1);
        if (dense != null) {
            dense.check();
            if (dense.dtype() != DType.F32 || dense.device() != Device.CPU || dense.dim() != 2 || (dense.numel() > 0 && !dense.isContiguous())
                    || dense.size(0) != rows || dense.size(1) != k)
                throw new IllegalArgumentException("pruneCompress: the dense output must be a contiguous float32 CPU tensor of shape ["
                        + rows + ", " + k + "], got " + dense);
            // the kernel writes a row of dense while it still reads later rows of w: a dense shifted against w got garbage
            if (dense.overlaps(w)) { try (Tensor wc = w.copy()) { return pruneCompress(wc, dense, threads); } }
            dense.markModified();   // once the arguments are checked: a refused call writes nothing
        }
        return nativePrune(w, rows, k, (src, v, t) ->
                Native.prune24Compress(rows, k, src, k, v, t, dense == null ? MemorySegment.NULL : dense.data(), k, threads));
    }

    /** One native prune + compress of w's contiguous data into fresh values and metadata of a [rows, k] Compressed24. */
    private interface NativePrune { void run(MemorySegment src, MemorySegment values, MemorySegment meta); }

    private static Compressed24 nativePrune(Tensor w, int rows, int k, NativePrune f) {
        Tensor src = w.contiguous();
        Tensor v = Tensor.empty(rows, paddedK(k) / 2), t = Tensor.empty(rows, metaWords(k));
        try {
            if ((long) rows * k > 0) f.run(src.data(), v.data(), t.data());
        } catch (RuntimeException e) {
            v.close();
            t.close();
            throw e;
        } finally {
            src.close();
        }
        return new Compressed24(v, t, rows, k);
    }

    /**
     * S(W^T) compressed in one native pass, for the Eq. 2 operand: the matrix W^T [K, Cout] of a float32
     * w [Cout, K], pruned 2:4 along Cout by magnitude, as a [K, Cout] Compressed24. Equal to
     * {@code compress(new Sparsifier.Magnitude24(0).apply(w).t().contiguous())}, without materialising the
     * transpose. Uses {@link Blas#threads()} threads.
     */
    public static Compressed24 pruneCompressTransposed(Tensor w) { return pruneCompressTransposed(w, Blas.threads()); }

    /** {@link #pruneCompressTransposed(Tensor)} with the given thread count. */
    public static Compressed24 pruneCompressTransposed(Tensor w, int threads) {
        checkNative(w, "pruneCompressTransposed", threads);
        int cout = w.size(0), k = w.size(1);
        return nativePrune(w, k, cout, (src, v, t) -> Native.prune24CompressTransposed(cout, k, src, k, v, t, threads));
    }

    /**
     * S(W^T) laid out as the weight of W's transposed convolution (Eq. 2 of a stride-1 convolution computed as a
     * convolution of dY): W [Cout, Cin*kk] gives A' [Cin, kk*Cout] with A'[ci][t*Cout + co] = S(W^T)[ci*kk + kk-1-t][co],
     * compressed along kk*Cout; the kept entries are exactly {@link #pruneCompressTransposed}'s. Needs Cout % 4 == 0
     * (so that every group of 4 lies inside one tap).
     */
    public static Compressed24 pruneCompressTconv(Tensor w, int kk, int threads) {
        checkNative(w, "pruneCompressTconv", threads);
        int cout = w.size(0), k = w.size(1);
        if (kk <= 0 || k % kk != 0) throw new IllegalArgumentException("pruneCompressTconv: " + k + " columns are not Cin x " + kk + " taps");
        if (cout % 4 != 0) throw new IllegalArgumentException("pruneCompressTconv needs Cout % 4 == 0, got Cout " + cout);
        int cin = k / kk;
        return nativePrune(w, cin, kk * cout, (src, v, t) -> Native.prune24CompressTconv(cout, cin, kk, src, k, v, t, threads));
    }

    private static void checkNative(Tensor w, String op, int threads) {
        checkMatrix(w);
        if (w.dtype() != DType.F32) throw new IllegalArgumentException(op + " needs float32, got " + w.dtype());
        if (w.device() != Device.CPU) throw new IllegalArgumentException("device mismatch: " + op + " runs on CPU, got " + w.device());
        if (threads < 1) throw new IllegalArgumentException("thread count must be >= 1, got " + threads);
    }

    /** The dense [rows, K] float32 matrix. */
    public Tensor decompress() {
        int kp = paddedK(), half = kp / 2, mw = metaWordsPerRow();
        float[] vals = values.toFloatArray();
        int[] words = new int[rows * mw];
        MemorySegment.copy(meta.segment(), I32, meta.byteOffset(), words, 0, words.length);
        float[] out = new float[Math.multiplyExact(rows, k)];
        for (int r = 0; r < rows; r++)
            for (int g = 0; g < kp / 4; g++) {
                int nib = (words[r * mw + (g >> 3)] >>> ((g & 7) * 4)) & 15;
                int c0 = 4 * g + (nib & 3), c1 = 4 * g + (nib >>> 2);
                if (c0 < k) out[r * k + c0] += vals[r * half + 2 * g];
                if (c1 < k) out[r * k + c1] += vals[r * half + 2 * g + 1];
            }
        return Tensor.of(out, rows, k);
    }

    /** Closes both tensors. */
    @Override
    public void close() {
        values.close();
        meta.close();
    }

    private static void checkMatrix(Tensor m) {
        m.check();
        if (m.dim() != 2) throw new IllegalArgumentException("wrong rank: 2:4 compression needs a matrix [rows, K], got rank " + m.dim());
    }

    private static String firstViolation(float[] x, int rows, int k) {
        for (int r = 0; r < rows; r++)
            for (int g = 0; 4 * g < k; g++) {
                int nz = 0;
                for (int c = 4 * g; c < Math.min(k, 4 * g + 4); c++) if (x[r * k + c] != 0) nz++;
                if (nz > 2) return "row " + r + ", group " + g + " (columns " + 4 * g + ".." + Math.min(k - 1, 4 * g + 3) + ") has " + nz + " non-zeros";
            }
        return null;
    }

    @Override public String toString() { return "Compressed24[" + rows + "x" + k + "]"; }
}
