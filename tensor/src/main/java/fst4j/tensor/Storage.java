package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;

import java.lang.foreign.MemorySegment;

/**
 * A reference-counted block of off-heap memory. A tensor and each of its views hold one reference;
 * the memory is freed when the last one is closed. Not thread-safe for concurrent close.
 */
final class Storage {
    private MemorySegment segment;
    final long bytes;
    final Device device;
    private int refs = 1;

    Storage(long bytes, Device device) {
        if (device == Device.CUDA) {
            // No CUDA tensors yet: say what is missing (no shim, no library, no device), or that only the tensors are.
            if (!Cuda.isAvailable()) throw Cuda.unavailable();
            throw new UnsupportedOperationException("CUDA tensors are not implemented yet (the device itself is usable: " + Cuda.status() + ")");
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

    MemorySegment segment() {
        MemorySegment s = segment;
        if (s == null) throw new IllegalStateException("storage already freed");
        return s;
    }

    void retain() {
        if (segment == null) throw new IllegalStateException("storage already freed");
        refs++;
    }

    void release() {
        if (--refs == 0) {
            MemorySegment s = segment;
            segment = null;
            Native.free(s);
            Memory.BYTES.addAndGet(-bytes);
            Memory.STORAGES.decrementAndGet();
        }
    }
}
