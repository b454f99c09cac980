package fst4j.shim;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

/**
 * The memory of one CUDA test: device blocks filled with a byte pattern when allocated (so an element no kernel wrote
 * shows), 64-byte aligned host staging in a confined arena, and every block freed by {@link #close()}. Every block is at
 * least minBytes long (some entry points reject empty or tiny buffers).
 */
final class DeviceBuffers implements AutoCloseable {
    private final Arena arena = Arena.ofConfined();
    private final List<MemorySegment> device = new ArrayList<>();
    private final int fill;
    private final long minBytes;

    DeviceBuffers(int fill, long minBytes) { this.fill = fill; this.minBytes = minBytes; }

    MemorySegment host(long bytes) { return arena.allocate(Math.max(minBytes, bytes), 64); }

    MemorySegment host(float[] v) {
        MemorySegment s = host(4L * v.length);
        MemorySegment.copy(v, 0, s, JAVA_FLOAT, 0, v.length);
        return s;
    }

    MemorySegment host(short[] v) {
        MemorySegment s = host(2L * v.length);
        MemorySegment.copy(v, 0, s, JAVA_SHORT, 0, v.length);
        return s;
    }

    MemorySegment dev(long bytes) {
        MemorySegment d = Cuda.malloc(Math.max(minBytes, bytes));
        device.add(d);
        Cuda.memset(d, fill, Math.max(minBytes, bytes));
        return d;
    }

    /** A device copy of the whole host segment h. */
    MemorySegment upload(MemorySegment h) {
        MemorySegment d = dev(h.byteSize());
        Cuda.copyToDevice(d, h, h.byteSize());
        return d;
    }

    MemorySegment upload(float[] v) { return upload(host(v).asSlice(0, 4L * v.length)); }

    MemorySegment upload(short[] v) { return upload(host(v).asSlice(0, 2L * v.length)); }

    MemorySegment upload(int[] v) {
        MemorySegment h = host(4L * v.length);
        MemorySegment.copy(v, 0, h, JAVA_INT, 0, v.length);
        return upload(h.asSlice(0, 4L * v.length));
    }

    private MemorySegment download(MemorySegment d, long bytes) {
        Cuda.sync();
        MemorySegment h = host(bytes);
        Cuda.copyToHost(h, d, bytes);
        return h.asSlice(0, bytes);
    }

    int[] downloadInts(MemorySegment d, long n) { return download(d, 4 * n).toArray(JAVA_INT); }

    float[] downloadFloats(MemorySegment d, long n) { return download(d, 4 * n).toArray(JAVA_FLOAT); }

    short[] downloadShorts(MemorySegment d, long n) { return download(d, 2 * n).toArray(JAVA_SHORT); }

    @Override public void close() {
        for (MemorySegment d : device) Cuda.free(d);   // empty when the test was skipped
        device.clear();
        arena.close();
    }
}
