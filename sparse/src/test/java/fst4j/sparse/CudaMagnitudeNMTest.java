package fst4j.sparse;

import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Magnitude N:M of a float32 CUDA tensor by its kernel (fst_k_nm through CudaOps.pruneNM) against the host selection
 * (Masks.applyOnHost), bit for bit, at awkward shapes and every axis, with NaN, -0.0, infinities and ties. Against the
 * device or the host emulator, skipped with the reason otherwise.
 */
class CudaMagnitudeNMTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theKernelKeepsWhatTheHostKeeps() {
        int[][] shapes = {{7}, {3, 13}, {13, 3}, {2, 5, 17}, {6, 9, 1}, {1, 33}, {4, 2, 3, 5}};
        NM[] patterns = {new NM(1, 4), new NM(2, 8), new NM(4, 8), new NM(1, 16), new NM(8, 32), new NM(1, 2), new NM(2, 4), new NM(5, 7)};
        long seed = 11;
        for (int[] shape : shapes)
            for (NM nm : patterns)
                for (int axis = -shape.length; axis < shape.length; axis++)
                    try (Scope s = Scope.open()) {
                        Tensor x = Tensor.of(MagnitudeNMTest.values(TestData.numel(shape), seed++, true), shape);
                        Sparsifier sp = new Sparsifier.MagnitudeNM(nm, axis);
                        Tensor want = Masks.applyOnHost(sp, x), got = sp.apply(x.to(Device.CUDA));
                        assertEquals(Device.CUDA, got.device());
                        assertArrayEquals(shape, got.shape());
                        float[] a = want.toFloatArray(), b = got.toFloatArray();
                        String what = nm + " along " + axis + " of " + java.util.Arrays.toString(shape);
                        for (int i = 0; i < a.length; i++)
                            assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), what + ": element " + i + " " + b[i] + " vs " + a[i]);
                    }
    }

    @Test
    void aNonContiguousTensorAndAnEmptyOneAndABadAxis() {
        try (Scope s = Scope.open()) {
            Tensor x = Tensor.of(MagnitudeNMTest.values(6 * 11, 5, true), 6, 11), xt = x.to(Device.CUDA).t();   // [11, 6], strided
            Sparsifier sp = new Sparsifier.MagnitudeNM(1, 4, 1);
            try (Tensor host = x.t()) {
                assertArrayEquals(Masks.applyOnHost(sp, host).toFloatArray(), sp.apply(xt).toFloatArray());
            }
            assertEquals(0, sp.apply(Tensor.empty(Device.CUDA, fst4j.tensor.DType.F32, 3, 0)).numel());
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Sparsifier.MagnitudeNM(1, 4, 3).apply(xt));
            assertTrue(e.getMessage().contains("axis 3 out of range for rank 2"), e.getMessage());
            // the pattern is checked in Java before any launch (the kernel's own check gave only a status code)
            Tensor w = x.to(Device.CUDA), g = x.to(Device.CUDA);
            for (int[] nm : new int[][]{{0, 4}, {4, 4}, {1, 1}, {1, 33}, {5, 4}}) {
                e = assertThrows(IllegalArgumentException.class, () -> fst4j.tensor.CudaOps.pruneNM(w, 1, nm[0], nm[1]));
                assertTrue(e.getMessage().contains("pruneNM: N:M pattern " + nm[0] + ":" + nm[1] + " is outside 1 <= N < M <= 32"), e.getMessage());
                e = assertThrows(IllegalArgumentException.class, () -> fst4j.tensor.CudaOps.srsteDecayNM(w, g, 6, 11, nm[0], nm[1], 1e-3f));
                assertTrue(e.getMessage().contains("srsteDecayNM: N:M pattern " + nm[0] + ":" + nm[1]), e.getMessage());
            }
        }
    }
}
