package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;

/**
 * Sorting along one axis on the device (autograd's Sort: torch.sort, topk, kthvalue, median), x seen as [outer, n,
 * inner] in row-major order: each line is sorted by fst_cuda_sort, a bitonic network over (key, position) pairs whose
 * keys order floats as Sort.compare does (NaN above everything, -0 == 0; descending by the reversed order) and whose
 * positions break ties, which is the stable sort; then a run of each line's sorted positions is kept. CUDA float32 only
 * (the CPU path is Sort's own loop, in double, which it equals bit for bit).
 */
public final class LineSort {
    private LineSort() {}

    /** The kept elements' flat offsets into x, on the device, for the backward's scatter; closed with the graph. */
    public static final class Sources implements AutoCloseable {
        private final CudaOps.Block block;
        private final int count;
        private final long inputs;   // x's elements: every offset is below it, so a gradient's shape must hold as many
        private boolean closed;

        private Sources(CudaOps.Block block, int count, long inputs) { this.block = block; this.count = count; this.inputs = inputs; }

        /** How many outputs (each one flat offset). */
        public int count() { return count; }

        @Override
        public void close() {
            if (closed) return;
            closed = true;
            if (block != null) block.close();
        }
    }

    /** values [outShape] (x's dtype), float32 indices [outShape], and the sources where they were asked for (else null). */
    public record Selection(Tensor values, Tensor indices, Sources sources) {}

    /**
     * Sorted positions start .. start + count - 1 of each line (median: the lower median, or the line's first NaN; ascending
     * and count 1), written in the order [outer, count, inner] into outShape. op names the caller in refusals.
     */
    public static Selection select(String op, Tensor x, int outer, int n, int inner, boolean descending, int start, boolean median, int count,
                                   int[] outShape, boolean sources) {
        CudaOps.require(op, x);
        if (outer < 0 || n < 0 || inner < 0 || (long) outer * n * inner != x.numel())
            throw new IllegalArgumentException(op + ": lines " + outer + " x " + n + " x " + inner + " do not cover " + Shape.str(x.shape));
        if (n > 1 << 24)
            throw new IllegalArgumentException(op + ": lines of " + n + " elements, more than float32 indices count exactly (2^24)");
        if (count < 0 || start < 0 || (long) start + count > n || (median && (descending || count != 1)))
            throw new IllegalArgumentException(op + ": positions " + start + " .. " + ((long) start + count - 1) + " of lines of " + n
                    + (median ? " (median: ascending, one position)" : ""));
        long outs = (long) outer * count * inner;
        if (Shape.numel(outShape) != outs)
            throw new IllegalArgumentException(op + ": output " + Shape.str(outShape) + " for " + outer + " x " + count + " x " + inner + " positions");
        if ((long) outer * n * inner > Integer.MAX_VALUE)
            throw new IllegalArgumentException(op + ": " + x.numel() + " elements, more than int32 flat offsets address");
        Tensor values = Tensor.empty(Device.CUDA, DType.F32, outShape), indices = null;
        CudaOps.Block src = null;
        try {
            indices = Tensor.empty(Device.CUDA, DType.F32, outShape);
            long lines = (long) outer * inner;
            if (sources) src = CudaOps.Block.of(4L * Math.max(1, outs));
            if (outs > 0) {
                long pairs = Native.cudaSortPairs(n);
                try (Tensor xc = x.contiguous(); CudaOps.Block keys = CudaOps.Block.of(8L * lines * pairs)) {
                    Native.cudaSort(CudaOps.ptr(xc), outer, n, inner, descending, start, median, count, keys.ptr(), CudaOps.ptr(values),
                            CudaOps.ptr(indices), src == null ? MemorySegment.NULL : src.ptr());
                }
            }
            return new Selection(values, indices, src == null ? null : new Sources(src, Math.toIntExact(outs), x.numel()));
        } catch (RuntimeException | Error e) {
            values.close();
            if (indices != null) indices.close();
            if (src != null) src.close();
            throw e;
        }
    }

    /** The values' gradient back to x's shape: dx = 0 except dx[src[i]] = g[i] (each source at most once). */
    public static Tensor scatter(String op, Tensor g, Sources src, int[] inShape) {
        CudaOps.require(op, g);
        if (src.closed) throw new IllegalStateException(op + ": its sources were already freed");
        if (g.numel() != src.count)
            throw new IllegalArgumentException(op + ": a gradient of " + g.numel() + " elements " + Shape.str(g.shape) + " for " + src.count + " outputs");
        // the kernel skips an offset past dx (it never reads or writes outside): a smaller shape would lose gradients silently
        if (Shape.numel(inShape) != src.inputs)
            throw new IllegalArgumentException(op + ": input shape " + Shape.str(inShape) + " (" + Shape.numel(inShape) + " elements) for sources into "
                    + src.inputs + " elements");
        Tensor dx = Tensor.zeros(Device.CUDA, DType.F32, inShape);
        if (src.count == 0) return dx;
        try (Tensor gc = g.contiguous()) {
            Native.cudaSortScatter(CudaOps.ptr(gc), src.block.ptr(), src.count, CudaOps.ptr(dx), dx.numel());
        } catch (RuntimeException | Error e) {
            dx.close();
            throw e;
        }
        return dx;
    }
}
