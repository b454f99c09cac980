package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;

import java.lang.foreign.Arena;

import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * An index map over row-major flat offsets: {@link #gather} out[i] = x[src[i]] (autograd's flip, index_select and
 * gather) and its adjoint {@link #scatterAdd}, dx[k] = the sum of g[i] over every i with src[i] == k (torch's
 * index_add: a repeated index adds). CPU float32 / float64; CUDA float32 through the embedding kernels with rows of one
 * element (fst_k_embed_gather; fst_k_embed_scatter over the host's CSR of src: each input element sums its own sources
 * in ascending i, in double, with no atomics, which is the CPU loop's order, so both give the same bits).
 */
public final class FlatIndex {
    private FlatIndex() {}

    /** out [outShape] with out[i] = x[src[i]] (x read in row-major order, any layout); each src[i] in [0, x.numel()). */
    public static Tensor gather(Tensor x, int[] src, int[] outShape) { return gather("gather", x, src, outShape); }

    /** {@link #gather}, op naming the caller in refusals (flip, indexSelect, ...). */
    public static Tensor gather(String op, Tensor x, int[] src, int[] outShape) {
        x.check();
        long n = Shape.numel(Shape.check(outShape));
        if (src.length != n) throw new IllegalArgumentException(op + ": " + src.length + " indices for output " + Shape.str(outShape));
        check(op, src, x.numel(), x.shape);
        if (x.device() != Device.CPU) {
            CudaOps.require(op, x);
            Tensor out = Tensor.empty(Device.CUDA, DType.F32, outShape);
            if (n == 0) return out;
            try (Tensor xc = x.contiguous(); CudaOps.Block idx = CudaOps.Block.of(4L * src.length); Arena arena = Arena.ofConfined()) {
                Cuda.copyToDevice(idx.ptr(), arena.allocateFrom(JAVA_INT, src), 4L * src.length);
                Native.cudaEmbedGather(CudaOps.ptr(xc), xc.numel(), 1, idx.ptr(), src.length, CudaOps.ptr(out));
            } catch (RuntimeException e) {
                out.close();
                throw e;
            }
            return out;
        }
        double[] v = x.toDoubleArray(), o = new double[src.length];
        for (int i = 0; i < src.length; i++) o[i] = v[src[i]];
        return ofDoubles(o, x.dtype(), outShape);
    }

    /** dx [inShape] = the adjoint of gather(., src, g.shape()): dx[k] sums g[i] for src[i] == k, in double, i ascending. */
    public static Tensor scatterAdd(Tensor g, int[] src, int[] inShape) { return scatterAdd("scatterAdd", g, src, inShape); }

    /** {@link #scatterAdd}, op naming the caller in refusals. */
    public static Tensor scatterAdd(String op, Tensor g, int[] src, int[] inShape) {
        g.check();
        long in = Shape.numel(Shape.check(inShape));
        if (src.length != g.numel())
            throw new IllegalArgumentException(op + ": " + src.length + " indices for a gradient of " + g.numel() + " elements " + Shape.str(g.shape));
        check(op, src, in, inShape);
        if (g.device() != Device.CPU) {
            CudaOps.require(op, g);
            Tensor out = Tensor.empty(Device.CUDA, DType.F32, inShape);
            if (in == 0) return out;
            int v = Math.toIntExact(in);
            // the CSR of src by target: off[k]..off[k + 1) lists the i with src[i] == k, ascending (a counting sort)
            int[] off = new int[v + 1], pos = new int[src.length], at = new int[v];
            for (int k : src) off[k + 1]++;
            for (int k = 0; k < v; k++) { off[k + 1] += off[k]; at[k] = off[k]; }
            for (int i = 0; i < src.length; i++) pos[at[src[i]]++] = i;
            try (Tensor gc = g.contiguous(); CudaOps.Block offs = CudaOps.Block.of(4L * off.length); CudaOps.Block ps = CudaOps.Block.of(4L * Math.max(1, pos.length));
                 Arena arena = Arena.ofConfined()) {
                Cuda.copyToDevice(offs.ptr(), arena.allocateFrom(JAVA_INT, off), 4L * off.length);
                if (pos.length > 0) Cuda.copyToDevice(ps.ptr(), arena.allocateFrom(JAVA_INT, pos), 4L * pos.length);
                Native.cudaEmbedScatter(CudaOps.ptr(gc), src.length, 1, offs.ptr(), ps.ptr(), v, CudaOps.ptr(out));
            } catch (RuntimeException e) {
                out.close();
                throw e;
            }
            return out;
        }
        double[] gv = g.toDoubleArray(), acc = new double[Math.toIntExact(in)];
        for (int i = 0; i < src.length; i++) acc[src[i]] += gv[i];
        return ofDoubles(acc, g.dtype(), inShape);
    }

    private static void check(String op, int[] src, long n, int[] shape) {
        for (int i = 0; i < src.length; i++)
            if (src[i] < 0 || src[i] >= n)
                throw new IndexOutOfBoundsException(op + ": flat index " + src[i] + " (at " + i + ") out of range for " + n + " elements " + Shape.str(shape));
    }

    /** A CPU tensor of dtype holding v rounded once (float32) or as it is, written in one copy. */
    public static Tensor ofDoubles(double[] v, DType dtype, int[] shape) {
        if (dtype == DType.F64) return Tensor.of(v, shape);
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        return Tensor.of(f, shape);
    }
}
