package fst4j.tensor;

import java.lang.foreign.MemorySegment;

/**
 * Row gather and its scatter-add, what F.embedding is made of: {@link #gather} takes the rows of a matrix at integer
 * indices, {@link #scatterAdd} adds rows back at their indices (a repeated index adds; one index may be skipped, the
 * padding row). CPU float32 / float64; CUDA float32 (fst_k_embed_gather, fst_k_embed_scatter). The sums are in double
 * in the order of the positions on either device, so the CPU and CUDA gradients are the same bits.
 */
public final class Rows {
    private Rows() {}

    /** [n, d]: row i is w [v, d]'s row indices[i]; every index in [0, v). */
    public static Tensor gather(Tensor w, int[] indices) {
        w.check();
        if (w.dim() != 2) throw new IllegalArgumentException("wrong rank: Rows.gather needs a matrix [v, d], got " + Shape.str(w.shape));
        int v = w.shape[0], d = w.shape[1], n = indices.length;
        checkIndices(indices, v, "Rows.gather");
        checkElements((long) n * d, "Rows.gather's output [" + n + ", " + d + "]");
        if (w.storage.device != Device.CPU) return CudaOps.embedGather(w, indices);
        return gatherHost(w, indices);
    }

    /**
     * {@link #gather(Tensor, int[])} by prepared indices: the same rows and bits, without checking the indices or
     * copying them to the device again. w [t.rows(), d] on t's device.
     */
    public static Tensor gather(Tensor w, RowIndex t) {
        w.check();
        t.check();
        if (w.dim() != 2 || w.shape[0] != t.rows())
            throw new IllegalArgumentException("shape mismatch: Rows.gather by a RowIndex of " + t.rows() + " rows needs a matrix [" + t.rows() + ", d], got " + Shape.str(w.shape));
        if (w.storage.device != t.device())
            throw new IllegalArgumentException("device mismatch: Rows.gather of a " + w.storage.device + " tensor by a RowIndex on " + t.device());
        int n = t.size(), d = w.shape[1];
        checkElements((long) n * d, "Rows.gather's output [" + n + ", " + d + "]");
        if (w.storage.device != Device.CPU) return CudaOps.embedGather(w, t.deviceIndices(), n);
        return gatherHost(w, t.indices());
    }

    private static Tensor gatherHost(Tensor w, int[] indices) {
        int d = w.shape[1], n = indices.length;
        // row by row out of the table's memory: N*D elements moved, not the whole [v, d] table each call
        Tensor out = Tensor.empty(w.dtype, n, d);
        try (Tensor wc = w.contiguous()) {
            long row = (long) d * w.dtype.bytes;
            MemorySegment src = wc.data(), dst = out.data();
            for (int i = 0; i < n; i++) MemorySegment.copy(src, indices[i] * row, dst, i * row, row);
        } catch (RuntimeException | Error e) { out.close(); throw e; }
        return out;
    }

    /** [rows, d]: row r is the sum of g [n, d]'s rows i with indices[i] == r (none where r == skip; skip -1 for none). */
    public static Tensor scatterAdd(Tensor g, int[] indices, int rows, int skip) {
        g.check();
        if (g.dim() != 2 || g.shape[0] != indices.length)
            throw new IllegalArgumentException("shape mismatch: Rows.scatterAdd needs g [" + indices.length + ", d] for " + indices.length + " indices, got " + Shape.str(g.shape));
        if (rows <= 0) throw new IllegalArgumentException("Rows.scatterAdd needs rows > 0, got " + rows);
        checkIndices(indices, rows, "Rows.scatterAdd");
        int d = g.shape[1];
        checkElements((long) rows * d, "Rows.scatterAdd's output [" + rows + ", " + d + "]");
        int[][] csr = csr(indices, rows, skip);
        int[] off = csr[0], pos = csr[1];
        if (g.storage.device != Device.CPU) return CudaOps.embedScatter(g, off, pos, rows);
        return scatterHost(g, off, pos, rows);
    }

    /**
     * {@link #scatterAdd(Tensor, int[], int, int)} by prepared indices (no row skipped): the same sums in the same
     * order, so the same bits, without building the CSR or copying it to the device again. g [t.size(), d] on t's device.
     */
    public static Tensor scatterAdd(Tensor g, RowIndex t) {
        g.check();
        t.check();
        if (g.dim() != 2 || g.shape[0] != t.size())
            throw new IllegalArgumentException("shape mismatch: Rows.scatterAdd by a RowIndex of " + t.size() + " indices needs g [" + t.size() + ", d], got " + Shape.str(g.shape));
        if (g.storage.device != t.device())
            throw new IllegalArgumentException("device mismatch: Rows.scatterAdd of a " + g.storage.device + " tensor by a RowIndex on " + t.device());
        int rows = t.rows(), d = g.shape[1];
        checkElements((long) rows * d, "Rows.scatterAdd's output [" + rows + ", " + d + "]");
        if (g.storage.device != Device.CPU) return CudaOps.embedScatter(g, t.deviceOffsets(), t.devicePositions(), rows);
        return scatterHost(g, t.offsets(), t.positions(), rows);
    }

    private static Tensor scatterHost(Tensor g, int[] off, int[] pos, int rows) {
        int d = g.shape[1];
        // only the rows some index names are summed and written (in double, rounded once); the rest stay the zeros the
        // tensor starts with: no [rows, d] arrays on the heap for a vocabulary whose batch touches a few rows
        double[] src, acc = new double[d];
        try (Tensor gc = g.contiguous()) { src = gc.toDoubleArray(); }
        Tensor out = Tensor.zeros(g.dtype, rows, d);
        try {
            for (int r = 0; r < rows; r++) {
                if (off[r] == off[r + 1]) continue;
                java.util.Arrays.fill(acc, 0);
                for (int k = off[r]; k < off[r + 1]; k++) {
                    int at = pos[k] * d;
                    for (int j = 0; j < d; j++) acc[j] += src[at + j];
                }
                for (int j = 0; j < d; j++) out.setAt((long) r * d + j, acc[j]);
            }
        } catch (RuntimeException | Error e) { out.close(); throw e; }
        return out;
    }

    /** A tensor's element count must fit an int (its Java arrays and Tensor.of); the refusal names the tensor. */
    private static void checkElements(long elements, String what) {
        if (elements > Integer.MAX_VALUE)
            throw new IllegalArgumentException(what + " would hold " + elements + " elements, more than " + Integer.MAX_VALUE);
    }

    /**
     * The scatter-add's CSR of indices (each in [0, rows)) over rows, positions whose index is skip left out (-1: none):
     * {off [rows + 1], pos}, each row's positions ascending, the order the sums take on either device. One builder for
     * {@link #scatterAdd(Tensor, int[], int, int)} and {@link RowIndex}, whose tables must give the same bits.
     */
    static int[][] csr(int[] indices, int rows, int skip) {
        int[] off = new int[rows + 1];
        for (int idx : indices) if (idx != skip) off[idx + 1]++;
        for (int r = 0; r < rows; r++) off[r + 1] += off[r];
        int[] pos = new int[off[rows]], fill = java.util.Arrays.copyOf(off, rows);
        for (int i = 0; i < indices.length; i++) if (indices[i] != skip) pos[fill[indices[i]]++] = i;
        return new int[][]{off, pos};
    }

    static void checkIndices(int[] indices, int v, String op) {
        for (int i = 0; i < indices.length; i++)
            if (indices[i] < 0 || indices[i] >= v)
                throw new IllegalArgumentException(op + ": index " + indices[i] + " at position " + i + " out of range [0, " + v + ")");
    }
}
