package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The caching allocator behind CUDA tensors, and (under the host emulator only) that the emulator really checks
 * what a device would not forgive: ranges outside an allocation, copies in the wrong direction, unwritten memory.
 * Runs against the device or the emulator like {@link CudaTensorOpsTest}; the bin rounding runs everywhere.
 */
class CudaMemoryTest {
    @Test
    void sizesAreRoundedToFewBinsWithBoundedWaste() {
        assertEquals(512, CudaMemory.roundUp(0));
        assertEquals(512, CudaMemory.roundUp(1));
        assertEquals(1024, CudaMemory.roundUp(513));
        assertEquals(1L << 20, CudaMemory.roundUp((1L << 20) - 3));
        assertEquals((1L << 20) + (1L << 17), CudaMemory.roundUp((1L << 20) + 1));
        for (long b = 1; b < 1L << 34; b = b * 3 + 7) {
            long r = CudaMemory.roundUp(b);
            assertTrue(r >= b && r <= Math.max(b + 511, b + b / 8), b + " -> " + r);
        }
    }

    /** The elementwise iteration space is collapsed without changing which elements are visited, or their order. */
    @Test
    void elementwiseLayoutsCollapseToTheFewestDimensions() {
        CudaOps.Layout flat = CudaOps.Layout.of(new int[] { 2, 3, 4 }, new long[] { 12, 4, 1 }, new long[] { 12, 4, 1 });
        assertArrayEquals(new long[] { 24 }, flat.shape());
        assertArrayEquals(new long[] { 1 }, flat.strides()[1]);
        CudaOps.Layout bias = CudaOps.Layout.of(new int[] { 8, 16, 5, 5 }, new long[] { 400, 25, 5, 1 }, new long[] { 0, 1, 0, 0 });
        assertArrayEquals(new long[] { 8, 16, 25 }, bias.shape());
        assertArrayEquals(new long[] { 400, 25, 1 }, bias.strides()[0]);
        assertArrayEquals(new long[] { 0, 1, 0 }, bias.strides()[1]);
        CudaOps.Layout t = CudaOps.Layout.of(new int[] { 3, 1, 4 }, new long[] { 1, 99, 3 });   // a transpose, a size-1 axis
        assertArrayEquals(new long[] { 3, 4 }, t.shape());
        assertArrayEquals(new long[] { 1, 3 }, t.strides()[0]);
        CudaOps.Layout scalar = CudaOps.Layout.of(new int[] { 1, 1 }, new long[] { 0, 0 });
        assertEquals(0, scalar.shape().length);
        // every collapse visits the same offsets in the same order as the original layout
        java.util.Random r = new java.util.Random(3);
        for (int trial = 0; trial < 200; trial++) {
            int rank = 1 + r.nextInt(4);
            int[] shape = new int[rank];
            for (int d = 0; d < rank; d++) shape[d] = 1 + r.nextInt(3);
            long[] st = new long[rank];
            for (int d = rank - 1, acc = 1; d >= 0; d--) {   // contiguous, broadcast (0) or a permuted-looking stride
                int kind = r.nextInt(3);
                st[d] = kind == 0 ? acc : kind == 1 ? 0 : acc * 2;
                acc *= shape[d];
            }
            CudaOps.Layout l = CudaOps.Layout.of(shape, st);
            long n = 1;
            for (int s : shape) n *= s;
            for (long i = 0; i < n; i++) assertEquals(offset(i, shape, st), offset(i, l.shape(), l.strides()[0]), java.util.Arrays.toString(shape) + java.util.Arrays.toString(st));
        }
    }

    private static long offset(long i, int[] shape, long[] st) {
        long off = 0;
        for (int d = shape.length - 1; d >= 0; d--) { off += (i % shape[d]) * st[d]; i /= shape[d]; }
        return off;
    }

    private static long offset(long i, long[] shape, long[] st) {
        long off = 0;
        for (int d = shape.length - 1; d >= 0; d--) { off += (i % shape[d]) * st[d]; i /= shape[d]; }
        return off;
    }

    @Test
    void withoutCudaADeviceTensorSaysWhy() {
        assumeTrue(!Cuda.isAvailable(), "CUDA is available here");
        var e = assertThrows(fst4j.shim.CudaUnavailableException.class, () -> Tensor.empty(Device.CUDA, DType.F32, 4));
        assertEquals("CUDA is not available: " + Cuda.status(), e.getMessage());
    }

    @Test
    void emulatorLoadsWhereverTheDeviceLibraryWasBuilt() {
        assumeTrue(Cuda.isEmulated(), "not running on the emulator (-Dfst4j.cuda.emulate=true)");
        // the two libraries are built together: a missing emulator here would silently skip every emulated test
        assumeTrue(Native.class.getResource("/native/linux-x86_64/libfst4j_cuda.so") != null, "libfst4j_cuda.so not built (no nvcc)");
        assertTrue(Cuda.isAvailable(), Cuda.status());
        assertTrue(Cuda.status().startsWith("ok: host emulator"), Cuda.status());
    }

    @BeforeEach
    void report() { System.out.println("CUDA back end: " + Cuda.status()); }

    @Test
    void freedBlocksAreReusedAndEmptyCacheGivesThemBack() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        CudaMemory.emptyCache();
        CudaMemory.Stats s0 = CudaMemory.stats();
        assertEquals(0, s0.bytesCached());
        Tensor a = Tensor.empty(Device.CUDA, DType.F32, 1000);   // 4000 bytes -> a 4096-byte bin
        CudaMemory.Stats s1 = CudaMemory.stats();
        assertEquals(s0.bytesInUse() + 4096, s1.bytesInUse());
        assertEquals(s0.deviceAllocations() + 1, s1.deviceAllocations());
        a.close();
        CudaMemory.Stats s2 = CudaMemory.stats();
        assertEquals(s0.bytesInUse(), s2.bytesInUse());
        assertEquals(4096, s2.bytesCached());
        try (Tensor b = Tensor.empty(Device.CUDA, DType.F32, 1020)) {   // same bin: reused, no cudaMalloc
            CudaMemory.Stats s3 = CudaMemory.stats();
            assertEquals(s1.deviceAllocations(), s3.deviceAllocations());
            assertEquals(s2.cacheHits() + 1, s3.cacheHits());
            assertEquals(0, s3.bytesCached());
            try (Tensor v = b.reshape(20, 51)) {   // a view shares the block
                assertEquals(s3.bytesInUse(), CudaMemory.stats().bytesInUse());
            }
        }
        CudaMemory.emptyCache();
        assertEquals(0, CudaMemory.stats().bytesCached());
        try (Tensor c = Tensor.empty(Device.CUDA, DType.F32, 1000)) {
            assertEquals(s1.deviceAllocations() + 1, CudaMemory.stats().deviceAllocations());
        }
    }

    @Test
    void theEmulatorRejectsRangesOutsideAllocationsAndWrongCopies() {
        assumeTrue(Cuda.isAvailable() && Cuda.isEmulated(), () -> "host emulator not in use: " + Cuda.status());
        // the emulator knows allocations, i.e. the allocator's rounded blocks (512 bytes for the small tensor)
        try (Tensor small = Tensor.empty(Device.CUDA, DType.F32, 10); Tensor big = Tensor.zeros(Device.CUDA, DType.F32, 1000);
             Tensor host = Tensor.zeros(1000)) {
            MemorySegment s = CudaOps.ptr(small), b = CudaOps.ptr(big);
            // 1000 outputs into a block of 128 floats
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Native.cudaBinary(CudaOps.ADD, new long[] { 1000 }, b, new long[] { 1 }, b, new long[] { 1 }, s));
            assertTrue(e.getMessage().contains("not inside one device allocation"), e.getMessage());
            // a host pointer given as a device one
            e = assertThrows(IllegalArgumentException.class,
                    () -> Native.cudaUnary(CudaOps.RELU, 0, new long[] { 1000 }, host.data(), new long[] { 1 }, b));
            assertTrue(e.getMessage().contains("not inside one device allocation"), e.getMessage());
            // host -> device with the pointers swapped: Cuda's wrapper sees a "host" segment without bytes; the raw call
            // reaches the emulator, which knows the device allocations
            e = assertThrows(IllegalArgumentException.class, () -> Cuda.copyToDevice(host.data(), b, 4000));
            assertTrue(e.getMessage().contains("host segment of 0"), e.getMessage());
            assertThrows(fst4j.shim.CudaException.class, () -> Native.cudaMemcpy(host.data(), b, 4000, 1));
            // fresh device memory is not zero (the emulator fills it with NaN bytes, as a device may hold anything)
            for (float v : small.toFloatArray()) assertTrue(Float.isNaN(v));
        }
    }
}
