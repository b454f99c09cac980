package fst4j.nn.train;

import java.nio.file.Path;

/** A checkpoint cannot be read or does not fit the model/run it is loaded into; the message names the file and why. */
public class CheckpointException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public CheckpointException(Path file, String problem, Throwable cause) {
        super("checkpoint " + file + " is unusable: " + problem, cause);
    }
}
