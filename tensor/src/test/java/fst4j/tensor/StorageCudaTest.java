package fst4j.tensor;

import fst4j.shim.Cuda;
import fst4j.shim.CudaUnavailableException;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;

class StorageCudaTest {
    @Test
    void cudaStorageSaysWhyItCannotBeHad() {
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> new Storage(64, Device.CUDA));
        if (Cuda.isAvailable()) {
            assertTrue(e.getMessage().startsWith("CUDA tensors are not implemented yet"), e.getMessage());
        } else {
            assertInstanceOf(CudaUnavailableException.class, e);
            assertEquals("CUDA is not available: " + Cuda.status(), e.getMessage());
        }
    }
}
