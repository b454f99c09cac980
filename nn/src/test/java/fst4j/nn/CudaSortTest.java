package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Memory;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Var.sort / topk / argsort / kthvalue / median have no CUDA kernel (a CPU loop per line): on a CUDA tensor each is
 * refused by name, before anything is allocated, instead of silently copying to the host. Against the device or the
 * host emulator (skipped with the reason otherwise).
 */
class CudaSortTest {
    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @Test
    void everySelectionIsRefusedByNameOnACudaTensor() {
        try (Scope s = Scope.open()) {
            Var x = Var.param(Tensor.of(new float[]{3, 1, 2, 0}, 2, 2).to(Device.CUDA));
            long before = Memory.bytesInUse();
            String[] names = {"Sort", "TopK", "Sort", "KthValue", "Median"};
            Executable[] calls = {() -> x.sort(0, false), () -> x.topk(1, -1, true, true), () -> x.argsort(1, true),
                    () -> x.kthvalue(1, 0, false), () -> x.median(1, true)};
            for (int i = 0; i < calls.length; i++) {
                UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, calls[i]);
                assertTrue(e.getMessage().startsWith(names[i] + " is not implemented for CUDA tensors"), e.getMessage());
                assertEquals(before, Memory.bytesInUse(), names[i]);
            }
            assertNull(x.grad());
        }
    }
}
