package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * fst_cuda_sort / fst_cuda_sort_scatter called directly, and LineSort's own checks: bad arguments are refused by name
 * before any launch. The values against the CPU's are CudaSortTest's (nn). Device or host emulator.
 */
class CudaLineSortTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    private static void refused(String call, String why, Runnable r) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, r::run);
        assertTrue(e.getMessage().startsWith(call) && e.getMessage().contains(why), e.getMessage());
    }

    @Test
    void theSortLaunchersRefuseBadArgumentsByName() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(Device.CUDA, DType.F32, 2, 5);
            Tensor v = Tensor.zeros(Device.CUDA, DType.F32, 2, 5), i = Tensor.zeros(Device.CUDA, DType.F32, 2, 5);
            Tensor keys = Tensor.zeros(Device.CUDA, DType.F64, 2, 8);   // 2 lines of 8 pairs (5 rounded up)
            var px = CudaOps.ptr(x);
            var pv = CudaOps.ptr(v);
            var pi = CudaOps.ptr(i);
            var pk = CudaOps.ptr(keys);
            var none = MemorySegment.NULL;
            assertEquals(8, Native.cudaSortPairs(5));
            assertEquals(-1, Native.cudaSortPairs((1 << 24) + 1));
            refused("fst_cuda_sort", "count > n", () -> Native.cudaSort(px, 2, 5, 1, false, 0, false, 6, pk, pv, pi, none));
            refused("fst_cuda_sort", "start > n - count", () -> Native.cudaSort(px, 2, 5, 1, false, 3, false, 3, pk, pv, pi, none));
            refused("fst_cuda_sort", "median && (descending", () -> Native.cudaSort(px, 2, 5, 1, true, 0, true, 1, pk, pv, pi, none));
            refused("fst_cuda_sort", "n > (1 << 24)", () -> Native.cudaSort(px, 1, (1 << 24) + 1, 1, false, 0, false, 1, pk, pv, pi, none));
            refused("fst_cuda_sort", "overlap", () -> Native.cudaSort(px, 2, 5, 1, false, 0, false, 5, pk, px, pi, none));
            refused("fst_cuda_sort", "null pointer", () -> Native.cudaSort(px, 2, 5, 1, false, 0, false, 5, none, pv, pi, none));
            // 1000 lines of 5 need 1000 x 8 pairs: keys of 2 x 8 end long before
            Tensor big = Tensor.zeros(Device.CUDA, DType.F32, 1000, 5);
            refused("fst_cuda_sort", "keys", () -> Native.cudaSort(CudaOps.ptr(big), 1000, 5, 1, false, 0, false, 5, pk, pv, pi, none));
            refused("fst_cuda_sort_scatter", "m > numel", () -> Native.cudaSortScatter(pv, pi, 11, px, 10));
            refused("fst_cuda_sort_scatter", "overlap", () -> Native.cudaSortScatter(pv, pi, 10, pv, 10));
        }
    }

    @Test
    void lineSortChecksItsArgumentsInJava() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(Device.CUDA, DType.F32, 2, 3), host = Tensor.zeros(DType.F32, 2, 3);
            long before = Memory.bytesInUse();
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> LineSort.select("sort", x, 2, 2, 2, false, 0, false, 2, new int[]{2, 2, 2}, true));
            assertEquals("sort: lines 2 x 2 x 2 do not cover [2, 3]", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> LineSort.select("topk", x, 2, 3, 1, false, 2, false, 2, new int[]{2, 2}, true));
            assertEquals("topk: positions 2 .. 3 of lines of 3", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> LineSort.select("sort", x, 2, 3, 1, false, 0, false, 3, new int[]{2, 2}, true));
            assertEquals("sort: output [2, 2] for 2 x 3 x 1 positions", e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                    () -> LineSort.select("sort", host, 2, 3, 1, false, 0, false, 3, new int[]{2, 3}, true));
            assertTrue(e.getMessage().startsWith("device mismatch: sort"), e.getMessage());
            assertEquals(before, Memory.bytesInUse());
            LineSort.Selection sel = LineSort.select("sort", x, 2, 3, 1, false, 0, false, 3, new int[]{2, 3}, true);
            try (LineSort.Sources src = sel.sources()) {
                Tensor g = Tensor.zeros(Device.CUDA, DType.F32, 5);
                e = assertThrows(IllegalArgumentException.class, () -> LineSort.scatter("sort backward", g, src, new int[]{2, 3}));
                assertEquals("sort backward: a gradient of 5 elements [5] for 6 outputs", e.getMessage());
            }
            // topk(1) of [2, 3] keeps offsets up to 5: a gradient scattered into a smaller (or larger) input shape is
            // refused in Java, where the kernel, which skips offsets past dx, would drop its values silently
            LineSort.Selection top = LineSort.select("topk", x, 2, 3, 1, true, 0, false, 1, new int[]{2}, true);
            try (LineSort.Sources src = top.sources()) {
                Tensor g = Tensor.ones(2).to(Device.CUDA);
                for (int[] bad : new int[][]{{1, 2}, {2, 2}, {3, 3}}) {
                    e = assertThrows(IllegalArgumentException.class, () -> LineSort.scatter("topk backward", g, src, bad));
                    assertEquals("topk backward: input shape " + java.util.Arrays.toString(bad) + " (" + bad[0] * bad[1]
                            + " elements) for sources into 6 elements", e.getMessage());
                }
                try (Tensor dx = LineSort.scatter("topk backward", g, src, new int[]{2, 3})) {
                    assertEquals(2.0, dx.sum().item(), "each line's largest gets its 1");
                }
            }
        }
    }
}
