package fst4j.shim;

/** A CUDA, cuBLAS or cuSPARSELt call failed; the message names the fst_cuda_* entry point and the failing call. */
public final class CudaException extends RuntimeException {
    public CudaException(String message) { super(message); }
}
