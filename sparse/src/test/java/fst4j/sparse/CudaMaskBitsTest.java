package fst4j.sparse;

import fst4j.shim.Cuda;
import fst4j.tensor.CudaMemory;
import fst4j.tensor.CudaOps;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * A CUDA weight's mask read back for the flip rate: magnitude 2:4 from fst_k_prune24's metadata words
 * (CudaOps.prune24Meta, one bit per weight copied to the host), the bits of the host rule with NaN, -0.0, ties, zeros
 * and short last groups, strided views included; N:M and a transposable mask by their host selection over the copied
 * values; the scratch blocks freed. Against the device or the host emulator, skipped with the reason otherwise.
 */
class CudaMaskBitsTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void theDeviceMetadataGivesTheHostRulesBits() {
        Sparsifier m24 = new Sparsifier.Magnitude24(1);
        long seed = 70, dev = CudaMemory.stats().bytesInUse(), host = Memory.bytesInUse();
        for (int rows : new int[]{1, 5})
            for (int k : new int[]{1, 3, 4, 7, 32, 33, 65})
                try (Scope s = Scope.open()) {
                    Tensor w = Tensor.of(NativePruneTest.nasty(rows * k, seed++), rows, k), wd = w.to(Device.CUDA);
                    long[] want = MaskBits.pack(Masks.keep(m24, w, w.toDoubleArray()));
                    assertArrayEquals(want, MaskBits.of(m24, wd), rows + "x" + k);
                    // the words themselves are the CPU kernel's (the same nibbles, the same fill of short groups)
                    try (Compressed24 c = Compressed24.pruneCompress(w)) {
                        int[] words = CudaOps.prune24Meta(wd);
                        for (int r = 0; r < rows; r++)
                            for (int i = 0; i < c.metaWordsPerRow(); i++) assertEquals(c.metaWord(r, i), words[r * c.metaWordsPerRow() + i], rows + "x" + k);
                    }
                    Tensor src = Tensor.of(NativePruneTest.nasty(rows * k, seed++), k, rows);
                    try (Tensor t = src.t(); Tensor td = src.to(Device.CUDA); Tensor tdt = td.t()) {
                        assertArrayEquals(MaskBits.pack(Masks.keep(m24, t, t.toDoubleArray())), MaskBits.of(m24, tdt), "strided " + rows + "x" + k);
                    }
                    // a fresh rule each side: a transposable mask computes its first mask from the values copied off the device
                    for (java.util.function.Supplier<Sparsifier> other : java.util.List.<java.util.function.Supplier<Sparsifier>>of(
                            () -> new Sparsifier.MagnitudeNM(2, 8, 1), () -> new Transposable24(40)))
                        assertArrayEquals(MaskBits.pack(Masks.keep(other.get(), w, w.toDoubleArray())), MaskBits.of(other.get(), wd), other.get() + " " + rows + "x" + k);
                }
        assertEquals(dev, CudaMemory.stats().bytesInUse(), "the kept values' and metadata's scratch blocks are freed");
        assertEquals(host, Memory.bytesInUse());
        try (Scope s = Scope.open()) {
            Tensor three = Tensor.zeros(2, 3, 4).to(Device.CUDA);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CudaOps.prune24Meta(three));
            assertTrue(e.getMessage().contains("prune24Meta needs a matrix"), e.getMessage());
            assertEquals(0, CudaOps.prune24Meta(Tensor.empty(Device.CUDA, fst4j.tensor.DType.F32, 3, 0)).length);
        }
    }
}
