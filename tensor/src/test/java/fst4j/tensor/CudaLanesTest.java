package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.Native;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * fst_cuda_lanes (cumsum / prod along an axis) and the index map's launchers, called directly: bad arguments are refused
 * by name before any launch. The values against the CPU's are CudaVarEverydayOpsTest's (nn). Device or host emulator.
 */
class CudaLanesTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theLanesLauncherRefusesBadArgumentsByName() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(Device.CUDA, DType.F32, 2, 3);
            Tensor out = Tensor.zeros(Device.CUDA, DType.F32, 2, 3);
            var px = CudaOps.ptr(x);
            var po = CudaOps.ptr(out);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.cudaLanes(9, px, MemorySegment.NULL, 2, 3, 1, po));
            assertTrue(e.getMessage().startsWith("fst_cuda_lanes") && e.getMessage().contains("op >= FST_LANE_N"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaLanes(0, px, MemorySegment.NULL, 2, 3, 1, px));
            assertTrue(e.getMessage().contains("overlap"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaLanes(3, px, MemorySegment.NULL, 2, 3, 1, po));
            assertTrue(e.getMessage().contains("null pointer"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Native.cudaLanes(0, px, MemorySegment.NULL, 1 << 20, 3, 1, po));   // past x's allocation
            assertTrue(e.getMessage().startsWith("fst_cuda_lanes"), e.getMessage());
        }
    }

    @Test
    void flatIndexAndLanesRefuseBadArgumentsInJava() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.zeros(Device.CUDA, DType.F32, 2, 3);
            IndexOutOfBoundsException i = assertThrows(IndexOutOfBoundsException.class, () -> FlatIndex.gather(x, new int[]{0, 6}, new int[]{2}));
            assertEquals("gather: flat index 6 (at 1) out of range for 6 elements [2, 3]", i.getMessage());
            i = assertThrows(IndexOutOfBoundsException.class, () -> FlatIndex.scatterAdd(x, new int[]{0, 1, 2, 3, 4, -1}, new int[]{5}));
            assertTrue(i.getMessage().startsWith("scatterAdd: flat index -1 (at 5)"), i.getMessage());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Lanes.cumsum(x, 2, 2, 2, false));
            assertTrue(e.getMessage().startsWith("cumsum: lanes 2 x 2 x 2 do not cover [2, 3]"), e.getMessage());
            // the empty product on the device is 1, as on the CPU
            Tensor empty = Tensor.zeros(Device.CUDA, DType.F32, 2, 0);
            assertArrayEquals(new float[]{1, 1}, Lanes.prod(empty, 2, 0, 1, new int[]{2}).toFloatArray());
        }
    }
}
