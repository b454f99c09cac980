package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.CudaException;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;

/**
 * The caching allocator behind CUDA tensors. cudaMalloc and cudaFree are slow (cudaFree synchronises the device),
 * and a training step frees and allocates the same sizes again at every step, so freed blocks are kept in bins by
 * rounded size and handed out again; {@link #emptyCache()} returns them to the device. Sizes are rounded up to a
 * multiple of 512 bytes up to 1 MiB, above that to an eighth of the power of two below the size (at most 12.5 %
 * waste, few distinct bins). A block is reused only for the same rounded size (no splitting).
 *
 * <p>Reuse is safe without events because every kernel and copy runs on the one (legacy default) stream: work
 * that used a block before it was freed is ordered before work that uses it next. When cudaMalloc fails, the cache
 * is emptied and the allocation tried once more. Device memory is never managed (unified) memory.
 * <p>
 * Thread-safe (every method holds the class's lock). Tensors of several host threads share the one stream, so a block
 * one thread frees is reused by another only after the work queued before the free.
 */
public final class CudaMemory {
    private CudaMemory() {}

    /** Counters: bytes held by live tensors, bytes cached for reuse (both rounded sizes), cudaMalloc calls, reuses. */
    public record Stats(long bytesInUse, long bytesCached, long deviceAllocations, long cacheHits) {}

    private static final Map<Long, ArrayDeque<MemorySegment>> FREE = new HashMap<>();
    private static long inUse, cached, mallocs, hits;

    /** The rounded size a request of bytes occupies (its bin). */
    static long roundUp(long bytes) {
        long b = Math.max(bytes, 1);
        if (b <= 1L << 20) return (b + 511) & ~511L;
        long step = Long.highestOneBit(b) >>> 3;
        return (b + step - 1) / step * step;
    }

    /** A device block of at least bytes (address-only segment); throws CudaUnavailableException without CUDA. */
    static synchronized MemorySegment allocate(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("negative size " + bytes);
        long size = roundUp(bytes);
        ArrayDeque<MemorySegment> bin = FREE.get(size);
        MemorySegment p;
        if (bin != null && !bin.isEmpty()) {
            p = bin.pop();
            cached -= size;
            hits++;
        } else {
            Cuda.requireDevice();
            try {
                p = Cuda.malloc(size);   // with Cuda.LIBRARY_TAIL past it on a device
            } catch (CudaException e) {
                // out of memory, perhaps only because of what the cache holds: give it back and try once more
                emptyCache();
                p = Cuda.malloc(size);
            }
            mallocs++;
        }
        inUse += size;
        return p;
    }

    /** Returns a block from {@link #allocate} to its bin. */
    static synchronized void release(MemorySegment p, long bytes) {
        long size = roundUp(bytes);
        FREE.computeIfAbsent(size, k -> new ArrayDeque<>()).push(p);
        inUse -= size;
        cached += size;
    }

    /** Frees every cached block on the device (cudaFree); live tensors keep theirs. */
    public static synchronized void emptyCache() {
        for (ArrayDeque<MemorySegment> bin : FREE.values())
            for (MemorySegment p : bin) Cuda.free(p);
        FREE.clear();
        cached = 0;
    }

    public static synchronized Stats stats() { return new Stats(inUse, cached, mallocs, hits); }
}
