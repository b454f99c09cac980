package fst4j.nn.io;

import java.nio.file.Path;

/**
 * A data file (IDX, CIFAR-10 binary, safetensors) is truncated or corrupt. The message names the file, the
 * byte offset where the problem was found (when there is one) and the problem; {@link #file()} and
 * {@link #offset()} give them to code. Unchecked, so loaders can be called from lambdas and streams.
 */
public class DataFormatException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;
    private final transient Path file;
    private final long offset;

    /** offset: byte offset in the file (or, for gzip files, in the decompressed stream); -1 when none applies. */
    public DataFormatException(Path file, long offset, String problem) {
        this(file, offset, problem, null);
    }

    public DataFormatException(Path file, long offset, String problem, Throwable cause) {
        super(file + (offset >= 0 ? " at byte offset " + offset : "") + ": " + problem, cause);
        this.file = file;
        this.offset = offset;
    }

    public Path file() { return file; }

    /** Byte offset of the problem, or -1 when it concerns the whole file. */
    public long offset() { return offset; }
}
