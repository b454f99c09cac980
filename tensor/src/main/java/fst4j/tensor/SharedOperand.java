package fst4j.tensor;

/**
 * A float32 tensor made for a GEMM operand, and on CUDA its bf16 rounding made in the same pass: while this is open,
 * the bf16 GEMMs that read exactly this tensor (same storage, offset, shape and strides, unpadded) borrow the rounding
 * instead of rounding it again ({@link Conv#byChannel}'s dY for Eq. 2 and Eq. 3, the half-K gather of Eq. 3). Closing
 * it closes the tensor and frees the copy, once; on the CPU there is no copy. The tensor must not be written while the
 * handle is open (the copy would go stale): it is an operand, made for reading.
 */
public final class SharedOperand implements AutoCloseable {
    private final Tensor t;
    private Runnable release;

    SharedOperand(Tensor t, Runnable release) { this.t = t; this.release = release; }

    /** t alone (nothing shared: a CPU operand, or a path without the bf16 copy); closing it closes t. */
    public static SharedOperand of(Tensor t) { return new SharedOperand(t, null); }

    /** The float32 operand; valid until close. */
    public Tensor tensor() { return t; }

    @Override public void close() {
        Runnable r = release;
        release = null;   // a second close must not hand the shared block back to the allocator twice
        try { t.close(); } finally { if (r != null) r.run(); }
    }
}
