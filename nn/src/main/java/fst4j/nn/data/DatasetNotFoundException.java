package fst4j.nn.data;

/**
 * A dataset is not installed. The message is exactly the one command line that installs it (for example
 * {@code sudo apt-get install dataset-fashion-mnist}), so it can be shown as is.
 */
public class DatasetNotFoundException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    public DatasetNotFoundException(String installCommand) { super(installCommand); }

    /** The command line that installs the dataset (the message). */
    public String installCommand() { return getMessage(); }
}
