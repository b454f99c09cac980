package fst4j.nn;

import fst4j.shim.Cuda;
import fst4j.sparse.NM;
import fst4j.tensor.CudaOps;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * SR-STE's N:M decay on CUDA (fst_k_nm's decay through CudaOps.srsteDecayNM) gives the bits of the host loop
 * (SrSte.decayPrunedNM), ties, NaN, -0.0 and rows that are no multiple of M included; against the device or the host
 * emulator, skipped with the reason otherwise.
 */
class CudaSrSteNMTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theDeviceDecayIsTheHostsBitForBit() {
        int[][] shapes = {{1, 1}, {3, 7}, {10, 13}, {17, 36}, {6, 27}, {4, 33}};
        NM[] patterns = {new NM(1, 4), new NM(2, 8), new NM(4, 8), new NM(1, 16), new NM(8, 32), new NM(2, 4)};
        long seed = 17;
        for (int[] sh : shapes)
            for (NM nm : patterns)
                try (Scope s = Scope.open()) {
                    int rows = sh[0], k = sh[1], n = rows * k;
                    float[] w = SrSteNMTest.weights(n, seed++), g = SrSteNMTest.weights(n, seed++);
                    Tensor wh = Tensor.of(w, rows, k), gh = Tensor.of(g, rows, k);
                    Tensor wd = wh.to(Device.CUDA), gd = gh.to(Device.CUDA);
                    SrSte.decayPrunedNM(wh.data(), gh.data(), rows, k, nm.n(), nm.m(), 0.37f);
                    CudaOps.srsteDecayNM(wd, gd, rows, k, nm.n(), nm.m(), 0.37f);
                    float[] a = gh.toFloatArray(), b = gd.toFloatArray();
                    for (int i = 0; i < n; i++)
                        assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), nm + " " + java.util.Arrays.toString(sh) + ": element " + i);
                    if (k > nm.n()) assertFalse(java.util.Arrays.equals(g, a), "the decay changed something");
                }
    }

    @Test
    void aMismatchedGradientIsRefused() {
        try (Scope s = Scope.open()) {
            Tensor w = Tensor.zeros(4, 8).to(Device.CUDA), g = Tensor.zeros(4, 7).to(Device.CUDA);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaOps.srsteDecayNM(w, g, 4, 8, 1, 4, 0.1f));
            assertTrue(e.getMessage().contains("srsteDecayNM"), e.getMessage());
        }
    }
}
