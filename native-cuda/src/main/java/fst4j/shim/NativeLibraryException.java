package fst4j.shim;

/** The fst4j native shim (or a vendor library it needs) could not be found, loaded or bound. */
public final class NativeLibraryException extends RuntimeException {
    public NativeLibraryException(String message) { super(message); }
    public NativeLibraryException(String message, Throwable cause) { super(message, cause); }
}
