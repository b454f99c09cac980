package fst4j.nn.data;

/**
 * A dataset is not installed. The message is exactly the one command line that installs it (for example
 * {@code sudo apt-get install dataset-fashion-mnist}), so it can be shown as is.
 */
public class DatasetNotFoundException extends IllegalStateException {
    private static final long serialVersionUID = 1L;

    private final String where;

    public DatasetNotFoundException(String installCommand) { this(installCommand, null); }

    /** where: what was looked for where, in words ("Fashion-MNIST is not in /usr/share/datasets/fashion-mnist"), or null. */
    public DatasetNotFoundException(String installCommand, String where) {
        super(installCommand);
        this.where = where;
    }

    /** What was looked for where (for the line above the command), or null. */
    public String where() { return where; }

    /** The command line that installs the dataset (the message). */
    public String installCommand() { return getMessage(); }
}
