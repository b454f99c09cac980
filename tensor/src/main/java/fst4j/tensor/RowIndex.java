package fst4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * A row gather's indices prepared once for repeated use by {@link Rows#gather(Tensor, RowIndex)} and
 * {@link Rows#scatterAdd(Tensor, RowIndex)}: checked against the table's row count, the scatter-add's CSR (each row's
 * positions, ascending: the order of the sums) built on the host, and on CUDA the indices and the CSR uploaded to the
 * device, where {@link Rows#gather(Tensor, int[])} and {@link Rows#scatterAdd(Tensor, int[], int, int)} build and copy
 * them down at every call. For a caller that gathers the same geometry again and again (an InterpolateCache).
 * <p>
 * Reference counted, as a tensor's storage: {@link #alias} hands out another reference (a graph keeps one for its
 * backward), {@link #close} drops this one, and the device memory is freed when the last is closed. Thread-safe as a
 * tensor is: aliases may be taken and closed from several threads at once (two threads resizing through one
 * Upsample), the tables are freed once, and closing one reference twice, from two threads too, drops it once.
 */
public final class RowIndex implements AutoCloseable {
    /** What the references share: the host arrays (never mutated) and the device blocks (CUDA only). */
    private static final class Shared {
        final int[] idx, off, pos;
        final int rows;
        final Device device;
        final CudaOps.Block dIdx, dOff, dPos;
        int refs = 1;

        Shared(int[] idx, int[] off, int[] pos, int rows, Device device, CudaOps.Block dIdx, CudaOps.Block dOff, CudaOps.Block dPos) {
            this.idx = idx; this.off = off; this.pos = pos; this.rows = rows; this.device = device;
            this.dIdx = dIdx; this.dOff = dOff; this.dPos = dPos;
        }

        synchronized void retain() {
            if (refs == 0) throw new IllegalStateException("RowIndex is closed: its device tables are freed");
            refs++;
        }

        synchronized void release() {
            if (refs <= 0) throw new IllegalStateException("RowIndex released more often than it was referenced: its device tables are already freed");
            if (--refs > 0) return;
            for (CudaOps.Block b : new CudaOps.Block[]{dIdx, dOff, dPos}) if (b != null) b.close();
        }
    }

    private final Shared s;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private RowIndex(Shared s) { this.s = s; }

    /**
     * indices (each in [0, rows)) of a gather out of a [rows, d] table on device: the CSR built, and on CUDA the three
     * int32 tables uploaded (three host -> device copies, here only).
     */
    public static RowIndex of(int[] indices, int rows, Device device) {
        if (indices == null || device == null) throw new IllegalArgumentException("RowIndex: indices and device must not be null");
        if (rows <= 0) throw new IllegalArgumentException("RowIndex needs rows > 0, got " + rows);
        int n = indices.length;
        Rows.checkIndices(indices, rows, "RowIndex");
        int[] idx = indices.clone();
        int[][] csr = Rows.csr(idx, rows, -1);   // the CSR Rows.scatterAdd builds per call, so the same sums in the same order
        int[] off = csr[0], pos = csr[1];
        if (device == Device.CPU) return new RowIndex(new Shared(idx, off, pos, rows, device, null, null, null));
        CudaOps.Block dIdx = null, dOff = null, dPos = null;
        try (Arena arena = Arena.ofConfined()) {
            // at least one int each: the launchers check their pointers lie in an allocation
            dIdx = CudaOps.Block.of(4L * Math.max(1, n));
            dOff = CudaOps.Block.of(4L * off.length);
            dPos = CudaOps.Block.of(4L * Math.max(1, n));
            if (n > 0) fst4j.shim.Cuda.copyToDevice(dIdx.ptr(), arena.allocateFrom(JAVA_INT, idx), 4L * n);
            fst4j.shim.Cuda.copyToDevice(dOff.ptr(), arena.allocateFrom(JAVA_INT, off), 4L * off.length);
            if (n > 0) fst4j.shim.Cuda.copyToDevice(dPos.ptr(), arena.allocateFrom(JAVA_INT, pos), 4L * n);
            return new RowIndex(new Shared(idx, off, pos, rows, device, dIdx, dOff, dPos));
        } catch (RuntimeException | Error e) {
            for (CudaOps.Block b : new CudaOps.Block[]{dIdx, dOff, dPos}) if (b != null) b.close();
            throw e;
        }
    }

    /** Another reference to the same tables, closed on its own. */
    public RowIndex alias() {
        check();
        s.retain();
        return new RowIndex(s);
    }

    /** How many indices (the gather's output rows). */
    public int size() { return s.idx.length; }

    /** The row count of the table gathered from (the scatter's output rows). */
    public int rows() { return s.rows; }

    public Device device() { return s.device; }

    int[] indices() { return s.idx; }
    int[] offsets() { return s.off; }
    int[] positions() { return s.pos; }
    MemorySegment deviceIndices() { return s.dIdx.ptr(); }
    MemorySegment deviceOffsets() { return s.dOff.ptr(); }
    MemorySegment devicePositions() { return s.dPos.ptr(); }

    void check() { if (closed.get()) throw new IllegalStateException("RowIndex is closed (this reference was): use an alias taken before"); }

    @Override public void close() {
        if (closed.compareAndSet(false, true)) s.release();
    }
}
