package fst4j.nn;

import fst4j.autograd.Var;
import fst4j.shim.Cuda;
import fst4j.tensor.Device;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** LayerNorm on CUDA tensors is refused as not supported yet (its Java ops run on the host only). */
class CudaLayerNormTest {
    @Test
    void refusedOnCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
        try (Scope s = Scope.open(); LayerNorm ln = new LayerNorm(3).to(Device.CUDA)) {
            UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> ln.forward(Var.of(Tensor.zeros(2, 3).to(Device.CUDA))));
            assertTrue(e.getMessage().contains("layerNorm is not supported on CUDA yet"), e.getMessage());
        }
    }
}
