package fst4j.sparse;

import fst4j.tensor.DType;
import fst4j.tensor.Tensor;

import java.util.Arrays;

/** The mask computations behind {@link Sparsifier}, on the logical row-major values of a tensor. */
final class Masks {
    private Masks() {}

    /** A tensor seen as [outer, len, inner] around one axis: element (o, i, r) is at (o * len + i) * inner + r. */
    record Lines(int outer, int len, int inner) {
        static Lines of(int[] shape, int axis) {
            if (shape.length == 0) throw new IllegalArgumentException("a sparsifier needs rank >= 1, got a scalar");
            int a = normalize(axis, shape.length);
            int outer = 1, inner = 1;
            for (int d = 0; d < a; d++) outer = Math.multiplyExact(outer, shape[d]);
            for (int d = a + 1; d < shape.length; d++) inner = Math.multiplyExact(inner, shape[d]);
            return new Lines(outer, shape[a], inner);
        }
    }

    static int normalize(int axis, int rank) {
        int a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank) throw new IllegalArgumentException("axis " + axis + " out of range for rank " + rank);
        return a;
    }

    /**
     * x's values where the rule's selection depends on them, else null (the fixed patterns, Dense, a transposable mask
     * between refreshes): then nothing is copied off a device.
     */
    static double[] values(Sparsifier s, Tensor x) {
        boolean needed = switch (s) {
            case Sparsifier.Dense d -> false;
            case Sparsifier.Fixed24 f -> false;
            case AuthorsFixed24 a -> false;
            case Transposable24 t -> t.refreshDue(x.shape());
            case Sparsifier.Custom c -> c.readsValues();
            default -> true;
        };
        return needed ? x.toDoubleArray() : null;
    }

    /**
     * {@link Sparsifier#apply}: the kernels where they take the rule and tensor (magnitude 2:4 of a float32 matrix, the
     * fixed patterns on the CPU), else the host selection, applied on the device by one select off the CPU.
     */
    static Tensor apply(Sparsifier s, Tensor x) {
        Tensor t = switch (s) {
            case Sparsifier.Magnitude24 m -> magnitude24Kernel(x, m.axis());
            case Sparsifier.SortMagnitude24 m -> magnitude24Kernel(x, m.axis());
            // on CUDA one kernel, the host rule's selection (CudaSparseTest); elsewhere the host selection below
            case Sparsifier.MagnitudeNM m when x.device() == fst4j.tensor.Device.CUDA && x.dtype() == DType.F32 ->
                    fst4j.tensor.CudaOps.pruneNM(x, m.axis(), m.n(), m.m());
            // on the CPU the shim's fst_prune_nm, the same selection (MagnitudeNMNativeTest); float64 takes the host path
            case Sparsifier.MagnitudeNM m when nativeNM && nativeFloat(x) -> magnitudeNMNative(x, m);
            default -> null;
        };
        if (t != null) return t;
        if (x.device() != fst4j.tensor.Device.CPU && x.dtype() == DType.F32) return applyBySelect(s, x);
        if (s instanceof Sparsifier.Custom c && !c.readsValues() && nativeFloat(x)) return applyBySelect(s, x);
        t = s instanceof Sparsifier.TopK k ? topKNative(k, x) : fixedPatternNative(s, x);
        return t != null ? t : applyOnHost(s, x);
    }

    /** Whether float32 CPU tensors take fst_prune_nm for {@link Sparsifier.MagnitudeNM} (tests switch it off for the host rule). */
    static boolean nativeNM = !Boolean.getBoolean("fst4j.nm.java");

    /**
     * Magnitude N:M of a float32 CPU tensor by the shim (fst_prune_nm over x seen as [outer, len, inner] around the axis;
     * a non-contiguous x is copied first): x where kept, +0.0 elsewhere, the host rule's selection bit for bit.
     */
    private static Tensor magnitudeNMNative(Tensor x, Sparsifier.MagnitudeNM m) {
        Lines l = Lines.of(x.shape(), m.axis());   // refuses a scalar and an axis out of range, as the host path
        Tensor out = Tensor.empty(x.shape());
        if (out.numel() == 0) return out;
        try (Tensor xc = x.contiguous()) {
            fst4j.shim.Native.pruneNM(xc.data(), out.data(), l.outer(), l.len(), l.inner(), m.n(), m.m(), fst4j.tensor.Blas.threads());
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
        return out;
    }

    /**
     * Magnitude 2:4 of a float32 matrix by the 2:4 kernels, which make the same selection bit for bit as the host path
     * (NativePruneTest, CudaSparseTest): on CUDA fst_k_prune24 along rows (axis 1) or fst_k_prune24_t along columns
     * (axis 0); on the CPU the shim's fused prune (prune.c) with its masked dense output, along rows, or on the
     * transpose for axis 0. Null where neither applies and the host path must run (another rank or dtype, no shim, or
     * an axis a matrix does not have, which that path then reports).
     */
    private static Tensor magnitude24Kernel(Tensor x, int axis) {
        if (x.dim() != 2 || x.dtype() != DType.F32) return null;
        boolean rows = axis == 1 || axis == -1;
        if (!rows && axis != 0 && axis != -2) return null;
        if (x.device() == fst4j.tensor.Device.CUDA)
            return rows ? fst4j.tensor.CudaOps.prune24Masked(x) : fst4j.tensor.CudaOps.prune24TransposedMasked(x);
        if (x.device() != fst4j.tensor.Device.CPU || !fst4j.shim.Native.isLoaded()) return null;
        int threads = fst4j.tensor.Blas.threads();
        if (rows) {
            Tensor out = Tensor.empty(x.shape());
            try (Compressed24 c = Compressed24.pruneCompress(x, out, threads)) {
                return out;
            } catch (RuntimeException | Error e) {
                out.close();
                throw e;
            }
        }
        try (Tensor xt = x.t(); Tensor out = Tensor.empty(x.size(1), x.size(0))) {
            try (Compressed24 c = Compressed24.pruneCompress(xt, out, threads); Tensor back = out.t()) { return back.contiguous(); }
        }
    }

    /**
     * apply for a float32 tensor off the CPU, or on the CPU for a rule that reads no values: the kept set selected on
     * the host ({@link #values} copied down only where needed), made a 0/1 mask on x's device, and x where the mask is
     * 1, +0.0 elsewhere, by the device's or the shim's select (ReLU's backward with the mask as the gate: a kept NaN
     * stays NaN, a pruned one is +0.0, as {@link #applyOnHost}).
     */
    private static Tensor applyBySelect(Sparsifier s, Tensor x) {
        Tensor ready = s instanceof Sparsifier.Custom c && !c.readsValues() ? c.keptMask(x) : null;
        if (ready != null) {
            if (!java.util.Arrays.equals(ready.shape(), x.shape()) || ready.device() != x.device() || ready.dtype() != x.dtype() || ready.isClosed())
                throw new IllegalStateException("custom sparsifier " + s + " gave a kept mask " + fst4j.tensor.Shape.str(ready.shape()) + " "
                        + ready.dtype() + " on " + ready.device() + (ready.isClosed() ? " (closed)" : "") + " for a tensor "
                        + fst4j.tensor.Shape.str(x.shape()) + " " + x.dtype() + " on " + x.device());
            return fst4j.tensor.Elementwise.reluBackward(x, ready);
        }
        boolean[] keep = keep(s, x, values(s, x));
        try (Tensor m = materialize(keep, x, null)) { return fst4j.tensor.Elementwise.reluBackward(x, m); }
    }

    /**
     * apply of a fixed pattern (Eq. 7's {@link Sparsifier.Fixed24}, or {@link AuthorsFixed24}, whose call draws its
     * pattern as {@link #keep} would) to a float32 CPU tensor by the shim's fst_pattern24: x where kept, +0.0 elsewhere,
     * without copying the values through Java. Null for other rules, dtypes or devices, or without the shim.
     */
    private static Tensor fixedPatternNative(Sparsifier s, Tensor x) {
        if (!nativeFloat(x) || (!(s instanceof Sparsifier.Fixed24) && !(s instanceof AuthorsFixed24))) return null;
        Lines l = Lines.of(x.shape(), s.axis());   // checks the axis before any state moves
        int pattern = s instanceof AuthorsFixed24 a ? a.nextPattern() : -1;
        return alongLines(x, (src, out) -> fst4j.shim.Native.pattern24(src, out, l.outer(), l.len(), l.inner(), pattern, fst4j.tensor.Blas.threads()));
    }

    /**
     * apply of {@link Sparsifier.TopK} to a float32 CPU tensor by the shim's fst_topk (a selection per line, O(len)):
     * the same kept set as {@link #topK}, which sorts each line in Java. Null for other dtypes or devices, or without
     * the shim.
     */
    private static Tensor topKNative(Sparsifier.TopK s, Tensor x) {
        if (!nativeFloat(x)) return null;
        Lines l = Lines.of(x.shape(), s.axis());
        int k = topKCount(l.len(), s.ratio());
        return alongLines(x, (src, out) -> fst4j.shim.Native.topK(src, out, l.outer(), l.len(), l.inner(), k, fst4j.tensor.Blas.threads()));
    }

    /** Whether the shim's line kernels can take x: float32 on the CPU, with the shim loaded. */
    private static boolean nativeFloat(Tensor x) {
        return x.device() == fst4j.tensor.Device.CPU && x.dtype() == DType.F32 && fst4j.shim.Native.isLoaded();
    }

    /** A shim kernel from x's contiguous data into a new tensor of x's shape (not called for an empty x). */
    private interface LineKernel { void run(java.lang.foreign.MemorySegment src, java.lang.foreign.MemorySegment out); }

    /** The new tensor kernel writes from x (closed again if the kernel fails). */
    private static Tensor alongLines(Tensor x, LineKernel kernel) {
        Tensor out = Tensor.empty(x.shape());
        try (Tensor src = x.contiguous()) {
            if (out.numel() > 0) kernel.run(src.data(), out.data());
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /** How many of a line of len elements {@link Sparsifier.TopK} keeps: ceil(ratio * len), at most len. */
    static int topKCount(int len, double ratio) { return (int) Math.min(len, Math.ceil(ratio * len)); }

    /** apply by the host selection alone (the reference the native and device 2:4 kernels are tested against). */
    static Tensor applyOnHost(Sparsifier s, Tensor x) {
        double[] v = x.toDoubleArray();
        return materialize(keep(s, x, v), x, v);
    }

    static boolean[] keep(Sparsifier s, Tensor x, double[] v) {
        int[] shape = x.shape();
        return switch (s) {
            case Sparsifier.Dense d -> { boolean[] k = new boolean[Math.toIntExact(x.numel())]; Arrays.fill(k, true); yield k; }
            case Sparsifier.Magnitude24 m -> magnitude24(v, Lines.of(shape, m.axis()));
            case Sparsifier.SortMagnitude24 m -> magnitude24(v, Lines.of(shape, m.axis()));
            case Sparsifier.MagnitudeNM m -> magnitudeNM(v, Lines.of(shape, m.axis()), m.n(), m.m());
            case Sparsifier.Fixed24 f -> pattern(Lines.of(shape, f.axis()), (i, r) -> (i & 1) == 0);
            case Sparsifier.TopK t -> topK(v, Lines.of(shape, t.axis()), t.ratio());
            case Transposable24 t -> t.keep(v, shape, x::toDoubleArray);
            case Sparsifier.Custom c -> {
                Lines.of(shape, c.axis());   // a rank and axis the rule can group along, as for the built-in rules
                // the rule may scribble on its copies: apply still needs v
                boolean[] k = c.keep(c.readsValues() ? v.clone() : null, shape.clone());
                long n = x.numel();
                if (k == null || k.length != n)
                    throw new IllegalStateException("custom sparsifier " + c + " returned " + (k == null ? "null" : k.length + " flags")
                            + " for a tensor of " + n + " elements " + Arrays.toString(shape));
                yield k;
            }
            case AuthorsFixed24 a -> {
                Lines l = Lines.of(shape, a.axis());
                int p = a.nextPattern();
                yield pattern(l, (i, r) -> AuthorsFixed24.keeps(p, i, r));
            }
        };
    }

    /**
     * Builds the mask (values == null) or the pruned copy of x, in x's dtype, shape and device. The selection runs on
     * the host; for a CUDA x the result is copied up.
     */
    static Tensor materialize(boolean[] keep, Tensor x, double[] values) {
        Tensor host = materializeOnHost(keep, x, values);
        if (x.device() == fst4j.tensor.Device.CPU) return host;
        try (host) { return host.to(x.device()); }
    }

    private static Tensor materializeOnHost(boolean[] keep, Tensor x, double[] values) {
        int[] shape = x.shape();
        if (x.dtype() == DType.F64) {
            double[] o = new double[keep.length];
            for (int i = 0; i < o.length; i++) o[i] = keep[i] ? (values == null ? 1 : values[i]) : 0;
            return Tensor.of(o, shape);
        }
        float[] o = new float[keep.length];
        for (int i = 0; i < o.length; i++) o[i] = keep[i] ? (values == null ? 1 : (float) values[i]) : 0;
        return Tensor.of(o, shape);
    }

    static boolean[] magnitude24(double[] v, Lines l) {
        boolean[] keep = new boolean[v.length];
        for (int o = 0; o < l.outer(); o++)
            for (int r = 0; r < l.inner(); r++) {
                int base = o * l.len() * l.inner() + r;
                for (int g = 0; g < l.len(); g += 4) top2(v, keep, base + g * l.inner(), l.inner(), Math.min(4, l.len() - g));
            }
        return keep;
    }

    /** Keeps the 2 largest |v| of the n (<= 4) elements base, base + stride, ...; lower index wins ties. */
    static void top2(double[] v, boolean[] keep, int base, int stride, int n) {
        if (n <= 2) {
            for (int i = 0; i < n; i++) keep[base + i * stride] = true;
            return;
        }
        int b1 = -1, b2 = -1;
        double m1 = 0, m2 = 0;
        for (int i = 0; i < n; i++) {
            double a = Math.abs(v[base + i * stride]);
            if (b1 < 0 || Double.compare(a, m1) > 0) { b1 = i; m1 = a; }
        }
        for (int i = 0; i < n; i++) {
            if (i == b1) continue;
            double a = Math.abs(v[base + i * stride]);
            if (b2 < 0 || Double.compare(a, m2) > 0) { b2 = i; m2 = a; }
        }
        keep[base + b1 * stride] = true;
        keep[base + b2 * stride] = true;
    }

    /**
     * {@link Sparsifier.MagnitudeNM}: in every group of m along the lines keep the n largest |v| (Double.compare, so NaN
     * largest; lower index wins ties). An element is kept when fewer than n others of its group beat it, which is top2's
     * choice for n = 2, m = 4; a short last group is compared among its real elements only (zero padding, being later
     * and of magnitude 0, never beats one), so it keeps min(n, its length).
     */
    static boolean[] magnitudeNM(double[] v, Lines l, int n, int m) {
        boolean[] keep = new boolean[v.length];
        double[] a = new double[m];
        for (int o = 0; o < l.outer(); o++)
            for (int r = 0; r < l.inner(); r++) {
                int base = o * l.len() * l.inner() + r;
                for (int g = 0; g < l.len(); g += m) {
                    int cnt = Math.min(m, l.len() - g);
                    for (int j = 0; j < cnt; j++) a[j] = Math.abs(v[base + (g + j) * l.inner()]);
                    for (int j = 0; j < cnt; j++) {
                        int beaten = 0;
                        for (int q = 0; q < cnt; q++) {
                            if (q == j) continue;
                            int c = Double.compare(a[q], a[j]);
                            if (c > 0 || (c == 0 && q < j)) beaten++;
                        }
                        if (beaten < n) keep[base + (g + j) * l.inner()] = true;
                    }
                }
            }
        return keep;
    }

    interface Position { boolean keeps(long i, long row); }

    static boolean[] pattern(Lines l, Position p) {
        boolean[] keep = new boolean[l.outer() * l.len() * l.inner()];
        for (int o = 0; o < l.outer(); o++)
            for (int i = 0; i < l.len(); i++)
                for (int r = 0; r < l.inner(); r++)
                    keep[(o * l.len() + i) * l.inner() + r] = p.keeps(i, (long) o * l.inner() + r);
        return keep;
    }

    static boolean[] topK(double[] v, Lines l, double ratio) {
        boolean[] keep = new boolean[v.length];
        int k = topKCount(l.len(), ratio);
        Integer[] idx = new Integer[l.len()];
        double[] a = new double[l.len()];
        for (int o = 0; o < l.outer(); o++)
            for (int r = 0; r < l.inner(); r++) {
                int base = o * l.len() * l.inner() + r;
                for (int i = 0; i < l.len(); i++) { idx[i] = i; a[i] = Math.abs(v[base + i * l.inner()]); }
                Arrays.sort(idx, (p, q) -> { int c = Double.compare(a[q], a[p]); return c != 0 ? c : Integer.compare(p, q); });
                for (int j = 0; j < k; j++) keep[base + idx[j] * l.inner()] = true;
            }
        return keep;
    }
}
