package fst4j.tensor;

import fst4j.shim.Cuda;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * What the CUDA tensor tests share: each test is skipped, with the reason, where no CUDA back end (device or host
 * emulator) is usable, and the tensors it {@link #keep}s are closed after it, so a failing assertion leaks nothing.
 */
abstract class CudaTensorTestBase {
    private final List<Tensor> open = new ArrayList<>();

    @BeforeEach
    void needsCuda() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA back end: " + Cuda.status());
    }

    @AfterEach
    void closeAll() {
        open.forEach(Tensor::close);
        open.clear();
    }

    /** t, closed after the test. */
    protected <T extends Tensor> T keep(T t) { open.add(t); return t; }

    /** A CUDA copy of t, closed after the test. */
    protected Tensor gpu(Tensor t) { return keep(t.to(Device.CUDA)); }
}
