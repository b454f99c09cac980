package fst4j.tensor;

import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;

/**
 * A reference-counted block of off-heap memory: host memory for {@link Device#CPU}, device memory from
 * {@link CudaMemory}'s caching allocator for {@link Device#CUDA}. A tensor and each of its views hold one
 * reference; the memory is freed (CUDA: returned to the cache) when the last one is closed. Not thread-safe for
 * concurrent close.
 */
final class Storage {
    /** Host memory; null for a CUDA storage (so host access to it fails in {@link #segment()}) and once freed. */
    private MemorySegment segment;
    /** CUDA: the device block (address-only); null for CPU storage and once freed. */
    private MemorySegment devicePtr;
    final long bytes;
    final Device device;
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
    int refs() { return refs; }

    void retain() {
        if (segment == null && devicePtr == null) throw new IllegalStateException("storage already freed");
        refs++;
    }

    void release() {
        if (--refs == 0 && device == Device.CUDA) {
            MemorySegment p = devicePtr;
            devicePtr = null;
            CudaMemory.release(p, bytes);
            return;
        }
        if (refs == 0) {
            MemorySegment s = segment;
            segment = null;
            Native.free(s);
            Memory.BYTES.addAndGet(-bytes);
            Memory.STORAGES.decrementAndGet();
        }
    }
}
