package fst4j.tensor;

import java.util.concurrent.atomic.AtomicLong;

/** Off-heap accounting: bytes and storages currently allocated by fst4j tensors (freed ones excluded). */
public final class Memory {
    private Memory() {}
    static final AtomicLong BYTES = new AtomicLong();
    static final AtomicLong STORAGES = new AtomicLong();
    static final AtomicLong ALLOCATIONS = new AtomicLong();
    static final AtomicLong ALLOCATED_BYTES = new AtomicLong();

    /** Off-heap bytes held by live tensor storages right now. */
    public static long bytesInUse() { return BYTES.get(); }
    /** Number of live storages (a storage is shared by a tensor and its views). */
    public static long liveStorages() { return STORAGES.get(); }
    /** Allocations since start; a steady-state loop that reuses buffers keeps this still. */
    public static long allocationCount() { return ALLOCATIONS.get(); }
    /** Off-heap bytes allocated since start, freed ones included (the churn a step causes). */
    public static long bytesAllocated() { return ALLOCATED_BYTES.get(); }
}
