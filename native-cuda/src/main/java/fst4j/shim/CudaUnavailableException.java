package fst4j.shim;

/**
 * CUDA cannot be used in this process: the CUDA shim was not built (no nvcc at build time), a CUDA library was
 * not found, or there is no device. The message carries {@link Cuda#status()}, the one-line reason.
 * An {@link UnsupportedOperationException} so that code which caught the old "device CUDA is not available"
 * error keeps working.
 */
public final class CudaUnavailableException extends UnsupportedOperationException {
    public CudaUnavailableException(String message) { super(message); }
}
