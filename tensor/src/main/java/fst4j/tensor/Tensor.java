package fst4j.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * An n-dimensional array in off-heap memory: storage + shape + strides (in elements) + offset.
 * Views (reshape, permute, slice, expand) share storage; {@link #contiguous()} copies when needed.
 * Tensors are {@link AutoCloseable}: close them, or let the {@link Scope} they were created in close
 * them. Any use of a closed tensor throws {@link IllegalStateException}.
 *
 * <p>Threads: a tensor may be read (ops that leave it as it is, views, {@link #alias()}) and closed from several threads
 * at once, as PyTorch's may: the count of references to its memory is atomic, and closing the same tensor twice, even
 * from two threads at the same moment, releases its reference once. A close drops one reference, not the memory: a read
 * through a reference that another thread closes meanwhile may find the memory freed under it (the last reference gone),
 * so a thread reading a tensor another thread may close (a module's or a cache's) reads through an alias of its own,
 * taken while the tensor is open, as MultiheadAttention's causal mask and InterpolateCache's tables are handed out; an
 * alias of a tensor whose memory is already freed is refused. Writes to the same memory (fill, copyFrom, in-place
 * ops) from two threads at once are not ordered for the caller, as in PyTorch; each {@link Scope} is its thread's own.
 *
 * <p>A tensor lives on one {@link Device}. CUDA tensors ({@link #empty(Device, DType, int...)}, {@link #to(Device)})
 * hold device memory from {@link CudaMemory}; views work the same on both devices, ops run on the device of their
 * inputs (mixing devices is an error: "device mismatch"), and data moves only through explicit copies:
 * {@link #to(Device)}, {@link #copyFrom(Tensor)} (across devices too), and {@link #toFloatArray()},
 * {@link #toDoubleArray()}, {@link #item()} and {@link #toString()}, which copy a CUDA tensor to the host by
 * themselves. Element access ({@code get}, {@code set}, {@code getFlat}) and {@link #segment()}/{@link #data()} on
 * a CUDA tensor throw {@link IllegalStateException} rather than copy one element at a time behind the caller's back.
 */
public final class Tensor implements AutoCloseable {
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfDouble D = ValueLayout.JAVA_DOUBLE_UNALIGNED;

    final Storage storage;
    final int[] shape;
    final long[] strides;
    final long offset;
    final DType dtype;
    /** Set once, by {@link #close}'s compare-and-set; read plainly by {@link #check} (a stale false only delays the refusal). */
    private boolean closed;
    Scope owner;

    private static final java.lang.invoke.VarHandle CLOSED;
    static {
        try {
            CLOSED = java.lang.invoke.MethodHandles.lookup().findVarHandle(Tensor.class, "closed", boolean.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    Tensor(Storage storage, int[] shape, long[] strides, long offset, DType dtype) {
        this.storage = storage;
        this.shape = shape;
        this.strides = strides;
        this.offset = offset;
        this.dtype = dtype;
        this.owner = Scope.register(this);
    }

    // ------------------------------------------------------------------ creation

    public static Tensor empty(DType dtype, int... shape) {
        int[] s = Shape.check(shape);
        return new Tensor(new Storage(byteSize(s, dtype), Device.CPU), s, Shape.contiguousStrides(s), 0, dtype);
    }

    /**
     * numel * element size, or IllegalArgumentException where it overflows a long: the wrapped product (0 for
     * [2^30, 2^30, 4] float32) would allocate a few bytes for a tensor whose native kernels then run far past them.
     */
    private static long byteSize(int[] s, DType dtype) {
        try {
            return Math.multiplyExact(Shape.numel(s), (long) dtype.bytes);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException("tensor too large: shape " + Shape.str(s) + " of " + dtype + " overflows a 64-bit byte count");
        }
    }

    public static Tensor empty(int... shape) { return empty(DType.F32, shape); }

    /** An uninitialised tensor on device (CUDA: from the caching allocator; CudaUnavailableException without CUDA). */
    public static Tensor empty(Device device, DType dtype, int... shape) {
        if (device == Device.CPU) return empty(dtype, shape);
        int[] s = Shape.check(shape);
        return new Tensor(new Storage(byteSize(s, dtype), device), s, Shape.contiguousStrides(s), 0, dtype);
    }

    public static Tensor zeros(Device device, DType dtype, int... shape) {
        if (device == Device.CPU) return zeros(dtype, shape);
        Tensor t = empty(device, dtype, shape);
        CudaOps.zero(t);
        return t;
    }

    public static Tensor zeros(DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        t.storage.segment().fill((byte) 0);
        return t;
    }

    public static Tensor zeros(int... shape) { return zeros(DType.F32, shape); }

    public static Tensor full(double value, DType dtype, int... shape) {
        Tensor t = empty(dtype, shape);
        t.fill(value);
        return t;
    }

    public static Tensor full(double value, int... shape) { return full(value, DType.F32, shape); }

    public static Tensor ones(int... shape) { return full(1.0, DType.F32, shape); }

    /** Ones of dtype (zeros had a dtype form, ones had none). */
    public static Tensor ones(DType dtype, int... shape) { return full(1.0, dtype, shape); }

    public static Tensor scalar(double value) { return full(value, DType.F32); }

    public static Tensor scalar(double value, DType dtype) { return full(value, dtype); }

    /** A float32 tensor holding a copy of data, in row-major order; with no shape, one value is a scalar. */
    public static Tensor of(float[] data, int... shape) {
        int[] s = Shape.check(shape);
        if (Shape.numel(s) != data.length) throw valuesForShape(data.length, s);
        Tensor t = empty(DType.F32, s);
        MemorySegment.copy(data, 0, t.storage.segment(), F, 0, data.length);
        return t;
    }

    /** A float64 tensor holding a copy of data, in row-major order; with no shape, one value is a scalar. */
    public static Tensor of(double[] data, int... shape) {
        int[] s = Shape.check(shape);
        if (Shape.numel(s) != data.length) throw valuesForShape(data.length, s);
        Tensor t = empty(DType.F64, s);
        MemorySegment.copy(data, 0, t.storage.segment(), D, 0, data.length);
        return t;
    }

    /** Without a shape the data is a scalar: Tensor.of(new float[]{1, 2, 3}) said only "3 values for shape []". */
    private static IllegalArgumentException valuesForShape(int n, int[] s) {
        return new IllegalArgumentException("shape mismatch: " + n + " values for shape " + Shape.str(s)
                + (s.length == 0 ? " (a scalar: give the shape after the data, e.g. Tensor.of(data, " + n + "))" : ""));
    }

    /** Integers 0..n-1 as float32. */
    public static Tensor arange(int n) {
        Tensor t = empty(n);
        for (int i = 0; i < n; i++) t.storage.segment().setAtIndex(F, i, i);
        return t;
    }

    /**
     * The tensors joined along axis (torch.cat(tensors, axis)): a new contiguous tensor. They need the same rank and
     * device and the same sizes on every other axis; the result is float64 if any of them is (as in arithmetic).
     */
    public static Tensor cat(int axis, Tensor... ts) {
        if (ts.length == 0) throw new IllegalArgumentException("cat of no tensors");
        Tensor f = ts[0].check();
        if (f.dim() == 0) throw new IllegalArgumentException("cat of scalars: unsqueeze(0) them first");
        int a = Shape.axis(axis, f.dim());
        DType type = DType.F32;
        long total = 0;
        for (Tensor t : ts) {
            t.check();
            boolean fits = t.dim() == f.dim();
            for (int d = 0; fits && d < f.dim(); d++) fits = d == a || t.shape[d] == f.shape[d];
            if (!fits) throw new IllegalArgumentException("shape mismatch: cat along axis " + a + " of " + Shape.str(f.shape) + " and " + Shape.str(t.shape));
            if (t.device() != f.device()) throw new IllegalArgumentException("device mismatch: cat of tensors on " + f.device() + " and " + t.device());
            if (t.dtype == DType.F64) type = DType.F64;
            total += t.shape[a];
        }
        int[] shape = f.shape.clone();
        shape[a] = Math.toIntExact(total);
        Tensor out = empty(f.device(), type, shape);
        try {
            int at = 0;
            for (Tensor t : ts) {   // each into its slice (a strided view past axis 0: written in place on CUDA too)
                int n = t.shape[a];
                try (Tensor dst = out.slice(a, at, at + n)) { dst.copyFrom(t); }
                at += n;
            }
            return out;
        } catch (RuntimeException | Error e) {
            out.close();
            throw e;
        }
    }

    /**
     * The tensors, all of one shape, stacked along a new axis (torch.stack(tensors, axis)): for rank r, axis is in
     * [-(r + 1), r], a negative one counting from the end of the result's r + 1 axes. A new contiguous tensor (cat of
     * unsqueezed views: float64 if any input is, one device; CUDA tensors too, as cat); scalars stack into a vector.
     */
    public static Tensor stack(int axis, Tensor... ts) {
        if (ts.length == 0) throw new IllegalArgumentException("stack of no tensors");
        Tensor f = ts[0].check();
        int r = f.dim(), a = axis < 0 ? axis + r + 1 : axis;
        if (a < 0 || a > r)
            throw new IllegalArgumentException("axis " + axis + " out of range for stack of rank-" + r + " tensors (from " + -(r + 1) + " to " + r + ")");
        for (int i = 1; i < ts.length; i++)
            if (!Arrays.equals(ts[i].check().shape, f.shape))
                throw new IllegalArgumentException("shape mismatch: stack needs tensors of one shape, got " + Shape.str(f.shape) + " (tensor 0) and "
                        + Shape.str(ts[i].shape) + " (tensor " + i + ")");
        Tensor[] u = new Tensor[ts.length];
        try {
            for (int i = 0; i < ts.length; i++) u[i] = ts[i].unsqueeze(a);
            return cat(a, u);
        } finally {
            for (Tensor t : u) if (t != null) t.close();
        }
    }

    // ------------------------------------------------------------------ identity

    public int[] shape() { check(); return shape.clone(); }
    public int dim() { return shape.length; }
    public int size(int axis) { check(); return shape[Shape.axis(axis, shape.length)]; }
    public long numel() { return Shape.numel(shape); }
    public DType dtype() { return dtype; }
    public Device device() { return storage.device; }
    public long[] strides() { return strides.clone(); }
    public long offset() { return offset; }
    public boolean isClosed() { return closed; }
    /** The scope that will close this tensor, or null if it is unowned (closed by its user). */
    public Scope owner() { return owner; }

    /**
     * Whether the strides are those of a fresh tensor of this shape ({@link Shape#contiguousStrides}; size-1 dimensions
     * aside). A size-0 dimension counts as 1 there, as it does in contiguousStrides: with {@code expect *= 0} a fresh
     * [3, 0, 2] was not contiguous, so every empty tensor with a zero past its first dimension failed to go to CUDA
     * ("copying into a non-contiguous CUDA view"), and with it a CUDA matmul with K = 0.
     */
    public boolean isContiguous() {
        long expect = 1;
        for (int i = shape.length - 1; i >= 0; i--) {
            if (shape[i] != 1 && strides[i] != expect) return false;
            expect *= Math.max(shape[i], 1);
        }
        return true;
    }

    /** Throws if this tensor was closed. Every public op calls it first. */
    public Tensor check() {
        if (closed) throw new IllegalStateException("tensor " + Shape.str(shape) + " is closed");
        return this;
    }

    /**
     * The storage segment (whole, not offset) for kernels in fst4j. It is valid only while this tensor is
     * open; do not keep it.
     */
    public MemorySegment segment() { check(); return storage.segment(); }

    /** Byte offset of element [0,...,0] inside {@link #segment()}. */
    public long byteOffset() { return offset * dtype.bytes; }

    /** The contiguous data of this tensor as a segment starting at element 0; requires isContiguous(). */
    public MemorySegment data() {
        check();
        if (!isContiguous()) throw new IllegalStateException("tensor is not contiguous; call contiguous() first");
        return storage.segment().asSlice(byteOffset(), numel() * dtype.bytes);
    }

    /**
     * Drops this tensor's reference to its memory (freed with the last view). A second close is a no-op, also when two
     * threads close the same tensor at once: one compare-and-set decides which of them releases the reference.
     */
    @Override
    public void close() {
        if (closed || !CLOSED.compareAndSet(this, false, true)) return;
        storage.release();
    }

    // ------------------------------------------------------------------ element access

    /** Linear element index (into storage) of a logical row-major index i. */
    long storageIndex(long i) {
        long off = offset;
        for (int d = shape.length - 1; d >= 0; d--) {
            int n = shape[d];
            off += (i % n) * strides[d];
            i /= n;
        }
        return off;
    }

    double getAt(long storageIndex) {
        MemorySegment s = storage.segment();
        return dtype == DType.F32 ? s.getAtIndex(F, storageIndex) : s.getAtIndex(D, storageIndex);
    }

    void setAt(long storageIndex, double v) {
        MemorySegment s = storage.segment();
        if (dtype == DType.F32) s.setAtIndex(F, storageIndex, (float) v);
        else s.setAtIndex(D, storageIndex, v);
    }

    private long index(int... idx) {
        check();
        if (idx.length != shape.length)
            throw new IllegalArgumentException("wrong rank: " + idx.length + " indices for shape " + Shape.str(shape));
        long off = offset;
        for (int d = 0; d < idx.length; d++) {
            int i = idx[d] < 0 ? idx[d] + shape[d] : idx[d];   // as torch's t[-1]: a negative index counts from the end
            if (i < 0 || i >= shape[d])
                throw new IndexOutOfBoundsException("index " + Arrays.toString(idx) + " out of bounds for shape " + Shape.str(shape));
            off += i * strides[d];
        }
        return off;
    }

    /** The element at idx (one index per axis; a negative index counts from the end of its axis, as torch's t[-1]). */
    public float get(int... idx) { return (float) getAt(index(idx)); }
    /** {@link #get} without rounding a float64 element to float. */
    public double getDouble(int... idx) { return getAt(index(idx)); }
    public void set(double v, int... idx) {
        long at = index(idx);
        setAt(at, v);   // refused on a device before it writes: counted after
        storage.version++;
    }

    /** The single value of a one-element tensor (a CUDA tensor is copied to the host). */
    public double item() {
        check();
        if (storage.device != Device.CPU) { try (Tensor h = to(Device.CPU)) { return h.item(); } }
        if (numel() != 1) throw new IllegalArgumentException("item() needs one element, shape is " + Shape.str(shape));
        return getAt(offset);
    }

    /** Logical element i in row-major order (any layout). */
    public double getFlat(long i) {
        check();
        if (i < 0 || i >= numel()) throw new IndexOutOfBoundsException("flat index " + i + " out of bounds for " + numel() + " elements");
        return getAt(storageIndex(i));
    }

    public void setFlat(long i, double v) {
        check();
        if (i < 0 || i >= numel()) throw new IndexOutOfBoundsException("flat index " + i + " out of bounds for " + numel() + " elements");
        setAt(storageIndex(i), v);
        storage.version++;
    }

    /** The values in row-major order (a CUDA tensor is copied to the host first). */
    public float[] toFloatArray() {
        check();
        if (storage.device != Device.CPU) { try (Tensor h = to(Device.CPU)) { return h.toFloatArray(); } }
        int n = Math.toIntExact(numel());
        float[] out = new float[n];
        if (dtype == DType.F32 && isContiguous()) {
            MemorySegment.copy(storage.segment(), F, byteOffset(), out, 0, n);
        } else {
            for (int i = 0; i < n; i++) out[i] = (float) getAt(storageIndex(i));
        }
        return out;
    }

    public double[] toDoubleArray() {
        check();
        if (storage.device != Device.CPU) { try (Tensor h = to(Device.CPU)) { return h.toDoubleArray(); } }
        int n = Math.toIntExact(numel());
        double[] out = new double[n];
        if (dtype == DType.F64 && isContiguous()) {
            MemorySegment.copy(storage.segment(), D, byteOffset(), out, 0, n);
        } else {
            for (int i = 0; i < n; i++) out[i] = getAt(storageIndex(i));
        }
        return out;
    }

    /** Fills every element (views write through to the shared storage). */
    public Tensor fill(double v) {
        check();
        if (storage.device != Device.CPU) {
            CudaOps.fill(this, v);   // refuses a layout it cannot fill before writing: counted after
            storage.version++;
            return this;
        }
        storage.version++;
        long n = numel();
        if (isContiguous() && dtype == DType.F32) {
            MemorySegment s = storage.segment();
            long base = offset;
            for (long i = 0; i < n; i++) s.setAtIndex(F, base + i, (float) v);
        } else {
            for (long i = 0; i < n; i++) setAt(storageIndex(i), v);
        }
        return this;
    }

    /**
     * Copies src (broadcast to this shape, any dtype, either device) into this tensor, in place; refused where this is
     * an expanded view (two of its elements one location). A src that shares
     * memory with this tensor is copied as it was before the call (NumPy's copyto semantics), e.g.
     * {@code t.slice(0, 1, n).copyFrom(t.slice(0, 0, n - 1))} shifts t by one.
     */
    public Tensor copyFrom(Tensor src) {
        check(); src.check();
        if (sameView(src)) { storage.version++; return this; }   // onto itself: nothing changes
        // several elements of an expanded view are one location: the last write won, so an in-place add into
        // zeros(1, 3).expand(2, 3) kept one row's sum, silently (PyTorch refuses this too)
        for (int d = 0; d < shape.length; d++)
            if (strides[d] == 0 && shape[d] > 1)
                throw new IllegalArgumentException("in-place write into a " + Shape.str(shape) + " view whose elements share memory (stride 0 along axis "
                        + d + ", an expand): several values would go to one element; write into a copy() instead");
        Tensor s = src.expand(shape);   // before the version moves: a src of a shape that does not broadcast writes nothing
        try {
            if (storage.device != Device.CPU || src.storage.device != Device.CPU) {
                // the device copies (a memcpy, a parallel kernel) have no defined result on overlapping memory
                if (overlaps(src)) { try (Tensor c = src.copy()) { CudaOps.copyInto(this, c); } }
                else CudaOps.copyInto(this, src);
                storage.version++;   // after: a layout the device copy refuses writes nothing
                return this;
            }
            storage.version++;
            // nothing to copy; an empty view may lie past its 0-byte storage (cat of [k, 0] pieces), where the
            // segment copy below threw IndexOutOfBoundsException
            if (numel() == 0) return this;
            if (StridedCopy.tryCopy(this, s)) return this;   // float32 on the shim's threads
            if (dtype == s.dtype && isContiguous() && s.isContiguous()) {
                // MemorySegment.copy reads overlapping memory as if through a temporary copy
                MemorySegment.copy(s.storage.segment(), s.byteOffset(), storage.segment(), byteOffset(), numel() * dtype.bytes);
            } else if (overlaps(s)) {
                // the strided loop reads elements it already overwrote (the shifted diagonal of a matrix, t = t^T gave garbage)
                try (Tensor c = s.copy()) { stridedCopy(this, c); }
            } else {
                stridedCopy(this, s);
            }
        } finally {
            s.close();
        }
        return this;
    }

    /** The same elements in the same order: this tensor's storage, offset, shape and strides. */
    private boolean sameView(Tensor o) {
        return storage == o.storage && offset == o.offset && dtype == o.dtype && Arrays.equals(shape, o.shape) && Arrays.equals(strides, o.strides);
    }

    /**
     * How many times this tensor's memory has been changed in place through fst4j (fill, copyFrom, addInPlace, the
     * "...Into" functions, a GEMM's output, an optimizer step); all views of one storage share it, as PyTorch's
     * {@code _version}. A graph node records it for each tensor it saves, and backward refuses to run when it moved.
     */
    public int version() { return storage.version; }

    /**
     * An opaque token for this tensor's memory: the same object for every view of one storage, another for any other
     * storage, even one that reuses freed memory (the CUDA caching allocator hands a block back). With {@link #version()}
     * it tells a cache whether what it derived from a tensor still holds. It keeps no memory alive (a cache may hold
     * it weakly, as the Eq. 1-3 node's kept S(W) does).
     */
    public Object storageIdentity() { return storage; }

    /**
     * Counts an in-place change made outside fst4j's API (a write through {@link #data()} or {@link #segment()}, a
     * native library of one's own) in {@link #version()}, so that a graph holding this tensor for backward notices it.
     */
    public Tensor markModified() {
        check();
        storage.version++;
        return this;
    }

    /**
     * Whether this view and o may share memory: the same storage and intersecting byte ranges (views that interleave
     * without sharing an element, like two columns of one matrix, count; empty views never do). An op that writes one
     * tensor while it reads the other reads from a copy.
     */
    public boolean overlaps(Tensor o) {
        if (storage != o.storage || numel() == 0 || o.numel() == 0) return false;
        long[] a = byteSpan(), b = o.byteSpan();
        return a[0] < b[1] && b[0] < a[1];
    }

    /** [first byte, one past the last byte] of the elements this non-empty view touches in its storage. */
    private long[] byteSpan() {
        long lo = offset, hi = offset;   // in bounds of the storage (every view is checked when made), so no overflow
        for (int d = 0; d < shape.length; d++) {
            long span = (shape[d] - 1L) * strides[d];
            if (span < 0) lo += span; else hi += span;
        }
        return new long[]{lo * dtype.bytes, (hi + 1) * dtype.bytes};
    }

    /**
     * dst[i] = src[i] over the logical index, both any layout of the same shape: an odometer over the
     * outer axes and a tight loop over the last one (float32 to float32 without conversion).
     */
    private static void stridedCopy(Tensor dst, Tensor src) {
        int r = dst.shape.length;
        long n = dst.numel();
        if (n == 0) return;
        if (r == 0) { dst.setAt(dst.offset, src.getAt(src.offset)); return; }
        int inner = dst.shape[r - 1];
        long ds = dst.strides[r - 1], ss = src.strides[r - 1];
        int[] idx = new int[r];
        MemorySegment dseg = dst.storage.segment(), sseg = src.storage.segment();
        boolean f32 = dst.dtype == DType.F32 && src.dtype == DType.F32;
        for (long done = 0; done < n; done += inner) {
            long doff = dst.offset, soff = src.offset;
            for (int d = 0; d < r - 1; d++) { doff += idx[d] * dst.strides[d]; soff += idx[d] * src.strides[d]; }
            if (f32) {
                if (ds == 1 && ss == 1) MemorySegment.copy(sseg, soff * 4, dseg, doff * 4, (long) inner * 4);
                else for (int j = 0; j < inner; j++) dseg.setAtIndex(F, doff + j * ds, sseg.getAtIndex(F, soff + j * ss));
            } else {
                for (int j = 0; j < inner; j++) dst.setAt(doff + j * ds, src.getAt(soff + j * ss));
            }
            for (int d = r - 2; d >= 0; d--) {
                if (++idx[d] < dst.shape[d]) break;
                idx[d] = 0;
            }
        }
    }

    // ------------------------------------------------------------------ views

    private Tensor view(int[] newShape, long[] newStrides, long newOffset) {
        check();
        // an empty view reads and writes nothing: its offset could lie past its storage (rows 2..4 of a [6, 0] tensor at
        // element 2 of 0 bytes), and every native slice of it (matmul with K = 0, im2col, toFloatArray) was refused as
        // an out-of-bounds segment access; at 0 it is a view like any empty tensor's
        if (Shape.numel(newShape) == 0) newOffset = 0;
        storage.retain();
        return new Tensor(storage, newShape, newStrides, newOffset, dtype);
    }

    /** A new reference to the same data and layout (close it independently). */
    public Tensor alias() { return view(shape.clone(), strides.clone(), offset); }

    /**
     * Whether this tensor is the only one holding its memory and covers all of it contiguously: then whoever takes it
     * over (autograd adopting a fresh gradient instead of copying it) cannot be seen through any other tensor.
     */
    public boolean isSoleOwner() {
        check();
        return storage.refs() == 1 && offset == 0 && isContiguous() && numel() * dtype.bytes == storage.bytes;
    }

    /** Same data, new shape; one dimension may be -1. Copies only when the layout is not contiguous. */
    public Tensor reshape(int... newShape) {
        check();
        int[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("only one dimension can be -1 in " + Arrays.toString(newShape));
                infer = i;
            } else if (s[i] < 0) {
                throw new IllegalArgumentException("negative dimension " + s[i] + " in shape " + Arrays.toString(newShape));
            } else known *= s[i];
        }
        if (infer >= 0) {
            if (known == 0 || numel() % known != 0)
                throw new IllegalArgumentException("shape mismatch: cannot reshape " + Shape.str(shape) + " to " + Arrays.toString(newShape));
            s[infer] = (int) (numel() / known);
        }
        if (Shape.numel(s) != numel())
            throw new IllegalArgumentException("shape mismatch: cannot reshape " + Shape.str(shape) + " (" + numel() + " elements) to " + Arrays.toString(newShape));
        if (isContiguous()) return view(s, Shape.contiguousStrides(s), offset);
        Tensor c = contiguous();
        Tensor r = c.view(s, Shape.contiguousStrides(s), c.offset);
        c.close();
        return r;
    }

    public Tensor flatten() { return reshape(-1); }

    public Tensor permute(int... axes) {
        check();
        if (axes.length != shape.length)
            throw new IllegalArgumentException("wrong rank: permute " + Arrays.toString(axes) + " of shape " + Shape.str(shape));
        int[] s = new int[axes.length];
        long[] st = new long[axes.length];
        boolean[] seen = new boolean[axes.length];
        for (int i = 0; i < axes.length; i++) {
            int a = Shape.axis(axes[i], shape.length);
            if (seen[a]) throw new IllegalArgumentException("permute repeats axis " + a + ": " + Arrays.toString(axes));
            seen[a] = true;
            s[i] = shape[a];
            st[i] = strides[a];
        }
        return view(s, st, offset);
    }

    public Tensor transpose(int a, int b) {
        int[] axes = new int[shape.length];
        for (int i = 0; i < axes.length; i++) axes[i] = i;
        a = Shape.axis(a, shape.length);
        b = Shape.axis(b, shape.length);
        axes[a] = b;
        axes[b] = a;
        return permute(axes);
    }

    /**
     * A view of this tensor's storage with the given shape, element strides (>= 0) and element offset, as PyTorch's
     * as_strided: every element it reaches must lie inside the storage (checked). Overlapping views are allowed.
     */
    public Tensor asStrided(int[] newShape, long[] newStrides, long newOffset) {
        check();
        if (newShape.length != newStrides.length)
            throw new IllegalArgumentException("asStrided: " + newShape.length + " sizes but " + newStrides.length + " strides");
        long last = newOffset;
        boolean empty = false, overflow = false;
        for (int d = 0; d < newShape.length; d++) {
            if (newShape[d] < 0 || newStrides[d] < 0)
                throw new IllegalArgumentException("asStrided: negative size or stride in " + Shape.str(newShape) + " / " + Arrays.toString(newStrides));
            if (newShape[d] == 0) empty = true;
            // exact: a wrapped sum (stride 2^62) would pass the bounds test below and hand native copies a view past the storage
            else try { last = Math.addExact(last, Math.multiplyExact(newShape[d] - 1L, newStrides[d])); } catch (ArithmeticException e) { overflow = true; }
        }
        if (newOffset < 0 || (!empty && (overflow || last >= storage.bytes / dtype.bytes)))
            throw new IndexOutOfBoundsException("asStrided: shape " + Shape.str(newShape) + ", strides " + Arrays.toString(newStrides)
                    + ", offset " + newOffset + " reach past the storage of " + storage.bytes / dtype.bytes + " elements");
        return view(newShape.clone(), newStrides.clone(), newOffset);
    }

    /** Transpose of a matrix (rank 2). */
    public Tensor t() {
        if (shape.length != 2) throw new IllegalArgumentException("wrong rank: t() needs a matrix, shape is " + Shape.str(shape));
        return transpose(0, 1);
    }

    /**
     * Elements start, start+step, ... (< end) along axis, as Python's {@code t[start:end:step]}: a negative start or end
     * counts from the end of the axis ({@code slice(0, -2, n)} is {@code t[-2:]}: -1 is the last element, and "to the
     * end" is the axis size, as end 0 means 0). Unlike Python, bounds past the axis are refused rather than clipped, and
     * start may not pass end.
     */
    public Tensor slice(int axis, int start, int end, int step) {
        check();
        int a = Shape.axis(axis, shape.length);
        if (step <= 0) throw new IllegalArgumentException("slice step must be positive, got " + step);
        int n = shape[a];
        int from = start < 0 ? start + n : start, to = end < 0 ? end + n : end;   // no overflow: n >= 0
        if (from < 0 || to > n || from > to)
            throw new IndexOutOfBoundsException("slice [" + start + ", " + end + ")" + (from != start || to != end ? " (that is [" + from + ", " + to + "))" : "")
                    + " out of bounds for axis " + a + " of size " + n + " (shape " + Shape.str(shape) + ")"
                    + (from > to && from >= 0 && to <= n ? ": start after end" : ""));
        start = from;
        end = to;
        int[] s = shape.clone();
        long[] st = strides.clone();
        s[a] = (int) (((long) end - start + step - 1) / step);   // long: a large step overflowed int to an empty slice
        st[a] = strides[a] * step;
        return view(s, st, offset + start * strides[a]);
    }

    /** {@link #slice(int, int, int, int)} with step 1 (negative start and end count from the end of the axis). */
    public Tensor slice(int axis, int start, int end) { return slice(axis, start, end, 1); }

    /**
     * Broadcasts size-1 (or missing leading) dimensions to newShape without copying (stride 0). As torch's, -1 keeps an
     * existing axis's size (not allowed for a new leading axis).
     */
    public Tensor expand(int... newShape) {
        check();
        if (newShape.length < shape.length)
            throw new IllegalArgumentException("shape mismatch: cannot expand " + Shape.str(shape) + " to " + Arrays.toString(newShape));
        int lead = newShape.length - shape.length;
        newShape = newShape.clone();
        for (int i = lead; i < newShape.length; i++) if (newShape[i] == -1) newShape[i] = shape[i - lead];
        long[] st = new long[newShape.length];
        for (int i = 0; i < newShape.length; i++) {
            if (i < lead) { st[i] = 0; continue; }
            int d = shape[i - lead];
            if (d == newShape[i]) st[i] = strides[i - lead];
            else if (d == 1) st[i] = 0;
            else throw new IllegalArgumentException("shape mismatch: cannot expand " + Shape.str(shape) + " to " + Arrays.toString(newShape));
        }
        return view(Shape.check(newShape), st, offset);
    }

    public Tensor unsqueeze(int axis) {
        check();
        int a = axis < 0 ? axis + shape.length + 1 : axis;
        if (a < 0 || a > shape.length) throw new IllegalArgumentException("axis " + axis + " out of range for unsqueeze of rank " + shape.length);
        int[] s = new int[shape.length + 1];
        long[] st = new long[shape.length + 1];
        for (int i = 0, j = 0; i < s.length; i++) {
            if (i == a) { s[i] = 1; st[i] = 0; }
            else { s[i] = shape[j]; st[i] = strides[j]; j++; }
        }
        return view(s, st, offset);
    }

    /** Drops axis if its size is 1; otherwise this tensor's shape is kept (a new view), as torch's {@code squeeze(dim)}. */
    public Tensor squeeze(int axis) {
        check();
        int a = Shape.axis(axis, shape.length);
        if (shape[a] != 1) return view(shape.clone(), strides.clone(), offset);
        int[] s = new int[shape.length - 1];
        long[] st = new long[shape.length - 1];
        for (int i = 0, j = 0; i < shape.length; i++) if (i != a) { s[j] = shape[i]; st[j] = strides[i]; j++; }
        return view(s, st, offset);
    }

    /** This tensor if already contiguous (as a new reference), else a contiguous copy. */
    public Tensor contiguous() {
        check();
        if (isContiguous()) return alias();
        return copy();
    }

    /** A contiguous copy (new storage, same device). */
    public Tensor copy() {
        check();
        Tensor out = empty(storage.device, dtype, shape);
        out.copyFrom(this);
        return out;
    }

    /** This tensor as type: an alias sharing its memory when it already is (writes go through, as PyTorch's .to), else a contiguous copy. */
    public Tensor to(DType type) {
        check();
        if (type == dtype) return alias();
        Tensor out = empty(storage.device, type, shape);
        out.copyFrom(this);
        return out;
    }

    /** This tensor on device: an alias when it is already there, else a contiguous copy (host <-> device). */
    public Tensor to(Device device) {
        check();
        if (device == storage.device) return alias();
        Tensor out = empty(device, dtype, shape);
        out.copyFrom(this);
        return out;
    }

    // ------------------------------------------------------------------ ops (see Elementwise, Reduce, Blas)

    public Tensor add(Tensor o) { return Elementwise.add(this, o); }
    /** this += o (o broadcast to this shape), in place; returns this. Writes through every view of this storage. */
    public Tensor addInPlace(Tensor o) { return Elementwise.addInPlace(this, o); }
    public Tensor sub(Tensor o) { return Elementwise.sub(this, o); }
    public Tensor mul(Tensor o) { return Elementwise.mul(this, o); }
    public Tensor div(Tensor o) { return Elementwise.div(this, o); }
    public Tensor add(double s) { return Elementwise.addScalar(this, s); }
    public Tensor mul(double s) { return Elementwise.mulScalar(this, s); }
    public Tensor neg() { return Elementwise.neg(this); }
    public Tensor exp() { return Elementwise.exp(this); }
    public Tensor log() { return Elementwise.log(this); }
    public Tensor sqrt() { return Elementwise.sqrt(this); }
    public Tensor pow(double p) { return Elementwise.pow(this, p); }
    public Tensor relu() { return Elementwise.relu(this); }
    public Tensor sigmoid() { return Elementwise.sigmoid(this); }
    public Tensor tanh() { return Elementwise.tanh(this); }
    public Tensor abs() { return Elementwise.abs(this); }
    public Tensor matmul(Tensor o) { return Blas.matmul(this, o); }
    public Tensor sum() { return Reduce.sum(this, false); }
    /** Sum over axes (none given: all of them), accumulated in double; keepDim keeps them as size 1. */
    public Tensor sum(boolean keepDim, int... axes) { return Reduce.sum(this, keepDim, axes); }
    public Tensor mean() { return Reduce.mean(this, false); }
    /** Mean over axes (none given: all of them), as {@link #sum(boolean, int...)}. */
    public Tensor mean(boolean keepDim, int... axes) { return Reduce.mean(this, keepDim, axes); }
    /** The largest values over axes (none given: all of them), NaN the largest; the values only ({@link #argmax} for the index). */
    public Tensor max(boolean keepDim, int... axes) { return Reduce.max(this, keepDim, axes); }
    /**
     * Index of the largest value along axis, the first on ties and the first NaN where there is one, as float32 values
     * (there is no integer dtype), the axis removed.
     */
    public Tensor argmax(int axis) { return Reduce.argmax(this, axis, false); }
    /** Unbiased variance (divided by n - 1, as PyTorch's default) over axes (none given: all of them). */
    public Tensor var(boolean keepDim, int... axes) { return Reduce.var(this, keepDim, 1, axes); }

    // ------------------------------------------------------------------ comparison

    /**
     * Whether other has this shape and the same values, as torch.equal: false for another shape; NaN equals nothing
     * (itself included), -0.0 equals 0.0. Values compare exactly, a float32 one widened to float64 (so the dtypes may
     * differ). A CUDA tensor is copied to the host; both must be on one device.
     */
    public boolean equal(Tensor other) {
        sameDevice("equal", other);
        if (!Arrays.equals(shape, other.shape)) return false;
        double[] a = toDoubleArray(), b = other.toDoubleArray();
        for (int i = 0; i < a.length; i++) if (a[i] != b[i]) return false;
        return true;
    }

    /** {@link #allclose(Tensor, double, double)} with torch's defaults, rtol 1e-5 and atol 1e-8. */
    public boolean allclose(Tensor other) { return allclose(other, 1e-5, 1e-8, false); }

    /**
     * Whether every element of this tensor is within atol + rtol * |other| of other's, as torch.allclose with
     * equal_nan=False: NaN is close to nothing, an infinity only to itself. Unlike torch the shapes must be equal (no
     * broadcasting: IllegalArgumentException, a comparison of the wrong tensors being a bug rather than a false). Computed
     * in float64; a CUDA tensor is copied to the host, both must be on one device.
     */
    public boolean allclose(Tensor other, double rtol, double atol) { return allclose(other, rtol, atol, false); }

    /** {@link #allclose(Tensor, double, double)}, where equalNan counts NaN against NaN as close (torch's equal_nan). */
    public boolean allclose(Tensor other, double rtol, double atol, boolean equalNan) {
        sameDevice("allclose", other);
        if (!(rtol >= 0) || !(atol >= 0))   // NaN too: it made every comparison false
            throw new IllegalArgumentException("allclose: rtol and atol must be >= 0, got rtol " + rtol + ", atol " + atol);
        if (!Arrays.equals(shape, other.shape))
            throw new IllegalArgumentException("shape mismatch: allclose of " + Shape.str(shape) + " with " + Shape.str(other.shape));
        double[] a = toDoubleArray(), b = other.toDoubleArray();
        for (int i = 0; i < a.length; i++) {
            double x = a[i], y = b[i];
            if (x == y || (equalNan && Double.isNaN(x) && Double.isNaN(y))) continue;   // equal infinities too
            // a NaN on either side, or an infinity against anything else, makes the test false
            if (!(Double.isFinite(y) && Math.abs(x - y) <= atol + rtol * Math.abs(y))) return false;
        }
        return true;
    }

    private void sameDevice(String op, Tensor other) {
        check(); other.check();
        if (storage.device != other.storage.device)
            throw new IllegalArgumentException("device mismatch: " + op + " of a " + storage.device + " tensor with a " + other.storage.device
                    + " one; move one with to(Device) first");
    }

    // ------------------------------------------------------------------ printing

    @Override
    public String toString() {
        if (closed) return "Tensor(closed, shape=" + Shape.str(shape) + ")";
        StringBuilder sb = new StringBuilder("tensor(");
        if (numel() <= 1000 && storage.device != Device.CPU) {
            try (Tensor h = to(Device.CPU)) { h.format(sb, 0, h.offset, 7); }
        } else if (numel() <= 1000) {
            format(sb, 0, offset, 7);
        } else {
            sb.append("... ").append(numel()).append(" values ...");
        }
        sb.append(", shape=").append(Shape.str(shape)).append(", dtype=").append(dtype.name().toLowerCase())
          .append(", device=").append(device().name().toLowerCase()).append(')');
        return sb.toString();
    }

    private void format(StringBuilder sb, int d, long off, int indent) {
        if (d == shape.length) { sb.append(fmt(getAt(off))); return; }
        sb.append('[');
        for (int i = 0; i < shape[d]; i++) {
            if (i > 0) {
                sb.append(d == shape.length - 1 ? ", " : ",\n" + " ".repeat(indent + d + 1));
            }
            format(sb, d + 1, off + i * strides[d], indent);
        }
        sb.append(']');
    }

    private static String fmt(double v) {
        if (v == Math.rint(v) && Math.abs(v) < 1e7) return String.format("%.1f", v);
        double a = Math.abs(v);
        if (a != 0 && (a < 1e-3 || a >= 1e6)) return String.format("%.4e", v);
        return String.format("%.4f", v);
    }

    // ---- nn ops (Conv, Pool, Norm, Loss) ----

    /** {@link Conv#conv2d(Tensor, Tensor, Tensor, int, int)}: this is x [N, Cin, H, W]; bias may be null. */
    public Tensor conv2d(Tensor w, Tensor bias, int stride, int padding) { return Conv.conv2d(this, w, bias, stride, padding); }
    /** {@link Pool#maxPool2d(Tensor, int, int, int)}: output and argmax indices. */
    public Pool.MaxPool2d maxPool2d(int k, int stride, int padding) { return Pool.maxPool2d(this, k, stride, padding); }
    public Tensor avgPool2d(int k, int stride, int padding) { return Pool.avgPool2d(this, k, stride, padding); }
    public Tensor adaptiveAvgPool2d(int outH, int outW) { return Pool.adaptiveAvgPool2d(this, outH, outW); }
    public Tensor softmax(int axis) { return Loss.softmax(this, axis); }
    public Tensor logSoftmax(int axis) { return Loss.logSoftmax(this, axis); }
}
