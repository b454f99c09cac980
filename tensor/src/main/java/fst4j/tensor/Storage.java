package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A reference-counted block of off-heap memory: host memory for {@link Device#CPU}, device memory from
 * {@link CudaMemory}'s caching allocator for {@link Device#CUDA}. A tensor and each of its views hold one
 * reference; the memory is freed (CUDA: returned to the cache) when the last one is closed.
 * <p>
 * Thread-safe: the count is atomic (one atomic instruction per {@link #release}, one compare-and-set per
 * {@link #retain}), so views of one storage may be taken and closed from several threads at once (two threads
 * running an eval-mode forward of one module alias the same weights and cached tables) and the memory is freed
 * exactly once, by whichever release takes the count from 1 to 0. A retain never brings a freed storage back (0 stays
 * 0), and a release past zero throws instead of freeing again. {@link #version} is not atomic: in-place writes are
 * one thread's (a training step); concurrent forwards only read it.
 */
final class Storage {
    private static final VarHandle REFS;
    static {
        try {
            REFS = MethodHandles.lookup().findVarHandle(Storage.class, "refs", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** Host memory; null for a CUDA storage (so host access to it fails in {@link #segment()}) and once freed. */
    private MemorySegment segment;
    /** CUDA: the device block (address-only); null for CPU storage and once freed. */
    private MemorySegment devicePtr;
    final long bytes;
    final Device device;
    /** Tensors (views included) holding this storage; changed only through {@link #REFS}'s atomic operations. */
    private int refs = 1;
    /** In-place changes through fst4j's API (Tensor#version): autograd compares it with the value at save time. */
    int version;

    Storage(long bytes, Device device) {
        if (device == Device.CUDA) {
            // CudaUnavailableException ("CUDA is not available: <why>") when there is no shim, library or device
            this.devicePtr = CudaMemory.allocate(bytes);
            this.bytes = bytes;
            this.device = device;
            return;
        }
        if (device != Device.CPU) throw new UnsupportedOperationException("device " + device + " is not available in this build");
        this.bytes = bytes;
        this.device = device;
        this.segment = Native.malloc(bytes);
        Memory.BYTES.addAndGet(bytes);
        Memory.STORAGES.incrementAndGet();
        Memory.ALLOCATIONS.incrementAndGet();
        Memory.ALLOCATED_BYTES.addAndGet(bytes);
    }

    /** Host memory; throws for a freed storage and for a CUDA one (the check costs nothing on the CPU path). */
    MemorySegment segment() {
        MemorySegment s = segment;
        if (s == null) throw noHostMemory();
        return s;
    }

    private IllegalStateException noHostMemory() {
        if (devicePtr != null)
            return new IllegalStateException("tensor data is on the CUDA device: element access and host kernels need it on the host; "
                    + "copy it with to(Device.CPU) (toFloatArray() and item() copy by themselves)");
        return new IllegalStateException("storage already freed");
    }

    /** CUDA: the device block (address-only segment). */
    MemorySegment devicePointer() {
        MemorySegment p = devicePtr;
        if (p == null) throw device == Device.CUDA ? new IllegalStateException("storage already freed")
                : new IllegalStateException("tensor is on the CPU, not on the CUDA device");
        return p;
    }

    /** Tensors (views included) that hold this storage. */
    int refs() { return (int) REFS.getVolatile(this); }

    /**
     * One more reference, for a new view. A compare-and-set loop, not an increment: a count another thread has just
     * taken to 0 (the memory being freed) must stay 0, where an increment would hand out a view of freed memory.
     */
    void retain() {
        int n = (int) REFS.getVolatile(this);
        do {
            if (n <= 0) throw new IllegalStateException("storage already freed: no new view can be taken of it");
        } while (n != (n = (int) REFS.compareAndExchange(this, n, n + 1)));
    }

    /** Drops one reference; the release that takes the count to 0 frees the memory, on whichever thread it runs. */
    void release() {
        int before = (int) REFS.getAndAdd(this, -1);
        if (before > 1) return;
        if (before < 1) {
            REFS.getAndAdd(this, 1);   // back to where it was: the refusal changes nothing
            throw new IllegalStateException("storage of " + bytes + " bytes on " + device + " released more often than it was referenced"
                    + " (already freed): a tensor's reference was dropped twice");
        }
        if (device == Device.CUDA) {
            MemorySegment p = devicePtr;
            devicePtr = null;
            CudaMemory.release(p, bytes);
            return;
        }
        MemorySegment s = segment;
        segment = null;
        Native.free(s);
        Memory.BYTES.addAndGet(-bytes);
        Memory.STORAGES.decrementAndGet();
    }
}
